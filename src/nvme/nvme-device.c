/* stormigd device "nvme": the controller behind a vfio-user server. */
#include "nvme/nvme-device.h"

#include <stdlib.h>
#include <string.h>

#include "device/device.h"
#include "monitor/monitor.h"
#include "nvme/nvme.h"
#include "util/log.h"
#include "vfio-user/vfu-server.h"

/* PCI config space (PCI Local Bus 3.0 section 6.1) with one capability,
 * MSI-X (section 6.8.2), table and PBA in NVME_MSIX_BAR. */
#define CFG_SIZE        256u
#define CFG_MSIX        0x40u
#define PCI_STATUS_CAPS 0x10u

typedef struct NvmeDevice {
    Device parent;
    NvmeCtrl *ctrl;
    VfuServer *server;
    char *socket;
    uint8_t cfg[CFG_SIZE];
    bool vm_running;                /* the daemon's run state */
    bool vfu_running;               /* the VMM's device state */
    bool ctrl_running;
    BlockBackend *claimed[NVME_MAX_NAMESPACES];  /* this device's nodes */
} NvmeDevice;

static NvmeDevice *nd(void *opaque)
{
    return opaque;
}

/* Runs the controller exactly when both the daemon and the VMM say so. */
static bool nvme_dev_sync(NvmeDevice *d, Error **errp)
{
    bool want = d->vm_running && d->vfu_running;
    if (want == d->ctrl_running) {
        return true;
    }
    bool ok = want ? nvme_ctrl_resume(d->ctrl, errp)
                   : nvme_ctrl_quiesce(d->ctrl, errp);
    if (ok) {
        d->ctrl_running = want;
    }
    return ok;
}

static void *t_translate(void *opaque, uint64_t gpa, uint64_t len,
                         bool is_write, uint64_t *contig)
{
    NvmeDevice *d = nd(opaque);
    return d->server ? vfu_dma_translate(d->server, gpa, len, is_write,
                                         contig)
                     : NULL;
}

/* Guest memory the VMM mapped without an fd: copied through the client
 * (vfio-user DMA_READ / DMA_WRITE requests, asynchronous). */
static void *t_dma_start(void *opaque, uint64_t gpa, void *buf, size_t len,
                         bool to_guest, NvmeDmaDone *done, void *ctx)
{
    NvmeDevice *d = nd(opaque);
    Error *err = NULL;
    VfuDmaXfer *x = d->server ? vfu_dma_start(d->server, gpa, buf, len,
                                              to_guest, done, ctx, &err)
                              : NULL;
    if (!x && err) {
        log_ratelimited(LOG_WARN, "nvme: %s", error_get_pretty(err));
        error_free(err);
    }
    return x;
}

static void t_dma_cancel(void *opaque, void *handle)
{
    NvmeDevice *d = nd(opaque);
    if (d->server) {
        vfu_dma_cancel(d->server, handle);
    }
}

static bool t_range_ok(void *opaque, uint64_t gpa, uint64_t len)
{
    NvmeDevice *d = nd(opaque);
    return d->server && vfu_dma_mapped(d->server, gpa, len, false);
}

static void t_mark_dirty(void *opaque, uint64_t gpa, uint64_t len)
{
    NvmeDevice *d = nd(opaque);
    if (d->server) {
        vfu_dma_mark_dirty(d->server, gpa, len);
    }
}

static void t_raise(void *opaque, uint16_t vector, uint64_t addr,
                    uint32_t data)
{
    NvmeDevice *d = nd(opaque);
    if (d->server) {
        vfu_irq_trigger(d->server, VFU_PCI_MSIX_IRQ, vector);
    }
}

static const NvmeTransportOps nvme_dev_transport = {
    .translate = t_translate,
    .dma_start = t_dma_start,
    .dma_cancel = t_dma_cancel,
    .range_ok = t_range_ok,
    .mark_dirty = t_mark_dirty,
    .raise_msix = t_raise,
};

static void cfg_init(NvmeDevice *d)
{
    uint8_t *c = d->cfg;
    unsigned nvec = nvme_msix_nr_vectors(d->ctrl);
    c[0x00] = 0x36; c[0x01] = 0x1b;             /* vendor 0x1b36 */
    c[0x02] = 0x10; c[0x03] = 0x00;             /* device 0x0010 */
    c[0x06] = PCI_STATUS_CAPS;
    c[0x08] = 0x02;                             /* revision */
    c[0x09] = 0x02; c[0x0a] = 0x08; c[0x0b] = 0x01;   /* NVMe class */
    c[0x34] = CFG_MSIX;
    c[CFG_MSIX] = 0x11;                         /* MSI-X, last cap */
    c[CFG_MSIX + 2] = (uint8_t)(nvec - 1);
    c[CFG_MSIX + 3] = (uint8_t)((nvec - 1) >> 8);
    uint32_t table = NVME_MSIX_TABLE_OFF | NVME_MSIX_BAR;
    uint32_t pba = NVME_MSIX_PBA_OFF | NVME_MSIX_BAR;
    memcpy(&c[CFG_MSIX + 4], &table, 4);        /* little endian hosts */
    memcpy(&c[CFG_MSIX + 8], &pba, 4);
}

/* Only the MSI-X Message Control enable and function mask bits (and the
 * command register) are writable; everything else reads back as is. */
static void cfg_write(NvmeDevice *d, uint64_t off, const uint8_t *buf,
                      uint32_t len)
{
    for (uint32_t i = 0; i < len; i++) {
        uint64_t o = off + i;
        if (o == 0x04 || o == 0x05) {
            d->cfg[o] = buf[i];
        } else if (o == CFG_MSIX + 3) {
            d->cfg[o] = (uint8_t)((d->cfg[o] & 0x07) | (buf[i] & 0xc0));
            nvme_msix_set_control(d->ctrl, buf[i] & 0x80, buf[i] & 0x40);
        }
    }
}

static bool reg_access(NvmeCtrl *ctrl, bool msix, uint64_t off, void *buf,
                       uint32_t len, bool is_write)
{
    uint64_t v = 0;
    if (len != 4 && !(len == 8 && !msix)) {
        log_ratelimited(LOG_WARN, "nvme: %u-byte %s access refused", len,
                        msix ? "MSI-X" : "BAR0");
        return false;
    }
    if (is_write) {
        memcpy(&v, buf, len);
        if (msix) {
            nvme_msix_write(ctrl, off, len, v);
        } else {
            nvme_mmio_write(ctrl, off, len, v);
        }
    } else {
        v = msix ? nvme_msix_read(ctrl, off, len)
                 : nvme_mmio_read(ctrl, off, len);
        memcpy(buf, &v, len);
    }
    return true;
}

static bool dev_region_access(void *opaque, unsigned region, uint64_t off,
                              void *buf, uint32_t len, bool is_write)
{
    NvmeDevice *d = opaque;
    switch (region) {
    case VFU_PCI_BAR0_REGION:
        return reg_access(d->ctrl, false, off, buf, len, is_write);
    case NVME_MSIX_BAR:
        return reg_access(d->ctrl, true, off, buf, len, is_write);
    case VFU_PCI_CONFIG_REGION:
        if (is_write) {
            cfg_write(d, off, buf, len);
        } else {
            memcpy(buf, d->cfg + off, len);
        }
        return true;
    }
    return false;
}

static bool dev_quiesce(void *opaque, Error **errp)
{
    nd(opaque)->vfu_running = false;
    return nvme_dev_sync(opaque, errp);
}

/* The quiesced controller's state is final: the state change the VMM
 * asked for goes on. */
static void dev_quiesced(void *opaque)
{
    NvmeDevice *d = nd(opaque);
    d->ctrl_running = false;
    if (d->server) {
        vfu_server_quiesce_done(d->server);
    }
}

/* Commands may wait for the VMM's replies to our DMA_READ / DMA_WRITE:
 * the reply to the state change waits for them instead of the loop. */
static bool dev_quiesce_begin(void *opaque, bool *later, Error **errp)
{
    NvmeDevice *d = nd(opaque);
    d->vfu_running = false;
    *later = false;
    if (!d->ctrl_running ||
        nvme_ctrl_quiesce_begin(d->ctrl, dev_quiesced, d, later)) {
        d->ctrl_running = false;
        return true;
    }
    return false;
}

static bool dev_resume(void *opaque, Error **errp)
{
    nd(opaque)->vfu_running = true;
    return nvme_dev_sync(opaque, errp);
}

static bool dev_save(void *opaque, ByteBuf *out, Error **errp)
{
    NvmeDevice *d = opaque;
    VMStateSection sec = { "nvme", 0, &nvme_ctrl_vmsd, d->ctrl };
    /* The controller must be quiet even when the daemon still runs. */
    return nvme_ctrl_quiesce(d->ctrl, errp) &&
           vmstate_save_stream(&sec, 1, false, out, errp);
}

static bool dev_load(void *opaque, const uint8_t *data, size_t len,
                     Error **errp)
{
    NvmeDevice *d = opaque;
    VMStateSection sec = { "nvme", 0, &nvme_ctrl_vmsd, d->ctrl };
    return vmstate_load_stream(&sec, 1, data, len, NULL, errp);
}

static const VfuDeviceOps nvme_vfu_ops = {
    .region_access = dev_region_access,
    .quiesce = dev_quiesce,
    .quiesce_begin = dev_quiesce_begin,
    .resume = dev_resume,
    .save = dev_save,
    .load = dev_load,
};

static void nvme_dev_unclaim(NvmeDevice *d)
{
    for (unsigned i = 0; i < NVME_MAX_NAMESPACES && d->claimed[i]; i++) {
        blk_unclaim(d->claimed[i]);
        d->claimed[i] = NULL;
    }
}

/* Each namespace's node serves this device alone (its completions run on
 * this controller's loop). Unknown names are left to the controller's own
 * checks. */
static bool nvme_dev_claim(NvmeDevice *d, const char *drives, Error **errp)
{
    char *copy = drives ? strdup(drives) : NULL, *save = NULL;
    unsigned n = 0;
    bool ok = true;
    for (char *tok = copy ? strtok_r(copy, ":", &save) : NULL;
         tok && ok && n < NVME_MAX_NAMESPACES;
         tok = strtok_r(NULL, ":", &save)) {
        BlockBackend *blk = blk_by_name(tok);
        if (blk) {
            ok = blk_claim(blk, d->parent.id, errp);
            if (ok) {
                d->claimed[n++] = blk;
            }
        }
    }
    free(copy);
    return ok;
}

static bool nvme_dev_realize(Device *dev, KeyVal *props, Error **errp)
{
    NvmeDevice *d = (NvmeDevice *)dev;
    const char *socket;
    if (!keyval_get_str(props, "socket", NULL, &socket, errp)) {
        return false;
    }
    if (!socket) {
        error_setg(errp, "nvme needs socket=PATH");
        return false;
    }
    if (!device_claim_socket(dev, socket, errp)) {
        return false;
    }
    d->socket = strdup(socket);
    d->vfu_running = true;
    if (!nvme_dev_claim(d, keyval_get(props, "drive"), errp)) {
        return false;
    }
    d->ctrl = nvme_ctrl_new(props, dev->loop, &nvme_dev_transport, d, errp);
    if (!d->ctrl || !nvme_ctrl_quiesce(d->ctrl, errp)) {
        return false;
    }
    cfg_init(d);
    VfuDeviceDesc desc = { 0 };
    desc.regions[VFU_PCI_BAR0_REGION] =
        (VfuRegionDesc){ NVME_BAR0_SIZE, true, true, .mmap_fd = -1 };
    desc.regions[NVME_MSIX_BAR] =
        (VfuRegionDesc){ NVME_MSIX_BAR_SIZE, true, true, .mmap_fd = -1 };
    desc.regions[VFU_PCI_CONFIG_REGION] =
        (VfuRegionDesc){ CFG_SIZE, true, true, .mmap_fd = -1 };
    desc.irqs[VFU_PCI_MSIX_IRQ] =
        (VfuIrqDesc){ nvme_msix_nr_vectors(d->ctrl), false };
    /* Offered as Linux's vfio-pci does (one each), so a VMM can register
     * its error and device-request eventfds; QEMU warns at every start
     * when the error index is missing. Nothing raises them yet. */
    desc.irqs[VFU_PCI_ERR_IRQ] = (VfuIrqDesc){ 1, false };
    desc.irqs[VFU_PCI_REQ_IRQ] = (VfuIrqDesc){ 1, false };
    VfuServerConfig cfg = { .socket_path = socket, .loop = dev->loop,
                            .desc = &desc, .ops = &nvme_vfu_ops,
                            .opaque = d };
    d->server = vfu_server_new(&cfg, errp);
    return d->server != NULL;
}

static void nvme_dev_unrealize(Device *dev)
{
    NvmeDevice *d = (NvmeDevice *)dev;
    if (d->server) {
        /* Fails the transfers still out (their commands complete with an
         * error); I/O drained below then finds no server. */
        vfu_server_free(d->server);
        d->server = NULL;
    }
    if (d->ctrl) {
        nvme_ctrl_free(d->ctrl);
    }
    nvme_dev_unclaim(d);
    free(d->socket);
}

static bool nvme_dev_stop(Device *dev, Error **errp)
{
    NvmeDevice *d = (NvmeDevice *)dev;
    d->vm_running = false;
    return nvme_dev_sync(d, errp);
}

static bool nvme_dev_start(Device *dev, Error **errp)
{
    NvmeDevice *d = (NvmeDevice *)dev;
    d->vm_running = true;
    return nvme_dev_sync(d, errp);
}

/* The controller's state moves inside the VMM's own migration (vfio-user
 * STOP_COPY / RESUMING): a connected VMM that does not take part in it
 * would migrate the guest and leave the device's state behind. Refused
 * before anything stops. Without a VMM there is nothing to lose. */
static bool nvme_dev_check(Device *dev, Error **errp)
{
    NvmeDevice *d = (NvmeDevice *)dev;
    if (vfu_server_connected(d->server) &&
        !vfu_server_client_migration(d->server)) {
        error_setg(errp, "the VMM connected to %s does not support "
                   "vfio-user migration; its state would be lost",
                   dev->id);
        return false;
    }
    return nvme_ctrl_migration_check(d->ctrl, errp);
}

/* Completions waiting for CQ space, in posting order (tests compare them
 * with the order the guest sees after a migration). */
static json_object *pending_list(NvmeCtrl *ctrl)
{
    NvmeCompletionInfo p[256];
    size_t n = nvme_ctrl_pending_completions(ctrl, p, 256);
    json_object *arr = json_object_new_array();
    for (size_t i = 0; i < n && i < 256; i++) {
        json_object *e = json_object_new_object();
        json_object_object_add(e, "cqid", json_object_new_int(p[i].cqid));
        json_object_object_add(e, "sqid", json_object_new_int(p[i].sqid));
        json_object_object_add(e, "cid", json_object_new_int(p[i].cid));
        json_object_array_add(arr, e);
    }
    return arr;
}

static void nvme_dev_query(Device *dev, json_object *info)
{
    NvmeDevice *d = (NvmeDevice *)dev;
    Error *err = NULL;
    NvmeCtrlStats st;
    nvme_ctrl_get_stats(d->ctrl, &st);
    json_object_object_add(info, "socket", json_object_new_string(d->socket));
    json_object_object_add(info, "vfio-user-state", json_object_new_string(
        vfu_mig_state_name(vfu_server_mig_state(d->server))));
    json_object_object_add(info, "commands-completed",
        json_object_new_int64((int64_t)st.commands_completed));
    json_object_object_add(info, "pending-completions",
                           pending_list(d->ctrl));
    json_object_object_add(info, "vmm-connected", json_object_new_boolean(
        vfu_server_connected(d->server)));
    json_object_object_add(info, "vmm-migration", json_object_new_boolean(
        vfu_server_client_migration(d->server)));
    bool ok = nvme_dev_check(dev, &err);
    json_object_object_add(info, "migratable", json_object_new_boolean(ok));
    if (!ok) {
        json_object_object_add(info, "migration-blocker",
            json_object_new_string(error_get_pretty(err)));
        error_free(err);
    }
}

/*
 * QMP nvme-ns-changed {"id": DEV, "nsid": N}: the host changed namespace
 * N (e.g. resized its image); the controller re-reads its size and raises
 * a Namespace Attribute Changed notice (NVMe 1.4 section 5.2.1), which
 * waits in the device state until the guest has an AER outstanding.
 */
static const DeviceClass nvme_device_class;

static bool qmp_nvme_ns_changed(json_object *args, json_object **ret,
                                void *opaque, Error **errp)
{
    static const char *const known[] = { "id", "nsid", NULL };
    const char *id;
    int64_t nsid;
    if (!qmp_args_check(args, known, errp) ||
        !qmp_arg_str(args, "id", false, &id, errp) ||
        !qmp_arg_int(args, "nsid", false, &nsid, errp)) {
        return false;
    }
    Device *dev = device_find(id);
    if (!dev || dev->cls->realize != nvme_device_class.realize) {
        error_set(errp, ERROR_CLASS_DEVICE_NOT_FOUND,
                  "no nvme device '%s'", id);
        return false;
    }
    if (nsid < 1 || nsid > NVME_MAX_NAMESPACES) {
        error_setg(errp, "nsid %lld out of range", (long long)nsid);
        return false;
    }
    return nvme_ctrl_ns_changed(((NvmeDevice *)dev)->ctrl, (uint32_t)nsid,
                                errp);
}

static const DeviceProperty nvme_device_properties[] = {
    { "socket", "str", NULL, "vfio-user socket path the VMM connects to" },
    { "drive", "str", NULL,
      "block nodes, one namespace each, separated by ':'" },
    { "serial", "str", NULL, "controller serial number, 1-20 characters" },
    { "num-queues", "uint32", "8", "I/O queue pairs offered" },
    { "mqes", "uint32", "1024", "maximum queue entries (2-4096)" },
    { "lbads", "uint32", "9", "LBA data size as a power of two (9 or 12)" },
    { "dstrd", "uint32", "0", "doorbell stride (0-4)" },
    { "wrr", "bool", "off",
      "weighted round robin arbitration (not migratable)" },
    { NULL, NULL, NULL, NULL },
};

static const DeviceClass nvme_device_class = {
    .type = "nvme",
    .description = "NVMe controller served over vfio-user",
    .instance_size = sizeof(NvmeDevice),
    .properties = nvme_device_properties,
    .realize = nvme_dev_realize,
    .unrealize = nvme_dev_unrealize,
    .stop = nvme_dev_stop,
    .start = nvme_dev_start,
    .migration_check = nvme_dev_check,
    .query = nvme_dev_query,
};

void nvme_device_register(void)
{
    device_class_register(&nvme_device_class);
    static const QmpArgInfo args[] = {
        { "id", "str", false },
        { "nsid", "int", false },
        { NULL, NULL, false },
    };
    qmp_register_command_args("nvme-ns-changed", qmp_nvme_ns_changed, NULL,
                              args);
}
