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
};

/* A new HdIo for req, or NULL after completing req with ABORTED COMMAND
 * (out of memory). */
HdIo *hd_io_new(ScsiHd *hd, ScsiRequest *req, HdIoKind kind);
/* Submits the current step; the command completes from here on. */
void hd_io_issue(HdIo *io);
/* Moves to the next backend request of a multi-step command; false when
 * the command is done. */
bool hd_io_next_step(HdIo *io);
/* Completes the command: GOOD when ret is 0, else sense from -ret. */
void hd_io_finish(HdIo *io, int ret);
/* Frees io and completes req with ABORTED COMMAND (out of memory). */
void hd_io_fail_nomem(HdIo *io);

#endif
