/*
 * Submission and completion queues: creation, doorbells (3.1.24-3.1.25,
 * with CAP.DSTRD), shadow doorbells and EventIdx (5.8 Doorbell Buffer
 * Config), fetching commands (arbitration, 4.11) and posting completions
 * (4.6), including completions kept pending while their CQ is full.
 *
 * Queues in memory the transport cannot translate are reached with
 * asynchronous copies: an SQ reads a batch of entries at a time, one read
 * per SQ (the head moves, and the commands start in order, when it is
 * in); a CQE takes its slot and phase when posted and is written
 * asynchronously, and the CQ's interrupt waits until every CQE write to
 * it is done, so the host never sees the interrupt before the entry.
 * Shadow doorbells are only accepted in translated memory (admin.c).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "nvme/nvme-int.h"
#include "util/log.h"

/* ---- queue objects ---- */

/* Slots of queue qid in the shadow doorbell and EventIdx buffers: the
 * same layout as the doorbell registers (5.8). Only I/O queues use them;
 * drivers keep ringing the admin doorbells. */
void nvme_dbbuf_setup_queue(NvmeCtrl *ctrl, uint16_t qid)
{
    uint64_t stride = 4u << ctrl->dstrd;
    NvmeSQ *sq = ctrl->sq[qid];
    NvmeCQ *cq = ctrl->cq[qid];
    bool on = ctrl->dbbuf_enabled && qid != 0;

    if (sq) {
        sq->db_addr = on ? ctrl->dbbuf_dbs + 2 * qid * stride : 0;
        sq->ei_addr = on ? ctrl->dbbuf_eis + 2 * qid * stride : 0;
    }
    if (cq) {
        cq->db_addr = on ? ctrl->dbbuf_dbs + (2 * qid + 1) * stride : 0;
        cq->ei_addr = on ? ctrl->dbbuf_eis + (2 * qid + 1) * stride : 0;
    }
}

NvmeSQ *nvme_sq_new(NvmeCtrl *ctrl, uint16_t sqid, uint16_t cqid,
                    uint64_t base, uint16_t size, uint8_t prio)
{
    NvmeSQ *sq = calloc(1, sizeof(*sq));
    if (!sq) {
        return NULL;
    }
    *sq = (NvmeSQ){ .base = base, .sqid = sqid, .cqid = cqid,
                    .size = size, .prio = prio };
    ctrl->sq[sqid] = sq;
    nvme_dbbuf_setup_queue(ctrl, sqid);
    return sq;
}

NvmeCQ *nvme_cq_new(NvmeCtrl *ctrl, uint16_t cqid, uint64_t base,
                    uint16_t size, uint16_t vector, bool ien)
{
    NvmeCQ *cq = calloc(1, sizeof(*cq));
    if (!cq) {
        return NULL;
    }
    *cq = (NvmeCQ){ .base = base, .cqid = cqid, .size = size,
                    .vector = vector, .phase = true, .irq_enabled = ien };
    ctrl->cq[cqid] = cq;
    nvme_dbbuf_setup_queue(ctrl, cqid);
    return cq;
}

void nvme_sq_free(NvmeCtrl *ctrl, uint16_t sqid)
{
    free(ctrl->sq[sqid]);
    ctrl->sq[sqid] = NULL;
    /* Completions still waiting for CQ space belong to commands of a
     * deleted queue: the host no longer expects them (5.6). */
    uint32_t out = 0;
    for (uint32_t i = 0; i < ctrl->nr_pending; i++) {
        if (ctrl->pending[i].sqid != sqid) {
            ctrl->pending[out++] = ctrl->pending[i];
        }
    }
    ctrl->nr_pending = out;
}

void nvme_cq_free(NvmeCtrl *ctrl, uint16_t cqid)
{
    free(ctrl->cq[cqid]);
    ctrl->cq[cqid] = NULL;
}

void nvme_queues_free_all(NvmeCtrl *ctrl)
{
    for (unsigned i = 0; i < NVME_MAX_QUEUES; i++) {
        nvme_sq_free(ctrl, (uint16_t)i);
        ctrl->sq_delete_req[i] = NULL;
    }
    for (unsigned i = 0; i < NVME_MAX_QUEUES; i++) {
        nvme_cq_free(ctrl, (uint16_t)i);
    }
    ctrl->nr_pending = 0;
}

/* ---- requests ---- */

NvmeRequest *nvme_req_alloc(NvmeCtrl *ctrl)
{
    /* Requests complete roughly in the order they were taken: starting
     * after the last one taken finds a free slot at once, instead of
     * walking past every request in flight. */
    for (unsigned n = 0; n < NVME_MAX_INFLIGHT; n++) {
        unsigned i = (ctrl->req_next + n) % NVME_MAX_INFLIGHT;
        NvmeRequest *req = &ctrl->reqs[i];
        if (!req->in_use) {
            ctrl->req_next = (i + 1) % NVME_MAX_INFLIGHT;
            req->in_use = true;
            req->status = NVME_SUCCESS;
            req->dw0 = 0;
            req->ns = NULL;
            req->nsegs = req->iovcnt = 0;
            req->aio_pending = 0;
            req->aio_ret = 0;
            req->dma_pending = 0;
            req->dma_failed = false;
            req->dev_writes_guest = false;
            req->done = NULL;
            req->start_ms = clock_ms();
            ctrl->in_flight++;
            return req;
        }
    }
    return NULL;
}

/* Completes a fetched command: its CQE is posted (or kept pending) unless
 * a controller reset is under way, which discards it (7.3.2). */
void nvme_req_complete(NvmeRequest *req)
{
    NvmeCtrl *ctrl = req->ctrl;
    uint16_t sqid = req->sqid;

    bool post = req->status != NVME_STATUS_NO_CQE;
    if (post && req->status != NVME_SUCCESS) {
        nvme_error_log_add(ctrl, req, req->status);
    }
    ctrl->smart.busy_ms += clock_ms() - req->start_ms;
    if (post && !ctrl->resetting && ctrl->sq[sqid]) {
        nvme_post_cqe(ctrl, ctrl->sq[sqid]->cqid, sqid, req->cmd.cid,
                      req->status, req->dw0);
    }
    nvme_req_release_data(req);
    req->in_use = false;
    ctrl->in_flight--;
    ctrl->sq_inflight[sqid]--;
    ctrl->stats.commands_completed++;
    nvme_check_deferred_sq(ctrl, sqid);
    nvme_check_deferred_ctrl(ctrl);
    nvme_schedule(ctrl);
}

void nvme_req_finish(NvmeRequest *req, uint16_t status)
{
    req->status = status;
    nvme_req_complete(req);
}

/* ---- completion queues ---- */

static bool cq_full(const NvmeCQ *cq)
{
    return (uint16_t)((cq->tail + 1) % cq->size) == cq->head;
}

static bool cq_has_pending(const NvmeCtrl *ctrl, uint16_t cqid)
{
    for (uint32_t i = 0; i < ctrl->nr_pending; i++) {
        if (ctrl->pending[i].cqid == cqid) {
            return true;
        }
    }
    return false;
}

/* A CQE on its way to memory the transport cannot translate. */
typedef struct NvmeCqeWrite {
    NvmeDmaOp op;
    NvmeCqe cqe;
    uint16_t cqid;
} NvmeCqeWrite;

static void cq_notify(NvmeCtrl *ctrl, NvmeCQ *cq);

static void cqe_written(NvmeDmaOp *op, bool ok)
{
    NvmeCqeWrite *w = op->owner;
    NvmeCtrl *ctrl = op->ctrl;
    uint16_t cqid = w->cqid;
    if (!ok) {
        /* Its slot is taken: the host waits at it (a reset recovers). */
        log_ratelimited(LOG_WARN, "nvme %s: completion of command %u lost: "
                        "CQ %u entry could not be written", ctrl->serial,
                        w->cqe.cid, cqid);
    }
    free(w);
    if (--ctrl->cqe_writes[cqid] == 0 && ctrl->cq_irq_waits[cqid]) {
        ctrl->cq_irq_waits[cqid] = false;
        if (ctrl->cq[cqid]) {
            cq_notify(ctrl, ctrl->cq[cqid]);
        }
    }
}

/* Writes the CQE at addr: in place, or asynchronously. */
static bool cqe_store(NvmeCtrl *ctrl, uint16_t cqid, uint64_t addr,
                      const NvmeCqe *cqe)
{
    if (nvme_dma_write(ctrl, addr, cqe, sizeof(*cqe))) {
        return true;
    }
    NvmeCqeWrite *w = calloc(1, sizeof(*w));
    if (!w) {
        return false;
    }
    w->cqe = *cqe;
    w->cqid = cqid;
    w->op.free_owner = true;
    if (!nvme_dma_op_start(ctrl, &w->op, addr, &w->cqe, sizeof(w->cqe),
                           true, cqe_written, w)) {
        free(w);
        return false;
    }
    ctrl->cqe_writes[cqid]++;
    return true;
}

/* Writes one CQE (4.6): the phase tag flips each time the tail wraps. */
static bool cq_write(NvmeCtrl *ctrl, NvmeCQ *cq, const NvmePendingCqe *p)
{
    NvmeSQ *sq = ctrl->sq[p->sqid];
    NvmeCqe cqe = {
        .dw0 = p->dw0,
        .sq_head = sq ? sq->head : 0,
        .sq_id = p->sqid,
        .cid = p->cid,
        .status = (uint16_t)((p->status << 1) | cq->phase),
    };
    uint64_t addr = cq->base + ((uint64_t)cq->tail << NVME_CQES);
    if (!cqe_store(ctrl, cq->cqid, addr, &cqe)) {
        nvme_fatal(ctrl, "cannot write a completion queue entry");
        return false;
    }
    if (++cq->tail == cq->size) {
        cq->tail = 0;
        cq->phase = !cq->phase;
    }
    return true;
}

static void cq_notify(NvmeCtrl *ctrl, NvmeCQ *cq)
{
    /* One interrupt per queue pass, not per completion: the host reaps
     * the whole CQ on each interrupt anyway (4.6). Not before the
     * entries are in memory. */
    if (ctrl->cqe_writes[cq->cqid]) {
        ctrl->cq_irq_waits[cq->cqid] = true;
    } else if (cq->irq_enabled) {
        nvme_msix_notify_later(ctrl, cq->vector);
        nvme_schedule(ctrl);
    }
}

/* Reads the host's CQ head from its shadow doorbell, if any. */
static void cq_update_shadow_head(NvmeCtrl *ctrl, NvmeCQ *cq)
{
    uint32_t head;
    if (cq->db_addr && nvme_dma_read(ctrl, cq->db_addr, &head, 4) &&
        head < cq->size) {
        cq->head = (uint16_t)head;
    }
}

/* 5.8: EventIdx one behind the head just read: the host's next head
 * updates need no doorbell, since every post reads the shadow head. Kept
 * moving with the head, as a fixed value would be passed once a lap. */
static void cq_no_doorbell_needed(NvmeCtrl *ctrl, NvmeCQ *cq)
{
    if (cq->ei_addr) {
        uint32_t v = (cq->head + cq->size - 1u) % cq->size;
        nvme_dma_write(ctrl, cq->ei_addr, &v, 4);
    }
}

/* 5.8: a full CQ with completions waiting needs the host's next head
 * update: EventIdx at the head we know makes the host ring the doorbell
 * when it moves on. The shadow head is read again after the store, in
 * case the host moved it meanwhile (the next queue pass then posts). */
static void cq_ask_for_doorbell(NvmeCtrl *ctrl, NvmeCQ *cq)
{
    uint32_t v = cq->head;
    if (!cq->ei_addr) {
        return;
    }
    nvme_dma_write(ctrl, cq->ei_addr, &v, 4);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    cq_update_shadow_head(ctrl, cq);
    if (!cq_full(cq)) {
        nvme_schedule(ctrl);
    }
}

void nvme_post_cqe(NvmeCtrl *ctrl, uint16_t cqid, uint16_t sqid,
                   uint16_t cid, uint16_t status, uint32_t dw0)
{
    NvmeCQ *cq = ctrl->cq[cqid];
    NvmePendingCqe p = { .dw0 = dw0, .cqid = cqid, .sqid = sqid,
                         .cid = cid, .status = status };
    if (!cq) {
        return;
    }
    cq_update_shadow_head(ctrl, cq);
    /* Order per CQ is kept: nothing overtakes an earlier pending one. */
    if (cq_full(cq) || cq_has_pending(ctrl, cqid)) {
        if (ctrl->nr_pending < NVME_MAX_INFLIGHT) {
            ctrl->pending[ctrl->nr_pending++] = p;
            cq_ask_for_doorbell(ctrl, cq);
        } else {
            nvme_fatal(ctrl, "completion backlog overflow");
        }
        return;
    }
    if (cq_write(ctrl, cq, &p)) {
        cq_notify(ctrl, cq);
        cq_no_doorbell_needed(ctrl, cq);
    }
}

/* Posts pending completions of cqid (all CQs when cqid is UINT16_MAX) for
 * which there is now room, oldest first. */
void nvme_flush_pending(NvmeCtrl *ctrl, uint16_t cqid)
{
    uint32_t out = 0;
    uint64_t notified = 0;      /* bit per CQ among the first 64 */
    bool blocked[NVME_MAX_QUEUES] = { false };

    for (uint32_t i = 0; i < ctrl->nr_pending; i++) {
        NvmePendingCqe *p = &ctrl->pending[i];
        NvmeCQ *cq = ctrl->cq[p->cqid];
        bool mine = cqid == UINT16_MAX || p->cqid == cqid;
        if (cq && mine && !ctrl->quiesced && !blocked[p->cqid]) {
            cq_update_shadow_head(ctrl, cq);
            if (!cq_full(cq) && cq_write(ctrl, cq, p)) {
                notified |= 1ull << (p->cqid % 64);
                continue;
            }
            blocked[p->cqid] = true;
            cq_ask_for_doorbell(ctrl, cq);
        }
        ctrl->pending[out++] = *p;
    }
    ctrl->nr_pending = out;
    for (unsigned q = 0; q < NVME_MAX_QUEUES; q++) {
        if (ctrl->cq[q] && (notified & (1ull << (q % 64)))) {
            cq_notify(ctrl, ctrl->cq[q]);
        }
    }
}

/* ---- submission queues ---- */

static void sq_update_shadow_tail(NvmeCtrl *ctrl, NvmeSQ *sq)
{
    uint32_t tail;
    if (!sq->db_addr) {
        return;
    }
    if (!nvme_dma_read(ctrl, sq->db_addr, &tail, 4)) {
        nvme_fatal(ctrl, "cannot read a shadow doorbell");
        return;
    }
    if (tail < sq->size) {
        sq->tail = (uint16_t)tail;
    }
}

/* 5.8: the host rings the MMIO doorbell only when its new tail moves
 * past EventIdx. While commands of this SQ are in flight the controller
 * reads the shadow tail again at their completion anyway, so EventIdx is
 * left one behind the tail (no doorbell needed); an idle SQ asks for one
 * at the next command. The shadow tail is read again after this store
 * (sq_process), so a command the host adds meanwhile is not missed. */
static void sq_update_eventidx(NvmeCtrl *ctrl, NvmeSQ *sq)
{
    uint32_t v = sq->tail;
    if (!sq->ei_addr) {
        return;
    }
    if (ctrl->sq_inflight[sq->sqid]) {
        v = (sq->tail + sq->size - 1u) % sq->size;
    }
    nvme_dma_write(ctrl, sq->ei_addr, &v, 4);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static bool can_fetch(const NvmeCtrl *ctrl, const NvmeSQ *sq)
{
    const NvmeCQ *cq = ctrl->cq[sq->cqid];
    return cq && nvme_ctrl_ready(ctrl) && !ctrl->quiesced &&
           !ctrl->sq_delete_req[sq->sqid] && !ctrl->fetch[sq->sqid].busy &&
           ctrl->in_flight + ctrl->nr_pending < NVME_MAX_INFLIGHT &&
           sq->head != sq->tail;
}

static void req_start(NvmeCtrl *ctrl, NvmeRequest *req)
{
    if (req->sqid == 0) {
        nvme_admin_cmd(req);
    } else {
        nvme_io_cmd(req);
    }
}

/* A request reserved for an entry that is not going to run. */
static void req_unreserve(NvmeCtrl *ctrl, NvmeRequest *req)
{
    req->in_use = false;
    ctrl->in_flight--;
    ctrl->sq_inflight[req->sqid]--;
}

static void sq_fetched(NvmeDmaOp *op, bool ok)
{
    NvmeSqFetch *f = op->owner;
    NvmeCtrl *ctrl = op->ctrl;
    uint16_t sqid = (uint16_t)(f - ctrl->fetch);
    NvmeSQ *sq = ctrl->sq[sqid];
    f->busy = false;
    if (!ok || !sq || ctrl->resetting) {
        if (!ok) {
            log_ratelimited(LOG_WARN, "nvme %s: SQ %u entries could not be "
                            "read; read again at the next queue pass",
                            ctrl->serial, sqid);
        }
        for (unsigned k = 0; k < f->n; k++) {
            req_unreserve(ctrl, f->reqs[k]);
        }
        nvme_check_deferred_sq(ctrl, sqid);
        return;
    }
    /* In SQ order; the head moves past each entry as it starts. */
    for (unsigned k = 0; k < f->n; k++) {
        f->reqs[k]->cmd = f->cmds[k];
        sq->head = (uint16_t)((sq->head + 1) % sq->size);
        req_start(ctrl, f->reqs[k]);
    }
    nvme_schedule(ctrl);
}

/* Reads up to a burst of entries from head, not past the tail or the end
 * of the queue, with a request reserved for each. */
static void sq_fetch_async(NvmeCtrl *ctrl, NvmeSQ *sq, NvmeRequest *first)
{
    NvmeSqFetch *f = &ctrl->fetch[sq->sqid];
    uint16_t end = sq->tail > sq->head ? sq->tail : sq->size;
    unsigned want = end - sq->head < NVME_SQ_BURST ? end - sq->head
                                                   : NVME_SQ_BURST;
    f->reqs[0] = first;
    f->n = 1;
    while (f->n < want && ctrl->in_flight + ctrl->nr_pending <
                          NVME_MAX_INFLIGHT) {
        NvmeRequest *req = nvme_req_alloc(ctrl);
        if (!req) {
            break;
        }
        req->sqid = sq->sqid;
        ctrl->sq_inflight[sq->sqid]++;
        f->reqs[f->n++] = req;
    }
    uint64_t addr = sq->base + ((uint64_t)sq->head << NVME_SQES);
    f->busy = nvme_dma_op_start(ctrl, &f->op, addr, f->cmds,
                                f->n * sizeof(NvmeCmd), false, sq_fetched, f);
    if (!f->busy) {
        /* Not guest memory (any more): nothing sane to complete. */
        nvme_fatal(ctrl, "cannot read a submission queue entry");
        for (unsigned k = 0; k < f->n; k++) {
            req_unreserve(ctrl, f->reqs[k]);
        }
    }
}

/* Starts the command at head, or a read of entries when the queue is in
 * memory the transport cannot translate; false when no more start now. */
static bool sq_dispatch(NvmeCtrl *ctrl, NvmeSQ *sq, NvmeRequest *req)
{
    uint64_t addr = sq->base + ((uint64_t)sq->head << NVME_SQES);
    req->sqid = sq->sqid;
    ctrl->sq_inflight[sq->sqid]++;
    if (!nvme_dma_read(ctrl, addr, &req->cmd, sizeof(req->cmd))) {
        sq_fetch_async(ctrl, sq, req);
        return false;
    }
    sq->head = (uint16_t)((sq->head + 1) % sq->size);
    req_start(ctrl, req);
    return true;
}

/* Fetches up to a burst of commands from one SQ; true if more remain. */
static bool sq_process(NvmeCtrl *ctrl, uint16_t sqid)
{
    NvmeSQ *sq = ctrl->sq[sqid];
    sq_update_shadow_tail(ctrl, sq);
    for (unsigned n = 0; n < NVME_SQ_BURST; n++) {
        if (!ctrl->sq[sqid] || !can_fetch(ctrl, ctrl->sq[sqid])) {
            break;
        }
        NvmeRequest *req = nvme_req_alloc(ctrl);
        if (!req || !sq_dispatch(ctrl, ctrl->sq[sqid], req)) {
            break;
        }
    }
    sq = ctrl->sq[sqid];
    if (!sq) {
        return false;   /* deleted by the command just run */
    }
    sq_update_eventidx(ctrl, sq);
    sq_update_shadow_tail(ctrl, sq);
    return can_fetch(ctrl, sq);
}

/* 4.11: round robin, or with WRR the admin and urgent classes strictly
 * first, then high, medium and low (weights are not modelled). */
bool nvme_process_queues(NvmeCtrl *ctrl)
{
    bool more = false;
    bool wrr = NVME_CC_AMS(ctrl->cc) == NVME_AMS_WRR;

    nvme_flush_pending(ctrl, UINT16_MAX);
    for (int prio = 0; prio < (wrr ? 4 : 1); prio++) {
        for (unsigned q = 0; q < NVME_MAX_QUEUES; q++) {
            NvmeSQ *sq = ctrl->sq[q];
            if (!sq || (wrr && q != 0 && sq->prio != prio) ||
                (wrr && q == 0 && prio != 0)) {
                continue;
            }
            more |= sq_process(ctrl, (uint16_t)q);
        }
    }
    nvme_aen_deliver(ctrl);
    nvme_msix_fire_due(ctrl);
    return more;
}

/* ---- doorbells ---- */

static void doorbell_error(NvmeCtrl *ctrl, uint8_t info, uint64_t off)
{
    log_ratelimited(LOG_WARN, "nvme %s: invalid doorbell write at 0x%" PRIx64
                    " (%s)", ctrl->serial, off + NVME_REG_DBS,
                    info == NVME_AER_INFO_ERR_INVALID_DB_REG ? "no such queue"
                                                             : "bad value");
    nvme_aen_enqueue(ctrl, NVME_AER_TYPE_ERROR, info, NVME_LOG_ERROR);
}

void nvme_doorbell_write(NvmeCtrl *ctrl, uint64_t off, uint32_t value)
{
    uint64_t stride = 4u << ctrl->dstrd;
    uint64_t idx = off / stride;
    uint64_t qid = idx / 2;

    if (!NVME_CC_EN(ctrl->cc) || (ctrl->csts & NVME_CSTS_CFS)) {
        return;
    }
    if (off % stride || qid >= NVME_MAX_QUEUES ||
        (idx % 2 ? !ctrl->cq[qid] : !ctrl->sq[qid])) {
        doorbell_error(ctrl, NVME_AER_INFO_ERR_INVALID_DB_REG, off);
        return;
    }
    if (idx % 2 == 0) {
        NvmeSQ *sq = ctrl->sq[qid];
        if (value >= sq->size) {
            doorbell_error(ctrl, NVME_AER_INFO_ERR_INVALID_DB_VALUE, off);
            return;
        }
        sq->tail = (uint16_t)value;
    } else {
        NvmeCQ *cq = ctrl->cq[qid];
        /* The new head must lie between the old head and the tail. */
        uint32_t used = (cq->tail + cq->size - cq->head) % cq->size;
        uint32_t adv = (value + cq->size - cq->head) % cq->size;
        if (value >= cq->size || adv > used) {
            doorbell_error(ctrl, NVME_AER_INFO_ERR_INVALID_DB_VALUE, off);
            return;
        }
        cq->head = (uint16_t)value;
        if (cq->ei_addr) {
            /* 5.8: the controller reads the shadow head before every
             * post, so further head updates need no doorbell (EventIdx
             * one behind) unless completions wait for room. */
            uint32_t ei = cq_has_pending(ctrl, (uint16_t)qid) ? value :
                          (value + cq->size - 1u) % cq->size;
            nvme_dma_write(ctrl, cq->ei_addr, &ei, 4);
        }
    }
    nvme_schedule(ctrl);
}
