/*
 * What the workload needs from a storage driver: queues of block reads
 * and writes on numbered disks, tagged, and their completions. The NVMe
 * driver implements it; a virtio-scsi driver can implement it too.
 * Blocks are TVM_BLOCK bytes.
 */
#ifndef STORMIG_TESTVM_BLOCKDRV_H
#define STORMIG_TESTVM_BLOCKDRV_H

#include <stdbool.h>
#include <stdint.h>

#define TVM_BLOCK 4096u
#define TVM_MAX_DISKS 8

typedef struct BlockDrvInfo {
    unsigned nr_queues;             /* I/O queues, numbered 0.. */
    unsigned qd;                    /* commands in flight per queue */
    unsigned nr_disks;
    uint64_t disk_blocks[TVM_MAX_DISKS];
} BlockDrvInfo;

/* A completion: tag as submitted, ok when the device reported success. */
typedef void BlockDrvDone(void *opaque, uint32_t tag, bool ok,
                          uint16_t status);

typedef struct BlockDrvOps {
    void (*info)(void *drv, BlockDrvInfo *info);
    /* Queues a one-block transfer to or from guest memory at buf_gpa.
     * False when the queue has no room. kick makes the device see it. */
    bool (*submit)(void *drv, unsigned queue, bool write, unsigned disk,
                   uint64_t block, uint64_t buf_gpa, uint32_t tag);
    bool (*kick)(void *drv, unsigned queue);
    /* Delivers new completions of queue; returns how many. */
    unsigned (*reap)(void *drv, unsigned queue, BlockDrvDone *done,
                     void *opaque);
    /* Waits for an interrupt or progress, at most timeout_ms. */
    void (*wait)(void *drv, int timeout_ms);
} BlockDrvOps;

#endif
