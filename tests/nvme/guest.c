/* In-process guest driver for the NVMe controller tests (see guest.h). */
#include "guest.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block/ownership.h"

static bool in_guest(TestGuest *tg, uint64_t gpa, uint64_t len)
{
    return gpa >= TG_BASE && len <= tg->size &&
           gpa - TG_BASE <= tg->size - len;
}

static void *tg_translate(void *opaque, uint64_t gpa, uint64_t len,
                          bool is_write, uint64_t *contig)
{
    TestGuest *tg = opaque;
    if (gpa < TG_BASE || gpa - TG_BASE >= tg->size ||
        (tg->copy_from && gpa - TG_BASE >= tg->copy_from)) {
        return NULL;
    }
    uint64_t off = gpa - TG_BASE;
    uint64_t avail = tg->size - off;
    if (tg->copy_from && avail > tg->copy_from - off) {
        avail = tg->copy_from - off;
    }
    if (tg->region) {
        uint64_t to_boundary = tg->region - off % tg->region;
        avail = avail < to_boundary ? avail : to_boundary;
    }
    *contig = len < avail ? len : avail;
    return tg->mem + off;
}

/* Guest memory reached by copying (no_translate, or past copy_from):
 * each copy completes from the loop, like a vfio-user DMA_READ /
 * DMA_WRITE answered by the VMM; with fail_copies set it fails. */
typedef struct TgCopy {
    TestGuest *tg;
    uint64_t gpa;
    uint8_t *buf;
    size_t len;
    bool to_guest;
    NvmeDmaDone *done;
    void *ctx;
    uint64_t timer;
    struct TgCopy *next;
} TgCopy;

static void copy_unlink(TestGuest *tg, TgCopy *c)
{
    for (TgCopy **pp = (TgCopy **)&tg->copies; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            tg->copies_out--;
            return;
        }
    }
}

static int64_t copy_run(EventLoop *loop, uint64_t id, void *opaque)
{
    TgCopy *c = opaque;
    TestGuest *tg = c->tg;
    bool ok = !tg->fail_copies;
    if (ok && c->to_guest) {
        memcpy(tg->mem + (c->gpa - TG_BASE), c->buf, c->len);
    } else if (ok) {
        memcpy(c->buf, tg->mem + (c->gpa - TG_BASE), c->len);
    }
    copy_unlink(tg, c);
    tg->copies_done++;
    NvmeDmaDone *done = c->done;
    void *ctx = c->ctx;
    free(c);
    done(ctx, ok);
    return LOOP_TIMER_DONE;
}

static void *tg_dma_start(void *opaque, uint64_t gpa, void *buf, size_t len,
                          bool to_guest, NvmeDmaDone *done, void *ctx)
{
    TestGuest *tg = opaque;
    TgCopy *c = in_guest(tg, gpa, len) ? calloc(1, sizeof(*c)) : NULL;
    if (!c) {
        return NULL;
    }
    *c = (TgCopy){ .tg = tg, .gpa = gpa, .buf = buf, .len = len,
                   .to_guest = to_guest, .done = done, .ctx = ctx,
                   .next = tg->copies };
    c->timer = loop_add_timer(tg->loop, tg->copy_delay_ms, copy_run, c);
    tg->copies = c;
    tg->copies_out++;
    if (tg->copies_out > tg->copies_max) {
        tg->copies_max = tg->copies_out;
    }
    return c;
}

static void tg_dma_cancel(void *opaque, void *handle)
{
    TestGuest *tg = opaque;
    TgCopy *c = handle;
    loop_del_timer(tg->loop, c->timer);
    copy_unlink(tg, c);
    free(c);
}

static bool tg_range_ok(void *opaque, uint64_t gpa, uint64_t len)
{
    return in_guest(opaque, gpa, len);
}

static void tg_mark_dirty(void *opaque, uint64_t gpa, uint64_t len)
{
    TestGuest *tg = opaque;
    tg->dirty_bytes += len;
}

static void tg_raise(void *opaque, uint16_t vector, uint64_t addr,
                     uint32_t data)
{
    TestGuest *tg = opaque;
    if (vector < NVME_MAX_VECTORS) {
        tg->irqs[vector]++;
    }
}

TestGuest *tg_new(unsigned nimg, uint64_t img_size, uint64_t mem_size)
{
    TestGuest *tg = calloc(1, sizeof(*tg));
    if (!tg || nimg > TG_MAX_NS) {
        free(tg);
        return NULL;
    }
    blk_ownership_init(true);
    tg->mem = calloc(1, mem_size);
    tg->size = mem_size;
    tg->brk = TG_BASE;
    tg->region = 64 * 1024;
    tg->loop = loop_new(NULL);
    for (unsigned i = 0; i < nimg; i++) {
        char name[32];
        snprintf(name, sizeof(name), "tgdisk%u", i);
        tg->images[i] = strdup("nvme-img-XXXXXX");
        int fd = mkstemp(tg->images[i]);
        if (fd < 0 || ftruncate(fd, (off_t)img_size) < 0) {
            abort();
        }
        close(fd);
        BlockOpenOptions o = { .node_name = name,
                               .filename = tg->images[i],
                               .discard = true };
        tg->blks[i] = blk_open(&o, NULL);
        if (!tg->blks[i]) {
            abort();
        }
        tg->nimg++;
    }
    return tg;
}

void tg_free(TestGuest *tg)
{
    if (!tg) {
        return;
    }
    nvme_ctrl_free(tg->ctrl);
    for (unsigned i = 0; i < tg->nimg; i++) {
        blk_close(tg->blks[i]);
        unlink(tg->images[i]);
        free(tg->images[i]);
    }
    loop_free(tg->loop);
    free(tg->mem);
    free(tg);
}

bool tg_make_ctrl(TestGuest *tg, const char *extra)
{
    char drives[128] = "";
    for (unsigned i = 0; i < tg->nimg; i++) {
        char one[24];
        snprintf(one, sizeof(one), "%stgdisk%u", i ? ":" : "", i);
        strcat(drives, one);
    }
    char *opts = NULL;
    if (asprintf(&opts, "drive=%s,serial=TESTSERIAL%s%s", drives,
                 extra ? "," : "", extra ? extra : "") < 0) {
        return false;
    }
    Error *err = NULL;
    KeyVal *kv = keyval_parse(opts, NULL, &err);
    free(opts);
    tg->ops = (NvmeTransportOps){
        .translate = tg->no_translate ? NULL : tg_translate,
        .dma_start = tg_dma_start, .dma_cancel = tg_dma_cancel,
        .range_ok = tg_range_ok,
        .mark_dirty = tg_mark_dirty, .raise_msix = tg_raise,
    };
    tg->ctrl = kv ? nvme_ctrl_new(kv, tg->loop, &tg->ops, tg, &err) : NULL;
    keyval_free(kv);
    if (!tg->ctrl) {
        fprintf(stderr, "nvme_ctrl_new: %s\n",
                err ? error_get_pretty(err) : "?");
        error_free(err);
        return false;
    }
    return true;
}

uint64_t tg_alloc(TestGuest *tg, uint64_t size)
{
    uint64_t gpa = tg->brk;
    tg->brk += (size + TG_PAGE - 1) / TG_PAGE * TG_PAGE;
    if (tg->brk - TG_BASE > tg->size) {
        abort();    /* test bug: guest memory too small */
    }
    memset(tg_ptr(tg, gpa), 0, size);
    return gpa;
}

void *tg_ptr(TestGuest *tg, uint64_t gpa)
{
    return tg->mem + (gpa - TG_BASE);
}

uint32_t tg_r32(TestGuest *tg, uint64_t off)
{
    return (uint32_t)nvme_mmio_read(tg->ctrl, off, 4);
}

void tg_w32(TestGuest *tg, uint64_t off, uint32_t v)
{
    nvme_mmio_write(tg->ctrl, off, 4, v);
}

void tg_w64(TestGuest *tg, uint64_t off, uint64_t v)
{
    nvme_mmio_write(tg->ctrl, off, 8, v);
}

void tg_run(TestGuest *tg, int ms)
{
    uint64_t end = clock_ms() + (uint64_t)ms;
    do {
        loop_run_once(tg->loop, 1);
    } while (clock_ms() < end);
}

bool tg_wait_ready(TestGuest *tg, bool ready, int timeout_ms)
{
    uint64_t end = clock_ms() + (uint64_t)timeout_ms;
    for (;;) {
        uint32_t csts = tg_r32(tg, NVME_REG_CSTS);
        if (((csts & NVME_CSTS_RDY) != 0) == ready) {
            return true;
        }
        if ((csts & NVME_CSTS_CFS) || clock_ms() > end) {
            return false;
        }
        loop_run_once(tg->loop, 1);
    }
}

bool tg_enable(TestGuest *tg, uint16_t entries)
{
    TgQueue *q = &tg->q[0];
    *q = (TgQueue){ .size = entries, .phase = true };
    q->sq = tg_alloc(tg, (uint64_t)entries * 64);
    q->cq = tg_alloc(tg, (uint64_t)entries * 16);
    tg_w32(tg, NVME_REG_AQA, (uint32_t)(entries - 1) << 16 | (entries - 1));
    tg_w64(tg, NVME_REG_ASQ, q->sq);
    tg_w64(tg, NVME_REG_ACQ, q->cq);
    nvme_msix_set_control(tg->ctrl, true, false);
    for (unsigned v = 0; v < nvme_msix_nr_vectors(tg->ctrl) &&
                         !tg->msix_table_emulated; v++) {
        nvme_msix_write(tg->ctrl, NVME_MSIX_TABLE_OFF + v * 16 + 12, 4, 0);
    }
    tg_w32(tg, NVME_REG_CC, 1 | (6u << 16) | (4u << 20) | tg->cc_extra);
    return tg_wait_ready(tg, true, 2000);
}

bool tg_disable(TestGuest *tg)
{
    tg_w32(tg, NVME_REG_CC, 0);
    return tg_wait_ready(tg, false, 5000);
}

static uint64_t db_off(TestGuest *tg, uint16_t qid, bool cq)
{
    uint32_t dstrd = (uint32_t)(nvme_mmio_read(tg->ctrl, NVME_REG_CAP, 8)
                                >> 32) & 0xf;
    return NVME_REG_DBS + (2u * qid + cq) * (4u << dstrd);
}

uint16_t tg_queue_cmd(TestGuest *tg, uint16_t qid, NvmeCmd *cmd)
{
    TgQueue *q = &tg->q[qid];
    cmd->cid = q->next_cid++;
    memcpy(tg_ptr(tg, q->sq + (uint64_t)q->sq_tail * 64), cmd, 64);
    q->sq_tail = (uint16_t)((q->sq_tail + 1) % q->size);
    return cmd->cid;
}

void tg_ring(TestGuest *tg, uint16_t qid)
{
    tg_w32(tg, db_off(tg, qid, false), tg->q[qid].sq_tail);
}

uint16_t tg_submit(TestGuest *tg, uint16_t qid, NvmeCmd *cmd)
{
    uint16_t cid = tg_queue_cmd(tg, qid, cmd);
    tg_ring(tg, qid);
    return cid;
}

bool tg_peek(TestGuest *tg, uint16_t qid, NvmeCqe *cqe, bool ring)
{
    TgQueue *q = &tg->q[qid];
    NvmeCqe c;
    memcpy(&c, tg_ptr(tg, q->cq + (uint64_t)q->cq_head * 16), 16);
    if ((c.status & 1) != q->phase) {
        return false;
    }
    *cqe = c;
    if (++q->cq_head == (q->cq_size ? q->cq_size : q->size)) {
        q->cq_head = 0;
        q->phase = !q->phase;
    }
    if (ring) {
        tg_w32(tg, db_off(tg, qid, true), q->cq_head);
    }
    return true;
}

bool tg_poll(TestGuest *tg, uint16_t qid, NvmeCqe *cqe, int timeout_ms)
{
    uint64_t end = clock_ms() + (uint64_t)timeout_ms;
    while (!tg_peek(tg, qid, cqe, true)) {
        if (clock_ms() > end) {
            return false;
        }
        loop_run_once(tg->loop, 1);
    }
    return true;
}

uint16_t tg_cmd(TestGuest *tg, uint16_t qid, NvmeCmd *cmd, uint32_t *dw0)
{
    uint16_t cid = tg_submit(tg, qid, cmd);
    NvmeCqe cqe;
    if (!tg_poll(tg, qid, &cqe, 5000) || cqe.cid != cid) {
        return 0xffff;
    }
    if (dw0) {
        *dw0 = cqe.dw0;
    }
    return cqe.status >> 1;
}

bool tg_create_io_queue(TestGuest *tg, uint16_t qid, uint16_t entries)
{
    TgQueue *q = &tg->q[qid];
    *q = (TgQueue){ .size = entries, .phase = true };
    q->cq = tg_alloc(tg, (uint64_t)entries * 16);
    q->sq = tg_alloc(tg, (uint64_t)entries * 64);
    NvmeCmd c = { .opcode = NVME_ADM_CREATE_CQ };
    c.dptr[0] = q->cq;
    c.cdw10 = (uint32_t)(entries - 1) << 16 | qid;
    c.cdw11 = (uint32_t)qid << 16 | 3;      /* IV = qid, IEN, PC */
    if (tg_cmd(tg, 0, &c, NULL) != 0) {
        return false;
    }
    NvmeCmd s = { .opcode = NVME_ADM_CREATE_SQ };
    s.dptr[0] = q->sq;
    s.cdw10 = (uint32_t)(entries - 1) << 16 | qid;
    s.cdw11 = (uint32_t)qid << 16 | 1;      /* CQID = qid, PC */
    return tg_cmd(tg, 0, &s, NULL) == 0;
}

void tg_rw_cmd(NvmeCmd *cmd, uint8_t opc, uint32_t nsid, uint64_t slba,
               uint32_t nlb)
{
    memset(cmd, 0, sizeof(*cmd));
    cmd->opcode = opc;
    cmd->nsid = nsid;
    cmd->cdw10 = (uint32_t)slba;
    cmd->cdw11 = (uint32_t)(slba >> 32);
    cmd->cdw12 = nlb - 1;
}

void tg_build_prps(TestGuest *tg, NvmeCmd *cmd, uint64_t gpa, uint64_t len)
{
    uint64_t first = TG_PAGE - (gpa % TG_PAGE);
    cmd->dptr[0] = gpa;
    cmd->dptr[1] = 0;
    if (len <= first) {
        return;
    }
    uint64_t rem = len - first, next = gpa + first;
    if (rem <= TG_PAGE) {
        cmd->dptr[1] = next;
        return;
    }
    uint64_t n = (rem + TG_PAGE - 1) / TG_PAGE;
    uint64_t *list = NULL;
    uint64_t per_page = TG_PAGE / 8;
    uint64_t idx = per_page;        /* forces a new list page */
    for (uint64_t i = 0; i < n; i++) {
        if (idx == per_page || (idx == per_page - 1 && i + 1 < n)) {
            uint64_t page = tg_alloc(tg, TG_PAGE);
            if (!list) {
                cmd->dptr[1] = page;
            } else {
                list[idx] = page;   /* chain from the last slot */
            }
            list = tg_ptr(tg, page);
            idx = 0;
        }
        list[idx++] = next + i * TG_PAGE;
    }
}

void tg_fill(void *buf, size_t len, unsigned seed)
{
    uint8_t *p = buf;
    for (size_t i = 0; i < len; i++) {
        p[i] = (uint8_t)(seed * 131u + i * 7u + (i >> 9));
    }
}

bool tg_check(const void *buf, size_t len, unsigned seed)
{
    const uint8_t *p = buf;
    for (size_t i = 0; i < len; i++) {
        if (p[i] != (uint8_t)(seed * 131u + i * 7u + (i >> 9))) {
            return false;
        }
    }
    return true;
}
