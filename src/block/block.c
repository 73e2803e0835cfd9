/* Block backends: opening raw images, the process-wide list, properties. */
#include "block/block-int.h"
#include "block/ownership.h"
#include "util/log.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static BlockBackend *blk_list;

BlockBackend *blk_by_name(const char *node_name)
{
    for (BlockBackend *b = blk_list; b; b = b->next) {
        if (strcmp(b->node_name, node_name) == 0) {
            return b;
        }
    }
    return NULL;
}

BlockBackend *blk_next(BlockBackend *blk)
{
    return blk ? blk->next : blk_list;
}

const char *blk_name(const BlockBackend *blk)
{
    return blk->node_name;
}

bool blk_claim(BlockBackend *blk, const char *user, Error **errp)
{
    if (blk->user) {
        error_setg(errp, "block node '%s' is already used by device '%s'",
                   blk->node_name, blk->user);
        return false;
    }
    blk->user = strdup(user);
    if (!blk->user) {
        error_setg(errp, "out of memory");
        return false;
    }
    return true;
}

void blk_unclaim(BlockBackend *blk)
{
    free(blk->user);
    blk->user = NULL;
}

const char *blk_user(const BlockBackend *blk)
{
    return blk->user;
}

const char *blk_filename(const BlockBackend *blk)
{
    return blk->filename;
}

uint64_t blk_size(const BlockBackend *blk)
{
    return blk->size;
}

bool blk_is_read_only(const BlockBackend *blk)
{
    return blk->read_only;
}

uint32_t blk_alignment(const BlockBackend *blk)
{
    return blk->align;
}

unsigned blk_in_flight(const BlockBackend *blk)
{
    return blk->in_flight;
}

EventLoop *blk_get_loop(const BlockBackend *blk)
{
    return blk->loop;
}

bool blk_is_active(const BlockBackend *blk)
{
    return blk->active;
}

void blk_get_stats(const BlockBackend *blk, BlockStats *stats)
{
    *stats = blk->stats;
}

/*
 * O_DIRECT alignment: a 512-byte read at offset 0 into a page-aligned
 * buffer succeeds on 512-byte-sector storage and fails with EINVAL on
 * 4K-sector storage (the probe QEMU's raw driver also relies on).
 */
static uint32_t probe_direct_alignment(int fd)
{
    void *buf;
    if (posix_memalign(&buf, 4096, 4096) != 0) {
        return 4096;
    }
    ssize_t n = pread(fd, buf, 512, 0);
    free(buf);
    return (n < 0 && errno == EINVAL) ? 4096 : 512;
}

/* QEMU's rule for node names (id_wellformed(), node_name[32]): a
 * letter, then letters, digits, '-', '.' or '_', at most 31 in all.
 * Anything else could not be named in a device's drive= property. */
#define BLK_NODE_NAME_MAX 31

static bool node_name_ok(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > BLK_NODE_NAME_MAX ||
        !isalpha((unsigned char)*name)) {
        return false;
    }
    for (const char *p = name; *p; p++) {
        if (!isalnum((unsigned char)*p) && !strchr("-._", *p)) {
            return false;
        }
    }
    return true;
}

static bool check_options(const BlockOpenOptions *opts, Error **errp)
{
    if (!opts->node_name || !opts->node_name[0]) {
        error_setg(errp, "block backend needs a node name");
        return false;
    }
    if (!node_name_ok(opts->node_name)) {
        error_setg(errp, "node-name '%s' must start with a letter and hold "
                   "only letters, digits, '-', '.' and '_', at most %d "
                   "characters", opts->node_name, BLK_NODE_NAME_MAX);
        return false;
    }
    if (!opts->filename || !opts->filename[0]) {
        error_setg(errp, "block backend '%s' needs a filename",
                   opts->node_name);
        return false;
    }
    if (blk_by_name(opts->node_name)) {
        error_setg(errp, "block backend '%s' already exists",
                   opts->node_name);
        return false;
    }
    if (opts->queue_depth > BLK_MAX_QUEUE_DEPTH) {
        error_setg(errp, "block backend '%s': queue depth %u exceeds %u",
                   opts->node_name, opts->queue_depth, BLK_MAX_QUEUE_DEPTH);
        return false;
    }
    return true;
}

static bool open_file(BlockBackend *blk, Error **errp)
{
    int flags = (blk->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC;
    if (blk->direct) {
        flags |= O_DIRECT;
    }
    blk->fd = open(blk->filename, flags);
    if (blk->fd < 0) {
        error_setg_errno(errp, errno, "cannot open '%s'", blk->filename);
        return false;
    }
    struct stat st;
    if (fstat(blk->fd, &st) < 0 ||
        (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))) {
        error_setg(errp, "'%s' is not a regular file or block device",
                   blk->filename);
        return false;
    }
    off_t end = lseek(blk->fd, 0, SEEK_END);
    if (end < 0) {
        error_setg_errno(errp, errno, "cannot size '%s'", blk->filename);
        return false;
    }
    blk->size = (uint64_t)end;
    blk->align = blk->direct ? probe_direct_alignment(blk->fd) : 1;
    return true;
}

static void blk_free(BlockBackend *blk)
{
    if (blk->fd >= 0) {
        close(blk->fd);
    }
    free(blk->node_name);
    free(blk->user);
    free(blk->filename);
    free(blk);
}

BlockBackend *blk_open(const BlockOpenOptions *opts, Error **errp)
{
    if (!check_options(opts, errp)) {
        return NULL;
    }
    BlockBackend *blk = calloc(1, sizeof(*blk));
    if (!blk) {
        error_setg(errp, "out of memory");
        return NULL;
    }
    blk->fd = -1;
    blk->efd = -1;
    blk->node_name = strdup(opts->node_name);
    blk->filename = strdup(opts->filename);
    blk->read_only = opts->read_only;
    blk->debug_delay_ms = opts->debug_delay_ms;
    blk->delayed_tail = &blk->delayed;
    blk->direct = opts->direct;
    blk->discard = opts->discard;
    blk->queue_depth = opts->queue_depth ? opts->queue_depth
                                         : BLK_DEFAULT_QUEUE_DEPTH;
    if (!blk->node_name || !blk->filename) {
        error_setg(errp, "out of memory");
        blk_free(blk);
        return NULL;
    }
    if (!open_file(blk, errp)) {
        blk_free(blk);
        return NULL;
    }
    if (!blk->read_only && !blk_ownership_adopt(blk, errp)) {
        blk_free(blk);
        return NULL;
    }
    if (!blk_io_init(blk, errp)) {
        blk_ownership_release(blk);
        blk_free(blk);
        return NULL;
    }
    BlockBackend **tail = &blk_list;
    while (*tail) {
        tail = &(*tail)->next;
    }
    *tail = blk;
    log_debug("block '%s': opened '%s' (%llu bytes%s%s)", blk->node_name,
              blk->filename, (unsigned long long)blk->size,
              blk->read_only ? ", read-only" : "",
              blk->direct ? ", direct" : "");
    return blk;
}

void blk_close(BlockBackend *blk)
{
    if (!blk) {
        return;
    }
    blk_drain(blk);
    for (BlockBackend **p = &blk_list; *p; p = &(*p)->next) {
        if (*p == blk) {
            *p = blk->next;
            break;
        }
    }
    blk_io_cleanup(blk);
    blk_ownership_release(blk);
    blk_free(blk);
}

bool blk_attach_loop(BlockBackend *blk, EventLoop *loop, Error **errp)
{
    if (!loop) {
        error_setg(errp, "block backend '%s': no loop to attach to",
                   blk->node_name);
        return false;
    }
    if (blk->in_flight) {
        error_setg(errp, "block backend '%s': cannot move to another loop "
                   "with %u requests in flight", blk->node_name,
                   blk->in_flight);
        return false;
    }
    if (blk->loop == loop) {
        return true;
    }
    blk_io_detach_loop(blk);
    return blk_io_attach_loop(blk, loop, errp);
}
