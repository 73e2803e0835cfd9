/* Migration channel: frame codec and non-blocking socket transport. */
#include "migration/channel.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *const msg_names[MIG_MSG__MAX] = {
    [MIG_MSG_HELLO] = "HELLO",
    [MIG_MSG_DEVICE_STATE] = "DEVICE_STATE",
    [MIG_MSG_STATE_LOADED] = "STATE_LOADED",
    [MIG_MSG_SWITCHOVER] = "SWITCHOVER",
    [MIG_MSG_SWITCHOVER_DONE] = "SWITCHOVER_DONE",
    [MIG_MSG_ERROR] = "ERROR",
    [MIG_MSG_KEEPALIVE] = "KEEPALIVE",
};

const char *mig_msg_name(uint16_t type)
{
    if (type < MIG_MSG__MAX && msg_names[type]) {
        return msg_names[type];
    }
    return "unknown";
}

void mig_frame_encode(ByteBuf *out, uint16_t type, const void *payload,
                      uint32_t len)
{
    bytebuf_put_be16(out, type);
    bytebuf_put_be16(out, 0);
    bytebuf_put_be32(out, len);
    bytebuf_append(out, payload, len);
}

void mig_decoder_init(MigDecoder *dec)
{
    memset(dec, 0, sizeof(*dec));
    bytebuf_init(&dec->buf);
}

void mig_decoder_free(MigDecoder *dec)
{
    bytebuf_free(&dec->buf);
    dec->head = 0;
}

bool mig_decoder_feed(MigDecoder *dec, const void *data, size_t len,
                      Error **errp)
{
    /* Drop consumed bytes first so the buffer holds at most one frame
     * plus what arrived with it. */
    if (dec->head) {
        memmove(dec->buf.data, dec->buf.data + dec->head,
                dec->buf.len - dec->head);
        dec->buf.len -= dec->head;
        dec->head = 0;
    }
    bytebuf_append(&dec->buf, data, len);
    if (dec->buf.failed) {
        error_setg(errp, "out of memory receiving migration data");
        dec->failed = true;
        return false;
    }
    return true;
}

MigDecodeResult mig_decoder_next(MigDecoder *dec, uint16_t *type,
                                 const uint8_t **payload, uint32_t *len,
                                 Error **errp)
{
    if (dec->failed) {
        error_setg(errp, "migration stream already failed");
        return MIG_DECODE_ERROR;
    }
    size_t avail = dec->buf.len - dec->head;
    if (avail < MIG_FRAME_HEADER_SIZE) {
        return MIG_DECODE_NEED_MORE;
    }
    const uint8_t *h = dec->buf.data + dec->head;
    uint16_t t = ld_be16(h);
    uint16_t flags = ld_be16(h + 2);
    uint32_t n = ld_be32(h + 4);
    /* channel.h §1: unknown types, reserved flags and oversized lengths
     * end the stream. */
    if (t == 0 || t >= MIG_MSG__MAX) {
        error_setg(errp, "unknown migration message type %u", t);
        dec->failed = true;
        return MIG_DECODE_ERROR;
    }
    if (flags != 0) {
        error_setg(errp, "migration message %s has reserved flags 0x%x",
                   mig_msg_name(t), flags);
        dec->failed = true;
        return MIG_DECODE_ERROR;
    }
    if (n > MIG_FRAME_MAX_PAYLOAD) {
        error_setg(errp, "migration message %s too long (%u bytes, limit %u)",
                   mig_msg_name(t), n, MIG_FRAME_MAX_PAYLOAD);
        dec->failed = true;
        return MIG_DECODE_ERROR;
    }
    if (avail - MIG_FRAME_HEADER_SIZE < n) {
        return MIG_DECODE_NEED_MORE;
    }
    *type = t;
    *payload = h + MIG_FRAME_HEADER_SIZE;
    *len = n;
    dec->head += MIG_FRAME_HEADER_SIZE + (size_t)n;
    return MIG_DECODE_FRAME;
}

void mig_hello_encode(ByteBuf *out, uint32_t version, uint32_t timeout_ms)
{
    bytebuf_append(out, MIG_PROTO_MAGIC, MIG_PROTO_MAGIC_LEN);
    bytebuf_put_be32(out, version);
    if (version >= 2) {
        bytebuf_put_be32(out, timeout_ms);
    }
}

/* channel.h §2. */
bool mig_hello_check(const uint8_t *payload, uint32_t len, uint32_t *version,
                     uint32_t *timeout_ms, Error **errp)
{
    if (len < MIG_PROTO_MAGIC_LEN + 4) {
        error_setg(errp, "bad HELLO length %u", len);
        return false;
    }
    if (memcmp(payload, MIG_PROTO_MAGIC, MIG_PROTO_MAGIC_LEN) != 0) {
        error_setg(errp, "peer is not a stormigd migration endpoint");
        return false;
    }
    uint32_t v = ld_be32(payload + MIG_PROTO_MAGIC_LEN);
    if (v < MIG_PROTO_VERSION_MIN || v > MIG_PROTO_VERSION) {
        error_setg(errp, "unsupported migration protocol version %u "
                   "(this side speaks %u to %u)", v, MIG_PROTO_VERSION_MIN,
                   MIG_PROTO_VERSION);
        return false;
    }
    if (len != MIG_PROTO_MAGIC_LEN + (v >= 2 ? 8 : 4)) {
        error_setg(errp, "bad HELLO length %u for version %u", len, v);
        return false;
    }
    *version = v;
    *timeout_ms = v >= 2 ? ld_be32(payload + MIG_PROTO_MAGIC_LEN + 4) : 0;
    return true;
}

char *mig_error_text(const uint8_t *payload, uint32_t len)
{
    /* channel.h §4: the peer's text reaches our log and QMP; bound it,
     * keep it printable. */
    uint32_t n = len > 1024 ? 1024 : len;
    char *s = malloc((size_t)n + 1);
    if (!s) {
        return NULL;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint8_t c = payload[i];
        s[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    s[n] = '\0';
    return s;
}

struct MigChannel {
    EventLoop *loop;
    int fd;
    const MigChannelOps *ops;
    void *opaque;
    MigDecoder dec;
    ByteBuf out;
    size_t out_head;
    uint64_t sent, received;
    int busy;           /* callbacks running: defer the free */
    bool dead;          /* freed by a callback */
    bool failed;        /* failed() was called */
};

static void channel_destroy(MigChannel *ch)
{
    loop_del_fd(ch->loop, ch->fd);
    close(ch->fd);
    mig_decoder_free(&ch->dec);
    bytebuf_free(&ch->out);
    free(ch);
}

void mig_channel_free(MigChannel *ch)
{
    if (!ch) {
        return;
    }
    if (ch->busy) {
        ch->dead = true;
        return;
    }
    channel_destroy(ch);
}

/* Reports the failure once; returns false when the channel was freed. */
static bool channel_fail(MigChannel *ch, Error *err)
{
    if (ch->failed) {
        error_free(err);
        return true;
    }
    ch->failed = true;
    /* Unwatched at once: a hung-up socket would otherwise keep waking the
     * loop until the owner frees the channel. */
    loop_del_fd(ch->loop, ch->fd);
    ch->ops->failed(ch, err, ch->opaque);
    return !ch->dead;
}

/* A peer that went away shows as end of file, or, when it died with data
 * of ours still unread (a killed destination), as a reset: one failure,
 * told the same way. */
static bool peer_gone(int err)
{
    return err == ECONNRESET || err == EPIPE || err == ENOTCONN;
}

static void set_io_error(Error **errp, int err, const char *what)
{
    if (peer_gone(err)) {
        error_setg(errp, "migration peer closed the connection (%s)",
                   strerror(err));
    } else {
        error_setg_errno(errp, err, "migration channel %s failed", what);
    }
}

static bool channel_flush(MigChannel *ch)
{
    while (ch->out_head < ch->out.len) {
        ssize_t n = send(ch->fd, ch->out.data + ch->out_head,
                         ch->out.len - ch->out_head, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return loop_set_fd_mask(ch->loop, ch->fd, LOOP_READ | LOOP_WRITE,
                                    NULL);
        }
        if (n < 0) {
            Error *err = NULL;
            set_io_error(&err, errno, "write");
            return channel_fail(ch, err);
        }
        ch->out_head += (size_t)n;
        ch->sent += (uint64_t)n;
    }
    bytebuf_reset(&ch->out);
    ch->out_head = 0;
    loop_set_fd_mask(ch->loop, ch->fd, LOOP_READ, NULL);
    if (ch->ops->drained) {
        ch->ops->drained(ch, ch->opaque);
    }
    return !ch->dead;
}

/* Delivers every complete frame; false when the channel went away. */
static bool channel_dispatch(MigChannel *ch)
{
    for (;;) {
        uint16_t type;
        const uint8_t *payload;
        uint32_t len;
        Error *err = NULL;
        MigDecodeResult r = mig_decoder_next(&ch->dec, &type, &payload, &len,
                                             &err);
        if (r == MIG_DECODE_NEED_MORE) {
            return true;
        }
        if (r == MIG_DECODE_ERROR) {
            log_ratelimited(LOG_WARN, "migration: bad frame from peer: %s",
                            error_get_pretty(err));
            return channel_fail(ch, err) && false;
        }
        ch->ops->message(ch, type, payload, len, ch->opaque);
        if (ch->dead || ch->failed) {
            return false;
        }
    }
}

static bool channel_read(MigChannel *ch)
{
    uint8_t buf[65536];
    for (;;) {
        ssize_t n = recv(ch->fd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return true;
        }
        Error *err = NULL;
        if (n <= 0) {
            if (n == 0) {
                error_setg(&err, "migration peer closed the connection");
            } else {
                set_io_error(&err, errno, "read");
            }
            return channel_fail(ch, err) && false;
        }
        ch->received += (uint64_t)n;
        if (!mig_decoder_feed(&ch->dec, buf, (size_t)n, &err)) {
            return channel_fail(ch, err) && false;
        }
        if (!channel_dispatch(ch)) {
            return false;
        }
    }
}

static void channel_event(EventLoop *loop, int fd, int mask, void *opaque)
{
    MigChannel *ch = opaque;
    ch->busy++;
    bool alive = true;
    if (mask & LOOP_WRITE) {
        alive = channel_flush(ch);
    }
    if (alive && !ch->failed && (mask & (LOOP_READ | LOOP_HUP))) {
        channel_read(ch);
    }
    ch->busy--;
    if (ch->dead && !ch->busy) {
        channel_destroy(ch);
    }
}

MigChannel *mig_channel_new(EventLoop *loop, int fd, const MigChannelOps *ops,
                            void *opaque, Error **errp)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        error_setg_errno(errp, errno, "cannot make migration socket "
                         "non-blocking");
        return NULL;
    }
    MigChannel *ch = calloc(1, sizeof(*ch));
    if (!ch) {
        error_setg(errp, "out of memory");
        return NULL;
    }
    ch->loop = loop;
    ch->fd = fd;
    ch->ops = ops;
    ch->opaque = opaque;
    mig_decoder_init(&ch->dec);
    bytebuf_init(&ch->out);
    if (!loop_add_fd(loop, fd, LOOP_READ, channel_event, ch, errp)) {
        mig_decoder_free(&ch->dec);
        free(ch);
        return NULL;
    }
    return ch;
}

bool mig_channel_send(MigChannel *ch, uint16_t type, const void *payload,
                      uint32_t len, Error **errp)
{
    if (ch->failed || ch->dead) {
        error_setg(errp, "migration channel is closed");
        return false;
    }
    if (len > MIG_FRAME_MAX_PAYLOAD) {
        error_setg(errp, "migration message %s too long (%u bytes)",
                   mig_msg_name(type), len);
        return false;
    }
    mig_frame_encode(&ch->out, type, payload, len);
    if (ch->out.failed) {
        error_setg(errp, "out of memory queueing migration message");
        return false;
    }
    /* Written from the loop, never from here: a callback may be sending
     * and must not be re-entered. */
    return loop_set_fd_mask(ch->loop, ch->fd, LOOP_READ | LOOP_WRITE, errp);
}

uint64_t mig_channel_bytes_sent(const MigChannel *ch)
{
    return ch->sent;
}

uint64_t mig_channel_bytes_received(const MigChannel *ch)
{
    return ch->received;
}
