/*
 * Decoding a stream into the value tree (the loader's scratch space).
 * Every count is checked against the description and against the bytes
 * left before anything is allocated; the destination is never touched.
 */
#include "vmstate/vmstate-int.h"

#include <stdlib.h>
#include <string.h>

static bool decode_fields(VMSReader *r, const VMStateDescription *vmsd,
                          int version, VMSNode *node);

void vms_node_free(VMSNode *node)
{
    if (!node) {
        return;
    }
    for (size_t i = 0; i < node->nfields; i++) {
        VMSValue *v = &node->vals[i];
        free(v->raw);
        if (v->elems) {
            for (uint32_t e = 0; e < v->count; e++) {
                vms_node_free(v->elems[e]);
            }
            free(v->elems);
        }
    }
    for (size_t i = 0; i < node->nsubs; i++) {
        vms_node_free(node->subs[i]);
    }
    free(node->vals);
    free(node->subs);
    free(node);
}

void vms_decoded_free(VMSDecoded *dec)
{
    for (size_t i = 0; i < dec->n; i++) {
        vms_node_free(dec->items[i].node);
    }
    free(dec->items);
    dec->items = NULL;
    dec->n = 0;
}

static VMSNode *node_new(VMSReader *r, const VMStateDescription *vmsd,
                         int version)
{
    if (++r->nodes > VMS_MAX_NODES) {
        vms_fail(r, VMSTATE_E_COUNT_TOO_LARGE,
                 "more than %u structs in one stream", VMS_MAX_NODES);
        return NULL;
    }
    VMSNode *node = calloc(1, sizeof(*node));
    if (node) {
        node->vmsd = vmsd;
        node->version = version;
        node->nfields = vms_nfields(vmsd);
        node->nsubs = vms_nsubs(vmsd);
        node->vals = calloc(node->nfields + 1, sizeof(*node->vals));
        node->subs = calloc(node->nsubs + 1, sizeof(*node->subs));
    }
    if (!node || !node->vals || !node->subs) {
        vms_node_free(node);
        vms_fail(r, VMSTATE_E_NO_MEMORY, "out of memory");
        return NULL;
    }
    return node;
}

static bool read_scalar(VMSReader *r, VMStateKind k, uint64_t *v)
{
    uint8_t b[8];
    size_t w = vms_scalar_width(k);
    if (!vms_read(r, b, w)) {
        return false;
    }
    switch (w) {
    case 1: *v = b[0]; break;
    case 2: *v = ld_be16(b); break;
    case 4: *v = ld_be32(b); break;
    default: *v = ld_be64(b); break;
    }
    if (k == VMS_BOOL && *v > 1) {
        return vms_fail(r, VMSTATE_E_BAD_BOOL, "bool byte is %llu",
                        (unsigned long long)*v);
    }
    return true;
}

/*
 * The u32 count in front of every non-scalar field. Fixed kinds must match
 * the description exactly; variable ones are bounded by their capacity.
 * min_bytes (per element, on the wire) lets the count be checked against
 * what is left before anything is allocated.
 */
static bool read_count(VMSReader *r, const VMStateField *f, bool fixed,
                       uint32_t bound, size_t min_bytes, uint32_t *count)
{
    if (!vms_read_u32(r, count)) {
        return false;
    }
    if (fixed && *count != bound) {
        return vms_fail(r, VMSTATE_E_COUNT_MISMATCH,
                        "%u elements, the description has %u", *count, bound);
    }
    if (*count > bound) {
        return vms_fail(r, VMSTATE_E_COUNT_TOO_LARGE,
                        "count %u above its bound %u", *count, bound);
    }
    if (min_bytes && *count > (r->limit - r->pos) / min_bytes) {
        return vms_fail(r, r->short_code,
                        "%u elements cannot fit in the %zu bytes left",
                        *count, r->limit - r->pos);
    }
    return true;
}

static bool decode_scalars(VMSReader *r, const VMStateField *f, bool fixed,
                           VMSValue *v)
{
    size_t w = vms_scalar_width(f->elem_kind);
    if (!read_count(r, f, fixed, f->num, w, &v->count)) {
        return false;
    }
    v->raw = malloc((size_t)v->count * w + 1);
    if (!v->raw) {
        return vms_fail(r, VMSTATE_E_NO_MEMORY, "out of memory");
    }
    for (uint32_t i = 0; i < v->count; i++) {
        uint64_t x;
        size_t mark = vms_path_push(r, "[%u]", i);
        if (!read_scalar(r, f->elem_kind, &x)) {
            return false;
        }
        vms_path_pop(r, mark);
        vms_store_host(f->elem_kind, v->raw + (size_t)i * w, x);
    }
    return true;
}

static bool decode_buffer(VMSReader *r, const VMStateField *f, VMSValue *v)
{
    if (f->size > UINT32_MAX) {
        return vms_fail(r, VMSTATE_E_BAD_VMSD, "buffer too large");
    }
    if (!read_count(r, f, true, (uint32_t)f->size, 1, &v->count)) {
        return false;
    }
    v->raw = malloc(f->size + 1);
    if (!v->raw) {
        return vms_fail(r, VMSTATE_E_NO_MEMORY, "out of memory");
    }
    return vms_read(r, v->raw, f->size);
}

static bool decode_struct(VMSReader *r, const VMStateField *f, int version,
                          VMSNode **out)
{
    *out = node_new(r, f->vmsd, version);
    return *out && decode_fields(r, f->vmsd, version, *out);
}

/* Struct arrays of every kind; ptr: entries carry a 0/1 NULL marker. */
static bool decode_structs(VMSReader *r, const VMStateField *f, int version,
                           bool fixed, bool ptr, VMSValue *v)
{
    if (!read_count(r, f, fixed, f->num, ptr ? 1 : 0, &v->count)) {
        return false;
    }
    /* Structs may take no bytes at all (every field newer than the
     * stream): bound the count by the node budget before allocating. */
    if (v->count > VMS_MAX_NODES - r->nodes) {
        return vms_fail(r, VMSTATE_E_COUNT_TOO_LARGE,
                        "%u structs exceed the limit of %u per stream",
                        v->count, VMS_MAX_NODES);
    }
    v->elems = calloc((size_t)v->count + 1, sizeof(*v->elems));
    if (!v->elems) {
        return vms_fail(r, VMSTATE_E_NO_MEMORY, "out of memory");
    }
    for (uint32_t i = 0; i < v->count; i++) {
        size_t mark = vms_path_push(r, "[%u]", i);
        uint8_t marker = 1;
        if (ptr && !vms_read_u8(r, &marker)) {
            return false;
        }
        if (marker > 1) {
            return vms_fail(r, VMSTATE_E_BAD_PTR_MARKER,
                            "entry marker is %u, not 0 (NULL) or 1", marker);
        }
        if (marker && !decode_struct(r, f, version, &v->elems[i])) {
            return false;
        }
        vms_path_pop(r, mark);
    }
    return true;
}

static bool decode_field(VMSReader *r, const VMStateField *f, int version,
                         VMSValue *v)
{
    v->present = true;
    if (vms_kind_is_scalar(f->kind)) {
        if (!read_scalar(r, f->kind, &v->scalar)) {
            return false;
        }
        if (f->max && v->scalar > f->max) {
            return vms_fail(r, VMSTATE_E_OUT_OF_RANGE,
                            "value %llu is above its maximum %llu",
                            (unsigned long long)v->scalar,
                            (unsigned long long)f->max);
        }
        return true;
    }
    switch (f->kind) {
    case VMS_BUFFER:
        return decode_buffer(r, f, v);
    case VMS_ARRAY:
    case VMS_VARRAY:
        return decode_scalars(r, f, f->kind == VMS_ARRAY, v);
    case VMS_STRUCT:
        v->count = 1;
        v->elems = calloc(2, sizeof(*v->elems));
        if (!v->elems) {
            return vms_fail(r, VMSTATE_E_NO_MEMORY, "out of memory");
        }
        return decode_struct(r, f, version, &v->elems[0]);
    case VMS_STRUCT_ARRAY:
    case VMS_STRUCT_VARRAY:
    case VMS_STRUCT_VARRAY_ALLOC:
        return decode_structs(r, f, version, f->kind == VMS_STRUCT_ARRAY,
                              false, v);
    case VMS_STRUCT_PTR_ARRAY:
        return decode_structs(r, f, version, true, true, v);
    default:
        return vms_fail(r, VMSTATE_E_BAD_VMSD, "unknown field kind %d",
                        f->kind);
    }
}

/* A field newer than the stream's version is absent: left unchanged. */
static bool decode_fields(VMSReader *r, const VMStateDescription *vmsd,
                          int version, VMSNode *node)
{
    for (size_t i = 0; i < node->nfields; i++) {
        const VMStateField *f = &vmsd->fields[i];
        if (f->version_id > version) {
            continue;
        }
        bool first = !r->pathlen || r->path[r->pathlen - 1] == '/';
        size_t mark = vms_path_push(r, first ? "%s" : ".%s", f->name);
        if (!decode_field(r, f, version, &node->vals[i])) {
            return false;
        }
        vms_path_pop(r, mark);
    }
    return true;
}

static bool check_version(VMSReader *r, const VMStateDescription *vmsd,
                          uint32_t version, const char *what)
{
    if (version > (uint32_t)vmsd->version_id) {
        return vms_fail(r, VMSTATE_E_VERSION_TOO_NEW,
                        "%s '%s' version %u is newer than %d", what,
                        vmsd->name, version, vmsd->version_id);
    }
    if (version < (uint32_t)vmsd->minimum_version_id) {
        return vms_fail(r, VMSTATE_E_VERSION_TOO_OLD,
                        "%s '%s' version %u is older than the minimum %d",
                        what, vmsd->name, version, vmsd->minimum_version_id);
    }
    return true;
}

static bool decode_payload(VMSReader *r, const VMStateDescription *vmsd,
                           VMSNode *node);

static bool decode_subsection(VMSReader *r, const VMStateDescription *vmsd,
                              VMSNode *node)
{
    VMSSectionHeader h;
    size_t i;
    if (!vms_read_name(r, h.name) || !vms_read_u32(r, &h.version) ||
        !vms_read_u32(r, &h.length)) {
        return false;
    }
    for (i = 0; i < node->nsubs; i++) {
        if (strcmp(vmsd->subsections[i]->name, h.name) == 0) {
            break;
        }
    }
    /* A subsection is sent only when the destination must understand it. */
    if (i == node->nsubs) {
        return vms_fail(r, VMSTATE_E_UNKNOWN_SUBSECTION,
                        "unknown subsection '%s'", h.name);
    }
    if (node->subs[i]) {
        return vms_fail(r, VMSTATE_E_DUPLICATE_SUBSECTION,
                        "subsection '%s' sent twice", h.name);
    }
    const VMStateDescription *sub = vmsd->subsections[i];
    if (h.length > r->limit - r->pos) {
        return vms_fail(r, VMSTATE_E_SECTION_LENGTH,
                        "subsection '%s' of %u bytes runs past its section",
                        h.name, h.length);
    }
    if (!check_version(r, sub, h.version, "subsection")) {
        return false;
    }
    node->subs[i] = node_new(r, sub, (int)h.version);
    if (!node->subs[i]) {
        return false;
    }
    size_t outer = r->limit;
    size_t mark = vms_path_push(r, "%s/", sub->name);
    r->limit = r->pos + h.length;
    if (!decode_payload(r, sub, node->subs[i])) {
        return false;
    }
    vms_path_pop(r, mark);
    r->limit = outer;
    return true;
}

/* Fields, then subsections until the payload's length is used up. */
static bool decode_payload(VMSReader *r, const VMStateDescription *vmsd,
                           VMSNode *node)
{
    VMStateErr outer_short = r->short_code;
    r->short_code = VMSTATE_E_SECTION_LENGTH;
    bool ok = decode_fields(r, vmsd, node->version, node);
    while (ok && r->pos < r->limit) {
        uint8_t tag;
        ok = vms_read_u8(r, &tag);
        if (ok && tag != VMS_TAG_SUBSECTION) {
            ok = vms_fail(r, VMSTATE_E_SECTION_LENGTH,
                          "%zu bytes left after the fields of '%s'",
                          r->limit - r->pos + 1, vmsd->name);
        }
        ok = ok && decode_subsection(r, vmsd, node);
    }
    r->short_code = outer_short;
    return ok;
}

static const VMStateSection *find_section(const VMStateSection *secs,
                                          size_t n, const VMSSectionHeader *h,
                                          size_t *idx)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(secs[i].name, h->name) == 0 &&
            secs[i].instance_id == h->instance_id) {
            *idx = i;
            return &secs[i];
        }
    }
    return NULL;
}

static bool decode_section(VMSReader *r, const VMStateSection *secs,
                           size_t n, bool *seen, VMSDecoded *out)
{
    VMSSectionHeader h;
    size_t idx;
    if (!vms_read_section_header(r, &h)) {
        return false;
    }
    const VMStateSection *sec = find_section(secs, n, &h, &idx);
    if (!sec) {
        return vms_fail(r, VMSTATE_E_UNKNOWN_SECTION,
                        "no section '%s' instance %u here", h.name,
                        h.instance_id);
    }
    r->section = sec->name;
    if (seen[idx]) {
        return vms_fail(r, VMSTATE_E_DUPLICATE_SECTION, "sent twice");
    }
    seen[idx] = true;
    if (!check_version(r, sec->vmsd, h.version, "section")) {
        return false;
    }
    VMSItem *item = &out->items[out->n];
    item->sec = sec;
    item->node = node_new(r, sec->vmsd, (int)h.version);
    if (!item->node) {
        return false;
    }
    out->n++;
    r->limit = r->pos + h.length;
    if (!decode_payload(r, sec->vmsd, item->node)) {
        return false;
    }
    r->section = NULL;
    return true;
}

static bool check_all_seen(VMSReader *r, const VMStateSection *secs,
                           size_t n, const bool *seen)
{
    for (size_t i = 0; i < n; i++) {
        if (!seen[i]) {
            return vms_fail(r, VMSTATE_E_MISSING_SECTION,
                            "section '%s' instance %u is not in the stream",
                            secs[i].name, secs[i].instance_id);
        }
    }
    return true;
}

static bool decode_sections(VMSReader *r, size_t len,
                            const VMStateSection *secs, size_t n,
                            bool *seen, VMSDecoded *out)
{
    for (;;) {
        uint8_t tag;
        if (r->pos == len) {
            return vms_fail(r, VMSTATE_E_NO_END, "no end-of-stream marker");
        }
        if (!vms_read_u8(r, &tag)) {
            return false;
        }
        if (tag == VMS_TAG_END) {
            return vms_read_end(r);
        }
        if (tag != VMS_TAG_SECTION) {
            return vms_fail(r, VMSTATE_E_BAD_TAG, "unknown item tag 0x%02x",
                            tag);
        }
        /* items has room for n + 1: a section beyond n is unknown or
         * sent twice, and decode_section refuses it before storing it. */
        size_t end_mark = r->limit;
        bool ok = decode_section(r, secs, n, seen, out);
        r->limit = end_mark;
        if (!ok) {
            return false;
        }
    }
}

bool vms_decode_stream(VMSReader *r, size_t len, const VMStateSection *secs,
                       size_t n, bool require_all, VMSDecoded *out)
{
    memset(out, 0, sizeof(*out));
    out->items = calloc(n + 1, sizeof(*out->items));
    bool *seen = calloc(n + 1, sizeof(*seen));
    if (!out->items || !seen) {
        free(seen);
        return vms_fail(r, VMSTATE_E_NO_MEMORY, "out of memory");
    }
    bool ok = vms_read_stream_header(r) &&
              decode_sections(r, len, secs, n, seen, out) &&
              (!require_all || check_all_seen(r, secs, n, seen));
    free(seen);
    if (!ok) {
        vms_decoded_free(out);
    }
    return ok;
}
