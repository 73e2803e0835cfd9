/* scsi-block against a real tgtd: passthrough of data, status and sense,
 * the completion filter, synchronous commands, and a session that drops
 * while a command is in flight. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "hd-harness.h"
#include "tgt-harness.h"
#include "scsi/scsi-block.h"

#define IMG "scsi-block-test.img"
#define IMG_SIZE (16u << 20)
#define IQN "iqn.2024-01.org.stormig:test"
#define BS 512u

static struct {
    EventLoop *loop;
    ScsiBus *bus;
    Device *dev;
    ScsiBlock *sb;
    int port;
    char dir[64];
    const char *helper;
    unsigned filtered;
    uint8_t last_filtered_op;
} t;

static int helper(const char *cmd)
{
    return tgt_helper(t.helper, cmd, t.dir, t.port, IMG, IQN);
}


static void fill(uint8_t *b, size_t len, uint8_t seed)
{
    for (size_t i = 0; i < len; i++) {
        b[i] = (uint8_t)(seed ^ (i * 13));
    }
}

static void filter(ScsiBlock *sb, ScsiRequest *req, void *opaque)
{
    t.filtered++;
    t.last_filtered_op = req->cdb[0];
}

static int setup_with(const char *extra)
{
    uint8_t pattern[4 * BS];
    char opts[256];

    t.helper = getenv("TGTD_HELPER");
    t.port = tgt_free_port();
    snprintf(t.dir, sizeof(t.dir), "tgtd-%d", t.port);
    if (!t.helper || t.port < 0 ||
        !hd_harness_make_image(IMG, IMG_SIZE)) {
        return -1;
    }
    /* Known data at LBA 8, written behind the target's back. */
    fill(pattern, sizeof(pattern), 0x5a);
    int fd = open(IMG, O_WRONLY);
    if (fd < 0 || pwrite(fd, pattern, sizeof(pattern), 8 * BS) < 0) {
        return -1;
    }
    close(fd);
    if (helper("start") != 0) {
        return -1;
    }
    scsi_register_devices();
    t.loop = loop_new(NULL);
    t.bus = scsi_bus_new("scsi0", NULL);
    snprintf(opts, sizeof(opts), "scsi-block,id=sb0,url=iscsi://127.0.0.1:"
             "%d/" IQN "/1,initiator-name=iqn.2024-01.org.stormig:init,"
             "bus=scsi0,lun=0%s", t.port, extra);
    t.dev = hd_harness_device(opts, t.loop);
    t.sb = scsi_block_from_device(t.dev);
    return t.sb ? 0 : -1;
}

static int setup(void **state)
{
    return setup_with("");
}

static int setup_timeout(void **state)
{
    return setup_with(",timeout=1");
}

static int teardown(void **state)
{
    device_destroy_all();
    scsi_bus_free(t.bus);
    loop_free(t.loop);
    helper("stop");
    unlink(IMG);
    return 0;
}

static HdCmdResult cmd(const uint8_t *cdb, size_t len, ScsiDataDir dir,
                       void *buf, size_t buf_len)
{
    HdCmdResult r;
    hd_harness_run(t.loop, t.bus, 0, cdb, len, dir, buf, buf_len, &r);
    assert_true(r.done);
    return r;
}

/* Retries what the target answers with a unit attention (a new I_T
 * nexus starts with one), as an initiator does. */
static HdCmdResult cmd_retry_ua(const uint8_t *cdb, size_t len,
                                ScsiDataDir dir, void *buf, size_t buf_len)
{
    HdCmdResult r;
    ScsiSense s;
    for (int i = 0; i < 5; i++) {
        r = cmd(cdb, len, dir, buf, buf_len);
        if (r.req.status != SAM_STAT_CHECK_CONDITION ||
            !scsi_sense_parse(r.req.sense, r.req.sense_len, &s) ||
            s.key != SCSI_SENSE_KEY_UNIT_ATTENTION) {
            break;
        }
    }
    return r;
}

static void test_inquiry_capacity(void **state)
{
    uint8_t d[96];
    const uint8_t inq[6] = { SCSI_OP_INQUIRY, 0, 0, 0, 96, 0 };
    HdCmdResult r = cmd_retry_ua(inq, 6, SCSI_DIR_FROM_DEV, d, sizeof(d));
    assert_int_equal(r.req.status, SAM_STAT_GOOD);
    assert_int_equal(d[0] & 0x1f, 0);           /* direct access */
    assert_memory_equal(&d[8], "IET     ", 8);  /* tgt's vendor id */

    const uint8_t rc10[10] = { SCSI_OP_READ_CAPACITY_10 };
    r = cmd_retry_ua(rc10, 10, SCSI_DIR_FROM_DEV, d, 8);
    assert_int_equal(r.req.status, SAM_STAT_GOOD);
    assert_int_equal(ld_be32(&d[0]), IMG_SIZE / BS - 1);
    assert_int_equal(ld_be32(&d[4]), BS);
}

static void test_read_write(void **state)
{
    uint8_t in[4 * BS], want[4 * BS], out[2 * BS], file[2 * BS];
    fill(want, sizeof(want), 0x5a);
    const uint8_t rd[10] = { SCSI_OP_READ_10, 0, 0, 0, 0, 8, 0, 0, 4, 0 };
    HdCmdResult r = cmd_retry_ua(rd, 10, SCSI_DIR_FROM_DEV, in, sizeof(in));
    assert_int_equal(r.req.status, SAM_STAT_GOOD);
    assert_int_equal(r.req.residual, 0);
    assert_memory_equal(in, want, sizeof(in));

    fill(out, sizeof(out), 0xa7);
    const uint8_t wr[10] = { SCSI_OP_WRITE_10, 0x08, 0, 0, 0, 100, 0, 0, 2,
                             0 };
    r = cmd_retry_ua(wr, 10, SCSI_DIR_TO_DEV, out, sizeof(out));
    assert_int_equal(r.req.status, SAM_STAT_GOOD);
    const uint8_t sync[10] = { SCSI_OP_SYNCHRONIZE_CACHE_10 };
    r = cmd_retry_ua(sync, 10, SCSI_DIR_NONE, NULL, 0);
    assert_int_equal(r.req.status, SAM_STAT_GOOD);
    int fd = open(IMG, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, file, sizeof(file), 100 * BS), sizeof(file));
    close(fd);
    assert_memory_equal(file, out, sizeof(out));
}

static void test_sense_passthrough(void **state)
{
    uint8_t d[BS];
    ScsiSense s;
    /* One block past the end. */
    uint32_t lba = IMG_SIZE / BS;
    const uint8_t rd[10] = { SCSI_OP_READ_10, 0, (uint8_t)(lba >> 24),
                             (uint8_t)(lba >> 16), (uint8_t)(lba >> 8),
                             (uint8_t)lba, 0, 0, 1, 0 };
    HdCmdResult r = cmd_retry_ua(rd, 10, SCSI_DIR_FROM_DEV, d, sizeof(d));
    assert_int_equal(r.req.status, SAM_STAT_CHECK_CONDITION);
    assert_true(r.req.sense_len >= 14);
    assert_true(scsi_sense_parse(r.req.sense, r.req.sense_len, &s));
    assert_int_equal(s.key, SCSI_SENSE_KEY_ILLEGAL_REQUEST);
    assert_int_equal(s.asc, 0x21);
    /* An opcode tgt does not know. */
    const uint8_t bad[10] = { 0xc7 };
    r = cmd_retry_ua(bad, 10, SCSI_DIR_NONE, NULL, 0);
    assert_int_equal(r.req.status, SAM_STAT_CHECK_CONDITION);
    assert_true(scsi_sense_parse(r.req.sense, r.req.sense_len, &s));
    assert_int_equal(s.key, SCSI_SENSE_KEY_ILLEGAL_REQUEST);
    assert_int_equal(s.asc, 0x20);
}

static void test_filter_and_sync(void **state)
{
    uint8_t d[64];
    ScsiBlockResult res;
    Error *err = NULL;
    const uint8_t tur[6] = { SCSI_OP_TEST_UNIT_READY };

    scsi_block_set_completion_filter(t.sb, filter, NULL);
    /* The first command of the nexus may see a unit attention. */
    assert_true(scsi_block_sync_command(t.sb, tur, 6, SCSI_DIR_NONE, NULL,
                                        0, &res, &err));
    assert_true(scsi_block_sync_command(t.sb, tur, 6, SCSI_DIR_NONE, NULL,
                                        0, &res, &err));
    assert_int_equal(res.status, SAM_STAT_GOOD);
    const uint8_t rl[12] = { SCSI_OP_REPORT_LUNS, 0, 0, 0, 0, 0, 0, 0, 0,
                             64, 0, 0 };
    assert_true(scsi_block_sync_command(t.sb, rl, 12, SCSI_DIR_FROM_DEV, d,
                                        sizeof(d), &res, &err));
    assert_int_equal(res.status, SAM_STAT_GOOD);
    assert_true(res.transferred >= 16);
    assert_int_equal(ld_be32(&d[0]), 16);       /* LUN 0 (ctl) and 1 */
    assert_int_equal(t.last_filtered_op, SCSI_OP_REPORT_LUNS);
    unsigned before = t.filtered;
    const uint8_t inq[6] = { SCSI_OP_INQUIRY, 0, 0, 0, 36, 0 };
    cmd(inq, 6, SCSI_DIR_FROM_DEV, d, 36);
    assert_int_equal(t.filtered, before + 1);
    assert_int_equal(t.last_filtered_op, SCSI_OP_INQUIRY);
}

/* Submits a READ without waiting for it (the loop completes it). */
static void submit_read(const uint8_t *cdb10, uint8_t *buf, size_t len,
                        struct iovec *iov, HdCmdResult *r)
{
    memset(r, 0, sizeof(*r));
    *iov = (struct iovec){ .iov_base = buf, .iov_len = len };
    memcpy(r->req.cdb, cdb10, 10);
    r->req.cdb_len = 10;
    r->req.dir = SCSI_DIR_FROM_DEV;
    r->req.iov = iov;
    r->req.iovcnt = 1;
    r->req.data_len = len;
    r->req.complete = hd_harness_done;
    r->req.opaque = r;
    scsi_bus_submit(t.bus, 0, &r->req);
}

static void test_session_drop(void **state)
{
    uint8_t in[BS], want[BS];
    const uint8_t tur[6] = { SCSI_OP_TEST_UNIT_READY };
    HdCmdResult r = cmd_retry_ua(tur, 6, SCSI_DIR_NONE, NULL, 0);
    assert_int_equal(r.req.status, SAM_STAT_GOOD);

    /* A READ the frozen target cannot answer, then the target dies. */
    assert_int_equal(helper("freeze"), 0);
    HdCmdResult rd_res;
    struct iovec iov;
    const uint8_t rd[10] = { SCSI_OP_READ_10, 0, 0, 0, 0, 8, 0, 0, 1, 0 };
    submit_read(rd, in, sizeof(in), &iov, &rd_res);
    for (int i = 0; i < 20; i++) {
        loop_run_once(t.loop, 10);
    }
    assert_false(rd_res.done);
    assert_int_equal(helper("stop"), 0);
    for (int i = 0; i < 500 && !rd_res.done; i++) {
        loop_run_once(t.loop, 10);
    }
    /* In flight: a unit attention the initiator retries. */
    assert_true(rd_res.done);
    ScsiSense s;
    assert_int_equal(rd_res.req.status, SAM_STAT_CHECK_CONDITION);
    assert_true(scsi_sense_parse(rd_res.req.sense, rd_res.req.sense_len, &s));
    assert_true(scsi_sense_equal(s, SENSE_UA_I_T_NEXUS_LOSS));
    /* While the target is away: BUSY. */
    r = cmd(tur, 6, SCSI_DIR_NONE, NULL, 0);
    assert_int_equal(r.req.status, SAM_STAT_BUSY);
    assert_false(scsi_block_session_up(t.sb));

    /* The target comes back: the session is re-established. */
    assert_int_equal(helper("start"), 0);
    for (int i = 0; i < 1000 && !scsi_block_session_up(t.sb); i++) {
        loop_run_once(t.loop, 10);
    }
    assert_true(scsi_block_session_up(t.sb));
    fill(want, sizeof(want), 0x5a);
    r = cmd_retry_ua(rd, 10, SCSI_DIR_FROM_DEV, in, sizeof(in));
    assert_int_equal(r.req.status, SAM_STAT_GOOD);
    assert_memory_equal(in, want, sizeof(in));
}

/* A target that stops answering (frozen, its TCP connection still up):
 * the command times out, the initiator gets a retryable unit attention,
 * a synchronous command fails instead of waiting forever, and once the
 * target answers again the session comes back. */
static void test_frozen_target_times_out(void **state)
{
    uint8_t in[BS], want[BS];
    const uint8_t tur[6] = { SCSI_OP_TEST_UNIT_READY };
    const uint8_t rd[10] = { SCSI_OP_READ_10, 0, 0, 0, 0, 8, 0, 0, 1, 0 };
    HdCmdResult r = cmd_retry_ua(tur, 6, SCSI_DIR_NONE, NULL, 0);
    assert_int_equal(r.req.status, SAM_STAT_GOOD);

    assert_int_equal(helper("freeze"), 0);
    HdCmdResult rd_res;
    struct iovec iov;
    submit_read(rd, in, sizeof(in), &iov, &rd_res);
    /* timeout=1: well within 10 s, with the target still frozen. */
    for (int i = 0; i < 1000 && !rd_res.done; i++) {
        loop_run_once(t.loop, 10);
    }
    assert_true(rd_res.done);
    ScsiSense s;
    assert_int_equal(rd_res.req.status, SAM_STAT_CHECK_CONDITION);
    assert_true(scsi_sense_parse(rd_res.req.sense, rd_res.req.sense_len, &s));
    assert_true(scsi_sense_equal(s, SENSE_UA_I_T_NEXUS_LOSS));

    /* A management command (as a reservation takeover sends) fails,
     * bounded, rather than hanging the daemon. */
    ScsiBlockResult res;
    Error *err = NULL;
    assert_false(scsi_block_sync_command(t.sb, tur, 6, SCSI_DIR_NONE, NULL,
                                         0, &res, &err));
    assert_non_null(err);
    error_free(err);

    assert_int_equal(helper("thaw"), 0);
    for (int i = 0; i < 1000 && !scsi_block_session_up(t.sb); i++) {
        loop_run_once(t.loop, 10);
    }
    assert_true(scsi_block_session_up(t.sb));
    fill(want, sizeof(want), 0x5a);
    r = cmd_retry_ua(rd, 10, SCSI_DIR_FROM_DEV, in, sizeof(in));
    assert_int_equal(r.req.status, SAM_STAT_GOOD);
    assert_memory_equal(in, want, sizeof(in));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_inquiry_capacity, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_read_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sense_passthrough, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_filter_and_sync, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_session_drop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_frozen_target_times_out,
                                        setup_timeout, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
