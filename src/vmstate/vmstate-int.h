/*
 * Internals shared by the files of the device-state engine: wire
 * constants, the decoded value tree (the loader's scratch space), the
 * bounded stream reader and the commit journal.
 */
#ifndef STORMIG_VMSTATE_VMSTATE_INT_H
#define STORMIG_VMSTATE_VMSTATE_INT_H

#include <json-c/json.h>

#include "vmstate/vmstate.h"

/* Wire constants (docs/device-state-format.md, "Items"). */
#define VMS_MAGIC           "STMGVMS"      /* plus its NUL: 8 bytes */
#define VMS_MAGIC_LEN       8
#define VMS_TAG_SECTION     0x01
#define VMS_TAG_SUBSECTION  0x02
#define VMS_TAG_END         0x03
#define VMS_TAG_DESCRIPTION 0x04
#define VMS_NAME_MAX        255

/* Limits that keep a hostile stream or description from costing more
 * memory or stack than its size justifies ("Limits" in the format doc). */
#define VMS_MAX_DEPTH       16
/* JSON nesting of a description at VMS_MAX_DEPTH (describe.c): root,
 * sections array, section, then per description level its object, its
 * "fields" array and a field object, whose "struct" is the next level.
 * json-c's default (32) stops at about level 9. */
#define VMS_DESCRIPTION_JSON_DEPTH (3 + 3 * (VMS_MAX_DEPTH + 1) + 1)
#define VMS_MAX_NODES       (1u << 20)
#define VMS_MAX_DESC_BYTES  (16u << 20)

/* Scalar helpers (kinds VMS_U8..VMS_BOOL). */
bool vms_kind_is_scalar(VMStateKind k);
size_t vms_scalar_width(VMStateKind k);
const char *vms_kind_name(VMStateKind k);
bool vms_kind_from_name(const char *name, VMStateKind *k);
uint64_t vms_load_host(VMStateKind k, const void *p);
void vms_store_host(VMStateKind k, void *p, uint64_t v);
uint64_t vms_count_max(VMStateKind count_kind);
bool vms_name_ok(const char *name, size_t len);
/* Fields in a table (up to VMSTATE_END_OF_LIST) and subsections. */
size_t vms_nfields(const VMStateDescription *vmsd);
size_t vms_nsubs(const VMStateDescription *vmsd);

/* Checks a description table for programming errors (sizes that disagree
 * with kinds, missing nested descriptions, ...). */
bool vms_check_vmsd(const VMStateDescription *vmsd, int depth, Error **errp);

/* --- decoded value tree ------------------------------------------------ */

typedef struct VMSNode VMSNode;

typedef struct VMSValue {
    bool present;           /* false: not in the stream (since-version) */
    uint32_t count;         /* elements for every non-scalar kind */
    uint64_t scalar;        /* scalar kinds, zero-extended bits */
    uint8_t *raw;           /* BUFFER, ARRAY, VARRAY: host-layout bytes */
    VMSNode **elems;        /* struct kinds; PTR_ARRAY entries may be NULL */
} VMSValue;

struct VMSNode {
    const VMStateDescription *vmsd;
    int version;            /* of the section or subsection carrying it */
    size_t nfields;
    VMSValue *vals;         /* one per field of vmsd, table order */
    size_t nsubs;
    VMSNode **subs;         /* per vmsd->subsections entry; NULL = absent */
};

void vms_node_free(VMSNode *node);

/* One section of a decoded stream, in stream order. */
typedef struct VMSItem {
    const VMStateSection *sec;
    VMSNode *node;
} VMSItem;

typedef struct VMSDecoded {
    VMSItem *items;
    size_t n;
} VMSDecoded;

void vms_decoded_free(VMSDecoded *dec);

/* --- bounded reader ------------------------------------------------------ */

typedef struct VMSReader {
    const uint8_t *data;
    size_t pos;
    size_t limit;           /* end of the current section or subsection */
    VMStateErr short_code;  /* what running past limit means there */
    VMStateErr err;         /* first failure */
    Error **errp;
    const char *section;    /* for messages */
    char path[256];         /* field path inside the section */
    size_t pathlen;
    size_t nodes;           /* VMS_MAX_NODES budget */
} VMSReader;

void vms_reader_init(VMSReader *r, const uint8_t *data, size_t len,
                     Error **errp);
/* Records the first failure (code and message with section and field). */
bool vms_fail(VMSReader *r, VMStateErr code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
bool vms_read(VMSReader *r, void *out, size_t n);
bool vms_read_u8(VMSReader *r, uint8_t *v);
bool vms_read_u32(VMSReader *r, uint32_t *v);
/* Reads a length-prefixed name into buf (VMS_NAME_MAX + 1 bytes). */
bool vms_read_name(VMSReader *r, char *buf);
size_t vms_path_push(VMSReader *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void vms_path_pop(VMSReader *r, size_t len);

/* Header of a section as read from the stream. */
typedef struct VMSSectionHeader {
    char name[VMS_NAME_MAX + 1];
    uint32_t instance_id;
    uint32_t version;
    uint32_t length;
    size_t start;           /* offset of the tag */
} VMSSectionHeader;

/* Magic and format version. */
bool vms_read_stream_header(VMSReader *r);
/* After the section tag: name, instance id, version, length (checked
 * against what is left). */
bool vms_read_section_header(VMSReader *r, VMSSectionHeader *h);
/* After the end tag: the check value over [0, tag]. */
bool vms_read_end(VMSReader *r);
/* What follows the end marker: nothing, or one description. *desc gets
 * the parsed JSON (NULL when absent) if desc is non-NULL. */
bool vms_read_tail(VMSReader *r, size_t len, json_object **desc);

/* Decodes a whole stream into a tree, matching sections by name and
 * instance id. require_all: a local section absent from the stream is an
 * error. The destination objects are never touched. */
bool vms_decode_stream(VMSReader *r, size_t len, const VMStateSection *secs,
                       size_t n, bool require_all, VMSDecoded *out);

/* --- commit journal ------------------------------------------------------ */

typedef struct VMSDisplaced {
    void *ptr;
    const VMStateDescription *vmsd;
    size_t elem_size;
    uint32_t count;         /* elements at ptr */
} VMSDisplaced;

typedef struct VMSJournal {
    ByteBuf undo;           /* records: old bytes, then {dst, n} */
    void **allocated;       /* made by the commit: freed by an undo */
    size_t nalloc, capalloc;
    VMSDisplaced *displaced;/* replaced by the commit: freed on success */
    size_t ndisp, capdisp;
} VMSJournal;

void vms_journal_init(VMSJournal *j);
/* Writes the tree into the sections' objects, journalling every change. */
bool vms_commit(VMSJournal *j, const VMSDecoded *dec, Error **errp);
/* Puts every byte back and frees what the commit allocated. */
void vms_journal_undo(VMSJournal *j);
/* Keeps the new state: frees what it replaced. */
void vms_journal_finish(VMSJournal *j);

/* --- description --------------------------------------------------------- */

json_object *vms_describe_vmsd(const VMStateDescription *vmsd);

#endif
