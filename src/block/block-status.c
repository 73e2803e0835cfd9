/*
 * Allocation status of an image's bytes (holes and data), for SCSI GET
 * LBA STATUS and the like.
 *
 * io_uring has no lseek, and SEEK_DATA / SEEK_HOLE walk the file
 * system's extent tree, which may wait on its locks or on metadata reads
 * (NFS, a busy ext4 journal). So the lseek runs on a short-lived helper
 * thread, one per request (the command is rare): the thread touches only
 * its own job and the backend's fd, puts the finished job on a list and
 * writes the backend's completion eventfd; the completion runs on the
 * attached loop with the io_uring completions. The job counts as in
 * flight, so draining and closing wait for it.
 */
#include "block/block-int.h"
#include "util/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

struct BlockStatusJob {
    BlockBackend *blk;
    uint64_t offset, max_bytes;
    BlockStatusFunc *cb;
    void *opaque;
    int ret;
    bool allocated;
    uint64_t bytes;
    BlockStatusJob *next;
};

/* Finished jobs of every backend; rare, so one lock for all. */
static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;

/* The extent at job->offset: data up to the next hole, or a hole up to
 * the next data. A file system without SEEK_DATA support reports all
 * data (the generic lseek does that itself; EINVAL/EOPNOTSUPP too). */
static void status_lookup(BlockStatusJob *job)
{
    int fd = job->blk->fd;
    uint64_t end = job->blk->size;
    off_t data = lseek(fd, (off_t)job->offset, SEEK_DATA);
    uint64_t stop;

    if (data < 0 && errno == ENXIO) {
        job->allocated = false;             /* a hole to the end */
        stop = end;
    } else if (data < 0) {
        job->allocated = true;
        stop = end;
    } else if ((uint64_t)data > job->offset) {
        job->allocated = false;
        stop = (uint64_t)data;
    } else {
        off_t hole = lseek(fd, (off_t)job->offset, SEEK_HOLE);
        job->allocated = true;
        stop = hole < 0 ? end : (uint64_t)hole;
    }
    if (stop > end) {
        stop = end;
    }
    job->bytes = stop - job->offset;
    if (job->bytes > job->max_bytes) {
        job->bytes = job->max_bytes;
    }
    job->ret = 0;
}

static void *status_thread(void *opaque)
{
    BlockStatusJob *job = opaque;
    BlockBackend *blk = job->blk;
    uint64_t one = 1;

    status_lookup(job);
    /* The eventfd is written under the lock: the loop cannot see the job
     * done, and the backend close, before this thread is finished with
     * it. */
    pthread_mutex_lock(&done_lock);
    job->next = blk->status_done;
    blk->status_done = job;
    if (write(blk->efd, &one, sizeof(one)) < 0) {
        /* Only a counter at its maximum fails: the loop wakes anyway. */
    }
    pthread_mutex_unlock(&done_lock);
    return NULL;
}

void blk_status_process_done(BlockBackend *blk)
{
    pthread_mutex_lock(&done_lock);
    BlockStatusJob *list = blk->status_done;
    blk->status_done = NULL;
    pthread_mutex_unlock(&done_lock);
    while (list) {
        BlockStatusJob *job = list;
        list = job->next;
        blk->in_flight--;
        blk->status_in_flight--;
        job->cb(job->opaque, job->ret, job->allocated, job->bytes);
        free(job);
    }
}

int blk_block_status(BlockBackend *blk, uint64_t offset, uint64_t max_bytes,
                     BlockStatusFunc *cb, void *opaque)
{
    if (offset >= blk->size || max_bytes == 0) {
        log_ratelimited(LOG_WARN, "block '%s': status at %llu+%llu "
                        "refused: outside the disk", blk->node_name,
                        (unsigned long long)offset,
                        (unsigned long long)max_bytes);
        return -EINVAL;
    }
    BlockStatusJob *job = calloc(1, sizeof(*job));
    if (!job) {
        return -ENOMEM;
    }
    *job = (BlockStatusJob){ .blk = blk, .offset = offset,
                             .max_bytes = max_bytes, .cb = cb,
                             .opaque = opaque };
    pthread_attr_t attr;
    pthread_t tid;
    int ret = pthread_attr_init(&attr);
    if (ret == 0) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        blk->in_flight++;
        blk->status_in_flight++;
        ret = pthread_create(&tid, &attr, status_thread, job);
        pthread_attr_destroy(&attr);
        if (ret != 0) {
            blk->in_flight--;
            blk->status_in_flight--;
        }
    }
    if (ret != 0) {
        free(job);
        return -EAGAIN;
    }
    return 0;
}
