/*
 * vfio-user server and client over a real unix socket: negotiation,
 * regions, guest memory, dirty logging, interrupts, migration, reset.
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

#define GUEST_IOVA 0x100000ull
#define GUEST_SIZE 0x10000ull       /* 16 pages */

static Harness H;

static int setup1(void **state)
{
    return harness_start(&H, 1) ? 0 : -1;
}

static int setup2(void **state)
{
    return harness_start(&H, 2) ? 0 : -1;
}

static int teardown(void **state)
{
    harness_stop(&H);
    return 0;
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

/* Guest memory: a memfd the client maps itself and hands to the server. */
typedef struct Guest {
    int fd;
    uint8_t *mem;
} Guest;

static void guest_map(VfuClient *c, Guest *g)
{
    /* Sealed against shrinking: the server maps nothing else. */
    g->fd = memfd_create("guest", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    assert_true(g->fd >= 0);
    assert_int_equal(ftruncate(g->fd, GUEST_SIZE), 0);
    assert_int_equal(fcntl(g->fd, F_ADD_SEALS, F_SEAL_SHRINK), 0);
    g->mem = mmap(NULL, GUEST_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
                  g->fd, 0);
    assert_true(g->mem != MAP_FAILED);
    assert_true(vfu_client_dma_map(c, GUEST_IOVA, GUEST_SIZE, g->fd, 0,
                                   VFU_DMA_FLAG_READ | VFU_DMA_FLAG_WRITE,
                                   NULL));
}

static void guest_free(Guest *g)
{
    munmap(g->mem, GUEST_SIZE);
    close(g->fd);
}

/* Has the eventfd fired (and how often)? Non-blocking. */
static uint64_t eventfd_count(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    uint64_t v = 0;
    if (poll(&p, 1, 1000) == 1 && read(fd, &v, sizeof(v)) == sizeof(v)) {
        return v;
    }
    return 0;
}

static void dma_fill(VfuClient *c, uint64_t iova, uint64_t len, uint8_t pat)
{
    reg_write(c, TDEV_REG_DMA_ADDR, iova);
    reg_write(c, TDEV_REG_DMA_LEN, len);
    reg_write(c, TDEV_REG_DOORBELL, pat);
}

/* --- tests ----------------------------------------------------------- */

static void test_version(void **state)
{
    VfuClient *c = vfu_client_connect(H.path[0], NULL);
    assert_non_null(c);
    /* Anything before VERSION is refused. */
    VfuDeviceInfo info;
    assert_false(vfu_client_device_info(c, &info, NULL));
    assert_int_equal(vfu_client_last_errno(c), EINVAL);
    assert_true(vfu_client_negotiate(c, NULL));
    const VfuClientCaps *caps = vfu_client_caps(c);
    assert_int_equal(caps->major, 0);
    assert_int_equal(caps->minor, 1);
    assert_int_equal(caps->max_msg_fds, VFU_MAX_MSG_FDS);
    assert_int_equal(caps->max_data_xfer, VFU_MAX_DATA_XFER);
    assert_int_equal(caps->max_dma_maps, VFU_MAX_DMA_MAPS);
    assert_int_equal(caps->pgsizes, 4096);
    /* VERSION only once. */
    assert_false(vfu_client_negotiate(c, NULL));
    assert_int_equal(vfu_client_last_errno(c), EINVAL);
    assert_true(harness_client_close(&H, 0, c));
}

static void test_version_minor_and_major(void **state)
{
    VfuClient *c = vfu_client_connect(H.path[0], NULL);
    VfuVersion v = { 0, 0 };        /* an older minor, no JSON */
    uint8_t *r;
    size_t len;
    assert_true(vfu_client_request(c, VFU_CMD_VERSION, &v, sizeof(v), NULL,
                                   0, &r, &len, NULL, NULL));
    assert_true(len > sizeof(v));
    memcpy(&v, r, sizeof(v));
    free(r);
    assert_int_equal(v.major, 0);
    assert_int_equal(v.minor, 0);   /* never above the proposal */
    assert_true(harness_client_close(&H, 0, c));

    /* Another major: refused, then the connection is closed. */
    c = vfu_client_connect(H.path[0], NULL);
    v = (VfuVersion){ 1, 0 };
    assert_false(vfu_client_request(c, VFU_CMD_VERSION, &v, sizeof(v), NULL,
                                    0, NULL, NULL, NULL, NULL));
    assert_int_equal(vfu_client_last_errno(c), ENOTSUP);
    VfuDeviceInfo info;
    assert_false(vfu_client_device_info(c, &info, NULL));
    assert_int_equal(vfu_client_last_errno(c), 0);  /* transport failure */
    assert_true(harness_client_close(&H, 0, c));
}

static void test_device_and_region_info(void **state)
{
    VfuClient *c = harness_client(&H, 0);
    assert_non_null(c);
    VfuDeviceInfo info;
    assert_true(vfu_client_device_info(c, &info, NULL));
    assert_int_equal(info.num_regions, VFU_PCI_NUM_REGIONS);
    assert_int_equal(info.num_irqs, VFU_PCI_NUM_IRQS);
    assert_int_equal(info.flags, VFU_DEVICE_FLAG_PCI | VFU_DEVICE_FLAG_RESET);

    VfuRegionInfo ri;
    int fd;
    assert_true(vfu_client_region_info(c, 0, &ri, NULL, 0, NULL, &fd, NULL));
    assert_int_equal(ri.size, TDEV_BAR0_SIZE);
    assert_int_equal(ri.flags, VFU_REGION_FLAG_READ | VFU_REGION_FLAG_WRITE);
    assert_int_equal(fd, -1);
    assert_true(vfu_client_region_info(c, VFU_PCI_CONFIG_REGION, &ri, NULL, 0,
                                       NULL, NULL, NULL));
    assert_int_equal(ri.size, 256);
    assert_true(vfu_client_region_info(c, 1, &ri, NULL, 0, NULL, NULL, NULL));
    assert_int_equal(ri.size, 0);
    assert_int_equal(ri.flags, 0);
    assert_false(vfu_client_region_info(c, VFU_PCI_NUM_REGIONS, &ri, NULL, 0,
                                        NULL, NULL, NULL));
    assert_int_equal(vfu_client_last_errno(c), EINVAL);

    /* BAR2: mmappable, only its second page (sparse area). */
    VfuSparseArea areas[4];
    unsigned n = 0;
    assert_true(vfu_client_region_info(c, 2, &ri, areas, 4, &n, &fd, NULL));
    assert_int_equal(ri.flags, VFU_REGION_FLAG_READ | VFU_REGION_FLAG_MMAP |
                     VFU_REGION_FLAG_CAPS);
    assert_int_equal(n, 1);
    assert_int_equal(areas[0].offset, 0x1000);
    assert_int_equal(areas[0].size, 0x1000);
    assert_true(fd >= 0);
    /* The mapping and REGION_READ show the same bytes. */
    uint8_t *bar2 = mmap(NULL, 0x1000, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                         (off_t)(ri.offset + areas[0].offset));
    assert_true(bar2 != MAP_FAILED);
    memcpy(bar2 + 8, "mmapped", 8);
    char got[8];
    assert_true(vfu_client_region_read(c, 2, 0x1008, got, 8, NULL));
    assert_string_equal(got, "mmapped");
    munmap(bar2, 0x1000);
    close(fd);
    assert_true(harness_client_close(&H, 0, c));
}

static void test_region_rw(void **state)
{
    VfuClient *c = harness_client(&H, 0);
    assert_int_equal(reg_read(c, TDEV_REG_ID), TDEV_ID);
    reg_write(c, TDEV_REG_SCRATCH, 0x1122334455667788ull);
    assert_int_equal(reg_read(c, TDEV_REG_SCRATCH), 0x1122334455667788ull);

    uint64_t v = 1;
    /* Past the end, straddling the end, absent region, read-only BAR2,
     * zero count and a register write the device refuses. */
    assert_false(vfu_client_region_read(c, 0, TDEV_BAR0_SIZE, &v, 8, NULL));
    assert_int_equal(vfu_client_last_errno(c), EINVAL);
    assert_false(vfu_client_region_read(c, 0, TDEV_BAR0_SIZE - 4, &v, 8,
                                        NULL));
    assert_int_equal(vfu_client_last_errno(c), EINVAL);
    assert_false(vfu_client_region_read(c, 0, UINT64_MAX - 3, &v, 8, NULL));
    assert_int_equal(vfu_client_last_errno(c), EINVAL);
    assert_false(vfu_client_region_read(c, 1, 0, &v, 8, NULL));
    assert_int_equal(vfu_client_last_errno(c), EINVAL);
    assert_false(vfu_client_region_write(c, 2, 0, &v, 8, NULL));
    assert_int_equal(vfu_client_last_errno(c), EINVAL);
    assert_false(vfu_client_region_write(c, 0, TDEV_REG_ID, &v, 8, NULL));
    assert_int_equal(vfu_client_last_errno(c), EINVAL);
    assert_false(vfu_client_region_read(c, 0, 4, &v, 4, NULL));
    assert_int_equal(vfu_client_last_errno(c), EINVAL);
    VfuRegionAccess a = { .offset = 0, .region = 0, .count = 0 };
    assert_false(vfu_client_request(c, VFU_CMD_REGION_READ, &a, sizeof(a),
                                    NULL, 0, NULL, NULL, NULL, NULL));
    assert_int_equal(vfu_client_last_errno(c), EINVAL);
    /* Nothing changed on the way. */
    assert_int_equal(reg_read(c, TDEV_REG_SCRATCH), 0x1122334455667788ull);

    /* Config space: bytes in, bytes out. */
    uint8_t cfg[4] = { 1, 2, 3, 4 }, back[4];
    assert_true(vfu_client_region_write(c, VFU_PCI_CONFIG_REGION, 0x40, cfg, 4,
                                        NULL));
    assert_true(vfu_client_region_read(c, VFU_PCI_CONFIG_REGION, 0x40, back,
                                       4, NULL));
    assert_memory_equal(cfg, back, 4);
    assert_true(harness_client_close(&H, 0, c));
}

static void test_dma_and_irq(void **state)
{
    VfuClient *c = harness_client(&H, 0);
    Guest g;
    guest_map(c, &g);
    VfuIrqInfo ii;
    assert_true(vfu_client_irq_info(c, VFU_PCI_MSIX_IRQ, &ii, NULL));
    assert_int_equal(ii.count, TDEV_MSIX_VECTORS);
    assert_true(ii.flags & VFU_IRQ_INFO_EVENTFD);
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    assert_true(vfu_client_set_irq_eventfds(c, VFU_PCI_MSIX_IRQ, 0, 1, &efd,
                                            NULL));

    dma_fill(c, GUEST_IOVA + 0x2000, 0x1800, 0xa5);
    assert_int_equal(reg_read(c, TDEV_REG_COUNTER), 1);
    assert_int_equal(eventfd_count(efd), 1);
    for (uint64_t i = 0; i < GUEST_SIZE; i++) {
        uint8_t want = i >= 0x2000 && i < 0x3800 ? 0xa5 : 0;
        if (g.mem[i] != want) {
            fail_msg("guest byte 0x%llx is 0x%x", (unsigned long long)i,
                     g.mem[i]);
        }
    }

    /* A fill running past guest memory stops there: nothing completes,
     * no interrupt. */
    dma_fill(c, GUEST_IOVA + GUEST_SIZE - 0x100, 0x200, 0x11);
    assert_int_equal(reg_read(c, TDEV_REG_COUNTER), 1);
    assert_int_equal(g.mem[GUEST_SIZE - 1], 0x11);

    /* Mapping over a mapping is EEXIST; unknown unmaps are refused. */
    assert_false(vfu_client_dma_map(c, GUEST_IOVA + 0x1000, 0x1000, g.fd, 0,
                                    VFU_DMA_FLAG_READ, NULL));
    assert_int_equal(vfu_client_last_errno(c), EEXIST);
    assert_false(vfu_client_dma_unmap(c, GUEST_IOVA, 0x1000, NULL));
    assert_int_equal(vfu_client_last_errno(c), EINVAL);
    assert_true(vfu_client_dma_unmap(c, GUEST_IOVA, GUEST_SIZE, NULL));
    /* Without guest memory the device cannot write. */
    dma_fill(c, GUEST_IOVA, 0x10, 0x22);
    assert_int_equal(reg_read(c, TDEV_REG_COUNTER), 1);
    assert_int_equal(g.mem[0], 0);

    /* De-assigned eventfd: the vector no longer fires. */
    guest_map(c, &g);
    assert_true(vfu_client_set_irq_eventfds(c, VFU_PCI_MSIX_IRQ, 0, 1, NULL,
                                            NULL));
    dma_fill(c, GUEST_IOVA, 0x10, 0x33);
    assert_int_equal(reg_read(c, TDEV_REG_COUNTER), 2);
    struct pollfd p = { .fd = efd, .events = POLLIN };
    assert_int_equal(poll(&p, 1, 50), 0);
    close(efd);
    guest_free(&g);
    assert_true(harness_client_close(&H, 0, c));
}

static void test_irq_mask(void **state)
{
    VfuClient *c = harness_client(&H, 0);
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    VfuIrqInfo ii;
    assert_true(vfu_client_irq_info(c, VFU_PCI_INTX_IRQ, &ii, NULL));
    assert_true(ii.flags & VFU_IRQ_INFO_MASKABLE);
    assert_true(vfu_client_set_irq_eventfds(c, VFU_PCI_INTX_IRQ, 0, 1, &efd,
                                            NULL));
    assert_true(vfu_client_set_irqs(c, VFU_PCI_INTX_IRQ, 0, 1,
                                    VFU_IRQ_SET_ACTION_TRIGGER, NULL, NULL));
    assert_int_equal(eventfd_count(efd), 1);
    /* Masked: the trigger is held back until unmask. */
    assert_true(vfu_client_set_irqs(c, VFU_PCI_INTX_IRQ, 0, 1,
                                    VFU_IRQ_SET_ACTION_MASK, NULL, NULL));
    assert_true(vfu_client_set_irqs(c, VFU_PCI_INTX_IRQ, 0, 1,
                                    VFU_IRQ_SET_ACTION_TRIGGER, NULL, NULL));
    struct pollfd p = { .fd = efd, .events = POLLIN };
    assert_int_equal(poll(&p, 1, 50), 0);
    uint8_t yes = 1;
    assert_true(vfu_client_set_irqs(c, VFU_PCI_INTX_IRQ, 0, 1,
                                    VFU_IRQ_SET_ACTION_UNMASK, &yes, NULL));
    assert_int_equal(eventfd_count(efd), 1);
    /* MSI-X is not maskable here; counts past the index are refused. */
    assert_false(vfu_client_set_irqs(c, VFU_PCI_MSIX_IRQ, 0, 1,
                                     VFU_IRQ_SET_ACTION_MASK, NULL, NULL));
    assert_int_equal(vfu_client_last_errno(c), EINVAL);
    assert_false(vfu_client_set_irqs(c, VFU_PCI_MSIX_IRQ, 2, 3,
                                     VFU_IRQ_SET_ACTION_TRIGGER, NULL, NULL));
    assert_int_equal(vfu_client_last_errno(c), EINVAL);
    /* count 0 + DATA_NONE disables the index. */
    assert_true(vfu_client_set_irqs(c, VFU_PCI_INTX_IRQ, 0, 0,
                                    VFU_IRQ_SET_ACTION_TRIGGER, NULL, NULL));
    assert_true(vfu_client_set_irqs(c, VFU_PCI_INTX_IRQ, 0, 1,
                                    VFU_IRQ_SET_ACTION_TRIGGER, NULL, NULL));
    assert_int_equal(poll(&p, 1, 50), 0);
    close(efd);
    assert_true(harness_client_close(&H, 0, c));
}

static void test_dirty_logging(void **state)
{
    VfuClient *c = harness_client(&H, 0);
    Guest g;
    guest_map(c, &g);
    uint64_t bm[1] = { 0 }, page;
    /* Reports before logging starts are refused. */
    assert_false(vfu_client_dirty_report(c, GUEST_IOVA, GUEST_SIZE, 4096, bm,
                                         1, NULL));
    assert_int_equal(vfu_client_last_errno(c), EINVAL);
    assert_true(vfu_client_dirty_start(c, 4096, NULL, 0, &page, NULL));
    assert_int_equal(page, 4096);
    assert_true(vfu_client_dirty_report(c, GUEST_IOVA, GUEST_SIZE, 4096, bm,
                                        1, NULL));
    assert_int_equal(bm[0], 0);

    /* Bytes 0x2100..0x30ff touch pages 2 and 3, exactly. */
    dma_fill(c, GUEST_IOVA + 0x2100, 0x1000, 0x5a);
    assert_true(vfu_client_dirty_report(c, GUEST_IOVA, GUEST_SIZE, 4096, bm,
                                        1, NULL));
    assert_int_equal(bm[0], (1u << 2) | (1u << 3));
    /* Reported pages are clean again. */
    assert_true(vfu_client_dirty_report(c, GUEST_IOVA, GUEST_SIZE, 4096, bm,
                                        1, NULL));
    assert_int_equal(bm[0], 0);

    /* A coarser report: page 11 lies in 8 KiB page 5. */
    dma_fill(c, GUEST_IOVA + 11 * 4096 + 17, 1, 0x01);
    assert_true(vfu_client_dirty_report(c, GUEST_IOVA, GUEST_SIZE, 8192, bm,
                                        1, NULL));
    assert_int_equal(bm[0], 1u << 5);
    /* A report of a sub-range numbers bits from its start. */
    dma_fill(c, GUEST_IOVA + 9 * 4096, 4096, 0x02);
    assert_true(vfu_client_dirty_report(c, GUEST_IOVA + 8 * 4096, 4 * 4096,
                                        4096, bm, 1, NULL));
    assert_int_equal(bm[0], 1u << 1);

    /* Unmap with the dirty bitmap flag returns the mapping's pages. */
    dma_fill(c, GUEST_IOVA + 15 * 4096, 8, 0x03);
    struct {
        VfuDmaUnmap u;
        VfuBitmap b;
    } req = { { sizeof(req) + 8, VFU_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
                GUEST_IOVA, GUEST_SIZE }, { 4096, 8 } };
    uint8_t *r;
    size_t rlen;
    assert_true(vfu_client_request(c, VFU_CMD_DMA_UNMAP, &req, sizeof(req),
                                   NULL, 0, &r, &rlen, NULL, NULL));
    assert_int_equal(rlen, sizeof(req) + 8);
    memcpy(bm, r + sizeof(req), 8);
    free(r);
    assert_int_equal(bm[0], 1u << 15);

    assert_true(vfu_client_dirty_stop(c, NULL));
    assert_false(vfu_client_dirty_report(c, GUEST_IOVA, GUEST_SIZE, 4096, bm,
                                         1, NULL));
    assert_int_equal(vfu_client_last_errno(c), EINVAL);
    guest_free(&g);
    assert_true(harness_client_close(&H, 0, c));
}

typedef struct DevQuery {
    unsigned idx;
    TestDev dev;
} DevQuery;

static void read_dev(Harness *h, void *arg)
{
    DevQuery *q = arg;
    q->dev = h->dev[q->idx];
}

/* Snapshot of device idx taken on the loop thread. */
static TestDev dev_snapshot(unsigned idx)
{
    DevQuery q = { .idx = idx };
    harness_sync(&H, read_dev, &q);
    return q.dev;
}

static void test_migration(void **state)
{
    VfuClient *src = harness_client(&H, 0);
    VfuClient *dst = harness_client(&H, 1);
    Guest g;
    guest_map(src, &g);
    reg_write(src, TDEV_REG_SCRATCH, 0xfeedface);
    dma_fill(src, GUEST_IOVA, 64, 0x77);
    reg_write(src, TDEV_REG_DMA_ADDR, GUEST_IOVA + 0x4000);

    uint64_t flags;
    assert_true(vfu_client_mig_flags(src, &flags, NULL));
    assert_int_equal(flags, VFU_MIGRATION_STOP_COPY);
    uint32_t st;
    assert_true(vfu_client_mig_get_state(src, &st, NULL));
    assert_int_equal(st, VFU_MIG_RUNNING);

    assert_true(vfu_client_mig_set_state(src, VFU_MIG_STOP, NULL));
    assert_true(dev_snapshot(0).quiesced);
    /* Stopped: the doorbell is refused, nothing moves. */
    uint64_t v = 0x99;
    assert_false(vfu_client_region_write(src, 0, TDEV_REG_DOORBELL, &v, 8,
                                         NULL));
    assert_true(vfu_client_mig_set_state(src, VFU_MIG_STOP_COPY, NULL));
    ByteBuf data;
    bytebuf_init(&data);
    /* Small chunks, to exercise the stream. */
    for (;;) {
        uint32_t got;
        assert_true(bytebuf_reserve(&data, 5));
        assert_true(vfu_client_mig_read(src, data.data + data.len, 5, &got,
                                        NULL));
        data.len += got;
        if (got < 5) {
            break;
        }
    }
    assert_true(data.len > 0);
    assert_true(vfu_client_mig_set_state(src, VFU_MIG_STOP, NULL));

    assert_true(vfu_client_mig_set_state(dst, VFU_MIG_RESUMING, NULL));
    assert_true(vfu_client_mig_write(dst, data.data, data.len, NULL));
    assert_true(vfu_client_mig_set_state(dst, VFU_MIG_STOP, NULL));
    assert_true(vfu_client_mig_set_state(dst, VFU_MIG_RUNNING, NULL));
    assert_true(vfu_client_mig_get_state(dst, &st, NULL));
    assert_int_equal(st, VFU_MIG_RUNNING);

    TestDev a = dev_snapshot(0), b = dev_snapshot(1);
    assert_int_equal(b.scratch, 0xfeedface);
    assert_int_equal(b.scratch, a.scratch);
    assert_int_equal(b.dma_addr, a.dma_addr);
    assert_int_equal(b.dma_len, a.dma_len);
    assert_int_equal(b.counter, 1);
    assert_false(b.quiesced);
    assert_int_equal(reg_read(dst, TDEV_REG_SCRATCH), 0xfeedface);

    /* The source can run again (failed migration path). */
    assert_true(vfu_client_mig_set_state(src, VFU_MIG_RUNNING, NULL));
    assert_false(dev_snapshot(0).quiesced);
    bytebuf_free(&data);
    guest_free(&g);
    assert_true(harness_client_close(&H, 0, src));
    assert_true(harness_client_close(&H, 1, dst));
}

static void test_migration_arcs(void **state)
{
    VfuClient *c = harness_client(&H, 0);
    uint32_t st;
    /* Not offered or not a target: refused, state unchanged. */
    uint32_t bad[] = { VFU_MIG_ERROR, VFU_MIG_PRE_COPY, VFU_MIG_RUNNING_P2P,
                       VFU_MIG_PRE_COPY_P2P, 8, UINT32_MAX };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_false(vfu_client_mig_set_state(c, bad[i], NULL));
        assert_int_equal(vfu_client_last_errno(c), EINVAL);
        assert_true(vfu_client_mig_get_state(c, &st, NULL));
        assert_int_equal(st, VFU_MIG_RUNNING);
    }
    /* Data outside the states that carry it. */
    uint8_t buf[8];
    uint32_t got;
    assert_false(vfu_client_mig_read(c, buf, 8, &got, NULL));
    assert_int_equal(vfu_client_last_errno(c), EINVAL);
    assert_false(vfu_client_mig_write(c, buf, 8, NULL));
    assert_int_equal(vfu_client_last_errno(c), EINVAL);

    /* RUNNING -> STOP_COPY goes through STOP; back to RUNNING too. */
    assert_true(vfu_client_mig_set_state(c, VFU_MIG_STOP_COPY, NULL));
    assert_true(dev_snapshot(0).quiesced);
    assert_true(vfu_client_mig_set_state(c, VFU_MIG_RUNNING, NULL));
    assert_false(dev_snapshot(0).quiesced);

    /* Bad state data: RESUMING -> STOP fails and leaves ERROR, which only
     * reset leaves. */
    reg_write(c, TDEV_REG_SCRATCH, 42);
    assert_true(vfu_client_mig_set_state(c, VFU_MIG_RESUMING, NULL));
    assert_true(vfu_client_mig_write(c, "garbage", 7, NULL));
    assert_false(vfu_client_mig_set_state(c, VFU_MIG_RUNNING, NULL));
    assert_int_equal(vfu_client_last_errno(c), EINVAL);
    assert_true(vfu_client_mig_get_state(c, &st, NULL));
    assert_int_equal(st, VFU_MIG_ERROR);
    assert_false(vfu_client_mig_set_state(c, VFU_MIG_STOP, NULL));
    assert_int_equal(vfu_client_last_errno(c), EINVAL);
    assert_true(vfu_client_reset(c, NULL));
    assert_true(vfu_client_mig_get_state(c, &st, NULL));
    assert_int_equal(st, VFU_MIG_RUNNING);
    assert_int_equal(reg_read(c, TDEV_REG_SCRATCH), 0);
    assert_true(harness_client_close(&H, 0, c));
}

static void test_reset_and_reconnect(void **state)
{
    VfuClient *c = harness_client(&H, 0);
    unsigned resets = dev_snapshot(0).resets;
    reg_write(c, TDEV_REG_SCRATCH, 7);
    Guest g;
    guest_map(c, &g);
    assert_true(vfu_client_reset(c, NULL));
    assert_int_equal(dev_snapshot(0).resets, resets + 1);
    assert_int_equal(reg_read(c, TDEV_REG_SCRATCH), 0);
    reg_write(c, TDEV_REG_SCRATCH, 9);
    unsigned unmaps = dev_snapshot(0).unmaps;
    /* A disconnect drops guest memory but keeps the device state. */
    assert_true(harness_client_close(&H, 0, c));
    assert_int_equal(dev_snapshot(0).unmaps, unmaps + 1);
    c = harness_client(&H, 0);
    assert_non_null(c);
    assert_int_equal(reg_read(c, TDEV_REG_SCRATCH), 9);
    dma_fill(c, GUEST_IOVA, 8, 0x44);
    assert_int_equal(g.mem[0], 0);
    /* A second client while one is connected is turned away. */
    VfuClient *other = vfu_client_connect(H.path[0], NULL);
    assert_non_null(other);
    assert_false(vfu_client_negotiate(other, NULL));
    vfu_client_free(other);
    assert_int_equal(reg_read(c, TDEV_REG_SCRATCH), 9);
    guest_free(&g);
    assert_true(harness_client_close(&H, 0, c));
}

int main(void)
{
    const struct CMUnitTest one[] = {
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_version_minor_and_major),
        cmocka_unit_test(test_device_and_region_info),
        cmocka_unit_test(test_region_rw),
        cmocka_unit_test(test_dma_and_irq),
        cmocka_unit_test(test_irq_mask),
        cmocka_unit_test(test_dirty_logging),
        cmocka_unit_test(test_migration_arcs),
        cmocka_unit_test(test_reset_and_reconnect),
    };
    const struct CMUnitTest two[] = {
        cmocka_unit_test(test_migration),
    };
    int rc = cmocka_run_group_tests_name("vfio-user", one, setup1, teardown);
    return rc | cmocka_run_group_tests_name("vfio-user-migration", two,
                                            setup2, teardown);
}
