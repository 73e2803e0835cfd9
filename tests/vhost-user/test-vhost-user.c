/* vhost-user back end driven by a test front end over a socketpair: real
 * messages, a memfd as guest memory, eventfds for kick and call, the
 * device's data path on an I/O thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vhost-user/vhost-user.h"
#include "vu-client.h"
#include "guest-driver.h"

#define MEM_GPA   0x100000ull
#define MEM_SIZE  0x100000ull
#define MEM_UVA   0x7f0000000000ull     /* the front end's address */
#define QSIZE     16
#define BUF_GPA   (MEM_GPA + 0x20000)
#define LOG_SIZE  4096

typedef struct Fixture {
    EventLoop *loop;
    IOThread *iot;
    VhostUserDev *dev;
    int sock;
    int memfd, logfd, kickfd, callfd;
    uint8_t *mem, *log;
    GuestDriver drv;
    atomic_int kicks, completed;
    atomic_bool hold;
    VirtqElement *held;         /* data loop */
    VirtQueue *held_vq;
} Fixture;

static void dev_kick(VhostUserDev *dev, VirtQueue *vq, void *opaque)
{
    Fixture *f = opaque;
    VirtqElement *e;
    atomic_fetch_add(&f->kicks, 1);
    while ((e = virtqueue_pop(vq, sizeof(*e))) != NULL) {
        if (atomic_load(&f->hold) && !f->held) {
            f->held = e;
            f->held_vq = vq;
            continue;
        }
        size_t n = iov_from_buf(e->in_sg, e->in_num, 0, "done", 4);
        virtqueue_push(vq, e, (uint32_t)n);
        free(e);
        atomic_fetch_add(&f->completed, 1);
    }
    virtqueue_notify(vq);
}

static void release_held(void *opaque)
{
    Fixture *f = opaque;
    virtqueue_push(f->held_vq, f->held, 0);
    virtqueue_notify(f->held_vq);
    free(f->held);
    f->held = NULL;
}

static const VhostUserDevOps ops = { .queue_kick = dev_kick };

static void connect_client(Fixture *f)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
                     0);
    f->sock = sv[0];
    assert_true(vhost_user_dev_add_conn(f->dev, sv[1], NULL));
}

static Fixture *make_fixture(bool dirty_log)
{
    Fixture *f = calloc(1, sizeof(*f));
    f->loop = loop_new(NULL);
    f->iot = iothread_new("test-io", NULL);
    assert_non_null(f->iot);
    VhostUserDevConfig cfg = {
        .num_queues = 3, .device_features = 1ull << 1,
        .dirty_log = dirty_log, .main_loop = f->loop, .iothread = f->iot,
    };
    f->dev = vhost_user_dev_new(&cfg, &ops, f, NULL);
    assert_non_null(f->dev);
    f->memfd = vuc_memfd("guest", MEM_SIZE, VUC_QEMU_SEALS);
    assert_true(f->memfd >= 0);
    f->mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
                  f->memfd, 0);
    f->logfd = vuc_memfd("log", LOG_SIZE, VUC_QEMU_SEALS);
    assert_true(f->logfd >= 0);
    f->log = mmap(NULL, LOG_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
                  f->logfd, 0);
    f->kickfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    f->callfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    drv_init(&f->drv, f->mem, MEM_GPA, QSIZE, MEM_GPA);
    connect_client(f);
    return f;
}

static int setup(void **state)
{
    *state = make_fixture(true);
    return 0;
}

static int teardown(void **state)
{
    Fixture *f = *state;
    close(f->sock);
    vhost_user_dev_free(f->dev);
    iothread_free(f->iot);
    loop_free(f->loop);
    munmap(f->mem, MEM_SIZE);
    munmap(f->log, LOG_SIZE);
    close(f->memfd);
    close(f->logfd);
    close(f->kickfd);
    close(f->callfd);
    free(f);
    return 0;
}

static uint64_t get_u64(Fixture *f, uint32_t request)
{
    uint32_t req, size;
    uint64_t v = 0;
    assert_true(vuc_send(f->sock, request, 0, NULL, 0, NULL, 0));
    assert_true(vuc_recv(f->loop, f->sock, &req, &v, &size));
    assert_int_equal(req, request);
    assert_int_equal(size, 8);
    return v;
}

/* Sends with NEED_REPLY and returns the REPLY_ACK value. */
static uint64_t send_acked(Fixture *f, uint32_t request, const void *p,
                           uint32_t size, const int *fds, unsigned nfds)
{
    uint32_t req, rsize;
    uint64_t v = 99;
    assert_true(vuc_send(f->sock, request, VHOST_USER_NEED_REPLY_MASK, p,
                         size, fds, nfds));
    assert_true(vuc_recv(f->loop, f->sock, &req, &v, &rsize));
    assert_int_equal(req, request);
    return v;
}

static void negotiate(Fixture *f, uint64_t extra_features)
{
    uint64_t feat = get_u64(f, VHOST_USER_GET_FEATURES);
    assert_true(feat & BIT_ULL(VIRTIO_F_VERSION_1));
    assert_true(feat & BIT_ULL(VHOST_USER_F_PROTOCOL_FEATURES));
    assert_true(feat & BIT_ULL(1));             /* the device's own */
    uint64_t proto = get_u64(f, VHOST_USER_GET_PROTOCOL_FEATURES);
    assert_true(proto & BIT_ULL(VHOST_USER_PROTOCOL_F_REPLY_ACK));
    uint64_t want_proto = BIT_ULL(VHOST_USER_PROTOCOL_F_REPLY_ACK) |
                          BIT_ULL(VHOST_USER_PROTOCOL_F_MQ) |
                          (proto & BIT_ULL(VHOST_USER_PROTOCOL_F_LOG_SHMFD));
    assert_true(vuc_send(f->sock, VHOST_USER_SET_PROTOCOL_FEATURES, 0,
                         &want_proto, 8, NULL, 0));
    assert_int_equal(get_u64(f, VHOST_USER_GET_QUEUE_NUM), 3);
    assert_true(vuc_send(f->sock, VHOST_USER_SET_OWNER, 0, NULL, 0, NULL, 0));
    uint64_t want = BIT_ULL(VIRTIO_F_VERSION_1) |
                    BIT_ULL(VHOST_USER_F_PROTOCOL_FEATURES) | extra_features;
    assert_int_equal(send_acked(f, VHOST_USER_SET_FEATURES, &want, 8, NULL,
                                0), 0);
}

static void set_mem_table(Fixture *f)
{
    VhostUserMemory m = { .nregions = 1 };
    m.regions[0] = (VhostUserMemRegion){ MEM_GPA, MEM_SIZE, MEM_UVA, 0 };
    assert_int_equal(send_acked(f, VHOST_USER_SET_MEM_TABLE, &m,
                                8 + sizeof(m.regions[0]), &f->memfd, 1), 0);
}

/* SET_VRING_NUM, SET_VRING_BASE (0) and SET_VRING_ADDR of ring 0. */
static void setup_ring_layout(Fixture *f, uint32_t flags, uint64_t log_gpa)
{
    VhostUserVringState st = { 0, QSIZE };
    assert_int_equal(send_acked(f, VHOST_USER_SET_VRING_NUM, &st, 8, NULL, 0),
                     0);
    st.num = 0;
    assert_int_equal(send_acked(f, VHOST_USER_SET_VRING_BASE, &st, 8, NULL,
                                0), 0);
    VhostUserVringAddr a = {
        .index = 0, .flags = flags,
        .desc_user_addr = MEM_UVA + (f->drv.desc_gpa - MEM_GPA),
        .used_user_addr = MEM_UVA + (f->drv.used_gpa - MEM_GPA),
        .avail_user_addr = MEM_UVA + (f->drv.avail_gpa - MEM_GPA),
        .log_guest_addr = log_gpa,
    };
    assert_int_equal(send_acked(f, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a),
                                NULL, 0), 0);
}

static void set_call(Fixture *f, int fd)
{
    uint64_t idx = 0;
    assert_int_equal(send_acked(f, VHOST_USER_SET_VRING_CALL, &idx, 8, &fd,
                                1), 0);
}

/* SET_VRING_KICK and SET_VRING_ENABLE 1: ring 0 runs. */
static void start_ring(Fixture *f)
{
    uint64_t idx = 0;
    assert_int_equal(send_acked(f, VHOST_USER_SET_VRING_KICK, &idx, 8,
                                &f->kickfd, 1), 0);
    VhostUserVringState st = { 0, 1 };
    assert_int_equal(send_acked(f, VHOST_USER_SET_VRING_ENABLE, &st, 8, NULL,
                                0), 0);
}

static void setup_ring(Fixture *f, uint32_t flags, uint64_t log_gpa)
{
    setup_ring_layout(f, flags, log_gpa);
    set_call(f, f->callfd);
    start_ring(f);
}

static void guest_submit(Fixture *f, uint64_t out_gpa, uint64_t in_gpa)
{
    DriverBuf b[] = { { out_gpa, 16, false }, { in_gpa, 64, true } };
    drv_publish(&f->drv, drv_add_direct(&f->drv, b, 2));
    uint64_t one = 1;
    assert_int_equal(write(f->kickfd, &one, 8), 8);
}

static bool wait_eventfd(int fd, int timeout_ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    if (poll(&p, 1, timeout_ms) != 1) {
        return false;
    }
    uint64_t v;
    return read(fd, &v, 8) == 8;
}

static bool wait_call(Fixture *f)
{
    return wait_eventfd(f->callfd, 2000);
}

/* Waits until the device pushed n chains in all. */
static void wait_completed(Fixture *f, int n)
{
    for (int i = 0; i < 400 && atomic_load(&f->completed) < n; i++) {
        usleep(5000);
    }
    assert_int_equal(atomic_load(&f->completed), n);
}

static uint32_t get_vring_base(Fixture *f, uint32_t index)
{
    VhostUserVringState st = { index, 0 };
    uint32_t req, size;
    assert_true(vuc_send(f->sock, VHOST_USER_GET_VRING_BASE, 0, &st, 8, NULL,
                         0));
    assert_true(vuc_recv(f->loop, f->sock, &req, &st, &size));
    assert_int_equal(req, VHOST_USER_GET_VRING_BASE);
    assert_int_equal(size, 8);
    assert_int_equal(st.index, index);
    return st.num;
}

static void test_request_roundtrip(void **state)
{
    Fixture *f = *state;
    negotiate(f, BIT_ULL(VIRTIO_RING_F_INDIRECT_DESC));
    set_mem_table(f);
    setup_ring(f, 0, 0);
    guest_submit(f, BUF_GPA, BUF_GPA + 0x1000);
    assert_true(wait_call(f));
    uint32_t id, len;
    assert_true(drv_get_used(&f->drv, &id, &len));
    assert_int_equal(id, 0);
    assert_int_equal(len, 4);
    assert_memory_equal(drv_ptr(&f->drv, BUF_GPA + 0x1000), "done", 4);
    guest_submit(f, BUF_GPA, BUF_GPA + 0x1000);
    assert_true(wait_call(f));
    assert_int_equal(get_vring_base(f, 0), 2);
    /* The ring is stopped: a new kick is not served. */
    guest_submit(f, BUF_GPA, BUF_GPA + 0x1000);
    usleep(50000);
    assert_int_equal(atomic_load(&f->completed), 2);
    assert_true(vhost_user_dev_connected(f->dev));
}

static void test_get_vring_base_waits_for_inflight(void **state)
{
    Fixture *f = *state;
    negotiate(f, 0);
    set_mem_table(f);
    setup_ring(f, 0, 0);
    atomic_store(&f->hold, true);
    guest_submit(f, BUF_GPA, BUF_GPA + 0x1000);
    for (int i = 0; i < 200 && !atomic_load(&f->kicks); i++) {
        usleep(5000);
    }
    VhostUserVringState st = { 0, 0 };
    assert_true(vuc_send(f->sock, VHOST_USER_GET_VRING_BASE, 0, &st, 8, NULL,
                         0));
    /* No reply while the chain is in flight, but the main loop runs. */
    for (int i = 0; i < 10; i++) {
        loop_run_once(f->loop, 10);
    }
    struct pollfd p = { .fd = f->sock, .events = POLLIN };
    assert_int_equal(poll(&p, 1, 0), 0);
    iothread_run_sync(f->iot, release_held, f);
    uint32_t req, size;
    assert_true(vuc_recv(f->loop, f->sock, &req, &st, &size));
    assert_int_equal(req, VHOST_USER_GET_VRING_BASE);
    assert_int_equal(st.num, 1);
    uint32_t id, len;
    assert_true(drv_get_used(&f->drv, &id, &len));
}

/*
 * QEMU 7.2 starts a vhost-user ring in this order: SET_VRING_KICK, then
 * SET_VRING_ENABLE, and only then SET_VRING_CALL, without waiting for
 * the back end in between. A guest request that completes before the
 * call fd arrives must still interrupt the guest once it does; a guest
 * whose SCSI scan waited for such a completion never booted.
 */
static void test_completion_before_call_fd(void **state)
{
    Fixture *f = *state;
    negotiate(f, BIT_ULL(VIRTIO_RING_F_EVENT_IDX));
    set_mem_table(f);
    setup_ring_layout(f, 0, 0);
    start_ring(f);
    guest_submit(f, BUF_GPA, BUF_GPA + 0x1000);
    wait_completed(f, 1);
    assert_false(wait_eventfd(f->callfd, 0));
    set_call(f, f->callfd);
    assert_true(wait_call(f));
    uint32_t id, len;
    assert_true(drv_get_used(&f->drv, &id, &len));
    assert_int_equal(len, 4);
}

/*
 * When the guest masks a queue's MSI-X vector QEMU points the call fd at
 * an eventfd of its own, and back at the guest's on unmask; it looks at
 * its own only before sending the second SET_VRING_CALL. A completion
 * signalled on the masked fd after that look must reach the guest's fd.
 */
static void test_completion_on_replaced_call_fd(void **state)
{
    Fixture *f = *state;
    negotiate(f, BIT_ULL(VIRTIO_RING_F_EVENT_IDX));
    set_mem_table(f);
    setup_ring(f, 0, 0);
    int masked = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    set_call(f, masked);
    wait_eventfd(masked, 0);    /* the switch itself may signal */
    guest_submit(f, BUF_GPA, BUF_GPA + 0x1000);
    wait_completed(f, 1);
    assert_true(wait_eventfd(masked, 2000));    /* QEMU already looked */
    assert_false(wait_eventfd(f->callfd, 0));
    set_call(f, f->callfd);
    assert_true(wait_call(f));
    uint32_t id, len;
    assert_true(drv_get_used(&f->drv, &id, &len));
    close(masked);
}

/* A front end that replaces the kick fd of a running ring: a chain whose
 * kick went to the old fd (closed unread) is served all the same. */
static void test_kick_fd_replaced_while_running(void **state)
{
    Fixture *f = *state;
    negotiate(f, BIT_ULL(VIRTIO_RING_F_EVENT_IDX));
    set_mem_table(f);
    setup_ring(f, 0, 0);
    DriverBuf b[] = { { BUF_GPA, 16, false }, { BUF_GPA + 0x1000, 64, true } };
    drv_publish(&f->drv, drv_add_direct(&f->drv, b, 2));
    usleep(20000);
    assert_int_equal(atomic_load(&f->completed), 0);
    close(f->kickfd);
    f->kickfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    uint64_t idx = 0;
    assert_int_equal(send_acked(f, VHOST_USER_SET_VRING_KICK, &idx, 8,
                                &f->kickfd, 1), 0);
    wait_completed(f, 1);
    assert_true(wait_call(f));
}

static bool page_dirty(Fixture *f, uint64_t gpa)
{
    uint64_t page = gpa / 4096;
    return f->log[page / 8] & (1u << (page % 8));
}

static void test_dirty_log(void **state)
{
    Fixture *f = *state;
    negotiate(f, BIT_ULL(VHOST_F_LOG_ALL));
    set_mem_table(f);
    VhostUserLog lg = { LOG_SIZE, 0 };
    uint32_t req, size;
    uint64_t v = 1;
    assert_true(vuc_send(f->sock, VHOST_USER_SET_LOG_BASE, 0, &lg, sizeof(lg),
                         &f->logfd, 1));
    assert_true(vuc_recv(f->loop, f->sock, &req, &v, &size));
    assert_int_equal(req, VHOST_USER_SET_LOG_BASE);
    assert_int_equal(v, 0);
    setup_ring(f, 1u << VHOST_VRING_F_LOG, f->drv.used_gpa);
    guest_submit(f, BUF_GPA + 0x5000, BUF_GPA + 0x8000);
    assert_true(wait_call(f));
    assert_true(page_dirty(f, BUF_GPA + 0x8000));
    assert_true(page_dirty(f, f->drv.used_gpa));
    assert_false(page_dirty(f, BUF_GPA + 0x5000));
    assert_false(page_dirty(f, f->drv.desc_gpa));
}

static bool in_ranges(const GuestPageRange *r, size_t n, uint64_t gpa)
{
    for (size_t i = 0; i < n; i++) {
        if (gpa >= r[i].gpa && (gpa - r[i].gpa) / 4096 < r[i].pages) {
            return true;
        }
    }
    return false;
}

static void set_features(Fixture *f, uint64_t extra)
{
    uint64_t want = BIT_ULL(VIRTIO_F_VERSION_1) |
                    BIT_ULL(VHOST_USER_F_PROTOCOL_FEATURES) | extra;
    assert_int_equal(send_acked(f, VHOST_USER_SET_FEATURES, &want, 8, NULL,
                                0), 0);
}

/* The record of written pages holds what the device wrote while logging
 * was on (data-in buffer, used ring), not what it only read, not what it
 * wrote before, and survives logging being switched off again. */
static void test_written_pages(void **state)
{
    Fixture *f = *state;
    negotiate(f, 0);
    set_mem_table(f);
    VhostUserLog lg = { LOG_SIZE, 0 };
    uint32_t req, size;
    uint64_t v = 1;
    assert_true(vuc_send(f->sock, VHOST_USER_SET_LOG_BASE, 0, &lg, sizeof(lg),
                         &f->logfd, 1));
    assert_true(vuc_recv(f->loop, f->sock, &req, &v, &size));
    assert_int_equal(v, 0);
    setup_ring(f, 1u << VHOST_VRING_F_LOG, f->drv.used_gpa);
    guest_submit(f, BUF_GPA + 0x1000, BUF_GPA + 0x3000);
    assert_true(wait_call(f));
    size_t n;
    GuestPageRange *r = vhost_user_dev_written_pages(f->dev, &n);
    assert_int_equal(n, 0);             /* logging was off */
    free(r);

    set_features(f, BIT_ULL(VHOST_F_LOG_ALL));
    guest_submit(f, BUF_GPA + 0x5000, BUF_GPA + 0x8000);
    assert_true(wait_call(f));
    set_features(f, 0);
    r = vhost_user_dev_written_pages(f->dev, &n);
    assert_true(in_ranges(r, n, BUF_GPA + 0x8000));
    assert_true(in_ranges(r, n, f->drv.used_gpa));
    assert_false(in_ranges(r, n, BUF_GPA + 0x5000));   /* read only */
    assert_false(in_ranges(r, n, f->drv.desc_gpa));
    assert_false(in_ranges(r, n, f->drv.avail_gpa));
    assert_false(in_ranges(r, n, BUF_GPA + 0x3000));   /* before logging */
    free(r);

    /* Logging starts again: the record restarts empty. */
    set_features(f, BIT_ULL(VHOST_F_LOG_ALL));
    r = vhost_user_dev_written_pages(f->dev, &n);
    assert_int_equal(n, 0);
    free(r);
}

static void test_page_bitmap_ranges(void **state)
{
    (void)state;
    uint8_t bm[4] = { 0x06, 0x00, 0x80, 0x01 };   /* pages 1-2, 23-24 */
    size_t n;
    GuestPageRange *r = guest_page_bitmap_ranges(bm, sizeof(bm), &n);
    assert_int_equal(n, 2);
    assert_int_equal(r[0].gpa, 1 * 4096);
    assert_int_equal(r[0].pages, 2);
    assert_int_equal(r[1].gpa, 23 * 4096);
    assert_int_equal(r[1].pages, 2);
    free(r);
    memset(bm, 0, sizeof(bm));
    r = guest_page_bitmap_ranges(bm, sizeof(bm), &n);
    assert_int_equal(n, 0);
    assert_null(r);
}

static void test_no_dirty_log_offered(void **state)
{
    Fixture *f = make_fixture(false);
    uint64_t feat = get_u64(f, VHOST_USER_GET_FEATURES);
    assert_false(feat & BIT_ULL(VHOST_F_LOG_ALL));
    uint64_t proto = get_u64(f, VHOST_USER_GET_PROTOCOL_FEATURES);
    assert_false(proto & BIT_ULL(VHOST_USER_PROTOCOL_F_LOG_SHMFD));
    /* Acking it anyway is a protocol violation. */
    feat |= BIT_ULL(VHOST_F_LOG_ALL);
    assert_true(vuc_send(f->sock, VHOST_USER_SET_FEATURES, 0, &feat, 8, NULL,
                         0));
    assert_true(vuc_closed(f->loop, f->sock));
    void *st = f;
    teardown(&st);
}

/* stderr goes to a temporary file until stderr_end(), which returns what
 * was written (static buffer): the log lines an operator would read. */
static int saved_stderr = -1;

static void stderr_begin(void)
{
    fflush(stderr);
    saved_stderr = dup(2);
    FILE *t = tmpfile();
    assert_non_null(t);
    assert_int_equal(dup2(fileno(t), 2), 2);
    fclose(t);
}

static const char *stderr_end(void)
{
    static char text[4096];
    fflush(stderr);
    ssize_t n = pread(2, text, sizeof(text) - 1, 0);
    text[n > 0 ? n : 0] = 0;
    dup2(saved_stderr, 2);
    close(saved_stderr);
    return text;
}

static void reconnect(Fixture *f)
{
    close(f->sock);
    for (int k = 0; k < 10 && vhost_user_dev_connected(f->dev); k++) {
        loop_run_once(f->loop, 10);
    }
    connect_client(f);
}

/* Guest memory the front end could shrink after SET_MEM_TABLE would fault
 * the back end with SIGBUS on its next access: a memfd without
 * F_SEAL_SHRINK is refused, for memory regions and for the dirty log; the
 * sealed one QEMU sends is taken and can no longer shrink. */
static void test_unsealed_memory_refused(void **state)
{
    Fixture *f = *state;
    const int seals[] = { 0, F_SEAL_GROW, F_SEAL_SEAL };
    for (size_t i = 0; i < sizeof(seals) / sizeof(seals[0]); i++) {
        int fd = vuc_memfd("unsealed", MEM_SIZE, seals[i]);
        assert_true(fd >= 0);
        negotiate(f, 0);
        VhostUserMemory m = { .nregions = 1 };
        m.regions[0] = (VhostUserMemRegion){ MEM_GPA, MEM_SIZE, MEM_UVA, 0 };
        stderr_begin();
        assert_true(vuc_send(f->sock, VHOST_USER_SET_MEM_TABLE,
                             VHOST_USER_NEED_REPLY_MASK, &m,
                             8 + sizeof(m.regions[0]), &fd, 1));
        bool closed = vuc_closed(f->loop, f->sock);
        const char *log = stderr_end();
        close(fd);
        if (!closed) {
            fail_msg("seals 0x%x: memory table accepted", seals[i]);
        }
        assert_non_null(strstr(log, "not sealed against shrinking "
                                    "(F_SEAL_SHRINK)"));
        reconnect(f);
    }

    int logfd = vuc_memfd("log", LOG_SIZE, 0);
    assert_true(logfd >= 0);
    negotiate(f, BIT_ULL(VHOST_F_LOG_ALL));
    set_mem_table(f);
    VhostUserLog lg = { LOG_SIZE, 0 };
    stderr_begin();
    assert_true(vuc_send(f->sock, VHOST_USER_SET_LOG_BASE, 0, &lg, sizeof(lg),
                         &logfd, 1));
    bool closed = vuc_closed(f->loop, f->sock);
    const char *log = stderr_end();
    close(logfd);
    assert_true(closed);
    assert_non_null(strstr(log, "dirty log fd not sealed against shrinking"));

    /* QEMU's sealed memfd is served, and the seal holds. */
    reconnect(f);
    negotiate(f, 0);
    set_mem_table(f);
    assert_int_equal(ftruncate(f->memfd, 4096), -1);
    assert_int_equal(errno, EPERM);
    setup_ring(f, 0, 0);
    guest_submit(f, BUF_GPA, BUF_GPA + 0x1000);
    wait_completed(f, 1);
}

/* Two regions covering the same guest-physical bytes would make one
 * address mean two host locations: the table is refused, whichever way
 * they overlap. */
static void test_overlapping_regions_refused(void **state)
{
    Fixture *f = *state;
    /* Region 0 is [MEM_GPA, MEM_GPA + 16 KiB); region 1 overlaps it. */
    static const struct { uint64_t gpa, size; } cases[] = {
        { MEM_GPA, 0x4000 },                /* the same */
        { MEM_GPA + 0x3000, 0x2000 },       /* its tail */
        { MEM_GPA - 0x1000, 0x2000 },       /* its head */
        { MEM_GPA + 0x1000, 0x1000 },       /* inside it */
        { MEM_GPA - 0x1000, 0x6000 },       /* around it */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        negotiate(f, 0);
        VhostUserMemory m = { .nregions = 2 };
        m.regions[0] = (VhostUserMemRegion){ MEM_GPA, 0x4000, MEM_UVA, 0 };
        m.regions[1] = (VhostUserMemRegion){ cases[i].gpa, cases[i].size,
                                             MEM_UVA + MEM_SIZE, 0 };
        int fds[2] = { f->memfd, f->memfd };
        stderr_begin();
        assert_true(vuc_send(f->sock, VHOST_USER_SET_MEM_TABLE,
                             VHOST_USER_NEED_REPLY_MASK, &m,
                             8 + 2 * sizeof(m.regions[0]), fds, 2));
        bool closed = vuc_closed(f->loop, f->sock);
        const char *log = stderr_end();
        if (!closed) {
            fail_msg("case %zu: overlapping regions accepted", i);
        }
        assert_non_null(strstr(log, "overlapping memory regions"));
        reconnect(f);
    }
    /* Adjacent regions are fine. */
    negotiate(f, 0);
    VhostUserMemory m = { .nregions = 2 };
    m.regions[0] = (VhostUserMemRegion){ MEM_GPA, 4096, MEM_UVA, 0 };
    m.regions[1] = (VhostUserMemRegion){ MEM_GPA + 4096, 4096,
                                         MEM_UVA + 4096, 4096 };
    int fds[2] = { f->memfd, f->memfd };
    assert_int_equal(send_acked(f, VHOST_USER_SET_MEM_TABLE, &m,
                                8 + 2 * sizeof(m.regions[0]), fds, 2), 0);
}

/* ---- malformed messages: each closes the connection, the back end
 * stays up and serves the next one ---- */

typedef struct BadMsg {
    const char *what;
    uint32_t request, flags, size;
    uint8_t payload[320];
    bool with_memfd;
    bool after_setup;           /* send after features + mem table */
} BadMsg;

static void test_malformed_messages(void **state)
{
    Fixture *f = *state;
    /* Trailing flags default to false. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
    static const BadMsg cases[] = {
        { "version 3", VHOST_USER_GET_FEATURES, 2, 0, { 0 } },
        { "reply bit", VHOST_USER_GET_FEATURES, VHOST_USER_REPLY_MASK, 0,
          { 0 } },
        { "huge payload", VHOST_USER_SET_FEATURES, 0, 0x10000, { 0 } },
        { "unknown request", 200, 0, 0, { 0 } },
        { "short SET_FEATURES", VHOST_USER_SET_FEATURES, 0, 4, { 0 } },
        { "GET_FEATURES with payload", VHOST_USER_GET_FEATURES, 0, 8, { 0 } },
        { "9 regions", VHOST_USER_SET_MEM_TABLE, 0, 8 + 32 * 9, { 9 } },
        { "region without fd", VHOST_USER_SET_MEM_TABLE, 0, 40, { 1 } },
        { "region past file end", VHOST_USER_SET_MEM_TABLE, 0, 40,
          { 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0,
            0, 0, 0, 0x10 }, true },
        { "vring index 99", VHOST_USER_SET_VRING_NUM, 0, 8, { 99 } },
        { "vring num 3", VHOST_USER_SET_VRING_NUM, 0, 8, { 0, 0, 0, 0, 3 } },
        { "vring num 65536", VHOST_USER_SET_VRING_NUM, 0, 8,
          { 0, 0, 0, 0, 0, 0, 1 } },
        { "addr before num", VHOST_USER_SET_VRING_ADDR, 0, 40, { 1 } },
        { "kick without fd", VHOST_USER_SET_VRING_KICK, 0, 8, { 0 } },
        { "kick polling", VHOST_USER_SET_VRING_KICK, 0, 8, { 0, 1 } },
        { "call with junk bits", VHOST_USER_SET_VRING_CALL, 0, 8,
          { 0, 1, 1 } },
        { "log base without LOG_SHMFD", VHOST_USER_SET_LOG_BASE, 0, 16,
          { 0, 0x10 }, true },
        { "enable 2", VHOST_USER_SET_VRING_ENABLE, 0, 8, { 0, 0, 0, 0, 2 } },
        { "ring outside memory", VHOST_USER_SET_VRING_ADDR, 0, 40,
          { 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff }, false, true },
    };
#pragma GCC diagnostic pop
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const BadMsg *c = &cases[i];
        if (c->after_setup) {
            negotiate(f, 0);
            set_mem_table(f);
            VhostUserVringState st = { 0, QSIZE };
            assert_true(vuc_send(f->sock, VHOST_USER_SET_VRING_NUM, 0, &st,
                                 8, NULL, 0));
        }
        if (c->size > VHOST_USER_PAYLOAD_MAX) {
            /* Only a header that claims a huge payload. */
            uint32_t hdr[3] = { c->request, VHOST_USER_VERSION, c->size };
            assert_int_equal(send(f->sock, hdr, sizeof(hdr), 0), 12);
        } else {
            assert_true(vuc_send(f->sock, c->request, c->flags, c->payload,
                                 c->size, &f->memfd, c->with_memfd ? 1 : 0));
        }
        if (!vuc_closed(f->loop, f->sock)) {
            fail_msg("case \"%s\": connection not closed", c->what);
        }
        close(f->sock);
        for (int k = 0; k < 10 && vhost_user_dev_connected(f->dev); k++) {
            loop_run_once(f->loop, 10);
        }
        /* The back end drained, reset and takes a new front end. */
        connect_client(f);
        assert_true(get_u64(f, VHOST_USER_GET_QUEUE_NUM) == 3);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_request_roundtrip, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_get_vring_base_waits_for_inflight,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_completion_before_call_fd,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_completion_on_replaced_call_fd,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_kick_fd_replaced_while_running,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_dirty_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_written_pages, setup, teardown),
        cmocka_unit_test(test_page_bitmap_ranges),
        cmocka_unit_test(test_no_dirty_log_offered),
        cmocka_unit_test_setup_teardown(test_unsealed_memory_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_overlapping_regions_refused,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_messages, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
