/* Guest memory translation and the dirty-page log. */
#include "virtio/guest-mem.h"

#include <stdatomic.h>
#include <stdlib.h>

static atomic_uint_fast64_t log_missed;

const char *guest_mem_check_regions(const GuestRegion *r, unsigned n)
{
    if (n > GUEST_MEM_MAX_REGIONS) {
        return "too many memory regions";
    }
    for (unsigned i = 0; i < n; i++) {
        if (r[i].size == 0) {
            return "empty memory region";
        }
        if (r[i].gpa + r[i].size < r[i].gpa ||
            r[i].uva + r[i].size < r[i].uva) {
            return "memory region wraps around the address space";
        }
        for (unsigned j = 0; j < i; j++) {
            if (r[i].gpa < r[j].gpa + r[j].size &&
                r[j].gpa < r[i].gpa + r[i].size) {
                return "overlapping memory regions";
            }
        }
    }
    return NULL;
}

static const GuestRegion *find_region(const GuestMemory *mem, uint64_t gpa)
{
    for (unsigned i = 0; i < mem->nregions; i++) {
        const GuestRegion *r = &mem->regions[i];
        if (gpa >= r->gpa && gpa - r->gpa < r->size) {
            return r;
        }
    }
    return NULL;
}

GuestMemStatus guest_mem_map_iov(const GuestMemory *mem, uint64_t gpa,
                                 uint64_t len, struct iovec *iov,
                                 unsigned *niov, unsigned max_iov)
{
    if (gpa + len < gpa) {
        return GUEST_MEM_UNMAPPED;
    }
    while (len > 0) {
        const GuestRegion *r = find_region(mem, gpa);
        if (!r) {
            return GUEST_MEM_UNMAPPED;
        }
        if (*niov >= max_iov) {
            return GUEST_MEM_TOO_MANY;
        }
        uint64_t off = gpa - r->gpa;
        uint64_t chunk = r->size - off < len ? r->size - off : len;
        iov[*niov].iov_base = r->hva + off;
        iov[*niov].iov_len = chunk;
        (*niov)++;
        gpa += chunk;
        len -= chunk;
    }
    return GUEST_MEM_OK;
}

void *guest_mem_ptr(const GuestMemory *mem, uint64_t gpa, uint64_t len)
{
    const GuestRegion *r = find_region(mem, gpa);
    if (!r || len > r->size - (gpa - r->gpa)) {
        return NULL;
    }
    return r->hva + (gpa - r->gpa);
}

void *guest_mem_uva_ptr(const GuestMemory *mem, uint64_t uva, uint64_t len,
                        uint64_t *gpa)
{
    for (unsigned i = 0; i < mem->nregions; i++) {
        const GuestRegion *r = &mem->regions[i];
        if (uva >= r->uva && uva - r->uva < r->size &&
            len <= r->size - (uva - r->uva)) {
            *gpa = r->gpa + (uva - r->uva);
            return r->hva + (uva - r->uva);
        }
    }
    return NULL;
}

void guest_mem_log_write(GuestMemory *mem, uint64_t gpa, uint64_t len)
{
    if (!mem->log || len == 0) {
        return;
    }
    uint64_t first = gpa / GUEST_LOG_PAGE_SIZE;
    uint64_t last = (gpa + len - 1) / GUEST_LOG_PAGE_SIZE;
    if (gpa + len - 1 < gpa) {
        last = UINT64_MAX / GUEST_LOG_PAGE_SIZE;
    }
    for (uint64_t page = first; page <= last; page++) {
        if (page / 8 >= mem->log_size) {
            atomic_fetch_add(&log_missed, last - page + 1);
            return;
        }
        /* vhost-user.rst "Migration": bit (page % 8) of byte (page / 8). */
        __atomic_fetch_or(&mem->log[page / 8], (uint8_t)(1u << (page % 8)),
                          __ATOMIC_RELAXED);
        if (mem->written && page / 8 < mem->written_size) {
            /* Only the data loop touches the record: no atomic needed. */
            mem->written[page / 8] |= (uint8_t)(1u << (page % 8));
        }
    }
}

uint64_t guest_mem_log_missed(void)
{
    return atomic_load(&log_missed);
}

static bool page_bit(const uint8_t *bitmap, uint64_t page)
{
    return bitmap[page / 8] & (1u << (page % 8));
}

GuestPageRange *guest_page_bitmap_ranges(const uint8_t *bitmap,
                                         uint64_t size, size_t *n)
{
    GuestPageRange *out = NULL;
    size_t count = 0, cap = 0;
    uint64_t npages = size * 8;
    *n = 0;
    for (uint64_t page = 0; page < npages;) {
        if (bitmap[page / 8] == 0 && page % 8 == 0) {
            page += 8;          /* the common case: skip a clear byte */
            continue;
        }
        if (!page_bit(bitmap, page)) {
            page++;
            continue;
        }
        uint64_t first = page;
        while (page < npages && page_bit(bitmap, page)) {
            page++;
        }
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            GuestPageRange *grown = realloc(out, cap * sizeof(*out));
            if (!grown) {
                free(out);
                return NULL;
            }
            out = grown;
        }
        out[count++] = (GuestPageRange){ first * GUEST_LOG_PAGE_SIZE,
                                         page - first };
    }
    *n = count;
    return out;
}
