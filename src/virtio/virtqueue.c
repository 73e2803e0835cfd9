/* Split virtqueue engine (virtio 1.2 section 2.7), device side. */
#include "virtio/virtqueue.h"
#include "util/log.h"

#include <endian.h>
#include <stdlib.h>
#include <string.h>

/* Ring layouts, virtio 1.2 2.7.5 (desc), 2.7.6 (avail), 2.7.8 (used). */
#define DESC_SIZE 16
#define AVAIL_RING_OFF 4
#define USED_RING_OFF 4
#define USED_ELEM_SIZE 8

typedef struct Desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
} Desc;

static inline uint16_t ld16(volatile const uint8_t *p)
{
    return le16toh(__atomic_load_n((volatile const uint16_t *)p,
                                   __ATOMIC_RELAXED));
}

static inline void st16(volatile uint8_t *p, uint16_t v)
{
    __atomic_store_n((volatile uint16_t *)p, htole16(v), __ATOMIC_RELAXED);
}

static inline void st32(volatile uint8_t *p, uint32_t v)
{
    __atomic_store_n((volatile uint32_t *)p, htole32(v), __ATOMIC_RELAXED);
}

static size_t avail_size(uint16_t num)
{
    return AVAIL_RING_OFF + 2u * num + 2;   /* + used_event */
}

static size_t used_size(uint16_t num)
{
    return USED_RING_OFF + (size_t)USED_ELEM_SIZE * num + 2;  /* + avail_event */
}

void virtqueue_init(VirtQueue *vq, unsigned index, GuestMemory *mem,
                    const VirtQueueHooks *hooks, void *opaque)
{
    memset(vq, 0, offsetof(VirtQueue, scratch_out));
    vq->index = index;
    vq->mem = mem;
    vq->hooks = hooks;
    vq->hooks_opaque = opaque;
}

void virtqueue_reset(VirtQueue *vq)
{
    virtqueue_init(vq, vq->index, vq->mem, vq->hooks, vq->hooks_opaque);
}

bool virtqueue_set_num(VirtQueue *vq, unsigned num)
{
    if (num == 0 || num > VIRTQ_MAX_SIZE || (num & (num - 1))) {
        return false;
    }
    vq->num = (uint16_t)num;
    vq->desc = vq->avail = vq->used = NULL;
    return true;
}

void virtqueue_set_addr(VirtQueue *vq, uint64_t desc, uint64_t avail,
                        uint64_t used)
{
    vq->desc_gpa = desc;
    vq->avail_gpa = avail;
    vq->used_gpa = used;
    vq->desc = vq->avail = vq->used = NULL;
}

void virtqueue_set_base(VirtQueue *vq, uint16_t idx)
{
    vq->last_avail_idx = idx;
    vq->used_idx = idx;
    vq->signalled_used_valid = false;
}

void virtqueue_set_features(VirtQueue *vq, uint64_t features)
{
    vq->event_idx = features & BIT_ULL(VIRTIO_RING_F_EVENT_IDX);
    vq->indirect = features & BIT_ULL(VIRTIO_RING_F_INDIRECT_DESC);
    vq->notify_on_empty = features & BIT_ULL(VIRTIO_F_NOTIFY_ON_EMPTY);
}

const char *virtqueue_map_rings(VirtQueue *vq)
{
    vq->desc = vq->avail = vq->used = NULL;
    if (vq->num == 0) {
        return "queue size not set";
    }
    /* 2.7 "Split Virtqueues": alignment 16 (desc), 2 (avail), 4 (used). */
    if ((vq->desc_gpa & 15) || (vq->avail_gpa & 1) || (vq->used_gpa & 3)) {
        return "misaligned ring address";
    }
    volatile uint8_t *d = guest_mem_ptr(vq->mem, vq->desc_gpa,
                                        (uint64_t)DESC_SIZE * vq->num);
    volatile uint8_t *a = guest_mem_ptr(vq->mem, vq->avail_gpa,
                                        avail_size(vq->num));
    volatile uint8_t *u = guest_mem_ptr(vq->mem, vq->used_gpa,
                                        used_size(vq->num));
    if (!d || !a || !u) {
        return "ring outside guest memory";
    }
    vq->desc = d;
    vq->avail = a;
    vq->used = u;
    return NULL;
}

bool virtqueue_is_ready(const VirtQueue *vq)
{
    return vq->num && vq->desc && vq->avail && vq->used;
}

void virtqueue_mark_broken(VirtQueue *vq, const char *reason)
{
    if (vq->broken) {
        return;
    }
    vq->broken = true;
    vq->broken_reason = reason;
    log_ratelimited(LOG_WARN, "virtqueue %u: %s; device needs reset",
                    vq->index, reason);
    if (vq->hooks && vq->hooks->broken) {
        vq->hooks->broken(vq, vq->hooks_opaque);
    }
}

static void log_used(VirtQueue *vq, size_t offset, size_t len)
{
    if (vq->log_used) {
        guest_mem_log_write(vq->mem, vq->used_log_gpa + offset, len);
    }
}

/* Asks the driver for a notification at the next avail entry (2.7.10):
 * with event index by writing avail_event, else by clearing NO_NOTIFY. */
static void arm_notifications(VirtQueue *vq)
{
    if (vq->event_idx) {
        size_t off = USED_RING_OFF + (size_t)USED_ELEM_SIZE * vq->num;
        st16(vq->used + off, vq->last_avail_idx);
        log_used(vq, off, 2);
    }
    /* Without event index we never set VIRTQ_USED_F_NO_NOTIFY. */
}

/* Number of new avail entries, or -1 after marking the queue broken. */
static int avail_pending(VirtQueue *vq)
{
    uint16_t idx = ld16(vq->avail + 2);
    uint16_t pending = (uint16_t)(idx - vq->last_avail_idx);
    if (pending > vq->num) {
        /* 2.7.13.3: the driver never has more than Queue Size entries
         * outstanding; a bigger jump is a corrupt index. */
        virtqueue_mark_broken(vq, "avail index moved by more than the "
                              "queue size");
        return -1;
    }
    /* Read ring entries and descriptors only after the index (2.7.13). */
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    return pending;
}

static void read_desc(volatile const uint8_t *table, unsigned i, Desc *d)
{
    Desc raw;
    memcpy(&raw, (const uint8_t *)table + (size_t)i * DESC_SIZE, sizeof(raw));
    d->addr = le64toh(raw.addr);
    d->len = le32toh(raw.len);
    d->flags = le16toh(raw.flags);
    d->next = le16toh(raw.next);
}

typedef struct ChainWalk {
    unsigned out_iov, in_iov;       /* counts in scratch (out first) */
    unsigned nranges;
    uint64_t out_bytes, in_bytes;
} ChainWalk;

/* Maps one descriptor's buffer; returns a reason on error. */
static const char *map_desc(VirtQueue *vq, ChainWalk *w, const Desc *d)
{
    bool writable = d->flags & VIRTQ_DESC_F_WRITE;
    if (!writable && w->in_iov) {
        /* 2.7.4.2: device-writable descriptors come after readable ones. */
        return "readable descriptor after a writable one";
    }
    uint64_t *total = writable ? &w->in_bytes : &w->out_bytes;
    *total += d->len;
    if (*total > UINT32_MAX) {
        return "chain length overflows 32 bits";
    }
    if (d->len == 0) {
        return NULL;
    }
    /* Readable and writable buffers share the VIRTQ_MAX_IOV budget. */
    struct iovec *iov = writable ? vq->scratch_in : vq->scratch_out;
    unsigned *n = writable ? &w->in_iov : &w->out_iov;
    unsigned room = VIRTQ_MAX_IOV - (writable ? w->out_iov : 0);
    switch (guest_mem_map_iov(vq->mem, d->addr, d->len, iov, n, room)) {
    case GUEST_MEM_OK:
        break;
    case GUEST_MEM_UNMAPPED:
        return "descriptor buffer outside guest memory";
    case GUEST_MEM_TOO_MANY:
        return "chain needs too many buffers";
    }
    if (writable) {
        vq->scratch_ranges[w->nranges++] = (GuestRange){ d->addr, d->len };
    }
    return NULL;
}

/* Follows the chain from head; returns a reason on error. */
static const char *walk_chain(VirtQueue *vq, uint16_t head, ChainWalk *w)
{
    volatile const uint8_t *table = vq->desc;
    unsigned max = vq->num, count = 0, i = head;
    Desc d;

    read_desc(table, i, &d);
    if (d.flags & VIRTQ_DESC_F_INDIRECT) {
        /* 2.7.5.3.1: only with the feature, never with NEXT, and the
         * table holds whole descriptors. */
        if (!vq->indirect) {
            return "indirect descriptor without the feature";
        }
        if (d.flags & VIRTQ_DESC_F_NEXT) {
            return "indirect descriptor with NEXT set";
        }
        if (d.len == 0 || d.len % DESC_SIZE ||
            d.len / DESC_SIZE > VIRTQ_MAX_SIZE) {
            return "bad indirect table length";
        }
        table = guest_mem_ptr(vq->mem, d.addr, d.len);
        if (!table) {
            return "indirect table outside guest memory";
        }
        max = d.len / DESC_SIZE;
        i = 0;
        read_desc(table, i, &d);
    }
    for (;;) {
        if (++count > max) {
            return "descriptor chain loops or is longer than its table";
        }
        if (d.flags & VIRTQ_DESC_F_INDIRECT) {
            /* 2.7.5.3.1: no indirect inside indirect, none mid-chain. */
            return "nested or chained indirect descriptor";
        }
        const char *err = map_desc(vq, w, &d);
        if (err) {
            return err;
        }
        if (!(d.flags & VIRTQ_DESC_F_NEXT)) {
            return NULL;
        }
        if (d.next >= max) {
            return "descriptor next index out of range";
        }
        i = d.next;
        read_desc(table, i, &d);
    }
}

static VirtqElement *build_element(VirtQueue *vq, const ChainWalk *w,
                                   uint16_t head, size_t elem_size)
{
    size_t iov_bytes = (size_t)(w->out_iov + w->in_iov) * sizeof(struct iovec);
    size_t range_bytes = (size_t)w->nranges * sizeof(GuestRange);
    size_t base = (elem_size + 15) & ~(size_t)15;
    uint8_t *mem = calloc(1, base + iov_bytes + range_bytes);
    if (!mem) {
        return NULL;
    }
    VirtqElement *e = (VirtqElement *)mem;
    e->head = head;
    e->out_num = w->out_iov;
    e->in_num = w->in_iov;
    e->in_range_num = w->nranges;
    e->out_sg = (struct iovec *)(mem + base);
    e->in_sg = e->out_sg + w->out_iov;
    e->in_ranges = (GuestRange *)(mem + base + iov_bytes);
    memcpy(e->out_sg, vq->scratch_out, w->out_iov * sizeof(struct iovec));
    memcpy(e->in_sg, vq->scratch_in, w->in_iov * sizeof(struct iovec));
    memcpy(e->in_ranges, vq->scratch_ranges, range_bytes);
    return e;
}

void *virtqueue_pop(VirtQueue *vq, size_t elem_size)
{
    if (vq->broken || vq->stopped || !virtqueue_is_ready(vq) ||
        elem_size < sizeof(VirtqElement)) {
        return NULL;
    }
    int pending = avail_pending(vq);
    if (pending == 0) {
        /* Re-arm, then look again: the driver may have added a buffer
         * before it saw our request (2.7.10 race). */
        arm_notifications(vq);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        pending = avail_pending(vq);
    }
    if (pending <= 0) {
        return NULL;
    }
    uint16_t slot = vq->last_avail_idx & (vq->num - 1);
    uint16_t head = ld16(vq->avail + AVAIL_RING_OFF + 2u * slot);
    if (head >= vq->num) {
        virtqueue_mark_broken(vq, "avail ring head out of range");
        return NULL;
    }
    ChainWalk w = { 0 };
    const char *err = walk_chain(vq, head, &w);
    if (err) {
        virtqueue_mark_broken(vq, err);
        return NULL;
    }
    VirtqElement *e = build_element(vq, &w, head, elem_size);
    if (!e) {
        return NULL;    /* out of memory: retried on the next kick */
    }
    vq->last_avail_idx++;
    vq->inflight++;
    if (vq->event_idx) {
        arm_notifications(vq);
    }
    return e;
}

static void log_written(VirtQueue *vq, const VirtqElement *elem,
                        uint64_t len)
{
    uint64_t left = len;
    for (unsigned i = 0; i < elem->in_range_num && left; i++) {
        uint64_t n = elem->in_ranges[i].len < left ?
                     elem->in_ranges[i].len : left;
        guest_mem_log_write(vq->mem, elem->in_ranges[i].gpa, n);
        left -= n;
    }
}

void virtqueue_push(VirtQueue *vq, const VirtqElement *elem, uint32_t len)
{
    virtqueue_push_written(vq, elem, len, len);
}

void virtqueue_push_written(VirtQueue *vq, const VirtqElement *elem,
                            uint32_t len, size_t written)
{
    size_t cap = iov_size(elem->in_sg, elem->in_num);
    if (len > cap) {
        len = (uint32_t)cap;
    }
    if (written < len) {
        written = len;
    }
    if (vq->inflight) {
        vq->inflight--;
    }
    if (!virtqueue_is_ready(vq) || vq->broken) {
        goto out;
    }
    /* vhost-user.rst "Migration": log after the data is in place, so a
     * log sync that clears the bit sees the new contents. in_ranges cover
     * at most cap bytes, so 'written' needs no clamp here. */
    log_written(vq, elem, written);
    uint16_t slot = vq->used_idx & (vq->num - 1);
    size_t off = USED_RING_OFF + (size_t)USED_ELEM_SIZE * slot;
    st32(vq->used + off, elem->head);
    st32(vq->used + off + 4, len);
    log_used(vq, off, USED_ELEM_SIZE);
    /* 2.7.8.2: the element is visible before the index that covers it. */
    __atomic_thread_fence(__ATOMIC_RELEASE);
    vq->used_idx++;
    vq->pushed_since_notify = true;
    st16(vq->used + 2, vq->used_idx);
    log_used(vq, 2, 2);
out:
    if (vq->stopped && vq->inflight == 0 && vq->hooks && vq->hooks->idle) {
        vq->hooks->idle(vq, vq->hooks_opaque);
    }
}

static bool need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
    /* 2.7.10.1: notify when event lies in [old, new). */
    return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

static bool should_notify(VirtQueue *vq)
{
    /* Order the used index store before reading the driver's flags. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (vq->notify_on_empty && vq->inflight == 0 &&
        ld16(vq->avail + 2) == vq->last_avail_idx) {
        return true;    /* 2.7.7.1 / 6.3: VIRTIO_F_NOTIFY_ON_EMPTY */
    }
    if (!vq->event_idx) {
        return !(ld16(vq->avail) & VIRTQ_AVAIL_F_NO_INTERRUPT);
    }
    uint16_t old = vq->signalled_used;
    bool valid = vq->signalled_used_valid;
    vq->signalled_used = vq->used_idx;
    vq->signalled_used_valid = true;
    uint16_t used_event = ld16(vq->avail + AVAIL_RING_OFF + 2u * vq->num);
    return !valid || need_event(used_event, vq->used_idx, old);
}

void virtqueue_notify(VirtQueue *vq)
{
    if (!virtqueue_is_ready(vq) || vq->broken || !vq->pushed_since_notify) {
        return;
    }
    vq->pushed_since_notify = false;
    if (should_notify(vq) && vq->hooks && vq->hooks->notify) {
        vq->notifications++;
        vq->hooks->notify(vq, vq->hooks_opaque);
    }
}

uint16_t virtqueue_avail_idx(const VirtQueue *vq)
{
    return virtqueue_is_ready(vq) ? ld16(vq->avail + 2) : 0;
}

uint16_t virtqueue_used_event(const VirtQueue *vq)
{
    return virtqueue_is_ready(vq) ?
           ld16(vq->avail + AVAIL_RING_OFF + 2u * vq->num) : 0;
}

void virtqueue_set_stopped(VirtQueue *vq, bool stopped)
{
    vq->stopped = stopped;
    if (stopped && vq->inflight == 0 && vq->hooks && vq->hooks->idle) {
        vq->hooks->idle(vq, vq->hooks_opaque);
    }
}

size_t iov_size(const struct iovec *iov, unsigned n)
{
    size_t total = 0;
    for (unsigned i = 0; i < n; i++) {
        total += iov[i].iov_len;
    }
    return total;
}

size_t iov_to_buf(const struct iovec *iov, unsigned n, size_t offset,
                  void *buf, size_t len)
{
    size_t done = 0;
    for (unsigned i = 0; i < n && done < len; i++) {
        if (offset >= iov[i].iov_len) {
            offset -= iov[i].iov_len;
            continue;
        }
        size_t chunk = iov[i].iov_len - offset;
        if (chunk > len - done) {
            chunk = len - done;
        }
        memcpy((uint8_t *)buf + done, (uint8_t *)iov[i].iov_base + offset,
               chunk);
        done += chunk;
        offset = 0;
    }
    return done;
}

size_t iov_from_buf(const struct iovec *iov, unsigned n, size_t offset,
                    const void *buf, size_t len)
{
    size_t done = 0;
    for (unsigned i = 0; i < n && done < len; i++) {
        if (offset >= iov[i].iov_len) {
            offset -= iov[i].iov_len;
            continue;
        }
        size_t chunk = iov[i].iov_len - offset;
        if (chunk > len - done) {
            chunk = len - done;
        }
        memcpy((uint8_t *)iov[i].iov_base + offset,
               (const uint8_t *)buf + done, chunk);
        done += chunk;
        offset = 0;
    }
    return done;
}
