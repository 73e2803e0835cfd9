/* The tiny device of the vfio-user tests (see test-dev.h). */
#include "test-dev.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define STATE_MAGIC 0x54444556u     /* "TDEV" */
#define STATE_SIZE (4 + 4 * 8)

/* The engine's transfers are asynchronous: the operation counts (and
 * the interrupt fires) when the last byte is through. */
static void fill_done(void *opaque, bool ok)
{
    TestDev *d = opaque;
    free(d->dma_buf);
    d->dma_buf = NULL;
    d->dma_busy = false;
    if (d->quiesce_waits) {
        /* The transfer was the last work before the stop. */
        d->quiesce_waits = false;
        d->quiesced = true;
        vfu_server_quiesce_done(d->srv);
    }
    if (!ok) {
        d->dma_errors++;
        return;
    }
    d->counter++;
    vfu_irq_trigger(d->srv, VFU_PCI_MSIX_IRQ, 0);
}

static void sum_done(void *opaque, bool ok)
{
    TestDev *d = opaque;
    uint64_t sum = 0;
    for (uint64_t i = 0; ok && i < d->dma_len; i++) {
        sum += d->dma_buf[i];
    }
    if (ok) {
        d->sum = sum;
    }
    fill_done(opaque, ok);
}

/* Copies what is mapped with an fd directly, as far as it goes. */
static uint64_t engine_direct(TestDev *d, bool is_write)
{
    uint64_t done = 0, contig = 0;
    while (done < d->dma_len) {
        uint8_t *host = vfu_dma_translate(d->srv, d->dma_addr + done,
                                          d->dma_len - done, is_write,
                                          &contig);
        if (!host) {
            break;
        }
        memcpy(is_write ? host : d->dma_buf + done,
               is_write ? d->dma_buf + done : host, contig);
        if (is_write) {
            vfu_dma_mark_dirty(d->srv, d->dma_addr + done, contig);
        }
        done += contig;
    }
    return done;
}

/* Starts a fill (is_write) or a sum of the DMA range: memory mapped with
 * an fd at once, the rest through the client, asynchronously. */
static void engine_start(TestDev *d, bool is_write, uint64_t value)
{
    VfuDmaDone *done = is_write ? fill_done : sum_done;
    d->dma_buf = d->dma_len && d->dma_len <= TDEV_MAX_DMA
                 ? malloc(d->dma_len) : NULL;
    if (!d->dma_buf) {
        d->dma_errors++;
        return;
    }
    memset(d->dma_buf, (int)(value & 0xff), d->dma_len);
    d->dma_busy = true;
    uint64_t direct = engine_direct(d, is_write);
    if (direct == d->dma_len) {
        done(d, true);
    } else if (!vfu_dma_start(d->srv, d->dma_addr + direct,
                              d->dma_buf + direct, d->dma_len - direct,
                              is_write, done, d, NULL)) {
        done(d, false);
    }
}

static void doorbell(TestDev *d, uint64_t value)
{
    engine_start(d, true, value);
}

static void dma_sum(TestDev *d)
{
    engine_start(d, false, 0);
}

static int64_t later_fire(EventLoop *loop, uint64_t id, void *opaque)
{
    TestDev *d = opaque;
    d->later_timer = 0;
    doorbell(d, d->later_value);
    return LOOP_TIMER_DONE;
}

/* Write-only registers that start the DMA engine. */
static bool engine_access(TestDev *d, uint64_t off, uint64_t *val,
                          bool is_write)
{
    if (!is_write) {
        *val = 0;
        return true;
    }
    if (d->quiesced || d->dma_busy || (off == TDEV_REG_LATER &&
                        (!d->loop || d->later_timer))) {
        return false;
    }
    if (off == TDEV_REG_DOORBELL) {
        doorbell(d, *val);
    } else if (off == TDEV_REG_READ_DOORBELL) {
        dma_sum(d);
    } else {
        d->later_value = *val;
        d->later_timer = loop_add_timer(d->loop, 0, later_fire, d);
    }
    return true;
}

static bool bar0_access(TestDev *d, uint64_t off, uint64_t *val,
                        bool is_write)
{
    uint64_t *reg = NULL;
    switch (off) {
    case TDEV_REG_ID:
        if (is_write) {
            return false;
        }
        *val = TDEV_ID;
        return true;
    case TDEV_REG_SCRATCH: reg = &d->scratch; break;
    case TDEV_REG_DMA_ADDR: reg = &d->dma_addr; break;
    case TDEV_REG_DMA_LEN: reg = &d->dma_len; break;
    case TDEV_REG_COUNTER:
        if (is_write) {
            return false;
        }
        reg = &d->counter;
        break;
    case TDEV_REG_SUM:
        if (is_write) {
            return false;
        }
        reg = &d->sum;
        break;
    case TDEV_REG_DOORBELL:
    case TDEV_REG_READ_DOORBELL:
    case TDEV_REG_LATER:
        return engine_access(d, off, val, is_write);
    default:
        if (!is_write) {
            *val = 0;
        }
        return true;
    }
    if (is_write) {
        *reg = *val;
    } else {
        *val = *reg;
    }
    return true;
}

static bool region_access(void *opaque, unsigned region, uint64_t offset,
                          void *buf, uint32_t len, bool is_write)
{
    TestDev *d = opaque;
    if (region == VFU_PCI_CONFIG_REGION) {
        if (is_write) {
            memcpy(d->config + offset, buf, len);
        } else {
            memcpy(buf, d->config + offset, len);
        }
        return true;
    }
    if (region == 2) {
        return pread(d->bar2_fd, buf, len, (off_t)offset) == (ssize_t)len;
    }
    /* BAR0: 8-byte aligned 8-byte accesses only. */
    if (region != 0 || len != 8 || offset % 8) {
        return false;
    }
    uint64_t v;
    memcpy(&v, buf, 8);
    if (!bar0_access(d, offset, &v, is_write)) {
        return false;
    }
    if (!is_write) {
        memcpy(buf, &v, 8);
    }
    return true;
}

static void reset(void *opaque)
{
    TestDev *d = opaque;
    d->scratch = d->dma_addr = d->dma_len = d->counter = 0;
    d->quiesced = false;
    d->dma_errors = 0;
    d->resets++;
}

static void dma_unmap(void *opaque, uint64_t iova, uint64_t len)
{
    TestDev *d = opaque;
    d->unmaps++;
}

static bool quiesce(void *opaque, Error **errp)
{
    ((TestDev *)opaque)->quiesced = true;
    return true;
}

/* Stops once the running transfer is through. */
static bool quiesce_begin(void *opaque, bool *later, Error **errp)
{
    TestDev *d = opaque;
    *later = d->dma_busy;
    d->quiesce_waits = d->dma_busy;
    d->quiesced = !d->dma_busy;
    return !d->dma_busy;
}

static bool resume(void *opaque, Error **errp)
{
    ((TestDev *)opaque)->quiesced = false;
    return true;
}

static bool save(void *opaque, ByteBuf *out, Error **errp)
{
    TestDev *d = opaque;
    uint32_t magic = STATE_MAGIC;
    bytebuf_append(out, &magic, 4);
    bytebuf_append(out, &d->scratch, 8);
    bytebuf_append(out, &d->dma_addr, 8);
    bytebuf_append(out, &d->dma_len, 8);
    bytebuf_append(out, &d->counter, 8);
    return true;
}

static bool load(void *opaque, const uint8_t *data, size_t len, Error **errp)
{
    TestDev *d = opaque;
    uint32_t magic;
    if (len != STATE_SIZE) {
        error_setg(errp, "test device state: %zu bytes, expected %d", len,
                   STATE_SIZE);
        return false;
    }
    memcpy(&magic, data, 4);
    if (magic != STATE_MAGIC) {
        error_setg(errp, "test device state: bad magic");
        return false;
    }
    memcpy(&d->scratch, data + 4, 8);
    memcpy(&d->dma_addr, data + 12, 8);
    memcpy(&d->dma_len, data + 20, 8);
    memcpy(&d->counter, data + 28, 8);
    return true;
}

const VfuDeviceOps test_dev_ops = {
    .region_access = region_access,
    .reset = reset,
    .dma_unmap = dma_unmap,
    .quiesce = quiesce,
    .quiesce_begin = quiesce_begin,
    .resume = resume,
    .save = save,
    .load = load,
};

void test_dev_init(TestDev *dev, VfuDeviceDesc *desc)
{
    memset(dev, 0, sizeof(*dev));
    memset(desc, 0, sizeof(*desc));
    for (unsigned i = 0; i < VFU_PCI_NUM_REGIONS; i++) {
        desc->regions[i].mmap_fd = -1;
    }
    dev->config[0] = 0x86;      /* vendor 0x1b36-ish test ids */
    dev->config[1] = 0x80;
    dev->bar2_fd = memfd_create("tdev-bar2", MFD_CLOEXEC);
    if (dev->bar2_fd >= 0 && ftruncate(dev->bar2_fd, TDEV_BAR2_SIZE) == 0) {
        desc->regions[2] = (VfuRegionDesc){
            .size = TDEV_BAR2_SIZE, .readable = true,
            .mmap_fd = dev->bar2_fd, .nr_sparse = 1,
            .sparse = { { .offset = 0x1000, .size = 0x1000 } },
        };
    }
    desc->regions[0] = (VfuRegionDesc){ .size = TDEV_BAR0_SIZE,
        .readable = true, .writable = true, .mmap_fd = -1 };
    desc->regions[VFU_PCI_CONFIG_REGION] = (VfuRegionDesc){ .size = 256,
        .readable = true, .writable = true, .mmap_fd = -1 };
    desc->irqs[VFU_PCI_INTX_IRQ] = (VfuIrqDesc){ .count = 1,
                                                 .maskable = true };
    desc->irqs[VFU_PCI_MSIX_IRQ] = (VfuIrqDesc){ .count = TDEV_MSIX_VECTORS };
    desc->irqs[VFU_PCI_ERR_IRQ] = (VfuIrqDesc){ .count = 1 };
    desc->irqs[VFU_PCI_REQ_IRQ] = (VfuIrqDesc){ .count = 1 };
}

void test_dev_cleanup(TestDev *dev)
{
    if (dev->later_timer) {
        loop_del_timer(dev->loop, dev->later_timer);
        dev->later_timer = 0;
    }
    if (dev->bar2_fd >= 0) {
        close(dev->bar2_fd);
        dev->bar2_fd = -1;
    }
}
