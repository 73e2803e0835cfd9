/* The daemon's QMP commands: run state, block nodes, devices, migration. */
#include "daemon/daemon.h"
#include "block/block.h"
#include "block/ownership.h"
#include "device/device.h"
#include "migration/migration.h"
#include "migration/runstate.h"
#include "monitor/monitor.h"
#include "util/log.h"

static const char *const no_args[] = { NULL };

static bool qmp_query_status(json_object *args, json_object **ret,
                             void *opaque, Error **errp)
{
    if (!qmp_args_check(args, no_args, errp)) {
        return false;
    }
    *ret = json_object_new_object();
    json_object_object_add(*ret, "status",
        json_object_new_string(runstate_name(runstate_get())));
    json_object_object_add(*ret, "running",
        json_object_new_boolean(runstate_is_running()));
    return true;
}

/* A stop that finishes inside the command answers it; one that waits
 * for requests in flight is answered at once, and the STOP event (or the
 * log, on failure) tells when it finished. */
typedef struct QmpStopCall {
    bool in_command;
    bool finished;
    Error *err;
} QmpStopCall;

static QmpStopCall qmp_stop_call;

static void qmp_stop_done(void *opaque, Error *err)
{
    if (qmp_stop_call.in_command) {
        qmp_stop_call.finished = true;
        qmp_stop_call.err = err;
        return;
    }
    if (err) {
        error_prepend(&err, "stop failed, the VM keeps running: ");
        error_report_err(err);
    }
}

static bool qmp_stop(json_object *args, json_object **ret, void *opaque,
                     Error **errp)
{
    if (!qmp_args_check(args, no_args, errp)) {
        return false;
    }
    if (migration_is_active()) {
        error_setg(errp, "cannot stop during a migration");
        return false;
    }
    if (!runstate_is_running()) {
        return true;
    }
    qmp_stop_call = (QmpStopCall){ .in_command = true };
    vm_stop(RUN_STATE_PAUSED, qmp_stop_done, NULL);
    qmp_stop_call.in_command = false;
    if (qmp_stop_call.finished && qmp_stop_call.err) {
        error_propagate(errp, qmp_stop_call.err);
        return false;
    }
    return true;
}

static bool qmp_cont(json_object *args, json_object **ret, void *opaque,
                     Error **errp)
{
    if (!qmp_args_check(args, no_args, errp)) {
        return false;
    }
    if (runstate_get() == RUN_STATE_INMIGRATE) {
        error_setg(errp, "cannot continue: the incoming migration has not "
                   "completed");
        return false;
    }
    if (migration_is_active()) {
        error_setg(errp, "cannot continue during a migration");
        return false;
    }
    /* vm_start takes the disks first when this process does not own them
     * (after a completed migration out, or an incoming one that did not
     * run), seed 004. */
    return vm_start(errp);
}

static json_object *block_info(BlockBackend *blk)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "node-name",
                           json_object_new_string(blk_name(blk)));
    json_object_object_add(o, "file",
                           json_object_new_string(blk_filename(blk)));
    json_object_object_add(o, "size",
                           json_object_new_int64((int64_t)blk_size(blk)));
    json_object_object_add(o, "read-only",
                           json_object_new_boolean(blk_is_read_only(blk)));
    json_object_object_add(o, "owned",
                           json_object_new_boolean(blk_is_active(blk)));
    return o;
}

static bool qmp_query_block(json_object *args, json_object **ret,
                            void *opaque, Error **errp)
{
    if (!qmp_args_check(args, no_args, errp)) {
        return false;
    }
    *ret = json_object_new_array();
    for (BlockBackend *b = blk_next(NULL); b; b = blk_next(b)) {
        json_object_array_add(*ret, block_info(b));
    }
    return true;
}

static bool qmp_query_devices(json_object *args, json_object **ret,
                              void *opaque, Error **errp)
{
    if (!qmp_args_check(args, no_args, errp)) {
        return false;
    }
    *ret = json_object_new_array();
    for (Device *d = device_next(NULL); d; d = device_next(d)) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "id", json_object_new_string(d->id));
        json_object_object_add(o, "type", json_object_new_string(d->cls->type));
        if (d->cls->query) {
            d->cls->query(d, o);
        }
        json_object_array_add(*ret, o);
    }
    return true;
}

/* Optional "peer-timeout" (ms); 0 when absent: the daemon's default. */
static bool arg_peer_timeout(json_object *args, uint32_t *ms, Error **errp)
{
    int64_t v = 0;
    json_object *member = NULL;
    *ms = 0;
    if (!qmp_arg_int(args, "peer-timeout", true, &v, errp)) {
        return false;
    }
    if (!json_object_object_get_ex(args, "peer-timeout", &member)) {
        return true;
    }
    if (!migration_peer_timeout_check(v, errp)) {
        return false;
    }
    *ms = (uint32_t)v;
    return true;
}

static bool qmp_migrate(json_object *args, json_object **ret, void *opaque,
                        Error **errp)
{
    static const char *const known[] = { "uri", "detach", "vmm-stop",
                                         "peer-timeout", NULL };
    const char *uri;
    bool detach = true, vmm_stop = false;
    uint32_t peer_timeout;
    /* vmm-stop: wait until the VMM stopped the devices (migration.h). */
    return qmp_args_check(args, known, errp) &&
           qmp_arg_str(args, "uri", false, &uri, errp) &&
           qmp_arg_bool(args, "detach", true, &detach, errp) &&
           qmp_arg_bool(args, "vmm-stop", true, &vmm_stop, errp) &&
           arg_peer_timeout(args, &peer_timeout, errp) &&
           migration_start_outgoing_vmm(uri, vmm_stop, peer_timeout, errp);
}

static bool qmp_migrate_incoming(json_object *args, json_object **ret,
                                 void *opaque, Error **errp)
{
    static const char *const known[] = { "uri", "peer-timeout", NULL };
    const char *uri;
    uint32_t peer_timeout;
    return qmp_args_check(args, known, errp) &&
           qmp_arg_str(args, "uri", false, &uri, errp) &&
           arg_peer_timeout(args, &peer_timeout, errp) &&
           migration_start_incoming(uri, peer_timeout, errp);
}

static bool qmp_migrate_cancel(json_object *args, json_object **ret,
                               void *opaque, Error **errp)
{
    if (!qmp_args_check(args, no_args, errp)) {
        return false;
    }
    migration_cancel();
    return true;
}

static bool qmp_query_migrate(json_object *args, json_object **ret,
                              void *opaque, Error **errp)
{
    if (!qmp_args_check(args, no_args, errp)) {
        return false;
    }
    *ret = migration_query();
    return true;
}

static void stop_loop(void *opaque)
{
    daemon_request_shutdown(opaque);
}

static bool qmp_quit(json_object *args, json_object **ret, void *opaque,
                     Error **errp)
{
    if (!qmp_args_check(args, no_args, errp)) {
        return false;
    }
    log_info("quit requested over QMP");
    /* After this iteration, so the reply goes out first. */
    loop_post(opaque, stop_loop, opaque);
    return true;
}

/* Described for the dispatcher and query-qmp-schema (monitor.h). */
static const QmpArgInfo migrate_args[] = {
    { "uri", "str", false },
    { "detach", "bool", true },
    { "vmm-stop", "bool", true },
    { "peer-timeout", "int", true },
    { NULL, NULL, false },
};

static const QmpArgInfo migrate_incoming_args[] = {
    { "uri", "str", false },
    { "peer-timeout", "int", true },
    { NULL, NULL, false },
};

void daemon_register_qmp_commands(EventLoop *loop)
{
    qmp_register_command_args("query-status", qmp_query_status, NULL, NULL);
    qmp_register_command_args("stop", qmp_stop, NULL, NULL);
    qmp_register_command_args("cont", qmp_cont, NULL, NULL);
    qmp_register_command_args("query-block", qmp_query_block, NULL, NULL);
    qmp_register_command_args("query-devices", qmp_query_devices, NULL, NULL);
    qmp_register_command_args("migrate", qmp_migrate, NULL, migrate_args);
    qmp_register_command_args("migrate-incoming", qmp_migrate_incoming, NULL,
                              migrate_incoming_args);
    qmp_register_command_args("migrate_cancel", qmp_migrate_cancel, NULL,
                              NULL);
    qmp_register_command_args("query-migrate", qmp_query_migrate, NULL, NULL);
    qmp_register_command_args("quit", qmp_quit, loop, NULL);
    daemon_register_vhost_user_qmp_commands();
#ifdef CONFIG_LIBISCSI
    daemon_register_scsi_qmp_commands();
#endif
}
