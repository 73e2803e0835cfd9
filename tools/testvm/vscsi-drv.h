/*
 * A guest virtio-scsi driver (virtio 1.2 section 5.6) over the vhost-user
 * front end: split request queues in guest memory, one LUN per disk on
 * target 0, READ/WRITE(10) or (16) for the workload (BlockDrvOps), TEST
 * UNIT READY and READ CAPACITY(16) at bring-up.
 *
 * Each in-flight command owns a fixed triple of descriptors (request
 * header, data, response in the order 2.7.4 requires: device-readable
 * first) and a header slot, so no descriptor allocator is needed and a
 * used element names its slot directly. Every used element is checked: a
 * head that is not a slot in flight is a protocol error (st->errors).
 */
#ifndef STORMIG_TESTVM_VSCSI_DRV_H
#define STORMIG_TESTVM_VSCSI_DRV_H

#include "blockdrv.h"
#include "guest-mem.h"
#include "vhost-fe.h"

#define VSCSI_MAX_QUEUES 16
#define VSCSI_MAX_QD     128

typedef struct VscsiSlot {
    uint8_t busy;
    uint8_t rsvd[3];
    uint32_t tag;
} VscsiSlot;

typedef struct VscsiQueue {
    uint64_t desc_gpa, avail_gpa, used_gpa, hdr_gpa;
    uint16_t num;                   /* ring entries, a power of two */
    uint16_t avail_idx;             /* next avail entry (shadow) */
    uint16_t last_used;
    uint16_t outstanding;
    uint16_t next_slot;
    uint16_t kicked_idx;            /* avail_idx at the last kick */
    uint16_t event_idx;             /* VIRTIO_RING_F_EVENT_IDX negotiated */
    uint16_t rsvd;
    uint64_t submitted, completed;
    VscsiSlot slots[VSCSI_MAX_QD];
} VscsiQueue;

typedef struct VscsiDrvState {
    uint32_t magic;
    uint32_t nr_queues;
    uint32_t qd;
    uint32_t nr_luns;
    uint32_t block_shift[TVM_MAX_DISKS];
    uint64_t blocks[TVM_MAX_DISKS]; /* logical blocks of each LUN */
    uint64_t errors;                /* protocol errors seen */
    uint64_t buf_gpa;               /* scratch page for bring-up data */
    VscsiQueue q[VSCSI_MAX_QUEUES];
} VscsiDrvState;

typedef struct VscsiDrv {
    VhostFe *fe;
    GuestMem *gm;
    VscsiDrvState *st;
    BlockDrvOps ops;                /* for the workload, opaque = drv */
} VscsiDrv;

/* Brings the controller up over fe (already connected): features, memory,
 * queues 2..queues+1 started, every LUN 0..luns-1 ready and sized. */
VscsiDrv *vscsi_drv_init(VhostFe *fe, GuestMem *gm, unsigned queues,
                         unsigned qd, unsigned luns, Error **errp);
/* Frees the host side only (fe stays with the caller). */
void vscsi_drv_free(VscsiDrv *drv);

#endif
