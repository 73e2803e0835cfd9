/*
 * Block layer internals shared by block.c (backends), block-io.c (the
 * io_uring data path) and ownership.c. Not for other layers.
 */
#ifndef STORMIG_BLOCK_BLOCK_INT_H
#define STORMIG_BLOCK_BLOCK_INT_H

#include <liburing.h>

#include "block/block.h"

typedef struct BlockStatusJob BlockStatusJob;

#define BLK_DEFAULT_QUEUE_DEPTH 256
#define BLK_MAX_QUEUE_DEPTH     4096

typedef struct BlockDelayed BlockDelayed;

struct BlockBackend {
    char *node_name;
    char *filename;
    int fd;
    bool read_only;
    bool direct;
    bool discard;
    uint32_t align;             /* offset/length/buffer alignment */
    uint64_t size;

    /* Ownership: 'locked' when this backend holds the image's write lock;
     * 'active' when writes may reach the file. */
    bool locked;
    bool active;

    /* Fallocate modes the file refused once (EOPNOTSUPP); not tried again. */
    bool no_punch_hole;
    bool no_zero_range;

    struct io_uring ring;
    uint32_t queue_depth;
    int efd;                    /* completion eventfd, registered on loop */
    EventLoop *loop;            /* NULL until blk_attach_loop */
    unsigned in_flight;
    unsigned sq_queued;         /* SQEs prepared, not yet submitted */
    unsigned status_in_flight;  /* blk_block_status jobs (in in_flight) */
    BlockStatusJob *status_done; /* finished by their threads (done_lock) */

    uint32_t debug_delay_ms;    /* BlockOpenOptions.debug_delay_ms */
    BlockDelayed *delayed;      /* held completions, oldest first */
    BlockDelayed **delayed_tail;
    uint64_t delay_timer;       /* on loop */

    BlockStats stats;
    char *user;                 /* the device using it (blk_claim) */
    BlockBackend *next;
};

/* block-status.c: runs the callbacks of finished status jobs. */
void blk_status_process_done(BlockBackend *blk);

/* block-io.c */
bool blk_io_init(BlockBackend *blk, Error **errp);
void blk_io_cleanup(BlockBackend *blk);
void blk_io_detach_loop(BlockBackend *blk);
bool blk_io_attach_loop(BlockBackend *blk, EventLoop *loop, Error **errp);

/* ownership.c: called by blk_open for a read-write backend; takes the lock
 * when the process owns its disks. */
bool blk_ownership_adopt(BlockBackend *blk, Error **errp);
/* Releases the lock of a backend about to close. */
void blk_ownership_release(BlockBackend *blk);

#endif
