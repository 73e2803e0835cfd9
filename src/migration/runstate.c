/* Run state and the shared stop/start/activate/inactivate transitions. */
#include "migration/runstate.h"
#include "block/ownership.h"
#include "device/device.h"
#include "util/log.h"
#include "util/loop.h"

static RunState current = RUN_STATE_PRELAUNCH;
static EventSinkFunc *event_sink;

static const char *const names[] = {
    [RUN_STATE_PRELAUNCH] = "prelaunch",
    [RUN_STATE_RUNNING] = "running",
    [RUN_STATE_PAUSED] = "paused",
    [RUN_STATE_INMIGRATE] = "inmigrate",
    [RUN_STATE_FINISH_MIGRATE] = "finish-migrate",
    [RUN_STATE_POSTMIGRATE] = "postmigrate",
    [RUN_STATE_SHUTDOWN] = "shutdown",
};

const char *runstate_name(RunState state)
{
    return names[state];
}

RunState runstate_get(void)
{
    return current;
}

void runstate_set(RunState state)
{
    if (state != current) {
        log_debug("run state %s -> %s", names[current], names[state]);
        current = state;
    }
}

bool runstate_is_running(void)
{
    return current == RUN_STATE_RUNNING;
}

void runstate_set_event_sink(EventSinkFunc *sink)
{
    event_sink = sink;
}

void runstate_emit_event(const char *name, json_object *data)
{
    if (event_sink) {
        event_sink(name, data);
    } else {
        json_object_put(data);
    }
}

bool vm_stop(RunState new_state, Error **errp)
{
    if (!runstate_is_running()) {
        runstate_set(new_state);
        return true;
    }
    if (!device_stop_all(errp)) {
        Error *local = NULL;
        if (!device_start_all(&local)) {
            error_report_err(local);
        }
        return false;
    }
    runstate_set(new_state);
    runstate_emit_event("STOP", NULL);
    return true;
}

bool vm_start(Error **errp)
{
    if (runstate_is_running()) {
        return true;
    }
    if (!vm_activate_disks(errp)) {
        return false;
    }
    if (!device_start_all(errp)) {
        Error *local = NULL;
        if (!device_stop_all(&local)) {
            error_report_err(local);
        }
        return false;
    }
    runstate_set(RUN_STATE_RUNNING);
    runstate_emit_event("RESUME", NULL);
    return true;
}

static uint64_t last_disks_ns, last_devices_ns;

void vm_last_activation_ns(uint64_t *disks_ns, uint64_t *devices_ns)
{
    *disks_ns = last_disks_ns;
    *devices_ns = last_devices_ns;
}

bool vm_activate_disks(Error **errp)
{
    if (blk_ownership_is_owned()) {
        return true;
    }
    uint64_t t0 = clock_ns();
    last_disks_ns = last_devices_ns = 0;
    if (!blk_ownership_activate_all(errp)) {
        return false;
    }
    uint64_t t1 = clock_ns();
    last_disks_ns = t1 - t0;
    bool ok = device_activate_all(errp);
    last_devices_ns = clock_ns() - t1;
    if (!ok) {
        /* Give the images back: a half-activated process must not hold
         * them. */
        Error *local = NULL;
        device_inactivate_all();
        if (!blk_ownership_inactivate_all(&local)) {
            error_report_err(local);
        }
        return false;
    }
    log_info("disks activated: this process owns its images");
    return true;
}

bool vm_inactivate_disks(Error **errp)
{
    if (!blk_ownership_is_owned()) {
        log_info("disks already inactive: nothing to hand over");
        return true;
    }
    device_inactivate_all();
    if (!blk_ownership_inactivate_all(errp)) {
        Error *local = NULL;
        if (!device_activate_all(&local)) {
            error_report_err(local);
        }
        return false;
    }
    log_info("disks inactivated: images handed over");
    return true;
}
