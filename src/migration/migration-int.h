/* Shared by the migration layer's source, destination and file parts. */
#ifndef STORMIG_MIGRATION_MIGRATION_INT_H
#define STORMIG_MIGRATION_MIGRATION_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "migration/channel.h"
#include "migration/migration.h"
#include "migration/runstate.h"
#include "migration/uri.h"
#include "device/device.h"
#include "vmstate/vmstate.h"

typedef enum MigRole {
    MIG_ROLE_NONE,
    MIG_ROLE_SOURCE,
    MIG_ROLE_DESTINATION,
} MigRole;

/* Where a side is in the message exchange; a message arriving at any
 * other step is a protocol error. */
typedef enum MigStep {
    MIG_STEP_IDLE,
    MIG_STEP_CONNECTING,
    MIG_STEP_WAIT_HELLO,
    MIG_STEP_WAIT_VMM_STOP,         /* src: the VMM has yet to stop devices */
    MIG_STEP_STOPPING,              /* src: devices quiescing */
    MIG_STEP_WAIT_STATE,            /* dst: waiting for DEVICE_STATE */
    MIG_STEP_LOADING,               /* dst: load delayed (debug) */
    MIG_STEP_WAIT_LOADED,           /* src: waiting for STATE_LOADED */
    MIG_STEP_WAIT_SWITCHOVER,       /* dst */
    MIG_STEP_WAIT_DONE,             /* src: waiting for SWITCHOVER_DONE */
    MIG_STEP_FINISHED,
} MigStep;

/* src: the VMM ran the VM again after our handoff completed (its own
 * migration failed late); see mig_src_vmm_changed. */
typedef enum MigLateRecovery {
    MIG_LATE_NONE,
    MIG_LATE_PENDING,               /* posted to the main loop */
    MIG_LATE_RESUMED,               /* disks and reservations taken back */
    MIG_LATE_REFUSED,               /* could not take them: still stopped */
} MigLateRecovery;

typedef void MigStoppedFunc(void);

typedef struct MigState {
    EventLoop *loop;
    MigRole role;
    MigStep step;
    MigrationStatus status;
    char *error_desc;

    MigChannel *ch;
    int connect_fd;                 /* src: connect in progress */
    int listen_fd;                  /* dst: waiting for the source */
    char *listen_unix_path;         /* removed when listening ends */

    /* channel.h §5: how long the peer may keep us waiting at one step;
     * the daemon's default, and this migration's. */
    uint32_t peer_timeout_default_ms;
    uint32_t peer_timeout_ms;
    uint64_t peer_timer;            /* the current step's deadline */
    uint64_t keepalive_timer;       /* src: sending KEEPALIVE (vmm-stop) */
    uint32_t peer_version;          /* from the peer's HELLO */
    uint32_t peer_hello_timeout_ms; /* the peer's peer-timeout (0: none) */
    bool accepting;                 /* dst: listen_fd is on the loop */

    bool vmm_stop;                  /* src: the VMM stops the devices */
    bool was_running;               /* src: run state before the stop */
    bool disks_given_up;            /* src: inactivated for this run */
    uint64_t start_ns, setup_done_ns, stop_ns, end_ns;
    uint64_t vmm_wait_ns;           /* src: HELLO done -> VMM stopped */
    MigLateRecovery late;
    uint64_t late_ns;               /* src: taking everything back */
    char *late_error;               /* src: why it was refused */
    bool downtime_valid;
    /* The device part of the downtime, phase by phase (0: not reached).
     * src: stop_ns -> stopped (devices quiesced) -> saved (state
     * serialised and queued) -> loaded (STATE_LOADED) -> inactivated
     * (disks given up) -> end_ns. dst: state received -> loaded ->
     * switchover received -> activated (disks, then devices' takeover)
     * -> started. Reported as
     * query-migrate's "downtime-parts". */
    uint64_t stopped_ns, saved_ns, loaded_ns, inactivated_ns;
    uint64_t state_ns, switchover_ns, activated_ns, started_ns;
    uint64_t activate_disks_ns, activate_devices_ns;    /* dst */
    uint64_t device_state_size;
    uint64_t transferred;

    MigStoppedFunc *stopped_then;   /* src: after the stop */
    char *file_path;                /* src: file: being saved */

    uint32_t debug_load_delay_ms;
    uint64_t load_timer;
    uint8_t *pending_state;         /* dst: state waiting for the delay */
    size_t pending_len;
} MigState;

extern MigState mig;

/* Global (non-device) state carried in every stream: whether the source
 * ran, so a file restore knows whether to run. */
typedef struct MigGlobalState {
    uint8_t running;
} MigGlobalState;

extern MigGlobalState mig_global;

/* Every device section plus the global one (malloc'd, *n set). */
VMStateSection *mig_sections(size_t *n, Error **errp);

/* Starts a new record for this role; forgets the last one. */
void mig_begin(MigRole role);
/* Moves to step; a step that waits on the peer gets its deadline
 * (channel.h §5), any other step has none. */
void mig_set_step(MigStep step);
/* channel.h §5: KEEPALIVE restarts the current step's deadline. False
 * (errp set) when the peer may not send one now. */
bool mig_keepalive_received(Error **errp);
/* dst: drop the source (timeout, cancel, its failure) and wait for a
 * new one while still inmigrate. Takes err. */
void mig_dst_abandon(Error *err, bool cancelled);
void mig_set_status(MigrationStatus status);
/* Records the failure (keeps the first message). */
void mig_set_error(const Error *err);
void mig_close_channel(void);
void mig_stop_listening(void);

/* Source steps (migration-source.c). */
bool mig_src_start_socket(const MigUri *uri, bool vmm_stop, Error **errp);
void mig_src_vmm_changed(Device *dev);
/* Stops the VM (step STOPPING); then() runs once it is stopped, or the
 * migration fails. A migration that ended meanwhile undoes the stop. */
void mig_src_stop_vm(MigStoppedFunc *then);
bool mig_src_save_state(uint8_t **data, size_t *len, bool with_description,
                        Error **errp);
bool mig_src_give_up_disks(Error **errp);
void mig_src_complete(void);
void mig_src_recover(void);
void mig_src_fail(Error *err, bool cancelled);

/* Destination (migration-dest.c). */
bool mig_dst_listen(const MigUri *uri, Error **errp);
void mig_dst_accept_next(void);
bool mig_dst_load_state(const uint8_t *data, size_t len, Error **errp);
bool mig_dst_switchover(bool run, Error **errp);

/* file: (migration-file.c). */
bool mig_file_save(const char *path, Error **errp);
bool mig_file_load(const char *path, Error **errp);

#endif
