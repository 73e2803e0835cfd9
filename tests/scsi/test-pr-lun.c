/* The per-LUN reservation gate and completion filter, without a target:
 * requests are shaped as a controller sends them and completed as the
 * LUN would, and we check what the guest gets and what is tracked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "scsi/scsi-pr-journal.h"
#include "scsi/scsi-pr-lun.h"

#define JOURNAL_DIR "pr-lun-journal"

static ScsiLun lun;
static ScsiPr *pr;
static int completions;

static void done(ScsiRequest *req, void *opaque)
{
    completions++;
}

static int setup(void **state)
{
    ScsiPrConfig cfg = { .dev_id = "lun0", .initiator = "iqn.2024-01.t:i",
                         .journal_dir = JOURNAL_DIR };
    unlink(JOURNAL_DIR "/lun0.json");
    memset(&lun, 0, sizeof(lun));
    completions = 0;
    pr = scsi_pr_new(NULL, &lun, &cfg, NULL);
    return pr ? 0 : -1;
}

static int teardown(void **state)
{
    scsi_pr_free(pr);
    unlink(JOURNAL_DIR "/lun0.json");
    rmdir(JOURNAL_DIR);
    return 0;
}

static void make_req(ScsiRequest *req, struct iovec *iov, const uint8_t *cdb,
                     ScsiDataDir dir, void *buf, size_t len)
{
    memset(req, 0, sizeof(*req));
    memcpy(req->cdb, cdb, 10);
    req->cdb_len = 10;
    req->dir = dir;
    iov->iov_base = buf;
    iov->iov_len = len;
    req->iov = iov;
    req->iovcnt = 1;
    req->data_len = len;
    req->complete = done;
}

/* What the LUN answers: GOOD, all data transferred. */
static void lun_answers(ScsiRequest *req, uint8_t status)
{
    req->response = SCSI_RESP_OK;
    req->status = status;
    req->residual = 0;
    scsi_pr_filter(NULL, req, pr);
}

static void test_caps_masked_for_the_guest(void **state)
{
    uint8_t cdb[10], data[8] = { 0, 8, 0x1d, 0x81, 0xea, 0x01, 0, 0 };
    ScsiRequest req;
    struct iovec iov;
    scsi_pr_in_encode(SCSI_PRIN_REPORT_CAPABILITIES, 8, cdb);
    make_req(&req, &iov, cdb, SCSI_DIR_FROM_DEV, data, sizeof(data));
    assert_int_equal(scsi_pr_gate(pr, &req), SCSI_PR_GATE_PASS);
    lun_answers(&req, SAM_STAT_GOOD);
    assert_int_equal(data[2], 0x11);            /* SIP_C, ATC_C cleared */
    assert_int_equal(data[3], 0x81);
    /* A reply the gate did not see (the daemon's own command): as is. */
    data[2] = 0x1d;
    lun_answers(&req, SAM_STAT_GOOD);
    assert_int_equal(data[2], 0x1d);
    /* Only 2 bytes transferred: byte 2 is not the guest's, not touched. */
    assert_int_equal(scsi_pr_gate(pr, &req), SCSI_PR_GATE_PASS);
    req.response = SCSI_RESP_OK;
    req.status = SAM_STAT_GOOD;
    req.residual = 6;
    scsi_pr_filter(NULL, &req, pr);
    assert_int_equal(data[2], 0x1d);
}

static void prout(ScsiRequest *req, struct iovec *iov, uint8_t *param,
                  uint8_t sa, uint8_t type, uint64_t rk, uint64_t sk)
{
    uint8_t cdb[10];
    scsi_pr_out_encode(sa, type, rk, sk, cdb, param);
    make_req(req, iov, cdb, SCSI_DIR_TO_DEV, param, SCSI_PR_OUT_PARAM_LEN);
}

static void test_snoop_and_journal(void **state)
{
    uint8_t param[24];
    ScsiRequest req;
    struct iovec iov;
    ScsiPrJournal j;
    bool found;
    prout(&req, &iov, param, SCSI_PROUT_REGISTER, 0, 0, 0xabc);
    assert_int_equal(scsi_pr_gate(pr, &req), SCSI_PR_GATE_PASS);
    /* The guest rewrites its buffer after submission: what counts is
     * what the LUN was sent. */
    st_be64(&param[8], 0xdead);
    lun_answers(&req, SAM_STAT_GOOD);
    assert_int_equal(scsi_pr_state(pr).key, 0xabc);
    assert_true(scsi_pr_journal_read(JOURNAL_DIR, "lun0", &j, &found, NULL));
    assert_true(found);
    assert_int_equal(j.st.key, 0xabc);
    assert_true(j.active);

    /* A RESERVE the LUN refused changes nothing. */
    prout(&req, &iov, param, SCSI_PROUT_RESERVE, 3, 0xabc, 0);
    assert_int_equal(scsi_pr_gate(pr, &req), SCSI_PR_GATE_PASS);
    lun_answers(&req, SAM_STAT_RESERVATION_CONFLICT);
    assert_int_equal(scsi_pr_state(pr).type, 0);
    assert_int_equal(scsi_pr_gate(pr, &req), SCSI_PR_GATE_PASS);
    lun_answers(&req, SAM_STAT_GOOD);
    assert_int_equal(scsi_pr_state(pr).type, 3);
    assert_true(scsi_pr_needed(pr));
    assert_int_equal(completions, 0);   /* the filter never completes */
}

static void test_refused_before_the_lun(void **state)
{
    uint8_t param[24];
    ScsiRequest req;
    struct iovec iov;
    ScsiSense s;
    prout(&req, &iov, param, SCSI_PROUT_REGISTER_AND_MOVE, 1, 1, 2);
    assert_int_equal(scsi_pr_gate(pr, &req), SCSI_PR_GATE_DONE);
    assert_int_equal(completions, 1);
    assert_int_equal(req.status, SAM_STAT_CHECK_CONDITION);
    assert_true(scsi_sense_parse(req.sense, req.sense_len, &s));
    assert_true(scsi_sense_equal(s, SENSE_INVALID_FIELD_IN_CDB));
    /* 16 bytes of data-out for a 24-byte list. */
    prout(&req, &iov, param, SCSI_PROUT_REGISTER, 0, 0, 2);
    req.data_len = iov.iov_len = 16;
    assert_int_equal(scsi_pr_gate(pr, &req), SCSI_PR_GATE_DONE);
    assert_true(scsi_sense_parse(req.sense, req.sense_len, &s));
    assert_true(scsi_sense_equal(s, SENSE_PARAM_LIST_LENGTH_ERROR));
    assert_int_equal(scsi_pr_state(pr).key, 0);
}

static void test_held_until_activation(void **state)
{
    uint8_t cdb[10] = { SCSI_OP_TEST_UNIT_READY };
    ScsiRequest req;
    struct iovec iov;
    ScsiPrWire wire = { .key = 0x77, .type = 1 };
    Error *err = NULL;
    /* Impossible states from a peer are refused. */
    ScsiPrWire bad = { .key = 0x77, .type = 2 };
    assert_false(scsi_pr_post_load_sub(pr, &bad, &err));
    error_free_or_null(&err);
    assert_true(scsi_pr_post_load_sub(pr, &wire, &err));
    scsi_pr_post_load(pr);
    assert_int_equal(scsi_pr_state(pr).key, 0x77);
    assert_false(scsi_pr_is_active(pr));
    make_req(&req, &iov, cdb, SCSI_DIR_NONE, NULL, 0);
    assert_int_equal(scsi_pr_gate(pr, &req), SCSI_PR_GATE_HELD);
    req.cancelled = true;
    assert_true(scsi_pr_cancel(pr, &req));
    assert_int_equal(completions, 1);
    assert_int_equal(req.response, SCSI_RESP_ABORTED);
    assert_false(scsi_pr_cancel(pr, &req));
    /* A load without the subsection: nothing registered. */
    scsi_pr_post_load(pr);
    assert_int_equal(scsi_pr_state(pr).key, 0);
    /* Shut down: held requests and new ones get BUSY. */
    req.cancelled = false;
    assert_int_equal(scsi_pr_gate(pr, &req), SCSI_PR_GATE_HELD);
    scsi_pr_shutdown(pr);
    assert_int_equal(completions, 2);
    assert_int_equal(req.status, SAM_STAT_BUSY);
    assert_int_equal(scsi_pr_gate(pr, &req), SCSI_PR_GATE_DONE);
    assert_int_equal(completions, 3);
}

/* A journal file that is damaged (torn write, a stray edit, another
 * version) is refused as a whole with a reason; a good one round-trips. */
static void test_journal_damaged(void **state)
{
    static const struct {
        const char *text;
        const char *why;
    } bad[] = {
        { "", "not JSON" },
        { "{\"version\": 1, \"key\": \"0x1\"", "not JSON" },
        { "[1, 2]", "not a version 1 journal" },
        { "{\"version\": 2, \"key\": \"0x1\", \"type\": 0, "
          "\"active\": true, \"initiator\": \"i\"}", "not a version 1" },
        { "{\"version\": 1, \"type\": 0, \"active\": true, "
          "\"initiator\": \"i\"}", "not a version 1" },
        { "{\"version\": 1, \"key\": \"12\", \"type\": 0, "
          "\"active\": true, \"initiator\": \"i\"}", "bad key or type" },
        { "{\"version\": 1, \"key\": \"0x1g\", \"type\": 0, "
          "\"active\": true, \"initiator\": \"i\"}", "bad key or type" },
        { "{\"version\": 1, \"key\": \"0x10000000000000000\", "
          "\"type\": 0, \"active\": true, \"initiator\": \"i\"}",
          "bad key or type" },
        { "{\"version\": 1, \"key\": \"0x1\", \"type\": 16, "
          "\"active\": true, \"initiator\": \"i\"}", "bad key or type" },
        /* Only a registered nexus holds a reservation (SPC-4 5.13). */
        { "{\"version\": 1, \"key\": \"0x0\", \"type\": 1, "
          "\"active\": true, \"initiator\": \"i\"}", "impossible state" },
        /* Two writes run together. */
        { "{\"version\": 1, \"key\": \"0x1\", \"type\": 0, "
          "\"active\": true, \"initiator\": \"i\"} {}", "not JSON" },
    };
    ScsiPrJournal j;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        Error *err = NULL;
        assert_false(scsi_pr_journal_parse(bad[i].text, strlen(bad[i].text),
                                           &j, &err));
        if (!strstr(error_get_pretty(err), bad[i].why)) {
            print_error("case %zu: '%s'\n", i, error_get_pretty(err));
            fail();
        }
        error_free(err);
        assert_int_equal(j.st.key, 0);
    }
    const char good[] = "{\"version\": 1, \"key\": \"0x00000000000000ab\", "
                        "\"type\": 3, \"active\": false, "
                        "\"initiator\": \"iqn.2024-01.t:i\"}\n";
    assert_true(scsi_pr_journal_parse(good, strlen(good), &j, NULL));
    assert_int_equal(j.st.key, 0xab);
    assert_int_equal(j.st.type, 3);
    assert_false(j.active);
    assert_string_equal(j.initiator, "iqn.2024-01.t:i");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_caps_masked_for_the_guest, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_snoop_and_journal, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_refused_before_the_lun, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_held_until_activation, setup,
                                        teardown),
        cmocka_unit_test(test_journal_damaged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
