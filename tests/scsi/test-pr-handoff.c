/*
 * Persistent reservations that move with the VM, against a real tgtd: two
 * scsi-block devices on one LUN with different initiator names play the
 * source and the destination (device state saved, loaded, activated as
 * the migration does it), guest commands go through the SCSI bus, and a
 * third initiator (a bare libiscsi nexus) checks what the LUN says.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "block/ownership.h"
#include "hd-harness.h"
#include "tgt-harness.h"
#include "scsi/scsi-block.h"
#include "scsi/scsi-pr-lun.h"
#include "scsi/scsi-pr-nexus.h"

#define IMG "pr-handoff-test.img"
#define IMG_SIZE (4u << 20)
#define IQN "iqn.2024-01.org.stormig:pr"
#define INIT_SRC "iqn.2024-01.org.stormig:host-src"
#define INIT_DST "iqn.2024-01.org.stormig:host-dst"
#define INIT_THIRD "iqn.2024-01.org.stormig:host-third"
#define KEY 0x5eed0000c0ffee01ull
#define KEY_DST 0x5eed0000c0ffee02ull
#define KEY_THIRD 0x5eed0000c0ffee03ull
#define BS 512u

static struct {
    EventLoop *loop;
    ScsiBus *bus_src, *bus_dst;
    Device *src, *dst;
    ScsiPrNexus *third;
    int port;
    char dir[64], url[160];
    const char *helper;
} t;

static int helper(const char *cmd)
{
    return tgt_helper(t.helper, cmd, t.dir, t.port, IMG, IQN);
}


static Device *make_sb(const char *id, const char *bus, const char *init,
                       const char *extra)
{
    char opts[512];
    snprintf(opts, sizeof(opts), "scsi-block,id=%s,url=%s,initiator-name=%s,"
             "bus=%s,lun=0,pr-journal=%s/journal-%s%s", id, t.url, init, bus,
             t.dir, id, extra);
    return hd_harness_device(opts, t.loop);
}

static int setup_with(const char *extra)
{
    Error *err = NULL;
    t.helper = getenv("TGTD_HELPER");
    t.port = tgt_free_port();
    snprintf(t.dir, sizeof(t.dir), "tgtd-pr-%d", t.port);
    snprintf(t.url, sizeof(t.url), "iscsi://127.0.0.1:%d/" IQN "/1", t.port);
    if (!t.helper || t.port < 0 || !hd_harness_make_image(IMG, IMG_SIZE) ||
        helper("start") != 0) {
        return -1;
    }
    blk_ownership_init(true);
    scsi_register_devices();
    t.loop = loop_new(NULL);
    t.bus_src = scsi_bus_new("scsi-src", NULL);
    t.bus_dst = scsi_bus_new("scsi-dst", NULL);
    t.src = make_sb("src", "scsi-src", INIT_SRC, extra);
    t.dst = make_sb("dst", "scsi-dst", INIT_DST, extra);
    t.third = scsi_pr_nexus_open(t.url, INIT_THIRD, &err);
    if (!t.third) {
        error_report_err(err);
    }
    return t.src && t.dst && t.third ? 0 : -1;
}

static int setup(void **state)
{
    return setup_with("");
}

static int setup_off(void **state)
{
    return setup_with(",migrate-pr=off");
}

static int teardown(void **state)
{
    scsi_pr_nexus_close(t.third);
    device_destroy_all();
    scsi_bus_free(t.bus_src);
    scsi_bus_free(t.bus_dst);
    loop_free(t.loop);
    helper("stop");
    unlink(IMG);
    memset(&t, 0, sizeof(t));
    return 0;
}

/* ---- The guest, through a controller's bus ----------------------------- */

static bool is_ua(const ScsiRequest *req)
{
    ScsiSense s;
    return req->status == SAM_STAT_CHECK_CONDITION &&
           scsi_sense_parse(req->sense, req->sense_len, &s) &&
           s.key == SCSI_SENSE_KEY_UNIT_ATTENTION;
}

static HdCmdResult guest(ScsiBus *bus, const uint8_t *cdb, size_t len,
                         ScsiDataDir dir, void *buf, size_t n)
{
    HdCmdResult r;
    for (int i = 0; i < 5; i++) {
        hd_harness_run(t.loop, bus, 0, cdb, len, dir, buf, n, &r);
        assert_true(r.done);
        if (!is_ua(&r.req)) {
            break;
        }
    }
    return r;
}

static uint8_t guest_out(ScsiBus *bus, uint8_t sa, uint8_t type,
                         uint64_t res_key, uint64_t sa_key)
{
    uint8_t cdb[SCSI_PR_OUT_CDB_LEN], param[SCSI_PR_OUT_PARAM_LEN];
    scsi_pr_out_encode(sa, type, res_key, sa_key, cdb, param);
    HdCmdResult r = guest(bus, cdb, sizeof(cdb), SCSI_DIR_TO_DEV, param,
                          sizeof(param));
    return r.req.status;
}

/* The guest takes a reservation: REGISTER, then RESERVE. */
static void guest_reserve(ScsiBus *bus, uint8_t type)
{
    assert_int_equal(guest_out(bus, SCSI_PROUT_REGISTER, 0, 0, KEY),
                     SAM_STAT_GOOD);
    assert_int_equal(guest_out(bus, SCSI_PROUT_RESERVE, type, KEY, 0),
                     SAM_STAT_GOOD);
}

/* ---- What the daemon and the LUN say ------------------------------------ */

static ScsiPrState tracked(Device *d)
{
    ScsiPrState st = { 0 };
    json_object *o = json_object_new_object(), *v;
    d->cls->query(d, o);
    if (json_object_object_get_ex(o, "pr-key", &v)) {
        st.key = strtoull(json_object_get_string(v), NULL, 16);
    }
    if (json_object_object_get_ex(o, "pr-type", &v)) {
        scsi_pr_type_parse(json_object_get_string(v), &st.type);
    }
    json_object_put(o);
    return st;
}

/* What query-devices says of the last takeover: batches of commands sent
 * (-1: no takeover reported). */
static int takeover_round_trips(Device *d)
{
    int n = -1;
    json_object *o = json_object_new_object(), *v;
    d->cls->query(d, o);
    if (json_object_object_get_ex(o, "pr-takeover-round-trips", &v)) {
        assert_true(json_object_is_type(v, json_type_int));
        n = json_object_get_int(v);
    }
    assert_true(json_object_object_get_ex(o, "pr-takeover-ms", &v) ==
                (n >= 0));
    json_object_put(o);
    return n;
}

/* query-devices' pr-check, into buf, once the loop ran the posted
 * outcome check ("pending" until then; "(none)": not reported). */
static const char *takeover_check(Device *d, char *buf, size_t size)
{
    snprintf(buf, size, "(none)");
    for (int i = 0; i < 200; i++) {
        json_object *o = json_object_new_object(), *v;
        d->cls->query(d, o);
        if (json_object_object_get_ex(o, "pr-check", &v)) {
            snprintf(buf, size, "%s", json_object_get_string(v));
        }
        json_object_put(o);
        if (strcmp(buf, "pending") != 0) {
            break;
        }
        loop_run_once(t.loop, 10);
    }
    return buf;
}

/* A query-devices field as a string ("(none)" when absent). */
static const char *query_field(Device *d, const char *name, char *buf,
                               size_t size)
{
    json_object *o = json_object_new_object(), *v;
    d->cls->query(d, o);
    snprintf(buf, size, "%s", json_object_object_get_ex(o, name, &v) ?
             json_object_get_string(v) : "(none)");
    json_object_put(o);
    return buf;
}

static void expect_check_ok(Device *d)
{
    char buf[512];
    assert_string_equal(takeover_check(d, buf, sizeof(buf)), "ok");
}

/* The third host: KEY registered exactly n times, the reservation. */
static void expect_lun(unsigned n, uint8_t type)
{
    ScsiPrKeys k;
    ScsiPrReservation r;
    Error *err = NULL;
    assert_true(scsi_pr_io_read_keys(scsi_pr_nexus_io(t.third), &k, &err));
    assert_true(scsi_pr_io_read_reservation(scsi_pr_nexus_io(t.third), &r,
                                            &err));
    assert_int_equal(scsi_pr_keys_count(&k, KEY), n);
    assert_int_equal(k.total, n);
    assert_int_equal(r.held, type != 0);
    if (type) {
        assert_int_equal(r.type, type);
        assert_int_equal(r.key, scsi_pr_type_all_registrants(type) ? 0 : KEY);
    }
}

/* READ/WRITE of one block on a device's own I_T nexus (not the guest's
 * path: no gate). Returns the status. */
static uint8_t nexus_rw(Device *d, bool write)
{
    uint8_t data[BS] = { 0 };
    uint8_t cdb[10] = { write ? SCSI_OP_WRITE_10 : SCSI_OP_READ_10, 0, 0, 0,
                        0, 8, 0, 0, 1, 0 };
    ScsiBlockResult res;
    Error *err = NULL;
    for (int i = 0; i < 5; i++) {
        assert_true(scsi_block_sync_command(scsi_block_from_device(d), cdb,
                                            10, write ? SCSI_DIR_TO_DEV :
                                            SCSI_DIR_FROM_DEV, data,
                                            sizeof(data), &res, &err));
        ScsiSense s;
        if (res.status != SAM_STAT_CHECK_CONDITION ||
            !scsi_sense_parse(res.sense, res.sense_len, &s) ||
            s.key != SCSI_SENSE_KEY_UNIT_ATTENTION) {
            break;
        }
    }
    return res.status;
}

static void expect_holder_io(Device *holder, Device *former, uint8_t type)
{
    uint8_t want_rd = scsi_pr_conflicts(type, false, false) ?
                      SAM_STAT_RESERVATION_CONFLICT : SAM_STAT_GOOD;
    uint8_t want_wr = scsi_pr_conflicts(type, false, true) ?
                      SAM_STAT_RESERVATION_CONFLICT : SAM_STAT_GOOD;
    assert_int_equal(nexus_rw(holder, true), SAM_STAT_GOOD);
    assert_int_equal(nexus_rw(former, false), want_rd);
    assert_int_equal(nexus_rw(former, true), want_wr);
    /* Every type refuses WRITE to an unregistered nexus. */
    assert_int_equal(want_wr, SAM_STAT_RESERVATION_CONFLICT);
}

/* ---- Migration, as the migration layer drives the devices --------------- */

static ByteBuf save_state(Device *from)
{
    VMStateSection s = { .name = "sb", .vmsd = from->cls->vmsd,
                         .opaque = from };
    ByteBuf b;
    Error *err = NULL;
    bytebuf_init(&b);
    if (!vmstate_save_stream(&s, 1, false, &b, &err)) {
        fail_msg("save: %s", error_get_pretty(err));
    }
    return b;
}

/* "scsi-block/pr" itself, not "scsi-block/pr-fenced". */
static bool has_pr_subsection(const ByteBuf *b)
{
    const uint8_t *p = b->data, *end = b->data + b->len;
    while ((p = memmem(p, (size_t)(end - p), "scsi-block/pr", 13)) != NULL) {
        if (p + 13 == end || p[13] != '-') {
            return true;
        }
        p += 13;
    }
    return false;
}

static void load_state(Device *to, const ByteBuf *b)
{
    VMStateSection s = { .name = "sb", .vmsd = to->cls->vmsd, .opaque = to };
    Error *err = NULL;
    if (!vmstate_load_stream(&s, 1, b->data, b->len, NULL, &err)) {
        fail_msg("load: %s", error_get_pretty(err));
    }
}

/* Save on from, inactivate it, load into to, activate to. */
static bool handoff(Device *from, Device *to, Error **errp)
{
    ByteBuf b = save_state(from);
    from->cls->inactivate(from);
    load_state(to, &b);
    bytebuf_free(&b);
    return to->cls->activate(to, errp);
}

/* A handoff, then the source learns the destination runs (the
 * destination's SWITCHOVER_DONE). */
static bool migrate(Device *from, Device *to, Error **errp)
{
    if (!handoff(from, to, errp)) {
        return false;
    }
    from->cls->handed_over(from);
    return true;
}

/* ---- Tests ----------------------------------------------------------------- */

static void test_handoff_every_type(void **state)
{
    for (size_t i = 0; i < 6; i++) {
        uint8_t type = scsi_pr_all_types[i];
        Error *err = NULL;
        guest_reserve(t.bus_src, type);
        ScsiPrState st = tracked(t.src);
        assert_int_equal(st.key, KEY);
        assert_int_equal(st.type, type);
        expect_lun(1, type);

        if (!migrate(t.src, t.dst, &err)) {
            fail_msg("%s: %s", scsi_pr_type_name(type), error_get_pretty(err));
        }
        st = tracked(t.dst);
        assert_int_equal(st.key, KEY);
        assert_int_equal(st.type, type);
        /* Reads, then REGISTER and PREEMPT together; the check after. */
        assert_int_equal(takeover_round_trips(t.dst), 2);
        expect_check_ok(t.dst);
        /* Same key and type, one registration: the source's is gone. */
        expect_lun(1, type);
        expect_holder_io(t.dst, t.src, type);

        /* The guest lets go on the destination; nothing to hand back. */
        assert_int_equal(guest_out(t.bus_dst, SCSI_PROUT_CLEAR, 0, KEY, 0),
                         SAM_STAT_GOOD);
        assert_int_equal(tracked(t.dst).key, 0);
        ByteBuf b = save_state(t.dst);
        assert_false(has_pr_subsection(&b));
        bytebuf_free(&b);
        assert_true(migrate(t.dst, t.src, &err));
        expect_lun(0, 0);
    }
}

static void test_guest_io_waits_for_activation(void **state)
{
    Error *err = NULL;
    uint8_t data[BS];
    guest_reserve(t.bus_src, SCSI_PR_TYPE_EXCLUSIVE_ACCESS);
    ByteBuf b = save_state(t.src);
    assert_true(has_pr_subsection(&b));
    t.src->cls->inactivate(t.src);
    load_state(t.dst, &b);
    bytebuf_free(&b);

    /* A guest READ on the destination before activation is held: the
     * LUN would refuse it (EXCLUSIVE ACCESS is still the source's). */
    HdCmdResult r = { 0 };
    struct iovec iov = { .iov_base = data, .iov_len = sizeof(data) };
    const uint8_t rd[10] = { SCSI_OP_READ_10, 0, 0, 0, 0, 8, 0, 0, 1, 0 };
    memcpy(r.req.cdb, rd, sizeof(rd));
    r.req.cdb_len = 10;
    r.req.dir = SCSI_DIR_FROM_DEV;
    r.req.iov = &iov;
    r.req.iovcnt = 1;
    r.req.data_len = sizeof(data);
    r.req.complete = hd_harness_done;
    r.req.opaque = &r;
    scsi_bus_submit(t.bus_dst, 0, &r.req);
    for (int i = 0; i < 30; i++) {
        loop_run_once(t.loop, 10);
    }
    assert_false(r.done);
    assert_true(t.dst->cls->activate(t.dst, &err));
    for (int i = 0; i < 500 && !r.done; i++) {
        loop_run_once(t.loop, 10);
    }
    assert_true(r.done);
    /* A new nexus may first report a unit attention; never a conflict. */
    assert_int_not_equal(r.req.status, SAM_STAT_RESERVATION_CONFLICT);
    if (r.req.status != SAM_STAT_GOOD) {
        assert_true(is_ua(&r.req));
    }
}

static void test_rollback_after_preempt(void **state)
{
    Error *err = NULL;
    const uint8_t type = SCSI_PR_TYPE_WE_REGISTRANTS_ONLY;
    guest_reserve(t.bus_src, type);
    /* The destination took it over ... */
    assert_true(migrate(t.src, t.dst, &err));
    expect_lun(1, type);
    expect_holder_io(t.dst, t.src, type);
    /* ... then the migration failed: the destination gives up and the
     * source, re-activated, preempts back (seed 001 v2). */
    t.dst->cls->inactivate(t.dst);
    if (!t.src->cls->activate(t.src, &err)) {
        fail_msg("rollback: %s", error_get_pretty(err));
    }
    /* tgt reports no UNIT ATTENTION for the preempted registration, so
     * no batch went twice. */
    assert_int_equal(takeover_round_trips(t.src), 2);
    expect_check_ok(t.src);
    expect_lun(1, type);
    expect_holder_io(t.src, t.dst, type);
    ScsiPrState st = tracked(t.src);
    assert_int_equal(st.key, KEY);
    assert_int_equal(st.type, type);
    /* The guest on the source carries on: RELEASE works on its nexus. */
    assert_int_equal(guest_out(t.bus_src, SCSI_PROUT_RELEASE, type, KEY, 0),
                     SAM_STAT_GOOD);
    expect_lun(1, 0);
}

static void test_ten_round_trips(void **state)
{
    Error *err = NULL;
    const uint8_t type = SCSI_PR_TYPE_EA_ALL_REGISTRANTS;
    guest_reserve(t.bus_src, type);
    Device *from = t.src, *to = t.dst;
    for (int i = 0; i < 10; i++) {
        if (!migrate(from, to, &err)) {
            fail_msg("handoff %d: %s", i, error_get_pretty(err));
        }
        assert_int_equal(takeover_round_trips(to), 2);
        expect_check_ok(to);
        expect_lun(1, type);
        expect_holder_io(to, from, type);
        Device *tmp = from;
        from = to;
        to = tmp;
    }
    assert_int_equal(tracked(t.src).type, type);
}

/* What a nexus that never registered, logged in after the handoff, gets
 * for a READ(10) or WRITE(10) of length 0; and the reservation it reads. */
static uint8_t newcomer_rw(bool write, ScsiPrReservation *r)
{
    Error *err = NULL;
    uint8_t cdb[10] = { write ? SCSI_OP_WRITE_10 : SCSI_OP_READ_10 };
    ScsiPrResult res;
    /* A long name: tgt's copies of it are heap blocks of the size of a
     * registration, which is how a freed one shows (its key read back as
     * the name's ASCII). */
    ScsiPrNexus *n = scsi_pr_nexus_open(t.url, "iqn.2024-01.org.stormig:"
                                        "host-newcomer-after-handoff", &err);
    if (!n) {
        fail_msg("%s", error_get_pretty(err));
    }
    assert_true(scsi_pr_io_command(scsi_pr_nexus_io(n), cdb, 10,
                                   SCSI_DIR_NONE, NULL, 0, &res, &err));
    assert_true(scsi_pr_io_read_reservation(scsi_pr_nexus_io(n), r, &err));
    scsi_pr_nexus_close(n);
    return res.status;
}

/* An ALL REGISTRANTS reservation moves by a REGISTER on the destination
 * and the source removing its own registration: the LUN keeps a sane
 * reservation (key 0, SPC-4 5.13.10), newcomers get what the type says
 * (WRITE EXCLUSIVE - ALL REGISTRANTS lets an unregistered nexus read),
 * and the source's nexus is out. */
static void test_all_registrants_handoff(void **state)
{
    static const uint8_t types[] = { SCSI_PR_TYPE_WE_ALL_REGISTRANTS,
                                     SCSI_PR_TYPE_EA_ALL_REGISTRANTS };
    for (size_t i = 0; i < 2; i++) {
        const uint8_t type = types[i];
        Error *err = NULL;
        ScsiPrReservation r;
        guest_reserve(t.bus_src, type);
        if (!migrate(t.src, t.dst, &err)) {
            fail_msg("%s", error_get_pretty(err));
        }
        expect_check_ok(t.dst);
        for (int round = 0; round < 3; round++) {
            uint8_t rd = newcomer_rw(false, &r);
            assert_true(r.held);
            assert_int_equal(r.key, 0);
            assert_int_equal(r.type, type);
            assert_int_equal(rd, type == SCSI_PR_TYPE_WE_ALL_REGISTRANTS ?
                             SAM_STAT_GOOD : SAM_STAT_RESERVATION_CONFLICT);
            assert_int_equal(newcomer_rw(true, &r),
                             SAM_STAT_RESERVATION_CONFLICT);
        }
        expect_lun(1, type);
        expect_holder_io(t.dst, t.src, type);
        assert_int_equal(guest_out(t.bus_dst, SCSI_PROUT_CLEAR, 0, KEY, 0),
                         SAM_STAT_GOOD);
        assert_true(migrate(t.dst, t.src, &err));
        expect_lun(0, 0);
    }
}

/* The migration fails after the destination joined an ALL REGISTRANTS
 * reservation: the destination removes its own registration, the
 * source takes the guest back with its registration, nothing preempted. */
static void test_all_registrants_rollback(void **state)
{
    Error *err = NULL;
    const uint8_t type = SCSI_PR_TYPE_EA_ALL_REGISTRANTS;
    guest_reserve(t.bus_src, type);
    if (!handoff(t.src, t.dst, &err)) {
        fail_msg("%s", error_get_pretty(err));
    }
    expect_check_ok(t.dst);
    t.dst->cls->inactivate(t.dst);
    if (!t.src->cls->activate(t.src, &err)) {
        fail_msg("rollback: %s", error_get_pretty(err));
    }
    expect_check_ok(t.src);
    expect_lun(1, type);
    expect_holder_io(t.src, t.dst, type);
    ScsiPrReservation r;
    assert_int_equal(newcomer_rw(false, &r), SAM_STAT_RESERVATION_CONFLICT);
    assert_int_equal(r.key, 0);
    assert_int_equal(r.type, type);
}

/* Keys and reservation of the LUN read twice through io: one command per
 * round trip, then both together in one; they must say the same. */
static void expect_read_pair_same(const ScsiPrIo *base)
{
    ScsiPrIo io = *base;
    unsigned trips = 0;
    ScsiPrKeys k1, k2;
    ScsiPrReservation r1, r2;
    Error *err = NULL;
    io.round_trips = &trips;
    if (!scsi_pr_io_read_keys(&io, &k1, &err) ||
        !scsi_pr_io_read_reservation(&io, &r1, &err)) {
        fail_msg("%s", error_get_pretty(err));
    }
    trips = 0;
    if (!scsi_pr_io_read_keys_and_reservation(&io, &k2, &r2, &err)) {
        fail_msg("%s", error_get_pretty(err));
    }
    assert_int_equal(trips, 1);
    assert_int_equal(k2.total, 3);
    assert_int_equal(k2.n, 3);
    assert_int_equal(k2.generation, k1.generation);
    for (uint32_t i = 0; i < k1.n; i++) {
        assert_int_equal(k2.keys[i], k1.keys[i]);
    }
    assert_true(scsi_pr_keys_contain(&k2, KEY));
    assert_true(scsi_pr_keys_contain(&k2, KEY_DST));
    assert_true(scsi_pr_keys_contain(&k2, KEY_THIRD));
    assert_true(r2.held);
    assert_int_equal(r2.generation, r1.generation);
    assert_int_equal(r2.key, KEY_THIRD);
    assert_int_equal(r2.type, SCSI_PR_TYPE_WE_REGISTRANTS_ONLY);
    assert_memory_equal(&r1, &r2, sizeof(r1));
}

static void test_read_pair_matches_sequential(void **state)
{
    Error *err = NULL;
    const ScsiPrIo *third = scsi_pr_nexus_io(t.third);
    assert_int_equal(guest_out(t.bus_src, SCSI_PROUT_REGISTER, 0, 0, KEY),
                     SAM_STAT_GOOD);
    assert_int_equal(guest_out(t.bus_dst, SCSI_PROUT_REGISTER, 0, 0,
                               KEY_DST), SAM_STAT_GOOD);
    assert_true(scsi_pr_io_out(third, SCSI_PROUT_REGISTER, 0, 0, KEY_THIRD,
                               NULL, &err));
    assert_true(scsi_pr_io_out(third, SCSI_PROUT_RESERVE,
                               SCSI_PR_TYPE_WE_REGISTRANTS_ONLY, KEY_THIRD, 0,
                               NULL, &err));
    /* A bare libiscsi nexus, and a scsi-block device's session. */
    expect_read_pair_same(third);
    ScsiPrIo dev = scsi_pr_block_io(scsi_block_from_device(t.src), "src");
    expect_read_pair_same(&dev);
}

/* A one-block READ/WRITE from the guest on bus: the status, UNIT
 * ATTENTIONs retried. */
static uint8_t guest_rw(ScsiBus *bus, bool write)
{
    uint8_t data[BS] = { 0 };
    const uint8_t cdb[10] = { write ? SCSI_OP_WRITE_10 : SCSI_OP_READ_10, 0,
                              0, 0, 0, 8, 0, 0, 1, 0 };
    return guest(bus, cdb, 10, write ? SCSI_DIR_TO_DEV : SCSI_DIR_FROM_DEV,
                 data, sizeof(data)).req.status;
}

/* The third host registers other and preempts KEY with type. */
static void third_fences(uint64_t other, uint8_t type)
{
    Error *err = NULL;
    const ScsiPrIo *third = scsi_pr_nexus_io(t.third);
    assert_true(scsi_pr_io_out(third, SCSI_PROUT_REGISTER, 0, 0, other, NULL,
                               &err));
    assert_true(scsi_pr_io_out(third, SCSI_PROUT_PREEMPT, type, other, KEY,
                               NULL, &err));
}

/* The LUN holds only other's registration and its reservation of type. */
static void expect_third_holds(uint64_t other, uint8_t type)
{
    Error *err = NULL;
    const ScsiPrIo *third = scsi_pr_nexus_io(t.third);
    ScsiPrReservation r;
    ScsiPrKeys k;
    assert_true(scsi_pr_io_read_reservation(third, &r, &err));
    assert_true(r.held);
    assert_int_equal(r.key, other);
    assert_int_equal(r.type, type);
    assert_true(scsi_pr_io_read_keys(third, &k, &err));
    assert_int_equal(k.total, 1);
    assert_int_equal(k.keys[0], other);
}

/* The guest's first command on dev's bus reports REGISTRATIONS
 * PREEMPTED; its writes then get RESERVATION CONFLICT, its reads pass
 * (WRITE EXCLUSIVE, SPC-4 5.13.1 table). */
static void expect_guest_fenced(ScsiBus *bus)
{
    uint8_t data[BS];
    const uint8_t rd[10] = { SCSI_OP_READ_10, 0, 0, 0, 0, 8, 0, 0, 1, 0 };
    HdCmdResult r;
    ScsiSense s;
    hd_harness_run(t.loop, bus, 0, rd, 10, SCSI_DIR_FROM_DEV, data,
                   sizeof(data), &r);
    assert_true(r.done);
    assert_int_equal(r.req.status, SAM_STAT_CHECK_CONDITION);
    assert_true(scsi_sense_parse(r.req.sense, r.req.sense_len, &s));
    assert_true(scsi_sense_equal(s, SENSE_UA_REGISTRATIONS_PREEMPTED));
    assert_int_equal(guest_rw(bus, true), SAM_STAT_RESERVATION_CONFLICT);
    assert_int_equal(guest_rw(bus, false), SAM_STAT_GOOD);
}

/* Fenced while the state was in flight: the destination runs the guest
 * unregistered instead of failing the switchover. */
static void test_fenced_during_handoff(void **state)
{
    Error *err = NULL;
    const uint64_t other = 0x7777;
    char buf[64];
    guest_reserve(t.bus_src, SCSI_PR_TYPE_WRITE_EXCLUSIVE);
    ByteBuf b = save_state(t.src);
    t.src->cls->inactivate(t.src);
    third_fences(other, SCSI_PR_TYPE_WRITE_EXCLUSIVE);
    load_state(t.dst, &b);
    bytebuf_free(&b);
    if (!t.dst->cls->activate(t.dst, &err)) {
        fail_msg("%s", error_get_pretty(err));
    }
    /* Nothing was preempted blindly nor registered: the REGISTER waits
     * for the verification, so the fenced key did not come back. */
    expect_third_holds(other, SCSI_PR_TYPE_WRITE_EXCLUSIVE);
    assert_int_equal(tracked(t.dst).key, 0);
    assert_string_equal(query_field(t.dst, "pr-fenced", buf, sizeof(buf)),
                        "0x5eed0000c0ffee01");
    /* A fence is not a takeover: none reported, none checked. */
    assert_int_equal(takeover_round_trips(t.dst), -1);
    char check[512];
    assert_string_equal(takeover_check(t.dst, check, sizeof(check)),
                        "(none)");
    expect_guest_fenced(t.bus_dst);
    expect_third_holds(other, SCSI_PR_TYPE_WRITE_EXCLUSIVE);
}

/* Status of a READ(10)/WRITE(10) of length 0 from the third host. */
static uint8_t third_rw(bool write)
{
    uint8_t cdb[10] = { write ? SCSI_OP_WRITE_10 : SCSI_OP_READ_10 };
    ScsiPrResult res;
    Error *err = NULL;
    assert_true(scsi_pr_io_command(scsi_pr_nexus_io(t.third), cdb, 10,
                                   SCSI_DIR_NONE, NULL, 0, &res, &err));
    return res.status;
}

/* Fenced before the migration by the third host, with key fencer: it
 * registers and preempts KEY. The source's probe of its own nexus finds
 * it unregistered; the state carries the fence instead of the key, and
 * the destination sends nothing to the LUN. */
static void fenced_before_handoff(uint64_t fencer)
{
    Error *err = NULL;
    char buf[64];
    const uint8_t type = SCSI_PR_TYPE_WRITE_EXCLUSIVE;
    guest_reserve(t.bus_src, type);
    const ScsiPrIo *third = scsi_pr_nexus_io(t.third);
    assert_true(scsi_pr_io_out(third, SCSI_PROUT_REGISTER, 0, 0, fencer,
                               NULL, &err));
    assert_true(scsi_pr_io_out(third, SCSI_PROUT_PREEMPT, type, fencer, KEY,
                               NULL, &err));
    ByteBuf b = save_state(t.src);
    assert_false(has_pr_subsection(&b));
    assert_non_null(memmem(b.data, b.len, "scsi-block/pr-fenced", 20));
    t.src->cls->inactivate(t.src);
    load_state(t.dst, &b);
    bytebuf_free(&b);
    if (!t.dst->cls->activate(t.dst, &err)) {
        fail_msg("%s", error_get_pretty(err));
    }
    assert_int_equal(tracked(t.src).key, 0);
    assert_int_equal(tracked(t.dst).key, 0);
    assert_string_equal(query_field(t.dst, "pr-fenced", buf, sizeof(buf)),
                        "0x5eed0000c0ffee01");
    assert_int_equal(takeover_round_trips(t.dst), -1);
    /* The fencing node still holds it: its write passes, the guest's
     * does not. */
    expect_third_holds(fencer, type);
    assert_int_equal(third_rw(true), SAM_STAT_GOOD);
    expect_guest_fenced(t.bus_dst);
    assert_int_equal(third_rw(true), SAM_STAT_GOOD);
    expect_third_holds(fencer, type);
}

static void test_fenced_before_handoff(void **state)
{
    fenced_before_handoff(0x7777);
}

/* With the guest's own key (fencing agents reuse keys; SPC-4
 * 5.13.11.2.4 keeps the preempting nexus registered): READ KEYS and READ
 * RESERVATION look as before the fence, so only the probe of the
 * source's own nexus tells; the destination must not preempt the
 * fencing node. */
static void test_same_key_fence_before_handoff(void **state)
{
    fenced_before_handoff(KEY);
}

/* A contradiction other than a fence still refuses, and registers
 * nothing: the reservation changed type while the key stayed. */
static void test_verification_refuses(void **state)
{
    Error *err = NULL;
    guest_reserve(t.bus_src, SCSI_PR_TYPE_WE_ALL_REGISTRANTS);
    ByteBuf b = save_state(t.src);
    t.src->cls->inactivate(t.src);
    /* Meanwhile a third registrant replaces the reservation. */
    const ScsiPrIo *third = scsi_pr_nexus_io(t.third);
    assert_true(scsi_pr_io_out(third, SCSI_PROUT_REGISTER, 0, 0, KEY_THIRD,
                               NULL, &err));
    assert_true(scsi_pr_io_out(third, SCSI_PROUT_RELEASE,
                               SCSI_PR_TYPE_WE_ALL_REGISTRANTS, KEY_THIRD, 0,
                               NULL, &err));
    load_state(t.dst, &b);
    bytebuf_free(&b);
    assert_false(t.dst->cls->activate(t.dst, &err));
    assert_non_null(strstr(error_get_pretty(err), "another initiator"));
    assert_non_null(strstr(error_get_pretty(err), "released"));
    error_free_or_null(&err);
    ScsiPrKeys k;
    assert_true(scsi_pr_io_read_keys(third, &k, &err));
    assert_int_equal(scsi_pr_keys_count(&k, KEY), 1);
    assert_int_equal(k.total, 2);
    assert_int_equal(takeover_round_trips(t.dst), -1);
}

static void test_register_and_move_refused(void **state)
{
    uint8_t cdb[10], param[24];
    ScsiSense s;
    assert_int_equal(guest_out(t.bus_src, SCSI_PROUT_REGISTER, 0, 0, KEY),
                     SAM_STAT_GOOD);
    scsi_pr_out_encode(SCSI_PROUT_REGISTER_AND_MOVE, 1, KEY, 0x99, cdb,
                       param);
    HdCmdResult r = guest(t.bus_src, cdb, 10, SCSI_DIR_TO_DEV, param, 24);
    assert_int_equal(r.req.status, SAM_STAT_CHECK_CONDITION);
    assert_true(scsi_sense_parse(r.req.sense, r.req.sense_len, &s));
    assert_true(scsi_sense_equal(s, SENSE_INVALID_FIELD_IN_CDB));
    /* SPEC_I_PT is masked too: INVALID FIELD IN PARAMETER LIST. */
    scsi_pr_out_encode(SCSI_PROUT_REGISTER, 0, KEY, 0x99, cdb, param);
    param[20] = 0x08;
    r = guest(t.bus_src, cdb, 10, SCSI_DIR_TO_DEV, param, 24);
    assert_true(scsi_sense_parse(r.req.sense, r.req.sense_len, &s));
    assert_true(scsi_sense_equal(s, SENSE_INVALID_FIELD_IN_PARAM));
    expect_lun(1, 0);
    assert_int_equal(tracked(t.src).key, KEY);
}

static void test_preempt_read_back(void **state)
{
    Error *err = NULL;
    const ScsiPrIo *third = scsi_pr_nexus_io(t.third);
    const uint64_t other = 0x4242;
    assert_true(scsi_pr_io_out(third, SCSI_PROUT_REGISTER, 0, 0, other, NULL,
                               &err));
    assert_true(scsi_pr_io_out(third, SCSI_PROUT_RESERVE,
                               SCSI_PR_TYPE_WRITE_EXCLUSIVE, other, 0, NULL,
                               &err));
    assert_int_equal(guest_out(t.bus_src, SCSI_PROUT_REGISTER, 0, 0, KEY),
                     SAM_STAT_GOOD);
    /* The guest preempts the third host: it now holds the reservation. */
    assert_int_equal(guest_out(t.bus_src, SCSI_PROUT_PREEMPT,
                               SCSI_PR_TYPE_EA_REGISTRANTS_ONLY, KEY, other),
                     SAM_STAT_GOOD);
    for (int i = 0; i < 50 && tracked(t.src).type == 0; i++) {
        loop_run_once(t.loop, 10);
    }
    assert_int_equal(tracked(t.src).type, SCSI_PR_TYPE_EA_REGISTRANTS_ONLY);
    expect_lun(1, SCSI_PR_TYPE_EA_REGISTRANTS_ONLY);
}

static void test_journal_restart(void **state)
{
    char path[160], buf[1024];
    guest_reserve(t.bus_src, SCSI_PR_TYPE_EXCLUSIVE_ACCESS);
    snprintf(path, sizeof(path), "%s/journal-src/src.json", t.dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "\"key\":\"0x5eed0000c0ffee01\""));
    assert_non_null(strstr(buf, "\"type\":3"));
    assert_non_null(strstr(buf, "\"active\":true"));

    /* The daemon restarts: a new session, so a new I_T nexus. */
    device_destroy(t.src);
    t.src = make_sb("src", "scsi-src", INIT_SRC, "");
    assert_non_null(t.src);
    json_object *o = json_object_new_object(), *v;
    t.src->cls->query(t.src, o);
    assert_true(json_object_object_get_ex(o, "pr-startup", &v));
    const char *note = json_object_get_string(v);
    assert_non_null(strstr(note, "0x5eed0000c0ffee01"));
    assert_non_null(strstr(note, "must register and reserve again"));
    json_object_put(o);
    /* Nothing adopted without READ FULL STATUS (tgt has none). */
    assert_int_equal(tracked(t.src).key, 0);
}

static void test_migrate_pr_off(void **state)
{
    uint8_t caps[8] = { 0 };
    const uint8_t rc[10] = { SCSI_OP_PERSISTENT_RESERVE_IN,
                             SCSI_PRIN_REPORT_CAPABILITIES, 0, 0, 0, 0, 0, 0,
                             8, 0 };
    guest_reserve(t.bus_src, SCSI_PR_TYPE_WRITE_EXCLUSIVE);
    json_object *o = json_object_new_object(), *v;
    t.src->cls->query(t.src, o);
    assert_false(json_object_object_get_ex(o, "pr-key", &v));
    json_object_put(o);
    /* Nothing snooped, nothing sent: the reservation stays at the source. */
    ByteBuf b = save_state(t.src);
    assert_false(has_pr_subsection(&b));
    bytebuf_free(&b);
    Error *err = NULL;
    assert_true(migrate(t.src, t.dst, &err));
    expect_lun(1, SCSI_PR_TYPE_WRITE_EXCLUSIVE);
    assert_int_equal(nexus_rw(t.src, true), SAM_STAT_GOOD);
    /* REPORT CAPABILITIES reaches the guest as the LUN sent it. */
    HdCmdResult r = guest(t.bus_src, rc, 10, SCSI_DIR_FROM_DEV, caps, 8);
    assert_int_equal(r.req.status, SAM_STAT_GOOD);
    ScsiPrCaps c;
    assert_true(scsi_pr_caps_decode(caps, 8, &c, &err));
    ScsiPrCaps raw;
    assert_true(scsi_pr_io_report_caps(scsi_pr_nexus_io(t.third), &raw, &err));
    assert_memory_equal(&c, &raw, sizeof(c));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_handoff_every_type, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_guest_io_waits_for_activation,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback_after_preempt, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ten_round_trips, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_all_registrants_handoff, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_all_registrants_rollback, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_read_pair_matches_sequential,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_fenced_during_handoff, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fenced_before_handoff, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_same_key_fence_before_handoff,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_verification_refuses, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_register_and_move_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_preempt_read_back, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_journal_restart, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_migrate_pr_off, setup_off,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
