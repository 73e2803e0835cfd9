/*
 * Device state, described declaratively and saved by one engine.
 *
 * A device says *what* its state is with a VMStateDescription: a named,
 * versioned table of fields. The engine saves, loads, versions and checks
 * it; devices never write bytes by hand.
 *
 * Wire format (big-endian), see docs/device-state-format.md:
 *   stream  := header section* end description?
 *   header  := magic "STMGVMS\0" (8 bytes), format version (u32)
 *   section := tag, name, instance id, version, length (u32), payload
 *   payload := fields in table order, then subsections (each with its own
 *              tag, name, version and length)
 *   end     := end tag, then a check value over everything before it
 *   description := a JSON text describing every section and field, so a
 *              stream can be read (stormig-analyze) without the code.
 *
 * Loading trusts nothing: every count and length is checked against the
 * description before memory is touched, and the whole stream is decoded
 * into scratch space first; the destination objects change only when
 * everything checked out (and are restored if a post_load hook fails).
 */
#ifndef STORMIG_VMSTATE_VMSTATE_H
#define STORMIG_VMSTATE_VMSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/bytes.h"
#include "util/error.h"

typedef enum VMStateKind {
    VMS_END = 0,            /* terminates a field table */
    VMS_U8, VMS_U16, VMS_U32, VMS_U64,
    VMS_I8, VMS_I16, VMS_I32, VMS_I64,
    VMS_BOOL,
    VMS_BUFFER,             /* fixed byte buffer of .size bytes */
    VMS_ARRAY,              /* fixed array: .num scalars of .elem_kind */
    VMS_VARRAY,             /* in-struct array of capacity .num scalars of
                               .elem_kind; live length in the count field */
    VMS_STRUCT,             /* nested struct, described by .vmsd */
    VMS_STRUCT_ARRAY,       /* fixed array of .num structs, .size bytes each */
    VMS_STRUCT_VARRAY,      /* in-struct array of capacity .num structs;
                               live length in the count field */
    VMS_STRUCT_VARRAY_ALLOC,/* pointer to a heap array of structs, length in
                               the count field, at most .num; (re)allocated
                               on load */
    VMS_STRUCT_PTR_ARRAY,   /* fixed array of .num pointers to structs of
                               .size bytes; NULL entries allowed; entries
                               are allocated on load (seed 003's queue
                               pointer arrays) */
} VMStateKind;

struct VMStateDescription;

typedef struct VMStateField {
    const char *name;
    VMStateKind kind;
    VMStateKind elem_kind;          /* ARRAY, VARRAY: scalar element kind */
    size_t offset;                  /* of the field in its struct */
    size_t size;                    /* BUFFER: bytes; struct kinds: element
                                       size */
    uint32_t num;                   /* fixed count or capacity */
    size_t count_offset;            /* VARRAY kinds: offset of the count */
    VMStateKind count_kind;         /* VMS_U8, VMS_U16 or VMS_U32 */
    const struct VMStateDescription *vmsd;  /* struct kinds */
    int version_id;                 /* first section version with this
                                       field; 0 means every version */
    uint64_t max;                   /* unsigned scalars: the largest value
                                       a load accepts; 0 means any */
} VMStateField;

typedef struct VMStateDescription {
    const char *name;
    int version_id;                 /* version written by this build */
    int minimum_version_id;         /* oldest version it can load */
    /* Subsections only: sent only when needed() says so. */
    bool (*needed)(void *opaque);
    /* May refuse the save (e.g. a migration blocker); the message reaches
     * the monitor. */
    bool (*pre_save)(void *opaque, Error **errp);
    /* Runs on the destination object after the commit; a failure restores
     * the previous state of every section of the stream. */
    bool (*post_load)(void *opaque, int version_id, Error **errp);
    const VMStateField *fields;     /* ends with VMSTATE_END_OF_LIST() */
    const struct VMStateDescription *const *subsections; /* NULL-ended */
} VMStateDescription;

/* One top-level object in a stream. */
typedef struct VMStateSection {
    const char *name;               /* unique in the stream, e.g. "nvme0" */
    uint32_t instance_id;
    const VMStateDescription *vmsd;
    void *opaque;
} VMStateSection;

/* Distinct reasons a stream is refused; tests assert these. */
typedef enum VMStateErr {
    VMSTATE_OK = 0,
    VMSTATE_E_TRUNCATED,            /* stream ends inside an item */
    VMSTATE_E_BAD_MAGIC,
    VMSTATE_E_FORMAT_VERSION,       /* stream format version unknown */
    VMSTATE_E_BAD_TAG,              /* unknown item tag */
    VMSTATE_E_UNKNOWN_SECTION,      /* no such section on this side */
    VMSTATE_E_DUPLICATE_SECTION,
    VMSTATE_E_MISSING_SECTION,      /* a section this side needs is absent */
    VMSTATE_E_VERSION_TOO_NEW,
    VMSTATE_E_VERSION_TOO_OLD,
    VMSTATE_E_BAD_NAME,             /* empty, too long or not printable */
    VMSTATE_E_SECTION_LENGTH,       /* payload length disagrees with fields */
    VMSTATE_E_COUNT_TOO_LARGE,      /* array count above its bound */
    VMSTATE_E_BAD_BOOL,             /* a bool byte other than 0 or 1 */
    VMSTATE_E_BAD_PTR_MARKER,       /* pointer-array entry marker not 0/1 */
    VMSTATE_E_UNKNOWN_SUBSECTION,
    VMSTATE_E_DUPLICATE_SUBSECTION,
    VMSTATE_E_CHECKSUM,             /* end-of-stream check value mismatch */
    VMSTATE_E_NO_END,               /* no end-of-stream marker */
    VMSTATE_E_TRAILING_DATA,        /* bytes after the end (besides a
                                       well-formed description) */
    VMSTATE_E_BAD_DESCRIPTION,      /* embedded JSON description invalid */
    VMSTATE_E_POST_LOAD,            /* a post_load hook refused the state */
    VMSTATE_E_NO_MEMORY,
    VMSTATE_E_COUNT_MISMATCH,       /* fixed array/buffer length differs
                                       from the description */
    VMSTATE_E_BAD_VMSD,             /* a local description is itself invalid
                                       (programming error, never the
                                       stream's fault) */
    VMSTATE_E_OUT_OF_RANGE,         /* a scalar above its field's max */
} VMStateErr;

const char *vmstate_err_name(VMStateErr err);

/* Stream format version written and accepted by this build. */
#define VMSTATE_FORMAT_VERSION 1

/* CRC32C (Castagnoli) of buf, continuing from crc (start with 0); the
 * end-of-stream check value. */
uint32_t vmstate_crc32c(uint32_t crc, const void *buf, size_t len);

/* Saves every section (pre_save hooks first; any refusal aborts). Appends
 * the JSON description after the end marker when with_description. */
bool vmstate_save_stream(const VMStateSection *secs, size_t n,
                         bool with_description, ByteBuf *out, Error **errp);

/* Loads a whole stream into the sections. On failure *code (if non-NULL)
 * says why, errp carries a message naming the section and field, and no
 * section's state has changed. */
bool vmstate_load_stream(const VMStateSection *secs, size_t n,
                         const uint8_t *data, size_t len,
                         VMStateErr *code, Error **errp);

/* Frees what opaque owns according to vmsd: pointer-array entries and
 * VARRAY_ALLOC arrays (with free()), recursively; opaque itself is not
 * freed. For a device's unrealize after loads allocated entries. */
void vmstate_free_owned(const VMStateDescription *vmsd, void *opaque);

/* Prints a stream as JSON (needs the embedded description); for
 * stormig-analyze. Returns a malloc'd string. */
char *vmstate_stream_to_json(const uint8_t *data, size_t len,
                             VMStateErr *code, Error **errp);

/* The JSON description of these sections alone (malloc'd). */
char *vmstate_describe_json(const VMStateSection *secs, size_t n);

/* Field-table helpers. T is the struct type, f a member. */
#define VMSTATE__SCALAR(f, T, k, v)                                       \
    { .name = #f, .kind = (k), .offset = offsetof(T, f),                  \
      .size = sizeof(((T *)0)->f), .version_id = (v) }

#define VMSTATE_UINT8_V(f, T, v)  VMSTATE__SCALAR(f, T, VMS_U8, v)
#define VMSTATE_UINT16_V(f, T, v) VMSTATE__SCALAR(f, T, VMS_U16, v)
#define VMSTATE_UINT32_V(f, T, v) VMSTATE__SCALAR(f, T, VMS_U32, v)
#define VMSTATE_UINT64_V(f, T, v) VMSTATE__SCALAR(f, T, VMS_U64, v)
#define VMSTATE_INT8_V(f, T, v)   VMSTATE__SCALAR(f, T, VMS_I8, v)
#define VMSTATE_INT16_V(f, T, v)  VMSTATE__SCALAR(f, T, VMS_I16, v)
#define VMSTATE_INT32_V(f, T, v)  VMSTATE__SCALAR(f, T, VMS_I32, v)
#define VMSTATE_INT64_V(f, T, v)  VMSTATE__SCALAR(f, T, VMS_I64, v)
#define VMSTATE_BOOL_V(f, T, v)   VMSTATE__SCALAR(f, T, VMS_BOOL, v)

/* An unsigned scalar the loader refuses above max (e.g. a 4-bit code
 * kept in a byte, a flag kept in a u8). */
#define VMSTATE__SCALAR_MAX(f, T, k, m)                                   \
    { .name = #f, .kind = (k), .offset = offsetof(T, f),                  \
      .size = sizeof(((T *)0)->f), .max = (m) }
#define VMSTATE_UINT8_MAX(f, T, m)  VMSTATE__SCALAR_MAX(f, T, VMS_U8, m)
#define VMSTATE_UINT16_MAX(f, T, m) VMSTATE__SCALAR_MAX(f, T, VMS_U16, m)
#define VMSTATE_UINT32_MAX(f, T, m) VMSTATE__SCALAR_MAX(f, T, VMS_U32, m)

#define VMSTATE_UINT8(f, T)  VMSTATE_UINT8_V(f, T, 0)
#define VMSTATE_UINT16(f, T) VMSTATE_UINT16_V(f, T, 0)
#define VMSTATE_UINT32(f, T) VMSTATE_UINT32_V(f, T, 0)
#define VMSTATE_UINT64(f, T) VMSTATE_UINT64_V(f, T, 0)
#define VMSTATE_INT8(f, T)   VMSTATE_INT8_V(f, T, 0)
#define VMSTATE_INT16(f, T)  VMSTATE_INT16_V(f, T, 0)
#define VMSTATE_INT32(f, T)  VMSTATE_INT32_V(f, T, 0)
#define VMSTATE_INT64(f, T)  VMSTATE_INT64_V(f, T, 0)
#define VMSTATE_BOOL(f, T)   VMSTATE_BOOL_V(f, T, 0)

/* uint8_t f[N] */
#define VMSTATE_BUFFER(f, T)                                              \
    { .name = #f, .kind = VMS_BUFFER, .offset = offsetof(T, f),           \
      .size = sizeof(((T *)0)->f) }

#define VMSTATE__NELEM(f, T) (sizeof(((T *)0)->f) / sizeof(((T *)0)->f[0]))

/* Scalar array elem_t f[N], elem_kind one of VMS_U8..VMS_BOOL. */
#define VMSTATE_ARRAY(f, T, ek)                                           \
    { .name = #f, .kind = VMS_ARRAY, .elem_kind = (ek),                   \
      .offset = offsetof(T, f), .size = sizeof(((T *)0)->f[0]),           \
      .num = (uint32_t)VMSTATE__NELEM(f, T) }

/* Scalar array elem_t f[N] whose live length is the member cnt. */
#define VMSTATE_VARRAY(f, T, ek, cnt, ck)                                 \
    { .name = #f, .kind = VMS_VARRAY, .elem_kind = (ek),                  \
      .offset = offsetof(T, f), .size = sizeof(((T *)0)->f[0]),           \
      .num = (uint32_t)VMSTATE__NELEM(f, T),                              \
      .count_offset = offsetof(T, cnt), .count_kind = (ck) }

/* S f; */
#define VMSTATE_STRUCT(f, T, desc, S)                                     \
    { .name = #f, .kind = VMS_STRUCT, .offset = offsetof(T, f),           \
      .size = sizeof(S), .vmsd = &(desc) }

/* S f[N]; */
#define VMSTATE_STRUCT_ARRAY(f, T, desc, S)                               \
    { .name = #f, .kind = VMS_STRUCT_ARRAY, .offset = offsetof(T, f),     \
      .size = sizeof(S), .num = (uint32_t)VMSTATE__NELEM(f, T),           \
      .vmsd = &(desc) }

/* S f[N]; live length in cnt */
#define VMSTATE_STRUCT_VARRAY(f, T, desc, S, cnt, ck)                     \
    { .name = #f, .kind = VMS_STRUCT_VARRAY, .offset = offsetof(T, f),    \
      .size = sizeof(S), .num = (uint32_t)VMSTATE__NELEM(f, T),           \
      .count_offset = offsetof(T, cnt), .count_kind = (ck),               \
      .vmsd = &(desc) }

/* S *f; length in cnt, at most max */
#define VMSTATE_STRUCT_VARRAY_ALLOC(f, T, desc, S, cnt, ck, max)          \
    { .name = #f, .kind = VMS_STRUCT_VARRAY_ALLOC,                        \
      .offset = offsetof(T, f), .size = sizeof(S), .num = (max),          \
      .count_offset = offsetof(T, cnt), .count_kind = (ck),               \
      .vmsd = &(desc) }

/* S *f[N]; NULL entries allowed, allocated on load */
#define VMSTATE_STRUCT_PTR_ARRAY(f, T, desc, S)                           \
    { .name = #f, .kind = VMS_STRUCT_PTR_ARRAY, .offset = offsetof(T, f), \
      .size = sizeof(S), .num = (uint32_t)VMSTATE__NELEM(f, T),           \
      .vmsd = &(desc) }

#define VMSTATE_END_OF_LIST() { .name = NULL, .kind = VMS_END }

#endif
