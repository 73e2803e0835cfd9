/* scsi-hd commands beyond reads and writes, checked as SBC-3/SPC-4 say:
 * VERIFY with BYTCHK, COMPARE AND WRITE (and its serialisation), WRITE
 * AND VERIFY, ORWRITE, PRE-FETCH, RESERVE/RELEASE(6), REPORT SUPPORTED
 * OPERATION CODES, GET LBA STATUS and every advertised length limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#define HD_TEST_IMG "scsi-hd-cmds-test.img"
#include "hd-test-util.h"

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

static void tmf_done(ScsiTmfResult res, void *opaque)
{
    *(int *)opaque = (int)res;
}

/* ABORT TASK of a WRITE waiting behind a COMPARE AND WRITE: it leaves the
 * queue aborted, never reaching the image; the COMPARE AND WRITE ends. */
static void test_compare_and_write_abort_waiter(void **state)
{
    static uint8_t caw[2 * BS], wr[BS], file[BS];
    memset(caw, 0, BS);                 /* the image is zero: a match */
    fill(caw + BS, BS, 7);
    fill(wr, BS, 8);
    struct iovec iov[2] = { { caw, sizeof(caw) }, { wr, BS } };
    static const uint8_t cdbs[2][16] = {
        { SCSI_OP_COMPARE_AND_WRITE, 0, 0, 0, 0, 0, 0, 0, 0, 90, 0, 0, 0,
          1, 0, 0 },
        { SCSI_OP_WRITE_16, 0, 0, 0, 0, 0, 0, 0, 0, 90, 0, 0, 0, 1, 0, 0 },
    };
    ScsiRequest req[2];
    int order[3] = { 0 };
    for (int i = 0; i < 2; i++) {
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
    int res = -1;
    scsi_bus_tmf(t.bus, 0, SCSI_TMF_ABORT_TASK, 2, tmf_done, &res);
    /* The waiter completed at once, aborted. */
    assert_int_equal(order[0], 1);
    assert_int_equal(order[1], 2);
    assert_int_equal(req[1].response, SCSI_RESP_ABORTED);
    for (int i = 0; i < 500 && order[0] < 2; i++) {
        loop_run_once(t.loop, 10);
    }
    assert_int_equal(order[0], 2);
    assert_int_equal(res, SCSI_TMF_COMPLETE);
    assert_int_equal(req[0].response, SCSI_RESP_OK);
    assert_int_equal(req[0].status, SAM_STAT_GOOD);
    read_image(90 * BS, file, BS);
    assert_memory_equal(file, caw + BS, BS);
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
    /* RDPROTECT checked, DPO and FUA served (DPOFUA = 1). */
    assert_int_equal(d[4 + 1], 0xf8);
    assert_int_equal(d[4 + 9], 0x04);                   /* NACA */
    assert_int_equal(r.req.residual, sizeof(d) - 14);
    /* With RCTD: CTDP and the timeouts descriptor. */
    r = RSOC(d, sizeof(d), 0x81, SCSI_OP_READ_10, 0);
    assert_good(&r);
    assert_int_equal(d[1], 0x83);
    assert_int_equal(ld_be16(&d[14]), 0x0a);
    /* DPO in VERIFY(16) and WRITE AND VERIFY(16) too. */
    r = RSOC(d, sizeof(d), 1, SCSI_OP_VERIFY_16, 0);
    assert_good(&r);
    assert_int_equal(d[4 + 1] & 0x10, 0x10);
    r = RSOC(d, sizeof(d), 1, SCSI_OP_WRITE_VERIFY_16, 0);
    assert_good(&r);
    assert_int_equal(d[4 + 1] & 0x10, 0x10);
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
    /* MAXIMUM COMPARE AND WRITE LENGTH is 255, the most its one-byte
     * NUMBER OF LOGICAL BLOCKS can say: 255 blocks are served. */
    memset(buf, 0, 2 * 255 * BS);
    r = CMD_OUT(buf, 2 * 255 * BS, SCSI_OP_COMPARE_AND_WRITE, 0, 0, 0, 0, 0,
                0, 0, 0, 0, 0, 0, 0, 255, 0, 0);
    assert_good(&r);
    assert_int_equal(r.req.residual, 0);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_verify_bytchk),
        T(test_compare_and_write),
        T(test_compare_and_write_serialised),
        T(test_compare_and_write_abort_waiter),
        T(test_write_verify),
        T(test_orwrite),
        T(test_prefetch),
        T(test_reserve_release),
        T(test_report_opcodes),
        T(test_get_lba_status),
        cmocka_unit_test_setup_teardown(test_length_limits, setup_big,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
