/* Source side of a socket migration, one function per flow step. */
#include "migration/migration-int.h"
#include "block/block.h"
#include "block/ownership.h"
#include "device/device.h"
#include "util/log.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void src_message(MigChannel *ch, uint16_t type, const uint8_t *payload,
                        uint32_t len, void *opaque);
static void src_channel_failed(MigChannel *ch, Error *err, void *opaque);
static void src_stop_and_send(void);

static const MigChannelOps src_ops = {
    .message = src_message,
    .failed = src_channel_failed,
};

static bool src_send(uint16_t type, const void *payload, uint32_t len,
                     Error **errp)
{
    return mig_channel_send(mig.ch, type, payload, len, errp);
}

/* Step: the connection is up; greet the destination. */
static bool src_connected(int fd, Error **errp)
{
    mig.ch = mig_channel_new(mig.loop, fd, &src_ops, NULL, errp);
    if (!mig.ch) {
        close(fd);
        return false;
    }
    ByteBuf hello;
    bytebuf_init(&hello);
    mig_hello_encode(&hello, MIG_PROTO_VERSION, mig.peer_timeout_ms);
    bool ok = src_send(MIG_MSG_HELLO, hello.data, (uint32_t)hello.len, errp);
    bytebuf_free(&hello);
    mig_set_step(MIG_STEP_WAIT_HELLO);
    return ok;
}

static void src_connect_ready(EventLoop *loop, int fd, int mask, void *opaque)
{
    Error *err = NULL;
    loop_del_fd(loop, fd);
    mig.connect_fd = -1;
    if (!mig_socket_finish_connect(fd, &err)) {
        close(fd);
        mig_src_fail(err, false);
        return;
    }
    if (!src_connected(fd, &err)) {
        mig_src_fail(err, false);
    }
}

bool mig_src_start_socket(const MigUri *uri, bool vmm_stop, Error **errp)
{
    bool in_progress;
    mig_begin(MIG_ROLE_SOURCE);
    mig.vmm_stop = vmm_stop;
    mig.was_running = runstate_is_running();
    mig_set_status(MIGRATION_STATUS_SETUP);
    Error *err = NULL;
    int fd = mig_socket_connect(uri, &in_progress, &err);
    if (fd < 0) {
        /* The command fails, and query-migrate says why as well. */
        mig_set_error(err);
        mig_set_status(MIGRATION_STATUS_FAILED);
        error_propagate(errp, err);
        return false;
    }
    mig_set_step(MIG_STEP_CONNECTING);
    if (in_progress) {
        mig.connect_fd = fd;
        if (!loop_add_fd(mig.loop, fd, LOOP_WRITE, src_connect_ready, NULL,
                         &err)) {
            mig.connect_fd = -1;
            close(fd);
            mig_src_fail(err, false);
        }
        return true;
    }
    if (!src_connected(fd, &err)) {
        mig_src_fail(err, false);
    }
    return true;
}

static void src_vm_stopped(void *opaque, Error *err)
{
    if (mig.role != MIG_ROLE_SOURCE || mig.step != MIG_STEP_STOPPING) {
        /* Cancelled or failed while the devices quiesced. */
        error_free(err);
        mig_src_recover();
        return;
    }
    if (err) {
        mig_src_fail(err, false);
        return;
    }
    mig.stopped_ns = clock_ns();
    mig_global.running = mig.was_running;
    mig_set_status(MIGRATION_STATUS_DEVICE);
    mig.stopped_then();
}

void mig_src_stop_vm(MigStoppedFunc *then)
{
    mig.stop_ns = clock_ns();
    mig.stopped_then = then;
    mig_set_step(MIG_STEP_STOPPING);
    vm_stop(RUN_STATE_FINISH_MIGRATE, src_vm_stopped, NULL);
}

bool mig_src_save_state(uint8_t **data, size_t *len, bool with_description,
                        Error **errp)
{
    size_t n;
    VMStateSection *secs = mig_sections(&n, errp);
    if (!secs) {
        return false;
    }
    ByteBuf buf;
    bytebuf_init(&buf);
    bool ok = vmstate_save_stream(secs, n, with_description, &buf, errp);
    free(secs);
    if (ok && buf.failed) {
        error_setg(errp, "out of memory saving device state");
        ok = false;
    }
    if (!ok) {
        bytebuf_free(&buf);
        return false;
    }
    *data = bytebuf_steal(&buf, len);
    mig.device_state_size = *len;
    return true;
}

/* Step: save and send; runs once the devices stopped. */
static bool src_send_state(Error **errp)
{
    uint8_t *data;
    size_t len;
    if (!mig_src_save_state(&data, &len, false, errp)) {
        return false;
    }
    if (len > MIG_FRAME_MAX_PAYLOAD) {
        error_setg(errp, "device state too large (%zu bytes)", len);
        free(data);
        return false;
    }
    bool ok = src_send(MIG_MSG_DEVICE_STATE, data, (uint32_t)len, errp);
    free(data);
    mig.saved_ns = clock_ns();
    mig_set_step(MIG_STEP_WAIT_LOADED);
    return ok;
}

static void src_stopped_send(void)
{
    Error *err = NULL;
    if (!src_send_state(&err)) {
        mig_src_fail(err, false);
    }
}

/* Step: the destination greeted us (and the VMM stopped the devices). */
static void src_stop_and_send(void)
{
    mig_src_stop_vm(src_stopped_send);
}

/* Step (vmm-stop): the channel is up; the state is final only once the
 * VMM stopped every device, which may be now (a device that was never
 * started) or at the end of the VMM's own migration. */
static bool src_wait_vmm(Error **errp)
{
    mig_set_step(MIG_STEP_WAIT_VMM_STOP);
    if (!device_vmm_stopped_all()) {
        log_info("migration: waiting for the VMM to stop the devices");
        return true;
    }
    mig.vmm_wait_ns = clock_ns() - mig.setup_done_ns;
    src_stop_and_send();
    return true;
}

/* Only an image's ownership lock proves the destination let go. */
static bool late_lock_exists(void)
{
    for (BlockBackend *b = blk_next(NULL); b; b = blk_next(b)) {
        if (!blk_is_read_only(b)) {
            return true;
        }
    }
    return false;
}

/* Takes err. The devices stay stopped; 'cont' remains the way back. */
static void late_refuse(Error *err)
{
    error_prepend(&err, "the VMM runs the VM here again after the device "
                  "handoff, but ");
    mig.late = MIG_LATE_REFUSED;
    mig.late_error = strdup(error_get_pretty(err));
    log_error("migration: %s; the devices stay stopped until 'cont'",
              error_get_pretty(err));
    error_free(err);
}

/* The VMM runs the VM here again after our handoff completed: its own
 * migration failed late (e.g. the destination died after it took the
 * disks and the reservations). Take everything back before a request is
 * served: vm_start takes the images (their locks prove the destination
 * let go; a live destination keeps them and we refuse), runs the devices'
 * activation (scsi-block: verify, REGISTER, PREEMPT back) and only then
 * starts the devices. */
static void src_late_recover(void *opaque)
{
    Error *err = NULL;
    if (mig.late != MIG_LATE_PENDING) {
        return;
    }
    if (runstate_get() != RUN_STATE_POSTMIGRATE) {
        mig.late = MIG_LATE_NONE;       /* 'cont' got there first */
        return;
    }
    uint64_t started = clock_ns();
    if (!late_lock_exists()) {
        error_setg(&err, "no read-write image has a lock that shows the "
                   "destination released the disks: taking them and the "
                   "reservations back could steal them from a live "
                   "destination");
        late_refuse(err);
        return;
    }
    if (!vm_start(&err)) {
        error_prepend(&err, "taking the disks back failed: ");
        late_refuse(err);
        return;
    }
    mig.late_ns = clock_ns() - started;
    mig.late = MIG_LATE_RESUMED;
    log_info("migration: the VMM's migration failed after the device "
             "handoff; disks and reservations taken back in %.3f ms, "
             "running again", (double)mig.late_ns / 1e6);
    /* The VM did not move after all. Keep the handoff's timing. */
    error_setg(&err, "the VMM's migration failed after the device handoff; "
               "the source took its disks back and runs the VM");
    mig_set_error(err);
    error_free(err);
    uint64_t end = mig.end_ns;
    mig_set_status(MIGRATION_STATUS_FAILED);
    mig.end_ns = end;
}

static void src_late_failure(Device *dev)
{
    if (!mig.was_running) {
        log_ratelimited(LOG_WARN, "migration: the VMM restarted device '%s' "
                        "after the handoff, but the VM was not running "
                        "before it: it stays stopped until 'cont'", dev->id);
        return;
    }
    log_warn("migration: the VMM restarted device '%s' after the disks were "
             "handed over: its migration failed; taking the disks back",
             dev->id);
    mig.late = MIG_LATE_PENDING;
    /* Not from inside the vhost-user message that started the ring. */
    if (!loop_post(mig.loop, src_late_recover, NULL)) {
        src_late_recover(NULL);
    }
}

/* A device's VMM started or stopped its data path. */
void mig_src_vmm_changed(Device *dev)
{
    Error *err = NULL;
    if (mig.role != MIG_ROLE_SOURCE || !mig.vmm_stop) {
        return;
    }
    bool stopped = device_vmm_stopped_all();
    if (mig.step == MIG_STEP_WAIT_VMM_STOP && stopped) {
        log_info("migration: the VMM stopped the devices ('%s' last)",
                 dev->id);
        mig.vmm_wait_ns = clock_ns() - mig.setup_done_ns;
        src_stop_and_send();
    } else if ((mig.step == MIG_STEP_STOPPING ||
                mig.step == MIG_STEP_WAIT_LOADED ||
                mig.step == MIG_STEP_WAIT_DONE) && !stopped) {
        /* The VMM runs the VM here again: its migration failed. Ours must
         * too, and the disks come back before a request is served (the
         * devices resume only in mig_src_recover). */
        error_setg(&err, "the VMM restarted device '%s' before the "
                   "switchover completed", dev->id);
        mig_src_fail(err, false);
    } else if (mig.status == MIGRATION_STATUS_COMPLETED && !stopped &&
               runstate_get() == RUN_STATE_POSTMIGRATE &&
               mig.late == MIG_LATE_NONE) {
        src_late_failure(dev);
    }
}

bool mig_src_give_up_disks(Error **errp)
{
    if (!vm_inactivate_disks(errp)) {
        return false;
    }
    mig.disks_given_up = true;
    return true;
}

/* Step: the destination holds the state; hand the disks over. */
static bool src_switchover(Error **errp)
{
    if (!mig_src_give_up_disks(errp)) {
        return false;
    }
    mig.inactivated_ns = clock_ns();
    uint8_t flags = mig.was_running ? MIG_SWITCHOVER_RUN : 0;
    mig_set_step(MIG_STEP_WAIT_DONE);
    return src_send(MIG_MSG_SWITCHOVER, &flags, 1, errp);
}

void mig_src_complete(void)
{
    mig_set_step(MIG_STEP_FINISHED);
    mig.downtime_valid = true;
    mig_close_channel();
    runstate_set(RUN_STATE_POSTMIGRATE);
    mig_set_status(MIGRATION_STATUS_COMPLETED);
    log_info("migration completed: downtime %.3f ms, device state %llu bytes",
             (double)(mig.end_ns - mig.stop_ns) / 1e6,
             (unsigned long long)mig.device_state_size);
}

void mig_src_recover(void)
{
    Error *err = NULL;
    RunState rs = runstate_get();
    /* Seed 004: whatever step failed, take the disks back before the VM
     * may run again (a no-op when they were never given up). */
    if (!vm_activate_disks(&err)) {
        error_prepend(&err, "cannot take the disks back: ");
        mig_set_error(err);
        error_report_err(err);
        if (rs == RUN_STATE_FINISH_MIGRATE) {
            runstate_set(RUN_STATE_PAUSED);
        }
        return;
    }
    if (rs != RUN_STATE_FINISH_MIGRATE) {
        return;     /* never stopped: nothing to undo */
    }
    if (!mig.was_running) {
        runstate_set(RUN_STATE_PAUSED);
        return;
    }
    runstate_set(RUN_STATE_PAUSED);
    if (!vm_start(&err)) {
        error_prepend(&err, "cannot resume after the failed migration: ");
        mig_set_error(err);
        error_report_err(err);
    }
}

void mig_src_fail(Error *err, bool cancelled)
{
    log_ratelimited(LOG_WARN, "migration %s: %s",
                    cancelled ? "cancelled" : "failed", error_get_pretty(err));
    mig_set_error(err);
    error_free(err);
    mig_set_step(MIG_STEP_FINISHED);
    mig_close_channel();
    mig_src_recover();
    mig_set_status(cancelled ? MIGRATION_STATUS_CANCELLED
                             : MIGRATION_STATUS_FAILED);
}

static bool src_handle(uint16_t type, const uint8_t *payload, uint32_t len,
                       Error **errp)
{
    if (type == MIG_MSG_ERROR) {
        char *text = mig_error_text(payload, len);
        error_setg(errp, "destination failed: %s", text ? text : "?");
        free(text);
        return false;
    }
    if (type == MIG_MSG_KEEPALIVE && len == 0) {
        return mig_keepalive_received(errp);
    }
    if (type == MIG_MSG_HELLO && mig.step == MIG_STEP_WAIT_HELLO) {
        if (!mig_hello_check(payload, len, &mig.peer_version,
                             &mig.peer_hello_timeout_ms, errp)) {
            return false;
        }
        mig.setup_done_ns = clock_ns();
        mig_set_status(MIGRATION_STATUS_ACTIVE);
        if (mig.vmm_stop) {
            return src_wait_vmm(errp);
        }
        src_stop_and_send();
        return true;
    }
    if (type == MIG_MSG_STATE_LOADED && mig.step == MIG_STEP_WAIT_LOADED &&
        len == 0) {
        mig.loaded_ns = clock_ns();
        return src_switchover(errp);
    }
    if (type == MIG_MSG_SWITCHOVER_DONE && mig.step == MIG_STEP_WAIT_DONE &&
        len == 0) {
        mig_src_complete();
        device_handed_over_all();
        return true;
    }
    /* channel.h §3: only the message this step expects. */
    error_setg(errp, "unexpected %s message (%u bytes) from the destination",
               mig_msg_name(type), len);
    log_ratelimited(LOG_WARN, "migration: %s", error_get_pretty(*errp));
    return false;
}

static void src_message(MigChannel *ch, uint16_t type, const uint8_t *payload,
                        uint32_t len, void *opaque)
{
    Error *err = NULL;
    if (!src_handle(type, payload, len, &err)) {
        mig_src_fail(err, false);
    }
}

static void src_channel_failed(MigChannel *ch, Error *err, void *opaque)
{
    error_prepend(&err, "migration channel: ");
    mig_src_fail(err, false);
}
