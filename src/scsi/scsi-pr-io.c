/* Persistent reservation commands over a ScsiPrIo (see scsi-pr-io.h). */
#include "scsi/scsi-pr-io.h"

#include <stdio.h>
#include <string.h>

#define UA_RETRIES 4
#define PR_IN_BUF 4096

const char *scsi_pr_status_name(uint8_t status)
{
    switch (status) {
    case SAM_STAT_GOOD:
        return "GOOD";
    case SAM_STAT_CHECK_CONDITION:
        return "CHECK CONDITION";
    case SAM_STAT_BUSY:
        return "BUSY";
    case SAM_STAT_RESERVATION_CONFLICT:
        return "RESERVATION CONFLICT";
    case SAM_STAT_TASK_SET_FULL:
        return "TASK SET FULL";
    case SAM_STAT_TASK_ABORTED:
        return "TASK ABORTED";
    default:
        return "?";
    }
}

void scsi_pr_result_describe(const ScsiPrResult *res, char *buf,
                             size_t size)
{
    ScsiSense s;
    int n = snprintf(buf, size, "status %s (%02xh)",
                     scsi_pr_status_name(res->status), res->status);
    if (res->status != SAM_STAT_CHECK_CONDITION || n < 0 ||
        (size_t)n >= size) {
        return;
    }
    if (scsi_sense_parse(res->sense, res->sense_len, &s)) {
        n += snprintf(buf + n, size - (size_t)n,
                      ", sense key %Xh ASC %02Xh ASCQ %02Xh", s.key, s.asc,
                      s.ascq);
    }
    if ((size_t)n < size) {
        n += snprintf(buf + n, size - (size_t)n, ", sense bytes");
    }
    for (uint32_t i = 0; i < res->sense_len && i < 18 && (size_t)n < size;
         i++) {
        n += snprintf(buf + n, size - (size_t)n, " %02x", res->sense[i]);
    }
}

static bool is_unit_attention(const ScsiPrResult *res)
{
    ScsiSense s;
    return res->status == SAM_STAT_CHECK_CONDITION &&
           scsi_sense_parse(res->sense, res->sense_len, &s) &&
           s.key == SCSI_SENSE_KEY_UNIT_ATTENTION;
}

bool scsi_pr_io_command(const ScsiPrIo *io, const uint8_t *cdb,
                        size_t cdb_len, ScsiDataDir dir, void *buf,
                        size_t len, ScsiPrResult *res, Error **errp)
{
    for (int i = 0; i < UA_RETRIES; i++) {
        memset(res, 0, sizeof(*res));
        if (!io->fn(io->opaque, cdb, cdb_len, dir, buf, len, res, errp)) {
            return false;
        }
        if (!is_unit_attention(res)) {
            break;
        }
    }
    return true;
}

/* errp gets "<who>: <what> failed: <status and sense>". */
static void set_scsi_error(const ScsiPrIo *io, const char *what,
                           const ScsiPrResult *res, Error **errp)
{
    char desc[160];
    scsi_pr_result_describe(res, desc, sizeof(desc));
    error_setg(errp, "%s: %s failed: %s", io->who, what, desc);
}

bool scsi_pr_io_out(const ScsiPrIo *io, uint8_t sa, uint8_t type,
                    uint64_t res_key, uint64_t sa_key, uint8_t *status,
                    Error **errp)
{
    uint8_t cdb[SCSI_PR_OUT_CDB_LEN], param[SCSI_PR_OUT_PARAM_LEN];
    ScsiPrResult res;
    char what[96];

    scsi_pr_out_encode(sa, type, res_key, sa_key, cdb, param);
    snprintf(what, sizeof(what), "PERSISTENT RESERVE OUT %s",
             scsi_pr_out_sa_name(sa));
    if (!scsi_pr_io_command(io, cdb, sizeof(cdb), SCSI_DIR_TO_DEV, param,
                            sizeof(param), &res, errp)) {
        error_prepend(errp, "%s: %s: ", io->who, what);
        return false;
    }
    if (status) {
        *status = res.status;
    }
    if (res.status != SAM_STAT_GOOD) {
        set_scsi_error(io, what, &res, errp);
        return false;
    }
    return true;
}

/* PR IN into buf; false unless GOOD. */
static bool pr_in(const ScsiPrIo *io, uint8_t sa, const char *what,
                  uint8_t *buf, size_t *len, ScsiPrResult *res, Error **errp)
{
    uint8_t cdb[SCSI_PR_IN_CDB_LEN];
    scsi_pr_in_encode(sa, (uint16_t)*len, cdb);
    memset(buf, 0, *len);
    if (!scsi_pr_io_command(io, cdb, sizeof(cdb), SCSI_DIR_FROM_DEV, buf,
                            *len, res, errp)) {
        error_prepend(errp, "%s: PERSISTENT RESERVE IN %s: ", io->who, what);
        return false;
    }
    if (res->status != SAM_STAT_GOOD) {
        char full[64];
        snprintf(full, sizeof(full), "PERSISTENT RESERVE IN %s", what);
        set_scsi_error(io, full, res, errp);
        return false;
    }
    *len = res->transferred < *len ? res->transferred : *len;
    return true;
}

bool scsi_pr_io_read_keys(const ScsiPrIo *io, ScsiPrKeys *keys,
                          Error **errp)
{
    uint8_t buf[PR_IN_BUF];
    size_t len = sizeof(buf);
    ScsiPrResult res;
    return pr_in(io, SCSI_PRIN_READ_KEYS, "READ KEYS", buf, &len, &res,
                 errp) &&
           scsi_pr_keys_decode(buf, len, keys, errp);
}

bool scsi_pr_io_read_reservation(const ScsiPrIo *io, ScsiPrReservation *r,
                                 Error **errp)
{
    uint8_t buf[24];
    size_t len = sizeof(buf);
    ScsiPrResult res;
    return pr_in(io, SCSI_PRIN_READ_RESERVATION, "READ RESERVATION", buf,
                 &len, &res, errp) &&
           scsi_pr_reservation_decode(buf, len, r, errp);
}

bool scsi_pr_io_report_caps(const ScsiPrIo *io, ScsiPrCaps *caps,
                            Error **errp)
{
    uint8_t buf[8];
    size_t len = sizeof(buf);
    ScsiPrResult res;
    return pr_in(io, SCSI_PRIN_REPORT_CAPABILITIES, "REPORT CAPABILITIES",
                 buf, &len, &res, errp) &&
           scsi_pr_caps_decode(buf, len, caps, errp);
}

bool scsi_pr_io_full_status(const ScsiPrIo *io, ScsiPrFullStatus *out,
                            size_t max, size_t *n, bool *supported,
                            Error **errp)
{
    uint8_t buf[PR_IN_BUF];
    size_t len = sizeof(buf);
    ScsiPrResult res;
    ScsiSense s;
    Error *local = NULL;

    *n = 0;
    *supported = true;
    if (pr_in(io, SCSI_PRIN_READ_FULL_STATUS, "READ FULL STATUS", buf, &len,
              &res, &local)) {
        return scsi_pr_full_status_decode(buf, len, out, max, n, errp);
    }
    if (res.status == SAM_STAT_CHECK_CONDITION &&
        scsi_sense_parse(res.sense, res.sense_len, &s) &&
        s.key == SCSI_SENSE_KEY_ILLEGAL_REQUEST) {
        /* SPC-4 6.14.1: an unsupported service action. */
        *supported = false;
        error_free(local);
        return true;
    }
    error_propagate(errp, local);
    return false;
}
