/* Saving: runs the pre_save hooks, then writes every section in the wire
 * format of docs/device-state-format.md. */
#include "vmstate/vmstate-int.h"

#include <stdlib.h>
#include <string.h>

static bool save_fields(const VMStateDescription *vmsd, int version,
                        const uint8_t *base, ByteBuf *out, Error **errp);

static void put_name(ByteBuf *out, const char *name)
{
    size_t len = strlen(name);
    bytebuf_put_u8(out, (uint8_t)len);
    bytebuf_append(out, name, len);
}

static void put_scalar(ByteBuf *out, VMStateKind k, const void *p)
{
    uint64_t v = vms_load_host(k, p);
    switch (vms_scalar_width(k)) {
    case 1: bytebuf_put_u8(out, (uint8_t)v); break;
    case 2: bytebuf_put_be16(out, (uint16_t)v); break;
    case 4: bytebuf_put_be32(out, (uint32_t)v); break;
    default: bytebuf_put_be64(out, v); break;
    }
}

/* Saving refuses state that the loader would refuse, so a bad device
 * state is caught on the source with its name. */
static bool get_count(const VMStateField *f, const uint8_t *base,
                      uint32_t *count, Error **errp)
{
    uint64_t c = vms_load_host(f->count_kind, base + f->count_offset);
    if (c > f->num) {
        error_setg(errp, "field '%s': count %llu above its bound %u",
                   f->name, (unsigned long long)c, f->num);
        return false;
    }
    *count = (uint32_t)c;
    return true;
}

static bool save_structs(const VMStateField *f, int version,
                         const uint8_t *elems, uint32_t count, ByteBuf *out,
                         Error **errp)
{
    bytebuf_put_be32(out, count);
    for (uint32_t i = 0; i < count; i++) {
        if (!save_fields(f->vmsd, version, elems + (size_t)i * f->size, out,
                         errp)) {
            error_prepend(errp, "%s[%u].", f->name, i);
            return false;
        }
    }
    return true;
}

static bool save_ptr_array(const VMStateField *f, int version,
                           const uint8_t *field, ByteBuf *out, Error **errp)
{
    bytebuf_put_be32(out, f->num);
    for (uint32_t i = 0; i < f->num; i++) {
        const uint8_t *entry;
        memcpy(&entry, field + i * sizeof(void *), sizeof(entry));
        /* Entry marker: 0 = NULL, 1 = a struct follows. */
        bytebuf_put_u8(out, entry != NULL);
        if (entry && !save_fields(f->vmsd, version, entry, out, errp)) {
            error_prepend(errp, "%s[%u].", f->name, i);
            return false;
        }
    }
    return true;
}

static bool save_field(const VMStateField *f, int version,
                       const uint8_t *base, ByteBuf *out, Error **errp)
{
    const uint8_t *p = base + f->offset;
    uint32_t count = f->num;
    const uint8_t *heap;

    if (vms_kind_is_scalar(f->kind)) {
        put_scalar(out, f->kind, p);
        return true;
    }
    switch (f->kind) {
    case VMS_BUFFER:
        bytebuf_put_be32(out, (uint32_t)f->size);
        bytebuf_append(out, p, f->size);
        return true;
    case VMS_VARRAY:
        if (!get_count(f, base, &count, errp)) {
            return false;
        }
        /* fall through */
    case VMS_ARRAY:
        bytebuf_put_be32(out, count);
        for (uint32_t i = 0; i < count; i++) {
            put_scalar(out, f->elem_kind, p + (size_t)i * f->size);
        }
        return true;
    case VMS_STRUCT:
        if (!save_fields(f->vmsd, version, p, out, errp)) {
            error_prepend(errp, "%s.", f->name);
            return false;
        }
        return true;
    case VMS_STRUCT_VARRAY:
        if (!get_count(f, base, &count, errp)) {
            return false;
        }
        /* fall through */
    case VMS_STRUCT_ARRAY:
        return save_structs(f, version, p, count, out, errp);
    case VMS_STRUCT_VARRAY_ALLOC:
        memcpy(&heap, p, sizeof(heap));
        if (!get_count(f, base, &count, errp)) {
            return false;
        }
        if (count && !heap) {
            error_setg(errp, "field '%s': count %u but no array", f->name,
                       count);
            return false;
        }
        return save_structs(f, version, heap, count, out, errp);
    case VMS_STRUCT_PTR_ARRAY:
        return save_ptr_array(f, version, p, out, errp);
    default:
        error_setg(errp, "field '%s': unknown kind %d", f->name, f->kind);
        return false;
    }
}

/* Fields newer than the version written are left out (since-version). */
static bool save_fields(const VMStateDescription *vmsd, int version,
                        const uint8_t *base, ByteBuf *out, Error **errp)
{
    for (const VMStateField *f = vmsd->fields; f->name; f++) {
        if (f->version_id > version) {
            continue;
        }
        if (!save_field(f, version, base, out, errp)) {
            return false;
        }
    }
    return true;
}

static bool sub_needed(const VMStateDescription *sub, void *opaque)
{
    return !sub->needed || sub->needed(opaque);
}

/* Writes a u32 length placeholder; returns where the payload starts. */
static size_t begin_length(ByteBuf *out)
{
    bytebuf_put_be32(out, 0);
    return out->len;
}

static void end_length(ByteBuf *out, size_t start)
{
    if (!out->failed) {
        st_be32(out->data + start - 4, (uint32_t)(out->len - start));
    }
}

static bool save_payload(const VMStateDescription *vmsd, void *opaque,
                         ByteBuf *out, Error **errp)
{
    if (!save_fields(vmsd, vmsd->version_id, opaque, out, errp)) {
        return false;
    }
    for (size_t i = 0; vmsd->subsections && vmsd->subsections[i]; i++) {
        const VMStateDescription *sub = vmsd->subsections[i];
        if (!sub_needed(sub, opaque)) {
            continue;
        }
        bytebuf_put_u8(out, VMS_TAG_SUBSECTION);
        put_name(out, sub->name);
        bytebuf_put_be32(out, (uint32_t)sub->version_id);
        size_t start = begin_length(out);
        if (!save_payload(sub, opaque, out, errp)) {
            error_prepend(errp, "subsection '%s': ", sub->name);
            return false;
        }
        end_length(out, start);
    }
    return true;
}

/* pre_save of the section, then of each subsection that will be sent. */
static bool run_pre_save(const VMStateDescription *vmsd, void *opaque,
                         Error **errp)
{
    if (vmsd->pre_save && !vmsd->pre_save(opaque, errp)) {
        error_prepend(errp, "pre_save of '%s' refused: ", vmsd->name);
        return false;
    }
    for (size_t i = 0; vmsd->subsections && vmsd->subsections[i]; i++) {
        const VMStateDescription *sub = vmsd->subsections[i];
        if (sub_needed(sub, opaque) && !run_pre_save(sub, opaque, errp)) {
            return false;
        }
    }
    return true;
}

static bool check_sections(const VMStateSection *secs, size_t n,
                           Error **errp)
{
    for (size_t i = 0; i < n; i++) {
        if (!secs[i].name || !vms_name_ok(secs[i].name, strlen(secs[i].name))
            || !secs[i].vmsd) {
            error_setg(errp, "section %zu: bad name or no description", i);
            return false;
        }
        if (!vms_check_vmsd(secs[i].vmsd, 0, errp)) {
            error_prepend(errp, "section '%s': ", secs[i].name);
            return false;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(secs[i].name, secs[j].name) == 0 &&
                secs[i].instance_id == secs[j].instance_id) {
                error_setg(errp, "section '%s' listed twice", secs[i].name);
                return false;
            }
        }
    }
    return true;
}

static bool save_section(const VMStateSection *s, ByteBuf *out, Error **errp)
{
    bytebuf_put_u8(out, VMS_TAG_SECTION);
    put_name(out, s->name);
    bytebuf_put_be32(out, s->instance_id);
    bytebuf_put_be32(out, (uint32_t)s->vmsd->version_id);
    size_t start = begin_length(out);
    if (!save_payload(s->vmsd, s->opaque, out, errp)) {
        error_prepend(errp, "section '%s': ", s->name);
        return false;
    }
    end_length(out, start);
    return true;
}

static bool append_description(const VMStateSection *secs, size_t n,
                               ByteBuf *out, Error **errp)
{
    char *json = vmstate_describe_json(secs, n);
    if (!json) {
        error_setg(errp, "out of memory describing the state");
        return false;
    }
    size_t len = strlen(json);
    size_t start = out->len;
    bytebuf_put_u8(out, VMS_TAG_DESCRIPTION);
    bytebuf_put_be32(out, (uint32_t)len);
    bytebuf_append(out, json, len);
    free(json);
    if (!out->failed) {
        bytebuf_put_be32(out, vmstate_crc32c(0, out->data + start,
                                             out->len - start));
    }
    return true;
}

bool vmstate_save_stream(const VMStateSection *secs, size_t n,
                         bool with_description, ByteBuf *out, Error **errp)
{
    size_t start = out->len;
    if (!check_sections(secs, n, errp)) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!run_pre_save(secs[i].vmsd, secs[i].opaque, errp)) {
            error_prepend(errp, "section '%s': ", secs[i].name);
            return false;
        }
    }
    bytebuf_append(out, VMS_MAGIC, VMS_MAGIC_LEN);
    bytebuf_put_be32(out, VMSTATE_FORMAT_VERSION);
    for (size_t i = 0; i < n; i++) {
        if (!save_section(&secs[i], out, errp)) {
            out->len = start;
            return false;
        }
    }
    bytebuf_put_u8(out, VMS_TAG_END);
    if (!out->failed) {
        bytebuf_put_be32(out, vmstate_crc32c(0, out->data + start,
                                             out->len - start));
    }
    if (with_description && !append_description(secs, n, out, errp)) {
        out->len = start;
        return false;
    }
    if (out->failed) {
        out->len = start;
        error_setg(errp, "out of memory saving the device state");
        return false;
    }
    return true;
}
