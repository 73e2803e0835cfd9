/* scsi-block: the device class, the libiscsi session on the event loop,
 * passthrough of commands, and session loss (see scsi-block.h). */
#include "scsi/scsi-block.h"
#include "scsi/scsi-internal.h"
#include "scsi/scsi-pr-lun.h"
#include "util/log.h"

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#define SB_SERVICE_MS 100       /* timeouts, reconnect progress */
#define SB_TIMEOUT_DEFAULT_S 30 /* as Linux's default SCSI command timeout */
#define SB_TIMEOUT_MAX_S 3600

typedef struct SbTask SbTask;

struct ScsiBlock {
    Device dev;
    ScsiLun lun;
    ScsiBus *bus;
    struct iscsi_context *iscsi;
    int iscsi_lun;
    char *portal, *target, *initiator;
    uint32_t isid;              /* the same I_T nexus on every login */
    uint32_t timeout_s;         /* per command and login PDU; 0: none */
    int fd;                     /* registered on lun.loop, or -1 */
    uint64_t timer;
    bool session_lost;          /* no session: commands get BUSY */
    bool connecting;            /* an asynchronous login is under way */
    SbTask *tasks;              /* commands at the target */
    ScsiBlockCompletionFilter *filter;
    void *filter_opaque;
    ScsiPr *pr;                 /* migrate-pr=on: reservations (scsi-pr-lun.h) */
    ScsiPrWire pr_wire;         /* the "scsi-block/pr" subsection's fields */
    uint64_t pr_fenced_key;     /* the "scsi-block/pr-fenced" subsection's */
    char pr_nexus[SCSI_PR_NAME_MAX]; /* "scsi-block/pr-nexus" */
    bool x_lun_caps;            /* test only: act as if the LUN reported
                                   SIP_C and ATC_C (tgt never does) */
};

struct SbTask {
    ScsiBlock *sb;
    ScsiRequest *req;
    struct scsi_task *task;
    struct scsi_iovec *iov;
    SbTask *next;
};

static void sb_update_fd(ScsiBlock *sb);
static void sb_sync_done(ScsiRequest *req, void *opaque);

bool scsi_block_session_up(const ScsiBlock *sb)
{
    return !sb->session_lost && iscsi_is_logged_in(sb->iscsi);
}

void scsi_block_set_completion_filter(ScsiBlock *sb,
                                      ScsiBlockCompletionFilter *fn,
                                      void *opaque)
{
    sb->filter = fn;
    sb->filter_opaque = opaque;
}

static void sb_unlink(ScsiBlock *sb, SbTask *t)
{
    for (SbTask **p = &sb->tasks; *p; p = &(*p)->next) {
        if (*p == t) {
            *p = t->next;
            return;
        }
    }
}

/* Status, sense and residual exactly as the target sent them. */
static void sb_copy_result(ScsiRequest *req, struct scsi_task *task,
                           int status)
{
    req->status = (uint8_t)status;
    req->sense_len = 0;
    if (status == SAM_STAT_CHECK_CONDITION && task->datain.size >= 2) {
        /* RFC 7143 11.4.7.2: SenseLength (2 bytes), then sense data. */
        size_t len = ld_be16(task->datain.data);
        size_t avail = (size_t)task->datain.size - 2;
        len = len < avail ? len : avail;
        len = len < SCSI_SENSE_MAX ? len : SCSI_SENSE_MAX;
        memcpy(req->sense, task->datain.data + 2, len);
        req->sense_len = (uint32_t)len;
    }
    req->residual = 0;
    if (task->residual_status == SCSI_RESIDUAL_UNDERFLOW) {
        req->residual = task->residual < req->data_len ? task->residual :
                        req->data_len;
    }
}

static void sb_session_lost(ScsiBlock *sb)
{
    if (!sb->session_lost) {
        log_ratelimited(LOG_WARN, "scsi-block %s: iSCSI session lost: %s",
                        sb->dev.id, iscsi_get_error(sb->iscsi));
        sb->session_lost = true;
    }
}

/* x-lun-caps=on, for tests: a LUN that reports SIP_C and ATC_C in REPORT
 * CAPABILITIES (SPC-4 6.14.4, byte 2 bits 3 and 2), so the masking that
 * migrate-pr does can be seen end to end on a target that reports
 * neither. */
static void sb_fake_lun_caps(ScsiRequest *req)
{
    uint8_t b2;
    if (req->cdb[0] != 0x5e || (req->cdb[1] & 0x1f) != 0x02 ||
        req->status != SAM_STAT_GOOD || req->data_len - req->residual < 3 ||
        scsi_iov_to_buf(req->iov, req->iovcnt, 2, &b2, 1) != 1) {
        return;
    }
    b2 |= 0x0c;
    scsi_iov_from_buf(req->iov, req->iovcnt, 2, &b2, 1);
}

static void sb_task_cb(struct iscsi_context *iscsi, int status,
                       void *command_data, void *opaque)
{
    SbTask *t = opaque;
    ScsiBlock *sb = t->sb;
    ScsiRequest *req = t->req;

    sb_unlink(sb, t);
    if (status == SCSI_STATUS_CANCELLED && req->cancelled) {
        /* Aborted by a TMF: scsi_req_complete reports it so. */
    } else if (status == SCSI_STATUS_CANCELLED ||
               status == SCSI_STATUS_ERROR ||
               status == SCSI_STATUS_TIMEOUT) {
        /* The session went away under the command (SAM-5 6.3.4): the
         * initiator must retry on the new nexus. */
        sb_session_lost(sb);
        scsi_req_set_sense(req, SENSE_UA_I_T_NEXUS_LOSS);
        req->residual = req->data_len;
    } else {
        sb_copy_result(req, t->task, status);
        if (sb->x_lun_caps) {
            sb_fake_lun_caps(req);
        }
        if (sb->filter) {
            sb->filter(sb, req, sb->filter_opaque);
        }
    }
    scsi_free_scsi_task(t->task);
    free(t->iov);
    free(t);
    scsi_req_complete(req);
}

/* The CDB length to send: the opcode's, or all the controller gave for
 * variable-length and vendor CDBs. */
static int sb_cdb_len(const ScsiRequest *req)
{
    size_t n = scsi_cdb_length(req->cdb[0]);
    return (int)(n ? n : req->cdb_len);
}

static bool sb_attach_data(SbTask *t)
{
    ScsiRequest *req = t->req;
    if (req->dir == SCSI_DIR_NONE || req->iovcnt <= 0) {
        return true;
    }
    t->iov = calloc((size_t)req->iovcnt, sizeof(*t->iov));
    if (!t->iov) {
        return false;
    }
    for (int i = 0; i < req->iovcnt; i++) {
        t->iov[i].iov_base = req->iov[i].iov_base;
        t->iov[i].iov_len = req->iov[i].iov_len;
    }
    if (req->dir == SCSI_DIR_TO_DEV) {
        scsi_task_set_iov_out(t->task, t->iov, req->iovcnt);
    } else {
        scsi_task_set_iov_in(t->task, t->iov, req->iovcnt);
    }
    return true;
}

static void sb_submit(ScsiLun *lun, ScsiRequest *req)
{
    ScsiBlock *sb = lun->opaque;
    int dir = req->dir == SCSI_DIR_TO_DEV ? SCSI_XFER_WRITE :
              req->dir == SCSI_DIR_FROM_DEV ? SCSI_XFER_READ :
              SCSI_XFER_NONE;
    /* Guest requests only: the reservation code's own commands pass. */
    if (sb->pr && req->complete != sb_sync_done &&
        scsi_pr_gate(sb->pr, req) != SCSI_PR_GATE_PASS) {
        return;
    }
    if (sb->session_lost) {
        req->status = SAM_STAT_BUSY;        /* SAM-5 5.3.1: retry later */
        scsi_req_complete(req);
        return;
    }
    if (sb_cdb_len(req) > req->cdb_len) {
        scsi_req_complete_sense(req, SENSE_INVALID_FIELD_IN_CDB);
        return;
    }
    SbTask *t = calloc(1, sizeof(*t));
    if (t) {
        t->req = req;       /* sb_attach_data reads it */
        t->task = scsi_create_task(sb_cdb_len(req), req->cdb, dir,
                                   (int)req->data_len);
    }
    if (!t || !t->task || !sb_attach_data(t)) {
        if (t && t->task) {
            scsi_free_scsi_task(t->task);
        }
        free(t);
        scsi_req_complete_sense(req, SENSE_ABORTED_COMMAND);
        return;
    }
    t->sb = sb;
    t->req = req;
    req->lun_priv = t;
    t->next = sb->tasks;
    sb->tasks = t;
    if (iscsi_scsi_command_async(sb->iscsi, sb->iscsi_lun, t->task,
                                 sb_task_cb, NULL, t) != 0) {
        sb_unlink(sb, t);
        scsi_free_scsi_task(t->task);
        free(t->iov);
        free(t);
        sb_session_lost(sb);
        req->status = SAM_STAT_BUSY;
        scsi_req_complete(req);
        return;
    }
    sb_update_fd(sb);
}

static void sb_tmf_cb(struct iscsi_context *iscsi, int status,
                      void *command_data, void *opaque)
{
    /* The local side of the abort/reset is already done. */
}

static void sb_cancel(ScsiLun *lun, ScsiRequest *req)
{
    ScsiBlock *sb = lun->opaque;
    if (sb->pr && scsi_pr_cancel(sb->pr, req)) {
        return;
    }
    for (SbTask *t = sb->tasks; t; t = t->next) {
        if (t->req == req) {
            /* Abort at the target too (RFC 7143 11.5), then locally: the
             * callback runs at once with SCSI_STATUS_CANCELLED. */
            iscsi_task_mgmt_abort_task_async(sb->iscsi, t->task, sb_tmf_cb,
                                             NULL);
            iscsi_scsi_cancel_task(sb->iscsi, t->task);
            sb_update_fd(sb);
            return;
        }
    }
}

static void sb_reset(ScsiLun *lun, ScsiResetKind kind)
{
    ScsiBlock *sb = lun->opaque;
    /* The target keeps its own unit attentions; forward the reset. */
    if (kind == SCSI_RESET_LUN && scsi_block_session_up(sb)) {
        iscsi_task_mgmt_lun_reset_async(sb->iscsi, (uint32_t)sb->iscsi_lun,
                                        sb_tmf_cb, NULL);
        sb_update_fd(sb);
    }
}


/* ---- The session on the event loop ----------------------------------- */

static int sb_loop_mask(int events)
{
    return ((events & POLLIN) ? LOOP_READ : 0) |
           ((events & POLLOUT) ? LOOP_WRITE : 0);
}

static void sb_fd_handler(EventLoop *loop, int fd, int mask, void *opaque);

static void sb_unregister_fd(ScsiBlock *sb)
{
    if (sb->fd >= 0 && sb->lun.loop) {
        loop_del_fd(sb->lun.loop, sb->fd);
    }
    sb->fd = -1;
}

/* Watches libiscsi's fd for what it wants now (iscsi_which_events). */
static void sb_update_fd(ScsiBlock *sb)
{
    int fd = sb->iscsi ? iscsi_get_fd(sb->iscsi) : -1;
    int mask = fd >= 0 ? sb_loop_mask(iscsi_which_events(sb->iscsi)) : 0;

    if (fd != sb->fd) {
        sb_unregister_fd(sb);
    }
    if (fd < 0 || !sb->lun.loop) {
        return;
    }
    if (sb->fd == fd && loop_set_fd_mask(sb->lun.loop, fd, mask, NULL)) {
        return;
    }
    /* New fd, or one libiscsi replaced under the same number. */
    loop_del_fd(sb->lun.loop, fd);
    Error *err = NULL;
    if (!loop_add_fd(sb->lun.loop, fd, mask, sb_fd_handler, sb, &err)) {
        log_ratelimited(LOG_ERROR, "scsi-block %s: %s", sb->dev.id,
                        error_get_pretty(err));
        error_free(err);
        return;
    }
    sb->fd = fd;
}

static struct iscsi_context *sb_new_context(ScsiBlock *sb, Error **errp)
{
    struct iscsi_context *ctx = iscsi_create_context(sb->initiator);
    if (!ctx) {
        error_setg(errp, "cannot create an iSCSI context");
        return NULL;
    }
    iscsi_set_isid_random(ctx, sb->isid, 0);
    iscsi_set_targetname(ctx, sb->target);
    iscsi_set_session_type(ctx, ISCSI_SESSION_NORMAL);
    iscsi_set_header_digest(ctx, ISCSI_HEADER_DIGEST_NONE_CRC32C);
    /* A target that stops answering must not hold a command, a drain at
     * migration or a login forever: the command times out, the session is
     * dropped (in-flight commands fail retryably) and logged in again. */
    iscsi_set_timeout(ctx, (int)sb->timeout_s);
    /* libiscsi's own reconnect replays in-flight commands; we fail them
     * to the initiator instead and log in again ourselves. */
    iscsi_set_noautoreconnect(ctx, 1);
    return ctx;
}

/* Fails what is in flight (retryable) and drops the context. */
static void sb_drop_session(ScsiBlock *sb)
{
    sb->session_lost = true;
    if (!sb->iscsi) {
        return;
    }
    sb_unregister_fd(sb);
    iscsi_scsi_cancel_all_tasks(sb->iscsi);
    while (sb->tasks) {
        /* Anything libiscsi no longer knew about. */
        SbTask *t = sb->tasks;
        sb_task_cb(sb->iscsi, SCSI_STATUS_CANCELLED, NULL, t);
    }
    iscsi_destroy_context(sb->iscsi);
    sb->iscsi = NULL;
    sb->connecting = false;
}

static void sb_connect_cb(struct iscsi_context *iscsi, int status,
                          void *command_data, void *opaque)
{
    ScsiBlock *sb = opaque;
    sb->connecting = false;
    if (status == SCSI_STATUS_GOOD) {
        sb->session_lost = false;
        log_info("scsi-block %s: iSCSI session to %s re-established",
                 sb->dev.id, sb->target);
    }
}

static void sb_try_reconnect(ScsiBlock *sb)
{
    if (sb->iscsi && (sb->connecting || !sb->session_lost)) {
        return;
    }
    if (sb->iscsi) {
        sb_drop_session(sb);        /* a failed login attempt */
    }
    sb->iscsi = sb_new_context(sb, NULL);
    if (!sb->iscsi) {
        return;
    }
    sb->connecting = true;
    if (iscsi_full_connect_async(sb->iscsi, sb->portal, sb->iscsi_lun,
                                 sb_connect_cb, sb) != 0) {
        log_ratelimited(LOG_WARN, "scsi-block %s: reconnect to %s: %s",
                        sb->dev.id, sb->portal, iscsi_get_error(sb->iscsi));
        iscsi_destroy_context(sb->iscsi);
        sb->iscsi = NULL;
        sb->connecting = false;
        return;
    }
    sb_update_fd(sb);
}

/* After any libiscsi activity: a loss seen in a callback is handled here,
 * outside libiscsi's own call stack. */
static void sb_after_service(ScsiBlock *sb, int ret)
{
    if (ret < 0 && !sb->connecting) {
        sb_session_lost(sb);
    }
    if (sb->session_lost && sb->iscsi && !sb->connecting) {
        sb_drop_session(sb);
    }
    sb_update_fd(sb);
}

static void sb_fd_handler(EventLoop *loop, int fd, int mask, void *opaque)
{
    ScsiBlock *sb = opaque;
    int revents = ((mask & LOOP_READ) ? POLLIN : 0) |
                  ((mask & LOOP_WRITE) ? POLLOUT : 0) |
                  ((mask & LOOP_HUP) ? POLLHUP : 0);
    if (!sb->iscsi) {
        return;
    }
    int ret = iscsi_service(sb->iscsi, revents);
    if (ret < 0 && sb->connecting) {
        /* The login failed: try again from the timer. */
        sb->connecting = false;
        sb_drop_session(sb);
    }
    sb_after_service(sb, ret);
}

static int64_t sb_timer_cb(EventLoop *loop, uint64_t id, void *opaque)
{
    ScsiBlock *sb = opaque;
    if (sb->iscsi) {
        /* libiscsi does its timeouts from iscsi_service(0). */
        sb_after_service(sb, iscsi_service(sb->iscsi, 0));
    }
    if (sb->session_lost) {
        sb_try_reconnect(sb);
    }
    return SB_SERVICE_MS;
}

static bool sb_attach_loop(ScsiLun *lun, EventLoop *loop, Error **errp)
{
    ScsiBlock *sb = lun->opaque;
    sb_unregister_fd(sb);
    if (sb->timer && lun->loop) {
        loop_del_timer(lun->loop, sb->timer);
    }
    lun->loop = loop;
    sb->timer = loop_add_timer(loop, SB_SERVICE_MS, sb_timer_cb, sb);
    sb_update_fd(sb);
    return true;
}

static const ScsiLunOps sb_lun_ops = {
    .submit = sb_submit,
    .cancel = sb_cancel,
    .reset = sb_reset,
    .attach_loop = sb_attach_loop,
};

/* ---- Synchronous commands ---------------------------------------------- */

typedef struct SbSync {
    ScsiRequest req;
    bool done;
} SbSync;

static void sb_sync_done(ScsiRequest *req, void *opaque)
{
    ((SbSync *)opaque)->done = true;
}

void scsi_block_resubmit(ScsiBlock *sb, ScsiRequest *req)
{
    sb_submit(&sb->lun, req);
}

/* A request for one synchronous command; false (errp set) if invalid. */
static bool sb_sync_prepare(ScsiBlock *sb, SbSync *s, struct iovec *iov,
                            const ScsiBlockCommand *c, Error **errp)
{
    if (c->cdb_len == 0 || c->cdb_len > SCSI_CDB_MAX) {
        error_setg(errp, "scsi-block %s: bad CDB length %zu", sb->dev.id,
                   c->cdb_len);
        return false;
    }
    *s = (SbSync){ 0 };
    *iov = (struct iovec){ .iov_base = c->buf, .iov_len = c->len };
    memcpy(s->req.cdb, c->cdb, c->cdb_len);
    s->req.cdb_len = (uint8_t)c->cdb_len;
    s->req.dir = c->buf && c->len ? c->dir : SCSI_DIR_NONE;
    s->req.iov = iov;
    s->req.iovcnt = 1;
    s->req.data_len = s->req.dir == SCSI_DIR_NONE ? 0 : c->len;
    s->req.complete = sb_sync_done;
    s->req.opaque = s;
    return true;
}

/* The result of a completed synchronous command; false if the session
 * lost it (BUSY, or a CHECK CONDITION for the lost nexus). */
static bool sb_sync_result(ScsiBlock *sb, const SbSync *s,
                           ScsiBlockCommand *c, Error **errp)
{
    bool lost = s->req.status == SAM_STAT_BUSY ||
                (s->req.status == SAM_STAT_CHECK_CONDITION &&
                 !scsi_block_session_up(sb));
    if (s->req.response != SCSI_RESP_OK || lost) {
        error_setg(errp, "scsi-block %s: command %02x not delivered",
                   sb->dev.id, c->cdb[0]);
        return false;
    }
    c->res.status = s->req.status;
    c->res.sense_len = s->req.sense_len;
    memcpy(c->res.sense, s->req.sense, s->req.sense_len);
    c->res.transferred = s->req.data_len - s->req.residual;
    return true;
}

static bool sb_sync_all_done(const SbSync *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!s[i].done) {
            return false;
        }
    }
    return true;
}

bool scsi_block_sync_commands(ScsiBlock *sb, ScsiBlockCommand *cmds,
                              size_t n, Error **errp)
{
    SbSync s[SCSI_BLOCK_SYNC_MAX];
    struct iovec iov[SCSI_BLOCK_SYNC_MAX];
    Error *local = NULL;

    if (n == 0 || n > SCSI_BLOCK_SYNC_MAX) {
        error_setg(errp, "scsi-block %s: %zu commands at once (1 to %d)",
                   sb->dev.id, n, SCSI_BLOCK_SYNC_MAX);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        memset(&cmds[i].res, 0, sizeof(cmds[i].res));
        if (!sb_sync_prepare(sb, &s[i], &iov[i], &cmds[i], errp)) {
            return false;
        }
    }
    if (!scsi_block_session_up(sb)) {
        error_setg(errp, "scsi-block %s: no iSCSI session", sb->dev.id);
        return false;
    }
    /* All go out before any reply is awaited. They go around the bus (no
     * TMF bookkeeping needed) and the filter still sees them. */
    for (size_t i = 0; i < n; i++) {
        scsi_req_submit(&sb->lun, &s[i].req);
    }
    while (!sb_sync_all_done(s, n)) {
        loop_run_once(sb->lun.loop, SB_SERVICE_MS);
    }
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        ok = sb_sync_result(sb, &s[i], &cmds[i], ok ? &local : NULL) && ok;
    }
    error_propagate(errp, local);
    return ok;
}

bool scsi_block_sync_command(ScsiBlock *sb, const uint8_t *cdb,
                             size_t cdb_len, ScsiDataDir dir, void *buf,
                             size_t len, ScsiBlockResult *res, Error **errp)
{
    ScsiBlockCommand c = { .cdb = cdb, .cdb_len = cdb_len, .dir = dir,
                           .buf = buf, .len = len };
    if (!scsi_block_sync_commands(sb, &c, 1, errp)) {
        return false;
    }
    *res = c.res;
    return true;
}

/* ---- The device ------------------------------------------------------------ */

static bool sb_parse_url(ScsiBlock *sb, const char *url, Error **errp)
{
    struct iscsi_context *ctx = iscsi_create_context(sb->initiator);
    if (!ctx) {
        error_setg(errp, "cannot create an iSCSI context");
        return false;
    }
    struct iscsi_url *u = iscsi_parse_full_url(ctx, url);
    if (!u) {
        error_setg(errp, "bad iSCSI url '%s': %s", url, iscsi_get_error(ctx));
        iscsi_destroy_context(ctx);
        return false;
    }
    sb->portal = strdup(u->portal);
    sb->target = strdup(u->target);
    sb->iscsi_lun = u->lun;
    iscsi_destroy_url(u);
    iscsi_destroy_context(ctx);
    if (!sb->portal || !sb->target) {
        error_setg(errp, "out of memory");
        return false;
    }
    return true;
}

static bool sb_connect(ScsiBlock *sb, Error **errp)
{
    sb->iscsi = sb_new_context(sb, errp);
    if (!sb->iscsi) {
        return false;
    }
    /* At start-up a synchronous login gives a clear error right away. */
    if (iscsi_full_connect_sync(sb->iscsi, sb->portal, sb->iscsi_lun)) {
        error_setg(errp, "cannot log in to %s at %s: %s", sb->target,
                   sb->portal, iscsi_get_error(sb->iscsi));
        iscsi_destroy_context(sb->iscsi);
        sb->iscsi = NULL;
        return false;
    }
    return true;
}

/* migrate-pr (default on, off before --compat-version 0.2) and
 * pr-journal=DIR. */
static bool sb_realize_pr(ScsiBlock *sb, KeyVal *props, Error **errp)
{
    bool migrate;
    const char *journal;
    if (!keyval_get_bool(props, "migrate-pr", scsi_pr_migrate_default(),
                         &migrate, errp) ||
        !keyval_get_str(props, "pr-journal", NULL, &journal, errp)) {
        return false;
    }
    if (!migrate) {
        return true;
    }
    ScsiPrConfig cfg = { .dev_id = sb->dev.id, .initiator = sb->initiator,
                         .journal_dir = journal };
    sb->pr = scsi_pr_new(sb, &sb->lun, &cfg, errp);
    if (!sb->pr) {
        return false;
    }
    scsi_pr_startup(sb->pr);
    scsi_block_set_completion_filter(sb, scsi_pr_filter, sb->pr);
    return true;
}

static bool sb_realize(Device *dev, KeyVal *props, Error **errp)
{
    ScsiBlock *sb = (ScsiBlock *)dev;
    const char *url, *initiator, *bus_name;
    uint32_t lun;

    sb->fd = -1;
    if (!keyval_get_str(props, "url", NULL, &url, errp) ||
        !keyval_get_str(props, "initiator-name", NULL, &initiator, errp) ||
        !keyval_get_str(props, "bus", NULL, &bus_name, errp) ||
        !keyval_get_u32(props, "lun", 0, &lun, errp) ||
        !keyval_get_u32(props, "timeout", SB_TIMEOUT_DEFAULT_S,
                        &sb->timeout_s, errp) ||
        !keyval_get_bool(props, "x-lun-caps", false, &sb->x_lun_caps,
                         errp)) {
        return false;
    }
    if (sb->timeout_s > SB_TIMEOUT_MAX_S) {
        error_setg(errp, "timeout=%u: at most %u seconds (0: none)",
                   sb->timeout_s, SB_TIMEOUT_MAX_S);
        return false;
    }
    if (!url || !initiator || !bus_name) {
        error_setg(errp, "scsi-block needs url=, initiator-name= and bus=");
        return false;
    }
    sb->bus = scsi_bus_find(bus_name);
    if (!sb->bus) {
        error_set(errp, ERROR_CLASS_DEVICE_NOT_FOUND, "no SCSI bus '%s'",
                  bus_name);
        return false;
    }
    if (lun >= SCSI_BUS_MAX_LUNS) {
        error_setg(errp, "lun %u out of range", lun);
        return false;
    }
    sb->initiator = strdup(initiator);
    sb->isid = (uint32_t)random() & 0xffffff;
    if (!sb->initiator || !sb_parse_url(sb, url, errp) ||
        !sb_connect(sb, errp)) {
        return false;
    }
    scsi_lun_init(&sb->lun, &sb_lun_ops, "scsi-block", dev->loop, sb);
    sb->lun.loop = NULL;
    if (!sb_attach_loop(&sb->lun, dev->loop, errp) ||
        !sb_realize_pr(sb, props, errp)) {
        return false;
    }
    return scsi_bus_add_lun(sb->bus, &sb->lun, (uint16_t)lun, errp);
}

static void sb_unrealize(Device *dev)
{
    ScsiBlock *sb = (ScsiBlock *)dev;
    if (sb->pr) {
        scsi_pr_shutdown(sb->pr);
    }
    if (sb->lun.bus) {
        scsi_bus_remove_lun(sb->lun.bus, &sb->lun);
    }
    if (sb->timer && sb->lun.loop) {
        loop_del_timer(sb->lun.loop, sb->timer);
    }
    sb_drop_session(sb);
    scsi_pr_free(sb->pr);
    free(sb->portal);
    free(sb->target);
    free(sb->initiator);
}

static bool sb_stop(Device *dev, Error **errp)
{
    ScsiBlock *sb = (ScsiBlock *)dev;
    scsi_lun_drain(&sb->lun);
    return true;
}

static void sb_query(Device *dev, json_object *info)
{
    ScsiBlock *sb = (ScsiBlock *)dev;
    json_object_object_add(info, "target", json_object_new_string(sb->target));
    json_object_object_add(info, "portal", json_object_new_string(sb->portal));
    json_object_object_add(info, "timeout",
                           json_object_new_int64(sb->timeout_s));
    json_object_object_add(info, "session",
                           json_object_new_boolean(scsi_block_session_up(sb)));
    if (sb->pr) {
        scsi_pr_query(sb->pr, info);
    }
}

/* ---- Persistent reservations (scsi-pr-lun.h) ------------------------- */

static bool sb_pr_needed(void *opaque)
{
    ScsiBlock *sb = opaque;
    return sb->pr && scsi_pr_needed(sb->pr);
}

static bool sb_pr_pre_save(void *opaque, Error **errp)
{
    ScsiBlock *sb = opaque;
    return scsi_pr_pre_save(sb->pr, &sb->pr_wire, errp);
}

static bool sb_pr_post_load(void *opaque, int version_id, Error **errp)
{
    ScsiBlock *sb = opaque;
    if (!sb->pr) {
        /* Taking it over is what the source expects of us. */
        error_setg(errp, "scsi-block %s: the source migrates a persistent "
                   "reservation but migrate-pr is off here", sb->dev.id);
        return false;
    }
    return scsi_pr_post_load_sub(sb->pr, &sb->pr_wire, errp);
}

static bool sb_post_load(void *opaque, int version_id, Error **errp)
{
    ScsiBlock *sb = opaque;
    if (sb->pr) {
        scsi_pr_post_load(sb->pr);
    }
    return true;
}

static const VMStateField sb_pr_fields[] = {
    { .name = "key", .kind = VMS_U64,
      .offset = offsetof(ScsiBlock, pr_wire.key), .size = 8 },
    { .name = "type", .kind = VMS_U8,
      .offset = offsetof(ScsiBlock, pr_wire.type), .size = 1 },
    VMSTATE_END_OF_LIST()
};

/* Sent only while the guest has a key registered (seed 000). */
static const VMStateDescription sb_pr_vmsd = {
    .name = "scsi-block/pr",
    .version_id = 1,
    .minimum_version_id = 1,
    .needed = sb_pr_needed,
    .pre_save = sb_pr_pre_save,
    .post_load = sb_pr_post_load,
    .fields = sb_pr_fields,
};

static bool sb_pr_fence_needed(void *opaque)
{
    ScsiBlock *sb = opaque;
    return sb->pr && scsi_pr_fence_needed(sb->pr, &sb->pr_fenced_key);
}

static bool sb_pr_fence_post_load(void *opaque, int version_id,
                                  Error **errp)
{
    ScsiBlock *sb = opaque;
    if (!sb->pr) {
        error_setg(errp, "scsi-block %s: the source migrates a fenced "
                   "reservation but migrate-pr is off here", sb->dev.id);
        return false;
    }
    return scsi_pr_post_load_fence(sb->pr, sb->pr_fenced_key, errp);
}

static const VMStateField sb_pr_fence_fields[] = {
    { .name = "key", .kind = VMS_U64,
      .offset = offsetof(ScsiBlock, pr_fenced_key), .size = 8 },
    VMSTATE_END_OF_LIST()
};

/* Sent only when another initiator preempted the guest's key and the
 * guest has not been told yet (docs/migrate-pr.md, "Fencing"). */
static const VMStateDescription sb_pr_fence_vmsd = {
    .name = "scsi-block/pr-fenced",
    .version_id = 1,
    .minimum_version_id = 1,
    .needed = sb_pr_fence_needed,
    .post_load = sb_pr_fence_post_load,
    .fields = sb_pr_fence_fields,
};

static bool sb_pr_nexus_pre_save(void *opaque, Error **errp)
{
    ScsiBlock *sb = opaque;
    scsi_pr_save_nexus(sb->pr, sb->pr_nexus);
    return true;
}

static bool sb_pr_nexus_post_load(void *opaque, int version_id,
                                  Error **errp)
{
    ScsiBlock *sb = opaque;
    /* Without migrate-pr here, "scsi-block/pr" (sent with it) refuses. */
    return !sb->pr || scsi_pr_post_load_nexus(sb->pr, sb->pr_nexus, errp);
}

static const VMStateField sb_pr_nexus_fields[] = {
    { .name = "initiator", .kind = VMS_BUFFER,
      .offset = offsetof(ScsiBlock, pr_nexus), .size = SCSI_PR_NAME_MAX },
    VMSTATE_END_OF_LIST()
};

/* Sent with "scsi-block/pr": whose registration carries the key. */
static const VMStateDescription sb_pr_nexus_vmsd = {
    .name = "scsi-block/pr-nexus",
    .version_id = 1,
    .minimum_version_id = 1,
    .needed = sb_pr_needed,
    .pre_save = sb_pr_nexus_pre_save,
    .post_load = sb_pr_nexus_post_load,
    .fields = sb_pr_nexus_fields,
};

/* Before the subsections are chosen: is the guest still registered? */
static bool sb_pre_save(void *opaque, Error **errp)
{
    ScsiBlock *sb = opaque;
    return !sb->pr || scsi_pr_probe_before_save(sb->pr, errp);
}

static const VMStateField sb_fields[] = {
    VMSTATE_END_OF_LIST()
};

static const VMStateDescription sb_vmsd = {
    .name = "scsi-block",
    .version_id = 1,
    .minimum_version_id = 1,
    .pre_save = sb_pre_save,
    .post_load = sb_post_load,
    .fields = sb_fields,
    .subsections = (const VMStateDescription *const[]){ &sb_pr_vmsd,
                                                        &sb_pr_nexus_vmsd,
                                                        &sb_pr_fence_vmsd,
                                                        NULL },
};

static bool sb_activate(Device *dev, Error **errp)
{
    ScsiBlock *sb = (ScsiBlock *)dev;
    return !sb->pr || scsi_pr_activate(sb->pr, errp);
}

static void sb_inactivate(Device *dev)
{
    ScsiBlock *sb = (ScsiBlock *)dev;
    if (sb->pr) {
        scsi_pr_inactivate(sb->pr);
    }
}

static void sb_handed_over(Device *dev)
{
    ScsiBlock *sb = (ScsiBlock *)dev;
    if (sb->pr) {
        scsi_pr_handed_over(sb->pr);
    }
}
static const DeviceProperty scsi_block_properties[] = {
    { "url", "str", NULL, "iscsi://HOST[:PORT]/TARGET-IQN/LUN" },
    { "initiator-name", "str", NULL, "iSCSI initiator IQN to log in as" },
    { "bus", "str", NULL, "id of the SCSI controller (vhost-user-scsi)" },
    { "lun", "uint32", "0", "logical unit number on the bus" },
    { "timeout", "uint32", "30",
      "seconds before an unanswered command fails (0: none)" },
    { "migrate-pr", "bool", "on",
      "carry persistent reservations across migration (off before "
      "--compat-version 0.2)" },
    { "pr-journal", "str", "--pr-journal",
      "directory of this LUN's reservation journal" },
    { "x-lun-caps", "bool", "off",
      "testing aid: act as if the LUN reported SIP_C and ATC_C" },
    { NULL, NULL, NULL, NULL },
};

static const DeviceClass scsi_block_class = {
    .properties = scsi_block_properties,
    .type = "scsi-block",
    .description = "SCSI passthrough to an iSCSI LUN",
    .instance_size = sizeof(ScsiBlock),
    .realize = sb_realize,
    .unrealize = sb_unrealize,
    .stop = sb_stop,
    .vmsd = &sb_vmsd,
    .activate = sb_activate,
    .inactivate = sb_inactivate,
    .handed_over = sb_handed_over,
    .query = sb_query,
};

ScsiBlock *scsi_block_from_device(Device *dev)
{
    return dev && dev->cls == &scsi_block_class ? (ScsiBlock *)dev : NULL;
}

ScsiBlock *scsi_block_from_lun(ScsiLun *lun)
{
    return lun && lun->ops == &sb_lun_ops ? lun->opaque : NULL;
}

void scsi_block_register(void)
{
    device_class_register(&scsi_block_class);
}
