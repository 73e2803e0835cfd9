/*
 * Guest memory: bounds-checked access through the transport, and the
 * data pointer of a command (PRPs, NVMe 1.4 section 4.3, or SGLs, section
 * 4.4) turned into guest extents and then host iovecs.
 *
 * Memory the transport translates is read and written in place, at once
 * (the fast path). Memory it cannot translate (vfio-user memory the VMM
 * mapped without an fd) is copied by an asynchronous transport request:
 * the step that needs it (a PRP list or SGL segment read, a data copy)
 * suspends, and the command goes on from its continuation when the copy
 * is done. A copy that fails (refused, or unanswered by its deadline)
 * fails that command with Data Transfer Error (4.6.1.2.1, Figure 128).
 */
#include <stdlib.h>
#include <string.h>

#include "nvme/nvme-int.h"
#include "util/log.h"

/* ---- plain guest memory access ---- */

static bool gpa_range_valid(uint64_t gpa, uint64_t len)
{
    return len > 0 && gpa + len > gpa;     /* no wrap-around */
}

bool nvme_range_ok(NvmeCtrl *ctrl, uint64_t gpa, uint64_t len)
{
    if (!gpa_range_valid(gpa, len)) {
        return false;
    }
    if (!ctrl->ops->translate) {
        return true;        /* checked by every copy */
    }
    while (len) {
        uint64_t contig = 0;
        if (!ctrl->ops->translate(ctrl->opaque, gpa, len, false, &contig)) {
            /* Memory reached only by copying (e.g. vfio-user memory
             * mapped without an fd). */
            return ctrl->ops->range_ok &&
                   ctrl->ops->range_ok(ctrl->opaque, gpa, len);
        }
        if (contig == 0 || contig > len) {
            return false;
        }
        gpa += contig;
        len -= contig;
    }
    return true;
}

size_t nvme_dma_direct(NvmeCtrl *ctrl, uint64_t gpa, void *buf, size_t len,
                       bool to_guest)
{
    size_t done = 0;
    if (!ctrl->ops->translate || !gpa_range_valid(gpa, len)) {
        return 0;
    }
    while (done < len) {
        uint64_t contig = 0;
        uint8_t *host = ctrl->ops->translate(ctrl->opaque, gpa + done,
                                             len - done, to_guest, &contig);
        if (!host || contig == 0 || contig > len - done) {
            break;
        }
        if (to_guest) {
            memcpy(host, (uint8_t *)buf + done, contig);
            if (ctrl->ops->mark_dirty) {
                ctrl->ops->mark_dirty(ctrl->opaque, gpa + done, contig);
            }
        } else {
            memcpy((uint8_t *)buf + done, host, contig);
        }
        done += contig;
    }
    return done;
}

bool nvme_range_direct(NvmeCtrl *ctrl, uint64_t gpa, uint64_t len)
{
    if (!ctrl->ops->translate || !gpa_range_valid(gpa, len)) {
        return false;
    }
    while (len) {
        uint64_t contig = 0;
        if (!ctrl->ops->translate(ctrl->opaque, gpa, len, true, &contig) ||
            contig == 0 || contig > len) {
            return false;
        }
        gpa += contig;
        len -= contig;
    }
    return true;
}

bool nvme_dma_read(NvmeCtrl *ctrl, uint64_t gpa, void *buf, size_t len)
{
    return len == 0 || nvme_dma_direct(ctrl, gpa, buf, len, false) == len;
}

bool nvme_dma_write(NvmeCtrl *ctrl, uint64_t gpa, const void *buf,
                    size_t len)
{
    return len == 0 ||
           nvme_dma_direct(ctrl, gpa, (void *)buf, len, true) == len;
}

/* ---- asynchronous copies ---- */

static void op_unlink(NvmeCtrl *ctrl, NvmeDmaOp *op)
{
    if (op->prev) {
        op->prev->next = op->next;
    } else {
        ctrl->dma_ops = op->next;
    }
    if (op->next) {
        op->next->prev = op->prev;
    }
    op->prev = op->next = NULL;
    op->handle = NULL;
    ctrl->dma_in_flight--;
}

static void op_done(void *ctx, bool ok)
{
    NvmeDmaOp *op = ctx;
    NvmeCtrl *ctrl = op->ctrl;
    op_unlink(ctrl, op);
    op->done(op, ok);
    nvme_check_deferred_ctrl(ctrl);
}

bool nvme_dma_op_start(NvmeCtrl *ctrl, NvmeDmaOp *op, uint64_t gpa,
                       void *buf, size_t len, bool to_guest,
                       NvmeDmaOpDone *done, void *owner)
{
    if (!ctrl->ops->dma_start || !gpa_range_valid(gpa, len)) {
        return false;
    }
    op->ctrl = ctrl;
    op->done = done;
    op->owner = owner;
    /* The transport never runs done inside dma_start. */
    op->handle = ctrl->ops->dma_start(ctrl->opaque, gpa, buf, len, to_guest,
                                      op_done, op);
    if (!op->handle) {
        return false;
    }
    op->prev = NULL;
    op->next = ctrl->dma_ops;
    if (op->next) {
        op->next->prev = op;
    }
    ctrl->dma_ops = op;
    ctrl->dma_in_flight++;
    return true;
}

void nvme_dma_cancel_all(NvmeCtrl *ctrl)
{
    while (ctrl->dma_ops) {
        NvmeDmaOp *op = ctrl->dma_ops;
        ctrl->ops->dma_cancel(ctrl->opaque, op->handle);
        op_unlink(ctrl, op);
        if (op->free_owner) {
            free(op->owner);
        }
    }
}

/* ---- extents ---- */

static uint16_t seg_add(NvmeRequest *req, uint64_t gpa, uint64_t len)
{
    if (len == 0) {
        return NVME_SUCCESS;
    }
    if (!gpa_range_valid(gpa, len)) {
        return NVME_DATA_TRANSFER_ERROR;
    }
    if (req->nsegs) {
        NvmeSeg *last = &req->segs[req->nsegs - 1];
        if (last->gpa + last->len == gpa) {
            last->len += len;
            return NVME_SUCCESS;
        }
    }
    if (req->nsegs == req->segs_cap) {
        unsigned cap = req->segs_cap ? req->segs_cap * 2 : 16;
        if (cap > NVME_MAX_IOV) {
            return NVME_DATA_TRANSFER_ERROR;
        }
        NvmeSeg *s = realloc(req->segs, cap * sizeof(*s));
        if (!s) {
            return NVME_INTERNAL_ERROR;
        }
        req->segs = s;
        req->segs_cap = cap;
    }
    req->segs[req->nsegs++] = (NvmeSeg){ .gpa = gpa, .len = len };
    return NVME_SUCCESS;
}

/* ---- data pointer walks ---- */

static void walk_run(NvmeRequest *req);

static void walk_finish(NvmeRequest *req, uint16_t st)
{
    req->walk.cont(req, st);
}

static NvmeRequest *op_request(NvmeDmaOp *op)
{
    return op->owner;
}

/* A list read that had to be copied asynchronously is in. */
static void walk_read_done(NvmeDmaOp *op, bool ok)
{
    NvmeRequest *req = op_request(op);
    uint16_t st = ok ? req->walk.consume(req) : NVME_DATA_TRANSFER_ERROR;
    if (st != NVME_WALK_CONTINUE) {
        walk_finish(req, st);
        return;
    }
    walk_run(req);
}

static bool req_ops_reserve(NvmeRequest *req, unsigned n)
{
    if (n <= req->ops_cap) {
        return true;
    }
    NvmeDmaOp *ops = realloc(req->ops, n * sizeof(*ops));
    if (!ops) {
        return false;
    }
    memset(ops + req->ops_cap, 0, (n - req->ops_cap) * sizeof(*ops));
    req->ops = ops;
    req->ops_cap = n;
    return true;
}

/* Reads list after list until the walk ends or a read must wait. */
static void walk_run(NvmeRequest *req)
{
    NvmeCtrl *ctrl = req->ctrl;
    NvmeWalk *w = &req->walk;
    for (;;) {
        uint64_t addr;
        size_t len;
        uint16_t st = w->next_read(req, &addr, &len);
        if (st != NVME_WALK_CONTINUE) {
            walk_finish(req, st);
            return;
        }
        uint8_t *buf = (uint8_t *)&w->buf;
        size_t direct = nvme_dma_direct(ctrl, addr, buf, len, false);
        if (direct < len) {
            if (!req_ops_reserve(req, 1) ||
                !nvme_dma_op_start(ctrl, &req->ops[0], addr + direct,
                                   buf + direct, len - direct, false,
                                   walk_read_done, req)) {
                walk_finish(req, NVME_DATA_TRANSFER_ERROR);
            }
            return;
        }
        st = w->consume(req);
        if (st != NVME_WALK_CONTINUE) {
            walk_finish(req, st);
            return;
        }
    }
}

/* PRP list (4.3): every entry has a zero offset; when more than a page of
 * entries is needed, the last entry of a list page points to the next
 * list page. Read at most 64 entries at a time. */
static uint16_t prp_next_read(NvmeRequest *req, uint64_t *addr, size_t *len)
{
    NvmeWalk *w = &req->walk;
    uint64_t page = nvme_page_size(req->ctrl);
    if (!w->rem) {
        return NVME_SUCCESS;
    }
    uint64_t in_page = (page - (w->list & (page - 1))) / 8;
    uint64_t need = (w->rem + page - 1) / page;
    uint64_t n = in_page < need ? in_page : need;
    w->n = (uint32_t)(n < 64 ? n : 64);
    w->in_page = (uint32_t)in_page;
    *addr = w->list;
    *len = w->n * 8;
    return NVME_WALK_CONTINUE;
}

static uint16_t prp_consume(NvmeRequest *req)
{
    NvmeWalk *w = &req->walk;
    uint64_t page = nvme_page_size(req->ctrl);
    for (uint32_t i = 0; i < w->n && w->rem; i++) {
        uint64_t e = w->buf.prp[i];
        if (e & (page - 1)) {
            return NVME_PRP_OFFSET_INVALID;
        }
        if (i == w->in_page - 1 && w->rem > page) {
            w->list = e;            /* next PRP list page */
            return NVME_WALK_CONTINUE;
        }
        uint64_t len = w->rem < page ? w->rem : page;
        uint16_t st = seg_add(req, e, len);
        if (st) {
            return st;
        }
        w->rem -= len;
    }
    w->list += w->n * 8ull;
    return NVME_WALK_CONTINUE;
}

static uint16_t map_prp(NvmeRequest *req, uint64_t len)
{
    uint64_t page = nvme_page_size(req->ctrl);
    uint64_t prp1 = req->cmd.dptr[0], prp2 = req->cmd.dptr[1];

    if (prp1 & 3) {
        return NVME_PRP_OFFSET_INVALID;    /* 4.3: dword aligned */
    }
    uint64_t first = page - (prp1 & (page - 1));
    first = first < len ? first : len;
    uint16_t st = seg_add(req, prp1, first);
    uint64_t rem = len - first;
    if (st || rem == 0) {
        return st;
    }
    if (rem <= page) {
        /* PRP2 is the second data page: offset zero. */
        return (prp2 & (page - 1)) ? NVME_PRP_OFFSET_INVALID
                                   : seg_add(req, prp2, rem);
    }
    if (prp2 & 7) {
        return NVME_PRP_OFFSET_INVALID;
    }
    req->walk.next_read = prp_next_read;
    req->walk.consume = prp_consume;
    req->walk.list = prp2;
    req->walk.rem = rem;
    return NVME_WALK_CONTINUE;
}

/* One descriptor of an SGL that must describe data (4.4). */
static uint16_t sgl_data(NvmeRequest *req, const NvmeSglDesc *d,
                         uint64_t *rem)
{
    if ((d->type & 0xf) != 0) {
        return NVME_SGL_DESCR_TYPE_INVALID;     /* subtype: address only */
    }
    switch (d->type >> 4) {
    case NVME_SGL_DATA_BLOCK: {
        uint64_t take = d->len < *rem ? d->len : *rem;
        *rem -= take;
        return seg_add(req, d->addr, take);
    }
    case NVME_SGL_SEGMENT:
    case NVME_SGL_LAST_SEGMENT:
        return NVME_INVALID_SGL_SEG_DESCR;      /* only last in a segment */
    default:
        return NVME_SGL_DESCR_TYPE_INVALID;     /* bit bucket, keyed */
    }
}

/* Enters the segment w->seg points to (or ends the walk on a data
 * descriptor in its place). */
static uint16_t sgl_enter(NvmeRequest *req)
{
    NvmeWalk *w = &req->walk;
    const NvmeSglDesc *d = &w->seg;
    uint8_t type = d->type >> 4;
    if (type != NVME_SGL_SEGMENT && type != NVME_SGL_LAST_SEGMENT) {
        uint16_t st = sgl_data(req, d, &w->rem);
        if (st || !w->rem) {
            return st;
        }
        return NVME_DATA_SGL_LEN_INVALID;       /* SGL shorter than data */
    }
    if ((d->type & 0xf) != 0 || d->len == 0 || d->len % 16) {
        return (d->type & 0xf) ? NVME_SGL_DESCR_TYPE_INVALID
                               : NVME_INVALID_SGL_SEG_DESCR;
    }
    w->count = d->len / 16;
    w->total += w->count;
    if (w->total > NVME_MAX_SGL_DESCS) {
        return NVME_INVALID_NUM_SGL_DESCRS;
    }
    w->list = d->addr;
    w->last_segment = type == NVME_SGL_LAST_SEGMENT;
    w->i = 0;
    w->in_segment = true;
    return NVME_WALK_CONTINUE;
}

/* Segments are read 16 descriptors at a time. */
static uint16_t sgl_next_read(NvmeRequest *req, uint64_t *addr, size_t *len)
{
    NvmeWalk *w = &req->walk;
    if (!w->in_segment) {
        if (!w->rem) {
            return NVME_SUCCESS;
        }
        uint16_t st = sgl_enter(req);
        if (st != NVME_WALK_CONTINUE) {
            return st;
        }
    }
    if (w->i < w->count && w->rem) {
        w->n = w->count - w->i < 16 ? w->count - w->i : 16;
        *addr = w->list + w->i * 16ull;
        *len = w->n * 16;
        return NVME_WALK_CONTINUE;
    }
    if (w->rem) {
        return w->last_segment ? NVME_DATA_SGL_LEN_INVALID
                               : NVME_INVALID_SGL_SEG_DESCR;
    }
    return NVME_SUCCESS;
}

static uint16_t sgl_consume(NvmeRequest *req)
{
    NvmeWalk *w = &req->walk;
    for (uint32_t j = 0; j < w->n && w->rem; j++, w->i++) {
        const NvmeSglDesc *d = &w->buf.sgl[j];
        uint8_t t = d->type >> 4;
        if (w->i == w->count - 1 && !w->last_segment &&
            (t == NVME_SGL_SEGMENT || t == NVME_SGL_LAST_SEGMENT)) {
            w->seg = *d;            /* chains to the next segment */
            w->in_segment = false;
            return NVME_WALK_CONTINUE;
        }
        uint16_t st = sgl_data(req, d, &w->rem);
        if (st) {
            return st;
        }
    }
    return NVME_WALK_CONTINUE;
}

static uint16_t map_sgl(NvmeRequest *req, uint64_t len)
{
    NvmeWalk *w = &req->walk;
    memcpy(&w->seg, req->cmd.dptr, sizeof(w->seg));
    req->ctrl->uses |= NVME_USES_SGL;
    w->next_read = sgl_next_read;
    w->consume = sgl_consume;
    w->rem = len;
    w->total = 0;
    w->in_segment = false;
    return NVME_WALK_CONTINUE;
}

void nvme_map_dptr(NvmeRequest *req, uint64_t len, bool admin,
                   NvmeReqCont *cont)
{
    uint16_t st;
    req->nsegs = 0;
    req->bytes = len;
    if (len == 0) {
        st = NVME_SUCCESS;
    } else if (NVME_PSDT(req->cmd.flags) == NVME_PSDT_PRP) {
        st = map_prp(req, len);
    } else if (NVME_PSDT(req->cmd.flags) == NVME_PSDT_SGL_MPTR_CONTIG ||
               NVME_PSDT(req->cmd.flags) == NVME_PSDT_SGL_MPTR_SGL) {
        /* 4.4: admin commands over PCIe use PRPs only. */
        st = admin ? NVME_INVALID_FIELD : map_sgl(req, len);
    } else {
        st = NVME_INVALID_FIELD;
    }
    if (st != NVME_WALK_CONTINUE) {
        cont(req, st);
        return;
    }
    req->walk.cont = cont;
    walk_run(req);
}

/* ---- host iovecs ---- */

static uint16_t iov_add(NvmeRequest *req, void *base, size_t len)
{
    if (req->iovcnt == req->iov_cap) {
        unsigned cap = req->iov_cap ? req->iov_cap * 2 : 16;
        if (cap > NVME_MAX_IOV) {
            return NVME_DATA_TRANSFER_ERROR;
        }
        struct iovec *v = realloc(req->iov, cap * sizeof(*v));
        if (!v) {
            return NVME_INTERNAL_ERROR;
        }
        req->iov = v;
        req->iov_cap = cap;
    }
    req->iov[req->iovcnt++] = (struct iovec){ .iov_base = base,
                                              .iov_len = len };
    return NVME_SUCCESS;
}

/* The block I/O goes through req->bounce; the caller copies the guest's
 * data into it (write-type) or out of it (read-type, at the end). */
static uint16_t map_bounce(NvmeRequest *req, size_t align)
{
    size_t len = (req->bytes + align - 1) / align * align;
    req->iovcnt = 0;
    req->bounce = aligned_alloc(align, len);
    if (!req->bounce) {
        return NVME_INTERNAL_ERROR;
    }
    return iov_add(req, req->bounce, req->bytes);
}

static bool iov_aligned(const NvmeRequest *req, size_t align)
{
    for (unsigned i = 0; i < req->iovcnt; i++) {
        if (((uintptr_t)req->iov[i].iov_base | req->iov[i].iov_len) &
            (align - 1)) {
            return false;
        }
    }
    return true;
}

/* Maps the extents zero-copy when the transport translates all of them
 * and the backend accepts the alignment; otherwise through a bounce
 * buffer (req->bounce set). */
uint16_t nvme_map_iov(NvmeRequest *req)
{
    NvmeCtrl *ctrl = req->ctrl;
    size_t align = req->ns ? blk_alignment(req->ns->blk) : 1;
    align = align < sizeof(void *) ? sizeof(void *) : align;

    req->iovcnt = 0;
    if (!ctrl->ops->translate) {
        return map_bounce(req, align);
    }
    for (unsigned i = 0; i < req->nsegs; i++) {
        uint64_t gpa = req->segs[i].gpa, len = req->segs[i].len;
        while (len) {
            uint64_t contig = 0;
            void *host = ctrl->ops->translate(ctrl->opaque, gpa, len,
                                              req->dev_writes_guest, &contig);
            if (!host && ctrl->ops->dma_start) {
                return map_bounce(req, align);  /* copied, not mapped */
            }
            if (!host || contig == 0 || contig > len) {
                return NVME_DATA_TRANSFER_ERROR;
            }
            uint16_t st = iov_add(req, host, contig);
            if (st) {
                return st;
            }
            gpa += contig;
            len -= contig;
        }
    }
    if (align > sizeof(void *) && !iov_aligned(req, align)) {
        return map_bounce(req, align);
    }
    return NVME_SUCCESS;
}

/* ---- copies between a buffer and the extents ---- */

static void copy_piece_end(NvmeRequest *req)
{
    if (--req->dma_pending == 0) {
        req->dma_cont(req, req->dma_failed ? NVME_DATA_TRANSFER_ERROR
                                           : NVME_SUCCESS);
    }
}

static void copy_piece_done(NvmeDmaOp *op, bool ok)
{
    NvmeRequest *req = op_request(op);
    if (!ok) {
        req->dma_failed = true;
    }
    copy_piece_end(req);
}

/* Extents copied directly are done at once; the others are all started
 * together (the transport bounds how many requests it has out) and the
 * copy ends when the last one is in. */
void nvme_req_copy(NvmeRequest *req, void *buf, size_t len, bool to_guest,
                   NvmeReqCont *cont)
{
    uint8_t *p = buf;
    req->dma_cont = cont;
    req->dma_failed = !req_ops_reserve(req, req->nsegs);
    req->dma_pending = 1;           /* held until every piece started */
    for (unsigned i = 0; i < req->nsegs && len && !req->dma_failed; i++) {
        size_t n = req->segs[i].len < len ? req->segs[i].len : len;
        uint64_t gpa = req->segs[i].gpa;
        size_t direct = nvme_dma_direct(req->ctrl, gpa, p, n, to_guest);
        if (direct < n) {
            if (nvme_dma_op_start(req->ctrl, &req->ops[i], gpa + direct,
                                  p + direct, n - direct, to_guest,
                                  copy_piece_done, req)) {
                req->dma_pending++;
            } else {
                req->dma_failed = true;
            }
        }
        p += n;
        len -= n;
    }
    if (len) {
        req->dma_failed = true;
    }
    copy_piece_end(req);
}

/* After a read-type transfer: data into guest memory (bounce) or the
 * pages it touched marked dirty for migration. */
void nvme_req_finish_data(NvmeRequest *req, NvmeReqCont *cont)
{
    if (req->dev_writes_guest && req->bounce) {
        nvme_req_copy(req, req->bounce, req->bytes, true, cont);
        return;     /* the copy marks the pages */
    }
    for (unsigned i = 0; req->dev_writes_guest && i < req->nsegs &&
                         req->ctrl->ops->mark_dirty; i++) {
        req->ctrl->ops->mark_dirty(req->ctrl->opaque, req->segs[i].gpa,
                                   req->segs[i].len);
    }
    cont(req, NVME_SUCCESS);
}

static void to_guest_mapped(NvmeRequest *req, uint16_t st)
{
    if (st) {
        nvme_req_finish(req, st);
        return;
    }
    nvme_req_copy(req, req->bounce, req->bytes, true, nvme_req_finish);
}

uint16_t nvme_data_to_guest(NvmeRequest *req, const void *buf, size_t len)
{
    req->bounce = malloc(len ? len : 1);
    if (!req->bounce) {
        return NVME_INTERNAL_ERROR;
    }
    memcpy(req->bounce, buf, len);
    req->dev_writes_guest = true;
    nvme_map_dptr(req, len, true, to_guest_mapped);
    return NVME_STATUS_DEFERRED;
}

static void from_guest_mapped(NvmeRequest *req, uint16_t st)
{
    if (st) {
        req->data_cont(req, st);
        return;
    }
    nvme_req_copy(req, req->bounce, req->bytes, false, req->data_cont);
}

uint16_t nvme_data_from_guest(NvmeRequest *req, size_t len, bool admin,
                              NvmeReqCont *then)
{
    req->bounce = malloc(len ? len : 1);
    if (!req->bounce) {
        return NVME_INTERNAL_ERROR;
    }
    req->data_cont = then;
    nvme_map_dptr(req, len, admin, from_guest_mapped);
    return NVME_STATUS_DEFERRED;
}

void nvme_req_release_data(NvmeRequest *req)
{
    free(req->bounce);
    req->bounce = NULL;
    free(req->cmp_buf);
    req->cmp_buf = NULL;
    req->iovcnt = 0;
    req->nsegs = 0;
}
