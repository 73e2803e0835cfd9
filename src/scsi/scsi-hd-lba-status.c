/*
 * scsi-hd GET LBA STATUS (SBC-3 5.5), required since READ CAPACITY(16)
 * reports LBPME = 1: whether the blocks from the STARTING LBA on are
 * mapped or deallocated, from the image's holes (the block layer's
 * blk_block_status, SEEK_DATA / SEEK_HOLE off the I/O thread). One LBA
 * status descriptor is returned, for the extent that starts at the
 * STARTING LBA, which SBC-3 5.5.2 allows (the initiator asks again from
 * where it ends).
 */
#include "scsi/scsi-hd.h"
#include "util/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define LBA_STATUS_LEN (8 + 16)     /* header and one descriptor */

enum {
    LBA_MAPPED = 0x0,               /* SBC-3 table 37 */
    LBA_DEALLOCATED = 0x1,
};

typedef struct HdLbaStatus {
    ScsiHd *hd;
    ScsiRequest *req;
    uint64_t lba;
    uint32_t alloc_len;
} HdLbaStatus;

static void hd_lba_status_done(void *opaque, int ret, bool allocated,
                               uint64_t bytes)
{
    HdLbaStatus *st = opaque;
    uint32_t bs = st->hd->block_size;
    uint8_t d[LBA_STATUS_LEN] = { 0 };
    uint64_t blocks;

    if (ret < 0) {
        log_ratelimited(LOG_WARN, "scsi-hd %s: GET LBA STATUS: %s",
                        st->hd->dev.id, strerror(-ret));
        scsi_req_complete_sense(st->req, SENSE_ABORTED_IO_ERROR);
        free(st);
        return;
    }
    /* A block partly allocated holds data: mapped extents round up,
     * holes down; a hole shorter than the block is a mapped block. */
    blocks = allocated ? (bytes + bs - 1) / bs : bytes / bs;
    if (blocks == 0) {
        allocated = true;
        blocks = 1;
    }
    st_be32(&d[0], LBA_STATUS_LEN - 4);     /* PARAMETER DATA LENGTH */
    st_be64(&d[8], st->lba);
    st_be32(&d[16], (uint32_t)blocks);
    d[20] = allocated ? LBA_MAPPED : LBA_DEALLOCATED;
    hd_reply(st->req, d, sizeof(d), st->alloc_len);
    free(st);
}

void hd_cmd_get_lba_status(ScsiHd *hd, ScsiRequest *req)
{
    uint64_t lba = ld_be64(&req->cdb[2]);
    uint32_t alloc_len = ld_be32(&req->cdb[10]);

    /* SBC-3 5.5.1: a STARTING LBA past the last block. */
    if (lba >= hd->nb_blocks) {
        scsi_req_complete_sense(req, SENSE_LBA_OUT_OF_RANGE);
        return;
    }
    /* SPC-4 4.2.5.6: an allocation length of zero is no error. */
    if (alloc_len == 0) {
        scsi_req_complete_good(req, 0);
        return;
    }
    /* NUMBER OF LOGICAL BLOCKS is 32 bits. */
    uint64_t max_blocks = hd->nb_blocks - lba;
    if (max_blocks > UINT32_MAX) {
        max_blocks = UINT32_MAX;
    }
    HdLbaStatus *st = malloc(sizeof(*st));
    if (!st) {
        scsi_req_complete_sense(req, SENSE_ABORTED_COMMAND);
        return;
    }
    *st = (HdLbaStatus){ .hd = hd, .req = req, .lba = lba,
                         .alloc_len = alloc_len };
    int ret = blk_block_status(hd->blk, lba * hd->block_size,
                               max_blocks * hd->block_size,
                               hd_lba_status_done, st);
    if (ret < 0) {
        free(st);
        scsi_req_complete_sense(req, ret == -ENOMEM || ret == -EAGAIN ?
                                SENSE_ABORTED_COMMAND :
                                SENSE_ABORTED_IO_ERROR);
    }
}
