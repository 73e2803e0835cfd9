/* The device types stormigd offers. Each layer that brings a device type
 * adds one call here. */
#include "daemon/daemon.h"
#include "nvme/nvme-device.h"
#include "scsi/scsi.h"
#include "vhost-user/vhost-user-scsi.h"

void daemon_register_device_types(void)
{
    pattern_writer_register();
    /* The controller first: scsi-hd / scsi-block attach to its bus. */
    vhost_user_scsi_register();
    scsi_register_devices();
    nvme_device_register();
}
