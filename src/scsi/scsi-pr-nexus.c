/* A bare libiscsi nexus for reservation tools and tests (see
 * scsi-pr-nexus.h). */
#include "scsi/scsi-pr-nexus.h"

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK 512

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

static bool nexus_command(void *opaque, const uint8_t *cdb, size_t cdb_len,
                          ScsiDataDir dir, void *buf, size_t len,
                          ScsiPrResult *res, Error **errp)
{
    ScsiPrNexus *n = opaque;
    int xdir = dir == SCSI_DIR_TO_DEV ? SCSI_XFER_WRITE :
               dir == SCSI_DIR_FROM_DEV ? SCSI_XFER_READ : SCSI_XFER_NONE;
    struct scsi_task *task = scsi_create_task((int)cdb_len, (uint8_t *)cdb,
                                              xdir, (int)len);
    struct iscsi_data out = { .size = len, .data = buf };
    if (!task) {
        error_setg(errp, "out of memory");
        return false;
    }
    if (!iscsi_scsi_command_sync(n->iscsi, n->lun, task,
                                 dir == SCSI_DIR_TO_DEV ? &out : NULL)) {
        error_setg(errp, "%s: command %02xh not delivered: %s", n->initiator,
                   cdb[0], iscsi_get_error(n->iscsi));
        scsi_free_scsi_task(task);
        return false;
    }
    if (task->status == SCSI_STATUS_ERROR ||
        task->status == SCSI_STATUS_CANCELLED ||
        task->status == SCSI_STATUS_TIMEOUT) {
        error_setg(errp, "%s: command %02xh failed in transport: %s",
                   n->initiator, cdb[0], iscsi_get_error(n->iscsi));
        scsi_free_scsi_task(task);
        return false;
    }
    copy_result(task, dir == SCSI_DIR_FROM_DEV ? buf : NULL, len, res);
    scsi_free_scsi_task(task);
    return true;
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
    n->io = (ScsiPrIo){ .fn = nexus_command, .opaque = n,
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
