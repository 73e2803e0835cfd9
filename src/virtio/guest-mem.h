/*
 * Guest memory as the back end sees it: a small table of regions, each a
 * range of guest-physical addresses mapped at some host address, plus the
 * optional dirty-page log used during live migration.
 *
 * Every address that comes from a guest (descriptor addresses, ring
 * addresses) goes through guest_mem_map_iov()/guest_mem_ptr(), which check
 * it against the regions; nothing else turns a guest address into a
 * pointer.
 *
 * The log follows vhost-user.rst "Migration": one bit per 4 KiB guest page,
 * bit (gpa / 4096) of a byte array, set with an atomic OR because QEMU
 * reads and clears it concurrently.
 */
#ifndef STORMIG_VIRTIO_GUEST_MEM_H
#define STORMIG_VIRTIO_GUEST_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define GUEST_MEM_MAX_REGIONS 8         /* VHOST_MEMORY_BASELINE_NREGIONS */
#define GUEST_LOG_PAGE_SIZE 4096u

typedef struct GuestRegion {
    uint64_t gpa;           /* guest-physical start */
    uint64_t size;          /* bytes, > 0 */
    uint64_t uva;           /* the front end's virtual address (ring
                               addresses of SET_VRING_ADDR are in these) */
    uint8_t *hva;           /* where the region is mapped here */
} GuestRegion;

typedef struct GuestMemory {
    GuestRegion regions[GUEST_MEM_MAX_REGIONS];
    unsigned nregions;
    /* Dirty log (NULL: not logging). log_size is in bytes. */
    uint8_t *log;
    uint64_t log_size;
    /* Our own record of the pages this device wrote while logging, same
     * indexing as the log (NULL: none kept). Unlike the log, nobody else
     * clears it, so after a migration it still says which pages the
     * device itself touched. Data loop only; written_size in bytes. */
    uint8_t *written;
    uint64_t written_size;
} GuestMemory;

/* A run of consecutive 4 KiB guest pages. */
typedef struct GuestPageRange {
    uint64_t gpa;           /* of the first page */
    uint64_t pages;
} GuestPageRange;

/* Outcome of a translation. */
typedef enum GuestMemStatus {
    GUEST_MEM_OK,
    GUEST_MEM_UNMAPPED,     /* some byte is outside every region */
    GUEST_MEM_TOO_MANY,     /* needs more iovecs than the caller gave */
} GuestMemStatus;

/*
 * Checks a new region table: sizes non-zero, no address overflow, no two
 * regions overlapping in guest-physical space. Returns NULL when fine, or a
 * static string naming the problem.
 */
const char *guest_mem_check_regions(const GuestRegion *r, unsigned n);

/*
 * Maps [gpa, gpa+len) into iov[*niov...max_iov), one iovec per region it
 * touches (a range crossing a region end is split, never read past it).
 * *niov is advanced by the iovecs added. len 0 adds nothing.
 */
GuestMemStatus guest_mem_map_iov(const GuestMemory *mem, uint64_t gpa,
                                 uint64_t len, struct iovec *iov,
                                 unsigned *niov, unsigned max_iov);

/* A pointer to [gpa, gpa+len) only when it lies inside ONE region (ring
 * structures must be contiguous). NULL otherwise. */
void *guest_mem_ptr(const GuestMemory *mem, uint64_t gpa, uint64_t len);

/* Translates a front-end virtual address range (one region) to a host
 * pointer; sets *gpa to the matching guest-physical address. */
void *guest_mem_uva_ptr(const GuestMemory *mem, uint64_t uva, uint64_t len,
                        uint64_t *gpa);

/* Marks every 4 KiB page of [gpa, gpa+len) dirty when logging, and in the
 * written record when one is kept; pages past the end of the log are
 * ignored (and counted). Safe to call with no log. */
void guest_mem_log_write(GuestMemory *mem, uint64_t gpa, uint64_t len);

/* Pages a write fell outside the log since start (diagnostics/tests). */
uint64_t guest_mem_log_missed(void);

/* The runs of set bits of a page bitmap (bit page % 8 of byte page / 8),
 * as a malloc'd array (count in *n; NULL with *n 0 when none, or out of memory). */
GuestPageRange *guest_page_bitmap_ranges(const uint8_t *bitmap,
                                         uint64_t size, size_t *n);

#endif
