/*
 * The data path of a block backend: one io_uring per backend, completions
 * signalled through an eventfd watched by the attached EventLoop.
 *
 * Every request is checked before it reaches the ring (permission, range,
 * alignment, iovec sanity); anything refused gets a negative errno and a
 * rate-limited log line, never an abort, since offsets and lengths come
 * from guests. At most queue_depth requests are in flight, so the
 * completion queue (twice the submission queue) can never overflow.
 */
#include "block/block-int.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define ZERO_BUF_MAX (1u << 20)     /* write-zeroes fallback chunk */

typedef enum BlockReqType {
    REQ_NOP,        /* zero-length or ignored request: completes with 0 */
    REQ_READ,
    REQ_WRITE,
    REQ_FLUSH,
    REQ_DISCARD,
    REQ_ZERO,
} BlockReqType;

/* How a write-zeroes request is being served, in the order tried. */
typedef enum ZeroMethod {
    ZERO_PUNCH_HOLE,    /* deallocates; only with may_unmap and discard=on */
    ZERO_RANGE,         /* keeps the allocation */
    ZERO_WRITE,         /* the file refused both: write zero buffers */
} ZeroMethod;

typedef struct BlockRequest {
    BlockBackend *blk;
    BlockReqType type;
    BlockCompletionFunc *cb;
    void *opaque;
    uint64_t offset;            /* advances on short transfers */
    uint64_t remaining;
    uint64_t bytes;             /* whole request, for the counters */
    bool fua;
    bool may_unmap;
    ZeroMethod zero_method;
    void *zero_buf;
    size_t zero_buf_len;
    int iovcnt;
    struct iovec *iov;          /* the unfinished part of the copy below */
    struct iovec iov_copy[];    /* submission-stable copy of the caller's */
} BlockRequest;

static const char *const req_names[] = {
    [REQ_NOP] = "nop", [REQ_READ] = "read", [REQ_WRITE] = "write",
    [REQ_FLUSH] = "flush", [REQ_DISCARD] = "discard",
    [REQ_ZERO] = "write-zeroes",
};

static int refuse(BlockBackend *blk, BlockReqType type, uint64_t offset,
                  uint64_t bytes, int err, const char *why)
{
    log_ratelimited(LOG_WARN, "block '%s': %s at %llu+%llu refused: %s",
                    blk->node_name, req_names[type],
                    (unsigned long long)offset, (unsigned long long)bytes,
                    why);
    return err;
}

static int check_write_allowed(BlockBackend *blk, BlockReqType type,
                               uint64_t offset, uint64_t bytes)
{
    if (blk->read_only) {
        return refuse(blk, type, offset, bytes, -EPERM, "read-only");
    }
    if (!blk->active) {
        return refuse(blk, type, offset, bytes, -EPERM,
                      "disk not owned by this process (inactive)");
    }
    return 0;
}

static int check_range(BlockBackend *blk, BlockReqType type, uint64_t offset,
                       uint64_t bytes)
{
    /* Written so that offset + bytes cannot overflow. */
    if (bytes > blk->size || offset > blk->size - bytes) {
        return refuse(blk, type, offset, bytes, -EINVAL,
                      "outside the disk");
    }
    if ((offset | bytes) & (blk->align - 1)) {
        return refuse(blk, type, offset, bytes, -EINVAL,
                      "not aligned for direct I/O");
    }
    return 0;
}

static int check_iov(BlockBackend *blk, BlockReqType type, uint64_t offset,
                     const struct iovec *iov, int iovcnt, uint64_t *total)
{
    *total = 0;
    if (iovcnt < 0 || iovcnt > IOV_MAX || (iovcnt && !iov)) {
        return refuse(blk, type, offset, 0, -EINVAL, "bad iovec count");
    }
    for (int i = 0; i < iovcnt; i++) {
        uint64_t len = iov[i].iov_len;
        if ((!iov[i].iov_base && len) || len > UINT64_MAX - *total) {
            return refuse(blk, type, offset, len, -EINVAL, "bad iovec");
        }
        if (((uintptr_t)iov[i].iov_base | len) & (blk->align - 1)) {
            return refuse(blk, type, offset, len, -EINVAL,
                          "buffer not aligned for direct I/O");
        }
        *total += len;
    }
    return 0;
}

static BlockRequest *req_new(BlockBackend *blk, BlockReqType type,
                             uint64_t offset, uint64_t bytes, int iovcnt,
                             BlockCompletionFunc *cb, void *opaque)
{
    BlockRequest *req = calloc(1, sizeof(*req) +
                               (size_t)iovcnt * sizeof(struct iovec));
    if (!req) {
        return NULL;
    }
    req->blk = blk;
    req->type = bytes || type == REQ_FLUSH ? type : REQ_NOP;
    req->cb = cb;
    req->opaque = opaque;
    req->offset = offset;
    req->remaining = bytes;
    req->bytes = bytes;
    req->iov = req->iov_copy;
    req->iovcnt = iovcnt;
    return req;
}

static void req_prep(BlockRequest *req, struct io_uring_sqe *sqe)
{
    BlockBackend *blk = req->blk;
    switch (req->type) {
    case REQ_READ:
        io_uring_prep_readv(sqe, blk->fd, req->iov, (unsigned)req->iovcnt,
                            req->offset);
        break;
    case REQ_WRITE:
        /* FUA: the data is on stable storage when the write completes. */
        io_uring_prep_writev2(sqe, blk->fd, req->iov, (unsigned)req->iovcnt,
                              req->offset, req->fua ? RWF_DSYNC : 0);
        break;
    case REQ_FLUSH:
        io_uring_prep_fsync(sqe, blk->fd, IORING_FSYNC_DATASYNC);
        break;
    case REQ_DISCARD:
        io_uring_prep_fallocate(sqe, blk->fd,
                                FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                req->offset, req->remaining);
        break;
    case REQ_ZERO:
        if (req->zero_method == ZERO_WRITE) {
            struct iovec *iov = &req->iov_copy[0];
            iov->iov_base = req->zero_buf;
            iov->iov_len = req->remaining < req->zero_buf_len ?
                           req->remaining : req->zero_buf_len;
            io_uring_prep_writev(sqe, blk->fd, iov, 1, req->offset);
        } else {
            int mode = req->zero_method == ZERO_PUNCH_HOLE ?
                       FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE :
                       FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
            io_uring_prep_fallocate(sqe, blk->fd, mode, req->offset,
                                    req->remaining);
        }
        break;
    case REQ_NOP:
        io_uring_prep_nop(sqe);
        break;
    }
    io_uring_sqe_set_data(sqe, req);
}

/* Hands the queued SQEs to the kernel. A failed io_uring_enter leaves them
 * in the ring (its tail is already published), so the only way on is to
 * try again; returns true when that is still due. */
static bool sq_flush(BlockBackend *blk)
{
    if (!blk->sq_queued) {
        return false;
    }
    int ret = io_uring_submit(&blk->ring);
    if (ret < 0) {
        log_ratelimited(LOG_ERROR, "block '%s': io_uring submit: %s",
                        blk->node_name, strerror(-ret));
        return true;
    }
    blk->sq_queued = (unsigned)ret < blk->sq_queued ?
                     blk->sq_queued - (unsigned)ret : 0;
    return blk->sq_queued != 0;
}

/* The loop's prepare hook: one io_uring_enter for all the requests the
 * handlers of an iteration (a kick, a doorbell, completions resubmitting
 * short transfers) queued, instead of one per request. */
static bool on_loop_prepare(void *opaque)
{
    return sq_flush(opaque);
}

/* Puts req on the ring. With a loop attached the SQE waits for the loop's
 * prepare hook; without one (synchronous helpers, tests) it is submitted
 * at once. */
static int req_submit(BlockRequest *req)
{
    BlockBackend *blk = req->blk;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&blk->ring);
    if (!sqe) {
        sq_flush(blk);
        sqe = io_uring_get_sqe(&blk->ring);
        if (!sqe) {
            return -EAGAIN;
        }
    }
    req_prep(req, sqe);
    blk->sq_queued++;
    if (!blk->loop) {
        sq_flush(blk);
    }
    return 0;
}

static void count_completion(BlockBackend *blk, BlockRequest *req, int ret)
{
    BlockStats *s = &blk->stats;
    if (ret < 0) {
        s->failed_ops++;
        return;
    }
    switch (req->type) {
    case REQ_READ:
        s->rd_ops++;
        s->rd_bytes += req->bytes;
        break;
    case REQ_WRITE:
        s->wr_ops++;
        s->wr_bytes += req->bytes;
        break;
    case REQ_FLUSH:
        s->flush_ops++;
        break;
    case REQ_DISCARD:
        s->discard_ops++;
        break;
    case REQ_ZERO:
        s->zero_ops++;
        break;
    case REQ_NOP:
        break;
    }
}

static void req_complete(BlockRequest *req, int ret)
{
    BlockBackend *blk = req->blk;
    BlockCompletionFunc *cb = req->cb;
    void *opaque = req->opaque;
    count_completion(blk, req, ret);
    blk->in_flight--;
    free(req->zero_buf);
    free(req);
    if (cb) {
        cb(opaque, ret);
    }
}

static void iov_advance(BlockRequest *req, size_t done)
{
    while (done && req->iovcnt) {
        if (done >= req->iov->iov_len) {
            done -= req->iov->iov_len;
            req->iov++;
            req->iovcnt--;
        } else {
            req->iov->iov_base = (char *)req->iov->iov_base + done;
            req->iov->iov_len -= done;
            done = 0;
        }
    }
}

/* Reads and writes may transfer less than asked (signals, a write limit
 * of 2 GiB per call); the rest is submitted again. */
static void rw_done(BlockRequest *req, int res)
{
    if (res < 0) {
        req_complete(req, res);
        return;
    }
    if (res == 0) {
        /* No progress: end of a file truncated under us, or no space. */
        req_complete(req, req->type == REQ_READ ? -EIO : -ENOSPC);
        return;
    }
    req->remaining -= (uint64_t)res;
    req->offset += (uint64_t)res;
    if (!req->remaining) {
        req_complete(req, 0);
        return;
    }
    if (req->type == REQ_ZERO) {
        /* Zero chunks always start again at the buffer's beginning. */
    } else {
        iov_advance(req, (size_t)res);
    }
    int ret = req_submit(req);
    if (ret < 0) {
        req_complete(req, ret);
    }
}

static int zero_fallback_to_write(BlockRequest *req)
{
    BlockBackend *blk = req->blk;
    size_t len = req->remaining < ZERO_BUF_MAX ? (size_t)req->remaining
                                               : ZERO_BUF_MAX;
    size_t align = blk->align < 4096 ? 4096 : blk->align;
    len = (len + align - 1) & ~(align - 1);
    if (posix_memalign(&req->zero_buf, align, len) != 0) {
        req->zero_buf = NULL;
        return -ENOMEM;
    }
    memset(req->zero_buf, 0, len);
    req->zero_buf_len = len;
    req->zero_method = ZERO_WRITE;
    blk->stats.zero_fallbacks++;
    return 0;
}

static void zero_done(BlockRequest *req, int res)
{
    BlockBackend *blk = req->blk;
    if (req->zero_method == ZERO_WRITE) {
        rw_done(req, res);
        return;
    }
    if (res != -EOPNOTSUPP) {
        req_complete(req, res < 0 ? res : 0);
        return;
    }
    /* The file system refused this way of zeroing: remember, try the
     * next one. */
    int ret = 0;
    if (req->zero_method == ZERO_PUNCH_HOLE) {
        blk->no_punch_hole = true;
        req->zero_method = blk->no_zero_range ? ZERO_WRITE : ZERO_RANGE;
    } else {
        blk->no_zero_range = true;
        req->zero_method = ZERO_WRITE;
    }
    if (req->zero_method == ZERO_WRITE) {
        ret = zero_fallback_to_write(req);
    }
    if (ret == 0) {
        ret = req_submit(req);
    }
    if (ret < 0) {
        req_complete(req, ret);
    }
}

static void req_done(BlockRequest *req, int res)
{
    switch (req->type) {
    case REQ_READ:
    case REQ_WRITE:
        rw_done(req, res);
        break;
    case REQ_ZERO:
        zero_done(req, res);
        break;
    case REQ_DISCARD:
        /* Discard is a hint: a file that cannot punch holes ignores it. */
        if (res == -EOPNOTSUPP) {
            req->blk->no_punch_hole = true;
            res = 0;
        }
        req_complete(req, res);
        break;
    case REQ_FLUSH:
    case REQ_NOP:
        req_complete(req, res);
        break;
    }
}

/* A completion held back by debug-delay-ms. */
struct BlockDelayed {
    BlockRequest *req;
    int res;
    uint64_t due_ms;
    BlockDelayed *next;
};

/* Completes held completions: those due, or all. Returns the delay
 * until the next one is due, or LOOP_TIMER_DONE when none is left. */
static int64_t delayed_run(BlockBackend *blk, bool all)
{
    while (blk->delayed) {
        BlockDelayed *d = blk->delayed;
        uint64_t now = clock_ms();
        if (!all && d->due_ms > now) {
            return (int64_t)(d->due_ms - now);
        }
        blk->delayed = d->next;
        if (!blk->delayed) {
            blk->delayed_tail = &blk->delayed;
        }
        BlockRequest *req = d->req;
        int res = d->res;
        free(d);
        req_done(req, res);
    }
    return LOOP_TIMER_DONE;
}

static int64_t delayed_due(EventLoop *loop, uint64_t id, void *opaque)
{
    BlockBackend *blk = opaque;
    int64_t next = delayed_run(blk, false);
    if (next == LOOP_TIMER_DONE) {
        blk->delay_timer = 0;
    }
    return next;
}

static void delayed_flush(BlockBackend *blk)
{
    if (blk->delay_timer) {
        loop_del_timer(blk->loop, blk->delay_timer);
        blk->delay_timer = 0;
    }
    delayed_run(blk, true);
}

/* False when the completion must be served now (no loop, no memory). */
static bool delay_completion(BlockBackend *blk, BlockRequest *req, int res)
{
    BlockDelayed *d = blk->loop ? malloc(sizeof(*d)) : NULL;
    if (!d) {
        return false;
    }
    *d = (BlockDelayed){ req, res, clock_ms() + blk->debug_delay_ms, NULL };
    *blk->delayed_tail = d;
    blk->delayed_tail = &d->next;
    if (!blk->delay_timer) {
        blk->delay_timer = loop_add_timer(blk->loop, blk->debug_delay_ms,
                                          delayed_due, blk);
    }
    return true;
}

static void process_completions(BlockBackend *blk, bool may_delay)
{
    struct io_uring_cqe *cqe;
    while (io_uring_peek_cqe(&blk->ring, &cqe) == 0) {
        BlockRequest *req = io_uring_cqe_get_data(cqe);
        int res = cqe->res;
        io_uring_cqe_seen(&blk->ring, cqe);
        if (req && !(may_delay && blk->debug_delay_ms &&
                     delay_completion(blk, req, res))) {
            req_done(req, res);
        }
    }
    if (blk->status_in_flight) {
        blk_status_process_done(blk);
    }
}

static void on_completion_event(EventLoop *loop, int fd, int mask,
                                void *opaque)
{
    uint64_t count;
    ssize_t n = read(fd, &count, sizeof(count));
    (void)n;    /* EAGAIN: already consumed; completions are peeked anyway */
    process_completions(opaque, true);
}

/* Common tail of every submission: queue-depth check, then the ring. */
static int start_request(BlockRequest *req)
{
    BlockBackend *blk = req->blk;
    if (blk->in_flight >= blk->queue_depth) {
        free(req);
        return -EAGAIN;
    }
    if (req->type == REQ_ZERO) {
        req->zero_method = ZERO_RANGE;
        if (req->may_unmap && blk->discard && !blk->no_punch_hole) {
            req->zero_method = ZERO_PUNCH_HOLE;
        } else if (blk->no_zero_range) {
            int ret = zero_fallback_to_write(req);
            if (ret < 0) {
                free(req);
                return ret;
            }
        }
    }
    int ret = req_submit(req);
    if (ret < 0) {
        free(req->zero_buf);
        free(req);
        return ret;
    }
    blk->in_flight++;
    return 0;
}

/* A checked read or write: copies the caller's iovec (it may live on the
 * stack) and starts the request. */
static int start_vectored(BlockBackend *blk, BlockReqType type,
                          uint64_t offset, uint64_t bytes,
                          const struct iovec *iov, int iovcnt, bool fua,
                          BlockCompletionFunc *cb, void *opaque)
{
    BlockRequest *req = req_new(blk, type, offset, bytes, iovcnt, cb, opaque);
    if (!req) {
        return -ENOMEM;
    }
    if (iovcnt) {   /* a zero-length request may carry no iovec at all */
        memcpy(req->iov_copy, iov, (size_t)iovcnt * sizeof(*iov));
    }
    req->fua = fua;
    return start_request(req);
}

int blk_preadv(BlockBackend *blk, uint64_t offset, const struct iovec *iov,
               int iovcnt, BlockCompletionFunc *cb, void *opaque)
{
    uint64_t bytes;
    int ret = check_iov(blk, REQ_READ, offset, iov, iovcnt, &bytes);
    if (ret == 0) {
        ret = check_range(blk, REQ_READ, offset, bytes);
    }
    if (ret < 0) {
        return ret;
    }
    return start_vectored(blk, REQ_READ, offset, bytes, iov, iovcnt, false,
                          cb, opaque);
}

int blk_pwritev(BlockBackend *blk, uint64_t offset, const struct iovec *iov,
                int iovcnt, bool fua, BlockCompletionFunc *cb, void *opaque)
{
    uint64_t bytes;
    int ret = check_iov(blk, REQ_WRITE, offset, iov, iovcnt, &bytes);
    if (ret == 0) {
        ret = check_write_allowed(blk, REQ_WRITE, offset, bytes);
    }
    if (ret == 0) {
        ret = check_range(blk, REQ_WRITE, offset, bytes);
    }
    if (ret < 0) {
        return ret;
    }
    return start_vectored(blk, REQ_WRITE, offset, bytes, iov, iovcnt, fua,
                          cb, opaque);
}

int blk_flush(BlockBackend *blk, BlockCompletionFunc *cb, void *opaque)
{
    int ret = check_write_allowed(blk, REQ_FLUSH, 0, 0);
    if (ret < 0) {
        return ret;
    }
    BlockRequest *req = req_new(blk, REQ_FLUSH, 0, 0, 0, cb, opaque);
    return req ? start_request(req) : -ENOMEM;
}

int blk_discard(BlockBackend *blk, uint64_t offset, uint64_t bytes,
                BlockCompletionFunc *cb, void *opaque)
{
    int ret = check_write_allowed(blk, REQ_DISCARD, offset, bytes);
    if (ret == 0) {
        ret = check_range(blk, REQ_DISCARD, offset, bytes);
    }
    if (ret < 0) {
        return ret;
    }
    /* discard=off, or holes known unsupported: accepted, nothing done. */
    bool ignore = !blk->discard || blk->no_punch_hole;
    BlockRequest *req = req_new(blk, ignore ? REQ_NOP : REQ_DISCARD, offset,
                                ignore ? 0 : bytes, 0, cb, opaque);
    return req ? start_request(req) : -ENOMEM;
}

int blk_write_zeroes(BlockBackend *blk, uint64_t offset, uint64_t bytes,
                     bool may_unmap, BlockCompletionFunc *cb, void *opaque)
{
    int ret = check_write_allowed(blk, REQ_ZERO, offset, bytes);
    if (ret == 0) {
        ret = check_range(blk, REQ_ZERO, offset, bytes);
    }
    if (ret < 0) {
        return ret;
    }
    /* One iovec slot for the zero-buffer fallback. */
    BlockRequest *req = req_new(blk, REQ_ZERO, offset, bytes, 1, cb, opaque);
    if (!req) {
        return -ENOMEM;
    }
    req->may_unmap = may_unmap;
    return start_request(req);
}

void blk_drain(BlockBackend *blk)
{
    delayed_flush(blk);
    while (blk->in_flight) {
        sq_flush(blk);
        struct io_uring_cqe *cqe;
        int ret;
        if (blk->status_in_flight) {
            /* Status jobs signal the eventfd, not the ring: poll. */
            struct __kernel_timespec ts = { .tv_nsec = 1000000 };
            ret = io_uring_wait_cqe_timeout(&blk->ring, &cqe, &ts);
            ret = ret == -ETIME ? 0 : ret;
        } else {
            ret = io_uring_wait_cqe(&blk->ring, &cqe);
        }
        if (ret < 0 && ret != -EINTR && ret != -EAGAIN) {
            log_error("block '%s': waiting for completions: %s",
                      blk->node_name, strerror(-ret));
            return;
        }
        process_completions(blk, false);
    }
}

bool blk_io_init(BlockBackend *blk, Error **errp)
{
    int ret = io_uring_queue_init(blk->queue_depth, &blk->ring, 0);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "block '%s': cannot create io_uring",
                         blk->node_name);
        return false;
    }
    blk->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (blk->efd < 0) {
        error_setg_errno(errp, errno, "block '%s': cannot create eventfd",
                         blk->node_name);
        io_uring_queue_exit(&blk->ring);
        return false;
    }
    ret = io_uring_register_eventfd(&blk->ring, blk->efd);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "block '%s': cannot register eventfd",
                         blk->node_name);
        close(blk->efd);
        blk->efd = -1;
        io_uring_queue_exit(&blk->ring);
        return false;
    }
    return true;
}

void blk_io_cleanup(BlockBackend *blk)
{
    blk_io_detach_loop(blk);
    io_uring_queue_exit(&blk->ring);
    close(blk->efd);
    blk->efd = -1;
}

void blk_io_detach_loop(BlockBackend *blk)
{
    if (blk->loop) {
        delayed_flush(blk);
        loop_del_prepare(blk->loop, on_loop_prepare, blk);
        loop_del_fd(blk->loop, blk->efd);
        blk->loop = NULL;
        sq_flush(blk);
    }
}

bool blk_io_attach_loop(BlockBackend *blk, EventLoop *loop, Error **errp)
{
    if (!loop_add_fd(loop, blk->efd, LOOP_READ, on_completion_event, blk,
                     errp)) {
        error_prepend(errp, "block '%s': ", blk->node_name);
        return false;
    }
    if (!loop_add_prepare(loop, on_loop_prepare, blk, errp)) {
        loop_del_fd(loop, blk->efd);
        error_prepend(errp, "block '%s': ", blk->node_name);
        return false;
    }
    blk->loop = loop;
    return true;
}
