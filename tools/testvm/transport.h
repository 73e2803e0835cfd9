/*
 * How the test VM reaches a PCI-like device: its regions, its MSI-X
 * interrupts, its guest-memory mapping, and the device side of migration
 * (the vfio-user v2 state machine and DMA dirty logging). The NVMe driver
 * only talks to this interface, so the same driver runs over vfio-user or
 * over an in-process controller (unit tests); a vhost-user transport for
 * virtio-scsi sits beside these with its own driver.
 */
#ifndef STORMIG_TESTVM_TRANSPORT_H
#define STORMIG_TESTVM_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guest-mem.h"
#include "util/bytes.h"
#include "util/error.h"
#include "vfio-user/vfio-user-proto.h"

typedef struct Transport Transport;

typedef struct TransportOps {
    const char *name;
    /* Shares guest memory with the device (iova == gpa). */
    bool (*map_memory)(Transport *t, GuestMem *gm, Error **errp);
    /* len is 4 or 8 for registers; region is a VFU_PCI_* index. */
    bool (*region_read)(Transport *t, unsigned region, uint64_t off,
                        void *buf, uint32_t len, Error **errp);
    bool (*region_write)(Transport *t, unsigned region, uint64_t off,
                         const void *buf, uint32_t len, Error **errp);
    /* Enables MSI-X with nvec vectors, each signalled to the VM. */
    bool (*setup_irqs)(Transport *t, unsigned nvec, Error **errp);
    /* Waits up to timeout_ms for an interrupt (or for the in-process
     * device to make progress); returns the number of interrupts seen. */
    unsigned (*wait_irqs)(Transport *t, int timeout_ms);
    /* Guest memory accesses the device made by asking the VM (vfio-user
     * DMA_READ / DMA_WRITE) so far (optional). */
    uint64_t (*dma_requests)(Transport *t);
    /* Answers the device's pending DMA requests without waiting
     * (optional): the VMM calls it during long work of its own, since
     * the device fails a request left unanswered past its deadline. */
    void (*serve_dma)(Transport *t);

    /* Migration, device side. */
    bool (*mig_set_state)(Transport *t, VfuMigState state, Error **errp);
    /* In STOP_COPY: the whole device state. */
    bool (*mig_read)(Transport *t, ByteBuf *out, Error **errp);
    /* In RESUMING: the whole device state. */
    bool (*mig_write)(Transport *t, const uint8_t *data, size_t len,
                      Error **errp);
    bool (*dirty_start)(Transport *t, Error **errp);
    /* ORs the pages the device wrote since the last report into bitmap
     * (one bit per GM_PAGE of guest memory) and clears the device's log. */
    bool (*dirty_report)(Transport *t, uint64_t *bitmap, Error **errp);
    bool (*dirty_stop)(Transport *t, Error **errp);

    void (*close)(Transport *t);
} TransportOps;

struct Transport {
    const TransportOps *ops;
    GuestMem *gm;
    uint64_t irqs;                  /* interrupts seen */
};

bool transport_r32(Transport *t, uint64_t off, uint32_t *v, Error **errp);
bool transport_r64(Transport *t, uint64_t off, uint64_t *v, Error **errp);
bool transport_w32(Transport *t, uint64_t off, uint32_t v, Error **errp);
bool transport_w64(Transport *t, uint64_t off, uint64_t v, Error **errp);
void transport_close(Transport *t);

/* vfio-user client transport on a unix socket (transport-vfu.c). With
 * map_without_fd, guest memory is mapped without its fd and the device
 * reaches it through DMA_READ / DMA_WRITE requests. */
Transport *transport_vfu_connect(const char *path, Error **errp);
Transport *transport_vfu_connect_opts(const char *path, bool map_without_fd,
                                      Error **errp);

#endif
