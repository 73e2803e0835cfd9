/*
 * A guest NVMe driver (NVMe Base Specification 1.4) over a Transport:
 * admin queue set up through BAR0, Identify, Set Features Number of
 * Queues, I/O CQ/SQ pairs with one MSI-X vector each, and one-block reads
 * and writes for the workload (BlockDrvOps).
 *
 * All of its state (queues, the command tracking of every cid, counters,
 * asynchronous events received) is in guest memory (NvmeDrvState), so a
 * migrated VM resumes the same driver with nvme_drv_attach.
 *
 * Every completion is checked against the tracking: a CQE for a cid that
 * is not in flight (completed twice, or never submitted), for another
 * queue, or an SQ head that moves backwards is a protocol error, counted
 * in st->errors with a log line.
 */
#ifndef STORMIG_TESTVM_NVME_DRV_H
#define STORMIG_TESTVM_NVME_DRV_H

#include "blockdrv.h"
#include "guest-mem.h"
#include "nvme/nvme-spec.h"
#include "transport.h"

#define DRV_MAX_IO_QUEUES 16
#define DRV_MAX_QD        128
#define DRV_SLOTS         256       /* cids per queue */
#define DRV_ADMIN_ENTRIES 32
#define DRV_MAX_AEN       16
#define DRV_MAX_SQ_ENTRIES 4096u

typedef struct DrvSlot {
    uint8_t busy;
    uint8_t opcode;
    uint16_t rsvd;
    uint32_t tag;
    uint64_t seq;                   /* submission sequence number */
} DrvSlot;

typedef struct DrvQueue {
    uint64_t sq_gpa, cq_gpa;
    uint16_t sq_size, cq_size;
    uint16_t sq_tail;
    uint16_t sq_head;               /* as last reported in a CQE */
    uint16_t cq_head;
    uint16_t outstanding;
    uint16_t next_cid;
    uint8_t phase;
    uint8_t stalled;                /* test: stop consuming completions */
    uint64_t submitted, completed;
    DrvSlot slots[DRV_SLOTS];
} DrvQueue;

typedef struct NvmeDrvState {
    uint32_t magic;
    uint32_t nr_io_queues;
    uint32_t qd;
    uint32_t dstrd;
    uint32_t nr_ns;
    uint32_t lba_shift[TVM_MAX_DISKS];
    uint64_t nsze[TVM_MAX_DISKS];
    uint64_t seq;
    uint64_t errors;                /* protocol errors seen */
    uint64_t buf_gpa;               /* scratch page for admin data */
    uint64_t dbbuf_gpa, eibuf_gpa;  /* 5.8 shadow doorbells, 0: not used */
    uint32_t nr_aen;
    uint32_t aen_dw0[DRV_MAX_AEN];  /* async events received, in order */
    DrvQueue q[1 + DRV_MAX_IO_QUEUES];
} NvmeDrvState;

typedef struct NvmeDrv {
    Transport *t;
    GuestMem *gm;
    NvmeDrvState *st;
    BlockDrvOps ops;                /* for the workload, opaque = drv */
    /* Host-side tracing (tests): every CQE the driver consumes, in the
     * order it consumes them (may be NULL). */
    void (*cqe_trace)(void *opaque, unsigned qid, const NvmeCqe *cqe);
    void *trace_opaque;
} NvmeDrv;

typedef struct NvmeDrvConfig {
    unsigned io_queues;             /* 1..DRV_MAX_IO_QUEUES */
    unsigned qd;                    /* 1..DRV_MAX_QD */
    unsigned sq_entries;            /* 0: qd + 1; more: a bigger ring */
    unsigned cq_entries;            /* 0: as the SQ (no CQ-full possible) */
    unsigned namespaces;            /* 1..TVM_MAX_DISKS, must exist */
    bool wrr;                       /* CC.AMS = weighted round robin */
} NvmeDrvConfig;

/* Brings the controller up from reset and creates the I/O queues. */
NvmeDrv *nvme_drv_init(Transport *t, GuestMem *gm, const NvmeDrvConfig *cfg,
                       Error **errp);
/* A migrated VM: the state in gm is taken as it is (gm already mapped
 * and the device state loaded); interrupts are wired again (they are host
 * resources). */
NvmeDrv *nvme_drv_attach(Transport *t, GuestMem *gm, Error **errp);
/* Frees the host side only (the state stays in guest memory). */
void nvme_drv_free(NvmeDrv *drv);

/* Synchronous admin command; async event completions met meanwhile are
 * recorded. Returns the status field (phase bit stripped) or -1 with errp
 * set on timeout. */
int nvme_drv_admin(NvmeDrv *drv, NvmeCmd *cmd, uint32_t *dw0, Error **errp);
/* Posts n Asynchronous Event Requests (they complete later). */
bool nvme_drv_post_aers(NvmeDrv *drv, unsigned n, Error **errp);
/* Processes admin completions (events). */
void nvme_drv_poll_admin(NvmeDrv *drv);

/* BAR0 doorbell of queue qid (cq: completion head), always a register
 * write (the shadow doorbells are used by the queues themselves). */
bool nvme_drv_doorbell(NvmeDrv *drv, uint16_t qid, bool cq, uint32_t value,
                       Error **errp);
/* Copies up to max CQEs of queue qid that the controller posted and the
 * driver has not consumed yet, in ring order (nothing is consumed). */
unsigned nvme_drv_peek_cqes(const NvmeDrv *drv, unsigned qid, NvmeCqe *out,
                            unsigned max);
/* Outstanding commands over all I/O queues. */
unsigned nvme_drv_outstanding(const NvmeDrv *drv);

#endif
