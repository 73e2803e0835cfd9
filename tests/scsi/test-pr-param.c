/* Persistent reservation wire formats and the tracking state machine:
 * PERSISTENT RESERVE OUT parsing (a table of malformed commands), PR IN
 * decoders on short and inconsistent data, REPORT CAPABILITIES masking,
 * the SPC-4 5.13 conflict table and the snooping transitions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <string.h>

#include "scsi/scsi-pr-io.h"

/* A PR OUT CDB and basic list, then edited by each table row. */
typedef struct OutCase {
    const char *what;
    uint8_t sa, type, scope;
    uint32_t param_len;             /* in the CDB */
    size_t avail;                   /* data-out bytes actually present */
    size_t cdb_len;
    uint8_t opcode;
    uint8_t flags;                  /* byte 20 of the list */
    ScsiPrOutStatus want;
    ScsiSense want_sense;
} OutCase;

static ScsiPrOutStatus parse_case(const OutCase *c, ScsiPrOut *out)
{
    uint8_t cdb[16], param[64];
    scsi_pr_out_encode(c->sa, c->type, 0x1111, 0x2222, cdb, param);
    cdb[0] = c->opcode;
    cdb[2] = (uint8_t)(c->scope << 4 | c->type);
    st_be32(&cdb[5], c->param_len);
    param[20] = c->flags;
    return scsi_pr_out_parse(cdb, c->cdb_len, param, c->avail, out);
}

static void test_out_parse_table(void **state)
{
    const uint8_t PO = SCSI_OP_PERSISTENT_RESERVE_OUT;
    const OutCase cases[] = {
        { "register", SCSI_PROUT_REGISTER, 0, 0, 24, 24, 10, PO, 0,
          SCSI_PR_OUT_OK, SENSE_NO_SENSE },
        { "reserve ea-ar", SCSI_PROUT_RESERVE, 8, 0, 24, 24, 10, PO, 0,
          SCSI_PR_OUT_OK, SENSE_NO_SENSE },
        { "list longer than needed", SCSI_PROUT_RELEASE, 1, 0, 24, 64, 16,
          PO, 0, SCSI_PR_OUT_OK, SENSE_NO_SENSE },
        { "other opcode", SCSI_PROUT_REGISTER, 0, 0, 24, 24, 10, 0x5e, 0,
          SCSI_PR_OUT_NOT_PR_OUT, SENSE_INVALID_OPCODE },
        { "CDB of 6 bytes", SCSI_PROUT_REGISTER, 0, 0, 24, 24, 6, PO, 0,
          SCSI_PR_OUT_CDB_TOO_SHORT, SENSE_INVALID_FIELD_IN_CDB },
        { "empty CDB", SCSI_PROUT_REGISTER, 0, 0, 24, 24, 0, PO, 0,
          SCSI_PR_OUT_NOT_PR_OUT, SENSE_INVALID_OPCODE },
        { "service action 09h", 0x09, 0, 0, 24, 24, 10, PO, 0,
          SCSI_PR_OUT_BAD_SERVICE_ACTION, SENSE_INVALID_FIELD_IN_CDB },
        { "service action 1fh", 0x1f, 0, 0, 24, 24, 10, PO, 0,
          SCSI_PR_OUT_BAD_SERVICE_ACTION, SENSE_INVALID_FIELD_IN_CDB },
        { "register and move", SCSI_PROUT_REGISTER_AND_MOVE, 1, 0, 24, 24,
          10, PO, 0, SCSI_PR_OUT_REGISTER_AND_MOVE,
          SENSE_INVALID_FIELD_IN_CDB },
        { "reserve type 0", SCSI_PROUT_RESERVE, 0, 0, 24, 24, 10, PO, 0,
          SCSI_PR_OUT_BAD_TYPE, SENSE_INVALID_FIELD_IN_CDB },
        { "reserve type 2", SCSI_PROUT_RESERVE, 2, 0, 24, 24, 10, PO, 0,
          SCSI_PR_OUT_BAD_TYPE, SENSE_INVALID_FIELD_IN_CDB },
        { "preempt type 9", SCSI_PROUT_PREEMPT, 9, 0, 24, 24, 10, PO, 0,
          SCSI_PR_OUT_BAD_TYPE, SENSE_INVALID_FIELD_IN_CDB },
        { "reserve scope 1", SCSI_PROUT_RESERVE, 1, 1, 24, 24, 10, PO, 0,
          SCSI_PR_OUT_BAD_SCOPE, SENSE_INVALID_FIELD_IN_CDB },
        { "list length 0", SCSI_PROUT_REGISTER, 0, 0, 0, 0, 10, PO, 0,
          SCSI_PR_OUT_BAD_LENGTH, SENSE_PARAM_LIST_LENGTH_ERROR },
        { "list length 23", SCSI_PROUT_REGISTER, 0, 0, 23, 24, 10, PO, 0,
          SCSI_PR_OUT_BAD_LENGTH, SENSE_PARAM_LIST_LENGTH_ERROR },
        { "list length 25", SCSI_PROUT_REGISTER, 0, 0, 25, 25, 10, PO, 0,
          SCSI_PR_OUT_BAD_LENGTH, SENSE_PARAM_LIST_LENGTH_ERROR },
        { "list length 4G-1", SCSI_PROUT_REGISTER, 0, 0, 0xffffffff, 24, 10,
          PO, 0, SCSI_PR_OUT_BAD_LENGTH, SENSE_PARAM_LIST_LENGTH_ERROR },
        { "16 bytes of data-out", SCSI_PROUT_REGISTER, 0, 0, 24, 16, 10, PO,
          0, SCSI_PR_OUT_TRUNCATED, SENSE_PARAM_LIST_LENGTH_ERROR },
        { "no data-out", SCSI_PROUT_CLEAR, 0, 0, 24, 0, 10, PO, 0,
          SCSI_PR_OUT_TRUNCATED, SENSE_PARAM_LIST_LENGTH_ERROR },
        { "SPEC_I_PT", SCSI_PROUT_REGISTER, 0, 0, 24, 24, 10, PO, 0x08,
          SCSI_PR_OUT_SPEC_I_PT, SENSE_INVALID_FIELD_IN_PARAM },
        { "ALL_TG_PT", SCSI_PROUT_REGISTER, 0, 0, 24, 24, 10, PO, 0x04,
          SCSI_PR_OUT_ALL_TG_PT, SENSE_INVALID_FIELD_IN_PARAM },
        { "APTPL is fine", SCSI_PROUT_REGISTER, 0, 0, 24, 24, 10, PO, 0x01,
          SCSI_PR_OUT_OK, SENSE_NO_SENSE },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ScsiPrOut out;
        ScsiPrOutStatus st = parse_case(&cases[i], &out);
        if (st != cases[i].want) {
            fail_msg("%s: got %s, want %s", cases[i].what,
                     scsi_pr_out_status_name(st),
                     scsi_pr_out_status_name(cases[i].want));
        }
        if (st != SCSI_PR_OUT_OK) {
            assert_true(scsi_sense_equal(scsi_pr_out_status_sense(st),
                                         cases[i].want_sense));
        } else {
            assert_int_equal(out.res_key, 0x1111);
            assert_int_equal(out.sa_key, 0x2222);
            assert_int_equal(out.service_action, cases[i].sa);
            assert_int_equal(out.aptpl, cases[i].flags & 1);
        }
    }
}

static void test_out_parse_null_param(void **state)
{
    uint8_t cdb[10], param[24];
    ScsiPrOut out;
    scsi_pr_out_encode(SCSI_PROUT_REGISTER, 0, 0, 7, cdb, param);
    assert_int_equal(scsi_pr_out_parse(cdb, 10, NULL, 24, &out),
                     SCSI_PR_OUT_TRUNCATED);
    assert_int_equal(scsi_pr_out_parse(cdb, 10, param, 24, &out),
                     SCSI_PR_OUT_OK);
    assert_int_equal(out.sa_key, 7);
    assert_int_equal(ld_be32(&cdb[5]), 24);
}

static void test_read_keys_decode(void **state)
{
    uint8_t buf[8 + 3 * 8];
    ScsiPrKeys k;
    Error *err = NULL;
    st_be32(&buf[0], 5);
    st_be32(&buf[4], 24);
    st_be64(&buf[8], 0xaa);
    st_be64(&buf[16], 0xbb);
    st_be64(&buf[24], 0xaa);
    assert_true(scsi_pr_keys_decode(buf, sizeof(buf), &k, &err));
    assert_int_equal(k.generation, 5);
    assert_int_equal(k.n, 3);
    assert_int_equal(scsi_pr_keys_count(&k, 0xaa), 2);
    assert_false(scsi_pr_keys_contain(&k, 0xcc));
    /* The LUN says 3 keys but the allocation length cut the third. */
    assert_true(scsi_pr_keys_decode(buf, 8 + 16 + 3, &k, &err));
    assert_int_equal(k.n, 2);
    assert_int_equal(k.total, 3);
    /* Additional length says more than was sent: only what is there. */
    st_be32(&buf[4], 0x7ffffff8);
    assert_true(scsi_pr_keys_decode(buf, sizeof(buf), &k, &err));
    assert_int_equal(k.n, 3);
    st_be32(&buf[4], 13);
    assert_false(scsi_pr_keys_decode(buf, sizeof(buf), &k, &err));
    error_free_or_null(&err);
    assert_false(scsi_pr_keys_decode(buf, 7, &k, &err));
    assert_non_null(err);
    error_free_or_null(&err);
}

static void test_read_reservation_decode(void **state)
{
    uint8_t buf[24] = { 0 };
    ScsiPrReservation r;
    Error *err = NULL;
    assert_true(scsi_pr_reservation_decode(buf, 8, &r, &err));
    assert_false(r.held);
    st_be32(&buf[4], 0x10);
    st_be64(&buf[8], 0x1234);
    buf[21] = SCSI_PR_TYPE_EA_REGISTRANTS_ONLY;
    assert_true(scsi_pr_reservation_decode(buf, 24, &r, &err));
    assert_true(r.held);
    assert_int_equal(r.key, 0x1234);
    assert_int_equal(r.type, SCSI_PR_TYPE_EA_REGISTRANTS_ONLY);
    /* A descriptor announced but cut short, or of a wrong size. */
    assert_false(scsi_pr_reservation_decode(buf, 20, &r, &err));
    error_free_or_null(&err);
    st_be32(&buf[4], 0x08);
    assert_false(scsi_pr_reservation_decode(buf, 24, &r, &err));
    error_free_or_null(&err);
    assert_false(scsi_pr_reservation_decode(buf, 3, &r, &err));
    error_free_or_null(&err);
}

static void test_caps_mask(void **state)
{
    uint8_t buf[8] = { 0, 8, 0x1d, 0x81, 0xea, 0x01, 0, 0 };
    ScsiPrCaps c;
    Error *err = NULL;
    assert_true(scsi_pr_caps_decode(buf, sizeof(buf), &c, &err));
    assert_true(c.sip_c && c.atc_c && c.crh && c.ptpl_c);
    assert_true(scsi_pr_caps_mask(buf, sizeof(buf)));
    assert_true(scsi_pr_caps_decode(buf, sizeof(buf), &c, &err));
    assert_false(c.sip_c);
    assert_false(c.atc_c);
    /* Everything else is left as the LUN said. */
    assert_true(c.crh && c.ptpl_c && c.tmv && c.ptpl_a);
    assert_int_equal(c.type_mask, 0xea01);
    assert_int_equal(buf[2], 0x11);
    /* Too little data to hold byte 2: nothing is touched. */
    uint8_t tiny[2] = { 0xff, 0xff };
    assert_false(scsi_pr_caps_mask(tiny, 2));
    assert_int_equal(tiny[1], 0xff);
    assert_false(scsi_pr_caps_decode(buf, 5, &c, &err));
    error_free_or_null(&err);
}

static size_t put_full_desc(uint8_t *p, uint64_t key, uint8_t flags,
                            uint8_t type, const char *name)
{
    size_t nlen = strlen(name) + 1, tlen = (4 + nlen + 3) & ~(size_t)3;
    memset(p, 0, 24 + tlen);
    st_be64(&p[0], key);
    p[12] = flags;
    p[13] = type;
    st_be16(&p[18], 1);
    st_be32(&p[20], (uint32_t)tlen);
    p[24] = 0x45;                       /* format 01b, iSCSI */
    st_be16(&p[26], (uint16_t)(tlen - 4));
    memcpy(&p[28], name, nlen);
    return 24 + tlen;
}

static void test_full_status_decode(void **state)
{
    uint8_t buf[256];
    ScsiPrFullStatus e[4];
    size_t n, off = 8;
    Error *err = NULL;
    off += put_full_desc(&buf[off], 0xa, 0x01, 1, "iqn.x:a,i,0x23");
    off += put_full_desc(&buf[off], 0xb, 0x00, 1, "iqn.x:b,i,0x24");
    st_be32(&buf[0], 9);
    st_be32(&buf[4], (uint32_t)(off - 8));
    assert_true(scsi_pr_full_status_decode(buf, off, e, 4, &n, &err));
    assert_int_equal(n, 2);
    assert_true(e[0].holder);
    assert_int_equal(e[0].type, 1);
    assert_string_equal(e[0].name, "iqn.x:a,i,0x23");
    assert_false(e[1].holder);
    assert_int_equal(e[1].protocol, 5);
    /* Capacity 1: one entry, no overrun. */
    assert_true(scsi_pr_full_status_decode(buf, off, e, 1, &n, &err));
    assert_int_equal(n, 1);
    /* A TransportID length running past the data. */
    st_be32(&buf[8 + 20], 0x1000);
    assert_false(scsi_pr_full_status_decode(buf, off, e, 4, &n, &err));
    error_free_or_null(&err);
}

static void test_conflict_table(void **state)
{
    /* type, registered: READ conflicts, WRITE conflicts (SPC-4 5.13). */
    static const struct { uint8_t type; bool reg, rd, wr; } rows[] = {
        { 1, false, false, true }, { 1, true, false, true },
        { 3, false, true, true },  { 3, true, true, true },
        { 5, false, false, true }, { 5, true, false, false },
        { 6, false, true, true },  { 6, true, false, false },
        { 7, false, false, true }, { 7, true, false, false },
        { 8, false, true, true },  { 8, true, false, false },
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        assert_int_equal(scsi_pr_conflicts(rows[i].type, rows[i].reg, false),
                         rows[i].rd);
        assert_int_equal(scsi_pr_conflicts(rows[i].type, rows[i].reg, true),
                         rows[i].wr);
    }
    assert_false(scsi_pr_conflicts(0, false, true));
}

static ScsiPrSnoop snoop(ScsiPrState *st, uint8_t sa, uint8_t type,
                         uint64_t res_key, uint64_t sa_key)
{
    ScsiPrOut cmd = { .service_action = sa, .type = type,
                      .res_key = res_key, .sa_key = sa_key,
                      .param_len = 24 };
    return scsi_pr_snoop(st, &cmd);
}

static void test_snoop_sequence(void **state)
{
    ScsiPrState st = { 0 };
    /* REGISTER with both keys 0 from an unregistered nexus: nothing. */
    assert_int_equal(snoop(&st, SCSI_PROUT_REGISTER, 0, 0, 0),
                     SCSI_PR_SNOOP_UNCHANGED);
    assert_int_equal(snoop(&st, SCSI_PROUT_REGISTER, 0, 0, 0xabc),
                     SCSI_PR_SNOOP_CHANGED);
    assert_int_equal(st.key, 0xabc);
    assert_int_equal(snoop(&st, SCSI_PROUT_RESERVE, 6, 0xabc, 0),
                     SCSI_PR_SNOOP_CHANGED);
    assert_int_equal(st.type, 6);
    /* A new key keeps the reservation (5.13.7). */
    snoop(&st, SCSI_PROUT_REGISTER, 0, 0xabc, 0xdef);
    assert_int_equal(st.key, 0xdef);
    assert_int_equal(st.type, 6);
    snoop(&st, SCSI_PROUT_RELEASE, 6, 0xdef, 0);
    assert_int_equal(st.key, 0xdef);
    assert_int_equal(st.type, 0);
    snoop(&st, SCSI_PROUT_RESERVE, 1, 0xdef, 0);
    /* Unregistering ends the reservation too. */
    snoop(&st, SCSI_PROUT_REGISTER_AND_IGNORE, 0, 0, 0);
    assert_int_equal(st.key, 0);
    assert_int_equal(st.type, 0);
    snoop(&st, SCSI_PROUT_REGISTER_AND_IGNORE, 0, 0x99, 0x5);
    assert_int_equal(st.key, 5);
    snoop(&st, SCSI_PROUT_RESERVE, 3, 5, 0);
    snoop(&st, SCSI_PROUT_CLEAR, 0, 5, 0);
    assert_int_equal(st.key, 0);
    assert_int_equal(st.type, 0);
    snoop(&st, SCSI_PROUT_REPLACE_LOST_RESERVATION, 7, 0, 0x77);
    assert_int_equal(st.key, 0x77);
    assert_int_equal(st.type, 7);
    /* Unknown or refused actions leave the state alone. */
    assert_int_equal(snoop(&st, SCSI_PROUT_REGISTER_AND_MOVE, 1, 0x77, 9),
                     SCSI_PR_SNOOP_UNCHANGED);
    assert_int_equal(st.key, 0x77);
    /* A "successful" reservation without any registration (a LUN that
     * lies) never yields a reservation held under key 0. */
    ScsiPrState none = { 0 };
    assert_int_equal(snoop(&none, SCSI_PROUT_RESERVE, 3, 0, 0),
                     SCSI_PR_SNOOP_UNCHANGED);
    assert_int_equal(snoop(&none, SCSI_PROUT_REPLACE_LOST_RESERVATION, 3, 0,
                           0), SCSI_PR_SNOOP_UNCHANGED);
    assert_true(scsi_pr_state_valid(&none));
    assert_int_equal(none.type, 0);
}

static void test_snoop_preempt_read_back(void **state)
{
    ScsiPrState st = { .key = 0x10, .type = 0 };
    ScsiPrReservation mine = { .held = true, .key = 0x10, .type = 5 };
    ScsiPrReservation other = { .held = true, .key = 0x20, .type = 5 };
    ScsiPrReservation all_reg = { .held = true, .key = 0, .type = 8 };
    ScsiPrReservation none = { .held = false };
    assert_int_equal(snoop(&st, SCSI_PROUT_PREEMPT, 5, 0x10, 0x20),
                     SCSI_PR_SNOOP_READ_BACK);
    assert_int_equal(snoop(&st, SCSI_PROUT_PREEMPT_AND_ABORT, 5, 0x10, 0x20),
                     SCSI_PR_SNOOP_READ_BACK);
    assert_true(scsi_pr_apply_reservation(&st, &mine));
    assert_int_equal(st.type, 5);
    assert_true(scsi_pr_apply_reservation(&st, &other));
    assert_int_equal(st.type, 0);
    assert_true(scsi_pr_apply_reservation(&st, &all_reg));
    assert_int_equal(st.type, 8);
    assert_true(scsi_pr_apply_reservation(&st, &none));
    assert_int_equal(st.type, 0);
    assert_false(scsi_pr_apply_reservation(&st, &none));
    /* Not registered: never a holder, whatever the LUN reports. */
    ScsiPrState unreg = { 0 };
    assert_false(scsi_pr_apply_reservation(&unreg, &all_reg));
    assert_int_equal(unreg.type, 0);
}

static void test_state_valid_and_names(void **state)
{
    uint8_t t;
    assert_true(scsi_pr_state_valid(&(ScsiPrState){ 0, 0 }));
    assert_true(scsi_pr_state_valid(&(ScsiPrState){ 1, 8 }));
    assert_false(scsi_pr_state_valid(&(ScsiPrState){ 0, 1 }));
    assert_false(scsi_pr_state_valid(&(ScsiPrState){ 1, 2 }));
    assert_false(scsi_pr_state_valid(&(ScsiPrState){ 1, 15 }));
    for (size_t i = 0; i < 6; i++) {
        uint8_t type = scsi_pr_all_types[i];
        assert_true(scsi_pr_type_parse(scsi_pr_type_short(type), &t));
        assert_int_equal(t, type);
    }
    assert_false(scsi_pr_type_parse("wx", &t));
    assert_string_equal(scsi_pr_type_name(3), "EXCLUSIVE ACCESS");
    assert_string_equal(scsi_pr_out_sa_name(7), "REGISTER AND MOVE");
    assert_string_equal(scsi_pr_out_sa_name(200), "?");
}

/* Errors name the status, and for CHECK CONDITION the sense key, ASC/ASCQ
 * and the sense bytes (seed 001 v3). */
static void test_result_describe(void **state)
{
    ScsiPrResult res = { .status = SAM_STAT_CHECK_CONDITION };
    char buf[256];
    res.sense_len = (uint32_t)scsi_sense_build_fixed(
        res.sense, sizeof(res.sense), SENSE_INVALID_FIELD_IN_CDB);
    scsi_pr_result_describe(&res, buf, sizeof(buf));
    assert_string_equal(buf, "status CHECK CONDITION (02h), sense key 5h "
                        "ASC 24h ASCQ 00h, sense bytes 70 00 05 00 00 00 00 "
                        "0a 00 00 00 00 24 00 00 00 00 00");
    res = (ScsiPrResult){ .status = SAM_STAT_RESERVATION_CONFLICT };
    scsi_pr_result_describe(&res, buf, sizeof(buf));
    assert_string_equal(buf, "status RESERVATION CONFLICT (18h)");
    /* A small buffer is cut, never overrun. */
    scsi_pr_result_describe(&res, buf, 8);
    assert_string_equal(buf, "status ");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_out_parse_table),
        cmocka_unit_test(test_out_parse_null_param),
        cmocka_unit_test(test_read_keys_decode),
        cmocka_unit_test(test_read_reservation_decode),
        cmocka_unit_test(test_caps_mask),
        cmocka_unit_test(test_full_status_decode),
        cmocka_unit_test(test_conflict_table),
        cmocka_unit_test(test_snoop_sequence),
        cmocka_unit_test(test_snoop_preempt_read_back),
        cmocka_unit_test(test_state_valid_and_names),
        cmocka_unit_test(test_result_describe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
