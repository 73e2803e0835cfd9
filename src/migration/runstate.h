/*
 * The VM's run state as stormigd sees it, named as QEMU names them, and
 * the two transitions every caller shares: stopping and starting the
 * devices, and taking or giving up the disks.
 *
 * Events (STOP, RESUME, MIGRATION) leave through an event sink the daemon
 * sets (the QMP monitor); this layer does not link the monitor.
 */
#ifndef STORMIG_MIGRATION_RUNSTATE_H
#define STORMIG_MIGRATION_RUNSTATE_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "util/error.h"

typedef enum RunState {
    RUN_STATE_PRELAUNCH,        /* not yet started (during option parsing) */
    RUN_STATE_RUNNING,
    RUN_STATE_PAUSED,
    RUN_STATE_INMIGRATE,        /* waiting for an incoming migration */
    RUN_STATE_FINISH_MIGRATE,   /* source: stopped, saving device state */
    RUN_STATE_POSTMIGRATE,      /* source: migrated out, disks handed over */
    RUN_STATE_SHUTDOWN,
} RunState;

const char *runstate_name(RunState state);
RunState runstate_get(void);
void runstate_set(RunState state);
bool runstate_is_running(void);

/* Takes the reference to data (may be NULL). */
typedef void EventSinkFunc(const char *name, json_object *data);
void runstate_set_event_sink(EventSinkFunc *sink);
void runstate_emit_event(const char *name, json_object *data);

/* Stops the devices when running (STOP event) and enters new_state;
 * done(opaque, NULL) runs on the main loop once they are stopped (before
 * vm_stop returns when no device has to wait). On failure the devices
 * are started again, the VM keeps running and done gets the error. One
 * stop at a time: see vm_stopping. */
typedef void VmStopDone(void *opaque, Error *err);
void vm_stop(RunState new_state, VmStopDone *done, void *opaque);
bool vm_stopping(void);

/* Takes the disks if this process does not own them (vm_activate_disks),
 * starts the devices and enters running (RESUME event). */
bool vm_start(Error **errp);

/* Ownership first, then the devices' own activation. No-op when owned. */
bool vm_activate_disks(Error **errp);
/* How long the last vm_activate_disks that did something spent taking
 * the images and running the devices' activate hooks (e.g. a SCSI
 * reservation takeover); both 0 before the first. */
void vm_last_activation_ns(uint64_t *disks_ns, uint64_t *devices_ns);

/* Devices first (reverse order), then ownership. No-op when not owned, so
 * a process that never ran never inactivates twice (seed 004). On failure
 * the devices are activated again and the disks stay owned. */
bool vm_inactivate_disks(Error **errp);

#endif
