/* Live migration of a test VM (see migrate.h). */
#include "migrate.h"

#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "util/loop.h"

static const char *const phase_names[] = {
    [MIG_PHASE_NONE] = "none", [MIG_PHASE_SETUP] = "setup",
    [MIG_PHASE_PRECOPY] = "precopy", [MIG_PHASE_STOP] = "stop",
    [MIG_PHASE_STOP_COPY] = "stop-copy", [MIG_PHASE_RESUME] = "resume",
    [MIG_PHASE_SWITCHOVER] = "switchover",
};

const char *mig_phase_name(MigPhase phase)
{
    return phase <= MIG_PHASE_SWITCHOVER ? phase_names[phase] : "?";
}

bool mig_phase_parse(const char *s, MigPhase *phase)
{
    for (unsigned i = 0; i <= MIG_PHASE_SWITCHOVER; i++) {
        if (strcmp(s, phase_names[i]) == 0) {
            *phase = (MigPhase)i;
            return true;
        }
    }
    return false;
}

typedef struct MigCtx {
    TestVm *src;
    TestVm *dst;
    const MigOptions *o;
    const MigHooks *h;
    MigResult *res;
    uint64_t *bitmap;
    bool logging;
    bool src_stopped;
} MigCtx;

static bool phase_done(MigCtx *m, MigPhase phase, Error **errp)
{
    return !m->h->inject || m->h->inject(m->h->opaque, phase, errp);
}

/* Copies the pages set in the bitmap from source to destination memory
 * (the "stream"), clearing them. Returns how many. The source device's
 * DMA requests (memory mapped without an fd) are answered on the way: a
 * first full copy can take longer than their deadline. */
static uint64_t copy_dirty(MigCtx *m)
{
    GuestMem *s = m->src->gm, *d = m->dst->gm;
    Transport *t = m->src->t;
    uint64_t n = 0;
    for (uint64_t w = 0; w < gm_bitmap_words(s); w++) {
        if (t->ops->serve_dma && w % 64 == 0) {
            t->ops->serve_dma(t);       /* every 4096 pages at most */
        }
        for (uint64_t bits = m->bitmap[w]; bits; bits &= bits - 1) {
            uint64_t off = (w * 64 + (uint64_t)__builtin_ctzll(bits)) *
                           GM_PAGE;
            memcpy(d->base + off, s->base + off, GM_PAGE);
            n++;
        }
        m->bitmap[w] = 0;
    }
    m->res->pages_copied += n;
    return n;
}

static bool collect_and_copy(MigCtx *m, uint64_t *copied, Error **errp)
{
    Transport *t = m->src->t;
    if (!t->ops->dirty_report(t, m->bitmap, errp)) {
        return false;
    }
    gm_dirty_collect(m->src->gm, m->bitmap);
    *copied = copy_dirty(m);
    return true;
}

static bool setup(MigCtx *m, Error **errp)
{
    Transport *t = m->src->t;
    m->res->failed_phase = MIG_PHASE_SETUP;
    if (m->h->check && !m->h->check(m->h->opaque, errp)) {
        return false;
    }
    m->dst->gm = gm_new(m->src->gm->size, errp);
    m->bitmap = calloc(gm_bitmap_words(m->src->gm), sizeof(uint64_t));
    if (!m->dst->gm || !m->bitmap) {
        return false;
    }
    if (!t->ops->dirty_start(t, errp)) {
        return false;
    }
    m->logging = true;
    gm_dirty_all(m->src->gm);
    return phase_done(m, MIG_PHASE_SETUP, errp);
}

static bool precopy(MigCtx *m, Error **errp)
{
    unsigned max = m->o->max_precopy_rounds ? m->o->max_precopy_rounds : 8;
    uint64_t ms = m->o->precopy_ms ? m->o->precopy_ms : 20;
    uint64_t stop = m->o->stop_pages ? m->o->stop_pages : 64;
    m->res->failed_phase = MIG_PHASE_PRECOPY;
    for (unsigned r = 0; r < max; r++) {
        uint64_t n;
        if (!collect_and_copy(m, &n, errp)) {
            return false;
        }
        m->res->precopy_rounds = r + 1;
        workload_run(m->src->wl, ms);
        if (m->h->precopy_round) {
            m->h->precopy_round(m->h->opaque, m->src, r);
        }
        if (n < stop && r > 0) {
            break;
        }
    }
    return phase_done(m, MIG_PHASE_PRECOPY, errp);
}

/* Microseconds since *t0, which moves on to now. */
static uint64_t lap_us(uint64_t *t0)
{
    uint64_t now = clock_ns(), us = (now - *t0) / 1000;
    *t0 = now;
    return us;
}

/* The VM pauses: no guest step runs from here on the source. */
static bool stop_source(MigCtx *m, ByteBuf *state, Error **errp)
{
    Transport *t = m->src->t;
    MigTimes *tm = &m->res->times;
    uint64_t n, t0 = clock_ns();
    m->res->in_flight_at_stop = workload_in_flight(m->src->wl);
    m->src_stopped = true;
    m->res->failed_phase = MIG_PHASE_STOP;
    if (!t->ops->mig_set_state(t, VFU_MIG_STOP, errp)) {
        return false;
    }
    tm->quiesce_us = lap_us(&t0);
    if (!phase_done(m, MIG_PHASE_STOP, errp)) {
        return false;
    }
    m->res->failed_phase = MIG_PHASE_STOP_COPY;
    t0 = clock_ns();
    if (!collect_and_copy(m, &n, errp)) {
        return false;
    }
    tm->memory_us = lap_us(&t0);
    if (!t->ops->mig_set_state(t, VFU_MIG_STOP_COPY, errp) ||
        !t->ops->mig_read(t, state, errp)) {
        return false;
    }
    tm->save_us = lap_us(&t0);
    m->res->state_size = state->len;
    return phase_done(m, MIG_PHASE_STOP_COPY, errp);
}

static bool resume_destination(MigCtx *m, const ByteBuf *state,
                               Error **errp)
{
    Transport *t = m->dst->t;
    uint64_t t0 = clock_ns();
    m->res->failed_phase = MIG_PHASE_RESUME;
    if (!t->ops->map_memory(t, m->dst->gm, errp) ||
        !gm_attach(m->dst->gm, errp) ||
        !t->ops->mig_set_state(t, VFU_MIG_STOP, errp) ||
        !t->ops->mig_set_state(t, VFU_MIG_RESUMING, errp) ||
        !t->ops->mig_write(t, state->data, state->len, errp) ||
        !t->ops->mig_set_state(t, VFU_MIG_STOP, errp)) {
        error_prepend(errp, "destination: ");
        return false;
    }
    m->res->times.load_us = lap_us(&t0);
    return phase_done(m, MIG_PHASE_RESUME, errp);
}

static bool switchover(MigCtx *m, Error **errp)
{
    TestVm *d = m->dst;
    m->res->failed_phase = MIG_PHASE_SWITCHOVER;
    /* Injected before the handoff: once the disks moved there is no way
     * back to the source. */
    if (!phase_done(m, MIG_PHASE_SWITCHOVER, errp)) {
        return false;
    }
    uint64_t t0 = clock_ns();
    if (m->h->switchover && !m->h->switchover(m->h->opaque, errp)) {
        return false;
    }
    m->res->times.handoff_us = lap_us(&t0);
    d->drv = nvme_drv_attach(d->t, d->gm, errp);
    if (!d->drv || !d->t->ops->mig_set_state(d->t, VFU_MIG_RUNNING, errp)) {
        return false;
    }
    d->wl = workload_attach(d->gm, &d->drv->ops, d->drv, errp);
    m->res->times.start_us = lap_us(&t0);
    return d->wl != NULL;
}

/* Back to where the source was: device RUNNING, logging off. */
static void recover_source(MigCtx *m)
{
    Transport *t = m->src->t;
    Error *err = NULL;
    if (m->src_stopped &&
        (!t->ops->mig_set_state(t, VFU_MIG_STOP, &err) ||
         !t->ops->mig_set_state(t, VFU_MIG_RUNNING, &err))) {
        log_error("testvm: source device did not resume: %s",
                  error_get_pretty(err));
        error_free_or_null(&err);
    }
    if (m->logging && !t->ops->dirty_stop(t, &err)) {
        log_warn("testvm: %s", error_get_pretty(err));
        error_free_or_null(&err);
    }
}

static void finish_source(MigCtx *m)
{
    Transport *t = m->src->t;
    Error *err = NULL;
    if (!t->ops->dirty_stop(t, &err) ||
        !t->ops->mig_set_state(t, VFU_MIG_STOP, &err)) {
        log_warn("testvm: source after switchover: %s",
                 error_get_pretty(err));
        error_free(err);
    }
    testvm_free(m->src);
}

TestVm *testvm_migrate(TestVm *src, Transport *dst_t, const MigOptions *o,
                       const MigHooks *hooks, MigResult *res, Error **errp)
{
    static const MigHooks no_hooks;
    MigCtx m = { .src = src, .o = o, .h = hooks ? hooks : &no_hooks,
                 .res = res };
    ByteBuf state;
    bytebuf_init(&state);
    memset(res, 0, sizeof(*res));
    m.dst = calloc(1, sizeof(TestVm));
    if (!m.dst) {
        transport_close(dst_t);
        error_setg(errp, "out of memory");
        return NULL;
    }
    m.dst->t = dst_t;
    uint64_t t0 = 0;
    bool ok = setup(&m, errp) && precopy(&m, errp) &&
              (t0 = clock_ns(), stop_source(&m, &state, errp)) &&
              resume_destination(&m, &state, errp) && switchover(&m, errp);
    bytebuf_free(&state);
    free(m.bitmap);
    if (!ok) {
        error_prepend(errp, "migration failed in phase %s: ",
                      mig_phase_name(res->failed_phase));
        recover_source(&m);
        testvm_free(m.dst);
        return NULL;
    }
    res->downtime_us = (clock_ns() - t0) / 1000;
    res->failed_phase = MIG_PHASE_NONE;
    finish_source(&m);
    return m.dst;
}
