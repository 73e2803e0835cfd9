/* A scsi-hd on a scratch image in the current directory, driven one
 * command at a time; shared by the unit tests and the fuzz target. */
#ifndef STORMIG_TESTS_SCSI_HD_HARNESS_H
#define STORMIG_TESTS_SCSI_HD_HARNESS_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block/block.h"
#include "device/device.h"
#include "scsi/scsi.h"

typedef struct HdCmdResult {
    ScsiRequest req;
    bool done;
} HdCmdResult;

static inline void hd_harness_done(ScsiRequest *req, void *opaque)
{
    ((HdCmdResult *)opaque)->done = true;
}

/* Creates a zero-filled image of size bytes; returns false on error. */
static inline bool hd_harness_make_image(const char *path, uint64_t size)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        return false;
    }
    bool ok = ftruncate(fd, (off_t)size) == 0;
    close(fd);
    return ok;
}

static inline BlockBackend *hd_harness_open(const char *node,
                                            const char *path, bool ro)
{
    BlockOpenOptions o = { .node_name = node, .filename = path,
                           .read_only = ro, .discard = true };
    Error *err = NULL;
    BlockBackend *blk = blk_open(&o, &err);
    if (!blk) {
        error_report_err(err);
    }
    return blk;
}

static inline Device *hd_harness_device(const char *opts, EventLoop *loop)
{
    Error *err = NULL;
    Device *dev = device_create(opts, loop, &err);
    if (!dev) {
        error_report_err(err);
    }
    return dev;
}

/* Runs one command to completion on loop. buf is data-in or data-out
 * (dir), len bytes. Gives up (done = false) after a few seconds. */
static inline void hd_harness_run(EventLoop *loop, ScsiBus *bus,
                                  uint16_t lun, const uint8_t *cdb,
                                  size_t cdb_len, ScsiDataDir dir, void *buf,
                                  size_t len, HdCmdResult *r)
{
    struct iovec iov = { .iov_base = buf, .iov_len = len };
    memset(r, 0, sizeof(*r));
    memcpy(r->req.cdb, cdb, cdb_len);
    r->req.cdb_len = (uint8_t)cdb_len;
    r->req.dir = dir;
    r->req.iov = &iov;
    r->req.iovcnt = buf ? 1 : 0;
    r->req.data_len = buf ? len : 0;
    r->req.complete = hd_harness_done;
    r->req.opaque = r;
    scsi_bus_submit(bus, lun, &r->req);
    for (int i = 0; i < 500 && !r->done; i++) {
        loop_run_once(loop, 10);
    }
    r->req.iov = NULL;
}

#endif
