/*
 * Persistent reservation commands over any way of reaching a LUN (a
 * scsi-block's session, or a bare libiscsi nexus in stormig-prtest): one
 * command function, and the PR IN / PR OUT helpers built on it. Failures
 * carry the SCSI status and the sense key, ASC/ASCQ and sense bytes.
 */
#ifndef STORMIG_SCSI_SCSI_PR_IO_H
#define STORMIG_SCSI_SCSI_PR_IO_H

#include "scsi/scsi-pr.h"

typedef struct ScsiPrResult {
    uint8_t status;                 /* SAM_STAT_* */
    uint8_t sense[SCSI_SENSE_MAX];
    uint32_t sense_len;
    size_t transferred;             /* data-in bytes */
} ScsiPrResult;

/* Runs one command and waits for it. False (errp set) only when it could
 * not be delivered; a SCSI error is a true return with res filled. */
typedef bool ScsiPrCommandFn(void *opaque, const uint8_t *cdb,
                             size_t cdb_len, ScsiDataDir dir, void *buf,
                             size_t len, ScsiPrResult *res, Error **errp);

typedef struct ScsiPrIo {
    ScsiPrCommandFn *fn;
    void *opaque;
    const char *who;                /* prefix of messages, e.g. a device id */
} ScsiPrIo;

/* Runs a command, retrying a few UNIT ATTENTIONs (a new nexus, or one
 * whose registration was just preempted, reports one first; SAM-5 5.14). */
bool scsi_pr_io_command(const ScsiPrIo *io, const uint8_t *cdb,
                        size_t cdb_len, ScsiDataDir dir, void *buf,
                        size_t len, ScsiPrResult *res, Error **errp);

/* "status RESERVATION CONFLICT (18h)" or "status CHECK CONDITION (02h),
 * sense key 5h ASC 24h ASCQ 00h, sense bytes 70 00 05 ..." into buf. */
void scsi_pr_result_describe(const ScsiPrResult *res, char *buf,
                             size_t size);
const char *scsi_pr_status_name(uint8_t status);

/* PERSISTENT RESERVE OUT with a basic parameter list. Returns false with
 * errp set unless the LUN answered GOOD; *status (may be NULL) gets the
 * status even then, so callers can tell RESERVATION CONFLICT apart. */
bool scsi_pr_io_out(const ScsiPrIo *io, uint8_t sa, uint8_t type,
                    uint64_t res_key, uint64_t sa_key, uint8_t *status,
                    Error **errp);

bool scsi_pr_io_read_keys(const ScsiPrIo *io, ScsiPrKeys *keys,
                          Error **errp);
bool scsi_pr_io_read_reservation(const ScsiPrIo *io, ScsiPrReservation *r,
                                 Error **errp);
bool scsi_pr_io_report_caps(const ScsiPrIo *io, ScsiPrCaps *caps,
                            Error **errp);
/* READ FULL STATUS is optional (SPC-4 6.14.5): *supported is false (and
 * the call succeeds) when the LUN refuses it with ILLEGAL REQUEST. */
bool scsi_pr_io_full_status(const ScsiPrIo *io, ScsiPrFullStatus *out,
                            size_t max, size_t *n, bool *supported,
                            Error **errp);

#endif
