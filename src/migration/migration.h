/*
 * Live migration between two stormigd processes.
 *
 * Source flow (channel.h §3), each step its own function so
 * a later mode where the VMM stops the devices can reuse them:
 *   connect -> HELLO exchange -> stop devices (STOP) -> save device state
 *   -> DEVICE_STATE -> destination loads -> STATE_LOADED -> inactivate
 *   devices and disks -> SWITCHOVER -> destination activates (and runs, if
 *   the source ran) -> SWITCHOVER_DONE -> completed, postmigrate.
 * Any failure, a cancel or the channel dropping before SWITCHOVER_DONE:
 * the source takes its disks back and resumes if it was running.
 *
 * "file:PATH" writes the same device-state stream (with its description)
 * to a file; "--incoming file:PATH" loads it.
 *
 * Everything runs on the main loop with non-blocking sockets, so the
 * monitor keeps answering during a migration.
 */
#ifndef STORMIG_MIGRATION_MIGRATION_H
#define STORMIG_MIGRATION_MIGRATION_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "util/error.h"
#include "util/loop.h"

typedef enum MigrationStatus {
    MIGRATION_STATUS_NONE,
    MIGRATION_STATUS_SETUP,
    MIGRATION_STATUS_ACTIVE,
    MIGRATION_STATUS_DEVICE,        /* devices stopped, state in transit */
    MIGRATION_STATUS_COMPLETED,
    MIGRATION_STATUS_FAILED,
    MIGRATION_STATUS_CANCELLING,
    MIGRATION_STATUS_CANCELLED,
} MigrationStatus;

const char *migration_status_name(MigrationStatus status);

/* Before anything else; loop is the main loop. */
void migration_init(EventLoop *loop);
/* Cancels whatever is in progress and closes listening sockets. */
void migration_shutdown(void);

MigrationStatus migration_status(void);
bool migration_is_active(void);

/* QMP migrate: unix:, tcp: or file:. Returns once the migration started
 * (file: once it finished). */
bool migration_start_outgoing(const char *uri, Error **errp);

/*
 * VMM-coordinated mode (QMP migrate "vmm-stop": true; sockets only): the
 * VM runs in a VMM (QEMU) that migrates itself and does not carry our
 * devices' state. After the HELLO exchange the source waits, still
 * serving requests, until the VMM has stopped every device's data path
 * (DeviceClass.vmm_stopped: for vhost-user, GET_VRING_BASE on every ring
 * at the end of the VMM's migration); only then are the devices stopped,
 * the state sent and the disks handed over, as in the normal flow. If the
 * VMM starts a device again before the destination took over (its own
 * migration failed), the migration fails and the source keeps its disks
 * and resumes. If it starts one after the handoff completed (its
 * migration failed late, e.g. the destination died), the source takes
 * the disks back (only when the destination released them: the image
 * locks), runs the devices' activation (reservations are preempted back)
 * and resumes; query-migrate then shows "late-recovery". migrate_cancel
 * works at every step.
 */
bool migration_start_outgoing_vmm(const char *uri, bool vmm_stop,
                                  uint32_t peer_timeout_ms, Error **errp);
/* --incoming / migrate-incoming: unix:, tcp: (listen) or file: (load now).
 * Only while the run state is inmigrate. A source that fails, times out
 * or is cancelled is dropped and the next one accepted. */
bool migration_start_incoming(const char *uri, uint32_t peer_timeout_ms,
                              Error **errp);
/* QMP migrate_cancel: no-op when nothing is in progress. The source takes
 * its disks back and resumes; the destination drops its source and waits
 * for a new one. */
void migration_cancel(void);

/*
 * peer-timeout (channel.h §5): how long, in ms, the other stormigd may
 * keep one step of a migration waiting (connect, HELLO, DEVICE_STATE,
 * STATE_LOADED, SWITCHOVER, SWITCHOVER_DONE) before the migration fails.
 * The default covers a destination's activation, which may include a
 * reservation takeover of several iSCSI commands (30 s each at most).
 * peer_timeout_ms 0 in the start functions: the daemon's default.
 */
#define MIGRATION_PEER_TIMEOUT_DEFAULT_MS 120000u
#define MIGRATION_PEER_TIMEOUT_MAX_MS 3600000u
bool migration_peer_timeout_check(int64_t ms, Error **errp);
/* The daemon's default (--peer-timeout). */
bool migration_set_peer_timeout(int64_t ms, Error **errp);

/* The query-migrate answer. */
json_object *migration_query(void);

/* Testing aid (hidden daemon option): the destination waits this long
 * before loading received device state. */
void migration_set_debug_load_delay(uint32_t ms);

#endif
