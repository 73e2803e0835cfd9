/* What the target answers itself: REPORT LUNS, and commands addressed to
 * a LUN that does not exist. */
#include "scsi/scsi.h"
#include "scsi/scsi-internal.h"
#include "util/log.h"

#include <string.h>

void scsi_bus_answer_report_luns(ScsiBus *bus, ScsiRequest *req)
{
    const uint8_t *cdb = req->cdb;
    uint32_t alloc_len = ld_be32(&cdb[6]);

    if (req->cdb_len < 12) {
        scsi_req_complete_sense(req, SENSE_INVALID_FIELD_IN_CDB);
        return;
    }
    /* SPC-4 6.33: an allocation length below 16 is an invalid field. */
    if (alloc_len < 16) {
        scsi_req_complete_sense(req, SENSE_INVALID_FIELD_IN_CDB);
        return;
    }
    ByteBuf b;
    bytebuf_init(&b);
    switch (cdb[2]) {
    case 0x00:      /* SPC-4 table 240: all LUNs but well-known ones */
    case 0x02:      /* all LUNs (we have no well-known LUNs) */
        scsi_bus_report_luns(bus, &b);
        break;
    case 0x01:      /* well-known LUNs only: none */
        bytebuf_put_be32(&b, 0);
        bytebuf_put_be32(&b, 0);
        break;
    default:
        bytebuf_free(&b);
        scsi_req_complete_sense(req, SENSE_INVALID_FIELD_IN_CDB);
        return;
    }
    if (b.failed) {
        bytebuf_free(&b);
        scsi_req_complete_sense(req, SENSE_ABORTED_COMMAND);
        return;
    }
    size_t len = b.len < alloc_len ? b.len : alloc_len;
    size_t n = scsi_req_put_data(req, b.data, len);
    bytebuf_free(&b);
    scsi_req_complete_good(req, n);
}

static void answer_inquiry(ScsiRequest *req)
{
    uint8_t d[36] = { 0 };
    uint16_t alloc_len = ld_be16(&req->cdb[3]);

    if (req->cdb[1] & 0x01) {
        /* No vital product data for a LUN that does not exist. */
        scsi_req_complete_sense(req, SENSE_LUN_NOT_SUPPORTED);
        return;
    }
    /* SPC-4 6.6.2: qualifier 011b, type 1Fh: not capable of supporting a
     * device on this LUN. */
    d[0] = 0x7f;
    d[2] = 0x06;                        /* SPC-4 */
    d[3] = 0x02;                        /* response data format */
    d[4] = sizeof(d) - 5;
    memcpy(&d[8], "STORMIG ", 8);
    memcpy(&d[16], "NO LUN          ", 16);
    memcpy(&d[32], "0.1 ", 4);
    size_t len = alloc_len < sizeof(d) ? alloc_len : sizeof(d);
    scsi_req_complete_good(req, scsi_req_put_data(req, d, len));
}

static void answer_request_sense(ScsiRequest *req)
{
    uint8_t s[SCSI_FIXED_SENSE_LEN];
    size_t alloc_len = req->cdb[4];

    /* SPC-4 6.39: sense data for an absent LUN, with status GOOD. */
    scsi_sense_build_fixed(s, sizeof(s), SENSE_LUN_NOT_SUPPORTED);
    size_t len = alloc_len < sizeof(s) ? alloc_len : sizeof(s);
    scsi_req_complete_good(req, scsi_req_put_data(req, s, len));
}

void scsi_target_answer(ScsiBus *bus, ScsiRequest *req)
{
    if (req->cdb_len == 0 || req->cdb_len > SCSI_CDB_MAX ||
        req->cdb_len < scsi_cdb_length(req->cdb[0])) {
        scsi_req_complete_sense(req, SENSE_INVALID_FIELD_IN_CDB);
        return;
    }
    switch (req->cdb[0]) {
    case SCSI_OP_REPORT_LUNS:
        scsi_bus_answer_report_luns(bus, req);
        return;
    case SCSI_OP_INQUIRY:
        answer_inquiry(req);
        return;
    case SCSI_OP_REQUEST_SENSE:
        answer_request_sense(req);
        return;
    default:
        log_ratelimited(LOG_DEBUG, "scsi: bus '%s': command %02x for an "
                        "absent LUN", scsi_bus_name(bus), req->cdb[0]);
        scsi_req_complete_sense(req, SENSE_LUN_NOT_SUPPORTED);
        return;
    }
}
