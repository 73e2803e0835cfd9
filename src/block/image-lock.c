/* Image ownership lock: OFD write lock, holder named by pid and program. */
#include "block/image-lock.h"
#include "util/log.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

static int set_lock(int fd, int cmd, short type, off_t byte)
{
    struct flock fl = {
        .l_type = type,
        .l_whence = SEEK_SET,
        .l_start = byte,
        .l_len = 1,
    };
    return fcntl(fd, cmd, &fl) < 0 ? -errno : 0;
}

static void read_comm(pid_t pid, char *buf, size_t size)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
    buf[0] = '\0';
    FILE *f = fopen(path, "re");
    if (!f) {
        return;
    }
    if (fgets(buf, (int)size, f)) {
        buf[strcspn(buf, "\n")] = '\0';
    }
    fclose(f);
}

/* The classic POSIX lock on the pid byte names its holder directly. */
static pid_t posix_lock_holder(int fd)
{
    struct flock fl = {
        .l_type = F_WRLCK,
        .l_whence = SEEK_SET,
        .l_start = IMAGE_LOCK_PID_BYTE,
        .l_len = 1,
    };
    if (fcntl(fd, F_GETLK, &fl) < 0 || fl.l_type == F_UNLCK) {
        return 0;
    }
    return fl.l_pid > 0 ? fl.l_pid : 0;
}

/* One "lock:" line of /proc/PID/fdinfo/FD (the format of /proc/locks):
 * "lock:\t1: OFDLCK ADVISORY  WRITE -1 MAJ:MIN:INO START END". */
static bool fdinfo_line_matches(const char *line, const struct stat *st)
{
    char kind[16], rw[16], end[24];
    unsigned maj, min;
    unsigned long ino;
    long long start;
    if (sscanf(line, "lock: %*d: %15s %*s %15s %*d %x:%x:%lu %lld %23s",
               kind, rw, &maj, &min, &ino, &start, end) != 7) {
        return false;
    }
    if (strcmp(kind, "OFDLCK") != 0 || strcmp(rw, "WRITE") != 0 ||
        maj != major(st->st_dev) || min != minor(st->st_dev) ||
        ino != (unsigned long)st->st_ino || start > IMAGE_LOCK_OWNER_BYTE) {
        return false;
    }
    return strcmp(end, "EOF") == 0 ||
           strtoll(end, NULL, 10) >= IMAGE_LOCK_OWNER_BYTE;
}

static bool fdinfo_file_holds(const char *path, const struct stat *st)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        return false;
    }
    char line[256];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f)) {
        found = strncmp(line, "lock:", 5) == 0 &&
                fdinfo_line_matches(line, st);
    }
    fclose(f);
    return found;
}

static bool process_holds(pid_t pid, const struct stat *st)
{
    char dirpath[64], path[96];
    snprintf(dirpath, sizeof(dirpath), "/proc/%d/fdinfo", (int)pid);
    DIR *d = opendir(dirpath);
    if (!d) {
        return false;
    }
    bool found = false;
    struct dirent *de;
    while (!found && (de = readdir(d))) {
        if (!isdigit((unsigned char)de->d_name[0])) {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%.20s", dirpath, de->d_name);
        found = fdinfo_file_holds(path, st);
    }
    closedir(d);
    return found;
}

/* Fallback when the POSIX lock was lost: search every process's open
 * descriptors for the OFD lock (only on the failure path, so cost is
 * acceptable). Needs permission to read the holder's fdinfo. */
static pid_t fdinfo_lock_holder(int fd)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        return 0;
    }
    DIR *proc = opendir("/proc");
    if (!proc) {
        return 0;
    }
    pid_t holder = 0;
    struct dirent *de;
    while (!holder && (de = readdir(proc))) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end == '\0' && pid > 0 && process_holds((pid_t)pid, &st)) {
            holder = (pid_t)pid;
        }
    }
    closedir(proc);
    return holder;
}

static void find_holder(int fd, ImageLockHolder *holder)
{
    holder->pid = posix_lock_holder(fd);
    if (!holder->pid) {
        holder->pid = fdinfo_lock_holder(fd);
    }
    holder->comm[0] = '\0';
    if (holder->pid) {
        read_comm(holder->pid, holder->comm, sizeof(holder->comm));
    }
}

int image_lock_probe(int fd, ImageLockHolder *holder)
{
    struct flock fl = {
        .l_type = F_WRLCK,
        .l_whence = SEEK_SET,
        .l_start = IMAGE_LOCK_OWNER_BYTE,
        .l_len = 1,
    };
    if (fcntl(fd, F_OFD_GETLK, &fl) < 0) {
        return -errno;
    }
    if (fl.l_type == F_UNLCK) {
        return 0;
    }
    if (holder) {
        find_holder(fd, holder);
    }
    return 1;
}

static bool lock_busy(int ret)
{
    return ret == -EAGAIN || ret == -EACCES;
}

/*
 * A lock that no process holds through a descriptor belongs to a process
 * that is exiting: a killed process's io_uring (and its in-flight requests)
 * keep the open file description alive until the kernel's asynchronous
 * ring teardown finishes, a few milliseconds after the process is gone.
 * Wait for that, bounded, instead of reporting a phantom owner.
 */
static int lock_wait_orphaned(int fd)
{
    const struct timespec step = { .tv_nsec = IMAGE_LOCK_ORPHAN_STEP_MS *
                                              1000000l };
    int ret = -EAGAIN;
    for (int waited = 0; waited < IMAGE_LOCK_ORPHAN_WAIT_MS && lock_busy(ret);
         waited += IMAGE_LOCK_ORPHAN_STEP_MS) {
        nanosleep(&step, NULL);
        ret = set_lock(fd, F_OFD_SETLK, F_WRLCK, IMAGE_LOCK_OWNER_BYTE);
    }
    return ret;
}

bool image_lock_acquire(int fd, const char *filename, Error **errp)
{
    int ret = set_lock(fd, F_OFD_SETLK, F_WRLCK, IMAGE_LOCK_OWNER_BYTE);
    ImageLockHolder h = { 0 };
    if (lock_busy(ret)) {
        find_holder(fd, &h);
        if (!h.pid) {
            ret = lock_wait_orphaned(fd);
            if (lock_busy(ret)) {
                find_holder(fd, &h);
            }
        }
    }
    if (lock_busy(ret)) {
        if (h.pid == getpid()) {
            error_setg(errp, "disk image '%s' is already opened read-write "
                       "by another block backend of this process", filename);
        } else if (h.pid) {
            error_setg(errp, "disk image '%s' is locked by process %d (%s), "
                       "which owns it", filename, (int)h.pid,
                       h.comm[0] ? h.comm : "unknown program");
        } else {
            error_setg(errp, "disk image '%s' is locked through a file no "
                       "running process holds (waited %d ms for its release)",
                       filename, IMAGE_LOCK_ORPHAN_WAIT_MS);
        }
        return false;
    }
    if (ret < 0) {
        error_setg_errno(errp, -ret, "cannot lock disk image '%s'", filename);
        return false;
    }
    /* Informational only: a failure leaves the image owned, just harder to
     * name from outside. */
    ret = set_lock(fd, F_SETLK, F_WRLCK, IMAGE_LOCK_PID_BYTE);
    if (ret < 0) {
        log_debug("image '%s': no pid lock: %s", filename, strerror(-ret));
    }
    return true;
}

void image_lock_release(int fd)
{
    set_lock(fd, F_SETLK, F_UNLCK, IMAGE_LOCK_PID_BYTE);
    set_lock(fd, F_OFD_SETLK, F_UNLCK, IMAGE_LOCK_OWNER_BYTE);
}
