/*
 * A small blocking vfio-user client: the VMM side of the protocol, for
 * tests and the project's test VM. One request at a time; each call sends
 * a command and waits (with a timeout) for its reply.
 *
 * Calls return false on failure with errp set; when the server answered
 * with an error reply, vfu_client_last_errno() gives its errno (it is 0
 * after a success and after a transport failure).
 *
 * Memory mapped without an fd (vfu_client_dma_map_mem) is served to the
 * server's DMA_READ / DMA_WRITE requests: while waiting for any reply the
 * client answers them, and an idle client must call vfu_client_serve()
 * when its socket becomes readable (a request the client leaves
 * unanswered past the server's deadline fails the device's transfer, see
 * vfu-server.h).
 */
#ifndef STORMIG_VFIO_USER_VFU_CLIENT_H
#define STORMIG_VFIO_USER_VFU_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/bytes.h"
#include "util/error.h"
#include "vfio-user/vfio-user-proto.h"

typedef struct VfuClient VfuClient;

/* What the server announced in its VERSION reply. */
typedef struct VfuClientCaps {
    uint16_t major;
    uint16_t minor;
    uint32_t max_msg_fds;
    uint64_t max_data_xfer;
    uint64_t max_dma_maps;
    uint64_t pgsizes;
} VfuClientCaps;

VfuClient *vfu_client_connect(const char *path, Error **errp);
/* Uses an already connected socket (takes it). */
VfuClient *vfu_client_new_fd(int fd, Error **errp);
void vfu_client_free(VfuClient *c);
int vfu_client_fd(const VfuClient *c);
int vfu_client_last_errno(const VfuClient *c);
/* Reply wait limit in ms (default 10000). */
void vfu_client_set_timeout(VfuClient *c, int timeout_ms);

/* VERSION 0.1 with this client's capabilities. */
bool vfu_client_negotiate(VfuClient *c, Error **errp);
const VfuClientCaps *vfu_client_caps(const VfuClient *c);

/*
 * Any command: sends payload (and fds) and waits for the reply with the
 * same id. *reply (malloc'd, may be NULL when empty) and *reply_len get
 * the reply payload, *reply_fd an fd that came with it (or -1); each of
 * the three may be NULL.
 */
bool vfu_client_request(VfuClient *c, uint16_t cmd, const void *payload,
                        size_t len, const int *fds, size_t nfds,
                        uint8_t **reply, size_t *reply_len, int *reply_fd,
                        Error **errp);
/* Raw bytes (e.g. a malformed message) and one raw message back. */
bool vfu_client_send_raw(VfuClient *c, const void *buf, size_t len,
                         const int *fds, size_t nfds, Error **errp);
bool vfu_client_recv(VfuClient *c, VfuHeader *hdr, uint8_t **payload,
                     int *fd, Error **errp);

bool vfu_client_device_info(VfuClient *c, VfuDeviceInfo *info, Error **errp);
/* areas (up to max_areas) and *nr_areas get the sparse mmap areas; *fd the
 * mmap fd when the region is mappable, else -1. Pointers may be NULL. */
bool vfu_client_region_info(VfuClient *c, uint32_t index, VfuRegionInfo *info,
                            VfuSparseArea *areas, unsigned max_areas,
                            unsigned *nr_areas, int *fd, Error **errp);
/* Split into max_data_xfer pieces. */
bool vfu_client_region_read(VfuClient *c, uint32_t region, uint64_t offset,
                            void *buf, size_t len, Error **errp);
bool vfu_client_region_write(VfuClient *c, uint32_t region, uint64_t offset,
                             const void *buf, size_t len, Error **errp);

/* fd < 0: no fd (the server would need DMA_READ/WRITE for it). prot is
 * VFU_DMA_FLAG_READ | VFU_DMA_FLAG_WRITE. */
bool vfu_client_dma_map(VfuClient *c, uint64_t iova, uint64_t size, int fd,
                        uint64_t fd_offset, uint32_t prot, Error **errp);
/* Maps [iova, iova + size) without an fd; the server's DMA_READ /
 * DMA_WRITE requests for it are answered from host (which must stay
 * valid until the unmap). */
bool vfu_client_dma_map_mem(VfuClient *c, uint64_t iova, uint64_t size,
                            void *host, uint32_t prot, Error **errp);
bool vfu_client_dma_unmap(VfuClient *c, uint64_t iova, uint64_t size,
                          Error **errp);
/* Answers the server's requests: waits up to timeout_ms for the first,
 * then takes what is already there. Returns how many were answered, or
 * -1 with errp set (broken connection, or a reply nobody waits for). */
int vfu_client_serve(VfuClient *c, int timeout_ms, Error **errp);
/* DMA_READ / DMA_WRITE requests answered so far. */
uint64_t vfu_client_dma_requests(const VfuClient *c);

bool vfu_client_irq_info(VfuClient *c, uint32_t index, VfuIrqInfo *info,
                         Error **errp);
/* Assigns count trigger eventfds from start; fds NULL de-assigns them. */
bool vfu_client_set_irq_eventfds(VfuClient *c, uint32_t index, uint32_t start,
                                 uint32_t count, const int *fds,
                                 Error **errp);
/* DATA_NONE (bools NULL) or DATA_BOOL with an action flag
 * (VFU_IRQ_SET_ACTION_MASK / UNMASK / TRIGGER). */
bool vfu_client_set_irqs(VfuClient *c, uint32_t index, uint32_t start,
                         uint32_t count, uint32_t action,
                         const uint8_t *bools, Error **errp);
bool vfu_client_reset(VfuClient *c, Error **errp);

/* Migration (v2): feature probe, state get/set, data stream. */
bool vfu_client_mig_flags(VfuClient *c, uint64_t *flags, Error **errp);
bool vfu_client_mig_get_state(VfuClient *c, uint32_t *state, Error **errp);
bool vfu_client_mig_set_state(VfuClient *c, uint32_t state, Error **errp);
/* One MIG_DATA_READ of at most cap bytes; *got < cap means the end. */
bool vfu_client_mig_read(VfuClient *c, void *buf, uint32_t cap,
                         uint32_t *got, Error **errp);
/* Reads until the end of the stream, appending to out. */
bool vfu_client_mig_read_all(VfuClient *c, ByteBuf *out, Error **errp);
bool vfu_client_mig_write(VfuClient *c, const void *data, size_t len,
                          Error **errp);

/* Dirty page logging. ranges may be NULL with n 0 (everything). */
bool vfu_client_dirty_start(VfuClient *c, uint64_t page_size,
                            const VfuLoggingRange *ranges, uint32_t n,
                            uint64_t *page_used, Error **errp);
bool vfu_client_dirty_stop(VfuClient *c, Error **errp);
/* bitmap must hold one bit per page of [iova, iova + length), in u64s. */
bool vfu_client_dirty_report(VfuClient *c, uint64_t iova, uint64_t length,
                             uint64_t page_size, uint64_t *bitmap,
                             size_t words, Error **errp);

#endif
