/*
 * pattern-writer: a test device that makes a migration checkable.
 *
 * While running it writes one block per tick with contents derived from
 * (lba, generation), and remembers each block's generation as its device
 * state. After a migration (its state was loaded) the first start reads
 * every written block back and compares it with what the state says:
 * a lost write, a stale state or two writers would all show up as verify
 * errors in query-devices.
 *
 *   --device pattern-writer,id=ID,drive=NODE[,block-size=4096]
 *            [,blocks=256][,interval=10]
 */
#include "daemon/daemon.h"
#include "block/block.h"
#include "device/device.h"
#include "util/bytes.h"
#include "util/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define PW_MAX_BLOCKS 16384u
#define PW_MAX_BLOCK_SIZE (1024u * 1024)

typedef struct PatternWriter {
    Device parent;
    /* properties */
    BlockBackend *blk;
    uint32_t block_size;
    uint32_t blocks;
    uint32_t interval_ms;
    /* migrated state */
    uint32_t state_block_size;
    uint32_t generation;            /* last generation issued */
    uint64_t writes;                /* completed writes */
    uint32_t nr_gens;               /* live length of gens (== blocks) */
    uint32_t gens[PW_MAX_BLOCKS];   /* 0: never written */
    /* run time */
    bool running;
    uint64_t timer;
    uint8_t *buf;
    bool write_in_flight;
    uint32_t write_lba, write_gen;
    bool verify_pending;            /* state was loaded: check the disk */
    bool read_in_flight;
    uint32_t verify_next;
    uint64_t verified, verify_errors, write_errors, skipped_inactive;
} PatternWriter;

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

static void fill_pattern(uint8_t *buf, uint32_t size, uint32_t lba,
                         uint32_t gen)
{
    uint64_t seed = mix64(((uint64_t)lba << 32) | gen);
    for (uint32_t off = 0; off + 8 <= size; off += 8) {
        st_be64(buf + off, mix64(seed + off));
    }
}

static bool pattern_matches(const uint8_t *buf, uint32_t size, uint32_t lba,
                            uint32_t gen)
{
    uint64_t seed = mix64(((uint64_t)lba << 32) | gen);
    for (uint32_t off = 0; off + 8 <= size; off += 8) {
        if (ld_be64(buf + off) != mix64(seed + off)) {
            return false;
        }
    }
    return true;
}

static void pw_verify_next(PatternWriter *pw);

static void pw_read_done(void *opaque, int ret)
{
    PatternWriter *pw = opaque;
    uint32_t lba = pw->verify_next;
    pw->read_in_flight = false;
    if (ret < 0 || !pattern_matches(pw->buf, pw->block_size, lba,
                                    pw->gens[lba])) {
        pw->verify_errors++;
        log_ratelimited(LOG_ERROR, "%s: block %u does not hold generation %u"
                        " (%s)", pw->parent.id, lba, pw->gens[lba],
                        ret < 0 ? strerror(-ret) : "contents differ");
    } else {
        pw->verified++;
    }
    pw->verify_next++;
    pw_verify_next(pw);
}

/* Reads the next written block back; ends the verification at the end. */
static void pw_verify_next(PatternWriter *pw)
{
    while (pw->running && pw->verify_next < pw->nr_gens &&
           pw->gens[pw->verify_next] == 0) {
        pw->verify_next++;
    }
    if (!pw->running) {
        return;     /* resumes on the next start */
    }
    if (pw->verify_next >= pw->nr_gens) {
        pw->verify_pending = false;
        log_info("%s: verified %llu blocks after migration, %llu errors",
                 pw->parent.id, (unsigned long long)pw->verified,
                 (unsigned long long)pw->verify_errors);
        return;
    }
    struct iovec iov = { .iov_base = pw->buf, .iov_len = pw->block_size };
    uint64_t off = (uint64_t)pw->verify_next * pw->block_size;
    pw->read_in_flight = true;
    int rc = blk_preadv(pw->blk, off, &iov, 1, pw_read_done, pw);
    if (rc < 0) {
        pw_read_done(pw, rc);
    }
}

static void pw_write_done(void *opaque, int ret)
{
    PatternWriter *pw = opaque;
    pw->write_in_flight = false;
    if (ret < 0) {
        pw->write_errors++;
        log_ratelimited(LOG_WARN, "%s: write of block %u failed: %s",
                        pw->parent.id, pw->write_lba, strerror(-ret));
        return;
    }
    /* Recorded only once on disk, so the state never runs ahead of it. */
    pw->gens[pw->write_lba] = pw->write_gen;
    pw->writes++;
}

static int64_t pw_tick(EventLoop *loop, uint64_t id, void *opaque)
{
    PatternWriter *pw = opaque;
    if (!pw->running) {
        pw->timer = 0;
        return LOOP_TIMER_DONE;
    }
    if (pw->write_in_flight || pw->verify_pending) {
        return pw->interval_ms;
    }
    if (!blk_is_active(pw->blk)) {
        pw->skipped_inactive++;     /* not our disk (yet): never write */
        return pw->interval_ms;
    }
    uint32_t gen = pw->generation + 1 ? pw->generation + 1 : 1;
    uint32_t lba = (uint32_t)(mix64(gen) % pw->blocks);
    fill_pattern(pw->buf, pw->block_size, lba, gen);
    struct iovec iov = { .iov_base = pw->buf, .iov_len = pw->block_size };
    pw->generation = gen;
    pw->write_lba = lba;
    pw->write_gen = gen;
    pw->write_in_flight = true;
    int rc = blk_pwritev(pw->blk, (uint64_t)lba * pw->block_size, &iov, 1,
                         false, pw_write_done, pw);
    if (rc < 0) {
        pw_write_done(pw, rc);
    }
    return pw->interval_ms;
}

static bool pw_start(Device *dev, Error **errp)
{
    PatternWriter *pw = (PatternWriter *)dev;
    if (pw->running) {
        return true;
    }
    pw->running = true;
    if (pw->verify_pending && !pw->read_in_flight) {
        pw_verify_next(pw);
    }
    pw->timer = loop_add_timer(dev->loop, pw->interval_ms, pw_tick, pw);
    if (!pw->timer) {
        pw->running = false;
        error_setg(errp, "out of memory");
        return false;
    }
    return true;
}

static bool pw_stop(Device *dev, Error **errp)
{
    PatternWriter *pw = (PatternWriter *)dev;
    pw->running = false;
    if (pw->timer) {
        loop_del_timer(dev->loop, pw->timer);
        pw->timer = 0;
    }
    /* Quiesce: the state saved next must match the disk. */
    blk_drain(pw->blk);
    return true;
}

static bool pw_post_load(void *opaque, int version_id, Error **errp)
{
    PatternWriter *pw = opaque;
    if (pw->nr_gens != pw->blocks ||
        pw->state_block_size != pw->block_size) {
        error_setg(errp, "%s: state is for %u blocks of %u bytes, this device "
                   "has %u blocks of %u bytes", pw->parent.id, pw->nr_gens,
                   pw->state_block_size, pw->blocks, pw->block_size);
        return false;
    }
    pw->verify_pending = true;
    pw->verify_next = 0;
    pw->verified = pw->verify_errors = 0;
    return true;
}

static const VMStateField pw_fields[] = {
    VMSTATE_UINT32(state_block_size, PatternWriter),
    VMSTATE_UINT32(generation, PatternWriter),
    VMSTATE_UINT64(writes, PatternWriter),
    VMSTATE_VARRAY(gens, PatternWriter, VMS_U32, nr_gens, VMS_U32),
    VMSTATE_END_OF_LIST(),
};

static const VMStateDescription pw_vmsd = {
    .name = "pattern-writer",
    .version_id = 1,
    .minimum_version_id = 1,
    .post_load = pw_post_load,
    .fields = pw_fields,
};

static bool pw_check_geometry(PatternWriter *pw, Error **errp)
{
    uint32_t align = blk_alignment(pw->blk);
    if (pw->block_size < 512 || pw->block_size > PW_MAX_BLOCK_SIZE ||
        pw->block_size % 512 || (align && pw->block_size % align)) {
        error_setg(errp, "block-size must be a multiple of 512 (and of %u) "
                   "up to %u", align, PW_MAX_BLOCK_SIZE);
        return false;
    }
    if (pw->blocks == 0 || pw->blocks > PW_MAX_BLOCKS) {
        error_setg(errp, "blocks must be 1..%u", PW_MAX_BLOCKS);
        return false;
    }
    if ((uint64_t)pw->blocks * pw->block_size > blk_size(pw->blk)) {
        error_setg(errp, "%u blocks of %u bytes do not fit on '%s' "
                   "(%llu bytes)", pw->blocks, pw->block_size,
                   blk_name(pw->blk),
                   (unsigned long long)blk_size(pw->blk));
        return false;
    }
    if (pw->interval_ms == 0 || pw->interval_ms > 60000) {
        error_setg(errp, "interval must be 1..60000 ms");
        return false;
    }
    return true;
}

static bool pw_realize(Device *dev, KeyVal *props, Error **errp)
{
    PatternWriter *pw = (PatternWriter *)dev;
    const char *drive;
    if (!keyval_get_str(props, "drive", NULL, &drive, errp) ||
        !keyval_get_u32(props, "block-size", 4096, &pw->block_size, errp) ||
        !keyval_get_u32(props, "blocks", 256, &pw->blocks, errp) ||
        !keyval_get_u32(props, "interval", 10, &pw->interval_ms, errp)) {
        return false;
    }
    if (!drive) {
        error_setg(errp, "pattern-writer needs drive=NODE");
        return false;
    }
    pw->blk = blk_by_name(drive);
    if (!pw->blk) {
        error_setg(errp, "no block node '%s'", drive);
        return false;
    }
    if (blk_is_read_only(pw->blk)) {
        error_setg(errp, "block node '%s' is read-only", drive);
        pw->blk = NULL;
        return false;
    }
    if (!blk_claim(pw->blk, dev->id, errp)) {
        pw->blk = NULL;
        return false;
    }
    if (!pw_check_geometry(pw, errp) ||
        !blk_attach_loop(pw->blk, dev->loop, errp)) {
        return false;
    }
    if (posix_memalign((void **)&pw->buf, 4096, pw->block_size) != 0) {
        error_setg(errp, "out of memory");
        return false;
    }
    pw->state_block_size = pw->block_size;
    pw->nr_gens = pw->blocks;
    return true;
}

static void pw_unrealize(Device *dev)
{
    PatternWriter *pw = (PatternWriter *)dev;
    if (pw->blk) {
        pw_stop(dev, NULL);
        blk_unclaim(pw->blk);
    }
    free(pw->buf);
}

static void pw_query(Device *dev, json_object *info)
{
    PatternWriter *pw = (PatternWriter *)dev;
    json_object_object_add(info, "drive",
                           json_object_new_string(blk_name(pw->blk)));
    json_object_object_add(info, "block-size",
                           json_object_new_int64(pw->block_size));
    json_object_object_add(info, "blocks", json_object_new_int64(pw->blocks));
    json_object_object_add(info, "writes",
                           json_object_new_int64((int64_t)pw->writes));
    json_object_object_add(info, "generation",
                           json_object_new_int64(pw->generation));
    json_object_object_add(info, "write-errors",
                           json_object_new_int64((int64_t)pw->write_errors));
    json_object_object_add(info, "verifying",
                           json_object_new_boolean(pw->verify_pending));
    json_object_object_add(info, "verified-blocks",
                           json_object_new_int64((int64_t)pw->verified));
    json_object_object_add(info, "verify-errors",
                           json_object_new_int64((int64_t)pw->verify_errors));
}

static const DeviceProperty pw_properties[] = {
    { "drive", "str", NULL, "block node written to (writable)" },
    { "block-size", "uint32", "4096", "bytes per pattern block" },
    { "blocks", "uint32", "256", "number of blocks cycled through" },
    { "interval", "uint32", "10", "milliseconds between two writes" },
    { NULL, NULL, NULL, NULL },
};

static const DeviceClass pattern_writer_class = {
    .type = "pattern-writer",
    .description = "test device: writes verifiable patterns on a timer",
    .instance_size = sizeof(PatternWriter),
    .properties = pw_properties,
    .realize = pw_realize,
    .unrealize = pw_unrealize,
    .stop = pw_stop,
    .start = pw_start,
    .vmsd = &pw_vmsd,
    .query = pw_query,
};

void pattern_writer_register(void)
{
    device_class_register(&pattern_writer_class);
}
