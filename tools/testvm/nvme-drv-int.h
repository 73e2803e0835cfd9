/* NVMe driver internals shared by its files. */
#ifndef STORMIG_TESTVM_NVME_DRV_INT_H
#define STORMIG_TESTVM_NVME_DRV_INT_H

#include "nvme-drv.h"

#define DRV_MAGIC 0x4e564d44u       /* "NVMD" */

/* A completion that matched an in-flight command (slot already freed). */
typedef void DrvCqeFunc(NvmeDrv *drv, void *opaque, const DrvSlot *slot,
                        const NvmeCqe *cqe);

/* Queues cmd on qid (cid assigned). Returns the cid, -1 when full. */
int drv_queue_cmd(NvmeDrv *drv, unsigned qid, NvmeCmd *cmd, uint32_t tag);
bool drv_ring_sq(NvmeDrv *drv, unsigned qid, Error **errp);
unsigned drv_reap(NvmeDrv *drv, unsigned qid, DrvCqeFunc *fn, void *opaque);
void drv_queue_dirty(NvmeDrv *drv, DrvQueue *q);

/* BlockDrvOps of the NVMe driver (nvme-io.c). */
extern const BlockDrvOps nvme_blockdrv_ops;

#endif
