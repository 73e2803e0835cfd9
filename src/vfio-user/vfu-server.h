/*
 * vfio-user server (QEMU docs/interop/vfio-user.rst): serves one PCI device,
 * described by a VfuDeviceDesc and driven through VfuDeviceOps, to one
 * client (the VMM) at a time over a unix socket. The server does not know
 * what device it serves.
 *
 * Everything runs on the EventLoop given at creation; the device's
 * callbacks run there too, and the device-facing functions below
 * (translation, dirty marking, interrupts) must be called on that thread.
 * Dirty bits are set atomically, so a device with its own data thread may
 * call vfu_dma_mark_dirty() there as long as it keeps that thread from
 * running while DMA_MAP / DMA_UNMAP / DMA_LOGGING_START/STOP are handled
 * (the mapping table changes then).
 *
 * Migration follows the v2 protocol: VFIO_USER_DEVICE_FEATURE with
 * MIG_DEVICE_STATE (RUNNING, STOP, STOP_COPY, RESUMING), the state streamed
 * with MIG_DATA_READ / MIG_DATA_WRITE, and DMA dirty page logging with
 * DMA_LOGGING_START / STOP / REPORT. PRE_COPY is not offered.
 *
 * Guest memory mapped with an fd is mmap'ed (the fd must be sealed with
 * F_SEAL_SHRINK, see vfu-dma.c); memory mapped without an fd is reached
 * with VFIO_USER_DMA_READ / DMA_WRITE requests to the client, which are
 * asynchronous (vfu_dma_start): the server sends the request and goes on
 * serving the client's commands; the reply, matched by message id, or
 * the request's deadline completes the transfer from the loop. A client
 * may thus wait for the reply to one of its own commands before it
 * answers ours (QEMU does), and one that never answers fails only that
 * transfer.
 * REGION_WRITE_MULTI and GET_REGION_IO_FDS are answered with ENOTSUP.
 */
#ifndef STORMIG_VFIO_USER_VFU_SERVER_H
#define STORMIG_VFIO_USER_VFU_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/bytes.h"
#include "util/error.h"
#include "util/loop.h"
#include "vfio-user/vfio-user-proto.h"

typedef struct VfuServer VfuServer;

#define VFU_MAX_SPARSE_AREAS 4
#define VFU_MAX_IRQ_COUNT   2048u   /* MSI-X table limit */

typedef struct VfuRegionDesc {
    uint64_t size;              /* 0: the region does not exist */
    bool readable;
    bool writable;
    /* Optional direct mapping: fd >= 0 offers mmap of [0, size) at
     * mmap_offset in fd (the server dup()s it), restricted to the sparse
     * areas when nr_sparse > 0. Accesses outside mappable areas, and every
     * access of a client that does not map, arrive as region_access. */
    int mmap_fd;
    uint64_t mmap_offset;
    unsigned nr_sparse;
    VfuSparseArea sparse[VFU_MAX_SPARSE_AREAS];
} VfuRegionDesc;

typedef struct VfuIrqDesc {
    uint32_t count;             /* 0: this index is not offered */
    bool maskable;              /* SET_IRQS MASK/UNMASK accepted */
} VfuIrqDesc;

typedef struct VfuDeviceDesc {
    VfuRegionDesc regions[VFU_PCI_NUM_REGIONS];
    VfuIrqDesc irqs[VFU_PCI_NUM_IRQS];
    /* Upper bound of the state accepted in RESUMING (0: 64 MiB). */
    size_t max_state_size;
} VfuDeviceDesc;

typedef struct VfuDeviceOps {
    /*
     * Region access by the client. [offset, offset + len) is already
     * checked to lie inside the region and len is 1..max_data_xfer_size.
     * Return false to refuse the access (e.g. a size the register does
     * not support); the client gets EINVAL. The PCI config space is
     * region VFU_PCI_CONFIG_REGION: the device owns its bytes, BAR sizing
     * included.
     */
    bool (*region_access)(void *opaque, unsigned region, uint64_t offset,
                          void *buf, uint32_t len, bool is_write);
    /* VFIO_USER_DEVICE_RESET (optional: without it reset is refused). */
    void (*reset)(void *opaque);
    /* The client masked or unmasked a sub-index (optional). */
    void (*irq_mask_changed)(void *opaque, unsigned index, unsigned subindex,
                             bool masked);
    /* [iova, iova + len) goes away: drop every pointer into it now
     * (optional). Runs before the unmap is answered. */
    void (*dma_unmap)(void *opaque, uint64_t iova, uint64_t len);

    /*
     * Migration (all four or none: without them migration is not
     * offered). quiesce: RUNNING -> STOP, stop touching guest memory and
     * raising interrupts, complete in-flight work. resume: STOP ->
     * RUNNING. save: STOP -> STOP_COPY, append the whole device state to
     * out. load: RESUMING -> STOP, the complete state as written by the
     * client; false (with errp) makes the transition fail and the device
     * enter ERROR until reset.
     */
    bool (*quiesce)(void *opaque, Error **errp);
    /* Optional, used instead of quiesce when set: true when quiesced at
     * once; false with *later set when the device calls
     * vfu_server_quiesce_done() once it is (meanwhile the server handles
     * messages and holds the reply to the state change: a device may
     * wait for its DMA_READ / DMA_WRITE replies); false otherwise (errp
     * set). */
    bool (*quiesce_begin)(void *opaque, bool *later, Error **errp);
    bool (*resume)(void *opaque, Error **errp);
    bool (*save)(void *opaque, ByteBuf *out, Error **errp);
    bool (*load)(void *opaque, const uint8_t *data, size_t len,
                 Error **errp);
} VfuDeviceOps;

typedef struct VfuServerConfig {
    const char *socket_path;    /* NULL: no listener (vfu_server_add_conn
                                   or vfu_server_feed only) */
    EventLoop *loop;
    const VfuDeviceDesc *desc;  /* copied */
    const VfuDeviceOps *ops;    /* kept: must outlive the server */
    void *opaque;
} VfuServerConfig;

/* Creates the server and, with a socket_path, listens on it (a stale
 * socket file at that path is replaced). */
VfuServer *vfu_server_new(const VfuServerConfig *cfg, Error **errp);
/* Closes the connection and the listener; unlinks the socket path. */
void vfu_server_free(VfuServer *s);

/* Serves an already connected socket. Fails when a client is connected.
 * Takes fd in every case. */
bool vfu_server_add_conn(VfuServer *s, int fd, Error **errp);
bool vfu_server_connected(const VfuServer *s);
/*
 * Whether the connected client takes part in migration: it read the
 * migration feature (VFIO_USER_DEVICE_FEATURE with
 * VFIO_DEVICE_FEATURE_MIGRATION, GET) or set a migration state on this
 * connection. False without a client. A client that never does cannot
 * carry the device's state when it migrates (e.g. QEMU 11.1's
 * vfio-user-pci, which offers no migration and registers no blocker).
 */
bool vfu_server_client_migration(const VfuServer *s);
/* Drops the client as on a disconnect: DMA unmapped, IRQ fds closed,
 * device state kept (spec "Client Disconnection"). */
void vfu_server_disconnect(VfuServer *s);

/*
 * Feeds raw bytes as if read from a connection, without fds (fuzzing).
 * Opens a pseudo-connection on first use; replies go nowhere. Returns
 * false once that connection was closed for broken framing.
 */
bool vfu_server_feed(VfuServer *s, const uint8_t *data, size_t len);

/* --- Guest memory (DMA) ---------------------------------------------- */

/* Deadline of one server -> client request, and how many may wait for
 * their replies at once (further transfers queue for a slot, in order). */
#define VFU_REQUEST_TIMEOUT_MS 2000
#define VFU_MAX_DMA_REQUESTS   64

/*
 * Host pointer for [iova, iova + len) in memory the client mapped with an
 * fd and the right permission, or NULL (also for memory mapped without an
 * fd: use vfu_dma_start there). *contig gets the number of bytes
 * (1..len) contiguous from iova; call again for the rest. Pointers stay
 * valid until the ops' dma_unmap for their range.
 */
void *vfu_dma_translate(VfuServer *s, uint64_t iova, uint64_t len,
                        bool is_write, uint64_t *contig);
/* True when all of [iova, iova + len) is client memory (with or without
 * an fd) with the right permission. */
bool vfu_dma_mapped(VfuServer *s, uint64_t iova, uint64_t len,
                    bool is_write);

/*
 * An asynchronous copy between buf and client memory [iova, iova + len)
 * (is_write: into client memory, pages marked dirty). Parts mapped with
 * an fd are copied directly, the others asked of the client in pieces of
 * at most its max_data_xfer_size, each with a deadline of
 * VFU_REQUEST_TIMEOUT_MS. Returns NULL with errp set when it cannot start
 * (len 0, memory not mapped with that permission, no client, out of
 * memory): done is never called then. Otherwise done(opaque, ok) runs
 * exactly once, later, from the loop, unless vfu_dma_cancel comes first;
 * ok is false on a refused, malformed or missing reply or a disconnect.
 * buf must stay valid until then. Loop thread only.
 */
typedef struct VfuDmaXfer VfuDmaXfer;
typedef void VfuDmaDone(void *opaque, bool ok);
VfuDmaXfer *vfu_dma_start(VfuServer *s, uint64_t iova, void *buf,
                          size_t len, bool is_write, VfuDmaDone *done,
                          void *opaque, Error **errp);
/* Forgets a started transfer: done will not run, buf is no longer
 * touched (replies still on their way are dropped). */
void vfu_dma_cancel(VfuServer *s, VfuDmaXfer *x);
/* Transfers started and not yet done. */
unsigned vfu_dma_in_flight(const VfuServer *s);

/* Records a device write for dirty logging (no-op when logging is off).
 * Call it after writing through a translated pointer. */
void vfu_dma_mark_dirty(VfuServer *s, uint64_t iova, uint64_t len);
bool vfu_dma_logging_active(const VfuServer *s);

/* --- Interrupts ------------------------------------------------------ */

/*
 * Signals interrupt subindex of index (e.g. VFU_PCI_MSIX_IRQ, vector).
 * If the client masked it, it is remembered as pending and delivered on
 * unmask. Returns false when no eventfd is set up for it (the interrupt
 * is lost, as on real hardware with the vector not configured).
 */
bool vfu_irq_trigger(VfuServer *s, unsigned index, unsigned subindex);
bool vfu_irq_masked(const VfuServer *s, unsigned index, unsigned subindex);

/* --- Migration ------------------------------------------------------- */

VfuMigState vfu_server_mig_state(const VfuServer *s);
/* The device finished the quiesce its quiesce_begin left running: the
 * state change goes on and is answered. */
void vfu_server_quiesce_done(VfuServer *s);
const char *vfu_mig_state_name(uint32_t state);

#endif
