/*
 * vhost-user back end (docs/interop/vhost-user.rst): listens on a unix
 * socket, QEMU connects as the front end and hands over guest memory and
 * virtqueues; the device behind it only sees VirtQueues and kicks.
 *
 * Threads: protocol messages are handled on the main loop; kicks, call
 * notifications and everything that touches a VirtQueue run on the data
 * loop (the controller's I/O thread, or the main loop when none is given).
 * The main loop changes data-path state only through
 * iothread_run_sync(), so the two never race.
 *
 * Stopping a ring (GET_VRING_BASE), changing the memory table and resets
 * first drain: the ring stops handing out chains, and the reply is sent
 * only when the device has pushed every chain it popped. Meanwhile no
 * further message is read from that connection (the front end waits for
 * the reply anyway) and the main loop keeps running.
 */
#ifndef STORMIG_VHOST_USER_VHOST_USER_H
#define STORMIG_VHOST_USER_VHOST_USER_H

#include <stdbool.h>
#include <stdint.h>

#include "util/error.h"
#include "util/loop.h"
#include "vhost-user/iothread.h"
#include "virtio/virtqueue.h"

typedef struct VhostUserDev VhostUserDev;

typedef struct VhostUserDevOps {
    /* Data loop: a started, enabled queue may have new chains. The device
     * pops until NULL, pushes completions (now or later, on the data
     * loop) and calls virtqueue_notify(). */
    void (*queue_kick)(VhostUserDev *dev, VirtQueue *vq, void *opaque);
    /* Data loop, optional: the queue stops; in-flight chains must still be
     * pushed (e.g. cancel or finish queued work). */
    void (*queue_stopping)(VhostUserDev *dev, VirtQueue *vq, void *opaque);
    /* Main loop, optional: a front end connected / the connection ended
     * (after every ring drained). */
    void (*connected)(VhostUserDev *dev, void *opaque);
    void (*disconnected)(VhostUserDev *dev, void *opaque);
    /* Main loop, optional: the front end started a ring (SET_VRING_KICK)
     * or stopped one (after the GET_VRING_BASE reply, a reset or the end
     * of the connection); see vhost_user_dev_rings_started(). */
    void (*rings_changed)(VhostUserDev *dev, void *opaque);
} VhostUserDevOps;

typedef struct VhostUserDevConfig {
    const char *socket_path;    /* NULL: no listener (connections are
                                   given with vhost_user_dev_add_conn) */
    unsigned num_queues;        /* virtqueues, 1..256 */
    uint64_t device_features;   /* device-specific feature bits */
    bool dirty_log;             /* offer VHOST_F_LOG_ALL + LOG_SHMFD; off
                                   makes QEMU refuse migration */
    EventLoop *main_loop;
    IOThread *iothread;         /* data loop; NULL: the main loop */
} VhostUserDevConfig;

VhostUserDev *vhost_user_dev_new(const VhostUserDevConfig *cfg,
                                 const VhostUserDevOps *ops, void *opaque,
                                 Error **errp);
/* Closes the connection (draining its rings) and the listener. */
void vhost_user_dev_free(VhostUserDev *dev);

/* Serves an already connected socket (tests, socket activation). Fails
 * when a connection is active. Takes fd in every case. */
bool vhost_user_dev_add_conn(VhostUserDev *dev, int fd, Error **errp);
bool vhost_user_dev_connected(const VhostUserDev *dev);

/*
 * Device stop/start (VM run state), main loop only. quiesce stops every
 * ring at once and returns; the I/O thread reports by message when
 * nothing is in flight and done(opaque, NULL) runs on the main loop. Past
 * timeout_ms it runs done(opaque, err) instead: the rings stay stopped and
 * the requests still in flight complete whenever their disk answers. One
 * quiesce at a time. resume lets enabled rings run again.
 */
typedef void VhostUserQuiesceDone(void *opaque, Error *err);
void vhost_user_dev_quiesce(VhostUserDev *dev, uint32_t timeout_ms,
                            VhostUserQuiesceDone *done, void *opaque);
/* Stops the rings without waiting: only before a front end connects. */
void vhost_user_dev_quiesce_idle(VhostUserDev *dev);
void vhost_user_dev_resume(VhostUserDev *dev);

/* Rings the front end has started and not stopped since. Main loop. A
 * front end stops every ring when it stops the device (vhost-user.rst
 * "Starting and stopping rings"), e.g. QEMU at the end of its migration. */
unsigned vhost_user_dev_rings_started(const VhostUserDev *dev);

/* One ring as the back end sees it, for query-devices and tests. */
typedef struct VhostUserQueueInfo {
    bool started;               /* has a kick fd (SET_VRING_KICK) */
    bool enabled;               /* SET_VRING_ENABLE */
    bool running;               /* chains are popped now */
    bool ready;                 /* rings mapped */
    bool broken;
    bool has_call_fd;
    uint16_t num;
    uint16_t last_avail_idx, used_idx;
    uint16_t avail_idx, used_event;     /* in guest memory, when ready */
    unsigned inflight;
    uint64_t kicks;             /* kick eventfd reads */
    uint64_t calls;             /* call eventfd writes */
    uint64_t calls_without_fd;  /* notifications with no call fd */
} VhostUserQueueInfo;

/* Main loop. False when index >= num_queues. */
bool vhost_user_dev_queue_info(VhostUserDev *dev, unsigned index,
                               VhostUserQueueInfo *info);

/*
 * The guest pages the device wrote while the dirty log was last on
 * (VHOST_F_LOG_ALL; the record restarts empty when logging starts and
 * is kept after it stops, so a migration source can still answer). A
 * malloc'd array, count in *n (NULL, 0: none). Main loop.
 */
GuestPageRange *vhost_user_dev_written_pages(VhostUserDev *dev, size_t *n);

unsigned vhost_user_dev_num_queues(const VhostUserDev *dev);
/* Negotiated virtio features (0 before SET_FEATURES). */
uint64_t vhost_user_dev_features(const VhostUserDev *dev);
EventLoop *vhost_user_dev_data_loop(const VhostUserDev *dev);
/* Queue 'index' (< num_queues). Data loop only. */
VirtQueue *vhost_user_dev_queue(VhostUserDev *dev, unsigned index);

/*
 * Feeds raw bytes as if read from the connection, without fds (fuzzing).
 * Replies go nowhere. Returns false once the connection was closed.
 */
bool vhost_user_dev_feed(VhostUserDev *dev, const uint8_t *data, size_t len);

#endif
