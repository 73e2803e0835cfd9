/* The vhost-user-scsi controller end to end: a front end connects to the
 * device's socket, sets up request queue 0 and sends SCSI commands to a
 * bus without LUNs (the target answers itself) and a TMF. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/un.h>
#include <unistd.h>

#include "device/device.h"
#include "vhost-user/vhost-user-scsi.h"
#include "vhost-user/vhost-user.h"
#include "virtio/virtio-scsi.h"
#include "vu-client.h"
#include "guest-driver.h"

#define MEM_GPA  0x100000ull
#define MEM_SIZE 0x100000ull
#define MEM_UVA  0x7f0000000000ull
#define QSIZE    8
#define REQ_GPA  (MEM_GPA + 0x20000)
#define RESP_GPA (MEM_GPA + 0x21000)
#define DATA_GPA (MEM_GPA + 0x22000)

typedef struct Fixture {
    EventLoop *loop;
    Device *dev;
    char dir[64], path[96];
    int sock, memfd, kickfd, callfd;
    uint8_t *mem;
    GuestDriver drv;
} Fixture;

static void send_ok(Fixture *f, uint32_t req, const void *p, uint32_t size,
                    const int *fds, unsigned nfds)
{
    uint32_t r, sz;
    uint64_t ack = 1;
    assert_true(vuc_send(f->sock, req, VHOST_USER_NEED_REPLY_MASK, p, size,
                         fds, nfds));
    assert_true(vuc_recv(f->loop, f->sock, &r, &ack, &sz));
    assert_int_equal(ack, 0);
}

/* A controller with num_queues request queues, not started. */
static Fixture *make_fixture(unsigned num_queues)
{
    Fixture *f = calloc(1, sizeof(*f));
    f->loop = loop_new(NULL);
    vhost_user_scsi_register();
    /* Relative to the test's working directory (the build tree). */
    strcpy(f->dir, "vus-test-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/sock", f->dir);
    char opts[160];
    snprintf(opts, sizeof(opts),
             "vhost-user-scsi,id=scsi0,socket=%s,num-queues=%u", f->path,
             num_queues);
    Error *err = NULL;
    f->dev = device_create(opts, f->loop, &err);
    if (!f->dev) {
        fail_msg("%s", error_get_pretty(err));
    }
    f->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    strcpy(sa.sun_path, f->path);
    assert_int_equal(connect(f->sock, (struct sockaddr *)&sa, sizeof(sa)), 0);
    f->memfd = vuc_memfd("guest", MEM_SIZE, VUC_QEMU_SEALS);
    assert_true(f->memfd >= 0);
    f->mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
                  f->memfd, 0);
    f->kickfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    f->callfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    return f;
}

static int setup_stopped(void **state)
{
    *state = make_fixture(1);
    return 0;
}

static void start_device(Fixture *f)
{
    Error *err = NULL;
    if (!f->dev->cls->start(f->dev, &err)) {
        fail_msg("%s", error_get_pretty(err));
    }
}

/* A controller of a running VM, as stormigd starts it. */
static int setup(void **state)
{
    setup_stopped(state);
    start_device(*state);
    return 0;
}

/* The same with two request queues: a guest with two vCPUs uses both. */
static int setup_two_queues(void **state)
{
    *state = make_fixture(2);
    start_device(*state);
    return 0;
}

static int teardown(void **state)
{
    Fixture *f = *state;
    close(f->sock);
    device_destroy(f->dev);
    loop_free(f->loop);
    munmap(f->mem, MEM_SIZE);
    close(f->memfd);
    close(f->kickfd);
    close(f->callfd);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* Feature negotiation and the memory table, as QEMU sends them at device
 * start. */
static void negotiate(Fixture *f)
{
    uint64_t proto = BIT_ULL(VHOST_USER_PROTOCOL_F_REPLY_ACK) |
                     BIT_ULL(VHOST_USER_PROTOCOL_F_LOG_SHMFD);
    assert_true(vuc_send(f->sock, VHOST_USER_SET_PROTOCOL_FEATURES, 0, &proto,
                         8, NULL, 0));
    uint64_t feat = BIT_ULL(VIRTIO_F_VERSION_1) |
                    BIT_ULL(VHOST_USER_F_PROTOCOL_FEATURES);
    send_ok(f, VHOST_USER_SET_FEATURES, &feat, 8, NULL, 0);
    VhostUserMemory m = { .nregions = 1 };
    m.regions[0] = (VhostUserMemRegion){ MEM_GPA, MEM_SIZE, MEM_UVA, 0 };
    send_ok(f, VHOST_USER_SET_MEM_TABLE, &m, 40, &f->memfd, 1);
}

/* SET_VRING_ADDR for the rings of d; with log, the used ring is logged
 * at its guest address (vhost-user.rst "Vring address description"). */
static void set_ring_addr(Fixture *f, uint32_t index, const GuestDriver *d,
                          bool log)
{
    VhostUserVringAddr a = {
        .index = index,
        .flags = log ? 1u << VHOST_VRING_F_LOG : 0,
        .desc_user_addr = MEM_UVA + (d->desc_gpa - MEM_GPA),
        .used_user_addr = MEM_UVA + (d->used_gpa - MEM_GPA),
        .avail_user_addr = MEM_UVA + (d->avail_gpa - MEM_GPA),
        .log_guest_addr = log ? d->used_gpa : 0,
    };
    send_ok(f, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0);
}

/* Starts ring 'index' laid out at ring_gpa; f->drv becomes its driver. */
static void start_ring(Fixture *f, uint32_t index, uint64_t ring_gpa)
{
    drv_init(&f->drv, f->mem, MEM_GPA, QSIZE, ring_gpa);
    VhostUserVringState st = { index, QSIZE };
    send_ok(f, VHOST_USER_SET_VRING_NUM, &st, 8, NULL, 0);
    set_ring_addr(f, index, &f->drv, false);
    uint64_t idx = index;
    send_ok(f, VHOST_USER_SET_VRING_CALL, &idx, 8, &f->callfd, 1);
    send_ok(f, VHOST_USER_SET_VRING_KICK, &idx, 8, &f->kickfd, 1);
    st.num = 1;
    send_ok(f, VHOST_USER_SET_VRING_ENABLE, &st, 8, NULL, 0);
}

/* Front-end set-up of one queue, as QEMU does it at device start. */
static void start_queue(Fixture *f, uint32_t index)
{
    negotiate(f);
    start_ring(f, index, MEM_GPA + 0x1000 * index);
}

static uint32_t run_chain(Fixture *f, DriverBuf *b, unsigned n)
{
    drv_publish(&f->drv, drv_add_direct(&f->drv, b, n));
    uint64_t one = 1;
    assert_int_equal(write(f->kickfd, &one, 8), 8);
    struct pollfd p = { .fd = f->callfd, .events = POLLIN };
    assert_int_equal(poll(&p, 1, 2000), 1);
    uint64_t v;
    assert_int_equal(read(f->callfd, &v, 8), 8);
    uint32_t id = 0, len = 0;
    assert_true(drv_get_used(&f->drv, &id, &len));
    return len;
}

static void test_inquiry_without_lun(void **state)
{
    Fixture *f = *state;
    start_queue(f, VIRTIO_SCSI_VQ_REQUEST0);
    uint8_t *req = drv_ptr(&f->drv, REQ_GPA);
    memset(req, 0, 51);
    virtio_scsi_lun_encode(req, 0, 3);
    req[8] = 0x42;                      /* tag */
    req[19] = 0x12;                     /* INQUIRY, allocation length 96 */
    req[19 + 4] = 96;
    DriverBuf b[] = {
        { REQ_GPA, 51, false }, { RESP_GPA, 108, true },
        { DATA_GPA, 96, true },
    };
    uint32_t len = run_chain(f, b, 3);
    uint8_t *resp = drv_ptr(&f->drv, RESP_GPA);
    assert_int_equal(resp[11], VIRTIO_SCSI_S_OK);
    assert_int_equal(resp[10], 0);      /* GOOD */
    /* SPC-4 6.6.2: no LUN there: qualifier 011b, type 1Fh. */
    assert_int_equal(drv_ptr(&f->drv, DATA_GPA)[0], 0x7f);
    assert_true(len > 108);
}

static void test_bad_target(void **state)
{
    Fixture *f = *state;
    start_queue(f, VIRTIO_SCSI_VQ_REQUEST0);
    uint8_t *req = drv_ptr(&f->drv, REQ_GPA);
    memset(req, 0, 51);
    virtio_scsi_lun_encode(req, 5, 0);  /* only target 0 exists */
    DriverBuf b[] = { { REQ_GPA, 51, false }, { RESP_GPA, 108, true } };
    uint32_t len = run_chain(f, b, 2);
    assert_int_equal(len, 108);
    assert_int_equal(drv_ptr(&f->drv, RESP_GPA)[11],
                     VIRTIO_SCSI_S_BAD_TARGET);
}

static void test_tmf_clear_aca_rejected(void **state)
{
    Fixture *f = *state;
    start_queue(f, VIRTIO_SCSI_VQ_CONTROL);
    uint8_t *req = drv_ptr(&f->drv, REQ_GPA);
    memset(req, 0, 24);
    req[4] = VIRTIO_SCSI_T_TMF_CLEAR_ACA;
    virtio_scsi_lun_encode(req + 8, 0, 0);
    uint8_t *resp = drv_ptr(&f->drv, RESP_GPA);
    resp[0] = 0xee;
    DriverBuf b[] = { { REQ_GPA, 24, false }, { RESP_GPA, 1, true } };
    assert_int_equal(run_chain(f, b, 2), 1);
    assert_int_equal(resp[0], VIRTIO_SCSI_S_FUNCTION_REJECTED);
}

static void test_short_request_breaks_queue(void **state)
{
    Fixture *f = *state;
    start_queue(f, VIRTIO_SCSI_VQ_REQUEST0);
    DriverBuf b[] = { { REQ_GPA, 10, false }, { RESP_GPA, 108, true } };
    assert_int_equal(run_chain(f, b, 2), 0);
    /* The daemon lives on and still answers the front end. */
    uint64_t n;
    uint32_t r, sz;
    assert_true(vuc_send(f->sock, VHOST_USER_GET_QUEUE_NUM, 0, NULL, 0, NULL,
                         0));
    assert_true(vuc_recv(f->loop, f->sock, &r, &n, &sz));
    assert_int_equal(n, 3);
}

static unsigned vmm_notifications;

static void count_vmm_change(Device *dev)
{
    vmm_notifications++;
}

static void publish_inquiry(Fixture *f)
{
    uint8_t *req = drv_ptr(&f->drv, REQ_GPA);
    memset(req, 0, 51);
    virtio_scsi_lun_encode(req, 0, 0);
    req[19] = 0x12;                     /* INQUIRY, allocation length 96 */
    req[19 + 4] = 96;
    DriverBuf b[] = {
        { REQ_GPA, 51, false }, { RESP_GPA, 108, true },
        { DATA_GPA, 96, true },
    };
    drv_publish(&f->drv, drv_add_direct(&f->drv, b, 3));
    uint64_t one = 1;
    assert_int_equal(write(f->kickfd, &one, 8), 8);
}

/* A daemon waiting for an incoming migration: the VMM may start the rings
 * and the guest may kick before the state arrived; nothing is served
 * until the device starts, and then the waiting request is. */
static void test_requests_wait_for_start(void **state)
{
    Fixture *f = *state;
    start_queue(f, VIRTIO_SCSI_VQ_REQUEST0);
    publish_inquiry(f);
    struct pollfd p = { .fd = f->callfd, .events = POLLIN };
    assert_int_equal(poll(&p, 1, 300), 0);
    uint32_t id = 0, len = 0;
    assert_false(drv_get_used(&f->drv, &id, &len));

    Error *err = NULL;
    assert_true(f->dev->cls->start(f->dev, &err));
    assert_int_equal(poll(&p, 1, 2000), 1);
    assert_true(drv_get_used(&f->drv, &id, &len));
    assert_int_equal(drv_ptr(&f->drv, RESP_GPA)[11], VIRTIO_SCSI_S_OK);
}

/* The VMM stops the device by stopping every ring it started
 * (GET_VRING_BASE); the migration layer hears about each change. */
static void test_vmm_stop_is_reported(void **state)
{
    Fixture *f = *state;
    device_set_vmm_listener(count_vmm_change);
    vmm_notifications = 0;
    assert_true(device_vmm_stopped_all());     /* no ring started yet */
    start_queue(f, VIRTIO_SCSI_VQ_REQUEST0);
    assert_false(device_vmm_stopped_all());
    assert_int_equal(vmm_notifications, 1);

    VhostUserVringState st = { VIRTIO_SCSI_VQ_REQUEST0, 0 };
    uint32_t r, sz;
    assert_true(vuc_send(f->sock, VHOST_USER_GET_VRING_BASE, 0, &st,
                         sizeof(st), NULL, 0));
    assert_true(vuc_recv(f->loop, f->sock, &r, &st, &sz));
    assert_int_equal(r, VHOST_USER_GET_VRING_BASE);
    assert_int_equal(st.num, 0);               /* nothing was consumed */
    assert_true(device_vmm_stopped_all());
    assert_int_equal(vmm_notifications, 2);
    device_set_vmm_listener(NULL);
}

#define LOG_BYTES 4096             /* one bit per 4 KiB page: 128 MiB */

static bool page_dirty(const uint8_t *log, uint64_t gpa)
{
    uint64_t page = gpa / 4096;
    return log[page / 8] & (1u << (page % 8));
}

/* What QEMU does when a migration starts while the rings run
 * (vhost-user.rst "Migration"): share the log, ack VHOST_F_LOG_ALL, then
 * give every ring its used-ring log address again. */
static void start_logging(Fixture *f, int logfd, const GuestDriver *drv,
                          unsigned n)
{
    VhostUserLog lg = { LOG_BYTES, 0 };
    uint32_t r, sz;
    uint64_t v;
    assert_true(vuc_send(f->sock, VHOST_USER_SET_LOG_BASE, 0, &lg,
                         sizeof(lg), &logfd, 1));
    assert_true(vuc_recv(f->loop, f->sock, &r, &v, &sz));
    assert_int_equal(r, VHOST_USER_SET_LOG_BASE);
    uint64_t feat = BIT_ULL(VIRTIO_F_VERSION_1) |
                    BIT_ULL(VHOST_USER_F_PROTOCOL_FEATURES) |
                    BIT_ULL(VHOST_F_LOG_ALL);
    send_ok(f, VHOST_USER_SET_FEATURES, &feat, 8, NULL, 0);
    for (unsigned i = 0; i < n; i++) {
        set_ring_addr(f, VIRTIO_SCSI_VQ_REQUEST0 + i, &drv[i], true);
    }
}

/* A guest with two vCPUs submits on both request queues. Whatever queue a
 * request came on, every page the device wrote (data-in, the response
 * header, that queue's used ring) must be in the dirty log, or the
 * destination of a migration resumes with stale guest memory; pages the
 * device only read must not be. */
static void test_dirty_log_on_every_request_queue(void **state)
{
    Fixture *f = *state;
    int logfd = vuc_memfd("log", LOG_BYTES, VUC_QEMU_SEALS);
    assert_true(logfd >= 0);
    uint8_t *log = mmap(NULL, LOG_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED,
                        logfd, 0);
    assert_true(log != MAP_FAILED);
    GuestDriver drv[2];
    negotiate(f);
    for (unsigned i = 0; i < 2; i++) {
        /* Rings 32 KiB apart, below the request buffers. */
        start_ring(f, VIRTIO_SCSI_VQ_REQUEST0 + i, MEM_GPA + 0x8000 * (i + 2));
        drv[i] = f->drv;
    }
    start_logging(f, logfd, drv, 2);
    for (unsigned i = 0; i < 2; i++) {
        memset(log, 0, LOG_BYTES);      /* as QEMU's sync clears it */
        f->drv = drv[i];
        memset(drv_ptr(&f->drv, DATA_GPA), 0, 96);
        uint8_t *req = drv_ptr(&f->drv, REQ_GPA);
        memset(req, 0, 51);
        virtio_scsi_lun_encode(req, 0, 0);
        req[19] = 0x12;                 /* INQUIRY, allocation length 96 */
        req[19 + 4] = 96;
        DriverBuf b[] = {
            { REQ_GPA, 51, false }, { RESP_GPA, 108, true },
            { DATA_GPA, 96, true },
        };
        assert_true(run_chain(f, b, 3) > 108);
        assert_int_not_equal(drv_ptr(&f->drv, DATA_GPA)[0], 0);
        assert_true(page_dirty(log, DATA_GPA));
        assert_true(page_dirty(log, RESP_GPA));
        assert_true(page_dirty(log, f->drv.used_gpa));
        assert_false(page_dirty(log, REQ_GPA));
        assert_false(page_dirty(log, f->drv.desc_gpa));
        /* The other queue wrote nothing. */
        assert_false(page_dirty(log, drv[1 - i].used_gpa));
    }
    munmap(log, LOG_BYTES);
    close(logfd);
}

/* A READ that fails reports no data, but a LUN may have filled part of
 * the buffers before failing (io_uring, iSCSI data-in): the whole data-in
 * area is logged, not only the response the used length covers. */
static void test_dirty_log_failed_read(void **state)
{
    Fixture *f = *state;
    int logfd = vuc_memfd("log", LOG_BYTES, VUC_QEMU_SEALS);
    assert_true(logfd >= 0);
    uint8_t *log = mmap(NULL, LOG_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED,
                        logfd, 0);
    assert_true(log != MAP_FAILED);
    negotiate(f);
    start_ring(f, VIRTIO_SCSI_VQ_REQUEST0, MEM_GPA + 0x10000);
    GuestDriver drv = f->drv;
    start_logging(f, logfd, &drv, 1);
    memset(log, 0, LOG_BYTES);
    uint8_t *req = drv_ptr(&f->drv, REQ_GPA);
    memset(req, 0, 51);
    virtio_scsi_lun_encode(req, 0, 7);  /* no such LUN: CHECK CONDITION */
    req[19] = 0x28;                     /* READ(10), 8 blocks */
    req[19 + 8] = 8;
    DriverBuf b[] = {
        { REQ_GPA, 51, false }, { RESP_GPA, 108, true },
        { DATA_GPA, 4096, true }, { DATA_GPA + 0x1000, 4096, true },
    };
    assert_int_equal(run_chain(f, b, 4), 108);
    assert_int_equal(drv_ptr(&f->drv, RESP_GPA)[10], 0x02);
    assert_true(page_dirty(log, RESP_GPA));
    assert_true(page_dirty(log, DATA_GPA));
    assert_true(page_dirty(log, DATA_GPA + 0x1000));
    assert_false(page_dirty(log, REQ_GPA));
    munmap(log, LOG_BYTES);
    close(logfd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_inquiry_without_lun, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bad_target, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tmf_clear_aca_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_short_request_breaks_queue,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_requests_wait_for_start,
                                        setup_stopped, teardown),
        cmocka_unit_test_setup_teardown(test_vmm_stop_is_reported,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_dirty_log_on_every_request_queue,
                                        setup_two_queues, teardown),
        cmocka_unit_test_setup_teardown(test_dirty_log_failed_read, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
