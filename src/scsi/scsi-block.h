/*
 * scsi-block: SCSI passthrough to an iSCSI LUN (libiscsi).
 *
 * CDBs and data go to the target unchanged; status, sense and residual
 * come back unchanged. When the session is lost, libiscsi's automatic
 * reconnect is held back so that nothing is replayed behind the guest's
 * back: every in-flight command completes with CHECK CONDITION, UNIT
 * ATTENTION, I_T NEXUS LOSS OCCURRED (29h/07h), commands arriving while
 * the session is down complete with BUSY, and the session is logged in
 * again (libiscsi reconnect) from the event loop. Initiators retry both.
 */
#ifndef STORMIG_SCSI_SCSI_BLOCK_H
#define STORMIG_SCSI_SCSI_BLOCK_H

#include "device/device.h"
#include "scsi/scsi.h"

typedef struct ScsiBlock ScsiBlock;

/* The scsi-block behind a device or LUN; NULL for any other type. */
ScsiBlock *scsi_block_from_device(Device *dev);
ScsiBlock *scsi_block_from_lun(ScsiLun *lun);

/*
 * Completion filter: runs on the LUN's loop for every command that got a
 * response from the target, after status/sense/residual/data-in are in
 * req and before req completes. It may inspect the CDB and the result and
 * rewrite them (e.g. snoop PERSISTENT RESERVE OUT, mask bits of REPORT
 * CAPABILITIES). One filter per LUN; NULL removes it.
 */
typedef void ScsiBlockCompletionFilter(ScsiBlock *sb, ScsiRequest *req,
                                       void *opaque);
void scsi_block_set_completion_filter(ScsiBlock *sb,
                                      ScsiBlockCompletionFilter *fn,
                                      void *opaque);

/* The result of a synchronous command. */
typedef struct ScsiBlockResult {
    uint8_t status;                 /* SAM_STAT_* */
    uint8_t sense[SCSI_SENSE_MAX];
    uint32_t sense_len;
    size_t transferred;             /* data-in bytes copied to buf */
} ScsiBlockResult;

/*
 * Runs one command on the LUN's session and waits for it (management
 * commands: PERSISTENT RESERVE IN/OUT, TEST UNIT READY, ...). Call on the
 * thread of the LUN's loop. buf holds len bytes of data-out or receives
 * up to len bytes of data-in. False (errp set) when the command could not
 * be delivered (no session, transport error); a SCSI error is a true
 * return with res->status and res->sense.
 */
bool scsi_block_sync_command(ScsiBlock *sb, const uint8_t *cdb,
                             size_t cdb_len, ScsiDataDir dir, void *buf,
                             size_t len, ScsiBlockResult *res, Error **errp);

/* One command of scsi_block_sync_commands. */
typedef struct ScsiBlockCommand {
    const uint8_t *cdb;
    size_t cdb_len;
    ScsiDataDir dir;
    void *buf;
    size_t len;
    ScsiBlockResult res;            /* filled in */
} ScsiBlockCommand;

#define SCSI_BLOCK_SYNC_MAX 8       /* commands per call */

/*
 * Submits the n commands all at once on the LUN's session and waits until
 * every one completed: one round trip for the lot. The target may run
 * them in any order. As scsi_block_sync_command otherwise; false when any
 * command could not be delivered (the others still have res filled).
 */
bool scsi_block_sync_commands(ScsiBlock *sb, ScsiBlockCommand *cmds,
                              size_t n, Error **errp);

/* Submits again a request the LUN held back (the reservation gate, see
 * scsi-pr-lun.h); on the LUN's loop. */
void scsi_block_resubmit(ScsiBlock *sb, ScsiRequest *req);

/* True while the iSCSI session is logged in. */
bool scsi_block_session_up(const ScsiBlock *sb);

#endif
