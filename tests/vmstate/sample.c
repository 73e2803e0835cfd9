/* The representative device state of sample.h. */
#include "sample.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static const VMStateDescription queue_vmsd = {
    .name = "sample-queue",
    .version_id = 1,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT16(head, SampleQueue),
        VMSTATE_UINT16(tail, SampleQueue),
        VMSTATE_UINT64(addr, SampleQueue),
        VMSTATE_BOOL(enabled, SampleQueue),
        VMSTATE_END_OF_LIST(),
    },
};

static const VMStateDescription inner_vmsd = {
    .name = "sample-inner",
    .version_id = 1,
    .fields = (const VMStateField[]) {
        VMSTATE_INT8(a, SampleInner),
        VMSTATE_INT16(b, SampleInner),
        VMSTATE_INT32(c, SampleInner),
        VMSTATE_INT64(d, SampleInner),
        VMSTATE_END_OF_LIST(),
    },
};

static bool features_needed(void *opaque)
{
    return ((Sample *)opaque)->features != 0;
}

static const VMStateDescription features_vmsd = {
    .name = "sample/features",
    .version_id = 1,
    .minimum_version_id = 1,
    .needed = features_needed,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT64(features, Sample),
        VMSTATE_END_OF_LIST(),
    },
};

const VMStateDescription sample_vmsd = {
    .name = "sample",
    .version_id = 2,
    .minimum_version_id = 1,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT8(u8, Sample),
        VMSTATE_UINT16(u16, Sample),
        VMSTATE_UINT32(u32, Sample),
        VMSTATE_UINT64(u64, Sample),
        VMSTATE_INT8(i8, Sample),
        VMSTATE_INT16(i16, Sample),
        VMSTATE_INT32(i32, Sample),
        VMSTATE_INT64(i64, Sample),
        VMSTATE_BOOL(flag, Sample),
        VMSTATE_BUFFER(mac, Sample),
        VMSTATE_ARRAY(regs, Sample, VMS_U32),
        VMSTATE_ARRAY(bits, Sample, VMS_BOOL),
        VMSTATE_VARRAY(log, Sample, VMS_I16, nlog, VMS_U16),
        VMSTATE_STRUCT(inner, Sample, inner_vmsd, SampleInner),
        VMSTATE_STRUCT_ARRAY(pair, Sample, inner_vmsd, SampleInner),
        VMSTATE_STRUCT_VARRAY(slots, Sample, inner_vmsd, SampleInner,
                              nslots, VMS_U8),
        VMSTATE_STRUCT_VARRAY_ALLOC(extra, Sample, queue_vmsd, SampleQueue,
                                    nextra, VMS_U32, SAMPLE_MAX_EXTRA),
        VMSTATE_STRUCT_PTR_ARRAY(sq, Sample, queue_vmsd, SampleQueue),
        VMSTATE_UINT32_V(since2, Sample, 2),
        VMSTATE_END_OF_LIST(),
    },
    .subsections = (const VMStateDescription *const[]) {
        &features_vmsd,
        NULL,
    },
};

static void fill_inner(SampleInner *in, unsigned seed)
{
    in->a = (int8_t)(-(int)(seed % 100) - 1);
    in->b = (int16_t)(-1000 - (int)seed);
    in->c = -(int32_t)(seed * 100003u % 1000000u) - 7;
    in->d = -(int64_t)seed * 1000000007LL - 3;
}

static void fill_queue(SampleQueue *q, unsigned seed)
{
    q->head = (uint16_t)(seed * 3 + 1);
    q->tail = (uint16_t)(seed * 5 + 2);
    q->addr = 0x100000000ull * (seed + 1) + seed;
    q->enabled = seed & 1;
    q->cookie = 0xC0DE0000u + seed;
}

void sample_fill(Sample *s, unsigned seed, unsigned present, uint32_t nextra)
{
    memset(s, 0, sizeof(*s));
    s->u8 = (uint8_t)(0xA0 + seed);
    s->u16 = (uint16_t)(0xBEE0 + seed);
    s->u32 = 0xDEAD0000u + seed;
    s->u64 = 0x0123456789ABCDEFull ^ seed;
    s->i8 = (int8_t)(-5 - (int)seed);
    s->i16 = (int16_t)(-300 - (int)seed);
    s->i32 = -70000 - (int32_t)seed;
    s->i64 = -5000000000LL - seed;
    s->flag = !(seed & 1);
    for (unsigned i = 0; i < sizeof(s->mac); i++) {
        s->mac[i] = (uint8_t)(seed * 7 + i);
    }
    for (unsigned i = 0; i < 4; i++) {
        s->regs[i] = 0x1000u * (i + 1) + seed;
    }
    for (unsigned i = 0; i < 3; i++) {
        s->bits[i] = ((seed >> i) & 1) != 0;
    }
    s->nlog = (uint16_t)(seed % 9);
    for (unsigned i = 0; i < s->nlog; i++) {
        s->log[i] = (int16_t)(-(int)i * 11 - (int)seed);
    }
    fill_inner(&s->inner, seed);
    fill_inner(&s->pair[0], seed + 1);
    fill_inner(&s->pair[1], seed + 2);
    s->nslots = (uint8_t)(seed % 5);
    for (unsigned i = 0; i < s->nslots; i++) {
        fill_inner(&s->slots[i], seed + 10 + i);
    }
    s->nextra = nextra;
    s->extra = nextra ? calloc(nextra, sizeof(*s->extra)) : NULL;
    for (uint32_t i = 0; s->extra && i < nextra; i++) {
        fill_queue(&s->extra[i], seed + 20 + i);
    }
    for (unsigned i = 0; i < SAMPLE_NSQ; i++) {
        if (present & (1u << i)) {
            s->sq[i] = calloc(1, sizeof(SampleQueue));
            fill_queue(s->sq[i], seed + 30 + i);
        }
    }
    s->since2 = 0x5150u + seed;
    s->features = seed & 2 ? 0xFEA7u + seed : 0;
    s->not_migrated = 0x77770000u + seed;
}

void sample_free(Sample *s)
{
    free(s->extra);
    s->extra = NULL;
    for (unsigned i = 0; i < SAMPLE_NSQ; i++) {
        free(s->sq[i]);
        s->sq[i] = NULL;
    }
}

void sample_clone(Sample *dst, const Sample *src)
{
    *dst = *src;
    if (src->extra) {
        dst->extra = calloc(src->nextra ? src->nextra : 1,
                            sizeof(*dst->extra));
        memcpy(dst->extra, src->extra, src->nextra * sizeof(*dst->extra));
    }
    for (unsigned i = 0; i < SAMPLE_NSQ; i++) {
        if (src->sq[i]) {
            dst->sq[i] = malloc(sizeof(SampleQueue));
            *dst->sq[i] = *src->sq[i];
        }
    }
}

static bool inner_equal(const SampleInner *a, const SampleInner *b)
{
    return a->a == b->a && a->b == b->b && a->c == b->c && a->d == b->d;
}

static bool queue_equal(const SampleQueue *a, const SampleQueue *b)
{
    return a->head == b->head && a->tail == b->tail && a->addr == b->addr &&
           a->enabled == b->enabled;
}

static bool scalars_equal(const Sample *a, const Sample *b)
{
    return a->u8 == b->u8 && a->u16 == b->u16 && a->u32 == b->u32 &&
           a->u64 == b->u64 && a->i8 == b->i8 && a->i16 == b->i16 &&
           a->i32 == b->i32 && a->i64 == b->i64 && a->flag == b->flag &&
           !memcmp(a->mac, b->mac, sizeof(a->mac)) &&
           !memcmp(a->regs, b->regs, sizeof(a->regs)) &&
           !memcmp(a->bits, b->bits, sizeof(a->bits)) &&
           a->since2 == b->since2 && a->features == b->features;
}

static bool arrays_equal(const Sample *a, const Sample *b)
{
    if (a->nlog != b->nlog || a->nslots != b->nslots ||
        a->nextra != b->nextra ||
        memcmp(a->log, b->log, a->nlog * sizeof(a->log[0])) ||
        !inner_equal(&a->inner, &b->inner) ||
        !inner_equal(&a->pair[0], &b->pair[0]) ||
        !inner_equal(&a->pair[1], &b->pair[1])) {
        return false;
    }
    for (unsigned i = 0; i < a->nslots; i++) {
        if (!inner_equal(&a->slots[i], &b->slots[i])) {
            return false;
        }
    }
    for (uint32_t i = 0; i < a->nextra; i++) {
        if (!queue_equal(&a->extra[i], &b->extra[i])) {
            return false;
        }
    }
    return true;
}

bool sample_equal(const Sample *a, const Sample *b)
{
    if (!scalars_equal(a, b) || !arrays_equal(a, b)) {
        return false;
    }
    for (unsigned i = 0; i < SAMPLE_NSQ; i++) {
        if (!a->sq[i] != !b->sq[i] ||
            (a->sq[i] && !queue_equal(a->sq[i], b->sq[i]))) {
            return false;
        }
    }
    return true;
}

void sample_addrs(const Sample *s, SampleAddrs *addrs)
{
    addrs->extra = s->extra;
    for (unsigned i = 0; i < SAMPLE_NSQ; i++) {
        addrs->sq[i] = s->sq[i];
    }
}

bool sample_unchanged(const Sample *live, const Sample *clone,
                      const SampleAddrs *addrs)
{
    if (!sample_equal(live, clone) ||
        live->not_migrated != clone->not_migrated ||
        live->extra != addrs->extra) {
        return false;
    }
    for (unsigned i = 0; i < SAMPLE_NSQ; i++) {
        if (live->sq[i] != addrs->sq[i] ||
            (live->sq[i] && live->sq[i]->cookie != clone->sq[i]->cookie)) {
            return false;
        }
    }
    for (uint32_t i = 0; i < live->nextra; i++) {
        if (live->extra[i].cookie != clone->extra[i].cookie) {
            return false;
        }
    }
    return true;
}
