/* Split virtqueue engine: chains laid out by a guest-style driver in a
 * buffer standing for guest memory, read back through the used ring. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "virtio/virtqueue.h"
#include "guest-driver.h"

#define MEM_GPA   0x100000ull
#define MEM_SIZE  0x100000ull       /* two regions of 512 KiB */
#define QSIZE     16
#define BUF_GPA   (MEM_GPA + 0x10000)
#define ITABLE_GPA (MEM_GPA + 0x8000)
#define BIG_GPA   0x100000000ull    /* 8 GiB reserved, never touched */
#define BIG_SIZE  0x200000000ull

typedef struct Fixture {
    uint8_t *mem;
    uint8_t *big;
    GuestMemory gm;
    VirtQueue vq;
    GuestDriver drv;
    int notified;
    int broken;
    int idle;
    uint8_t log[64];            /* covers 512 pages = 2 MiB */
} Fixture;

static void on_notify(VirtQueue *vq, void *opaque)
{
    ((Fixture *)opaque)->notified++;
}

static void on_broken(VirtQueue *vq, void *opaque)
{
    ((Fixture *)opaque)->broken++;
}

static void on_idle(VirtQueue *vq, void *opaque)
{
    ((Fixture *)opaque)->idle++;
}

static const VirtQueueHooks hooks = {
    .notify = on_notify, .broken = on_broken, .idle = on_idle,
};

static int setup(void **state)
{
    Fixture *f = calloc(1, sizeof(*f));
    f->mem = aligned_alloc(4096, MEM_SIZE);
    memset(f->mem, 0, MEM_SIZE);
    /* Two regions that meet at MEM_GPA + 512 KiB. */
    f->gm.regions[0] = (GuestRegion){ MEM_GPA, MEM_SIZE / 2, 0x7000000,
                                      f->mem };
    f->gm.regions[1] = (GuestRegion){ MEM_GPA + MEM_SIZE / 2, MEM_SIZE / 2,
                                      0x9000000, f->mem + MEM_SIZE / 2 };
    /* A big inaccessible region: chain walks never touch buffers. */
    f->big = mmap(NULL, BIG_SIZE, PROT_NONE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    assert_true(f->big != MAP_FAILED);
    f->gm.regions[2] = (GuestRegion){ BIG_GPA, BIG_SIZE, 0x200000000ull,
                                      f->big };
    f->gm.nregions = 3;
    drv_init(&f->drv, f->mem, MEM_GPA, QSIZE, MEM_GPA);
    virtqueue_init(&f->vq, 0, &f->gm, &hooks, f);
    assert_true(virtqueue_set_num(&f->vq, QSIZE));
    virtqueue_set_addr(&f->vq, f->drv.desc_gpa, f->drv.avail_gpa,
                       f->drv.used_gpa);
    virtqueue_set_features(&f->vq, BIT_ULL(VIRTIO_RING_F_INDIRECT_DESC));
    assert_null(virtqueue_map_rings(&f->vq));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    Fixture *f = *state;
    munmap(f->big, BIG_SIZE);
    free(f->mem);
    free(f);
    return 0;
}

static void test_direct_chain(void **state)
{
    Fixture *f = *state;
    memcpy(drv_ptr(&f->drv, BUF_GPA), "request!", 8);
    DriverBuf b[] = {
        { BUF_GPA, 8, false },
        { BUF_GPA + 0x1000, 100, true },
        { BUF_GPA + 0x2000, 28, true },
    };
    uint16_t head = drv_add_direct(&f->drv, b, 3);
    drv_publish(&f->drv, head);

    VirtqElement *e = virtqueue_pop(&f->vq, sizeof(*e));
    assert_non_null(e);
    assert_int_equal(e->head, head);
    assert_int_equal(e->out_num, 1);
    assert_int_equal(e->in_num, 2);
    assert_memory_equal(e->out_sg[0].iov_base, "request!", 8);
    assert_ptr_equal(e->in_sg[1].iov_base, drv_ptr(&f->drv, BUF_GPA + 0x2000));
    assert_int_equal(e->in_sg[1].iov_len, 28);
    assert_null(virtqueue_pop(&f->vq, sizeof(*e)));

    iov_from_buf(e->in_sg, e->in_num, 0, "reply", 5);
    virtqueue_push(&f->vq, e, 5);
    virtqueue_notify(&f->vq);
    free(e);

    uint32_t id, len;
    assert_true(drv_get_used(&f->drv, &id, &len));
    assert_int_equal(id, head);
    assert_int_equal(len, 5);
    assert_memory_equal(drv_ptr(&f->drv, BUF_GPA + 0x1000), "reply", 5);
    assert_false(drv_get_used(&f->drv, &id, &len));
    assert_int_equal(f->notified, 1);
    assert_int_equal(f->broken, 0);
    /* Nothing new on the used ring: no interrupt. */
    virtqueue_notify(&f->vq);
    assert_int_equal(f->notified, 1);
}

static void test_buffer_split_across_regions(void **state)
{
    Fixture *f = *state;
    uint64_t edge = MEM_GPA + MEM_SIZE / 2;
    DriverBuf b[] = { { edge - 100, 300, false } };
    drv_publish(&f->drv, drv_add_direct(&f->drv, b, 1));

    VirtqElement *e = virtqueue_pop(&f->vq, sizeof(*e));
    assert_non_null(e);
    assert_int_equal(e->out_num, 2);
    assert_int_equal(e->out_sg[0].iov_len, 100);
    assert_int_equal(e->out_sg[1].iov_len, 200);
    assert_ptr_equal(e->out_sg[1].iov_base, f->gm.regions[1].hva);
    free(e);
}

static void test_indirect_chain(void **state)
{
    Fixture *f = *state;
    memcpy(drv_ptr(&f->drv, BUF_GPA), "abcd", 4);
    memcpy(drv_ptr(&f->drv, BUF_GPA + 0x100), "efgh", 4);
    DriverBuf b[] = {
        { BUF_GPA, 4, false },
        { BUF_GPA + 0x100, 4, false },
        { BUF_GPA + 0x3000, 512, true },
    };
    uint16_t head = drv_add_indirect(&f->drv, ITABLE_GPA, b, 3);
    drv_publish(&f->drv, head);

    VirtqElement *e = virtqueue_pop(&f->vq, sizeof(*e) + 64);
    assert_non_null(e);
    assert_int_equal(e->head, head);
    assert_int_equal(e->out_num, 2);
    assert_int_equal(e->in_num, 1);
    char out[8];
    assert_int_equal(iov_to_buf(e->out_sg, e->out_num, 0, out, 8), 8);
    assert_memory_equal(out, "abcdefgh", 8);
    assert_int_equal(e->in_sg[0].iov_len, 512);
    virtqueue_push(&f->vq, e, 4096);   /* clamped to the buffers' size */
    free(e);
    uint32_t id, len;
    assert_true(drv_get_used(&f->drv, &id, &len));
    assert_int_equal(id, head);
    assert_int_equal(len, 512);
}

static void pop_push_one(Fixture *f)
{
    DriverBuf b[] = { { BUF_GPA, 16, true } };
    drv_publish(&f->drv, drv_add_direct(&f->drv, b, 1));
    VirtqElement *e = virtqueue_pop(&f->vq, sizeof(*e));
    assert_non_null(e);
    virtqueue_push(&f->vq, e, 16);
    virtqueue_notify(&f->vq);
    free(e);
}

static void test_event_idx(void **state)
{
    Fixture *f = *state;
    virtqueue_set_features(&f->vq, BIT_ULL(VIRTIO_RING_F_EVENT_IDX));
    drv_set_used_event(&f->drv, 0);
    pop_push_one(f);                   /* used 0 -> 1 passes event 0 */
    assert_int_equal(f->notified, 1);
    /* The device asks for a kick at the next avail entry. */
    assert_int_equal(drv_avail_event(&f->drv), 1);
    pop_push_one(f);                   /* used 1 -> 2, event still 0 */
    assert_int_equal(f->notified, 1);
    drv_set_used_event(&f->drv, 2);
    pop_push_one(f);                   /* used 2 -> 3 passes event 2 */
    assert_int_equal(f->notified, 2);
    drv_set_used_event(&f->drv, 10);
    pop_push_one(f);
    assert_int_equal(f->notified, 2);
    assert_int_equal(drv_avail_event(&f->drv), 4);
}

static void test_no_interrupt_flag(void **state)
{
    Fixture *f = *state;
    drv_set_avail_flags(&f->drv, VIRTQ_AVAIL_F_NO_INTERRUPT);
    pop_push_one(f);
    assert_int_equal(f->notified, 0);
    /* NOTIFY_ON_EMPTY overrides suppression once the queue is empty. */
    virtqueue_set_features(&f->vq, BIT_ULL(VIRTIO_F_NOTIFY_ON_EMPTY));
    pop_push_one(f);
    assert_int_equal(f->notified, 1);
    drv_set_avail_flags(&f->drv, 0);
}

static bool page_dirty(Fixture *f, uint64_t gpa)
{
    uint64_t page = gpa / 4096;
    return f->log[page / 8] & (1u << (page % 8));
}

static void test_dirty_log(void **state)
{
    Fixture *f = *state;
    f->gm.log = f->log;
    f->gm.log_size = sizeof(f->log);
    f->vq.log_used = true;
    f->vq.used_log_gpa = f->drv.used_gpa;
    /* A readable page, then 3 writable pages of which 2 get written. */
    DriverBuf b[] = {
        { BUF_GPA + 0x10000, 64, false },
        { BUF_GPA + 0x20000, 4096, true },
        { BUF_GPA + 0x21000, 4096, true },
        { BUF_GPA + 0x22000, 4096, true },
    };
    drv_publish(&f->drv, drv_add_direct(&f->drv, b, 4));
    VirtqElement *e = virtqueue_pop(&f->vq, sizeof(*e));
    assert_non_null(e);
    virtqueue_push(&f->vq, e, 4097);
    free(e);
    assert_true(page_dirty(f, BUF_GPA + 0x20000));
    assert_true(page_dirty(f, BUF_GPA + 0x21000));
    assert_false(page_dirty(f, BUF_GPA + 0x22000));
    assert_false(page_dirty(f, BUF_GPA + 0x10000));
    assert_true(page_dirty(f, f->drv.used_gpa));
    assert_false(page_dirty(f, f->drv.desc_gpa));
}

/* A device that wrote more than it reports (a READ that failed midway):
 * the used ring says len, the log covers everything written, and never
 * more than the chain's writable buffers. */
static void test_dirty_log_written_beyond_len(void **state)
{
    Fixture *f = *state;
    f->gm.log = f->log;
    f->gm.log_size = sizeof(f->log);
    DriverBuf b[] = {
        { BUF_GPA + 0x10000, 64, false },
        { BUF_GPA + 0x20000, 108, true },       /* response header */
        { BUF_GPA + 0x21000, 8192, true },      /* data-in */
    };
    drv_publish(&f->drv, drv_add_direct(&f->drv, b, 3));
    VirtqElement *e = virtqueue_pop(&f->vq, sizeof(*e));
    assert_non_null(e);
    virtqueue_push_written(&f->vq, e, 108, 1u << 20);
    free(e);
    uint32_t id, len;
    assert_true(drv_get_used(&f->drv, &id, &len));
    assert_int_equal(len, 108);
    assert_true(page_dirty(f, BUF_GPA + 0x20000));
    assert_true(page_dirty(f, BUF_GPA + 0x21000));
    assert_true(page_dirty(f, BUF_GPA + 0x22000));
    assert_false(page_dirty(f, BUF_GPA + 0x23000));
    assert_false(page_dirty(f, BUF_GPA + 0x10000));

    /* 'written' below len still logs len bytes. */
    memset(f->log, 0, sizeof(f->log));
    drv_publish(&f->drv, drv_add_direct(&f->drv, b, 3));
    e = virtqueue_pop(&f->vq, sizeof(*e));
    assert_non_null(e);
    virtqueue_push_written(&f->vq, e, 108 + 4097, 0);
    free(e);
    assert_true(page_dirty(f, BUF_GPA + 0x21000));
    assert_true(page_dirty(f, BUF_GPA + 0x22000));
}

/* A write past the end of the log QEMU gave cannot be marked: it is
 * counted (x-vhost-user-written-pages "log-missed-pages"), page by page,
 * and the pages the log covers are still marked. */
static void test_dirty_log_missed(void **state)
{
    Fixture *f = *state;
    f->gm.log = f->log;
    /* Covers guest pages below the second region only. */
    f->gm.log_size = (MEM_GPA + MEM_SIZE / 2) / 4096 / 8;
    uint64_t last_logged = MEM_GPA + MEM_SIZE / 2 - 0x1000;
    DriverBuf b[] = {
        { BUF_GPA, 64, false },
        { last_logged, 0x3000, true },  /* 1 page logged, 2 past the log */
    };
    uint64_t before = guest_mem_log_missed();
    drv_publish(&f->drv, drv_add_direct(&f->drv, b, 2));
    VirtqElement *e = virtqueue_pop(&f->vq, sizeof(*e));
    assert_non_null(e);
    virtqueue_push(&f->vq, e, 0x3000);
    free(e);
    assert_true(page_dirty(f, last_logged));
    assert_int_equal(guest_mem_log_missed() - before, 2);

    /* Inside the log: nothing more is counted. */
    b[1] = (DriverBuf){ BUF_GPA + 0x1000, 0x2000, true };
    drv_publish(&f->drv, drv_add_direct(&f->drv, b, 2));
    e = virtqueue_pop(&f->vq, sizeof(*e));
    assert_non_null(e);
    virtqueue_push(&f->vq, e, 0x2000);
    free(e);
    assert_true(page_dirty(f, BUF_GPA + 0x2000));
    assert_int_equal(guest_mem_log_missed() - before, 2);
}

static void test_stop_waits_for_inflight(void **state)
{
    Fixture *f = *state;
    DriverBuf b[] = { { BUF_GPA, 16, true } };
    drv_publish(&f->drv, drv_add_direct(&f->drv, b, 1));
    drv_publish(&f->drv, drv_add_direct(&f->drv, b, 1));
    VirtqElement *e = virtqueue_pop(&f->vq, sizeof(*e));
    assert_non_null(e);
    virtqueue_set_stopped(&f->vq, true);
    assert_int_equal(f->idle, 0);
    assert_null(virtqueue_pop(&f->vq, sizeof(*e)));
    virtqueue_push(&f->vq, e, 0);
    free(e);
    assert_int_equal(f->idle, 1);
    /* The second chain stays available: the base says where to resume. */
    assert_int_equal(f->vq.last_avail_idx, 1);
    virtqueue_set_stopped(&f->vq, false);
    e = virtqueue_pop(&f->vq, sizeof(*e));
    assert_non_null(e);
    free(e);
}

/* ---- malformed chains: each breaks the queue, none crashes ---- */

typedef void BadSetup(Fixture *f);

static void bad_loop(Fixture *f)
{
    drv_write_desc(&f->drv, f->drv.desc_gpa, 0, BUF_GPA, 8, 1, 1);
    drv_write_desc(&f->drv, f->drv.desc_gpa, 1, BUF_GPA, 8, 1, 0);
    drv_publish(&f->drv, 0);
}

static void bad_self_loop(Fixture *f)
{
    drv_write_desc(&f->drv, f->drv.desc_gpa, 3, BUF_GPA, 8, 1, 3);
    drv_publish(&f->drv, 3);
}

static void bad_next_out_of_range(Fixture *f)
{
    drv_write_desc(&f->drv, f->drv.desc_gpa, 0, BUF_GPA, 8, 1, QSIZE);
    drv_publish(&f->drv, 0);
}

static void bad_head_out_of_range(Fixture *f)
{
    drv_publish(&f->drv, QSIZE + 3);
}

static void bad_avail_jump(Fixture *f)
{
    drv_set_avail_idx(&f->drv, QSIZE + 1);
}

static void bad_unmapped_buffer(Fixture *f)
{
    drv_write_desc(&f->drv, f->drv.desc_gpa, 0, MEM_GPA + MEM_SIZE, 8, 0, 0);
    drv_publish(&f->drv, 0);
}

static void bad_wrapping_buffer(Fixture *f)
{
    drv_write_desc(&f->drv, f->drv.desc_gpa, 0, UINT64_MAX - 10, 100, 0, 0);
    drv_publish(&f->drv, 0);
}

static void bad_read_after_write(Fixture *f)
{
    DriverBuf b[] = { { BUF_GPA, 8, true }, { BUF_GPA + 8, 8, false } };
    drv_publish(&f->drv, drv_add_direct(&f->drv, b, 2));
}

static void bad_indirect_len(Fixture *f)
{
    drv_write_desc(&f->drv, f->drv.desc_gpa, 0, ITABLE_GPA, 17, 4, 0);
    drv_publish(&f->drv, 0);
}

static void bad_indirect_empty(Fixture *f)
{
    drv_write_desc(&f->drv, f->drv.desc_gpa, 0, ITABLE_GPA, 0, 4, 0);
    drv_publish(&f->drv, 0);
}

static void bad_indirect_unmapped(Fixture *f)
{
    drv_write_desc(&f->drv, f->drv.desc_gpa, 0, MEM_GPA + MEM_SIZE - 16, 64,
                   4, 0);
    drv_publish(&f->drv, 0);
}

static void bad_indirect_nested(Fixture *f)
{
    drv_write_desc(&f->drv, ITABLE_GPA, 0, ITABLE_GPA + 0x100, 32, 4, 0);
    drv_write_desc(&f->drv, f->drv.desc_gpa, 0, ITABLE_GPA, 16, 4, 0);
    drv_publish(&f->drv, 0);
}

static void bad_indirect_with_next(Fixture *f)
{
    DriverBuf b[] = { { BUF_GPA, 8, false } };
    drv_write_chain(&f->drv, ITABLE_GPA, 0, b, 1);
    drv_write_desc(&f->drv, f->drv.desc_gpa, 0, ITABLE_GPA, 16, 4 | 1, 1);
    drv_publish(&f->drv, 0);
}

static void bad_indirect_loop(Fixture *f)
{
    drv_write_desc(&f->drv, ITABLE_GPA, 0, BUF_GPA, 8, 1, 1);
    drv_write_desc(&f->drv, ITABLE_GPA, 1, BUF_GPA, 8, 1, 0);
    drv_write_desc(&f->drv, f->drv.desc_gpa, 0, ITABLE_GPA, 32, 4, 0);
    drv_publish(&f->drv, 0);
}

static void bad_indirect_next_past_table(Fixture *f)
{
    drv_write_desc(&f->drv, ITABLE_GPA, 0, BUF_GPA, 8, 1, 2);
    drv_write_desc(&f->drv, f->drv.desc_gpa, 0, ITABLE_GPA, 32, 4, 0);
    drv_publish(&f->drv, 0);
}

static void bad_indirect_without_feature(Fixture *f)
{
    virtqueue_set_features(&f->vq, 0);
    DriverBuf b[] = { { BUF_GPA, 8, false } };
    drv_publish(&f->drv, drv_add_indirect(&f->drv, ITABLE_GPA, b, 1));
}

static void bad_len_overflow(Fixture *f)
{
    /* Two writable buffers of 3 GiB each in the big reserved region: the
     * total no longer fits the used ring's 32-bit length. */
    drv_write_desc(&f->drv, f->drv.desc_gpa, 0, BIG_GPA, 0xC0000000u, 2 | 1,
                   1);
    drv_write_desc(&f->drv, f->drv.desc_gpa, 1, BIG_GPA, 0xC0000000u, 2, 0);
    drv_publish(&f->drv, 0);
}

static void bad_too_many_buffers(Fixture *f)
{
    /* An indirect table of 1100 one-byte buffers. */
    for (uint16_t i = 0; i < 1100; i++) {
        drv_write_desc(&f->drv, BUF_GPA, i, BUF_GPA + 0x10000 + i, 1,
                       i + 1 < 1100 ? 1 : 0, (uint16_t)(i + 1));
    }
    drv_write_desc(&f->drv, f->drv.desc_gpa, 0, BUF_GPA, 16 * 1100, 4, 0);
    drv_publish(&f->drv, 0);
}

static void test_malformed(void **state)
{
    static const struct {
        BadSetup *setup;
        const char *reason;     /* a word of the expected reason */
    } cases[] = {
        { bad_loop, "loops" },
        { bad_self_loop, "loops" },
        { bad_next_out_of_range, "next index out of range" },
        { bad_head_out_of_range, "head out of range" },
        { bad_avail_jump, "avail index moved" },
        { bad_unmapped_buffer, "outside guest memory" },
        { bad_wrapping_buffer, "outside guest memory" },
        { bad_read_after_write, "readable descriptor after" },
        { bad_indirect_len, "indirect table length" },
        { bad_indirect_empty, "indirect table length" },
        { bad_indirect_unmapped, "indirect table outside" },
        { bad_indirect_nested, "nested" },
        { bad_indirect_with_next, "with NEXT" },
        { bad_indirect_loop, "loops" },
        { bad_indirect_next_past_table, "next index out of range" },
        { bad_indirect_without_feature, "without the feature" },
        { bad_len_overflow, "overflows" },
        { bad_too_many_buffers, "too many buffers" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        void *st;
        setup(&st);
        Fixture *f = st;
        cases[i].setup(f);
        assert_null(virtqueue_pop(&f->vq, sizeof(VirtqElement)));
        assert_true(f->vq.broken);
        if (!strstr(f->vq.broken_reason, cases[i].reason)) {
            fail_msg("case %zu: reason \"%s\", expected \"%s\"", i,
                     f->vq.broken_reason, cases[i].reason);
        }
        assert_int_equal(f->broken, 1);
        /* Broken stays broken and silent: no used entries, no pop. */
        assert_null(virtqueue_pop(&f->vq, sizeof(VirtqElement)));
        assert_int_equal(drv_used_idx(&f->drv), 0);
        assert_int_equal(f->broken, 1);
        teardown(&st);
    }
}

static void test_bad_ring_setup(void **state)
{
    Fixture *f = *state;
    assert_false(virtqueue_set_num(&f->vq, 0));
    assert_false(virtqueue_set_num(&f->vq, 24));
    assert_false(virtqueue_set_num(&f->vq, 65536));
    assert_true(virtqueue_set_num(&f->vq, QSIZE));
    virtqueue_set_addr(&f->vq, f->drv.desc_gpa + 8, f->drv.avail_gpa,
                       f->drv.used_gpa);
    assert_non_null(virtqueue_map_rings(&f->vq));
    virtqueue_set_addr(&f->vq, f->drv.desc_gpa, f->drv.avail_gpa,
                       MEM_GPA + MEM_SIZE - 8);
    assert_non_null(virtqueue_map_rings(&f->vq));
    assert_false(virtqueue_is_ready(&f->vq));
    assert_null(virtqueue_pop(&f->vq, sizeof(VirtqElement)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_direct_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_buffer_split_across_regions,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_indirect_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_idx, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_interrupt_flag, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dirty_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dirty_log_written_beyond_len,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_dirty_log_missed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stop_waits_for_inflight, setup,
                                        teardown),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test_setup_teardown(test_bad_ring_setup, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
