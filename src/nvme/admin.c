/*
 * Admin command set (NVMe 1.4 section 5): queue management, Abort, Keep
 * Alive, Doorbell Buffer Config, and dispatch to Identify, features, log
 * pages and asynchronous events.
 */
#include <string.h>

#include "nvme/nvme-int.h"
#include "util/log.h"

static uint16_t admin_create_cq(NvmeRequest *req)
{
    NvmeCtrl *ctrl = req->ctrl;
    uint16_t qid = req->cmd.cdw10 & 0xffff;
    uint32_t qsize = (req->cmd.cdw10 >> 16) + 1;
    bool pc = req->cmd.cdw11 & 1, ien = req->cmd.cdw11 & 2;
    uint16_t iv = req->cmd.cdw11 >> 16;
    uint64_t base = req->cmd.dptr[0];
    uint32_t ncqa = (ctrl->feat.num_queues >> 16) + 1;

    /* 5.3 Create I/O Completion Queue, Figure 150 status values. */
    if (qid == 0 || qid > ncqa || qid >= NVME_MAX_QUEUES || ctrl->cq[qid]) {
        return NVME_INVALID_QID | NVME_DNR;
    }
    if (qsize < 2 || qsize > ctrl->mqes) {
        return NVME_INVALID_QSIZE | NVME_DNR;
    }
    if (!pc || NVME_CC_IOCQES(ctrl->cc) != NVME_CQES) {
        return NVME_INVALID_FIELD | NVME_DNR;   /* CAP.CQR: contiguous */
    }
    if (ien && iv >= nvme_msix_nr_vectors(ctrl)) {
        return NVME_INVALID_IRQ_VECTOR | NVME_DNR;
    }
    if (base & (nvme_page_size(ctrl) - 1)) {
        return NVME_PRP_OFFSET_INVALID | NVME_DNR;
    }
    if (!nvme_range_ok(ctrl, base, (uint64_t)qsize << NVME_CQES)) {
        return NVME_DATA_TRANSFER_ERROR | NVME_DNR;
    }
    return nvme_cq_new(ctrl, qid, base, (uint16_t)qsize, iv, ien)
           ? NVME_SUCCESS : NVME_INTERNAL_ERROR;
}

static uint16_t admin_create_sq(NvmeRequest *req)
{
    NvmeCtrl *ctrl = req->ctrl;
    uint16_t qid = req->cmd.cdw10 & 0xffff;
    uint32_t qsize = (req->cmd.cdw10 >> 16) + 1;
    bool pc = req->cmd.cdw11 & 1;
    uint8_t prio = (req->cmd.cdw11 >> 1) & 3;
    uint16_t cqid = req->cmd.cdw11 >> 16;
    uint64_t base = req->cmd.dptr[0];
    uint32_t nsqa = (ctrl->feat.num_queues & 0xffff) + 1;

    /* 5.4 Create I/O Submission Queue, Figure 154 status values. */
    if (qid == 0 || qid > nsqa || qid >= NVME_MAX_QUEUES || ctrl->sq[qid]) {
        return NVME_INVALID_QID | NVME_DNR;
    }
    if (cqid == 0 || cqid >= NVME_MAX_QUEUES || !ctrl->cq[cqid]) {
        return NVME_CQ_INVALID | NVME_DNR;
    }
    if (qsize < 2 || qsize > ctrl->mqes) {
        return NVME_INVALID_QSIZE | NVME_DNR;
    }
    if (!pc || NVME_CC_IOSQES(ctrl->cc) != NVME_SQES) {
        return NVME_INVALID_FIELD | NVME_DNR;
    }
    if (base & (nvme_page_size(ctrl) - 1)) {
        return NVME_PRP_OFFSET_INVALID | NVME_DNR;
    }
    if (!nvme_range_ok(ctrl, base, (uint64_t)qsize << NVME_SQES)) {
        return NVME_DATA_TRANSFER_ERROR | NVME_DNR;
    }
    return nvme_sq_new(ctrl, qid, cqid, base, (uint16_t)qsize, prio)
           ? NVME_SUCCESS : NVME_INTERNAL_ERROR;
}

void nvme_sq_delete_finish(NvmeCtrl *ctrl, uint16_t sqid)
{
    NvmeRequest *req = ctrl->sq_delete_req[sqid];
    ctrl->sq_delete_req[sqid] = NULL;
    nvme_sq_free(ctrl, sqid);
    req->status = NVME_SUCCESS;
    nvme_req_complete(req);
}

/* 5.6 Delete I/O Submission Queue: commands already fetched from it are
 * finished (their completions posted) before this one completes. */
static uint16_t admin_delete_sq(NvmeRequest *req)
{
    NvmeCtrl *ctrl = req->ctrl;
    uint16_t qid = req->cmd.cdw10 & 0xffff;

    if (qid == 0 || qid >= NVME_MAX_QUEUES || !ctrl->sq[qid] ||
        ctrl->sq_delete_req[qid]) {
        return NVME_INVALID_QID | NVME_DNR;
    }
    if (ctrl->sq_inflight[qid]) {
        ctrl->sq_delete_req[qid] = req;
        return NVME_STATUS_DEFERRED;
    }
    nvme_sq_free(ctrl, qid);
    return NVME_SUCCESS;
}

/* 5.5 Delete I/O Completion Queue */
static uint16_t admin_delete_cq(NvmeRequest *req)
{
    NvmeCtrl *ctrl = req->ctrl;
    uint16_t qid = req->cmd.cdw10 & 0xffff;

    if (qid == 0 || qid >= NVME_MAX_QUEUES || !ctrl->cq[qid]) {
        return NVME_INVALID_QID | NVME_DNR;
    }
    for (unsigned i = 1; i < NVME_MAX_QUEUES; i++) {
        if (ctrl->sq[i] && ctrl->sq[i]->cqid == qid) {
            return NVME_INVALID_QUEUE_DELETION | NVME_DNR;
        }
    }
    nvme_cq_free(ctrl, qid);
    return NVME_SUCCESS;
}

/* 5.1 Abort: fetched I/O is already at the backend and cannot be
 * recalled; an outstanding AER can. Dword 0 bit 0 set: not aborted. */
static uint16_t admin_abort(NvmeRequest *req)
{
    NvmeCtrl *ctrl = req->ctrl;
    uint16_t sqid = req->cmd.cdw10 & 0xffff;
    uint16_t cid = req->cmd.cdw10 >> 16;

    req->dw0 = 1;
    if (sqid != 0) {
        return NVME_SUCCESS;
    }
    for (unsigned i = 0; i < ctrl->nr_aer; i++) {
        if (ctrl->aer_cids[i] == cid) {
            memmove(&ctrl->aer_cids[i], &ctrl->aer_cids[i + 1],
                    (ctrl->nr_aer - i - 1) * sizeof(ctrl->aer_cids[0]));
            ctrl->nr_aer--;
            nvme_post_cqe(ctrl, 0, 0, cid, NVME_ABORT_REQUESTED, 0);
            req->dw0 = 0;
            break;
        }
    }
    return NVME_SUCCESS;
}

/* 5.8 Doorbell Buffer Config: both buffers one memory page, aligned, and
 * (this model) in memory the transport translates: the shadow values are
 * read at every queue pass, too often to ask the VMM each time. */
static uint16_t admin_dbbuf_config(NvmeRequest *req)
{
    NvmeCtrl *ctrl = req->ctrl;
    uint64_t dbs = req->cmd.dptr[0], eis = req->cmd.dptr[1];
    uint32_t page = nvme_page_size(ctrl);

    if (!dbs || !eis || (dbs & (page - 1)) || (eis & (page - 1)) ||
        !nvme_range_direct(ctrl, dbs, page) ||
        !nvme_range_direct(ctrl, eis, page)) {
        return NVME_INVALID_FIELD | NVME_DNR;
    }
    ctrl->dbbuf_dbs = dbs;
    ctrl->dbbuf_eis = eis;
    ctrl->dbbuf_enabled = true;
    ctrl->uses |= NVME_USES_SHADOW_DB;
    for (unsigned q = 1; q < NVME_MAX_QUEUES; q++) {
        nvme_dbbuf_setup_queue(ctrl, (uint16_t)q);
        /* Start the shadow values from what the doorbells hold now. */
        if (ctrl->sq[q]) {
            uint32_t v = ctrl->sq[q]->tail;
            nvme_dma_write(ctrl, ctrl->sq[q]->db_addr, &v, 4);
        }
        if (ctrl->cq[q]) {
            uint32_t v = ctrl->cq[q]->head;
            nvme_dma_write(ctrl, ctrl->cq[q]->db_addr, &v, 4);
        }
    }
    return NVME_SUCCESS;
}

static uint16_t admin_dispatch(NvmeRequest *req)
{
    switch (req->cmd.opcode) {
    case NVME_ADM_DELETE_SQ:      return admin_delete_sq(req);
    case NVME_ADM_CREATE_SQ:      return admin_create_sq(req);
    case NVME_ADM_GET_LOG_PAGE:   return nvme_get_log_page(req);
    case NVME_ADM_DELETE_CQ:      return admin_delete_cq(req);
    case NVME_ADM_CREATE_CQ:      return admin_create_cq(req);
    case NVME_ADM_IDENTIFY:       return nvme_identify(req);
    case NVME_ADM_ABORT:          return admin_abort(req);
    case NVME_ADM_SET_FEATURES:   return nvme_set_features(req);
    case NVME_ADM_GET_FEATURES:   return nvme_get_features(req);
    case NVME_ADM_ASYNC_EVENT_REQ: return nvme_aer_submit(req);
    case NVME_ADM_KEEP_ALIVE:
        req->ctrl->last_keepalive_ms = clock_ms();
        return NVME_SUCCESS;
    case NVME_ADM_DBBUF_CONFIG:   return admin_dbbuf_config(req);
    default:
        log_ratelimited(LOG_DEBUG, "nvme %s: unsupported admin opcode 0x%x",
                        req->ctrl->serial, req->cmd.opcode);
        return NVME_INVALID_OPCODE | NVME_DNR;
    }
}

void nvme_admin_cmd(NvmeRequest *req)
{
    uint16_t st;
    if (req->cmd.flags & 3) {
        st = NVME_INVALID_FIELD | NVME_DNR;     /* fused: not supported */
    } else {
        st = admin_dispatch(req);
    }
    if (st == NVME_STATUS_DEFERRED) {
        return;
    }
    req->status = st;
    nvme_req_complete(req);
}
