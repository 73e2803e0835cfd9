/* The bounded stream reader and the framing items of a stream: header,
 * section headers, end marker and the trailing description. Nothing read
 * here is trusted until checked. */
#include "vmstate/vmstate-int.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util/log.h"

void vms_reader_init(VMSReader *r, const uint8_t *data, size_t len,
                     Error **errp)
{
    memset(r, 0, sizeof(*r));
    r->data = data;
    r->limit = len;
    r->short_code = VMSTATE_E_TRUNCATED;
    r->errp = errp;
}

bool vms_fail(VMSReader *r, VMStateErr code, const char *fmt, ...)
{
    if (r->err != VMSTATE_OK) {
        return false;           /* keep the first, most precise reason */
    }
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    r->err = code;
    if (r->section && r->pathlen) {
        error_setg(r->errp, "section '%s' field '%s': %s (at byte %zu)",
                   r->section, r->path, msg, r->pos);
    } else if (r->section) {
        error_setg(r->errp, "section '%s': %s (at byte %zu)", r->section,
                   msg, r->pos);
    } else {
        error_setg(r->errp, "%s (at byte %zu)", msg, r->pos);
    }
    return false;
}

bool vms_read(VMSReader *r, void *out, size_t n)
{
    if (n > r->limit - r->pos) {
        return vms_fail(r, r->short_code,
                        r->short_code == VMSTATE_E_TRUNCATED ?
                        "stream truncated: %zu bytes needed, %zu left" :
                        "payload too short: %zu bytes needed, %zu left",
                        n, r->limit - r->pos);
    }
    memcpy(out, r->data + r->pos, n);
    r->pos += n;
    return true;
}

bool vms_read_u8(VMSReader *r, uint8_t *v)
{
    return vms_read(r, v, 1);
}

bool vms_read_u32(VMSReader *r, uint32_t *v)
{
    uint8_t b[4];
    if (!vms_read(r, b, 4)) {
        return false;
    }
    *v = ld_be32(b);
    return true;
}

bool vms_read_name(VMSReader *r, char *buf)
{
    uint8_t len = 0;
    if (!vms_read_u8(r, &len) || !vms_read(r, buf, len)) {
        return false;
    }
    buf[len] = '\0';
    if (!vms_name_ok(buf, len)) {
        return vms_fail(r, VMSTATE_E_BAD_NAME,
                        "name of %u bytes is empty or not printable", len);
    }
    return true;
}

size_t vms_path_push(VMSReader *r, const char *fmt, ...)
{
    size_t old = r->pathlen;
    if (old < sizeof(r->path) - 1) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(r->path + old, sizeof(r->path) - old, fmt, ap);
        va_end(ap);
        if (n > 0) {
            r->pathlen = old + (size_t)n < sizeof(r->path) - 1 ?
                         old + (size_t)n : sizeof(r->path) - 1;
        }
    }
    return old;
}

void vms_path_pop(VMSReader *r, size_t len)
{
    r->pathlen = len;
    r->path[len] = '\0';
}

bool vms_read_stream_header(VMSReader *r)
{
    uint8_t magic[VMS_MAGIC_LEN];
    const size_t header_len = VMS_MAGIC_LEN + 4;
    size_t avail = r->limit - r->pos;
    size_t cmp = avail < VMS_MAGIC_LEN ? avail : VMS_MAGIC_LEN;
    /* An empty stream may have no buffer at all (data NULL). */
    if (avail == 0) {
        return vms_fail(r, VMSTATE_E_TRUNCATED,
                        "empty: no device-state stream header");
    }
    /* A short stream whose bytes match the magic so far is a truncation;
     * anything else is not a stream of ours at all. */
    if (memcmp(r->data + r->pos, VMS_MAGIC, cmp) != 0) {
        return vms_fail(r, VMSTATE_E_BAD_MAGIC, "not a device-state stream");
    }
    if (avail < header_len) {
        return vms_fail(r, VMSTATE_E_TRUNCATED,
                        "stream header truncated: %zu of %zu bytes", avail,
                        header_len);
    }
    uint32_t fmt;
    if (!vms_read(r, magic, VMS_MAGIC_LEN) || !vms_read_u32(r, &fmt)) {
        return false;
    }
    if (fmt != VMSTATE_FORMAT_VERSION) {
        return vms_fail(r, VMSTATE_E_FORMAT_VERSION,
                        "stream format version %u, this build reads %u",
                        fmt, VMSTATE_FORMAT_VERSION);
    }
    return true;
}

bool vms_read_section_header(VMSReader *r, VMSSectionHeader *h)
{
    if (!vms_read_name(r, h->name) || !vms_read_u32(r, &h->instance_id) ||
        !vms_read_u32(r, &h->version) || !vms_read_u32(r, &h->length)) {
        return false;
    }
    if (h->length > r->limit - r->pos) {
        return vms_fail(r, r->short_code,
                        "%s '%s' of %u bytes runs past the %s (%zu left)",
                        r->short_code == VMSTATE_E_TRUNCATED ?
                        "section" : "subsection", h->name, h->length,
                        r->short_code == VMSTATE_E_TRUNCATED ?
                        "stream" : "section", r->limit - r->pos);
    }
    return true;
}

bool vms_read_end(VMSReader *r)
{
    size_t covered = r->pos;    /* everything up to and with the end tag */
    uint32_t want;
    if (!vms_read_u32(r, &want)) {
        return false;
    }
    uint32_t got = vmstate_crc32c(0, r->data, covered);
    if (got != want) {
        return vms_fail(r, VMSTATE_E_CHECKSUM,
                        "check value %08x, stream says %08x", got, want);
    }
    return true;
}

static bool parse_description(VMSReader *r, const char *text, uint32_t len,
                              json_object **desc)
{
    json_tokener *tok = json_tokener_new_ex(VMS_DESCRIPTION_JSON_DEPTH);
    if (!tok) {
        return vms_fail(r, VMSTATE_E_NO_MEMORY, "out of memory");
    }
    json_object *obj = json_tokener_parse_ex(tok, text, (int)len);
    bool complete = json_tokener_get_error(tok) == json_tokener_success &&
                    json_tokener_get_parse_end(tok) == len;
    json_tokener_free(tok);
    if (!obj || !complete || !json_object_is_type(obj, json_type_object) ||
        memchr(text, '\0', len)) {
        json_object_put(obj);
        return vms_fail(r, VMSTATE_E_BAD_DESCRIPTION,
                        "description is not one JSON object");
    }
    if (desc) {
        *desc = obj;
    } else {
        json_object_put(obj);
    }
    return true;
}

bool vms_read_tail(VMSReader *r, size_t len, json_object **desc)
{
    uint8_t tag = 0;
    uint32_t dlen = 0, want = 0;
    if (desc) {
        *desc = NULL;
    }
    if (r->pos == len) {
        return true;
    }
    size_t start = r->pos;
    if (!vms_read_u8(r, &tag)) {
        return false;
    }
    if (tag != VMS_TAG_DESCRIPTION) {
        return vms_fail(r, VMSTATE_E_TRAILING_DATA,
                        "%zu bytes after the end marker", len - start);
    }
    if (!vms_read_u32(r, &dlen)) {
        return false;
    }
    if (dlen > VMS_MAX_DESC_BYTES || dlen > r->limit - r->pos) {
        return vms_fail(r, dlen > VMS_MAX_DESC_BYTES ?
                        VMSTATE_E_BAD_DESCRIPTION : VMSTATE_E_TRUNCATED,
                        "description of %u bytes, %zu left", dlen,
                        r->limit - r->pos);
    }
    const char *text = (const char *)r->data + r->pos;
    r->pos += dlen;
    size_t covered = r->pos - start;
    if (!vms_read_u32(r, &want)) {
        return false;
    }
    if (vmstate_crc32c(0, r->data + start, covered) != want) {
        return vms_fail(r, VMSTATE_E_CHECKSUM,
                        "description check value mismatch");
    }
    if (r->pos != len) {
        return vms_fail(r, VMSTATE_E_TRAILING_DATA,
                        "%zu bytes after the description", len - r->pos);
    }
    return parse_description(r, text, dlen, desc);
}
