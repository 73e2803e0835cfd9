/* migrate-test checks: completion order across a CQ-full migration and
 * async events carried by the device state (see mig-checks.h). */
#include "mig-checks.h"

#include <stdio.h>
#include <string.h>

#include "util/loop.h"

/* The device's pending completions of CQ qid, in posting order, from
 * query-devices. */
static bool append_pending(CqOrder *o, QmpClient *src, Error **errp)
{
    json_object *devs = qmp_client_cmd(src, "query-devices", NULL, errp);
    bool found = false;
    for (size_t i = 0; devs && i < json_object_array_length(devs); i++) {
        json_object *p, *d = json_object_array_get_idx(devs, i);
        if (!json_object_object_get_ex(d, "pending-completions", &p)) {
            continue;
        }
        found = true;
        for (size_t k = 0; k < json_object_array_length(p); k++) {
            json_object *e = json_object_array_get_idx(p, k), *cq, *cid;
            if (json_object_object_get_ex(e, "cqid", &cq) &&
                json_object_object_get_ex(e, "cid", &cid) &&
                (unsigned)json_object_get_int(cq) == o->qid &&
                o->n_expect < CQ_ORDER_MAX) {
                o->expect[o->n_expect++] =
                    (uint16_t)json_object_get_int(cid);
            }
        }
    }
    json_object_put(devs);
    if (devs && !found) {
        error_setg(errp, "query-devices shows no pending completions list");
    }
    return devs && found;
}

bool cq_order_record(CqOrder *o, unsigned qid, NvmeDrv *drv, QmpClient *src,
                     Error **errp)
{
    NvmeCqe ring[CQ_ORDER_MAX];
    memset(o, 0, sizeof(*o));
    o->qid = qid;
    o->in_ring = nvme_drv_peek_cqes(drv, qid, ring, CQ_ORDER_MAX);
    for (unsigned i = 0; i < o->in_ring; i++) {
        o->expect[o->n_expect++] = ring[i].cid;
    }
    o->recorded = append_pending(o, src, errp);
    return o->recorded;
}

static void trace(void *opaque, unsigned qid, const NvmeCqe *cqe)
{
    CqOrder *o = opaque;
    if (qid != o->qid || o->seen >= o->n_expect) {
        return;
    }
    if (cqe->cid == o->expect[o->seen] && o->matched == o->seen) {
        o->matched++;
    }
    o->seen++;
}

void cq_order_watch(CqOrder *o, NvmeDrv *drv)
{
    drv->cqe_trace = trace;
    drv->trace_opaque = o;
}

bool cq_order_report(const CqOrder *o)
{
    unsigned pending = o->n_expect - o->in_ring;
    bool ok = o->recorded && pending > 0 && o->seen == o->n_expect &&
              o->matched == o->n_expect;
    printf("cq order: queue %u: %u completions at stop (%u in the CQ, %u "
           "pending in the device), %u taken on the destination, %u in "
           "the recorded order: %s\n", o->qid, o->n_expect, o->in_ring,
           pending, o->seen, o->matched, ok ? "in order" : "MISMATCH");
    return ok;
}

/* ---- async events ---- */

#define AEN_TEMP (NVME_AER_TYPE_SMART | NVME_AER_INFO_SMART_TEMP << 8 | \
                  NVME_LOG_SMART << 16)
#define AEN_NS   (NVME_AER_TYPE_NOTICE | NVME_AER_INFO_NOTICE_NS_ATTR << 8 | \
                  NVME_LOG_CHANGED_NS << 16)
#define AEN_WAIT_MS 5000

static bool set_feature(NvmeDrv *drv, uint8_t fid, uint32_t cdw11,
                        Error **errp)
{
    NvmeCmd c = { .opcode = NVME_ADM_SET_FEATURES, .cdw10 = fid,
                  .cdw11 = cdw11 };
    int st = nvme_drv_admin(drv, &c, NULL, errp);
    if (st > 0) {
        error_setg(errp, "Set Features 0x%02x: status 0x%x", fid, st);
    }
    return st == 0;
}

bool aen_raise_before(NvmeDrv *drv, Error **errp)
{
    if (drv->st->nr_aen) {
        error_setg(errp, "events arrived before any were raised");
        return false;
    }
    /* 5.21.1.11: temperature warnings (bit 1) and namespace attribute
     * notices; 5.21.1.4: over-temperature threshold (TMPSEL 0) of 300 K,
     * under the composite temperature the controller reports. */
    return set_feature(drv, NVME_FEAT_ASYNC_EVENT, (1u << 1) | (1u << 8),
                       errp) &&
           set_feature(drv, NVME_FEAT_TEMP_THRESH, 300, errp);
}

bool aen_raise_during(QmpClient *src, const char *dev_id, Error **errp)
{
    json_object *a = json_object_new_object();
    json_object_object_add(a, "id", json_object_new_string(dev_id));
    json_object_object_add(a, "nsid", json_object_new_int(2));
    Error *err = NULL;
    json_object *r = qmp_client_cmd(src, "nvme-ns-changed", a, &err);
    json_object_put(r);
    if (err) {
        error_propagate(errp, err);
        return false;
    }
    return true;
}

static bool has_event(const NvmeDrvState *st, uint32_t dw0)
{
    for (uint32_t i = 0; i < st->nr_aen; i++) {
        if (st->aen_dw0[i] == dw0) {
            return true;
        }
    }
    return false;
}

bool aen_verify(NvmeDrv *drv, Error **errp)
{
    const NvmeDrvState *st = drv->st;
    if (st->nr_aen) {
        error_setg(errp, "%u events arrived before the destination asked",
                   st->nr_aen);
        return false;
    }
    if (!nvme_drv_post_aers(drv, 4, errp)) {
        return false;
    }
    uint64_t end = clock_ms() + AEN_WAIT_MS;
    while (!(has_event(st, AEN_TEMP) && has_event(st, AEN_NS)) &&
           clock_ms() < end) {
        drv->t->ops->wait_irqs(drv->t, 10);
        nvme_drv_poll_admin(drv);
    }
    printf("async events on the destination: %u (temperature %s, "
           "namespace change %s)\n", st->nr_aen,
           has_event(st, AEN_TEMP) ? "delivered" : "MISSING",
           has_event(st, AEN_NS) ? "delivered" : "MISSING");
    if (!has_event(st, AEN_TEMP) || !has_event(st, AEN_NS)) {
        error_setg(errp, "async events lost in the migration");
        return false;
    }
    return true;
}
