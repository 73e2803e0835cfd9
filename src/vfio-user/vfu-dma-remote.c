/*
 * vfio-user server: asynchronous copies of client memory (vfu_dma_start).
 *
 * Memory mapped with an fd is copied directly; memory mapped without one
 * is asked of the client with VFIO_USER_DMA_READ / DMA_WRITE (spec
 * "VFIO_USER_DMA_READ", "VFIO_USER_DMA_WRITE"), pieces of at most the
 * client's max_data_xfer_size. Each request gets a message id of its own
 * and a slot in a fixed table (VFU_MAX_DMA_REQUESTS) with a deadline
 * timer; the reply, read by the connection like any other message, is
 * matched by id and must echo address and count. Transfers take slots in
 * the order they were started, so a large one cannot be overtaken for
 * ever by small ones.
 *
 * A transfer ends exactly once: every piece answered (ok), or the first
 * refused, malformed or missing reply, or the end of the connection
 * (failed). Its other requests then stay in their slots, "orphaned", until
 * their reply or deadline, so a late reply never lands in a buffer its
 * owner has freed.
 */
#include "vfio-user/vfu-int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

struct VfuDmaXfer {
    uint64_t iova;
    uint8_t *buf;
    size_t len;
    size_t issued;              /* bytes copied or asked for so far */
    unsigned outstanding;       /* requests waiting for a reply */
    bool is_write;
    bool finished;              /* ready for its callback */
    bool ok;
    VfuDmaDone *done;
    void *opaque;
    VfuDmaXfer *next;
};

static void pump(VfuServer *s);

static const char *dir_name(bool is_write)
{
    return is_write ? "DMA_WRITE" : "DMA_READ";
}

/* Largest piece of one request: what the client accepts and what this
 * server reads in one message. */
static size_t remote_piece(const VfuServer *s)
{
    uint64_t max = s->client_max_xfer ? s->client_max_xfer
                                      : VFU_MAX_DATA_XFER;
    return max < VFU_MAX_DATA_XFER ? (size_t)max : VFU_MAX_DATA_XFER;
}

static void unlink_xfer(VfuServer *s, VfuDmaXfer *x)
{
    for (VfuDmaXfer **pp = &s->xfers; *pp; pp = &(*pp)->next) {
        if (*pp == x) {
            *pp = x->next;
            return;
        }
    }
}

/* The transfer's requests still in flight keep their slots, pointing
 * nowhere. */
static void orphan_requests(VfuServer *s, VfuDmaXfer *x)
{
    for (unsigned i = 0; i < VFU_MAX_DMA_REQUESTS; i++) {
        if (s->dma_reqs[i].busy && s->dma_reqs[i].xfer == x) {
            s->dma_reqs[i].xfer = NULL;
            s->dma_reqs[i].dst = NULL;
        }
    }
}

static void release_slot(VfuServer *s, VfuDmaReq *r)
{
    if (r->timer) {
        loop_del_timer(s->loop, r->timer);
    }
    *r = (VfuDmaReq){ .s = s };
    s->n_dma_reqs--;
}

static void finish(VfuDmaXfer *x, bool ok)
{
    x->finished = true;
    x->ok = ok;
}

/* Runs the callbacks of finished transfers, oldest first. A callback may
 * start or cancel transfers, so the list is searched again each time. */
static void run_callbacks(VfuServer *s)
{
    for (;;) {
        VfuDmaXfer *x = s->xfers;
        while (x && !x->finished) {
            x = x->next;
        }
        if (!x) {
            return;
        }
        unlink_xfer(s, x);
        orphan_requests(s, x);
        VfuDmaDone *done = x->done;
        void *opaque = x->opaque;
        bool ok = x->ok;
        free(x);
        done(opaque, ok);
    }
}

static int64_t request_expired(EventLoop *loop, uint64_t id, void *opaque)
{
    VfuDmaReq *r = opaque;
    VfuServer *s = r->s;
    r->timer = 0;
    log_ratelimited(LOG_WARN, "vfio-user %s of 0x%llx+%u: no reply from the "
                    "client within %d ms", vfu_cmd_name(r->cmd),
                    (unsigned long long)r->iova, r->count,
                    VFU_REQUEST_TIMEOUT_MS);
    if (r->xfer) {
        finish(r->xfer, false);
    }
    release_slot(s, r);
    pump(s);
    return LOOP_TIMER_DONE;
}

static VfuDmaReq *free_slot(VfuServer *s)
{
    for (unsigned i = 0; i < VFU_MAX_DMA_REQUESTS; i++) {
        if (!s->dma_reqs[i].busy) {
            return &s->dma_reqs[i];
        }
    }
    return NULL;
}

/* An id no outstanding request uses (at most VFU_MAX_DMA_REQUESTS do). */
static uint16_t fresh_id(VfuServer *s)
{
    for (;;) {
        uint16_t id = s->next_req_id++;
        bool used = false;
        for (unsigned i = 0; i < VFU_MAX_DMA_REQUESTS && !used; i++) {
            used = s->dma_reqs[i].busy && s->dma_reqs[i].msg_id == id;
        }
        if (!used) {
            return id;
        }
    }
}

/* Sends one request for n bytes at x's cursor, in slot r. */
static void send_piece(VfuServer *s, VfuDmaXfer *x, VfuDmaReq *r, size_t n)
{
    uint64_t iova = x->iova + x->issued;
    uint64_t timer = loop_add_timer(s->loop, VFU_REQUEST_TIMEOUT_MS,
                                    request_expired, r);
    *r = (VfuDmaReq){
        .s = s, .busy = true, .msg_id = fresh_id(s),
        .cmd = x->is_write ? VFU_CMD_DMA_WRITE : VFU_CMD_DMA_READ,
        .iova = iova, .count = (uint32_t)n,
        .dst = x->is_write ? NULL : x->buf + x->issued,
        .xfer = x, .timer = timer,
    };
    s->n_dma_reqs++;
    VfuDmaAccess a = { .addr = iova, .count = n };
    vfu_send_request(s, r->msg_id, r->cmd, &a, sizeof(a),
                     x->is_write ? x->buf + x->issued : NULL,
                     x->is_write ? n : 0);
    x->outstanding++;
}

/* Moves x forward as far as slots allow; false when it waits for one. */
static bool advance(VfuServer *s, VfuDmaXfer *x)
{
    uint32_t need = x->is_write ? VFU_DMA_FLAG_WRITE : VFU_DMA_FLAG_READ;
    while (x->issued < x->len) {
        uint64_t iova = x->iova + x->issued;
        size_t rem = x->len - x->issued;
        VfuDmaRegion *r = vfu_dma_lookup(s, iova);
        if (!r || !(r->prot & need)) {
            /* Unmapped since the transfer started. */
            log_ratelimited(LOG_WARN, "vfio-user: %s of 0x%llx: no longer "
                            "client memory", dir_name(x->is_write),
                            (unsigned long long)iova);
            finish(x, false);
            return true;
        }
        uint64_t off = iova - r->iova, avail = r->size - off;
        size_t n = rem < avail ? rem : (size_t)avail;
        if (r->host) {
            memcpy(x->is_write ? r->host + off : x->buf + x->issued,
                   x->is_write ? x->buf + x->issued : r->host + off, n);
            if (x->is_write) {
                vfu_dma_mark_dirty(s, iova, n);
            }
            x->issued += n;
            continue;
        }
        if (!vfu_server_can_request(s)) {
            finish(x, false);
            return true;
        }
        VfuDmaReq *slot = free_slot(s);
        if (!slot) {
            return false;
        }
        n = n < remote_piece(s) ? n : remote_piece(s);
        send_piece(s, x, slot, n);
        x->issued += n;
    }
    if (!x->outstanding) {
        finish(x, true);
    }
    return true;
}

/* Issues what slots allow, in start order, then runs the callbacks. */
static void pump(VfuServer *s)
{
    for (VfuDmaXfer *x = s->xfers; x; x = x->next) {
        if (!x->finished && !advance(s, x)) {
            break;
        }
    }
    vfu_conn_kick(s);
    run_callbacks(s);
}

static int64_t pump_run(EventLoop *loop, uint64_t id, void *opaque)
{
    VfuServer *s = opaque;
    s->dma_pump_timer = 0;
    pump(s);
    return LOOP_TIMER_DONE;
}

VfuDmaXfer *vfu_dma_start(VfuServer *s, uint64_t iova, void *buf,
                          size_t len, bool is_write, VfuDmaDone *done,
                          void *opaque, Error **errp)
{
    if (!vfu_server_can_request(s)) {
        error_setg(errp, "vfio-user %s: no client connected",
                   dir_name(is_write));
        return NULL;
    }
    if (!vfu_dma_mapped(s, iova, len, is_write)) {
        error_setg(errp, "DMA %s of 0x%llx+%zu: not in %s client memory",
                   is_write ? "write" : "read", (unsigned long long)iova,
                   len, is_write ? "writable" : "readable");
        return NULL;
    }
    VfuDmaXfer *x = calloc(1, sizeof(*x));
    if (!x) {
        error_setg(errp, "out of memory");
        return NULL;
    }
    *x = (VfuDmaXfer){ .iova = iova, .buf = buf, .len = len,
                       .is_write = is_write, .done = done,
                       .opaque = opaque };
    VfuDmaXfer **tail = &s->xfers;
    while (*tail) {
        tail = &(*tail)->next;
    }
    *tail = x;
    /* Issued from the loop: done never runs inside this call. */
    if (!s->dma_pump_timer) {
        s->dma_pump_timer = loop_add_timer(s->loop, 0, pump_run, s);
    }
    return x;
}

void vfu_dma_cancel(VfuServer *s, VfuDmaXfer *x)
{
    unlink_xfer(s, x);
    orphan_requests(s, x);
    free(x);
}

unsigned vfu_dma_in_flight(const VfuServer *s)
{
    unsigned n = 0;
    for (const VfuDmaXfer *x = s->xfers; x; x = x->next) {
        n++;
    }
    return n;
}

/* Checks a reply against its request; the reason when it is bad. */
static const char *check_reply(const VfuDmaReq *r, const VfuHeader *h,
                               const uint8_t *body, size_t len)
{
    VfuDmaAccess echo;
    bool is_write = r->cmd == VFU_CMD_DMA_WRITE;
    if (h->flags & VFU_FLAG_ERROR) {
        return "the client refused it";
    }
    if (len != sizeof(echo) + (is_write ? 0 : r->count)) {
        return "reply of the wrong size";
    }
    memcpy(&echo, body, sizeof(echo));
    if (echo.addr != r->iova || echo.count != r->count) {
        return "reply does not echo address and count";
    }
    return NULL;
}

void vfu_dma_remote_reply(VfuServer *s, const VfuHeader *h,
                          const uint8_t *body, size_t len)
{
    VfuDmaReq *r = NULL;
    for (unsigned i = 0; i < VFU_MAX_DMA_REQUESTS && !r; i++) {
        VfuDmaReq *q = &s->dma_reqs[i];
        if (q->busy && q->msg_id == h->msg_id && q->cmd == h->cmd) {
            r = q;
        }
    }
    if (!r) {
        /* Late (after its deadline) or never asked for. */
        log_ratelimited(LOG_WARN, "vfio-user: stray reply to %s (id %u)",
                        vfu_cmd_name(h->cmd), h->msg_id);
        return;
    }
    const char *why = check_reply(r, h, body, len);
    VfuDmaXfer *x = r->xfer;
    if (why) {
        log_ratelimited(LOG_WARN, "vfio-user %s of 0x%llx+%u: %s (error "
                        "%u)", vfu_cmd_name(r->cmd),
                        (unsigned long long)r->iova, r->count, why,
                        h->error);
    } else if (r->cmd == VFU_CMD_DMA_WRITE) {
        vfu_dma_mark_dirty(s, r->iova, r->count);
    } else if (r->dst) {
        memcpy(r->dst, body + sizeof(VfuDmaAccess), r->count);
    }
    release_slot(s, r);
    if (x) {
        x->outstanding--;
        if (why) {
            finish(x, false);
        } else if (x->issued == x->len && !x->outstanding) {
            finish(x, true);
        }
    }
    pump(s);
}

void vfu_dma_remote_fail_all(VfuServer *s)
{
    for (unsigned i = 0; i < VFU_MAX_DMA_REQUESTS; i++) {
        if (s->dma_reqs[i].busy) {
            release_slot(s, &s->dma_reqs[i]);
        }
    }
    for (VfuDmaXfer *x = s->xfers; x; x = x->next) {
        finish(x, false);
    }
    run_callbacks(s);
}

void vfu_dma_remote_free(VfuServer *s)
{
    vfu_dma_remote_fail_all(s);
    if (s->dma_pump_timer) {
        loop_del_timer(s->loop, s->dma_pump_timer);
        s->dma_pump_timer = 0;
    }
}
