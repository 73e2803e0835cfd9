/*
 * Asynchronous events (NVMe 1.4 section 5.2), the error information log
 * and Get Log Page (5.14): error, SMART / health, firmware slot and
 * changed namespace list.
 *
 * Events are never dropped: one that finds no outstanding AER stays queued
 * (and migrates) until the host submits one. An event type is masked from
 * delivery after it is reported, until the host reads its log page with
 * RAE cleared (5.2).
 */
#include <stdlib.h>
#include <string.h>

#include "nvme/nvme-int.h"
#include "util/log.h"

static bool aen_enabled(const NvmeCtrl *ctrl, uint8_t type, uint8_t info)
{
    switch (type) {
    case NVME_AER_TYPE_SMART:   /* AEC bits 7:0 follow critical warning */
        return ctrl->feat.async_config & (1u << info);
    case NVME_AER_TYPE_NOTICE:
        return info == NVME_AER_INFO_NOTICE_NS_ATTR &&
               (ctrl->feat.async_config & NVME_AEC_NS_ATTR);
    default:
        return true;            /* error events cannot be disabled */
    }
}

void nvme_aen_enqueue(NvmeCtrl *ctrl, uint8_t type, uint8_t info,
                      uint8_t log_page)
{
    if (!aen_enabled(ctrl, type, info)) {
        return;
    }
    for (unsigned i = 0; i < ctrl->nr_aen; i++) {
        if (ctrl->aen_queue[i].type == type &&
            ctrl->aen_queue[i].info == info) {
            return;             /* already reported, not yet delivered */
        }
    }
    if (ctrl->nr_aen == NVME_AEN_QUEUE) {
        log_ratelimited(LOG_WARN, "nvme %s: event queue full, event %u/%u "
                        "coalesced", ctrl->serial, type, info);
        return;
    }
    ctrl->aen_queue[ctrl->nr_aen++] = (NvmeAen){ type, info, log_page };
    nvme_aen_deliver(ctrl);
}

void nvme_aen_deliver(NvmeCtrl *ctrl)
{
    if (!nvme_ctrl_ready(ctrl) || ctrl->quiesced) {
        return;
    }
    unsigned i = 0;
    while (ctrl->nr_aer && i < ctrl->nr_aen) {
        NvmeAen ev = ctrl->aen_queue[i];
        if (ctrl->aen_masked & (1u << ev.type)) {
            i++;
            continue;
        }
        memmove(&ctrl->aen_queue[i], &ctrl->aen_queue[i + 1],
                (ctrl->nr_aen - i - 1) * sizeof(ev));
        ctrl->nr_aen--;
        uint16_t cid = ctrl->aer_cids[0];
        memmove(&ctrl->aer_cids[0], &ctrl->aer_cids[1],
                (ctrl->nr_aer - 1) * sizeof(cid));
        ctrl->nr_aer--;
        ctrl->aen_masked |= (uint8_t)(1u << ev.type);
        nvme_post_cqe(ctrl, 0, 0, cid, NVME_SUCCESS,
                      ev.type | ((uint32_t)ev.info << 8) |
                      ((uint32_t)ev.log_page << 16));
    }
}

/* 5.2: the command stays outstanding without a completion. */
uint16_t nvme_aer_submit(NvmeRequest *req)
{
    NvmeCtrl *ctrl = req->ctrl;
    if (ctrl->nr_aer > NVME_AERL) {
        return NVME_AER_LIMIT_EXCEEDED;
    }
    ctrl->aer_cids[ctrl->nr_aer++] = req->cmd.cid;
    nvme_aen_deliver(ctrl);
    return NVME_STATUS_NO_CQE;
}

void nvme_error_log_add(NvmeCtrl *ctrl, const NvmeRequest *req,
                        uint16_t status)
{
    NvmeErrorLogEntry *e =
        &ctrl->errlog[ctrl->error_count % NVME_ERRLOG_ENTRIES];
    memset(e, 0, sizeof(*e));
    e->error_count = ++ctrl->error_count;
    e->sqid = req->sqid;
    e->cid = req->cmd.cid;
    e->status = (uint16_t)(status << 1);
    e->param_error_location = 0xffff;
    e->lba = req->slba;
    e->nsid = req->cmd.nsid;
    if ((status & 0x700) == NVME_SCT_MEDIA) {
        ctrl->smart.media_errors++;
    }
}

void nvme_temperature_check(NvmeCtrl *ctrl)
{
    bool over = NVME_TEMPERATURE >= ctrl->feat.temp_over ||
                (ctrl->feat.temp_under &&
                 NVME_TEMPERATURE <= ctrl->feat.temp_under);
    bool was = ctrl->smart.critical_warning & NVME_SMART_WARN_TEMP;
    if (over && !was) {
        ctrl->smart.critical_warning |= NVME_SMART_WARN_TEMP;
        nvme_aen_enqueue(ctrl, NVME_AER_TYPE_SMART, NVME_AER_INFO_SMART_TEMP,
                         NVME_LOG_SMART);
    } else if (!over) {
        ctrl->smart.critical_warning &= (uint8_t)~NVME_SMART_WARN_TEMP;
    }
}

bool nvme_ctrl_ns_changed(NvmeCtrl *ctrl, uint32_t nsid, Error **errp)
{
    NvmeNamespace *ns = nvme_ns_get(ctrl, nsid);
    if (!ns) {
        error_setg(errp, "nvme: no namespace %u", nsid);
        return false;
    }
    ns->nsze = blk_size(ns->blk) >> ns->lbads;
    bool listed = false;
    for (unsigned i = 0; i < ctrl->nr_changed_ns; i++) {
        listed |= ctrl->changed_ns[i] == nsid;
    }
    if (!listed && ctrl->nr_changed_ns < NVME_MAX_NAMESPACES) {
        ctrl->changed_ns[ctrl->nr_changed_ns++] = nsid;
    }
    nvme_aen_enqueue(ctrl, NVME_AER_TYPE_NOTICE, NVME_AER_INFO_NOTICE_NS_ATTR,
                     NVME_LOG_CHANGED_NS);
    return true;
}

/* ---- log pages ---- */

static void put_u128(uint8_t *b, size_t off, uint64_t v)
{
    memcpy(b + off, &v, 8);     /* upper 64 bits stay zero */
}

static size_t log_page_error(const NvmeCtrl *ctrl, uint8_t *buf)
{
    /* Newest first (5.14.1.1). */
    uint64_t n = ctrl->error_count < NVME_ERRLOG_ENTRIES ?
                 ctrl->error_count : NVME_ERRLOG_ENTRIES;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t idx = (ctrl->error_count - 1 - i) % NVME_ERRLOG_ENTRIES;
        memcpy(buf + i * 64, &ctrl->errlog[idx], 64);
    }
    return NVME_ERRLOG_ENTRIES * 64;
}

static size_t log_page_smart(const NvmeCtrl *ctrl, uint8_t *buf)
{
    const NvmeSmart *s = &ctrl->smart;
    uint16_t temp = NVME_TEMPERATURE;
    buf[0] = s->critical_warning;
    memcpy(buf + 1, &temp, 2);
    buf[3] = 100;                                   /* available spare */
    buf[4] = 10;                                    /* spare threshold */
    put_u128(buf, 32, (s->sectors_read + 999) / 1000);     /* 1000s */
    put_u128(buf, 48, (s->sectors_written + 999) / 1000);
    put_u128(buf, 64, s->host_reads);
    put_u128(buf, 80, s->host_writes);
    put_u128(buf, 96, s->busy_ms / 60000);          /* minutes */
    put_u128(buf, 112, s->power_cycles);
    put_u128(buf, 144, s->unsafe_shutdowns);
    put_u128(buf, 160, s->media_errors);
    put_u128(buf, 176, ctrl->error_count);
    return 512;
}

static size_t log_page_fw_slot(uint8_t *buf)
{
    buf[0] = 1;                                     /* AFI: slot 1 */
    memset(buf + 8, ' ', 8);
    memcpy(buf + 8, "0.1", 3);                      /* FRS1 */
    return 512;
}

static size_t log_page_changed_ns(NvmeCtrl *ctrl, uint8_t *buf, bool rae)
{
    memcpy(buf, ctrl->changed_ns, ctrl->nr_changed_ns * 4u);
    if (!rae) {
        ctrl->nr_changed_ns = 0;    /* 5.14.1.4: cleared when read */
    }
    return 4096;
}

static uint16_t log_build(NvmeRequest *req, uint8_t lid, bool rae,
                          uint8_t *buf, size_t *size)
{
    NvmeCtrl *ctrl = req->ctrl;
    uint32_t nsid = req->cmd.nsid;

    switch (lid) {
    case NVME_LOG_ERROR:
        *size = log_page_error(ctrl, buf);
        break;
    case NVME_LOG_SMART:
        if (nsid != 0 && nsid != 0xffffffffu) {
            return NVME_INVALID_FIELD | NVME_DNR;   /* LPA bit 0 clear */
        }
        *size = log_page_smart(ctrl, buf);
        break;
    case NVME_LOG_FW_SLOT:
        *size = log_page_fw_slot(buf);
        break;
    case NVME_LOG_CHANGED_NS:
        *size = log_page_changed_ns(ctrl, buf, rae);
        break;
    default:
        return NVME_INVALID_LOG_PAGE | NVME_DNR;
    }
    if (!rae) {
        uint8_t type = lid == NVME_LOG_ERROR ? NVME_AER_TYPE_ERROR :
                       lid == NVME_LOG_SMART ? NVME_AER_TYPE_SMART :
                       NVME_AER_TYPE_NOTICE;
        if (lid != NVME_LOG_FW_SLOT) {
            ctrl->aen_masked &= (uint8_t)~(1u << type);
        }
    }
    return NVME_SUCCESS;
}

/* 5.14: NUMD dwords (0-based, split over CDW10/11) from a dword-aligned
 * offset (CDW12/13); what lies past the log's end reads as zero. */
uint16_t nvme_get_log_page(NvmeRequest *req)
{
    uint8_t lid = req->cmd.cdw10 & 0xff;
    bool rae = req->cmd.cdw10 & (1u << 15);
    uint64_t numd = ((uint64_t)(req->cmd.cdw11 & 0xffff) << 16 |
                     (req->cmd.cdw10 >> 16)) + 1;
    uint64_t len = numd * 4;
    uint64_t off = (uint64_t)req->cmd.cdw13 << 32 | req->cmd.cdw12;
    uint8_t log[4096] = { 0 };
    size_t size = 0;

    if ((off & 3) || len > (4096ull << NVME_MDTS)) {
        return NVME_INVALID_FIELD | NVME_DNR;
    }
    uint16_t st = log_build(req, lid, rae, log, &size);
    if (st) {
        return st;
    }
    if (off > size) {
        return NVME_INVALID_FIELD | NVME_DNR;
    }
    uint8_t *out = calloc(1, len);
    if (!out) {
        return NVME_INTERNAL_ERROR;
    }
    uint64_t avail = size - off;
    memcpy(out, log + off, avail < len ? avail : len);
    st = nvme_data_to_guest(req, out, len);
    free(out);
    return st;
}
