/* QMP commands of scsi-block LUNs (built with libiscsi only). */
#include "daemon/daemon.h"
#include "device/device.h"
#include "migration/runstate.h"
#include "monitor/monitor.h"
#include "scsi/scsi-pr-io.h"
#include "scsi/scsi-pr-lun.h"

#include <string.h>

/*
 * x-scsi-block-probe {"id": DEV, "op": "read"|"write"}: asks the LUN, on
 * this device's own I_T nexus, whether it may read or write now (see
 * scsi_pr_probe_access). It answers what the guest's I/O would get, and
 * on a migration source after the handoff it shows that the nexus the
 * guest used lost the reservation. Only while the VM does not run: the
 * LUN's session is then on the main loop, where this handler runs.
 */
static bool qmp_scsi_block_probe(json_object *args, json_object **ret,
                                 void *opaque, Error **errp)
{
    static const char *const known[] = { "id", "op", NULL };
    const char *id, *op;
    uint8_t status;
    if (!qmp_args_check(args, known, errp) ||
        !qmp_arg_str(args, "id", false, &id, errp) ||
        !qmp_arg_str(args, "op", false, &op, errp)) {
        return false;
    }
    bool write = strcmp(op, "write") == 0;
    if (!write && strcmp(op, "read") != 0) {
        error_setg(errp, "op must be 'read' or 'write', not '%s'", op);
        return false;
    }
    Device *dev = device_find(id);
    ScsiBlock *sb = dev ? scsi_block_from_device(dev) : NULL;
    if (!sb) {
        error_setg(errp, "'%s' is not a scsi-block device", id);
        return false;
    }
    if (runstate_is_running()) {
        error_setg(errp, "x-scsi-block-probe works only while the VM is "
                   "stopped (the guest's requests own the session)");
        return false;
    }
    if (!scsi_pr_probe_access(sb, write, &status, errp)) {
        return false;
    }
    *ret = json_object_new_object();
    json_object_object_add(*ret, "status",
                           json_object_new_string(scsi_pr_status_name(status)));
    json_object_object_add(*ret, "status-code", json_object_new_int(status));
    return true;
}

void daemon_register_scsi_qmp_commands(void)
{
    static const QmpArgInfo args[] = {
        { "id", "str", false },
        { "op", "str", false },
        { NULL, NULL, false },
    };
    qmp_register_command_args("x-scsi-block-probe", qmp_scsi_block_probe,
                              NULL, args);
}
