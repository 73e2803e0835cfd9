/*
 * vfio-user server: client memory (DMA_MAP / DMA_UNMAP), its translation
 * for the device, and dirty page logging (DEVICE_FEATURE DMA_LOGGING_*).
 *
 * Each mapping logs at the granularity chosen at DMA_LOGGING_START, one
 * bit per page of the page-aligned span that covers the mapping. Reports
 * may ask for any power-of-two page size: a report page is dirty when any
 * logged page overlapping it is, and a logged page is cleared once a
 * report covered it completely.
 *
 * Memory mapped without an fd is reached by asking the client: DMA_READ
 * and DMA_WRITE, asynchronous (vfu-dma-remote.c).
 *
 * Memory mapped with an fd is refused unless the fd is sealed against
 * shrinking (F_SEAL_SHRINK, as QEMU's memory-backend-memfd does by
 * default): a client that truncated a mapped file would make every later
 * device access fault the daemon with SIGBUS. Other backings (plain files,
 * unsealed shm) can be mapped without an fd instead.
 */
#include "vfio-user/vfu-int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "util/log.h"

#define DMA_ALIGN 4096u     /* the only page size offered in pgsizes */
#define LOG_MAX_RANGES 1024u
#define LOG_MAX_PAGE (1ull << 30)

static bool is_pow2(uint64_t v)
{
    return v && !(v & (v - 1));
}

/* Index of the last mapping starting at or below iova, or n_dma. */
static size_t dma_find(const VfuServer *s, uint64_t iova)
{
    size_t lo = 0, hi = s->n_dma;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->dma[mid].iova <= iova) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo ? lo - 1 : s->n_dma;
}

VfuDmaRegion *vfu_dma_lookup(VfuServer *s, uint64_t iova)
{
    size_t i = dma_find(s, iova);
    if (i == s->n_dma || iova - s->dma[i].iova >= s->dma[i].size) {
        return NULL;
    }
    return &s->dma[i];
}

void *vfu_dma_translate(VfuServer *s, uint64_t iova, uint64_t len,
                        bool is_write, uint64_t *contig)
{
    VfuDmaRegion *r = len ? vfu_dma_lookup(s, iova) : NULL;
    uint32_t need = is_write ? VFU_DMA_FLAG_WRITE : VFU_DMA_FLAG_READ;
    if (!r || !r->host || !(r->prot & need)) {
        return NULL;
    }
    uint64_t off = iova - r->iova;
    uint64_t avail = r->size - off;
    *contig = len < avail ? len : avail;
    return r->host + off;
}

bool vfu_dma_mapped(VfuServer *s, uint64_t iova, uint64_t len,
                    bool is_write)
{
    uint32_t need = is_write ? VFU_DMA_FLAG_WRITE : VFU_DMA_FLAG_READ;
    if (!len || iova + len < iova) {
        return false;
    }
    while (len) {
        VfuDmaRegion *r = vfu_dma_lookup(s, iova);
        if (!r || !(r->prot & need)) {
            return false;
        }
        uint64_t avail = r->size - (iova - r->iova);
        uint64_t n = len < avail ? len : avail;
        iova += n;
        len -= n;
    }
    return true;
}

/* --- dirty bitmaps --------------------------------------------------- */

static uint64_t log_base(const VfuServer *s, const VfuDmaRegion *r)
{
    return r->iova & ~(s->log_page - 1);
}

static uint64_t log_pages(const VfuServer *s, const VfuDmaRegion *r)
{
    uint64_t end = r->iova + r->size;       /* checked not to overflow */
    return (end - log_base(s, r) + s->log_page - 1) / s->log_page;
}

/* Bitmaps of all mappings together stay below this (2 TiB of client
 * memory at 4 KiB pages). */
#define LOG_MAX_BITMAP_BYTES (64ull << 20)

static uint64_t dirty_bytes(const VfuServer *s, const VfuDmaRegion *r)
{
    return (log_pages(s, r) + 63) / 64 * sizeof(uint64_t);
}

static bool dirty_alloc(VfuServer *s, VfuDmaRegion *r)
{
    uint64_t bytes = dirty_bytes(s, r);
    if (bytes > LOG_MAX_BITMAP_BYTES - s->log_bytes) {
        log_ratelimited(LOG_WARN, "vfio-user: dirty bitmaps would exceed "
                        "%llu bytes", (unsigned long long)LOG_MAX_BITMAP_BYTES);
        return false;
    }
    r->dirty = calloc(1, (size_t)bytes);
    if (r->dirty) {
        s->log_bytes += bytes;
    }
    return r->dirty != NULL;
}

static void dirty_free(VfuServer *s, VfuDmaRegion *r)
{
    if (r->dirty) {
        s->log_bytes -= dirty_bytes(s, r);
        free(r->dirty);
        r->dirty = NULL;
    }
}

bool vfu_dma_logging_active(const VfuServer *s)
{
    return s->logging;
}

void vfu_dma_mark_dirty(VfuServer *s, uint64_t iova, uint64_t len)
{
    if (!s->logging || !len) {
        return;
    }
    uint64_t end = iova + len < iova ? UINT64_MAX : iova + len;
    size_t i = dma_find(s, iova);
    if (i == s->n_dma) {
        i = 0;
    }
    for (; i < s->n_dma && s->dma[i].iova < end; i++) {
        VfuDmaRegion *r = &s->dma[i];
        uint64_t rend = r->iova + r->size;
        uint64_t a = iova > r->iova ? iova : r->iova;
        uint64_t b = end < rend ? end : rend;
        if (a >= b || !r->dirty) {
            continue;
        }
        uint64_t first = (a - log_base(s, r)) / s->log_page;
        uint64_t last = (b - 1 - log_base(s, r)) / s->log_page;
        for (uint64_t p = first; p <= last; p++) {
            __atomic_fetch_or(&r->dirty[p / 64], 1ull << (p % 64),
                              __ATOMIC_RELAXED);
        }
    }
}

/*
 * ORs the dirty state of [iova, iova + len) into bitmap (one bit per page
 * of size page from iova) and clears the logged pages the range covers
 * entirely. iova and len are multiples of page; nothing overflows.
 */
static void collect_dirty(VfuServer *s, uint64_t iova, uint64_t len,
                          uint64_t page, uint64_t *bitmap)
{
    uint64_t end = iova + len;
    size_t i = dma_find(s, iova);
    if (i == s->n_dma) {
        i = 0;
    }
    for (; i < s->n_dma && s->dma[i].iova < end; i++) {
        VfuDmaRegion *r = &s->dma[i];
        uint64_t base = log_base(s, r), n = log_pages(s, r);
        uint64_t first = iova > base ? (iova - base) / s->log_page : 0;
        if (!r->dirty || first >= n) {
            continue;
        }
        /* Whole words at a time: most of a large bitmap is clean. */
        for (uint64_t wi = first / 64; wi < (n + 63) / 64; wi++) {
            uint64_t w = __atomic_load_n(&r->dirty[wi], __ATOMIC_RELAXED);
            if (base + wi * 64 * s->log_page >= end) {
                break;
            }
            for (; w; w &= w - 1) {
                uint64_t p = wi * 64 + (uint64_t)__builtin_ctzll(w);
                uint64_t a = base + p * s->log_page, b = a + s->log_page;
                if (b <= iova || a >= end) {
                    continue;
                }
                uint64_t lo = a > iova ? a : iova, hi = b < end ? b : end;
                for (uint64_t q = (lo - iova) / page;
                     q <= (hi - 1 - iova) / page; q++) {
                    bitmap[q / 64] |= 1ull << (q % 64);
                }
                if (a >= iova && b <= end) {
                    __atomic_fetch_and(&r->dirty[wi], ~(1ull << (p % 64)),
                                       __ATOMIC_RELAXED);
                }
            }
        }
    }
}

/* Bytes of bitmap for len bytes at page granularity, in u64 words. */
static uint64_t bitmap_bytes(uint64_t len, uint64_t page)
{
    uint64_t pages = len / page + (len % page ? 1 : 0);
    return (pages + 63) / 64 * 8;
}

/* Spec "DMA_LOGGING_START": the page size is a hint; this server logs at
 * any power of two from 4 KiB to 1 GiB and falls back to 4 KiB. */
VfuStatus vfu_logging_start(VfuServer *s, VfuMsg *m, const uint8_t *data,
                            size_t len)
{
    VfuLoggingStart ls;
    if (len < sizeof(ls)) {
        return EINVAL;
    }
    memcpy(&ls, data, sizeof(ls));
    if (ls.num_ranges > LOG_MAX_RANGES ||
        len != sizeof(ls) + (size_t)ls.num_ranges * sizeof(VfuLoggingRange)) {
        log_ratelimited(LOG_WARN, "vfio-user: LOGGING_START: %u ranges in "
                        "%zu bytes", ls.num_ranges, len);
        return EINVAL;
    }
    for (uint32_t i = 0; i < ls.num_ranges; i++) {
        VfuLoggingRange rg;
        memcpy(&rg, data + sizeof(ls) + i * sizeof(rg), sizeof(rg));
        if (!rg.length || rg.iova + rg.length < rg.iova) {
            return EINVAL;
        }
    }
    if (s->logging) {
        return EBUSY;
    }
    /* Every mapping is logged whatever the ranges: logging more than
     * asked is allowed, and the ranges may name memory mapped later. */
    s->log_page = is_pow2(ls.page_size) && ls.page_size >= DMA_ALIGN &&
                  ls.page_size <= LOG_MAX_PAGE ? ls.page_size : DMA_ALIGN;
    for (size_t i = 0; i < s->n_dma; i++) {
        if (!dirty_alloc(s, &s->dma[i])) {
            vfu_logging_stop(s);
            return ENOMEM;
        }
    }
    s->logging = true;
    ls.page_size = s->log_page;
    vfu_reply_put(m, &ls, sizeof(ls));
    vfu_reply_put(m, data + sizeof(ls), len - sizeof(ls));
    return VFU_OK;
}

VfuStatus vfu_logging_stop(VfuServer *s)
{
    for (size_t i = 0; i < s->n_dma; i++) {
        dirty_free(s, &s->dma[i]);
    }
    s->logging = false;
    return VFU_OK;
}

/* Checks a bitmap request: page a power of two, iova and len aligned to
 * it, the bitmap within one data transfer. */
static bool bitmap_request_ok(uint64_t iova, uint64_t len, uint64_t page)
{
    return is_pow2(page) && len && !(iova % page) && !(len % page) &&
           iova + len > iova && bitmap_bytes(len, page) <= VFU_MAX_DATA_XFER;
}

VfuStatus vfu_logging_report(VfuServer *s, VfuMsg *m, uint32_t argsz,
                             const uint8_t *data, size_t len)
{
    VfuLoggingReport rep;
    if (len != sizeof(rep)) {
        return EINVAL;
    }
    memcpy(&rep, data, sizeof(rep));
    if (!s->logging) {
        log_ratelimited(LOG_WARN, "vfio-user: LOGGING_REPORT: not logging");
        return EINVAL;
    }
    if (!bitmap_request_ok(rep.iova, rep.length, rep.page_size)) {
        log_ratelimited(LOG_WARN, "vfio-user: LOGGING_REPORT: bad range");
        return EINVAL;
    }
    uint64_t bytes = bitmap_bytes(rep.length, rep.page_size);
    VfuFeature f = {
        .argsz = (uint32_t)(sizeof(f) + sizeof(rep) + bytes),
        .flags = VFU_FEATURE_GET | VFU_FEATURE_DMA_LOGGING_REPORT,
    };
    if (argsz < f.argsz) {
        return EINVAL;
    }
    uint64_t *bitmap = calloc(1, bytes);
    if (!bitmap) {
        return ENOMEM;
    }
    collect_dirty(s, rep.iova, rep.length, rep.page_size, bitmap);
    vfu_reply_put(m, &f, sizeof(f));
    vfu_reply_put(m, &rep, sizeof(rep));
    vfu_reply_put(m, bitmap, bytes);
    free(bitmap);
    return VFU_OK;
}

/* --- DMA_MAP / DMA_UNMAP --------------------------------------------- */

static VfuStatus check_map(const VfuServer *s, const VfuDmaMap *d,
                           size_t nfds)
{
    const char *why = NULL;
    if (d->argsz != sizeof(*d)) {
        why = "bad argsz";
    } else if (d->flags & ~(VFU_DMA_FLAG_READ | VFU_DMA_FLAG_WRITE)) {
        why = "unknown flags";
    } else if (nfds > 1) {
        why = "more than one fd";
    } else if (!d->size || d->addr + d->size < d->addr ||
               (d->addr | d->size | d->offset) % DMA_ALIGN) {
        why = "bad address, size or offset";
    } else if (s->n_dma >= VFU_MAX_DMA_MAPS) {
        log_ratelimited(LOG_WARN, "vfio-user: DMA_MAP: too many mappings");
        return ENOSPC;
    }
    if (why) {
        log_ratelimited(LOG_WARN, "vfio-user: DMA_MAP 0x%llx+0x%llx: %s",
                        (unsigned long long)d->addr,
                        (unsigned long long)d->size, why);
        return EINVAL;
    }
    size_t i = dma_find(s, d->addr + d->size - 1);
    if (i < s->n_dma && s->dma[i].iova + s->dma[i].size > d->addr) {
        /* Spec "VFIO_USER_DMA_MAP": mapping over a mapping is EEXIST. */
        log_ratelimited(LOG_WARN, "vfio-user: DMA_MAP 0x%llx: overlaps",
                        (unsigned long long)d->addr);
        return EEXIST;
    }
    return VFU_OK;
}

/* Maps the client's fd. Refuses an fd the client could still shrink
 * (no F_SEAL_SHRINK) or one already shorter than the window: pages past
 * the end of the file would fault the daemon with SIGBUS. */
static VfuStatus map_fd(const VfuDmaMap *d, int fd, uint8_t **host)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        return EBADF;
    }
    int seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0 || !(seals & F_SEAL_SHRINK)) {
        log_ratelimited(LOG_WARN, "vfio-user: DMA_MAP 0x%llx: the fd is not "
                        "sealed against shrinking (F_SEAL_SHRINK); map it "
                        "sealed or without an fd",
                        (unsigned long long)d->addr);
        return EINVAL;
    }
    if (d->offset > (uint64_t)st.st_size ||
        d->size > (uint64_t)st.st_size - d->offset) {
        log_ratelimited(LOG_WARN, "vfio-user: DMA_MAP: fd shorter than the "
                        "window");
        return EINVAL;
    }
    int prot = ((d->flags & VFU_DMA_FLAG_READ) ? PROT_READ : 0) |
               ((d->flags & VFU_DMA_FLAG_WRITE) ? PROT_WRITE : 0);
    void *p = mmap(NULL, d->size, prot ? prot : PROT_NONE, MAP_SHARED, fd,
                   (off_t)d->offset);
    if (p == MAP_FAILED) {
        int err = errno;
        log_ratelimited(LOG_WARN, "vfio-user: DMA_MAP: mmap: %s",
                        strerror(err));
        return err;
    }
    *host = p;
    return VFU_OK;
}

VfuStatus vfu_handle_dma_map(VfuServer *s, VfuMsg *m)
{
    VfuDmaMap d;
    if (m->len != sizeof(d)) {
        log_ratelimited(LOG_WARN, "vfio-user: DMA_MAP: bad size %zu", m->len);
        return EINVAL;
    }
    memcpy(&d, m->payload, sizeof(d));
    VfuStatus st = check_map(s, &d, m->nfds);
    if (st != VFU_OK) {
        return st;
    }
    VfuDmaRegion r = { .iova = d.addr, .size = d.size, .prot = d.flags };
    if (m->nfds && (st = map_fd(&d, m->fds[0], &r.host)) != VFU_OK) {
        return st;
    }
    if (!m->nfds) {
        log_ratelimited(LOG_INFO, "vfio-user: DMA_MAP 0x%llx+0x%llx without "
                        "an fd: reached through DMA_READ/DMA_WRITE",
                        (unsigned long long)d.addr,
                        (unsigned long long)d.size);
    }
    if (s->logging && !dirty_alloc(s, &r)) {
        st = ENOMEM;
    }
    VfuDmaRegion *arr = st ? NULL
                      : realloc(s->dma, (s->n_dma + 1) * sizeof(*arr));
    if (!arr) {
        if (r.host) {
            munmap(r.host, r.size);
        }
        dirty_free(s, &r);
        return ENOMEM;
    }
    s->dma = arr;
    size_t at = dma_find(s, d.addr);
    at = at == s->n_dma ? 0 : at + 1;
    memmove(&arr[at + 1], &arr[at], (s->n_dma - at) * sizeof(*arr));
    arr[at] = r;
    s->n_dma++;
    return VFU_OK;
}

static void dma_remove(VfuServer *s, size_t i)
{
    VfuDmaRegion r = s->dma[i];
    if (s->ops->dma_unmap) {
        s->ops->dma_unmap(s->opaque, r.iova, r.size);
    }
    if (r.host) {
        munmap(r.host, r.size);
    }
    dirty_free(s, &r);
    memmove(&s->dma[i], &s->dma[i + 1], (s->n_dma - i - 1) * sizeof(r));
    s->n_dma--;
}

void vfu_dma_unmap_all(VfuServer *s)
{
    while (s->n_dma) {
        dma_remove(s, s->n_dma - 1);
    }
}

void vfu_dma_free(VfuServer *s)
{
    vfu_dma_remote_free(s);
    vfu_dma_unmap_all(s);
    free(s->dma);
    s->dma = NULL;
    s->logging = false;
}

/* GET_DIRTY_BITMAP (earlier spec revisions): the region's dirty pages
 * come back with the unmap reply. */
static VfuStatus unmap_bitmap(VfuServer *s, VfuMsg *m, const VfuDmaUnmap *u)
{
    VfuBitmap bm;
    if (m->len != sizeof(*u) + sizeof(bm) || !s->logging) {
        return EINVAL;
    }
    memcpy(&bm, m->payload + sizeof(*u), sizeof(bm));
    if (!bitmap_request_ok(u->addr, u->size, bm.pgsize) ||
        bm.size != bitmap_bytes(u->size, bm.pgsize) ||
        u->argsz < sizeof(*u) + sizeof(bm) + bm.size) {
        log_ratelimited(LOG_WARN, "vfio-user: DMA_UNMAP: bad bitmap");
        return EINVAL;
    }
    uint64_t *bitmap = calloc(1, bm.size);
    if (!bitmap) {
        return ENOMEM;
    }
    collect_dirty(s, u->addr, u->size, bm.pgsize, bitmap);
    VfuDmaUnmap out = *u;
    out.argsz = (uint32_t)(sizeof(out) + sizeof(bm) + bm.size);
    vfu_reply_put(m, &out, sizeof(out));
    vfu_reply_put(m, &bm, sizeof(bm));
    vfu_reply_put(m, bitmap, bm.size);
    free(bitmap);
    return VFU_OK;
}

VfuStatus vfu_handle_dma_unmap(VfuServer *s, VfuMsg *m)
{
    VfuDmaUnmap u;
    if (m->len < sizeof(u)) {
        log_ratelimited(LOG_WARN, "vfio-user: DMA_UNMAP: short payload");
        return EINVAL;
    }
    memcpy(&u, m->payload, sizeof(u));
    bool all = u.flags & VFU_DMA_UNMAP_FLAG_ALL;
    bool dirty = u.flags & VFU_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP;
    if (u.argsz < sizeof(u) || (u.flags & ~(VFU_DMA_UNMAP_FLAG_ALL |
        VFU_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP)) || (all && (dirty || u.addr ||
        u.size)) || (!dirty && m->len != sizeof(u))) {
        log_ratelimited(LOG_WARN, "vfio-user: DMA_UNMAP: bad request");
        return EINVAL;
    }
    if (all) {
        vfu_dma_unmap_all(s);
        vfu_reply_put(m, &u, sizeof(u));
        return VFU_OK;
    }
    /* Spec: address and size must match a previous mapping exactly. */
    size_t i = dma_find(s, u.addr);
    if (i == s->n_dma || s->dma[i].iova != u.addr ||
        s->dma[i].size != u.size) {
        log_ratelimited(LOG_WARN, "vfio-user: DMA_UNMAP 0x%llx+0x%llx: no "
                        "such mapping", (unsigned long long)u.addr,
                        (unsigned long long)u.size);
        return EINVAL;
    }
    VfuStatus st = VFU_OK;
    if (dirty) {
        st = unmap_bitmap(s, m, &u);
    } else {
        u.argsz = sizeof(u);
        vfu_reply_put(m, &u, sizeof(u));
    }
    if (st == VFU_OK) {
        dma_remove(s, i);
    }
    return st;
}
