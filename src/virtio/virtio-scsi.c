/* virtio-scsi request and response framing (virtio 1.2 section 5.6.6). */
#include "virtio/virtio-scsi.h"
#include "virtio/virtqueue.h"

#include <endian.h>
#include <string.h>

static uint32_t get_le32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return le32toh(v);
}

static uint64_t get_le64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return le64toh(v);
}

static void put_le32(uint8_t *p, uint32_t v)
{
    v = htole32(v);
    memcpy(p, &v, 4);
}

static void put_le16(uint8_t *p, uint16_t v)
{
    v = htole16(v);
    memcpy(p, &v, 2);
}

VirtioScsiLunStatus virtio_scsi_lun_decode(const uint8_t lun[8],
                                           uint8_t *target, uint16_t *lun_id)
{
    if (lun[0] != 1) {
        return VIRTIO_SCSI_LUN_BAD_TARGET;
    }
    for (int i = 4; i < 8; i++) {
        if (lun[i]) {
            return VIRTIO_SCSI_LUN_BAD_FORMAT;
        }
    }
    *target = lun[1];
    uint8_t method = lun[2] >> 6;
    if (method == 1) {              /* flat space addressing (SAM-5) */
        *lun_id = (uint16_t)(((lun[2] & 0x3f) << 8) | lun[3]);
    } else if (method == 0 && lun[2] == 0) {    /* peripheral, bus 0 */
        *lun_id = lun[3];
    } else {
        return VIRTIO_SCSI_LUN_BAD_FORMAT;
    }
    return VIRTIO_SCSI_LUN_OK;
}

void virtio_scsi_lun_encode(uint8_t lun[8], uint8_t target, uint16_t lun_id)
{
    memset(lun, 0, 8);
    lun[0] = 1;
    lun[1] = target;
    if (lun_id < 256) {
        lun[3] = (uint8_t)lun_id;
    } else {
        lun[2] = (uint8_t)(0x40 | ((lun_id >> 8) & 0x3f));
        lun[3] = (uint8_t)lun_id;
    }
}

VirtioScsiParse virtio_scsi_parse_cmd(const struct iovec *out, unsigned out_n,
                                      const struct iovec *in, unsigned in_n,
                                      uint32_t cdb_size, uint32_t sense_size,
                                      VirtioScsiCmdReq *req, size_t *hdr_len,
                                      size_t *resp_len)
{
    uint8_t buf[VIRTIO_SCSI_CMD_REQ_FIXED + VIRTIO_SCSI_CDB_MAX];
    if (cdb_size > VIRTIO_SCSI_CDB_MAX) {
        cdb_size = VIRTIO_SCSI_CDB_MAX;
    }
    if (sense_size > VIRTIO_SCSI_SENSE_MAX) {
        sense_size = VIRTIO_SCSI_SENSE_MAX;
    }
    size_t need = VIRTIO_SCSI_CMD_REQ_FIXED + cdb_size;
    *resp_len = VIRTIO_SCSI_CMD_RESP_FIXED + sense_size;
    /* 5.6.6.1: the writable part starts with the response. */
    if (iov_size(in, in_n) < *resp_len) {
        return VIRTIO_SCSI_PARSE_SHORT_RESP;
    }
    if (iov_to_buf(out, out_n, 0, buf, need) < need) {
        return VIRTIO_SCSI_PARSE_SHORT_REQ;
    }
    memcpy(req->lun, buf, 8);
    req->tag = get_le64(buf + 8);
    req->task_attr = buf[16];
    req->prio = buf[17];
    req->crn = buf[18];
    req->cdb_len = cdb_size;
    memcpy(req->cdb, buf + VIRTIO_SCSI_CMD_REQ_FIXED, cdb_size);
    *hdr_len = need;
    return VIRTIO_SCSI_PARSE_OK;
}

size_t virtio_scsi_write_cmd_resp(const struct iovec *in, unsigned in_n,
                                  uint32_t sense_size,
                                  const VirtioScsiCmdResp *resp)
{
    uint8_t buf[VIRTIO_SCSI_CMD_RESP_FIXED + VIRTIO_SCSI_SENSE_MAX];
    if (sense_size > VIRTIO_SCSI_SENSE_MAX) {
        sense_size = VIRTIO_SCSI_SENSE_MAX;
    }
    uint32_t sense_len = resp->sense_len < sense_size ? resp->sense_len
                                                      : sense_size;
    put_le32(buf, sense_len);
    put_le32(buf + 4, resp->resid);
    put_le16(buf + 8, resp->status_qualifier);
    buf[10] = resp->status;
    buf[11] = resp->response;
    memset(buf + VIRTIO_SCSI_CMD_RESP_FIXED, 0, sense_size);
    memcpy(buf + VIRTIO_SCSI_CMD_RESP_FIXED, resp->sense, sense_len);
    return iov_from_buf(in, in_n, 0, buf,
                        VIRTIO_SCSI_CMD_RESP_FIXED + sense_size);
}

VirtioScsiParse virtio_scsi_parse_ctrl(const struct iovec *out, unsigned out_n,
                                       size_t in_size, VirtioScsiCtrlReq *req)
{
    uint8_t buf[VIRTIO_SCSI_TMF_REQ_SIZE];
    memset(req, 0, sizeof(*req));
    if (iov_to_buf(out, out_n, 0, buf, 4) < 4) {
        return VIRTIO_SCSI_PARSE_SHORT_REQ;
    }
    req->type = get_le32(buf);
    switch (req->type) {
    case VIRTIO_SCSI_T_TMF:
        /* 5.6.6.2: type, subtype, lun[8], id; response: u8 response. */
        if (iov_to_buf(out, out_n, 0, buf, VIRTIO_SCSI_TMF_REQ_SIZE) <
            VIRTIO_SCSI_TMF_REQ_SIZE) {
            return VIRTIO_SCSI_PARSE_SHORT_REQ;
        }
        if (in_size < VIRTIO_SCSI_TMF_RESP_SIZE) {
            return VIRTIO_SCSI_PARSE_SHORT_RESP;
        }
        req->subtype = get_le32(buf + 4);
        memcpy(req->lun, buf + 8, 8);
        req->tag = get_le64(buf + 16);
        return VIRTIO_SCSI_PARSE_OK;
    case VIRTIO_SCSI_T_AN_QUERY:
    case VIRTIO_SCSI_T_AN_SUBSCRIBE:
        /* 5.6.6.2.1: type, lun[8], event_requested; response:
         * event_actual, response. */
        if (iov_to_buf(out, out_n, 0, buf, VIRTIO_SCSI_AN_REQ_SIZE) <
            VIRTIO_SCSI_AN_REQ_SIZE) {
            return VIRTIO_SCSI_PARSE_SHORT_REQ;
        }
        if (in_size < VIRTIO_SCSI_AN_RESP_SIZE) {
            return VIRTIO_SCSI_PARSE_SHORT_RESP;
        }
        memcpy(req->lun, buf + 4, 8);
        req->event_requested = get_le32(buf + 12);
        return VIRTIO_SCSI_PARSE_OK;
    default:
        return VIRTIO_SCSI_PARSE_BAD_TYPE;
    }
}

size_t virtio_scsi_write_tmf_resp(const struct iovec *in, unsigned in_n,
                                  uint8_t response)
{
    return iov_from_buf(in, in_n, 0, &response, 1);
}

size_t virtio_scsi_write_an_resp(const struct iovec *in, unsigned in_n,
                                 uint32_t event_actual, uint8_t response)
{
    uint8_t buf[VIRTIO_SCSI_AN_RESP_SIZE];
    put_le32(buf, event_actual);
    buf[4] = response;
    return iov_from_buf(in, in_n, 0, buf, sizeof(buf));
}

size_t virtio_scsi_write_event(const struct iovec *in, unsigned in_n,
                               const VirtioScsiEvent *ev)
{
    uint8_t buf[VIRTIO_SCSI_EVENT_SIZE];
    if (iov_size(in, in_n) < sizeof(buf)) {
        return 0;
    }
    put_le32(buf, ev->event);
    memcpy(buf + 4, ev->lun, 8);
    put_le32(buf + 12, ev->reason);
    return iov_from_buf(in, in_n, 0, buf, sizeof(buf));
}

unsigned iov_slice(const struct iovec *src, unsigned n, size_t offset,
                   struct iovec *dst, unsigned max)
{
    unsigned out = 0;
    for (unsigned i = 0; i < n && out < max; i++) {
        if (offset >= src[i].iov_len) {
            offset -= src[i].iov_len;
            continue;
        }
        dst[out].iov_base = (uint8_t *)src[i].iov_base + offset;
        dst[out].iov_len = src[i].iov_len - offset;
        offset = 0;
        out++;
    }
    return out;
}

const char *virtio_scsi_tmf_name(uint32_t subtype)
{
    static const char *const names[] = {
        "ABORT_TASK", "ABORT_TASK_SET", "CLEAR_ACA", "CLEAR_TASK_SET",
        "I_T_NEXUS_RESET", "LOGICAL_UNIT_RESET", "QUERY_TASK",
        "QUERY_TASK_SET",
    };
    return subtype < sizeof(names) / sizeof(names[0]) ? names[subtype]
                                                      : "unknown";
}
