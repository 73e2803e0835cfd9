/*
 * NVMe driver queues: submission with cid tracking in guest memory, and
 * completion reaping that checks every CQE against that tracking (NVMe 1.4
 * section 4.6: phase tag, SQ head pointer, command identifier).
 */
#include "nvme-drv-int.h"

#include <stddef.h>
#include <string.h>

#include "util/log.h"

static uint16_t queue_limit(const NvmeDrvState *st, unsigned qid)
{
    return qid == 0 ? DRV_ADMIN_ENTRIES - 1 : (uint16_t)st->qd;
}

/* 4.1.1: a queue is full when tail + 1 == head; the head is what the
 * controller last reported in a CQE. */
static bool sq_full(const DrvQueue *q)
{
    return (uint16_t)((q->sq_tail + 1) % q->sq_size) == q->sq_head;
}

void drv_queue_dirty(NvmeDrv *drv, DrvQueue *q)
{
    gm_dirty(drv->gm, q, offsetof(DrvQueue, slots));
}

int drv_queue_cmd(NvmeDrv *drv, unsigned qid, NvmeCmd *cmd, uint32_t tag)
{
    NvmeDrvState *st = drv->st;
    DrvQueue *q = &st->q[qid];
    if (q->outstanding >= queue_limit(st, qid) || sq_full(q)) {
        return -1;
    }
    uint16_t cid = q->next_cid;
    for (unsigned i = 0; i < DRV_SLOTS && q->slots[cid].busy; i++) {
        cid = (uint16_t)((cid + 1) % DRV_SLOTS);
    }
    DrvSlot *slot = &q->slots[cid];
    if (slot->busy) {
        return -1;
    }
    *slot = (DrvSlot){ .busy = 1, .opcode = cmd->opcode, .tag = tag,
                       .seq = ++st->seq };
    gm_dirty(drv->gm, slot, sizeof(*slot));
    gm_dirty(drv->gm, &st->seq, sizeof(st->seq));
    cmd->cid = cid;
    uint64_t sqe = q->sq_gpa + (uint64_t)q->sq_tail * sizeof(NvmeCmd);
    memcpy(gm_ptr(drv->gm, sqe, sizeof(*cmd)), cmd, sizeof(*cmd));
    gm_dirty_gpa(drv->gm, sqe, sizeof(*cmd));
    q->sq_tail = (uint16_t)((q->sq_tail + 1) % q->sq_size);
    q->next_cid = (uint16_t)((cid + 1) % DRV_SLOTS);
    q->outstanding++;
    q->submitted++;
    drv_queue_dirty(drv, q);
    return cid;
}

/* 5.8: with shadow doorbells the new value goes to guest memory; the
 * register is written only when it moves past the controller's
 * EventIdx (the test of Linux' nvme_dbbuf_need_event). The full fence
 * orders the shadow store before the EventIdx load, the mirror of the
 * controller's EventIdx store before its shadow load. */
static bool ring(NvmeDrv *drv, unsigned qid, bool cq, uint16_t value,
                 Error **errp)
{
    const NvmeDrvState *st = drv->st;
    if (qid == 0 || !st->dbbuf_gpa) {
        return nvme_drv_doorbell(drv, (uint16_t)qid, cq, value, errp);
    }
    uint64_t off = (2u * qid + (cq ? 1u : 0u)) * (4u << st->dstrd);
    uint32_t *db = gm_ptr(drv->gm, st->dbbuf_gpa + off, 4);
    const uint32_t *ei = gm_ptr(drv->gm, st->eibuf_gpa + off, 4);
    uint32_t size = cq ? st->q[qid].cq_size : st->q[qid].sq_size;
    uint32_t old = __atomic_load_n(db, __ATOMIC_RELAXED);
    __atomic_store_n(db, (uint32_t)value, __ATOMIC_RELEASE);
    gm_dirty_gpa(drv->gm, st->dbbuf_gpa + off, 4);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    uint32_t event = __atomic_load_n(ei, __ATOMIC_ACQUIRE);
    /* Ring offsets, not 16-bit counters: the values wrap at the queue
     * size. Out-of-range shadow values (never written by a sane
     * controller) ring, the safe side. */
    if (old < size && event < size &&
        (value + 2 * size - event - 1) % size >= (value + size - old) % size) {
        return true;
    }
    return nvme_drv_doorbell(drv, (uint16_t)qid, cq, value, errp);
}

bool drv_ring_sq(NvmeDrv *drv, unsigned qid, Error **errp)
{
    return ring(drv, qid, false, drv->st->q[qid].sq_tail, errp);
}

static void protocol_error(NvmeDrv *drv, unsigned qid, const NvmeCqe *c,
                           const char *what)
{
    drv->st->errors++;
    gm_dirty(drv->gm, &drv->st->errors, sizeof(drv->st->errors));
    log_ratelimited(LOG_ERROR, "testvm: queue %u: completion cid %u "
                    "sqid %u sq_head %u: %s", qid, c->cid, c->sq_id,
                    c->sq_head, what);
}

/* 4.6: the SQ head moves forward, never past what was submitted. */
static bool sq_head_ok(const DrvQueue *q, uint16_t head)
{
    if (head >= q->sq_size) {
        return false;
    }
    unsigned moved = (unsigned)(head + q->sq_size - q->sq_head) % q->sq_size;
    unsigned pending = (unsigned)(q->sq_tail + q->sq_size - q->sq_head) %
                       q->sq_size;
    return moved <= pending;
}

static bool next_cqe(NvmeDrv *drv, DrvQueue *q, NvmeCqe *out)
{
    uint64_t gpa = q->cq_gpa + (uint64_t)q->cq_head * sizeof(NvmeCqe);
    const NvmeCqe *c = gm_ptr(drv->gm, gpa, sizeof(NvmeCqe));
    NvmeCqe cqe;
    memcpy(&cqe, c, sizeof(cqe));
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if ((cqe.status & 1) != q->phase) {
        return false;
    }
    *out = cqe;
    if (++q->cq_head == q->cq_size) {
        q->cq_head = 0;
        q->phase ^= 1;
    }
    return true;
}

/* Checks one CQE against the tracking; returns its slot or NULL. */
static DrvSlot *take_slot(NvmeDrv *drv, unsigned qid, const NvmeCqe *c)
{
    DrvQueue *q = &drv->st->q[qid];
    if (c->sq_id != qid) {
        protocol_error(drv, qid, c, "for another submission queue");
        return NULL;
    }
    if (c->cid >= DRV_SLOTS || !q->slots[c->cid].busy) {
        protocol_error(drv, qid, c, "command not in flight (completed "
                       "twice or never submitted)");
        return NULL;
    }
    if (!sq_head_ok(q, c->sq_head)) {
        protocol_error(drv, qid, c, "SQ head out of order");
        return NULL;
    }
    q->sq_head = c->sq_head;
    DrvSlot *slot = &q->slots[c->cid];
    slot->busy = 0;
    gm_dirty(drv->gm, slot, sizeof(*slot));
    q->outstanding--;
    q->completed++;
    return slot;
}

unsigned drv_reap(NvmeDrv *drv, unsigned qid, DrvCqeFunc *fn, void *opaque)
{
    DrvQueue *q = &drv->st->q[qid];
    unsigned n = 0;
    NvmeCqe c;
    if (q->stalled) {
        return 0;
    }
    while (next_cqe(drv, q, &c)) {
        n++;
        if (drv->cqe_trace) {
            drv->cqe_trace(drv->trace_opaque, qid, &c);
        }
        DrvSlot *slot = take_slot(drv, qid, &c);
        if (slot) {
            fn(drv, opaque, slot, &c);
        }
    }
    if (n) {
        drv_queue_dirty(drv, q);
        Error *err = NULL;
        if (!ring(drv, qid, true, q->cq_head, &err)) {
            error_report_err(err);
        }
    }
    return n;
}

unsigned nvme_drv_peek_cqes(const NvmeDrv *drv, unsigned qid, NvmeCqe *out,
                            unsigned max)
{
    const DrvQueue *q = &drv->st->q[qid];
    uint16_t head = q->cq_head;
    uint8_t phase = q->phase;
    unsigned n = 0;
    while (n < max && n < q->cq_size) {
        uint64_t gpa = q->cq_gpa + (uint64_t)head * sizeof(NvmeCqe);
        memcpy(&out[n], gm_ptr(drv->gm, gpa, sizeof(NvmeCqe)),
               sizeof(NvmeCqe));
        if ((out[n].status & 1) != phase) {
            break;
        }
        n++;
        if (++head == q->cq_size) {
            head = 0;
            phase ^= 1;
        }
    }
    return n;
}

unsigned nvme_drv_outstanding(const NvmeDrv *drv)
{
    unsigned n = 0;
    for (unsigned i = 1; i <= drv->st->nr_io_queues; i++) {
        n += drv->st->q[i].outstanding;
    }
    return n;
}
