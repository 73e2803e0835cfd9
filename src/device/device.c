/* Device classes and instances, and the hooks run across all of them. */
#include "device/device.h"
#include "util/log.h"

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEVICE_CLASSES 32

static const DeviceClass *classes[MAX_DEVICE_CLASSES];
static size_t n_classes;
static Device *devices;     /* creation order */

void device_class_register(const DeviceClass *cls)
{
    if (device_class_find(cls->type)) {
        return;
    }
    if (n_classes == MAX_DEVICE_CLASSES) {
        log_error("too many device classes, dropping '%s'", cls->type);
        return;
    }
    classes[n_classes++] = cls;
}

const DeviceClass *device_class_find(const char *type)
{
    for (size_t i = 0; i < n_classes; i++) {
        if (strcmp(classes[i]->type, type) == 0) {
            return classes[i];
        }
    }
    return NULL;
}

const DeviceClass *device_class_next(const DeviceClass *cls)
{
    size_t i = 0;
    if (cls) {
        while (i < n_classes && classes[i] != cls) {
            i++;
        }
        i++;
    }
    return i < n_classes ? classes[i] : NULL;
}

static const DeviceProperty *class_property(const DeviceClass *cls,
                                            const char *name)
{
    for (const DeviceProperty *p = cls->properties; p && p->name; p++) {
        if (strcmp(p->name, name) == 0) {
            return p;
        }
    }
    return NULL;
}

bool device_class_print_help(const char *type, FILE *out, Error **errp)
{
    const DeviceClass *cls = device_class_find(type);
    if (!cls) {
        error_setg(errp, "unknown device type '%s'", type);
        return false;
    }
    fprintf(out, "%s options:\n", cls->type);
    fprintf(out, "  %-28s - %s\n", "id=<str>",
            "name of the device, unique in the daemon (required)");
    for (const DeviceProperty *p = cls->properties; p && p->name; p++) {
        char left[64];
        snprintf(left, sizeof(left), "%s=<%s>", p->name, p->type);
        if (p->default_value) {
            fprintf(out, "  %-28s - %s (default: %s)\n", left,
                    p->description, p->default_value);
        } else {
            fprintf(out, "  %-28s - %s (required)\n", left,
                    p->description);
        }
    }
    return true;
}

/* With a property table, anything not in it is refused up front, named
 * as keyval_check_all_used names leftovers. */
static bool check_properties(const DeviceClass *cls, const KeyVal *kv,
                             const char *id, Error **errp)
{
    const char *key;
    if (!cls->properties) {
        return true;
    }
    for (int i = 0; (key = keyval_key_at(kv, i)) != NULL; i++) {
        if (strcmp(key, "driver") != 0 && strcmp(key, "id") != 0 &&
            !class_property(cls, key)) {
            error_setg(errp, "%s: unknown parameter '%s' (see --device "
                       "%s,help)", id, key, cls->type);
            return false;
        }
    }
    return true;
}

static bool id_is_valid(const char *id)
{
    if (!*id || strlen(id) > 64) {
        return false;
    }
    for (const char *p = id; *p; p++) {
        if (!(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') &&
            !(*p >= '0' && *p <= '9') && *p != '-' && *p != '_' &&
            *p != '.') {
            return false;
        }
    }
    return true;
}

static void device_append(Device *dev)
{
    Device **p = &devices;
    while (*p) {
        p = &(*p)->next;
    }
    *p = dev;
}

/* path with its directory resolved, so "/a//b.sock" and "/a/b.sock"
 * compare equal; path itself when the directory does not resolve. */
static char *socket_key(const char *path)
{
    char *dir_copy = strdup(path), *base_copy = strdup(path), *key = NULL;
    char dir[PATH_MAX];
    if (dir_copy && base_copy && realpath(dirname(dir_copy), dir) &&
        asprintf(&key, "%s/%s", dir, basename(base_copy)) < 0) {
        key = NULL;
    }
    free(dir_copy);
    free(base_copy);
    return key ? key : strdup(path);
}

bool device_claim_socket(Device *dev, const char *path, Error **errp)
{
    char *key = socket_key(path);
    if (!key) {
        error_setg(errp, "out of memory");
        return false;
    }
    for (Device *d = devices; d; d = d->next) {
        if (d->socket_key && strcmp(d->socket_key, key) == 0) {
            error_setg(errp, "socket=%s is already used by device '%s'",
                       path, d->id);
            free(key);
            return false;
        }
    }
    free(dev->socket_key);
    dev->socket_key = key;
    return true;
}

Device *device_create(const char *optstr, EventLoop *loop, Error **errp)
{
    KeyVal *kv = keyval_parse(optstr, "driver", errp);
    Device *dev = NULL;
    if (!kv) {
        error_prepend(errp, "--device %s: ", optstr);
        return NULL;
    }
    const char *type = keyval_get(kv, "driver");
    const char *id = keyval_get(kv, "id");
    const DeviceClass *cls = type ? device_class_find(type) : NULL;
    if (!type) {
        error_setg(errp, "device needs a type");
    } else if (!cls) {
        error_setg(errp, "unknown device type '%s'", type);
    } else if (!id) {
        error_setg(errp, "device '%s' needs an id", type);
    } else if (!id_is_valid(id)) {
        error_setg(errp, "invalid device id '%s'", id);
    } else if (device_find(id)) {
        error_setg(errp, "duplicate device id '%s'", id);
    } else if (!check_properties(cls, kv, id, errp)) {
        /* errp set */
    } else if ((dev = calloc(1, cls->instance_size)) == NULL) {
        error_setg(errp, "out of memory");
    } else {
        dev->cls = cls;
        dev->id = strdup(id);
        dev->loop = loop;
        if (!cls->realize(dev, kv, errp) ||
            !keyval_check_all_used(kv, dev->id, errp)) {
            if (cls->unrealize) {
                cls->unrealize(dev);
            }
            free(dev->socket_key);
            free(dev->id);
            free(dev);
            dev = NULL;
        } else {
            device_append(dev);
        }
    }
    if (!dev) {
        error_prepend(errp, "--device %s: ", optstr);
    }
    keyval_free(kv);
    return dev;
}

void device_destroy(Device *dev)
{
    for (Device **p = &devices; *p; p = &(*p)->next) {
        if (*p == dev) {
            *p = dev->next;
            break;
        }
    }
    if (dev->cls->unrealize) {
        dev->cls->unrealize(dev);
    }
    free(dev->socket_key);
    free(dev->id);
    free(dev);
}

void device_destroy_all(void)
{
    /* Reverse order: controllers were created before what uses them. */
    while (devices) {
        Device *last = devices;
        while (last->next) {
            last = last->next;
        }
        device_destroy(last);
    }
}

Device *device_find(const char *id)
{
    for (Device *d = devices; d; d = d->next) {
        if (strcmp(d->id, id) == 0) {
            return d;
        }
    }
    return NULL;
}

Device *device_next(Device *dev)
{
    return dev ? dev->next : devices;
}

typedef bool DeviceHook(Device *dev, Error **errp);

static bool run_hooks(size_t hook_offset, const char *what, Error **errp)
{
    for (Device *d = devices; d; d = d->next) {
        DeviceHook *hook =
            *(DeviceHook **)((const char *)d->cls + hook_offset);
        if (hook && !hook(d, errp)) {
            error_prepend(errp, "%s '%s': ", what, d->id);
            return false;
        }
    }
    return true;
}

static struct {
    Device *cur;                    /* being stopped */
    DeviceDone *done;
    void *opaque;
} stopping;

static void stop_finish(Error *err)
{
    DeviceDone *done = stopping.done;
    if (err) {
        error_prepend(&err, "cannot stop device '%s': ", stopping.cur->id);
    }
    stopping.done = NULL;
    stopping.cur = NULL;
    done(stopping.opaque, err);
}

static void stop_next(void);

static void stop_one_done(void *opaque, Error *err)
{
    if (err) {
        stop_finish(err);
        return;
    }
    stopping.cur = stopping.cur->next;
    stop_next();
}

static void stop_next(void)
{
    Error *err = NULL;
    while (stopping.cur) {
        Device *d = stopping.cur;
        if (d->cls->stop_async) {
            d->cls->stop_async(d, stop_one_done, NULL);
            return;
        }
        if (d->cls->stop && !d->cls->stop(d, &err)) {
            stop_finish(err);
            return;
        }
        stopping.cur = d->next;
    }
    stop_finish(NULL);
}

void device_stop_all(DeviceDone *done, void *opaque)
{
    Error *err = NULL;
    if (stopping.done) {
        error_setg(&err, "the devices are already being stopped");
        done(opaque, err);
        return;
    }
    stopping.done = done;
    stopping.opaque = opaque;
    stopping.cur = devices;
    stop_next();
}

bool device_start_all(Error **errp)
{
    return run_hooks(offsetof(DeviceClass, start), "cannot start device",
                     errp);
}

bool device_migration_check_all(Error **errp)
{
    return run_hooks(offsetof(DeviceClass, migration_check),
                     "device cannot migrate", errp);
}

bool device_activate_all(Error **errp)
{
    return run_hooks(offsetof(DeviceClass, activate),
                     "cannot activate device", errp);
}

static void inactivate_reverse(Device *d)
{
    if (!d) {
        return;
    }
    inactivate_reverse(d->next);
    if (d->cls->inactivate) {
        d->cls->inactivate(d);
    }
}

void device_inactivate_all(void)
{
    inactivate_reverse(devices);
}

void device_handed_over_all(void)
{
    for (Device *d = devices; d; d = d->next) {
        if (d->cls->handed_over) {
            d->cls->handed_over(d);
        }
    }
}

bool device_vmm_stopped_all(void)
{
    for (Device *d = devices; d; d = d->next) {
        if (d->cls->vmm_stopped && !d->cls->vmm_stopped(d)) {
            return false;
        }
    }
    return true;
}

static void (*vmm_listener)(Device *dev);

void device_set_vmm_listener(void (*fn)(Device *dev))
{
    vmm_listener = fn;
}

void device_vmm_state_changed(Device *dev)
{
    if (vmm_listener) {
        vmm_listener(dev);
    }
}

VMStateSection *device_vmstate_sections(size_t *n)
{
    size_t count = 0, i = 0;
    for (Device *d = devices; d; d = d->next) {
        count += d->cls->vmsd != NULL;
    }
    VMStateSection *secs = calloc(count ? count : 1, sizeof(*secs));
    if (!secs) {
        *n = 0;
        return NULL;
    }
    for (Device *d = devices; d; d = d->next) {
        if (d->cls->vmsd) {
            secs[i++] = (VMStateSection){
                .name = d->id, .instance_id = 0,
                .vmsd = d->cls->vmsd, .opaque = d,
            };
        }
    }
    *n = count;
    return secs;
}

static bool compat_set;
static unsigned compat_major, compat_minor;

void device_set_compat_version(unsigned major, unsigned minor)
{
    compat_set = true;
    compat_major = major;
    compat_minor = minor;
}

bool device_compat_before(unsigned major, unsigned minor)
{
    return compat_set && (compat_major < major ||
                          (compat_major == major && compat_minor < minor));
}
