/* Internal state of a vhost-user back end, shared by the connection code
 * (vhost-user.c) and the message handlers (vhost-user-handlers.c). */
#ifndef STORMIG_VHOST_USER_INT_H
#define STORMIG_VHOST_USER_INT_H

#include "vhost-user/vhost-user.h"
#include "vhost-user/vhost-user-proto.h"

#include <sys/types.h>

typedef struct VuQueue {
    VirtQueue vq;               /* data loop only, after setup */
    VhostUserDev *dev;
    int kick_fd, call_fd, err_fd;
    bool started;               /* has a kick fd, until GET_VRING_BASE */
    bool enabled;               /* SET_VRING_ENABLE */
    bool draining, drained;
    uint64_t kicks, calls, calls_without_fd;    /* statistics */
} VuQueue;

/* What a handler asks the connection to do next. */
typedef enum VuResult {
    VU_DONE,        /* handled; REPLY_ACK 0 when requested */
    VU_REPLY,       /* send msg->payload (msg->size bytes) as the reply */
    VU_DEFER,       /* reply later (after a drain) */
    VU_NACK,        /* failed; REPLY_ACK non-zero, or close without it */
    VU_CLOSE,       /* protocol violation: close with dev->close_reason */
} VuResult;

typedef void VuCont(VhostUserDev *dev);

typedef struct VuMapping {
    void *addr;
    size_t len;
} VuMapping;

typedef struct VuQuiesce VuQuiesce;

struct VhostUserDev {
    VhostUserDevConfig cfg;
    char *socket_path;
    const VhostUserDevOps *ops;
    void *opaque;
    EventLoop *main_loop;
    EventLoop *data_loop;

    int listen_fd;
    /* The socket file while it is ours: another device must not unlink
     * it (main loop only). */
    dev_t socket_dev;
    ino_t socket_ino;
    struct VhostUserDev *next_listening;
    int conn_fd;
    bool feed_mode;             /* bytes come from vhost_user_dev_feed */
    bool conn_open;
    bool tearing_down;          /* the connection ended, rings not reset */
    bool teardown_running;      /* its drain has started */

    uint8_t rx[VHOST_USER_HDR_SIZE + VHOST_USER_PAYLOAD_MAX];
    size_t rx_len;
    int rx_fds[VHOST_USER_MAX_FDS];
    unsigned rx_nfds;

    /* A message whose reply waits for a drain. */
    bool paused;
    VhostUserMsg pending;
    VuCont *drain_cont;
    unsigned drain_pending;     /* data loop */
    bool drain_async;           /* data loop: completion must be posted */
    bool drain_done_sync;
    const char *close_reason;

    uint64_t offered_features, offered_protocol;
    uint64_t features, protocol_features;
    bool features_set;

    GuestMemory mem;            /* changed on the data loop only */
    VuMapping maps[GUEST_MEM_MAX_REGIONS];
    unsigned nmaps;
    GuestMemory new_mem;        /* SET_MEM_TABLE waiting for a drain */
    VuMapping new_maps[GUEST_MEM_MAX_REGIONS];
    unsigned new_nmaps;
    VuMapping log_map;
    uint8_t *log_base;
    uint64_t log_size;
    int log_fd;
    /* Pages the device wrote while logging (guest-mem.h "written"); kept
     * across connections so it can be read after a migration. */
    uint8_t *written;
    uint64_t written_size;
    bool log_on;                /* data loop: VHOST_F_LOG_ALL applied */

    bool quiesced;
    VuQuiesce *quiesce;             /* main loop: the stop being waited for */
    VuQuiesce *quiesce_waiting;     /* data loop: to report when idle */
    VuQueue *queues;
};

/* vhost-user.c */
void vu_send_reply(VhostUserDev *dev, VhostUserMsg *msg);
void vu_begin_drain(VhostUserDev *dev, int index, VuCont *cont);
void vu_finish_deferred(VhostUserDev *dev, VuResult res);
void vu_run_data(VhostUserDev *dev, LoopFunc *fn, void *opaque);
void vu_queue_update(VuQueue *q);
void vu_queue_call(VuQueue *q);
void vu_queue_teardown(VuQueue *q);
bool vu_queue_set_kick(VuQueue *q, int fd, Error **errp);
void vu_apply_log(void *opaque);
void vu_install_written(VhostUserDev *dev, uint64_t size);
void vu_unmap_all(VuMapping *maps, unsigned n);
void vu_rings_changed(VhostUserDev *dev);

/* vhost-user-handlers.c */
VuResult vu_dispatch(VhostUserDev *dev, VhostUserMsg *msg);
void vu_reset_state(VhostUserDev *dev);

#endif
