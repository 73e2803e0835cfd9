/*
 * NVMe controller: creation from properties, BAR0 registers (NVMe 1.4
 * section 3.1), controller enable/reset/shutdown (section 7.6) and the
 * deferred-work "bottom half" that runs queue processing on the loop.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "nvme/nvme-int.h"
#include "util/log.h"

/* ---- deferred work ---- */

static int64_t nvme_bh(EventLoop *loop, uint64_t id, void *opaque)
{
    NvmeCtrl *ctrl = opaque;
    ctrl->bh_timer = 0;
    if (nvme_process_queues(ctrl)) {
        nvme_schedule(ctrl);
    }
    return LOOP_TIMER_DONE;
}

/* Doorbells and completions never process queues recursively: they ask
 * for a pass on the loop (a zero-delay timer, cancellable on free). */
void nvme_schedule(NvmeCtrl *ctrl)
{
    if (!ctrl->bh_timer) {
        ctrl->bh_timer = loop_add_timer(ctrl->loop, 0, nvme_bh, ctrl);
    }
}

bool nvme_ctrl_poll(NvmeCtrl *ctrl)
{
    if (ctrl->bh_timer) {
        loop_del_timer(ctrl->loop, ctrl->bh_timer);
        ctrl->bh_timer = 0;
    }
    bool more = nvme_process_queues(ctrl);
    if (more) {
        nvme_schedule(ctrl);
    }
    return more;
}

bool nvme_ctrl_ready(const NvmeCtrl *ctrl)
{
    /* 7.6.2: after a shutdown notification only a reset revives it. */
    return (ctrl->csts & (NVME_CSTS_RDY | NVME_CSTS_CFS)) == NVME_CSTS_RDY &&
           !ctrl->resetting && !NVME_CC_SHN(ctrl->cc);
}

uint32_t nvme_page_size(const NvmeCtrl *ctrl)
{
    return 4096u << NVME_CC_MPS(ctrl->cc);
}

/* 3.1.6: CFS reports a condition the host can only recover from by a
 * controller reset; the controller stops processing commands. */
void nvme_fatal(NvmeCtrl *ctrl, const char *why)
{
    log_ratelimited(LOG_WARN, "nvme %s: controller fatal status: %s",
                    ctrl->serial, why);
    ctrl->csts |= NVME_CSTS_CFS;
}

/* ---- keep alive (5.21.1.15, 7.12) ---- */

static int64_t nvme_keepalive_tick(EventLoop *loop, uint64_t id, void *opaque)
{
    NvmeCtrl *ctrl = opaque;
    if (!ctrl->feat.kato || !nvme_ctrl_ready(ctrl)) {
        ctrl->ka_timer = 0;
        return LOOP_TIMER_DONE;
    }
    if (ctrl->quiesced) {
        ctrl->last_keepalive_ms = clock_ms();
    } else if (clock_ms() - ctrl->last_keepalive_ms > ctrl->feat.kato) {
        ctrl->ka_timer = 0;
        nvme_fatal(ctrl, "keep alive timer expired");
        return LOOP_TIMER_DONE;
    }
    return ctrl->feat.kato;
}

void nvme_keepalive_arm(NvmeCtrl *ctrl)
{
    if (ctrl->ka_timer) {
        loop_del_timer(ctrl->loop, ctrl->ka_timer);
        ctrl->ka_timer = 0;
    }
    ctrl->last_keepalive_ms = clock_ms();
    if (ctrl->feat.kato && nvme_ctrl_ready(ctrl)) {
        ctrl->ka_timer = loop_add_timer(ctrl->loop, ctrl->feat.kato,
                                        nvme_keepalive_tick, ctrl);
    }
}

/* ---- reset, enable, shutdown ---- */

/* 7.3.2 Controller Level Reset: queues deleted, outstanding commands and
 * AERs gone, non-persistent features back to defaults. SMART counters and
 * the error log persist. */
static void nvme_reset_now(NvmeCtrl *ctrl)
{
    nvme_queues_free_all(ctrl);
    ctrl->nr_pending = 0;
    ctrl->nr_aer = 0;
    ctrl->nr_aen = 0;
    ctrl->aen_masked = 0;
    ctrl->dbbuf_enabled = false;
    ctrl->dbbuf_dbs = ctrl->dbbuf_eis = 0;
    ctrl->intms = 0;
    ctrl->uses &= ~(NVME_USES_SHADOW_DB | NVME_USES_KEEP_ALIVE |
                    NVME_USES_SGL | NVME_USES_WRR);
    nvme_features_reset(ctrl);
    nvme_keepalive_arm(ctrl);
    ctrl->resetting = false;
    ctrl->shutting_down = false;
    ctrl->csts = 0;
}

static bool nvme_enable_check(NvmeCtrl *ctrl, const char **why)
{
    uint32_t page = nvme_page_size(ctrl);
    uint32_t asqs = (ctrl->aqa & 0xfff) + 1;
    uint32_t acqs = ((ctrl->aqa >> 16) & 0xfff) + 1;

    if (NVME_CC_MPS(ctrl->cc) > ((ctrl->cap >> 52) & 0xf)) {
        *why = "CC.MPS above CAP.MPSMAX";
    } else if (NVME_CC_CSS(ctrl->cc) != 0) {
        *why = "CC.CSS selects an unsupported command set";
    } else if (NVME_CC_AMS(ctrl->cc) > (ctrl->wrr ? NVME_AMS_WRR : 0)) {
        *why = "CC.AMS selects an unsupported arbitration";
    } else if (asqs < 2 || acqs < 2) {
        *why = "AQA admin queue size below 2";   /* 3.1.8 */
    } else if (!ctrl->asq || !ctrl->acq ||
               (ctrl->asq & (page - 1)) || (ctrl->acq & (page - 1))) {
        *why = "ASQ/ACQ zero or not page aligned"; /* 3.1.9/3.1.10 */
    } else if (!nvme_range_ok(ctrl, ctrl->asq, (uint64_t)asqs << NVME_SQES) ||
               !nvme_range_ok(ctrl, ctrl->acq, (uint64_t)acqs << NVME_CQES)) {
        *why = "admin queue outside guest memory";
    } else {
        return true;
    }
    return false;
}

static void nvme_enable(NvmeCtrl *ctrl)
{
    const char *why = NULL;
    if (!nvme_enable_check(ctrl, &why)) {
        log_ratelimited(LOG_WARN, "nvme %s: enable refused: %s",
                        ctrl->serial, why);
        ctrl->csts |= NVME_CSTS_CFS;
        return;
    }
    uint16_t asqs = (ctrl->aqa & 0xfff) + 1;
    uint16_t acqs = ((ctrl->aqa >> 16) & 0xfff) + 1;
    if (!nvme_cq_new(ctrl, 0, ctrl->acq, acqs, 0, true) ||
        !nvme_sq_new(ctrl, 0, 0, ctrl->asq, asqs, 0)) {
        nvme_queues_free_all(ctrl);
        nvme_fatal(ctrl, "out of memory creating the admin queues");
        return;
    }
    if (NVME_CC_AMS(ctrl->cc) == NVME_AMS_WRR) {
        ctrl->uses |= NVME_USES_WRR;
    }
    ctrl->csts = NVME_CSTS_RDY;
    nvme_keepalive_arm(ctrl);
}

static void nvme_shutdown_flush_done(void *opaque, int ret)
{
    NvmeCtrl *ctrl = opaque;
    if (ret < 0) {
        log_ratelimited(LOG_WARN, "nvme %s: flush at shutdown: %s",
                        ctrl->serial, strerror(-ret));
    }
    if (--ctrl->shutdown_flushes == 0 && ctrl->shutting_down) {
        ctrl->shutting_down = false;
        ctrl->csts = (ctrl->csts & ~NVME_CSTS_SHST_MASK) |
                     (NVME_SHST_COMPLETE << NVME_CSTS_SHST_SHIFT);
    }
    nvme_quiesce_check(ctrl);
}

/* 7.6.2: shutdown completes once every namespace's data is durable. */
static void nvme_shutdown_flush(NvmeCtrl *ctrl)
{
    ctrl->shutdown_flushes = 1;     /* held until every flush is issued */
    for (uint32_t i = 0; i < ctrl->nr_ns; i++) {
        ctrl->shutdown_flushes++;
        int r = blk_flush(ctrl->ns[i].blk, nvme_shutdown_flush_done, ctrl);
        if (r < 0) {
            nvme_shutdown_flush_done(ctrl, r);
        }
    }
    nvme_shutdown_flush_done(ctrl, 0);
}

/* Runs after every completion: finishes the transitions that wait for the
 * in-flight commands (reset, shutdown, SQ deletion). */
void nvme_check_deferred(NvmeCtrl *ctrl)
{
    for (unsigned i = 1; i < NVME_MAX_QUEUES; i++) {
        nvme_check_deferred_sq(ctrl, (uint16_t)i);
    }
    nvme_check_deferred_ctrl(ctrl);
}

/* A deferred SQ deletion waits for that queue's commands only (5.6). */
void nvme_check_deferred_sq(NvmeCtrl *ctrl, uint16_t sqid)
{
    if (sqid && ctrl->sq_delete_req[sqid] && !ctrl->sq_inflight[sqid]) {
        nvme_sq_delete_finish(ctrl, sqid);
    }
}

/* Reset and shutdown wait for every command of the controller. */
void nvme_check_deferred_ctrl(NvmeCtrl *ctrl)
{
    if (ctrl->in_flight || ctrl->dma_in_flight) {
        return;
    }
    nvme_quiesce_check(ctrl);
    if (ctrl->resetting) {
        nvme_reset_now(ctrl);
    } else if (ctrl->shutting_down && !ctrl->shutdown_flushes) {
        nvme_shutdown_flush(ctrl);
    }
}

static void nvme_write_cc(NvmeCtrl *ctrl, uint32_t value)
{
    uint32_t old = ctrl->cc;

    if (NVME_CC_EN(old) && !NVME_CC_EN(value)) {
        /* 1 -> 0: reset once in-flight commands finish (their completions
         * are discarded); CSTS.RDY stays 1 until then. */
        ctrl->cc = value;
        ctrl->resetting = true;
        nvme_check_deferred(ctrl);
        return;
    }
    if (NVME_CC_EN(old)) {
        /* 3.1.5: only IOSQES, IOCQES and SHN may change while enabled. */
        uint32_t keep = 0x00ff0000u | (3u << 14);
        ctrl->cc = (old & ~keep) | (value & keep);
    } else {
        ctrl->cc = value;
    }
    if (!NVME_CC_EN(old) && NVME_CC_EN(value) && !ctrl->resetting) {
        nvme_enable(ctrl);
    }
    if (NVME_CC_SHN(value) && !NVME_CC_SHN(old) && NVME_CC_EN(ctrl->cc)) {
        ctrl->shutting_down = true;
        ctrl->csts = (ctrl->csts & ~NVME_CSTS_SHST_MASK) |
                     (NVME_SHST_OCCURRING << NVME_CSTS_SHST_SHIFT);
        nvme_check_deferred(ctrl);
    } else if (!NVME_CC_SHN(value) && NVME_CC_SHN(old)) {
        ctrl->csts &= ~NVME_CSTS_SHST_MASK;
    }
}

/* ---- BAR0 ---- */

static uint64_t nvme_reg_read(NvmeCtrl *ctrl, uint64_t off)
{
    switch (off) {
    case NVME_REG_CAP:      return ctrl->cap;
    case NVME_REG_CAP + 4:  return ctrl->cap >> 32;
    case NVME_REG_VS:       return ctrl->vs;
    case NVME_REG_INTMS:    /* fall through: both read the mask (3.1.3) */
    case NVME_REG_INTMC:    return ctrl->intms;
    case NVME_REG_CC:       return ctrl->cc;
    case NVME_REG_CSTS:     return ctrl->csts;
    case NVME_REG_AQA:      return ctrl->aqa;
    case NVME_REG_ASQ:      return ctrl->asq;
    case NVME_REG_ASQ + 4:  return ctrl->asq >> 32;
    case NVME_REG_ACQ:      return ctrl->acq;
    case NVME_REG_ACQ + 4:  return ctrl->acq >> 32;
    default:                return 0;   /* reserved, NSSR, CMB: absent */
    }
}

static void nvme_reg_write(NvmeCtrl *ctrl, uint64_t off, uint32_t v)
{
    bool en = NVME_CC_EN(ctrl->cc);
    switch (off) {
    case NVME_REG_INTMS: ctrl->intms |= v; break;
    case NVME_REG_INTMC: ctrl->intms &= ~v; break;
    case NVME_REG_CC:    nvme_write_cc(ctrl, v); break;
    /* 3.1.8-3.1.10: admin queue attributes are read only while enabled. */
    case NVME_REG_AQA:
        if (!en) {
            ctrl->aqa = v & 0x0fff0fffu;
        }
        break;
    case NVME_REG_ASQ:
    case NVME_REG_ASQ + 4:
    case NVME_REG_ACQ:
    case NVME_REG_ACQ + 4: {
        if (en) {
            break;
        }
        uint64_t *r = off < NVME_REG_ACQ ? &ctrl->asq : &ctrl->acq;
        if (off & 4) {
            *r = (*r & 0xffffffffu) | ((uint64_t)v << 32);
        } else {
            *r = (*r & ~0xffffffffull) | (v & ~0xfffu);
        }
        break;
    }
    default:
        log_ratelimited(LOG_DEBUG, "nvme %s: write to read-only or "
                        "reserved register 0x%" PRIx64, ctrl->serial, off);
    }
}

uint64_t nvme_mmio_read(NvmeCtrl *ctrl, uint64_t offset, unsigned size)
{
    if ((size != 4 && size != 8) || (offset & (size - 1)) ||
        offset + size > NVME_BAR0_SIZE) {
        log_ratelimited(LOG_WARN, "nvme %s: bad BAR0 read at 0x%" PRIx64
                        " size %u", ctrl->serial, offset, size);
        return 0;
    }
    if (offset >= NVME_REG_DBS) {
        return 0;   /* 3.1.24: doorbells read as zero */
    }
    uint64_t v = nvme_reg_read(ctrl, offset) & 0xffffffffu;
    if (size == 8) {
        v |= nvme_reg_read(ctrl, offset + 4) << 32;
    }
    return v;
}

void nvme_mmio_write(NvmeCtrl *ctrl, uint64_t offset, unsigned size,
                     uint64_t value)
{
    if ((size != 4 && size != 8) || (offset & (size - 1)) ||
        offset + size > NVME_BAR0_SIZE) {
        log_ratelimited(LOG_WARN, "nvme %s: bad BAR0 write at 0x%" PRIx64
                        " size %u", ctrl->serial, offset, size);
        return;
    }
    if (offset >= NVME_REG_DBS) {
        nvme_doorbell_write(ctrl, offset - NVME_REG_DBS, (uint32_t)value);
        return;
    }
    nvme_reg_write(ctrl, offset, (uint32_t)value);
    if (size == 8) {
        nvme_reg_write(ctrl, offset + 4, (uint32_t)(value >> 32));
    }
}

/* ---- creation ---- */

static bool nvme_add_namespace(NvmeCtrl *ctrl, const char *name,
                               Error **errp)
{
    BlockBackend *blk = blk_by_name(name);
    if (!blk) {
        error_setg(errp, "nvme: drive: no block node '%s'", name);
        return false;
    }
    if (ctrl->nr_ns == NVME_MAX_NAMESPACES) {
        error_setg(errp, "nvme: drive: at most %d namespaces",
                   NVME_MAX_NAMESPACES);
        return false;
    }
    uint32_t lbsz = 1u << ctrl->lbads;
    if (blk_alignment(blk) > lbsz || blk_size(blk) < lbsz) {
        error_setg(errp, "nvme: drive: node '%s' is smaller than or not "
                   "aligned to the %u-byte LBA size (lbads)", name, lbsz);
        return false;
    }
    if (!blk_attach_loop(blk, ctrl->loop, errp)) {
        return false;
    }
    NvmeNamespace *ns = &ctrl->ns[ctrl->nr_ns];
    ns->blk = blk;
    ns->lbads = ctrl->lbads;
    ns->nsid = ++ctrl->nr_ns;
    ns->nsze = blk_size(blk) >> ns->lbads;
    return true;
}

static bool nvme_parse_drives(NvmeCtrl *ctrl, const char *drives,
                              Error **errp)
{
    char *copy = strdup(drives);
    if (!copy) {
        error_setg(errp, "nvme: out of memory");
        return false;
    }
    bool ok = true;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ":", &save); tok && ok;
         tok = strtok_r(NULL, ":", &save)) {
        ok = nvme_add_namespace(ctrl, tok, errp);
    }
    free(copy);
    if (ok && ctrl->nr_ns == 0) {
        error_setg(errp, "nvme: drive= names no backend");
        ok = false;
    }
    return ok;
}

static bool nvme_parse_props(NvmeCtrl *ctrl, KeyVal *props, Error **errp)
{
    const char *serial, *drives;
    uint32_t nq, mqes, lbads, dstrd;

    if (!keyval_get_str(props, "serial", NULL, &serial, errp) ||
        !keyval_get_str(props, "drive", NULL, &drives, errp) ||
        !keyval_get_u32(props, "num-queues", 8, &nq, errp) ||
        !keyval_get_u32(props, "mqes", 1024, &mqes, errp) ||
        !keyval_get_u32(props, "lbads", 9, &lbads, errp) ||
        !keyval_get_u32(props, "dstrd", 0, &dstrd, errp) ||
        !keyval_get_bool(props, "wrr", false, &ctrl->wrr, errp)) {
        return false;
    }
    if (!serial || !*serial || strlen(serial) > 20) {
        error_setg(errp, "nvme: serial= is required (1-20 characters)");
        return false;
    }
    if (!drives) {
        error_setg(errp, "nvme: drive= is required");
        return false;
    }
    if (nq < 1 || nq > NVME_MAX_QUEUES - 1) {
        error_setg(errp, "nvme: num-queues=%u is not in 1..%d", nq,
                   NVME_MAX_QUEUES - 1);
        return false;
    }
    if (mqes < 2 || mqes > 4096) {
        error_setg(errp, "nvme: mqes=%u is not in 2..4096", mqes);
        return false;
    }
    if (lbads != 9 && lbads != 12) {
        error_setg(errp, "nvme: lbads=%u is neither 9 nor 12", lbads);
        return false;
    }
    if (dstrd > 4) {
        error_setg(errp, "nvme: dstrd=%u is not in 0..4", dstrd);
        return false;
    }
    strcpy(ctrl->serial, serial);
    ctrl->num_queues = nq;
    ctrl->mqes = mqes;
    ctrl->dstrd = (uint8_t)dstrd;
    ctrl->lbads = (uint8_t)lbads;
    return keyval_check_all_used(props, "nvme", errp) &&
           nvme_parse_drives(ctrl, drives, errp);
}

uint64_t nvme_expected_cap(const NvmeCtrl *ctrl)
{
    return (uint64_t)(ctrl->mqes - 1) |
                (1ull << 16) |                      /* CQR */
                ((uint64_t)ctrl->wrr << 17) |       /* AMS: WRR+urgent */
                (15ull << 24) |                     /* TO: 7.5 s */
                ((uint64_t)ctrl->dstrd << 32) |
                (1ull << 37) |                      /* CSS: NVM */
                (4ull << 52);                       /* MPSMAX 64 KiB */
}

static void nvme_init_regs(NvmeCtrl *ctrl)
{
    ctrl->cap = nvme_expected_cap(ctrl);
    ctrl->vs = NVME_VERSION_1_4;
}

NvmeCtrl *nvme_ctrl_new(KeyVal *props, EventLoop *loop,
                        const NvmeTransportOps *ops, void *opaque,
                        Error **errp)
{
    NvmeCtrl *ctrl = calloc(1, sizeof(*ctrl));
    if (!ctrl) {
        error_setg(errp, "nvme: out of memory");
        return NULL;
    }
    ctrl->loop = loop;
    ctrl->ops = ops;
    ctrl->opaque = opaque;
    if (!ops || (!ops->translate && !ops->dma_start) ||
        (ops->dma_start && !ops->dma_cancel) || !ops->raise_msix) {
        error_setg(errp, "nvme: transport lacks memory access or MSI-X");
        free(ctrl);
        return NULL;
    }
    if (!nvme_parse_props(ctrl, props, errp)) {
        free(ctrl);
        return NULL;
    }
    if (ctrl->nr_ns > 1) {
        ctrl->uses |= NVME_USES_MULTI_NS;
    }
    nvme_init_regs(ctrl);
    nvme_msix_reset(ctrl);
    nvme_features_reset(ctrl);
    ctrl->smart.power_cycles = 1;
    for (unsigned i = 0; i < NVME_MAX_INFLIGHT; i++) {
        ctrl->reqs[i].ctrl = ctrl;
    }
    return ctrl;
}

void nvme_ctrl_free(NvmeCtrl *ctrl)
{
    if (!ctrl) {
        return;
    }
    /* Nothing is fetched any more; what is at the backends completes. A
     * completion on one namespace may have started a command on another
     * (one already drained), so drain until a whole pass finds none. */
    ctrl->quiesced = true;
    for (bool busy = true; busy;) {
        busy = false;
        for (uint32_t i = 0; i < ctrl->nr_ns; i++) {
            if (blk_in_flight(ctrl->ns[i].blk)) {
                busy = true;
                blk_drain(ctrl->ns[i].blk);
            }
        }
    }
    /* Copies still waiting on the transport are forgotten: their
     * callbacks must not run into the freed controller. */
    nvme_dma_cancel_all(ctrl);
    if (ctrl->bh_timer) {
        loop_del_timer(ctrl->loop, ctrl->bh_timer);
    }
    if (ctrl->ka_timer) {
        loop_del_timer(ctrl->loop, ctrl->ka_timer);
    }
    if (ctrl->quiesce_timer) {
        loop_del_timer(ctrl->loop, ctrl->quiesce_timer);
    }
    nvme_queues_free_all(ctrl);
    for (unsigned i = 0; i < NVME_MAX_INFLIGHT; i++) {
        nvme_req_release_data(&ctrl->reqs[i]);
        free(ctrl->reqs[i].segs);
        free(ctrl->reqs[i].iov);
        free(ctrl->reqs[i].ops);
    }
    free(ctrl);
}

void nvme_ctrl_get_stats(const NvmeCtrl *ctrl, NvmeCtrlStats *st)
{
    *st = ctrl->stats;
    st->in_flight = ctrl->in_flight;
    st->completions_pending = ctrl->nr_pending;
}

size_t nvme_ctrl_pending_completions(const NvmeCtrl *ctrl,
                                     NvmeCompletionInfo *out, size_t max)
{
    for (size_t i = 0; i < ctrl->nr_pending && i < max; i++) {
        const NvmePendingCqe *p = &ctrl->pending[i];
        out[i] = (NvmeCompletionInfo){ p->cqid, p->sqid, p->cid, p->status };
    }
    return ctrl->nr_pending;
}
