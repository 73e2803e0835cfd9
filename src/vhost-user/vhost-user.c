/* vhost-user back end: listener, connection framing, replies, draining
 * and the data-loop side of each queue. Message semantics are in
 * vhost-user-handlers.c. */
#include "vhost-user/vhost-user-int.h"
#include "util/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static void conn_close(VhostUserDev *dev, const char *reason);
static void conn_readable(EventLoop *loop, int fd, int mask, void *opaque);

/* ---- data loop side of a queue ---- */

void vu_run_data(VhostUserDev *dev, LoopFunc *fn, void *opaque)
{
    iothread_run_sync(dev->cfg.iothread, fn, opaque);
}

/* Data loop: interrupts the driver through the call eventfd. */
void vu_queue_call(VuQueue *q)
{
    uint64_t one = 1;
    if (q->call_fd < 0) {
        q->calls_without_fd++;
        return;
    }
    q->calls++;
    if (write(q->call_fd, &one, sizeof(one)) < 0 && errno != EAGAIN) {
        log_ratelimited(LOG_WARN, "vhost-user: queue %u: call eventfd: %s",
                        q->vq.index, strerror(errno));
    }
}

static void queue_notify(VirtQueue *vq, void *opaque)
{
    vu_queue_call(opaque);
}

static void queue_broken(VirtQueue *vq, void *opaque)
{
    VuQueue *q = opaque;
    uint64_t one = 1;
    /* vhost-user.rst SET_VRING_ERR: signalled when the ring hits an error. */
    if (q->err_fd >= 0 && write(q->err_fd, &one, sizeof(one)) < 0) {
        log_ratelimited(LOG_WARN, "vhost-user: queue %u: err eventfd: %s",
                        vq->index, strerror(errno));
    }
}

static void drain_complete_main(void *opaque);
static void teardown_done(VhostUserDev *dev);

static unsigned dev_inflight(const VhostUserDev *dev);
static void quiesce_report(VhostUserDev *dev);
static void quiesce_finish(VuQuiesce *q, Error *err);

static void queue_idle(VirtQueue *vq, void *opaque)
{
    VuQueue *q = opaque;
    VhostUserDev *dev = q->dev;
    if (dev->quiesce_waiting && dev_inflight(dev) == 0) {
        quiesce_report(dev);
    }
    if (!q->draining || q->drained) {
        return;
    }
    q->drained = true;
    if (--dev->drain_pending == 0 && dev->drain_async) {
        dev->drain_async = false;
        loop_post(dev->main_loop, drain_complete_main, dev);
    }
}

static const VirtQueueHooks queue_hooks = {
    .notify = queue_notify,
    .broken = queue_broken,
    .idle = queue_idle,
};

void vu_queue_update(VuQueue *q)
{
    bool run = q->started && q->enabled && !q->draining &&
               !q->dev->quiesced && virtqueue_is_ready(&q->vq);
    bool was_running = !q->vq.stopped;
    virtqueue_set_stopped(&q->vq, !run);
    if (run && !was_running && q->dev->ops->queue_kick) {
        /* Chains may have been added while we were not looking. */
        q->dev->ops->queue_kick(q->dev, &q->vq, q->dev->opaque);
    }
}

static void kick_readable(EventLoop *loop, int fd, int mask, void *opaque)
{
    VuQueue *q = opaque;
    uint64_t v;
    q->kicks++;
    if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN) {
        log_ratelimited(LOG_WARN, "vhost-user: queue %u: kick eventfd: %s",
                        q->vq.index, strerror(errno));
    }
    if (!q->vq.stopped && q->dev->ops->queue_kick) {
        q->dev->ops->queue_kick(q->dev, &q->vq, q->dev->opaque);
    }
}

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* Data loop: forget the ring completely (nothing may be in flight). */
void vu_queue_teardown(VuQueue *q)
{
    if (q->kick_fd >= 0) {
        loop_del_fd(q->dev->data_loop, q->kick_fd);
    }
    close_fd(&q->kick_fd);
    close_fd(&q->call_fd);
    close_fd(&q->err_fd);
    q->started = q->enabled = false;
    q->draining = q->drained = false;
    virtqueue_reset(&q->vq);
    q->vq.stopped = true;
}

bool vu_queue_set_kick(VuQueue *q, int fd, Error **errp)
{
    bool replaced = q->kick_fd >= 0;
    if (replaced) {
        loop_del_fd(q->dev->data_loop, q->kick_fd);
        close_fd(&q->kick_fd);
    }
    if (!loop_add_fd(q->dev->data_loop, fd, LOOP_READ, kick_readable, q,
                     errp)) {
        close(fd);
        return false;
    }
    q->kick_fd = fd;
    if (replaced && !q->vq.stopped && q->dev->ops->queue_kick) {
        /* A kick on the replaced eventfd may never have been read. */
        q->dev->ops->queue_kick(q->dev, &q->vq, q->dev->opaque);
    }
    return true;
}

/* Data loop: the dirty log is live only with VHOST_F_LOG_ALL. The
 * written record restarts empty each time logging starts. */
void vu_apply_log(void *opaque)
{
    VhostUserDev *dev = opaque;
    bool on = dev->features & BIT_ULL(VHOST_F_LOG_ALL);
    if (on && !dev->log_on && dev->written) {
        memset(dev->written, 0, dev->written_size);
    }
    dev->log_on = on;
    dev->mem.log = on ? dev->log_base : NULL;
    dev->mem.log_size = on ? dev->log_size : 0;
    bool keep = on && dev->log_base && dev->written;
    dev->mem.written = keep ? dev->written : NULL;
    dev->mem.written_size = keep ? dev->written_size : 0;
}

typedef struct WrittenSwap {
    VhostUserDev *dev;
    uint8_t *buf;
    uint64_t size;
} WrittenSwap;

static void swap_written(void *opaque)
{
    WrittenSwap *w = opaque;
    VhostUserDev *dev = w->dev;
    /* A new log while logging is on (QEMU resizes it when guest memory
     * grows) must not forget what was written so far. */
    if (dev->log_on && dev->written) {
        memcpy(w->buf, dev->written, w->size < dev->written_size ?
                                    w->size : dev->written_size);
    }
    uint8_t *old = dev->written;
    dev->written = w->buf;
    dev->written_size = w->size;
    w->buf = old;
    vu_apply_log(dev);
}

/* Main loop, at SET_LOG_BASE: a record as large as the new log. On
 * allocation failure the old one stays (and stops being updated). */
void vu_install_written(VhostUserDev *dev, uint64_t size)
{
    WrittenSwap w = { dev, calloc(1, size), size };
    if (!w.buf) {
        log_ratelimited(LOG_WARN, "vhost-user: no memory for the record "
                        "of written pages");
        vu_run_data(dev, vu_apply_log, dev);
        return;
    }
    vu_run_data(dev, swap_written, &w);
    free(w.buf);
}

typedef struct WrittenQuery {
    VhostUserDev *dev;
    GuestPageRange *ranges;
    size_t n;
} WrittenQuery;

static void query_written(void *opaque)
{
    WrittenQuery *q = opaque;
    if (q->dev->written) {
        q->ranges = guest_page_bitmap_ranges(q->dev->written,
                                             q->dev->written_size, &q->n);
    }
}

GuestPageRange *vhost_user_dev_written_pages(VhostUserDev *dev, size_t *n)
{
    WrittenQuery q = { dev, NULL, 0 };
    vu_run_data(dev, query_written, &q);
    *n = q.n;
    return q.ranges;
}

void vu_unmap_all(VuMapping *maps, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        if (maps[i].addr) {
            munmap(maps[i].addr, maps[i].len);
            maps[i].addr = NULL;
        }
    }
}

/* ---- draining ---- */

typedef struct DrainStart {
    VhostUserDev *dev;
    int index;          /* -1: every queue */
} DrainStart;

static void drain_start(void *opaque)
{
    DrainStart *d = opaque;
    VhostUserDev *dev = d->dev;
    unsigned first = d->index < 0 ? 0 : (unsigned)d->index;
    unsigned last = d->index < 0 ? dev->cfg.num_queues : first + 1;
    dev->drain_async = false;
    dev->drain_pending = last - first;
    for (unsigned i = first; i < last; i++) {
        VuQueue *q = &dev->queues[i];
        q->draining = true;
        q->drained = false;
        if (dev->ops->queue_stopping && q->vq.inflight) {
            dev->ops->queue_stopping(dev, &q->vq, dev->opaque);
        }
        vu_queue_update(q);     /* stops it; idle fires when empty */
        if (!q->drained && !q->vq.inflight) {
            queue_idle(&q->vq, q);
        }
    }
    dev->drain_done_sync = dev->drain_pending == 0;
    dev->drain_async = !dev->drain_done_sync;
}

static void drain_clear(void *opaque)
{
    VhostUserDev *dev = opaque;
    for (unsigned i = 0; i < dev->cfg.num_queues; i++) {
        VuQueue *q = &dev->queues[i];
        if (q->draining) {
            q->draining = q->drained = false;
            vu_queue_update(q);
        }
    }
}

static void drain_complete_main(void *opaque)
{
    VhostUserDev *dev = opaque;
    VuCont *cont = dev->drain_cont;
    dev->drain_cont = NULL;
    if (cont) {
        cont(dev);
    }
    vu_run_data(dev, drain_clear, dev);
    if (dev->tearing_down && !dev->teardown_running) {
        /* The connection ended while another drain ran. */
        dev->teardown_running = true;
        vu_begin_drain(dev, -1, teardown_done);
    }
}

/*
 * Stops queue 'index' (or all, -1) and runs cont on the main loop once
 * nothing is in flight. The connection reads nothing meanwhile.
 */
void vu_begin_drain(VhostUserDev *dev, int index, VuCont *cont)
{
    DrainStart d = { dev, index };
    dev->drain_cont = cont;
    dev->paused = true;
    if (dev->conn_fd >= 0) {
        loop_set_fd_mask(dev->main_loop, dev->conn_fd, 0, NULL);
    }
    vu_run_data(dev, drain_start, &d);
    if (dev->drain_done_sync) {
        drain_complete_main(dev);
    }
}

/* ---- replies ---- */

static bool conn_write(VhostUserDev *dev, const void *buf, size_t len)
{
    if (dev->feed_mode) {
        return true;
    }
    ssize_t n = send(dev->conn_fd, buf, len, MSG_NOSIGNAL);
    return n == (ssize_t)len;
}

void vu_send_reply(VhostUserDev *dev, VhostUserMsg *msg)
{
    if (!dev->conn_open) {
        return;
    }
    uint8_t buf[VHOST_USER_HDR_SIZE + VHOST_USER_PAYLOAD_MAX];
    msg->flags = VHOST_USER_VERSION | VHOST_USER_REPLY_MASK;
    memcpy(buf, &msg->request, 4);
    memcpy(buf + 4, &msg->flags, 4);
    memcpy(buf + 8, &msg->size, 4);
    memcpy(buf + VHOST_USER_HDR_SIZE, &msg->payload, msg->size);
    if (!conn_write(dev, buf, VHOST_USER_HDR_SIZE + msg->size)) {
        conn_close(dev, "cannot send a reply");
    }
}

static void send_ack(VhostUserDev *dev, uint32_t request, uint64_t value)
{
    VhostUserMsg ack = { .request = request, .size = 8 };
    ack.payload.u64 = value;
    vu_send_reply(dev, &ack);
}

/* Completes the message being handled (now or after a drain). */
static void complete_msg(VhostUserDev *dev, VhostUserMsg *msg, VuResult res)
{
    /* vhost-user.rst "REPLY_ACK": answer a NEED_REPLY request that has no
     * reply of its own with 0 (success) or non-zero (failure). */
    bool ack = (dev->protocol_features &
                BIT_ULL(VHOST_USER_PROTOCOL_F_REPLY_ACK)) &&
               (msg->flags & VHOST_USER_NEED_REPLY_MASK) &&
               !vhost_user_has_reply(msg->request);
    switch (res) {
    case VU_DONE:
        if (ack) {
            send_ack(dev, msg->request, 0);
        }
        break;
    case VU_REPLY:
        vu_send_reply(dev, msg);
        break;
    case VU_NACK:
        if (ack) {
            send_ack(dev, msg->request, 1);
            break;
        }
        conn_close(dev, dev->close_reason ? dev->close_reason
                                          : "request failed");
        break;
    case VU_CLOSE:
        conn_close(dev, dev->close_reason);
        break;
    case VU_DEFER:
        break;
    }
}

static bool process_rx(VhostUserDev *dev);

void vu_finish_deferred(VhostUserDev *dev, VuResult res)
{
    complete_msg(dev, &dev->pending, res);
    dev->paused = false;
    if (dev->conn_open && !dev->feed_mode) {
        loop_set_fd_mask(dev->main_loop, dev->conn_fd, LOOP_READ, NULL);
    }
}

/* ---- receiving ---- */

static void close_rx_fds(VhostUserDev *dev)
{
    for (unsigned i = 0; i < dev->rx_nfds; i++) {
        close(dev->rx_fds[i]);
    }
    dev->rx_nfds = 0;
}

static void dispatch_rx(VhostUserDev *dev)
{
    VhostUserMsg *msg = &dev->pending;
    memset(msg, 0, offsetof(VhostUserMsg, fds));
    memcpy(&msg->request, dev->rx, 4);
    memcpy(&msg->flags, dev->rx + 4, 4);
    memcpy(&msg->size, dev->rx + 8, 4);
    memcpy(&msg->payload, dev->rx + VHOST_USER_HDR_SIZE, msg->size);
    memcpy(msg->fds, dev->rx_fds, sizeof(int) * dev->rx_nfds);
    msg->nfds = dev->rx_nfds;
    dev->rx_nfds = 0;
    dev->rx_len = 0;

    const char *err = vhost_user_check_msg(msg);
    VuResult res;
    if (err) {
        dev->close_reason = err;
        res = VU_CLOSE;
    } else {
        log_debug("vhost-user: %s", vhost_user_request_name(msg->request));
        res = vu_dispatch(dev, msg);
    }
    for (unsigned i = 0; i < msg->nfds; i++) {
        if (msg->fds[i] >= 0) {     /* handlers take the fds they keep */
            close(msg->fds[i]);
            msg->fds[i] = -1;
        }
    }
    if (err) {
        log_ratelimited(LOG_WARN, "vhost-user: bad %s message",
                        vhost_user_request_name(msg->request));
    }
    complete_msg(dev, msg, res);
}

/* Bytes still needed for the message being received. */
static size_t rx_want(const VhostUserDev *dev)
{
    if (dev->rx_len < VHOST_USER_HDR_SIZE) {
        return VHOST_USER_HDR_SIZE - dev->rx_len;
    }
    uint32_t size;
    memcpy(&size, dev->rx + 8, 4);
    return VHOST_USER_HDR_SIZE + size - dev->rx_len;
}

/* After new bytes: validates a completed header, dispatches a completed
 * message. Returns false when the connection was closed. */
static bool process_rx(VhostUserDev *dev)
{
    if (dev->rx_len == VHOST_USER_HDR_SIZE) {
        uint32_t req, flags, size;
        memcpy(&req, dev->rx, 4);
        memcpy(&flags, dev->rx + 4, 4);
        memcpy(&size, dev->rx + 8, 4);
        const char *err = vhost_user_check_header(req, flags, size);
        if (err) {
            conn_close(dev, err);
            return false;
        }
    }
    if (dev->rx_len >= VHOST_USER_HDR_SIZE && rx_want(dev) == 0) {
        dispatch_rx(dev);
    }
    return dev->conn_open;
}

static bool take_fds(VhostUserDev *dev, struct msghdr *mh)
{
    bool ok = !(mh->msg_flags & MSG_CTRUNC);
    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
            continue;
        }
        unsigned n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        int fds[VHOST_USER_MAX_FDS * 2];
        memcpy(fds, CMSG_DATA(c), n * sizeof(int));
        for (unsigned i = 0; i < n; i++) {
            if (dev->rx_nfds < VHOST_USER_MAX_FDS) {
                dev->rx_fds[dev->rx_nfds++] = fds[i];
            } else {
                close(fds[i]);
                ok = false;
            }
        }
    }
    return ok;
}

static void conn_readable(EventLoop *loop, int fd, int mask, void *opaque)
{
    VhostUserDev *dev = opaque;
    while (dev->conn_open && !dev->paused) {
        char cbuf[CMSG_SPACE(sizeof(int) * VHOST_USER_MAX_FDS)];
        struct iovec iov = { dev->rx + dev->rx_len, rx_want(dev) };
        struct msghdr mh = {
            .msg_iov = &iov, .msg_iovlen = 1,
            .msg_control = cbuf, .msg_controllen = sizeof(cbuf),
        };
        ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            return;
        }
        if (n <= 0) {
            conn_close(dev, n == 0 ? NULL : "read error");
            return;
        }
        if (!take_fds(dev, &mh)) {
            conn_close(dev, "too many file descriptors");
            return;
        }
        dev->rx_len += (size_t)n;
        if (!process_rx(dev)) {
            return;
        }
    }
}

bool vhost_user_dev_feed(VhostUserDev *dev, const uint8_t *data, size_t len)
{
    while (len > 0 && dev->conn_open) {
        if (dev->paused) {
            return dev->conn_open;  /* the front end would wait too */
        }
        size_t n = rx_want(dev);
        n = n < len ? n : len;
        memcpy(dev->rx + dev->rx_len, data, n);
        dev->rx_len += n;
        data += n;
        len -= n;
        if (!process_rx(dev)) {
            break;
        }
    }
    return dev->conn_open;
}

/* ---- connection lifetime ---- */

static void listen_readable(EventLoop *loop, int fd, int mask, void *opaque);

static void teardown_all_queues(void *opaque);

static void teardown_done(VhostUserDev *dev)
{
    /* Rings first: nothing may point into memory about to be unmapped. */
    vu_run_data(dev, teardown_all_queues, dev);
    vu_reset_state(dev);
    dev->tearing_down = false;
    dev->teardown_running = false;
    dev->paused = false;
    if (dev->ops->disconnected) {
        dev->ops->disconnected(dev, dev->opaque);
    }
    vu_rings_changed(dev);
    if (dev->listen_fd >= 0) {
        loop_set_fd_mask(dev->main_loop, dev->listen_fd, LOOP_READ, NULL);
    }
}

static void conn_close(VhostUserDev *dev, const char *reason)
{
    if (!dev->conn_open) {
        return;
    }
    if (reason) {
        log_ratelimited(LOG_WARN, "vhost-user %s: closing connection: %s",
                        dev->socket_path ? dev->socket_path : "(fd)",
                        reason);
    } else {
        log_info("vhost-user %s: front end disconnected",
                 dev->socket_path ? dev->socket_path : "(fd)");
    }
    dev->conn_open = false;
    if (dev->conn_fd >= 0) {
        loop_del_fd(dev->main_loop, dev->conn_fd);
        close(dev->conn_fd);
        dev->conn_fd = -1;
    }
    close_rx_fds(dev);
    dev->rx_len = 0;
    dev->tearing_down = true;
    if (dev->paused) {
        /* A drain is running: its continuation sees the closed
         * connection; the teardown drain follows it. */
        return;
    }
    dev->teardown_running = true;
    vu_begin_drain(dev, -1, teardown_done);
}

static bool conn_start(VhostUserDev *dev, int fd, Error **errp)
{
    if (dev->conn_open || dev->tearing_down) {
        error_setg(errp, "vhost-user: a front end is already connected");
        close(fd);
        return false;
    }
    if (fd >= 0 && !loop_add_fd(dev->main_loop, fd, LOOP_READ, conn_readable,
                                dev, errp)) {
        close(fd);
        return false;
    }
    dev->conn_fd = fd;
    dev->conn_open = true;
    dev->rx_len = 0;
    if (dev->listen_fd >= 0) {
        loop_set_fd_mask(dev->main_loop, dev->listen_fd, 0, NULL);
    }
    if (dev->ops->connected) {
        dev->ops->connected(dev, dev->opaque);
    }
    return true;
}

bool vhost_user_dev_add_conn(VhostUserDev *dev, int fd, Error **errp)
{
    dev->feed_mode = fd < 0;
    return conn_start(dev, fd, errp);
}

bool vhost_user_dev_connected(const VhostUserDev *dev)
{
    return dev->conn_open;
}

static void listen_readable(EventLoop *loop, int fd, int mask, void *opaque)
{
    VhostUserDev *dev = opaque;
    int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (c < 0) {
        if (errno != EAGAIN) {
            log_ratelimited(LOG_WARN, "vhost-user %s: accept: %s",
                            dev->socket_path, strerror(errno));
        }
        return;
    }
    Error *err = NULL;
    dev->feed_mode = false;
    if (!conn_start(dev, c, &err)) {
        error_report_err(err);
        return;
    }
    log_info("vhost-user %s: front end connected", dev->socket_path);
}

/* Devices listening on a socket file of theirs (main loop only). */
static VhostUserDev *listening_devs;

/* The device whose socket file is path's file now (any spelling of it). */
static VhostUserDev *socket_file_owner(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0) {
        return NULL;
    }
    for (VhostUserDev *d = listening_devs; d; d = d->next_listening) {
        if (d->socket_dev == st.st_dev && d->socket_ino == st.st_ino) {
            return d;
        }
    }
    return NULL;
}

static int listen_unix(VhostUserDev *dev, const char *path, Error **errp)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct stat st;
    if (strlen(path) >= sizeof(sa.sun_path)) {
        error_setg(errp, "vhost-user socket path too long: %s", path);
        return -1;
    }
    if (socket_file_owner(path)) {
        error_setg(errp, "socket=%s is already the socket of another "
                   "vhost-user device", path);
        return -1;
    }
    if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
        error_setg(errp, "socket=%s exists and is not a socket", path);
        return -1;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        error_setg_errno(errp, errno, "cannot create a unix socket");
        return -1;
    }
    unlink(path);   /* a stale socket of an earlier run */
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(fd, 1) < 0 || lstat(path, &st) < 0) {
        error_setg_errno(errp, errno, "cannot listen on %s", path);
        close(fd);
        return -1;
    }
    dev->socket_dev = st.st_dev;
    dev->socket_ino = st.st_ino;
    dev->next_listening = listening_devs;
    listening_devs = dev;
    return fd;
}

static void stop_listening(VhostUserDev *dev)
{
    for (VhostUserDev **p = &listening_devs; *p; p = &(*p)->next_listening) {
        if (*p == dev) {
            *p = dev->next_listening;
            break;
        }
    }
    /* Only our own file: someone may have replaced it since. */
    struct stat st;
    if (lstat(dev->socket_path, &st) == 0 && st.st_dev == dev->socket_dev &&
        st.st_ino == dev->socket_ino) {
        unlink(dev->socket_path);
    }
}

VhostUserDev *vhost_user_dev_new(const VhostUserDevConfig *cfg,
                                 const VhostUserDevOps *ops, void *opaque,
                                 Error **errp)
{
    if (cfg->num_queues == 0 || cfg->num_queues > 256) {
        error_setg(errp, "vhost-user: num-queues must be 1..256");
        return NULL;
    }
    VhostUserDev *dev = calloc(1, sizeof(*dev));
    VuQueue *queues = calloc(cfg->num_queues, sizeof(VuQueue));
    if (!dev || !queues) {
        free(dev);
        free(queues);
        error_setg(errp, "out of memory");
        return NULL;
    }
    dev->cfg = *cfg;
    dev->ops = ops;
    dev->opaque = opaque;
    dev->main_loop = cfg->main_loop;
    dev->data_loop = cfg->iothread ? iothread_loop(cfg->iothread)
                                   : cfg->main_loop;
    dev->listen_fd = dev->conn_fd = dev->log_fd = -1;
    dev->queues = queues;
    for (unsigned i = 0; i < cfg->num_queues; i++) {
        VuQueue *q = &queues[i];
        q->dev = dev;
        q->kick_fd = q->call_fd = q->err_fd = -1;
        virtqueue_init(&q->vq, i, &dev->mem, &queue_hooks, q);
        q->vq.stopped = true;
    }
    vu_reset_state(dev);
    if (cfg->socket_path) {
        dev->socket_path = strdup(cfg->socket_path);
        dev->cfg.socket_path = dev->socket_path;
        dev->listen_fd = listen_unix(dev, cfg->socket_path, errp);
        if (dev->listen_fd < 0 ||
            !loop_add_fd(dev->main_loop, dev->listen_fd, LOOP_READ,
                         listen_readable, dev, errp)) {
            vhost_user_dev_free(dev);
            return NULL;
        }
    }
    return dev;
}

static void teardown_all_queues(void *opaque)
{
    VhostUserDev *dev = opaque;
    for (unsigned i = 0; i < dev->cfg.num_queues; i++) {
        vu_queue_teardown(&dev->queues[i]);
    }
}

/* Data loop: a report still owed goes out now; the quiesce outlives the
 * device until it arrives (quiesce_finish no longer needs the device). */
static void quiesce_detach_data(void *opaque)
{
    quiesce_report(opaque);
}

void vhost_user_dev_free(VhostUserDev *dev)
{
    if (!dev) {
        return;
    }
    if (dev->conn_open) {
        conn_close(dev, NULL);
    }
    /* A drain still running must end before the queues go away; its
     * completion is posted to the main loop. */
    while (dev->paused || dev->tearing_down) {
        loop_run_once(dev->main_loop, 10);
    }
    vu_run_data(dev, teardown_all_queues, dev);
    vu_run_data(dev, quiesce_detach_data, dev);
    if (dev->quiesce) {
        Error *err = NULL;
        error_setg(&err, "the device went away");
        quiesce_finish(dev->quiesce, err);
    }
    vu_reset_state(dev);
    if (dev->listen_fd >= 0) {
        loop_del_fd(dev->main_loop, dev->listen_fd);
        close(dev->listen_fd);
        stop_listening(dev);
    }
    free(dev->socket_path);
    free(dev->written);
    free(dev->queues);
    free(dev);
}

/* ---- device stop/start ---- */

/*
 * A quiesce in progress. Two references: the main loop's (until done ran)
 * and the I/O thread's (until its report, a posted message, arrives).
 * Either side may let go first; vhost_user_dev_free detaches both.
 */
struct VuQuiesce {
    VhostUserDev *dev;
    VhostUserQuiesceDone *done;     /* NULL once it ran */
    void *opaque;
    uint32_t timeout_ms;
    uint64_t timer;
    unsigned refs;                  /* main loop only */
};

static void quiesce_unref(VuQuiesce *q)
{
    if (--q->refs == 0) {
        free(q);
    }
}

/* Main loop: runs done once, with err or without. */
static void quiesce_finish(VuQuiesce *q, Error *err)
{
    VhostUserQuiesceDone *done = q->done;
    if (q->timer) {
        loop_del_timer(q->dev->main_loop, q->timer);
        q->timer = 0;
    }
    q->done = NULL;
    q->dev->quiesce = NULL;
    void *opaque = q->opaque;
    quiesce_unref(q);
    done(opaque, err);
}

/* Main loop: the I/O thread's report that nothing is in flight (or that
 * it let go of the quiesce). */
static void quiesce_reported(void *opaque)
{
    VuQuiesce *q = opaque;
    if (q->done) {
        quiesce_finish(q, NULL);
    }
    quiesce_unref(q);
}

static unsigned dev_inflight(const VhostUserDev *dev)
{
    unsigned n = 0;
    for (unsigned i = 0; i < dev->cfg.num_queues; i++) {
        n += dev->queues[i].vq.inflight;
    }
    return n;
}

/* Data loop: hands the I/O thread's reference back to the main loop. */
static void quiesce_report(VhostUserDev *dev)
{
    VuQuiesce *q = dev->quiesce_waiting;
    dev->quiesce_waiting = NULL;
    if (q && !loop_post(dev->main_loop, quiesce_reported, q)) {
        /* Out of memory: the deadline reports instead; the reference
         * leaks rather than risk a use after free. */
        log_ratelimited(LOG_ERROR, "vhost-user: cannot report a quiesce");
    }
}

static void set_quiesced(VhostUserDev *dev, bool quiesce)
{
    dev->quiesced = quiesce;
    for (unsigned i = 0; i < dev->cfg.num_queues; i++) {
        vu_queue_update(&dev->queues[i]);
    }
}

/* Data loop: the rings stop taking requests; report now or when the last
 * one in flight completes (queue_idle). */
static void quiesce_start(void *opaque)
{
    VuQuiesce *q = opaque;
    VhostUserDev *dev = q->dev;
    quiesce_report(dev);        /* an earlier one, timed out */
    dev->quiesce_waiting = q;
    set_quiesced(dev, true);
    if (dev_inflight(dev) == 0) {
        quiesce_report(dev);
    }
}

static int64_t quiesce_timed_out(EventLoop *loop, uint64_t id, void *opaque)
{
    VuQuiesce *q = opaque;
    Error *err = NULL;
    q->timer = 0;
    error_setg(&err, "requests still in flight %u ms after the stop "
               "(stop-timeout)", q->timeout_ms);
    quiesce_finish(q, err);
    return LOOP_TIMER_DONE;
}

void vhost_user_dev_quiesce(VhostUserDev *dev, uint32_t timeout_ms,
                            VhostUserQuiesceDone *done, void *opaque)
{
    Error *err = NULL;
    VuQuiesce *q = calloc(1, sizeof(*q));
    if (!q || dev->quiesce) {
        free(q);
        error_setg(&err, dev->quiesce ? "a stop is already in progress"
                                      : "out of memory");
        done(opaque, err);
        return;
    }
    *q = (VuQuiesce){ .dev = dev, .done = done, .opaque = opaque,
                      .timeout_ms = timeout_ms, .refs = 2 };
    dev->quiesce = q;
    q->timer = loop_add_timer(dev->main_loop, timeout_ms, quiesce_timed_out,
                              q);
    if (dev->data_loop == dev->main_loop) {
        quiesce_start(q);
    } else if (!loop_post(dev->data_loop, quiesce_start, q)) {
        q->refs--;              /* the I/O thread never saw it */
        error_setg(&err, "out of memory");
        quiesce_finish(q, err);
    }
}

static void quiesce_idle_data(void *opaque)
{
    set_quiesced(opaque, true);
}

void vhost_user_dev_quiesce_idle(VhostUserDev *dev)
{
    vu_run_data(dev, quiesce_idle_data, dev);
}

static void resume_data(void *opaque)
{
    VhostUserDev *dev = opaque;
    quiesce_report(dev);        /* a timed-out quiesce lets go */
    set_quiesced(dev, false);
}

void vhost_user_dev_resume(VhostUserDev *dev)
{
    vu_run_data(dev, resume_data, dev);
}

unsigned vhost_user_dev_rings_started(const VhostUserDev *dev)
{
    unsigned n = 0;
    /* 'started' changes only inside vu_run_data(), called from here. */
    for (unsigned i = 0; i < dev->cfg.num_queues; i++) {
        n += dev->queues[i].started;
    }
    return n;
}

void vu_rings_changed(VhostUserDev *dev)
{
    if (dev->ops->rings_changed) {
        dev->ops->rings_changed(dev, dev->opaque);
    }
}

typedef struct QueueInfoCall {
    VuQueue *q;
    VhostUserQueueInfo *info;
} QueueInfoCall;

static void queue_info_data(void *opaque)
{
    QueueInfoCall *c = opaque;
    const VuQueue *q = c->q;
    const VirtQueue *vq = &q->vq;
    *c->info = (VhostUserQueueInfo){
        .started = q->started, .enabled = q->enabled,
        .running = !vq->stopped, .ready = virtqueue_is_ready(vq),
        .broken = vq->broken, .has_call_fd = q->call_fd >= 0,
        .num = vq->num, .last_avail_idx = vq->last_avail_idx,
        .used_idx = vq->used_idx, .avail_idx = virtqueue_avail_idx(vq),
        .used_event = virtqueue_used_event(vq), .inflight = vq->inflight,
        .kicks = q->kicks, .calls = q->calls,
        .calls_without_fd = q->calls_without_fd,
    };
}

bool vhost_user_dev_queue_info(VhostUserDev *dev, unsigned index,
                               VhostUserQueueInfo *info)
{
    if (index >= dev->cfg.num_queues) {
        return false;
    }
    QueueInfoCall c = { &dev->queues[index], info };
    vu_run_data(dev, queue_info_data, &c);
    return true;
}

unsigned vhost_user_dev_num_queues(const VhostUserDev *dev)
{
    return dev->cfg.num_queues;
}

uint64_t vhost_user_dev_features(const VhostUserDev *dev)
{
    return dev->features;
}

EventLoop *vhost_user_dev_data_loop(const VhostUserDev *dev)
{
    return dev->data_loop;
}

VirtQueue *vhost_user_dev_queue(VhostUserDev *dev, unsigned index)
{
    return index < dev->cfg.num_queues ? &dev->queues[index].vq : NULL;
}
