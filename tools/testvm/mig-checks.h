/*
 * Checks migrate-test runs against real daemons, beyond the workload's
 * own verification:
 *
 *  CQ order (--cq-stall): with the guest not consuming a queue, the
 *  controller's completions pile up in the CQ ring and, once it is full,
 *  in the device (pending). At the source's stop both are recorded, in
 *  the order the controller produced them (ring from the guest's head,
 *  then the device's pending list from query-devices). On the destination
 *  the guest's consumption of that queue is traced and must match the
 *  record exactly: nothing lost, nothing doubled, nothing reordered.
 *
 *  Async events (--aen-test): one event is raised on the source just
 *  before the migration (the guest lowers the over-temperature threshold
 *  below the reported temperature: a SMART temperature event) and one
 *  during pre-copy (the daemon's nvme-ns-changed: a namespace attribute
 *  notice). The guest has no AER outstanding on the source, so both wait
 *  in the device state; on the destination it posts AERs and both must
 *  arrive.
 */
#ifndef STORMIG_TESTVM_MIG_CHECKS_H
#define STORMIG_TESTVM_MIG_CHECKS_H

#include "qmp-client.h"
#include "testvm.h"

#define CQ_ORDER_MAX 512

typedef struct CqOrder {
    unsigned qid;
    uint16_t expect[CQ_ORDER_MAX];  /* cids, in the controller's order */
    unsigned n_expect;
    unsigned in_ring;               /* of which already in the CQ ring */
    unsigned seen;                  /* traced on the destination */
    unsigned matched;               /* of those, in the recorded order */
    bool recorded;
} CqOrder;

/* Source, device stopped: records queue qid's unconsumed completions. */
bool cq_order_record(CqOrder *o, unsigned qid, NvmeDrv *drv, QmpClient *src,
                     Error **errp);
/* Destination, before the guest consumes qid again: traces it. */
void cq_order_watch(CqOrder *o, NvmeDrv *drv);
/* Prints the outcome; true when every recorded completion arrived, in
 * order, and some of them were pending in the device (a real backlog). */
bool cq_order_report(const CqOrder *o);

/* Source, before the migration: enables the events and raises the
 * temperature one. */
bool aen_raise_before(NvmeDrv *drv, Error **errp);
/* Source daemon, during pre-copy: a namespace attribute notice. */
bool aen_raise_during(QmpClient *src, const char *dev_id, Error **errp);
/* Destination: posts AERs and waits for both events; prints them. */
bool aen_verify(NvmeDrv *drv, Error **errp);

#endif
