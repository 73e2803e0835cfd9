/* SCSI requests: result helpers, data copies, sense data, CDB lengths. */
#include "scsi/scsi.h"
#include "scsi/scsi-internal.h"
#include "util/log.h"

#include <string.h>

size_t scsi_sense_build_fixed(uint8_t *buf, size_t len, ScsiSense sense)
{
    uint8_t s[SCSI_FIXED_SENSE_LEN] = { 0 };
    size_t n = len < sizeof(s) ? len : sizeof(s);

    /* SPC-4 4.5.3: current error, fixed format, additional length 10. */
    s[0] = 0x70;
    s[2] = sense.key & 0x0f;
    s[7] = SCSI_FIXED_SENSE_LEN - 8;
    s[12] = sense.asc;
    s[13] = sense.ascq;
    memcpy(buf, s, n);
    return n;
}

size_t scsi_sense_build_fixed_info(uint8_t *buf, size_t len, ScsiSense sense,
                                   uint32_t info)
{
    uint8_t s[SCSI_FIXED_SENSE_LEN];
    size_t n = len < sizeof(s) ? len : sizeof(s);

    scsi_sense_build_fixed(s, sizeof(s), sense);
    /* SPC-4 4.5.3: VALID says the INFORMATION field is defined. */
    s[0] |= 0x80;
    st_be32(&s[3], info);
    memcpy(buf, s, n);
    return n;
}

bool scsi_sense_parse(const uint8_t *buf, size_t len, ScsiSense *out)
{
    if (len < 1) {
        return false;
    }
    switch (buf[0] & 0x7f) {
    case 0x70:
    case 0x71:
        /* SPC-4 4.5.3: key in byte 2, ASC/ASCQ in bytes 12/13. */
        if (len < 14) {
            return false;
        }
        *out = SCSI_SENSE(buf[2] & 0x0f, buf[12], buf[13]);
        return true;
    case 0x72:
    case 0x73:
        /* SPC-4 4.5.2: key, ASC, ASCQ in bytes 1..3. */
        if (len < 4) {
            return false;
        }
        *out = SCSI_SENSE(buf[1] & 0x0f, buf[2], buf[3]);
        return true;
    default:
        return false;
    }
}

size_t scsi_cdb_length(uint8_t opcode)
{
    /* SPC-4 4.2.5.1: the group code (top 3 bits) fixes the length. */
    switch (opcode >> 5) {
    case 0:
        return 6;
    case 1:
    case 2:
        return 10;
    case 4:
        return 16;
    case 5:
        return 12;
    default:
        return 0;   /* 3: variable length / reserved; 6, 7: vendor */
    }
}

void scsi_req_init(ScsiRequest *req)
{
    req->response = SCSI_RESP_OK;
    req->status = SAM_STAT_GOOD;
    req->sense_len = 0;
    req->residual = req->data_len;
    req->lun = NULL;
    req->next_in_flight = NULL;
    req->cancelled = false;
    req->lun_priv = NULL;
}

void scsi_req_set_sense(ScsiRequest *req, ScsiSense sense)
{
    req->status = SAM_STAT_CHECK_CONDITION;
    req->sense_len = (uint32_t)scsi_sense_build_fixed(req->sense,
                                                      sizeof(req->sense),
                                                      sense);
}

size_t scsi_iov_to_buf(const struct iovec *iov, int cnt, size_t offset,
                       void *buf, size_t len)
{
    size_t done = 0;
    for (int i = 0; i < cnt && done < len; i++) {
        if (offset >= iov[i].iov_len) {
            offset -= iov[i].iov_len;
            continue;
        }
        size_t n = iov[i].iov_len - offset;
        if (n > len - done) {
            n = len - done;
        }
        memcpy((uint8_t *)buf + done, (uint8_t *)iov[i].iov_base + offset, n);
        done += n;
        offset = 0;
    }
    return done;
}

size_t scsi_iov_from_buf(const struct iovec *iov, int cnt, size_t offset,
                         const void *buf, size_t len)
{
    size_t done = 0;
    for (int i = 0; i < cnt && done < len; i++) {
        if (offset >= iov[i].iov_len) {
            offset -= iov[i].iov_len;
            continue;
        }
        size_t n = iov[i].iov_len - offset;
        if (n > len - done) {
            n = len - done;
        }
        memcpy((uint8_t *)iov[i].iov_base + offset, (const uint8_t *)buf + done,
               n);
        done += n;
        offset = 0;
    }
    return done;
}

int scsi_iov_slice(const struct iovec *src, int src_cnt, size_t offset,
                   size_t len, struct iovec *dst, int dst_max)
{
    int n = 0;
    for (int i = 0; i < src_cnt && len > 0; i++) {
        if (offset >= src[i].iov_len) {
            offset -= src[i].iov_len;
            continue;
        }
        if (n == dst_max) {
            return -1;
        }
        size_t take = src[i].iov_len - offset;
        if (take > len) {
            take = len;
        }
        dst[n].iov_base = (uint8_t *)src[i].iov_base + offset;
        dst[n].iov_len = take;
        n++;
        len -= take;
        offset = 0;
    }
    return len == 0 ? n : -1;
}

size_t scsi_req_put_data(ScsiRequest *req, const void *buf, size_t len)
{
    size_t n = len < req->data_len ? len : req->data_len;
    if (req->dir != SCSI_DIR_FROM_DEV) {
        n = 0;
    }
    n = scsi_iov_from_buf(req->iov, req->iovcnt, 0, buf, n);
    req->residual = req->data_len - n;
    return n;
}

size_t scsi_req_get_data(ScsiRequest *req, void *buf, size_t len)
{
    size_t n = len < req->data_len ? len : req->data_len;
    if (req->dir != SCSI_DIR_TO_DEV) {
        return 0;
    }
    return scsi_iov_to_buf(req->iov, req->iovcnt, 0, buf, n);
}

void scsi_req_complete_good(ScsiRequest *req, size_t transferred)
{
    req->status = SAM_STAT_GOOD;
    req->sense_len = 0;
    req->residual = transferred < req->data_len ?
                    req->data_len - transferred : 0;
    scsi_req_complete(req);
}

void scsi_req_complete_sense(ScsiRequest *req, ScsiSense sense)
{
    scsi_req_set_sense(req, sense);
    req->residual = req->data_len;
    scsi_req_complete(req);
}

void scsi_req_complete_sense_info(ScsiRequest *req, ScsiSense sense,
                                  uint32_t info)
{
    req->status = SAM_STAT_CHECK_CONDITION;
    req->sense_len = (uint32_t)scsi_sense_build_fixed_info(
        req->sense, sizeof(req->sense), sense, info);
    req->residual = req->data_len;
    scsi_req_complete(req);
}

void scsi_req_submit(ScsiLun *lun, ScsiRequest *req)
{
    scsi_req_init(req);
    if (!lun) {
        req->response = SCSI_RESP_BAD_TARGET;
        req->complete(req, req->opaque);
        return;
    }
    scsi_lun_track(lun, req);
    if (req->cdb_len == 0 || req->cdb_len > SCSI_CDB_MAX) {
        log_ratelimited(LOG_WARN, "scsi: bad CDB length %u", req->cdb_len);
        scsi_req_complete_sense(req, SENSE_INVALID_FIELD_IN_CDB);
        return;
    }
    if (req->dir == SCSI_DIR_NONE) {
        req->data_len = 0;
        req->residual = 0;
    }
    lun->ops->submit(lun, req);
}

void scsi_req_complete(ScsiRequest *req)
{
    ScsiLun *lun = req->lun;

    if (req->cancelled) {
        /* SAM-5 7.2: an aborted task sends no status of its own. */
        req->response = SCSI_RESP_ABORTED;
    }
    if (lun) {
        scsi_lun_untrack(lun, req);
    }
    req->complete(req, req->opaque);
    if (lun && lun->bus) {
        scsi_bus_tmf_progress(lun->bus);
    }
}
