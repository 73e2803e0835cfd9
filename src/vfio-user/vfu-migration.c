/*
 * vfio-user server: DEVICE_FEATURE (migration and DMA logging), the
 * device migration state machine and MIG_DATA_READ / MIG_DATA_WRITE.
 *
 * States offered: RUNNING, STOP, STOP_COPY, RESUMING (and ERROR). The
 * direct arcs (spec "Direct State Transitions") all go through STOP, so a
 * request between two other states takes the path through STOP, which is
 * the shortest one with no saving state inside (spec "Complex State
 * Transitions").
 */
#include "vfio-user/vfu-int.h"

#include <errno.h>
#include <string.h>

#include "util/log.h"

const char *vfu_mig_state_name(uint32_t state)
{
    static const char *const names[] = {
        [VFU_MIG_ERROR] = "ERROR", [VFU_MIG_STOP] = "STOP",
        [VFU_MIG_RUNNING] = "RUNNING", [VFU_MIG_STOP_COPY] = "STOP_COPY",
        [VFU_MIG_RESUMING] = "RESUMING", [VFU_MIG_RUNNING_P2P] = "RUNNING_P2P",
        [VFU_MIG_PRE_COPY] = "PRE_COPY",
        [VFU_MIG_PRE_COPY_P2P] = "PRE_COPY_P2P",
    };
    return state < sizeof(names) / sizeof(names[0]) ? names[state]
                                                    : "unknown";
}

VfuMigState vfu_server_mig_state(const VfuServer *s)
{
    return s->mig_state;
}

void vfu_migration_reset(VfuServer *s)
{
    if (s->mig_waiting) {
        /* A reset overtook the state change the device still works on. */
        if (s->mig_reply_owed) {
            ByteBuf none;
            bytebuf_init(&none);
            vfu_send_deferred_reply(s, &s->mig_req, ECANCELED, &none);
        }
        s->mig_waiting = false;
        s->mig_reply_owed = false;
    }
    bytebuf_free(&s->mig_data);
    bytebuf_init(&s->mig_data);
    s->mig_read_off = 0;
    s->mig_state = VFU_MIG_RUNNING;
}

static VfuStatus device_failed(Error *err, const char *what, VfuStatus st)
{
    log_ratelimited(LOG_WARN, "vfio-user: migration %s: %s", what,
                    error_get_pretty(err));
    error_free(err);
    return st;
}

/* Runs one direct arc from the current state (always STOP on one side). */
static VfuStatus mig_arc(VfuServer *s, VfuMigState next)
{
    Error *err = NULL;
    VfuMigState cur = s->mig_state;
    if (cur == VFU_MIG_RUNNING) {
        bool later = false;
        bool ok = s->ops->quiesce_begin
                  ? s->ops->quiesce_begin(s->opaque, &later, &err)
                  : s->ops->quiesce(s->opaque, &err);
        if (!ok && later) {
            s->mig_waiting = true;      /* vfu_server_quiesce_done */
            return VFU_DEFERRED;
        }
        if (!ok) {
            return device_failed(err, "quiesce", EIO);
        }
    } else if (cur == VFU_MIG_STOP_COPY || cur == VFU_MIG_RESUMING) {
        bool ok = cur == VFU_MIG_STOP_COPY ||
                  s->ops->load(s->opaque, s->mig_data.data,
                               s->mig_data.len, &err);
        vfu_migration_reset(s);
        if (!ok) {
            /* Spec: invalid data fails the SET; the device state is
             * unknown, so it needs a reset (ERROR). */
            s->mig_state = VFU_MIG_ERROR;
            return device_failed(err, "load", EINVAL);
        }
    } else if (next == VFU_MIG_RUNNING) {
        if (!s->ops->resume(s->opaque, &err)) {
            s->mig_state = VFU_MIG_ERROR;
            return device_failed(err, "resume", EIO);
        }
    } else if (next == VFU_MIG_STOP_COPY) {
        vfu_migration_reset(s);
        if (!s->ops->save(s->opaque, &s->mig_data, &err) ||
            s->mig_data.failed) {
            vfu_migration_reset(s);
            s->mig_state = VFU_MIG_STOP;
            return device_failed(err, "save", err ? EIO : ENOMEM);
        }
    } else {
        vfu_migration_reset(s);     /* STOP -> RESUMING: empty buffer */
    }
    s->mig_state = next;
    return VFU_OK;
}

static VfuStatus mig_set_state(VfuServer *s, uint32_t target)
{
    if (s->mig_state == VFU_MIG_ERROR) {
        log_ratelimited(LOG_WARN, "vfio-user: device in ERROR needs reset");
        return EINVAL;
    }
    if (target != VFU_MIG_STOP && target != VFU_MIG_RUNNING &&
        target != VFU_MIG_STOP_COPY && target != VFU_MIG_RESUMING) {
        log_ratelimited(LOG_WARN, "vfio-user: migration state %s (%u) not "
                        "supported", vfu_mig_state_name(target), target);
        return EINVAL;
    }
    while (s->mig_state != target) {
        VfuMigState next = s->mig_state == VFU_MIG_STOP ? (VfuMigState)target
                                                        : VFU_MIG_STOP;
        VfuStatus st = mig_arc(s, next);
        if (st == VFU_DEFERRED) {
            s->mig_target = target;
        }
        if (st != VFU_OK) {
            return st;
        }
    }
    return VFU_OK;
}

static void put_mig_state(VfuServer *s, ByteBuf *out, uint32_t flags)
{
    VfuMigStateData d = { .device_state = s->mig_state,
                          .data_fd = UINT32_MAX };  /* unused by vfio-user */
    VfuFeature f = { .argsz = sizeof(f) + sizeof(d), .flags = flags };
    bytebuf_append(out, &f, sizeof(f));
    bytebuf_append(out, &d, sizeof(d));
}

void vfu_server_quiesce_done(VfuServer *s)
{
    if (!s->mig_waiting) {
        return;     /* a reset or disconnect came first */
    }
    s->mig_waiting = false;
    s->mig_state = VFU_MIG_STOP;
    VfuStatus st = mig_set_state(s, s->mig_target);
    if (s->mig_reply_owed) {
        s->mig_reply_owed = false;
        ByteBuf out;
        bytebuf_init(&out);
        put_mig_state(s, &out, s->mig_feature_flags);
        vfu_send_deferred_reply(s, &s->mig_req, st, &out);
        bytebuf_free(&out);
    }
}

/* --- DEVICE_FEATURE -------------------------------------------------- */

/* Which of GET / SET each feature supports here, 0 when unsupported. */
static uint32_t feature_ops(const VfuServer *s, uint32_t index)
{
    bool mig = vfu_migration_supported(s);
    switch (index) {
    case VFU_FEATURE_MIGRATION:
        return mig ? VFU_FEATURE_GET : 0;
    case VFU_FEATURE_MIG_DEVICE_STATE:
        return mig ? VFU_FEATURE_GET | VFU_FEATURE_SET : 0;
    case VFU_FEATURE_DMA_LOGGING_START:
    case VFU_FEATURE_DMA_LOGGING_STOP:
        return VFU_FEATURE_SET;
    case VFU_FEATURE_DMA_LOGGING_REPORT:
        return VFU_FEATURE_GET;
    default:
        return 0;
    }
}

static VfuStatus feature_mig_state(VfuServer *s, VfuMsg *m,
                                   const VfuFeature *f, const uint8_t *data,
                                   size_t len)
{
    VfuMigStateData d = { 0 };
    if (f->flags & VFU_FEATURE_SET) {
        if (len != sizeof(d)) {
            return EINVAL;
        }
        if (s->mig_waiting) {
            log_ratelimited(LOG_WARN, "vfio-user: migration state change "
                            "while the device still quiesces");
            return EBUSY;
        }
        memcpy(&d, data, sizeof(d));
        VfuStatus st = mig_set_state(s, d.device_state);
        if (st == VFU_DEFERRED) {
            s->mig_req = m->hdr;
            s->mig_feature_flags = f->flags;
            s->mig_reply_owed = true;
        }
        if (st != VFU_OK) {
            return st;
        }
    } else if (len != 0) {
        return EINVAL;
    }
    put_mig_state(s, m->reply, f->flags);
    return VFU_OK;
}

static VfuStatus feature_run(VfuServer *s, VfuMsg *m, const VfuFeature *f,
                             const uint8_t *data, size_t len)
{
    uint32_t index = f->flags & VFU_FEATURE_INDEX_MASK;
    switch (index) {
    case VFU_FEATURE_MIGRATION: {
        VfuFeature out = { .argsz = sizeof(out) + 8, .flags = f->flags };
        uint64_t flags = VFU_MIGRATION_STOP_COPY;
        if (len) {
            return EINVAL;
        }
        /* A client that migrates reads these flags before anything else
         * (Linux uAPI vfio.h, VFIO_DEVICE_FEATURE_MIGRATION); one that
         * never does will not save the device's state. */
        s->client_migration = true;
        vfu_reply_put(m, &out, sizeof(out));
        vfu_reply_put(m, &flags, sizeof(flags));
        return VFU_OK;
    }
    case VFU_FEATURE_MIG_DEVICE_STATE:
        s->client_migration = true;
        return feature_mig_state(s, m, f, data, len);
    case VFU_FEATURE_DMA_LOGGING_START:
        vfu_reply_put(m, f, sizeof(*f));
        return vfu_logging_start(s, m, data, len);
    case VFU_FEATURE_DMA_LOGGING_STOP:
        vfu_reply_put(m, f, sizeof(*f));
        return len ? EINVAL : vfu_logging_stop(s);
    default:
        return vfu_logging_report(s, m, f->argsz, data, len);
    }
}

VfuStatus vfu_handle_feature(VfuServer *s, VfuMsg *m)
{
    VfuFeature f;
    if (m->len < sizeof(f)) {
        log_ratelimited(LOG_WARN, "vfio-user: FEATURE: short payload");
        return EINVAL;
    }
    memcpy(&f, m->payload, sizeof(f));
    uint32_t index = f.flags & VFU_FEATURE_INDEX_MASK;
    uint32_t want = f.flags & (VFU_FEATURE_GET | VFU_FEATURE_SET);
    bool probe = f.flags & VFU_FEATURE_PROBE;
    if ((f.flags & ~(VFU_FEATURE_INDEX_MASK | VFU_FEATURE_GET |
                     VFU_FEATURE_SET | VFU_FEATURE_PROBE)) || !want ||
        (want == (VFU_FEATURE_GET | VFU_FEATURE_SET) && !probe)) {
        log_ratelimited(LOG_WARN, "vfio-user: FEATURE: bad flags 0x%x",
                        f.flags);
        return EINVAL;
    }
    uint32_t ops = feature_ops(s, index);
    if (!ops) {
        return ENOTSUP;
    }
    if (want & ~ops) {
        log_ratelimited(LOG_WARN, "vfio-user: FEATURE %u: no %s", index,
                        (want & ~ops) == VFU_FEATURE_GET ? "GET" : "SET");
        return EINVAL;
    }
    if (probe) {
        /* Spec: a probe's reply repeats the request. */
        vfu_reply_put(m, m->payload, m->len);
        return VFU_OK;
    }
    if (f.argsz < sizeof(f)) {
        return EINVAL;
    }
    return feature_run(s, m, &f, m->payload + sizeof(f),
                       m->len - sizeof(f));
}

/* --- MIG_DATA_READ / MIG_DATA_WRITE ---------------------------------- */

VfuStatus vfu_handle_mig_data_read(VfuServer *s, VfuMsg *m)
{
    VfuMigData d;
    if (m->len != sizeof(d)) {
        log_ratelimited(LOG_WARN, "vfio-user: MIG_DATA_READ: bad size");
        return EINVAL;
    }
    memcpy(&d, m->payload, sizeof(d));
    /* Spec: reads are valid in a saving state (STOP_COPY here). */
    if (s->mig_state != VFU_MIG_STOP_COPY || d.argsz < sizeof(d) ||
        d.size > VFU_MAX_DATA_XFER) {
        log_ratelimited(LOG_WARN, "vfio-user: MIG_DATA_READ of %u in %s "
                        "refused", d.size, vfu_mig_state_name(s->mig_state));
        return EINVAL;
    }
    size_t left = s->mig_data.len - s->mig_read_off;
    size_t n = d.size;
    if (n > d.argsz - sizeof(d)) {
        n = d.argsz - sizeof(d);
    }
    if (n > left) {
        n = left;
    }
    VfuMigData out = { .argsz = (uint32_t)(sizeof(out) + n),
                       .size = (uint32_t)n };
    vfu_reply_put(m, &out, sizeof(out));
    vfu_reply_put(m, s->mig_data.data + s->mig_read_off, n);
    s->mig_read_off += n;
    return VFU_OK;
}

VfuStatus vfu_handle_mig_data_write(VfuServer *s, VfuMsg *m)
{
    VfuMigData d;
    if (m->len < sizeof(d)) {
        log_ratelimited(LOG_WARN, "vfio-user: MIG_DATA_WRITE: short");
        return EINVAL;
    }
    memcpy(&d, m->payload, sizeof(d));
    if (d.size != m->len - sizeof(d) || d.size > VFU_MAX_DATA_XFER ||
        s->mig_state != VFU_MIG_RESUMING) {
        log_ratelimited(LOG_WARN, "vfio-user: MIG_DATA_WRITE of %u in %s "
                        "refused", d.size, vfu_mig_state_name(s->mig_state));
        return EINVAL;
    }
    if (d.size > s->desc.max_state_size - s->mig_data.len) {
        log_ratelimited(LOG_WARN, "vfio-user: MIG_DATA_WRITE: state larger "
                        "than %zu bytes", s->desc.max_state_size);
        return EFBIG;
    }
    bytebuf_append(&s->mig_data, m->payload + sizeof(d), d.size);
    return s->mig_data.failed ? ENOMEM : VFU_OK;
}
