/* stormigd internals shared by the daemon's files. */
#ifndef STORMIG_DAEMON_DAEMON_H
#define STORMIG_DAEMON_DAEMON_H

#include <stdbool.h>

#include "util/error.h"
#include "util/loop.h"

/* Registers every device type stormigd offers; one line per layer. */
void daemon_register_device_types(void);
void pattern_writer_register(void);

/* --blockdev driver=file,node-name=N,filename=F[,read-only=on]
 *           [,cache.direct=on][,discard=unmap] */
bool daemon_blockdev_add(const char *optstr, Error **errp);
void daemon_blockdev_close_all(void);

/* SIGTERM, SIGINT, QMP quit: ends an outgoing migration, stops the
 * devices (requests in flight complete) and then the main loop. */
void daemon_request_shutdown(EventLoop *loop);

/* The QMP commands of the daemon (run state, block, devices, migration). */
void daemon_register_qmp_commands(EventLoop *loop);
/* vhost-user devices' commands (qmp-vhost-user.c). */
void daemon_register_vhost_user_qmp_commands(void);
/* scsi-block's commands (qmp-scsi.c; only built with libiscsi). */
void daemon_register_scsi_qmp_commands(void);

#endif
