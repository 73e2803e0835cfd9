/* The request engine of scsi-hd, shared by its I/O command handlers. */
#ifndef STORMIG_SCSI_SCSI_HD_IO_H
#define STORMIG_SCSI_SCSI_HD_IO_H

#include "scsi/scsi-hd.h"

typedef enum HdIoKind {
    IO_READ,
    IO_WRITE,
    IO_FLUSH,
    IO_ZERO,            /* write-zeroes of [offset, offset + bytes) */
    IO_UNMAP,           /* write-zeroes with may_unmap, per descriptor */
    IO_PATTERN,         /* WRITE SAME: one chunk of a repeated block */
} HdIoKind;

/* What a phase of a compare command (scsi-hd-cmp.c) does. */
typedef enum HdPhase {
    PHASE_READ,         /* the range into the bounce buffer */
    PHASE_COMPARE,      /* bounce against the data-out's first bytes */
    PHASE_OR,           /* bounce |= data-out */
    PHASE_COPY_SECOND,  /* bounce = the data-out's second half (CAW) */
    PHASE_COPY_ALL,     /* bounce = data-out */
    PHASE_WRITE,        /* the bounce buffer to the range */
    PHASE_END,
} HdPhase;

#define HD_IO_MAX_PHASES 5

/* How a command takes part in the range serialisation (scsi-hd-lock.c). */
typedef enum HdLockMode {
    LOCK_NONE,          /* reads */
    LOCK_SHARED,        /* writes: wait only for an exclusive holder */
    LOCK_EXCLUSIVE,     /* COMPARE AND WRITE: alone on its range */
} HdLockMode;

/* Most commands carry one to a few data buffers: their slice lives in
 * the HdIo itself, sparing an allocation per command. */
#define HD_IO_INLINE_IOV 4

struct HdIo {
    ScsiHd *hd;
    ScsiRequest *req;
    HdIoKind kind;
    bool is_write;      /* for the sense of an error */
    uint64_t offset;
    uint64_t bytes;
    uint64_t end;       /* IO_PATTERN: end of the whole range */
    bool fua;
    bool may_unmap;
    bool flush_after;   /* write-through for commands without FUA */
    size_t xfer;        /* bytes moved to/from the initiator */
    struct iovec *iov;  /* iov_inline, or allocated for longer lists */
    int iovcnt;
    struct iovec iov_inline[HD_IO_INLINE_IOV];
    uint8_t *bounce;    /* aligned copy when the guest's buffers are not */
    uint8_t *descs;     /* IO_UNMAP: checked descriptors */
    unsigned n_descs, next_desc;
    HdIo *next_retry;

    /* Compare commands: the phases, in order, run on the bounce buffer;
     * the data-out stays in the request's buffers. */
    bool phased;
    HdPhase phases[HD_IO_MAX_PHASES];
    unsigned phase;
    size_t cmp_period;  /* data-out bytes compared against each stretch
                           of the range: all of it, or one block (VERIFY
                           with BYTCHK 11b) */
    bool miscompare;    /* ends with MISCOMPARE at miscompare_offset */
    uint32_t miscompare_offset;

    /* Range serialisation (scsi-hd-lock.c). */
    HdLockMode lock_mode;
    bool lock_held;     /* in hd->locked */
    bool lock_waiting;  /* in hd->lock_wait_head's queue */
    uint64_t lock_lba, lock_blocks;
    HdIo *lock_next, *lock_prev;
};

/* A new HdIo for req, or NULL after completing req with ABORTED COMMAND
 * (out of memory). */
HdIo *hd_io_new(ScsiHd *hd, ScsiRequest *req, HdIoKind kind);
/* Submits the current step; the command completes from here on. */
void hd_io_issue(HdIo *io);
/* Takes io's range lock (waiting for a conflicting holder) and then
 * issues it. */
void hd_io_start(HdIo *io);
/* Moves to the next backend request of a multi-step command; false when
 * the command is done. */
bool hd_io_next_step(HdIo *io);
/* Completes the command: GOOD when ret is 0, else sense from -ret. */
void hd_io_finish(HdIo *io, int ret);
/* Frees io without completing its request (released from any lock). */
void hd_io_discard(HdIo *io);
/* Frees io and completes req with ABORTED COMMAND (out of memory). */
void hd_io_fail_nomem(HdIo *io);

/* scsi-hd-rw.c: checks shared by the commands that write / take data-out
 * (each completes req when it fails). */
bool hd_check_write(ScsiHd *hd, ScsiRequest *req);
/* A data-out of at least bytes (none needed when 0): else OVERRUN. */
bool hd_check_data_out(ScsiHd *hd, ScsiRequest *req, size_t bytes);

/* scsi-hd-cmp.c: the next phase of a compare command; false when done. */
bool hd_cmp_next_phase(HdIo *io);

/* scsi-hd-lock.c */
/* Sets the range a writing command serialises on (lock_mode != NONE). */
void hd_lock_set(HdIo *io, HdLockMode mode, uint64_t lba, uint64_t blocks);
/* True when io may run now (it holds its range); false when it waits. */
bool hd_lock_acquire(HdIo *io);
/* Drops io's lock or its place in the queue and starts waiters that no
 * longer conflict. */
void hd_lock_release(HdIo *io);
/* Removes a waiting command for req; true when found (req completed). */
bool hd_lock_cancel(ScsiHd *hd, ScsiRequest *req);

#endif
