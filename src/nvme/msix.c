/*
 * MSI-X table and PBA emulation (PCI Local Bus 3.0, 6.8.2). The controller
 * decides whether a vector may fire (enable, function mask, per-vector
 * mask) and keeps masked interrupts pending; the transport delivers.
 */
#include <inttypes.h>
#include <string.h>

#include "nvme/nvme-int.h"
#include "util/log.h"

#define MSIX_ENTRY_SIZE 16
#define MSIX_VEC_MASKED 1u

unsigned nvme_msix_nr_vectors(const NvmeCtrl *ctrl)
{
    unsigned n = ctrl->num_queues + 1;
    return n > NVME_MAX_VECTORS ? NVME_MAX_VECTORS : n;
}

void nvme_msix_reset(NvmeCtrl *ctrl)
{
    memset(ctrl->msix, 0, sizeof(ctrl->msix));
    for (unsigned i = 0; i < NVME_MAX_VECTORS; i++) {
        ctrl->msix[i].ctrl = MSIX_VEC_MASKED;   /* 6.8.2.9: masked at reset */
    }
    memset(ctrl->msix_pba, 0, sizeof(ctrl->msix_pba));
    memset(ctrl->irq_due, 0, sizeof(ctrl->irq_due));
    ctrl->irq_any_due = false;
    ctrl->msix_enabled = false;
    ctrl->msix_func_mask = false;
    ctrl->msix_table_in_use = false;
}

static bool msix_pending(const NvmeCtrl *ctrl, unsigned v)
{
    return ctrl->msix_pba[v / 8] & (1u << (v % 8));
}

static void msix_set_pending(NvmeCtrl *ctrl, unsigned v, bool on)
{
    if (on) {
        ctrl->msix_pba[v / 8] |= (uint8_t)(1u << (v % 8));
    } else {
        ctrl->msix_pba[v / 8] &= (uint8_t)~(1u << (v % 8));
    }
}

static bool msix_masked(const NvmeCtrl *ctrl, unsigned v)
{
    return ctrl->msix_func_mask ||
           (ctrl->msix_table_in_use &&
            (ctrl->msix[v].ctrl & MSIX_VEC_MASKED));
}

static void msix_fire(NvmeCtrl *ctrl, unsigned v)
{
    const NvmeMsixEntry *e = &ctrl->msix[v];
    ctrl->stats.irqs_raised++;
    ctrl->ops->raise_msix(ctrl->opaque, (uint16_t)v,
                          ((uint64_t)e->addr_hi << 32) | e->addr_lo, e->data);
}

void nvme_msix_notify(NvmeCtrl *ctrl, uint16_t vector)
{
    if (vector >= nvme_msix_nr_vectors(ctrl) || !ctrl->msix_enabled) {
        return;
    }
    if (msix_masked(ctrl, vector)) {
        msix_set_pending(ctrl, vector, true);
        return;
    }
    msix_fire(ctrl, vector);
}

void nvme_msix_notify_later(NvmeCtrl *ctrl, uint16_t vector)
{
    if (vector >= NVME_MAX_VECTORS) {
        return;
    }
    ctrl->irq_due[vector / 8] |= (uint8_t)(1u << (vector % 8));
    ctrl->irq_any_due = true;
}

void nvme_msix_fire_due(NvmeCtrl *ctrl)
{
    if (!ctrl->irq_any_due) {
        return;
    }
    ctrl->irq_any_due = false;
    for (unsigned v = 0; v < NVME_MAX_VECTORS; v++) {
        if (ctrl->irq_due[v / 8] & (1u << (v % 8))) {
            ctrl->irq_due[v / 8] &= (uint8_t)~(1u << (v % 8));
            nvme_msix_notify(ctrl, (uint16_t)v);
        }
    }
}

/* Delivers what became unmasked (6.8.2.9: pending bit then message). */
static void msix_deliver_unmasked(NvmeCtrl *ctrl)
{
    if (!ctrl->msix_enabled) {
        return;
    }
    for (unsigned v = 0; v < nvme_msix_nr_vectors(ctrl); v++) {
        if (msix_pending(ctrl, v) && !msix_masked(ctrl, v)) {
            msix_set_pending(ctrl, v, false);
            msix_fire(ctrl, v);
        }
    }
}

void nvme_msix_set_control(NvmeCtrl *ctrl, bool enabled, bool func_mask)
{
    ctrl->msix_enabled = enabled;
    ctrl->msix_func_mask = func_mask;
    msix_deliver_unmasked(ctrl);
}

static bool msix_access_ok(NvmeCtrl *ctrl, uint64_t offset, unsigned size,
                           uint64_t *base, uint64_t *len)
{
    unsigned n = nvme_msix_nr_vectors(ctrl);
    if ((size != 4 && size != 8) || (offset & (size - 1))) {
        return false;
    }
    if (offset >= NVME_MSIX_PBA_OFF) {
        *base = NVME_MSIX_PBA_OFF;
        *len = ((n + 63) / 64) * 8;
    } else {
        *base = NVME_MSIX_TABLE_OFF;
        *len = (uint64_t)n * MSIX_ENTRY_SIZE;
    }
    return offset >= *base && offset - *base + size <= *len;
}

static uint32_t msix_read32(NvmeCtrl *ctrl, uint64_t off)
{
    if (off >= NVME_MSIX_PBA_OFF) {
        off -= NVME_MSIX_PBA_OFF;
        uint32_t v = 0;
        for (unsigned b = 0; b < 4 && off + b < sizeof(ctrl->msix_pba); b++) {
            v |= (uint32_t)ctrl->msix_pba[off + b] << (8 * b);
        }
        return v;
    }
    const uint32_t *e = &ctrl->msix[off / MSIX_ENTRY_SIZE].addr_lo;
    return e[(off % MSIX_ENTRY_SIZE) / 4];
}

uint64_t nvme_msix_read(NvmeCtrl *ctrl, uint64_t offset, unsigned size)
{
    uint64_t base, len;
    if (!msix_access_ok(ctrl, offset, size, &base, &len)) {
        log_ratelimited(LOG_WARN, "nvme %s: bad MSI-X read at 0x%" PRIx64,
                        ctrl->serial, offset);
        return 0;
    }
    uint64_t v = msix_read32(ctrl, offset);
    if (size == 8) {
        v |= (uint64_t)msix_read32(ctrl, offset + 4) << 32;
    }
    return v;
}

static void msix_write32(NvmeCtrl *ctrl, uint64_t off, uint32_t v)
{
    uint32_t *e = &ctrl->msix[off / MSIX_ENTRY_SIZE].addr_lo;
    unsigned word = (off % MSIX_ENTRY_SIZE) / 4;
    e[word] = word == 3 ? (v & MSIX_VEC_MASKED) : v;
}

void nvme_msix_write(NvmeCtrl *ctrl, uint64_t offset, unsigned size,
                     uint64_t value)
{
    uint64_t base, len;
    if (!msix_access_ok(ctrl, offset, size, &base, &len) ||
        base == NVME_MSIX_PBA_OFF) {
        /* 6.8.2.10: the PBA is read only. */
        log_ratelimited(LOG_WARN, "nvme %s: bad MSI-X write at 0x%" PRIx64,
                        ctrl->serial, offset);
        return;
    }
    ctrl->msix_table_in_use = true;
    msix_write32(ctrl, offset, (uint32_t)value);
    if (size == 8) {
        msix_write32(ctrl, offset + 4, (uint32_t)(value >> 32));
    }
    msix_deliver_unmasked(ctrl);
}
