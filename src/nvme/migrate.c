/*
 * Migration of the controller (seed 003): quiesce/resume, the allowlist of
 * features known to migrate, and the device-state description with a
 * post_load that re-validates everything it receives.
 */
#include <inttypes.h>
#include <stddef.h>

#include "nvme/nvme-int.h"
#include "util/log.h"

/* ---- quiesce / resume ---- */

static bool quiesce_idle(const NvmeCtrl *ctrl)
{
    return !ctrl->in_flight && !ctrl->dma_in_flight &&
           !ctrl->shutdown_flushes;
}

/* Stops fetching; what is at the backends completes. Commands waiting for
 * an asynchronous copy of guest memory stay in flight. */
static void quiesce_drain(NvmeCtrl *ctrl)
{
    ctrl->quiesced = true;
    for (int round = 0; round < 4 && (ctrl->in_flight ||
                                      ctrl->shutdown_flushes); round++) {
        for (uint32_t i = 0; i < ctrl->nr_ns; i++) {
            blk_drain(ctrl->ns[i].blk);
        }
    }
}

bool nvme_ctrl_quiesce(NvmeCtrl *ctrl, Error **errp)
{
    quiesce_drain(ctrl);
    /* The interrupts of the completions just posted go out before the
     * state freezes, or the destination's host would wait for them. */
    nvme_msix_fire_due(ctrl);
    if (!quiesce_idle(ctrl)) {
        error_setg(errp, "nvme %s: %u commands still in flight after drain "
                   "(%u waiting for guest memory copies)", ctrl->serial,
                   ctrl->in_flight, ctrl->dma_in_flight);
        return false;
    }
    return true;
}

static int64_t quiesce_finish(EventLoop *loop, uint64_t id, void *opaque)
{
    NvmeCtrl *ctrl = opaque;
    ctrl->quiesce_timer = 0;
    if (ctrl->quiesce_cb && quiesce_idle(ctrl)) {
        NvmeQuiescedCb *cb = ctrl->quiesce_cb;
        ctrl->quiesce_cb = NULL;
        nvme_msix_fire_due(ctrl);
        cb(ctrl->quiesce_opaque);
    }
    return LOOP_TIMER_DONE;
}

/* Runs after completions: the waiting caller hears from the loop, not
 * from inside a completion. */
void nvme_quiesce_check(NvmeCtrl *ctrl)
{
    if (ctrl->quiesce_cb && quiesce_idle(ctrl) && !ctrl->quiesce_timer) {
        ctrl->quiesce_timer = loop_add_timer(ctrl->loop, 0, quiesce_finish,
                                             ctrl);
    }
}

bool nvme_ctrl_quiesce_begin(NvmeCtrl *ctrl, NvmeQuiescedCb *done,
                             void *opaque, bool *later)
{
    *later = false;
    quiesce_drain(ctrl);
    if (quiesce_idle(ctrl)) {
        nvme_msix_fire_due(ctrl);
        return true;
    }
    ctrl->quiesce_cb = done;
    ctrl->quiesce_opaque = opaque;
    *later = true;
    return false;
}

bool nvme_ctrl_resume(NvmeCtrl *ctrl, Error **errp)
{
    ctrl->quiesce_cb = NULL;
    ctrl->quiesced = false;
    nvme_flush_pending(ctrl, UINT16_MAX);
    nvme_aen_deliver(ctrl);
    nvme_keepalive_arm(ctrl);
    nvme_schedule(ctrl);
    return true;
}

bool nvme_ctrl_is_quiesced(const NvmeCtrl *ctrl)
{
    return ctrl->quiesced;
}

/* ---- allowlist ---- */

/* Every feature a configuration can use has a bit in ctrl->uses; only the
 * ones reviewed for migration are listed as migratable. A feature added
 * later gets a new bit and is refused until someone adds it here. */
static const struct {
    uint32_t bit;
    const char *name;
    bool migrates;
} nvme_feature_list[] = {
    { NVME_USES_SHADOW_DB, "shadow doorbells (Doorbell Buffer Config)", true },
    { NVME_USES_KEEP_ALIVE, "keep alive timer", true },
    { NVME_USES_SGL, "SGL data pointers", true },
    { NVME_USES_MULTI_NS, "several namespaces", true },
    /* Queue priorities are migrated but the arbitration burst state and
     * weights have not been reviewed. */
    { NVME_USES_WRR, "weighted round robin arbitration (CC.AMS=WRR)",
      false },
};

bool nvme_ctrl_migration_check(NvmeCtrl *ctrl, Error **errp)
{
    uint32_t unknown = ctrl->uses;
    for (size_t i = 0; i < sizeof(nvme_feature_list) /
                           sizeof(nvme_feature_list[0]); i++) {
        if (!(ctrl->uses & nvme_feature_list[i].bit)) {
            continue;
        }
        unknown &= ~nvme_feature_list[i].bit;
        if (!nvme_feature_list[i].migrates) {
            error_setg(errp, "nvme %s: migration is not supported while %s "
                       "is in use", ctrl->serial, nvme_feature_list[i].name);
            return false;
        }
    }
    if (unknown) {
        error_setg(errp, "nvme %s: feature bits 0x%" PRIx32 " are in use "
                   "and not reviewed for migration", ctrl->serial, unknown);
        return false;
    }
    return true;
}

/* ---- state validation on load ---- */

static bool check_range(NvmeCtrl *ctrl, uint64_t base, uint64_t len,
                        const char *what, unsigned qid, Error **errp)
{
    if (base & 0xfff || !nvme_range_ok(ctrl, base, len)) {
        error_setg(errp, "nvme: %s %u base 0x%" PRIx64 " is not a valid "
                   "guest range", what, qid, base);
        return false;
    }
    return true;
}

static uint32_t max_qsize(const NvmeCtrl *ctrl, unsigned qid)
{
    return qid == 0 ? 4096 : ctrl->mqes;    /* AQA allows 4096 entries */
}

static bool check_cq(NvmeCtrl *ctrl, unsigned q, Error **errp)
{
    const NvmeCQ *cq = ctrl->cq[q];
    if (cq->cqid != q || cq->size < 2 || cq->size > max_qsize(ctrl, q) ||
        cq->head >= cq->size || cq->tail >= cq->size) {
        error_setg(errp, "nvme: CQ %u has id %u, size %u, head %u, tail %u",
                   q, cq->cqid, cq->size, cq->head, cq->tail);
        return false;
    }
    if (cq->vector >= nvme_msix_nr_vectors(ctrl)) {
        error_setg(errp, "nvme: CQ %u vector %u beyond the MSI-X table (%u)",
                   q, cq->vector, nvme_msix_nr_vectors(ctrl));
        return false;
    }
    return check_range(ctrl, cq->base, (uint64_t)cq->size << NVME_CQES,
                       "CQ", q, errp);
}

static bool check_sq(NvmeCtrl *ctrl, unsigned q, Error **errp)
{
    const NvmeSQ *sq = ctrl->sq[q];
    if (sq->sqid != q || sq->size < 2 || sq->size > max_qsize(ctrl, q) ||
        sq->head >= sq->size || sq->tail >= sq->size || sq->prio > 3) {
        error_setg(errp, "nvme: SQ %u has id %u, size %u, head %u, tail %u",
                   q, sq->sqid, sq->size, sq->head, sq->tail);
        return false;
    }
    if (sq->cqid >= NVME_MAX_QUEUES || !ctrl->cq[sq->cqid] ||
        (q == 0) != (sq->cqid == 0)) {
        error_setg(errp, "nvme: SQ %u uses missing CQ %u", q, sq->cqid);
        return false;
    }
    return check_range(ctrl, sq->base, (uint64_t)sq->size << NVME_SQES,
                       "SQ", q, errp);
}

static bool check_shadow(NvmeCtrl *ctrl, Error **errp)
{
    if (ctrl->dbbuf_enabled &&
        (!check_range(ctrl, ctrl->dbbuf_dbs, 4096, "shadow doorbells", 0,
                      errp) ||
         !check_range(ctrl, ctrl->dbbuf_eis, 4096, "event index", 0, errp))) {
        return false;
    }
    for (unsigned q = 0; q < NVME_MAX_QUEUES; q++) {
        NvmeSQ *sq = ctrl->sq[q];
        NvmeCQ *cq = ctrl->cq[q];
        uint64_t sdb = sq ? sq->db_addr : 0, sei = sq ? sq->ei_addr : 0;
        uint64_t cdb = cq ? cq->db_addr : 0, cei = cq ? cq->ei_addr : 0;
        nvme_dbbuf_setup_queue(ctrl, (uint16_t)q);
        if ((sq && (sq->db_addr != sdb || sq->ei_addr != sei)) ||
            (cq && (cq->db_addr != cdb || cq->ei_addr != cei))) {
            error_setg(errp, "nvme: queue %u shadow doorbell slots do not "
                       "match the doorbell buffer", q);
            return false;
        }
    }
    return true;
}

static bool check_config(NvmeCtrl *ctrl, uint64_t expect_cap, Error **errp)
{
    if (ctrl->cap != expect_cap || ctrl->vs != NVME_VERSION_1_4) {
        error_setg(errp, "nvme: source CAP 0x%" PRIx64 " differs from this "
                   "controller's 0x%" PRIx64 " (different properties?)",
                   ctrl->cap, expect_cap);
        return false;
    }
    if (ctrl->nr_ns_info != ctrl->nr_ns) {
        error_setg(errp, "nvme: source had %u namespaces, this controller "
                   "%u", ctrl->nr_ns_info, ctrl->nr_ns);
        return false;
    }
    for (uint32_t i = 0; i < ctrl->nr_ns; i++) {
        const NvmeNsInfo *in = &ctrl->ns_info[i];
        const NvmeNamespace *ns = &ctrl->ns[i];
        if (in->nsid != ns->nsid || in->nsze != ns->nsze ||
            in->lbads != ns->lbads) {
            error_setg(errp, "nvme: namespace %u was %" PRIu64 " blocks of "
                       "2^%u bytes on the source, is %" PRIu64 " of 2^%u",
                       ns->nsid, in->nsze, in->lbads, ns->nsze, ns->lbads);
            return false;
        }
    }
    uint32_t nq = ctrl->num_queues - 1;
    if ((ctrl->feat.num_queues & 0xffff) > nq ||
        (ctrl->feat.num_queues >> 16) > nq) {
        error_setg(errp, "nvme: %u queues allocated, at most %u here",
                   ctrl->feat.num_queues, nq + 1);
        return false;
    }
    return true;
}

static bool check_queues(NvmeCtrl *ctrl, Error **errp)
{
    bool rdy = ctrl->csts & NVME_CSTS_RDY;
    if (rdy != (ctrl->sq[0] && ctrl->cq[0]) ||
        (rdy && !NVME_CC_EN(ctrl->cc))) {
        error_setg(errp, "nvme: CSTS.RDY=%d does not match the admin queues "
                   "and CC.EN=%u", rdy, NVME_CC_EN(ctrl->cc));
        return false;
    }
    for (unsigned q = 0; q < NVME_MAX_QUEUES; q++) {
        if (ctrl->cq[q] && !check_cq(ctrl, q, errp)) {
            return false;
        }
    }
    for (unsigned q = 0; q < NVME_MAX_QUEUES; q++) {
        if (ctrl->sq[q] && !check_sq(ctrl, q, errp)) {
            return false;
        }
    }
    return check_shadow(ctrl, errp);
}

static bool check_events(NvmeCtrl *ctrl, Error **errp)
{
    for (uint32_t i = 0; i < ctrl->nr_pending; i++) {
        const NvmePendingCqe *p = &ctrl->pending[i];
        if (p->cqid >= NVME_MAX_QUEUES || !ctrl->cq[p->cqid] ||
            p->sqid >= NVME_MAX_QUEUES || !ctrl->sq[p->sqid] ||
            ctrl->sq[p->sqid]->cqid != p->cqid) {
            error_setg(errp, "nvme: pending completion %u names SQ %u / CQ "
                       "%u that do not exist", i, p->sqid, p->cqid);
            return false;
        }
    }
    if (ctrl->nr_aer > NVME_AERL + 1 || ctrl->nr_aen > NVME_AEN_QUEUE ||
        (ctrl->nr_aer && !ctrl->sq[0])) {
        error_setg(errp, "nvme: %u outstanding AERs, %u queued events",
                   ctrl->nr_aer, ctrl->nr_aen);
        return false;
    }
    for (unsigned i = 0; i < ctrl->nr_aen; i++) {
        if (ctrl->aen_queue[i].type > NVME_AER_TYPE_NOTICE) {
            error_setg(errp, "nvme: queued event of unknown type %u",
                       ctrl->aen_queue[i].type);
            return false;
        }
    }
    for (unsigned i = 0; i < ctrl->nr_changed_ns; i++) {
        if (!nvme_ns_get(ctrl, ctrl->changed_ns[i])) {
            error_setg(errp, "nvme: changed namespace list names nsid %u",
                       ctrl->changed_ns[i]);
            return false;
        }
    }
    return true;
}

static bool nvme_pre_save(void *opaque, Error **errp)
{
    NvmeCtrl *ctrl = opaque;
    if (!nvme_ctrl_migration_check(ctrl, errp)) {
        return false;
    }
    if (!ctrl->quiesced || ctrl->in_flight) {
        error_setg(errp, "nvme %s: state saved while not quiesced",
                   ctrl->serial);
        return false;
    }
    ctrl->nr_ns_info = ctrl->nr_ns;
    for (uint32_t i = 0; i < ctrl->nr_ns; i++) {
        ctrl->ns_info[i] = (NvmeNsInfo){ .nsid = ctrl->ns[i].nsid,
                                         .nsze = ctrl->ns[i].nsze,
                                         .lbads = ctrl->ns[i].lbads };
    }
    /* Timestamp continuity: carry the value, not this host's clock. */
    ctrl->timestamp_ms = nvme_timestamp_now(ctrl);
    ctrl->ts_host_base_ms = clock_ms();
    return true;
}

static bool nvme_post_load(void *opaque, int version_id, Error **errp)
{
    NvmeCtrl *ctrl = opaque;

    /* CAP describes this controller's configuration: the source's must
     * equal what this side's properties produce. */
    if (!check_config(ctrl, nvme_expected_cap(ctrl), errp) ||
        !check_queues(ctrl, errp) || !check_events(ctrl, errp)) {
        return false;
    }
    ctrl->ts_host_base_ms = clock_ms();
    ctrl->quiesced = true;          /* until the device is started */
    ctrl->resetting = false;
    ctrl->shutting_down = false;
    ctrl->in_flight = 0;
    for (unsigned q = 0; q < NVME_MAX_QUEUES; q++) {
        ctrl->sq_inflight[q] = 0;
        ctrl->sq_delete_req[q] = NULL;
    }
    nvme_keepalive_arm(ctrl);
    return true;
}

/* ---- descriptions ---- */

static const VMStateField nvme_sq_fields[] = {
    VMSTATE_UINT64(base, NvmeSQ),
    VMSTATE_UINT64(db_addr, NvmeSQ),
    VMSTATE_UINT64(ei_addr, NvmeSQ),
    VMSTATE_UINT16(sqid, NvmeSQ),
    VMSTATE_UINT16(cqid, NvmeSQ),
    VMSTATE_UINT16(size, NvmeSQ),
    VMSTATE_UINT16(head, NvmeSQ),
    VMSTATE_UINT16(tail, NvmeSQ),
    VMSTATE_UINT8(prio, NvmeSQ),
    VMSTATE_END_OF_LIST()
};
static const VMStateDescription nvme_sq_vmsd = {
    .name = "nvme-sq", .version_id = 1, .minimum_version_id = 1,
    .fields = nvme_sq_fields,
};

static const VMStateField nvme_cq_fields[] = {
    VMSTATE_UINT64(base, NvmeCQ),
    VMSTATE_UINT64(db_addr, NvmeCQ),
    VMSTATE_UINT64(ei_addr, NvmeCQ),
    VMSTATE_UINT16(cqid, NvmeCQ),
    VMSTATE_UINT16(size, NvmeCQ),
    VMSTATE_UINT16(head, NvmeCQ),
    VMSTATE_UINT16(tail, NvmeCQ),
    VMSTATE_UINT16(vector, NvmeCQ),
    VMSTATE_BOOL(phase, NvmeCQ),
    VMSTATE_BOOL(irq_enabled, NvmeCQ),
    VMSTATE_END_OF_LIST()
};
static const VMStateDescription nvme_cq_vmsd = {
    .name = "nvme-cq", .version_id = 1, .minimum_version_id = 1,
    .fields = nvme_cq_fields,
};

static const VMStateField nvme_msix_fields[] = {
    VMSTATE_UINT32(addr_lo, NvmeMsixEntry),
    VMSTATE_UINT32(addr_hi, NvmeMsixEntry),
    VMSTATE_UINT32(data, NvmeMsixEntry),
    VMSTATE_UINT32(ctrl, NvmeMsixEntry),
    VMSTATE_END_OF_LIST()
};
static const VMStateDescription nvme_msix_vmsd = {
    .name = "nvme-msix-entry", .version_id = 1, .minimum_version_id = 1,
    .fields = nvme_msix_fields,
};

static const VMStateField nvme_pending_fields[] = {
    VMSTATE_UINT32(dw0, NvmePendingCqe),
    VMSTATE_UINT16(cqid, NvmePendingCqe),
    VMSTATE_UINT16(sqid, NvmePendingCqe),
    VMSTATE_UINT16(cid, NvmePendingCqe),
    VMSTATE_UINT16(status, NvmePendingCqe),
    VMSTATE_END_OF_LIST()
};
static const VMStateDescription nvme_pending_vmsd = {
    .name = "nvme-pending-cqe", .version_id = 1, .minimum_version_id = 1,
    .fields = nvme_pending_fields,
};

static const VMStateField nvme_aen_fields[] = {
    VMSTATE_UINT8(type, NvmeAen),
    VMSTATE_UINT8(info, NvmeAen),
    VMSTATE_UINT8(log_page, NvmeAen),
    VMSTATE_END_OF_LIST()
};
static const VMStateDescription nvme_aen_vmsd = {
    .name = "nvme-event", .version_id = 1, .minimum_version_id = 1,
    .fields = nvme_aen_fields,
};

static const VMStateField nvme_features_fields[] = {
    VMSTATE_UINT32(arbitration, NvmeFeatures),
    VMSTATE_UINT32(power_state, NvmeFeatures),
    VMSTATE_UINT16(temp_over, NvmeFeatures),
    VMSTATE_UINT16(temp_under, NvmeFeatures),
    VMSTATE_UINT32(error_recovery, NvmeFeatures),
    VMSTATE_UINT32(vwc, NvmeFeatures),
    VMSTATE_UINT32(num_queues, NvmeFeatures),
    VMSTATE_UINT32(irq_coalesce, NvmeFeatures),
    VMSTATE_UINT32(write_atomic, NvmeFeatures),
    VMSTATE_UINT32(async_config, NvmeFeatures),
    VMSTATE_UINT32(kato, NvmeFeatures),
    VMSTATE_BOOL(num_queues_set, NvmeFeatures),
    VMSTATE_ARRAY(irq_cd, NvmeFeatures, VMS_U8),
    VMSTATE_END_OF_LIST()
};
static const VMStateDescription nvme_features_vmsd = {
    .name = "nvme-features", .version_id = 1, .minimum_version_id = 1,
    .fields = nvme_features_fields,
};

static const VMStateField nvme_smart_fields[] = {
    VMSTATE_UINT64(sectors_read, NvmeSmart),
    VMSTATE_UINT64(sectors_written, NvmeSmart),
    VMSTATE_UINT64(host_reads, NvmeSmart),
    VMSTATE_UINT64(host_writes, NvmeSmart),
    VMSTATE_UINT64(busy_ms, NvmeSmart),
    VMSTATE_UINT64(power_cycles, NvmeSmart),
    VMSTATE_UINT64(unsafe_shutdowns, NvmeSmart),
    VMSTATE_UINT64(media_errors, NvmeSmart),
    VMSTATE_UINT8(critical_warning, NvmeSmart),
    VMSTATE_END_OF_LIST()
};
static const VMStateDescription nvme_smart_vmsd = {
    .name = "nvme-smart", .version_id = 1, .minimum_version_id = 1,
    .fields = nvme_smart_fields,
};

static const VMStateField nvme_errlog_fields[] = {
    VMSTATE_UINT64(error_count, NvmeErrorLogEntry),
    VMSTATE_UINT16(sqid, NvmeErrorLogEntry),
    VMSTATE_UINT16(cid, NvmeErrorLogEntry),
    VMSTATE_UINT16(status, NvmeErrorLogEntry),
    VMSTATE_UINT16(param_error_location, NvmeErrorLogEntry),
    VMSTATE_UINT64(lba, NvmeErrorLogEntry),
    VMSTATE_UINT32(nsid, NvmeErrorLogEntry),
    VMSTATE_END_OF_LIST()
};
static const VMStateDescription nvme_errlog_vmsd = {
    .name = "nvme-error-entry", .version_id = 1, .minimum_version_id = 1,
    .fields = nvme_errlog_fields,
};

static const VMStateField nvme_ns_info_fields[] = {
    VMSTATE_UINT32(nsid, NvmeNsInfo),
    VMSTATE_UINT64(nsze, NvmeNsInfo),
    VMSTATE_UINT8(lbads, NvmeNsInfo),
    VMSTATE_END_OF_LIST()
};
static const VMStateDescription nvme_ns_info_vmsd = {
    .name = "nvme-namespace", .version_id = 1, .minimum_version_id = 1,
    .fields = nvme_ns_info_fields,
};

static const VMStateField nvme_ctrl_fields[] = {
    VMSTATE_UINT64(cap, NvmeCtrl),
    VMSTATE_UINT32(vs, NvmeCtrl),
    VMSTATE_UINT32(intms, NvmeCtrl),
    VMSTATE_UINT32(cc, NvmeCtrl),
    VMSTATE_UINT32(csts, NvmeCtrl),
    VMSTATE_UINT32(aqa, NvmeCtrl),
    VMSTATE_UINT64(asq, NvmeCtrl),
    VMSTATE_UINT64(acq, NvmeCtrl),
    VMSTATE_STRUCT_PTR_ARRAY(cq, NvmeCtrl, nvme_cq_vmsd, NvmeCQ),
    VMSTATE_STRUCT_PTR_ARRAY(sq, NvmeCtrl, nvme_sq_vmsd, NvmeSQ),
    VMSTATE_STRUCT_ARRAY(msix, NvmeCtrl, nvme_msix_vmsd, NvmeMsixEntry),
    VMSTATE_BUFFER(msix_pba, NvmeCtrl),
    VMSTATE_BOOL(msix_enabled, NvmeCtrl),
    VMSTATE_BOOL(msix_func_mask, NvmeCtrl),
    VMSTATE_STRUCT(feat, NvmeCtrl, nvme_features_vmsd, NvmeFeatures),
    VMSTATE_STRUCT(smart, NvmeCtrl, nvme_smart_vmsd, NvmeSmart),
    VMSTATE_STRUCT_ARRAY(errlog, NvmeCtrl, nvme_errlog_vmsd,
                         NvmeErrorLogEntry),
    VMSTATE_UINT64(error_count, NvmeCtrl),
    VMSTATE_UINT64(timestamp_ms, NvmeCtrl),
    VMSTATE_BOOL(timestamp_set, NvmeCtrl),
    VMSTATE_VARRAY(aer_cids, NvmeCtrl, VMS_U16, nr_aer, VMS_U8),
    VMSTATE_STRUCT_VARRAY(aen_queue, NvmeCtrl, nvme_aen_vmsd, NvmeAen,
                          nr_aen, VMS_U8),
    VMSTATE_UINT8(aen_masked, NvmeCtrl),
    VMSTATE_VARRAY(changed_ns, NvmeCtrl, VMS_U32, nr_changed_ns, VMS_U8),
    VMSTATE_STRUCT_VARRAY(pending, NvmeCtrl, nvme_pending_vmsd,
                          NvmePendingCqe, nr_pending, VMS_U32),
    VMSTATE_BOOL(dbbuf_enabled, NvmeCtrl),
    VMSTATE_UINT64(dbbuf_dbs, NvmeCtrl),
    VMSTATE_UINT64(dbbuf_eis, NvmeCtrl),
    VMSTATE_STRUCT_VARRAY(ns_info, NvmeCtrl, nvme_ns_info_vmsd, NvmeNsInfo,
                          nr_ns_info, VMS_U32),
    VMSTATE_UINT32(uses, NvmeCtrl),
    VMSTATE_END_OF_LIST()
};

/* Whether the per-vector mask bits count (see msix_table_in_use), sent
 * only when they do: a stream without it leaves them not counting. */
static bool nvme_msix_table_needed(void *opaque)
{
    return ((NvmeCtrl *)opaque)->msix_table_in_use;
}

static const VMStateField nvme_msix_table_fields[] = {
    VMSTATE_BOOL(msix_table_in_use, NvmeCtrl),
    VMSTATE_END_OF_LIST()
};
static const VMStateDescription nvme_msix_table_vmsd = {
    .name = "nvme-msix-table-in-use", .version_id = 1,
    .minimum_version_id = 1,
    .needed = nvme_msix_table_needed,
    .fields = nvme_msix_table_fields,
};

static const VMStateDescription *const nvme_ctrl_subsections[] = {
    &nvme_msix_table_vmsd,
    NULL
};

const VMStateDescription nvme_ctrl_vmsd = {
    .name = "nvme",
    .version_id = 1,
    .minimum_version_id = 1,
    .pre_save = nvme_pre_save,
    .post_load = nvme_post_load,
    .fields = nvme_ctrl_fields,
    .subsections = nvme_ctrl_subsections,
};
