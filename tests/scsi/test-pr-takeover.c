/*
 * The reservation takeover of an activation, on a scripted LUN that
 * follows the persistent reservation rules for the few commands the
 * takeover sends: the source's nexus holds the key and reservation, the
 * device under test is a second nexus. The LUN can run a batch in
 * reverse order (the PREEMPT before the REGISTER), fail the REGISTER, or
 * change behind the takeover's back before the outcome check.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "scsi/scsi-pr-lun.h"
#include "util/bytes.h"

#define JOURNAL_DIR "pr-takeover-journal"
#define KEY 0x5eed0000c0ffee01ull

enum { NEXUS_SRC, NEXUS_US, NEXUS_FENCER, NEXUS_MAX };

#define SRC_NAME "iqn.2024-01.t:src"
static const char *const nexus_name[NEXUS_MAX] = {
    SRC_NAME, "iqn.2024-01.t:us", "iqn.2024-01.t:fencer",
};

typedef struct FakeLun {
    uint64_t key[NEXUS_MAX];        /* 0: not registered */
    int holder;                     /* nexus holding it, -1: none */
    uint8_t type;
    uint32_t generation;
    bool reverse;                   /* runs each batch last to first */
    bool full_status;               /* READ FULL STATUS supported */
    uint64_t ar_key;                /* READ RESERVATION's key for an ALL
                                     * REGISTRANTS type (0, as SPC-4
                                     * 5.13.10 says) */
    bool fail_register;             /* REGISTER AND IGNORE: CHECK CONDITION */
    unsigned conflict_preempts;     /* PREEMPTs refused regardless */
    unsigned tamper_at;             /* before this batch (1-based): the
                                     * source registers KEY again */
    unsigned batches;
    size_t batch_size[8];
    uint8_t batch_sa[8][3];         /* service action of each command */
    uint8_t batch_op[8][3];
} FakeLun;

static FakeLun f;
static EventLoop *loop;
static int completions;
static ScsiLun lun;
static ScsiPr *pr;

/* SPC-4 6.14.5: a descriptor per registration, each with an iSCSI
 * TransportID (SPC-4 7.6.4.6, format 00b: the name, NUL-padded to a
 * multiple of 4). */
static size_t fake_full_status(uint8_t *buf, size_t len)
{
    uint8_t data[512] = { 0 };
    size_t n = 8;
    st_be32(data, f.generation);
    for (int i = 0; i < NEXUS_MAX; i++) {
        if (!f.key[i]) {
            continue;
        }
        size_t name_len = strlen(nexus_name[i]) + 1;
        size_t tid_len = 4 + ((name_len + 3) & ~(size_t)3);
        uint8_t *d = &data[n];
        st_be64(d, f.key[i]);
        if (f.holder == i || (f.holder >= 0 &&
                              scsi_pr_type_all_registrants(f.type))) {
            d[12] = 0x01;
            d[13] = f.type;
        }
        st_be32(&d[20], (uint32_t)tid_len);
        d[24] = 0x05;           /* iSCSI */
        st_be16(&d[26], (uint16_t)(tid_len - 4));
        memcpy(&d[28], nexus_name[i], name_len);
        n += 24 + tid_len;
    }
    st_be32(&data[4], (uint32_t)(n - 8));
    n = n < len ? n : len;
    memcpy(buf, data, n);
    return n;
}

/* SPC-4 6.16.2, 6.16.3: READ KEYS and READ RESERVATION data. */
static size_t fake_pr_in(uint8_t sa, uint8_t *buf, size_t len)
{
    uint8_t data[8 + 8 * NEXUS_MAX] = { 0 };
    size_t n = 8;
    st_be32(data, f.generation);
    if (sa == SCSI_PRIN_READ_KEYS) {
        for (int i = 0; i < NEXUS_MAX; i++) {
            if (f.key[i]) {
                st_be64(&data[n], f.key[i]);
                n += 8;
            }
        }
    } else if (f.holder >= 0) {
        st_be64(&data[8], scsi_pr_type_all_registrants(f.type) ? f.ar_key :
                f.key[f.holder]);
        data[21] = f.type;
        n = 24;
    }
    st_be32(&data[4], (uint32_t)(n - 8));
    n = n < len ? n : len;
    memcpy(buf, data, n);
    return n;
}

/* PREEMPT from our nexus (SPC-4 5.13.11.4), as far as the test needs. */
static uint8_t fake_preempt(const ScsiPrOut *o)
{
    if (f.conflict_preempts) {
        f.conflict_preempts--;
        return SAM_STAT_RESERVATION_CONFLICT;
    }
    /* 5.13.1: only REGISTER (AND IGNORE) from an unregistered nexus. */
    if (!f.key[NEXUS_US] || f.key[NEXUS_US] != o->res_key) {
        return SAM_STAT_RESERVATION_CONFLICT;
    }
    bool held_by_key = f.holder >= 0 &&
                       (scsi_pr_type_all_registrants(f.type) ||
                        f.key[f.holder] == o->sa_key);
    /* Every other registration with the key goes (5.13.11.2.4). */
    for (int i = 0; i < NEXUS_MAX; i++) {
        if (i != NEXUS_US && f.key[i] == o->sa_key) {
            f.key[i] = 0;
        }
    }
    if (held_by_key) {
        f.holder = NEXUS_US;
        f.type = o->type;
    }
    f.generation++;
    return SAM_STAT_GOOD;
}

static void fake_pr_out(ScsiPrCmd *c)
{
    ScsiPrOut o;
    assert_int_equal(scsi_pr_out_parse(c->cdb, c->cdb_len, c->buf, c->len,
                                       &o), SCSI_PR_OUT_OK);
    if (o.service_action == SCSI_PROUT_PREEMPT) {
        c->res.status = fake_preempt(&o);
        return;
    }
    assert_int_equal(o.service_action, SCSI_PROUT_REGISTER_AND_IGNORE);
    if (f.fail_register) {
        /* ILLEGAL REQUEST, INSUFFICIENT REGISTRATION RESOURCES (55h/04h) */
        static const uint8_t sense[18] = { 0x70, 0, 0x05, 0, 0, 0, 0, 10,
                                           0, 0, 0, 0, 0x55, 0x04 };
        c->res.status = SAM_STAT_CHECK_CONDITION;
        memcpy(c->res.sense, sense, sizeof(sense));
        c->res.sense_len = sizeof(sense);
        return;
    }
    f.key[NEXUS_US] = o.sa_key;
    f.generation++;
    c->res.status = SAM_STAT_GOOD;
}

static bool fake_batch(void *opaque, ScsiPrCmd *cmds, size_t n,
                       Error **errp)
{
    unsigned b = f.batches++;
    assert_true(b < 8 && n <= 3);
    if (f.tamper_at == b + 1) {
        f.key[NEXUS_SRC] = KEY;
    }
    f.batch_size[b] = n;
    for (size_t k = 0; k < n; k++) {
        size_t i = f.reverse ? n - 1 - k : k;
        ScsiPrCmd *c = &cmds[i];
        f.batch_op[b][i] = c->cdb[0];
        f.batch_sa[b][i] = c->cdb[1] & 0x1f;
        memset(&c->res, 0, sizeof(c->res));
        if (c->cdb[0] == SCSI_OP_PERSISTENT_RESERVE_OUT) {
            fake_pr_out(c);
            continue;
        }
        assert_int_equal(c->cdb[0], SCSI_OP_PERSISTENT_RESERVE_IN);
        if ((c->cdb[1] & 0x1f) == SCSI_PRIN_READ_FULL_STATUS) {
            if (!f.full_status) {
                /* ILLEGAL REQUEST, INVALID FIELD IN CDB (24h/00h) */
                static const uint8_t sense[18] = { 0x70, 0, 0x05, 0, 0, 0,
                                                   0, 10, 0, 0, 0, 0, 0x24 };
                c->res.status = SAM_STAT_CHECK_CONDITION;
                memcpy(c->res.sense, sense, sizeof(sense));
                c->res.sense_len = sizeof(sense);
                continue;
            }
            c->res.status = SAM_STAT_GOOD;
            c->res.transferred = fake_full_status(c->buf, c->len);
            continue;
        }
        c->res.status = SAM_STAT_GOOD;
        c->res.transferred = fake_pr_in(c->cdb[1] & 0x1f, c->buf, c->len);
    }
    return true;
}

/* The source's nexus holds KEY with type; the device loaded that state
 * from the migration stream. */
static void source_holds(uint8_t type)
{
    ScsiPrWire wire = { .key = KEY, .type = type };
    Error *err = NULL;
    f.key[NEXUS_SRC] = KEY;
    f.holder = type ? NEXUS_SRC : -1;
    f.type = type;
    assert_true(scsi_pr_post_load_sub(pr, &wire, &err));
    scsi_pr_post_load(pr);
}

/* source_holds, with the source's initiator name handed over too (the
 * "scsi-block/pr-nexus" subsection). */
static void source_holds_named(uint8_t type)
{
    char name[SCSI_PR_NAME_MAX] = SRC_NAME;
    Error *err = NULL;
    assert_true(scsi_pr_post_load_nexus(pr, name, &err));
    source_holds(type);
}

static int setup(void **state)
{
    static const ScsiPrIo io = { .fn = fake_batch, .who = "fake" };
    ScsiPrConfig cfg = { .dev_id = "pt0", .initiator = "iqn.2024-01.t:us",
                         .journal_dir = JOURNAL_DIR, .io = &io };
    memset(&f, 0, sizeof(f));
    f.holder = -1;
    memset(&lun, 0, sizeof(lun));
    completions = 0;
    loop = loop_new(NULL);
    lun.loop = loop;
    pr = scsi_pr_new(NULL, &lun, &cfg, NULL);
    return loop && pr ? 0 : -1;
}

static int teardown(void **state)
{
    scsi_pr_free(pr);
    loop_free(loop);
    unlink(JOURNAL_DIR "/pt0.json");
    rmdir(JOURNAL_DIR);
    return 0;
}

/* A query-devices field as a string ("" when absent) or int (-1). */
static const char *query_str(const char *name, char *buf, size_t size)
{
    json_object *o = json_object_new_object(), *v;
    scsi_pr_query(pr, o);
    snprintf(buf, size, "%s", json_object_object_get_ex(o, name, &v) ?
             json_object_get_string(v) : "");
    json_object_put(o);
    return buf;
}

static int query_int(const char *name)
{
    json_object *o = json_object_new_object(), *v;
    scsi_pr_query(pr, o);
    int n = json_object_object_get_ex(o, name, &v) ? json_object_get_int(v) :
            -1;
    json_object_put(o);
    return n;
}

static void done(ScsiRequest *req, void *opaque)
{
    completions++;
}

static void run_loop(void)
{
    for (int i = 0; i < 5; i++) {
        loop_run_once(loop, 1);
    }
}

/* Batch b (0-based) is REGISTER AND IGNORE EXISTING KEY then PREEMPT. */
static void expect_register_and_preempt(unsigned b)
{
    assert_int_equal(f.batch_size[b], 2);
    assert_int_equal(f.batch_op[b][0], SCSI_OP_PERSISTENT_RESERVE_OUT);
    assert_int_equal(f.batch_sa[b][0], SCSI_PROUT_REGISTER_AND_IGNORE);
    assert_int_equal(f.batch_op[b][1], SCSI_OP_PERSISTENT_RESERVE_OUT);
    assert_int_equal(f.batch_sa[b][1], SCSI_PROUT_PREEMPT);
}

static void expect_we_hold(uint8_t type)
{
    assert_int_equal(f.key[NEXUS_US], KEY);
    assert_int_equal(f.key[NEXUS_SRC], 0);
    assert_int_equal(f.holder, type ? NEXUS_US : -1);
    assert_int_equal(f.type, type);
}

static void test_two_round_trips_then_check(void **state)
{
    char buf[512];
    Error *err = NULL;
    source_holds(SCSI_PR_TYPE_WRITE_EXCLUSIVE);
    assert_true(scsi_pr_activate(pr, &err));
    /* Reads, then REGISTER and PREEMPT: the device is ready. */
    assert_int_equal(f.batches, 2);
    assert_int_equal(f.batch_op[0][0], SCSI_OP_PERSISTENT_RESERVE_IN);
    expect_register_and_preempt(1);
    assert_int_equal(query_int("pr-takeover-round-trips"), 2);
    expect_we_hold(SCSI_PR_TYPE_WRITE_EXCLUSIVE);
    assert_true(scsi_pr_is_active(pr));
    assert_string_equal(query_str("pr-check", buf, sizeof(buf)), "pending");
    run_loop();
    /* The check is one more batch, not counted in the takeover's. */
    assert_int_equal(f.batches, 3);
    assert_int_equal(f.batch_size[2], 2);
    assert_int_equal(query_int("pr-takeover-round-trips"), 2);
    assert_string_equal(query_str("pr-check", buf, sizeof(buf)), "ok");
}

static void test_guest_pr_out_waits_for_the_check(void **state)
{
    uint8_t cdb[SCSI_PR_OUT_CDB_LEN], param[SCSI_PR_OUT_PARAM_LEN];
    uint8_t rd[10] = { SCSI_OP_READ_10 };
    struct iovec iov = { .iov_base = param, .iov_len = sizeof(param) };
    ScsiRequest out = { .cdb_len = 10, .dir = SCSI_DIR_TO_DEV, .iov = &iov,
                        .iovcnt = 1, .data_len = sizeof(param),
                        .complete = done };
    ScsiRequest read = { .cdb_len = 10, .dir = SCSI_DIR_NONE };
    Error *err = NULL;
    source_holds(SCSI_PR_TYPE_EXCLUSIVE_ACCESS);
    assert_true(scsi_pr_activate(pr, &err));
    scsi_pr_out_encode(SCSI_PROUT_RELEASE, SCSI_PR_TYPE_EXCLUSIVE_ACCESS,
                       KEY, 0, cdb, param);
    memcpy(out.cdb, cdb, sizeof(cdb));
    memcpy(read.cdb, rd, sizeof(rd));
    /* Until the check ran, the guest's RELEASE would change what it
     * reads; other I/O goes at once. */
    assert_int_equal(scsi_pr_gate(pr, &out), SCSI_PR_GATE_HELD);
    assert_int_equal(scsi_pr_gate(pr, &read), SCSI_PR_GATE_PASS);
    assert_true(scsi_pr_cancel(pr, &out));
    assert_int_equal(completions, 1);
    run_loop();
    char buf[512];
    assert_string_equal(query_str("pr-check", buf, sizeof(buf)), "ok");
    assert_int_equal(scsi_pr_gate(pr, &read), SCSI_PR_GATE_PASS);
}

static void test_preempt_run_first_is_sent_again(void **state)
{
    char buf[512];
    Error *err = NULL;
    f.reverse = true;
    source_holds(SCSI_PR_TYPE_EA_REGISTRANTS_ONLY);
    assert_true(scsi_pr_activate(pr, &err));
    /* The PREEMPT met RESERVATION CONFLICT (not registered yet) and
     * changed nothing; sent alone after the REGISTER, it worked. */
    assert_int_equal(f.batches, 3);
    expect_register_and_preempt(1);
    assert_int_equal(f.batch_size[2], 1);
    assert_int_equal(f.batch_sa[2][0], SCSI_PROUT_PREEMPT);
    assert_int_equal(query_int("pr-takeover-round-trips"), 3);
    expect_we_hold(SCSI_PR_TYPE_EA_REGISTRANTS_ONLY);
    run_loop();
    assert_string_equal(query_str("pr-check", buf, sizeof(buf)), "ok");
}

static void test_second_conflict_fails(void **state)
{
    char buf[512];
    Error *err = NULL;
    f.conflict_preempts = 2;
    source_holds(SCSI_PR_TYPE_WRITE_EXCLUSIVE);
    assert_false(scsi_pr_activate(pr, &err));
    assert_int_equal(f.batches, 3);
    const char *msg = error_get_pretty(err);
    assert_non_null(strstr(msg, "pt0"));
    assert_non_null(strstr(msg, "PREEMPT failed"));
    assert_non_null(strstr(msg, "RESERVATION CONFLICT"));
    error_free(err);
    assert_false(scsi_pr_is_active(pr));
    assert_int_equal(query_int("pr-takeover-round-trips"), -1);
    assert_string_equal(query_str("pr-check", buf, sizeof(buf)), "");
    assert_int_equal(f.holder, NEXUS_SRC);
}

static void test_register_failure_fails(void **state)
{
    Error *err = NULL;
    f.fail_register = true;
    f.reverse = true;           /* the PREEMPT conflicts too: no resend */
    source_holds(SCSI_PR_TYPE_WRITE_EXCLUSIVE);
    assert_false(scsi_pr_activate(pr, &err));
    assert_int_equal(f.batches, 2);
    const char *msg = error_get_pretty(err);
    assert_non_null(strstr(msg, "REGISTER AND IGNORE EXISTING KEY failed"));
    assert_non_null(strstr(msg, "CHECK CONDITION"));
    assert_non_null(strstr(msg, "ASC 55h ASCQ 04h"));
    error_free(err);
    assert_false(scsi_pr_is_active(pr));
    assert_int_equal(query_int("pr-takeover-round-trips"), -1);
    assert_int_equal(f.holder, NEXUS_SRC);
    assert_int_equal(f.key[NEXUS_US], 0);
}

/* Fenced before the handoff: another nexus preempted the source's key.
 * The activation succeeds, registers nothing, tracks no key, and the
 * guest's next command reports REGISTRATIONS PREEMPTED, once. */
static void test_fenced_guest_runs_unregistered(void **state)
{
    uint8_t rd[10] = { SCSI_OP_READ_10 }, inq[6] = { SCSI_OP_INQUIRY };
    ScsiRequest read = { .cdb_len = 10, .dir = SCSI_DIR_NONE,
                         .complete = done };
    ScsiRequest inquiry = { .cdb_len = 6, .dir = SCSI_DIR_NONE };
    ScsiSense s;
    char buf[512];
    Error *err = NULL;
    source_holds(SCSI_PR_TYPE_WRITE_EXCLUSIVE);
    f.key[NEXUS_SRC] = 0;       /* fenced meanwhile */
    if (!scsi_pr_activate(pr, &err)) {
        fail_msg("%s", error_get_pretty(err));
    }
    assert_int_equal(f.batches, 1);
    assert_int_equal(f.key[NEXUS_US], 0);
    assert_true(scsi_pr_is_active(pr));
    assert_int_equal(scsi_pr_state(pr).key, 0);
    assert_string_equal(query_str("pr-fenced", buf, sizeof(buf)),
                        "0x5eed0000c0ffee01");
    assert_string_equal(query_str("pr-check", buf, sizeof(buf)), "");
    memcpy(read.cdb, rd, sizeof(rd));
    memcpy(inquiry.cdb, inq, sizeof(inq));
    /* SAM-5 5.14: INQUIRY neither reports nor clears it. */
    assert_int_equal(scsi_pr_gate(pr, &inquiry), SCSI_PR_GATE_PASS);
    assert_int_equal(scsi_pr_gate(pr, &read), SCSI_PR_GATE_DONE);
    assert_int_equal(completions, 1);
    assert_int_equal(read.status, SAM_STAT_CHECK_CONDITION);
    assert_true(scsi_sense_parse(read.sense, read.sense_len, &s));
    assert_true(scsi_sense_equal(s, SENSE_UA_REGISTRATIONS_PREEMPTED));
    memset(&read.status, 0, sizeof(read.status));
    assert_int_equal(scsi_pr_gate(pr, &read), SCSI_PR_GATE_PASS);
    run_loop();
    assert_int_equal(f.batches, 1);
}

/* READ FULL STATUS tells nexuses apart: the key is registered, but by
 * the fencing node, which preempted the source with the guest's own key.
 * Nothing is registered and the fencing node keeps the reservation. */
static void test_full_status_same_key_fence(void **state)
{
    char buf[512];
    Error *err = NULL;
    f.full_status = true;
    source_holds_named(SCSI_PR_TYPE_WRITE_EXCLUSIVE);
    f.key[NEXUS_SRC] = 0;
    f.key[NEXUS_FENCER] = KEY;
    f.holder = NEXUS_FENCER;
    if (!scsi_pr_activate(pr, &err)) {
        fail_msg("%s", error_get_pretty(err));
    }
    assert_int_equal(f.batches, 1);
    assert_int_equal(f.batch_size[0], 3);
    assert_int_equal(f.batch_sa[0][2], SCSI_PRIN_READ_FULL_STATUS);
    assert_int_equal(f.key[NEXUS_US], 0);
    assert_int_equal(f.key[NEXUS_FENCER], KEY);
    assert_int_equal(f.holder, NEXUS_FENCER);
    assert_int_equal(scsi_pr_state(pr).key, 0);
    assert_string_equal(query_str("pr-fenced", buf, sizeof(buf)),
                        "0x5eed0000c0ffee01");
}

/* With READ FULL STATUS and no fence: it rides in round trip 1, the
 * takeover still takes two. */
static void test_full_status_takeover(void **state)
{
    char buf[512];
    Error *err = NULL;
    f.full_status = true;
    source_holds_named(SCSI_PR_TYPE_EXCLUSIVE_ACCESS);
    assert_true(scsi_pr_activate(pr, &err));
    assert_int_equal(f.batch_size[0], 3);
    expect_register_and_preempt(1);
    assert_int_equal(query_int("pr-takeover-round-trips"), 2);
    expect_we_hold(SCSI_PR_TYPE_EXCLUSIVE_ACCESS);
    run_loop();
    assert_string_equal(query_str("pr-check", buf, sizeof(buf)), "ok");
}

/* Any other contradiction still refuses: the key is registered but the
 * reservation changed type behind the handoff. Nothing is registered. */
static void test_verify_refusal_registers_nothing(void **state)
{
    Error *err = NULL;
    source_holds(SCSI_PR_TYPE_WRITE_EXCLUSIVE);
    f.type = SCSI_PR_TYPE_EXCLUSIVE_ACCESS;
    assert_false(scsi_pr_activate(pr, &err));
    assert_non_null(strstr(error_get_pretty(err), "another type"));
    error_free(err);
    assert_int_equal(f.batches, 1);
    assert_int_equal(f.key[NEXUS_US], 0);
    assert_false(scsi_pr_is_active(pr));
}

static void test_check_finds_contradiction(void **state)
{
    char buf[512];
    Error *err = NULL;
    f.tamper_at = 3;            /* the source registers again after */
    source_holds(SCSI_PR_TYPE_WE_REGISTRANTS_ONLY);
    assert_true(scsi_pr_activate(pr, &err));
    assert_int_equal(query_int("pr-takeover-round-trips"), 2);
    assert_true(scsi_pr_is_active(pr));
    run_loop();
    const char *check = query_str("pr-check", buf, sizeof(buf));
    assert_non_null(strstr(check, "after PREEMPT"));
    assert_non_null(strstr(check, "the previous holder is still "
                           "registered"));
    assert_non_null(strstr(check, "0x5eed0000c0ffee01 0x5eed0000c0ffee01"));
}

/* ALL REGISTRANTS: the takeover is a REGISTER alone (every registrant
 * holds the reservation, SPC-4 5.13.10); the source's registration may
 * remain until it removes it after the switchover. */
static void test_all_registrants_register_only(void **state)
{
    char buf[512];
    Error *err = NULL;
    source_holds(SCSI_PR_TYPE_EA_ALL_REGISTRANTS);
    assert_true(scsi_pr_activate(pr, &err));
    assert_int_equal(f.batches, 2);
    assert_int_equal(f.batch_size[1], 1);
    assert_int_equal(f.batch_sa[1][0], SCSI_PROUT_REGISTER_AND_IGNORE);
    assert_int_equal(f.key[NEXUS_US], KEY);
    assert_int_equal(f.key[NEXUS_SRC], KEY);
    assert_int_equal(f.holder, NEXUS_SRC);
    run_loop();
    assert_string_equal(query_str("pr-check", buf, sizeof(buf)), "ok");
}

/* A LUN whose ALL REGISTRANTS reservation reports a nonzero key (tgt
 * after a PREEMPT freed the registration it points at) is not ok: SPC-4
 * 5.13.10 says READ RESERVATION reports zero. */
static void test_check_all_registrants_key(void **state)
{
    char buf[512];
    Error *err = NULL;
    source_holds(SCSI_PR_TYPE_WE_ALL_REGISTRANTS);
    assert_true(scsi_pr_activate(pr, &err));
    f.ar_key = 0x363230322e6e7169ull;
    run_loop();
    const char *check = query_str("pr-check", buf, sizeof(buf));
    assert_non_null(strstr(check, "an ALL REGISTRANTS reservation reports "
                           "a nonzero key"));
}

static void test_check_follows_the_lun_to_its_loop(void **state)
{
    char buf[512];
    Error *err = NULL;
    EventLoop *running = loop_new(NULL);
    assert_non_null(running);
    source_holds(SCSI_PR_TYPE_EXCLUSIVE_ACCESS);
    assert_true(scsi_pr_activate(pr, &err));
    /* The VM starts: the LUN's session moves to the I/O thread's loop
     * before the main loop ran the check. It must not be used from the
     * main loop any more. */
    lun.loop = running;
    run_loop();
    assert_int_equal(f.batches, 2);
    assert_string_equal(query_str("pr-check", buf, sizeof(buf)), "pending");
    for (int i = 0; i < 5; i++) {
        loop_run_once(running, 1);
    }
    assert_int_equal(f.batches, 3);
    assert_string_equal(query_str("pr-check", buf, sizeof(buf)), "ok");
    lun.loop = loop;
    loop_free(running);
}

/* A guest PREEMPT's outcome is read back from the loop that serves the
 * LUN when the read runs, not from the one it was posted to. */
static void test_read_back_follows_the_lun_to_its_loop(void **state)
{
    uint8_t cdb[SCSI_PR_OUT_CDB_LEN], param[SCSI_PR_OUT_PARAM_LEN];
    struct iovec iov = { .iov_base = param, .iov_len = sizeof(param) };
    ScsiRequest out = { .lun = &lun, .cdb_len = 10, .dir = SCSI_DIR_TO_DEV,
                        .iov = &iov, .iovcnt = 1,
                        .data_len = sizeof(param), .complete = done };
    Error *err = NULL;
    EventLoop *running = loop_new(NULL);
    assert_non_null(running);
    source_holds(SCSI_PR_TYPE_EXCLUSIVE_ACCESS);
    assert_true(scsi_pr_activate(pr, &err));
    run_loop();
    assert_int_equal(f.batches, 3);
    scsi_pr_out_encode(SCSI_PROUT_PREEMPT, SCSI_PR_TYPE_EXCLUSIVE_ACCESS,
                       KEY, 0x7777, cdb, param);
    memcpy(out.cdb, cdb, sizeof(cdb));
    assert_int_equal(scsi_pr_gate(pr, &out), SCSI_PR_GATE_PASS);
    out.status = SAM_STAT_GOOD;
    scsi_pr_filter(NULL, &out, pr);     /* the LUN answered GOOD */
    /* The LUN moves before the posted read-back ran. */
    lun.loop = running;
    run_loop();
    assert_int_equal(f.batches, 3);
    for (int i = 0; i < 5; i++) {
        loop_run_once(running, 1);
    }
    assert_int_equal(f.batches, 4);
    assert_int_equal(f.batch_size[3], 1);
    assert_int_equal(f.batch_op[3][0], SCSI_OP_PERSISTENT_RESERVE_IN);
    assert_int_equal(f.batch_sa[3][0], SCSI_PRIN_READ_RESERVATION);
    assert_int_equal(scsi_pr_state(pr).type, SCSI_PR_TYPE_EXCLUSIVE_ACCESS);
    lun.loop = loop;
    loop_free(running);
}

/* A guest PREEMPT AND ABORT (SPC-4 5.13.11.5: a PREEMPT that also
 * aborts the preempted nexus' tasks). tgt refuses it as an unsupported
 * service action, so it is tested here: tracked like a PREEMPT, its
 * outcome read back from the LUN, and handed over with the new type. */
static void test_guest_preempt_and_abort_read_back(void **state)
{
    uint8_t cdb[SCSI_PR_OUT_CDB_LEN], param[SCSI_PR_OUT_PARAM_LEN];
    struct iovec iov = { .iov_base = param, .iov_len = sizeof(param) };
    ScsiRequest out = { .lun = &lun, .cdb_len = 10, .dir = SCSI_DIR_TO_DEV,
                        .iov = &iov, .iovcnt = 1,
                        .data_len = sizeof(param), .complete = done };
    ScsiPrWire wire;
    char buf[512];
    Error *err = NULL;
    source_holds(SCSI_PR_TYPE_WRITE_EXCLUSIVE);
    assert_true(scsi_pr_activate(pr, &err));
    run_loop();
    assert_string_equal(query_str("pr-check", buf, sizeof(buf)), "ok");
    assert_int_equal(f.batches, 3);
    scsi_pr_out_encode(SCSI_PROUT_PREEMPT_AND_ABORT,
                       SCSI_PR_TYPE_EA_REGISTRANTS_ONLY, KEY, 0x7777, cdb,
                       param);
    memcpy(out.cdb, cdb, sizeof(cdb));
    assert_int_equal(scsi_pr_gate(pr, &out), SCSI_PR_GATE_PASS);
    /* The LUN ran it: this nexus holds the new type. */
    f.type = SCSI_PR_TYPE_EA_REGISTRANTS_ONLY;
    out.status = SAM_STAT_GOOD;
    scsi_pr_filter(NULL, &out, pr);
    run_loop();
    assert_int_equal(f.batches, 4);
    assert_int_equal(f.batch_size[3], 1);
    assert_int_equal(f.batch_op[3][0], SCSI_OP_PERSISTENT_RESERVE_IN);
    assert_int_equal(f.batch_sa[3][0], SCSI_PRIN_READ_RESERVATION);
    ScsiPrState st = scsi_pr_state(pr);
    assert_int_equal(st.key, KEY);
    assert_int_equal(st.type, SCSI_PR_TYPE_EA_REGISTRANTS_ONLY);
    assert_true(scsi_pr_pre_save(pr, &wire, &err));
    assert_int_equal(wire.key, KEY);
    assert_int_equal(wire.type, SCSI_PR_TYPE_EA_REGISTRANTS_ONLY);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_two_round_trips_then_check,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_guest_pr_out_waits_for_the_check,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_preempt_run_first_is_sent_again,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_conflict_fails, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_register_failure_fails, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fenced_guest_runs_unregistered,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_refusal_registers_nothing,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_status_same_key_fence,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_status_takeover, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_check_finds_contradiction,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_all_registrants_register_only,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_all_registrants_key,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_follows_the_lun_to_its_loop,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_read_back_follows_the_lun_to_its_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_guest_preempt_and_abort_read_back, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
