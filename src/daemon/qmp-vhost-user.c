/* QMP commands of vhost-user devices (test and diagnostic, x- prefix). */
#include "daemon/daemon.h"
#include "device/device.h"
#include "monitor/monitor.h"
#include "vhost-user/vhost-user-scsi.h"
#include "virtio/guest-mem.h"

#include <stdlib.h>

/*
 * x-vhost-user-written-pages {"id": DEV}: the guest pages the device
 * itself wrote (data-in buffers, responses, used rings) while the dirty
 * log was last on, as "pages": [[gpa, pages], ...]. A migration test
 * compares it with the pages that differ between source and destination:
 * a differing page in this list is a write of ours the dirty log missed.
 * "log-missed-pages" counts the pages this process wrote while logging
 * that lay past the end of the log QEMU gave (so no bit could be set);
 * it is process-wide, since start, and any non-zero value is a defect.
 */
static bool qmp_vhost_user_written_pages(json_object *args, json_object **ret,
                                         void *opaque, Error **errp)
{
    static const char *const known[] = { "id", NULL };
    const char *id;
    if (!qmp_args_check(args, known, errp) ||
        !qmp_arg_str(args, "id", false, &id, errp)) {
        return false;
    }
    Device *dev = device_find(id);
    VhostUserDev *vu = dev ? vhost_user_scsi_backend(dev) : NULL;
    if (!vu) {
        error_setg(errp, "'%s' is not a vhost-user device", id);
        return false;
    }
    size_t n;
    GuestPageRange *ranges = vhost_user_dev_written_pages(vu, &n);
    json_object *pages = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        json_object *pair = json_object_new_array();
        json_object_array_add(pair,
                              json_object_new_int64((int64_t)ranges[i].gpa));
        json_object_array_add(pair,
                              json_object_new_int64((int64_t)ranges[i].pages));
        json_object_array_add(pages, pair);
    }
    free(ranges);
    *ret = json_object_new_object();
    json_object_object_add(*ret, "pages", pages);
    json_object_object_add(
        *ret, "log-missed-pages",
        json_object_new_int64((int64_t)guest_mem_log_missed()));
    return true;
}

void daemon_register_vhost_user_qmp_commands(void)
{
    static const QmpArgInfo args[] = {
        { "id", "str", false },
        { NULL, NULL, false },
    };
    qmp_register_command_args("x-vhost-user-written-pages",
                              qmp_vhost_user_written_pages, NULL, args);
}
