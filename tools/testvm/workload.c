/* The verifying workload (see workload.h). */
#include "workload.h"

#include <stdlib.h>
#include <string.h>

#include "util/bytes.h"
#include "util/log.h"
#include "util/loop.h"

#define WL_MAGIC 0x574c4f44u        /* "WLOD" */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

void workload_fill(uint8_t *buf, unsigned disk, uint64_t block, uint32_t gen)
{
    if (gen == 0) {
        memset(buf, 0, TVM_BLOCK);
        return;
    }
    uint64_t seed = mix64(((uint64_t)disk << 56) ^ (block << 24) ^ gen);
    for (unsigned off = 0; off < TVM_BLOCK; off += 8) {
        st_be64(buf + off, mix64(seed + off));
    }
}

bool workload_check(const uint8_t *buf, unsigned disk, uint64_t block,
                    uint32_t gen)
{
    uint8_t want[TVM_BLOCK];
    workload_fill(want, disk, block, gen);
    return memcmp(buf, want, TVM_BLOCK) == 0;
}

static uint64_t next_rand(Workload *wl)
{
    /* splitmix64: the generator's state is one word in guest memory. */
    wl->st->rng += 0x9e3779b97f4a7c15ull;
    return mix64(wl->st->rng);
}

static uint32_t *gens(Workload *wl, unsigned disk)
{
    return gm_ptr(wl->gm, wl->st->gens_gpa[disk],
                  wl->st->disk_blocks[disk] * 4);
}

static uint8_t *slot_buf(Workload *wl, uint32_t tag)
{
    return gm_ptr(wl->gm, wl->st->bufs_gpa + (uint64_t)tag * TVM_BLOCK,
                  TVM_BLOCK);
}

static void dirty_state(Workload *wl)
{
    gm_dirty(wl->gm, wl->st, sizeof(*wl->st));
}

static void read_done(Workload *wl, WlSlot *s, uint32_t tag, bool ok)
{
    WorkloadStats *st = &wl->st->stats;
    if (!ok || s->gen == WL_UNKNOWN || wl->st->no_verify) {
        return;
    }
    st->verified++;
    if (!workload_check(slot_buf(wl, tag), s->disk, s->block, s->gen)) {
        st->verify_errors++;
        log_ratelimited(LOG_ERROR, "testvm: verify error: disk %u block "
                        "%llu does not hold generation %u", s->disk,
                        (unsigned long long)s->block, s->gen);
    }
}

static void io_done(void *opaque, uint32_t tag, bool ok, uint16_t status)
{
    Workload *wl = opaque;
    WorkloadState *ws = wl->st;
    if (tag >= ws->nr_queues * ws->qd || !wl->slots[tag].busy) {
        ws->stats.verify_errors++;
        log_ratelimited(LOG_ERROR, "testvm: completion for workload tag "
                        "%u that is not in flight", tag);
        dirty_state(wl);
        return;
    }
    if (wl->lat && wl->submit_ns[tag]) {
        lat_record(wl->lat, clock_ns() - wl->submit_ns[tag]);
    }
    WlSlot *s = &wl->slots[tag];
    uint32_t *g = &gens(wl, s->disk)[s->block];
    if (!ok) {
        ws->stats.io_errors++;
        log_ratelimited(LOG_ERROR, "testvm: %s disk %u block %llu failed "
                        "(status 0x%x)", s->write ? "write" : "read",
                        s->disk, (unsigned long long)s->block, status);
    }
    if (s->write) {
        ws->stats.writes++;
        *g = ok ? s->gen : WL_UNKNOWN;
    } else {
        ws->stats.reads++;
        read_done(wl, s, tag, ok);
        *g &= ~WL_BUSY;
    }
    s->busy = 0;
    gm_dirty(wl->gm, g, sizeof(*g));
    gm_dirty(wl->gm, s, sizeof(*s));
    dirty_state(wl);
}

/* Picks a block with nothing in flight; false after a few busy tries. */
static bool pick_block(Workload *wl, unsigned *disk, uint64_t *block)
{
    for (int tries = 0; tries < 8; tries++) {
        uint64_t r = next_rand(wl);
        *disk = (unsigned)(r % wl->st->nr_disks);
        *block = (r >> 8) % wl->st->disk_blocks[*disk];
        if (!(gens(wl, *disk)[*block] & WL_BUSY)) {
            return true;
        }
    }
    return false;
}

static bool submit_one(Workload *wl, unsigned q, uint32_t tag)
{
    WorkloadState *ws = wl->st;
    unsigned disk;
    uint64_t block;
    if (!pick_block(wl, &disk, &block)) {
        return false;
    }
    uint32_t *g = &gens(wl, disk)[block];
    WlSlot *s = &wl->slots[tag];
    bool write = next_rand(wl) % 100 < ws->write_pct;
    *s = (WlSlot){ .busy = 1, .write = write, .disk = (uint8_t)disk,
                   .block = block, .gen = *g };
    if (write) {
        ws->next_gen = ws->next_gen + 1 >= WL_UNKNOWN ? 1 : ws->next_gen + 1;
        s->gen = ws->next_gen;
    }
    if (ws->no_verify) {
        /* Like fio: the buffers go out as they are, reads are not checked. */
    } else if (write) {
        workload_fill(slot_buf(wl, tag), disk, block, s->gen);
    } else {
        memset(slot_buf(wl, tag), 0xa5, TVM_BLOCK);
    }
    gm_dirty(wl->gm, slot_buf(wl, tag), TVM_BLOCK);
    if (wl->lat) {
        wl->submit_ns[tag] = clock_ns();
    }
    if (!wl->ops->submit(wl->drv, q, write, disk, block,
                         ws->bufs_gpa + (uint64_t)tag * TVM_BLOCK, tag)) {
        s->busy = 0;
        return false;
    }
    *g |= WL_BUSY;
    gm_dirty(wl->gm, g, sizeof(*g));
    gm_dirty(wl->gm, s, sizeof(*s));
    dirty_state(wl);
    return true;
}

static void refill(Workload *wl, unsigned q)
{
    bool any = false;
    for (uint32_t i = 0; i < wl->st->qd; i++) {
        uint32_t tag = q * wl->st->qd + i;
        if (!wl->slots[tag].busy) {
            if (!submit_one(wl, q, tag)) {
                break;
            }
            any = true;
        }
    }
    if (any) {
        wl->ops->kick(wl->drv, q);
    }
}

unsigned workload_step(Workload *wl)
{
    unsigned n = 0;
    for (unsigned q = 0; q < wl->st->nr_queues; q++) {
        n += wl->ops->reap(wl->drv, q, io_done, wl);
        if (!wl->paused) {
            refill(wl, q);
        }
    }
    return n;
}

unsigned workload_in_flight(const Workload *wl)
{
    unsigned n = 0;
    for (uint32_t i = 0; i < wl->st->nr_queues * wl->st->qd; i++) {
        n += wl->slots[i].busy;
    }
    return n;
}

void workload_run(Workload *wl, uint64_t ms)
{
    uint64_t end = clock_ms() + ms;
    while (clock_ms() < end) {
        if (workload_step(wl) == 0) {
            wl->ops->wait(wl->drv, 1);
        }
    }
}

bool workload_drain(Workload *wl, int timeout_ms)
{
    bool was = wl->paused;
    uint64_t end = clock_ms() + (uint64_t)timeout_ms;
    wl->paused = true;
    while (workload_in_flight(wl) && clock_ms() < end) {
        if (workload_step(wl) == 0) {
            wl->ops->wait(wl->drv, 1);
        }
    }
    wl->paused = was;
    return workload_in_flight(wl) == 0;
}

const WorkloadStats *workload_stats(const Workload *wl)
{
    return &wl->st->stats;
}

bool workload_track_latency(Workload *wl, LatHist *h, Error **errp)
{
    size_t n = (size_t)wl->st->nr_queues * wl->st->qd;
    if (h && !wl->submit_ns) {
        wl->submit_ns = calloc(n, sizeof(uint64_t));
        if (!wl->submit_ns) {
            error_setg(errp, "out of memory");
            return false;
        }
    }
    if (wl->submit_ns) {
        /* I/O submitted before now has no start time: not recorded. */
        memset(wl->submit_ns, 0, n * sizeof(uint64_t));
    }
    wl->lat = h;
    return true;
}

static bool alloc_tables(Workload *wl, Error **errp)
{
    WorkloadState *ws = wl->st;
    uint64_t nslots = (uint64_t)ws->nr_queues * ws->qd;
    ws->slots_gpa = gm_alloc(wl->gm, nslots * sizeof(WlSlot), errp);
    ws->bufs_gpa = ws->slots_gpa ? gm_alloc(wl->gm, nslots * TVM_BLOCK, errp)
                                 : 0;
    if (!ws->bufs_gpa) {
        return false;
    }
    for (unsigned d = 0; d < ws->nr_disks; d++) {
        ws->gens_gpa[d] = gm_alloc(wl->gm, ws->disk_blocks[d] * 4, errp);
        if (!ws->gens_gpa[d]) {
            return false;
        }
    }
    return true;
}

static Workload *wl_host(GuestMem *gm, const BlockDrvOps *ops, void *drv,
                         uint64_t st_gpa)
{
    Workload *wl = calloc(1, sizeof(*wl));
    if (wl) {
        wl->gm = gm;
        wl->ops = ops;
        wl->drv = drv;
        wl->st = gm_ptr(gm, st_gpa, sizeof(WorkloadState));
    }
    return wl;
}

Workload *workload_new(GuestMem *gm, const BlockDrvOps *ops, void *drv,
                       const WorkloadConfig *cfg, Error **errp)
{
    BlockDrvInfo info = { 0 };
    ops->info(drv, &info);
    uint64_t st_gpa = gm_alloc(gm, sizeof(WorkloadState), errp);
    Workload *wl = st_gpa ? wl_host(gm, ops, drv, st_gpa) : NULL;
    if (!wl) {
        return NULL;
    }
    WorkloadState *ws = wl->st;
    *ws = (WorkloadState){ .magic = WL_MAGIC, .nr_queues = info.nr_queues,
                           .qd = info.qd, .nr_disks = info.nr_disks,
                           .write_pct = cfg->write_pct, .rng = cfg->seed,
                           .no_verify = cfg->no_verify };
    for (unsigned d = 0; d < info.nr_disks; d++) {
        uint64_t b = info.disk_blocks[d];
        ws->disk_blocks[d] = cfg->max_blocks && cfg->max_blocks < b
                             ? cfg->max_blocks : b;
    }
    if (!alloc_tables(wl, errp)) {
        error_prepend(errp, "workload: ");
        free(wl);
        return NULL;
    }
    wl->slots = gm_ptr(gm, ws->slots_gpa, sizeof(WlSlot));
    gm_header(gm)->workload_gpa = st_gpa;
    gm_dirty(gm, gm_header(gm), sizeof(GuestHeader));
    dirty_state(wl);
    return wl;
}

Workload *workload_attach(GuestMem *gm, const BlockDrvOps *ops, void *drv,
                          Error **errp)
{
    uint64_t st_gpa = gm_header(gm)->workload_gpa;
    WorkloadState *ws = gm_ptr(gm, st_gpa, sizeof(WorkloadState));
    if (!ws || ws->magic != WL_MAGIC || ws->nr_disks > TVM_MAX_DISKS ||
        !gm_ptr(gm, ws->slots_gpa,
                (uint64_t)ws->nr_queues * ws->qd * sizeof(WlSlot))) {
        error_setg(errp, "guest memory holds no workload state");
        return NULL;
    }
    Workload *wl = wl_host(gm, ops, drv, st_gpa);
    if (!wl) {
        error_setg(errp, "out of memory");
        return NULL;
    }
    wl->slots = gm_ptr(gm, ws->slots_gpa, sizeof(WlSlot));
    return wl;
}

void workload_free(Workload *wl)
{
    if (wl) {
        free(wl->submit_ns);
    }
    free(wl);
}
