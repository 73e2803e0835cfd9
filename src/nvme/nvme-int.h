/*
 * NVMe controller internals shared by the files of src/nvme. Everything in
 * NvmeCtrl above the "runtime" marker is guest-visible state and migrates
 * (see migrate.c); the rest is rebuilt.
 */
#ifndef STORMIG_NVME_INT_H
#define STORMIG_NVME_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "nvme/nvme.h"
#include "nvme/nvme-spec.h"

/* Guest structures are little-endian and read in place. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "the NVMe model assumes a little-endian host");

#define NVME_MAX_INFLIGHT   256     /* requests + pending completions */
#define NVME_AERL           3       /* 0-based: four outstanding AERs */
#define NVME_AEN_QUEUE      16
#define NVME_ERRLOG_ENTRIES 16      /* ELPE + 1 */
#define NVME_MDTS           7       /* 2^7 minimum pages = 512 KiB */
#define NVME_MAX_SGL_DESCS  256
#define NVME_MAX_IOV        1024
#define NVME_KAS_MS         100     /* Keep Alive granularity (KAS) */
#define NVME_TEMPERATURE    310     /* Kelvin, reported composite */
#define NVME_TEMP_WARN      343

/* Internal handler results besides NVMe status values: the command stays
 * in flight and completes later / retires without a completion entry. */
#define NVME_STATUS_DEFERRED 0xfffe
#define NVME_STATUS_NO_CQE   0xfffd
/* A data pointer walk (dma.c) goes on with its next read. */
#define NVME_WALK_CONTINUE   0xfffc

#define NVME_SQ_BURST 32    /* commands per SQ per pass (fairness) */

/* Submission queue: every member migrates. */
typedef struct NvmeSQ {
    uint64_t base;                  /* guest address, page aligned */
    uint64_t db_addr;               /* shadow doorbell slot, 0: none */
    uint64_t ei_addr;               /* EventIdx slot, 0: none */
    uint16_t sqid;
    uint16_t cqid;
    uint16_t size;                  /* entries */
    uint16_t head;
    uint16_t tail;
    uint8_t prio;                   /* QPRIO, used with WRR */
} NvmeSQ;

typedef struct NvmeCQ {
    uint64_t base;
    uint64_t db_addr;
    uint64_t ei_addr;
    uint16_t cqid;
    uint16_t size;
    uint16_t head;
    uint16_t tail;
    uint16_t vector;
    bool phase;
    bool irq_enabled;
} NvmeCQ;

typedef struct NvmeMsixEntry {
    uint32_t addr_lo;
    uint32_t addr_hi;
    uint32_t data;
    uint32_t ctrl;                  /* bit 0: masked */
} NvmeMsixEntry;

/* A completion that did not fit its CQ yet, in posting order. */
typedef struct NvmePendingCqe {
    uint32_t dw0;
    uint16_t cqid;
    uint16_t sqid;
    uint16_t cid;
    uint16_t status;
} NvmePendingCqe;

typedef struct NvmeAen {
    uint8_t type;
    uint8_t info;
    uint8_t log_page;
} NvmeAen;

typedef struct NvmeFeatures {
    uint32_t arbitration;
    uint32_t power_state;
    uint16_t temp_over;             /* Kelvin */
    uint16_t temp_under;
    uint32_t error_recovery;
    uint32_t vwc;                   /* bit 0: write cache enabled */
    uint32_t num_queues;            /* NCQA << 16 | NSQA (0-based) */
    uint32_t irq_coalesce;
    uint32_t write_atomic;
    uint32_t async_config;
    uint32_t kato;                  /* ms, 0: disabled */
    bool num_queues_set;
    uint8_t irq_cd[NVME_MAX_VECTORS];   /* coalescing disable per vector */
} NvmeFeatures;

/* SMART / Health counters (5.14.1.2), in raw units. */
typedef struct NvmeSmart {
    uint64_t sectors_read;          /* 512-byte units */
    uint64_t sectors_written;
    uint64_t host_reads;
    uint64_t host_writes;
    uint64_t busy_ms;
    uint64_t power_cycles;
    uint64_t unsafe_shutdowns;
    uint64_t media_errors;
    uint8_t critical_warning;
} NvmeSmart;

/* What a namespace looked like on the source: post_load checks the
 * destination was configured the same way. */
typedef struct NvmeNsInfo {
    uint32_t nsid;
    uint64_t nsze;
    uint8_t lbads;
} NvmeNsInfo;

typedef struct NvmeNamespace {
    BlockBackend *blk;
    uint32_t nsid;
    uint64_t nsze;                  /* blocks */
    uint8_t lbads;
} NvmeNamespace;

/* A guest memory extent of a data transfer. */
typedef struct NvmeSeg {
    uint64_t gpa;
    uint64_t len;
} NvmeSeg;

typedef struct NvmeRequest NvmeRequest;
typedef void NvmeReqDone(NvmeRequest *req, int ret);
/* A command's next step, given the status of the one before. */
typedef void NvmeReqCont(NvmeRequest *req, uint16_t status);

/*
 * An asynchronous guest memory copy the controller waits for (the
 * transport's dma_start, for memory it cannot translate). Embedded in its
 * owner (a request, an SQ fetch, a CQE write); listed in the controller
 * while started, so that quiesce can wait for it and free can cancel it.
 */
typedef struct NvmeDmaOp NvmeDmaOp;
typedef void NvmeDmaOpDone(NvmeDmaOp *op, bool ok);
struct NvmeDmaOp {
    NvmeCtrl *ctrl;
    void *handle;                   /* the transport's, while started */
    NvmeDmaOpDone *done;
    void *owner;
    bool free_owner;                /* owner is malloc'd (CQE writes) */
    NvmeDmaOp *prev, *next;
};

/* Where a data pointer walk (PRP list, 4.3, or SGL segments, 4.4) is
 * between two reads of guest memory. */
typedef struct NvmeWalk {
    uint16_t (*next_read)(NvmeRequest *req, uint64_t *addr, size_t *len);
    uint16_t (*consume)(NvmeRequest *req);
    uint64_t rem;                   /* data bytes not yet described */
    uint64_t list;                  /* PRP list entry / SGL segment addr */
    uint32_t n;                     /* entries read */
    uint32_t in_page;               /* PRP: entries up to the page end */
    NvmeSglDesc seg;                /* SGL: segment descriptor walked */
    uint32_t count, i, total;
    bool in_segment, last_segment;
    NvmeReqCont *cont;
    union {
        uint64_t prp[64];
        NvmeSglDesc sgl[16];
    } buf;
} NvmeWalk;

struct NvmeRequest {
    NvmeCtrl *ctrl;
    NvmeCmd cmd;
    uint16_t sqid;
    bool in_use;
    uint16_t status;
    uint32_t dw0;
    NvmeNamespace *ns;
    uint64_t slba;
    uint64_t bytes;
    /* data transfer */
    NvmeSeg *segs;
    unsigned nsegs;
    unsigned segs_cap;
    struct iovec *iov;
    unsigned iovcnt;
    unsigned iov_cap;
    uint8_t *bounce;                /* when memory is not translatable */
    uint8_t *cmp_buf;               /* Compare: data read from disk */
    bool dev_writes_guest;          /* read-type transfer */
    /* asynchronous guest memory access (dma.c) */
    NvmeWalk walk;
    NvmeDmaOp *ops;                 /* one per extent copied */
    unsigned ops_cap;
    unsigned dma_pending;
    bool dma_failed;
    NvmeReqCont *dma_cont;          /* after a copy */
    NvmeReqCont *data_cont;         /* after nvme_data_from_guest */
    /* asynchronous block requests */
    unsigned aio_pending;
    int aio_ret;
    NvmeReqDone *done;
    uint64_t start_ms;
};

enum {
    /* Features a configuration may use; the allowlist is in migrate.c. */
    NVME_USES_WRR = 1u << 0,
    NVME_USES_SHADOW_DB = 1u << 1,
    NVME_USES_KEEP_ALIVE = 1u << 2,
    NVME_USES_SGL = 1u << 3,
    NVME_USES_MULTI_NS = 1u << 4,
};

/* SQ entries read from memory the transport cannot translate: one read
 * per SQ at a time, its requests reserved (queue.c). */
typedef struct NvmeSqFetch {
    NvmeDmaOp op;
    NvmeCmd cmds[NVME_SQ_BURST];
    NvmeRequest *reqs[NVME_SQ_BURST];
    uint16_t n;
    bool busy;
} NvmeSqFetch;

struct NvmeCtrl {
    /* ---- migrated ---- */
    uint64_t cap;
    uint32_t vs;
    uint32_t intms;
    uint32_t cc;
    uint32_t csts;
    uint32_t aqa;
    uint64_t asq;
    uint64_t acq;
    NvmeSQ *sq[NVME_MAX_QUEUES];
    NvmeCQ *cq[NVME_MAX_QUEUES];
    NvmeMsixEntry msix[NVME_MAX_VECTORS];
    uint8_t msix_pba[(NVME_MAX_VECTORS + 7) / 8];
    bool msix_enabled;
    bool msix_func_mask;
    /* The transport forwards the function's MSI-X table accesses here
     * (set by the first table write): only then do the per-vector mask
     * bits above decide. A VFIO client may instead emulate the table
     * itself and never write it, masking through the transport if at all
     * (vfio-user SET_IRQS MASK/UNMASK), so until then the copy's reset
     * state (every vector masked, PCI Local Bus 3.0 section 6.8.2.9) must
     * not hold interrupts back. */
    bool msix_table_in_use;
    uint8_t irq_due[(NVME_MAX_VECTORS + 7) / 8];   /* see notify_later */
    bool irq_any_due;
    NvmeFeatures feat;
    NvmeSmart smart;
    NvmeErrorLogEntry errlog[NVME_ERRLOG_ENTRIES];
    uint64_t error_count;
    uint64_t timestamp_ms;          /* host timestamp at save */
    bool timestamp_set;
    uint16_t aer_cids[NVME_AERL + 1];
    uint8_t nr_aer;
    NvmeAen aen_queue[NVME_AEN_QUEUE];
    uint8_t nr_aen;
    uint8_t aen_masked;             /* bit per event type */
    uint32_t changed_ns[NVME_MAX_NAMESPACES];
    uint8_t nr_changed_ns;
    NvmePendingCqe pending[NVME_MAX_INFLIGHT];
    uint32_t nr_pending;
    bool dbbuf_enabled;
    uint64_t dbbuf_dbs;
    uint64_t dbbuf_eis;
    NvmeNsInfo ns_info[NVME_MAX_NAMESPACES];
    uint32_t nr_ns_info;
    uint32_t uses;                  /* NVME_USES_* */

    /* ---- runtime ---- */
    EventLoop *loop;
    const NvmeTransportOps *ops;
    void *opaque;
    char serial[21];
    uint32_t num_queues;            /* I/O queue pairs */
    uint32_t mqes;                  /* entries */
    uint8_t dstrd;
    uint8_t lbads;
    bool wrr;
    unsigned shutdown_flushes;
    NvmeNamespace ns[NVME_MAX_NAMESPACES];
    uint32_t nr_ns;
    uint64_t ts_host_base_ms;       /* clock_ms() when timestamp_ms held */
    bool quiesced;
    bool resetting;                 /* CC.EN 1->0 waiting for in-flight */
    bool shutting_down;
    NvmeRequest reqs[NVME_MAX_INFLIGHT];
    unsigned req_next;          /* where the search for a free one starts */
    uint32_t in_flight;
    uint16_t sq_inflight[NVME_MAX_QUEUES];
    NvmeRequest *sq_delete_req[NVME_MAX_QUEUES];
    uint64_t bh_timer;
    uint64_t ka_timer;
    uint64_t last_keepalive_ms;
    NvmeCtrlStats stats;
    /* Asynchronous guest memory access (dma.c, queue.c). */
    NvmeDmaOp *dma_ops;             /* started, not done */
    uint32_t dma_in_flight;
    NvmeSqFetch fetch[NVME_MAX_QUEUES];
    uint16_t cqe_writes[NVME_MAX_QUEUES];   /* CQE writes per cqid */
    bool cq_irq_waits[NVME_MAX_QUEUES];     /* interrupt after them */
    NvmeQuiescedCb *quiesce_cb;     /* nvme_ctrl_quiesce_begin waits */
    void *quiesce_opaque;
    uint64_t quiesce_timer;
};

/* ctrl.c */
void nvme_schedule(NvmeCtrl *ctrl);
void nvme_fatal(NvmeCtrl *ctrl, const char *why);
bool nvme_ctrl_ready(const NvmeCtrl *ctrl);
uint32_t nvme_page_size(const NvmeCtrl *ctrl);
void nvme_check_deferred(NvmeCtrl *ctrl);
void nvme_check_deferred_sq(NvmeCtrl *ctrl, uint16_t sqid);
void nvme_check_deferred_ctrl(NvmeCtrl *ctrl);
/* migrate.c: a pending nvme_ctrl_quiesce_begin may be done. */
void nvme_quiesce_check(NvmeCtrl *ctrl);
void nvme_keepalive_arm(NvmeCtrl *ctrl);
uint64_t nvme_expected_cap(const NvmeCtrl *ctrl);

/* msix.c */
void nvme_msix_notify(NvmeCtrl *ctrl, uint16_t vector);
/* Coalescing: marks vector due; nvme_msix_fire_due (end of each queue
 * pass, and before the state is frozen) raises each due vector once. */
void nvme_msix_notify_later(NvmeCtrl *ctrl, uint16_t vector);
void nvme_msix_fire_due(NvmeCtrl *ctrl);
void nvme_msix_reset(NvmeCtrl *ctrl);

/* dma.c: guest memory. nvme_range_ok: guest memory, reachable directly
 * or by copying. nvme_range_direct, nvme_dma_read/write: memory the
 * transport translates (shadow doorbells), nothing else. */
bool nvme_range_ok(NvmeCtrl *ctrl, uint64_t gpa, uint64_t len);
bool nvme_range_direct(NvmeCtrl *ctrl, uint64_t gpa, uint64_t len);
bool nvme_dma_read(NvmeCtrl *ctrl, uint64_t gpa, void *buf, size_t len);
bool nvme_dma_write(NvmeCtrl *ctrl, uint64_t gpa, const void *buf,
                    size_t len);
/* Bytes copied directly from gpa on (as far as translate maps). */
size_t nvme_dma_direct(NvmeCtrl *ctrl, uint64_t gpa, void *buf, size_t len,
                       bool to_guest);
/* Starts an asynchronous copy (op listed until its done runs). */
bool nvme_dma_op_start(NvmeCtrl *ctrl, NvmeDmaOp *op, uint64_t gpa,
                       void *buf, size_t len, bool to_guest,
                       NvmeDmaOpDone *done, void *owner);
void nvme_dma_cancel_all(NvmeCtrl *ctrl);
/*
 * The steps of a command's data transfer. Each ends by calling cont (or
 * then) with a status: at once when all memory involved is translated,
 * later from the loop when some had to be copied asynchronously.
 * nvme_map_dptr: PRPs / SGL into extents. nvme_req_copy: between buf and
 * the extents. nvme_req_finish_data: after a read-type transfer, the
 * bounce buffer into guest memory, or the pages marked dirty.
 */
void nvme_map_dptr(NvmeRequest *req, uint64_t len, bool admin,
                   NvmeReqCont *cont);
uint16_t nvme_map_iov(NvmeRequest *req);
void nvme_req_copy(NvmeRequest *req, void *buf, size_t len, bool to_guest,
                   NvmeReqCont *cont);
void nvme_req_finish_data(NvmeRequest *req, NvmeReqCont *cont);
/* Admin data: buf (copied) to the guest, then the command completes; or
 * len bytes from the guest into req->bounce, then then() runs. Both
 * return NVME_STATUS_DEFERRED. */
uint16_t nvme_data_to_guest(NvmeRequest *req, const void *buf, size_t len);
uint16_t nvme_data_from_guest(NvmeRequest *req, size_t len, bool admin,
                              NvmeReqCont *then);
void nvme_req_release_data(NvmeRequest *req);

/* queue.c */
NvmeRequest *nvme_req_alloc(NvmeCtrl *ctrl);
void nvme_req_complete(NvmeRequest *req);
/* Completes req with status (an NvmeReqCont). */
void nvme_req_finish(NvmeRequest *req, uint16_t status);
void nvme_post_cqe(NvmeCtrl *ctrl, uint16_t cqid, uint16_t sqid,
                   uint16_t cid, uint16_t status, uint32_t dw0);
void nvme_flush_pending(NvmeCtrl *ctrl, uint16_t cqid);
bool nvme_process_queues(NvmeCtrl *ctrl);
void nvme_doorbell_write(NvmeCtrl *ctrl, uint64_t offset, uint32_t value);
NvmeSQ *nvme_sq_new(NvmeCtrl *ctrl, uint16_t sqid, uint16_t cqid,
                    uint64_t base, uint16_t size, uint8_t prio);
NvmeCQ *nvme_cq_new(NvmeCtrl *ctrl, uint16_t cqid, uint64_t base,
                    uint16_t size, uint16_t vector, bool ien);
void nvme_sq_free(NvmeCtrl *ctrl, uint16_t sqid);
void nvme_cq_free(NvmeCtrl *ctrl, uint16_t cqid);
void nvme_queues_free_all(NvmeCtrl *ctrl);
void nvme_dbbuf_setup_queue(NvmeCtrl *ctrl, uint16_t qid);

/* admin.c */
void nvme_admin_cmd(NvmeRequest *req);
void nvme_sq_delete_finish(NvmeCtrl *ctrl, uint16_t sqid);

/* features.c */
uint16_t nvme_get_features(NvmeRequest *req);
uint16_t nvme_set_features(NvmeRequest *req);
void nvme_features_reset(NvmeCtrl *ctrl);
uint64_t nvme_timestamp_now(const NvmeCtrl *ctrl);

/* events.c: asynchronous events, logs */
void nvme_aen_enqueue(NvmeCtrl *ctrl, uint8_t type, uint8_t info,
                      uint8_t log_page);
uint16_t nvme_aer_submit(NvmeRequest *req);
void nvme_aen_deliver(NvmeCtrl *ctrl);
uint16_t nvme_get_log_page(NvmeRequest *req);
void nvme_error_log_add(NvmeCtrl *ctrl, const NvmeRequest *req,
                        uint16_t status);
void nvme_temperature_check(NvmeCtrl *ctrl);

/* identify.c */
uint16_t nvme_identify(NvmeRequest *req);

/* io.c */
void nvme_io_cmd(NvmeRequest *req);
NvmeNamespace *nvme_ns_get(NvmeCtrl *ctrl, uint32_t nsid);

#endif
