/*
 * Persistent reservations that move with the VM, for one scsi-block LUN
 * (property migrate-pr; see docs/migrate-pr.md).
 *
 *  - Tracking: every guest PERSISTENT RESERVE OUT that completes with GOOD
 *    updates the key and reservation type this I_T nexus holds
 *    (scsi_pr_snoop); a PREEMPT is followed by READ RESERVATION. REGISTER
 *    AND MOVE, SPEC_I_PT and ALL_TG_PT are refused to the guest, and
 *    REPORT CAPABILITIES replies have SIP_C and ATC_C cleared.
 *  - Handoff: the state travels in the scsi-block section (subsection
 *    "scsi-block/pr", only when a key is registered). Activation on the
 *    destination verifies the LUN against it (READ KEYS, READ
 *    RESERVATION), registers the key on its own nexus and PREEMPTs the
 *    source with the same key and type (one batch); the outcome is read
 *    back on the LUN's loop once the device is ready. The source,
 *    re-activated after a failed migration, does the same to take it
 *    back (rollback).
 *  - Guest requests are held from inactivation (source) or state load
 *    (destination) until activation succeeded, so no guest I/O reaches the
 *    LUN before the reservation is in place.
 *  - The state is journaled (scsi-pr-journal.h) and checked at start-up.
 *
 * Threads: scsi_pr_gate and scsi_pr_filter run on the LUN's loop (the
 * controller's I/O thread); everything else on the main loop. A mutex
 * guards the state, so the two may be different threads.
 */
#ifndef STORMIG_SCSI_SCSI_PR_LUN_H
#define STORMIG_SCSI_SCSI_PR_LUN_H

#include <json-c/json.h>

#include "scsi/scsi-block.h"
#include "scsi/scsi-pr-io.h"
#include "scsi/scsi-pr.h"

typedef struct ScsiPr ScsiPr;

typedef struct ScsiPrConfig {
    const char *dev_id;             /* messages, journal file name */
    const char *initiator;          /* this nexus's iSCSI initiator name */
    const char *journal_dir;        /* NULL: the daemon-wide default */
    const ScsiPrIo *io;             /* NULL: the scsi-block's own session;
                                     * else these (a scripted LUN) */
} ScsiPrConfig;

/* The migrated state, as the subsection carries it. */
typedef struct ScsiPrWire {
    uint64_t key;
    uint8_t type;
} ScsiPrWire;

/* migrate-pr's default: on, off when --compat-version is older than 0.2. */
bool scsi_pr_migrate_default(void);

ScsiPr *scsi_pr_new(ScsiBlock *sb, ScsiLun *lun, const ScsiPrConfig *cfg,
                    Error **errp);
/* Completes held requests with BUSY; call before the LUN is drained. */
void scsi_pr_shutdown(ScsiPr *pr);
void scsi_pr_free(ScsiPr *pr);

/* ---- Data path (the LUN's loop) ---------------------------------------- */

typedef enum ScsiPrGate {
    SCSI_PR_GATE_PASS,              /* send it to the LUN */
    SCSI_PR_GATE_HELD,              /* kept until activation */
    SCSI_PR_GATE_DONE,              /* completed here (refused or BUSY) */
} ScsiPrGate;

/* Every guest request, before it goes to the LUN. */
ScsiPrGate scsi_pr_gate(ScsiPr *pr, ScsiRequest *req);
/* A held request being aborted: completes it; false if not held. */
bool scsi_pr_cancel(ScsiPr *pr, ScsiRequest *req);
/* The scsi-block completion filter (opaque: the ScsiPr). */
void scsi_pr_filter(ScsiBlock *sb, ScsiRequest *req, void *opaque);

/* ---- Main loop ---------------------------------------------------------- */

ScsiPrState scsi_pr_state(ScsiPr *pr);
/* True while guest requests are let through. */
bool scsi_pr_is_active(ScsiPr *pr);

/* Device state: whether the subsection is sent, its pre_save (settles a
 * pending READ RESERVATION, fills wire) and the two post_load halves: the
 * subsection's (validates wire) and the section's (present: whether the
 * subsection came; the state becomes the loaded one and waits for
 * activation). */
bool scsi_pr_needed(ScsiPr *pr);
bool scsi_pr_pre_save(ScsiPr *pr, ScsiPrWire *wire, Error **errp);
bool scsi_pr_post_load_sub(ScsiPr *pr, const ScsiPrWire *wire,
                           Error **errp);
void scsi_pr_post_load(ScsiPr *pr);

/* The section's pre_save, before the subsections are chosen: asks the
 * LUN whether this nexus is still registered with the guest's key (a
 * REGISTER with both keys set to it: a nexus a PREEMPT removed gets
 * RESERVATION CONFLICT, SPC-4 5.13.7), which READ KEYS cannot tell when
 * another nexus registered the same key. If not, the guest was fenced:
 * the state sent is "fenced" instead of the key. False (errp set) when
 * the LUN could not be asked. */
bool scsi_pr_probe_before_save(ScsiPr *pr, Error **errp);
/* The "fenced" subsection: sent while the guest has not been told it
 * was preempted; *key gets the key another initiator preempted. */
bool scsi_pr_fence_needed(ScsiPr *pr, uint64_t *key);
/* Its post_load: the guest arrives fenced (key: the preempted one). */
bool scsi_pr_post_load_fence(ScsiPr *pr, uint64_t key, Error **errp);
/* The "nexus" subsection, sent with "scsi-block/pr": this nexus'
 * initiator name (NUL-padded), which a destination whose LUN has READ
 * FULL STATUS uses to tell the source's registration from another
 * nexus' with the same key. */
void scsi_pr_save_nexus(ScsiPr *pr, char name[SCSI_PR_NAME_MAX]);
bool scsi_pr_post_load_nexus(ScsiPr *pr, const char name[SCSI_PR_NAME_MAX],
                             Error **errp);

/* DeviceClass.activate / inactivate / handed_over. An ALL REGISTRANTS
 * reservation moves without a PREEMPT: the destination registers (every
 * registrant holds it, SPC-4 5.13.10), and the source removes its own
 * registration from its own nexus once the destination runs
 * (handed_over); a destination that registered so and is inactivated
 * without having saved its state (a failed migration) removes its own. */
bool scsi_pr_activate(ScsiPr *pr, Error **errp);
void scsi_pr_inactivate(ScsiPr *pr);
void scsi_pr_handed_over(ScsiPr *pr);

/* At realize: the journal and the LUN (READ FULL STATUS when supported).
 * Never fails the device: what cannot be adopted is logged and shown by
 * query. */
void scsi_pr_startup(ScsiPr *pr);

/* Adds migrate-pr, pr-key, pr-type, pr-active and, after a takeover,
 * pr-takeover-ms and pr-takeover-round-trips (the part before the device
 * is ready; batches of commands sent: 2 unless a UNIT ATTENTION or a
 * PREEMPT run before its REGISTER made one go again) and pr-check (the
 * outcome check that runs just after: "pending", "ok" or the error). */
void scsi_pr_query(ScsiPr *pr, json_object *info);

/* Reservation commands on a scsi-block's own I_T nexus (who prefixes
 * messages). Call on the thread of the LUN's loop. */
ScsiPrIo scsi_pr_block_io(ScsiBlock *sb, const char *who);

/*
 * Whether this device's own I_T nexus may read or write the LUN now: a
 * READ(10) or WRITE(10) with TRANSFER LENGTH 0, which moves no data but
 * is checked against the reservation like any other (SPC-4 5.13.1, table
 * of commands allowed). *status gets the LUN's status (GOOD, RESERVATION
 * CONFLICT, ...). Works with migrate-pr on or off. Call on the thread of
 * the LUN's loop (the main loop while the VM is stopped).
 */
bool scsi_pr_probe_access(ScsiBlock *sb, bool write, uint8_t *status,
                          Error **errp);

#endif
