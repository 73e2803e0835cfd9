/*
 * NVM command set (NVMe 1.4 section 6): Read, Write, Compare, Flush,
 * Write Zeroes and Dataset Management on BlockBackends.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "nvme/nvme-int.h"
#include "util/log.h"

#define DSM_AD (1u << 2)            /* 6.7: attribute deallocate */

NvmeNamespace *nvme_ns_get(NvmeCtrl *ctrl, uint32_t nsid)
{
    if (nsid == 0 || nsid > ctrl->nr_ns) {
        return NULL;
    }
    return &ctrl->ns[nsid - 1];
}

static uint16_t errno_status(int ret, bool is_write)
{
    switch (ret) {
    case -EPERM:
    case -EROFS:  return NVME_NS_WRITE_PROTECTED | NVME_DNR;
    case -EAGAIN: return NVME_NS_NOT_READY;      /* retryable */
    case -EINVAL: return NVME_INTERNAL_ERROR | NVME_DNR;
    case -EIO:    return is_write ? NVME_WRITE_FAULT : NVME_UNRECOVERED_READ;
    default:      return NVME_INTERNAL_ERROR;
    }
}

static void aio_cb(void *opaque, int ret)
{
    NvmeRequest *req = opaque;
    if (ret < 0 && req->aio_ret == 0) {
        req->aio_ret = ret;
    }
    if (--req->aio_pending == 0) {
        req->done(req, req->aio_ret);
    }
}

/* Accounts a submission; a refused one completes the request's share. */
static void aio_submitted(NvmeRequest *req, int r)
{
    if (r < 0) {
        aio_cb(req, r);
    }
}

/* The request was set up with aio_pending = 1 + number of submissions so
 * that no completion finishes it before all are issued. */
static uint16_t aio_release(NvmeRequest *req)
{
    aio_cb(req, 0);
    return NVME_STATUS_DEFERRED;
}

static bool lba_range_ok(const NvmeNamespace *ns, uint64_t slba,
                         uint64_t nlb)
{
    return slba <= ns->nsze && nlb <= ns->nsze - slba;
}

/* ---- read, write, compare ----
 *
 * A command goes: data pointer mapped (nvme_map_dptr) -> for a write
 * through a bounce buffer, the guest's data copied in -> block I/O ->
 * for a read through a bounce buffer, the data copied out (or a
 * Compare's guest data read) -> completion. Each arrow may wait for an
 * asynchronous copy of guest memory the transport cannot translate. */

static void rw_finished(NvmeRequest *req, uint16_t st)
{
    NvmeCtrl *ctrl = req->ctrl;
    bool is_write = req->cmd.opcode == NVME_CMD_WRITE;
    if (st == NVME_SUCCESS) {
        uint64_t *sectors = is_write ? &ctrl->smart.sectors_written
                                     : &ctrl->smart.sectors_read;
        *sectors += req->bytes / 512;
        (*(is_write ? &ctrl->smart.host_writes : &ctrl->smart.host_reads))++;
    }
    nvme_req_finish(req, st);
}

static void cmp_fetched(NvmeRequest *req, uint16_t st)
{
    if (!st && memcmp(req->bounce, req->cmp_buf, req->bytes) != 0) {
        st = NVME_COMPARE_FAILURE;
    }
    rw_finished(req, st);
}

static void rw_done(NvmeRequest *req, int ret)
{
    if (ret < 0) {
        rw_finished(req, errno_status(ret,
                                      req->cmd.opcode == NVME_CMD_WRITE));
    } else if (req->cmd.opcode == NVME_CMD_COMPARE) {
        req->bounce = malloc(req->bytes);
        if (!req->bounce) {
            rw_finished(req, NVME_INTERNAL_ERROR);
            return;
        }
        nvme_req_copy(req, req->bounce, req->bytes, false, cmp_fetched);
    } else {
        nvme_req_finish_data(req, rw_finished);
    }
}

static uint16_t rw_submit(NvmeRequest *req, bool fua)
{
    NvmeNamespace *ns = req->ns;
    uint64_t off = req->slba << ns->lbads;
    int r;

    req->done = rw_done;
    req->aio_pending = 2;
    if (req->cmd.opcode == NVME_CMD_COMPARE) {
        size_t align = blk_alignment(ns->blk);
        align = align < sizeof(void *) ? sizeof(void *) : align;
        req->cmp_buf = aligned_alloc(align, (req->bytes + align - 1) /
                                     align * align);
        if (!req->cmp_buf) {
            return NVME_INTERNAL_ERROR;
        }
        struct iovec iov = { req->cmp_buf, req->bytes };
        r = blk_preadv(ns->blk, off, &iov, 1, aio_cb, req);
    } else if (req->cmd.opcode == NVME_CMD_READ) {
        r = blk_preadv(ns->blk, off, req->iov, (int)req->iovcnt, aio_cb, req);
    } else {
        r = blk_pwritev(ns->blk, off, req->iov, (int)req->iovcnt, fua,
                        aio_cb, req);
    }
    if (r < 0) {
        req->aio_pending = 0;
        return errno_status(r, req->cmd.opcode == NVME_CMD_WRITE);
    }
    return aio_release(req);
}

/* The data is where the block layer can take it. */
static void rw_staged(NvmeRequest *req, uint16_t st)
{
    bool fua = req->cmd.cdw12 & (1u << 30);
    if (!st) {
        /* Without a volatile write cache enabled every write is
         * durable. */
        st = rw_submit(req, fua || !(req->ctrl->feat.vwc & 1));
    }
    if (st != NVME_STATUS_DEFERRED) {
        nvme_req_finish(req, st);
    }
}

static void rw_mapped(NvmeRequest *req, uint16_t st)
{
    if (!st && req->cmd.opcode != NVME_CMD_COMPARE) {
        st = nvme_map_iov(req);
    }
    if (!st && req->bounce && !req->dev_writes_guest) {
        nvme_req_copy(req, req->bounce, req->bytes, false, rw_staged);
        return;
    }
    rw_staged(req, st);
}

static uint16_t io_rw(NvmeRequest *req)
{
    NvmeNamespace *ns = req->ns;
    uint8_t opc = req->cmd.opcode;
    uint64_t nlb = (req->cmd.cdw12 & 0xffff) + 1;

    req->slba = (uint64_t)req->cmd.cdw11 << 32 | req->cmd.cdw10;
    if (!lba_range_ok(ns, req->slba, nlb)) {
        return NVME_LBA_OUT_OF_RANGE | NVME_DNR;
    }
    uint64_t bytes = nlb << ns->lbads;
    if (bytes > (4096ull << NVME_MDTS)) {
        return NVME_INVALID_FIELD | NVME_DNR;   /* above MDTS */
    }
    if (opc == NVME_CMD_WRITE && blk_is_read_only(ns->blk)) {
        return NVME_NS_WRITE_PROTECTED | NVME_DNR;
    }
    req->dev_writes_guest = opc == NVME_CMD_READ;
    nvme_map_dptr(req, bytes, false, rw_mapped);
    return NVME_STATUS_DEFERRED;
}

/* ---- flush, write zeroes, deallocate ---- */

static void simple_done(NvmeRequest *req, int ret)
{
    if (ret < 0) {
        req->status = errno_status(ret, true);
    }
    nvme_req_complete(req);
}

/* 6.8: NSID FFFFFFFFh flushes every namespace (VWC bits 2:1 = 11b). */
static uint16_t io_flush(NvmeRequest *req)
{
    NvmeCtrl *ctrl = req->ctrl;
    bool all = req->cmd.nsid == 0xffffffffu;

    if (!all && !req->ns) {
        return NVME_INVALID_NSID | NVME_DNR;
    }
    req->done = simple_done;
    req->aio_pending = 1;
    for (uint32_t i = 0; i < ctrl->nr_ns; i++) {
        NvmeNamespace *ns = &ctrl->ns[i];
        if (!all && ns != req->ns) {
            continue;
        }
        req->aio_pending++;
        aio_submitted(req, blk_flush(ns->blk, aio_cb, req));
    }
    return aio_release(req);
}

static void zeroes_done(NvmeRequest *req, int ret)
{
    bool fua = req->cmd.cdw12 & (1u << 30);
    if (ret == 0 && fua) {
        /* FUA: durable before completion (6.16). */
        req->done = simple_done;
        req->aio_pending = 1;
        aio_submitted(req, blk_flush(req->ns->blk, aio_cb, req));
        return;
    }
    simple_done(req, ret);
}

static uint16_t io_write_zeroes(NvmeRequest *req)
{
    NvmeNamespace *ns = req->ns;
    uint64_t nlb = (req->cmd.cdw12 & 0xffff) + 1;
    bool deac = req->cmd.cdw12 & (1u << 25);

    req->slba = (uint64_t)req->cmd.cdw11 << 32 | req->cmd.cdw10;
    if (!lba_range_ok(ns, req->slba, nlb)) {
        return NVME_LBA_OUT_OF_RANGE | NVME_DNR;
    }
    if (blk_is_read_only(ns->blk)) {
        return NVME_NS_WRITE_PROTECTED | NVME_DNR;
    }
    req->done = zeroes_done;
    req->aio_pending = 2;
    int r = blk_write_zeroes(ns->blk, req->slba << ns->lbads,
                             nlb << ns->lbads, deac, aio_cb, req);
    if (r < 0) {
        req->aio_pending = 0;
        return errno_status(r, true);
    }
    return aio_release(req);
}

static void dsm_done(NvmeRequest *req, int ret)
{
    /* Deallocation is advisory: a backend that cannot punch holes still
     * completes the command; a write-protected one does not. */
    simple_done(req, ret == -EPERM || ret == -EROFS ? ret : 0);
}

static uint16_t dsm_submit(NvmeRequest *req)
{
    NvmeNamespace *ns = req->ns;
    uint32_t nr = (req->cmd.cdw10 & 0xff) + 1;
    const uint8_t *ranges = req->bounce;

    for (uint32_t i = 0; i < nr; i++) {     /* 6.7, Figure 364 */
        uint32_t nlb;
        uint64_t slba;
        memcpy(&nlb, ranges + i * 16 + 4, 4);
        memcpy(&slba, ranges + i * 16 + 8, 8);
        if (!lba_range_ok(ns, slba, nlb)) {
            req->slba = slba;
            return NVME_LBA_OUT_OF_RANGE | NVME_DNR;
        }
    }
    req->done = dsm_done;
    req->aio_pending = 1;
    for (uint32_t i = 0; i < nr; i++) {
        uint32_t nlb;
        uint64_t slba;
        memcpy(&nlb, ranges + i * 16 + 4, 4);
        memcpy(&slba, ranges + i * 16 + 8, 8);
        if (nlb) {
            req->aio_pending++;
            aio_submitted(req, blk_discard(ns->blk, slba << ns->lbads,
                                           (uint64_t)nlb << ns->lbads,
                                           aio_cb, req));
        }
    }
    return aio_release(req);
}

static void dsm_fetched(NvmeRequest *req, uint16_t st)
{
    if (!st) {
        st = dsm_submit(req);
    }
    if (st != NVME_STATUS_DEFERRED) {
        nvme_req_finish(req, st);
    }
}

static uint16_t io_dsm(NvmeRequest *req)
{
    uint32_t nr = (req->cmd.cdw10 & 0xff) + 1;

    if (!(req->cmd.cdw11 & DSM_AD)) {
        return NVME_SUCCESS;    /* only hints, nothing to do */
    }
    if (blk_is_read_only(req->ns->blk)) {
        return NVME_NS_WRITE_PROTECTED | NVME_DNR;
    }
    return nvme_data_from_guest(req, nr * 16, false, dsm_fetched);
}

static uint16_t io_dispatch(NvmeRequest *req)
{
    uint8_t opc = req->cmd.opcode;
    if (req->cmd.flags & 3) {
        return NVME_INVALID_FIELD | NVME_DNR;   /* fused: not supported */
    }
    req->ns = nvme_ns_get(req->ctrl, req->cmd.nsid);
    if (opc == NVME_CMD_FLUSH) {
        return io_flush(req);
    }
    if (opc != NVME_CMD_READ && opc != NVME_CMD_WRITE &&
        opc != NVME_CMD_COMPARE && opc != NVME_CMD_WRITE_ZEROES &&
        opc != NVME_CMD_DSM) {
        log_ratelimited(LOG_DEBUG, "nvme %s: unsupported I/O opcode 0x%x",
                        req->ctrl->serial, opc);
        return NVME_INVALID_OPCODE | NVME_DNR;
    }
    if (!req->ns) {
        return NVME_INVALID_NSID | NVME_DNR;
    }
    switch (opc) {
    case NVME_CMD_WRITE_ZEROES: return io_write_zeroes(req);
    case NVME_CMD_DSM:          return io_dsm(req);
    default:                    return io_rw(req);
    }
}

void nvme_io_cmd(NvmeRequest *req)
{
    uint16_t st = io_dispatch(req);
    if (st == NVME_STATUS_DEFERRED) {
        return;
    }
    req->status = st;
    nvme_req_complete(req);
}
