/*
 * The "vhost-user-scsi" controller device: a vhost-user back end whose
 * virtqueues carry virtio-scsi (control, event, N request queues) to a
 * SCSI bus of the same name as the device id; scsi-hd / scsi-block
 * devices attach LUNs to it with bus=ID.
 *
 *   --device vhost-user-scsi,id=scsi0,socket=PATH[,num-queues=N]
 *            [,dirty-log=on|off]
 *
 * dirty-log=off offers neither VHOST_F_LOG_ALL nor LOG_SHMFD, so QEMU
 * refuses to migrate the VM (QEMU 7.2: "Migration disabled: vhost-user
 * backend lacks VHOST_USER_PROTOCOL_F_LOG_SHMFD feature.").
 */
#ifndef STORMIG_VHOST_USER_VHOST_USER_SCSI_H
#define STORMIG_VHOST_USER_VHOST_USER_SCSI_H

#include "device/device.h"
#include "vhost-user/vhost-user.h"

void vhost_user_scsi_register(void);

/* The vhost-user back end of a vhost-user-scsi device; NULL when dev is
 * another type. */
VhostUserDev *vhost_user_scsi_backend(Device *dev);

#endif
