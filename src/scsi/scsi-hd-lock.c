/*
 * scsi-hd range serialisation. SBC-3 5.2: COMPARE AND WRITE's read,
 * compare and write are one uninterrupted series of actions, so no other
 * write may change its range in between. Writing commands take a shared
 * lock on their LBA range, COMPARE AND WRITE an exclusive one; a command
 * whose range overlaps a conflicting holder, or a conflicting command
 * already waiting (first come, first served), waits in a FIFO and is
 * issued when the holder ends. Shared holders never wait for each other,
 * so ordinary writes pay only a list insertion while no COMPARE AND WRITE
 * is around.
 */
#include "scsi/scsi-hd-io.h"

static bool hd_lock_overlap(const HdIo *a, const HdIo *b)
{
    if (a->lock_mode != LOCK_EXCLUSIVE && b->lock_mode != LOCK_EXCLUSIVE) {
        return false;
    }
    return a->lock_lba < b->lock_lba + b->lock_blocks &&
           b->lock_lba < a->lock_lba + a->lock_blocks;
}

/* Whether io must wait: a holder, or a waiter ahead of it ('until', or
 * the whole queue when NULL), conflicts. */
static bool hd_lock_conflict(ScsiHd *hd, const HdIo *io, const HdIo *until)
{
    if (io->lock_mode == LOCK_SHARED && hd->n_exclusive == 0 &&
        !hd->lock_wait_head) {
        return false;
    }
    for (const HdIo *h = hd->locked; h; h = h->lock_next) {
        if (hd_lock_overlap(io, h)) {
            return true;
        }
    }
    for (const HdIo *w = hd->lock_wait_head; w && w != until;
         w = w->lock_next) {
        if (hd_lock_overlap(io, w)) {
            return true;
        }
    }
    return false;
}

static void hd_lock_insert_held(ScsiHd *hd, HdIo *io)
{
    io->lock_prev = NULL;
    io->lock_next = hd->locked;
    if (hd->locked) {
        hd->locked->lock_prev = io;
    }
    hd->locked = io;
    io->lock_held = true;
    if (io->lock_mode == LOCK_EXCLUSIVE) {
        hd->n_exclusive++;
    }
}

static void hd_lock_unlink_waiter(ScsiHd *hd, HdIo *io)
{
    if (io->lock_prev) {
        io->lock_prev->lock_next = io->lock_next;
    } else {
        hd->lock_wait_head = io->lock_next;
    }
    if (io->lock_next) {
        io->lock_next->lock_prev = io->lock_prev;
    } else {
        hd->lock_wait_tail = io->lock_prev;
    }
    io->lock_next = io->lock_prev = NULL;
    io->lock_waiting = false;
}

void hd_lock_set(HdIo *io, HdLockMode mode, uint64_t lba, uint64_t blocks)
{
    io->lock_mode = mode;
    io->lock_lba = lba;
    io->lock_blocks = blocks;
}

bool hd_lock_acquire(HdIo *io)
{
    ScsiHd *hd = io->hd;
    if (io->lock_mode == LOCK_NONE) {
        return true;
    }
    if (!hd_lock_conflict(hd, io, NULL)) {
        hd_lock_insert_held(hd, io);
        return true;
    }
    io->lock_next = NULL;
    io->lock_prev = hd->lock_wait_tail;
    if (hd->lock_wait_tail) {
        hd->lock_wait_tail->lock_next = io;
    } else {
        hd->lock_wait_head = io;
    }
    hd->lock_wait_tail = io;
    io->lock_waiting = true;
    return false;
}

/* Issues every waiter that no longer conflicts, in queue order. Issuing
 * may complete a command at once and release again: that only asks the
 * running pass to start over. */
static void hd_lock_kick(ScsiHd *hd)
{
    if (hd->lock_kicking) {
        hd->lock_rekick = true;
        return;
    }
    hd->lock_kicking = true;
    do {
        hd->lock_rekick = false;
        for (HdIo *w = hd->lock_wait_head; w;) {
            HdIo *next = w->lock_next;
            if (!hd_lock_conflict(hd, w, w)) {
                hd_lock_unlink_waiter(hd, w);
                hd_lock_insert_held(hd, w);
                hd_io_issue(w);
                if (hd->lock_rekick) {
                    break;
                }
            }
            w = next;
        }
    } while (hd->lock_rekick);
    hd->lock_kicking = false;
}

void hd_lock_release(HdIo *io)
{
    ScsiHd *hd = io->hd;
    if (io->lock_mode == LOCK_NONE) {
        return;
    }
    if (io->lock_waiting) {
        hd_lock_unlink_waiter(hd, io);
    }
    if (!io->lock_held) {
        io->lock_mode = LOCK_NONE;
        return;
    }
    if (io->lock_prev) {
        io->lock_prev->lock_next = io->lock_next;
    } else {
        hd->locked = io->lock_next;
    }
    if (io->lock_next) {
        io->lock_next->lock_prev = io->lock_prev;
    }
    if (io->lock_mode == LOCK_EXCLUSIVE) {
        hd->n_exclusive--;
    }
    io->lock_held = false;
    io->lock_mode = LOCK_NONE;
    if (hd->lock_wait_head) {
        hd_lock_kick(hd);
    }
}

bool hd_lock_cancel(ScsiHd *hd, ScsiRequest *req)
{
    for (HdIo *w = hd->lock_wait_head; w; w = w->lock_next) {
        if (w->req == req) {
            /* Never reached the backend: complete it as aborted. */
            scsi_req_complete(req);
            hd_io_discard(w);
            return true;
        }
    }
    return false;
}
