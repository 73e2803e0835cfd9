/*
 * vfio-user server: listener, connection, message framing and dispatch.
 *
 * One message is read at a time, header first, then exactly its body, so
 * file descriptors (which the kernel delivers with the first byte of the
 * sendmsg that carried them) always belong to the message being read.
 * While messages wait to be written, client commands that arrive are
 * held, in order, and handled once the output is out; with VFU_MAX_HELD
 * held, reading stops: a client that does not read its replies cannot
 * make the server buffer without bound. Replies from the client are
 * taken meanwhile: a client blocked writing its answer to one of our DMA
 * requests would otherwise never read the next ones.
 *
 * The server's own requests (DMA_READ / DMA_WRITE for memory mapped
 * without an fd, vfu-dma-remote.c) are queued like replies and never
 * waited for here: their replies arrive as ordinary messages, in between
 * the client's commands, and are matched to the request by message id.
 * The server therefore keeps answering a client that itself waits for a
 * reply (e.g. to SET_IRQS) before it answers ours.
 */
#include "vfio-user/vfu-int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/log.h"

struct VfuOut {
    uint8_t *data;
    size_t len;
    size_t off;
    int fd;                     /* sent with the first byte, or -1 */
    VfuOut *next;
};

/* A complete message from the client, owned apart from the read state. */
typedef struct VfuInMsg {
    VfuHeader hdr;
    uint8_t *body;
    size_t len;
    int fds[VFU_MAX_MSG_FDS];
    size_t nfds;
    bool fds_truncated;
    struct VfuInMsg *next;
} VfuInMsg;

struct VfuConn {
    int fd;                     /* -1: pseudo-connection (vfu_server_feed) */
    uint8_t hdr[sizeof(VfuHeader)];
    size_t hdr_got;
    uint8_t *body;
    size_t body_len;
    size_t body_got;
    int fds[VFU_MAX_MSG_FDS];
    size_t nfds;
    bool fds_truncated;
    VfuOut *out_head;
    VfuOut **out_tail;
    bool closing;
    const uint8_t *feed;        /* bytes given to vfu_server_feed */
    size_t feed_len;
    bool dispatching;
    /* Commands waiting for the output to drain. */
    struct VfuInMsg *held_head;
    struct VfuInMsg **held_tail;
    unsigned n_held;
};

/* Commands a client may have sent while our output waits (a VMM has a few
 * outstanding at most). */
#define VFU_MAX_HELD 16

static const char *const cmd_names[VFU_CMD_MAX + 1] = {
    [VFU_CMD_VERSION] = "VERSION",
    [VFU_CMD_DMA_MAP] = "DMA_MAP",
    [VFU_CMD_DMA_UNMAP] = "DMA_UNMAP",
    [VFU_CMD_DEVICE_GET_INFO] = "DEVICE_GET_INFO",
    [VFU_CMD_DEVICE_GET_REGION_INFO] = "DEVICE_GET_REGION_INFO",
    [VFU_CMD_DEVICE_GET_REGION_IO_FDS] = "DEVICE_GET_REGION_IO_FDS",
    [VFU_CMD_DEVICE_GET_IRQ_INFO] = "DEVICE_GET_IRQ_INFO",
    [VFU_CMD_DEVICE_SET_IRQS] = "DEVICE_SET_IRQS",
    [VFU_CMD_REGION_READ] = "REGION_READ",
    [VFU_CMD_REGION_WRITE] = "REGION_WRITE",
    [VFU_CMD_DMA_READ] = "DMA_READ",
    [VFU_CMD_DMA_WRITE] = "DMA_WRITE",
    [VFU_CMD_DEVICE_RESET] = "DEVICE_RESET",
    [VFU_CMD_REGION_WRITE_MULTI] = "REGION_WRITE_MULTI",
    [VFU_CMD_DEVICE_FEATURE] = "DEVICE_FEATURE",
    [VFU_CMD_MIG_DATA_READ] = "MIG_DATA_READ",
    [VFU_CMD_MIG_DATA_WRITE] = "MIG_DATA_WRITE",
};

const char *vfu_cmd_name(unsigned cmd)
{
    if (cmd <= VFU_CMD_MAX && cmd_names[cmd]) {
        return cmd_names[cmd];
    }
    return "unknown";
}

bool vfu_server_client_migration(const VfuServer *s)
{
    return s->conn && s->client_migration;
}

bool vfu_migration_supported(const VfuServer *s)
{
    return s->ops->quiesce && s->ops->resume && s->ops->save &&
           s->ops->load;
}

void vfu_reply_put(VfuMsg *m, const void *data, size_t len)
{
    bytebuf_append(m->reply, data, len);
}

/* --- output ---------------------------------------------------------- */

static void conn_readable(EventLoop *loop, int fd, int mask, void *opaque);

static void in_msg_free(VfuInMsg *in)
{
    for (size_t i = 0; i < in->nfds; i++) {
        if (in->fds[i] >= 0) {
            close(in->fds[i]);
        }
    }
    free(in->body);
    free(in);
}

static void conn_free(VfuServer *s)
{
    VfuConn *c = s->conn;
    if (!c) {
        return;
    }
    s->conn = NULL;
    if (c->fd >= 0) {
        loop_del_fd(s->loop, c->fd);
        close(c->fd);
    }
    for (size_t i = 0; i < c->nfds; i++) {
        if (c->fds[i] >= 0) {
            close(c->fds[i]);
        }
    }
    while (c->out_head) {
        VfuOut *o = c->out_head;
        c->out_head = o->next;
        if (o->fd >= 0) {
            close(o->fd);
        }
        free(o->data);
        free(o);
    }
    while (c->held_head) {
        VfuInMsg *in = c->held_head;
        c->held_head = in->next;
        in_msg_free(in);
    }
    free(c->body);
    free(c);
    s->mig_reply_owed = false;
    /* Our requests will get no reply: their transfers fail now (a device
     * callback that starts another finds no client). */
    vfu_dma_remote_fail_all(s);
    /* Spec "Client Disconnection": unmap client memory, close its IRQ
     * fds, keep the device state. */
    vfu_dma_unmap_all(s);
    vfu_irqs_release(s);
    s->negotiated = false;
    s->client_migration = false;
}

void vfu_server_disconnect(VfuServer *s)
{
    if (s->conn) {
        log_info("vfio-user: client disconnected");
    }
    conn_free(s);
}

static void conn_close(VfuServer *s, const char *why)
{
    log_ratelimited(LOG_WARN, "vfio-user: closing connection: %s", why);
    s->conn->closing = true;
}

/* Writes what it can; false on a fatal socket error. */
static bool conn_flush(VfuConn *c)
{
    while (c->out_head) {
        VfuOut *o = c->out_head;
        struct iovec iov = { o->data + o->off, o->len - o->off };
        char cbuf[CMSG_SPACE(sizeof(int))];
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        if (o->fd >= 0 && o->off == 0) {
            memset(cbuf, 0, sizeof(cbuf));
            mh.msg_control = cbuf;
            mh.msg_controllen = sizeof(cbuf);
            struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
            cm->cmsg_level = SOL_SOCKET;
            cm->cmsg_type = SCM_RIGHTS;
            cm->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(cm), &o->fd, sizeof(int));
        }
        ssize_t n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return true;
        }
        if (n <= 0) {
            return false;
        }
        o->off += (size_t)n;
        if (o->fd >= 0) {
            close(o->fd);
            o->fd = -1;
        }
        if (o->off == o->len) {
            c->out_head = o->next;
            if (!c->out_head) {
                c->out_tail = &c->out_head;
            }
            free(o->data);
            free(o);
        }
    }
    return true;
}

/* Queues one message (header, payload, then more); fd is dup'ed when
 * >= 0. */
static void conn_queue2(VfuServer *s, const VfuHeader *hdr,
                        const uint8_t *payload, size_t len,
                        const uint8_t *more, size_t more_len, int fd)
{
    VfuConn *c = s->conn;
    if (c->fd < 0) {
        return;                 /* pseudo-connection: replies go nowhere */
    }
    VfuOut *o = calloc(1, sizeof(*o));
    uint8_t *data = malloc(sizeof(*hdr) + len + more_len);
    int dupfd = fd >= 0 ? dup(fd) : -1;
    if (!o || !data || (fd >= 0 && dupfd < 0)) {
        free(o);
        free(data);
        if (dupfd >= 0) {
            close(dupfd);
        }
        conn_close(s, "out of memory for a reply");
        return;
    }
    memcpy(data, hdr, sizeof(*hdr));
    if (len) {
        memcpy(data + sizeof(*hdr), payload, len);
    }
    if (more_len) {
        memcpy(data + sizeof(*hdr) + len, more, more_len);
    }
    *o = (VfuOut){ .data = data, .len = sizeof(*hdr) + len + more_len,
                   .fd = dupfd };
    *c->out_tail = o;
    c->out_tail = &o->next;
}

static void conn_queue(VfuServer *s, const VfuHeader *hdr,
                       const uint8_t *payload, size_t len, int fd)
{
    conn_queue2(s, hdr, payload, len, NULL, 0, fd);
}

static void send_reply(VfuServer *s, VfuMsg *m, VfuStatus st)
{
    VfuHeader hdr = {
        .msg_id = m->hdr.msg_id,
        .cmd = m->hdr.cmd,
        .flags = VFU_FLAG_TYPE_REPLY,
    };
    /* Spec "Header": an error reply carries the header only. */
    bool err = st != VFU_OK || m->reply->failed;
    size_t len = err ? 0 : m->reply->len;
    if (err) {
        hdr.flags |= VFU_FLAG_ERROR;
        hdr.error = st != VFU_OK ? (uint32_t)st : ENOMEM;
    }
    hdr.size = (uint32_t)(sizeof(hdr) + len);
    conn_queue(s, &hdr, m->reply->data, len, err ? -1 : m->reply_fd);
}

/* --- dispatch -------------------------------------------------------- */

typedef VfuStatus VfuHandler(VfuServer *s, VfuMsg *m);

static VfuStatus handle_unsupported(VfuServer *s, VfuMsg *m)
{
    return ENOTSUP;
}

static VfuHandler *const handlers[VFU_CMD_MAX + 1] = {
    [VFU_CMD_VERSION] = vfu_handle_version,
    [VFU_CMD_DMA_MAP] = vfu_handle_dma_map,
    [VFU_CMD_DMA_UNMAP] = vfu_handle_dma_unmap,
    [VFU_CMD_DEVICE_GET_INFO] = vfu_handle_device_info,
    [VFU_CMD_DEVICE_GET_REGION_INFO] = vfu_handle_region_info,
    [VFU_CMD_DEVICE_GET_REGION_IO_FDS] = handle_unsupported,
    [VFU_CMD_DEVICE_GET_IRQ_INFO] = vfu_handle_irq_info,
    [VFU_CMD_DEVICE_SET_IRQS] = vfu_handle_set_irqs,
    [VFU_CMD_REGION_READ] = vfu_handle_region_read,
    [VFU_CMD_REGION_WRITE] = vfu_handle_region_write,
    [VFU_CMD_DEVICE_RESET] = vfu_handle_reset,
    [VFU_CMD_REGION_WRITE_MULTI] = handle_unsupported,
    [VFU_CMD_DEVICE_FEATURE] = vfu_handle_feature,
    [VFU_CMD_MIG_DATA_READ] = vfu_handle_mig_data_read,
    [VFU_CMD_MIG_DATA_WRITE] = vfu_handle_mig_data_write,
};

/* Checks that apply to every command before its handler runs. */
static VfuStatus precheck(VfuServer *s, const VfuInMsg *in)
{
    const VfuHeader *h = &in->hdr;
    unsigned type = h->flags & VFU_FLAG_TYPE_MASK;
    if (h->flags & ~(VFU_FLAG_TYPE_MASK | VFU_FLAG_NO_REPLY |
                     VFU_FLAG_ERROR) || type != VFU_FLAG_TYPE_COMMAND) {
        log_ratelimited(LOG_WARN, "vfio-user: %s: bad flags 0x%x",
                        vfu_cmd_name(h->cmd), h->flags);
        return EINVAL;
    }
    if (h->cmd > VFU_CMD_MAX || !handlers[h->cmd]) {
        log_ratelimited(LOG_WARN, "vfio-user: unknown command %u", h->cmd);
        return EINVAL;
    }
    if (in->fds_truncated) {
        log_ratelimited(LOG_WARN, "vfio-user: %s: more than %u fds",
                        vfu_cmd_name(h->cmd), VFU_MAX_MSG_FDS);
        return EINVAL;
    }
    if (in->nfds && h->cmd != VFU_CMD_DMA_MAP &&
        h->cmd != VFU_CMD_DEVICE_SET_IRQS) {
        log_ratelimited(LOG_WARN, "vfio-user: %s takes no fds (got %zu)",
                        vfu_cmd_name(h->cmd), in->nfds);
        return EINVAL;
    }
    /* Spec "Connection Initiation": VERSION comes first, once. */
    if ((h->cmd == VFU_CMD_VERSION) == s->negotiated) {
        log_ratelimited(LOG_WARN, "vfio-user: %s %s version negotiation",
                        vfu_cmd_name(h->cmd),
                        s->negotiated ? "after" : "before");
        return EINVAL;
    }
    return VFU_OK;
}

/* Handles one message and frees it. */
static void dispatch(VfuServer *s, VfuInMsg *in)
{
    ByteBuf reply;
    bytebuf_init(&reply);
    VfuMsg m = {
        .hdr = in->hdr,
        .payload = in->body,
        .len = in->len,
        .fds = in->fds,
        .nfds = in->nfds,
        .reply = &reply,
        .reply_fd = -1,
    };
    unsigned type = m.hdr.flags & VFU_FLAG_TYPE_MASK;
    if (type == VFU_FLAG_TYPE_REPLY) {
        s->conn->dispatching = true;
        vfu_dma_remote_reply(s, &in->hdr, in->body, in->len);
        s->conn->dispatching = false;
    } else {
        VfuStatus st = precheck(s, in);
        if (st == VFU_OK) {
            s->conn->dispatching = true;
            st = handlers[m.hdr.cmd](s, &m);
            s->conn->dispatching = false;
        }
        if (st == VFU_CLOSE) {
            conn_close(s, "protocol violation");
        } else if (st == VFU_DEFERRED) {
            /* answered by vfu_send_deferred_reply */
        } else if (!(m.hdr.flags & VFU_FLAG_NO_REPLY)) {
            send_reply(s, &m, st);
            if (m.close_after) {
                conn_close(s, "incompatible client");
            }
        } else if (st != VFU_OK) {
            log_ratelimited(LOG_WARN, "vfio-user: %s (no reply) failed: %s",
                            vfu_cmd_name(m.hdr.cmd), strerror(st));
        }
    }
    bytebuf_free(&reply);
    in_msg_free(in);
}

/* --- input ----------------------------------------------------------- */

static void take_fds(VfuConn *c, struct msghdr *mh)
{
    if (mh->msg_flags & MSG_CTRUNC) {
        c->fds_truncated = true;
    }
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm;
         cm = CMSG_NXTHDR(mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) {
            continue;
        }
        size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
            if (c->nfds < VFU_MAX_MSG_FDS) {
                c->fds[c->nfds++] = fd;
            } else {
                close(fd);
                c->fds_truncated = true;
            }
        }
    }
}

/* Reads up to want bytes: > 0 read, 0 end of stream, -1 nothing now,
 * -2 error. */
static ssize_t conn_read(VfuConn *c, void *dst, size_t want)
{
    if (c->fd < 0) {
        if (!c->feed_len) {
            return -1;
        }
        size_t n = want < c->feed_len ? want : c->feed_len;
        memcpy(dst, c->feed, n);
        c->feed += n;
        c->feed_len -= n;
        return (ssize_t)n;
    }
    for (;;) {
        char cbuf[CMSG_SPACE(sizeof(int) * VFU_MAX_MSG_FDS)];
        struct iovec iov = { dst, want };
        struct msghdr mh = {
            .msg_iov = &iov, .msg_iovlen = 1,
            .msg_control = cbuf, .msg_controllen = sizeof(cbuf),
        };
        ssize_t n = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return errno == EAGAIN || errno == EWOULDBLOCK ? -1 : -2;
        }
        take_fds(c, &mh);
        return n;
    }
}

/* Checks a complete header; the reason when the framing is broken. */
static const char *check_header(const VfuHeader *h)
{
    if (h->size < sizeof(VfuHeader)) {
        return "message size smaller than its header";
    }
    if (h->size > VFU_MAX_MSG_SIZE) {
        return "message size over the limit";
    }
    return NULL;
}

/* Reads toward the next message; true when one is complete. */
static bool read_message(VfuServer *s, VfuConn *c, bool *stop)
{
    ssize_t n;
    if (c->hdr_got < sizeof(c->hdr)) {
        n = conn_read(c, c->hdr + c->hdr_got, sizeof(c->hdr) - c->hdr_got);
        if (n <= 0) {
            goto no_data;
        }
        c->hdr_got += (size_t)n;
        if (c->hdr_got < sizeof(c->hdr)) {
            return false;
        }
        VfuHeader h;
        memcpy(&h, c->hdr, sizeof(h));
        const char *why = check_header(&h);
        if (why) {
            conn_close(s, why);
            *stop = true;
            return false;
        }
        c->body_len = h.size - sizeof(VfuHeader);
        c->body_got = 0;
        uint8_t *b = realloc(c->body, c->body_len ? c->body_len : 1);
        if (!b) {
            conn_close(s, "out of memory for a message");
            *stop = true;
            return false;
        }
        c->body = b;
    }
    if (c->body_got < c->body_len) {
        n = conn_read(c, c->body + c->body_got, c->body_len - c->body_got);
        if (n <= 0) {
            goto no_data;
        }
        c->body_got += (size_t)n;
    }
    return c->body_got == c->body_len;
no_data:
    *stop = true;
    if (n == 0) {
        if (c->hdr_got || c->body_got) {
            conn_close(s, "end of stream inside a message");
        } else {
            c->closing = true;
        }
    } else if (n == -2) {
        conn_close(s, strerror(errno));
    }
    return false;
}

/* Moves the complete message out of the read state; NULL (connection
 * closing) when out of memory. */
static VfuInMsg *take_message(VfuServer *s, VfuConn *c)
{
    VfuInMsg *in = calloc(1, sizeof(*in));
    if (!in) {
        conn_close(s, "out of memory for a message");
        return NULL;
    }
    memcpy(&in->hdr, c->hdr, sizeof(in->hdr));
    in->body = c->body;
    in->len = c->body_len;
    memcpy(in->fds, c->fds, c->nfds * sizeof(int));
    in->nfds = c->nfds;
    in->fds_truncated = c->fds_truncated;
    c->body = NULL;
    c->nfds = 0;
    c->fds_truncated = false;
    c->hdr_got = 0;
    c->body_got = 0;
    c->body_len = 0;
    return in;
}

static VfuInMsg *held_pop(VfuConn *c)
{
    VfuInMsg *in = c->held_head;
    if (in) {
        c->held_head = in->next;
        if (!c->held_head) {
            c->held_tail = &c->held_head;
        }
        c->n_held--;
        in->next = NULL;
    }
    return in;
}

static void conn_update_mask(VfuServer *s)
{
    VfuConn *c = s->conn;
    if (c && c->fd >= 0) {
        /* A held command with nothing left to write: the socket is
         * writable, so the loop comes back at once to handle it. */
        loop_set_fd_mask(s->loop, c->fd,
                         (c->out_head || c->held_head ? LOOP_WRITE : 0) |
                         (c->n_held < VFU_MAX_HELD ? LOOP_READ : 0), NULL);
    }
}

/* Reads and handles messages until nothing is left, a reply is stuck in
 * the socket, or the connection must close. */
static void conn_process(VfuServer *s)
{
    VfuConn *c = s->conn;
    if (c->dispatching) {
        return;     /* the outer call goes on with what arrived */
    }
    unsigned budget = c->fd < 0 ? UINT32_MAX : 64;
    bool stop = false;
    while (!c->closing && budget--) {
        VfuInMsg *in = c->out_head ? NULL : held_pop(c);
        if (!in && !stop && c->n_held < VFU_MAX_HELD &&
            read_message(s, c, &stop)) {
            in = take_message(s, c);
        }
        if (!in) {
            if (stop || c->n_held >= VFU_MAX_HELD) {
                break;
            }
            continue;
        }
        if ((c->out_head || c->held_head) &&
            (in->hdr.flags & VFU_FLAG_TYPE_MASK) != VFU_FLAG_TYPE_REPLY) {
            *c->held_tail = in;             /* after the ones held before */
            c->held_tail = &in->next;
            c->n_held++;
            continue;
        }
        dispatch(s, in);
        if (c->fd >= 0 && c->out_head && !conn_flush(c)) {
            conn_close(s, "cannot write a reply");
        }
    }
    if (c->closing) {
        vfu_server_disconnect(s);
        return;
    }
    conn_update_mask(s);
}

static void conn_readable(EventLoop *loop, int fd, int mask, void *opaque)
{
    VfuServer *s = opaque;
    VfuConn *c = s->conn;
    if (!c || c->dispatching) {
        return;
    }
    if (c->closing) {
        vfu_server_disconnect(s);
        return;
    }
    if (c->out_head) {
        if (!conn_flush(c)) {
            conn_close(s, "cannot write a reply");
            vfu_server_disconnect(s);
            return;
        }
        if (c->out_head && (mask & LOOP_HUP)) {
            vfu_server_disconnect(s);
            return;
        }
    }
    conn_process(s);
}

/* --- requests to the client ------------------------------------------ */

bool vfu_server_can_request(const VfuServer *s)
{
    /* Also on the pseudo-connection of vfu_server_feed: the requests go
     * nowhere, but the fed bytes may hold their replies (fuzzing). */
    const VfuConn *c = s->conn;
    return c && !c->closing && s->negotiated;
}

void vfu_send_request(VfuServer *s, uint16_t msg_id, uint16_t cmd,
                      const void *payload, size_t len, const void *more,
                      size_t more_len)
{
    VfuHeader h = { .msg_id = msg_id, .cmd = cmd,
                    .flags = VFU_FLAG_TYPE_COMMAND,
                    .size = (uint32_t)(sizeof(h) + len + more_len) };
    conn_queue2(s, &h, payload, len, more, more_len, -1);
}

void vfu_send_deferred_reply(VfuServer *s, const VfuHeader *req,
                             VfuStatus st, ByteBuf *payload)
{
    if (!s->conn || s->conn->closing) {
        return;
    }
    VfuMsg m = { .hdr = *req, .reply = payload, .reply_fd = -1 };
    if (!(req->flags & VFU_FLAG_NO_REPLY)) {
        send_reply(s, &m, st);
    }
    vfu_conn_kick(s);
}

void vfu_conn_kick(VfuServer *s)
{
    VfuConn *c = s->conn;
    if (!c || c->fd < 0 || c->dispatching) {
        return;     /* conn_process flushes after the handler */
    }
    if (c->out_head && !conn_flush(c)) {
        conn_close(s, "cannot write a request");
    }
    /* A close is finished from the loop: the caller may be a device
     * callback that still uses the server. */
    conn_update_mask(s);
}

static VfuConn *conn_new(VfuServer *s, int fd)
{
    VfuConn *c = calloc(1, sizeof(*c));
    if (!c) {
        return NULL;
    }
    c->fd = fd;
    c->out_tail = &c->out_head;
    c->held_tail = &c->held_head;
    s->conn = c;
    s->negotiated = false;
    s->client_migration = false;
    return c;
}

bool vfu_server_add_conn(VfuServer *s, int fd, Error **errp)
{
    if (s->conn) {
        close(fd);
        error_setg(errp, "a vfio-user client is already connected");
        return false;
    }
    if (!conn_new(s, fd)) {
        close(fd);
        error_setg(errp, "out of memory");
        return false;
    }
    if (!loop_add_fd(s->loop, fd, LOOP_READ, conn_readable, s, errp)) {
        s->conn->fd = -1;
        close(fd);
        conn_free(s);
        return false;
    }
    log_info("vfio-user: client connected");
    return true;
}

bool vfu_server_connected(const VfuServer *s)
{
    return s->conn != NULL;
}

bool vfu_server_feed(VfuServer *s, const uint8_t *data, size_t len)
{
    if (!s->conn && !conn_new(s, -1)) {
        return false;
    }
    if (s->conn->fd >= 0) {
        return false;
    }
    s->conn->feed = data;
    s->conn->feed_len = len;
    conn_process(s);
    return s->conn != NULL;
}

/* --- listener and lifecycle ------------------------------------------ */

static void listener_readable(EventLoop *loop, int fd, int mask,
                              void *opaque)
{
    VfuServer *s = opaque;
    int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (cfd < 0) {
        return;
    }
    if (s->conn) {
        /* One client at a time (spec "Socket": one connection each). */
        log_ratelimited(LOG_WARN, "vfio-user: refusing a second client");
        close(cfd);
        return;
    }
    Error *err = NULL;
    if (!vfu_server_add_conn(s, cfd, &err)) {
        error_report_err(err);
    }
}

static bool listen_on(VfuServer *s, const char *path, Error **errp)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(sa.sun_path)) {
        error_setg(errp, "socket path too long: %s", path);
        return false;
    }
    strcpy(sa.sun_path, path);
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        unlink(path);
    }
    s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
                          SOCK_CLOEXEC, 0);
    if (s->listen_fd < 0 ||
        bind(s->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(s->listen_fd, 1) < 0) {
        error_setg_errno(errp, errno, "cannot listen on %s", path);
        return false;
    }
    s->socket_path = strdup(path);
    if (!s->socket_path) {
        error_setg(errp, "out of memory");
        return false;
    }
    return loop_add_fd(s->loop, s->listen_fd, LOOP_READ, listener_readable,
                       s, errp);
}

static bool check_desc(const VfuDeviceDesc *d, Error **errp)
{
    for (unsigned i = 0; i < VFU_PCI_NUM_REGIONS; i++) {
        const VfuRegionDesc *r = &d->regions[i];
        if (r->nr_sparse > VFU_MAX_SPARSE_AREAS) {
            error_setg(errp, "region %u: too many sparse areas", i);
            return false;
        }
        for (unsigned a = 0; a < r->nr_sparse; a++) {
            const VfuSparseArea *sa = &r->sparse[a];
            if (sa->offset > r->size || sa->size > r->size - sa->offset) {
                error_setg(errp, "region %u: sparse area out of range", i);
                return false;
            }
        }
    }
    for (unsigned i = 0; i < VFU_PCI_NUM_IRQS; i++) {
        if (d->irqs[i].count > VFU_MAX_IRQ_COUNT) {
            error_setg(errp, "irq index %u: too many interrupts", i);
            return false;
        }
    }
    return true;
}

VfuServer *vfu_server_new(const VfuServerConfig *cfg, Error **errp)
{
    if (!cfg->loop || !cfg->desc || !cfg->ops || !cfg->ops->region_access) {
        error_setg(errp, "vfio-user: loop, device and region_access needed");
        return NULL;
    }
    if (!check_desc(cfg->desc, errp)) {
        return NULL;
    }
    VfuServer *s = calloc(1, sizeof(*s));
    if (!s) {
        error_setg(errp, "out of memory");
        return NULL;
    }
    s->loop = cfg->loop;
    s->desc = *cfg->desc;
    for (unsigned i = 0; i < VFU_PCI_NUM_REGIONS; i++) {
        s->desc.regions[i].mmap_fd = -1;
    }
    s->ops = cfg->ops;
    s->opaque = cfg->opaque;
    s->listen_fd = -1;
    s->mig_state = VFU_MIG_RUNNING;
    bytebuf_init(&s->mig_data);
    if (!s->desc.max_state_size) {
        s->desc.max_state_size = 64u << 20;
    }
    bool ok = vfu_irqs_init(s, errp);
    for (unsigned i = 0; ok && i < VFU_PCI_NUM_REGIONS; i++) {
        int fd = cfg->desc->regions[i].mmap_fd;
        if (fd >= 0 && cfg->desc->regions[i].size) {
            s->desc.regions[i].mmap_fd = dup(fd);
            if (s->desc.regions[i].mmap_fd < 0) {
                error_setg_errno(errp, errno, "region %u: bad mmap fd", i);
                ok = false;
            }
        }
    }
    if (ok && cfg->socket_path) {
        ok = listen_on(s, cfg->socket_path, errp);
    }
    if (!ok) {
        vfu_server_free(s);
        return NULL;
    }
    return s;
}

void vfu_server_free(VfuServer *s)
{
    if (!s) {
        return;
    }
    conn_free(s);
    if (s->listen_fd >= 0) {
        loop_del_fd(s->loop, s->listen_fd);
        close(s->listen_fd);
    }
    if (s->socket_path) {
        unlink(s->socket_path);
        free(s->socket_path);
    }
    for (unsigned i = 0; i < VFU_PCI_NUM_REGIONS; i++) {
        if (s->desc.regions[i].mmap_fd >= 0) {
            close(s->desc.regions[i].mmap_fd);
        }
    }
    vfu_dma_free(s);
    vfu_irqs_free(s);
    bytebuf_free(&s->mig_data);
    free(s);
}
