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

/* Sends the commands of cmds whose index is in idx as one batch and
 * copies their results back. */
static bool send_subset(const ScsiPrIo *io, ScsiPrCmd *cmds,
                        const size_t *idx, size_t n, Error **errp)
{
    ScsiPrCmd sub[SCSI_PR_BATCH_MAX];
    for (size_t i = 0; i < n; i++) {
        sub[i] = cmds[idx[i]];
        memset(&sub[i].res, 0, sizeof(sub[i].res));
    }
    if (io->round_trips) {
        ++*io->round_trips;
    }
    bool ok = io->fn(io->opaque, sub, n, errp);
    for (size_t i = 0; i < n; i++) {
        cmds[idx[i]].res = sub[i].res;
    }
    return ok;
}

bool scsi_pr_io_batch(const ScsiPrIo *io, ScsiPrCmd *cmds, size_t n,
                      Error **errp)
{
    size_t idx[SCSI_PR_BATCH_MAX], pending = n;

    if (n == 0 || n > SCSI_PR_BATCH_MAX) {
        error_setg(errp, "%s: a batch of %zu commands (1 to %d)", io->who, n,
                   SCSI_PR_BATCH_MAX);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (cmds[i].cdb_len == 0 || cmds[i].cdb_len > sizeof(cmds[i].cdb)) {
            error_setg(errp, "%s: bad CDB length %zu", io->who,
                       cmds[i].cdb_len);
            return false;
        }
        idx[i] = i;
    }
    for (int round = 0; round < UA_RETRIES && pending; round++) {
        if (!send_subset(io, cmds, idx, pending, errp)) {
            return false;
        }
        /* Only the commands that met a UNIT ATTENTION go again: the
         * others were executed and must not be repeated. */
        size_t again = 0;
        for (size_t i = 0; i < pending; i++) {
            if (is_unit_attention(&cmds[idx[i]].res)) {
                idx[again++] = idx[i];
            }
        }
        pending = again;
    }
    return true;
}

bool scsi_pr_io_command(const ScsiPrIo *io, const uint8_t *cdb,
                        size_t cdb_len, ScsiDataDir dir, void *buf,
                        size_t len, ScsiPrResult *res, Error **errp)
{
    ScsiPrCmd c = { .cdb_len = cdb_len, .dir = dir, .buf = buf, .len = len };
    if (cdb_len > sizeof(c.cdb)) {
        error_setg(errp, "%s: bad CDB length %zu", io->who, cdb_len);
        return false;
    }
    memcpy(c.cdb, cdb, cdb_len);
    bool ok = scsi_pr_io_batch(io, &c, 1, errp);
    *res = c.res;
    return ok;
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

/* A PR IN of sa into buf (zeroed first). */
static void pr_in_prepare(ScsiPrCmd *c, uint8_t sa, uint8_t *buf, size_t len)
{
    *c = (ScsiPrCmd){ .cdb_len = SCSI_PR_IN_CDB_LEN,
                      .dir = SCSI_DIR_FROM_DEV, .buf = buf, .len = len };
    scsi_pr_in_encode(sa, (uint16_t)len, c->cdb);
    memset(buf, 0, len);
}

/* False unless the PR IN got GOOD; *len becomes the bytes received. */
static bool pr_in_check(const ScsiPrIo *io, const ScsiPrCmd *c,
                        const char *what, size_t *len, Error **errp)
{
    if (c->res.status != SAM_STAT_GOOD) {
        char full[64];
        snprintf(full, sizeof(full), "PERSISTENT RESERVE IN %s", what);
        set_scsi_error(io, full, &c->res, errp);
        return false;
    }
    *len = c->res.transferred < c->len ? c->res.transferred : c->len;
    return true;
}

/* PR IN into buf; false unless GOOD. */
static bool pr_in(const ScsiPrIo *io, uint8_t sa, const char *what,
                  uint8_t *buf, size_t *len, ScsiPrResult *res, Error **errp)
{
    ScsiPrCmd c;
    pr_in_prepare(&c, sa, buf, *len);
    bool sent = scsi_pr_io_batch(io, &c, 1, errp);
    *res = c.res;
    if (!sent) {
        error_prepend(errp, "%s: PERSISTENT RESERVE IN %s: ", io->who, what);
        return false;
    }
    return pr_in_check(io, &c, what, len, errp);
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

bool scsi_pr_io_read_keys_and_reservation(const ScsiPrIo *io,
                                          ScsiPrKeys *keys,
                                          ScsiPrReservation *r, Error **errp)
{
    uint8_t kbuf[PR_IN_BUF], rbuf[24];
    size_t klen, rlen;
    ScsiPrCmd c[2];

    pr_in_prepare(&c[0], SCSI_PRIN_READ_KEYS, kbuf, sizeof(kbuf));
    pr_in_prepare(&c[1], SCSI_PRIN_READ_RESERVATION, rbuf, sizeof(rbuf));
    if (!scsi_pr_io_batch(io, c, 2, errp)) {
        error_prepend(errp, "%s: PERSISTENT RESERVE IN READ KEYS and READ "
                      "RESERVATION: ", io->who);
        return false;
    }
    return pr_in_check(io, &c[0], "READ KEYS", &klen, errp) &&
           pr_in_check(io, &c[1], "READ RESERVATION", &rlen, errp) &&
           scsi_pr_keys_decode(kbuf, klen, keys, errp) &&
           scsi_pr_reservation_decode(rbuf, rlen, r, errp);
}

/* SPC-4 6.14.1: a LUN without an optional service action refuses it
 * with ILLEGAL REQUEST. */
static bool refused_as_unsupported(const ScsiPrResult *res)
{
    ScsiSense s;
    return res->status == SAM_STAT_CHECK_CONDITION &&
           scsi_sense_parse(res->sense, res->sense_len, &s) &&
           s.key == SCSI_SENSE_KEY_ILLEGAL_REQUEST;
}

bool scsi_pr_io_read_with_full_status(const ScsiPrIo *io, ScsiPrKeys *keys,
                                      ScsiPrReservation *r,
                                      ScsiPrFullStatus *fs, size_t max,
                                      size_t *n, bool *supported,
                                      Error **errp)
{
    uint8_t kbuf[PR_IN_BUF], rbuf[24], fbuf[PR_IN_BUF];
    size_t klen, rlen, flen;
    ScsiPrCmd c[3];

    *n = 0;
    pr_in_prepare(&c[0], SCSI_PRIN_READ_KEYS, kbuf, sizeof(kbuf));
    pr_in_prepare(&c[1], SCSI_PRIN_READ_RESERVATION, rbuf, sizeof(rbuf));
    pr_in_prepare(&c[2], SCSI_PRIN_READ_FULL_STATUS, fbuf, sizeof(fbuf));
    if (!scsi_pr_io_batch(io, c, 3, errp)) {
        error_prepend(errp, "%s: PERSISTENT RESERVE IN READ KEYS, READ "
                      "RESERVATION and READ FULL STATUS: ", io->who);
        return false;
    }
    if (!pr_in_check(io, &c[0], "READ KEYS", &klen, errp) ||
        !pr_in_check(io, &c[1], "READ RESERVATION", &rlen, errp) ||
        !scsi_pr_keys_decode(kbuf, klen, keys, errp) ||
        !scsi_pr_reservation_decode(rbuf, rlen, r, errp)) {
        return false;
    }
    *supported = !refused_as_unsupported(&c[2].res);
    return !*supported ||
           (pr_in_check(io, &c[2], "READ FULL STATUS", &flen, errp) &&
            scsi_pr_full_status_decode(fbuf, flen, fs, max, n, errp));
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
