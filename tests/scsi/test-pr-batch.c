/* Batches of reservation commands over a ScsiPrIo, on a scripted LUN:
 * the read pair is one round trip, a UNIT ATTENTION sends again only the
 * command that got it (and counts one more round trip), and a batch that
 * cannot be delivered or is out of range is an error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <string.h>

#include "scsi/scsi-pr-io.h"
#include "util/bytes.h"

/* A LUN with registered keys and a reservation, and a number of UNIT
 * ATTENTIONs still to report per PR IN service action. */
typedef struct FakeLun {
    uint32_t generation;
    uint64_t keys[4];
    uint32_t nkeys;
    uint64_t res_key;
    uint8_t res_type;               /* 0: no reservation */
    unsigned ua_left[8];            /* by service action */
    bool fail_delivery;
    unsigned batches;               /* calls of the batch function */
    size_t batch_size[8];           /* commands in each call */
    uint8_t batch_sa[8][8];         /* service action of each command */
} FakeLun;

static void set_ua(ScsiPrResult *res)
{
    /* Fixed format, UNIT ATTENTION, REGISTRATIONS PREEMPTED (2Ah/05h). */
    static const uint8_t sense[18] = { 0x70, 0, 0x06, 0, 0, 0, 0, 10, 0, 0,
                                       0, 0, 0x2a, 0x05 };
    res->status = SAM_STAT_CHECK_CONDITION;
    memcpy(res->sense, sense, sizeof(sense));
    res->sense_len = sizeof(sense);
}

/* SPC-4 6.14.2 and 6.14.3 parameter data of the fake's state. */
static size_t fake_pr_in(FakeLun *f, uint8_t sa, uint8_t *buf, size_t len)
{
    uint8_t data[8 + 8 * 4] = { 0 };
    size_t n = 8;
    st_be32(data, f->generation);
    if (sa == SCSI_PRIN_READ_KEYS) {
        for (uint32_t i = 0; i < f->nkeys; i++, n += 8) {
            st_be64(&data[n], f->keys[i]);
        }
    } else if (f->res_type) {
        st_be64(&data[8], f->res_key);
        data[21] = f->res_type;
        n = 24;
    }
    st_be32(&data[4], (uint32_t)(n - 8));
    n = n < len ? n : len;
    memcpy(buf, data, n);
    return n;
}

static bool fake_batch(void *opaque, ScsiPrCmd *cmds, size_t n, Error **errp)
{
    FakeLun *f = opaque;
    unsigned b = f->batches++;
    assert_true(b < 8 && n <= 8);
    f->batch_size[b] = n;
    if (f->fail_delivery) {
        error_setg(errp, "connection reset");
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        uint8_t sa = cmds[i].cdb[1] & 0x1f;
        assert_int_equal(cmds[i].cdb[0], SCSI_OP_PERSISTENT_RESERVE_IN);
        assert_true(sa < 8);
        f->batch_sa[b][i] = sa;
        if (f->ua_left[sa]) {
            f->ua_left[sa]--;
            set_ua(&cmds[i].res);
            continue;
        }
        cmds[i].res.status = SAM_STAT_GOOD;
        cmds[i].res.transferred = fake_pr_in(f, sa, cmds[i].buf, cmds[i].len);
    }
    return true;
}

static FakeLun fake_with_three(void)
{
    return (FakeLun){ .generation = 7, .keys = { 0xa1, 0xb2, 0xc3 },
                      .nkeys = 3, .res_key = 0xb2,
                      .res_type = SCSI_PR_TYPE_WE_REGISTRANTS_ONLY };
}

static void expect_state(const FakeLun *f, const ScsiPrKeys *k,
                         const ScsiPrReservation *r)
{
    assert_int_equal(k->generation, f->generation);
    assert_int_equal(k->n, f->nkeys);
    for (uint32_t i = 0; i < f->nkeys; i++) {
        assert_true(scsi_pr_keys_contain(k, f->keys[i]));
    }
    assert_true(r->held);
    assert_int_equal(r->key, f->res_key);
    assert_int_equal(r->type, f->res_type);
}

static void test_read_pair_is_one_round_trip(void **state)
{
    FakeLun f = fake_with_three();
    unsigned trips = 0;
    ScsiPrIo io = { .fn = fake_batch, .opaque = &f, .who = "t",
                    .round_trips = &trips };
    ScsiPrKeys k;
    ScsiPrReservation r;
    Error *err = NULL;
    assert_true(scsi_pr_io_read_keys_and_reservation(&io, &k, &r, &err));
    assert_int_equal(trips, 1);
    assert_int_equal(f.batches, 1);
    assert_int_equal(f.batch_size[0], 2);
    expect_state(&f, &k, &r);

    /* The same as two single reads, which cost a round trip each. */
    ScsiPrKeys k1;
    ScsiPrReservation r1;
    assert_true(scsi_pr_io_read_keys(&io, &k1, &err));
    assert_true(scsi_pr_io_read_reservation(&io, &r1, &err));
    assert_int_equal(trips, 3);
    assert_memory_equal(&k, &k1, sizeof(k));
    assert_memory_equal(&r, &r1, sizeof(r));
}

static void test_unit_attention_resends_only_its_command(void **state)
{
    FakeLun f = fake_with_three();
    unsigned trips = 0;
    ScsiPrIo io = { .fn = fake_batch, .opaque = &f, .who = "t",
                    .round_trips = &trips };
    ScsiPrKeys k;
    ScsiPrReservation r;
    Error *err = NULL;
    f.ua_left[SCSI_PRIN_READ_RESERVATION] = 1;
    assert_true(scsi_pr_io_read_keys_and_reservation(&io, &k, &r, &err));
    assert_int_equal(trips, 2);
    assert_int_equal(f.batch_size[1], 1);
    assert_int_equal(f.batch_sa[1][0], SCSI_PRIN_READ_RESERVATION);
    expect_state(&f, &k, &r);
}

static void test_unit_attention_that_stays(void **state)
{
    FakeLun f = fake_with_three();
    unsigned trips = 0;
    ScsiPrIo io = { .fn = fake_batch, .opaque = &f, .who = "dev0",
                    .round_trips = &trips };
    ScsiPrKeys k;
    ScsiPrReservation r;
    Error *err = NULL;
    f.ua_left[SCSI_PRIN_READ_KEYS] = 100;
    assert_false(scsi_pr_io_read_keys_and_reservation(&io, &k, &r, &err));
    /* Given up after a few; the READ RESERVATION went once only. */
    assert_true(trips >= 2 && trips < 10);
    assert_int_equal(trips, f.batches);
    for (unsigned b = 1; b < f.batches; b++) {
        assert_int_equal(f.batch_size[b], 1);
        assert_int_equal(f.batch_sa[b][0], SCSI_PRIN_READ_KEYS);
    }
    const char *msg = error_get_pretty(err);
    assert_non_null(strstr(msg, "dev0"));
    assert_non_null(strstr(msg, "READ KEYS"));
    assert_non_null(strstr(msg, "sense key 6h"));
    error_free(err);
}

static void test_undelivered_and_bad_sizes(void **state)
{
    FakeLun f = fake_with_three();
    unsigned trips = 0;
    ScsiPrIo io = { .fn = fake_batch, .opaque = &f, .who = "t",
                    .round_trips = &trips };
    ScsiPrKeys k;
    ScsiPrReservation r;
    ScsiPrCmd cmds[SCSI_PR_BATCH_MAX + 1];
    Error *err = NULL;
    f.fail_delivery = true;
    assert_false(scsi_pr_io_read_keys_and_reservation(&io, &k, &r, &err));
    assert_non_null(strstr(error_get_pretty(err), "connection reset"));
    error_free_or_null(&err);
    assert_int_equal(trips, 1);

    memset(cmds, 0, sizeof(cmds));
    assert_false(scsi_pr_io_batch(&io, cmds, 0, &err));
    error_free_or_null(&err);
    assert_false(scsi_pr_io_batch(&io, cmds, SCSI_PR_BATCH_MAX + 1, &err));
    error_free_or_null(&err);
    cmds[0].cdb_len = sizeof(cmds[0].cdb) + 1;
    assert_false(scsi_pr_io_batch(&io, cmds, 1, &err));
    assert_non_null(strstr(error_get_pretty(err), "CDB length"));
    error_free_or_null(&err);
    /* Neither reached the LUN. */
    assert_int_equal(f.batches, 1);
    assert_int_equal(trips, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_pair_is_one_round_trip),
        cmocka_unit_test(test_unit_attention_resends_only_its_command),
        cmocka_unit_test(test_unit_attention_that_stays),
        cmocka_unit_test(test_undelivered_and_bad_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
