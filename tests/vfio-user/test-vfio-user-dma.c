/*
 * vfio-user guest memory the client maps without an fd: the device's
 * reads and writes become asynchronous DMA_READ / DMA_WRITE requests to
 * the client, started from a command's handler or from a loop timer (the
 * client is idle). While a request waits for its reply the server goes on
 * answering the client's own commands (REGION_READ, SET_IRQS: a client
 * such as QEMU waits for those before it answers ours). A reply with
 * another id is ignored, one of the wrong size or with an error fails the
 * transfer, and a client that never answers fails it at the deadline.
 * fds the client could shrink are refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <poll.h>

#include <cmocka.h>

#include "harness.h"
#include "util/loop.h"

#define MEM_IOVA 0x200000ull
#define MEM_SIZE 0x8000ull          /* 8 pages, mapped without an fd */
#define FD_IOVA  (MEM_IOVA + MEM_SIZE)
#define FD_SIZE  0x2000ull          /* right after it, with an fd */

static Harness H;

static int setup(void **state)
{
    return harness_start(&H, 1) ? 0 : -1;
}

static int teardown(void **state)
{
    harness_stop(&H);
    return 0;
}

/* A client of a freshly reset device (counters at zero). */
static VfuClient *client(void)
{
    VfuClient *c = harness_client(&H, 0);
    assert_non_null(c);
    assert_true(vfu_client_reset(c, NULL));
    return c;
}

static uint64_t reg_read(VfuClient *c, uint64_t off)
{
    uint64_t v = 0;
    assert_true(vfu_client_region_read(c, 0, off, &v, 8, NULL));
    return v;
}

static void reg_write(VfuClient *c, uint64_t off, uint64_t v)
{
    assert_true(vfu_client_region_write(c, 0, off, &v, 8, NULL));
}

static void set_range(VfuClient *c, uint64_t iova, uint64_t len)
{
    reg_write(c, TDEV_REG_DMA_ADDR, iova);
    reg_write(c, TDEV_REG_DMA_LEN, len);
}

static const uint32_t RW = VFU_DMA_FLAG_READ | VFU_DMA_FLAG_WRITE;

/* An eventfd on MSI-X vector 0, the device's "transfer done". */
static int irq_fd(VfuClient *c)
{
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    assert_true(efd >= 0);
    assert_true(vfu_client_set_irq_eventfds(c, VFU_PCI_MSIX_IRQ, 0, 1, &efd,
                                            NULL));
    return efd;
}

/* Answers the server's DMA requests until the interrupt (at most 5 s). */
static void wait_irq(VfuClient *c, int efd)
{
    uint64_t t0 = clock_ms();
    while (clock_ms() - t0 < 5000) {
        struct pollfd p[2] = { { .fd = efd, .events = POLLIN },
                               { .fd = vfu_client_fd(c), .events = POLLIN } };
        assert_true(poll(p, 2, 100) >= 0);
        if (p[1].revents) {
            assert_true(vfu_client_serve(c, 0, NULL) >= 0);
        }
        uint64_t n;
        if ((p[0].revents & POLLIN) && read(efd, &n, 8) == 8) {
            return;
        }
    }
    fail_msg("no interrupt within 5 s");
}

static void get_errors(Harness *h, void *arg)
{
    *(unsigned *)arg = h->dev[0].dma_errors;
}

/* Transfers the device saw fail. */
static unsigned dma_errors(void)
{
    unsigned n;
    harness_sync(&H, get_errors, &n);
    return n;
}

static int sealed_memfd(uint64_t size, unsigned seals)
{
    int fd = memfd_create("guest", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    if (seals) {
        assert_int_equal(fcntl(fd, F_ADD_SEALS, seals), 0);
    }
    return fd;
}

/* Fills in a handler: the client answers DMA_WRITE while it waits for
 * the doorbell's reply; a fill spanning the fd-less and the fd mapping
 * lands in both. Reads come back as DMA_READ. */
static void test_dma_in_handler(void **state)
{
    VfuClient *c = client();
    uint8_t *mem = calloc(1, MEM_SIZE);
    int fd = sealed_memfd(FD_SIZE, F_SEAL_SHRINK);
    uint8_t *fdmem = mmap(NULL, FD_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
                          fd, 0);
    assert_true(fdmem != MAP_FAILED);
    assert_true(vfu_client_dma_map_mem(c, MEM_IOVA, MEM_SIZE, mem, RW, NULL));
    assert_true(vfu_client_dma_map(c, FD_IOVA, FD_SIZE, fd, 0, RW, NULL));
    int efd = irq_fd(c);

    /* 0x7f00..0x8100: 0x100 bytes by request, 0x100 through the fd. */
    set_range(c, MEM_IOVA + 0x7f00, 0x200);
    uint64_t before = vfu_client_dma_requests(c);
    reg_write(c, TDEV_REG_DOORBELL, 0x5a);
    wait_irq(c, efd);
    assert_int_equal(reg_read(c, TDEV_REG_COUNTER), 1);
    assert_int_equal(vfu_client_dma_requests(c) - before, 1);
    for (uint64_t i = 0; i < MEM_SIZE; i++) {
        if (mem[i] != (i >= 0x7f00 ? 0x5a : 0)) {
            fail_msg("byte 0x%llx is 0x%x", (unsigned long long)i, mem[i]);
        }
    }
    assert_int_equal(fdmem[0xff], 0x5a);
    assert_int_equal(fdmem[0x100], 0);

    /* The device reads what the client holds, in one request. */
    uint64_t want = 0;
    for (uint64_t i = 0; i < 0x1000; i++) {
        mem[0x1000 + i] = (uint8_t)(i * 7 + 3);
        want += mem[0x1000 + i];
    }
    set_range(c, MEM_IOVA + 0x1000, 0x1000);
    before = vfu_client_dma_requests(c);
    reg_write(c, TDEV_REG_READ_DOORBELL, 1);
    wait_irq(c, efd);
    assert_int_equal(reg_read(c, TDEV_REG_SUM), want);
    assert_int_equal(reg_read(c, TDEV_REG_COUNTER), 2);
    assert_int_equal(vfu_client_dma_requests(c) - before, 1);

    /* After the unmap the client no longer answers for that memory, and
     * the server no longer asks. */
    assert_true(vfu_client_dma_unmap(c, MEM_IOVA, MEM_SIZE, NULL));
    before = vfu_client_dma_requests(c);
    reg_write(c, TDEV_REG_READ_DOORBELL, 1);
    assert_int_equal(reg_read(c, TDEV_REG_COUNTER), 2);
    assert_int_equal(vfu_client_dma_requests(c), before);
    assert_int_equal(dma_errors(), 1);     /* refused at the start */
    munmap(fdmem, FD_SIZE);
    close(fd);
    close(efd);
    free(mem);
    assert_true(harness_client_close(&H, 0, c));
}

/* The device writes from a timer while the client does nothing: the
 * client answers when it serves its socket, and the interrupt follows. */
static void test_dma_idle_client(void **state)
{
    VfuClient *c = client();
    uint8_t *mem = calloc(1, MEM_SIZE);
    assert_true(vfu_client_dma_map_mem(c, MEM_IOVA, MEM_SIZE, mem, RW, NULL));
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    assert_true(vfu_client_set_irq_eventfds(c, VFU_PCI_MSIX_IRQ, 0, 1, &efd,
                                            NULL));
    set_range(c, MEM_IOVA + 0x100, 0x300);
    reg_write(c, TDEV_REG_LATER, 0xc3);
    int served = 0;
    for (int i = 0; i < 100 && served < 1; i++) {
        int n = vfu_client_serve(c, 100, NULL);
        assert_true(n >= 0);
        served += n;
    }
    assert_int_equal(served, 1);        /* 0x300 in one piece */
    struct pollfd p = { .fd = efd, .events = POLLIN };
    assert_int_equal(poll(&p, 1, 2000), 1);
    assert_int_equal(reg_read(c, TDEV_REG_COUNTER), 1);
    for (uint64_t i = 0; i < 0x500; i++) {
        assert_int_equal(mem[i], i >= 0x100 && i < 0x400 ? 0xc3 : 0);
    }
    close(efd);
    free(mem);
    assert_true(harness_client_close(&H, 0, c));
}

/* Reads one message; asserts it is the server's DMA_WRITE command. */
static VfuDmaAccess expect_dma_write(VfuClient *c, VfuHeader *h,
                                     uint8_t **payload)
{
    VfuDmaAccess a;
    assert_true(vfu_client_recv(c, h, payload, NULL, NULL));
    assert_int_equal(h->flags & VFU_FLAG_TYPE_MASK, VFU_FLAG_TYPE_COMMAND);
    assert_int_equal(h->cmd, VFU_CMD_DMA_WRITE);
    memcpy(&a, *payload, sizeof(a));
    assert_int_equal(h->size, sizeof(*h) + sizeof(a) + a.count);
    return a;
}

static void send_reply(VfuClient *c, const VfuHeader *req,
                       const VfuDmaAccess *a)
{
    uint8_t msg[sizeof(VfuHeader) + sizeof(*a)];
    VfuHeader r = { .msg_id = req->msg_id, .cmd = req->cmd,
                    .flags = VFU_FLAG_TYPE_REPLY, .size = sizeof(msg) };
    memcpy(msg, &r, sizeof(r));
    memcpy(msg + sizeof(r), a, sizeof(*a));
    assert_true(vfu_client_send_raw(c, msg, sizeof(msg), NULL, 0, NULL));
}

/* While the server waits for the reply to its DMA_WRITE, the client's
 * own commands are answered at once: SET_IRQS (what QEMU 11.1 waits for
 * before it answers) and a REGION_READ. The synchronous server of before
 * held them until the DMA reply, so both waits here timed out. */
static void test_commands_answered_while_dma_waits(void **state)
{
    VfuClient *c = client();
    uint8_t *mem = calloc(1, MEM_SIZE);
    assert_true(vfu_client_dma_map_mem(c, MEM_IOVA, MEM_SIZE, mem, RW, NULL));
    reg_write(c, TDEV_REG_SCRATCH, 0x1234);
    set_range(c, MEM_IOVA, 0x100);
    reg_write(c, TDEV_REG_LATER, 0x77);

    VfuHeader h;
    uint8_t *payload;
    VfuDmaAccess a = expect_dma_write(c, &h, &payload);
    assert_int_equal(a.addr, MEM_IOVA);
    assert_int_equal(a.count, 0x100);
    vfu_client_set_timeout(c, 1000);
    int efd = irq_fd(c);
    assert_int_equal(reg_read(c, TDEV_REG_SCRATCH), 0x1234);
    assert_int_equal(reg_read(c, TDEV_REG_COUNTER), 0);
    assert_int_equal(vfu_client_dma_requests(c), 0);

    memcpy(mem, payload + sizeof(a), a.count);
    free(payload);
    send_reply(c, &h, &a);
    wait_irq(c, efd);
    assert_int_equal(reg_read(c, TDEV_REG_COUNTER), 1);
    assert_int_equal(mem[0xff], 0x77);
    assert_int_equal(dma_errors(), 0);
    close(efd);
    free(mem);
    assert_true(harness_client_close(&H, 0, c));
}

/* Bogus replies: another id is not taken for the reply (the right one
 * still completes the transfer); a count that does not echo the request,
 * a read reply without its data, or an error reply fail the transfer at
 * once, and the device takes the next one. */
static void test_bad_replies(void **state)
{
    VfuClient *c = client();
    uint8_t *mem = calloc(1, MEM_SIZE);
    assert_true(vfu_client_dma_map_mem(c, MEM_IOVA, MEM_SIZE, mem, RW, NULL));
    int efd = irq_fd(c);
    set_range(c, MEM_IOVA, 0x100);
    VfuHeader h;
    uint8_t *payload;

    reg_write(c, TDEV_REG_LATER, 0x31);
    VfuDmaAccess a = expect_dma_write(c, &h, &payload);
    free(payload);
    VfuHeader wrong = h;
    wrong.msg_id = (uint16_t)(h.msg_id + 1);
    send_reply(c, &wrong, &a);
    memset(mem, 0x31, 0x100);
    send_reply(c, &h, &a);
    wait_irq(c, efd);
    assert_int_equal(reg_read(c, TDEV_REG_COUNTER), 1);
    assert_int_equal(dma_errors(), 0);

    reg_write(c, TDEV_REG_LATER, 0x32);
    a = expect_dma_write(c, &h, &payload);
    free(payload);
    a.count--;
    send_reply(c, &h, &a);
    /* (A round trip first: the server has read the reply then.) */
    assert_int_equal(reg_read(c, TDEV_REG_COUNTER), 1);
    assert_int_equal(dma_errors(), 1);

    /* A DMA_READ reply that echoes the request but carries no data. */
    reg_write(c, TDEV_REG_READ_DOORBELL, 1);
    assert_true(vfu_client_recv(c, &h, &payload, NULL, NULL));
    assert_int_equal(h.cmd, VFU_CMD_DMA_READ);
    memcpy(&a, payload, sizeof(a));
    free(payload);
    send_reply(c, &h, &a);
    assert_int_equal(reg_read(c, TDEV_REG_COUNTER), 1);
    assert_int_equal(dma_errors(), 2);

    reg_write(c, TDEV_REG_LATER, 0x33);
    a = expect_dma_write(c, &h, &payload);
    free(payload);
    VfuHeader err = { .msg_id = h.msg_id, .cmd = h.cmd,
                      .flags = VFU_FLAG_TYPE_REPLY | VFU_FLAG_ERROR,
                      .error = EFAULT, .size = sizeof(err) };
    assert_true(vfu_client_send_raw(c, &err, sizeof(err), NULL, 0, NULL));
    assert_int_equal(reg_read(c, TDEV_REG_COUNTER), 1);
    assert_int_equal(dma_errors(), 3);

    reg_write(c, TDEV_REG_DOORBELL, 0x34);
    wait_irq(c, efd);
    assert_int_equal(reg_read(c, TDEV_REG_COUNTER), 2);
    assert_int_equal(mem[0], 0x34);
    close(efd);
    free(mem);
    assert_true(harness_client_close(&H, 0, c));
}

/* A client that never answers: the transfer fails at its deadline, the
 * client's commands are answered meanwhile, and the late answer does not
 * confuse the connection. */
static void test_unanswered(void **state)
{
    VfuClient *c = client();
    uint8_t *mem = calloc(1, MEM_SIZE);
    assert_true(vfu_client_dma_map_mem(c, MEM_IOVA, MEM_SIZE, mem, RW, NULL));
    int efd = irq_fd(c);
    set_range(c, MEM_IOVA, 0x100);
    uint64_t t0 = clock_ms();
    reg_write(c, TDEV_REG_LATER, 0x99);
    VfuHeader h;
    uint8_t *payload;
    VfuDmaAccess a = expect_dma_write(c, &h, &payload);
    free(payload);
    do {
        /* Answered at once, not after the DMA request's deadline. */
        uint64_t r0 = clock_ms();
        assert_int_equal(reg_read(c, TDEV_REG_COUNTER), 0);
        assert_true(clock_ms() - r0 < 500);
        usleep(50 * 1000);
    } while (dma_errors() == 0 && clock_ms() - t0 < 5000);
    uint64_t took = clock_ms() - t0;
    assert_int_equal(dma_errors(), 1);
    assert_true(took >= VFU_REQUEST_TIMEOUT_MS);
    assert_true(took < VFU_REQUEST_TIMEOUT_MS + 1000);
    /* Answered now, too late: dropped. Then a normal transfer. */
    send_reply(c, &h, &a);
    assert_int_equal(reg_read(c, TDEV_REG_COUNTER), 0);
    assert_int_equal(vfu_client_dma_requests(c), 0);
    reg_write(c, TDEV_REG_DOORBELL, 0x11);
    wait_irq(c, efd);
    assert_int_equal(reg_read(c, TDEV_REG_COUNTER), 1);
    assert_int_equal(mem[0], 0x11);
    assert_int_equal(mem[0xff], 0x11);
    close(efd);
    free(mem);
    assert_true(harness_client_close(&H, 0, c));
}

/* RUNNING -> STOP while a DMA_WRITE waits for its reply: the state
 * change's reply waits for the transfer (the device is not stopped
 * before its work is done), the server answers other commands meanwhile,
 * and a second state change is refused until then. */
static void test_stop_waits_for_dma(void **state)
{
    VfuClient *c = client();
    uint8_t *mem = calloc(1, MEM_SIZE);
    assert_true(vfu_client_dma_map_mem(c, MEM_IOVA, MEM_SIZE, mem, RW, NULL));
    set_range(c, MEM_IOVA, 0x100);
    reg_write(c, TDEV_REG_LATER, 0x5c);
    VfuHeader h;
    uint8_t *payload;
    VfuDmaAccess a = expect_dma_write(c, &h, &payload);

    struct {
        VfuHeader h;
        VfuFeature f;
        VfuMigStateData d;
    } __attribute__((packed)) set = {
        .h = { .msg_id = 0x4242, .cmd = VFU_CMD_DEVICE_FEATURE,
               .size = sizeof(set) },
        .f = { .argsz = sizeof(set.f) + sizeof(set.d),
               .flags = VFU_FEATURE_SET | VFU_FEATURE_MIG_DEVICE_STATE },
        .d = { .device_state = VFU_MIG_STOP },
    };
    assert_true(vfu_client_send_raw(c, &set, sizeof(set), NULL, 0, NULL));
    assert_int_equal(reg_read(c, TDEV_REG_COUNTER), 0);
    uint32_t st = 0;
    assert_true(vfu_client_mig_get_state(c, &st, NULL));
    assert_int_equal(st, VFU_MIG_RUNNING);
    assert_false(vfu_client_mig_set_state(c, VFU_MIG_STOP_COPY, NULL));
    assert_int_equal(vfu_client_last_errno(c), EBUSY);

    memcpy(mem, payload + sizeof(a), a.count);
    free(payload);
    send_reply(c, &h, &a);
    VfuHeader rh;
    uint8_t *rp;
    assert_true(vfu_client_recv(c, &rh, &rp, NULL, NULL));
    assert_int_equal(rh.msg_id, 0x4242);
    assert_int_equal(rh.flags & (VFU_FLAG_TYPE_MASK | VFU_FLAG_ERROR),
                     VFU_FLAG_TYPE_REPLY);
    VfuMigStateData d;
    assert_int_equal(rh.size, sizeof(rh) + sizeof(VfuFeature) + sizeof(d));
    memcpy(&d, rp + sizeof(VfuFeature), sizeof(d));
    free(rp);
    assert_int_equal(d.device_state, VFU_MIG_STOP);
    assert_int_equal(reg_read(c, TDEV_REG_COUNTER), 1);
    assert_int_equal(mem[0xff], 0x5c);
    assert_true(vfu_client_mig_set_state(c, VFU_MIG_RUNNING, NULL));
    free(mem);
    assert_true(harness_client_close(&H, 0, c));
}

/* A client that takes at most 4 KiB per message, as its VERSION says. */
static VfuClient *small_xfer_client(void)
{
    static const char caps[] = "{\"capabilities\":{\"max_msg_fds\":8,"
                               "\"max_data_xfer_size\":4096}}";
    uint8_t req[sizeof(VfuVersion) + sizeof(caps)];
    VfuVersion v = { VFU_PROTO_MAJOR, VFU_PROTO_MINOR };
    memcpy(req, &v, sizeof(v));
    memcpy(req + sizeof(v), caps, sizeof(caps));
    VfuClient *c = vfu_client_connect(H.path[0], NULL);
    assert_non_null(c);
    assert_true(vfu_client_request(c, VFU_CMD_VERSION, req, sizeof(req),
                                   NULL, 0, NULL, NULL, NULL, NULL));
    assert_true(vfu_client_reset(c, NULL));
    return c;
}

/* Receives n DMA_WRITE requests of 4 KiB, then checks that no further
 * one comes within 300 ms. */
static void take_requests(VfuClient *c, VfuHeader *hs, uint8_t **ps,
                          unsigned n)
{
    struct pollfd p = { .fd = vfu_client_fd(c), .events = POLLIN };
    for (unsigned i = 0; i < n; i++) {
        assert_int_equal(poll(&p, 1, 5000), 1);
        VfuDmaAccess a = expect_dma_write(c, &hs[i], &ps[i]);
        assert_int_equal(a.count, 4096);
    }
    assert_int_equal(poll(&p, 1, 300), 0);
}

/* A 1 MiB fill to a client taking 4 KiB pieces: 256 requests, never more
 * than VFU_MAX_DMA_REQUESTS waiting for a reply at once; answered, the
 * rest follow and the whole range is written. */
static void test_requests_bounded(void **state)
{
    VfuClient *c = small_xfer_client();
    const uint64_t big = 1u << 20, iova = 0x1000000;
    uint8_t *mem = calloc(1, big);
    assert_true(vfu_client_dma_map_mem(c, iova, big, mem, RW, NULL));
    int efd = irq_fd(c);
    set_range(c, iova, big);
    reg_write(c, TDEV_REG_LATER, 0x6d);
    VfuHeader hs[VFU_MAX_DMA_REQUESTS];
    uint8_t *ps[VFU_MAX_DMA_REQUESTS];
    unsigned total = 0, n = VFU_MAX_DMA_REQUESTS;
    while (total < big / 4096) {
        take_requests(c, hs, ps, n);
        for (unsigned i = 0; i < n; i++) {
            VfuDmaAccess a;
            memcpy(&a, ps[i], sizeof(a));
            memcpy(mem + (a.addr - iova), ps[i] + sizeof(a), a.count);
            send_reply(c, &hs[i], &a);
            free(ps[i]);
        }
        total += n;
    }
    wait_irq(c, efd);
    assert_int_equal(reg_read(c, TDEV_REG_COUNTER), 1);
    for (uint64_t i = 0; i < big; i++) {
        if (mem[i] != 0x6d) {
            fail_msg("byte 0x%llx is 0x%x", (unsigned long long)i, mem[i]);
        }
    }
    assert_int_equal(dma_errors(), 0);
    close(efd);
    free(mem);
    assert_true(harness_client_close(&H, 0, c));
}

/* A client that goes away with a request unanswered: the transfer fails
 * at once (no deadline to wait for), and the next client is served. */
static void test_disconnect_fails_transfer(void **state)
{
    VfuClient *c = client();
    uint8_t *mem = calloc(1, MEM_SIZE);
    assert_true(vfu_client_dma_map_mem(c, MEM_IOVA, MEM_SIZE, mem, RW, NULL));
    set_range(c, MEM_IOVA, 0x100);
    reg_write(c, TDEV_REG_LATER, 0x21);
    VfuHeader h;
    uint8_t *payload;
    expect_dma_write(c, &h, &payload);
    free(payload);
    uint64_t t0 = clock_ms();
    assert_true(harness_client_close(&H, 0, c));
    assert_int_equal(dma_errors(), 1);
    assert_true(clock_ms() - t0 < VFU_REQUEST_TIMEOUT_MS);
    free(mem);

    c = client();
    uint8_t *mem2 = calloc(1, MEM_SIZE);
    assert_true(vfu_client_dma_map_mem(c, MEM_IOVA, MEM_SIZE, mem2, RW,
                                       NULL));
    int efd = irq_fd(c);
    set_range(c, MEM_IOVA, 0x100);
    reg_write(c, TDEV_REG_DOORBELL, 0x22);
    wait_irq(c, efd);
    assert_int_equal(mem2[0x80], 0x22);
    close(efd);
    free(mem2);
    assert_true(harness_client_close(&H, 0, c));
}

/* Spec leaves fd types to the server: this one maps only fds the client
 * cannot shrink under it (a shrunk file would SIGBUS the daemon). */
static void test_unsealed_fd_refused(void **state)
{
    VfuClient *c = client();
    int plain = sealed_memfd(FD_SIZE, 0);
    assert_false(vfu_client_dma_map(c, FD_IOVA, FD_SIZE, plain, 0, RW,
                                    NULL));
    assert_int_equal(vfu_client_last_errno(c), EINVAL);
    int grow_only = sealed_memfd(FD_SIZE, F_SEAL_GROW);
    assert_false(vfu_client_dma_map(c, FD_IOVA, FD_SIZE, grow_only, 0, RW,
                                    NULL));
    assert_int_equal(vfu_client_last_errno(c), EINVAL);
    int sealed = sealed_memfd(FD_SIZE, F_SEAL_SHRINK);
    assert_true(vfu_client_dma_map(c, FD_IOVA, FD_SIZE, sealed, 0, RW, NULL));
    /* What the seal buys: the mapped file cannot shrink any more. */
    assert_int_equal(ftruncate(sealed, 0), -1);
    assert_int_equal(errno, EPERM);
    set_range(c, FD_IOVA, FD_SIZE);
    int efd = irq_fd(c);
    reg_write(c, TDEV_REG_DOORBELL, 0x42);
    wait_irq(c, efd);
    assert_int_equal(reg_read(c, TDEV_REG_COUNTER), 1);
    close(efd);
    close(plain);
    close(grow_only);
    close(sealed);
    assert_true(harness_client_close(&H, 0, c));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dma_in_handler),
        cmocka_unit_test(test_dma_idle_client),
        cmocka_unit_test(test_commands_answered_while_dma_waits),
        cmocka_unit_test(test_bad_replies),
        cmocka_unit_test(test_unanswered),
        cmocka_unit_test(test_stop_waits_for_dma),
        cmocka_unit_test(test_requests_bounded),
        cmocka_unit_test(test_disconnect_fails_transfer),
        cmocka_unit_test(test_unsealed_fd_refused),
    };
    return cmocka_run_group_tests_name("vfio-user-dma", tests, setup,
                                       teardown);
}
