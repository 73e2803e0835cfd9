/*
 * NVMe controller over guest memory it cannot translate: every access,
 * or only the data buffers, goes through the transport's asynchronous
 * copies (as vfio-user memory mapped without an fd does). Many commands
 * in flight at once complete with the right data; a copy that fails
 * fails its command with Data Transfer Error and nothing else; a quiesce
 * waits for the copies without blocking; freeing the controller with
 * copies outstanding cancels them.
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
#define QDEPTH   48             /* commands per queue at once */
#define CMD_LEN  (16u * 1024)   /* with an offset: five pages, PRP list */

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

/* Queues, PRP lists and data all copied. */
static int setup_all_copied(void **state)
{
    return setup_mode(state, true);
}

/* Queues translated; what is allocated from now on (data, PRP lists)
 * copied. */
static int setup_data_copied(void **state)
{
    if (setup_mode(state, false)) {
        return -1;
    }
    TestGuest *tg = *state;
    tg->copy_from = tg->brk - TG_BASE;
    return 0;
}

static int teardown(void **state)
{
    tg_free(*state);
    return 0;
}

/* QDEPTH commands on each of queues 1 and 2 rung at once; every one
 * completes successfully. */
static void batch(TestGuest *tg, uint8_t opc, uint64_t bufs)
{
    for (uint16_t q = 1; q <= 2; q++) {
        for (unsigned i = 0; i < QDEPTH; i++) {
            unsigned k = (q - 1) * QDEPTH + i;
            NvmeCmd c;
            tg_rw_cmd(&c, opc, q, (uint64_t)k * (CMD_LEN / 512),
                      CMD_LEN / 512);
            tg_build_prps(tg, &c, bufs + (uint64_t)k * (CMD_LEN + 4096) +
                          0x200, CMD_LEN);
            tg_queue_cmd(tg, q, &c);
        }
        tg_ring(tg, q);
    }
    for (uint16_t q = 1; q <= 2; q++) {
        for (unsigned i = 0; i < QDEPTH; i++) {
            NvmeCqe cqe;
            assert_true(tg_poll(tg, q, &cqe, 5000));
            assert_int_equal(TG_STATUS(cqe.status >> 1), 0);
        }
    }
}

static void many_in_flight(TestGuest *tg)
{
    size_t stride = CMD_LEN + 4096;
    uint64_t wbufs = tg_alloc(tg, 2 * QDEPTH * stride);
    uint64_t rbufs = tg_alloc(tg, 2 * QDEPTH * stride);
    for (unsigned k = 0; k < 2 * QDEPTH; k++) {
        tg_fill(tg_ptr(tg, wbufs + k * stride + 0x200), CMD_LEN, 100 + k);
    }
    tg->copy_delay_ms = 1;
    batch(tg, NVME_CMD_WRITE, wbufs);
    batch(tg, NVME_CMD_READ, rbufs);
    for (unsigned k = 0; k < 2 * QDEPTH; k++) {
        uint8_t *got = tg_ptr(tg, rbufs + k * stride + 0x200);
        if (!tg_check(got, CMD_LEN, 100 + k)) {
            fail_msg("command %u read back other data", k);
        }
        /* The bytes around each buffer were not touched. */
        assert_int_equal(got[-1], 0);
        assert_int_equal(got[CMD_LEN], 0);
    }
    /* What the guest wrote is on the disks. */
    uint8_t *disk = malloc(CMD_LEN);
    for (unsigned k = 0; k < 2 * QDEPTH; k++) {
        assert_int_equal(blk_pread_sync(tg->blks[k / QDEPTH],
                                        (uint64_t)k * CMD_LEN, disk,
                                        CMD_LEN), 0);
        assert_true(tg_check(disk, CMD_LEN, 100 + k));
    }
    free(disk);
    /* Copies overlapped: commands did not wait for each other. */
    assert_true(tg->copies_max >= QDEPTH);
    assert_int_equal(tg->copies_out, 0);
    assert_false(tg_r32(tg, NVME_REG_CSTS) & NVME_CSTS_CFS);
}

static void test_all_copied_many_in_flight(void **state)
{
    many_in_flight(*state);
}

static void test_data_copied_many_in_flight(void **state)
{
    many_in_flight(*state);
}

/* SGL segments read by copy, Compare and Dataset Management ranges too. */
static void test_sgl_compare_dsm_copied(void **state)
{
    TestGuest *tg = *state;
    uint64_t a = tg_alloc(tg, 4096), b = tg_alloc(tg, 4096);
    uint64_t seg = tg_alloc(tg, 4096), ranges = tg_alloc(tg, 4096);
    tg_fill(tg_ptr(tg, a), 1024, 7);
    tg_fill(tg_ptr(tg, b), 1024, 8);
    NvmeSglDesc *d = tg_ptr(tg, seg);
    memset(d, 0, 32);
    d[0].addr = a;
    d[0].len = 1024;
    d[1].addr = b;
    d[1].len = 1024;
    NvmeCmd c;
    tg_rw_cmd(&c, NVME_CMD_WRITE, 1, 300, 4);
    c.flags = 0x40;
    NvmeSglDesc *sd = (NvmeSglDesc *)c.dptr;
    memset(sd, 0, sizeof(*sd));
    sd->addr = seg;
    sd->len = 32;
    sd->type = (uint8_t)(NVME_SGL_LAST_SEGMENT << 4);
    assert_int_equal(tg_cmd(tg, 1, &c, NULL), 0);
    /* Compare reads the guest's data by copy: equal, then not. */
    c.opcode = NVME_CMD_COMPARE;
    assert_int_equal(tg_cmd(tg, 1, &c, NULL), 0);
    ((uint8_t *)tg_ptr(tg, b))[5] ^= 1;
    assert_int_equal(TG_STATUS(tg_cmd(tg, 1, &c, NULL)),
                     NVME_COMPARE_FAILURE);
    /* A deallocation range outside the namespace, read by copy. */
    uint32_t *r = tg_ptr(tg, ranges);
    r[1] = 8;                                   /* nlb */
    uint64_t slba = IMG_SIZE / 512;
    memcpy(&r[2], &slba, 8);
    NvmeCmd dsm = { .opcode = NVME_CMD_DSM, .nsid = 1, .cdw10 = 0,
                    .cdw11 = 1u << 2 };
    tg_build_prps(tg, &dsm, ranges, 16);
    assert_int_equal(TG_STATUS(tg_cmd(tg, 1, &dsm, NULL)),
                     NVME_LBA_OUT_OF_RANGE);
    assert_true(tg->copies_done > 0);
}

/* Copies that fail (a VMM that refuses, or never answers before the
 * transport's deadline) fail their commands with Data Transfer Error;
 * the controller goes on, and serves the next command normally. */
static void test_failed_copy_fails_the_command(void **state)
{
    TestGuest *tg = *state;
    uint64_t buf = tg_alloc(tg, 8192);
    tg_fill(tg_ptr(tg, buf), 8192, 3);
    NvmeCmd c;
    tg->fail_copies = true;
    tg_rw_cmd(&c, NVME_CMD_WRITE, 1, 10, 16);
    tg_build_prps(tg, &c, buf, 8192);
    assert_int_equal(TG_STATUS(tg_cmd(tg, 1, &c, NULL)),
                     NVME_DATA_TRANSFER_ERROR);
    tg_rw_cmd(&c, NVME_CMD_READ, 1, 10, 16);
    tg_build_prps(tg, &c, buf, 8192);
    assert_int_equal(TG_STATUS(tg_cmd(tg, 2, &c, NULL)),
                     NVME_DATA_TRANSFER_ERROR);
    assert_false(tg_r32(tg, NVME_REG_CSTS) & NVME_CSTS_CFS);
    NvmeCtrlStats st;
    nvme_ctrl_get_stats(tg->ctrl, &st);
    assert_int_equal(st.in_flight, 0);

    tg->fail_copies = false;
    tg_rw_cmd(&c, NVME_CMD_WRITE, 1, 10, 16);
    tg_build_prps(tg, &c, buf, 8192);
    assert_int_equal(tg_cmd(tg, 1, &c, NULL), 0);
    memset(tg_ptr(tg, buf), 0, 8192);
    tg_rw_cmd(&c, NVME_CMD_READ, 1, 10, 16);
    tg_build_prps(tg, &c, buf, 8192);
    assert_int_equal(tg_cmd(tg, 2, &c, NULL), 0);
    assert_true(tg_check(tg_ptr(tg, buf), 8192, 3));
}

static unsigned quiesced_calls;

static void on_quiesced(void *opaque)
{
    quiesced_calls++;
}

/* A command waits for a slow copy: the quiesce does not wait for it on
 * the spot but calls back, from the loop, once it has completed. Then a
 * command left waiting when the controller is freed (teardown) is
 * cancelled with its copy. */
static void test_quiesce_waits_for_copies(void **state)
{
    TestGuest *tg = *state;
    uint64_t buf = tg_alloc(tg, 4096);
    tg_fill(tg_ptr(tg, buf), 4096, 5);
    tg->copy_delay_ms = 200;
    NvmeCmd c;
    tg_rw_cmd(&c, NVME_CMD_WRITE, 1, 20, 8);
    tg_build_prps(tg, &c, buf, 4096);
    tg_submit(tg, 1, &c);
    for (int i = 0; i < 100 && !tg->copies_out; i++) {
        tg_run(tg, 1);
    }
    assert_int_equal(tg->copies_out, 1);

    quiesced_calls = 0;
    bool later = false;
    uint64_t t0 = clock_ms();
    assert_false(nvme_ctrl_quiesce_begin(tg->ctrl, on_quiesced, NULL,
                                         &later));
    assert_true(later);
    assert_true(clock_ms() - t0 < 100);         /* did not wait */
    assert_int_equal(quiesced_calls, 0);
    for (int i = 0; i < 2000 && !quiesced_calls; i++) {
        tg_run(tg, 1);
    }
    assert_int_equal(quiesced_calls, 1);
    NvmeCtrlStats st;
    nvme_ctrl_get_stats(tg->ctrl, &st);
    assert_int_equal(st.in_flight, 0);
    NvmeCqe cqe;
    assert_true(tg_peek(tg, 1, &cqe, true));    /* completed, posted */
    assert_int_equal(TG_STATUS(cqe.status >> 1), 0);
    /* Nothing is fetched while quiesced; after resume it is. */
    assert_true(nvme_ctrl_resume(tg->ctrl, NULL));

    tg_submit(tg, 1, &c);
    for (int i = 0; i < 100 && !tg->copies_out; i++) {
        tg_run(tg, 1);
    }
    assert_int_equal(tg->copies_out, 1);
    /* teardown frees the controller now: the copy is cancelled. */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_all_copied_many_in_flight,
                                        setup_all_copied, teardown),
        cmocka_unit_test_setup_teardown(test_data_copied_many_in_flight,
                                        setup_data_copied, teardown),
        cmocka_unit_test_setup_teardown(test_sgl_compare_dsm_copied,
                                        setup_data_copied, teardown),
        cmocka_unit_test_setup_teardown(test_failed_copy_fails_the_command,
                                        setup_data_copied, teardown),
        cmocka_unit_test_setup_teardown(test_quiesce_waits_for_copies,
                                        setup_all_copied, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
