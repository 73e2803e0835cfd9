/*
 * Rebuilding description tables from the JSON description carried by a
 * stream, so the ordinary checked decoder can read a stream without the
 * device code. The JSON comes with the stream: it is checked like the
 * stream (names, kinds, bounds, depth) and never trusted.
 */
#include "vmstate/vmstate-int.h"
#include "vmstate/synth.h"

#include <stdlib.h>
#include <string.h>

static void *arena_alloc(VMSSynth *s, size_t count, size_t size)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 32;
        void **p = realloc(s->ptrs, cap * sizeof(*p));
        if (!p) {
            return NULL;
        }
        s->ptrs = p;
        s->cap = cap;
    }
    void *mem = calloc(count + 1, size);
    if (mem) {
        s->ptrs[s->n++] = mem;
    }
    return mem;
}

void vms_synth_free(VMSSynth *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->ptrs[i]);
    }
    free(s->ptrs);
    json_object_put(s->desc);
    memset(s, 0, sizeof(*s));
}

static bool bad(Error **errp, const char *what, const char *name)
{
    error_setg(errp, "description: %s%s%s%s", what, name ? " ('" : "",
               name ? name : "", name ? "')" : "");
    return false;
}

static const char *get_str(json_object *o, const char *key)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) ||
        !json_object_is_type(v, json_type_string)) {
        return NULL;
    }
    return json_object_get_string(v);
}

/* Integers in [0, max]; absent keys give def (or fail when def < 0). */
static bool get_uint(json_object *o, const char *key, int64_t def,
                     int64_t max, int64_t *out)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v)) {
        *out = def;
        return def >= 0;
    }
    if (!json_object_is_type(v, json_type_int)) {
        return false;
    }
    *out = json_object_get_int64(v);
    return *out >= 0 && *out <= max;
}

static bool get_kind(json_object *o, const char *key, VMStateKind *k)
{
    const char *name = get_str(o, key);
    return name && vms_kind_from_name(name, k);
}

static const VMStateDescription *synth_vmsd(VMSSynth *s, json_object *o,
                                            int depth, Error **errp);

static bool synth_field(VMSSynth *s, json_object *o, VMStateField *f,
                        int depth, Error **errp)
{
    int64_t num, size, since;
    f->name = get_str(o, "name");
    if (!f->name || !get_kind(o, "kind", &f->kind) || f->kind == VMS_END ||
        !get_uint(o, "num", 0, UINT32_MAX, &num) ||
        !get_uint(o, "size", 0, UINT32_MAX, &size) ||
        !get_uint(o, "since", 0, INT32_MAX, &since)) {
        return bad(errp, "bad field", f->name);
    }
    f->num = (uint32_t)num;
    f->version_id = (int)since;
    f->size = vms_kind_is_scalar(f->kind) ? vms_scalar_width(f->kind) :
              (size_t)size;
    if ((f->kind == VMS_ARRAY || f->kind == VMS_VARRAY)) {
        if (!get_kind(o, "elem_kind", &f->elem_kind) ||
            !vms_kind_is_scalar(f->elem_kind)) {
            return bad(errp, "bad element kind", f->name);
        }
        f->size = vms_scalar_width(f->elem_kind);
    }
    if ((f->kind == VMS_VARRAY || f->kind == VMS_STRUCT_VARRAY ||
         f->kind == VMS_STRUCT_VARRAY_ALLOC) &&
        !get_kind(o, "count_kind", &f->count_kind)) {
        return bad(errp, "bad count kind", f->name);
    }
    if (f->kind >= VMS_STRUCT) {
        json_object *sub;
        if (!json_object_object_get_ex(o, "struct", &sub)) {
            return bad(errp, "struct field without description", f->name);
        }
        f->vmsd = synth_vmsd(s, sub, depth + 1, errp);
        f->size = 1;        /* never allocated by the analyser */
        return f->vmsd != NULL;
    }
    return true;
}

static bool synth_fields(VMSSynth *s, json_object *o, VMStateDescription *d,
                         int depth, Error **errp)
{
    json_object *arr;
    if (!json_object_object_get_ex(o, "fields", &arr) ||
        !json_object_is_type(arr, json_type_array)) {
        return bad(errp, "no field list", d->name);
    }
    size_t n = json_object_array_length(arr);
    VMStateField *fields = arena_alloc(s, n, sizeof(*fields));
    if (!fields) {
        return bad(errp, "out of memory", NULL);
    }
    for (size_t i = 0; i < n; i++) {
        json_object *fo = json_object_array_get_idx(arr, i);
        if (!json_object_is_type(fo, json_type_object) ||
            !synth_field(s, fo, &fields[i], depth, errp)) {
            if (!json_object_is_type(fo, json_type_object)) {
                return bad(errp, "field is not an object", d->name);
            }
            return false;
        }
    }
    d->fields = fields;
    return true;
}

static bool synth_subsections(VMSSynth *s, json_object *o,
                              VMStateDescription *d, int depth, Error **errp)
{
    json_object *arr;
    if (!json_object_object_get_ex(o, "subsections", &arr)) {
        return true;
    }
    if (!json_object_is_type(arr, json_type_array)) {
        return bad(errp, "subsections is not a list", d->name);
    }
    size_t n = json_object_array_length(arr);
    const VMStateDescription **subs = arena_alloc(s, n, sizeof(*subs));
    if (!subs) {
        return bad(errp, "out of memory", NULL);
    }
    for (size_t i = 0; i < n; i++) {
        subs[i] = synth_vmsd(s, json_object_array_get_idx(arr, i), depth + 1,
                             errp);
        if (!subs[i]) {
            return false;
        }
    }
    d->subsections = subs;
    return true;
}

static const VMStateDescription *synth_vmsd(VMSSynth *s, json_object *o,
                                            int depth, Error **errp)
{
    int64_t version, minimum;
    if (depth > VMS_MAX_DEPTH) {
        bad(errp, "nested too deep", NULL);
        return NULL;
    }
    VMStateDescription *d = arena_alloc(s, 1, sizeof(*d));
    if (!d) {
        bad(errp, "out of memory", NULL);
        return NULL;
    }
    if (!json_object_is_type(o, json_type_object) ||
        !(d->name = get_str(o, "name")) ||
        !get_uint(o, "version", -1, INT32_MAX, &version) ||
        !get_uint(o, "minimum_version", 0, INT32_MAX, &minimum)) {
        bad(errp, "bad struct description", d->name);
        return NULL;
    }
    /* The analyser reads whatever version the sender wrote. */
    d->version_id = (int)version;
    d->minimum_version_id = 0;
    if (!synth_fields(s, o, d, depth, errp) ||
        !synth_subsections(s, o, d, depth, errp)) {
        return NULL;
    }
    return d;
}

bool vms_synth_build(VMSSynth *s, json_object *desc, Error **errp)
{
    json_object *arr;
    int64_t fmt;
    memset(s, 0, sizeof(*s));
    s->desc = desc;
    if (!get_uint(desc, "format_version", -1, INT32_MAX, &fmt) ||
        fmt != VMSTATE_FORMAT_VERSION ||
        !json_object_object_get_ex(desc, "sections", &arr) ||
        !json_object_is_type(arr, json_type_array)) {
        return bad(errp, "no format version or section list", NULL);
    }
    s->nsecs = json_object_array_length(arr);
    VMStateSection *secs = arena_alloc(s, s->nsecs, sizeof(*secs));
    if (!secs) {
        return bad(errp, "out of memory", NULL);
    }
    for (size_t i = 0; i < s->nsecs; i++) {
        json_object *so = json_object_array_get_idx(arr, i), *vo;
        int64_t inst;
        if (!json_object_is_type(so, json_type_object) ||
            !(secs[i].name = get_str(so, "name")) ||
            !get_uint(so, "instance_id", -1, UINT32_MAX, &inst) ||
            !json_object_object_get_ex(so, "vmsd", &vo)) {
            return bad(errp, "bad section entry", NULL);
        }
        secs[i].instance_id = (uint32_t)inst;
        secs[i].vmsd = synth_vmsd(s, vo, 0, errp);
        if (!secs[i].vmsd || !vms_check_vmsd(secs[i].vmsd, 0, errp)) {
            return false;
        }
    }
    s->secs = secs;
    return true;
}
