/* Destination side of a socket migration. */
#include "migration/migration-int.h"
#include "block/ownership.h"
#include "device/device.h"
#include "util/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void dst_message(MigChannel *ch, uint16_t type, const uint8_t *payload,
                        uint32_t len, void *opaque);
static void dst_channel_failed(MigChannel *ch, Error *err, void *opaque);

static const MigChannelOps dst_ops = {
    .message = dst_message,
    .failed = dst_channel_failed,
};

/* Stops serving this source and, still inmigrate, accepts the next one. */
static void dst_end_attempt(bool cancelled)
{
    mig_set_step(MIG_STEP_FINISHED);
    mig_set_status(cancelled ? MIGRATION_STATUS_CANCELLED
                             : MIGRATION_STATUS_FAILED);
    mig_dst_accept_next();
}

/* Our own failure: tell the source (it takes its disks back) and stay as
 * we were, in inmigrate. The source closes the channel; a source that does
 * not is dropped when the next one connects. */
static void dst_fail(Error *err)
{
    log_ratelimited(LOG_ERROR, "incoming migration failed: %s",
                    error_get_pretty(err));
    mig_set_error(err);
    if (mig.ch) {
        const char *msg = error_get_pretty(err);
        mig_channel_send(mig.ch, MIG_MSG_ERROR, msg, (uint32_t)strlen(msg),
                         NULL);
    }
    error_free(err);
    dst_end_attempt(false);
}

/* A silent source or a cancel: nothing more to say to it. Loaded state
 * stays in devices that never run (the disks were never taken) and the
 * next source's state replaces it. */
void mig_dst_abandon(Error *err, bool cancelled)
{
    log_ratelimited(LOG_WARN, "incoming migration %s: %s",
                    cancelled ? "cancelled" : "failed", error_get_pretty(err));
    mig_set_error(err);
    error_free(err);
    mig_close_channel();
    dst_end_attempt(cancelled);
}

static void dst_accept(EventLoop *loop, int fd, int mask, void *opaque)
{
    int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (cfd < 0) {
        if (errno != EAGAIN && errno != EINTR) {
            log_ratelimited(LOG_WARN, "migration: accept failed: %s",
                            strerror(errno));
        }
        return;
    }
    /* One source at a time: others wait in the backlog until this one
     * completes (listening ends) or fails (mig_dst_accept_next). */
    loop_del_fd(loop, fd);
    mig.accepting = false;
    mig_close_channel();    /* a failed attempt the source never closed */
    mig_begin(MIG_ROLE_DESTINATION);
    mig_set_status(MIGRATION_STATUS_SETUP);
    Error *err = NULL;
    mig.ch = mig_channel_new(mig.loop, cfd, &dst_ops, NULL, &err);
    if (!mig.ch) {
        close(cfd);
        dst_fail(err);
        return;
    }
    mig_set_step(MIG_STEP_WAIT_HELLO);
}

bool mig_dst_listen(const MigUri *uri, Error **errp)
{
    int fd = mig_socket_listen(uri, errp);
    if (fd < 0) {
        return false;
    }
    if (!loop_add_fd(mig.loop, fd, LOOP_READ, dst_accept, NULL, errp)) {
        close(fd);
        return false;
    }
    mig.listen_fd = fd;
    mig.accepting = true;
    if (uri->kind == MIG_URI_UNIX) {
        mig.listen_unix_path = strdup(uri->path);
    }
    log_info("waiting for an incoming migration");
    return true;
}

void mig_dst_accept_next(void)
{
    Error *err = NULL;
    if (mig.listen_fd < 0 || mig.accepting ||
        runstate_get() != RUN_STATE_INMIGRATE) {
        return;
    }
    if (!loop_add_fd(mig.loop, mig.listen_fd, LOOP_READ, dst_accept, NULL,
                     &err)) {
        error_prepend(&err, "cannot wait for a new source: ");
        error_report_err(err);
        return;
    }
    mig.accepting = true;
    log_info("waiting for an incoming migration");
}

bool mig_dst_load_state(const uint8_t *data, size_t len, Error **errp)
{
    size_t n;
    VMStateSection *secs = mig_sections(&n, errp);
    if (!secs) {
        return false;
    }
    VMStateErr code = VMSTATE_OK;
    bool ok = vmstate_load_stream(secs, n, data, len, &code, errp);
    free(secs);
    if (!ok) {
        error_prepend(errp, "cannot load device state (%s): ",
                      vmstate_err_name(code));
    }
    return ok;
}

bool mig_dst_switchover(bool run, Error **errp)
{
    /* Seed 004: a VM that will not run does not take its disks; they
     * are taken by a later 'cont'. */
    if (!run) {
        runstate_set(RUN_STATE_PAUSED);
        return true;
    }
    /* Taken apart from vm_start (which then finds the disks owned) only
     * to time the two phases for query-migrate. */
    bool was_owned = blk_ownership_is_owned();
    bool ok = vm_activate_disks(errp);
    if (ok) {
        mig.activated_ns = clock_ns();
        if (!was_owned) {
            vm_last_activation_ns(&mig.activate_disks_ns,
                                  &mig.activate_devices_ns);
        }
        ok = vm_start(errp);
    }
    if (!ok) {
        Error *local = NULL;
        /* Leave the disks to the source, which takes them back. */
        if (!vm_inactivate_disks(&local)) {
            error_report_err(local);
        }
        return false;
    }
    mig.started_ns = clock_ns();
    return true;
}

static bool dst_load_and_ack(const uint8_t *data, size_t len, Error **errp)
{
    if (!mig_dst_load_state(data, len, errp)) {
        return false;
    }
    mig.loaded_ns = clock_ns();
    mig_set_step(MIG_STEP_WAIT_SWITCHOVER);
    return mig_channel_send(mig.ch, MIG_MSG_STATE_LOADED, NULL, 0, errp);
}

static int64_t dst_delayed_load(EventLoop *loop, uint64_t id, void *opaque)
{
    Error *err = NULL;
    mig.load_timer = 0;
    uint8_t *data = mig.pending_state;
    mig.pending_state = NULL;
    if (!dst_load_and_ack(data, mig.pending_len, &err)) {
        dst_fail(err);
    }
    free(data);
    return LOOP_TIMER_DONE;
}

static bool dst_receive_state(const uint8_t *payload, uint32_t len,
                              Error **errp)
{
    mig.device_state_size = len;
    mig.state_ns = clock_ns();
    mig_set_status(MIGRATION_STATUS_DEVICE);
    if (!mig.debug_load_delay_ms) {
        return dst_load_and_ack(payload, len, errp);
    }
    mig.pending_state = malloc(len ? len : 1);
    if (!mig.pending_state) {
        error_setg(errp, "out of memory");
        return false;
    }
    memcpy(mig.pending_state, payload, len);
    mig.pending_len = len;
    mig_set_step(MIG_STEP_LOADING);
    log_info("debug: loading device state in %u ms", mig.debug_load_delay_ms);
    mig.load_timer = loop_add_timer(mig.loop, mig.debug_load_delay_ms,
                                    dst_delayed_load, NULL);
    return true;
}

static bool dst_handle_switchover(const uint8_t *payload, uint32_t len,
                                  Error **errp)
{
    /* channel.h §3: one byte of flags, unknown bits refused. */
    if (len != 1 || (payload[0] & ~MIG_SWITCHOVER_RUN)) {
        error_setg(errp, "malformed SWITCHOVER message");
        return false;
    }
    mig.switchover_ns = clock_ns();
    if (!mig_dst_switchover(payload[0] & MIG_SWITCHOVER_RUN, errp)) {
        return false;
    }
    mig_set_step(MIG_STEP_FINISHED);
    mig_stop_listening();
    if (!mig_channel_send(mig.ch, MIG_MSG_SWITCHOVER_DONE, NULL, 0, errp)) {
        return false;
    }
    mig_set_status(MIGRATION_STATUS_COMPLETED);
    return true;
}

static bool dst_handle(uint16_t type, const uint8_t *payload, uint32_t len,
                       Error **errp)
{
    if (type == MIG_MSG_ERROR) {
        char *text = mig_error_text(payload, len);
        error_setg(errp, "source failed: %s", text ? text : "?");
        free(text);
        return false;
    }
    if (type == MIG_MSG_KEEPALIVE && len == 0) {
        return mig_keepalive_received(errp);
    }
    if (type == MIG_MSG_HELLO && mig.step == MIG_STEP_WAIT_HELLO) {
        ByteBuf hello;
        if (!mig_hello_check(payload, len, &mig.peer_version,
                             &mig.peer_hello_timeout_ms, errp)) {
            return false;
        }
        /* channel.h §2: answer in the source's version. */
        bytebuf_init(&hello);
        mig_hello_encode(&hello, mig.peer_version, mig.peer_timeout_ms);
        bool ok = mig_channel_send(mig.ch, MIG_MSG_HELLO, hello.data,
                                   (uint32_t)hello.len, errp);
        bytebuf_free(&hello);
        mig.setup_done_ns = clock_ns();
        mig_set_step(MIG_STEP_WAIT_STATE);
        mig_set_status(MIGRATION_STATUS_ACTIVE);
        return ok;
    }
    if (type == MIG_MSG_DEVICE_STATE && mig.step == MIG_STEP_WAIT_STATE) {
        return dst_receive_state(payload, len, errp);
    }
    if (type == MIG_MSG_SWITCHOVER && mig.step == MIG_STEP_WAIT_SWITCHOVER) {
        return dst_handle_switchover(payload, len, errp);
    }
    /* channel.h §3: only the message this step expects. */
    error_setg(errp, "unexpected %s message (%u bytes) from the source",
               mig_msg_name(type), len);
    log_ratelimited(LOG_WARN, "migration: %s", error_get_pretty(*errp));
    return false;
}

static void dst_message(MigChannel *ch, uint16_t type, const uint8_t *payload,
                        uint32_t len, void *opaque)
{
    Error *err = NULL;
    if (mig.step == MIG_STEP_FINISHED) {
        log_ratelimited(LOG_WARN, "migration: ignoring %s after the end",
                        mig_msg_name(type));
        return;
    }
    if (!dst_handle(type, payload, len, &err)) {
        dst_fail(err);
    }
}

static void dst_channel_failed(MigChannel *ch, Error *err, void *opaque)
{
    if (mig.step == MIG_STEP_FINISHED) {
        error_free(err);        /* the source hung up after the end */
    } else {
        error_prepend(&err, "migration channel: ");
        mig_close_channel();
        dst_fail(err);
        return;
    }
    mig_close_channel();
}
