/*
 * NVMe controller: registers, enable/reset/shutdown, MSI-X, and every
 * admin command, driven by the in-process guest driver.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "guest.h"

#define IMG_SIZE (4u << 20)
#define MEM_SIZE (16u << 20)

static int setup(void **state)
{
    TestGuest *tg = tg_new(2, IMG_SIZE, MEM_SIZE);
    if (!tg || !tg_make_ctrl(tg, "num-queues=4,mqes=64")) {
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

static int setup_enabled(void **state)
{
    if (setup(state)) {
        return -1;
    }
    return tg_enable(*state, 32) ? 0 : -1;
}

static NvmeCmd admin(uint8_t opc, uint32_t nsid, uint32_t cdw10)
{
    NvmeCmd c = { .opcode = opc, .nsid = nsid, .cdw10 = cdw10 };
    return c;
}

static uint16_t identify(TestGuest *tg, uint8_t cns, uint32_t nsid,
                         uint64_t buf)
{
    NvmeCmd c = admin(NVME_ADM_IDENTIFY, nsid, cns);
    c.dptr[0] = buf;
    return tg_cmd(tg, 0, &c, NULL);
}

static void test_registers_and_enable(void **state)
{
    TestGuest *tg = *state;
    uint64_t cap = nvme_mmio_read(tg->ctrl, NVME_REG_CAP, 8);
    assert_int_equal(cap & 0xffff, 63);             /* MQES 0-based */
    assert_true(cap & (1ull << 16));                /* CQR */
    assert_int_equal((cap >> 32) & 0xf, 0);         /* DSTRD */
    assert_true(cap & (1ull << 37));                /* NVM command set */
    assert_int_equal(tg_r32(tg, NVME_REG_VS), 0x10400);
    assert_int_equal(tg_r32(tg, NVME_REG_CSTS), 0);

    /* ASQ bits 11:0 are reserved (read as zero). */
    tg_w64(tg, NVME_REG_ASQ, TG_BASE + 0x10);
    assert_int_equal(nvme_mmio_read(tg->ctrl, NVME_REG_ASQ, 8), TG_BASE);
    /* An admin SQ outside guest memory cannot be enabled: CFS, no RDY. */
    tg_w32(tg, NVME_REG_AQA, 0x000f000f);
    tg_w64(tg, NVME_REG_ASQ, 0x1000);
    tg_w64(tg, NVME_REG_ACQ, TG_BASE + 0x1000);
    tg_w32(tg, NVME_REG_CC, 1 | (6u << 16) | (4u << 20));
    assert_true(tg_r32(tg, NVME_REG_CSTS) & NVME_CSTS_CFS);
    assert_true(tg_disable(tg));
    assert_int_equal(tg_r32(tg, NVME_REG_CSTS), 0);

    assert_true(tg_enable(tg, 32));
    /* Admin queue registers are read only while enabled. */
    tg_w32(tg, NVME_REG_AQA, 0);
    assert_int_equal(tg_r32(tg, NVME_REG_AQA), 0x001f001f);
    /* Doorbells read as zero; bad sizes are ignored. */
    assert_int_equal(tg_r32(tg, NVME_REG_DBS), 0);
    assert_int_equal(nvme_mmio_read(tg->ctrl, NVME_REG_CC, 2), 0);
    assert_int_equal(nvme_mmio_read(tg->ctrl, NVME_BAR0_SIZE, 4), 0);
    /* INTMS/INTMC set and clear the mask. */
    tg_w32(tg, NVME_REG_INTMS, 0x5);
    tg_w32(tg, NVME_REG_INTMC, 0x1);
    assert_int_equal(tg_r32(tg, NVME_REG_INTMS), 0x4);
}

static void test_identify(void **state)
{
    TestGuest *tg = *state;
    uint64_t buf = tg_alloc(tg, 4096);
    uint8_t *id = tg_ptr(tg, buf);

    assert_int_equal(identify(tg, NVME_ID_CNS_CTRL, 0, buf), 0);
    assert_memory_equal(id + 4, "TESTSERIAL          ", 20);
    assert_int_equal(id[512], 0x66);
    assert_int_equal(id[513], 0x44);
    uint32_t nn;
    memcpy(&nn, id + 516, 4);
    assert_int_equal(nn, 2);
    assert_int_equal(id[259], 3);                   /* AERL */

    memset(id, 0xff, 4096);
    assert_int_equal(identify(tg, NVME_ID_CNS_NS, 2, buf), 0);
    uint64_t nsze;
    memcpy(&nsze, id, 8);
    assert_int_equal(nsze, IMG_SIZE / 512);
    assert_int_equal(id[128 + 2], 9);               /* LBAF0.LBADS */

    assert_int_equal(identify(tg, NVME_ID_CNS_NS_ACTIVE_LIST, 0, buf), 0);
    uint32_t list[3];
    memcpy(list, id, sizeof(list));
    assert_int_equal(list[0], 1);
    assert_int_equal(list[1], 2);
    assert_int_equal(list[2], 0);
    assert_int_equal(identify(tg, NVME_ID_CNS_NS_ACTIVE_LIST, 1, buf), 0);
    memcpy(list, id, sizeof(list));
    assert_int_equal(list[0], 2);
    assert_int_equal(list[1], 0);

    assert_int_equal(identify(tg, NVME_ID_CNS_NS_DESCR_LIST, 1, buf), 0);
    assert_int_equal(id[0], NVME_NIDT_NGUID);
    assert_int_equal(id[1], 16);
    assert_int_equal(id[20], NVME_NIDT_UUID);
    uint8_t nguid1[16];
    memcpy(nguid1, id + 4, 16);
    assert_int_equal(identify(tg, NVME_ID_CNS_NS_DESCR_LIST, 2, buf), 0);
    assert_memory_not_equal(nguid1, id + 4, 16);

    assert_int_equal(TG_STATUS(identify(tg, NVME_ID_CNS_NS, 3, buf)),
                     NVME_INVALID_NSID);
    assert_int_equal(TG_STATUS(identify(tg, NVME_ID_CNS_NS, 0, buf)),
                     NVME_INVALID_NSID);
    assert_int_equal(TG_STATUS(identify(tg, NVME_ID_CNS_NS_ACTIVE_LIST,
                                        0xfffffffe, buf)), NVME_INVALID_NSID);
    assert_int_equal(TG_STATUS(identify(tg, 0x10, 0, buf)),
                     NVME_INVALID_FIELD);
}

typedef struct QueueCase {
    const char *what;
    uint8_t opc;
    uint32_t cdw10, cdw11;
    uint64_t prp1_off;              /* added to a valid page */
    bool prp1_outside;
    uint16_t status;
} QueueCase;

static void test_queue_management(void **state)
{
    TestGuest *tg = *state;
    uint64_t page = tg_alloc(tg, 64 * 64);
    const QueueCase cases[] = {
        { "CQ id 0", NVME_ADM_CREATE_CQ, 7u << 16, 3, 0, false,
          NVME_INVALID_QID },
        { "CQ id above allocation", NVME_ADM_CREATE_CQ, 7u << 16 | 5, 3, 0,
          false, NVME_INVALID_QID },
        { "CQ size above MQES", NVME_ADM_CREATE_CQ, 64u << 16 | 1, 3, 0,
          false, NVME_INVALID_QSIZE },
        { "CQ of one entry", NVME_ADM_CREATE_CQ, 0u << 16 | 1, 3, 0, false,
          NVME_INVALID_QSIZE },
        { "CQ not contiguous", NVME_ADM_CREATE_CQ, 7u << 16 | 1, 2, 0, false,
          NVME_INVALID_FIELD },
        { "CQ vector beyond table", NVME_ADM_CREATE_CQ, 7u << 16 | 1,
          9u << 16 | 3, 0, false, NVME_INVALID_IRQ_VECTOR },
        { "CQ base with offset", NVME_ADM_CREATE_CQ, 7u << 16 | 1, 3, 0x100,
          false, NVME_PRP_OFFSET_INVALID },
        { "CQ outside memory", NVME_ADM_CREATE_CQ, 7u << 16 | 1, 3, 0, true,
          NVME_DATA_TRANSFER_ERROR },
        { "SQ on missing CQ", NVME_ADM_CREATE_SQ, 7u << 16 | 1, 2u << 16 | 1,
          0, false, NVME_CQ_INVALID },
        { "SQ on CQ 0", NVME_ADM_CREATE_SQ, 7u << 16 | 1, 0u << 16 | 1, 0,
          false, NVME_CQ_INVALID },
        { "delete SQ 0", NVME_ADM_DELETE_SQ, 0, 0, 0, false,
          NVME_INVALID_QID },
        { "delete missing SQ", NVME_ADM_DELETE_SQ, 3, 0, 0, false,
          NVME_INVALID_QID },
        { "delete CQ 0", NVME_ADM_DELETE_CQ, 0, 0, 0, false,
          NVME_INVALID_QID },
        { "delete CQ beyond range", NVME_ADM_DELETE_CQ, 0xffff, 0, 0, false,
          NVME_INVALID_QID },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        NvmeCmd c = admin(cases[i].opc, 0, cases[i].cdw10);
        c.cdw11 = cases[i].cdw11;
        c.dptr[0] = cases[i].prp1_outside ? 0x1000 : page + cases[i].prp1_off;
        uint16_t st = tg_cmd(tg, 0, &c, NULL);
        if (TG_STATUS(st) != cases[i].status) {
            fail_msg("%s: status 0x%x, expected 0x%x", cases[i].what, st,
                     cases[i].status);
        }
        assert_true(st & NVME_DNR);
    }

    assert_true(tg_create_io_queue(tg, 1, 16));
    NvmeCmd dup = admin(NVME_ADM_CREATE_CQ, 0, 7u << 16 | 1);
    dup.cdw11 = 3;
    dup.dptr[0] = page;
    assert_int_equal(TG_STATUS(tg_cmd(tg, 0, &dup, NULL)), NVME_INVALID_QID);
    NvmeCmd del_cq = admin(NVME_ADM_DELETE_CQ, 0, 1);
    assert_int_equal(TG_STATUS(tg_cmd(tg, 0, &del_cq, NULL)),
                     NVME_INVALID_QUEUE_DELETION);
    NvmeCmd del_sq = admin(NVME_ADM_DELETE_SQ, 0, 1);
    assert_int_equal(tg_cmd(tg, 0, &del_sq, NULL), 0);
    assert_int_equal(TG_STATUS(tg_cmd(tg, 0, &del_sq, NULL)),
                     NVME_INVALID_QID);
    assert_int_equal(tg_cmd(tg, 0, &del_cq, NULL), 0);
    /* The queue id is free again. */
    assert_true(tg_create_io_queue(tg, 1, 16));
}

static uint16_t set_feat(TestGuest *tg, uint32_t cdw10, uint32_t cdw11,
                         uint32_t *dw0)
{
    NvmeCmd c = admin(NVME_ADM_SET_FEATURES, 0, cdw10);
    c.cdw11 = cdw11;
    return tg_cmd(tg, 0, &c, dw0);
}

static uint16_t get_feat(TestGuest *tg, uint32_t cdw10, uint32_t cdw11,
                         uint32_t *dw0)
{
    NvmeCmd c = admin(NVME_ADM_GET_FEATURES, 0, cdw10);
    c.cdw11 = cdw11;
    return tg_cmd(tg, 0, &c, dw0);
}

static void test_features(void **state)
{
    TestGuest *tg = *state;
    uint32_t v = 0;
    const struct { uint8_t fid; uint32_t val; } rt[] = {
        { NVME_FEAT_ARBITRATION, 0x03020103 },
        { NVME_FEAT_POWER_MGMT, 0 },
        { NVME_FEAT_ERROR_RECOVERY, 0x20 },
        { NVME_FEAT_VWC, 0 },
        { NVME_FEAT_IRQ_COALESCE, 0x0a05 },
        { NVME_FEAT_WRITE_ATOMIC, 1 },
        { NVME_FEAT_ASYNC_EVENT, 0x102 },
        { NVME_FEAT_KEEP_ALIVE, 1000 },
    };
    for (size_t i = 0; i < sizeof(rt) / sizeof(rt[0]); i++) {
        assert_int_equal(set_feat(tg, rt[i].fid, rt[i].val, NULL), 0);
        assert_int_equal(get_feat(tg, rt[i].fid, 0, &v), 0);
        assert_int_equal(v, rt[i].val);
    }
    /* Default selection ignores what was set. */
    assert_int_equal(get_feat(tg, 1u << 8 | NVME_FEAT_VWC, 0, &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(get_feat(tg, 3u << 8 | NVME_FEAT_VWC, 0, &v), 0);
    assert_int_equal(v, 1u << 2);                   /* changeable */
    /* Keep alive rounds up to the 100 ms granularity. */
    assert_int_equal(set_feat(tg, NVME_FEAT_KEEP_ALIVE, 150, NULL), 0);
    assert_int_equal(get_feat(tg, NVME_FEAT_KEEP_ALIVE, 0, &v), 0);
    assert_int_equal(v, 200);
    assert_int_equal(set_feat(tg, NVME_FEAT_KEEP_ALIVE, 0, NULL), 0);

    /* Temperature threshold: over and under, by THSEL. */
    assert_int_equal(set_feat(tg, NVME_FEAT_TEMP_THRESH, 350, NULL), 0);
    assert_int_equal(set_feat(tg, NVME_FEAT_TEMP_THRESH, 1u << 20 | 270,
                              NULL), 0);
    assert_int_equal(get_feat(tg, NVME_FEAT_TEMP_THRESH, 0, &v), 0);
    assert_int_equal(v, 350);
    assert_int_equal(get_feat(tg, NVME_FEAT_TEMP_THRESH, 1u << 20, &v), 0);
    assert_int_equal(v, 270);

    /* Interrupt vector configuration, per vector. */
    assert_int_equal(set_feat(tg, NVME_FEAT_IRQ_CONFIG, 1u << 16 | 2, NULL),
                     0);
    assert_int_equal(get_feat(tg, NVME_FEAT_IRQ_CONFIG, 2, &v), 0);
    assert_int_equal(v, 1u << 16 | 2);
    assert_int_equal(get_feat(tg, NVME_FEAT_IRQ_CONFIG, 1, &v), 0);
    assert_int_equal(v, 1);

    /* Number of queues: capped to what exists, 0-based. */
    assert_int_equal(set_feat(tg, NVME_FEAT_NUM_QUEUES, 0x00100001, &v), 0);
    assert_int_equal(v, 0x00030001);
    assert_true(tg_create_io_queue(tg, 1, 8));
    assert_int_equal(TG_STATUS(set_feat(tg, NVME_FEAT_NUM_QUEUES, 0, NULL)),
                     NVME_CMD_SEQ_ERROR);
    /* Only two SQs were allocated. */
    NvmeCmd s = admin(NVME_ADM_CREATE_SQ, 0, 7u << 16 | 3);
    s.cdw11 = 1u << 16 | 1;
    s.dptr[0] = tg_alloc(tg, 4096);
    assert_int_equal(TG_STATUS(tg_cmd(tg, 0, &s, NULL)), NVME_INVALID_QID);

    /* Timestamp: set by the host, keeps counting. */
    uint64_t buf = tg_alloc(tg, 4096);
    uint64_t ts = 1700000000000ull;
    memcpy(tg_ptr(tg, buf), &ts, 8);
    NvmeCmd t = admin(NVME_ADM_SET_FEATURES, 0, NVME_FEAT_TIMESTAMP);
    t.dptr[0] = buf;
    assert_int_equal(tg_cmd(tg, 0, &t, NULL), 0);
    tg_run(tg, 20);
    memset(tg_ptr(tg, buf), 0, 8);
    t.opcode = NVME_ADM_GET_FEATURES;
    assert_int_equal(tg_cmd(tg, 0, &t, NULL), 0);
    uint8_t out[8];
    memcpy(out, tg_ptr(tg, buf), 8);
    uint64_t got = 0;
    memcpy(&got, out, 6);
    assert_true(got >= ts + 20 && got < ts + 5000);
    assert_int_equal((out[6] >> 1) & 7, 1);         /* origin: host */

    const struct { uint32_t cdw10, cdw11; uint16_t st; } bad[] = {
        { NVME_FEAT_POWER_MGMT, 1, NVME_INVALID_FIELD },
        { NVME_FEAT_TEMP_THRESH, 2u << 20, NVME_INVALID_FIELD },
        { NVME_FEAT_TEMP_THRESH, 3u << 16, NVME_INVALID_FIELD },
        { NVME_FEAT_ERROR_RECOVERY, 1u << 16, NVME_INVALID_FIELD },
        { NVME_FEAT_IRQ_CONFIG, 40, NVME_INVALID_FIELD },
        { 0x7f, 0, NVME_INVALID_FIELD },
        { 1u << 31 | NVME_FEAT_VWC, 1, NVME_FEAT_NOT_SAVEABLE },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint16_t st = set_feat(tg, bad[i].cdw10, bad[i].cdw11, NULL);
        if (TG_STATUS(st) != bad[i].st) {
            fail_msg("set feature %zu: 0x%x, expected 0x%x", i, st,
                     bad[i].st);
        }
    }
    assert_int_equal(TG_STATUS(get_feat(tg, 4u << 8 | NVME_FEAT_VWC, 0,
                                        NULL)), NVME_INVALID_FIELD);
}

static uint16_t get_log(TestGuest *tg, uint8_t lid, bool rae, uint32_t numd,
                        uint64_t off, uint64_t buf)
{
    NvmeCmd c = admin(NVME_ADM_GET_LOG_PAGE, 0xffffffff,
                      lid | (rae ? 1u << 15 : 0) | (numd - 1) << 16);
    c.cdw12 = (uint32_t)off;
    c.cdw13 = (uint32_t)(off >> 32);
    c.dptr[0] = buf;
    return tg_cmd(tg, 0, &c, NULL);
}

static void test_log_pages(void **state)
{
    TestGuest *tg = *state;
    uint64_t buf = tg_alloc(tg, 8192);
    uint8_t *p = tg_ptr(tg, buf);

    /* A failing command lands in the error log, newest first. */
    NvmeCmd bad = admin(0xc1, 0, 0);
    uint16_t cid = tg_submit(tg, 0, &bad);
    NvmeCqe cqe;
    assert_true(tg_poll(tg, 0, &cqe, 2000));
    assert_int_equal(get_log(tg, NVME_LOG_ERROR, false, 16, 0, buf), 0);
    NvmeErrorLogEntry e;
    memcpy(&e, p, sizeof(e));
    assert_int_equal(e.error_count, 1);
    assert_int_equal(e.cid, cid);
    assert_int_equal(e.sqid, 0);
    assert_int_equal(TG_STATUS(e.status >> 1), NVME_INVALID_OPCODE);

    assert_int_equal(get_log(tg, NVME_LOG_SMART, false, 128, 0, buf), 0);
    assert_int_equal(p[3], 100);                    /* available spare */
    uint64_t errors;
    memcpy(&errors, p + 176, 8);
    assert_int_equal(errors, 1);

    /* Offset into the page; past its end: zeroes. */
    memset(p, 0xee, 8192);
    assert_int_equal(get_log(tg, NVME_LOG_FW_SLOT, false, 4, 8, buf), 0);
    assert_memory_equal(p, "0.1     ", 8);
    assert_int_equal(get_log(tg, NVME_LOG_FW_SLOT, false, 8, 496, buf), 0);
    assert_int_equal(p[16], 0);
    assert_int_equal(p[31], 0);

    assert_int_equal(TG_STATUS(get_log(tg, 0x70, false, 4, 0, buf)),
                     NVME_INVALID_LOG_PAGE);
    assert_int_equal(TG_STATUS(get_log(tg, NVME_LOG_SMART, false, 4, 2,
                                       buf)), NVME_INVALID_FIELD);
    assert_int_equal(TG_STATUS(get_log(tg, NVME_LOG_SMART, false, 4, 1024,
                                       buf)), NVME_INVALID_FIELD);
    NvmeCmd ns_smart = admin(NVME_ADM_GET_LOG_PAGE, 1,
                             NVME_LOG_SMART | 127u << 16);
    ns_smart.dptr[0] = buf;
    assert_int_equal(TG_STATUS(tg_cmd(tg, 0, &ns_smart, NULL)),
                     NVME_INVALID_FIELD);

    /* Changed namespace list: filled by an attribute change, cleared by
     * reading it. */
    assert_true(nvme_ctrl_ns_changed(tg->ctrl, 2, NULL));
    assert_false(nvme_ctrl_ns_changed(tg->ctrl, 9, NULL));
    assert_int_equal(get_log(tg, NVME_LOG_CHANGED_NS, true, 1024, 0, buf), 0);
    uint32_t first;
    memcpy(&first, p, 4);
    assert_int_equal(first, 2);
    assert_int_equal(get_log(tg, NVME_LOG_CHANGED_NS, false, 1024, 0, buf),
                     0);
    assert_int_equal(get_log(tg, NVME_LOG_CHANGED_NS, false, 1024, 0, buf),
                     0);
    memcpy(&first, p, 4);
    assert_int_equal(first, 0);
}

static uint16_t submit_aer(TestGuest *tg)
{
    NvmeCmd c = admin(NVME_ADM_ASYNC_EVENT_REQ, 0, 0);
    return tg_submit(tg, 0, &c);
}

static void test_aer(void **state)
{
    TestGuest *tg = *state;
    NvmeCqe cqe;
    uint64_t buf = tg_alloc(tg, 4096);

    assert_int_equal(set_feat(tg, NVME_FEAT_ASYNC_EVENT,
                              NVME_AEC_NS_ATTR | NVME_SMART_WARN_TEMP, NULL),
                     0);
    /* Raised with no AER outstanding: kept until one arrives. */
    assert_true(nvme_ctrl_ns_changed(tg->ctrl, 1, NULL));
    tg_run(tg, 10);
    assert_false(tg_peek(tg, 0, &cqe, false));
    uint16_t cid = submit_aer(tg);
    assert_true(tg_poll(tg, 0, &cqe, 2000));
    assert_int_equal(cqe.cid, cid);
    assert_int_equal(cqe.status >> 1, 0);
    assert_int_equal(cqe.dw0, NVME_AER_TYPE_NOTICE |
                     NVME_AER_INFO_NOTICE_NS_ATTR << 8 |
                     NVME_LOG_CHANGED_NS << 16);

    /* Same type again: masked until the host reads the log page. */
    cid = submit_aer(tg);
    assert_true(nvme_ctrl_ns_changed(tg->ctrl, 2, NULL));
    tg_run(tg, 10);
    assert_false(tg_peek(tg, 0, &cqe, false));
    /* Reading with RAE set keeps it masked. */
    assert_int_equal(get_log(tg, NVME_LOG_CHANGED_NS, true, 1024, 0, buf), 0);
    tg_run(tg, 10);
    assert_false(tg_peek(tg, 0, &cqe, false));
    assert_int_equal(get_log(tg, NVME_LOG_CHANGED_NS, false, 1024, 0, buf),
                     0);
    assert_true(tg_poll(tg, 0, &cqe, 2000));
    assert_int_equal(cqe.cid, cid);
    assert_int_equal(cqe.dw0 & 7, NVME_AER_TYPE_NOTICE);

    /* A SMART event from a temperature threshold below the current
     * temperature. */
    cid = submit_aer(tg);
    NvmeCmd temp = admin(NVME_ADM_SET_FEATURES, 0, NVME_FEAT_TEMP_THRESH);
    temp.cdw11 = 300;
    uint16_t set_cid = tg_submit(tg, 0, &temp);
    bool got_event = false, got_set = false;
    for (int i = 0; i < 2; i++) {   /* the event may complete first */
        assert_true(tg_poll(tg, 0, &cqe, 2000));
        assert_int_equal(cqe.status >> 1, 0);
        if (cqe.cid == cid) {
            assert_int_equal(cqe.dw0, NVME_AER_TYPE_SMART |
                             NVME_AER_INFO_SMART_TEMP << 8 |
                             NVME_LOG_SMART << 16);
            got_event = true;
        } else {
            assert_int_equal(cqe.cid, set_cid);
            got_set = true;
        }
    }
    assert_true(got_event && got_set);
    assert_int_equal(get_log(tg, NVME_LOG_SMART, false, 128, 0, buf), 0);
    assert_int_equal(((uint8_t *)tg_ptr(tg, buf))[0] & NVME_SMART_WARN_TEMP,
                     NVME_SMART_WARN_TEMP);

    /* An invalid doorbell write is reported as an error event. */
    cid = submit_aer(tg);
    tg_run(tg, 5);
    tg_w32(tg, NVME_REG_DBS + 8 * 9, 1);    /* SQ 9 does not exist */
    tg_run(tg, 5);
    assert_true(tg_poll(tg, 0, &cqe, 2000));
    assert_int_equal(cqe.cid, cid);
    assert_int_equal(cqe.dw0, NVME_AER_TYPE_ERROR |
                     NVME_AER_INFO_ERR_INVALID_DB_REG << 8 |
                     NVME_LOG_ERROR << 16);

    /* AERL + 1 outstanding at most; Abort recalls one. */
    uint16_t cids[4];
    for (int i = 0; i < 4; i++) {
        cids[i] = submit_aer(tg);
    }
    NvmeCmd extra = admin(NVME_ADM_ASYNC_EVENT_REQ, 0, 0);
    uint16_t extra_cid = tg_submit(tg, 0, &extra);
    assert_true(tg_poll(tg, 0, &cqe, 2000));
    if (cqe.cid != extra_cid) {
        fail_msg("cqe cid %u (aers %u %u %u %u) status 0x%x dw0 0x%x",
                 cqe.cid, cids[0], cids[1], cids[2], cids[3],
                 cqe.status >> 1, cqe.dw0);
    }
    assert_int_equal(TG_STATUS(cqe.status >> 1), NVME_AER_LIMIT_EXCEEDED);
    NvmeCmd ab = admin(NVME_ADM_ABORT, 0, (uint32_t)cids[2] << 16);
    uint16_t abort_cid = tg_submit(tg, 0, &ab);
    bool saw_aer = false, saw_abort = false;
    for (int i = 0; i < 2; i++) {
        assert_true(tg_poll(tg, 0, &cqe, 2000));
        if (cqe.cid == cids[2]) {
            assert_int_equal(TG_STATUS(cqe.status >> 1),
                             NVME_ABORT_REQUESTED);
            saw_aer = true;
        } else {
            assert_int_equal(cqe.cid, abort_cid);
            assert_int_equal(cqe.dw0 & 1, 0);       /* aborted */
            saw_abort = true;
        }
    }
    assert_true(saw_aer && saw_abort);
    /* Aborting an unknown command: success, "not aborted". */
    NvmeCmd ab2 = admin(NVME_ADM_ABORT, 0, 0x7777u << 16);
    uint32_t dw0 = 0;
    assert_int_equal(tg_cmd(tg, 0, &ab2, &dw0), 0);
    assert_int_equal(dw0 & 1, 1);
}

/* A VMM that emulates the MSI-X table itself (QEMU's vfio-user-pci, like
 * every VFIO client) never writes the device's copy, whose vectors are
 * masked from reset: interrupts must still be delivered; once a client
 * does write the table, its mask bits count. */
static void test_msix_table_emulated_by_vmm(void **state)
{
    TestGuest *tg = *state;
    tg->msix_table_emulated = true;
    assert_true(tg_enable(tg, 32));
    unsigned before = tg->irqs[0];
    uint64_t buf = tg_alloc(tg, TG_PAGE);
    assert_int_equal(identify(tg, 1, 0, buf), 0);
    assert_int_equal(tg->irqs[0], before + 1);
    assert_true(tg_create_io_queue(tg, 1, 8));
    NvmeCmd f = { .opcode = NVME_CMD_FLUSH, .nsid = 1 };
    NvmeCqe cqe;
    unsigned io_before = tg->irqs[1];
    tg_submit(tg, 1, &f);
    assert_true(tg_poll(tg, 1, &cqe, 2000));
    assert_int_equal(tg->irqs[1], io_before + 1);
    assert_int_equal(nvme_msix_read(tg->ctrl, NVME_MSIX_PBA_OFF, 8), 0);
    /* The function mask bit is in config space, which every client
     * forwards: it still holds interrupts back. */
    nvme_msix_set_control(tg->ctrl, true, true);
    tg_submit(tg, 1, &f);
    assert_true(tg_poll(tg, 1, &cqe, 2000));
    assert_int_equal(tg->irqs[1], io_before + 1);
    nvme_msix_set_control(tg->ctrl, true, false);
    assert_int_equal(tg->irqs[1], io_before + 2);
    /* A client writing the table takes over masking: vector 1 still
     * carries its reset mask bit, vector 2's is cleared. */
    nvme_msix_write(tg->ctrl, NVME_MSIX_TABLE_OFF + 0 * 16 + 12, 4, 0);
    tg_submit(tg, 1, &f);
    assert_true(tg_poll(tg, 1, &cqe, 2000));
    assert_int_equal(tg->irqs[1], io_before + 2);
    assert_int_equal(nvme_msix_read(tg->ctrl, NVME_MSIX_PBA_OFF, 8), 2);
}

static void test_msix_masking(void **state)
{
    TestGuest *tg = *state;
    assert_true(tg_create_io_queue(tg, 1, 8));
    /* Mask vector 1; a completion on CQ 1 leaves it pending. */
    nvme_msix_write(tg->ctrl, NVME_MSIX_TABLE_OFF + 16 + 12, 4, 1);
    unsigned before = tg->irqs[1];
    NvmeCmd f = { .opcode = NVME_CMD_FLUSH, .nsid = 1 };
    NvmeCqe cqe;
    tg_submit(tg, 1, &f);
    assert_true(tg_poll(tg, 1, &cqe, 2000));
    assert_int_equal(tg->irqs[1], before);
    assert_int_equal(nvme_msix_read(tg->ctrl, NVME_MSIX_PBA_OFF, 8), 2);
    /* The PBA is read only. */
    nvme_msix_write(tg->ctrl, NVME_MSIX_PBA_OFF, 8, 0);
    assert_int_equal(nvme_msix_read(tg->ctrl, NVME_MSIX_PBA_OFF, 8), 2);
    /* Unmasking delivers it once. */
    nvme_msix_write(tg->ctrl, NVME_MSIX_TABLE_OFF + 16 + 12, 4, 0);
    assert_int_equal(tg->irqs[1], before + 1);
    assert_int_equal(nvme_msix_read(tg->ctrl, NVME_MSIX_PBA_OFF, 8), 0);
    /* Function mask holds everything back too. */
    nvme_msix_set_control(tg->ctrl, true, true);
    tg_submit(tg, 1, &f);
    assert_true(tg_poll(tg, 1, &cqe, 2000));
    assert_int_equal(tg->irqs[1], before + 1);
    nvme_msix_set_control(tg->ctrl, true, false);
    assert_int_equal(tg->irqs[1], before + 2);
    /* Table entries read back; accesses beyond the table are refused. */
    nvme_msix_write(tg->ctrl, NVME_MSIX_TABLE_OFF + 32, 8, 0xfee00000ull);
    assert_int_equal(nvme_msix_read(tg->ctrl, NVME_MSIX_TABLE_OFF + 32, 4),
                     0xfee00000u);
    assert_int_equal(nvme_msix_read(tg->ctrl, NVME_MSIX_TABLE_OFF + 16 * 40,
                                    4), 0);
}

static void test_keep_alive(void **state)
{
    TestGuest *tg = *state;
    NvmeCmd ka = admin(NVME_ADM_KEEP_ALIVE, 0, 0);
    assert_int_equal(set_feat(tg, NVME_FEAT_KEEP_ALIVE, 300, NULL), 0);
    for (int i = 0; i < 4; i++) {
        tg_run(tg, 100);
        assert_int_equal(tg_cmd(tg, 0, &ka, NULL), 0);
    }
    assert_false(tg_r32(tg, NVME_REG_CSTS) & NVME_CSTS_CFS);
    tg_run(tg, 800);    /* no keep alive: the timer expires */
    assert_true(tg_r32(tg, NVME_REG_CSTS) & NVME_CSTS_CFS);
    /* A reset recovers. */
    assert_true(tg_disable(tg));
    assert_true(tg_enable(tg, 16));
    assert_int_equal(tg_cmd(tg, 0, &ka, NULL), 0);
}

static void test_shadow_doorbells(void **state)
{
    TestGuest *tg = *state;
    uint64_t dbs = tg_alloc(tg, 4096), eis = tg_alloc(tg, 4096);
    NvmeCmd c = admin(NVME_ADM_DBBUF_CONFIG, 0, 0);
    c.dptr[0] = dbs + 8;
    c.dptr[1] = eis;
    assert_int_equal(TG_STATUS(tg_cmd(tg, 0, &c, NULL)), NVME_INVALID_FIELD);
    c.dptr[0] = dbs;
    assert_int_equal(tg_cmd(tg, 0, &c, NULL), 0);
    assert_true(tg_create_io_queue(tg, 1, 8));

    uint32_t *shadow = tg_ptr(tg, dbs), *evidx = tg_ptr(tg, eis);
    NvmeCmd f = { .opcode = NVME_CMD_FLUSH, .nsid = 1 };
    NvmeCqe cqe;
    /* The host writes the shadow tail; one MMIO write gets noticed ... */
    tg_queue_cmd(tg, 1, &f);
    shadow[2] = tg->q[1].sq_tail;
    tg_ring(tg, 1);
    assert_true(tg_poll(tg, 1, &cqe, 2000));
    assert_int_equal(evidx[2], 1);      /* EventIdx: tail seen */
    /* ... and later commands are picked up from the shadow value without
     * their own MMIO write (any doorbell kick runs a pass). */
    tg_queue_cmd(tg, 1, &f);
    tg_queue_cmd(tg, 1, &f);
    shadow[2] = tg->q[1].sq_tail;
    tg_w32(tg, NVME_REG_DBS + 8 + 4, tg->q[1].cq_head);
    assert_true(tg_poll(tg, 1, &cqe, 2000));
    assert_true(tg_poll(tg, 1, &cqe, 2000));
    assert_int_equal(evidx[2], 3);
}

static void test_shutdown(void **state)
{
    TestGuest *tg = *state;
    uint32_t cc = tg_r32(tg, NVME_REG_CC);
    tg_w32(tg, NVME_REG_CC, cc | (1u << 14));       /* normal shutdown */
    uint64_t end = clock_ms() + 2000;
    while (((tg_r32(tg, NVME_REG_CSTS) >> 2) & 3) != NVME_SHST_COMPLETE &&
           clock_ms() < end) {
        loop_run_once(tg->loop, 1);
    }
    assert_int_equal((tg_r32(tg, NVME_REG_CSTS) >> 2) & 3,
                     NVME_SHST_COMPLETE);
    /* No commands are processed after shutdown. */
    NvmeCmd ka = admin(NVME_ADM_KEEP_ALIVE, 0, 0);
    tg_submit(tg, 0, &ka);
    tg_run(tg, 20);
    NvmeCqe cqe;
    assert_false(tg_peek(tg, 0, &cqe, false));
    assert_true(tg_disable(tg));
    assert_int_equal(tg_r32(tg, NVME_REG_CSTS), 0);
}

typedef struct AdminCase {
    const char *what;
    NvmeCmd cmd;
    bool valid_prp1;
    uint16_t status;
} AdminCase;

static void test_bad_admin_commands(void **state)
{
    TestGuest *tg = *state;
    uint64_t buf = tg_alloc(tg, 8192);
    const AdminCase cases[] = {
        { "unknown opcode", { .opcode = 0xc0 }, true, NVME_INVALID_OPCODE },
        { "I/O opcode on admin queue", { .opcode = 0x80 }, true,
          NVME_INVALID_OPCODE },
        { "fused", { .opcode = NVME_ADM_IDENTIFY, .flags = 1, .cdw10 = 1 },
          true, NVME_INVALID_FIELD },
        { "SGL on admin", { .opcode = NVME_ADM_IDENTIFY, .flags = 0x40,
                            .cdw10 = 1 }, true, NVME_INVALID_FIELD },
        { "PRP1 not dword aligned", { .opcode = NVME_ADM_IDENTIFY,
          .cdw10 = 1, .dptr = { TG_BASE + 0x2002 } }, false,
          NVME_PRP_OFFSET_INVALID },
        { "PRP1 outside memory", { .opcode = NVME_ADM_IDENTIFY,
          .cdw10 = 1, .dptr = { 0x2000 } }, false, NVME_DATA_TRANSFER_ERROR },
        { "PRP2 with offset", { .opcode = NVME_ADM_IDENTIFY, .cdw10 = 1,
          .dptr = { TG_BASE + 0x2100, TG_BASE + 0x3100 } }, false,
          NVME_PRP_OFFSET_INVALID },
        { "PRP1 wraps the address space", { .opcode = NVME_ADM_IDENTIFY,
          .cdw10 = 1, .dptr = { 0xfffffffffffff800ull, 0 } }, false,
          NVME_DATA_TRANSFER_ERROR },
        { "log page NUMD beyond MDTS", { .opcode = NVME_ADM_GET_LOG_PAGE,
          .cdw10 = NVME_LOG_SMART | 0xffffu << 16, .cdw11 = 0xffff }, true,
          NVME_INVALID_FIELD },
        { "abort limit is per SQ id", { .opcode = NVME_ADM_CREATE_SQ,
          .cdw10 = 0xffff, .cdw11 = 1u << 16 | 1 }, true, NVME_INVALID_QID },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        NvmeCmd c = cases[i].cmd;
        if (cases[i].valid_prp1) {
            c.dptr[0] = buf;
        }
        uint16_t st = tg_cmd(tg, 0, &c, NULL);
        if (TG_STATUS(st) != cases[i].status) {
            fail_msg("%s: status 0x%x, expected 0x%x", cases[i].what, st,
                     cases[i].status);
        }
    }
    /* The controller still works. */
    assert_int_equal(identify(tg, NVME_ID_CNS_CTRL, 0, buf), 0);
    assert_false(tg_r32(tg, NVME_REG_CSTS) & NVME_CSTS_CFS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_registers_and_enable, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_identify, setup_enabled,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_queue_management, setup_enabled,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_features, setup_enabled,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_log_pages, setup_enabled,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_aer, setup_enabled, teardown),
        cmocka_unit_test_setup_teardown(test_msix_table_emulated_by_vmm,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_msix_masking, setup_enabled,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_keep_alive, setup_enabled,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_shadow_doorbells, setup_enabled,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_shutdown, setup_enabled,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bad_admin_commands,
                                        setup_enabled, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
