/* The NVMe driver as a BlockDrvOps: one-block Read/Write (NVMe 1.4
 * section 6.9 / 6.15) with a single PRP entry (the buffer is one page). */
#include "nvme-drv-int.h"

#include "util/log.h"

static void nvme_info(void *opaque, BlockDrvInfo *info)
{
    NvmeDrv *drv = opaque;
    info->nr_queues = drv->st->nr_io_queues;
    info->qd = drv->st->qd;
    info->nr_disks = drv->st->nr_ns;
    for (unsigned i = 0; i < drv->st->nr_ns; i++) {
        info->disk_blocks[i] = (drv->st->nsze[i] << drv->st->lba_shift[i]) /
                               TVM_BLOCK;
    }
}

static bool nvme_submit(void *opaque, unsigned queue, bool write,
                        unsigned disk, uint64_t block, uint64_t buf_gpa,
                        uint32_t tag)
{
    NvmeDrv *drv = opaque;
    unsigned shift = drv->st->lba_shift[disk];
    uint64_t slba = block * (TVM_BLOCK >> shift);
    NvmeCmd c = { .opcode = write ? NVME_CMD_WRITE : NVME_CMD_READ,
                  .nsid = disk + 1,
                  .cdw10 = (uint32_t)slba, .cdw11 = (uint32_t)(slba >> 32),
                  .cdw12 = (TVM_BLOCK >> shift) - 1 };
    c.dptr[0] = buf_gpa;
    return drv_queue_cmd(drv, queue + 1, &c, tag) >= 0;
}

static bool nvme_kick(void *opaque, unsigned queue)
{
    Error *err = NULL;
    if (!drv_ring_sq(opaque, queue + 1, &err)) {
        error_report_err(err);
        return false;
    }
    return true;
}

typedef struct ReapCtx {
    BlockDrvDone *done;
    void *opaque;
} ReapCtx;

static void io_done(NvmeDrv *drv, void *opaque, const DrvSlot *slot,
                    const NvmeCqe *cqe)
{
    ReapCtx *ctx = opaque;
    uint16_t status = cqe->status >> 1;
    ctx->done(ctx->opaque, slot->tag, status == 0, status);
}

static unsigned nvme_reap(void *opaque, unsigned queue, BlockDrvDone *done,
                          void *done_opaque)
{
    ReapCtx ctx = { done, done_opaque };
    return drv_reap(opaque, queue + 1, io_done, &ctx);
}

static void nvme_wait(void *opaque, int timeout_ms)
{
    NvmeDrv *drv = opaque;
    drv->t->ops->wait_irqs(drv->t, timeout_ms);
    nvme_drv_poll_admin(drv);
}

const BlockDrvOps nvme_blockdrv_ops = {
    .info = nvme_info,
    .submit = nvme_submit,
    .kick = nvme_kick,
    .reap = nvme_reap,
    .wait = nvme_wait,
};
