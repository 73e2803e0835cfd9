/* Migration record, query-migrate, and the entry points of both roles. */
#include "migration/migration-int.h"
#include "block/ownership.h"
#include "device/device.h"
#include "util/log.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

MigState mig = {
    .connect_fd = -1, .listen_fd = -1,
    .peer_timeout_default_ms = MIGRATION_PEER_TIMEOUT_DEFAULT_MS,
};
MigGlobalState mig_global;

static const VMStateField global_fields[] = {
    VMSTATE_UINT8_MAX(running, MigGlobalState, 1),     /* a flag */
    VMSTATE_END_OF_LIST(),
};

static const VMStateDescription global_vmsd = {
    .name = "stormigd-global",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = global_fields,
};

/* Device ids cannot contain ':', so this never clashes with a device. */
#define GLOBAL_SECTION_NAME "stormigd:global"

static const char *const status_names[] = {
    [MIGRATION_STATUS_NONE] = "none",
    [MIGRATION_STATUS_SETUP] = "setup",
    [MIGRATION_STATUS_ACTIVE] = "active",
    [MIGRATION_STATUS_DEVICE] = "device",
    [MIGRATION_STATUS_COMPLETED] = "completed",
    [MIGRATION_STATUS_FAILED] = "failed",
    [MIGRATION_STATUS_CANCELLING] = "cancelling",
    [MIGRATION_STATUS_CANCELLED] = "cancelled",
};

const char *migration_status_name(MigrationStatus status)
{
    return status_names[status];
}

void migration_init(EventLoop *loop)
{
    mig.loop = loop;
    device_set_vmm_listener(mig_src_vmm_changed);
}

MigrationStatus migration_status(void)
{
    return mig.status;
}

bool migration_is_active(void)
{
    return mig.status == MIGRATION_STATUS_SETUP ||
           mig.status == MIGRATION_STATUS_ACTIVE ||
           mig.status == MIGRATION_STATUS_DEVICE ||
           mig.status == MIGRATION_STATUS_CANCELLING;
}

void migration_set_debug_load_delay(uint32_t ms)
{
    mig.debug_load_delay_ms = ms;
}

bool migration_set_peer_timeout(int64_t ms, Error **errp)
{
    if (!migration_peer_timeout_check(ms, errp)) {
        return false;
    }
    mig.peer_timeout_default_ms = (uint32_t)ms;
    return true;
}

bool migration_peer_timeout_check(int64_t ms, Error **errp)
{
    if (ms < 1 || ms > MIGRATION_PEER_TIMEOUT_MAX_MS) {
        error_setg(errp, "peer-timeout must be 1 to %u ms, not %lld",
                   MIGRATION_PEER_TIMEOUT_MAX_MS, (long long)ms);
        return false;
    }
    return true;
}

/* Phase names for errors: what the side is doing at each step. */
static const char *const step_names[] = {
    [MIG_STEP_IDLE] = "idle",
    [MIG_STEP_CONNECTING] = "connect",
    [MIG_STEP_WAIT_HELLO] = "wait-hello",
    [MIG_STEP_WAIT_VMM_STOP] = "wait-vmm",
    [MIG_STEP_STOPPING] = "stopping",
    [MIG_STEP_WAIT_STATE] = "wait-state",
    [MIG_STEP_LOADING] = "loading",
    [MIG_STEP_WAIT_LOADED] = "wait-loaded",
    [MIG_STEP_WAIT_SWITCHOVER] = "wait-switchover",
    [MIG_STEP_WAIT_DONE] = "wait-switchover-done",
    [MIG_STEP_FINISHED] = "finished",
};

/* The message a step waits for from the peer, or NULL when the step does
 * not wait on the peer. A version 1 source sends no KEEPALIVE while its
 * VMM migrates, so its destination cannot tell it from a silent one. */
static const char *step_awaits(MigStep step)
{
    switch (step) {
    case MIG_STEP_CONNECTING:
        return "connection";
    case MIG_STEP_WAIT_HELLO:
        return "HELLO";
    case MIG_STEP_WAIT_STATE:
        return mig.peer_version >= 2 ? "DEVICE_STATE or KEEPALIVE" : NULL;
    case MIG_STEP_WAIT_LOADED:
        return "STATE_LOADED";
    case MIG_STEP_WAIT_SWITCHOVER:
        return "SWITCHOVER";
    case MIG_STEP_WAIT_DONE:
        return "SWITCHOVER_DONE";
    default:
        return NULL;
    }
}

static int64_t peer_deadline_passed(EventLoop *loop, uint64_t id,
                                    void *opaque)
{
    Error *err = NULL;
    mig.peer_timer = 0;
    error_setg(&err, "peer-timeout: no %s from the %s within %u ms "
               "(phase %s)", step_awaits(mig.step),
               mig.role == MIG_ROLE_SOURCE ? "destination" : "source",
               mig.peer_timeout_ms, step_names[mig.step]);
    if (mig.role == MIG_ROLE_SOURCE) {
        mig_src_fail(err, false);
    } else {
        mig_dst_abandon(err, false);
    }
    return LOOP_TIMER_DONE;
}

static void peer_deadline_clear(void)
{
    if (mig.peer_timer) {
        loop_del_timer(mig.loop, mig.peer_timer);
        mig.peer_timer = 0;
    }
}

static void peer_deadline_arm(void)
{
    peer_deadline_clear();
    mig.peer_timer = loop_add_timer(mig.loop, mig.peer_timeout_ms,
                                    peer_deadline_passed, NULL);
}

/* A third of the shorter deadline: two KEEPALIVEs may be late. */
static int64_t keepalive_interval(void)
{
    uint32_t t = mig.peer_timeout_ms;
    if (mig.peer_hello_timeout_ms && mig.peer_hello_timeout_ms < t) {
        t = mig.peer_hello_timeout_ms;
    }
    return t / 3 ? t / 3 : 1;
}

static int64_t keepalive_due(EventLoop *loop, uint64_t id, void *opaque)
{
    Error *err = NULL;
    if (!mig.ch || !mig_channel_send(mig.ch, MIG_MSG_KEEPALIVE, NULL, 0,
                                     &err)) {
        mig.keepalive_timer = 0;
        if (err) {
            mig_src_fail(err, false);
        }
        return LOOP_TIMER_DONE;
    }
    return keepalive_interval();
}

static void keepalive_stop(void)
{
    if (mig.keepalive_timer) {
        loop_del_timer(mig.loop, mig.keepalive_timer);
        mig.keepalive_timer = 0;
    }
}

void mig_set_step(MigStep step)
{
    mig.step = step;
    if (step_awaits(step)) {
        peer_deadline_arm();
    } else {
        peer_deadline_clear();
    }
    /* A source waiting for its VMM or for its devices to stop (up to
     * their stop-timeout) tells the destination it is alive. */
    if ((step == MIG_STEP_WAIT_VMM_STOP || step == MIG_STEP_STOPPING) &&
        mig.peer_version >= 2) {
        if (!mig.keepalive_timer) {
            mig.keepalive_timer = loop_add_timer(mig.loop,
                (uint64_t)keepalive_interval(), keepalive_due, NULL);
        }
    } else {
        keepalive_stop();
    }
}

bool mig_keepalive_received(Error **errp)
{
    if (mig.peer_version < 2 || mig.step == MIG_STEP_WAIT_HELLO) {
        error_setg(errp, "unexpected KEEPALIVE message");
        return false;
    }
    if (mig.peer_timer) {
        peer_deadline_arm();
    }
    return true;
}

VMStateSection *mig_sections(size_t *n, Error **errp)
{
    size_t ndev = 0;
    VMStateSection *devs = device_vmstate_sections(&ndev);
    VMStateSection *secs = devs ? realloc(devs, (ndev + 1) * sizeof(*secs))
                                : NULL;
    if (!secs) {
        free(devs);
        error_setg(errp, "out of memory");
        return NULL;
    }
    secs[ndev] = (VMStateSection){
        .name = GLOBAL_SECTION_NAME, .instance_id = 0,
        .vmsd = &global_vmsd, .opaque = &mig_global,
    };
    *n = ndev + 1;
    return secs;
}

void mig_begin(MigRole role)
{
    free(mig.error_desc);
    mig.error_desc = NULL;
    mig.role = role;
    mig.step = MIG_STEP_IDLE;
    mig.peer_version = 0;
    mig.peer_hello_timeout_ms = 0;
    mig.was_running = false;
    mig.vmm_stop = false;
    mig.vmm_wait_ns = 0;
    mig.late = MIG_LATE_NONE;
    mig.late_ns = 0;
    free(mig.late_error);
    mig.late_error = NULL;
    mig.disks_given_up = false;
    mig.start_ns = clock_ns();
    mig.setup_done_ns = mig.stop_ns = mig.end_ns = 0;
    mig.stopped_ns = mig.saved_ns = mig.loaded_ns = mig.inactivated_ns = 0;
    mig.state_ns = mig.switchover_ns = mig.activated_ns = 0;
    mig.started_ns = 0;
    mig.activate_disks_ns = mig.activate_devices_ns = 0;
    mig.downtime_valid = false;
    mig.device_state_size = 0;
    mig.transferred = 0;
    mig.status = MIGRATION_STATUS_NONE;
}

void mig_set_status(MigrationStatus status)
{
    if (status == mig.status) {
        return;
    }
    log_info("migration (%s): %s -> %s",
             mig.role == MIG_ROLE_SOURCE ? "source" : "destination",
             status_names[mig.status], status_names[status]);
    mig.status = status;
    if (status == MIGRATION_STATUS_COMPLETED ||
        status == MIGRATION_STATUS_FAILED ||
        status == MIGRATION_STATUS_CANCELLED) {
        mig.end_ns = clock_ns();
    }
    json_object *data = json_object_new_object();
    json_object_object_add(data, "status",
                           json_object_new_string(status_names[status]));
    runstate_emit_event("MIGRATION", data);
}

void mig_set_error(const Error *err)
{
    if (!mig.error_desc) {
        mig.error_desc = strdup(error_get_pretty(err));
    }
}

void mig_close_channel(void)
{
    peer_deadline_clear();
    keepalive_stop();
    if (mig.ch) {
        mig.transferred = mig_channel_bytes_sent(mig.ch) +
                          mig_channel_bytes_received(mig.ch);
        mig_channel_free(mig.ch);
        mig.ch = NULL;
    }
    if (mig.connect_fd >= 0) {
        loop_del_fd(mig.loop, mig.connect_fd);
        close(mig.connect_fd);
        mig.connect_fd = -1;
    }
    if (mig.load_timer) {
        loop_del_timer(mig.loop, mig.load_timer);
        mig.load_timer = 0;
    }
    free(mig.pending_state);
    mig.pending_state = NULL;
    mig.pending_len = 0;
}

void mig_stop_listening(void)
{
    if (mig.listen_fd >= 0) {
        if (mig.accepting) {
            loop_del_fd(mig.loop, mig.listen_fd);
            mig.accepting = false;
        }
        close(mig.listen_fd);
        mig.listen_fd = -1;
    }
    if (mig.listen_unix_path) {
        unlink(mig.listen_unix_path);
        free(mig.listen_unix_path);
        mig.listen_unix_path = NULL;
    }
}

bool migration_start_outgoing(const char *uri, Error **errp)
{
    return migration_start_outgoing_vmm(uri, false, 0, errp);
}

bool migration_start_outgoing_vmm(const char *uri, bool vmm_stop,
                                  uint32_t peer_timeout_ms, Error **errp)
{
    if (migration_is_active() || mig.listen_fd >= 0) {
        error_setg(errp, "a migration is already in progress");
        return false;
    }
    if (runstate_get() == RUN_STATE_INMIGRATE) {
        error_setg(errp, "cannot migrate out: waiting for an incoming "
                   "migration");
        return false;
    }
    if (vm_stopping()) {
        error_setg(errp, "cannot migrate while the VM is being stopped");
        return false;
    }
    if (!device_migration_check_all(errp)) {
        return false;
    }
    MigUri u;
    if (!mig_uri_parse(uri, &u, errp)) {
        return false;
    }
    bool ok;
    if (u.kind == MIG_URI_FILE && vmm_stop) {
        error_setg(errp, "vmm-stop needs a migration to another stormigd, "
                   "not a file");
        ok = false;
    } else if (u.kind == MIG_URI_FILE) {
        ok = mig_file_save(u.path, errp);
    } else {
        mig.peer_timeout_ms = peer_timeout_ms ? peer_timeout_ms
                                              : mig.peer_timeout_default_ms;
        ok = mig_src_start_socket(&u, vmm_stop, errp);
    }
    mig_uri_free(&u);
    return ok;
}

bool migration_start_incoming(const char *uri, uint32_t peer_timeout_ms,
                              Error **errp)
{
    if (runstate_get() != RUN_STATE_INMIGRATE) {
        error_setg(errp, "incoming migration needs the daemon started with "
                   "--incoming");
        return false;
    }
    if (migration_is_active() || mig.listen_fd >= 0) {
        error_setg(errp, "an incoming migration is already in progress");
        return false;
    }
    MigUri u;
    if (!mig_uri_parse(uri, &u, errp)) {
        return false;
    }
    bool ok;
    if (u.kind == MIG_URI_FILE) {
        ok = mig_file_load(u.path, errp);
    } else {
        mig.peer_timeout_ms = peer_timeout_ms ? peer_timeout_ms
                                              : mig.peer_timeout_default_ms;
        ok = mig_dst_listen(&u, errp);
    }
    mig_uri_free(&u);
    return ok;
}

void migration_cancel(void)
{
    Error *err = NULL;
    if (!migration_is_active()) {
        return;
    }
    if (mig.role == MIG_ROLE_SOURCE) {
        error_setg(&err, "migration cancelled");
        mig_set_status(MIGRATION_STATUS_CANCELLING);
        mig_src_fail(err, true);
    } else if (mig.role == MIG_ROLE_DESTINATION) {
        error_setg(&err, "migration cancelled on the destination");
        mig_dst_abandon(err, true);
    }
}

void migration_shutdown(void)
{
    migration_cancel();
    mig_close_channel();
    mig_stop_listening();
    free(mig.error_desc);
    mig.error_desc = NULL;
    free(mig.late_error);
    mig.late_error = NULL;
    free(mig.file_path);
    mig.file_path = NULL;
}

static double ns_to_ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

/* The source's answer to a VMM that ran the VM again after the handoff. */
static void mig_late_query(json_object *o)
{
    static const char *const names[] = {
        [MIG_LATE_PENDING] = "pending",
        [MIG_LATE_RESUMED] = "resumed",
        [MIG_LATE_REFUSED] = "refused",
    };
    if (mig.late == MIG_LATE_NONE) {
        return;
    }
    json_object_object_add(o, "late-recovery",
                           json_object_new_string(names[mig.late]));
    if (mig.late == MIG_LATE_RESUMED) {
        json_object_object_add(o, "late-recovery-time",
                               json_object_new_double(ns_to_ms(mig.late_ns)));
    }
    if (mig.late_error) {
        json_object_object_add(o, "late-recovery-error",
                               json_object_new_string(mig.late_error));
    }
}

static void add_ms(json_object *parts, const char *name, uint64_t ns)
{
    json_object_object_add(parts, name, json_object_new_double(ns_to_ms(ns)));
}

/* A phase from one recorded instant to the next, once both were reached. */
static void add_part(json_object *parts, const char *name, uint64_t from,
                     uint64_t to)
{
    if (from && to >= from) {
        add_ms(parts, name, to - from);
    }
}

/* Each side reports the phases it sees. The source's follow one another
 * from the stop to SWITCHOVER_DONE, so they add up to its downtime;
 * "wait-loaded" and "wait-switchover" are the destination's load and
 * activation as the source waits for them (plus the channel). */
static json_object *mig_downtime_parts(void)
{
    json_object *p = json_object_new_object();
    if (mig.role == MIG_ROLE_SOURCE) {
        if (!mig.downtime_valid) {
            json_object_put(p);
            return NULL;
        }
        add_part(p, "stop", mig.stop_ns, mig.stopped_ns);
        add_part(p, "save", mig.stopped_ns, mig.saved_ns);
        add_part(p, "wait-loaded", mig.saved_ns, mig.loaded_ns);
        add_part(p, "inactivate", mig.loaded_ns, mig.inactivated_ns);
        add_part(p, "wait-switchover", mig.inactivated_ns, mig.end_ns);
        return p;
    }
    if (mig.status != MIGRATION_STATUS_COMPLETED) {
        json_object_put(p);
        return NULL;
    }
    add_part(p, "load", mig.state_ns, mig.loaded_ns);
    add_part(p, "activate", mig.switchover_ns, mig.activated_ns);
    if (mig.activated_ns) {
        /* Inside "activate": taking the images, then the devices' hooks
         * (a scsi-block reservation takeover is its pr-takeover-ms in
         * query-devices). */
        add_ms(p, "activate-disks", mig.activate_disks_ns);
        add_ms(p, "activate-devices", mig.activate_devices_ns);
    }
    add_part(p, "start", mig.activated_ns, mig.started_ns);
    return p;
}

json_object *migration_query(void)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "status",
        json_object_new_string(status_names[mig.status]));
    if (mig.status == MIGRATION_STATUS_NONE) {
        return o;
    }
    uint64_t now = mig.end_ns ? mig.end_ns : clock_ns();
    uint64_t transferred = mig.ch ? mig_channel_bytes_sent(mig.ch) +
                           mig_channel_bytes_received(mig.ch)
                           : mig.transferred;
    json_object_object_add(o, "role", json_object_new_string(
        mig.role == MIG_ROLE_SOURCE ? "source" : "destination"));
    json_object_object_add(o, "total-time",
        json_object_new_double(ns_to_ms(now - mig.start_ns)));
    if (mig.setup_done_ns) {
        json_object_object_add(o, "setup-time",
            json_object_new_double(ns_to_ms(mig.setup_done_ns - mig.start_ns)));
    }
    if (mig.downtime_valid) {
        json_object_object_add(o, "downtime",
            json_object_new_double(ns_to_ms(mig.end_ns - mig.stop_ns)));
    }
    if (mig.vmm_stop) {
        json_object_object_add(o, "vmm-stop", json_object_new_boolean(true));
    }
    json_object_object_add(o, "peer-timeout",
                           json_object_new_int64(mig.peer_timeout_ms));
    if (mig.vmm_wait_ns) {
        json_object_object_add(o, "vmm-wait",
            json_object_new_double(ns_to_ms(mig.vmm_wait_ns)));
    }
    json_object_object_add(o, "device-state-size",
        json_object_new_int64((int64_t)mig.device_state_size));
    json_object_object_add(o, "transferred",
        json_object_new_int64((int64_t)transferred));
    if (mig.error_desc) {
        json_object_object_add(o, "error-desc",
            json_object_new_string(mig.error_desc));
    }
    json_object *parts = mig_downtime_parts();
    if (parts) {
        json_object_object_add(o, "downtime-parts", parts);
    }
    mig_late_query(o);
    return o;
}
