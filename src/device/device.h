/*
 * Devices: what stormigd serves (a vhost-user SCSI controller and its
 * disks, an NVMe controller, ...). A device type is a DeviceClass; the
 * daemon creates instances from --device options and drives them through
 * the VM's run state and through migration.
 *
 * Hooks are optional (NULL = nothing to do) and all run on the main loop
 * thread.
 */
#ifndef STORMIG_DEVICE_DEVICE_H
#define STORMIG_DEVICE_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <json-c/json.h>

#include "util/error.h"
#include "util/keyval.h"
#include "util/loop.h"
#include "vmstate/vmstate.h"

typedef struct Device Device;
/* A continuation: err NULL on success, else owned by the callee. */
typedef void DeviceDone(void *opaque, Error *err);

/*
 * One property a device type accepts (--device TYPE,NAME=VALUE): what
 * "--device TYPE,help" lists. With a table, a property not in it is
 * refused before realize runs, so the table is the full list.
 */
typedef struct DeviceProperty {
    const char *name;
    const char *type;           /* as QEMU's help prints it: str, bool,
                                 * uint32, uint64 */
    const char *default_value;  /* NULL: required */
    const char *description;    /* one line */
} DeviceProperty;

typedef struct DeviceClass {
    const char *type;               /* --device TYPE,... */
    const char *description;
    size_t instance_size;           /* >= sizeof(Device), Device first */
    /* Besides id=; terminated by a NULL name. NULL: not described. */
    const DeviceProperty *properties;

    /* Reads its properties from props (every key must be consumed). */
    bool (*realize)(Device *dev, KeyVal *props, Error **errp);
    void (*unrealize)(Device *dev);

    /* VM run state: stop quiesces the data path (no new requests, all
     * in-flight ones completed); start resumes it. */
    bool (*stop)(Device *dev, Error **errp);
    bool (*start)(Device *dev, Error **errp);
    /* Instead of stop, for a device whose requests may take long: returns
     * at once and runs done(opaque, NULL or err) on the main loop (maybe
     * before returning) once stopped, or when it gave up. */
    void (*stop_async)(Device *dev, DeviceDone *done, void *opaque);

    /* Source, before a migration starts: refuse up front (allowlist). */
    bool (*migration_check)(Device *dev, Error **errp);

    /* Device state carried by migration (NULL: none). The section's opaque
     * is the Device itself. */
    const VMStateDescription *vmsd;

    /* Ownership of what the device holds beyond its images (e.g. a SCSI
     * reservation). activate runs after the process took its disks
     * (destination at switchover, source after a failed or cancelled
     * migration); inactivate runs before the source gives them up. */
    bool (*activate)(Device *dev, Error **errp);
    void (*inactivate)(Device *dev);
    /* Source, once the destination reported its switchover done: it
     * took over what activate takes, so what only this process could
     * give up goes now (e.g. the source's own registration in an ALL
     * REGISTRANTS reservation). Not after a migration to a file. */
    void (*handed_over)(Device *dev);

    /* Adds type-specific members to a query-devices entry. */
    void (*query)(Device *dev, json_object *info);

    /* VMM-coordinated migration (the VMM, e.g. QEMU over vhost-user, runs
     * the device's rings): true once the VMM has stopped the data path
     * itself, so the device state is final. NULL: the device has no VMM
     * and always counts as stopped. The device calls
     * device_vmm_state_changed() whenever the answer may have changed. */
    bool (*vmm_stopped)(Device *dev);
} DeviceClass;

struct Device {
    const DeviceClass *cls;
    char *id;
    EventLoop *loop;                /* the daemon's main loop */
    char *socket_key;               /* device_claim_socket(), or NULL */
    Device *next;
};

void device_class_register(const DeviceClass *cls);
const DeviceClass *device_class_find(const char *type);
/* Iterates registered classes: pass NULL to start. */
const DeviceClass *device_class_next(const DeviceClass *cls);

/* Prints "TYPE options:" and one line per property, as QEMU's
 * "-device TYPE,help" does. False for an unknown type. */
bool device_class_print_help(const char *type, FILE *out, Error **errp);

/* Parses "TYPE,id=ID,key=value,..." and realizes the device. */
Device *device_create(const char *optstr, EventLoop *loop, Error **errp);

/* For realize: dev listens on the unix socket path (its socket=). A path
 * another device already listens on, however spelt, is refused naming
 * that device. Released when dev is destroyed or fails to realize. */
bool device_claim_socket(Device *dev, const char *path, Error **errp);
void device_destroy(Device *dev);
void device_destroy_all(void);

Device *device_find(const char *id);
/* Iterates devices in creation order: pass NULL to start. */
Device *device_next(Device *dev);

/* Run every device's hook in creation order (inactivate: reverse order).
 * The bool ones stop at the first failure, which names the device. */
/* Stops every device in creation order, each after the one before
 * finished; done(opaque, err) when all did or at the first failure (the
 * error names the device). Main loop; one at a time. */
void device_stop_all(DeviceDone *done, void *opaque);
bool device_start_all(Error **errp);
bool device_migration_check_all(Error **errp);
bool device_activate_all(Error **errp);
void device_inactivate_all(void);
void device_handed_over_all(void);

/* True when every device's vmm_stopped hook says so. */
bool device_vmm_stopped_all(void);
/* Main loop. Called by a device whose vmm_stopped answer may have changed;
 * runs the listener set with device_set_vmm_listener (one, or NULL). */
void device_vmm_state_changed(Device *dev);
void device_set_vmm_listener(void (*fn)(Device *dev));

/* The sections of every device that has state, for the state engine.
 * Returns a malloc'd array (count in *n). */
VMStateSection *device_vmstate_sections(size_t *n);

/*
 * --compat-version X.Y: behave like the stormigd release X.Y for what
 * changes the guest-visible or migrated behaviour (like a QEMU machine
 * version). Unset means the newest behaviour.
 */
void device_set_compat_version(unsigned major, unsigned minor);
/* True when a compat version is set and is older than major.minor. */
bool device_compat_before(unsigned major, unsigned minor);

#endif
