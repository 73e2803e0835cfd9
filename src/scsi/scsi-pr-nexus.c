/* A bare libiscsi nexus for reservation tools and tests (see
 * scsi-pr-nexus.h). */
#include "scsi/scsi-pr-nexus.h"

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK 512
#define NEXUS_POLL_MS 1000       /* then libiscsi checks its timeouts */

struct ScsiPrNexus {
    struct iscsi_context *iscsi;
    int lun;
    char *initiator;
    ScsiPrIo io;
};

/* Status and sense as the target sent them (RFC 7143 11.4.7.2: the sense
 * data follows a 2-byte SenseLength in the data segment). */
static void copy_result(struct scsi_task *task, void *buf, size_t len,
                        ScsiPrResult *res)
{
    res->status = (uint8_t)task->status;
    if (task->status == SCSI_STATUS_CHECK_CONDITION &&
        task->datain.size >= 2) {
        size_t n = ld_be16(task->datain.data);
        size_t avail = (size_t)task->datain.size - 2;
        n = n < avail ? n : avail;
        n = n < SCSI_SENSE_MAX ? n : SCSI_SENSE_MAX;
        memcpy(res->sense, task->datain.data + 2, n);
        res->sense_len = (uint32_t)n;
    } else if (task->status == SCSI_STATUS_GOOD && buf && len &&
               task->datain.size > 0) {
        size_t n = (size_t)task->datain.size < len ?
                   (size_t)task->datain.size : len;
        memcpy(buf, task->datain.data, n);
        res->transferred = n;
    }
}

/* One command of a batch in flight on the nexus. */
typedef struct NexusTask {
    ScsiPrNexus *n;
    ScsiPrCmd *cmd;
    struct scsi_task *task;
    struct iscsi_data out;
    bool queued, done;
    int status;                     /* SCSI_STATUS_* from the callback */
} NexusTask;

static void nexus_task_cb(struct iscsi_context *iscsi, int status,
                          void *command_data, void *opaque)
{
    NexusTask *nt = opaque;
    nt->status = status;
    nt->done = true;
}

/* Queues one command (libiscsi sends it from the service loop). */
static bool nexus_queue(NexusTask *nt, Error **errp)
{
    ScsiPrCmd *c = nt->cmd;
    int xdir = c->dir == SCSI_DIR_TO_DEV ? SCSI_XFER_WRITE :
               c->dir == SCSI_DIR_FROM_DEV ? SCSI_XFER_READ : SCSI_XFER_NONE;
    nt->task = scsi_create_task((int)c->cdb_len, c->cdb, xdir, (int)c->len);
    if (!nt->task) {
        error_setg(errp, "out of memory");
        return false;
    }
    nt->out = (struct iscsi_data){ .size = c->len, .data = c->buf };
    if (iscsi_scsi_command_async(nt->n->iscsi, nt->n->lun, nt->task,
                                 nexus_task_cb,
                                 c->dir == SCSI_DIR_TO_DEV ? &nt->out : NULL,
                                 nt) != 0) {
        error_setg(errp, "%s: command %02xh not delivered: %s",
                   nt->n->initiator, c->cdb[0], iscsi_get_error(nt->n->iscsi));
        return false;
    }
    nt->queued = true;
    return true;
}

static bool all_done(const NexusTask *nt, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        if (nt[i].queued && !nt[i].done) {
            return false;
        }
    }
    return true;
}

/* Services the session until every queued command's callback ran. On a
 * broken session the rest are cancelled (their callbacks run then). */
static bool nexus_wait(ScsiPrNexus *n, NexusTask *nt, size_t count,
                       Error **errp)
{
    while (!all_done(nt, count)) {
        struct pollfd pfd = { .fd = iscsi_get_fd(n->iscsi),
                              .events = (short)iscsi_which_events(n->iscsi) };
        int ready = poll(&pfd, 1, NEXUS_POLL_MS);
        if (ready < 0 && errno == EINTR) {
            continue;
        }
        /* A timeout services with no events: libiscsi's own timeouts. */
        if (ready < 0 ||
            iscsi_service(n->iscsi, ready > 0 ? pfd.revents : 0) < 0) {
            error_setg(errp, "%s: iSCSI session failed: %s", n->initiator,
                       iscsi_get_error(n->iscsi));
            iscsi_scsi_cancel_all_tasks(n->iscsi);
            return false;
        }
    }
    return true;
}

/* Status and sense of a finished command; false on a transport error. */
static bool nexus_result(NexusTask *nt, Error **errp)
{
    ScsiPrCmd *c = nt->cmd;
    if (nt->status == SCSI_STATUS_ERROR ||
        nt->status == SCSI_STATUS_CANCELLED ||
        nt->status == SCSI_STATUS_TIMEOUT) {
        error_setg(errp, "%s: command %02xh failed in transport: %s",
                   nt->n->initiator, c->cdb[0], iscsi_get_error(nt->n->iscsi));
        return false;
    }
    copy_result(nt->task, c->dir == SCSI_DIR_FROM_DEV ? c->buf : NULL, c->len,
                &c->res);
    return true;
}

/* ScsiPrBatchFn: every command is queued before any reply is awaited, so
 * the batch costs one round trip. */
static bool nexus_batch(void *opaque, ScsiPrCmd *cmds, size_t count,
                        Error **errp)
{
    ScsiPrNexus *n = opaque;
    NexusTask nt[SCSI_PR_BATCH_MAX] = { 0 };
    Error *local = NULL;
    bool ok = true;

    if (count > SCSI_PR_BATCH_MAX) {
        error_setg(errp, "%s: a batch of %zu commands", n->initiator, count);
        return false;
    }
    for (size_t i = 0; ok && i < count; i++) {
        nt[i] = (NexusTask){ .n = n, .cmd = &cmds[i] };
        ok = nexus_queue(&nt[i], &local);
    }
    /* Even after a failed queueing, what was queued must finish before
     * its task is freed. */
    if (!nexus_wait(n, nt, count, ok ? &local : NULL)) {
        ok = false;
    }
    for (size_t i = 0; i < count; i++) {
        if (ok && !nexus_result(&nt[i], &local)) {
            ok = false;
        }
        if (nt[i].task) {
            scsi_free_scsi_task(nt[i].task);
        }
    }
    error_propagate(errp, local);
    return ok;
}

/* The same ISID for the same name, so that separate runs of a tool with
 * one initiator name are one I_T nexus (RFC 7143 10.12.5: name + ISID
 * identify the initiator port). FNV-1a, 24 bits for the random format. */
static uint32_t isid_of(const char *name)
{
    uint32_t h = 2166136261u;
    for (const char *p = name; *p; p++) {
        h = (h ^ (uint8_t)*p) * 16777619u;
    }
    return h & 0xffffff;
}

ScsiPrNexus *scsi_pr_nexus_open(const char *url, const char *initiator,
                                Error **errp)
{
    ScsiPrNexus *n = calloc(1, sizeof(*n));
    if (!n || !(n->initiator = strdup(initiator)) ||
        !(n->iscsi = iscsi_create_context(initiator))) {
        error_setg(errp, "cannot create an iSCSI context");
        scsi_pr_nexus_close(n);
        return NULL;
    }
    struct iscsi_url *u = iscsi_parse_full_url(n->iscsi, url);
    if (!u) {
        error_setg(errp, "bad iSCSI url '%s': %s", url,
                   iscsi_get_error(n->iscsi));
        scsi_pr_nexus_close(n);
        return NULL;
    }
    n->lun = u->lun;
    iscsi_set_isid_random(n->iscsi, isid_of(initiator), 0);
    iscsi_set_targetname(n->iscsi, u->target);
    iscsi_set_session_type(n->iscsi, ISCSI_SESSION_NORMAL);
    iscsi_set_header_digest(n->iscsi, ISCSI_HEADER_DIGEST_NONE_CRC32C);
    int rc = iscsi_full_connect_sync(n->iscsi, u->portal, u->lun);
    if (rc != 0) {
        error_setg(errp, "%s: cannot log in to %s: %s", initiator, url,
                   iscsi_get_error(n->iscsi));
    }
    iscsi_destroy_url(u);
    if (rc != 0) {
        scsi_pr_nexus_close(n);
        return NULL;
    }
    n->io = (ScsiPrIo){ .fn = nexus_batch, .opaque = n,
                        .who = n->initiator };
    return n;
}

void scsi_pr_nexus_close(ScsiPrNexus *n)
{
    if (!n) {
        return;
    }
    if (n->iscsi) {
        if (iscsi_is_logged_in(n->iscsi)) {
            iscsi_logout_sync(n->iscsi);
        }
        iscsi_destroy_context(n->iscsi);
    }
    free(n->initiator);
    free(n);
}

const ScsiPrIo *scsi_pr_nexus_io(ScsiPrNexus *n)
{
    return &n->io;
}

const char *scsi_pr_nexus_initiator(const ScsiPrNexus *n)
{
    return n->initiator;
}

bool scsi_pr_nexus_rw(ScsiPrNexus *n, bool write, uint32_t lba,
                      uint8_t *status, Error **errp)
{
    uint8_t cdb[10] = { write ? SCSI_OP_WRITE_10 : SCSI_OP_READ_10 };
    uint8_t data[BLOCK];
    ScsiPrResult res;
    memset(data, 0xa5, sizeof(data));
    st_be32(&cdb[2], lba);
    st_be16(&cdb[7], 1);
    if (!scsi_pr_io_command(&n->io, cdb, sizeof(cdb),
                            write ? SCSI_DIR_TO_DEV : SCSI_DIR_FROM_DEV, data,
                            sizeof(data), &res, errp)) {
        return false;
    }
    *status = res.status;
    return true;
}
