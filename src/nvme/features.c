/*
 * Get Features / Set Features (NVMe 1.4 sections 5.15, 5.21). No feature
 * is saveable; Get Features supports the current, default, saved (equal
 * to default) and supported-capabilities selections.
 */
#include <string.h>

#include "nvme/nvme-int.h"

#define SEL_CURRENT   0
#define SEL_DEFAULT   1
#define SEL_SAVED     2
#define SEL_SUPPORTED 3
#define CAP_CHANGEABLE (1u << 2)

static void features_defaults(const NvmeCtrl *ctrl, NvmeFeatures *f)
{
    uint32_t nq = ctrl->num_queues - 1;
    memset(f, 0, sizeof(*f));
    f->temp_over = NVME_TEMP_WARN;
    f->vwc = 1;                     /* write cache enabled */
    f->num_queues = (nq << 16) | nq;
}

void nvme_features_reset(NvmeCtrl *ctrl)
{
    features_defaults(ctrl, &ctrl->feat);
    ctrl->timestamp_ms = 0;
    ctrl->timestamp_set = false;
    ctrl->ts_host_base_ms = clock_ms();
}

uint64_t nvme_timestamp_now(const NvmeCtrl *ctrl)
{
    return (ctrl->timestamp_ms + (clock_ms() - ctrl->ts_host_base_ms)) &
           0xffffffffffffull;
}

/* 5.21.1.14: eight bytes, timestamp in bits 47:0, origin in byte 6. */
static uint16_t get_timestamp(NvmeRequest *req)
{
    uint64_t ts = nvme_timestamp_now(req->ctrl);
    uint8_t buf[8];
    memcpy(buf, &ts, 8);
    buf[6] = req->ctrl->timestamp_set ? (1 << 1) : 0;
    buf[7] = 0;
    return nvme_data_to_guest(req, buf, sizeof(buf));
}

static void timestamp_fetched(NvmeRequest *req, uint16_t st)
{
    uint64_t ts = 0;
    if (!st) {
        memcpy(&ts, req->bounce, sizeof(ts));
        req->ctrl->timestamp_ms = ts & 0xffffffffffffull;
        req->ctrl->timestamp_set = true;
        req->ctrl->ts_host_base_ms = clock_ms();
    }
    nvme_req_finish(req, st);
}

static uint16_t set_timestamp(NvmeRequest *req)
{
    return nvme_data_from_guest(req, 8, true, timestamp_fetched);
}

/* Current (or default) value of a dword-valued feature. */
static uint16_t feature_value(NvmeCtrl *ctrl, const NvmeFeatures *f,
                              uint8_t fid, uint32_t cdw11, uint32_t *out)
{
    switch (fid) {
    case NVME_FEAT_ARBITRATION:   *out = f->arbitration; break;
    case NVME_FEAT_POWER_MGMT:    *out = f->power_state; break;
    case NVME_FEAT_TEMP_THRESH: {
        uint8_t tmpsel = (cdw11 >> 16) & 0xf, thsel = (cdw11 >> 20) & 3;
        if (thsel > 1 || tmpsel != 0) {
            return NVME_INVALID_FIELD | NVME_DNR;
        }
        *out = thsel ? f->temp_under : f->temp_over;
        break;
    }
    case NVME_FEAT_ERROR_RECOVERY: *out = f->error_recovery; break;
    case NVME_FEAT_VWC:           *out = f->vwc; break;
    case NVME_FEAT_NUM_QUEUES:    *out = f->num_queues; break;
    case NVME_FEAT_IRQ_COALESCE:  *out = f->irq_coalesce; break;
    case NVME_FEAT_IRQ_CONFIG: {
        uint16_t iv = cdw11 & 0xffff;
        if (iv >= nvme_msix_nr_vectors(ctrl)) {
            return NVME_INVALID_FIELD | NVME_DNR;
        }
        *out = iv | ((uint32_t)f->irq_cd[iv] << 16);
        break;
    }
    case NVME_FEAT_WRITE_ATOMIC:  *out = f->write_atomic; break;
    case NVME_FEAT_ASYNC_EVENT:   *out = f->async_config; break;
    case NVME_FEAT_KEEP_ALIVE:    *out = f->kato; break;
    default:
        return NVME_INVALID_FIELD | NVME_DNR;
    }
    return NVME_SUCCESS;
}

uint16_t nvme_get_features(NvmeRequest *req)
{
    NvmeCtrl *ctrl = req->ctrl;
    uint8_t fid = req->cmd.cdw10 & 0xff;
    uint8_t sel = (req->cmd.cdw10 >> 8) & 7;
    NvmeFeatures defaults;

    if (sel > SEL_SUPPORTED) {
        return NVME_INVALID_FIELD | NVME_DNR;
    }
    if (fid == NVME_FEAT_TIMESTAMP && sel == SEL_CURRENT) {
        return get_timestamp(req);
    }
    uint32_t v;
    features_defaults(ctrl, &defaults);
    uint16_t st = feature_value(ctrl, sel == SEL_CURRENT ? &ctrl->feat
                                                         : &defaults,
                                fid, req->cmd.cdw11, &v);
    if (fid == NVME_FEAT_TIMESTAMP) {
        st = NVME_SUCCESS;      /* default/saved read as zero */
        v = 0;
    }
    if (st) {
        return st;
    }
    req->dw0 = sel == SEL_SUPPORTED ? CAP_CHANGEABLE : v;
    return NVME_SUCCESS;
}

static uint16_t set_temp_thresh(NvmeCtrl *ctrl, uint32_t cdw11)
{
    uint8_t tmpsel = (cdw11 >> 16) & 0xf, thsel = (cdw11 >> 20) & 3;
    /* 5.21.1.4: only the composite temperature (or "all") exists. */
    if (thsel > 1 || (tmpsel != 0 && tmpsel != 0xf)) {
        return NVME_INVALID_FIELD | NVME_DNR;
    }
    if (thsel) {
        ctrl->feat.temp_under = cdw11 & 0xffff;
    } else {
        ctrl->feat.temp_over = cdw11 & 0xffff;
    }
    nvme_temperature_check(ctrl);
    return NVME_SUCCESS;
}

/* 5.21.1.7: allocated once, before any I/O queue exists. */
static uint16_t set_num_queues(NvmeRequest *req)
{
    NvmeCtrl *ctrl = req->ctrl;
    uint32_t nsqr = req->cmd.cdw11 & 0xffff, ncqr = req->cmd.cdw11 >> 16;
    uint32_t max = ctrl->num_queues - 1;

    if (nsqr == 0xffff || ncqr == 0xffff) {
        return NVME_INVALID_FIELD | NVME_DNR;
    }
    for (unsigned q = 1; q < NVME_MAX_QUEUES; q++) {
        if (ctrl->sq[q] || ctrl->cq[q]) {
            return NVME_CMD_SEQ_ERROR | NVME_DNR;
        }
    }
    nsqr = nsqr < max ? nsqr : max;
    ncqr = ncqr < max ? ncqr : max;
    ctrl->feat.num_queues = (ncqr << 16) | nsqr;
    ctrl->feat.num_queues_set = true;
    req->dw0 = ctrl->feat.num_queues;
    return NVME_SUCCESS;
}

static uint16_t set_feature(NvmeRequest *req, uint8_t fid, uint32_t v)
{
    NvmeCtrl *ctrl = req->ctrl;
    NvmeFeatures *f = &ctrl->feat;

    switch (fid) {
    case NVME_FEAT_ARBITRATION:   f->arbitration = v; break;
    case NVME_FEAT_POWER_MGMT:
        if ((v & 0x1f) != 0) {
            return NVME_INVALID_FIELD | NVME_DNR;   /* PS > NPSS */
        }
        f->power_state = v & 0xff;
        break;
    case NVME_FEAT_TEMP_THRESH:   return set_temp_thresh(ctrl, v);
    case NVME_FEAT_ERROR_RECOVERY:
        if (v & (1u << 16)) {
            return NVME_INVALID_FIELD | NVME_DNR;   /* DULBE unsupported */
        }
        f->error_recovery = v & 0xffff;
        break;
    case NVME_FEAT_VWC:           f->vwc = v & 1; break;
    case NVME_FEAT_NUM_QUEUES:    return set_num_queues(req);
    case NVME_FEAT_IRQ_COALESCE:  f->irq_coalesce = v & 0xffff; break;
    case NVME_FEAT_IRQ_CONFIG: {
        uint16_t iv = v & 0xffff;
        if (iv >= nvme_msix_nr_vectors(ctrl)) {
            return NVME_INVALID_FIELD | NVME_DNR;
        }
        f->irq_cd[iv] = (v >> 16) & 1;
        break;
    }
    case NVME_FEAT_WRITE_ATOMIC:  f->write_atomic = v & 1; break;
    case NVME_FEAT_ASYNC_EVENT:
        f->async_config = v & (NVME_AEC_SMART_MASK | NVME_AEC_NS_ATTR);
        break;
    case NVME_FEAT_TIMESTAMP:     return set_timestamp(req);
    case NVME_FEAT_KEEP_ALIVE:
        /* Rounded up to the KAS granularity (5.21.1.15). */
        f->kato = (v + NVME_KAS_MS - 1) / NVME_KAS_MS * NVME_KAS_MS;
        if (f->kato) {
            ctrl->uses |= NVME_USES_KEEP_ALIVE;
        }
        nvme_keepalive_arm(ctrl);
        break;
    default:
        return NVME_INVALID_FIELD | NVME_DNR;
    }
    return NVME_SUCCESS;
}

uint16_t nvme_set_features(NvmeRequest *req)
{
    uint8_t fid = req->cmd.cdw10 & 0xff;
    if (req->cmd.cdw10 & (1u << 31)) {
        return NVME_FEAT_NOT_SAVEABLE | NVME_DNR;
    }
    return set_feature(req, fid, req->cmd.cdw11);
}
