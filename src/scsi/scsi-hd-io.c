/* scsi-hd commands that reach the backend: READ, WRITE, SYNCHRONIZE
 * CACHE, UNMAP, WRITE SAME. One HdIo per command runs one or more backend
 * requests in sequence; requests the backend has no room for (-EAGAIN)
 * wait in a FIFO and are retried after a completion. */
#include "scsi/scsi-hd-io.h"
#include "util/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void hd_io_discard(HdIo *io)
{
    hd_lock_release(io);
    if (io->iov != io->iov_inline) {
        free(io->iov);
    }
    free(io->bounce);
    free(io->descs);
    free(io);
}

static ScsiSense hd_errno_sense(const HdIo *io, int ret)
{
    switch (ret) {
    case -EPERM:
        /* Not our disk (yet, or any more): the initiator retries. */
        return SENSE_NOT_READY_TRANSITION;
    case -EIO:
        return io->is_write ? SENSE_MEDIUM_ERROR_WRITE :
                              SENSE_MEDIUM_ERROR_READ;
    case -ENOSPC:
    case -EDQUOT:
        return SENSE_SPACE_ALLOC_FAILED;
    default:
        return SENSE_ABORTED_IO_ERROR;
    }
}

void hd_io_finish(HdIo *io, int ret)
{
    ScsiRequest *req = io->req;
    if (ret < 0) {
        log_ratelimited(LOG_WARN, "scsi-hd %s: opcode %02x failed: %s",
                        io->hd->dev.id, req->cdb[0], strerror(-ret));
        scsi_req_complete_sense(req, hd_errno_sense(io, ret));
    } else if (io->miscompare) {
        scsi_req_complete_sense_info(req, SENSE_MISCOMPARE_VERIFY,
                                     io->miscompare_offset);
    } else {
        if (io->kind == IO_READ && io->bounce && !io->phased) {
            scsi_iov_from_buf(req->iov, req->iovcnt, 0, io->bounce,
                              io->xfer);
        }
        scsi_req_complete_good(req, io->xfer);
    }
    hd_io_discard(io);
}

bool hd_io_next_step(HdIo *io)
{
    if (io->phased) {
        return hd_cmp_next_phase(io);
    }
    switch (io->kind) {
    case IO_UNMAP:
        while (io->next_desc < io->n_descs) {
            const uint8_t *d = io->descs + 16 * io->next_desc++;
            uint64_t n = ld_be32(&d[8]);
            if (n) {
                io->offset = ld_be64(d) * io->hd->block_size;
                io->bytes = n * io->hd->block_size;
                return true;
            }
        }
        break;
    case IO_PATTERN:
        io->offset += io->bytes;
        if (io->offset < io->end) {
            if (io->bytes > io->end - io->offset) {
                io->bytes = io->end - io->offset;
                io->iov[0].iov_len = io->bytes;
            }
            return true;
        }
        break;
    default:
        break;
    }
    if (io->flush_after && io->kind != IO_FLUSH) {
        io->kind = IO_FLUSH;
        return true;
    }
    return false;
}

static void hd_retry_kick(ScsiHd *hd);

static void hd_io_cb(void *opaque, int ret)
{
    HdIo *io = opaque;
    ScsiHd *hd = io->hd;
    if (ret < 0 || !hd_io_next_step(io)) {
        hd_io_finish(io, ret);
    } else {
        hd_io_issue(io);
    }
    hd_retry_kick(hd);
}

static int hd_io_submit(HdIo *io)
{
    BlockBackend *blk = io->hd->blk;
    switch (io->kind) {
    case IO_READ:
        return blk_preadv(blk, io->offset, io->iov, io->iovcnt, hd_io_cb,
                          io);
    case IO_WRITE:
    case IO_PATTERN:
        return blk_pwritev(blk, io->offset, io->iov, io->iovcnt, io->fua,
                           hd_io_cb, io);
    case IO_FLUSH:
        return blk_flush(blk, hd_io_cb, io);
    case IO_ZERO:
    case IO_UNMAP:
        return blk_write_zeroes(blk, io->offset, io->bytes, io->may_unmap,
                                hd_io_cb, io);
    }
    return -EINVAL;
}

static int64_t hd_retry_timer_cb(EventLoop *loop, uint64_t id, void *opaque)
{
    ScsiHd *hd = opaque;
    hd->retry_timer = 0;
    hd_retry_kick(hd);
    return LOOP_TIMER_DONE;
}

static void hd_retry_push(HdIo *io, bool front)
{
    ScsiHd *hd = io->hd;
    io->next_retry = NULL;
    if (front) {
        io->next_retry = hd->retry_head;
        hd->retry_head = io;
        if (!hd->retry_tail) {
            hd->retry_tail = io;
        }
    } else if (hd->retry_tail) {
        hd->retry_tail->next_retry = io;
        hd->retry_tail = io;
    } else {
        hd->retry_head = hd->retry_tail = io;
    }
    /* No completion of ours will come to retry it: poll instead. */
    if (blk_in_flight(hd->blk) == 0 && !hd->retry_timer) {
        hd->retry_timer = loop_add_timer(hd->lun.loop, 1, hd_retry_timer_cb,
                                         hd);
    }
}

void hd_io_issue(HdIo *io)
{
    int ret = hd_io_submit(io);
    if (ret == -EAGAIN) {
        hd_retry_push(io, false);
    } else if (ret < 0) {
        hd_io_finish(io, ret);
    }
}

static void hd_retry_kick(ScsiHd *hd)
{
    while (hd->retry_head) {
        HdIo *io = hd->retry_head;
        hd->retry_head = io->next_retry;
        if (!hd->retry_head) {
            hd->retry_tail = NULL;
        }
        int ret = hd_io_submit(io);
        if (ret == -EAGAIN) {
            hd_retry_push(io, true);
            return;
        }
        if (ret < 0) {
            hd_io_finish(io, ret);
        }
    }
}

void hd_io_cancel(ScsiHd *hd, ScsiRequest *req)
{
    if (hd_lock_cancel(hd, req)) {
        return;
    }
    for (HdIo **p = &hd->retry_head, *prev = NULL; *p;
         prev = *p, p = &(*p)->next_retry) {
        HdIo *io = *p;
        if (io->req == req) {
            *p = io->next_retry;
            if (hd->retry_tail == io) {
                hd->retry_tail = prev;
            }
            /* Never reached the backend: complete it as aborted. */
            scsi_req_complete(req);
            hd_io_discard(io);
            return;
        }
    }
}

void hd_io_start(HdIo *io)
{
    if (hd_lock_acquire(io)) {
        hd_io_issue(io);
    }
}

HdIo *hd_io_new(ScsiHd *hd, ScsiRequest *req, HdIoKind kind)
{
    HdIo *io = calloc(1, sizeof(*io));
    if (!io) {
        scsi_req_complete_sense(req, SENSE_ABORTED_COMMAND);
        return NULL;
    }
    io->hd = hd;
    io->req = req;
    io->kind = kind;
    io->is_write = kind != IO_READ;
    return io;
}


void hd_io_fail_nomem(HdIo *io)
{
    ScsiRequest *req = io->req;
    hd_io_discard(io);
    scsi_req_complete_sense(req, SENSE_ABORTED_COMMAND);
}
