/*
 * The ownership lock of one image file.
 *
 * Two locks on bytes far past any real data (locks are advisory and do not
 * stop I/O, so they may lie past the end of the file):
 *
 *  - IMAGE_LOCK_OWNER_BYTE: an OFD write lock. This is THE ownership lock:
 *    it belongs to the open file description, so it is never dropped
 *    because some other code of the process closed another descriptor of
 *    the same file (the classic POSIX-lock pitfall), and two processes (or
 *    two backends of one process) can never hold it at once.
 *
 *  - IMAGE_LOCK_PID_BYTE: a classic POSIX write lock taken right after the
 *    OFD lock, only so that others can name the owner: F_OFD_GETLK always
 *    reports l_pid = -1, but F_GETLK on a POSIX lock gives the pid. It may
 *    be lost (a close of another fd of that file by the owner process), so
 *    when it gives nothing the holder is searched in /proc/PID/fdinfo,
 *    whose "lock:" lines list the OFD locks held through each descriptor.
 *
 * Read-only users take neither lock: a reader must never stop the owner.
 */
#ifndef STORMIG_BLOCK_IMAGE_LOCK_H
#define STORMIG_BLOCK_IMAGE_LOCK_H

#include <stdbool.h>
#include <sys/types.h>

#include "util/error.h"

#define IMAGE_LOCK_OWNER_BYTE 0x7ffff000ll
#define IMAGE_LOCK_PID_BYTE   0x7ffff001ll

typedef struct ImageLockHolder {
    pid_t pid;                  /* 0 when unknown */
    char comm[32];              /* program name, "" when unknown */
} ImageLockHolder;

/* How long a lock held through no process's descriptor (its holder is
 * exiting) is waited for before acquiring gives up. */
#define IMAGE_LOCK_ORPHAN_WAIT_MS 2000
#define IMAGE_LOCK_ORPHAN_STEP_MS 5

/* Takes the ownership lock through fd. On conflict the error names the
 * holder: "... locked by process PID (COMM)". A lock that no live process
 * holds is waited for, up to IMAGE_LOCK_ORPHAN_WAIT_MS. */
bool image_lock_acquire(int fd, const char *filename, Error **errp);
void image_lock_release(int fd);

/* Whether another open file description holds the ownership lock of the
 * file behind fd: 1 (holder filled, may be NULL), 0, or a negative errno. */
int image_lock_probe(int fd, ImageLockHolder *holder);

#endif
