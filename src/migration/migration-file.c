/* "file:" migration: the device-state stream, with its description, in a
 * file (like QEMU's file: URI, the source ends postmigrate). */
#include "migration/migration-int.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Far above any real device state; a bound on what we read into memory. */
#define MIG_FILE_MAX_SIZE (1024ull * 1024 * 1024)

static bool write_file(const char *path, const uint8_t *data, size_t len,
                       Error **errp)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        error_setg_errno(errp, errno, "cannot create '%s'", path);
        return false;
    }
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, data + done, len - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            error_setg_errno(errp, errno, "cannot write '%s'", path);
            close(fd);
            return false;
        }
        done += (size_t)n;
    }
    if (fsync(fd) < 0 || close(fd) < 0) {
        error_setg_errno(errp, errno, "cannot write '%s'", path);
        return false;
    }
    return true;
}

static uint8_t *read_file(const char *path, size_t *len, Error **errp)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        error_setg_errno(errp, errno, "cannot open '%s'", path);
        if (fd >= 0) {
            close(fd);
        }
        return NULL;
    }
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > MIG_FILE_MAX_SIZE) {
        error_setg(errp, "'%s' is not a regular file of at most %llu bytes",
                   path, MIG_FILE_MAX_SIZE);
        close(fd);
        return NULL;
    }
    size_t size = (size_t)st.st_size, done = 0;
    uint8_t *buf = malloc(size ? size : 1);
    while (buf && done < size) {
        ssize_t n = read(fd, buf + done, size - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        done += (size_t)n;
    }
    close(fd);
    if (!buf || done != size) {
        error_setg(errp, "cannot read '%s'", path);
        free(buf);
        return NULL;
    }
    *len = size;
    return buf;
}

/* The devices stopped: save, write, hand the disks over. */
static void file_stopped(void)
{
    uint8_t *data = NULL;
    size_t len = 0;
    Error *err = NULL;
    bool ok = mig_src_save_state(&data, &len, true, &err) &&
              write_file(mig.file_path, data, len, &err) &&
              mig_src_give_up_disks(&err);
    free(data);
    if (!ok) {
        mig_src_fail(err, false);
        return;
    }
    mig.transferred = len;
    mig_src_complete();
}

/* Finishes before returning unless a device takes time to stop; then
 * query-migrate tells the outcome. */
bool mig_file_save(const char *path, Error **errp)
{
    mig_begin(MIG_ROLE_SOURCE);
    free(mig.file_path);
    mig.file_path = strdup(path);
    if (!mig.file_path) {
        error_setg(errp, "out of memory");
        return false;
    }
    mig.was_running = runstate_is_running();
    mig_set_status(MIGRATION_STATUS_SETUP);
    mig.setup_done_ns = clock_ns();
    mig_set_status(MIGRATION_STATUS_ACTIVE);
    mig_src_stop_vm(file_stopped);
    if (mig.status == MIGRATION_STATUS_FAILED) {
        error_setg(errp, "%s", mig.error_desc ? mig.error_desc : "failed");
        return false;
    }
    return true;
}

bool mig_file_load(const char *path, Error **errp)
{
    size_t len = 0;
    Error *err = NULL;
    mig_begin(MIG_ROLE_DESTINATION);
    mig_set_status(MIGRATION_STATUS_SETUP);
    uint8_t *data = read_file(path, &len, &err);
    bool ok = data != NULL;
    if (ok) {
        mig.setup_done_ns = clock_ns();
        mig.device_state_size = len;
        mig.transferred = len;
        mig_set_status(MIGRATION_STATUS_ACTIVE);
        ok = mig_dst_load_state(data, len, &err) &&
             mig_dst_switchover(mig_global.running, &err);
    }
    free(data);
    if (!ok) {
        log_error("incoming migration from '%s' failed: %s", path,
                  error_get_pretty(err));
        mig_set_error(err);
        mig_set_status(MIGRATION_STATUS_FAILED);
        error_propagate(errp, err);
        return false;
    }
    mig_set_status(MIGRATION_STATUS_COMPLETED);
    return true;
}
