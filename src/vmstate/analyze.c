/*
 * vmstate_stream_to_json: prints a stream for a person, using only the
 * description the stream carries. The stream is read by the same checked
 * decoder as a load, against tables rebuilt from that description.
 */
#include "vmstate/vmstate-int.h"
#include "vmstate/synth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_object *node_to_json(const VMSNode *node);

static json_object *scalar_to_json(VMStateKind k, uint64_t v)
{
    switch (k) {
    case VMS_BOOL:
        return json_object_new_boolean(v != 0);
    case VMS_I8: return json_object_new_int64((int8_t)v);
    case VMS_I16: return json_object_new_int64((int16_t)v);
    case VMS_I32: return json_object_new_int64((int32_t)v);
    case VMS_I64: return json_object_new_int64((int64_t)v);
    default:
        return json_object_new_uint64(v);
    }
}

static json_object *hex_to_json(const uint8_t *p, size_t n)
{
    char *hex = malloc(n * 2 + 1);
    if (!hex) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        snprintf(hex + i * 2, 3, "%02x", p[i]);
    }
    hex[n * 2] = '\0';
    json_object *o = json_object_new_string(hex);
    free(hex);
    return o;
}

static json_object *value_to_json(const VMStateField *f, const VMSValue *v)
{
    if (vms_kind_is_scalar(f->kind)) {
        return scalar_to_json(f->kind, v->scalar);
    }
    if (f->kind == VMS_BUFFER) {
        return hex_to_json(v->raw, v->count);
    }
    if (f->kind == VMS_STRUCT) {
        return node_to_json(v->elems[0]);
    }
    json_object *arr = json_object_new_array();
    for (uint32_t i = 0; i < v->count; i++) {
        json_object *e;
        if (v->raw) {
            e = scalar_to_json(f->elem_kind,
                vms_load_host(f->elem_kind, v->raw + (size_t)i * f->size));
        } else {
            /* NULL pointer-array entries print as null. */
            e = v->elems[i] ? node_to_json(v->elems[i]) : NULL;
        }
        json_object_array_add(arr, e);
    }
    return arr;
}

/* Fields absent from the stream (newer than its version) are omitted. */
static json_object *node_to_json(const VMSNode *node)
{
    json_object *o = json_object_new_object();
    for (size_t i = 0; i < node->nfields; i++) {
        if (node->vals[i].present) {
            const VMStateField *f = &node->vmsd->fields[i];
            json_object_object_add(o, f->name,
                                   value_to_json(f, &node->vals[i]));
        }
    }
    return o;
}

static json_object *subsections_to_json(const VMSNode *node);

static json_object *part_to_json(const VMSNode *node)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "name",
                           json_object_new_string(node->vmsd->name));
    json_object_object_add(o, "version", json_object_new_int(node->version));
    json_object_object_add(o, "fields", node_to_json(node));
    json_object *subs = subsections_to_json(node);
    if (subs) {
        json_object_object_add(o, "subsections", subs);
    }
    return o;
}

static json_object *subsections_to_json(const VMSNode *node)
{
    json_object *arr = NULL;
    for (size_t i = 0; i < node->nsubs; i++) {
        if (node->subs[i]) {
            if (!arr) {
                arr = json_object_new_array();
            }
            json_object_array_add(arr, part_to_json(node->subs[i]));
        }
    }
    return arr;
}

static json_object *decoded_to_json(const VMSDecoded *dec)
{
    json_object *root = json_object_new_object();
    json_object *arr = json_object_new_array();
    json_object_object_add(root, "format_version",
                           json_object_new_int(VMSTATE_FORMAT_VERSION));
    for (size_t i = 0; i < dec->n; i++) {
        const VMSItem *it = &dec->items[i];
        json_object *s = part_to_json(it->node);
        /* Section name and instance first: what a person looks for. */
        json_object *o = json_object_new_object();
        json_object_object_add(o, "section",
                               json_object_new_string(it->sec->name));
        json_object_object_add(o, "instance_id",
                               json_object_new_int64(it->sec->instance_id));
        json_object_object_foreach(s, key, val) {
            json_object_object_add(o, strcmp(key, "name") ? key : "vmsd",
                                   json_object_get(val));
        }
        json_object_put(s);
        json_object_array_add(arr, o);
    }
    json_object_object_add(root, "sections", arr);
    return root;
}

/* Walks the framing only (sections are skipped by their length) to find
 * the description after the end marker. */
static bool find_description(const uint8_t *data, size_t len,
                             json_object **desc, VMStateErr *code,
                             Error **errp)
{
    VMSReader r;
    vms_reader_init(&r, data, len, errp);
    bool ok = vms_read_stream_header(&r);
    while (ok) {
        uint8_t tag;
        VMSSectionHeader h;
        if (r.pos == len) {
            ok = vms_fail(&r, VMSTATE_E_NO_END, "no end-of-stream marker");
        } else if (!vms_read_u8(&r, &tag)) {
            ok = false;
        } else if (tag == VMS_TAG_END) {
            ok = vms_read_end(&r) && vms_read_tail(&r, len, desc);
            break;
        } else if (tag != VMS_TAG_SECTION) {
            ok = vms_fail(&r, VMSTATE_E_BAD_TAG, "unknown item tag 0x%02x",
                          tag);
        } else if (vms_read_section_header(&r, &h)) {
            r.pos += h.length;
        } else {
            ok = false;
        }
    }
    if (ok && !*desc) {
        ok = vms_fail(&r, VMSTATE_E_BAD_DESCRIPTION,
                      "the stream carries no description");
    }
    *code = r.err;
    return ok;
}

char *vmstate_stream_to_json(const uint8_t *data, size_t len,
                             VMStateErr *code, Error **errp)
{
    VMStateErr local = VMSTATE_OK;
    json_object *desc = NULL;
    VMSSynth synth;
    VMSDecoded dec;
    VMSReader r;
    char *text = NULL;

    if (!find_description(data, len, &desc, &local, errp)) {
        goto out;
    }
    if (!vms_synth_build(&synth, desc, errp)) {
        local = VMSTATE_E_BAD_DESCRIPTION;
        vms_synth_free(&synth);
        goto out;
    }
    vms_reader_init(&r, data, len, errp);
    if (!vms_decode_stream(&r, len, synth.secs, synth.nsecs, false, &dec)) {
        local = r.err;
    } else {
        json_object *root = decoded_to_json(&dec);
        const char *s = json_object_to_json_string_ext(root,
            JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
            JSON_C_TO_STRING_NOSLASHESCAPE);
        text = s ? strdup(s) : NULL;
        json_object_put(root);
        vms_decoded_free(&dec);
        if (!text) {
            local = VMSTATE_E_NO_MEMORY;
            error_setg(errp, "out of memory printing the stream");
        }
    }
    vms_synth_free(&synth);
out:
    if (code) {
        *code = local;
    }
    return text;
}
