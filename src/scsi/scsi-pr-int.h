/* Shared by the files of the per-LUN reservation object (scsi-pr-lun.c,
 * scsi-pr-handoff.c). */
#ifndef STORMIG_SCSI_SCSI_PR_INT_H
#define STORMIG_SCSI_SCSI_PR_INT_H

#include <pthread.h>

#include "scsi/scsi-pr-io.h"
#include "scsi/scsi-pr-journal.h"
#include "scsi/scsi-pr-lun.h"

/* A guest PR command seen by the gate, waiting for its completion. */
typedef struct PrSeen {
    ScsiRequest *req;
    bool is_out;                    /* PR OUT (else REPORT CAPABILITIES) */
    ScsiPrOut out;
    struct PrSeen *next;
} PrSeen;

typedef struct PrHeld {
    ScsiRequest *req;
    struct PrHeld *next;
} PrHeld;

typedef enum PrGateMode {
    PR_OPEN,                        /* requests pass */
    PR_HOLD,                        /* held until activation */
    PR_BUSY,                        /* activation failed: BUSY */
} PrGateMode;

struct ScsiPr {
    ScsiBlock *sb;
    ScsiLun *lun;
    ScsiPrIo io;
    char *dev_id, *initiator, *journal_dir;

    pthread_mutex_t lock;           /* everything below */
    ScsiPrState st;
    bool read_back_pending;         /* a PREEMPT's outcome is not read yet */
    unsigned posts;                 /* read-backs posted to the LUN loop */
    PrGateMode gate;
    PrSeen *seen;
    PrHeld *held, **held_tail;
    bool loaded_sub;                /* post_load of the subsection ran */
    ScsiPrWire loaded;
    char startup_note[512];         /* what start-up could not adopt */
    uint64_t takeover_ns;           /* the last takeover (0: none yet) */
    unsigned takeover_round_trips;  /* batches the last takeover sent */
    unsigned takeovers;             /* numbers each takeover's check */
    unsigned checks_pending;        /* outcome checks not done: guest PR
                                     * OUT waits (scsi_pr_gate) */
    char check[512];                /* pr-check of the last takeover */
    uint64_t fenced_key;            /* the key another initiator preempted
                                     * before a handoff (0: none) */
    bool fence_ua;                  /* REGISTRATIONS PREEMPTED is due to
                                     * the guest's next command */
    bool ar_joined;                 /* the last activation registered next
                                     * to the previous holder of an ALL
                                     * REGISTRANTS reservation */
    bool saved;                     /* state saved since the last
                                     * activation (a handoff, not a
                                     * rollback, follows) */
    char loaded_source[SCSI_PR_NAME_MAX];   /* the pr-nexus subsection */
    char source[SCSI_PR_NAME_MAX];  /* the handed-over state's initiator,
                                     * until the activation used it ("":
                                     * unknown) */
    uint64_t loaded_fence;          /* post_load of the fenced subsection
                                     * ran with this key (0: not) */
    bool closing;                   /* shut down: a pending check is not run */

    pthread_mutex_t journal_lock;   /* one writer at a time; and: */
    bool journal_exists;
};

/* Writes the current state to the journal (logs, never fails). */
void scsi_pr_journal_update(ScsiPr *pr, bool active);
/* Reads the reservation back and applies it (after a PREEMPT). */
bool scsi_pr_read_back(ScsiPr *pr, Error **errp);
/* An outcome check is due for a takeover that just succeeded: guest PR
 * OUT is held until it is done. Returns the takeover's number. */
unsigned scsi_pr_check_begin(ScsiPr *pr);
/* Records the check's result ("ok" or the error) as pr-check if seq is
 * still the last takeover, and lets held guest PR OUT go. On the LUN's
 * loop. */
void scsi_pr_check_done(ScsiPr *pr, unsigned seq, const char *result);
/* The guest was preempted (fenced) by another initiator before this
 * nexus took over: it tracks no key from now on and the guest's next
 * command gets the UNIT ATTENTION the LUN owes a preempted nexus. */
void scsi_pr_accept_fence(ScsiPr *pr, uint64_t key, const char *when);
/* Lets held requests go (or completes them with BUSY when failed). */
void scsi_pr_open_gate(ScsiPr *pr, bool failed);

#endif
