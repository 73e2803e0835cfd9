/* scsi-hd: the device class, command dispatch, unit attention, state. */
#include "scsi/scsi-hd.h"
#include "scsi/scsi-internal.h"
#include "util/log.h"

#include <stdlib.h>
#include <string.h>

typedef struct HdCmd {
    uint8_t opcode;
    HdCmdFunc *fn;
    bool medium;        /* needs a started unit (SBC-3 4.18) */
} HdCmd;

static const HdCmd hd_cmds[] = {
    { SCSI_OP_TEST_UNIT_READY, hd_cmd_test_unit_ready, false },
    { SCSI_OP_REQUEST_SENSE, hd_cmd_request_sense, false },
    { SCSI_OP_INQUIRY, hd_cmd_inquiry, false },
    { SCSI_OP_REPORT_LUNS, hd_cmd_report_luns, false },
    { SCSI_OP_MODE_SENSE_6, hd_cmd_mode_sense, false },
    { SCSI_OP_MODE_SENSE_10, hd_cmd_mode_sense, false },
    { SCSI_OP_MODE_SELECT_6, hd_cmd_mode_select, false },
    { SCSI_OP_MODE_SELECT_10, hd_cmd_mode_select, false },
    { SCSI_OP_START_STOP_UNIT, hd_cmd_start_stop, false },
    { SCSI_OP_RESERVE_6, hd_cmd_reserve, false },
    { SCSI_OP_RELEASE_6, hd_cmd_release, false },
    { SCSI_OP_READ_CAPACITY_10, hd_cmd_read_capacity_10, false },
    { SCSI_OP_SERVICE_ACTION_IN_16, hd_cmd_service_action_in, false },
    { SCSI_OP_MAINTENANCE_IN, hd_cmd_maintenance_in, false },
    { SCSI_OP_READ_6, hd_cmd_read, true },
    { SCSI_OP_READ_10, hd_cmd_read, true },
    { SCSI_OP_READ_12, hd_cmd_read, true },
    { SCSI_OP_READ_16, hd_cmd_read, true },
    { SCSI_OP_WRITE_6, hd_cmd_write, true },
    { SCSI_OP_WRITE_10, hd_cmd_write, true },
    { SCSI_OP_WRITE_12, hd_cmd_write, true },
    { SCSI_OP_WRITE_16, hd_cmd_write, true },
    { SCSI_OP_VERIFY_10, hd_cmd_verify, true },
    { SCSI_OP_VERIFY_12, hd_cmd_verify, true },
    { SCSI_OP_VERIFY_16, hd_cmd_verify, true },
    { SCSI_OP_WRITE_VERIFY_10, hd_cmd_write_verify, true },
    { SCSI_OP_WRITE_VERIFY_12, hd_cmd_write_verify, true },
    { SCSI_OP_WRITE_VERIFY_16, hd_cmd_write_verify, true },
    { SCSI_OP_COMPARE_AND_WRITE, hd_cmd_compare_and_write, true },
    { SCSI_OP_ORWRITE_16, hd_cmd_orwrite, true },
    { SCSI_OP_PREFETCH_10, hd_cmd_prefetch, true },
    { SCSI_OP_PREFETCH_16, hd_cmd_prefetch, true },
    { SCSI_OP_SYNCHRONIZE_CACHE_10, hd_cmd_sync_cache, true },
    { SCSI_OP_SYNCHRONIZE_CACHE_16, hd_cmd_sync_cache, true },
    { SCSI_OP_UNMAP, hd_cmd_unmap, true },
    { SCSI_OP_WRITE_SAME_10, hd_cmd_write_same, true },
    { SCSI_OP_WRITE_SAME_16, hd_cmd_write_same, true },
};

void hd_reply(ScsiRequest *req, const void *data, size_t len,
              size_t alloc_len)
{
    /* SPC-4 4.2.5.6: never return more than the allocation length. */
    size_t n = len < alloc_len ? len : alloc_len;
    scsi_req_complete_good(req, scsi_req_put_data(req, data, n));
}

void hd_set_unit_attention(ScsiHd *hd, ScsiSense sense)
{
    hd->ua_pending = true;
    hd->ua_key = sense.key;
    hd->ua_asc = sense.asc;
    hd->ua_ascq = sense.ascq;
}

static const HdCmd *hd_find_cmd(uint8_t opcode)
{
    for (size_t i = 0; i < sizeof(hd_cmds) / sizeof(hd_cmds[0]); i++) {
        if (hd_cmds[i].opcode == opcode) {
            return &hd_cmds[i];
        }
    }
    return NULL;
}

/* SAM-5 5.14: a pending unit attention fails any command but INQUIRY,
 * REPORT LUNS and REQUEST SENSE, once. */
static bool hd_report_unit_attention(ScsiHd *hd, ScsiRequest *req)
{
    uint8_t op = req->cdb[0];
    if (!hd->ua_pending || op == SCSI_OP_INQUIRY ||
        op == SCSI_OP_REPORT_LUNS || op == SCSI_OP_REQUEST_SENSE) {
        return false;
    }
    hd->ua_pending = false;
    scsi_req_complete_sense(req, SCSI_SENSE(hd->ua_key, hd->ua_asc,
                                            hd->ua_ascq));
    return true;
}

static void hd_submit(ScsiLun *lun, ScsiRequest *req)
{
    ScsiHd *hd = lun->opaque;
    uint8_t op = req->cdb[0];
    const HdCmd *cmd = hd_find_cmd(op);
    size_t len = scsi_cdb_length(op);

    if (hd_report_unit_attention(hd, req)) {
        return;
    }
    if (!cmd) {
        log_ratelimited(LOG_DEBUG, "scsi-hd %s: unsupported opcode %02x",
                        hd->dev.id, op);
        scsi_req_complete_sense(req, SENSE_INVALID_OPCODE);
        return;
    }
    if (req->cdb_len < len) {
        log_ratelimited(LOG_WARN, "scsi-hd %s: CDB of %u bytes for opcode "
                        "%02x", hd->dev.id, req->cdb_len, op);
        scsi_req_complete_sense(req, SENSE_INVALID_FIELD_IN_CDB);
        return;
    }
    /* SAM-5 5.2: NACA=1 needs ACA, which we do not support. */
    if (req->cdb[len - 1] & 0x04) {
        scsi_req_complete_sense(req, SENSE_INVALID_FIELD_IN_CDB);
        return;
    }
    if (cmd->medium && hd->stopped) {
        scsi_req_complete_sense(req, SENSE_NOT_READY_INIT_REQUIRED);
        return;
    }
    cmd->fn(hd, req);
}

static void hd_cancel(ScsiLun *lun, ScsiRequest *req)
{
    hd_io_cancel(lun->opaque, req);
}

static void hd_reset(ScsiLun *lun, ScsiResetKind kind)
{
    ScsiHd *hd = lun->opaque;
    /* SPC-2 5.5.1: any reset or nexus loss releases RESERVE(6). */
    hd->reserved = false;
    switch (kind) {
    case SCSI_RESET_LUN:
        hd_set_unit_attention(hd, SENSE_UA_BUS_DEVICE_RESET);
        break;
    case SCSI_RESET_I_T_NEXUS:
        hd_set_unit_attention(hd, SENSE_UA_I_T_NEXUS_LOSS);
        break;
    case SCSI_RESET_BUS:
        hd_set_unit_attention(hd, SENSE_UA_POWER_ON_RESET);
        break;
    }
}

static bool hd_attach_loop(ScsiLun *lun, EventLoop *loop, Error **errp)
{
    ScsiHd *hd = lun->opaque;
    return blk_attach_loop(hd->blk, loop, errp);
}

static const ScsiLunOps hd_lun_ops = {
    .submit = hd_submit,
    .cancel = hd_cancel,
    .reset = hd_reset,
    .attach_loop = hd_attach_loop,
};

static bool hd_copy_str(char *dst, size_t cap, const char *src,
                        const char *what, Error **errp)
{
    if (strlen(src) >= cap) {
        error_setg(errp, "%s '%s' is longer than %zu characters", what, src,
                   cap - 1);
        return false;
    }
    for (const char *p = src; *p; p++) {
        if (*p < 0x20 || *p > 0x7e) {
            error_setg(errp, "%s must be printable ASCII", what);
            return false;
        }
    }
    strcpy(dst, src);
    return true;
}

static bool hd_read_strings(ScsiHd *hd, KeyVal *props, Error **errp)
{
    const char *serial, *vendor, *product;
    return keyval_get_str(props, "serial", "", &serial, errp) &&
           keyval_get_str(props, "vendor", "STORMIG", &vendor, errp) &&
           keyval_get_str(props, "product", "STORMIG DISK", &product,
                          errp) &&
           hd_copy_str(hd->serial, sizeof(hd->serial), serial, "serial",
                       errp) &&
           hd_copy_str(hd->vendor, sizeof(hd->vendor), vendor, "vendor",
                       errp) &&
           hd_copy_str(hd->product, sizeof(hd->product), product, "product",
                       errp);
}

static bool hd_read_geometry(ScsiHd *hd, KeyVal *props, Error **errp)
{
    uint32_t bs, dg;
    if (!keyval_get_u32(props, "logical_block_size", 512, &bs, errp) ||
        !keyval_get_u32(props, "discard_granularity", 0, &dg, errp)) {
        return false;
    }
    if (bs != 512 && bs != 4096) {
        error_setg(errp, "logical_block_size must be 512 or 4096");
        return false;
    }
    if (bs < blk_alignment(hd->blk)) {
        error_setg(errp, "logical_block_size %u is below the alignment %u "
                   "of drive '%s'", bs, blk_alignment(hd->blk),
                   blk_name(hd->blk));
        return false;
    }
    if (dg == 0) {
        dg = bs;
    }
    if (dg % bs) {
        error_setg(errp, "discard_granularity must be a multiple of "
                   "logical_block_size");
        return false;
    }
    hd->block_size = bs;
    hd->discard_granularity = dg;
    hd->nb_blocks = blk_size(hd->blk) / bs;
    if (hd->nb_blocks == 0) {
        error_setg(errp, "drive '%s' is smaller than one block",
                   blk_name(hd->blk));
        return false;
    }
    return true;
}

static bool hd_realize_props(ScsiHd *hd, KeyVal *props, uint32_t *lun,
                             const char **bus, Error **errp)
{
    const char *drive;
    if (!keyval_get_str(props, "drive", NULL, &drive, errp) ||
        !keyval_get_str(props, "bus", NULL, bus, errp) ||
        !keyval_get_u32(props, "lun", 0, lun, errp) ||
        !keyval_get_u64(props, "wwn", 0, &hd->wwn, errp) ||
        !keyval_get_bool(props, "write-cache", true, &hd->wce, errp)) {
        return false;
    }
    if (!drive || !*bus) {
        error_setg(errp, "scsi-hd needs drive= and bus=");
        return false;
    }
    hd->blk = blk_by_name(drive);
    if (!hd->blk) {
        error_set(errp, ERROR_CLASS_DEVICE_NOT_FOUND,
                  "drive: no block node '%s'", drive);
        return false;
    }
    if (!blk_claim(hd->blk, hd->dev.id, errp)) {
        hd->blk = NULL;
        return false;
    }
    hd->read_only = blk_is_read_only(hd->blk);
    return hd_read_strings(hd, props, errp) &&
           hd_read_geometry(hd, props, errp);
}

static bool hd_realize(Device *dev, KeyVal *props, Error **errp)
{
    ScsiHd *hd = (ScsiHd *)dev;
    uint32_t lun;
    const char *bus_name = NULL;

    if (!hd_realize_props(hd, props, &lun, &bus_name, errp)) {
        return false;
    }
    hd->bus = bus_name ? scsi_bus_find(bus_name) : NULL;
    if (!hd->bus) {
        error_set(errp, ERROR_CLASS_DEVICE_NOT_FOUND,
                  "bus '%s' names no SCSI controller (a controller must "
                  "come before its disks)", bus_name ? bus_name : "");
        return false;
    }
    if (lun > UINT16_MAX) {
        error_setg(errp, "lun %u out of range", lun);
        return false;
    }
    /* SAM-5 6.3.1: a new LUN reports POWER ON, RESET first. */
    hd_set_unit_attention(hd, SENSE_UA_POWER_ON_RESET);
    scsi_lun_init(&hd->lun, &hd_lun_ops, "scsi-hd", dev->loop, hd);
    if (!blk_attach_loop(hd->blk, dev->loop, errp)) {
        return false;
    }
    return scsi_bus_add_lun(hd->bus, &hd->lun, (uint16_t)lun, errp);
}

static void hd_unrealize(Device *dev)
{
    ScsiHd *hd = (ScsiHd *)dev;
    if (hd->lun.bus) {
        scsi_bus_remove_lun(hd->lun.bus, &hd->lun);
    } else if (hd->lun.ops) {
        /* Realize failed after scsi_lun_init(): nothing was submitted
         * yet, but a LUN is only ever freed drained. Before it, hd->lun
         * is all zeroes and has nothing to drain. */
        scsi_lun_drain(&hd->lun);
    }
    if (hd->blk) {
        blk_unclaim(hd->blk);
    }
}

static bool hd_stop(Device *dev, Error **errp)
{
    ScsiHd *hd = (ScsiHd *)dev;
    scsi_lun_drain(&hd->lun);
    return true;
}

static void hd_query(Device *dev, json_object *info)
{
    ScsiHd *hd = (ScsiHd *)dev;
    json_object_object_add(info, "drive",
                           json_object_new_string(blk_name(hd->blk)));
    json_object_object_add(info, "bus",
                           json_object_new_string(scsi_bus_name(hd->bus)));
    json_object_object_add(info, "lun", json_object_new_int(hd->lun.id));
    json_object_object_add(info, "write-cache",
                           json_object_new_boolean(hd->wce));
}

static const VMStateField hd_vmstate_fields[] = {
    VMSTATE_BOOL(wce, ScsiHd),
    VMSTATE_BOOL(stopped, ScsiHd),
    VMSTATE_BOOL(ua_pending, ScsiHd),
    /* A sense key is 4 bits (SPC-4 4.5.3, Table 28). */
    VMSTATE_UINT8_MAX(ua_key, ScsiHd, 0xf),
    VMSTATE_UINT8(ua_asc, ScsiHd),
    VMSTATE_UINT8(ua_ascq, ScsiHd),
    VMSTATE_END_OF_LIST(),
};

/* Every unit attention this device raises carries the UNIT ATTENTION
 * sense key (SAM-5 5.14); a stream saying otherwise is not ours. */
static bool hd_post_load(void *opaque, int version_id, Error **errp)
{
    ScsiHd *hd = opaque;
    if (hd->ua_pending && hd->ua_key != SCSI_SENSE_KEY_UNIT_ATTENTION) {
        error_setg(errp, "%s: ua_key 0x%x of the pending unit attention is "
                   "not UNIT ATTENTION (0x%x)", hd->dev.id, hd->ua_key,
                   SCSI_SENSE_KEY_UNIT_ATTENTION);
        return false;
    }
    return true;
}

/* What the guest can observe beyond the image: the write cache setting,
 * a stopped unit, and a unit attention not yet reported. */
static const VMStateDescription scsi_hd_vmsd = {
    .name = "scsi-hd",
    .version_id = 1,
    .minimum_version_id = 1,
    .post_load = hd_post_load,
    .fields = hd_vmstate_fields,
};

static const DeviceProperty scsi_hd_properties[] = {
    { "drive", "str", NULL, "block node holding the disk" },
    { "bus", "str", NULL, "id of the SCSI controller (vhost-user-scsi)" },
    { "lun", "uint32", "0", "logical unit number on the bus" },
    { "serial", "str", "\"\"", "unit serial number (VPD page 0x80)" },
    { "vendor", "str", "STORMIG", "INQUIRY vendor identification" },
    { "product", "str", "STORMIG DISK", "INQUIRY product identification" },
    { "wwn", "uint64", "0", "world wide name (0: none)" },
    { "write-cache", "bool", "on", "volatile write cache enabled (WCE)" },
    { "logical_block_size", "uint32", "512", "bytes per block: 512 or 4096" },
    { "discard_granularity", "uint32", "0",
      "UNMAP granularity in bytes (0: the block size)" },
    { NULL, NULL, NULL, NULL },
};

static const DeviceClass scsi_hd_class = {
    .properties = scsi_hd_properties,
    .type = "scsi-hd",
    .description = "emulated SCSI disk (SBC-3) on a block node",
    .instance_size = sizeof(ScsiHd),
    .realize = hd_realize,
    .unrealize = hd_unrealize,
    .stop = hd_stop,
    .vmsd = &scsi_hd_vmsd,
    .query = hd_query,
};

void scsi_hd_register(void)
{
    device_class_register(&scsi_hd_class);
}
