/* Field kinds, names, error names, the check value and the sanity check of
 * description tables. */
#include "vmstate/vmstate-int.h"

#include <string.h>

_Static_assert(sizeof(bool) == 1, "bool fields are stored as one byte");

static const char *const kind_names[] = {
    [VMS_END] = "end",
    [VMS_U8] = "u8", [VMS_U16] = "u16", [VMS_U32] = "u32", [VMS_U64] = "u64",
    [VMS_I8] = "i8", [VMS_I16] = "i16", [VMS_I32] = "i32", [VMS_I64] = "i64",
    [VMS_BOOL] = "bool",
    [VMS_BUFFER] = "buffer",
    [VMS_ARRAY] = "array",
    [VMS_VARRAY] = "varray",
    [VMS_STRUCT] = "struct",
    [VMS_STRUCT_ARRAY] = "struct_array",
    [VMS_STRUCT_VARRAY] = "struct_varray",
    [VMS_STRUCT_VARRAY_ALLOC] = "struct_varray_alloc",
    [VMS_STRUCT_PTR_ARRAY] = "struct_ptr_array",
};

#define N_KINDS (sizeof(kind_names) / sizeof(kind_names[0]))

bool vms_kind_is_scalar(VMStateKind k)
{
    return k >= VMS_U8 && k <= VMS_BOOL;
}

size_t vms_scalar_width(VMStateKind k)
{
    switch (k) {
    case VMS_U8: case VMS_I8: case VMS_BOOL:
        return 1;
    case VMS_U16: case VMS_I16:
        return 2;
    case VMS_U32: case VMS_I32:
        return 4;
    case VMS_U64: case VMS_I64:
        return 8;
    default:
        return 0;
    }
}

const char *vms_kind_name(VMStateKind k)
{
    return (unsigned)k < N_KINDS ? kind_names[k] : "?";
}

bool vms_kind_from_name(const char *name, VMStateKind *k)
{
    for (size_t i = 1; i < N_KINDS; i++) {
        if (strcmp(kind_names[i], name) == 0) {
            *k = (VMStateKind)i;
            return true;
        }
    }
    return false;
}

uint64_t vms_load_host(VMStateKind k, const void *p)
{
    uint8_t u8; uint16_t u16; uint32_t u32; uint64_t u64;
    switch (vms_scalar_width(k)) {
    case 1: memcpy(&u8, p, 1); return u8;
    case 2: memcpy(&u16, p, 2); return u16;
    case 4: memcpy(&u32, p, 4); return u32;
    case 8: memcpy(&u64, p, 8); return u64;
    default: return 0;
    }
}

void vms_store_host(VMStateKind k, void *p, uint64_t v)
{
    uint8_t u8 = (uint8_t)v; uint16_t u16 = (uint16_t)v;
    uint32_t u32 = (uint32_t)v;
    switch (vms_scalar_width(k)) {
    case 1: memcpy(p, &u8, 1); break;
    case 2: memcpy(p, &u16, 2); break;
    case 4: memcpy(p, &u32, 4); break;
    case 8: memcpy(p, &v, 8); break;
    default: break;
    }
}

uint64_t vms_count_max(VMStateKind count_kind)
{
    switch (count_kind) {
    case VMS_U8: return UINT8_MAX;
    case VMS_U16: return UINT16_MAX;
    case VMS_U32: return UINT32_MAX;
    default: return 0;
    }
}

/* Names are printable ASCII without spaces, 1..255 bytes, so a message or
 * a JSON key quoting them is always readable. */
bool vms_name_ok(const char *name, size_t len)
{
    if (len == 0 || len > VMS_NAME_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (name[i] <= 0x20 || name[i] >= 0x7f) {
            return false;
        }
    }
    return true;
}

/*
 * CRC32C (Castagnoli, reflected polynomial 0x82F63B78), bytewise with a
 * table built on first use. Chosen over a simple sum because it detects
 * every burst error up to 32 bits and all odd bit counts, and it is the
 * well-known check of iSCSI and ext4, so other tools can verify a stream.
 * It guards against corruption, not against a hostile sender: the loader's
 * own checks do that.
 */
uint32_t vmstate_crc32c(uint32_t crc, const void *buf, size_t len)
{
    static uint32_t table[256];
    static bool ready;
    if (!ready) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int b = 0; b < 8; b++) {
                c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
            }
            table[i] = c;
        }
        ready = true;
    }
    const uint8_t *p = buf;
    crc = ~crc;
    while (len--) {
        crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    }
    return ~crc;
}

const char *vmstate_err_name(VMStateErr err)
{
    static const char *const names[] = {
        [VMSTATE_OK] = "ok",
        [VMSTATE_E_TRUNCATED] = "truncated",
        [VMSTATE_E_BAD_MAGIC] = "bad-magic",
        [VMSTATE_E_FORMAT_VERSION] = "format-version",
        [VMSTATE_E_BAD_TAG] = "bad-tag",
        [VMSTATE_E_UNKNOWN_SECTION] = "unknown-section",
        [VMSTATE_E_DUPLICATE_SECTION] = "duplicate-section",
        [VMSTATE_E_MISSING_SECTION] = "missing-section",
        [VMSTATE_E_VERSION_TOO_NEW] = "version-too-new",
        [VMSTATE_E_VERSION_TOO_OLD] = "version-too-old",
        [VMSTATE_E_BAD_NAME] = "bad-name",
        [VMSTATE_E_SECTION_LENGTH] = "section-length",
        [VMSTATE_E_COUNT_TOO_LARGE] = "count-too-large",
        [VMSTATE_E_BAD_BOOL] = "bad-bool",
        [VMSTATE_E_BAD_PTR_MARKER] = "bad-ptr-marker",
        [VMSTATE_E_UNKNOWN_SUBSECTION] = "unknown-subsection",
        [VMSTATE_E_DUPLICATE_SUBSECTION] = "duplicate-subsection",
        [VMSTATE_E_CHECKSUM] = "checksum",
        [VMSTATE_E_NO_END] = "no-end",
        [VMSTATE_E_TRAILING_DATA] = "trailing-data",
        [VMSTATE_E_BAD_DESCRIPTION] = "bad-description",
        [VMSTATE_E_POST_LOAD] = "post-load",
        [VMSTATE_E_NO_MEMORY] = "no-memory",
        [VMSTATE_E_COUNT_MISMATCH] = "count-mismatch",
        [VMSTATE_E_BAD_VMSD] = "bad-vmsd",
        [VMSTATE_E_OUT_OF_RANGE] = "out-of-range",
    };
    if ((unsigned)err < sizeof(names) / sizeof(names[0]) && names[err]) {
        return names[err];
    }
    return "unknown-error";
}

static bool check_field(const VMStateDescription *vmsd,
                        const VMStateField *f, int depth, Error **errp)
{
    const char *why = NULL;
    bool counted = f->kind == VMS_VARRAY || f->kind == VMS_STRUCT_VARRAY ||
                   f->kind == VMS_STRUCT_VARRAY_ALLOC;
    if (!vms_name_ok(f->name, strlen(f->name))) {
        why = "bad field name";
    } else if (f->kind <= VMS_END || f->kind > VMS_STRUCT_PTR_ARRAY) {
        why = "unknown kind";
    } else if (vms_kind_is_scalar(f->kind) &&
               f->size && f->size != vms_scalar_width(f->kind)) {
        why = "member size differs from the kind";
    } else if ((f->kind == VMS_ARRAY || f->kind == VMS_VARRAY) &&
               (!vms_kind_is_scalar(f->elem_kind) ||
                f->size != vms_scalar_width(f->elem_kind))) {
        why = "element kind missing or of another size";
    } else if (f->kind >= VMS_ARRAY && f->kind != VMS_STRUCT && f->num == 0) {
        why = "zero element count";
    } else if (counted && f->num > vms_count_max(f->count_kind)) {
        why = "count member kind missing or too small for the capacity";
    } else if (f->kind >= VMS_STRUCT && (!f->vmsd || f->size == 0)) {
        why = "struct kind without description or size";
    } else if (f->version_id < 0) {
        why = "negative version";
    }
    if (why) {
        error_setg(errp, "description '%s' field '%s': %s", vmsd->name,
                   f->name ? f->name : "?", why);
        return false;
    }
    if (f->kind >= VMS_STRUCT) {
        return vms_check_vmsd(f->vmsd, depth + 1, errp);
    }
    return true;
}

bool vms_check_vmsd(const VMStateDescription *vmsd, int depth, Error **errp)
{
    if (depth > VMS_MAX_DEPTH) {
        error_setg(errp, "description '%s' nests deeper than %d",
                   vmsd->name ? vmsd->name : "?", VMS_MAX_DEPTH);
        return false;
    }
    if (!vmsd->name || !vms_name_ok(vmsd->name, strlen(vmsd->name)) ||
        !vmsd->fields || vmsd->minimum_version_id > vmsd->version_id ||
        vmsd->minimum_version_id < 0) {
        error_setg(errp, "description '%s': bad name, fields or versions",
                   vmsd->name ? vmsd->name : "?");
        return false;
    }
    for (const VMStateField *f = vmsd->fields; f->name; f++) {
        if (!check_field(vmsd, f, depth, errp)) {
            return false;
        }
    }
    for (size_t i = 0; vmsd->subsections && vmsd->subsections[i]; i++) {
        if (!vms_check_vmsd(vmsd->subsections[i], depth + 1, errp)) {
            return false;
        }
    }
    return true;
}

size_t vms_nfields(const VMStateDescription *vmsd)
{
    size_t n = 0;
    while (vmsd->fields[n].name) {
        n++;
    }
    return n;
}

size_t vms_nsubs(const VMStateDescription *vmsd)
{
    size_t n = 0;
    while (vmsd->subsections && vmsd->subsections[n]) {
        n++;
    }
    return n;
}
