/*
 * NVMe controller model (NVMe Base Specification 1.4), transport-neutral.
 *
 * The controller owns BAR0 (registers and doorbells), the MSI-X table and
 * PBA, its submission/completion queues and namespaces on BlockBackends.
 * A transport (vfio-user, or a test's in-process "guest driver") plugs in
 * through NvmeTransportOps: guest memory access, dirty logging and MSI-X
 * delivery. Everything the controller does runs on its EventLoop (the I/O
 * thread): the transport calls nvme_mmio_read/write and the MSI-X helpers
 * on that thread, and block completions arrive there too.
 *
 * Its whole guest-visible state migrates (nvme_ctrl_vmsd); quiesce/resume
 * bracket the save, and nvme_ctrl_migration_check refuses up front any
 * configuration that uses a feature not on the migration allowlist.
 */
#ifndef STORMIG_NVME_NVME_H
#define STORMIG_NVME_NVME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "block/block.h"
#include "util/error.h"
#include "util/keyval.h"
#include "util/loop.h"
#include "vmstate/vmstate.h"

typedef struct NvmeCtrl NvmeCtrl;

/* Completion of an asynchronous guest memory copy (dma_start). */
typedef void NvmeDmaDone(void *ctx, bool ok);

typedef struct NvmeTransportOps {
    /*
     * Translates guest-physical [gpa, gpa+len) to a host pointer. Returns
     * NULL when gpa is not in guest memory the controller can address
     * directly; otherwise *contig is the number of bytes (1..len) mapped
     * contiguously from gpa (a range may span regions: the controller
     * calls again for the rest). May be NULL, then dma_start is used for
     * every access.
     */
    void *(*translate)(void *opaque, uint64_t gpa, uint64_t len,
                       bool is_write, uint64_t *contig);
    /*
     * Asynchronous copy, for guest memory the transport reaches without a
     * host pointer (every access when translate is NULL, else a range
     * translate does not map; optional when translate maps everything):
     * starts copying and returns a handle, or NULL when the copy cannot
     * start. done(ctx, ok) then runs later on the controller's loop,
     * exactly once, unless dma_cancel(handle) comes first. buf stays
     * valid until then.
     */
    void *(*dma_start)(void *opaque, uint64_t gpa, void *buf, size_t len,
                       bool to_guest, NvmeDmaDone *done, void *ctx);
    void (*dma_cancel)(void *opaque, void *handle);
    /* Whether [gpa, gpa+len) is guest memory, asked for a range translate
     * does not map (optional: without it such a range is refused). */
    bool (*range_ok)(void *opaque, uint64_t gpa, uint64_t len);
    /* Guest memory the controller wrote (dirty logging; may be NULL). */
    void (*mark_dirty)(void *opaque, uint64_t gpa, uint64_t len);
    /* Delivers MSI-X vector (table entry already checked unmasked). */
    void (*raise_msix)(void *opaque, uint16_t vector, uint64_t addr,
                       uint32_t data);
} NvmeTransportOps;

/* Limits of this model (compile-time sizes of the migrated arrays). */
#define NVME_MAX_QUEUES     65      /* admin + 64 I/O queue pairs */
#define NVME_MAX_NAMESPACES 16
#define NVME_MAX_VECTORS    65

/* BAR0 holds the registers and one doorbell page; the MSI-X table and PBA
 * live in a separate BAR (NVME_MSIX_BAR) at these offsets. */
#define NVME_BAR0_SIZE      0x4000u
#define NVME_MSIX_BAR       4
#define NVME_MSIX_TABLE_OFF 0x0000u
#define NVME_MSIX_PBA_OFF   0x2000u
#define NVME_MSIX_BAR_SIZE  0x4000u   /* a power of two (PCI 3.0 6.2.5.1) */

/*
 * Creates a controller from properties:
 *   drive=NODE[:NODE...]  namespaces in nsid order (BlockBackend names),
 *   serial=STR (required, at most 20 chars), num-queues=N (I/O queue
 *   pairs, 1..64, default 8), mqes=N (max entries per queue, 2..4096,
 *   default 1024), lbads=9|12 (LBA data size shift, default 9),
 *   dstrd=N (doorbell stride, 0..4), wrr=on|off (weighted round robin
 *   arbitration; not migratable yet, see nvme_ctrl_migration_check).
 * Every key must be consumed (unknown keys are errors). The backends are
 * attached to loop.
 */
NvmeCtrl *nvme_ctrl_new(KeyVal *props, EventLoop *loop,
                        const NvmeTransportOps *ops, void *opaque,
                        Error **errp);
/* Drains in-flight I/O and frees the controller. */
void nvme_ctrl_free(NvmeCtrl *ctrl);

/* BAR0 access: size 4 or 8, offset aligned to size. Reads of undefined
 * registers return 0; bad accesses are logged (rate-limited) and ignored. */
uint64_t nvme_mmio_read(NvmeCtrl *ctrl, uint64_t offset, unsigned size);
void nvme_mmio_write(NvmeCtrl *ctrl, uint64_t offset, unsigned size,
                     uint64_t value);

/* MSI-X table / PBA region (offsets inside NVME_MSIX_BAR). */
uint64_t nvme_msix_read(NvmeCtrl *ctrl, uint64_t offset, unsigned size);
void nvme_msix_write(NvmeCtrl *ctrl, uint64_t offset, unsigned size,
                     uint64_t value);
/* The MSI-X capability's Message Control (PCI config space, transport
 * owned): enable and function mask. */
void nvme_msix_set_control(NvmeCtrl *ctrl, bool enabled, bool func_mask);
unsigned nvme_msix_nr_vectors(const NvmeCtrl *ctrl);

/* Runs queued doorbell work now (the transport normally lets the loop do
 * it). Returns true when anything was processed. */
bool nvme_ctrl_poll(NvmeCtrl *ctrl);

/*
 * Migration. quiesce stops fetching SQ entries and waits (running the
 * controller's loop: call it on that thread or while the loop is not
 * running) until every in-flight command completed; completions that do
 * not fit a full CQ stay pending in the state. resume restarts fetching and
 * posts pending completions as the guest frees CQ slots.
 */
bool nvme_ctrl_quiesce(NvmeCtrl *ctrl, Error **errp);
/*
 * The same without waiting for the transport's asynchronous copies of
 * guest memory (dma_start), which complete, or fail at their deadline,
 * only as the loop runs: true when quiesced at once; false with *later
 * set when done(opaque) runs from the loop once the last command has
 * completed (unless nvme_ctrl_resume or nvme_ctrl_free comes first).
 */
typedef void NvmeQuiescedCb(void *opaque);
bool nvme_ctrl_quiesce_begin(NvmeCtrl *ctrl, NvmeQuiescedCb *done,
                             void *opaque, bool *later);
bool nvme_ctrl_resume(NvmeCtrl *ctrl, Error **errp);
bool nvme_ctrl_is_quiesced(const NvmeCtrl *ctrl);

/* Allowlist: fails naming the first feature in use that is not known to
 * migrate. */
bool nvme_ctrl_migration_check(NvmeCtrl *ctrl, Error **errp);

/* The state of the controller; the section's opaque is the NvmeCtrl. The
 * destination must be created with the same properties. */
extern const VMStateDescription nvme_ctrl_vmsd;

/* Host-side event: namespace nsid changed (e.g. resized); raises a
 * Namespace Attribute Changed notice. */
bool nvme_ctrl_ns_changed(NvmeCtrl *ctrl, uint32_t nsid, Error **errp);

/* Counters for tests and query commands. */
typedef struct NvmeCtrlStats {
    uint64_t commands_completed;
    uint64_t completions_pending;   /* waiting for CQ space */
    uint64_t in_flight;
    uint64_t irqs_raised;
} NvmeCtrlStats;
void nvme_ctrl_get_stats(const NvmeCtrl *ctrl, NvmeCtrlStats *st);

/* A completion waiting for space in its CQ. */
typedef struct NvmeCompletionInfo {
    uint16_t cqid;
    uint16_t sqid;
    uint16_t cid;
    uint16_t status;
} NvmeCompletionInfo;
/* Copies at most max pending completions, in the order they will be
 * posted (the order the controller produced them); returns how many
 * there are in all. */
size_t nvme_ctrl_pending_completions(const NvmeCtrl *ctrl,
                                     NvmeCompletionInfo *out, size_t max);

#endif
