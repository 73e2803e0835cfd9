/*
 * NVMe controller migration: quiesce, save on one controller, load into a
 * fresh one (same guest memory, same images), resume and carry on; the
 * CQ-full backlog; queued and outstanding async events; the allowlist; and
 * post_load refusing state that does not fit this controller.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "guest.h"
#include "nvme/nvme-int.h"      /* to inspect and corrupt saved state */

#define IMG_SIZE (8u << 20)
#define MEM_SIZE (32u << 20)
#define PROPS "num-queues=4,mqes=256"

static int setup(void **state)
{
    TestGuest *tg = tg_new(2, IMG_SIZE, MEM_SIZE);
    if (!tg || !tg_make_ctrl(tg, PROPS) || !tg_enable(tg, 32) ||
        !tg_create_io_queue(tg, 1, 64) || !tg_create_io_queue(tg, 2, 64)) {
        tg_free(tg);
        return -1;
    }
    *state = tg;
    return 0;
}

static int teardown(void **state)
{
    tg_free(*state);
    return 0;
}

static bool save_state(NvmeCtrl *ctrl, ByteBuf *out, Error **errp)
{
    VMStateSection sec = { "nvme0", 0, &nvme_ctrl_vmsd, ctrl };
    bytebuf_init(out);
    return vmstate_save_stream(&sec, 1, true, out, errp);
}

/* Quiesce + save tg->ctrl, load into a new controller created with props
 * and resume it there. On failure the source stays in place and the
 * reason is in *code / *errp. */
static bool migrate(TestGuest *tg, const char *props, VMStateErr *code,
                    Error **errp)
{
    ByteBuf b;
    NvmeCtrl *src = tg->ctrl;
    if (!nvme_ctrl_quiesce(src, errp) || !save_state(src, &b, errp)) {
        return false;
    }
    tg->ctrl = NULL;
    if (!tg_make_ctrl(tg, props)) {
        tg->ctrl = src;
        bytebuf_free(&b);
        return false;
    }
    NvmeCtrl *dst = tg->ctrl;
    VMStateSection sec = { "nvme0", 0, &nvme_ctrl_vmsd, dst };
    bool ok = vmstate_load_stream(&sec, 1, b.data, b.len, code, errp);
    bytebuf_free(&b);
    if (!ok) {
        /* Refused: the fresh controller is untouched. */
        assert_int_equal(nvme_mmio_read(dst, NVME_REG_CSTS, 4), 0);
        nvme_ctrl_free(dst);
        tg->ctrl = src;
        return false;
    }
    nvme_ctrl_free(src);
    return nvme_ctrl_resume(dst, errp);
}

static void write_cmd(TestGuest *tg, NvmeCmd *c, uint64_t buf, unsigned i)
{
    tg_fill(tg_ptr(tg, buf), 4096, 100 + i);
    tg_rw_cmd(c, NVME_CMD_WRITE, 1 + i % 2, (uint64_t)i * 8, 8);
    tg_build_prps(tg, c, buf, 4096);
}

static uint64_t smart_u64(TestGuest *tg, unsigned off)
{
    uint64_t log = tg_alloc(tg, 4096), v;
    NvmeCmd g = { .opcode = NVME_ADM_GET_LOG_PAGE, .nsid = 0xffffffff,
                  .cdw10 = NVME_LOG_SMART | 127u << 16 };
    g.dptr[0] = log;
    assert_int_equal(tg_cmd(tg, 0, &g, NULL), 0);
    memcpy(&v, (uint8_t *)tg_ptr(tg, log) + off, 8);
    return v;
}

static void test_roundtrip_mid_workload(void **state)
{
    TestGuest *tg = *state;
    enum { N1 = 40, N2 = 10 };
    uint64_t bufs = tg_alloc(tg, (N1 + N2) * 4096);
    uint8_t seen[2][65536 / 8] = { { 0 } };
    unsigned done = 0;
    Error *err = NULL;

    uint64_t ts = 1700000000000ull, tsbuf = tg_alloc(tg, 4096);
    memcpy(tg_ptr(tg, tsbuf), &ts, 8);
    NvmeCmd t = { .opcode = NVME_ADM_SET_FEATURES,
                  .cdw10 = NVME_FEAT_TIMESTAMP };
    t.dptr[0] = tsbuf;
    assert_int_equal(tg_cmd(tg, 0, &t, NULL), 0);

    for (unsigned i = 0; i < N1; i++) {
        NvmeCmd c;
        write_cmd(tg, &c, bufs + i * 4096ull, i);
        tg_queue_cmd(tg, 1 + i % 2, &c);
    }
    tg_ring(tg, 1);
    tg_ring(tg, 2);
    nvme_ctrl_poll(tg->ctrl);           /* fetched, at the backend */
    NvmeCtrlStats st;
    nvme_ctrl_get_stats(tg->ctrl, &st);
    assert_true(st.in_flight > 0);      /* really mid-workload */

    if (!migrate(tg, PROPS, NULL, &err)) {
        fail_msg("migrate: %s", error_get_pretty(err));
    }
    /* Every command of the first batch completes exactly once. */
    uint64_t end = clock_ms() + 5000;
    while (done < N1 && clock_ms() < end) {
        NvmeCqe cqe;
        for (uint16_t q = 1; q <= 2; q++) {
            while (tg_peek(tg, q, &cqe, true)) {
                assert_int_equal(cqe.status >> 1, 0);
                assert_false(seen[q - 1][cqe.cid / 8] & (1 << cqe.cid % 8));
                seen[q - 1][cqe.cid / 8] |= (uint8_t)(1 << cqe.cid % 8);
                done++;
            }
        }
        loop_run_once(tg->loop, 1);
    }
    assert_int_equal(done, N1);
    tg_run(tg, 10);
    NvmeCqe extra;
    assert_false(tg_peek(tg, 1, &extra, false));
    assert_false(tg_peek(tg, 2, &extra, false));

    /* The workload continues on the destination. */
    for (unsigned i = N1; i < N1 + N2; i++) {
        NvmeCmd c;
        write_cmd(tg, &c, bufs + i * 4096ull, i);
        assert_int_equal(tg_cmd(tg, 1 + i % 2, &c, NULL), 0);
    }
    uint64_t rbuf = tg_alloc(tg, 4096);
    for (unsigned i = 0; i < N1 + N2; i++) {
        NvmeCmd c;
        tg_rw_cmd(&c, NVME_CMD_READ, 1 + i % 2, (uint64_t)i * 8, 8);
        tg_build_prps(tg, &c, rbuf, 4096);
        assert_int_equal(tg_cmd(tg, 1, &c, NULL), 0);
        assert_true(tg_check(tg_ptr(tg, rbuf), 4096, 100 + i));
    }
    /* SMART counters and the timestamp carried over. */
    assert_int_equal(smart_u64(tg, 80), N1 + N2);       /* host writes */
    assert_int_equal(smart_u64(tg, 64), N1 + N2);       /* host reads */
    memset(tg_ptr(tg, tsbuf), 0, 8);
    t.opcode = NVME_ADM_GET_FEATURES;
    assert_int_equal(tg_cmd(tg, 0, &t, NULL), 0);
    uint64_t got = 0;
    memcpy(&got, tg_ptr(tg, tsbuf), 6);
    assert_true(got >= ts && got < ts + 10000);
}

static void test_cq_full_backlog(void **state)
{
    TestGuest *tg = *state;
    Error *err = NULL;
    /* CQ 3 of 4 entries (3 usable) behind an SQ of 16. */
    TgQueue *q = &tg->q[3];
    *q = (TgQueue){ .size = 16, .cq_size = 4, .phase = true };
    q->cq = tg_alloc(tg, 4 * 16);
    q->sq = tg_alloc(tg, 16 * 64);
    NvmeCmd c = { .opcode = NVME_ADM_CREATE_CQ,
                  .cdw10 = 3u << 16 | 3, .cdw11 = 3u << 16 | 3 };
    c.dptr[0] = q->cq;
    assert_int_equal(tg_cmd(tg, 0, &c, NULL), 0);
    NvmeCmd s = { .opcode = NVME_ADM_CREATE_SQ,
                  .cdw10 = 15u << 16 | 3, .cdw11 = 3u << 16 | 1 };
    s.dptr[0] = q->sq;
    assert_int_equal(tg_cmd(tg, 0, &s, NULL), 0);

    uint16_t cids[8];
    for (int i = 0; i < 8; i++) {
        NvmeCmd f = { .opcode = NVME_CMD_FLUSH, .nsid = 1 };
        cids[i] = tg_queue_cmd(tg, 3, &f);
    }
    tg_ring(tg, 3);
    NvmeCtrlStats st;
    uint64_t end = clock_ms() + 5000;
    do {
        loop_run_once(tg->loop, 1);
        nvme_ctrl_get_stats(tg->ctrl, &st);
    } while ((st.in_flight || st.completions_pending < 5) &&
             clock_ms() < end);
    assert_int_equal(st.completions_pending, 5);

    assert_true(nvme_ctrl_quiesce(tg->ctrl, NULL));
    uint16_t order[5];
    for (int i = 0; i < 5; i++) {
        order[i] = tg->ctrl->pending[i].cid;
    }
    if (!migrate(tg, PROPS, NULL, &err)) {
        fail_msg("migrate: %s", error_get_pretty(err));
    }
    /* The three in the ring, then the backlog in its order as the guest
     * frees slots. */
    bool seen[8] = { false };
    for (int i = 0; i < 8; i++) {
        NvmeCqe cqe;
        assert_true(tg_poll(tg, 3, &cqe, 2000));
        assert_int_equal(cqe.status >> 1, 0);
        if (i >= 3) {
            assert_int_equal(cqe.cid, order[i - 3]);
        }
        int k = 0;
        while (k < 8 && cids[k] != cqe.cid) {
            k++;
        }
        assert_true(k < 8);
        assert_false(seen[k]);
        seen[k] = true;
    }
    nvme_ctrl_get_stats(tg->ctrl, &st);
    assert_int_equal(st.completions_pending, 0);
}

static void test_async_events_migrate(void **state)
{
    TestGuest *tg = *state;
    Error *err = NULL;
    NvmeCqe cqe;
    NvmeCmd aec = { .opcode = NVME_ADM_SET_FEATURES,
                    .cdw10 = NVME_FEAT_ASYNC_EVENT,
                    .cdw11 = NVME_AEC_NS_ATTR };
    assert_int_equal(tg_cmd(tg, 0, &aec, NULL), 0);

    /* An event with no AER outstanding travels in the state. */
    assert_true(nvme_ctrl_ns_changed(tg->ctrl, 2, NULL));
    assert_true(migrate(tg, PROPS, NULL, &err));
    NvmeCmd aer = { .opcode = NVME_ADM_ASYNC_EVENT_REQ };
    uint16_t cid = tg_submit(tg, 0, &aer);
    assert_true(tg_poll(tg, 0, &cqe, 2000));
    assert_int_equal(cqe.cid, cid);
    assert_int_equal(cqe.dw0 & 7, NVME_AER_TYPE_NOTICE);

    /* An outstanding AER does too, and the destination completes it. */
    uint64_t log = tg_alloc(tg, 4096);
    NvmeCmd g = { .opcode = NVME_ADM_GET_LOG_PAGE,
                  .cdw10 = NVME_LOG_CHANGED_NS | 1023u << 16 };
    g.dptr[0] = log;
    assert_int_equal(tg_cmd(tg, 0, &g, NULL), 0);   /* unmask notices */
    cid = tg_submit(tg, 0, &aer);
    tg_run(tg, 5);
    assert_true(migrate(tg, PROPS, NULL, &err));
    assert_true(nvme_ctrl_ns_changed(tg->ctrl, 1, NULL));
    assert_true(tg_poll(tg, 0, &cqe, 2000));
    assert_int_equal(cqe.cid, cid);
    assert_int_equal(cqe.dw0, NVME_AER_TYPE_NOTICE |
                     NVME_LOG_CHANGED_NS << 16);
}

static void test_allowlist_refusal(void **state)
{
    TestGuest *tg = tg_new(1, IMG_SIZE, MEM_SIZE);
    Error *err = NULL;
    assert_non_null(tg);
    assert_true(tg_make_ctrl(tg, "wrr=on"));
    assert_true(tg_enable(tg, 16));
    /* WRR offered but round robin in use: fine. */
    assert_true(nvme_ctrl_migration_check(tg->ctrl, NULL));
    assert_true(tg_disable(tg));
    tg->cc_extra = NVME_AMS_WRR << 11;
    assert_true(tg_enable(tg, 16));
    assert_false(nvme_ctrl_migration_check(tg->ctrl, &err));
    assert_non_null(strstr(error_get_pretty(err),
                           "weighted round robin arbitration"));
    error_free_or_null(&err);
    /* The state cannot be saved either. */
    ByteBuf b;
    assert_true(nvme_ctrl_quiesce(tg->ctrl, NULL));
    assert_false(save_state(tg->ctrl, &b, &err));
    assert_non_null(strstr(error_get_pretty(err), "weighted round robin"));
    error_free(err);
    bytebuf_free(&b);
    tg_free(tg);
}

static void expect_refused(TestGuest *tg, const char *props,
                           const char *needle)
{
    Error *err = NULL;
    VMStateErr code = VMSTATE_OK;
    assert_false(migrate(tg, props, &code, &err));
    assert_int_equal(code, VMSTATE_E_POST_LOAD);
    if (!strstr(error_get_pretty(err), needle)) {
        fail_msg("refusal '%s' does not mention '%s'",
                 error_get_pretty(err), needle);
    }
    error_free(err);
}

static void test_post_load_refusals(void **state)
{
    TestGuest *tg = *state;
    /* Another configuration on the destination. */
    expect_refused(tg, "num-queues=4,mqes=128", "CAP");

    NvmeCtrl *c = tg->ctrl;
    uint16_t head = c->sq[1]->head;
    c->sq[1]->head = 200;                           /* beyond size 64 */
    expect_refused(tg, PROPS, "SQ 1");
    c->sq[1]->head = head;

    uint16_t vec = c->cq[2]->vector;
    c->cq[2]->vector = 40;                          /* table has 5 */
    expect_refused(tg, PROPS, "vector 40");
    c->cq[2]->vector = vec;

    uint64_t base = c->cq[1]->base;
    c->cq[1]->base = 0x2000;                        /* not guest memory */
    expect_refused(tg, PROPS, "CQ 1 base");
    c->cq[1]->base = base;

    uint16_t sz = c->sq[2]->size;
    c->sq[2]->size = 1024;                          /* above MQES */
    expect_refused(tg, PROPS, "SQ 2");
    c->sq[2]->size = sz;

    uint32_t nsze = (uint32_t)c->ns[1].nsze;
    c->ns[1].nsze = nsze + 1;                       /* other disk size */
    expect_refused(tg, PROPS, "namespace 2");
    c->ns[1].nsze = nsze;

    /* Untouched state still migrates and works. */
    Error *err = NULL;
    if (!migrate(tg, PROPS, NULL, &err)) {
        fail_msg("migrate: %s", error_get_pretty(err));
    }
    NvmeCmd f = { .opcode = NVME_CMD_FLUSH, .nsid = 1 };
    assert_int_equal(tg_cmd(tg, 1, &f, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip_mid_workload, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cq_full_backlog, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_async_events_migrate, setup,
                                        teardown),
        cmocka_unit_test(test_allowlist_refusal),
        cmocka_unit_test_setup_teardown(test_post_load_refusals, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
