/* scsi-hd against a scratch image: every command's data and sense. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#define HD_TEST_IMG "scsi-hd-test.img"
#include "hd-test-util.h"

static void test_unit_attention_once(void **state)
{
    HdCmdResult r = CMD_NONE(SCSI_OP_TEST_UNIT_READY, 0, 0, 0, 0, 0);
    assert_good(&r);
    /* A LUN reset raises a new one, reported through REQUEST SENSE. */
    scsi_bus_tmf(t.bus, 0, SCSI_TMF_LOGICAL_UNIT_RESET, 0, NULL, NULL);
    uint8_t s[18];
    r = CMD_IN(s, sizeof(s), SCSI_OP_REQUEST_SENSE, 0, 0, 0, 18, 0);
    assert_good(&r);
    assert_int_equal(s[0], 0x70);
    assert_int_equal(s[2], 0x6);
    assert_int_equal(s[12], 0x29);
    assert_int_equal(s[13], 0x03);
    r = CMD_NONE(SCSI_OP_TEST_UNIT_READY, 0, 0, 0, 0, 0);
    assert_good(&r);
}

static void test_inquiry_standard(void **state)
{
    uint8_t d[128];
    memset(d, 0xee, sizeof(d));
    HdCmdResult r = CMD_IN(d, sizeof(d), SCSI_OP_INQUIRY, 0, 0, 0, 128, 0);
    assert_good(&r);
    assert_int_equal(r.req.residual, 128 - 96);
    assert_int_equal(d[0], 0x00);
    assert_int_equal(d[4], 96 - 5);
    assert_memory_equal(&d[8], "STORMIG ", 8);
    assert_memory_equal(&d[16], "STORMIG DISK    ", 16);
    /* SPC-4 6.6.2: version descriptors SAM-5, SPC-4 and SBC-3, which the
     * 3Ch-byte Block Limits page implies (SBC-3 6.5.3). */
    assert_int_equal(ld_be16(&d[58]), 0x00a0);
    assert_int_equal(ld_be16(&d[60]), 0x0460);
    assert_int_equal(ld_be16(&d[62]), 0x04c0);
    assert_int_equal(ld_be16(&d[64]), 0);
    assert_int_equal(d[96], 0xee);      /* nothing beyond the data */
    /* Allocation length 5: five bytes, the rest untouched. */
    memset(d, 0xee, sizeof(d));
    r = CMD_IN(d, sizeof(d), SCSI_OP_INQUIRY, 0, 0, 0, 5, 0);
    assert_good(&r);
    assert_int_equal(r.req.residual, 128 - 5);
    assert_int_equal(d[4], 96 - 5);
    assert_int_equal(d[5], 0xee);
    /* A page code without EVPD is invalid. */
    r = CMD_IN(d, sizeof(d), SCSI_OP_INQUIRY, 0, 0x80, 0, 96, 0);
    assert_sense(&r, SENSE_INVALID_FIELD_IN_CDB);
}

static void test_inquiry_vpd(void **state)
{
    uint8_t d[255];
    HdCmdResult r = CMD_IN(d, sizeof(d), SCSI_OP_INQUIRY, 1, 0x00, 0, 255,
                           0);
    assert_good(&r);
    static const uint8_t pages[] = { 0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2 };
    assert_int_equal(ld_be16(&d[2]), sizeof(pages));
    assert_memory_equal(&d[4], pages, sizeof(pages));

    r = CMD_IN(d, sizeof(d), SCSI_OP_INQUIRY, 1, 0x80, 0, 255, 0);
    assert_good(&r);
    assert_int_equal(d[3], 7);
    assert_memory_equal(&d[4], "SN-0042", 7);

    r = CMD_IN(d, sizeof(d), SCSI_OP_INQUIRY, 1, 0x83, 0, 255, 0);
    assert_good(&r);
    /* T10 vendor designator, then the NAA one with the wwn. */
    assert_int_equal(d[5] & 0x0f, 1);
    assert_memory_equal(&d[8], "STORMIG SN-0042", 15);
    size_t naa = 8 + d[7];
    assert_int_equal(d[naa + 1] & 0x0f, 3);
    assert_int_equal(d[naa + 3], 8);
    assert_int_equal(ld_be64(&d[naa + 4]), 0x5001405abcdef012ull);
    assert_int_equal(ld_be16(&d[2]), naa + 12 - 4);

    r = CMD_IN(d, sizeof(d), SCSI_OP_INQUIRY, 1, 0xb0, 0, 255, 0);
    assert_good(&r);
    assert_int_equal(ld_be16(&d[2]), 0x3c);
    assert_int_equal(ld_be32(&d[20]), 1u << 20);    /* max unmap LBAs */
    assert_int_equal(ld_be32(&d[24]), 255);         /* max descriptors */
    assert_int_equal(ld_be32(&d[8]), 65535);        /* max transfer */
    assert_int_equal(d[5], 255);                    /* max compare+write */
    assert_int_equal(ld_be64(&d[36]), 1u << 22);    /* max write same */

    r = CMD_IN(d, sizeof(d), SCSI_OP_INQUIRY, 1, 0xb1, 0, 255, 0);
    assert_good(&r);
    assert_int_equal(ld_be16(&d[4]), 1);            /* non-rotating */

    r = CMD_IN(d, sizeof(d), SCSI_OP_INQUIRY, 1, 0xb2, 0, 255, 0);
    assert_good(&r);
    assert_int_equal(d[5] & 0xe4, 0xe4);            /* LBPU LBPWS(10) RZ */

    r = CMD_IN(d, sizeof(d), SCSI_OP_INQUIRY, 1, 0x99, 0, 255, 0);
    assert_sense(&r, SENSE_INVALID_FIELD_IN_CDB);
}

static void test_read_capacity(void **state)
{
    uint8_t d[32];
    HdCmdResult r = CMD_IN(d, 8, SCSI_OP_READ_CAPACITY_10, 0, 0, 0, 0, 0, 0,
                           0, 0, 0);
    assert_good(&r);
    assert_int_equal(ld_be32(&d[0]), IMG_BLOCKS - 1);
    assert_int_equal(ld_be32(&d[4]), BS);

    r = CMD_IN(d, 32, SCSI_OP_SERVICE_ACTION_IN_16, 0x10, 0, 0, 0, 0, 0, 0,
               0, 0, 0, 0, 0, 32, 0, 0);
    assert_good(&r);
    assert_int_equal(ld_be64(&d[0]), IMG_BLOCKS - 1);
    assert_int_equal(ld_be32(&d[8]), BS);
    assert_int_equal(d[14] & 0xc0, 0xc0);           /* LBPME, LBPRZ */

    /* LBA without PMI is invalid. */
    r = CMD_IN(d, 8, SCSI_OP_READ_CAPACITY_10, 0, 0, 0, 0, 1, 0, 0, 0, 0);
    assert_sense(&r, SENSE_INVALID_FIELD_IN_CDB);
}

static void test_read_write_all_sizes(void **state)
{
    uint8_t out[4 * BS], in[4 * BS], file[4 * BS];

    /* WRITE(10) of 2 blocks at LBA 10. */
    fill(out, sizeof(out), 1);
    HdCmdResult r = CMD_OUT(out, 2 * BS, SCSI_OP_WRITE_10, 0, 0, 0, 0, 10,
                            0, 0, 2, 0);
    assert_good(&r);
    read_image(10 * BS, file, 2 * BS);
    assert_memory_equal(file, out, 2 * BS);

    /* WRITE(16) with FUA, READ(16) back. */
    fill(out, sizeof(out), 9);
    r = CMD_OUT(out, 3 * BS, SCSI_OP_WRITE_16, 0x08, 0, 0, 0, 0, 0, 0, 0,
                100, 0, 0, 0, 3, 0, 0);
    assert_good(&r);
    r = CMD_IN(in, 3 * BS, SCSI_OP_READ_16, 0, 0, 0, 0, 0, 0, 0, 0, 100, 0,
               0, 0, 3, 0, 0);
    assert_good(&r);
    assert_int_equal(r.req.residual, 0);
    assert_memory_equal(in, out, 3 * BS);

    /* READ(6) and READ(12) of data written behind the disk's back. */
    fill(file, sizeof(file), 42);
    write_image(200 * BS, file, BS);
    r = CMD_IN(in, BS, SCSI_OP_READ_6, 0, 0, 200, 1, 0);
    assert_good(&r);
    assert_memory_equal(in, file, BS);
    memset(in, 0, sizeof(in));
    r = CMD_IN(in, BS, SCSI_OP_READ_12, 0, 0, 0, 0, 200, 0, 0, 0, 1, 0, 0);
    assert_good(&r);
    assert_memory_equal(in, file, BS);

    /* WRITE(6) and WRITE(12); larger buffer: residual. */
    fill(out, sizeof(out), 77);
    r = CMD_OUT(out, 2 * BS, SCSI_OP_WRITE_6, 0, 1, 0, 1, 0);
    assert_good(&r);
    assert_int_equal(r.req.residual, BS);
    r = CMD_OUT(out + BS, BS, SCSI_OP_WRITE_12, 0, 0, 0, 1, 1, 0, 0, 0, 1,
                0, 0);
    assert_good(&r);
    read_image(256 * BS, file, 2 * BS);
    assert_memory_equal(file, out, 2 * BS);

    /* Transfer length 0 in READ(10): nothing moves. */
    r = CMD_IN(in, BS, SCSI_OP_READ_10, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    assert_good(&r);
    assert_int_equal(r.req.residual, BS);
}

static void test_read_write_errors(void **state)
{
    uint8_t buf[2 * BS] = { 0 };
    /* Last block plus one. */
    HdCmdResult r = CMD_IN(buf, 2 * BS, SCSI_OP_READ_10, 0, 0, 0, 0x07,
                           0xff, 0, 0, 2, 0);
    assert_sense(&r, SENSE_LBA_OUT_OF_RANGE);
    /* LBA + length wraps around 2^64. */
    r = CMD_IN(buf, 2 * BS, SCSI_OP_READ_16, 0, 0xff, 0xff, 0xff, 0xff, 0xff,
               0xff, 0xff, 0xff, 0, 0, 0, 2, 0, 0);
    assert_sense(&r, SENSE_LBA_OUT_OF_RANGE);
    r = CMD_OUT(buf, BS, SCSI_OP_WRITE_10, 0, 0, 0, 0x08, 0, 0, 0, 1, 0);
    assert_sense(&r, SENSE_LBA_OUT_OF_RANGE);
    /* Above MAXIMUM TRANSFER LENGTH. */
    r = CMD_IN(buf, 2 * BS, SCSI_OP_READ_16, 0, 0, 0, 0, 0, 0, 0, 0, 0,
               0xff, 0xff, 0xff, 0xff, 0, 0);
    assert_sense(&r, SENSE_INVALID_FIELD_IN_CDB);
    /* Buffer smaller than the transfer length: overrun. */
    r = CMD_IN(buf, BS, SCSI_OP_READ_10, 0, 0, 0, 0, 0, 0, 0, 2, 0);
    assert_int_equal(r.req.response, SCSI_RESP_OVERRUN);
    /* Wrong direction. */
    r = CMD_IN(buf, BS, SCSI_OP_WRITE_10, 0, 0, 0, 0, 0, 0, 0, 1, 0);
    assert_int_equal(r.req.response, SCSI_RESP_OVERRUN);
    /* WRPROTECT without protection information. */
    r = CMD_OUT(buf, BS, SCSI_OP_WRITE_10, 0x20, 0, 0, 0, 0, 0, 0, 1, 0);
    assert_sense(&r, SENSE_INVALID_FIELD_IN_CDB);
    /* NACA in the control byte. */
    r = CMD_NONE(SCSI_OP_TEST_UNIT_READY, 0, 0, 0, 0, 0x04);
    assert_sense(&r, SENSE_INVALID_FIELD_IN_CDB);
}

static void test_sync_cache_verify(void **state)
{
    HdCmdResult r = CMD_NONE(SCSI_OP_SYNCHRONIZE_CACHE_10, 0, 0, 0, 0, 0, 0,
                             0, 0, 0);
    assert_good(&r);
    r = CMD_NONE(SCSI_OP_SYNCHRONIZE_CACHE_16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                 0, 0, 8, 0, 0);
    assert_good(&r);
    r = CMD_NONE(SCSI_OP_SYNCHRONIZE_CACHE_10, 0, 0, 0, 0x08, 0, 0, 0, 1, 0);
    assert_sense(&r, SENSE_LBA_OUT_OF_RANGE);
    r = CMD_NONE(SCSI_OP_VERIFY_10, 0, 0, 0, 0, 0, 0, 0, 8, 0);
    assert_good(&r);
    r = CMD_NONE(SCSI_OP_VERIFY_16, 0, 0, 0, 0, 0, 0, 0, 0x07, 0xff, 0, 0,
                 0, 2, 0, 0);
    assert_sense(&r, SENSE_LBA_OUT_OF_RANGE);
    /* BYTCHK 10b is reserved (SBC-3 5.33). */
    r = CMD_NONE(SCSI_OP_VERIFY_10, 0x04, 0, 0, 0, 0, 0, 0, 8, 0);
    assert_sense(&r, SENSE_INVALID_FIELD_IN_CDB);
}

static void test_mode_sense(void **state)
{
    uint8_t d[255];
    /* MODE SENSE(6), all pages, with block descriptor. */
    HdCmdResult r = CMD_IN(d, sizeof(d), SCSI_OP_MODE_SENSE_6, 0, 0x3f, 0,
                           255, 0);
    assert_good(&r);
    size_t total = 4 + 8 + 12 + 20 + 12;
    assert_int_equal(d[0], total - 1);
    assert_int_equal(r.req.residual, sizeof(d) - total);
    assert_int_equal(d[3], 8);
    assert_int_equal(ld_be32(&d[4]), IMG_BLOCKS);
    assert_int_equal(ld_be32(&d[8]) & 0xffffff, BS);
    assert_int_equal(d[12], 0x01);
    assert_int_equal(d[24], 0x08);
    assert_int_equal(d[26] & 0x04, 0x04);           /* WCE on */
    assert_int_equal(d[44], 0x0a);

    /* Allocation length 4 truncates; DBD drops the descriptor. */
    memset(d, 0xee, sizeof(d));
    r = CMD_IN(d, sizeof(d), SCSI_OP_MODE_SENSE_6, 0x08, 0x08, 0, 4, 0);
    assert_good(&r);
    assert_int_equal(r.req.residual, sizeof(d) - 4);
    assert_int_equal(d[0], 4 + 20 - 1);
    assert_int_equal(d[3], 0);
    assert_int_equal(d[4], 0xee);

    /* MODE SENSE(10) with LLBAA: a 16-byte descriptor. */
    r = CMD_IN(d, sizeof(d), SCSI_OP_MODE_SENSE_10, 0x10, 0x08, 0, 0, 0, 0,
               0, 255, 0);
    assert_good(&r);
    assert_int_equal(ld_be16(&d[0]), 8 + 16 + 20 - 2);
    assert_int_equal(d[4] & 1, 1);
    assert_int_equal(ld_be16(&d[6]), 16);
    assert_int_equal(ld_be64(&d[8]), IMG_BLOCKS);
    assert_int_equal(d[24], 0x08);

    /* Changeable values: only WCE. */
    r = CMD_IN(d, sizeof(d), SCSI_OP_MODE_SENSE_6, 0x08, 0x48, 0, 255, 0);
    assert_good(&r);
    assert_int_equal(d[6], 0x04);
    for (int i = 7; i < 24; i++) {
        assert_int_equal(d[i], 0);
    }
    r = CMD_IN(d, sizeof(d), SCSI_OP_MODE_SENSE_6, 0x08, 0xc8, 0, 255, 0);
    assert_sense(&r, SENSE_SAVING_PARAMS_UNSUP);
    r = CMD_IN(d, sizeof(d), SCSI_OP_MODE_SENSE_6, 0x08, 0x1c, 0, 255, 0);
    assert_sense(&r, SENSE_INVALID_FIELD_IN_CDB);
}

static void caching_page(uint8_t *d, bool ten)
{
    HdCmdResult r = ten ?
        CMD_IN(d, 8 + 20, SCSI_OP_MODE_SENSE_10, 0x08, 0x08, 0, 0, 0, 0,
               0, 28, 0) :
        CMD_IN(d, 4 + 20, SCSI_OP_MODE_SENSE_6, 0x08, 0x08, 0, 24, 0);
    assert_good(&r);
}

static void test_mode_select(void **state)
{
    uint8_t d[28];
    caching_page(d, false);
    d[0] = 0;                       /* mode data length: reserved */
    d[4 + 2] &= ~0x04;              /* WCE off */
    HdCmdResult r = CMD_OUT(d, 24, SCSI_OP_MODE_SELECT_6, 0x10, 0, 0, 24, 0);
    assert_good(&r);
    caching_page(d, true);
    assert_int_equal(d[8 + 2] & 0x04, 0);
    /* A write still works, written through. */
    uint8_t blk[BS];
    fill(blk, sizeof(blk), 3);
    r = CMD_OUT(blk, BS, SCSI_OP_WRITE_10, 0, 0, 0, 0, 5, 0, 0, 1, 0);
    assert_good(&r);

    /* MODE SELECT(10) turning it back on. */
    d[0] = d[1] = 0;
    d[8 + 2] |= 0x04;
    r = CMD_OUT(d, 28, SCSI_OP_MODE_SELECT_10, 0x10, 0, 0, 0, 0, 0, 0, 28,
                0);
    assert_good(&r);
    caching_page(d, false);
    assert_int_equal(d[4 + 2] & 0x04, 0x04);

    /* A non-changeable field. */
    d[0] = 0;
    d[4 + 3] = 0x55;
    r = CMD_OUT(d, 24, SCSI_OP_MODE_SELECT_6, 0x10, 0, 0, 24, 0);
    assert_sense(&r, SENSE_INVALID_FIELD_IN_PARAM);
    /* A page longer than the list. */
    caching_page(d, false);
    d[0] = 0;
    r = CMD_OUT(d, 20, SCSI_OP_MODE_SELECT_6, 0x10, 0, 0, 20, 0);
    assert_sense(&r, SENSE_PARAM_LIST_LENGTH_ERROR);
    /* SP=1, PF=0. */
    r = CMD_OUT(d, 24, SCSI_OP_MODE_SELECT_6, 0x11, 0, 0, 24, 0);
    assert_sense(&r, SENSE_INVALID_FIELD_IN_CDB);
    r = CMD_OUT(d, 24, SCSI_OP_MODE_SELECT_6, 0x00, 0, 0, 24, 0);
    assert_sense(&r, SENSE_INVALID_FIELD_IN_CDB);
}

static void test_start_stop(void **state)
{
    uint8_t buf[BS];
    HdCmdResult r = CMD_NONE(SCSI_OP_START_STOP_UNIT, 0, 0, 0, 0x00, 0);
    assert_good(&r);
    r = CMD_NONE(SCSI_OP_TEST_UNIT_READY, 0, 0, 0, 0, 0);
    assert_sense(&r, SENSE_NOT_READY_INIT_REQUIRED);
    r = CMD_IN(buf, BS, SCSI_OP_READ_10, 0, 0, 0, 0, 0, 0, 0, 1, 0);
    assert_sense(&r, SENSE_NOT_READY_INIT_REQUIRED);
    r = CMD_NONE(SCSI_OP_START_STOP_UNIT, 0, 0, 0, 0x01, 0);
    assert_good(&r);
    r = CMD_IN(buf, BS, SCSI_OP_READ_10, 0, 0, 0, 0, 0, 0, 0, 1, 0);
    assert_good(&r);
}

static void add_hd(const char *img, const char *node, const char *id,
                   int lun)
{
    char opts[128];
    assert_true(hd_harness_make_image(img, 64 * 1024));
    assert_non_null(hd_harness_open(node, img, false));
    snprintf(opts, sizeof(opts), "scsi-hd,id=%s,drive=%s,bus=scsi0,lun=%d",
             id, node, lun);
    assert_non_null(hd_harness_device(opts, t.loop));
}

static void test_report_luns(void **state)
{
    uint8_t d[64];
    add_hd("scsi-hd-test-b.img", "disk1", "hd1", 5);
    add_hd("scsi-hd-test-c.img", "disk2", "hd2", 300);

    HdCmdResult r = CMD_IN(d, sizeof(d), SCSI_OP_REPORT_LUNS, 0, 0, 0, 0, 0,
                           0, 0, 0, 64, 0, 0);
    assert_good(&r);
    assert_int_equal(ld_be32(&d[0]), 24);
    static const uint8_t want[24] = { 0, 0, 0, 0, 0, 0, 0, 0,
                                      0, 5, 0, 0, 0, 0, 0, 0,
                                      0x41, 0x2c, 0, 0, 0, 0, 0, 0 };
    assert_memory_equal(&d[8], want, sizeof(want));
    /* Truncated at 16 bytes. */
    r = CMD_IN(d, sizeof(d), SCSI_OP_REPORT_LUNS, 0, 0, 0, 0, 0, 0, 0, 0,
               16, 0, 0);
    assert_good(&r);
    assert_int_equal(r.req.residual, sizeof(d) - 16);
    r = CMD_IN(d, sizeof(d), SCSI_OP_REPORT_LUNS, 0, 0, 0, 0, 0, 0, 0, 0,
               15, 0, 0);
    assert_sense(&r, SENSE_INVALID_FIELD_IN_CDB);

    /* The target answers for a LUN that does not exist. */
    const uint8_t rl[12] = { SCSI_OP_REPORT_LUNS, 0, 0, 0, 0, 0, 0, 0, 0,
                             64, 0, 0 };
    r = cmd(7, rl, sizeof(rl), SCSI_DIR_FROM_DEV, d, sizeof(d));
    assert_good(&r);
    assert_int_equal(ld_be32(&d[0]), 24);
    const uint8_t inq[6] = { SCSI_OP_INQUIRY, 0, 0, 0, 36, 0 };
    r = cmd(7, inq, sizeof(inq), SCSI_DIR_FROM_DEV, d, sizeof(d));
    assert_good(&r);
    assert_int_equal(d[0], 0x7f);
    const uint8_t tur[6] = { 0 };
    r = cmd(7, tur, sizeof(tur), SCSI_DIR_NONE, NULL, 0);
    assert_sense(&r, SENSE_LUN_NOT_SUPPORTED);
    unlink("scsi-hd-test-b.img");
    unlink("scsi-hd-test-c.img");
    Device *d1 = device_find("hd1"), *d2 = device_find("hd2");
    device_destroy(d1);
    device_destroy(d2);
    blk_close(blk_by_name("disk1"));
    blk_close(blk_by_name("disk2"));
}

static void test_unmap(void **state)
{
    uint8_t data[4 * BS], file[4 * BS], zero[4 * BS] = { 0 };
    fill(data, sizeof(data), 5);
    write_image(40 * BS, data, sizeof(data));
    write_image(80 * BS, data, sizeof(data));

    static uint8_t p[8 + 16 * 256];
    uint64_t lba[2] = { 40, 81 };
    uint32_t cnt[2] = { 4, 2 };
    size_t len = unmap_list(p, 2, lba, cnt);
    HdCmdResult r = UNMAP(p, len);
    assert_good(&r);
    read_image(40 * BS, file, 4 * BS);
    assert_memory_equal(file, zero, 4 * BS);
    read_image(80 * BS, file, 4 * BS);
    assert_memory_equal(file, data, BS);
    assert_memory_equal(file + BS, zero, 2 * BS);
    assert_memory_equal(file + 3 * BS, data + 3 * BS, BS);

    /* Parameter list length 1..7. */
    r = UNMAP(p, 4);
    assert_sense(&r, SENSE_PARAM_LIST_LENGTH_ERROR);
    /* Header lengths beyond the list. */
    len = unmap_list(p, 1, lba, cnt);
    st_be16(&p[0], 100);
    r = UNMAP(p, len);
    assert_sense(&r, SENSE_PARAM_LIST_LENGTH_ERROR);
    len = unmap_list(p, 1, lba, cnt);
    st_be16(&p[2], 32);
    r = UNMAP(p, len);
    assert_sense(&r, SENSE_PARAM_LIST_LENGTH_ERROR);
    /* Descriptor length not a multiple of 16. */
    len = unmap_list(p, 1, lba, cnt);
    st_be16(&p[0], 6 + 8);
    st_be16(&p[2], 8);
    r = UNMAP(p, len);
    assert_sense(&r, SENSE_INVALID_FIELD_IN_PARAM);
    /* 256 descriptors: one too many. */
    static uint64_t many_lba[256];
    static uint32_t many_cnt[256];
    for (int i = 0; i < 256; i++) {
        many_lba[i] = (uint64_t)i;
        many_cnt[i] = 1;
    }
    len = unmap_list(p, 256, many_lba, many_cnt);
    r = UNMAP(p, len);
    assert_sense(&r, SENSE_INVALID_FIELD_IN_PARAM);
    /* A range past the end, even after a good one: nothing happens. */
    write_image(40 * BS, data, BS);
    uint64_t bad_lba[2] = { 40, IMG_BLOCKS - 1 };
    uint32_t bad_cnt[2] = { 1, 2 };
    len = unmap_list(p, 2, bad_lba, bad_cnt);
    r = UNMAP(p, len);
    assert_sense(&r, SENSE_LBA_OUT_OF_RANGE);
    read_image(40 * BS, file, BS);
    assert_memory_equal(file, data, BS);
    /* Over MAXIMUM UNMAP LBA COUNT. */
    uint32_t huge = (1u << 22) + 1;
    len = unmap_list(p, 1, lba, &huge);
    r = UNMAP(p, len);
    assert_sense(&r, SENSE_INVALID_FIELD_IN_PARAM);
    /* ANCHOR. */
    len = unmap_list(p, 1, lba, cnt);
    r = CMD_OUT(p, len, SCSI_OP_UNMAP, 1, 0, 0, 0, 0, 0, 0, (uint8_t)len, 0);
    assert_sense(&r, SENSE_INVALID_FIELD_IN_CDB);
    /* Zero-length list: nothing to do. */
    r = UNMAP(p, 0);
    assert_good(&r);
}

static void test_write_same(void **state)
{
    uint8_t block[BS], file[BS];
    fill(block, sizeof(block), 11);
    /* 300 blocks: more than one internal chunk. */
    HdCmdResult r = CMD_OUT(block, BS, SCSI_OP_WRITE_SAME_10, 0, 0, 0, 0x01,
                            0, 0, 0x01, 0x2c, 0);
    assert_good(&r);
    for (unsigned lba = 256; lba < 256 + 300; lba += 299) {
        read_image((uint64_t)lba * BS, file, BS);
        assert_memory_equal(file, block, BS);
    }
    read_image(556 * BS, file, BS);
    assert_int_equal(file[0] | file[100], 0);

    /* Zero block with UNMAP: write-zeroes. */
    memset(block, 0, sizeof(block));
    r = CMD_OUT(block, BS, SCSI_OP_WRITE_SAME_16, 0x08, 0, 0, 0, 0, 0, 0,
                0x01, 0x00, 0, 0, 0, 10, 0, 0);
    assert_good(&r);
    read_image(256 * BS, file, BS);
    assert_memory_equal(file, block, BS);
    read_image(266 * BS, file, BS);
    assert_int_not_equal(file[1], 0);

    /* NDOB: no data-out at all. */
    r = CMD_NONE(SCSI_OP_WRITE_SAME_16, 0x09, 0, 0, 0, 0, 0, 0, 0x01, 0x0a,
                 0, 0, 0, 1, 0, 0);
    assert_good(&r);
    read_image(266 * BS, file, BS);
    assert_int_equal(file[1], 0);

    r = CMD_OUT(block, BS, SCSI_OP_WRITE_SAME_10, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    assert_sense(&r, SENSE_INVALID_FIELD_IN_CDB);
    r = CMD_OUT(block, BS, SCSI_OP_WRITE_SAME_10, 0, 0, 0, 0x07, 0xff, 0, 0,
                2, 0);
    assert_sense(&r, SENSE_LBA_OUT_OF_RANGE);
    r = CMD_NONE(SCSI_OP_WRITE_SAME_10, 0, 0, 0, 0, 0, 0, 0, 1, 0);
    assert_int_equal(r.req.response, SCSI_RESP_OVERRUN);
}

static void test_unsupported(void **state)
{
    uint8_t d[64];
    HdCmdResult r = CMD_IN(d, sizeof(d), SCSI_OP_PERSISTENT_RESERVE_IN, 0,
                           0, 0, 0, 0, 0, 0, 64, 0);
    assert_sense(&r, SENSE_INVALID_OPCODE);
    r = CMD_OUT(d, 24, SCSI_OP_PERSISTENT_RESERVE_OUT, 0, 0, 0, 0, 0, 0, 0,
                24, 0);
    assert_sense(&r, SENSE_INVALID_OPCODE);
    r = CMD_NONE(0xc7, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    assert_sense(&r, SENSE_INVALID_OPCODE);
    /* A CDB shorter than its opcode needs. */
    r = cmd(0, (const uint8_t[]){ SCSI_OP_READ_16, 0, 0, 0 }, 4,
            SCSI_DIR_FROM_DEV, d, sizeof(d));
    assert_sense(&r, SENSE_INVALID_FIELD_IN_CDB);
}

static void test_not_owned(void **state)
{
    uint8_t buf[BS];
    fill(buf, sizeof(buf), 8);
    Error *err = NULL;
    assert_true(blk_ownership_inactivate_all(&err));
    HdCmdResult r = CMD_OUT(buf, BS, SCSI_OP_WRITE_10, 0, 0, 0, 0, 1, 0, 0,
                            1, 0);
    assert_sense(&r, SENSE_NOT_READY_TRANSITION);
    r = CMD_IN(buf, BS, SCSI_OP_READ_10, 0, 0, 0, 0, 1, 0, 0, 1, 0);
    assert_good(&r);
    assert_true(blk_ownership_activate_all(&err));
    fill(buf, sizeof(buf), 8);
    r = CMD_OUT(buf, BS, SCSI_OP_WRITE_10, 0, 0, 0, 0, 1, 0, 0, 1, 0);
    assert_good(&r);
}

static void test_read_only(void **state)
{
    uint8_t d[64];
    uint8_t blk[BS] = { 0 };
    HdCmdResult r = CMD_OUT(blk, BS, SCSI_OP_WRITE_10, 0, 0, 0, 0, 1, 0, 0, 1, 0);
    assert_sense(&r, SENSE_WRITE_PROTECTED);
    r = CMD_IN(d, sizeof(d), SCSI_OP_MODE_SENSE_6, 0x08, 0x08, 0, 64, 0);
    assert_good(&r);
    assert_int_equal(d[2] & 0x80, 0x80);
    /* No serial: no page 80h. */
    r = CMD_IN(d, sizeof(d), SCSI_OP_INQUIRY, 1, 0x80, 0, 64, 0);
    assert_sense(&r, SENSE_INVALID_FIELD_IN_CDB);
}

static void tmf_done(ScsiTmfResult res, void *opaque)
{
    *(int *)opaque = (int)res;
}

static void test_tmf(void **state)
{
    int res = -1;
    scsi_bus_tmf(t.bus, 0, SCSI_TMF_ABORT_TASK, 1234, tmf_done, &res);
    assert_int_equal(res, SCSI_TMF_COMPLETE);
    scsi_bus_tmf(t.bus, 9, SCSI_TMF_LOGICAL_UNIT_RESET, 0, tmf_done, &res);
    assert_int_equal(res, SCSI_TMF_INCORRECT_LUN);
    scsi_bus_tmf(t.bus, 0, SCSI_TMF_QUERY_TASK, 1, tmf_done, &res);
    assert_int_equal(res, SCSI_TMF_COMPLETE);
    scsi_bus_tmf(t.bus, 0, SCSI_TMF_I_T_NEXUS_RESET, 0, tmf_done, &res);
    assert_int_equal(res, SCSI_TMF_COMPLETE);
    HdCmdResult r = CMD_NONE(SCSI_OP_TEST_UNIT_READY, 0, 0, 0, 0, 0);
    assert_sense(&r, SENSE_UA_I_T_NEXUS_LOSS);
}

static void test_vmstate_roundtrip(void **state)
{
    /* WCE off and a pending unit attention travel with the device. */
    uint8_t d[24];
    caching_page(d, false);
    d[0] = 0;
    d[4 + 2] &= ~0x04;
    HdCmdResult r = CMD_OUT(d, 24, SCSI_OP_MODE_SELECT_6, 0x10, 0, 0, 24, 0);
    assert_good(&r);
    scsi_bus_tmf(t.bus, 0, SCSI_TMF_LOGICAL_UNIT_RESET, 0, NULL, NULL);

    size_t n;
    VMStateSection *secs = device_vmstate_sections(&n);
    assert_int_equal(n, 1);
    ByteBuf b;
    bytebuf_init(&b);
    Error *err = NULL;
    assert_true(vmstate_save_stream(secs, n, false, &b, &err));
    free(secs);

    /* A fresh device (as on the destination) loads it. */
    device_destroy_all();
    t.dev = hd_harness_device("scsi-hd,id=hd0,drive=disk0,bus=scsi0,lun=0",
                              t.loop);
    assert_non_null(t.dev);
    secs = device_vmstate_sections(&n);
    assert_true(vmstate_load_stream(secs, n, b.data, b.len, NULL, &err));
    free(secs);
    bytebuf_free(&b);
    r = CMD_NONE(SCSI_OP_TEST_UNIT_READY, 0, 0, 0, 0, 0);
    assert_sense(&r, SENSE_UA_BUS_DEVICE_RESET);
    caching_page(d, false);
    assert_int_equal(d[4 + 2] & 0x04, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_unit_attention_once),
        T(test_inquiry_standard),
        T(test_inquiry_vpd),
        T(test_read_capacity),
        T(test_read_write_all_sizes),
        T(test_read_write_errors),
        T(test_sync_cache_verify),
        T(test_mode_sense),
        T(test_mode_select),
        T(test_start_stop),
        T(test_report_luns),
        T(test_unmap),
        T(test_write_same),
        T(test_unsupported),
        T(test_not_owned),
        T(test_tmf),
        T(test_vmstate_roundtrip),
        cmocka_unit_test_setup_teardown(test_read_only, setup_ro, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
