/* vhost-user message handlers (docs/interop/vhost-user.rst, "Front-end
 * message types"). Run on the main loop; data-path state changes go
 * through vu_run_data(). */
#include "vhost-user/vhost-user-int.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

static VuResult violation(VhostUserDev *dev, const char *reason)
{
    dev->close_reason = reason;
    return VU_CLOSE;
}

static VuResult reply_u64(VhostUserMsg *msg, uint64_t v)
{
    msg->size = 8;
    msg->payload.u64 = v;
    return VU_REPLY;
}

static int take_fd(VhostUserMsg *msg, unsigned i)
{
    int fd = msg->fds[i];
    msg->fds[i] = -1;
    return fd;
}

/* Resets everything negotiated (new connection, RESET_OWNER). Main loop;
 * the rings must already be torn down. */
void vu_reset_state(VhostUserDev *dev)
{
    const VhostUserDevConfig *c = &dev->cfg;
    dev->offered_features = BIT_ULL(VIRTIO_F_VERSION_1) |
        BIT_ULL(VIRTIO_RING_F_INDIRECT_DESC) |
        BIT_ULL(VIRTIO_RING_F_EVENT_IDX) |
        BIT_ULL(VIRTIO_F_NOTIFY_ON_EMPTY) |
        BIT_ULL(VHOST_USER_F_PROTOCOL_FEATURES) | c->device_features;
    dev->offered_protocol = BIT_ULL(VHOST_USER_PROTOCOL_F_MQ) |
        BIT_ULL(VHOST_USER_PROTOCOL_F_REPLY_ACK) |
        BIT_ULL(VHOST_USER_PROTOCOL_F_RESET_DEVICE);
    if (c->dirty_log) {
        /* Without these QEMU blocks migration ("vhost lacks
         * VHOST_F_LOG_ALL"), which is what dirty-log=off is for. */
        dev->offered_features |= BIT_ULL(VHOST_F_LOG_ALL);
        dev->offered_protocol |= BIT_ULL(VHOST_USER_PROTOCOL_F_LOG_SHMFD);
    }
    dev->features = dev->protocol_features = 0;
    dev->features_set = false;
    vu_run_data(dev, vu_apply_log, dev);
    vu_unmap_all(dev->maps, dev->nmaps);
    dev->nmaps = 0;
    memset(&dev->mem.regions, 0, sizeof(dev->mem.regions));
    dev->mem.nregions = 0;
    vu_unmap_all(dev->new_maps, dev->new_nmaps);
    dev->new_nmaps = 0;
    vu_unmap_all(&dev->log_map, 1);
    dev->log_base = NULL;
    dev->log_size = 0;
    if (dev->log_fd >= 0) {
        close(dev->log_fd);
        dev->log_fd = -1;
    }
}

/* ---- features ---- */

static void apply_features(void *opaque)
{
    VhostUserDev *dev = opaque;
    for (unsigned i = 0; i < dev->cfg.num_queues; i++) {
        virtqueue_set_features(&dev->queues[i].vq, dev->features);
    }
    vu_apply_log(dev);
}

static VuResult h_set_features(VhostUserDev *dev, VhostUserMsg *msg)
{
    uint64_t f = msg->payload.u64;
    if (f & ~dev->offered_features) {
        return violation(dev, "SET_FEATURES acks features never offered");
    }
    dev->features = f;
    dev->features_set = true;
    vu_run_data(dev, apply_features, dev);
    return VU_DONE;
}

static VuResult h_set_protocol_features(VhostUserDev *dev, VhostUserMsg *msg)
{
    if (msg->payload.u64 & ~dev->offered_protocol) {
        return violation(dev, "SET_PROTOCOL_FEATURES acks unknown features");
    }
    dev->protocol_features = msg->payload.u64;
    return VU_DONE;
}

/* ---- memory table ---- */

/*
 * A front end that shrinks the file behind one of our mappings makes our
 * next access there fault with SIGBUS, so its size is checked once at map
 * time and must then stay. A memfd or tmpfs file must be sealed against
 * shrinking (F_SEAL_SHRINK): QEMU's memory-backend-memfd (seal=on by
 * default) and its dirty log memfd are. hugetlbfs files
 * (memory-backend-file on /dev/hugepages) cannot be sealed and are taken
 * on trust (docs/design.md, "Guest memory a front end can shrink").
 */
static bool fd_cannot_shrink(int fd)
{
    int seals = fcntl(fd, F_GET_SEALS);
    if (seals >= 0 && (seals & F_SEAL_SHRINK)) {
        return true;
    }
    struct statfs sfs;
    return fstatfs(fd, &sfs) == 0 && sfs.f_type == HUGETLBFS_MAGIC;
}

static bool map_region(const VhostUserMemRegion *r, int fd, VuMapping *m,
                       GuestRegion *g, const char **why)
{
    struct stat st;
    uint64_t end = r->mmap_offset + r->memory_size;
    if (r->memory_size == 0 || end < r->mmap_offset || end > SIZE_MAX) {
        *why = "memory region size overflows";
        return false;
    }
    /* A region past the end of its file would fault (SIGBUS) on access. */
    if (fstat(fd, &st) < 0 || (uint64_t)st.st_size < end) {
        *why = "memory region beyond the end of its file";
        return false;
    }
    if (!fd_cannot_shrink(fd)) {
        *why = "memory region fd not sealed against shrinking "
               "(F_SEAL_SHRINK): use a sealed memfd or hugetlbfs";
        return false;
    }
    void *p = mmap(NULL, end, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        *why = "cannot map a memory region";
        return false;
    }
    m->addr = p;
    m->len = end;
    *g = (GuestRegion){ r->guest_phys_addr, r->memory_size,
                        r->userspace_addr, (uint8_t *)p + r->mmap_offset };
    return true;
}

static void install_mem(void *opaque)
{
    VhostUserDev *dev = opaque;
    memcpy(dev->mem.regions, dev->new_mem.regions, sizeof(dev->mem.regions));
    dev->mem.nregions = dev->new_mem.nregions;
    for (unsigned i = 0; i < dev->cfg.num_queues; i++) {
        VuQueue *q = &dev->queues[i];
        if (q->vq.num && q->vq.desc_gpa | q->vq.avail_gpa | q->vq.used_gpa) {
            /* Rings that no longer map simply stop being ready. */
            virtqueue_map_rings(&q->vq);
        }
    }
}

static void swap_mem(VhostUserDev *dev)
{
    VuMapping old[GUEST_MEM_MAX_REGIONS];
    unsigned nold = dev->nmaps;
    memcpy(old, dev->maps, sizeof(old));
    vu_run_data(dev, install_mem, dev);
    memcpy(dev->maps, dev->new_maps, sizeof(dev->maps));
    dev->nmaps = dev->new_nmaps;
    dev->new_nmaps = 0;
    vu_unmap_all(old, nold);
}

static void mem_table_drained(VhostUserDev *dev)
{
    swap_mem(dev);
    vu_finish_deferred(dev, VU_DONE);
}

static bool any_queue_started(VhostUserDev *dev)
{
    for (unsigned i = 0; i < dev->cfg.num_queues; i++) {
        if (dev->queues[i].started) {
            return true;
        }
    }
    return false;
}

static VuResult h_set_mem_table(VhostUserDev *dev, VhostUserMsg *msg)
{
    const VhostUserMemory *m = &msg->payload.memory;
    const char *why = NULL;
    vu_unmap_all(dev->new_maps, dev->new_nmaps);
    dev->new_nmaps = 0;
    memset(&dev->new_mem, 0, sizeof(dev->new_mem));
    for (unsigned i = 0; i < m->nregions; i++) {
        if (!map_region(&m->regions[i], msg->fds[i], &dev->new_maps[i],
                        &dev->new_mem.regions[i], &why)) {
            break;
        }
        dev->new_nmaps = i + 1;
    }
    dev->new_mem.nregions = dev->new_nmaps;
    if (!why) {
        why = guest_mem_check_regions(dev->new_mem.regions,
                                      dev->new_mem.nregions);
    }
    if (why) {
        vu_unmap_all(dev->new_maps, dev->new_nmaps);
        dev->new_nmaps = 0;
        return violation(dev, why);
    }
    if (any_queue_started(dev)) {
        /* Chains in flight point into the old mapping: drain first. */
        vu_begin_drain(dev, -1, mem_table_drained);
        return VU_DEFER;
    }
    swap_mem(dev);
    return VU_DONE;
}

/* ---- dirty log ---- */

static VuResult h_set_log_base(VhostUserDev *dev, VhostUserMsg *msg)
{
    const VhostUserLog *l = &msg->payload.log;
    if (!(dev->protocol_features &
          BIT_ULL(VHOST_USER_PROTOCOL_F_LOG_SHMFD))) {
        return violation(dev, "SET_LOG_BASE without LOG_SHMFD");
    }
    uint64_t end = l->mmap_offset + l->mmap_size;
    struct stat st;
    int fd = msg->fds[0];
    if (l->mmap_size == 0 || end < l->mmap_offset || end > SIZE_MAX ||
        fstat(fd, &st) < 0 || (uint64_t)st.st_size < end) {
        return violation(dev, "bad dirty log size");
    }
    if (!fd_cannot_shrink(fd)) {
        return violation(dev, "dirty log fd not sealed against shrinking "
                              "(F_SEAL_SHRINK)");
    }
    void *p = mmap(NULL, end, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        return violation(dev, "cannot map the dirty log");
    }
    VuMapping old = dev->log_map;
    dev->log_map = (VuMapping){ p, end };
    dev->log_base = (uint8_t *)p + l->mmap_offset;
    dev->log_size = l->mmap_size;
    vu_install_written(dev, l->mmap_size);     /* applies the log too */
    vu_unmap_all(&old, 1);
    /* vhost-user.rst: with LOG_SHMFD the back end replies once mapped. */
    return reply_u64(msg, 0);
}

static VuResult h_set_log_fd(VhostUserDev *dev, VhostUserMsg *msg)
{
    if (dev->log_fd >= 0) {
        close(dev->log_fd);
    }
    dev->log_fd = take_fd(msg, 0);
    return VU_DONE;
}

/* ---- rings ---- */

static VuQueue *queue_of(VhostUserDev *dev, uint64_t index)
{
    return index < dev->cfg.num_queues ? &dev->queues[index] : NULL;
}

typedef struct RingOp {
    VuQueue *q;
    const VhostUserMsg *msg;
    uint64_t gpa[3];
    const char *err;
    int fd;
} RingOp;

static void ring_set_num(void *opaque)
{
    RingOp *op = opaque;
    if (!virtqueue_set_num(&op->q->vq, op->msg->payload.state.num)) {
        op->err = "queue size is not a power of two up to 32768";
    }
}

static VuResult h_set_vring_num(VhostUserDev *dev, VhostUserMsg *msg)
{
    RingOp op = { .q = queue_of(dev, msg->payload.state.index), .msg = msg };
    if (!op.q) {
        return violation(dev, "vring index out of range");
    }
    if (op.q->started) {
        return violation(dev, "SET_VRING_NUM on a started ring");
    }
    vu_run_data(dev, ring_set_num, &op);
    return op.err ? violation(dev, op.err) : VU_DONE;
}

static void ring_set_addr(void *opaque)
{
    RingOp *op = opaque;
    VirtQueue *vq = &op->q->vq;
    const VhostUserVringAddr *a = &op->msg->payload.addr;
    virtqueue_set_addr(vq, op->gpa[0], op->gpa[1], op->gpa[2]);
    vq->log_used = a->flags & (1u << VHOST_VRING_F_LOG);
    vq->used_log_gpa = a->log_guest_addr;
    op->err = virtqueue_map_rings(vq);
    vu_queue_update(op->q);
}

static VuResult h_set_vring_addr(VhostUserDev *dev, VhostUserMsg *msg)
{
    const VhostUserVringAddr *a = &msg->payload.addr;
    RingOp op = { .q = queue_of(dev, a->index), .msg = msg };
    if (!op.q) {
        return violation(dev, "vring index out of range");
    }
    if (a->flags & ~(1u << VHOST_VRING_F_LOG)) {
        return violation(dev, "unknown vring address flags");
    }
    uint64_t num = op.q->vq.num;
    if (num == 0) {
        return violation(dev, "SET_VRING_ADDR before SET_VRING_NUM");
    }
    /* The addresses are the front end's virtual addresses (vhost-user.rst
     * "Vring address description"); each ring must lie in one region. */
    if (!guest_mem_uva_ptr(&dev->mem, a->desc_user_addr, 16 * num,
                           &op.gpa[0]) ||
        !guest_mem_uva_ptr(&dev->mem, a->avail_user_addr, 6 + 2 * num,
                           &op.gpa[1]) ||
        !guest_mem_uva_ptr(&dev->mem, a->used_user_addr, 6 + 8 * num,
                           &op.gpa[2])) {
        return violation(dev, "ring address outside the memory table");
    }
    vu_run_data(dev, ring_set_addr, &op);
    return op.err ? violation(dev, op.err) : VU_DONE;
}

static void ring_set_base(void *opaque)
{
    RingOp *op = opaque;
    virtqueue_set_base(&op->q->vq, (uint16_t)op->msg->payload.state.num);
}

static VuResult h_set_vring_base(VhostUserDev *dev, VhostUserMsg *msg)
{
    RingOp op = { .q = queue_of(dev, msg->payload.state.index), .msg = msg };
    if (!op.q) {
        return violation(dev, "vring index out of range");
    }
    if (op.q->started) {
        return violation(dev, "SET_VRING_BASE on a started ring");
    }
    if (msg->payload.state.num > UINT16_MAX) {
        return violation(dev, "vring base out of range for a split ring");
    }
    vu_run_data(dev, ring_set_base, &op);
    return VU_DONE;
}

static void ring_stop(void *opaque)
{
    RingOp *op = opaque;
    VuQueue *q = op->q;
    if (q->kick_fd >= 0) {
        loop_del_fd(q->dev->data_loop, q->kick_fd);
        close(q->kick_fd);
        q->kick_fd = -1;
    }
    q->started = false;
    vu_queue_update(q);
}

static void vring_base_drained(VhostUserDev *dev)
{
    VhostUserMsg *msg = &dev->pending;
    RingOp op = { .q = &dev->queues[msg->payload.state.index], .msg = msg };
    vu_run_data(dev, ring_stop, &op);
    /* Every popped chain was pushed, so last_avail_idx is where the next
     * owner of the ring resumes. */
    msg->payload.state.num = op.q->vq.last_avail_idx;
    msg->size = sizeof(msg->payload.state);
    vu_finish_deferred(dev, VU_REPLY);
    vu_rings_changed(dev);
}

static VuResult h_get_vring_base(VhostUserDev *dev, VhostUserMsg *msg)
{
    if (!queue_of(dev, msg->payload.state.index)) {
        return violation(dev, "vring index out of range");
    }
    /* vhost-user.rst "Starting and stopping rings": GET_VRING_BASE stops
     * the ring; reply only when nothing is in flight. */
    vu_begin_drain(dev, (int)msg->payload.state.index, vring_base_drained);
    return VU_DEFER;
}

static void ring_set_fd(void *opaque)
{
    RingOp *op = opaque;
    VuQueue *q = op->q;
    Error *err = NULL;
    switch (op->msg->request) {
    case VHOST_USER_SET_VRING_KICK:
        if (!vu_queue_set_kick(q, op->fd, &err)) {
            op->err = "cannot watch the kick eventfd";
            error_free(err);
            return;
        }
        q->started = true;
        /* Without PROTOCOL_FEATURES a ring is enabled once started. */
        if (!(q->dev->features & BIT_ULL(VHOST_USER_F_PROTOCOL_FEATURES))) {
            q->enabled = true;
        }
        vu_queue_update(q);
        break;
    case VHOST_USER_SET_VRING_CALL:
        if (q->call_fd >= 0) {
            close(q->call_fd);
        }
        q->call_fd = op->fd;
        if (q->started) {
            /* A running ring may have signalled completions on the old
             * fd, or on none: QEMU starts and enables a ring before it
             * sends the call fd, and swaps the fd when the guest masks or
             * unmasks the queue's vector, without waiting for us and
             * without looking at the old fd again. Interrupt once on the
             * new fd so the driver reads the used ring; drivers handle
             * spurious interrupts (virtio 1.2 2.7.7.2). */
            vu_queue_call(q);
        }
        break;
    default:
        if (q->err_fd >= 0) {
            close(q->err_fd);
        }
        q->err_fd = op->fd;
        break;
    }
}

static VuResult h_set_vring_fd(VhostUserDev *dev, VhostUserMsg *msg)
{
    uint64_t v = msg->payload.u64;
    RingOp op = { .q = queue_of(dev, v & VHOST_USER_VRING_IDX_MASK),
                  .msg = msg, .fd = -1 };
    if (v & ~(VHOST_USER_VRING_IDX_MASK | VHOST_USER_VRING_NOFD_MASK)) {
        return violation(dev, "unknown bits in a vring fd message");
    }
    if (!op.q) {
        return violation(dev, "vring index out of range");
    }
    if (msg->nfds) {
        op.fd = take_fd(msg, 0);
    }
    if (msg->request == VHOST_USER_SET_VRING_KICK && op.fd < 0) {
        return violation(dev, "polling rings (no kick fd) unsupported");
    }
    vu_run_data(dev, ring_set_fd, &op);
    if (op.err) {
        return violation(dev, op.err);
    }
    if (msg->request == VHOST_USER_SET_VRING_KICK) {
        vu_rings_changed(dev);
    }
    return VU_DONE;
}

static void ring_set_enable(void *opaque)
{
    RingOp *op = opaque;
    op->q->enabled = op->msg->payload.state.num;
    vu_queue_update(op->q);
}

static VuResult h_set_vring_enable(VhostUserDev *dev, VhostUserMsg *msg)
{
    RingOp op = { .q = queue_of(dev, msg->payload.state.index), .msg = msg };
    if (!op.q) {
        return violation(dev, "vring index out of range");
    }
    if (msg->payload.state.num > 1) {
        return violation(dev, "SET_VRING_ENABLE value is not 0 or 1");
    }
    vu_run_data(dev, ring_set_enable, &op);
    return VU_DONE;
}

/* ---- resets ---- */

static void teardown_queues(void *opaque)
{
    VhostUserDev *dev = opaque;
    for (unsigned i = 0; i < dev->cfg.num_queues; i++) {
        vu_queue_teardown(&dev->queues[i]);
    }
}

static void reset_drained(VhostUserDev *dev)
{
    vu_run_data(dev, teardown_queues, dev);
    if (dev->pending.request == VHOST_USER_RESET_OWNER) {
        uint64_t proto = dev->protocol_features;
        vu_reset_state(dev);
        dev->protocol_features = proto;
    }
    vu_finish_deferred(dev, VU_DONE);
    vu_rings_changed(dev);
}

static VuResult h_reset(VhostUserDev *dev, VhostUserMsg *msg)
{
    vu_begin_drain(dev, -1, reset_drained);
    return VU_DEFER;
}

VuResult vu_dispatch(VhostUserDev *dev, VhostUserMsg *msg)
{
    switch (msg->request) {
    case VHOST_USER_GET_FEATURES:
        return reply_u64(msg, dev->offered_features);
    case VHOST_USER_SET_FEATURES:
        return h_set_features(dev, msg);
    case VHOST_USER_GET_PROTOCOL_FEATURES:
        return reply_u64(msg, dev->offered_protocol);
    case VHOST_USER_SET_PROTOCOL_FEATURES:
        return h_set_protocol_features(dev, msg);
    case VHOST_USER_SET_OWNER:
        return VU_DONE;
    case VHOST_USER_RESET_OWNER:
    case VHOST_USER_RESET_DEVICE:
        return h_reset(dev, msg);
    case VHOST_USER_GET_QUEUE_NUM:
        return reply_u64(msg, dev->cfg.num_queues);
    case VHOST_USER_SET_MEM_TABLE:
        return h_set_mem_table(dev, msg);
    case VHOST_USER_SET_LOG_BASE:
        return h_set_log_base(dev, msg);
    case VHOST_USER_SET_LOG_FD:
        return h_set_log_fd(dev, msg);
    case VHOST_USER_SET_VRING_NUM:
        return h_set_vring_num(dev, msg);
    case VHOST_USER_SET_VRING_ADDR:
        return h_set_vring_addr(dev, msg);
    case VHOST_USER_SET_VRING_BASE:
        return h_set_vring_base(dev, msg);
    case VHOST_USER_GET_VRING_BASE:
        return h_get_vring_base(dev, msg);
    case VHOST_USER_SET_VRING_KICK:
    case VHOST_USER_SET_VRING_CALL:
    case VHOST_USER_SET_VRING_ERR:
        return h_set_vring_fd(dev, msg);
    case VHOST_USER_SET_VRING_ENABLE:
        return h_set_vring_enable(dev, msg);
    default:
        return violation(dev, "unsupported request");
    }
}
