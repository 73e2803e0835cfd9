/*
 * NVMe controller I/O: Read/Write/Compare with PRPs (one page, two pages,
 * PRP lists crossing list pages) and SGLs, Write Zeroes, deallocation,
 * Flush, SMART counters, bad commands, reset with I/O in flight.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "guest.h"

#define IMG_SIZE (8u << 20)
#define MEM_SIZE (32u << 20)

static int setup_mode(void **state, bool no_translate)
{
    TestGuest *tg = tg_new(2, IMG_SIZE, MEM_SIZE);
    if (!tg) {
        return -1;
    }
    tg->no_translate = no_translate;
    if (!tg_make_ctrl(tg, "num-queues=4,mqes=256") || !tg_enable(tg, 32) ||
        !tg_create_io_queue(tg, 1, 64) || !tg_create_io_queue(tg, 2, 64)) {
        tg_free(tg);
        return -1;
    }
    *state = tg;
    return 0;
}

static int setup(void **state)
{
    return setup_mode(state, false);
}

static int setup_dma_fallback(void **state)
{
    return setup_mode(state, true);
}

static int teardown(void **state)
{
    tg_free(*state);
    return 0;
}

/* Write then read back [slba, +nlb) through PRPs at guest offset off. */
static void rw_roundtrip(TestGuest *tg, uint32_t nsid, uint64_t slba,
                         uint32_t nlb, uint64_t off, unsigned seed)
{
    uint64_t len = (uint64_t)nlb * 512;
    uint64_t wbuf = tg_alloc(tg, len + off) + off;
    uint64_t rbuf = tg_alloc(tg, len + off) + off;
    NvmeCmd c;

    tg_fill(tg_ptr(tg, wbuf), len, seed);
    tg_rw_cmd(&c, NVME_CMD_WRITE, nsid, slba, nlb);
    tg_build_prps(tg, &c, wbuf, len);
    assert_int_equal(tg_cmd(tg, 1, &c, NULL), 0);
    tg_rw_cmd(&c, NVME_CMD_READ, nsid, slba, nlb);
    tg_build_prps(tg, &c, rbuf, len);
    assert_int_equal(tg_cmd(tg, 2, &c, NULL), 0);
    assert_true(tg_check(tg_ptr(tg, rbuf), len, seed));
    /* What the guest wrote is what the image holds. */
    uint8_t *disk = malloc(len);
    assert_int_equal(blk_pread_sync(tg->blks[nsid - 1], slba * 512, disk,
                                    len), 0);
    assert_true(tg_check(disk, len, seed));
    free(disk);
}

static void test_prp_single_page(void **state)
{
    rw_roundtrip(*state, 1, 0, 1, 0, 1);
    rw_roundtrip(*state, 1, 100, 8, 0, 2);      /* exactly one page */
}

static void test_prp_two_pages(void **state)
{
    rw_roundtrip(*state, 1, 7, 8, 0x800, 3);    /* crosses into PRP2 */
    rw_roundtrip(*state, 2, 9, 16, 0, 4);       /* PRP1 + PRP2 full pages */
}

static void test_prp_list(void **state)
{
    TestGuest *tg = *state;
    rw_roundtrip(tg, 1, 1000, 256, 0x200, 5);   /* 128 KiB, offset */
    rw_roundtrip(tg, 2, 3, 1024, 0, 6);         /* MDTS: 512 KiB */

    /* A list that starts at the end of a page continues on the page its
     * last slot points to. */
    uint64_t len = 8 * 4096;
    uint64_t data = tg_alloc(tg, len + 4096);
    uint64_t lists = tg_alloc(tg, 2 * 4096);
    uint64_t *l1 = tg_ptr(tg, lists + 4096 - 16), *l2 = tg_ptr(tg,
                                                               lists + 4096);
    l1[0] = data + 4096;
    l1[1] = lists + 4096;               /* chain */
    for (int i = 0; i < 6; i++) {
        l2[i] = data + 4096 * (uint64_t)(i + 2);
    }
    tg_fill(tg_ptr(tg, data), len, 7);
    NvmeCmd c;
    tg_rw_cmd(&c, NVME_CMD_WRITE, 1, 4096, 64);
    c.dptr[0] = data;
    c.dptr[1] = lists + 4096 - 16;
    assert_int_equal(tg_cmd(tg, 1, &c, NULL), 0);
    uint8_t *disk = malloc(len);
    assert_int_equal(blk_pread_sync(tg->blks[0], 4096 * 512, disk, len), 0);
    assert_true(tg_check(disk, len, 7));
    free(disk);
}

static void test_dma_fallback(void **state)
{
    /* Without translate(): bounce buffers through dma_read/dma_write. */
    rw_roundtrip(*state, 1, 11, 24, 0x600, 8);
    rw_roundtrip(*state, 2, 0, 1, 0, 9);
}

static void put_sgl(NvmeSglDesc *d, uint64_t addr, uint32_t len,
                    uint8_t type)
{
    memset(d, 0, sizeof(*d));
    d->addr = addr;
    d->len = len;
    d->type = (uint8_t)(type << 4);
}

static void test_sgl(void **state)
{
    TestGuest *tg = *state;
    uint64_t len = 6 * 512;
    uint64_t a = tg_alloc(tg, 4096), b = tg_alloc(tg, 4096),
             c3 = tg_alloc(tg, 4096);
    uint64_t seg1 = tg_alloc(tg, 4096), seg2 = tg_alloc(tg, 4096);
    uint8_t src[6 * 512];
    tg_fill(src, len, 10);
    /* Three pieces of odd sizes; segment -> last segment chain. */
    memcpy(tg_ptr(tg, a + 100), src, 1000);
    memcpy(tg_ptr(tg, b + 3), src + 1000, 1500);
    memcpy(tg_ptr(tg, c3), src + 2500, 572);
    NvmeSglDesc *s1 = tg_ptr(tg, seg1), *s2 = tg_ptr(tg, seg2);
    put_sgl(&s1[0], a + 100, 1000, NVME_SGL_DATA_BLOCK);
    put_sgl(&s1[1], seg2, 32, NVME_SGL_LAST_SEGMENT);
    put_sgl(&s2[0], b + 3, 1500, NVME_SGL_DATA_BLOCK);
    put_sgl(&s2[1], c3, 4096, NVME_SGL_DATA_BLOCK);     /* longer: fine */

    NvmeCmd c;
    tg_rw_cmd(&c, NVME_CMD_WRITE, 1, 50, 6);
    c.flags = 0x40;
    put_sgl((NvmeSglDesc *)c.dptr, seg1, 32, NVME_SGL_SEGMENT);
    assert_int_equal(tg_cmd(tg, 1, &c, NULL), 0);

    /* Read back with a single data block descriptor. */
    uint64_t r = tg_alloc(tg, 4096);
    tg_rw_cmd(&c, NVME_CMD_READ, 1, 50, 6);
    c.flags = 0x40;
    put_sgl((NvmeSglDesc *)c.dptr, r + 4, (uint32_t)len,
            NVME_SGL_DATA_BLOCK);
    assert_int_equal(tg_cmd(tg, 1, &c, NULL), 0);
    assert_true(tg_check(tg_ptr(tg, r + 4), len, 10));
}

static void test_compare_zeroes_dsm_flush(void **state)
{
    TestGuest *tg = *state;
    uint64_t buf = tg_alloc(tg, 8192);
    NvmeCmd c;
    rw_roundtrip(tg, 1, 200, 16, 0, 11);

    tg_fill(tg_ptr(tg, buf), 8192, 11);
    tg_rw_cmd(&c, NVME_CMD_COMPARE, 1, 200, 16);
    tg_build_prps(tg, &c, buf, 8192);
    assert_int_equal(tg_cmd(tg, 1, &c, NULL), 0);
    ((uint8_t *)tg_ptr(tg, buf))[5000] ^= 1;
    assert_int_equal(TG_STATUS(tg_cmd(tg, 1, &c, NULL)),
                     NVME_COMPARE_FAILURE);

    /* Write Zeroes (FUA) over 4 blocks in the middle. */
    tg_rw_cmd(&c, NVME_CMD_WRITE_ZEROES, 1, 204, 4);
    c.cdw12 |= 1u << 30;
    assert_int_equal(tg_cmd(tg, 1, &c, NULL), 0);
    uint8_t disk[8192];
    assert_int_equal(blk_pread_sync(tg->blks[0], 200 * 512, disk, 8192), 0);
    uint8_t zero[2048] = { 0 };
    assert_memory_equal(disk + 2048, zero, 2048);
    assert_true(tg_check(disk, 2048, 11));

    /* Deallocate two ranges: they read back as zeroes (punched holes). */
    uint64_t ranges = tg_alloc(tg, 4096);
    uint32_t *r = tg_ptr(tg, ranges);
    r[1] = 8;                               /* NLB */
    uint64_t slba = 208;
    memcpy(&r[2], &slba, 8);
    r[5] = 0;                               /* empty range: skipped */
    memset(&c, 0, sizeof(c));
    c.opcode = NVME_CMD_DSM;
    c.nsid = 1;
    c.cdw10 = 1;                            /* two ranges */
    c.cdw11 = 1u << 2;                      /* AD */
    c.dptr[0] = ranges;
    assert_int_equal(tg_cmd(tg, 1, &c, NULL), 0);
    assert_int_equal(blk_pread_sync(tg->blks[0], 208 * 512, disk, 4096), 0);
    assert_memory_equal(disk, zero, 2048);

    NvmeCmd f = { .opcode = NVME_CMD_FLUSH, .nsid = 1 };
    assert_int_equal(tg_cmd(tg, 1, &f, NULL), 0);
    f.nsid = 0xffffffff;
    assert_int_equal(tg_cmd(tg, 1, &f, NULL), 0);
    f.nsid = 3;
    assert_int_equal(TG_STATUS(tg_cmd(tg, 1, &f, NULL)), NVME_INVALID_NSID);
}

static void test_smart_counters(void **state)
{
    TestGuest *tg = *state;
    uint64_t log = tg_alloc(tg, 4096);
    uint64_t v[4], before[4];
    NvmeCmd g = { .opcode = NVME_ADM_GET_LOG_PAGE, .nsid = 0xffffffff,
                  .cdw10 = NVME_LOG_SMART | 127u << 16 };
    g.dptr[0] = log;
    assert_int_equal(tg_cmd(tg, 0, &g, NULL), 0);
    for (int i = 0; i < 4; i++) {
        memcpy(&before[i], (uint8_t *)tg_ptr(tg, log) + 32 + 16 * i, 8);
    }
    for (int i = 0; i < 5; i++) {
        rw_roundtrip(tg, 1, 300 + 400 * (uint64_t)i, 400, 0, 20 + i);
    }
    assert_int_equal(tg_cmd(tg, 0, &g, NULL), 0);
    for (int i = 0; i < 4; i++) {
        memcpy(&v[i], (uint8_t *)tg_ptr(tg, log) + 32 + 16 * i, 8);
    }
    /* 2000 blocks each way: 2 data units (1000 x 512 bytes), 5 commands. */
    assert_int_equal(v[0] - before[0], 2);
    assert_int_equal(v[1] - before[1], 2);
    assert_int_equal(v[2] - before[2], 5);
    assert_int_equal(v[3] - before[3], 5);
}

typedef struct IoCase {
    const char *what;
    uint8_t opc;
    uint32_t nsid;
    uint64_t slba;
    uint32_t nlb;
    uint8_t flags;
    uint64_t prp1, prp2;            /* offsets from buf unless absolute */
    bool absolute;
    uint16_t status;
} IoCase;

static void test_bad_io_commands(void **state)
{
    TestGuest *tg = *state;
    uint64_t buf = tg_alloc(tg, 16 * 4096);
    uint64_t list = tg_alloc(tg, 4096);
    uint64_t *l = tg_ptr(tg, list);
    l[0] = buf + 0x2000;
    l[1] = buf + 0x3010;                    /* entry with an offset */
    uint64_t nsze = IMG_SIZE / 512;
    const IoCase cases[] = {
        { "unknown opcode", 0x7e, 1, 0, 1, 0, 0, 0, false,
          NVME_INVALID_OPCODE },
        { "nsid 0", NVME_CMD_READ, 0, 0, 1, 0, 0, 0, false,
          NVME_INVALID_NSID },
        { "nsid beyond NN", NVME_CMD_WRITE, 9, 0, 1, 0, 0, 0, false,
          NVME_INVALID_NSID },
        { "broadcast nsid on read", NVME_CMD_READ, 0xffffffff, 0, 1, 0, 0, 0,
          false, NVME_INVALID_NSID },
        { "LBA past the end", NVME_CMD_READ, 1, nsze, 1, 0, 0, 0, false,
          NVME_LBA_OUT_OF_RANGE },
        { "range crosses the end", NVME_CMD_WRITE, 1, nsze - 2, 4, 0, 0, 0,
          false, NVME_LBA_OUT_OF_RANGE },
        { "LBA overflows", NVME_CMD_READ, 1, UINT64_MAX - 1, 4, 0, 0, 0,
          false, NVME_LBA_OUT_OF_RANGE },
        { "above MDTS", NVME_CMD_READ, 1, 0, 1025, 0, 0, 0, false,
          NVME_INVALID_FIELD },
        { "zeroes past the end", NVME_CMD_WRITE_ZEROES, 2, nsze - 1, 2, 0,
          0, 0, false, NVME_LBA_OUT_OF_RANGE },
        { "PRP1 not dword aligned", NVME_CMD_READ, 1, 0, 1, 0, 2, 0, false,
          NVME_PRP_OFFSET_INVALID },
        { "PRP2 data page with offset", NVME_CMD_READ, 1, 0, 8, 0, 0x800,
          0x1800, false, NVME_PRP_OFFSET_INVALID },
        { "PRP list not qword aligned", NVME_CMD_READ, 1, 0, 24, 0, 0, 0x4,
          true, NVME_PRP_OFFSET_INVALID },
        { "PRP list entry with offset", NVME_CMD_READ, 1, 0, 24, 0, 0,
          0, true, NVME_PRP_OFFSET_INVALID },
        { "PRP1 outside memory", NVME_CMD_WRITE, 1, 0, 1, 0, 0x1000, 0,
          true, NVME_DATA_TRANSFER_ERROR },
        { "PRP list outside memory", NVME_CMD_READ, 1, 0, 24, 0, 0,
          0x10000, true, NVME_DATA_TRANSFER_ERROR },
        { "reserved PSDT", NVME_CMD_READ, 1, 0, 1, 0xc0, 0, 0, false,
          NVME_INVALID_FIELD },
        { "fused", NVME_CMD_READ, 1, 0, 1, 0x01, 0, 0, false,
          NVME_INVALID_FIELD },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const IoCase *k = &cases[i];
        NvmeCmd c;
        tg_rw_cmd(&c, k->opc, k->nsid, k->slba, k->nlb);
        c.flags = k->flags;
        if (k->absolute) {
            c.dptr[0] = k->prp1 ? k->prp1 : buf;
            c.dptr[1] = k->prp2 ? k->prp2 : list;
            if (k->prp2 == 0x4) {
                c.dptr[1] = list + 4;
            }
        } else {
            c.dptr[0] = buf + k->prp1;
            c.dptr[1] = k->prp2 ? buf + k->prp2 : buf + 0x1000;
        }
        uint16_t st = tg_cmd(tg, 1, &c, NULL);
        if (TG_STATUS(st) != k->status) {
            fail_msg("%s: status 0x%x, expected 0x%x", k->what, st,
                     k->status);
        }
    }
}

static void test_bad_sgls(void **state)
{
    TestGuest *tg = *state;
    uint64_t buf = tg_alloc(tg, 4096), seg = tg_alloc(tg, 4096);
    NvmeSglDesc *s = tg_ptr(tg, seg);
    const struct { const char *what; uint8_t type; uint32_t len;
                   uint8_t seg0_type; uint16_t st; } cases[] = {
        { "bit bucket", NVME_SGL_BIT_BUCKET, 512, 0,
          NVME_SGL_DESCR_TYPE_INVALID },
        { "keyed data block", 4, 512, 0, NVME_SGL_DESCR_TYPE_INVALID },
        { "data block too short", NVME_SGL_DATA_BLOCK, 511, 0,
          NVME_DATA_SGL_LEN_INVALID },
        { "segment length not a descriptor multiple", NVME_SGL_SEGMENT, 20,
          NVME_SGL_DATA_BLOCK, NVME_INVALID_SGL_SEG_DESCR },
        { "last segment holding a segment", NVME_SGL_LAST_SEGMENT, 16,
          NVME_SGL_SEGMENT, NVME_INVALID_SGL_SEG_DESCR },
        { "unknown type inside a segment", NVME_SGL_LAST_SEGMENT, 16,
          0xf0 >> 4, NVME_SGL_DESCR_TYPE_INVALID },
        { "segment of 4096 descriptors", NVME_SGL_SEGMENT, 4096 * 16, 0,
          NVME_INVALID_NUM_SGL_DESCRS },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        NvmeCmd c;
        tg_rw_cmd(&c, NVME_CMD_READ, 1, 0, 1);
        c.flags = 0x40;
        bool is_seg = cases[i].type == NVME_SGL_SEGMENT ||
                      cases[i].type == NVME_SGL_LAST_SEGMENT;
        put_sgl((NvmeSglDesc *)c.dptr, is_seg ? seg : buf, cases[i].len,
                cases[i].type);
        put_sgl(&s[0], buf, 512, cases[i].seg0_type);
        uint16_t st = tg_cmd(tg, 1, &c, NULL);
        if (TG_STATUS(st) != cases[i].st) {
            fail_msg("%s: status 0x%x, expected 0x%x", cases[i].what, st,
                     cases[i].st);
        }
    }
    /* A subtype other than "address" is refused. */
    NvmeCmd c;
    tg_rw_cmd(&c, NVME_CMD_READ, 1, 0, 1);
    c.flags = 0x40;
    put_sgl((NvmeSglDesc *)c.dptr, buf, 512, NVME_SGL_DATA_BLOCK);
    ((NvmeSglDesc *)c.dptr)->type |= 1;
    assert_int_equal(TG_STATUS(tg_cmd(tg, 1, &c, NULL)),
                     NVME_SGL_DESCR_TYPE_INVALID);
    /* A segment chaining to itself ends at the descriptor limit. */
    put_sgl(&s[0], seg, 16, NVME_SGL_SEGMENT);
    put_sgl((NvmeSglDesc *)c.dptr, seg, 16, NVME_SGL_SEGMENT);
    assert_int_equal(TG_STATUS(tg_cmd(tg, 1, &c, NULL)),
                     NVME_INVALID_NUM_SGL_DESCRS);
}

static void test_reset_with_io_in_flight(void **state)
{
    TestGuest *tg = *state;
    uint64_t buf = tg_alloc(tg, 32 * 65536);
    NvmeCtrlStats st;
    for (int i = 0; i < 32; i++) {
        NvmeCmd c;
        tg_rw_cmd(&c, NVME_CMD_WRITE, 1, (uint64_t)i * 128, 128);
        tg_build_prps(tg, &c, buf + (uint64_t)i * 65536, 65536);
        tg_queue_cmd(tg, 1, &c);
    }
    tg_ring(tg, 1);
    nvme_ctrl_poll(tg->ctrl);           /* fetched and submitted */
    nvme_ctrl_get_stats(tg->ctrl, &st);
    assert_true(st.in_flight > 0);

    tg_w32(tg, NVME_REG_CC, 0);
    /* RDY stays set while the writes finish ... */
    assert_true(tg_r32(tg, NVME_REG_CSTS) & NVME_CSTS_RDY);
    assert_true(tg_wait_ready(tg, false, 5000));
    nvme_ctrl_get_stats(tg->ctrl, &st);
    assert_int_equal(st.in_flight, 0);
    /* ... and their completions were discarded, not posted. */
    NvmeCqe cqe;
    unsigned posted = 0;
    while (tg_peek(tg, 1, &cqe, false)) {
        posted++;
    }
    assert_int_equal(posted, 0);

    /* The controller comes back clean. */
    memset(tg->q, 0, sizeof(tg->q));
    assert_true(tg_enable(tg, 16));
    assert_true(tg_create_io_queue(tg, 1, 16));
    assert_true(tg_create_io_queue(tg, 2, 16));
    rw_roundtrip(tg, 2, 77, 3, 0, 30);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_prp_single_page, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_prp_two_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prp_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dma_fallback,
                                        setup_dma_fallback, teardown),
        cmocka_unit_test_setup_teardown(test_sgl, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compare_zeroes_dsm_flush, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_smart_counters, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bad_io_commands, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bad_sgls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_with_io_in_flight, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
