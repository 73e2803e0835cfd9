/* vfio-user server internals shared by its source files. */
#ifndef STORMIG_VFIO_USER_VFU_INT_H
#define STORMIG_VFIO_USER_VFU_INT_H

#include "vfio-user/vfu-server.h"

/*
 * A handler's outcome: VFU_OK, a positive errno sent back in an error
 * reply, or VFU_CLOSE when the connection must be dropped.
 */
typedef int VfuStatus;
#define VFU_OK      0
#define VFU_CLOSE   (-1)
/* The handler answers later (vfu_send_deferred_reply). */
#define VFU_DEFERRED (-2)

/* One received command. Handlers take fds they keep by setting the slot
 * to -1; the rest are closed after dispatch. */
typedef struct VfuMsg {
    VfuHeader hdr;
    const uint8_t *payload;
    size_t len;                 /* payload bytes (size - header) */
    int *fds;
    size_t nfds;
    ByteBuf *reply;             /* reply payload, header added later */
    int reply_fd;               /* sent with the reply (not owned), or -1 */
    bool close_after;           /* drop the connection after replying */
} VfuMsg;

typedef struct VfuDmaRegion {
    uint64_t iova;
    uint64_t size;
    uint32_t prot;              /* VFU_DMA_FLAG_* */
    uint8_t *host;              /* NULL: mapped without an fd */
    uint64_t *dirty;            /* one bit per log page, when logging */
} VfuDmaRegion;

typedef struct VfuIrqLine {
    int fd;                     /* trigger eventfd, or -1 */
    bool masked;
    bool pending;
} VfuIrqLine;

typedef struct VfuOut VfuOut;
typedef struct VfuConn VfuConn;

/* One DMA_READ / DMA_WRITE message waiting for its reply. */
typedef struct VfuDmaReq {
    VfuServer *s;
    bool busy;
    uint16_t msg_id;
    uint16_t cmd;
    uint64_t iova;
    uint32_t count;
    uint8_t *dst;               /* where a read's data goes */
    VfuDmaXfer *xfer;           /* NULL: its transfer ended, reply ignored */
    uint64_t timer;             /* deadline */
} VfuDmaReq;

struct VfuServer {
    EventLoop *loop;
    VfuDeviceDesc desc;
    const VfuDeviceOps *ops;
    void *opaque;
    char *socket_path;
    int listen_fd;
    VfuConn *conn;

    /* Negotiated with VERSION. */
    bool negotiated;
    /* The client asked for the migration feature (GET of
     * VFIO_DEVICE_FEATURE_MIGRATION) or drove MIG_DEVICE_STATE on this
     * connection: it takes part in migration. */
    bool client_migration;
    uint32_t client_max_fds;
    uint64_t client_max_xfer;

    /* Guest memory, sorted by iova, never overlapping. */
    VfuDmaRegion *dma;
    size_t n_dma;
    bool logging;
    uint64_t log_page;          /* logging granularity (power of two) */
    uint64_t log_bytes;         /* all dirty bitmaps together */

    VfuIrqLine *irqs[VFU_PCI_NUM_IRQS];

    /* Transfers through DMA_READ / DMA_WRITE, oldest first, and their
     * outstanding requests (at most VFU_MAX_DMA_REQUESTS). */
    VfuDmaXfer *xfers;
    VfuDmaReq dma_reqs[VFU_MAX_DMA_REQUESTS];
    unsigned n_dma_reqs;
    uint16_t next_req_id;
    uint64_t dma_pump_timer;

    /* A MIG_DEVICE_STATE SET waiting for the device's quiesce_begin to
     * finish (vfu-migration.c); its reply is owed while connected. */
    bool mig_waiting;
    bool mig_reply_owed;
    uint32_t mig_target;
    uint32_t mig_feature_flags;
    VfuHeader mig_req;

    VfuMigState mig_state;
    ByteBuf mig_data;           /* saved state (source) or written (dest) */
    size_t mig_read_off;
};

/* Server-to-client requests (vfu-server.c): whether one can be sent now
 * (a connected, negotiated client on a real socket); queueing a command
 * of payload then more; writing what is queued unless a handler runs
 * (the dispatcher writes after it). */
bool vfu_server_can_request(const VfuServer *s);
void vfu_send_request(VfuServer *s, uint16_t msg_id, uint16_t cmd,
                      const void *payload, size_t len, const void *more,
                      size_t more_len);
void vfu_conn_kick(VfuServer *s);
/* The reply to req, whose handler returned VFU_DEFERRED. */
void vfu_send_deferred_reply(VfuServer *s, const VfuHeader *req,
                             VfuStatus st, ByteBuf *payload);

/* DMA_READ / DMA_WRITE (vfu-dma-remote.c): a reply from the client,
 * matched to its request by message id; failing every transfer when the
 * connection goes; freeing what is left with the server. */
void vfu_dma_remote_reply(VfuServer *s, const VfuHeader *h,
                          const uint8_t *body, size_t len);
void vfu_dma_remote_fail_all(VfuServer *s);
void vfu_dma_remote_free(VfuServer *s);
VfuDmaRegion *vfu_dma_lookup(VfuServer *s, uint64_t iova);

/* Message helpers (vfu-server.c). Payloads are checked before reading. */
bool vfu_migration_supported(const VfuServer *s);
void vfu_reply_put(VfuMsg *m, const void *data, size_t len);

/* Handlers, one per command (vfu-device.c, vfu-dma.c, vfu-irq.c,
 * vfu-migration.c). */
VfuStatus vfu_handle_version(VfuServer *s, VfuMsg *m);
VfuStatus vfu_handle_device_info(VfuServer *s, VfuMsg *m);
VfuStatus vfu_handle_region_info(VfuServer *s, VfuMsg *m);
VfuStatus vfu_handle_region_read(VfuServer *s, VfuMsg *m);
VfuStatus vfu_handle_region_write(VfuServer *s, VfuMsg *m);
VfuStatus vfu_handle_reset(VfuServer *s, VfuMsg *m);
VfuStatus vfu_handle_dma_map(VfuServer *s, VfuMsg *m);
VfuStatus vfu_handle_dma_unmap(VfuServer *s, VfuMsg *m);
VfuStatus vfu_handle_irq_info(VfuServer *s, VfuMsg *m);
VfuStatus vfu_handle_set_irqs(VfuServer *s, VfuMsg *m);
VfuStatus vfu_handle_feature(VfuServer *s, VfuMsg *m);
VfuStatus vfu_handle_mig_data_read(VfuServer *s, VfuMsg *m);
VfuStatus vfu_handle_mig_data_write(VfuServer *s, VfuMsg *m);

/* Feature sub-handlers (vfu-dma.c). */
VfuStatus vfu_logging_start(VfuServer *s, VfuMsg *m, const uint8_t *data,
                            size_t len);
VfuStatus vfu_logging_stop(VfuServer *s);
VfuStatus vfu_logging_report(VfuServer *s, VfuMsg *m, uint32_t argsz,
                             const uint8_t *data, size_t len);

/* State setup / teardown. */
bool vfu_irqs_init(VfuServer *s, Error **errp);
void vfu_irqs_release(VfuServer *s);     /* closes fds, clears masks */
void vfu_irqs_free(VfuServer *s);
void vfu_dma_unmap_all(VfuServer *s);
void vfu_dma_free(VfuServer *s);
void vfu_migration_reset(VfuServer *s);

#endif
