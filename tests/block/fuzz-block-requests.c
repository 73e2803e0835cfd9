/*
 * Fuzz target: sequences of guest-shaped block requests (any offset,
 * length, iovec split and buffer alignment) and ownership transitions,
 * checked against a shadow copy of each disk.
 *
 * Two backends on memfd images: "plain" (no alignment) and "strict"
 * (512-byte alignment enforced as for O_DIRECT, without needing a file
 * system that supports it). Every call must return exactly what the model
 * predicts; data read must match the shadow. Any mismatch aborts.
 *
 * Input: 10-byte records
 *   [0] op: 0 read, 1 write, 2 flush, 3 discard, 4 zeroes, 5 zeroes+unmap,
 *           6 inactivate, 7 activate
 *   [1] flags: bit0 strict disk, bit1 raw offset, bit2 raw length,
 *       bit3 misaligned buffer, bits 4-6 iovec count - 1
 *   [2..5] offset (be32), [6..9] length (be32)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "block/block-int.h"
#include "block/ownership.h"
#include "util/bytes.h"
#include "util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DISK 65536u
#define STRICT_ALIGN 512u
#define MAX_OPS 64

typedef struct Disk {
    BlockBackend *blk;
    uint8_t shadow[DISK];
} Disk;

static Disk disks[2];
static uint8_t io_buf[2 * DISK + 4096] __attribute__((aligned(4096)));

#define CHECK(cond)                                                     \
    do {                                                                \
        if (!(cond)) {                                                  \
            fprintf(stderr, "model mismatch: %s (line %d)\n", #cond,    \
                    __LINE__);                                          \
            abort();                                                    \
        }                                                               \
    } while (0)

static BlockBackend *open_memfd(const char *name)
{
    int fd = memfd_create(name, MFD_CLOEXEC);
    char path[64];
    CHECK(fd >= 0 && ftruncate(fd, DISK) == 0);
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    BlockOpenOptions opts = { .node_name = name, .filename = path,
                              .discard = true, .queue_depth = 8 };
    BlockBackend *blk = blk_open(&opts, NULL);
    CHECK(blk);
    return blk;     /* fd stays open: the image lives as long as we do */
}

static void init_once(void)
{
    if (disks[0].blk) {
        return;
    }
    log_set_level(LOG_ERROR);
    blk_ownership_init(true);
    disks[0].blk = open_memfd("plain");
    disks[1].blk = open_memfd("strict");
    disks[1].blk->align = STRICT_ALIGN;
}

typedef struct Op {
    uint8_t kind, flags;
    uint64_t offset, len;
} Op;

static void done_cb(void *opaque, int ret)
{
    int *calls = opaque;
    CHECK(ret == 0);
    (*calls)++;
}

/* Builds up to 8 segments over io_buf; returns the count. */
static int build_iov(const Op *op, uint32_t align, struct iovec *iov)
{
    int n = ((op->flags >> 4) & 7) + 1;
    uint8_t *base = io_buf + ((op->flags & 8) ? 1 : 0);
    uint64_t seg = op->len / (uint64_t)n;
    seg -= seg % align;
    uint64_t used = 0;
    for (int i = 0; i < n; i++) {
        uint64_t len = i == n - 1 ? op->len - used : seg;
        iov[i] = (struct iovec){ base + (op->len <= 2 * DISK ? used : 0),
                                 (size_t)len };
        used += len;
    }
    return n;
}

static bool iov_misaligned(const struct iovec *iov, int n, uint32_t align)
{
    for (int i = 0; i < n; i++) {
        if (((uintptr_t)iov[i].iov_base | iov[i].iov_len) % align) {
            return true;
        }
    }
    return false;
}

static void run_rw(Disk *d, const Op *op, uint32_t align, bool owned)
{
    struct iovec iov[8];
    int n = build_iov(op, align, iov);
    bool bad = op->len > DISK || op->offset > DISK - op->len ||
               (op->offset | op->len) % align || iov_misaligned(iov, n, align);
    bool write = op->kind == 1;
    if (write && op->len <= 2 * DISK) {
        for (uint64_t i = 0; i < op->len; i++) {
            ((uint8_t *)iov[0].iov_base)[i] = (uint8_t)(op->offset + i * 3);
        }
    }
    int calls = 0;
    int ret = write ? blk_pwritev(d->blk, op->offset, iov, n, op->flags & 1,
                                  done_cb, &calls)
                    : blk_preadv(d->blk, op->offset, iov, n, done_cb, &calls);
    blk_drain(d->blk);
    if (bad) {
        CHECK(ret == -EINVAL || (write && !owned && ret == -EPERM));
    } else if (write && !owned) {
        CHECK(ret == -EPERM);
    } else {
        CHECK(ret == 0);
    }
    CHECK(calls == (ret == 0));
    if (ret != 0) {
        return;
    }
    uint8_t *buf = iov[0].iov_base;
    if (write) {
        memcpy(d->shadow + op->offset, buf, op->len);
    } else {
        CHECK(memcmp(d->shadow + op->offset, buf, op->len) == 0);
    }
}

static void run_range(Disk *d, const Op *op, uint32_t align, bool owned)
{
    bool bad = op->len > DISK || op->offset > DISK - op->len ||
               (op->offset | op->len) % align;
    int calls = 0, ret;
    if (op->kind == 2) {
        bad = false;
        ret = blk_flush(d->blk, done_cb, &calls);
    } else if (op->kind == 3) {
        ret = blk_discard(d->blk, op->offset, op->len, done_cb, &calls);
    } else {
        ret = blk_write_zeroes(d->blk, op->offset, op->len, op->kind == 5,
                               done_cb, &calls);
    }
    blk_drain(d->blk);
    CHECK(ret == (!owned ? -EPERM : bad ? -EINVAL : 0));
    CHECK(calls == (ret == 0));
    if (ret == 0 && op->kind != 2) {
        memset(d->shadow + op->offset, 0, op->len);
    }
}

static void run_op(const Op *op)
{
    bool owned = blk_ownership_is_owned();
    Disk *d = &disks[op->flags & 1];
    uint32_t align = (op->flags & 1) ? STRICT_ALIGN : 1;
    switch (op->kind) {
    case 0:
    case 1:
        run_rw(d, op, align, owned);
        break;
    case 6:
        CHECK(blk_ownership_inactivate_all(NULL));
        CHECK(!blk_ownership_is_owned() && !blk_is_active(d->blk));
        break;
    case 7:
        CHECK(blk_ownership_activate_all(NULL));
        CHECK(blk_ownership_is_owned() && blk_is_active(d->blk));
        break;
    default:
        run_range(d, op, align, owned);
        break;
    }
    CHECK(blk_in_flight(d->blk) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    /* Every input starts with the disks owned. */
    CHECK(blk_ownership_activate_all(NULL));
    for (size_t i = 0; i + 10 <= size && i < MAX_OPS * 10; i += 10) {
        Op op = { .kind = data[i] & 7, .flags = data[i + 1] };
        uint32_t off = ld_be32(data + i + 2), len = ld_be32(data + i + 6);
        op.offset = (op.flags & 2) ? off : off % (DISK + 1);
        op.len = (op.flags & 4) ? len : len % (DISK + 1);
        run_op(&op);
    }
    return 0;
}
