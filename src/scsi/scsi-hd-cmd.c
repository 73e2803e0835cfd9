/* scsi-hd commands answered without the backend: INQUIRY and its VPD
 * pages, READ CAPACITY, REQUEST SENSE, TEST UNIT READY, START STOP UNIT,
 * REPORT LUNS, PRE-FETCH, RESERVE(6) and RELEASE(6). */
#include "scsi/scsi-hd.h"
#include "util/log.h"

#include <string.h>

/* Space-padded ASCII field (SPC-4 4.4.1). */
static void put_ascii(uint8_t *dst, size_t len, const char *s)
{
    size_t n = strlen(s);
    memset(dst, ' ', len);
    memcpy(dst, s, n < len ? n : len);
}

static size_t vpd_supported_pages(ScsiHd *hd, uint8_t *d)
{
    size_t n = 4;
    d[n++] = 0x00;
    if (hd->serial[0]) {
        d[n++] = 0x80;
    }
    d[n++] = 0x83;
    d[n++] = 0xb0;
    d[n++] = 0xb1;
    d[n++] = 0xb2;
    return n;
}

static size_t vpd_device_id(ScsiHd *hd, uint8_t *d)
{
    size_t n = 4;
    const char *id = hd->serial[0] ? hd->serial : hd->dev.id;
    size_t id_len = strlen(id);

    /* SPC-4 7.8.6.4: T10 vendor ID designator, ASCII, for the LUN. */
    d[n++] = 0x02;                  /* code set: ASCII */
    d[n++] = 0x01;                  /* association LUN, type T10 vendor */
    d[n++] = 0;
    d[n++] = (uint8_t)(8 + id_len);
    put_ascii(&d[n], 8, hd->vendor);
    memcpy(&d[n + 8], id, id_len);
    n += 8 + id_len;
    if (hd->wwn) {
        /* SPC-4 7.8.6.6: NAA designator, binary, 8 bytes. */
        d[n++] = 0x01;
        d[n++] = 0x03;
        d[n++] = 0;
        d[n++] = 8;
        st_be64(&d[n], hd->wwn);
        n += 8;
    }
    return n;
}

static size_t vpd_block_limits(ScsiHd *hd, uint8_t *d)
{
    uint32_t gran = hd->discard_granularity / hd->block_size;
    /* SBC-3 6.5.3. */
    d[4] = 0x01;                                /* WSNZ */
    d[5] = HD_MAX_CAW_BLOCKS;                   /* max compare and write */
    st_be16(&d[6], 1);                          /* opt. xfer granularity */
    st_be32(&d[8], HD_MAX_XFER_BLOCKS);         /* max transfer length */
    st_be32(&d[12], HD_MAX_XFER_BLOCKS);        /* optimal transfer */
    st_be32(&d[20], HD_MAX_UNMAP_BLOCKS);       /* max unmap LBA count */
    st_be32(&d[24], HD_MAX_UNMAP_DESCS);        /* max unmap descriptors */
    st_be32(&d[28], gran);                      /* optimal unmap gran. */
    st_be64(&d[36], HD_MAX_WRITE_SAME_BLOCKS);  /* max write same length */
    return 64;
}

static size_t vpd_block_characteristics(uint8_t *d)
{
    st_be16(&d[4], 0x0001);     /* SBC-3 6.5.2: non-rotating medium */
    return 64;
}

static size_t vpd_provisioning(uint8_t *d)
{
    /* SBC-3 6.5.4: LBPU, LBPWS, LBPWS10, LBPRZ; thin provisioned. */
    d[5] = 0x80 | 0x40 | 0x20 | 0x04;
    d[6] = 0x02;
    return 8;
}

static void hd_inquiry_vpd(ScsiHd *hd, ScsiRequest *req, uint8_t page,
                           size_t alloc_len)
{
    uint8_t d[256] = { 0 };
    size_t n;

    switch (page) {
    case 0x00: n = vpd_supported_pages(hd, d); break;
    case 0x80:
        if (!hd->serial[0]) {
            goto bad_page;
        }
        n = 4 + strlen(hd->serial);
        memcpy(&d[4], hd->serial, n - 4);
        break;
    case 0x83: n = vpd_device_id(hd, d); break;
    case 0xb0: n = vpd_block_limits(hd, d); break;
    case 0xb1: n = vpd_block_characteristics(d); break;
    case 0xb2: n = vpd_provisioning(d); break;
    default:
        goto bad_page;
    }
    d[0] = 0x00;                /* direct access block device */
    d[1] = page;
    st_be16(&d[2], (uint16_t)(n - 4));
    hd_reply(req, d, n, alloc_len);
    return;
bad_page:
    /* SPC-4 6.6.1: an unsupported page is an invalid field in the CDB. */
    scsi_req_complete_sense(req, SENSE_INVALID_FIELD_IN_CDB);
}

/* Standard INQUIRY data (SPC-4 6.6.2) up to the version descriptors. */
#define HD_STD_INQUIRY_LEN 96

/* SPC-4 6.6.2: the standards claimed, from SPC-4 table 141: SAM-5,
 * SPC-4, SBC-3 (no version given). */
static const uint16_t hd_version_descriptors[] = { 0x00a0, 0x0460, 0x04c0 };

void hd_cmd_inquiry(ScsiHd *hd, ScsiRequest *req)
{
    const uint8_t *cdb = req->cdb;
    uint8_t d[HD_STD_INQUIRY_LEN] = { 0 };
    size_t alloc_len = ld_be16(&cdb[3]);

    /* SPC-4 6.6: CMDDT is obsolete; a page code needs EVPD. */
    if ((cdb[1] & 0x02) || (!(cdb[1] & 0x01) && cdb[2])) {
        scsi_req_complete_sense(req, SENSE_INVALID_FIELD_IN_CDB);
        return;
    }
    if (cdb[1] & 0x01) {
        hd_inquiry_vpd(hd, req, cdb[2], alloc_len);
        return;
    }
    d[0] = 0x00;                /* connected, direct access block device */
    d[2] = 0x06;                /* SPC-4 */
    d[3] = 0x12;                /* HISUP, response data format 2 */
    d[4] = sizeof(d) - 5;
    d[7] = 0x02;                /* CMDQUE */
    put_ascii(&d[8], 8, hd->vendor);
    put_ascii(&d[16], 16, hd->product);
    put_ascii(&d[32], 4, "0.1");
    for (size_t i = 0; i < sizeof(hd_version_descriptors) /
                           sizeof(hd_version_descriptors[0]); i++) {
        st_be16(&d[58 + 2 * i], hd_version_descriptors[i]);
    }
    hd_reply(req, d, sizeof(d), alloc_len);
}

void hd_cmd_read_capacity_10(ScsiHd *hd, ScsiRequest *req)
{
    uint8_t d[8];
    uint64_t last = hd->nb_blocks - 1;

    /* SBC-3 5.15: without PMI the LBA field must be zero. */
    if (!(req->cdb[8] & 0x01) && ld_be32(&req->cdb[2])) {
        scsi_req_complete_sense(req, SENSE_INVALID_FIELD_IN_CDB);
        return;
    }
    /* Too big for 32 bits: FFFFFFFFh sends the initiator to (16). */
    st_be32(&d[0], last > 0xffffffffu ? 0xffffffffu : (uint32_t)last);
    st_be32(&d[4], hd->block_size);
    hd_reply(req, d, sizeof(d), sizeof(d));
}

void hd_cmd_service_action_in(ScsiHd *hd, ScsiRequest *req)
{
    uint8_t d[32] = { 0 };

    switch (req->cdb[1] & 0x1f) {
    case SCSI_SAI_READ_CAPACITY_16:
        break;
    case SCSI_SAI_GET_LBA_STATUS:
        hd_cmd_get_lba_status(hd, req);
        return;
    default:
        scsi_req_complete_sense(req, SENSE_INVALID_FIELD_IN_CDB);
        return;
    }
    if (!(req->cdb[14] & 0x01) && ld_be64(&req->cdb[2])) {
        scsi_req_complete_sense(req, SENSE_INVALID_FIELD_IN_CDB);
        return;
    }
    /* SBC-3 5.16.2. */
    st_be64(&d[0], hd->nb_blocks - 1);
    st_be32(&d[8], hd->block_size);
    d[14] = 0x80 | 0x40;        /* LBPME, LBPRZ */
    hd_reply(req, d, sizeof(d), ld_be32(&req->cdb[10]));
}

void hd_cmd_request_sense(ScsiHd *hd, ScsiRequest *req)
{
    uint8_t s[SCSI_FIXED_SENSE_LEN];
    ScsiSense sense = SENSE_NO_SENSE;

    /* SPC-4 6.39: DESC=1 needs descriptor format, which we do not use. */
    if (req->cdb[1] & 0x01) {
        scsi_req_complete_sense(req, SENSE_INVALID_FIELD_IN_CDB);
        return;
    }
    if (hd->ua_pending) {
        /* SPC-4 5.11: reporting the unit attention here clears it. */
        sense = SCSI_SENSE(hd->ua_key, hd->ua_asc, hd->ua_ascq);
        hd->ua_pending = false;
    } else if (hd->stopped) {
        sense = SENSE_NOT_READY_INIT_REQUIRED;
    }
    scsi_sense_build_fixed(s, sizeof(s), sense);
    hd_reply(req, s, sizeof(s), req->cdb[4]);
}

void hd_cmd_test_unit_ready(ScsiHd *hd, ScsiRequest *req)
{
    if (hd->stopped) {
        scsi_req_complete_sense(req, SENSE_NOT_READY_INIT_REQUIRED);
        return;
    }
    scsi_req_complete_good(req, 0);
}

void hd_cmd_start_stop(ScsiHd *hd, ScsiRequest *req)
{
    uint8_t power_condition = req->cdb[4] >> 4;

    /* SBC-3 5.20: LOEJ has no meaning for a fixed medium. */
    if (req->cdb[4] & 0x02) {
        scsi_req_complete_sense(req, SENSE_INVALID_FIELD_IN_CDB);
        return;
    }
    if (power_condition == 0) {
        hd->stopped = !(req->cdb[4] & 0x01);
    }
    /* Other power conditions are accepted and change nothing. */
    scsi_req_complete_good(req, 0);
}

void hd_cmd_report_luns(ScsiHd *hd, ScsiRequest *req)
{
    scsi_bus_answer_report_luns(hd->bus, req);
}

void hd_cmd_prefetch(ScsiHd *hd, ScsiRequest *req)
{
    const uint8_t *cdb = req->cdb;
    bool ten = cdb[0] == SCSI_OP_PREFETCH_10;
    uint64_t lba = ten ? ld_be32(&cdb[2]) : ld_be64(&cdb[2]);
    uint32_t n = ten ? ld_be16(&cdb[7]) : ld_be32(&cdb[10]);

    /* SBC-3 5.9/5.10: the range is checked like a read's (SBC-3 4.5),
     * then the Block Limits MAXIMUM TRANSFER LENGTH (6.5.3). */
    if (!hd_range_ok(hd, lba, n)) {
        scsi_req_complete_sense(req, SENSE_LBA_OUT_OF_RANGE);
        return;
    }
    if (n > HD_MAX_XFER_BLOCKS) {
        scsi_req_complete_sense(req, SENSE_INVALID_FIELD_IN_CDB);
        return;
    }
    /* The images are read without a device cache to fill (the host's
     * page cache is not ours to promise): "the cache does not have
     * sufficient capacity", so GOOD rather than CONDITION MET. */
    scsi_req_complete_good(req, 0);
}

/*
 * RESERVE(6) / RELEASE(6), SPC-2 7.21 / 7.17: the logical unit reserved
 * for one I_T nexus. virtio-scsi gives every controller exactly one
 * initiator port, so the requester is always the holder (a conflict
 * needs a second nexus): RESERVE takes or keeps the reservation, RELEASE
 * drops it, and a reset or nexus loss clears it (SPC-2 5.5.1). Extent
 * and third-party reservations are obsolete and refused.
 */
void hd_cmd_reserve(ScsiHd *hd, ScsiRequest *req)
{
    /* SPC-2 7.21.1: 3RDPTY (bit 4), third-party device ID, LONGID and
     * EXTENT (bit 0). */
    if (req->cdb[1] & 0x1f) {
        scsi_req_complete_sense(req, SENSE_INVALID_FIELD_IN_CDB);
        return;
    }
    hd->reserved = true;
    scsi_req_complete_good(req, 0);
}

void hd_cmd_release(ScsiHd *hd, ScsiRequest *req)
{
    /* SPC-2 7.17.1: the same obsolete fields. Releasing a reservation
     * not held is no error. */
    if (req->cdb[1] & 0x1f) {
        scsi_req_complete_sense(req, SENSE_INVALID_FIELD_IN_CDB);
        return;
    }
    hd->reserved = false;
    scsi_req_complete_good(req, 0);
}
