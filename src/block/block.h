/*
 * Block backends: raw image files with asynchronous I/O (io_uring).
 *
 * A BlockBackend is opened by the daemon (--blockdev) and used by devices.
 * Requests are submitted from, and complete on, the EventLoop the backend
 * is attached to (a device's I/O thread); one backend belongs to one loop
 * at a time.
 *
 * Writes are allowed only while this process owns its disks (see
 * block/ownership.h): a backend that is not active refuses writes, flushes
 * and discards with -EPERM, before they reach the file.
 */
#ifndef STORMIG_BLOCK_BLOCK_H
#define STORMIG_BLOCK_BLOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "util/error.h"
#include "util/loop.h"

typedef struct BlockBackend BlockBackend;

typedef struct BlockOpenOptions {
    const char *node_name;      /* unique name, e.g. "disk0" */
    const char *filename;
    bool read_only;
    bool direct;                /* O_DIRECT (cache=none) */
    bool discard;               /* pass discards to the file (punch hole) */
    uint32_t queue_depth;       /* io_uring entries; 0 = default (256) */
    /* Testing aid: every completion is held this long, as a slow disk
     * would (a drain completes held ones at once). 0: off. */
    uint32_t debug_delay_ms;
} BlockOpenOptions;

/* Completion: ret is 0 on success or a negative errno. A NULL callback
 * is allowed (the result is then only counted in the stats). */
typedef void BlockCompletionFunc(void *opaque, int ret);

/* Opens the file. A read-write backend opened while this process owns its
 * disks takes the image's write lock at once, and the open fails naming
 * the holder when another process owns the image; opened while not owned
 * (incoming migration) it takes no lock until activation. Read-only
 * backends never lock (see ownership.h). Every open backend is in the
 * process-wide list that ownership acts on. */
BlockBackend *blk_open(const BlockOpenOptions *opts, Error **errp);
/* Drains, then closes. */
void blk_close(BlockBackend *blk);

BlockBackend *blk_by_name(const char *node_name);
/* Iterates the open backends: pass NULL to start. */
BlockBackend *blk_next(BlockBackend *blk);

const char *blk_name(const BlockBackend *blk);
const char *blk_filename(const BlockBackend *blk);
uint64_t blk_size(const BlockBackend *blk);      /* bytes */
bool blk_is_read_only(const BlockBackend *blk);
/* Required alignment of offsets, lengths and buffers (512 or 4096 for
 * O_DIRECT, 1 otherwise). */
uint32_t blk_alignment(const BlockBackend *blk);
/* Requests submitted and not yet completed. */
unsigned blk_in_flight(const BlockBackend *blk);

/* A backend serves one device: its completions run on that device's
 * loop. blk_claim() fails, naming the user, when another device already
 * has it; blk_unclaim() gives it back. */
bool blk_claim(BlockBackend *blk, const char *user, Error **errp);
void blk_unclaim(BlockBackend *blk);
const char *blk_user(const BlockBackend *blk);

/* Completions run on this loop from now on. Must not have requests in
 * flight when moved. */
bool blk_attach_loop(BlockBackend *blk, EventLoop *loop, Error **errp);

/*
 * Asynchronous requests. Return 0 when submitted (cb runs later, exactly
 * once, on the attached loop), or a negative errno without calling cb:
 * -EINVAL for a range outside the disk or misaligned for O_DIRECT, -EPERM
 * when writing to an inactive or read-only backend, -EAGAIN when the ring
 * is full.
 *
 * There is no internal queue: at most queue_depth requests are in flight,
 * and a caller that gets -EAGAIN retries after one of its completions.
 * A zero-length request is valid and completes with 0. Discards are a hint:
 * with discard off, or on a file that cannot punch holes, they complete
 * with 0 and change nothing.
 */
int blk_preadv(BlockBackend *blk, uint64_t offset, const struct iovec *iov,
               int iovcnt, BlockCompletionFunc *cb, void *opaque);
int blk_pwritev(BlockBackend *blk, uint64_t offset, const struct iovec *iov,
                int iovcnt, bool fua, BlockCompletionFunc *cb, void *opaque);
int blk_flush(BlockBackend *blk, BlockCompletionFunc *cb, void *opaque);
int blk_discard(BlockBackend *blk, uint64_t offset, uint64_t bytes,
                BlockCompletionFunc *cb, void *opaque);
/* Zeroes the range; with may_unmap the blocks may be deallocated. */
int blk_write_zeroes(BlockBackend *blk, uint64_t offset, uint64_t bytes,
                     bool may_unmap, BlockCompletionFunc *cb, void *opaque);

/* Allocation status (SEEK_DATA / SEEK_HOLE) of the image from offset on:
 * cb gets whether those bytes hold data (allocated) or are a hole, and
 * how many bytes from offset have that status (1..max_bytes, the status
 * may go on beyond). Off the loop's thread (a helper thread) since the
 * file system may block; cb runs on the attached loop. Returns 0, or
 * -EINVAL (offset outside the disk, max_bytes 0), -ENOMEM, -EAGAIN (no
 * thread) without calling cb. */
typedef void BlockStatusFunc(void *opaque, int ret, bool allocated,
                             uint64_t bytes);
int blk_block_status(BlockBackend *blk, uint64_t offset, uint64_t max_bytes,
                     BlockStatusFunc *cb, void *opaque);

/* Waits (running the attached loop's completions) until nothing is in
 * flight. Call on the loop's thread or when that loop is not running. */
void blk_drain(BlockBackend *blk);

/* The loop completions run on; NULL until blk_attach_loop. Before a loop
 * is attached, completions run only inside blk_drain and the synchronous
 * helpers. */
EventLoop *blk_get_loop(const BlockBackend *blk);
/* True when writes may reach the file now: read-write and owned. */
bool blk_is_active(const BlockBackend *blk);

/* Counters since open, for query commands and tests. */
typedef struct BlockStats {
    uint64_t rd_ops, wr_ops, flush_ops, discard_ops, zero_ops;
    uint64_t rd_bytes, wr_bytes;
    uint64_t failed_ops;        /* completed with an error */
    uint64_t zero_fallbacks;    /* write-zeroes served by writing zeroes */
} BlockStats;
void blk_get_stats(const BlockBackend *blk, BlockStats *stats);

/* Synchronous helpers for tools and tests (not for the data path). They
 * accept any buffer (bounced when O_DIRECT needs alignment) but the range
 * must still be inside the disk and aligned. */
int blk_pread_sync(BlockBackend *blk, uint64_t offset, void *buf,
                   uint64_t len);
int blk_pwrite_sync(BlockBackend *blk, uint64_t offset, const void *buf,
                    uint64_t len);
int blk_flush_sync(BlockBackend *blk);

#endif
