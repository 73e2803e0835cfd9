/*
 * Synchronous wrappers for tools, tests and the ownership transitions:
 * submit one request, then drain the backend on the calling thread.
 */
#include "block/block-int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct SyncResult {
    bool done;
    int ret;
} SyncResult;

static void sync_done(void *opaque, int ret)
{
    SyncResult *r = opaque;
    r->done = true;
    r->ret = ret;
}

/* Waits for r; a full ring (-EAGAIN) is drained once and retried. */
typedef int SyncSubmit(BlockBackend *blk, void *arg, SyncResult *r);

static int run_sync(BlockBackend *blk, SyncSubmit *submit, void *arg)
{
    SyncResult r = { 0 };
    int ret = submit(blk, arg, &r);
    if (ret == -EAGAIN) {
        blk_drain(blk);
        ret = submit(blk, arg, &r);
    }
    if (ret < 0) {
        return ret;
    }
    blk_drain(blk);
    return r.done ? r.ret : -EIO;
}

typedef struct RwArg {
    uint64_t offset;
    struct iovec iov;
} RwArg;

static int submit_read(BlockBackend *blk, void *arg, SyncResult *r)
{
    RwArg *a = arg;
    return blk_preadv(blk, a->offset, &a->iov, 1, sync_done, r);
}

static int submit_write(BlockBackend *blk, void *arg, SyncResult *r)
{
    RwArg *a = arg;
    return blk_pwritev(blk, a->offset, &a->iov, 1, false, sync_done, r);
}

static int submit_flush(BlockBackend *blk, void *arg, SyncResult *r)
{
    return blk_flush(blk, sync_done, r);
}

/* O_DIRECT needs aligned memory; a caller's buffer that is not gets a
 * bounce buffer. Returns NULL (no bounce needed) or sets *err. */
static void *bounce_if_needed(BlockBackend *blk, const void *buf,
                              uint64_t len, int *err)
{
    *err = 0;
    if (!((uintptr_t)buf & (blk->align - 1)) || !len) {
        return NULL;
    }
    void *bounce;
    if (posix_memalign(&bounce, blk->align, (size_t)len) != 0) {
        *err = -ENOMEM;
        return NULL;
    }
    return bounce;
}

int blk_pread_sync(BlockBackend *blk, uint64_t offset, void *buf,
                   uint64_t len)
{
    int err;
    void *bounce = bounce_if_needed(blk, buf, len, &err);
    if (err) {
        return err;
    }
    RwArg a = { offset, { bounce ? bounce : buf, (size_t)len } };
    int ret = run_sync(blk, submit_read, &a);
    if (bounce) {
        if (ret == 0) {
            memcpy(buf, bounce, len);
        }
        free(bounce);
    }
    return ret;
}

int blk_pwrite_sync(BlockBackend *blk, uint64_t offset, const void *buf,
                    uint64_t len)
{
    int err;
    void *bounce = bounce_if_needed(blk, buf, len, &err);
    if (err) {
        return err;
    }
    if (bounce) {
        memcpy(bounce, buf, len);
    }
    RwArg a = { offset, { bounce ? bounce : (void *)buf, (size_t)len } };
    int ret = run_sync(blk, submit_write, &a);
    free(bounce);
    return ret;
}

int blk_flush_sync(BlockBackend *blk)
{
    return run_sync(blk, submit_flush, NULL);
}
