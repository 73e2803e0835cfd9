/* scsi-hd against a scratch image: every command's data and sense. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "block/ownership.h"
#include "hd-harness.h"
#include "scsi/scsi-hd.h"

#define IMG "scsi-hd-test.img"
#define IMG_BLOCKS 2048u
#define BS 512u

static struct {
    EventLoop *loop;
    ScsiBus *bus;
    BlockBackend *blk;
    Device *dev;
} t;

static HdCmdResult cmd(uint16_t lun, const uint8_t *cdb, size_t cdb_len,
                       ScsiDataDir dir, void *buf, size_t len)
{
    HdCmdResult r;
    hd_harness_run(t.loop, t.bus, lun, cdb, cdb_len, dir, buf, len, &r);
    assert_true(r.done);
    return r;
}

#define CMD_NONE(...) ({ const uint8_t c_[] = { __VA_ARGS__ };             \
    cmd(0, c_, sizeof(c_), SCSI_DIR_NONE, NULL, 0); })
#define CMD_IN(buf, len, ...) ({ const uint8_t c_[] = { __VA_ARGS__ };    \
    cmd(0, c_, sizeof(c_), SCSI_DIR_FROM_DEV, buf, len); })
#define CMD_OUT(buf, len, ...) ({ const uint8_t c_[] = { __VA_ARGS__ };   \
    cmd(0, c_, sizeof(c_), SCSI_DIR_TO_DEV, (void *)(buf), len); })

static void assert_good(const HdCmdResult *r)
{
    assert_int_equal(r->req.response, SCSI_RESP_OK);
    assert_int_equal(r->req.status, SAM_STAT_GOOD);
}

static void assert_sense(const HdCmdResult *r, ScsiSense want)
{
    ScsiSense got;
    assert_int_equal(r->req.response, SCSI_RESP_OK);
    assert_int_equal(r->req.status, SAM_STAT_CHECK_CONDITION);
    assert_true(scsi_sense_parse(r->req.sense, r->req.sense_len, &got));
    assert_int_equal(got.key, want.key);
    assert_int_equal(got.asc, want.asc);
    assert_int_equal(got.ascq, want.ascq);
}

/* The image as a second opener sees it. */
static void read_image(uint64_t off, void *buf, size_t len)
{
    int fd = open(IMG, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, buf, len, (off_t)off), (ssize_t)len);
    close(fd);
}

static void write_image(uint64_t off, const void *buf, size_t len)
{
    int fd = open(IMG, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
    close(fd);
}

static int setup_opts(const char *opts, bool ro)
{
    scsi_register_devices();
    if (!hd_harness_make_image(IMG, (uint64_t)IMG_BLOCKS * BS)) {
        return -1;
    }
    t.loop = loop_new(NULL);
    t.bus = scsi_bus_new("scsi0", NULL);
    t.blk = hd_harness_open("disk0", IMG, ro);
    t.dev = t.blk ? hd_harness_device(opts, t.loop) : NULL;
    if (!t.loop || !t.bus || !t.dev) {
        return -1;
    }
    /* Every test starts after the power-on unit attention was seen. */
    HdCmdResult r = CMD_NONE(SCSI_OP_TEST_UNIT_READY, 0, 0, 0, 0, 0);
    assert_sense(&r, SENSE_UA_POWER_ON_RESET);
    return 0;
}

static int setup(void **state)
{
    return setup_opts("scsi-hd,id=hd0,drive=disk0,bus=scsi0,lun=0,"
                      "serial=SN-0042,wwn=0x5001405abcdef012", false);
}

/* Big enough (sparse) for every advertised length limit plus one. */
#define BIG_BLOCKS ((1u << 22) + 64)

static int setup_big(void **state)
{
    if (!hd_harness_make_image(IMG, (uint64_t)BIG_BLOCKS * BS)) {
        return -1;
    }
    scsi_register_devices();
    t.loop = loop_new(NULL);
    t.bus = scsi_bus_new("scsi0", NULL);
    t.blk = hd_harness_open("disk0", IMG, false);
    t.dev = t.blk ? hd_harness_device("scsi-hd,id=hd0,drive=disk0,"
                                      "bus=scsi0,lun=0", t.loop) : NULL;
    if (!t.loop || !t.bus || !t.dev) {
        return -1;
    }
    HdCmdResult r = CMD_NONE(SCSI_OP_TEST_UNIT_READY, 0, 0, 0, 0, 0);
    assert_sense(&r, SENSE_UA_POWER_ON_RESET);
    return 0;
}

static int setup_ro(void **state)
{
    return setup_opts("scsi-hd,id=hd0,drive=disk0,bus=scsi0,lun=0", true);
}

static int teardown(void **state)
{
    device_destroy_all();
    scsi_bus_free(t.bus);
    blk_close(t.blk);
    loop_free(t.loop);
    unlink(IMG);
    memset(&t, 0, sizeof(t));
    return 0;
}

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

static void fill(uint8_t *b, size_t len, uint8_t seed)
{
    for (size_t i = 0; i < len; i++) {
        b[i] = (uint8_t)(seed + i * 7);
    }
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

/* MISCOMPARE DURING VERIFY OPERATION with INFORMATION = offset. */
static void assert_miscompare(const HdCmdResult *r, uint32_t offset)
{
    assert_sense(r, SENSE_MISCOMPARE_VERIFY);
    assert_int_equal(r->req.sense[0] & 0x80, 0x80);         /* VALID */
    assert_int_equal(ld_be32(&r->req.sense[3]), offset);
}

static void test_verify_bytchk(void **state)
{
    static uint8_t data[4 * BS];
    fill(data, sizeof(data), 21);
    write_image(20 * BS, data, sizeof(data));

    /* SBC-3 5.33, BYTCHK 01b: equal data is GOOD. */
    HdCmdResult r = CMD_OUT(data, 4 * BS, SCSI_OP_VERIFY_10, 0x02, 0, 0, 0,
                            20, 0, 0, 4, 0);
    assert_good(&r);
    assert_int_equal(r.req.residual, 0);
    r = CMD_OUT(data, 4 * BS, SCSI_OP_VERIFY_12, 0x02, 0, 0, 0, 20, 0, 0,
                0, 4, 0, 0);
    assert_good(&r);
    r = CMD_OUT(data, 2 * BS, SCSI_OP_VERIFY_16, 0x02, 0, 0, 0, 0, 0, 0, 0,
                22, 0, 0, 0, 2, 0, 0);
    assert_good(&r);
    /* One byte differs: MISCOMPARE, its offset in the data-out. */
    data[3 * BS + 17] ^= 0x40;
    r = CMD_OUT(data, 4 * BS, SCSI_OP_VERIFY_10, 0x02, 0, 0, 0, 20, 0, 0, 4,
                0);
    assert_miscompare(&r, 3 * BS + 17);
    data[3 * BS + 17] ^= 0x40;
    /* BYTCHK 00b: medium verification only, no data-out. */
    r = CMD_NONE(SCSI_OP_VERIFY_10, 0, 0, 0, 0, 20, 0, 0, 4, 0);
    assert_good(&r);

    /* BYTCHK 11b: one block of data-out against every block. */
    write_image(30 * BS, data, BS);
    write_image(31 * BS, data, BS);
    write_image(32 * BS, data, BS);
    r = CMD_OUT(data, BS, SCSI_OP_VERIFY_16, 0x06, 0, 0, 0, 0, 0, 0, 0, 30,
                0, 0, 0, 3, 0, 0);
    assert_good(&r);
    r = CMD_OUT(data, BS, SCSI_OP_VERIFY_16, 0x06, 0, 0, 0, 0, 0, 0, 0, 30,
                0, 0, 0, 4, 0, 0);
    assert_miscompare(&r, 0);

    /* Beyond the end: LBA OUT OF RANGE, before anything else. */
    r = CMD_OUT(data, 2 * BS, SCSI_OP_VERIFY_10, 0x02, 0, 0, 0x07, 0xff, 0,
                0, 2, 0);
    assert_sense(&r, SENSE_LBA_OUT_OF_RANGE);
    r = CMD_OUT(data, 2 * BS, SCSI_OP_VERIFY_16, 0x02, 0xff, 0xff, 0xff,
                0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 2, 0, 0);
    assert_sense(&r, SENSE_LBA_OUT_OF_RANGE);
    /* BYTCHK 10b is reserved; VRPROTECT needs protection information. */
    r = CMD_OUT(data, BS, SCSI_OP_VERIFY_10, 0x04, 0, 0, 0, 20, 0, 0, 1, 0);
    assert_sense(&r, SENSE_INVALID_FIELD_IN_CDB);
    r = CMD_OUT(data, BS, SCSI_OP_VERIFY_10, 0x22, 0, 0, 0, 20, 0, 0, 1, 0);
    assert_sense(&r, SENSE_INVALID_FIELD_IN_CDB);
    /* Verification length 0: nothing, GOOD. */
    r = CMD_NONE(SCSI_OP_VERIFY_10, 0x02, 0, 0, 0, 20, 0, 0, 0, 0);
    assert_good(&r);
    /* Data-out shorter than the verification length: overrun. */
    r = CMD_OUT(data, BS, SCSI_OP_VERIFY_10, 0x02, 0, 0, 0, 20, 0, 0, 2, 0);
    assert_int_equal(r.req.response, SCSI_RESP_OVERRUN);
}

#define CAW(buf, len, lba, n) CMD_OUT(buf, len, SCSI_OP_COMPARE_AND_WRITE, \
    0, 0, 0, 0, 0, 0, 0, 0, (lba), 0, 0, 0, (n), 0, 0)

static void test_compare_and_write(void **state)
{
    static uint8_t old[2 * BS], buf[4 * BS], file[2 * BS];
    fill(old, sizeof(old), 33);
    write_image(50 * BS, old, sizeof(old));

    /* SBC-3 5.2: verify data equal: the write data is written. */
    memcpy(buf, old, 2 * BS);
    fill(buf + 2 * BS, 2 * BS, 99);
    HdCmdResult r = CAW(buf, 4 * BS, 50, 2);
    assert_good(&r);
    read_image(50 * BS, file, sizeof(file));
    assert_memory_equal(file, buf + 2 * BS, 2 * BS);

    /* Verify data different (now stale): MISCOMPARE at the first
     * differing byte, nothing written. */
    r = CAW(buf, 4 * BS, 50, 2);
    size_t first = 0;
    while (buf[first] == buf[2 * BS + first]) {
        first++;
    }
    assert_miscompare(&r, (uint32_t)first);
    read_image(50 * BS, file, sizeof(file));
    assert_memory_equal(file, buf + 2 * BS, 2 * BS);

    /* Zero blocks: nothing happens, GOOD. */
    r = CMD_NONE(SCSI_OP_COMPARE_AND_WRITE, 0, 0, 0, 0, 0, 0, 0, 0, 50, 0,
                 0, 0, 0, 0, 0);
    assert_good(&r);
    /* Beyond the end; WRPROTECT; data-out short of 2 x n blocks. */
    r = CMD_OUT(buf, 4 * BS, SCSI_OP_COMPARE_AND_WRITE, 0, 0, 0, 0, 0, 0,
                0, 0x07, 0xff, 0, 0, 0, 2, 0, 0);
    assert_sense(&r, SENSE_LBA_OUT_OF_RANGE);
    r = CMD_OUT(buf, 4 * BS, SCSI_OP_COMPARE_AND_WRITE, 0x20, 0, 0, 0, 0, 0,
                0, 0, 50, 0, 0, 0, 2, 0, 0);
    assert_sense(&r, SENSE_INVALID_FIELD_IN_CDB);
    r = CAW(buf, 3 * BS, 50, 2);
    assert_int_equal(r.req.response, SCSI_RESP_OVERRUN);
}

static void async_done(ScsiRequest *req, void *opaque)
{
    int *order = opaque;
    order[++order[0]] = (int)req->tag;
}

/* SBC-3 5.2: a WRITE overlapping a COMPARE AND WRITE in progress waits
 * for it, so it cannot land between the compare and the write. */
static void test_compare_and_write_serialised(void **state)
{
    static uint8_t old[BS], caw[2 * BS], wr[BS], other[BS], file[BS];
    fill(old, sizeof(old), 1);
    write_image(60 * BS, old, BS);
    memcpy(caw, old, BS);
    fill(caw + BS, BS, 2);
    fill(wr, BS, 3);
    fill(other, BS, 4);

    struct iovec iov[3] = { { caw, sizeof(caw) }, { wr, BS },
                            { other, BS } };
    static const uint8_t cdbs[3][16] = {
        { SCSI_OP_COMPARE_AND_WRITE, 0, 0, 0, 0, 0, 0, 0, 0, 60, 0, 0, 0,
          1, 0, 0 },
        { SCSI_OP_WRITE_16, 0, 0, 0, 0, 0, 0, 0, 0, 60, 0, 0, 0, 1, 0, 0 },
        { SCSI_OP_WRITE_16, 0, 0, 0, 0, 0, 0, 0, 0, 61, 0, 0, 0, 1, 0, 0 },
    };
    ScsiRequest req[3];
    int order[4] = { 0 };
    for (int i = 0; i < 3; i++) {
        memset(&req[i], 0, sizeof(req[i]));
        memcpy(req[i].cdb, cdbs[i], 16);
        req[i].cdb_len = 16;
        req[i].dir = SCSI_DIR_TO_DEV;
        req[i].iov = &iov[i];
        req[i].iovcnt = 1;
        req[i].data_len = iov[i].iov_len;
        req[i].tag = (uint64_t)i + 1;
        req[i].complete = async_done;
        req[i].opaque = order;
        scsi_bus_submit(t.bus, 0, &req[i]);
    }
    for (int i = 0; i < 500 && order[0] < 3; i++) {
        loop_run_once(t.loop, 10);
    }
    assert_int_equal(order[0], 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(req[i].status, SAM_STAT_GOOD);
    }
    /* The overlapping WRITE came after the COMPARE AND WRITE; the one
     * elsewhere did not wait for it. */
    int pos_caw = 0, pos_wr = 0, pos_other = 0;
    for (int i = 1; i <= 3; i++) {
        pos_caw = order[i] == 1 ? i : pos_caw;
        pos_wr = order[i] == 2 ? i : pos_wr;
        pos_other = order[i] == 3 ? i : pos_other;
    }
    assert_true(pos_caw < pos_wr);
    assert_true(pos_other < pos_wr);
    read_image(60 * BS, file, BS);
    assert_memory_equal(file, wr, BS);
}

static void test_write_verify(void **state)
{
    static uint8_t data[3 * BS], file[3 * BS];
    fill(data, sizeof(data), 55);
    /* SBC-3 5.41-5.43: written, read back and compared (BYTCHK 1). */
    HdCmdResult r = CMD_OUT(data, 2 * BS, SCSI_OP_WRITE_VERIFY_10, 0x02, 0,
                            0, 0, 70, 0, 0, 2, 0);
    assert_good(&r);
    read_image(70 * BS, file, 2 * BS);
    assert_memory_equal(file, data, 2 * BS);
    fill(data, sizeof(data), 56);
    r = CMD_OUT(data, 3 * BS, SCSI_OP_WRITE_VERIFY_12, 0, 0, 0, 0, 70, 0, 0,
                0, 3, 0, 0);
    assert_good(&r);
    read_image(70 * BS, file, 3 * BS);
    assert_memory_equal(file, data, 3 * BS);
    fill(data, sizeof(data), 57);
    r = CMD_OUT(data, BS, SCSI_OP_WRITE_VERIFY_16, 0x02, 0, 0, 0, 0, 0, 0, 0,
                72, 0, 0, 0, 1, 0, 0);
    assert_good(&r);
    read_image(72 * BS, file, BS);
    assert_memory_equal(file, data, BS);

    r = CMD_OUT(data, 2 * BS, SCSI_OP_WRITE_VERIFY_10, 0x02, 0, 0, 0x07,
                0xff, 0, 0, 2, 0);
    assert_sense(&r, SENSE_LBA_OUT_OF_RANGE);
    /* BYTCHK 10b/11b reserved; WRPROTECT. */
    r = CMD_OUT(data, BS, SCSI_OP_WRITE_VERIFY_10, 0x04, 0, 0, 0, 70, 0, 0,
                1, 0);
    assert_sense(&r, SENSE_INVALID_FIELD_IN_CDB);
    r = CMD_OUT(data, BS, SCSI_OP_WRITE_VERIFY_10, 0x20, 0, 0, 0, 70, 0, 0,
                1, 0);
    assert_sense(&r, SENSE_INVALID_FIELD_IN_CDB);
    r = CMD_NONE(SCSI_OP_WRITE_VERIFY_10, 0, 0, 0, 0, 70, 0, 0, 0, 0);
    assert_good(&r);
}

static void test_orwrite(void **state)
{
    static uint8_t data[2 * BS], mask[2 * BS], file[2 * BS];
    fill(data, sizeof(data), 66);
    fill(mask, sizeof(mask), 91);
    write_image(80 * BS, data, sizeof(data));
    /* SBC-3 5.8, BMOP 000b: the blocks become old OR data-out. */
    HdCmdResult r = CMD_OUT(mask, 2 * BS, SCSI_OP_ORWRITE_16, 0, 0, 0, 0, 0,
                            0, 0, 0, 80, 0, 0, 0, 2, 0, 0);
    assert_good(&r);
    read_image(80 * BS, file, sizeof(file));
    for (size_t i = 0; i < sizeof(file); i++) {
        assert_int_equal(file[i], data[i] | mask[i]);
    }
    r = CMD_OUT(mask, 2 * BS, SCSI_OP_ORWRITE_16, 0, 0, 0, 0, 0, 0, 0, 0x07,
                0xff, 0, 0, 0, 2, 0, 0);
    assert_sense(&r, SENSE_LBA_OUT_OF_RANGE);
    r = CMD_OUT(mask, 2 * BS, SCSI_OP_ORWRITE_16, 0x20, 0, 0, 0, 0, 0, 0, 0,
                80, 0, 0, 0, 2, 0, 0);
    assert_sense(&r, SENSE_INVALID_FIELD_IN_CDB);
}

static void test_prefetch(void **state)
{
    /* SBC-3 5.9/5.10: in range, GOOD (nothing cached to promise). */
    HdCmdResult r = CMD_NONE(SCSI_OP_PREFETCH_10, 0, 0, 0, 0, 10, 0, 0, 8,
                             0);
    assert_good(&r);
    r = CMD_NONE(SCSI_OP_PREFETCH_16, 0x02, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0,
                 0, 8, 0, 0);
    assert_good(&r);
    r = CMD_NONE(SCSI_OP_PREFETCH_10, 0, 0, 0, 0x07, 0xff, 0, 0, 2, 0);
    assert_sense(&r, SENSE_LBA_OUT_OF_RANGE);
    r = CMD_NONE(SCSI_OP_PREFETCH_16, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                 0xff, 0xff, 0, 0, 0, 2, 0, 0);
    assert_sense(&r, SENSE_LBA_OUT_OF_RANGE);
}

static void test_reserve_release(void **state)
{
    ScsiHd *hd = (ScsiHd *)t.dev;
    /* SPC-2 7.21: the one nexus takes the reservation, again, and keeps
     * every command. */
    HdCmdResult r = CMD_NONE(SCSI_OP_RESERVE_6, 0, 0, 0, 0, 0);
    assert_good(&r);
    assert_true(hd->reserved);
    r = CMD_NONE(SCSI_OP_RESERVE_6, 0, 0, 0, 0, 0);
    assert_good(&r);
    r = CMD_NONE(SCSI_OP_TEST_UNIT_READY, 0, 0, 0, 0, 0);
    assert_good(&r);
    /* SPC-2 7.17: RELEASE drops it; releasing again is no error. */
    r = CMD_NONE(SCSI_OP_RELEASE_6, 0, 0, 0, 0, 0);
    assert_good(&r);
    assert_false(hd->reserved);
    r = CMD_NONE(SCSI_OP_RELEASE_6, 0, 0, 0, 0, 0);
    assert_good(&r);
    /* Extent and third-party forms are refused. */
    r = CMD_NONE(SCSI_OP_RESERVE_6, 0x01, 0, 0, 0, 0);
    assert_sense(&r, SENSE_INVALID_FIELD_IN_CDB);
    r = CMD_NONE(SCSI_OP_RELEASE_6, 0x10, 0, 0, 0, 0);
    assert_sense(&r, SENSE_INVALID_FIELD_IN_CDB);
    /* SPC-2 5.5.1: a logical unit reset releases it. */
    r = CMD_NONE(SCSI_OP_RESERVE_6, 0, 0, 0, 0, 0);
    assert_good(&r);
    scsi_bus_tmf(t.bus, 0, SCSI_TMF_LOGICAL_UNIT_RESET, 0, NULL, NULL);
    assert_false(hd->reserved);
}

#define RSOC(buf, len, opts, op, sa) CMD_IN(buf, len, SCSI_OP_MAINTENANCE_IN, \
    0x0c, (opts), (op), 0, (sa), 0, 0, (uint8_t)((len) >> 8),              \
    (uint8_t)(len), 0, 0)

/* Whether a CDB made of opcode (and service action) alone ends with
 * sense 'want'. */
static bool opcode_gives(uint8_t op, uint8_t sa, bool servactv,
                         ScsiSense want)
{
    uint8_t cdb[16] = { op, servactv ? sa : 0 };
    size_t len = scsi_cdb_length(op) ? scsi_cdb_length(op) : 16;
    HdCmdResult r = cmd(0, cdb, len, SCSI_DIR_NONE, NULL, 0);
    ScsiSense got;
    return r.req.response == SCSI_RESP_OK &&
           r.req.status == SAM_STAT_CHECK_CONDITION &&
           scsi_sense_parse(r.req.sense, r.req.sense_len, &got) &&
           scsi_sense_equal(got, want);
}

static bool opcode_refused(uint8_t op, uint8_t sa, bool servactv)
{
    return opcode_gives(op, sa, servactv, SENSE_INVALID_OPCODE);
}

static void test_report_opcodes(void **state)
{
    static uint8_t d[4096];
    bool listed[256] = { false };

    /* SPC-4 6.35.2: all commands, 8-byte descriptors. */
    HdCmdResult r = RSOC(d, sizeof(d), 0, 0, 0);
    assert_good(&r);
    uint32_t len = ld_be32(&d[0]);
    assert_int_equal(len % 8, 0);
    assert_true(len / 8 >= 35);
    assert_int_equal(r.req.residual, sizeof(d) - 4 - len);
    for (uint32_t off = 4; off < 4 + len; off += 8) {
        uint8_t op = d[off];
        bool servactv = d[off + 5] & 0x01;
        listed[op] = true;
        assert_int_equal(d[off + 5] & 0x02, 0);         /* no CTDP */
        assert_int_equal(ld_be16(&d[off + 6]), scsi_cdb_length(op));
        /* Every command listed is served (not an unknown opcode). */
        assert_false(opcode_refused(op, d[off + 3], servactv));
        /* A service action listed is served too. */
        if (servactv) {
            assert_false(opcode_gives(op, d[off + 3], true,
                                      SENSE_INVALID_FIELD_IN_CDB));
        }
        if (op == SCSI_OP_SERVICE_ACTION_IN_16) {
            assert_true(servactv);
        }
    }
    assert_true(listed[SCSI_OP_COMPARE_AND_WRITE]);
    assert_true(listed[SCSI_OP_VERIFY_16]);
    /* Every command served is listed. */
    for (int op = 0; op < 256; op++) {
        if (!listed[op]) {
            assert_true(opcode_refused((uint8_t)op, 0, false));
        }
    }

    /* RCTD: CTDP and a 12-byte timeouts descriptor after each. */
    r = RSOC(d, sizeof(d), 0x80, 0, 0);
    assert_good(&r);
    assert_int_equal(ld_be32(&d[0]), len / 8 * 20);
    assert_int_equal(d[4 + 5] & 0x02, 0x02);
    assert_int_equal(ld_be16(&d[4 + 8]), 0x0a);

    /* SPC-4 6.35.3: one command without service action: READ(10). */
    r = RSOC(d, sizeof(d), 1, SCSI_OP_READ_10, 0);
    assert_good(&r);
    assert_int_equal(d[1] & 0x07, 0x03);                /* supported */
    assert_int_equal(ld_be16(&d[2]), 10);
    assert_int_equal(d[4], SCSI_OP_READ_10);
    assert_int_equal(d[4 + 9], 0x04);                   /* NACA */
    assert_int_equal(r.req.residual, sizeof(d) - 14);
    /* With RCTD: CTDP and the timeouts descriptor. */
    r = RSOC(d, sizeof(d), 0x81, SCSI_OP_READ_10, 0);
    assert_good(&r);
    assert_int_equal(d[1], 0x83);
    assert_int_equal(ld_be16(&d[14]), 0x0a);
    /* With service action: READ CAPACITY(16). */
    r = RSOC(d, sizeof(d), 2, SCSI_OP_SERVICE_ACTION_IN_16, 0x10);
    assert_good(&r);
    assert_int_equal(d[1] & 0x07, 0x03);
    assert_int_equal(ld_be16(&d[2]), 16);
    assert_int_equal(d[5], 0x1f);
    /* An opcode not served: SUPPORT 001b, no usage data. */
    r = RSOC(d, sizeof(d), 1, 0xc7, 0);
    assert_good(&r);
    assert_int_equal(d[1] & 0x07, 0x01);
    assert_int_equal(ld_be16(&d[2]), 0);
    /* Option 001b on an opcode with service actions, 010b on one
     * without, reserved options: INVALID FIELD IN CDB. */
    r = RSOC(d, sizeof(d), 1, SCSI_OP_SERVICE_ACTION_IN_16, 0);
    assert_sense(&r, SENSE_INVALID_FIELD_IN_CDB);
    r = RSOC(d, sizeof(d), 2, SCSI_OP_READ_10, 0);
    assert_sense(&r, SENSE_INVALID_FIELD_IN_CDB);
    r = RSOC(d, sizeof(d), 4, 0, 0);
    assert_sense(&r, SENSE_INVALID_FIELD_IN_CDB);
    /* Allocation length 4: the header only. */
    r = RSOC(d, 4, 0, 0, 0);
    assert_good(&r);
    assert_int_equal(ld_be32(&d[0]), len);
    /* Another MAINTENANCE IN service action is an invalid field. */
    r = CMD_IN(d, 64, SCSI_OP_MAINTENANCE_IN, 0x05, 0, 0, 0, 0, 0, 0, 0,
               64, 0, 0);
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

/* UNMAP parameter list: header then descriptors (lba, count). */
static size_t unmap_list(uint8_t *p, unsigned n, const uint64_t *lba,
                         const uint32_t *cnt)
{
    memset(p, 0, 8 + 16 * n);
    st_be16(&p[0], (uint16_t)(6 + 16 * n));
    st_be16(&p[2], (uint16_t)(16 * n));
    for (unsigned i = 0; i < n; i++) {
        st_be64(&p[8 + 16 * i], lba[i]);
        st_be32(&p[8 + 16 * i + 8], cnt[i]);
    }
    return 8 + 16 * n;
}

#define UNMAP(p, len) CMD_OUT(p, len, SCSI_OP_UNMAP, 0, 0, 0, 0, 0, 0,    \
                              (uint8_t)((len) >> 8), (uint8_t)(len), 0)

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

/* Every limit the Block Limits VPD page advertises (SBC-3 6.5.3) is
 * enforced: one more block is INVALID FIELD IN CDB (or IN PARAMETER
 * LIST for UNMAP), the limit itself is accepted. */
static void test_length_limits(void **state)
{
    const size_t max_bytes = 65535u * BS;
    uint8_t *buf = calloc(1, max_bytes + BS);
    assert_non_null(buf);
    HdCmdResult r = CMD_IN(buf, max_bytes, SCSI_OP_READ_16, 0, 0, 0, 0, 0,
                           0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0);
    assert_good(&r);
    assert_int_equal(r.req.residual, 0);
    /* 65536 blocks with a buffer that would hold them. */
    r = CMD_OUT(buf, max_bytes + BS, SCSI_OP_WRITE_16, 0, 0, 0, 0, 0, 0, 0,
                0, 0, 0, 1, 0, 0, 0, 0);
    assert_sense(&r, SENSE_INVALID_FIELD_IN_CDB);
    r = CMD_OUT(buf, max_bytes + BS, SCSI_OP_WRITE_12, 0, 0, 0, 0, 0, 0, 1,
                0, 0, 0, 0);
    assert_sense(&r, SENSE_INVALID_FIELD_IN_CDB);
    r = CMD_IN(buf, max_bytes + BS, SCSI_OP_READ_12, 0, 0, 0, 0, 0, 0, 1, 0,
               0, 0, 0);
    assert_sense(&r, SENSE_INVALID_FIELD_IN_CDB);
    r = CMD_NONE(SCSI_OP_VERIFY_16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0,
                 0, 0);
    assert_sense(&r, SENSE_INVALID_FIELD_IN_CDB);
    r = CMD_OUT(buf, max_bytes + BS, SCSI_OP_VERIFY_16, 0x02, 0, 0, 0, 0, 0,
                0, 0, 0, 0, 1, 0, 0, 0, 0);
    assert_sense(&r, SENSE_INVALID_FIELD_IN_CDB);
    r = CMD_OUT(buf, max_bytes + BS, SCSI_OP_WRITE_VERIFY_16, 0, 0, 0, 0, 0,
                0, 0, 0, 0, 0, 1, 0, 0, 0, 0);
    assert_sense(&r, SENSE_INVALID_FIELD_IN_CDB);
    r = CMD_OUT(buf, max_bytes + BS, SCSI_OP_ORWRITE_16, 0, 0, 0, 0, 0, 0,
                0, 0, 0, 0, 1, 0, 0, 0, 0);
    assert_sense(&r, SENSE_INVALID_FIELD_IN_CDB);
    r = CMD_NONE(SCSI_OP_PREFETCH_16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0,
                 0, 0);
    assert_sense(&r, SENSE_INVALID_FIELD_IN_CDB);
    r = CMD_NONE(SCSI_OP_PREFETCH_16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff,
                 0xff, 0, 0);
    assert_good(&r);
    free(buf);

    /* MAXIMUM WRITE SAME LENGTH (NDOB, UNMAP: a hole punched). */
    r = CMD_NONE(SCSI_OP_WRITE_SAME_16, 0x09, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                 0x40, 0, 1, 0, 0);
    assert_sense(&r, SENSE_INVALID_FIELD_IN_CDB);
    r = CMD_NONE(SCSI_OP_WRITE_SAME_16, 0x09, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                 0x40, 0, 0, 0, 0);
    assert_good(&r);

    /* MAXIMUM UNMAP LBA COUNT, per descriptor and in all. */
    static uint8_t p[8 + 16 * 2];
    uint64_t lba[2] = { 0, 1u << 21 };
    uint32_t cnt[2] = { (1u << 20) + 1, 1 };
    size_t len = unmap_list(p, 1, lba, cnt);
    r = UNMAP(p, len);
    assert_sense(&r, SENSE_INVALID_FIELD_IN_PARAM);
    cnt[0] = 1u << 20;
    len = unmap_list(p, 2, lba, cnt);
    r = UNMAP(p, len);
    assert_sense(&r, SENSE_INVALID_FIELD_IN_PARAM);
    len = unmap_list(p, 1, lba, cnt);
    r = UNMAP(p, len);
    assert_good(&r);
}

#define GET_LBA_STATUS(buf, len, lba) CMD_IN(buf, len,                    \
    SCSI_OP_SERVICE_ACTION_IN_16, 0x12, 0, 0, 0, 0, 0, 0,                  \
    (uint8_t)((lba) >> 8), (uint8_t)(lba), 0, 0, 0, (uint8_t)(len), 0, 0)

/* One LBA status descriptor: LBA, count, provisioning status. */
static void assert_lba_status(uint16_t lba, uint32_t blocks, uint8_t status)
{
    uint8_t d[64];
    memset(d, 0xee, sizeof(d));
    HdCmdResult r = GET_LBA_STATUS(d, sizeof(d), lba);
    assert_good(&r);
    assert_int_equal(r.req.residual, sizeof(d) - 24);
    assert_int_equal(ld_be32(&d[0]), 20);
    assert_int_equal(ld_be64(&d[8]), lba);
    assert_int_equal(ld_be32(&d[16]), blocks);
    assert_int_equal(d[20] & 0x0f, status);
}

static void test_get_lba_status(void **state)
{
    /* SBC-3 5.5: a fresh (sparse) image is deallocated; data written at
     * 512..519 (4 KiB, a file system block) is mapped. */
    uint8_t data[8 * BS];
    fill(data, sizeof(data), 17);
    assert_lba_status(0, IMG_BLOCKS, 1);
    HdCmdResult r = CMD_OUT(data, sizeof(data), SCSI_OP_WRITE_10, 0, 0, 0,
                            0x02, 0x00, 0, 0, 8, 0);
    assert_good(&r);
    assert_lba_status(0, 512, 1);
    assert_lba_status(100, 412, 1);
    assert_lba_status(512, 8, 0);
    assert_lba_status(516, 4, 0);
    assert_lba_status(520, IMG_BLOCKS - 520, 1);
    assert_lba_status(IMG_BLOCKS - 1, 1, 1);
    /* UNMAP deallocates again (LBPRZ: punched). */
    static uint8_t p[8 + 16];
    uint64_t lba = 512;
    uint32_t cnt = 8;
    size_t len = unmap_list(p, 1, &lba, &cnt);
    r = UNMAP(p, len);
    assert_good(&r);
    assert_lba_status(512, IMG_BLOCKS - 512, 1);

    /* Past the last block; allocation length 0 and 16. */
    uint8_t d[64];
    r = GET_LBA_STATUS(d, sizeof(d), IMG_BLOCKS);
    assert_sense(&r, SENSE_LBA_OUT_OF_RANGE);
    r = CMD_IN(d, sizeof(d), SCSI_OP_SERVICE_ACTION_IN_16, 0x12, 0xff, 0xff,
               0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 64, 0, 0);
    assert_sense(&r, SENSE_LBA_OUT_OF_RANGE);
    r = GET_LBA_STATUS(d, 0, 0);
    assert_good(&r);
    memset(d, 0xee, sizeof(d));
    r = GET_LBA_STATUS(d, 16, 0);
    assert_good(&r);
    assert_int_equal(r.req.residual, 0);
    assert_int_equal(ld_be32(&d[0]), 20);
    assert_int_equal(d[16], 0xee);
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
        T(test_verify_bytchk),
        T(test_compare_and_write),
        T(test_compare_and_write_serialised),
        T(test_write_verify),
        T(test_orwrite),
        T(test_prefetch),
        T(test_reserve_release),
        T(test_report_opcodes),
        T(test_get_lba_status),
        cmocka_unit_test_setup_teardown(test_length_limits, setup_big,
                                        teardown),
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
