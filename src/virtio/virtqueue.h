/*
 * Split virtqueues, device side (virtio 1.2 section 2.7).
 *
 * A VirtQueue reads the rings a driver laid out in guest memory, turns each
 * available descriptor chain into readable (out) and writable (in) iovecs
 * and puts finished chains on the used ring. Everything read from guest
 * memory is checked; a driver that breaks the rules marks the queue broken
 * (virtio 1.2 2.1.2 "DEVICE_NEEDS_RESET"): it then returns nothing more
 * until it is reset, and the 'broken' hook tells the transport.
 *
 * Rings are little-endian (virtio 1.x; legacy drivers on x86 are too).
 * One thread uses a queue at a time (the controller's I/O thread).
 */
#ifndef STORMIG_VIRTIO_VIRTQUEUE_H
#define STORMIG_VIRTIO_VIRTQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "virtio/guest-mem.h"
#include "virtio/virtio.h"

/* Most iovecs one chain may map to; more marks the queue broken. */
#define VIRTQ_MAX_IOV 1024

typedef struct GuestRange {
    uint64_t gpa;
    uint64_t len;
} GuestRange;

/*
 * One popped chain. Devices allocate a bigger struct with this first (see
 * virtqueue_pop's elem_size). out_sg: device-readable buffers, in_sg:
 * device-writable; in_ranges: the guest ranges behind in_sg, which
 * virtqueue_push() logs as dirty.
 */
typedef struct VirtqElement {
    uint16_t head;
    unsigned out_num;
    unsigned in_num;
    unsigned in_range_num;
    struct iovec *out_sg;
    struct iovec *in_sg;
    GuestRange *in_ranges;
} VirtqElement;

typedef struct VirtQueue VirtQueue;

typedef struct VirtQueueHooks {
    /* The driver must be interrupted (write the call eventfd). */
    void (*notify)(VirtQueue *vq, void *opaque);
    /* The queue just became broken. */
    void (*broken)(VirtQueue *vq, void *opaque);
    /* The queue is stopped and its last in-flight chain was pushed. */
    void (*idle)(VirtQueue *vq, void *opaque);
} VirtQueueHooks;

struct VirtQueue {
    unsigned index;
    uint16_t num;               /* queue size; 0 = not set up */
    uint64_t desc_gpa, avail_gpa, used_gpa;
    uint64_t used_log_gpa;      /* where the used ring is logged */
    bool log_used;              /* VHOST_VRING_F_LOG */
    volatile uint8_t *desc;     /* host views, valid after map_rings */
    volatile uint8_t *avail;
    volatile uint8_t *used;

    uint16_t last_avail_idx;    /* next avail entry to read */
    uint16_t used_idx;          /* next used entry to write */
    uint16_t signalled_used;    /* used idx at the last notification */
    bool signalled_used_valid;
    bool pushed_since_notify;   /* no interrupt without new used entries */

    bool event_idx;             /* VIRTIO_RING_F_EVENT_IDX negotiated */
    bool indirect;              /* VIRTIO_RING_F_INDIRECT_DESC negotiated */
    bool notify_on_empty;       /* VIRTIO_F_NOTIFY_ON_EMPTY negotiated */

    uint64_t notifications;     /* notify hook calls (statistics) */

    bool broken;
    const char *broken_reason;  /* static string, set with broken */
    bool stopped;               /* pop returns nothing while set */
    unsigned inflight;          /* popped, not yet pushed */

    GuestMemory *mem;
    const VirtQueueHooks *hooks;
    void *hooks_opaque;

    /* Scratch space for one chain walk. */
    struct iovec scratch_out[VIRTQ_MAX_IOV];
    struct iovec scratch_in[VIRTQ_MAX_IOV];
    GuestRange scratch_ranges[VIRTQ_MAX_IOV];
};

void virtqueue_init(VirtQueue *vq, unsigned index, GuestMemory *mem,
                    const VirtQueueHooks *hooks, void *opaque);
/* Forgets rings and indices (in-flight chains must be gone). */
void virtqueue_reset(VirtQueue *vq);

/* Sets the queue size: a power of two, 1..32768. */
bool virtqueue_set_num(VirtQueue *vq, unsigned num);
/* Ring addresses (guest-physical). Mapped by virtqueue_map_rings. */
void virtqueue_set_addr(VirtQueue *vq, uint64_t desc, uint64_t avail,
                        uint64_t used);
/* Sets last_avail_idx (and used_idx: both equal when the queue is idle). */
void virtqueue_set_base(VirtQueue *vq, uint16_t idx);
void virtqueue_set_features(VirtQueue *vq, uint64_t features);

/*
 * Looks the three rings up in guest memory (call again after the memory
 * table changed). Returns NULL when fine, or a reason (misaligned or
 * unmapped ring); the queue is then not ready.
 */
const char *virtqueue_map_rings(VirtQueue *vq);
bool virtqueue_is_ready(const VirtQueue *vq);

/*
 * Takes the next available chain. Returns a zeroed-then-filled element of
 * elem_size bytes (>= sizeof(VirtqElement), freed with free()), or NULL
 * when the queue is empty, stopped, not ready or broken. When empty, it
 * also re-arms driver notifications (event index or flags).
 */
void *virtqueue_pop(VirtQueue *vq, size_t elem_size);

/*
 * Puts a chain on the used ring with 'len' bytes written into its in_sg
 * (clamped to the buffers' size), logging every written page and the used
 * ring when dirty logging is on. Does not free elem. Call
 * virtqueue_notify() after a batch.
 */
void virtqueue_push(VirtQueue *vq, const VirtqElement *elem, uint32_t len);

/*
 * The same for a device that may have written more than it reports: a
 * request that failed after part of its data-in reached the buffers
 * (virtio 1.2 2.7.8.2 lets a device write more than len). The first
 * 'written' bytes of in_sg are logged dirty (at least len), 'len' goes to
 * the used ring. Without this the destination of a migration would keep
 * stale contents in those pages.
 */
void virtqueue_push_written(VirtQueue *vq, const VirtqElement *elem,
                            uint32_t len, size_t written);

/* Calls the notify hook when the driver asked to be interrupted (event
 * index, NO_INTERRUPT, NOTIFY_ON_EMPTY rules of virtio 1.2 2.7.7/2.7.10). */
void virtqueue_notify(VirtQueue *vq);

/* Stops or resumes popping. A stopped queue calls the idle hook as soon
 * as nothing is in flight (at once if already so). */
void virtqueue_set_stopped(VirtQueue *vq, bool stopped);

/* The driver's avail index and used_event as guest memory holds them
 * now (0 when the queue is not ready); for diagnostics. */
uint16_t virtqueue_avail_idx(const VirtQueue *vq);
uint16_t virtqueue_used_event(const VirtQueue *vq);

/* Marks the queue broken with a rate-limited log line. */
void virtqueue_mark_broken(VirtQueue *vq, const char *reason);

/* Copy helpers between an iovec array and a flat buffer; return bytes
 * copied (stops at the shorter of the two). */
size_t iov_to_buf(const struct iovec *iov, unsigned n, size_t offset,
                  void *buf, size_t len);
size_t iov_from_buf(const struct iovec *iov, unsigned n, size_t offset,
                    const void *buf, size_t len);
size_t iov_size(const struct iovec *iov, unsigned n);

#endif
