/*
 * virtio-scsi framing (virtio 1.2 section 5.6): the little-endian headers
 * carried on the control, event and request queues, parsed from and
 * written to a chain's iovecs. No SCSI semantics here; the controller
 * device hands CDBs to the SCSI layer.
 */
#ifndef STORMIG_VIRTIO_VIRTIO_SCSI_H
#define STORMIG_VIRTIO_VIRTIO_SCSI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* 5.6.3 feature bits */
#define VIRTIO_SCSI_F_INOUT     0
#define VIRTIO_SCSI_F_HOTPLUG   1
#define VIRTIO_SCSI_F_CHANGE    2
#define VIRTIO_SCSI_F_T10_PI    3

/* 5.6.2 virtqueues */
#define VIRTIO_SCSI_VQ_CONTROL  0
#define VIRTIO_SCSI_VQ_EVENT    1
#define VIRTIO_SCSI_VQ_REQUEST0 2

/* 5.6.4 config defaults (QEMU's vhost-user-scsi never changes them). */
#define VIRTIO_SCSI_CDB_DEFAULT   32
#define VIRTIO_SCSI_SENSE_DEFAULT 96
#define VIRTIO_SCSI_CDB_MAX       256
#define VIRTIO_SCSI_SENSE_MAX     256

/* 5.6.6.1 response codes */
enum {
    VIRTIO_SCSI_S_OK = 0,
    VIRTIO_SCSI_S_OVERRUN = 1,
    VIRTIO_SCSI_S_ABORTED = 2,
    VIRTIO_SCSI_S_BAD_TARGET = 3,
    VIRTIO_SCSI_S_RESET = 4,
    VIRTIO_SCSI_S_BUSY = 5,
    VIRTIO_SCSI_S_TRANSPORT_FAILURE = 6,
    VIRTIO_SCSI_S_TARGET_FAILURE = 7,
    VIRTIO_SCSI_S_NEXUS_FAILURE = 8,
    VIRTIO_SCSI_S_FAILURE = 9,
    VIRTIO_SCSI_S_FUNCTION_SUCCEEDED = 10,
    VIRTIO_SCSI_S_FUNCTION_REJECTED = 11,
    VIRTIO_SCSI_S_INCORRECT_LUN = 12,
    VIRTIO_SCSI_S_FUNCTION_COMPLETE = 0,    /* TMF alias of OK */
};

/* 5.6.6.1 task attributes */
enum {
    VIRTIO_SCSI_S_SIMPLE = 0,
    VIRTIO_SCSI_S_ORDERED = 1,
    VIRTIO_SCSI_S_HEAD = 2,
    VIRTIO_SCSI_S_ACA = 3,
};

/* 5.6.6.2 control queue request types and TMF subtypes */
enum {
    VIRTIO_SCSI_T_TMF = 0,
    VIRTIO_SCSI_T_AN_QUERY = 1,
    VIRTIO_SCSI_T_AN_SUBSCRIBE = 2,
};
enum {
    VIRTIO_SCSI_T_TMF_ABORT_TASK = 0,
    VIRTIO_SCSI_T_TMF_ABORT_TASK_SET = 1,
    VIRTIO_SCSI_T_TMF_CLEAR_ACA = 2,
    VIRTIO_SCSI_T_TMF_CLEAR_TASK_SET = 3,
    VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET = 4,
    VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET = 5,
    VIRTIO_SCSI_T_TMF_QUERY_TASK = 6,
    VIRTIO_SCSI_T_TMF_QUERY_TASK_SET = 7,
};

/* 5.6.6.3 events */
#define VIRTIO_SCSI_T_NO_EVENT          0
#define VIRTIO_SCSI_T_TRANSPORT_RESET   1
#define VIRTIO_SCSI_T_ASYNC_NOTIFY      2
#define VIRTIO_SCSI_T_PARAM_CHANGE      3
#define VIRTIO_SCSI_T_EVENTS_MISSED     0x80000000u
#define VIRTIO_SCSI_EVT_RESET_HARD      0
#define VIRTIO_SCSI_EVT_RESET_RESCAN    1
#define VIRTIO_SCSI_EVT_RESET_REMOVED   2

/* Wire sizes. */
#define VIRTIO_SCSI_CMD_REQ_FIXED   19      /* lun, id, attr, prio, crn */
#define VIRTIO_SCSI_CMD_RESP_FIXED  12      /* sense_len .. response */
#define VIRTIO_SCSI_TMF_REQ_SIZE    24
#define VIRTIO_SCSI_TMF_RESP_SIZE   1
#define VIRTIO_SCSI_AN_REQ_SIZE     16
#define VIRTIO_SCSI_AN_RESP_SIZE    5
#define VIRTIO_SCSI_EVENT_SIZE      16

typedef enum VirtioScsiParse {
    VIRTIO_SCSI_PARSE_OK,
    VIRTIO_SCSI_PARSE_SHORT_REQ,    /* readable part shorter than header */
    VIRTIO_SCSI_PARSE_SHORT_RESP,   /* writable part shorter than response */
    VIRTIO_SCSI_PARSE_BAD_TYPE,     /* control request of unknown type */
} VirtioScsiParse;

typedef struct VirtioScsiCmdReq {
    uint8_t lun[8];
    uint64_t tag;
    uint8_t task_attr;
    uint8_t prio;
    uint8_t crn;
    uint32_t cdb_len;               /* = the negotiated cdb_size */
    uint8_t cdb[VIRTIO_SCSI_CDB_MAX];
} VirtioScsiCmdReq;

typedef struct VirtioScsiCmdResp {
    uint32_t sense_len;             /* bytes of sense that are valid */
    uint32_t resid;
    uint16_t status_qualifier;
    uint8_t status;                 /* SCSI status byte */
    uint8_t response;               /* VIRTIO_SCSI_S_* */
    uint8_t sense[VIRTIO_SCSI_SENSE_MAX];
} VirtioScsiCmdResp;

typedef struct VirtioScsiCtrlReq {
    uint32_t type;                  /* VIRTIO_SCSI_T_TMF / AN_* */
    uint32_t subtype;               /* TMF only */
    uint8_t lun[8];
    uint64_t tag;                   /* TMF: the task to act on */
    uint32_t event_requested;       /* AN only */
} VirtioScsiCtrlReq;

typedef struct VirtioScsiEvent {
    uint32_t event;                 /* may include EVENTS_MISSED */
    uint8_t lun[8];
    uint32_t reason;
} VirtioScsiEvent;

/* Single-level LUN addressing of 5.6.6.1: lun[0] = 1, lun[1] = target,
 * lun[2..3] = 0x4000 | LUN (flat space) or LUN < 256 (peripheral),
 * lun[4..7] = 0. */
typedef enum VirtioScsiLunStatus {
    VIRTIO_SCSI_LUN_OK,
    VIRTIO_SCSI_LUN_BAD_TARGET,     /* lun[0] != 1 */
    VIRTIO_SCSI_LUN_BAD_FORMAT,     /* not single level */
} VirtioScsiLunStatus;

VirtioScsiLunStatus virtio_scsi_lun_decode(const uint8_t lun[8],
                                           uint8_t *target, uint16_t *lun_id);
void virtio_scsi_lun_encode(uint8_t lun[8], uint8_t target, uint16_t lun_id);

/* Request queue. cdb_size and sense_size are the device config values
 * (1..256 each). On success *hdr_len is the request header size; data-out
 * follows it in the readable iovecs, data-in follows *resp_len bytes of
 * response in the writable ones. */
VirtioScsiParse virtio_scsi_parse_cmd(const struct iovec *out, unsigned out_n,
                                      const struct iovec *in, unsigned in_n,
                                      uint32_t cdb_size, uint32_t sense_size,
                                      VirtioScsiCmdReq *req, size_t *hdr_len,
                                      size_t *resp_len);
/* Writes the response header and sense_size sense bytes (sense_len
 * clamped to sense_size). Returns bytes written. */
size_t virtio_scsi_write_cmd_resp(const struct iovec *in, unsigned in_n,
                                  uint32_t sense_size,
                                  const VirtioScsiCmdResp *resp);

/* Control queue: parses the request and checks the writable part can
 * hold its response. */
VirtioScsiParse virtio_scsi_parse_ctrl(const struct iovec *out, unsigned out_n,
                                       size_t in_size, VirtioScsiCtrlReq *req);
/* Writes a TMF response (1 byte) or an AN response (event_actual,
 * response). Returns bytes written. */
size_t virtio_scsi_write_tmf_resp(const struct iovec *in, unsigned in_n,
                                  uint8_t response);
size_t virtio_scsi_write_an_resp(const struct iovec *in, unsigned in_n,
                                 uint32_t event_actual, uint8_t response);

/* Event queue: writes one event into a driver buffer; returns bytes
 * written, 0 when the buffer is too small (5.6.6.3: 16 bytes). */
size_t virtio_scsi_write_event(const struct iovec *in, unsigned in_n,
                               const VirtioScsiEvent *ev);

/* Copies into dst the part of src after 'offset' bytes; returns the count
 * of iovecs written (at most max). */
unsigned iov_slice(const struct iovec *src, unsigned n, size_t offset,
                   struct iovec *dst, unsigned max);

const char *virtio_scsi_tmf_name(uint32_t subtype);

#endif
