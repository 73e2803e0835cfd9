/* scsi-hd I/O commands: CDB decoding and checks (SBC-3 5.x), then the
 * request engine (scsi-hd-io.c). */
#include "scsi/scsi-hd-io.h"
#include "util/log.h"

#include <stdlib.h>
#include <string.h>

typedef struct HdRange {
    uint64_t lba;
    uint32_t n;
    bool fua;
} HdRange;

/* READ/WRITE(6/10/12/16). False (request completed) on a bad field. */
static bool hd_decode_rw(ScsiRequest *req, HdRange *r)
{
    const uint8_t *cdb = req->cdb;
    switch (cdb[0]) {
    case SCSI_OP_READ_6:
    case SCSI_OP_WRITE_6:
        /* SBC-3 5.10: a transfer length of 0 means 256 blocks. */
        r->lba = ((uint32_t)(cdb[1] & 0x1f) << 16) | ld_be16(&cdb[2]);
        r->n = cdb[4] ? cdb[4] : 256;
        r->fua = false;
        return true;
    case SCSI_OP_READ_10:
    case SCSI_OP_WRITE_10:
        r->lba = ld_be32(&cdb[2]);
        r->n = ld_be16(&cdb[7]);
        break;
    case SCSI_OP_READ_12:
    case SCSI_OP_WRITE_12:
        r->lba = ld_be32(&cdb[2]);
        r->n = ld_be32(&cdb[6]);
        break;
    default:
        r->lba = ld_be64(&cdb[2]);
        r->n = ld_be32(&cdb[10]);
        break;
    }
    r->fua = cdb[1] & 0x08;
    /* RDPROTECT/WRPROTECT need protection information: none here. */
    if (cdb[1] & 0xe0) {
        scsi_req_complete_sense(req, SENSE_INVALID_FIELD_IN_CDB);
        return false;
    }
    return true;
}

bool hd_check_write(ScsiHd *hd, ScsiRequest *req)
{
    if (hd->read_only) {
        scsi_req_complete_sense(req, SENSE_WRITE_PROTECTED);
        return false;
    }
    return true;
}

bool hd_check_data_out(ScsiHd *hd, ScsiRequest *req, size_t bytes)
{
    if (bytes && (req->dir != SCSI_DIR_TO_DEV || req->data_len < bytes)) {
        log_ratelimited(LOG_WARN, "scsi-hd %s: %zu-byte buffer for a "
                        "%zu-byte data-out", hd->dev.id, req->data_len,
                        bytes);
        req->response = SCSI_RESP_OVERRUN;
        scsi_req_complete(req);
        return false;
    }
    return true;
}

static bool hd_iov_aligned(const struct iovec *iov, int cnt, uint32_t align)
{
    for (int i = 0; i < cnt; i++) {
        if ((uintptr_t)iov[i].iov_base % align || iov[i].iov_len % align) {
            return false;
        }
    }
    return true;
}

/* Points io at the first 'bytes' of the request's buffers, or at an
 * aligned bounce buffer (filled with the data-out for writes). */
static bool hd_io_map_buffers(HdIo *io, size_t bytes)
{
    ScsiRequest *req = io->req;
    uint32_t align = blk_alignment(io->hd->blk);
    int cnt = req->iovcnt > 0 ? req->iovcnt : 1;

    io->iov = cnt <= HD_IO_INLINE_IOV ? io->iov_inline :
              calloc((size_t)cnt, sizeof(*io->iov));
    if (!io->iov) {
        return false;
    }
    io->iovcnt = scsi_iov_slice(req->iov, req->iovcnt, 0, bytes, io->iov,
                                cnt);
    if (io->iovcnt >= 0 && (align <= 1 ||
                            hd_iov_aligned(io->iov, io->iovcnt, align))) {
        return true;
    }
    io->bounce = aligned_alloc(align > 1 ? align : 8, bytes);
    if (!io->bounce) {
        return false;
    }
    if (io->kind == IO_WRITE) {
        scsi_iov_to_buf(req->iov, req->iovcnt, 0, io->bounce, bytes);
    }
    io->iov[0] = (struct iovec){ .iov_base = io->bounce, .iov_len = bytes };
    io->iovcnt = 1;
    return true;
}

static void hd_cmd_rw(ScsiHd *hd, ScsiRequest *req, bool write)
{
    HdRange r;
    if (!hd_decode_rw(req, &r)) {
        return;
    }
    /* SBC-3 5.8: above the Block Limits MAXIMUM TRANSFER LENGTH. */
    if (r.n > HD_MAX_XFER_BLOCKS) {
        log_ratelimited(LOG_DEBUG, "scsi-hd %s: %u blocks above the "
                        "maximum transfer length", hd->dev.id, r.n);
        scsi_req_complete_sense(req, SENSE_INVALID_FIELD_IN_CDB);
        return;
    }
    if (!hd_range_ok(hd, r.lba, r.n)) {
        log_ratelimited(LOG_DEBUG, "scsi-hd %s: LBA %llu+%u beyond %llu",
                        hd->dev.id, (unsigned long long)r.lba, r.n,
                        (unsigned long long)hd->nb_blocks);
        scsi_req_complete_sense(req, SENSE_LBA_OUT_OF_RANGE);
        return;
    }
    if (write && !hd_check_write(hd, req)) {
        return;
    }
    size_t bytes = (size_t)r.n * hd->block_size;
    if (bytes == 0) {
        scsi_req_complete_good(req, 0);
        return;
    }
    if (req->dir != (write ? SCSI_DIR_TO_DEV : SCSI_DIR_FROM_DEV) ||
        req->data_len < bytes) {
        log_ratelimited(LOG_WARN, "scsi-hd %s: %zu-byte buffer for a "
                        "%zu-byte transfer", hd->dev.id, req->data_len, bytes);
        req->response = SCSI_RESP_OVERRUN;
        scsi_req_complete(req);
        return;
    }
    HdIo *io = hd_io_new(hd, req, write ? IO_WRITE : IO_READ);
    if (!io) {
        return;
    }
    io->offset = r.lba * hd->block_size;
    io->bytes = bytes;
    io->xfer = bytes;
    /* Write-through when the guest turned the write cache off. */
    io->fua = write && (r.fua || !hd->wce);
    if (!hd_io_map_buffers(io, bytes)) {
        hd_io_fail_nomem(io);
        return;
    }
    if (write) {
        hd_lock_set(io, LOCK_SHARED, r.lba, r.n);
    }
    hd_io_start(io);
}

void hd_cmd_read(ScsiHd *hd, ScsiRequest *req)
{
    hd_cmd_rw(hd, req, false);
}

void hd_cmd_write(ScsiHd *hd, ScsiRequest *req)
{
    hd_cmd_rw(hd, req, true);
}

void hd_cmd_sync_cache(ScsiHd *hd, ScsiRequest *req)
{
    const uint8_t *cdb = req->cdb;
    bool ten = cdb[0] == SCSI_OP_SYNCHRONIZE_CACHE_10;
    uint64_t lba = ten ? ld_be32(&cdb[2]) : ld_be64(&cdb[2]);
    uint32_t n = ten ? ld_be16(&cdb[7]) : ld_be32(&cdb[10]);

    /* SBC-3 5.22: the range is checked; the whole cache is flushed. */
    if (!hd_range_ok(hd, lba, n)) {
        scsi_req_complete_sense(req, SENSE_LBA_OUT_OF_RANGE);
        return;
    }
    if (hd->read_only) {
        scsi_req_complete_good(req, 0);     /* nothing can be dirty */
        return;
    }
    HdIo *io = hd_io_new(hd, req, IO_FLUSH);
    if (io) {
        hd_io_issue(io);
    }
}

/* SBC-3 5.28.2: checks the UNMAP parameter list; returns a sense or NO
 * SENSE, and the descriptors (count in *n) at *descs. */
static ScsiSense hd_unmap_parse(ScsiHd *hd, const uint8_t *p, size_t len,
                                const uint8_t **descs, unsigned *n)
{
    if (len < 8) {
        return SENSE_PARAM_LIST_LENGTH_ERROR;
    }
    size_t data_len = ld_be16(&p[0]);
    size_t desc_len = ld_be16(&p[2]);
    if (data_len + 2 > len || desc_len + 8 > len ||
        desc_len + 6 > data_len) {
        return SENSE_PARAM_LIST_LENGTH_ERROR;
    }
    if (desc_len % 16) {
        return SENSE_INVALID_FIELD_IN_PARAM;
    }
    *n = (unsigned)(desc_len / 16);
    *descs = p + 8;
    if (*n > HD_MAX_UNMAP_DESCS) {
        return SENSE_INVALID_FIELD_IN_PARAM;
    }
    uint64_t total = 0;
    for (unsigned i = 0; i < *n; i++) {
        const uint8_t *d = *descs + 16 * i;
        uint64_t lba = ld_be64(d);
        uint32_t cnt = ld_be32(&d[8]);
        /* SBC-3 5.28: the total over all descriptors may not exceed
         * MAXIMUM UNMAP LBA COUNT. */
        total += cnt;
        if (total > HD_MAX_UNMAP_BLOCKS) {
            return SENSE_INVALID_FIELD_IN_PARAM;
        }
        if (!hd_range_ok(hd, lba, cnt)) {
            return SENSE_LBA_OUT_OF_RANGE;
        }
    }
    return SENSE_NO_SENSE;
}

/* The span of all descriptors, locked shared (serialised against
 * COMPARE AND WRITE like any write). */
static void hd_unmap_lock_span(HdIo *io)
{
    uint64_t first = UINT64_MAX, end = 0;
    for (unsigned i = 0; i < io->n_descs; i++) {
        const uint8_t *d = io->descs + 16 * i;
        uint64_t lba = ld_be64(d), n = ld_be32(&d[8]);
        if (n && lba < first) {
            first = lba;
        }
        if (n && lba + n > end) {
            end = lba + n;
        }
    }
    if (end > first) {
        hd_lock_set(io, LOCK_SHARED, first, end - first);
    }
}

void hd_cmd_unmap(ScsiHd *hd, ScsiRequest *req)
{
    size_t len = ld_be16(&req->cdb[7]);
    const uint8_t *descs;
    unsigned n;

    /* SBC-3 5.28: ANCHOR needs anchored-LBA support (ANC_SUP = 0). */
    if (req->cdb[1] & 0x01) {
        scsi_req_complete_sense(req, SENSE_INVALID_FIELD_IN_CDB);
        return;
    }
    if (!hd_check_write(hd, req)) {
        return;
    }
    if (len == 0) {
        scsi_req_complete_good(req, 0);     /* no parameter data: no-op */
        return;
    }
    if (req->dir != SCSI_DIR_TO_DEV || req->data_len < len) {
        req->response = SCSI_RESP_OVERRUN;
        scsi_req_complete(req);
        return;
    }
    uint8_t *p = malloc(len);
    if (!p) {
        scsi_req_complete_sense(req, SENSE_ABORTED_COMMAND);
        return;
    }
    scsi_req_get_data(req, p, len);
    ScsiSense s = hd_unmap_parse(hd, p, len, &descs, &n);
    if (s.key) {
        log_ratelimited(LOG_DEBUG, "scsi-hd %s: UNMAP refused (%02x/%02x)",
                        hd->dev.id, s.asc, s.ascq);
        free(p);
        scsi_req_complete_sense(req, s);
        return;
    }
    HdIo *io = hd_io_new(hd, req, IO_UNMAP);
    if (!io) {
        free(p);
        return;
    }
    /* Keep the descriptors: the data-out buffer is read only once. */
    memmove(p, descs, (size_t)n * 16);
    io->descs = p;
    io->n_descs = n;
    io->may_unmap = true;
    io->xfer = len;
    io->flush_after = !hd->wce;
    hd_unmap_lock_span(io);
    if (!hd_io_next_step(io)) {
        hd_io_finish(io, 0);
        return;
    }
    hd_io_start(io);
}

static bool hd_block_is_zero(const uint8_t *b, size_t len)
{
    return len == 0 || (b[0] == 0 && memcmp(b, b + 1, len - 1) == 0);
}

/* WRITE SAME with a non-zero block: write it repeatedly, a chunk at a
 * time. */
static void hd_write_pattern(ScsiHd *hd, HdIo *io, const uint8_t *block,
                             uint64_t n)
{
    uint32_t bs = hd->block_size;
    uint64_t chunk_blocks = n < 256 ? n : 256;
    size_t chunk = (size_t)chunk_blocks * bs;
    uint32_t align = blk_alignment(hd->blk);

    io->kind = IO_PATTERN;
    io->bounce = aligned_alloc(align > 1 ? align : 8, chunk);
    io->iov = io->iov_inline;
    if (!io->bounce) {
        hd_io_fail_nomem(io);
        return;
    }
    for (uint64_t i = 0; i < chunk_blocks; i++) {
        memcpy(io->bounce + i * bs, block, bs);
    }
    io->iov[0] = (struct iovec){ .iov_base = io->bounce, .iov_len = chunk };
    io->iovcnt = 1;
    io->bytes = chunk;
    io->end = io->offset + n * bs;
    io->fua = !hd->wce;
    hd_io_start(io);
}

void hd_cmd_write_same(ScsiHd *hd, ScsiRequest *req)
{
    const uint8_t *cdb = req->cdb;
    bool ten = cdb[0] == SCSI_OP_WRITE_SAME_10;
    uint64_t lba = ten ? ld_be32(&cdb[2]) : ld_be64(&cdb[2]);
    uint32_t n = ten ? ld_be16(&cdb[7]) : ld_be32(&cdb[10]);
    bool ndob = !ten && (cdb[1] & 0x01);
    uint32_t bs = hd->block_size;

    /* SBC-3 5.45: no protection info, no ANCHOR, WSNZ=1 (0 blocks is
     * refused), at most MAXIMUM WRITE SAME LENGTH. */
    if ((cdb[1] & 0xf0) || n == 0 || n > HD_MAX_WRITE_SAME_BLOCKS) {
        scsi_req_complete_sense(req, SENSE_INVALID_FIELD_IN_CDB);
        return;
    }
    if (!hd_range_ok(hd, lba, n)) {
        scsi_req_complete_sense(req, SENSE_LBA_OUT_OF_RANGE);
        return;
    }
    if (!hd_check_write(hd, req)) {
        return;
    }
    if (!ndob && (req->dir != SCSI_DIR_TO_DEV || req->data_len < bs)) {
        req->response = SCSI_RESP_OVERRUN;
        scsi_req_complete(req);
        return;
    }
    uint8_t *block = calloc(1, bs);
    HdIo *io = block ? hd_io_new(hd, req, IO_ZERO) : NULL;
    if (!io) {
        if (!block) {
            scsi_req_complete_sense(req, SENSE_ABORTED_COMMAND);
        }
        free(block);
        return;
    }
    if (!ndob) {
        scsi_req_get_data(req, block, bs);
    }
    io->offset = lba * bs;
    io->bytes = (uint64_t)n * bs;
    io->xfer = ndob ? 0 : bs;
    hd_lock_set(io, LOCK_SHARED, lba, n);
    if (hd_block_is_zero(block, bs)) {
        io->may_unmap = cdb[1] & 0x08;      /* UNMAP bit */
        io->flush_after = !hd->wce;
        hd_io_start(io);
    } else {
        hd_write_pattern(hd, io, block, n);
    }
    free(block);
}
