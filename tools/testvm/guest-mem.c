/* Guest memory: a memfd, a bump allocator in page 0, own-write tracking. */
#include "guest-mem.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

GuestMem *gm_new(uint64_t size, Error **errp)
{
    if (size < 16 * GM_PAGE || size % GM_PAGE || size > (64ull << 30)) {
        error_setg(errp, "guest memory must be a multiple of 4 KiB between "
                   "64 KiB and 64 GiB");
        return NULL;
    }
    GuestMem *gm = calloc(1, sizeof(*gm));
    if (!gm) {
        error_setg(errp, "out of memory");
        return NULL;
    }
    gm->size = size;
    gm->nr_pages = size / GM_PAGE;
    gm->dirty = calloc(gm_bitmap_words(gm), sizeof(uint64_t));
    gm->fd = memfd_create("stormig-testvm-ram",
                          MFD_CLOEXEC | MFD_ALLOW_SEALING);
    /* Sealed like QEMU's memory-backend-memfd: a device server maps it
     * only when it cannot shrink under its mapping (SIGBUS). */
    if (!gm->dirty || gm->fd < 0 || ftruncate(gm->fd, (off_t)size) < 0 ||
        fcntl(gm->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0) {
        error_setg_errno(errp, errno ? errno : ENOMEM,
                         "cannot create guest memory");
        gm_free(gm);
        return NULL;
    }
    gm->base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, gm->fd, 0);
    if (gm->base == MAP_FAILED) {
        gm->base = NULL;
        error_setg_errno(errp, errno, "cannot map guest memory");
        gm_free(gm);
        return NULL;
    }
    return gm;
}

void gm_free(GuestMem *gm)
{
    if (!gm) {
        return;
    }
    if (gm->base) {
        munmap(gm->base, gm->size);
    }
    if (gm->fd >= 0) {
        close(gm->fd);
    }
    free(gm->dirty);
    free(gm);
}

GuestHeader *gm_header(GuestMem *gm)
{
    return (GuestHeader *)gm->base;
}

void gm_format(GuestMem *gm)
{
    GuestHeader *h = gm_header(gm);
    memset(h, 0, GM_PAGE);
    h->magic = GM_MAGIC;
    h->size = gm->size;
    h->brk = GM_PAGE;
    gm_dirty_gpa(gm, 0, GM_PAGE);
}

bool gm_attach(GuestMem *gm, Error **errp)
{
    GuestHeader *h = gm_header(gm);
    if (h->magic != GM_MAGIC || h->size != gm->size || h->brk < GM_PAGE ||
        h->brk > gm->size) {
        error_setg(errp, "guest memory holds no test VM of this size");
        return false;
    }
    return true;
}

uint64_t gm_alloc(GuestMem *gm, uint64_t len, Error **errp)
{
    GuestHeader *h = gm_header(gm);
    uint64_t pages = (len + GM_PAGE - 1) / GM_PAGE;
    if (len == 0 || pages > (gm->size - h->brk) / GM_PAGE) {
        error_setg(errp, "guest memory full (%llu bytes asked, %llu free)",
                   (unsigned long long)len,
                   (unsigned long long)(gm->size - h->brk));
        return 0;
    }
    uint64_t gpa = h->brk;
    h->brk += pages * GM_PAGE;
    gm_dirty(gm, h, sizeof(*h));
    memset(gm->base + gpa, 0, pages * GM_PAGE);
    gm_dirty_gpa(gm, gpa, pages * GM_PAGE);
    return gpa;
}

bool gm_range_ok(const GuestMem *gm, uint64_t gpa, uint64_t len)
{
    return len <= gm->size && gpa <= gm->size - len;
}

void *gm_ptr(GuestMem *gm, uint64_t gpa, uint64_t len)
{
    return gm_range_ok(gm, gpa, len) ? gm->base + gpa : NULL;
}

uint64_t gm_gpa(const GuestMem *gm, const void *ptr)
{
    return (uint64_t)((const uint8_t *)ptr - gm->base);
}

void gm_dirty_gpa(GuestMem *gm, uint64_t gpa, uint64_t len)
{
    if (len == 0 || !gm_range_ok(gm, gpa, len)) {
        return;
    }
    for (uint64_t p = gpa / GM_PAGE; p <= (gpa + len - 1) / GM_PAGE; p++) {
        gm->dirty[p / 64] |= 1ull << (p % 64);
    }
}

void gm_dirty(GuestMem *gm, const void *ptr, size_t len)
{
    gm_dirty_gpa(gm, gm_gpa(gm, ptr), len);
}

void gm_dirty_all(GuestMem *gm)
{
    gm_dirty_gpa(gm, 0, gm->size);
}

uint64_t gm_bitmap_words(const GuestMem *gm)
{
    return (gm->nr_pages + 63) / 64;
}

void gm_dirty_collect(GuestMem *gm, uint64_t *bitmap)
{
    for (uint64_t i = 0; i < gm_bitmap_words(gm); i++) {
        bitmap[i] |= gm->dirty[i];
        gm->dirty[i] = 0;
    }
}
