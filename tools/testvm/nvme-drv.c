/*
 * NVMe driver bring-up (NVMe 1.4 section 7.6.1 "Initialization"), admin
 * commands and async events, and re-attaching after a migration.
 */
#include "nvme-drv-int.h"

#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "util/loop.h"

#define READY_TIMEOUT_MS 5000
#define ADMIN_TIMEOUT_MS 5000

bool nvme_drv_doorbell(NvmeDrv *drv, uint16_t qid, bool cq, uint32_t value,
                       Error **errp)
{
    /* 3.1.10/3.1.11: doorbell pairs at 0x1000, (4 << CAP.DSTRD) apart. */
    uint64_t off = NVME_REG_DBS +
                   (2u * qid + (cq ? 1u : 0u)) * (4u << drv->st->dstrd);
    return transport_w32(drv->t, off, value, errp);
}

static bool wait_ready(NvmeDrv *drv, bool ready, Error **errp)
{
    uint64_t end = clock_ms() + READY_TIMEOUT_MS;
    uint32_t csts;
    while (transport_r32(drv->t, NVME_REG_CSTS, &csts, errp)) {
        if (csts & NVME_CSTS_CFS) {
            error_setg(errp, "controller fatal status (CSTS.CFS)");
            return false;
        }
        if (!!(csts & NVME_CSTS_RDY) == ready) {
            return true;
        }
        if (clock_ms() > end) {
            error_setg(errp, "CSTS.RDY did not become %d", ready);
            return false;
        }
        drv->t->ops->wait_irqs(drv->t, 1);
    }
    return false;
}

static void admin_done(NvmeDrv *drv, void *opaque, const DrvSlot *slot,
                       const NvmeCqe *cqe)
{
    NvmeDrvState *st = drv->st;
    if (slot->opcode == NVME_ADM_ASYNC_EVENT_REQ) {
        if ((cqe->status >> 1) == 0 && st->nr_aen < DRV_MAX_AEN) {
            st->aen_dw0[st->nr_aen++] = cqe->dw0;
            gm_dirty(drv->gm, st, offsetof(NvmeDrvState, q));
        }
        return;
    }
    NvmeCqe *out = opaque;
    if (out && out->cid == cqe->cid) {
        *out = *cqe;
        out->sq_id = 0xffff;            /* marks "arrived" */
    }
}

void nvme_drv_poll_admin(NvmeDrv *drv)
{
    drv_reap(drv, 0, admin_done, NULL);
}

int nvme_drv_admin(NvmeDrv *drv, NvmeCmd *cmd, uint32_t *dw0, Error **errp)
{
    int cid = drv_queue_cmd(drv, 0, cmd, 0);
    if (cid < 0) {
        error_setg(errp, "admin queue full");
        return -1;
    }
    if (!drv_ring_sq(drv, 0, errp)) {
        return -1;
    }
    NvmeCqe res = { .cid = (uint16_t)cid };
    uint64_t end = clock_ms() + ADMIN_TIMEOUT_MS;
    while (drv_reap(drv, 0, admin_done, &res), res.sq_id != 0xffff) {
        if (clock_ms() > end) {
            error_setg(errp, "admin command 0x%02x timed out", cmd->opcode);
            return -1;
        }
        drv->t->ops->wait_irqs(drv->t, 1);
    }
    if (dw0) {
        *dw0 = res.dw0;
    }
    return res.status >> 1;
}

/* Admin command that must succeed; data (if any) lands in st->buf_gpa. */
static bool admin_ok(NvmeDrv *drv, NvmeCmd *cmd, uint32_t *dw0,
                     const char *what, Error **errp)
{
    int st = nvme_drv_admin(drv, cmd, dw0, errp);
    if (st < 0) {
        error_prepend(errp, "%s: ", what);
        return false;
    }
    if (st != 0) {
        error_setg(errp, "%s failed with status 0x%x", what, (unsigned)st);
        return false;
    }
    return true;
}

bool nvme_drv_post_aers(NvmeDrv *drv, unsigned n, Error **errp)
{
    for (unsigned i = 0; i < n; i++) {
        NvmeCmd c = { .opcode = NVME_ADM_ASYNC_EVENT_REQ };
        if (drv_queue_cmd(drv, 0, &c, 0) < 0) {
            error_setg(errp, "admin queue full");
            return false;
        }
    }
    return drv_ring_sq(drv, 0, errp);
}

static bool alloc_queue(NvmeDrv *drv, unsigned qid, uint16_t sq_entries,
                        uint16_t cq_entries, Error **errp)
{
    DrvQueue *q = &drv->st->q[qid];
    memset(q, 0, sizeof(*q));
    q->sq_size = sq_entries;
    q->cq_size = cq_entries;
    q->phase = 1;
    q->sq_gpa = gm_alloc(drv->gm, (uint64_t)sq_entries * sizeof(NvmeCmd),
                         errp);
    q->cq_gpa = q->sq_gpa ? gm_alloc(drv->gm, (uint64_t)cq_entries *
                                     sizeof(NvmeCqe), errp) : 0;
    gm_dirty(drv->gm, q, sizeof(*q));
    return q->cq_gpa != 0;
}

static bool setup_admin_queue(NvmeDrv *drv, Error **errp)
{
    DrvQueue *q = &drv->st->q[0];
    uint32_t aqa = (DRV_ADMIN_ENTRIES - 1u) << 16 | (DRV_ADMIN_ENTRIES - 1u);
    return alloc_queue(drv, 0, DRV_ADMIN_ENTRIES, DRV_ADMIN_ENTRIES, errp) &&
           transport_w32(drv->t, NVME_REG_AQA, aqa, errp) &&
           transport_w64(drv->t, NVME_REG_ASQ, q->sq_gpa, errp) &&
           transport_w64(drv->t, NVME_REG_ACQ, q->cq_gpa, errp);
}

/* 3.1.1 CAP: MQES, DSTRD, CSS (NVM command set), MPSMIN (4 KiB pages). */
static bool read_cap(NvmeDrv *drv, const NvmeDrvConfig *cfg, Error **errp)
{
    uint64_t cap;
    if (!transport_r64(drv->t, NVME_REG_CAP, &cap, errp)) {
        return false;
    }
    unsigned mqes = (unsigned)(cap & 0xffff) + 1;
    drv->st->dstrd = (uint32_t)(cap >> 32) & 0xf;
    if (!((cap >> 37) & 1) || ((cap >> 48) & 0xf) != 0) {
        error_setg(errp, "controller lacks the NVM command set or 4 KiB "
                   "pages (CAP 0x%llx)", (unsigned long long)cap);
        return false;
    }
    unsigned sq = cfg->sq_entries ? cfg->sq_entries : cfg->qd + 1;
    if (sq > mqes || DRV_ADMIN_ENTRIES > mqes) {
        error_setg(errp, "queue depth %u needs %u entries, the controller "
                   "allows %u (CAP.MQES)", cfg->qd, sq, mqes);
        return false;
    }
    return true;
}

static bool enable(NvmeDrv *drv, const NvmeDrvConfig *cfg, Error **errp)
{
    /* 3.1.5 CC: EN, CSS=NVM, MPS=4 KiB, AMS=round robin, entry sizes. */
    uint32_t cc = 1u | (uint32_t)NVME_SQES << 16 | (uint32_t)NVME_CQES << 20 |
                  (cfg->wrr ? (uint32_t)NVME_AMS_WRR << 11 : 0);
    return transport_w32(drv->t, NVME_REG_CC, 0, errp) &&
           wait_ready(drv, false, errp) && read_cap(drv, cfg, errp) &&
           setup_admin_queue(drv, errp) &&
           drv->t->ops->setup_irqs(drv->t, cfg->io_queues + 1, errp) &&
           transport_w32(drv->t, NVME_REG_CC, cc, errp) &&
           wait_ready(drv, true, errp);
}

static void *scratch(NvmeDrv *drv)
{
    return gm_ptr(drv->gm, drv->st->buf_gpa, GM_PAGE);
}

/* 5.15.2.1 / 5.15.2.2: Identify Controller (NN) and each Namespace
 * (NSZE, FLBAS and its LBA format's LBADS). */
static bool identify(NvmeDrv *drv, unsigned nr_ns, Error **errp)
{
    NvmeCmd c = { .opcode = NVME_ADM_IDENTIFY, .cdw10 = NVME_ID_CNS_CTRL };
    c.dptr[0] = drv->st->buf_gpa;
    if (!admin_ok(drv, &c, NULL, "Identify Controller", errp)) {
        return false;
    }
    uint32_t nn;
    memcpy(&nn, (uint8_t *)scratch(drv) + 516, 4);
    if (nn < nr_ns) {
        error_setg(errp, "%u namespaces asked, the controller has %u",
                   nr_ns, nn);
        return false;
    }
    for (unsigned i = 0; i < nr_ns; i++) {
        NvmeCmd n = { .opcode = NVME_ADM_IDENTIFY, .nsid = i + 1,
                      .cdw10 = NVME_ID_CNS_NS };
        n.dptr[0] = drv->st->buf_gpa;
        if (!admin_ok(drv, &n, NULL, "Identify Namespace", errp)) {
            return false;
        }
        const uint8_t *id = scratch(drv);
        uint64_t nsze;
        memcpy(&nsze, id, 8);
        unsigned lbads = id[128 + 4 * (id[26] & 0xf) + 2];
        if (lbads < 9 || lbads > 12 || (nsze << lbads) < TVM_BLOCK) {
            error_setg(errp, "namespace %u: unusable format (LBADS %u, "
                       "%llu blocks)", i + 1, lbads,
                       (unsigned long long)nsze);
            return false;
        }
        drv->st->nsze[i] = nsze;
        drv->st->lba_shift[i] = lbads;
    }
    drv->st->nr_ns = nr_ns;
    return true;
}

/* 5.21.1.7 Number of Queues, then 5.3 / 5.4 Create I/O CQ and SQ, each
 * CQ on its own MSI-X vector (IV = qid). */
static bool create_io_queues(NvmeDrv *drv, const NvmeDrvConfig *cfg,
                             Error **errp)
{
    uint32_t n = cfg->io_queues - 1, dw0;
    NvmeCmd f = { .opcode = NVME_ADM_SET_FEATURES,
                  .cdw10 = NVME_FEAT_NUM_QUEUES, .cdw11 = n << 16 | n };
    if (!admin_ok(drv, &f, &dw0, "Set Features (Number of Queues)", errp)) {
        return false;
    }
    if ((dw0 & 0xffff) < n || (dw0 >> 16) < n) {
        error_setg(errp, "%u I/O queues asked, the controller allows %u",
                   cfg->io_queues, (dw0 & 0xffff) + 1);
        return false;
    }
    uint16_t sq_entries = (uint16_t)(cfg->sq_entries ? cfg->sq_entries
                                                     : cfg->qd + 1);
    uint16_t cq_entries = (uint16_t)(cfg->cq_entries ? cfg->cq_entries
                                                     : sq_entries);
    for (uint32_t qid = 1; qid <= cfg->io_queues; qid++) {
        if (!alloc_queue(drv, qid, sq_entries, cq_entries, errp)) {
            return false;
        }
        DrvQueue *q = &drv->st->q[qid];
        NvmeCmd cq = { .opcode = NVME_ADM_CREATE_CQ,
                       .cdw10 = (uint32_t)(cq_entries - 1) << 16 | qid,
                       .cdw11 = qid << 16 | 3 };     /* IV, IEN, PC */
        cq.dptr[0] = q->cq_gpa;
        NvmeCmd sq = { .opcode = NVME_ADM_CREATE_SQ,
                       .cdw10 = (uint32_t)(sq_entries - 1) << 16 | qid,
                       .cdw11 = qid << 16 | 1 };     /* CQID, PC */
        sq.dptr[0] = q->sq_gpa;
        if (!admin_ok(drv, &cq, NULL, "Create I/O CQ", errp) ||
            !admin_ok(drv, &sq, NULL, "Create I/O SQ", errp)) {
            return false;
        }
        drv->st->nr_io_queues = qid;
        gm_dirty(drv->gm, drv->st, offsetof(NvmeDrvState, q));
    }
    return true;
}

/* 5.8 Doorbell Buffer Config, as Linux does when OACS allows it: I/O
 * queue doorbells then go to a page of guest memory and reach BAR0 only
 * when the controller's EventIdx asks for it. A controller refusing it
 * keeps plain doorbells. */
static bool setup_dbbuf(NvmeDrv *drv, Error **errp)
{
    NvmeDrvState *st = drv->st;
    uint64_t dbs = gm_alloc(drv->gm, GM_PAGE, errp);
    uint64_t eis = dbs ? gm_alloc(drv->gm, GM_PAGE, errp) : 0;
    if (!eis) {
        return false;
    }
    NvmeCmd c = { .opcode = NVME_ADM_DBBUF_CONFIG };
    c.dptr[0] = dbs;
    c.dptr[1] = eis;
    int status = nvme_drv_admin(drv, &c, NULL, errp);
    if (status < 0) {
        return false;
    }
    if (status == 0) {
        st->dbbuf_gpa = dbs;
        st->eibuf_gpa = eis;
        gm_dirty(drv->gm, st, offsetof(NvmeDrvState, q));
    } else {
        log_info("testvm: Doorbell Buffer Config refused (status 0x%x), "
                 "plain doorbells", status);
    }
    return true;
}

static bool config_ok(const NvmeDrvConfig *cfg, Error **errp)
{
    if (cfg->io_queues < 1 || cfg->io_queues > DRV_MAX_IO_QUEUES ||
        cfg->qd < 1 || cfg->qd > DRV_MAX_QD ||
        cfg->namespaces < 1 || cfg->namespaces > TVM_MAX_DISKS ||
        (cfg->sq_entries && (cfg->sq_entries < cfg->qd + 1 ||
                             cfg->sq_entries > DRV_MAX_SQ_ENTRIES)) ||
        (cfg->cq_entries && (cfg->cq_entries < 2 ||
                             cfg->cq_entries > (cfg->sq_entries ?
                                                cfg->sq_entries :
                                                cfg->qd + 1)))) {
        error_setg(errp, "queues 1..%u, queue depth 1..%u, namespaces "
                   "1..%u, SQ entries qd+1..%u, CQ entries 2..SQ entries",
                   DRV_MAX_IO_QUEUES, DRV_MAX_QD, TVM_MAX_DISKS,
                   DRV_MAX_SQ_ENTRIES);
        return false;
    }
    return true;
}

static NvmeDrv *drv_new(Transport *t, GuestMem *gm)
{
    NvmeDrv *drv = calloc(1, sizeof(*drv));
    if (drv) {
        drv->t = t;
        drv->gm = gm;
        drv->ops = nvme_blockdrv_ops;
    }
    return drv;
}

NvmeDrv *nvme_drv_init(Transport *t, GuestMem *gm, const NvmeDrvConfig *cfg,
                       Error **errp)
{
    if (!config_ok(cfg, errp)) {
        return NULL;
    }
    NvmeDrv *drv = drv_new(t, gm);
    uint64_t st_gpa = drv ? gm_alloc(gm, sizeof(NvmeDrvState), errp) : 0;
    if (!st_gpa) {
        free(drv);
        return NULL;
    }
    drv->st = gm_ptr(gm, st_gpa, sizeof(NvmeDrvState));
    drv->st->magic = DRV_MAGIC;
    drv->st->qd = cfg->qd;
    drv->st->buf_gpa = gm_alloc(gm, GM_PAGE, errp);
    gm_header(gm)->driver_gpa = st_gpa;
    gm_dirty(gm, gm_header(gm), sizeof(GuestHeader));
    if (!drv->st->buf_gpa || !t->ops->map_memory(t, gm, errp) ||
        !enable(drv, cfg, errp) || !identify(drv, cfg->namespaces, errp) ||
        !create_io_queues(drv, cfg, errp) || !setup_dbbuf(drv, errp)) {
        error_prepend(errp, "NVMe bring-up: ");
        free(drv);
        return NULL;
    }
    return drv;
}

NvmeDrv *nvme_drv_attach(Transport *t, GuestMem *gm, Error **errp)
{
    uint64_t st_gpa = gm_header(gm)->driver_gpa;
    NvmeDrvState *st = gm_ptr(gm, st_gpa, sizeof(NvmeDrvState));
    if (!st || st->magic != DRV_MAGIC || st->nr_io_queues < 1 ||
        st->nr_io_queues > DRV_MAX_IO_QUEUES) {
        error_setg(errp, "guest memory holds no NVMe driver state");
        return NULL;
    }
    NvmeDrv *drv = drv_new(t, gm);
    if (!drv) {
        error_setg(errp, "out of memory");
        return NULL;
    }
    drv->st = st;
    if (!t->ops->setup_irqs(t, st->nr_io_queues + 1, errp)) {
        free(drv);
        return NULL;
    }
    return drv;
}

void nvme_drv_free(NvmeDrv *drv)
{
    free(drv);
}
