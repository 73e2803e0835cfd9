/*
 * Disk ownership: the process-wide record of whether this process owns its
 * disks (seed 004, "Rewrite disk activation"), and the image locks that
 * make it true on the files.
 *
 * Invariant: while owned, every open read-write backend holds its image's
 * write lock and is active; while not owned, none holds a lock and none is
 * active. Read-only backends never lock (see image-lock.h) and are never
 * active. Both transitions check the record first, so a repeated one is a
 * no-op: a second migration started while the disks were never activated
 * does not inactivate again (seed 004, problem 2).
 *
 * All of this runs on the main loop thread, with the devices stopped: the
 * backends have no other submitter while they are drained here.
 */
#include "block/ownership.h"
#include "block/block-int.h"
#include "block/image-lock.h"
#include "util/log.h"

/* Seed 004: a freshly started process owns its disks. */
static bool disks_owned = true;

bool blk_ownership_is_owned(void)
{
    return disks_owned;
}

static bool needs_lock(const BlockBackend *blk)
{
    return !blk->read_only;
}

static void release_all_locks(void)
{
    for (BlockBackend *b = blk_next(NULL); b; b = blk_next(b)) {
        b->active = false;
        if (b->locked) {
            image_lock_release(b->fd);
            b->locked = false;
        }
    }
}

/* Seed 004: an incoming process does not own its disks until switchover.
 * Meant to be called before any backend is opened; backends already open
 * are brought in line with the new record. */
void blk_ownership_init(bool owned)
{
    if (!owned) {
        release_all_locks();
        disks_owned = false;
        return;
    }
    if (disks_owned) {
        return;
    }
    Error *err = NULL;
    if (!blk_ownership_activate_all(&err)) {
        error_prepend(&err, "cannot take the disks at start: ");
        error_report_err(err);
    }
}

bool blk_ownership_adopt(BlockBackend *blk, Error **errp)
{
    blk->active = false;
    if (!disks_owned || !needs_lock(blk)) {
        return true;
    }
    if (!image_lock_acquire(blk->fd, blk->filename, errp)) {
        error_prepend(errp, "block '%s': ", blk->node_name);
        return false;
    }
    blk->locked = true;
    blk->active = true;
    return true;
}

void blk_ownership_release(BlockBackend *blk)
{
    blk->active = false;
    if (blk->locked) {
        image_lock_release(blk->fd);
        blk->locked = false;
    }
}

bool blk_ownership_activate_all(Error **errp)
{
    if (disks_owned) {
        return true;
    }
    for (BlockBackend *b = blk_next(NULL); b; b = blk_next(b)) {
        if (!needs_lock(b) || b->locked) {
            continue;
        }
        if (!image_lock_acquire(b->fd, b->filename, errp)) {
            error_prepend(errp, "block '%s': ", b->node_name);
            /* All or nothing: not owned means nothing was locked before
             * this call, so every lock held now was taken by it. */
            release_all_locks();
            return false;
        }
        b->locked = true;
    }
    for (BlockBackend *b = blk_next(NULL); b; b = blk_next(b)) {
        b->active = needs_lock(b);
    }
    disks_owned = true;
    log_info("disks activated: this process owns its images");
    return true;
}

bool blk_ownership_inactivate_all(Error **errp)
{
    if (!disks_owned) {
        return true;
    }
    for (BlockBackend *b = blk_next(NULL); b; b = blk_next(b)) {
        blk_drain(b);
    }
    /* Everything written so far must be stable before another process
     * may open the image for writing. */
    for (BlockBackend *b = blk_next(NULL); b; b = blk_next(b)) {
        if (!b->active) {
            continue;
        }
        int ret = blk_flush_sync(b);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "block '%s': cannot flush '%s'; "
                             "the disks stay owned", b->node_name,
                             b->filename);
            return false;
        }
    }
    release_all_locks();
    disks_owned = false;
    log_info("disks inactivated: writes stopped, image locks released");
    return true;
}
