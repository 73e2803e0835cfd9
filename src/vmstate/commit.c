/*
 * Commit and rollback: the decoded tree is written into the destination
 * objects through an undo journal, so a failure (out of memory here, or a
 * post_load hook later) puts every byte and pointer back.
 *
 * Ownership (docs/device-state-format.md, "Ownership"):
 *  - a pointer-array entry present in the stream and non-NULL at the
 *    destination is loaded in place (its address is kept); NULL at the
 *    destination: a zeroed entry of .size bytes is calloc'd; NULL in the
 *    stream but not at the destination: the entry (and what it owns) is
 *    freed with free() once the load has succeeded;
 *  - a VARRAY_ALLOC array is replaced by a calloc'd array of the stream's
 *    count (NULL for zero); the old one is freed once the load succeeded.
 */
#include "vmstate/vmstate-int.h"

#include <stdlib.h>
#include <string.h>

typedef struct UndoTrailer {
    void *dst;
    size_t n;
} UndoTrailer;

void vms_journal_init(VMSJournal *j)
{
    memset(j, 0, sizeof(*j));
    bytebuf_init(&j->undo);
}

/* Writes n bytes at dst, keeping the old ones for an undo. */
static bool jwrite(VMSJournal *j, void *dst, const void *src, size_t n)
{
    UndoTrailer t = { dst, n };
    if (!bytebuf_reserve(&j->undo, n + sizeof(t))) {
        return false;
    }
    bytebuf_append(&j->undo, dst, n);
    bytebuf_append(&j->undo, &t, sizeof(t));
    memmove(dst, src, n);
    return true;
}

static bool jwrite_ptr(VMSJournal *j, void *slot, void *ptr)
{
    return jwrite(j, slot, &ptr, sizeof(ptr));
}

static bool jwrite_scalar(VMSJournal *j, VMStateKind k, void *dst,
                          uint64_t v)
{
    uint8_t tmp[8];
    vms_store_host(k, tmp, v);
    return jwrite(j, dst, tmp, vms_scalar_width(k));
}

static void *jalloc(VMSJournal *j, size_t count, size_t size)
{
    if (j->nalloc == j->capalloc) {
        size_t cap = j->capalloc ? j->capalloc * 2 : 16;
        void **p = realloc(j->allocated, cap * sizeof(*p));
        if (!p) {
            return NULL;
        }
        j->allocated = p;
        j->capalloc = cap;
    }
    void *mem = calloc(count, size);
    if (mem) {
        j->allocated[j->nalloc++] = mem;
    }
    return mem;
}

static bool jdisplace(VMSJournal *j, void *ptr, const VMStateField *f,
                      uint32_t count)
{
    if (j->ndisp == j->capdisp) {
        size_t cap = j->capdisp ? j->capdisp * 2 : 16;
        VMSDisplaced *p = realloc(j->displaced, cap * sizeof(*p));
        if (!p) {
            return false;
        }
        j->displaced = p;
        j->capdisp = cap;
    }
    j->displaced[j->ndisp++] = (VMSDisplaced) {
        .ptr = ptr, .vmsd = f->vmsd, .elem_size = f->size, .count = count,
    };
    return true;
}

static bool commit_node(VMSJournal *j, const VMSNode *node, uint8_t *base);

static bool commit_ptr_array(VMSJournal *j, const VMStateField *f,
                             const VMSValue *v, uint8_t *field)
{
    for (uint32_t i = 0; i < v->count; i++) {
        uint8_t *slot = field + (size_t)i * sizeof(void *);
        void *old;
        memcpy(&old, slot, sizeof(old));
        const VMSNode *e = v->elems[i];
        if (!e) {
            if (old && (!jdisplace(j, old, f, 1) ||
                        !jwrite_ptr(j, slot, NULL))) {
                return false;
            }
            continue;
        }
        if (old) {
            if (!commit_node(j, e, old)) {
                return false;
            }
            continue;
        }
        void *mem = jalloc(j, 1, f->size);
        if (!mem || !commit_node(j, e, mem) || !jwrite_ptr(j, slot, mem)) {
            return false;
        }
    }
    return true;
}

static bool commit_count(VMSJournal *j, const VMStateField *f,
                         uint8_t *base, uint32_t count)
{
    return jwrite_scalar(j, f->count_kind, base + f->count_offset, count);
}

static bool commit_alloc_array(VMSJournal *j, const VMStateField *f,
                               const VMSValue *v, uint8_t *base)
{
    uint8_t *slot = base + f->offset;
    void *old;
    memcpy(&old, slot, sizeof(old));
    uint64_t old_count = vms_load_host(f->count_kind, base + f->count_offset);
    uint8_t *mem = NULL;
    if (v->count) {
        mem = jalloc(j, v->count, f->size);
        if (!mem) {
            return false;
        }
    }
    for (uint32_t i = 0; i < v->count; i++) {
        if (!commit_node(j, v->elems[i], mem + (size_t)i * f->size)) {
            return false;
        }
    }
    if (old && !jdisplace(j, old, f, (uint32_t)old_count)) {
        return false;
    }
    return jwrite_ptr(j, slot, mem) && commit_count(j, f, base, v->count);
}

static bool commit_value(VMSJournal *j, const VMStateField *f,
                         const VMSValue *v, uint8_t *base)
{
    uint8_t *p = base + f->offset;
    if (vms_kind_is_scalar(f->kind)) {
        return jwrite_scalar(j, f->kind, p, v->scalar);
    }
    switch (f->kind) {
    case VMS_BUFFER:
        return jwrite(j, p, v->raw, f->size);
    case VMS_ARRAY:
        return jwrite(j, p, v->raw, (size_t)v->count * f->size);
    case VMS_VARRAY:
        return jwrite(j, p, v->raw, (size_t)v->count * f->size) &&
               commit_count(j, f, base, v->count);
    case VMS_STRUCT:
        return commit_node(j, v->elems[0], p);
    case VMS_STRUCT_ARRAY:
    case VMS_STRUCT_VARRAY:
        for (uint32_t i = 0; i < v->count; i++) {
            if (!commit_node(j, v->elems[i], p + (size_t)i * f->size)) {
                return false;
            }
        }
        return f->kind == VMS_STRUCT_ARRAY ||
               commit_count(j, f, base, v->count);
    case VMS_STRUCT_VARRAY_ALLOC:
        return commit_alloc_array(j, f, v, base);
    case VMS_STRUCT_PTR_ARRAY:
        return commit_ptr_array(j, f, v, p);
    default:
        return false;
    }
}

/* Fields absent from the stream and subsections not sent stay as they
 * are. Subsections describe the same object as their parent. */
static bool commit_node(VMSJournal *j, const VMSNode *node, uint8_t *base)
{
    for (size_t i = 0; i < node->nfields; i++) {
        if (node->vals[i].present &&
            !commit_value(j, &node->vmsd->fields[i], &node->vals[i], base)) {
            return false;
        }
    }
    for (size_t i = 0; i < node->nsubs; i++) {
        if (node->subs[i] && !commit_node(j, node->subs[i], base)) {
            return false;
        }
    }
    return true;
}

bool vms_commit(VMSJournal *j, const VMSDecoded *dec, Error **errp)
{
    for (size_t i = 0; i < dec->n; i++) {
        if (!commit_node(j, dec->items[i].node, dec->items[i].sec->opaque)) {
            vms_journal_undo(j);
            error_setg(errp, "out of memory loading section '%s'",
                       dec->items[i].sec->name);
            return false;
        }
    }
    return true;
}

static void journal_release(VMSJournal *j)
{
    bytebuf_free(&j->undo);
    free(j->allocated);
    free(j->displaced);
    vms_journal_init(j);
}

void vms_journal_undo(VMSJournal *j)
{
    size_t pos = j->undo.len;
    while (pos >= sizeof(UndoTrailer)) {
        UndoTrailer t;
        memcpy(&t, j->undo.data + pos - sizeof(t), sizeof(t));
        pos -= sizeof(t) + t.n;
        memcpy(t.dst, j->undo.data + pos, t.n);
    }
    for (size_t i = 0; i < j->nalloc; i++) {
        free(j->allocated[i]);
    }
    journal_release(j);
}

void vms_journal_finish(VMSJournal *j)
{
    for (size_t i = 0; i < j->ndisp; i++) {
        VMSDisplaced *d = &j->displaced[i];
        for (uint32_t e = 0; e < d->count; e++) {
            vmstate_free_owned(d->vmsd, (uint8_t *)d->ptr + e * d->elem_size);
        }
        free(d->ptr);
    }
    journal_release(j);
}

static void free_owned_field(const VMStateField *f, uint8_t *base)
{
    uint8_t *p = base + f->offset;
    void *ptr;
    switch (f->kind) {
    case VMS_STRUCT:
        vmstate_free_owned(f->vmsd, p);
        break;
    case VMS_STRUCT_ARRAY:
    case VMS_STRUCT_VARRAY: {
        /* Elements past the live count are not state: not touched. */
        uint64_t count = f->kind == VMS_STRUCT_ARRAY ? f->num :
            vms_load_host(f->count_kind, base + f->count_offset);
        for (uint64_t i = 0; i < count && i < f->num; i++) {
            vmstate_free_owned(f->vmsd, p + i * f->size);
        }
        break;
    }
    case VMS_STRUCT_VARRAY_ALLOC: {
        uint64_t count = vms_load_host(f->count_kind, base + f->count_offset);
        memcpy(&ptr, p, sizeof(ptr));
        for (uint64_t i = 0; ptr && i < count && i < f->num; i++) {
            vmstate_free_owned(f->vmsd, (uint8_t *)ptr + i * f->size);
        }
        free(ptr);
        break;
    }
    case VMS_STRUCT_PTR_ARRAY:
        for (uint32_t i = 0; i < f->num; i++) {
            memcpy(&ptr, p + (size_t)i * sizeof(void *), sizeof(ptr));
            if (ptr) {
                vmstate_free_owned(f->vmsd, ptr);
                free(ptr);
            }
        }
        break;
    default:
        break;
    }
}

void vmstate_free_owned(const VMStateDescription *vmsd, void *obj)
{
    for (const VMStateField *f = vmsd->fields; f->name; f++) {
        free_owned_field(f, obj);
    }
}
