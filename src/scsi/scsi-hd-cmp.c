/*
 * scsi-hd commands that read back or compare: VERIFY (SBC-3 5.33-5.35),
 * COMPARE AND WRITE (5.2), WRITE AND VERIFY (5.41-5.43) and ORWRITE(16)
 * (5.8). Each runs as a list of phases on one aligned bounce buffer the
 * size of its range: reads and writes go through the block layer, the
 * compares and copies against the data-out happen between them. The
 * data-out stays in the initiator's buffers and is read where needed.
 */
#include "scsi/scsi-hd-io.h"
#include "util/log.h"

#include <stdlib.h>
#include <string.h>

#define CMP_CHUNK 4096

/* Offset in the data-out of the first byte where the range in the bounce
 * buffer differs from it (the data-out repeats every cmp_period bytes), or
 * -1 when they are equal. */
static int64_t hd_cmp_first_difference(HdIo *io)
{
    ScsiRequest *req = io->req;
    uint8_t tmp[CMP_CHUNK];
    size_t period = io->cmp_period;

    for (size_t pos = 0; pos < io->bytes;) {
        size_t in_period = pos % period;
        size_t n = period - in_period;
        if (n > sizeof(tmp)) {
            n = sizeof(tmp);
        }
        if (n > io->bytes - pos) {
            n = io->bytes - pos;
        }
        scsi_iov_to_buf(req->iov, req->iovcnt, in_period, tmp, n);
        if (memcmp(tmp, io->bounce + pos, n) != 0) {
            size_t i = 0;
            while (tmp[i] == io->bounce[pos + i]) {
                i++;
            }
            return (int64_t)(in_period + i);
        }
        pos += n;
    }
    return -1;
}

/* bounce |= data-out (ORWRITE with BMOP 000b, SBC-3 5.8). */
static void hd_cmp_or(HdIo *io)
{
    uint8_t tmp[CMP_CHUNK];
    for (size_t pos = 0; pos < io->bytes; pos += sizeof(tmp)) {
        size_t n = io->bytes - pos < sizeof(tmp) ? io->bytes - pos :
                   sizeof(tmp);
        scsi_iov_to_buf(io->req->iov, io->req->iovcnt, pos, tmp, n);
        for (size_t i = 0; i < n; i++) {
            io->bounce[pos + i] |= tmp[i];
        }
    }
}

/* Runs the in-memory phases; returns false when the command is over. */
static bool hd_cmp_memory_phase(HdIo *io, HdPhase ph)
{
    ScsiRequest *req = io->req;
    int64_t diff;

    switch (ph) {
    case PHASE_COMPARE:
        diff = hd_cmp_first_difference(io);
        if (diff >= 0) {
            io->miscompare = true;
            io->miscompare_offset = (uint32_t)diff;
            return false;
        }
        return true;
    case PHASE_OR:
        hd_cmp_or(io);
        return true;
    case PHASE_COPY_SECOND:
        scsi_iov_to_buf(req->iov, req->iovcnt, io->bytes, io->bounce,
                        io->bytes);
        return true;
    case PHASE_COPY_ALL:
        scsi_iov_to_buf(req->iov, req->iovcnt, 0, io->bounce, io->bytes);
        return true;
    default:
        return false;
    }
}

bool hd_cmp_next_phase(HdIo *io)
{
    for (;;) {
        HdPhase ph = io->phase < HD_IO_MAX_PHASES ? io->phases[io->phase] :
                     PHASE_END;
        io->phase++;
        if (ph == PHASE_END) {
            return false;
        }
        if (ph == PHASE_READ || ph == PHASE_WRITE) {
            io->kind = ph == PHASE_READ ? IO_READ : IO_WRITE;
            io->is_write = ph == PHASE_WRITE;
            return true;
        }
        if (!hd_cmp_memory_phase(io, ph)) {
            return false;
        }
    }
}

/* What a phased command does, decoded from its CDB. */
typedef struct HdCmpCmd {
    uint64_t lba;
    uint32_t n;                 /* blocks, not 0 */
    const HdPhase *phases;      /* HD_IO_MAX_PHASES entries */
    size_t xfer;                /* data-out bytes the command consumes */
    size_t period;              /* 0: compare with the whole data-out */
    HdLockMode lock;
    bool fua;
} HdCmpCmd;

static void hd_cmp_start(ScsiHd *hd, ScsiRequest *req, const HdCmpCmd *c)
{
    HdIo *io = hd_io_new(hd, req, IO_READ);
    if (!io) {
        return;
    }
    uint32_t align = blk_alignment(hd->blk);
    io->phased = true;
    memcpy(io->phases, c->phases, sizeof(io->phases));
    io->offset = c->lba * hd->block_size;
    io->bytes = (uint64_t)c->n * hd->block_size;
    io->cmp_period = c->period ? c->period : io->bytes;
    io->xfer = c->xfer;
    io->fua = c->fua || !hd->wce;
    io->bounce = aligned_alloc(align > 8 ? align : 8, io->bytes);
    if (!io->bounce) {
        hd_io_fail_nomem(io);
        return;
    }
    io->iov = io->iov_inline;
    io->iov[0] = (struct iovec){ .iov_base = io->bounce,
                                 .iov_len = io->bytes };
    io->iovcnt = 1;
    hd_lock_set(io, c->lock, c->lba, c->n);
    if (!hd_cmp_next_phase(io)) {
        hd_io_finish(io, 0);
        return;
    }
    hd_io_start(io);
}

/* SBC-3 4.5: the range first (LBA OUT OF RANGE), then the Block Limits
 * maximum for the command (SBC-3 6.5.3: INVALID FIELD IN CDB). */
static bool hd_cmp_check_range(ScsiHd *hd, ScsiRequest *req, uint64_t lba,
                               uint64_t n, uint64_t max)
{
    if (!hd_range_ok(hd, lba, n)) {
        scsi_req_complete_sense(req, SENSE_LBA_OUT_OF_RANGE);
        return false;
    }
    if (n > max) {
        scsi_req_complete_sense(req, SENSE_INVALID_FIELD_IN_CDB);
        return false;
    }
    return true;
}

/* LBA and length of the (10), (12) and (16) forms of VERIFY and WRITE
 * AND VERIFY (same field positions). */
/* What every command here that writes checks, in SBC-3's order: the LBA
 * range and the command's limit, that writes are allowed, a zero length
 * (GOOD, nothing done), then a data-out of `per_block` buffers of the
 * range, whose size is *bytes. False when the request was completed. */
static bool hd_cmp_write_checks(ScsiHd *hd, ScsiRequest *req, uint64_t lba,
                                uint32_t n, uint32_t max, unsigned per_block,
                                size_t *bytes)
{
    if (!hd_cmp_check_range(hd, req, lba, n, max) ||
        !hd_check_write(hd, req)) {
        return false;
    }
    if (n == 0) {
        scsi_req_complete_good(req, 0);
        return false;
    }
    *bytes = (size_t)n * hd->block_size;
    return hd_check_data_out(hd, req, per_block * *bytes);
}

static void hd_cmp_decode(const uint8_t *cdb, uint64_t *lba, uint32_t *n)
{
    switch (cdb[0]) {
    case SCSI_OP_VERIFY_10:
    case SCSI_OP_WRITE_VERIFY_10:
        *lba = ld_be32(&cdb[2]);
        *n = ld_be16(&cdb[7]);
        break;
    case SCSI_OP_VERIFY_12:
    case SCSI_OP_WRITE_VERIFY_12:
        *lba = ld_be32(&cdb[2]);
        *n = ld_be32(&cdb[6]);
        break;
    default:
        *lba = ld_be64(&cdb[2]);
        *n = ld_be32(&cdb[10]);
        break;
    }
}

void hd_cmd_verify(ScsiHd *hd, ScsiRequest *req)
{
    const uint8_t *cdb = req->cdb;
    uint8_t bytchk = (cdb[1] >> 1) & 0x03;
    uint64_t lba;
    uint32_t n;

    hd_cmp_decode(cdb, &lba, &n);
    /* SBC-3 5.33: VRPROTECT needs protection information (none here);
     * BYTCHK 10b is reserved. */
    if ((cdb[1] & 0xe0) || bytchk == 2) {
        scsi_req_complete_sense(req, SENSE_INVALID_FIELD_IN_CDB);
        return;
    }
    if (!hd_cmp_check_range(hd, req, lba, n, HD_MAX_XFER_BLOCKS)) {
        return;
    }
    /* SBC-3 5.33: a VERIFICATION LENGTH of zero verifies nothing. */
    if (n == 0) {
        scsi_req_complete_good(req, 0);
        return;
    }
    /* BYTCHK 00b: medium verification only (the blocks are read);
     * 01b: compared with the data-out; 11b: each block compared with the
     * one block of data-out. */
    size_t out = bytchk == 0 ? 0 : bytchk == 1 ?
                 (size_t)n * hd->block_size : hd->block_size;
    if (!hd_check_data_out(hd, req, out)) {
        return;
    }
    static const HdPhase read_only[HD_IO_MAX_PHASES] = {
        PHASE_READ, PHASE_END };
    static const HdPhase read_compare[HD_IO_MAX_PHASES] = {
        PHASE_READ, PHASE_COMPARE, PHASE_END };
    HdCmpCmd c = {
        .lba = lba, .n = n, .phases = bytchk ? read_compare : read_only,
        .xfer = out, .period = bytchk == 3 ? hd->block_size : 0,
        .lock = LOCK_NONE,
    };
    hd_cmp_start(hd, req, &c);
}

void hd_cmd_write_verify(ScsiHd *hd, ScsiRequest *req)
{
    const uint8_t *cdb = req->cdb;
    uint8_t bytchk = (cdb[1] >> 1) & 0x03;
    uint64_t lba;
    uint32_t n;

    hd_cmp_decode(cdb, &lba, &n);
    /* SBC-3 5.41: WRPROTECT needs protection information; BYTCHK 10b and
     * 11b are reserved. */
    if ((cdb[1] & 0xe0) || bytchk > 1) {
        scsi_req_complete_sense(req, SENSE_INVALID_FIELD_IN_CDB);
        return;
    }
    /* SBC-3 5.41: a TRANSFER LENGTH of zero writes nothing. */
    size_t bytes;
    if (!hd_cmp_write_checks(hd, req, lba, n, HD_MAX_XFER_BLOCKS, 1,
                             &bytes)) {
        return;
    }
    /* Written through to the medium, then read back (BYTCHK 0: medium
     * verification) and compared (BYTCHK 1). */
    static const HdPhase write_read[HD_IO_MAX_PHASES] = {
        PHASE_COPY_ALL, PHASE_WRITE, PHASE_READ, PHASE_END };
    static const HdPhase write_compare[HD_IO_MAX_PHASES] = {
        PHASE_COPY_ALL, PHASE_WRITE, PHASE_READ, PHASE_COMPARE, PHASE_END };
    HdCmpCmd c = {
        .lba = lba, .n = n, .phases = bytchk ? write_compare : write_read,
        .xfer = bytes, .lock = LOCK_SHARED, .fua = true,
    };
    hd_cmp_start(hd, req, &c);
}

void hd_cmd_compare_and_write(ScsiHd *hd, ScsiRequest *req)
{
    const uint8_t *cdb = req->cdb;
    uint64_t lba = ld_be64(&cdb[2]);
    uint32_t n = cdb[13];

    /* SBC-3 5.2: WRPROTECT needs protection information. */
    if (cdb[1] & 0xe0) {
        scsi_req_complete_sense(req, SENSE_INVALID_FIELD_IN_CDB);
        return;
    }
    /* Above MAXIMUM COMPARE AND WRITE LENGTH (SBC-3 6.5.3). */
    /* SBC-3 5.2: NUMBER OF LOGICAL BLOCKS zero: nothing is read,
     * compared or written, and it is no error. The data-out holds the
     * verify data, then the write data. */
    size_t bytes;
    if (!hd_cmp_write_checks(hd, req, lba, n, HD_MAX_CAW_BLOCKS, 2,
                             &bytes)) {
        return;
    }
    static const HdPhase caw[HD_IO_MAX_PHASES] = {
        PHASE_READ, PHASE_COMPARE, PHASE_COPY_SECOND, PHASE_WRITE,
        PHASE_END };
    HdCmpCmd c = {
        .lba = lba, .n = n, .phases = caw, .xfer = 2 * bytes,
        .lock = LOCK_EXCLUSIVE, .fua = cdb[1] & 0x08,
    };
    hd_cmp_start(hd, req, &c);
}

void hd_cmd_orwrite(ScsiHd *hd, ScsiRequest *req)
{
    const uint8_t *cdb = req->cdb;
    uint64_t lba = ld_be64(&cdb[2]);
    uint32_t n = ld_be32(&cdb[10]);

    /* SBC-3 5.8: ORPROTECT needs protection information. */
    if (cdb[1] & 0xe0) {
        scsi_req_complete_sense(req, SENSE_INVALID_FIELD_IN_CDB);
        return;
    }
    size_t bytes;
    if (!hd_cmp_write_checks(hd, req, lba, n, HD_MAX_XFER_BLOCKS, 1,
                             &bytes)) {
        return;
    }
    /* Read, OR, write back: exclusive, so no write lands in between. */
    static const HdPhase orw[HD_IO_MAX_PHASES] = {
        PHASE_READ, PHASE_OR, PHASE_WRITE, PHASE_END };
    HdCmpCmd c = {
        .lba = lba, .n = n, .phases = orw, .xfer = bytes,
        .lock = LOCK_EXCLUSIVE, .fua = cdb[1] & 0x08,
    };
    hd_cmp_start(hd, req, &c);
}
