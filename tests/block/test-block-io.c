/* Block I/O through io_uring: data integrity at queue depth 32, flush,
 * discard, write-zeroes (and its fallback), refusals, drain, and the
 * allocation status of a sparse image. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <sys/mman.h>

#include "block/block-int.h"
#include "block/ownership.h"
#include "test-common.h"

#define MiB (1024ull * 1024)
#define DISK_SIZE (16 * MiB)
#define QD 32

typedef struct Fixture {
    char *image;
    BlockBackend *blk;
    EventLoop *loop;
} Fixture;

typedef struct Completion {
    int calls;
    int ret;
} Completion;

static void on_done(void *opaque, int ret)
{
    Completion *c = opaque;
    c->calls++;
    c->ret = ret;
}

static BlockBackend *open_image(Fixture *f, bool direct, bool read_only)
{
    Error *err = NULL;
    BlockOpenOptions opts = {
        .node_name = "disk0", .filename = f->image, .direct = direct,
        .read_only = read_only, .discard = true, .queue_depth = QD,
    };
    BlockBackend *blk = blk_open(&opts, &err);
    if (!blk) {
        print_error("blk_open: %s\n", error_get_pretty(err));
        error_free(err);
        return NULL;
    }
    assert_true(blk_attach_loop(blk, f->loop, NULL));
    return blk;
}

static int setup(void **state)
{
    Fixture *f = calloc(1, sizeof(*f));
    blk_ownership_init(true);
    f->image = scratch_image("blk-io", DISK_SIZE);
    f->loop = loop_new(NULL);
    *state = f;
    return f->image && f->loop ? 0 : -1;
}

static int teardown(void **state)
{
    Fixture *f = *state;
    blk_close(f->blk);
    loop_free(f->loop);
    remove_image(f->image);
    free(f);
    return 0;
}

/* Runs the loop until n completions have arrived (or a timeout). */
static void wait_calls(EventLoop *loop, Completion *c, int n, int *total)
{
    uint64_t deadline = clock_ms() + 10000;
    while (clock_ms() < deadline) {
        int sum = 0;
        for (int i = 0; i < n; i++) {
            sum += c[i].calls;
        }
        *total = sum;
        if (sum >= n) {
            return;
        }
        loop_run_once(loop, 100);
    }
}

/* QD 32 writes of multi-segment iovecs, then QD 32 reads that check. */
static void rw_round(Fixture *f, size_t seg, unsigned seed)
{
    static uint8_t *bufs[QD];
    Completion c[QD] = { 0 };
    int total;
    const size_t len = 3 * seg;
    for (int i = 0; i < QD; i++) {
        assert_int_equal(posix_memalign((void **)&bufs[i], 4096, len), 0);
        fill_pattern(bufs[i], len, seed + (unsigned)i);
        struct iovec iov[3];
        for (int s = 0; s < 3; s++) {
            iov[s] = (struct iovec){ bufs[i] + s * seg, seg };
        }
        assert_int_equal(blk_pwritev(f->blk, (uint64_t)i * len, iov, 3,
                                     i % 2, on_done, &c[i]), 0);
    }
    /* Completions run only on the loop, never inside the submission. */
    assert_int_equal(blk_in_flight(f->blk), QD);
    assert_int_equal(c[0].calls, 0);
    /* The ring holds QD requests: one more is refused, not queued. */
    Completion extra = { 0 };
    struct iovec one = { bufs[0], seg };
    assert_int_equal(blk_preadv(f->blk, 0, &one, 1, on_done, &extra),
                     -EAGAIN);
    wait_calls(f->loop, c, QD, &total);
    assert_int_equal(total, QD);
    for (int i = 0; i < QD; i++) {
        assert_int_equal(c[i].ret, 0);
        memset(bufs[i], 0xee, len);
        c[i].calls = 0;
        struct iovec iov = { bufs[i], len };
        assert_int_equal(blk_preadv(f->blk, (uint64_t)i * len, &iov, 1,
                                    on_done, &c[i]), 0);
    }
    wait_calls(f->loop, c, QD, &total);
    assert_int_equal(total, QD);
    for (int i = 0; i < QD; i++) {
        assert_int_equal(c[i].ret, 0);
        assert_int_equal(check_pattern(bufs[i], len, seed + (unsigned)i), 0);
        free(bufs[i]);
    }
    assert_int_equal(extra.calls, 0);
    assert_int_equal(blk_in_flight(f->blk), 0);
}

static void test_qd32_buffered(void **state)
{
    Fixture *f = *state;
    f->blk = open_image(f, false, false);
    assert_non_null(f->blk);
    assert_int_equal(blk_size(f->blk), DISK_SIZE);
    assert_int_equal(blk_alignment(f->blk), 1);
    rw_round(f, 4096, 1);
    rw_round(f, 1000, 77);      /* unaligned sizes are fine when buffered */
    BlockStats st;
    blk_get_stats(f->blk, &st);
    assert_int_equal(st.wr_ops, 2 * QD);
    assert_int_equal(st.rd_ops, 2 * QD);
    assert_int_equal(st.rd_bytes, (uint64_t)QD * 3 * (4096 + 1000));
}

static void test_qd32_direct(void **state)
{
    Fixture *f = *state;
    f->blk = open_image(f, true, false);
    assert_non_null(f->blk);
    uint32_t a = blk_alignment(f->blk);
    assert_true(a == 512 || a == 4096);
    rw_round(f, 4096, 5);
    rw_round(f, 65536, 9);
}

static void test_direct_misaligned(void **state)
{
    Fixture *f = *state;
    f->blk = open_image(f, true, false);
    assert_non_null(f->blk);
    uint32_t a = blk_alignment(f->blk);
    uint8_t *buf = NULL;
    assert_int_equal(posix_memalign((void **)&buf, 4096, 3 * 4096), 0);
    Completion c = { 0 };
    struct iovec ok = { buf, 4096 };
    struct iovec short_len = { buf, a / 2 };
    struct iovec bad_buf = { buf + a / 2, 4096 };
    assert_int_equal(blk_preadv(f->blk, a / 2, &ok, 1, on_done, &c), -EINVAL);
    assert_int_equal(blk_preadv(f->blk, 0, &short_len, 1, on_done, &c),
                     -EINVAL);
    assert_int_equal(blk_pwritev(f->blk, 0, &bad_buf, 1, false, on_done, &c),
                     -EINVAL);
    assert_int_equal(blk_write_zeroes(f->blk, 1, a, false, on_done, &c),
                     -EINVAL);
    assert_int_equal(c.calls, 0);
    /* The synchronous helper bounces a misaligned buffer instead. */
    fill_pattern(buf + 1, 4096, 3);
    assert_int_equal(blk_pwrite_sync(f->blk, 4096, buf + 1, 4096), 0);
    memset(buf, 0, 3 * 4096);
    assert_int_equal(blk_pread_sync(f->blk, 4096, buf + 7, 4096), 0);
    assert_int_equal(check_pattern(buf + 7, 4096, 3), 0);
    free(buf);
}

static void test_out_of_range(void **state)
{
    Fixture *f = *state;
    f->blk = open_image(f, false, false);
    assert_non_null(f->blk);
    static uint8_t buf[8192];
    Completion c = { 0 };
    struct iovec iov = { buf, sizeof(buf) };
    const uint64_t size = blk_size(f->blk);
    assert_int_equal(blk_preadv(f->blk, size, &iov, 1, on_done, &c), -EINVAL);
    assert_int_equal(blk_preadv(f->blk, size - 4096, &iov, 1, on_done, &c),
                     -EINVAL);
    assert_int_equal(blk_pwritev(f->blk, UINT64_MAX - 100, &iov, 1, false,
                                 on_done, &c), -EINVAL);
    assert_int_equal(blk_discard(f->blk, size - 1, 2, on_done, &c), -EINVAL);
    assert_int_equal(blk_write_zeroes(f->blk, 4096, UINT64_MAX, false,
                                      on_done, &c), -EINVAL);
    assert_int_equal(blk_preadv(f->blk, 0, &iov, -1, on_done, &c), -EINVAL);
    assert_int_equal(blk_preadv(f->blk, 0, &iov, IOV_MAX + 1, on_done, &c),
                     -EINVAL);
    assert_int_equal(blk_preadv(f->blk, 0, NULL, 1, on_done, &c), -EINVAL);
    /* Lengths that overflow when summed. */
    struct iovec huge[2] = { { buf, SIZE_MAX }, { buf, 2 } };
    assert_int_equal(blk_preadv(f->blk, 0, huge, 2, on_done, &c), -EINVAL);
    assert_int_equal(c.calls, 0);
    assert_int_equal(blk_in_flight(f->blk), 0);
    /* The last byte of the disk is inside; a zero-length request is too. */
    assert_int_equal(blk_pwrite_sync(f->blk, size - 1, "z", 1), 0);
    assert_int_equal(blk_preadv(f->blk, size, NULL, 0, on_done, &c), 0);
    blk_drain(f->blk);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.ret, 0);
}

static void test_flush(void **state)
{
    Fixture *f = *state;
    f->blk = open_image(f, false, false);
    assert_non_null(f->blk);
    static uint8_t buf[4096];
    fill_pattern(buf, sizeof(buf), 11);
    assert_int_equal(blk_pwrite_sync(f->blk, 0, buf, sizeof(buf)), 0);
    Completion c = { 0 };
    assert_int_equal(blk_flush(f->blk, on_done, &c), 0);
    int total;
    wait_calls(f->loop, &c, 1, &total);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.ret, 0);
    BlockStats st;
    blk_get_stats(f->blk, &st);
    assert_int_equal(st.flush_ops, 1);
    assert_int_equal(st.wr_ops, 1);
}

static void fill_disk_region(BlockBackend *blk, uint64_t off, size_t len,
                             unsigned seed)
{
    uint8_t *buf = NULL;
    assert_int_equal(posix_memalign((void **)&buf, 4096, len), 0);
    fill_pattern(buf, len, seed);
    assert_int_equal(blk_pwrite_sync(blk, off, buf, len), 0);
    free(buf);
}

/* Checks [off, off+len) reads back zeroes and what surrounds it is kept. */
static void expect_zeroed(BlockBackend *blk, uint64_t base, size_t total,
                          uint64_t off, size_t len, unsigned seed)
{
    uint8_t *buf = NULL;
    assert_int_equal(posix_memalign((void **)&buf, 4096, total), 0);
    assert_int_equal(blk_pread_sync(blk, base, buf, total), 0);
    size_t head = off - base;
    assert_int_equal(check_pattern(buf, head, seed), 0);
    assert_int_equal(all_zero(buf + head, len), 0);
    uint8_t *tail = buf + head + len;
    for (size_t i = 0; i < total - head - len; i++) {
        assert_int_equal(tail[i], pattern_byte(seed, head + len + i));
    }
    free(buf);
}

static void test_discard(void **state)
{
    Fixture *f = *state;
    f->blk = open_image(f, false, false);
    assert_non_null(f->blk);
    fill_disk_region(f->blk, MiB, MiB, 21);
    Completion c = { 0 };
    assert_int_equal(blk_discard(f->blk, MiB + 256 * 1024, 256 * 1024,
                                 on_done, &c), 0);
    blk_drain(f->blk);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.ret, 0);
    expect_zeroed(f->blk, MiB, MiB, MiB + 256 * 1024, 256 * 1024, 21);
}

static void zero_and_check(Fixture *f, bool may_unmap, unsigned seed,
                           uint64_t len)
{
    fill_disk_region(f->blk, 0, 8 * MiB, seed);
    Completion c = { 0 };
    assert_int_equal(blk_write_zeroes(f->blk, 4096, len, may_unmap, on_done,
                                      &c), 0);
    int total;
    wait_calls(f->loop, &c, 1, &total);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.ret, 0);
    expect_zeroed(f->blk, 0, 8 * MiB, 4096, len, seed);
}

static void test_write_zeroes(void **state)
{
    Fixture *f = *state;
    f->blk = open_image(f, false, false);
    assert_non_null(f->blk);
    zero_and_check(f, false, 31, 64 * 1024);
    zero_and_check(f, true, 32, 3 * MiB);
    BlockStats st;
    blk_get_stats(f->blk, &st);
    assert_int_equal(st.zero_ops, 2);
}

/* A file system that refuses both fallocate modes: zeroes are written,
 * in several chunks for a multi-MiB range. */
static void test_write_zeroes_fallback(void **state)
{
    Fixture *f = *state;
    f->blk = open_image(f, true, false);
    assert_non_null(f->blk);
    f->blk->no_punch_hole = true;
    f->blk->no_zero_range = true;
    zero_and_check(f, true, 41, 5 * MiB + 8192);
    zero_and_check(f, false, 42, 4096);
    BlockStats st;
    blk_get_stats(f->blk, &st);
    assert_int_equal(st.zero_fallbacks, 2);
    assert_int_equal(st.zero_ops, 2);
}

/* shmem (memfd) punches holes but refuses FALLOC_FL_ZERO_RANGE: the
 * refusal is remembered and zeroes are written instead. */
static void test_write_zeroes_refused_by_fs(void **state)
{
    Fixture *f = *state;
    int mfd = memfd_create("blk-zero", MFD_CLOEXEC);
    assert_true(mfd >= 0);
    assert_int_equal(ftruncate(mfd, (off_t)DISK_SIZE), 0);
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", mfd);
    remove_image(f->image);
    f->image = strdup(path);
    f->blk = open_image(f, false, false);
    assert_non_null(f->blk);
    zero_and_check(f, false, 61, 2 * MiB);
    assert_true(f->blk->no_zero_range);
    zero_and_check(f, false, 62, 4096);
    /* may_unmap: a punched hole reads back zeroes, no fallback needed. */
    zero_and_check(f, true, 63, MiB);
    BlockStats st;
    blk_get_stats(f->blk, &st);
    assert_int_equal(st.zero_fallbacks, 2);
    assert_int_equal(st.zero_ops, 3);
    blk_close(f->blk);
    f->blk = NULL;
    close(mfd);
    free(f->image);
    f->image = NULL;
}

static void test_read_only(void **state)
{
    Fixture *f = *state;
    BlockBackend *rw = open_image(f, false, false);
    fill_disk_region(rw, 0, 4096, 51);
    blk_close(rw);
    f->blk = open_image(f, false, true);
    assert_non_null(f->blk);
    assert_true(blk_is_read_only(f->blk));
    assert_false(blk_is_active(f->blk));
    static uint8_t buf[4096];
    Completion c = { 0 };
    struct iovec iov = { buf, sizeof(buf) };
    assert_int_equal(blk_pwritev(f->blk, 0, &iov, 1, false, on_done, &c),
                     -EPERM);
    assert_int_equal(blk_flush(f->blk, on_done, &c), -EPERM);
    assert_int_equal(blk_discard(f->blk, 0, 4096, on_done, &c), -EPERM);
    assert_int_equal(blk_write_zeroes(f->blk, 0, 4096, false, on_done, &c),
                     -EPERM);
    assert_int_equal(c.calls, 0);
    assert_int_equal(blk_pread_sync(f->blk, 0, buf, sizeof(buf)), 0);
    assert_int_equal(check_pattern(buf, sizeof(buf), 51), 0);
}

/* A completion that submits a follow-up request: drain waits for both. */
typedef struct Chain {
    BlockBackend *blk;
    struct iovec iov;
    int steps;
} Chain;

static void on_chain(void *opaque, int ret)
{
    Chain *ch = opaque;
    assert_int_equal(ret, 0);
    if (++ch->steps < 3) {
        assert_int_equal(blk_preadv(ch->blk, 0, &ch->iov, 1, on_chain, ch),
                         0);
    }
}

static void test_drain(void **state)
{
    Fixture *f = *state;
    f->blk = open_image(f, false, false);
    assert_non_null(f->blk);
    static uint8_t bufs[QD - 1][4096];
    Completion c[QD - 1] = { 0 };
    for (int i = 0; i < QD - 1; i++) {
        struct iovec iov = { bufs[i], 4096 };
        assert_int_equal(blk_preadv(f->blk, (uint64_t)i * 4096, &iov, 1,
                                    on_done, &c[i]), 0);
    }
    static uint8_t chain_buf[512];
    Chain ch = { f->blk, { chain_buf, sizeof(chain_buf) }, 0 };
    assert_int_equal(blk_preadv(f->blk, 0, &ch.iov, 1, on_chain, &ch), 0);
    /* Requests in flight pin the backend to its loop. */
    EventLoop *other = loop_new(NULL);
    Error *err = NULL;
    assert_false(blk_attach_loop(f->blk, other, &err));
    assert_non_null(strstr(error_get_pretty(err), "in flight"));
    error_free(err);
    blk_drain(f->blk);
    assert_int_equal(blk_in_flight(f->blk), 0);
    for (int i = 0; i < QD - 1; i++) {
        assert_int_equal(c[i].calls, 1);
    }
    assert_int_equal(ch.steps, 3);
    assert_true(blk_attach_loop(f->blk, other, NULL));
    assert_true(blk_get_loop(f->blk) == other);
    blk_close(f->blk);
    f->blk = NULL;
    loop_free(other);
}

typedef struct StatusResult {
    int calls;
    int ret;
    bool allocated;
    uint64_t bytes;
} StatusResult;

static void on_status(void *opaque, int ret, bool allocated, uint64_t bytes)
{
    StatusResult *r = opaque;
    r->calls++;
    r->ret = ret;
    r->allocated = allocated;
    r->bytes = bytes;
}

/* One blk_block_status answered on the loop. */
static StatusResult status_at(Fixture *f, uint64_t off, uint64_t max)
{
    StatusResult r = { 0 };
    assert_int_equal(blk_block_status(f->blk, off, max, on_status, &r), 0);
    assert_int_equal(blk_in_flight(f->blk), 1);
    uint64_t deadline = clock_ms() + 10000;
    while (!r.calls && clock_ms() < deadline) {
        loop_run_once(f->loop, 100);
    }
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.ret, 0);
    assert_int_equal(blk_in_flight(f->blk), 0);
    return r;
}

/* Holes and data of a sparse image (SEEK_HOLE / SEEK_DATA), each extent
 * cut at max_bytes; drain waits for a status job too. */
static void test_block_status(void **state)
{
    Fixture *f = *state;
    f->blk = open_image(f, false, false);
    assert_non_null(f->blk);
    fill_disk_region(f->blk, 2 * MiB, MiB, 5);
    assert_int_equal(blk_flush_sync(f->blk), 0);

    StatusResult r = status_at(f, 0, DISK_SIZE);
    assert_false(r.allocated);
    assert_int_equal(r.bytes, 2 * MiB);
    r = status_at(f, 2 * MiB + 4096, DISK_SIZE);
    assert_true(r.allocated);
    assert_int_equal(r.bytes, MiB - 4096);
    r = status_at(f, 2 * MiB, 8192);
    assert_true(r.allocated);
    assert_int_equal(r.bytes, 8192);
    r = status_at(f, 3 * MiB, DISK_SIZE);
    assert_false(r.allocated);
    assert_int_equal(r.bytes, DISK_SIZE - 3 * MiB);

    /* Outside the disk, or nothing asked: refused without a callback. */
    StatusResult none = { 0 };
    assert_int_equal(blk_block_status(f->blk, DISK_SIZE, 1, on_status,
                                      &none), -EINVAL);
    assert_int_equal(blk_block_status(f->blk, 0, 0, on_status, &none),
                     -EINVAL);
    assert_int_equal(none.calls, 0);

    /* blk_drain returns only after the job's callback ran. */
    assert_int_equal(blk_block_status(f->blk, 0, DISK_SIZE, on_status,
                                      &none), 0);
    blk_drain(f->blk);
    assert_int_equal(none.calls, 1);
    assert_int_equal(blk_in_flight(f->blk), 0);
}

static void test_open_errors(void **state)
{
    Fixture *f = *state;
    Error *err = NULL;
    BlockOpenOptions opts = { .node_name = "x", .filename = "no-such-img" };
    assert_null(blk_open(&opts, &err));
    assert_non_null(strstr(error_get_pretty(err), "no-such-img"));
    error_free_or_null(&err);
    f->blk = open_image(f, false, false);
    opts.filename = f->image;
    opts.node_name = "disk0";
    assert_null(blk_open(&opts, &err));
    assert_non_null(strstr(error_get_pretty(err), "already exists"));
    error_free(err);
    assert_true(blk_by_name("disk0") == f->blk);
    assert_null(blk_by_name("x"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_qd32_buffered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_qd32_direct, setup, teardown),
        cmocka_unit_test_setup_teardown(test_direct_misaligned, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_out_of_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush, setup, teardown),
        cmocka_unit_test_setup_teardown(test_discard, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_zeroes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_zeroes_fallback, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_write_zeroes_refused_by_fs,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_block_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
