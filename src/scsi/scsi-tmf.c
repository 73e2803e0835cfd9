/* Task management functions (SAM-5 7): abort, reset, query. */
#include "scsi/scsi.h"
#include "scsi/scsi-internal.h"
#include "scsi/scsi-bus-priv.h"
#include "util/log.h"

#include <stdlib.h>

struct ScsiPendingTmf {
    bool all_luns;
    uint16_t lun;
    bool match_tag;
    uint64_t tag;
    uint64_t seq_limit;             /* requests with seq <= this */
    bool reset;
    ScsiResetKind kind;
    ScsiTmfDoneFunc *done;
    void *opaque;
    bool cancelling;                /* its cancel walk is running */
    ScsiPendingTmf *next;
};

static bool req_matches(const ScsiPendingTmf *t, const ScsiRequest *r)
{
    return r->seq <= t->seq_limit && (!t->match_tag || r->tag == t->tag);
}

static bool lun_matches(const ScsiPendingTmf *t, const ScsiLun *lun)
{
    return t->all_luns || lun->id == t->lun;
}

static bool tmf_waiting(ScsiBus *bus, const ScsiPendingTmf *t)
{
    /* A cancel that completes a request at once must not end (and free)
     * the TMF whose walk is still using it. */
    if (t->cancelling) {
        return true;
    }
    for (ScsiLun *l = scsi_bus_next_lun(bus, NULL); l;
         l = scsi_bus_next_lun(bus, l)) {
        if (!lun_matches(t, l)) {
            continue;
        }
        for (ScsiRequest *r = l->in_flight; r; r = r->next_in_flight) {
            if (req_matches(t, r)) {
                return true;
            }
        }
    }
    return false;
}

static void tmf_finish(ScsiBus *bus, ScsiPendingTmf *t)
{
    if (t->reset) {
        for (ScsiLun *l = scsi_bus_next_lun(bus, NULL); l;
             l = scsi_bus_next_lun(bus, l)) {
            if (lun_matches(t, l) && l->ops->reset) {
                l->ops->reset(l, t->kind);
            }
        }
    }
    if (t->done) {
        t->done(SCSI_TMF_COMPLETE, t->opaque);
    }
    free(t);
}

void scsi_bus_tmf_progress(ScsiBus *bus)
{
    /* A done callback may queue another TMF: rescan after each one. */
    for (;;) {
        ScsiPendingTmf **p = &bus->tmfs;
        while (*p && tmf_waiting(bus, *p)) {
            p = &(*p)->next;
        }
        if (!*p) {
            return;
        }
        ScsiPendingTmf *t = *p;
        *p = t->next;
        tmf_finish(bus, t);
    }
}

void scsi_bus_tmf_fail_all(ScsiBus *bus)
{
    while (bus->tmfs) {
        ScsiPendingTmf *t = bus->tmfs;
        bus->tmfs = t->next;
        if (t->done) {
            t->done(SCSI_TMF_FAILED, t->opaque);
        }
        free(t);
    }
}

static void cancel_matching(ScsiBus *bus, const ScsiPendingTmf *t)
{
    for (ScsiLun *l = scsi_bus_next_lun(bus, NULL); l;
         l = scsi_bus_next_lun(bus, l)) {
        if (!lun_matches(t, l)) {
            continue;
        }
        /* cancel may complete the request at once, unlinking it: restart
         * the walk after every cancellation. */
        bool again = true;
        while (again) {
            again = false;
            for (ScsiRequest *r = l->in_flight; r; r = r->next_in_flight) {
                if (req_matches(t, r) && !r->cancelled) {
                    r->cancelled = true;
                    if (l->ops->cancel) {
                        l->ops->cancel(l, r);
                    }
                    again = true;
                    break;
                }
            }
        }
    }
}

void scsi_bus_abort_and_reset(ScsiBus *bus, bool all_luns, uint16_t lun,
                              bool match_tag, uint64_t tag, bool reset,
                              ScsiResetKind kind, ScsiTmfDoneFunc *done,
                              void *opaque)
{
    ScsiPendingTmf *t = calloc(1, sizeof(*t));
    if (!t) {
        log_ratelimited(LOG_ERROR, "scsi: out of memory for a TMF");
        if (done) {
            done(SCSI_TMF_FAILED, opaque);
        }
        return;
    }
    *t = (ScsiPendingTmf){ .all_luns = all_luns, .lun = lun,
                           .match_tag = match_tag, .tag = tag,
                           .seq_limit = bus->seq, .reset = reset,
                           .kind = kind, .done = done, .opaque = opaque };
    /* Queue first so completions during cancel make progress on it. */
    ScsiPendingTmf **p = &bus->tmfs;
    while (*p) {
        p = &(*p)->next;
    }
    *p = t;
    t->cancelling = true;
    cancel_matching(bus, t);
    t->cancelling = false;
    scsi_bus_tmf_progress(bus);
}

static bool query_task(ScsiBus *bus, uint16_t lun, bool match_tag,
                       uint64_t tag)
{
    ScsiLun *l = scsi_bus_lun(bus, lun);
    for (ScsiRequest *r = l ? l->in_flight : NULL; r; r = r->next_in_flight) {
        if (!match_tag || r->tag == tag) {
            return true;
        }
    }
    return false;
}

void scsi_bus_tmf(ScsiBus *bus, uint16_t lun, ScsiTmfFunc fn, uint64_t tag,
                  ScsiTmfDoneFunc *done, void *opaque)
{
    if (fn == SCSI_TMF_I_T_NEXUS_RESET) {
        scsi_bus_abort_and_reset(bus, true, 0, false, 0, true,
                                 SCSI_RESET_I_T_NEXUS, done, opaque);
        return;
    }
    if (!scsi_bus_lun(bus, lun)) {
        done(SCSI_TMF_INCORRECT_LUN, opaque);
        return;
    }
    switch (fn) {
    case SCSI_TMF_ABORT_TASK:
        scsi_bus_abort_and_reset(bus, false, lun, true, tag, false, 0,
                                 done, opaque);
        return;
    case SCSI_TMF_ABORT_TASK_SET:
    case SCSI_TMF_CLEAR_TASK_SET:
        /* One initiator per bus: its task set is the LUN's task set. */
        scsi_bus_abort_and_reset(bus, false, lun, false, 0, false, 0,
                                 done, opaque);
        return;
    case SCSI_TMF_LOGICAL_UNIT_RESET:
        scsi_bus_abort_and_reset(bus, false, lun, false, 0, true,
                                 SCSI_RESET_LUN, done, opaque);
        return;
    case SCSI_TMF_QUERY_TASK:
    case SCSI_TMF_QUERY_TASK_SET:
        /* SAM-5 7.9/7.10: SUCCEEDED when a matching task exists. */
        done(query_task(bus, lun, fn == SCSI_TMF_QUERY_TASK, tag) ?
             SCSI_TMF_SUCCEEDED : SCSI_TMF_COMPLETE, opaque);
        return;
    default:
        done(SCSI_TMF_REJECTED, opaque);
        return;
    }
}
