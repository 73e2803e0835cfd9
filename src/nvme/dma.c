/*
 * Guest memory: bounds-checked access through the transport, and the
 * data pointer of a command (PRPs, NVMe 1.4 section 4.3, or SGLs, section
 * 4.4) turned into guest extents and then host iovecs.
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
        return true;        /* checked by every dma_read/dma_write */
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

static bool has_copy_ops(const NvmeCtrl *ctrl)
{
    return ctrl->ops->dma_read && ctrl->ops->dma_write;
}

static bool dma_copy(NvmeCtrl *ctrl, uint64_t gpa, void *buf, size_t len,
                     bool to_guest)
{
    if (len == 0) {
        return true;
    }
    if (!gpa_range_valid(gpa, len)) {
        return false;
    }
    if (!ctrl->ops->translate) {
        return to_guest ? ctrl->ops->dma_write(ctrl->opaque, gpa, buf, len)
                        : ctrl->ops->dma_read(ctrl->opaque, gpa, buf, len);
    }
    uint8_t *p = buf;
    while (len) {
        uint64_t contig = 0;
        uint8_t *host = ctrl->ops->translate(ctrl->opaque, gpa, len,
                                             to_guest, &contig);
        if (!host && has_copy_ops(ctrl)) {
            return to_guest ? ctrl->ops->dma_write(ctrl->opaque, gpa, p, len)
                            : ctrl->ops->dma_read(ctrl->opaque, gpa, p, len);
        }
        if (!host || contig == 0 || contig > len) {
            return false;
        }
        if (to_guest) {
            memcpy(host, p, contig);
        } else {
            memcpy(p, host, contig);
        }
        p += contig;
        gpa += contig;
        len -= contig;
    }
    return true;
}

bool nvme_dma_read(NvmeCtrl *ctrl, uint64_t gpa, void *buf, size_t len)
{
    return dma_copy(ctrl, gpa, buf, len, false);
}

bool nvme_dma_write(NvmeCtrl *ctrl, uint64_t gpa, const void *buf,
                    size_t len)
{
    if (!dma_copy(ctrl, gpa, (void *)buf, len, true)) {
        return false;
    }
    if (ctrl->ops->mark_dirty && len) {
        ctrl->ops->mark_dirty(ctrl->opaque, gpa, len);
    }
    return true;
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

/* Walks a PRP list (4.3): every entry has a zero offset; when more than a
 * page of entries is needed, the last entry of a list page points to the
 * next list page. */
static uint16_t prp_list(NvmeRequest *req, uint64_t list, uint64_t rem)
{
    NvmeCtrl *ctrl = req->ctrl;
    uint64_t page = nvme_page_size(ctrl);
    uint64_t entries[64];

    while (rem) {
        uint64_t in_page = (page - (list & (page - 1))) / 8;
        uint64_t need = (rem + page - 1) / page;
        uint64_t n = in_page < need ? in_page : need;
        n = n < 64 ? n : 64;
        if (!nvme_dma_read(ctrl, list, entries, n * 8)) {
            return NVME_DATA_TRANSFER_ERROR;
        }
        for (uint64_t i = 0; i < n && rem; i++) {
            uint64_t e = entries[i];
            if (e & (page - 1)) {
                return NVME_PRP_OFFSET_INVALID;
            }
            bool chain = i == in_page - 1 && rem > page;
            if (chain) {
                list = e;           /* next PRP list page */
                goto next_page;
            }
            uint64_t len = rem < page ? rem : page;
            uint16_t st = seg_add(req, e, len);
            if (st) {
                return st;
            }
            rem -= len;
        }
        list += n * 8;
    next_page:;
    }
    return NVME_SUCCESS;
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
    return prp_list(req, prp2, rem);
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

static uint16_t map_sgl(NvmeRequest *req, uint64_t len)
{
    NvmeSglDesc d, batch[16];
    unsigned total_descs = 0;
    uint64_t rem = len;

    memcpy(&d, req->cmd.dptr, sizeof(d));
    req->ctrl->uses |= NVME_USES_SGL;
    while (rem) {
        uint8_t type = d.type >> 4;
        if (type != NVME_SGL_SEGMENT && type != NVME_SGL_LAST_SEGMENT) {
            uint16_t st = sgl_data(req, &d, &rem);
            if (st || !rem) {
                return st;
            }
            return NVME_DATA_SGL_LEN_INVALID;   /* SGL shorter than data */
        }
        if ((d.type & 0xf) != 0 || d.len == 0 || d.len % 16) {
            return (d.type & 0xf) ? NVME_SGL_DESCR_TYPE_INVALID
                                  : NVME_INVALID_SGL_SEG_DESCR;
        }
        uint32_t count = d.len / 16;
        total_descs += count;
        if (total_descs > NVME_MAX_SGL_DESCS) {
            return NVME_INVALID_NUM_SGL_DESCRS;
        }
        uint64_t addr = d.addr;
        bool last_segment = type == NVME_SGL_LAST_SEGMENT;
        for (uint32_t i = 0; i < count && rem;) {
            uint32_t n = count - i < 16 ? count - i : 16;
            if (!nvme_dma_read(req->ctrl, addr + i * 16ull, batch, n * 16)) {
                return NVME_DATA_TRANSFER_ERROR;
            }
            for (uint32_t j = 0; j < n && rem; j++, i++) {
                uint8_t t = batch[j].type >> 4;
                if (i == count - 1 && !last_segment &&
                    (t == NVME_SGL_SEGMENT || t == NVME_SGL_LAST_SEGMENT)) {
                    d = batch[j];   /* chains to the next segment */
                    goto next_segment;
                }
                uint16_t st = sgl_data(req, &batch[j], &rem);
                if (st) {
                    return st;
                }
            }
        }
        if (rem) {
            return last_segment ? NVME_DATA_SGL_LEN_INVALID
                                : NVME_INVALID_SGL_SEG_DESCR;
        }
        return NVME_SUCCESS;
    next_segment:;
    }
    return NVME_SUCCESS;
}

uint16_t nvme_map_dptr(NvmeRequest *req, uint64_t len, bool admin)
{
    req->nsegs = 0;
    req->bytes = len;
    if (len == 0) {
        return NVME_SUCCESS;
    }
    switch (NVME_PSDT(req->cmd.flags)) {
    case NVME_PSDT_PRP:
        return map_prp(req, len);
    case NVME_PSDT_SGL_MPTR_CONTIG:
    case NVME_PSDT_SGL_MPTR_SGL:
        /* 4.4: admin commands over PCIe use PRPs only. */
        return admin ? NVME_INVALID_FIELD : map_sgl(req, len);
    default:
        return NVME_INVALID_FIELD;
    }
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

static uint16_t map_bounce(NvmeRequest *req, size_t align)
{
    size_t len = (req->bytes + align - 1) / align * align;
    req->iovcnt = 0;
    req->bounce = aligned_alloc(align, len);
    if (!req->bounce) {
        return NVME_INTERNAL_ERROR;
    }
    if (!req->dev_writes_guest &&
        nvme_copy_from_guest(req, req->bounce, req->bytes)) {
        return NVME_DATA_TRANSFER_ERROR;
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
 * buffer. */
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
            if (!host && has_copy_ops(ctrl)) {
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

static uint16_t copy_segs(NvmeRequest *req, void *buf, size_t len,
                          bool to_guest)
{
    uint8_t *p = buf;
    for (unsigned i = 0; i < req->nsegs && len; i++) {
        size_t n = req->segs[i].len < len ? req->segs[i].len : len;
        bool ok = to_guest ? nvme_dma_write(req->ctrl, req->segs[i].gpa, p, n)
                           : nvme_dma_read(req->ctrl, req->segs[i].gpa, p, n);
        if (!ok) {
            return NVME_DATA_TRANSFER_ERROR;
        }
        p += n;
        len -= n;
    }
    return len ? NVME_DATA_TRANSFER_ERROR : NVME_SUCCESS;
}

uint16_t nvme_copy_to_guest(NvmeRequest *req, const void *buf, size_t len)
{
    return copy_segs(req, (void *)buf, len, true);
}

uint16_t nvme_copy_from_guest(NvmeRequest *req, void *buf, size_t len)
{
    return copy_segs(req, buf, len, false);
}

/* After a read-type transfer: data into guest memory (bounce) and the
 * pages it touched marked dirty for migration. */
void nvme_req_finish_bounce(NvmeRequest *req)
{
    if (!req->dev_writes_guest) {
        return;
    }
    if (req->bounce) {
        if (copy_segs(req, req->bounce, req->bytes, true) &&
            req->status == NVME_SUCCESS) {
            req->status = NVME_DATA_TRANSFER_ERROR;
        }
        return;     /* nvme_dma_write marked the pages */
    }
    for (unsigned i = 0; i < req->nsegs && req->ctrl->ops->mark_dirty; i++) {
        req->ctrl->ops->mark_dirty(req->ctrl->opaque, req->segs[i].gpa,
                                   req->segs[i].len);
    }
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
