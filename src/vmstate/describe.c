/* The JSON description of sections (docs/device-state-format.md,
 * "Description"): enough to read a stream without the device code. */
#include "vmstate/vmstate-int.h"

#include <stdlib.h>
#include <string.h>

static json_object *describe_field(const VMStateField *f)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "name", json_object_new_string(f->name));
    json_object_object_add(o, "kind",
                           json_object_new_string(vms_kind_name(f->kind)));
    if (f->version_id > 0) {
        json_object_object_add(o, "since", json_object_new_int(f->version_id));
    }
    switch (f->kind) {
    case VMS_BUFFER:
        json_object_object_add(o, "size", json_object_new_uint64(f->size));
        break;
    case VMS_ARRAY:
    case VMS_VARRAY:
        json_object_object_add(o, "elem_kind",
            json_object_new_string(vms_kind_name(f->elem_kind)));
        json_object_object_add(o, "num", json_object_new_uint64(f->num));
        break;
    case VMS_STRUCT:
        json_object_object_add(o, "struct", vms_describe_vmsd(f->vmsd));
        break;
    case VMS_STRUCT_ARRAY:
    case VMS_STRUCT_VARRAY:
    case VMS_STRUCT_VARRAY_ALLOC:
    case VMS_STRUCT_PTR_ARRAY:
        json_object_object_add(o, "num", json_object_new_uint64(f->num));
        json_object_object_add(o, "struct", vms_describe_vmsd(f->vmsd));
        break;
    default:
        break;
    }
    if (f->kind == VMS_VARRAY || f->kind == VMS_STRUCT_VARRAY ||
        f->kind == VMS_STRUCT_VARRAY_ALLOC) {
        json_object_object_add(o, "count_kind",
            json_object_new_string(vms_kind_name(f->count_kind)));
    }
    return o;
}

json_object *vms_describe_vmsd(const VMStateDescription *vmsd)
{
    json_object *o = json_object_new_object();
    json_object *fields = json_object_new_array();
    json_object_object_add(o, "name", json_object_new_string(vmsd->name));
    json_object_object_add(o, "version",
                           json_object_new_int(vmsd->version_id));
    json_object_object_add(o, "minimum_version",
                           json_object_new_int(vmsd->minimum_version_id));
    for (const VMStateField *f = vmsd->fields; f->name; f++) {
        json_object_array_add(fields, describe_field(f));
    }
    json_object_object_add(o, "fields", fields);
    if (vmsd->subsections && vmsd->subsections[0]) {
        json_object *subs = json_object_new_array();
        for (size_t i = 0; vmsd->subsections[i]; i++) {
            json_object_array_add(subs,
                                  vms_describe_vmsd(vmsd->subsections[i]));
        }
        json_object_object_add(o, "subsections", subs);
    }
    return o;
}

char *vmstate_describe_json(const VMStateSection *secs, size_t n)
{
    json_object *root = json_object_new_object();
    json_object *arr = json_object_new_array();
    json_object_object_add(root, "format",
                           json_object_new_string("stormig-device-state"));
    json_object_object_add(root, "format_version",
                           json_object_new_int(VMSTATE_FORMAT_VERSION));
    for (size_t i = 0; i < n; i++) {
        json_object *s = json_object_new_object();
        json_object_object_add(s, "name",
                               json_object_new_string(secs[i].name));
        json_object_object_add(s, "instance_id",
                               json_object_new_int64(secs[i].instance_id));
        json_object_object_add(s, "vmsd", vms_describe_vmsd(secs[i].vmsd));
        json_object_array_add(arr, s);
    }
    json_object_object_add(root, "sections", arr);
    const char *text = json_object_to_json_string_ext(root,
        JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    char *copy = text ? strdup(text) : NULL;
    json_object_put(root);
    return copy;
}
