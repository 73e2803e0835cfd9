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

static struct {
    RunState new_state;
    VmStopDone *done;               /* NULL: no stop in progress */
    void *opaque;
} stop_req;

bool vm_stopping(void)
{
    return stop_req.done != NULL;
}

static void vm_devices_stopped(void *opaque, Error *err)
{
    VmStopDone *done = stop_req.done;
    stop_req.done = NULL;
    /* A failed stop resumes, unless the daemon is going away. */
    if (err && runstate_get() != RUN_STATE_SHUTDOWN) {
        Error *local = NULL;
        if (!device_start_all(&local)) {
            error_report_err(local);
        }
    } else if (!err) {
        runstate_set(stop_req.new_state);
        runstate_emit_event("STOP", NULL);
    }
    done(stop_req.opaque, err);
}

void vm_stop(RunState new_state, VmStopDone *done, void *opaque)
{
    Error *err = NULL;
    if (vm_stopping()) {
        error_setg(&err, "the VM is already being stopped");
        done(opaque, err);
        return;
    }
    if (!runstate_is_running()) {
        runstate_set(new_state);
        done(opaque, NULL);
        return;
    }
    stop_req.new_state = new_state;
    stop_req.done = done;
    stop_req.opaque = opaque;
    device_stop_all(vm_devices_stopped, NULL);
}

static void report_stop_failure(void *opaque, Error *err)
{
    if (err) {
        error_report_err(err);
    }
}

bool vm_start(Error **errp)
{
    if (vm_stopping()) {
        error_setg(errp, "the VM is being stopped");
        return false;
    }
    if (runstate_is_running()) {
        return true;
    }
    if (!vm_activate_disks(errp)) {
        return false;
    }
    if (!device_start_all(errp)) {
        /* Stop what started; nobody waits for it. */
        device_stop_all(report_stop_failure, NULL);
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
