/* vfio-user server: interrupts (DEVICE_GET_IRQ_INFO, DEVICE_SET_IRQS) and
 * their delivery through the client's eventfds. */
#include "vfio-user/vfu-int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/log.h"

bool vfu_irqs_init(VfuServer *s, Error **errp)
{
    for (unsigned i = 0; i < VFU_PCI_NUM_IRQS; i++) {
        uint32_t n = s->desc.irqs[i].count;
        if (!n) {
            continue;
        }
        s->irqs[i] = calloc(n, sizeof(VfuIrqLine));
        if (!s->irqs[i]) {
            error_setg(errp, "out of memory");
            return false;
        }
        for (uint32_t j = 0; j < n; j++) {
            s->irqs[i][j].fd = -1;
        }
    }
    return true;
}

static void line_set_fd(VfuIrqLine *l, int fd)
{
    if (l->fd >= 0) {
        close(l->fd);
    }
    l->fd = fd;
}

void vfu_irqs_release(VfuServer *s)
{
    for (unsigned i = 0; i < VFU_PCI_NUM_IRQS; i++) {
        for (uint32_t j = 0; j < s->desc.irqs[i].count; j++) {
            line_set_fd(&s->irqs[i][j], -1);
            s->irqs[i][j].masked = false;
            s->irqs[i][j].pending = false;
        }
    }
}

void vfu_irqs_free(VfuServer *s)
{
    for (unsigned i = 0; i < VFU_PCI_NUM_IRQS; i++) {
        if (s->irqs[i]) {
            for (uint32_t j = 0; j < s->desc.irqs[i].count; j++) {
                line_set_fd(&s->irqs[i][j], -1);
            }
            free(s->irqs[i]);
            s->irqs[i] = NULL;
        }
    }
}

static bool line_fire(VfuIrqLine *l)
{
    if (l->masked) {
        l->pending = true;
        return true;
    }
    if (l->fd < 0) {
        return false;
    }
    uint64_t one = 1;
    /* An eventfd only refuses at its counter's limit: the interrupt is
     * pending there anyway. */
    ssize_t n = write(l->fd, &one, sizeof(one));
    return n == (ssize_t)sizeof(one) || (n < 0 && errno == EAGAIN);
}

bool vfu_irq_trigger(VfuServer *s, unsigned index, unsigned subindex)
{
    if (index >= VFU_PCI_NUM_IRQS || subindex >= s->desc.irqs[index].count) {
        log_ratelimited(LOG_ERROR, "vfio-user: device raised irq %u/%u, "
                        "which it does not have", index, subindex);
        return false;
    }
    return line_fire(&s->irqs[index][subindex]);
}

bool vfu_irq_masked(const VfuServer *s, unsigned index, unsigned subindex)
{
    return index < VFU_PCI_NUM_IRQS &&
           subindex < s->desc.irqs[index].count &&
           s->irqs[index][subindex].masked;
}

VfuStatus vfu_handle_irq_info(VfuServer *s, VfuMsg *m)
{
    VfuIrqInfo in;
    if (m->len < sizeof(in)) {
        log_ratelimited(LOG_WARN, "vfio-user: IRQ_INFO: short payload");
        return EINVAL;
    }
    memcpy(&in, m->payload, sizeof(in));
    if (in.argsz < sizeof(in) || in.index >= VFU_PCI_NUM_IRQS) {
        log_ratelimited(LOG_WARN, "vfio-user: IRQ_INFO: bad index %u",
                        in.index);
        return EINVAL;
    }
    const VfuIrqDesc *d = &s->desc.irqs[in.index];
    VfuIrqInfo out = {
        .argsz = sizeof(out),
        .flags = VFU_IRQ_INFO_EVENTFD |
                 (d->maskable ? VFU_IRQ_INFO_MASKABLE : 0) |
                 (in.index == VFU_PCI_MSI_IRQ || in.index == VFU_PCI_MSIX_IRQ
                  ? VFU_IRQ_INFO_NORESIZE : 0),
        .index = in.index,
        .count = d->count,
    };
    vfu_reply_put(m, &out, sizeof(out));
    return VFU_OK;
}

static bool one_bit(uint32_t v)
{
    return v && !(v & (v - 1));
}

/* Checks a SET_IRQS request against the spec's rules and the device. */
static VfuStatus check_set(const VfuServer *s, const VfuMsg *m,
                           const VfuIrqSet *is)
{
    uint32_t data = is->flags & VFU_IRQ_SET_DATA_MASK;
    uint32_t action = is->flags & VFU_IRQ_SET_ACTION_MASKS;
    if (is->index >= VFU_PCI_NUM_IRQS ||
        (is->flags & ~(VFU_IRQ_SET_DATA_MASK | VFU_IRQ_SET_ACTION_MASKS)) ||
        !one_bit(data) || !one_bit(action) || is->argsz < sizeof(*is)) {
        return EINVAL;
    }
    uint32_t max = s->desc.irqs[is->index].count;
    /* Spec: count and start 0 with DATA_NONE disables the whole index. */
    if (is->count == 0 && !(data == VFU_IRQ_SET_DATA_NONE && is->start == 0)) {
        return EINVAL;
    }
    if (is->start > max || is->count > max - is->start) {
        return EINVAL;
    }
    size_t want = sizeof(*is) +
                  (data == VFU_IRQ_SET_DATA_BOOL ? is->count : 0);
    if (m->len != want) {
        return EINVAL;
    }
    if (data == VFU_IRQ_SET_DATA_EVENTFD) {
        /* Eventfds signal triggers only; none given de-assigns. */
        if (action != VFU_IRQ_SET_ACTION_TRIGGER) {
            return ENOTSUP;
        }
        if (m->nfds && m->nfds != is->count) {
            return EINVAL;
        }
    } else if (m->nfds) {
        return EINVAL;
    }
    if (action != VFU_IRQ_SET_ACTION_TRIGGER &&
        !s->desc.irqs[is->index].maskable) {
        return EINVAL;
    }
    return VFU_OK;
}

static void set_mask(VfuServer *s, unsigned index, unsigned sub, bool mask)
{
    VfuIrqLine *l = &s->irqs[index][sub];
    if (l->masked == mask) {
        return;
    }
    l->masked = mask;
    if (s->ops->irq_mask_changed) {
        s->ops->irq_mask_changed(s->opaque, index, sub, mask);
    }
    if (!mask && l->pending) {
        l->pending = false;
        line_fire(l);
    }
}

static void assign_fds(VfuServer *s, VfuMsg *m, const VfuIrqSet *is)
{
    for (uint32_t i = 0; i < is->count; i++) {
        int fd = -1;
        if (m->nfds) {
            fd = m->fds[i];
            m->fds[i] = -1;
            /* A full pipe posing as an eventfd must not block the loop. */
            int fl = fcntl(fd, F_GETFL);
            if (fl >= 0) {
                fcntl(fd, F_SETFL, fl | O_NONBLOCK);
            }
        }
        line_set_fd(&s->irqs[is->index][is->start + i], fd);
    }
}

VfuStatus vfu_handle_set_irqs(VfuServer *s, VfuMsg *m)
{
    VfuIrqSet is;
    if (m->len < sizeof(is)) {
        log_ratelimited(LOG_WARN, "vfio-user: SET_IRQS: short payload");
        return EINVAL;
    }
    memcpy(&is, m->payload, sizeof(is));
    VfuStatus st = check_set(s, m, &is);
    if (st != VFU_OK) {
        log_ratelimited(LOG_WARN, "vfio-user: SET_IRQS index %u start %u "
                        "count %u flags 0x%x with %zu fds: refused",
                        is.index, is.start, is.count, is.flags, m->nfds);
        return st;
    }
    uint32_t data = is.flags & VFU_IRQ_SET_DATA_MASK;
    uint32_t action = is.flags & VFU_IRQ_SET_ACTION_MASKS;
    if (data == VFU_IRQ_SET_DATA_EVENTFD) {
        assign_fds(s, m, &is);
        return VFU_OK;
    }
    if (is.count == 0) {
        if (action == VFU_IRQ_SET_ACTION_TRIGGER) {
            for (uint32_t i = 0; i < s->desc.irqs[is.index].count; i++) {
                line_set_fd(&s->irqs[is.index][i], -1);
            }
        }
        return VFU_OK;
    }
    const uint8_t *bools = m->payload + sizeof(is);
    for (uint32_t i = 0; i < is.count; i++) {
        if (data == VFU_IRQ_SET_DATA_BOOL && !bools[i]) {
            continue;
        }
        unsigned sub = is.start + i;
        if (action == VFU_IRQ_SET_ACTION_TRIGGER) {
            line_fire(&s->irqs[is.index][sub]);
        } else {
            set_mask(s, is.index, sub, action == VFU_IRQ_SET_ACTION_MASK);
        }
    }
    return VFU_OK;
}
