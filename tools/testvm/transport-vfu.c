/*
 * The vfio-user transport (QEMU docs/interop/vfio-user.rst): guest memory
 * mapped with its memfd (or, with map_without_fd, without one: the device
 * then reads and writes it with DMA_READ / DMA_WRITE requests, answered
 * while this VM waits for a reply or for interrupts), MSI-X through
 * eventfds (SET_IRQS) after enabling it in the device's PCI config space,
 * and the v2 migration protocol.
 */
#include "transport.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "util/log.h"
#include "vfio-user/vfu-client.h"

#define PCI_CAP_PTR     0x34
#define PCI_CAP_ID_MSIX 0x11
#define MSIX_ENABLE     0x8000u
#define MSIX_TABLE_BAR  4           /* the NVMe model's MSI-X BAR */

typedef struct VfuTransport {
    Transport parent;
    VfuClient *c;
    int irq_fds[64 + 1];
    unsigned nvec;
    bool map_without_fd;
} VfuTransport;

static VfuTransport *vt(Transport *t)
{
    return (VfuTransport *)t;
}

static bool vfu_map(Transport *t, GuestMem *gm, Error **errp)
{
    uint32_t prot = VFU_DMA_FLAG_READ | VFU_DMA_FLAG_WRITE;
    t->gm = gm;
    if (vt(t)->map_without_fd) {
        return vfu_client_dma_map_mem(vt(t)->c, 0, gm->size, gm->base, prot,
                                      errp);
    }
    return vfu_client_dma_map(vt(t)->c, 0, gm->size, gm->fd, 0, prot, errp);
}

static bool vfu_rd(Transport *t, unsigned region, uint64_t off, void *buf,
                   uint32_t len, Error **errp)
{
    return vfu_client_region_read(vt(t)->c, region, off, buf, len, errp);
}

static bool vfu_wr(Transport *t, unsigned region, uint64_t off,
                   const void *buf, uint32_t len, Error **errp)
{
    return vfu_client_region_write(vt(t)->c, region, off, buf, len, errp);
}

/* PCI 3.0 section 6.7: walk the capability list for MSI-X (6.8.2). */
static bool find_msix_cap(VfuTransport *v, uint8_t *cap, Error **errp)
{
    uint8_t ptr;
    if (!vfu_client_region_read(v->c, VFU_PCI_CONFIG_REGION, PCI_CAP_PTR,
                                &ptr, 1, errp)) {
        return false;
    }
    for (int hops = 0; ptr >= 0x40 && hops < 48; hops++) {
        uint8_t hdr[2];
        if (!vfu_client_region_read(v->c, VFU_PCI_CONFIG_REGION, ptr, hdr, 2,
                                    errp)) {
            return false;
        }
        if (hdr[0] == PCI_CAP_ID_MSIX) {
            *cap = ptr;
            return true;
        }
        ptr = hdr[1] & 0xfc;
    }
    error_setg(errp, "device has no MSI-X capability");
    return false;
}

static bool enable_msix(VfuTransport *v, unsigned nvec, Error **errp)
{
    uint8_t cap;
    uint16_t ctl;
    if (!find_msix_cap(v, &cap, errp) ||
        !vfu_client_region_read(v->c, VFU_PCI_CONFIG_REGION, cap + 2u, &ctl,
                                2, errp)) {
        return false;
    }
    if ((ctl & 0x7ffu) + 1u < nvec) {
        error_setg(errp, "device offers %u MSI-X vectors, %u needed",
                   (ctl & 0x7ffu) + 1u, nvec);
        return false;
    }
    ctl = (uint16_t)(ctl | MSIX_ENABLE);
    if (!vfu_client_region_write(v->c, VFU_PCI_CONFIG_REGION, cap + 2u, &ctl,
                                 2, errp)) {
        return false;
    }
    /* Table entries: address/data are the VMM's business (eventfds stand
     * for them); clear each Vector Control mask bit. */
    for (unsigned i = 0; i < nvec; i++) {
        uint32_t zero = 0;
        if (!vfu_client_region_write(v->c, MSIX_TABLE_BAR, i * 16u + 12,
                                     &zero, 4, errp)) {
            return false;
        }
    }
    return true;
}

static void close_irq_fds(VfuTransport *v)
{
    for (unsigned i = 0; i < v->nvec; i++) {
        close(v->irq_fds[i]);
    }
    v->nvec = 0;
}

static bool vfu_setup_irqs(Transport *t, unsigned nvec, Error **errp)
{
    VfuTransport *v = vt(t);
    if (nvec == 0 || nvec > sizeof(v->irq_fds) / sizeof(v->irq_fds[0])) {
        error_setg(errp, "%u interrupt vectors not supported", nvec);
        return false;
    }
    close_irq_fds(v);
    for (unsigned i = 0; i < nvec; i++) {
        v->irq_fds[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (v->irq_fds[i] < 0) {
            error_setg_errno(errp, errno, "eventfd");
            close_irq_fds(v);
            return false;
        }
        v->nvec = i + 1;
    }
    return enable_msix(v, nvec, errp) &&
           vfu_client_set_irq_eventfds(v->c, VFU_PCI_MSIX_IRQ, 0, nvec,
                                       v->irq_fds, errp);
}

/* Waits for interrupts; answers the device's DMA requests meanwhile (the
 * socket is part of the wait). */
static unsigned vfu_wait(Transport *t, int timeout_ms)
{
    VfuTransport *v = vt(t);
    struct pollfd pfd[64 + 2];
    for (unsigned i = 0; i < v->nvec; i++) {
        pfd[i] = (struct pollfd){ .fd = v->irq_fds[i], .events = POLLIN };
    }
    pfd[v->nvec] = (struct pollfd){ .fd = vfu_client_fd(v->c),
                                    .events = POLLIN };
    if (poll(pfd, v->nvec + 1, timeout_ms) <= 0) {
        return 0;
    }
    if (pfd[v->nvec].revents) {
        Error *err = NULL;
        if (vfu_client_serve(v->c, 0, &err) < 0) {
            log_ratelimited(LOG_ERROR, "testvm: %s", error_get_pretty(err));
            error_free(err);
        }
    }
    unsigned n = 0;
    for (unsigned i = 0; i < v->nvec; i++) {
        uint64_t cnt;
        if ((pfd[i].revents & POLLIN) &&
            read(v->irq_fds[i], &cnt, sizeof(cnt)) == sizeof(cnt)) {
            n += (unsigned)cnt;
        }
    }
    t->irqs += n;
    return n;
}

static uint64_t vfu_dma_requests(Transport *t)
{
    return vfu_client_dma_requests(vt(t)->c);
}

static void vfu_serve_dma(Transport *t)
{
    Error *err = NULL;
    if (vfu_client_serve(vt(t)->c, 0, &err) < 0) {
        log_ratelimited(LOG_ERROR, "testvm: %s", error_get_pretty(err));
        error_free(err);
    }
}

static bool vfu_mig_state(Transport *t, VfuMigState state, Error **errp)
{
    return vfu_client_mig_set_state(vt(t)->c, state, errp);
}

static bool vfu_mig_read(Transport *t, ByteBuf *out, Error **errp)
{
    return vfu_client_mig_read_all(vt(t)->c, out, errp);
}

static bool vfu_mig_write(Transport *t, const uint8_t *data, size_t len,
                          Error **errp)
{
    return vfu_client_mig_write(vt(t)->c, data, len, errp);
}

static bool vfu_dirty_start(Transport *t, Error **errp)
{
    VfuLoggingRange r = { 0, t->gm->size };
    uint64_t used;
    if (!vfu_client_dirty_start(vt(t)->c, GM_PAGE, &r, 1, &used, errp)) {
        return false;
    }
    if (used != GM_PAGE) {
        error_setg(errp, "device logs %llu-byte pages, %u wanted",
                   (unsigned long long)used, GM_PAGE);
        vfu_client_dirty_stop(vt(t)->c, NULL);
        return false;
    }
    return true;
}

static bool vfu_dirty_report(Transport *t, uint64_t *bitmap, Error **errp)
{
    size_t words = gm_bitmap_words(t->gm);
    uint64_t *tmp = calloc(words, sizeof(uint64_t));
    if (!tmp) {
        error_setg(errp, "out of memory");
        return false;
    }
    bool ok = vfu_client_dirty_report(vt(t)->c, 0, t->gm->size, GM_PAGE, tmp,
                                      words, errp);
    for (size_t i = 0; ok && i < words; i++) {
        bitmap[i] |= tmp[i];
    }
    free(tmp);
    return ok;
}

static bool vfu_dirty_stop(Transport *t, Error **errp)
{
    return vfu_client_dirty_stop(vt(t)->c, errp);
}

static void vfu_close(Transport *t)
{
    VfuTransport *v = vt(t);
    vfu_client_free(v->c);
    close_irq_fds(v);
    free(v);
}

static const TransportOps vfu_ops = {
    .name = "vfio-user",
    .map_memory = vfu_map,
    .serve_dma = vfu_serve_dma,
    .region_read = vfu_rd,
    .region_write = vfu_wr,
    .setup_irqs = vfu_setup_irqs,
    .wait_irqs = vfu_wait,
    .dma_requests = vfu_dma_requests,
    .mig_set_state = vfu_mig_state,
    .mig_read = vfu_mig_read,
    .mig_write = vfu_mig_write,
    .dirty_start = vfu_dirty_start,
    .dirty_report = vfu_dirty_report,
    .dirty_stop = vfu_dirty_stop,
    .close = vfu_close,
};

Transport *transport_vfu_connect(const char *path, Error **errp)
{
    return transport_vfu_connect_opts(path, false, errp);
}

Transport *transport_vfu_connect_opts(const char *path, bool map_without_fd,
                                      Error **errp)
{
    VfuTransport *v = calloc(1, sizeof(*v));
    if (!v) {
        error_setg(errp, "out of memory");
        return NULL;
    }
    v->parent.ops = &vfu_ops;
    v->map_without_fd = map_without_fd;
    v->c = vfu_client_connect(path, errp);
    uint64_t mig_flags = 0;
    /* As a VFIO VMM that migrates does at realize: read the device's
     * migration flags, which tells the device its client takes part in
     * migration (stormigd refuses to migrate for one that does not). */
    if (!v->c || !vfu_client_negotiate(v->c, errp) ||
        !vfu_client_mig_flags(v->c, &mig_flags, errp)) {
        error_prepend(errp, "vfio-user %s: ", path);
        vfu_client_free(v->c);
        free(v);
        return NULL;
    }
    return &v->parent;
}
