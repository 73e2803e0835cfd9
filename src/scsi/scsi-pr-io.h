/*
 * Persistent reservation commands over any way of reaching a LUN (a
 * scsi-block's session, or a bare libiscsi nexus in stormig-prtest): one
 * function that sends a batch of commands in one round trip, and the PR
 * IN / PR OUT helpers built on it. Failures
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

/* One command of a batch: what to send, and (filled in) what came back. */
typedef struct ScsiPrCmd {
    uint8_t cdb[SCSI_CDB_MAX];
    size_t cdb_len;
    ScsiDataDir dir;
    void *buf;                      /* len bytes of data-out or data-in */
    size_t len;
    ScsiPrResult res;
} ScsiPrCmd;

/* Most commands one batch may carry (the takeover sends at most two). */
#define SCSI_PR_BATCH_MAX 8

/* Sends the n commands of cmds together and waits for all of them: one
 * round trip to the LUN. Commands in one batch may be executed in any
 * order (SAM-5 task attribute SIMPLE), so only put together commands that do
 * not depend on each other. False (errp set) when any could not be
 * delivered; a SCSI error is a true return with that command's res
 * filled. */
typedef bool ScsiPrBatchFn(void *opaque, ScsiPrCmd *cmds, size_t n,
                           Error **errp);

typedef struct ScsiPrIo {
    ScsiPrBatchFn *fn;
    void *opaque;
    const char *who;                /* prefix of messages, e.g. a device id */
    unsigned *round_trips;          /* +1 per batch sent (NULL: not counted) */
} ScsiPrIo;

/* Runs a batch of n (1..SCSI_PR_BATCH_MAX) commands, sending again, as
 * one more batch, just those that got a UNIT ATTENTION, a few times (a
 * new nexus, or one whose registration was just preempted, reports one
 * first; SAM-5 5.14). */
bool scsi_pr_io_batch(const ScsiPrIo *io, ScsiPrCmd *cmds, size_t n,
                      Error **errp);

/* scsi_pr_io_batch with a single command. */
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
/* READ KEYS and READ RESERVATION in one round trip: both are PR IN reads,
 * which change nothing (SPC-4 6.14.1), so they may be in flight
 * together. Each result is the LUN's state at some moment of the round
 * trip. */
bool scsi_pr_io_read_keys_and_reservation(const ScsiPrIo *io,
                                          ScsiPrKeys *keys,
                                          ScsiPrReservation *r, Error **errp);
/* READ KEYS, READ RESERVATION and READ FULL STATUS in one round trip
 * (all PR IN reads). READ FULL STATUS is optional (SPC-4 6.14.5):
 * *supported is false, and the call still succeeds, when the LUN refuses
 * it with ILLEGAL REQUEST; else fs gets up to max entries (*n). */
bool scsi_pr_io_read_with_full_status(const ScsiPrIo *io, ScsiPrKeys *keys,
                                      ScsiPrReservation *r,
                                      ScsiPrFullStatus *fs, size_t max,
                                      size_t *n, bool *supported,
                                      Error **errp);
bool scsi_pr_io_report_caps(const ScsiPrIo *io, ScsiPrCaps *caps,
                            Error **errp);
/* READ FULL STATUS is optional (SPC-4 6.14.5): *supported is false (and
 * the call succeeds) when the LUN refuses it with ILLEGAL REQUEST. */
bool scsi_pr_io_full_status(const ScsiPrIo *io, ScsiPrFullStatus *out,
                            size_t max, size_t *n, bool *supported,
                            Error **errp);

#endif
