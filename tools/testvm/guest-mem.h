/*
 * Guest memory of the test VM: one memfd, mapped here and shared with the
 * device server through DMA map. The VM keeps everything it needs to go on
 * (driver queues, command tracking, workload tables, counters) inside this
 * memory, so a destination that maps a copy carries on where the source
 * stopped.
 *
 * The VM's own writes are tracked here, page by page (gm_dirty); the
 * device's writes come from the transport's DMA dirty log. Pre-copy sends
 * the union of both.
 */
#ifndef STORMIG_TESTVM_GUEST_MEM_H
#define STORMIG_TESTVM_GUEST_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define GM_PAGE 4096u
#define GM_MAGIC 0x53544d47564d3031ull     /* "STMGVM01" */

/* Page 0 of guest memory: the allocator and where each part lives. */
typedef struct GuestHeader {
    uint64_t magic;
    uint64_t size;
    uint64_t brk;                   /* next free gpa */
    uint64_t driver_gpa;            /* the driver's state, 0: none yet */
    uint64_t workload_gpa;          /* the workload's state, 0: none yet */
} GuestHeader;

typedef struct GuestMem {
    int fd;
    uint8_t *base;
    uint64_t size;
    uint64_t *dirty;                /* one bit per page, the VM's writes */
    uint64_t nr_pages;
} GuestMem;

/* A fresh, zeroed memory of size bytes (a multiple of GM_PAGE). */
GuestMem *gm_new(uint64_t size, Error **errp);
void gm_free(GuestMem *gm);

/* Formats page 0 (a fresh VM); attach checks it (a migrated one). */
void gm_format(GuestMem *gm);
bool gm_attach(GuestMem *gm, Error **errp);
GuestHeader *gm_header(GuestMem *gm);

/* Page-aligned, zeroed, marked dirty. Returns 0 when memory is full. */
uint64_t gm_alloc(GuestMem *gm, uint64_t len, Error **errp);

/* Host pointer of [gpa, gpa + len), or NULL outside guest memory. */
void *gm_ptr(GuestMem *gm, uint64_t gpa, uint64_t len);
uint64_t gm_gpa(const GuestMem *gm, const void *ptr);
bool gm_range_ok(const GuestMem *gm, uint64_t gpa, uint64_t len);

/* Records a write of the VM itself. */
void gm_dirty(GuestMem *gm, const void *ptr, size_t len);
void gm_dirty_gpa(GuestMem *gm, uint64_t gpa, uint64_t len);
void gm_dirty_all(GuestMem *gm);
/* ORs the VM's dirty bits into bitmap and clears them. */
void gm_dirty_collect(GuestMem *gm, uint64_t *bitmap);
uint64_t gm_bitmap_words(const GuestMem *gm);

#endif
