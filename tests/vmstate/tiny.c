/* The small description of tiny.h. */
#include "tiny.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static const VMStateDescription entry_vmsd = {
    .name = "tiny-entry",
    .version_id = 1,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT32(x, TinyEntry),
        VMSTATE_END_OF_LIST(),
    },
};

static bool extra_needed(void *opaque)
{
    return ((Tiny *)opaque)->extra != 0;
}

static const VMStateDescription extra_vmsd = {
    .name = "tiny/extra",
    .version_id = 1,
    .minimum_version_id = 1,
    .needed = extra_needed,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT8(extra, Tiny),
        VMSTATE_END_OF_LIST(),
    },
};

const VMStateDescription tiny_vmsd = {
    .name = "tiny",
    .version_id = 2,
    .minimum_version_id = 1,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT16(a, Tiny),
        VMSTATE_BOOL(b, Tiny),
        VMSTATE_BUFFER(buf, Tiny),
        VMSTATE_VARRAY(v, Tiny, VMS_U8, n, VMS_U8),
        VMSTATE_STRUCT_PTR_ARRAY(p, Tiny, entry_vmsd, TinyEntry),
        VMSTATE_UINT32_V(later, Tiny, 2),
        VMSTATE_END_OF_LIST(),
    },
    .subsections = (const VMStateDescription *const[]) {
        &extra_vmsd,
        NULL,
    },
};

void tiny_fill(Tiny *t)
{
    memset(t, 0, sizeof(*t));
    t->a = 0x1234;
    t->b = true;
    t->buf[0] = 0xaa;
    t->buf[1] = 0xbb;
    t->n = 2;
    t->v[0] = 0x0a;
    t->v[1] = 0x0b;
    t->p[1] = malloc(sizeof(TinyEntry));
    t->p[1]->x = 0xdeadbeef;
    t->later = 9;
    t->extra = 0x5a;
}

void tiny_fill_other(Tiny *t)
{
    memset(t, 0, sizeof(*t));
    t->a = 0x4321;
    t->buf[0] = 0x11;
    t->n = 3;
    t->v[2] = 0x33;
    t->p[0] = malloc(sizeof(TinyEntry));
    t->p[0]->x = 0x600d;
    t->later = 77;
    t->extra = 0;
}

void tiny_free(Tiny *t)
{
    free(t->p[0]);
    free(t->p[1]);
    t->p[0] = t->p[1] = NULL;
}

bool tiny_same(const Tiny *live, const Tiny *copy, const TinyEntry *e0,
               const TinyEntry *e1)
{
    return live->a == copy->a && live->b == copy->b &&
           !memcmp(live->buf, copy->buf, sizeof(live->buf)) &&
           live->n == copy->n && !memcmp(live->v, copy->v, sizeof(live->v)) &&
           live->p[0] == copy->p[0] && live->p[1] == copy->p[1] &&
           (!e0 || (live->p[0] && live->p[0]->x == e0->x)) &&
           (!e1 || (live->p[1] && live->p[1]->x == e1->x)) &&
           live->later == copy->later && live->extra == copy->extra;
}
