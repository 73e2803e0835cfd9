/* In-process controller transport for tests (see transport-local.h). */
#include "transport-local.h"

#include <stdlib.h>
#include <string.h>

#include "nvme/nvme.h"
#include "util/keyval.h"

typedef struct LocalTransport {
    Transport parent;
    EventLoop *loop;
    NvmeCtrl *ctrl;
    NvmeTransportOps ops;
    unsigned pending_irqs;
    uint64_t *dirty;
    bool logging;
    VfuMigState state;
    ByteBuf mig;
    char *props;
} LocalTransport;

static LocalTransport *lt(Transport *t)
{
    return (LocalTransport *)t;
}

static void *local_translate(void *opaque, uint64_t gpa, uint64_t len,
                             bool is_write, uint64_t *contig)
{
    LocalTransport *l = opaque;
    GuestMem *gm = l->parent.gm;
    if (!gm || gpa >= gm->size) {
        return NULL;
    }
    uint64_t avail = gm->size - gpa;
    *contig = len < avail ? len : avail;
    return gm->base + gpa;
}

static void local_mark_dirty(void *opaque, uint64_t gpa, uint64_t len)
{
    LocalTransport *l = opaque;
    GuestMem *gm = l->parent.gm;
    if (!l->logging || !gm || len == 0 || !gm_range_ok(gm, gpa, len)) {
        return;
    }
    for (uint64_t p = gpa / GM_PAGE; p <= (gpa + len - 1) / GM_PAGE; p++) {
        l->dirty[p / 64] |= 1ull << (p % 64);
    }
}

static void local_raise(void *opaque, uint16_t vector, uint64_t addr,
                        uint32_t data)
{
    lt(opaque)->pending_irqs++;
}

/* The controller comes with the memory map: a destination is set up
 * while the source still has I/O at the shared backends, and a
 * controller can only take them once the source is stopped. */
static bool create_ctrl(LocalTransport *l, Error **errp)
{
    KeyVal *kv = keyval_parse(l->props, NULL, errp);
    l->ctrl = kv ? nvme_ctrl_new(kv, l->loop, &l->ops, l, errp) : NULL;
    keyval_free(kv);
    return l->ctrl != NULL;
}

static bool local_map(Transport *t, GuestMem *gm, Error **errp)
{
    LocalTransport *l = lt(t);
    if (!l->ctrl && !create_ctrl(l, errp)) {
        return false;
    }
    t->gm = gm;
    free(l->dirty);
    l->dirty = calloc(gm_bitmap_words(gm), sizeof(uint64_t));
    if (!l->dirty) {
        error_setg(errp, "out of memory");
        return false;
    }
    return true;
}

static bool local_rd(Transport *t, unsigned region, uint64_t off, void *buf,
                     uint32_t len, Error **errp)
{
    LocalTransport *l = lt(t);
    uint64_t v;
    if (region == VFU_PCI_BAR0_REGION && (len == 4 || len == 8)) {
        v = nvme_mmio_read(l->ctrl, off, len);
    } else if (region == NVME_MSIX_BAR && len == 4) {
        v = nvme_msix_read(l->ctrl, off, len);
    } else {
        error_setg(errp, "local transport: no read of region %u size %u",
                   region, len);
        return false;
    }
    memcpy(buf, &v, len);
    return true;
}

static bool local_wr(Transport *t, unsigned region, uint64_t off,
                     const void *buf, uint32_t len, Error **errp)
{
    LocalTransport *l = lt(t);
    uint64_t v = 0;
    memcpy(&v, buf, len <= 8 ? len : 8);
    if (region == VFU_PCI_BAR0_REGION && (len == 4 || len == 8)) {
        nvme_mmio_write(l->ctrl, off, len, v);
    } else if (region == NVME_MSIX_BAR && len == 4) {
        nvme_msix_write(l->ctrl, off, len, v);
    } else {
        error_setg(errp, "local transport: no write of region %u size %u",
                   region, len);
        return false;
    }
    return true;
}

static bool local_irqs(Transport *t, unsigned nvec, Error **errp)
{
    LocalTransport *l = lt(t);
    nvme_msix_set_control(l->ctrl, true, false);
    for (unsigned v = 0; v < nvec; v++) {
        nvme_msix_write(l->ctrl, NVME_MSIX_TABLE_OFF + v * 16 + 12, 4, 0);
    }
    return true;
}

static unsigned local_wait(Transport *t, int timeout_ms)
{
    LocalTransport *l = lt(t);
    if (!l->pending_irqs) {
        loop_run_once(l->loop, timeout_ms);
    }
    unsigned n = l->pending_irqs;
    l->pending_irqs = 0;
    t->irqs += n;
    return n;
}

static bool save_state(LocalTransport *l, Error **errp)
{
    VMStateSection sec = { "nvme0", 0, &nvme_ctrl_vmsd, l->ctrl };
    bytebuf_reset(&l->mig);
    return vmstate_save_stream(&sec, 1, false, &l->mig, errp);
}

static bool load_state(LocalTransport *l, Error **errp)
{
    VMStateSection sec = { "nvme0", 0, &nvme_ctrl_vmsd, l->ctrl };
    bool ok = vmstate_load_stream(&sec, 1, l->mig.data, l->mig.len, NULL,
                                  errp);
    bytebuf_reset(&l->mig);
    return ok;
}

/* The arcs of the vfio-user v2 state machine this transport offers. */
static bool local_arc(LocalTransport *l, VfuMigState to, Error **errp)
{
    VfuMigState from = l->state;
    bool ok;
    if (from == VFU_MIG_RUNNING && to == VFU_MIG_STOP) {
        ok = nvme_ctrl_quiesce(l->ctrl, errp);
    } else if (from == VFU_MIG_STOP && to == VFU_MIG_RUNNING) {
        ok = nvme_ctrl_resume(l->ctrl, errp);
    } else if (from == VFU_MIG_STOP && to == VFU_MIG_STOP_COPY) {
        ok = save_state(l, errp);
    } else if (from == VFU_MIG_STOP_COPY && to == VFU_MIG_STOP) {
        bytebuf_reset(&l->mig);
        ok = true;
    } else if (from == VFU_MIG_STOP && to == VFU_MIG_RESUMING) {
        bytebuf_reset(&l->mig);
        ok = true;
    } else if (from == VFU_MIG_RESUMING && to == VFU_MIG_STOP) {
        ok = load_state(l, errp);
    } else {
        ok = from == to;
        if (!ok) {
            error_setg(errp, "local transport: no arc %u -> %u", from, to);
        }
    }
    if (ok) {
        l->state = to;
    }
    return ok;
}

static bool local_mig_state(Transport *t, VfuMigState state, Error **errp)
{
    return local_arc(lt(t), state, errp);
}

static bool local_mig_read(Transport *t, ByteBuf *out, Error **errp)
{
    LocalTransport *l = lt(t);
    if (l->state != VFU_MIG_STOP_COPY) {
        error_setg(errp, "local transport: not in STOP_COPY");
        return false;
    }
    bytebuf_append(out, l->mig.data, l->mig.len);
    return !out->failed;
}

static bool local_mig_write(Transport *t, const uint8_t *data, size_t len,
                            Error **errp)
{
    LocalTransport *l = lt(t);
    if (l->state != VFU_MIG_RESUMING) {
        error_setg(errp, "local transport: not in RESUMING");
        return false;
    }
    bytebuf_append(&l->mig, data, len);
    return !l->mig.failed;
}

static bool local_dirty_start(Transport *t, Error **errp)
{
    LocalTransport *l = lt(t);
    memset(l->dirty, 0, gm_bitmap_words(t->gm) * sizeof(uint64_t));
    l->logging = true;
    return true;
}

static bool local_dirty_report(Transport *t, uint64_t *bitmap, Error **errp)
{
    LocalTransport *l = lt(t);
    for (uint64_t i = 0; i < gm_bitmap_words(t->gm); i++) {
        bitmap[i] |= l->dirty[i];
        l->dirty[i] = 0;
    }
    return true;
}

static bool local_dirty_stop(Transport *t, Error **errp)
{
    lt(t)->logging = false;
    return true;
}

static void local_close(Transport *t)
{
    LocalTransport *l = lt(t);
    if (l->ctrl) {
        nvme_ctrl_free(l->ctrl);
    }
    free(l->props);
    bytebuf_free(&l->mig);
    free(l->dirty);
    free(l);
}

static const TransportOps local_ops = {
    .name = "local",
    .map_memory = local_map,
    .region_read = local_rd,
    .region_write = local_wr,
    .setup_irqs = local_irqs,
    .wait_irqs = local_wait,
    .mig_set_state = local_mig_state,
    .mig_read = local_mig_read,
    .mig_write = local_mig_write,
    .dirty_start = local_dirty_start,
    .dirty_report = local_dirty_report,
    .dirty_stop = local_dirty_stop,
    .close = local_close,
};

Transport *transport_local_new(EventLoop *loop, const char *props,
                               Error **errp)
{
    LocalTransport *l = calloc(1, sizeof(*l));
    if (!l || !(l->props = strdup(props))) {
        free(l);
        error_setg(errp, "out of memory");
        return NULL;
    }
    l->parent.ops = &local_ops;
    l->loop = loop;
    l->state = VFU_MIG_RUNNING;
    bytebuf_init(&l->mig);
    l->ops = (NvmeTransportOps){ .translate = local_translate,
                                 .mark_dirty = local_mark_dirty,
                                 .raise_msix = local_raise };
    return &l->parent;
}
