/*
 * vfio-user guest memory the client maps without an fd: the device's
 * reads and writes become DMA_READ / DMA_WRITE requests to the client,
 * from inside a command's handler (the client waits for its own reply)
 * and from a loop timer (the client is idle). Also: commands the client
 * sends while the server waits are handled afterwards, in order; a
 * client that never answers costs a bounded wait; fds the client could
 * shrink are refused.
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

    /* 0x7f00..0x8100: 0x100 bytes by request, 0x100 through the fd. */
    set_range(c, MEM_IOVA + 0x7f00, 0x200);
    uint64_t before = vfu_client_dma_requests(c);
    reg_write(c, TDEV_REG_DOORBELL, 0x5a);
    assert_int_equal(reg_read(c, TDEV_REG_COUNTER), 1);
    assert_int_equal(vfu_client_dma_requests(c) - before, 1);
    for (uint64_t i = 0; i < MEM_SIZE; i++) {
        if (mem[i] != (i >= 0x7f00 ? 0x5a : 0)) {
            fail_msg("byte 0x%llx is 0x%x", (unsigned long long)i, mem[i]);
        }
    }
    assert_int_equal(fdmem[0xff], 0x5a);
    assert_int_equal(fdmem[0x100], 0);

    /* The device reads what the client holds, in 256-byte pieces. */
    uint64_t want = 0;
    for (uint64_t i = 0; i < 0x1000; i++) {
        mem[0x1000 + i] = (uint8_t)(i * 7 + 3);
        want += mem[0x1000 + i];
    }
    set_range(c, MEM_IOVA + 0x1000, 0x1000);
    before = vfu_client_dma_requests(c);
    reg_write(c, TDEV_REG_READ_DOORBELL, 1);
    assert_int_equal(reg_read(c, TDEV_REG_SUM), want);
    assert_int_equal(reg_read(c, TDEV_REG_COUNTER), 2);
    assert_int_equal(vfu_client_dma_requests(c) - before, 0x1000 / 256);

    /* After the unmap the client no longer answers for that memory, and
     * the server no longer asks. */
    assert_true(vfu_client_dma_unmap(c, MEM_IOVA, MEM_SIZE, NULL));
    before = vfu_client_dma_requests(c);
    reg_write(c, TDEV_REG_READ_DOORBELL, 1);
    assert_int_equal(reg_read(c, TDEV_REG_COUNTER), 2);
    assert_int_equal(vfu_client_dma_requests(c), before);
    munmap(fdmem, FD_SIZE);
    close(fd);
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
    for (int i = 0; i < 100 && served < 3; i++) {
        int n = vfu_client_serve(c, 100, NULL);
        assert_true(n >= 0);
        served += n;
    }
    assert_int_equal(served, 3);        /* 0x300 in 256-byte pieces */
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

/* A command sent while the server waits for a DMA reply is answered
 * after it, in order; a reply that does not echo the request fails the
 * device's DMA instead of being taken. Both sides by hand. */
static void test_held_command_and_bad_reply(void **state)
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
    /* The server is waiting now: a REGION_READ of the scratch register. */
    uint8_t cmd[sizeof(VfuHeader) + sizeof(VfuRegionAccess)];
    VfuHeader ch = { .msg_id = 0x77, .cmd = VFU_CMD_REGION_READ,
                     .size = sizeof(cmd) };
    VfuRegionAccess ra = { .offset = TDEV_REG_SCRATCH, .region = 0,
                           .count = 8 };
    memcpy(cmd, &ch, sizeof(ch));
    memcpy(cmd + sizeof(ch), &ra, sizeof(ra));
    assert_true(vfu_client_send_raw(c, cmd, sizeof(cmd), NULL, 0, NULL));
    memcpy(mem, payload + sizeof(a), a.count);
    free(payload);
    send_reply(c, &h, &a);

    VfuHeader rh;
    uint8_t *rp;
    assert_true(vfu_client_recv(c, &rh, &rp, NULL, NULL));
    assert_int_equal(rh.flags & VFU_FLAG_TYPE_MASK, VFU_FLAG_TYPE_REPLY);
    assert_int_equal(rh.msg_id, 0x77);
    assert_int_equal(rh.size, sizeof(rh) + sizeof(ra) + 8);
    uint64_t scratch;
    memcpy(&scratch, rp + sizeof(ra), 8);
    assert_int_equal(scratch, 0x1234);
    free(rp);
    assert_int_equal(reg_read(c, TDEV_REG_COUNTER), 1);
    assert_int_equal(mem[0xff], 0x77);

    /* A reply with another count is refused: the fill fails. */
    reg_write(c, TDEV_REG_LATER, 0x78);
    a = expect_dma_write(c, &h, &payload);
    free(payload);
    a.count--;
    send_reply(c, &h, &a);
    assert_int_equal(reg_read(c, TDEV_REG_COUNTER), 1);
    assert_int_equal(mem[0], 0x77);
    free(mem);
    assert_true(harness_client_close(&H, 0, c));
}

/* A client that never answers: the device's DMA fails after the bounded
 * wait, and the late answer does not confuse the connection. */
static void test_unanswered(void **state)
{
    VfuClient *c = client();
    uint8_t *mem = calloc(1, MEM_SIZE);
    assert_true(vfu_client_dma_map_mem(c, MEM_IOVA, MEM_SIZE, mem, RW, NULL));
    set_range(c, MEM_IOVA, 0x100);
    uint64_t t0 = clock_ms();
    reg_write(c, TDEV_REG_LATER, 0x99);
    usleep((VFU_REQUEST_TIMEOUT_MS + 300) * 1000);
    /* Answered now (too late), then a normal request goes through. */
    assert_int_equal(reg_read(c, TDEV_REG_COUNTER), 0);
    assert_true(clock_ms() - t0 >= VFU_REQUEST_TIMEOUT_MS);
    assert_int_equal(vfu_client_dma_requests(c), 1);
    reg_write(c, TDEV_REG_DOORBELL, 0x11);
    assert_int_equal(reg_read(c, TDEV_REG_COUNTER), 1);
    assert_int_equal(mem[0], 0x11);
    free(mem);
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
    reg_write(c, TDEV_REG_DOORBELL, 0x42);
    assert_int_equal(reg_read(c, TDEV_REG_COUNTER), 1);
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
        cmocka_unit_test(test_held_command_and_bad_reply),
        cmocka_unit_test(test_unanswered),
        cmocka_unit_test(test_unsealed_fd_refused),
    };
    return cmocka_run_group_tests_name("vfio-user-dma", tests, setup,
                                       teardown);
}
