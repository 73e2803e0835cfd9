/*
 * A minimal split-ring driver for tests and fuzz targets: lays out the
 * descriptor table, avail and used rings in a buffer that stands for guest
 * memory, the way a guest's virtio driver does (virtio 1.2 2.7), and reads
 * the used ring back.
 */
#ifndef STORMIG_TESTS_GUEST_DRIVER_H
#define STORMIG_TESTS_GUEST_DRIVER_H

#include <endian.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

typedef struct GuestDriver {
    uint8_t *mem;               /* host view of guest memory */
    uint64_t mem_gpa;           /* guest address of mem[0] */
    uint16_t num;
    uint64_t desc_gpa, avail_gpa, used_gpa;
    uint16_t avail_idx;
    uint16_t last_used;
    uint16_t next_desc;         /* trivial allocator */
} GuestDriver;

typedef struct DriverBuf {
    uint64_t gpa;
    uint32_t len;
    bool writable;
} DriverBuf;

static inline uint8_t *drv_ptr(GuestDriver *d, uint64_t gpa)
{
    return d->mem + (gpa - d->mem_gpa);
}

/* Rings at ring_gpa: desc table, then avail, then used at a 4 KiB
 * boundary (the legacy layout, also valid for virtio 1.x). */
static inline void drv_init(GuestDriver *d, uint8_t *mem, uint64_t mem_gpa,
                            uint16_t num, uint64_t ring_gpa)
{
    memset(d, 0, sizeof(*d));
    d->mem = mem;
    d->mem_gpa = mem_gpa;
    d->num = num;
    d->desc_gpa = ring_gpa;
    d->avail_gpa = ring_gpa + 16u * num;
    d->used_gpa = (d->avail_gpa + 6 + 2u * num + 4095) & ~4095ull;
    memset(drv_ptr(d, ring_gpa), 0,
           (size_t)(d->used_gpa + 6 + 8u * num - ring_gpa));
}

static inline void drv_write_desc(GuestDriver *d, uint64_t table_gpa,
                                  uint16_t i, uint64_t addr, uint32_t len,
                                  uint16_t flags, uint16_t next)
{
    uint8_t *p = drv_ptr(d, table_gpa) + 16u * i;
    uint64_t a = htole64(addr);
    uint32_t l = htole32(len);
    uint16_t f = htole16(flags), n = htole16(next);
    memcpy(p, &a, 8);
    memcpy(p + 8, &l, 4);
    memcpy(p + 12, &f, 2);
    memcpy(p + 14, &n, 2);
}

/* Writes a chain into table_gpa starting at index 'first'; returns the
 * index of its head. */
static inline uint16_t drv_write_chain(GuestDriver *d, uint64_t table_gpa,
                                       uint16_t first, const DriverBuf *b,
                                       unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        uint16_t flags = (b[i].writable ? 2 : 0) | (i + 1 < n ? 1 : 0);
        drv_write_desc(d, table_gpa, (uint16_t)(first + i), b[i].gpa,
                       b[i].len, flags, (uint16_t)(first + i + 1));
    }
    return first;
}

/* A direct chain in the queue's own table. */
static inline uint16_t drv_add_direct(GuestDriver *d, const DriverBuf *b,
                                      unsigned n)
{
    uint16_t head = drv_write_chain(d, d->desc_gpa, d->next_desc, b, n);
    d->next_desc = (uint16_t)((d->next_desc + n) % d->num);
    return head;
}

/* One descriptor pointing at an indirect table written at table_gpa. */
static inline uint16_t drv_add_indirect(GuestDriver *d, uint64_t table_gpa,
                                        const DriverBuf *b, unsigned n)
{
    drv_write_chain(d, table_gpa, 0, b, n);
    uint16_t head = d->next_desc;
    drv_write_desc(d, d->desc_gpa, head, table_gpa, 16u * n, 4, 0);
    d->next_desc = (uint16_t)((d->next_desc + 1) % d->num);
    return head;
}

static inline void drv_store16(GuestDriver *d, uint64_t gpa, uint16_t v)
{
    uint16_t le = htole16(v);
    __atomic_store_n((uint16_t *)drv_ptr(d, gpa), le, __ATOMIC_RELEASE);
}

static inline uint16_t drv_load16(GuestDriver *d, uint64_t gpa)
{
    return le16toh(__atomic_load_n((uint16_t *)drv_ptr(d, gpa),
                                   __ATOMIC_ACQUIRE));
}

/* Makes head available and publishes the new avail index. */
static inline void drv_publish(GuestDriver *d, uint16_t head)
{
    drv_store16(d, d->avail_gpa + 4 + 2u * (d->avail_idx % d->num), head);
    d->avail_idx++;
    drv_store16(d, d->avail_gpa + 2, d->avail_idx);
}

static inline void drv_set_avail_idx(GuestDriver *d, uint16_t idx)
{
    d->avail_idx = idx;
    drv_store16(d, d->avail_gpa + 2, idx);
}

static inline void drv_set_avail_flags(GuestDriver *d, uint16_t flags)
{
    drv_store16(d, d->avail_gpa, flags);
}

static inline void drv_set_used_event(GuestDriver *d, uint16_t v)
{
    drv_store16(d, d->avail_gpa + 4 + 2u * d->num, v);
}

static inline uint16_t drv_avail_event(GuestDriver *d)
{
    return drv_load16(d, d->used_gpa + 4 + 8u * d->num);
}

static inline uint16_t drv_used_idx(GuestDriver *d)
{
    return drv_load16(d, d->used_gpa + 2);
}

/* Takes the next used element; false when none. */
static inline bool drv_get_used(GuestDriver *d, uint32_t *id, uint32_t *len)
{
    if (drv_used_idx(d) == d->last_used) {
        return false;
    }
    const uint8_t *e = drv_ptr(d, d->used_gpa + 4 +
                                  8u * (d->last_used % d->num));
    uint32_t v;
    memcpy(&v, e, 4);
    *id = le32toh(v);
    memcpy(&v, e + 4, 4);
    *len = le32toh(v);
    d->last_used++;
    return true;
}

#endif
