/*
 * A tiny PCI device served over vfio-user in the tests: a few 64-bit
 * registers in BAR0, a DMA engine that fills guest memory with a byte
 * pattern and raises MSI-X vector 0 when the transfer is through (started
 * at once, or later from a loop timer when the client is idle), that sums
 * the bytes of a guest range, an
 * mmappable BAR2 (second page only), a raw config space, and migration of
 * its registers (a stop waits for the running transfer).
 */
#ifndef STORMIG_TESTS_VFIO_USER_TEST_DEV_H
#define STORMIG_TESTS_VFIO_USER_TEST_DEV_H

#include <stdbool.h>
#include <stdint.h>

#include "vfio-user/vfu-server.h"

enum {
    TDEV_REG_ID = 0x00,         /* read-only */
    TDEV_REG_SCRATCH = 0x08,
    TDEV_REG_DMA_ADDR = 0x10,
    TDEV_REG_DMA_LEN = 0x18,
    TDEV_REG_DOORBELL = 0x20,   /* write: fill DMA range with value & 0xff
                                   (refused while a transfer runs) */
    TDEV_REG_COUNTER = 0x28,    /* read-only: completed DMA operations */
    TDEV_REG_SUM = 0x30,        /* read-only: byte sum of the last read */
    TDEV_REG_READ_DOORBELL = 0x38,  /* write: DMA-read the range, sum it */
    TDEV_REG_LATER = 0x40,      /* write: the fill of DOORBELL, run from a
                                   loop timer (needs TestDev.loop) */
    TDEV_BAR0_SIZE = 0x1000,
    TDEV_BAR2_SIZE = 0x2000,
    TDEV_MSIX_VECTORS = 4,
};
#define TDEV_MAX_DMA (1u << 20)     /* largest DMA range */
#define TDEV_ID 0x5354524d49470001ull

typedef struct TestDev {
    VfuServer *srv;
    uint64_t scratch, dma_addr, dma_len, counter, sum;
    EventLoop *loop;            /* for TDEV_REG_LATER (may stay NULL) */
    uint64_t later_timer;
    uint64_t later_value;
    uint8_t config[256];
    int bar2_fd;                /* memfd behind BAR2 */
    bool quiesced;
    unsigned resets;
    unsigned unmaps;
    unsigned dma_errors;
    uint8_t *dma_buf;           /* the running transfer's data */
    bool dma_busy;
    bool quiesce_waits;         /* a stop waits for the transfer */
} TestDev;

/* Sets up dev and its descriptor (BAR2 backed by a fresh memfd). */
void test_dev_init(TestDev *dev, VfuDeviceDesc *desc);
void test_dev_cleanup(TestDev *dev);
extern const VfuDeviceOps test_dev_ops;

#endif
