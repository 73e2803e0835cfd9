/* vhost-user-scsi controller: virtio-scsi queues (virtio 1.2 5.6) on a
 * vhost-user back end, requests handed to the SCSI layer. All queue work
 * runs on the controller's I/O thread. */
#include "vhost-user/vhost-user-scsi.h"
#include "device/device.h"
#include "scsi/scsi.h"
#include "util/log.h"
#include "vhost-user/vhost-user.h"
#include "virtio/virtio-scsi.h"

#include <stdlib.h>
#include <string.h>

/* A stop waits this long for requests in flight: longer than scsi-block's
 * default command timeout (30 s), so a command the target dropped can be
 * failed and answered first. */
#define VUS_STOP_TIMEOUT_MS 60000

typedef struct VhostUserScsi {
    Device parent;
    char *socket_path;
    uint32_t num_queues;        /* request queues */
    bool dirty_log;
    uint32_t stop_timeout_ms;   /* longest wait for requests at a stop */
    IOThread *iot;
    VhostUserDev *vu;
    ScsiBus *bus;
    bool events_dropped;        /* data loop */
    uint32_t state_num_queues;  /* num_queues as migrated */
} VhostUserScsi;

typedef struct VusReq {
    VirtqElement elem;          /* first: allocated by virtqueue_pop */
    VhostUserScsi *s;
    VirtQueue *vq;
    size_t resp_len;
    struct iovec *data;
    ScsiRequest sreq;
} VusReq;

/* ---- request queues ---- */

static uint8_t virtio_response(ScsiResponse r)
{
    switch (r) {
    case SCSI_RESP_OK:          return VIRTIO_SCSI_S_OK;
    case SCSI_RESP_ABORTED:     return VIRTIO_SCSI_S_ABORTED;
    case SCSI_RESP_BAD_TARGET:  return VIRTIO_SCSI_S_BAD_TARGET;
    case SCSI_RESP_OVERRUN:     return VIRTIO_SCSI_S_OVERRUN;
    default:                    return VIRTIO_SCSI_S_FAILURE;
    }
}

/* data_in: bytes reported to the guest; data_written: bytes of data-in
 * the LUN may have written (>= data_in), all logged for migration. */
static void req_finish(VusReq *r, const VirtioScsiCmdResp *resp,
                       size_t data_in, size_t data_written)
{
    virtio_scsi_write_cmd_resp(r->elem.in_sg, r->elem.in_num,
                               VIRTIO_SCSI_SENSE_DEFAULT, resp);
    virtqueue_push_written(r->vq, &r->elem, (uint32_t)(r->resp_len + data_in),
                           r->resp_len + data_written);
    virtqueue_notify(r->vq);
    free(r->data);
    free(r);
}

static void req_fail(VusReq *r, uint8_t response)
{
    VirtioScsiCmdResp resp = { .response = response };
    req_finish(r, &resp, 0, 0);
}

static void req_complete(ScsiRequest *sreq, void *opaque)
{
    VusReq *r = opaque;
    VirtioScsiCmdResp resp = {
        .response = virtio_response(sreq->response),
        .status = sreq->status,
        .sense_len = sreq->sense_len,
        .resid = (uint32_t)sreq->residual,
    };
    memcpy(resp.sense, sreq->sense, sizeof(sreq->sense));
    bool from_dev = sreq->dir == SCSI_DIR_FROM_DEV;
    size_t data_in = from_dev ? sreq->data_len - sreq->residual : 0;
    /* A READ that failed (CHECK CONDITION, abort, lost iSCSI session) may
     * have filled part of its buffers first, through io_uring or iSCSI
     * data-in, while it reports no data: log all of them. */
    bool clean = sreq->response == SCSI_RESP_OK &&
                 sreq->status == SAM_STAT_GOOD;
    req_finish(r, &resp, data_in,
               from_dev && !clean ? sreq->data_len : data_in);
}

/* A chain too short for the virtio-scsi headers: 5.6.6.1 leaves no way
 * to answer it, so the queue needs a reset (as QEMU does). */
static void req_malformed(VusReq *r, const char *why)
{
    VirtQueue *vq = r->vq;
    virtqueue_push(vq, &r->elem, 0);
    virtqueue_notify(vq);
    free(r);
    log_ratelimited(LOG_WARN, "vhost-user-scsi: queue %u: %s", vq->index,
                    why);
    virtqueue_mark_broken(vq, why);
}

static bool req_setup_data(VusReq *r, size_t hdr_len)
{
    VirtqElement *e = &r->elem;
    size_t out = iov_size(e->out_sg, e->out_num) - hdr_len;
    size_t in = iov_size(e->in_sg, e->in_num) - r->resp_len;
    ScsiRequest *sr = &r->sreq;
    if (out && in) {
        return false;       /* bidirectional: VIRTIO_SCSI_F_INOUT not offered */
    }
    unsigned n = out ? e->out_num : e->in_num;
    r->data = calloc(n ? n : 1, sizeof(struct iovec));
    if (!r->data) {
        return false;
    }
    if (out) {
        sr->iovcnt = (int)iov_slice(e->out_sg, e->out_num, hdr_len, r->data, n);
        sr->dir = SCSI_DIR_TO_DEV;
    } else if (in) {
        sr->iovcnt = (int)iov_slice(e->in_sg, e->in_num, r->resp_len, r->data,
                                    n);
        sr->dir = SCSI_DIR_FROM_DEV;
    } else {
        sr->dir = SCSI_DIR_NONE;
    }
    sr->iov = r->data;
    sr->data_len = out ? out : in;
    return true;
}

static void handle_cmd(VhostUserScsi *s, VirtQueue *vq, VusReq *r)
{
    VirtioScsiCmdReq hdr;
    size_t hdr_len;
    r->s = s;
    r->vq = vq;
    switch (virtio_scsi_parse_cmd(r->elem.out_sg, r->elem.out_num,
                                  r->elem.in_sg, r->elem.in_num,
                                  VIRTIO_SCSI_CDB_DEFAULT,
                                  VIRTIO_SCSI_SENSE_DEFAULT, &hdr, &hdr_len,
                                  &r->resp_len)) {
    case VIRTIO_SCSI_PARSE_OK:
        break;
    default:
        req_malformed(r, "request shorter than the virtio-scsi headers");
        return;
    }
    uint8_t target;
    uint16_t lun;
    if (virtio_scsi_lun_decode(hdr.lun, &target, &lun) != VIRTIO_SCSI_LUN_OK ||
        target != 0) {
        req_fail(r, VIRTIO_SCSI_S_BAD_TARGET);   /* one target: 0 */
        return;
    }
    if (!req_setup_data(r, hdr_len)) {
        req_fail(r, VIRTIO_SCSI_S_FAILURE);
        return;
    }
    ScsiRequest *sr = &r->sreq;
    scsi_req_init(sr);
    memcpy(sr->cdb, hdr.cdb, SCSI_CDB_MAX);
    size_t cdb_len = scsi_cdb_length(hdr.cdb[0]);
    sr->cdb_len = (uint8_t)(cdb_len && cdb_len <= SCSI_CDB_MAX ? cdb_len
                                                               : SCSI_CDB_MAX);
    sr->tag = hdr.tag;
    sr->attr = hdr.task_attr <= VIRTIO_SCSI_S_ACA ? (ScsiTaskAttr)hdr.task_attr
                                                  : SCSI_TASK_SIMPLE;
    sr->complete = req_complete;
    sr->opaque = r;
    scsi_bus_submit(s->bus, lun, sr);
}

/* ---- control queue ---- */

static bool tmf_func(uint32_t subtype, ScsiTmfFunc *fn)
{
    switch (subtype) {
    case VIRTIO_SCSI_T_TMF_ABORT_TASK:      *fn = SCSI_TMF_ABORT_TASK; break;
    case VIRTIO_SCSI_T_TMF_ABORT_TASK_SET:  *fn = SCSI_TMF_ABORT_TASK_SET;
                                            break;
    case VIRTIO_SCSI_T_TMF_CLEAR_TASK_SET:  *fn = SCSI_TMF_CLEAR_TASK_SET;
                                            break;
    case VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET: *fn = SCSI_TMF_I_T_NEXUS_RESET;
                                            break;
    case VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET:
        *fn = SCSI_TMF_LOGICAL_UNIT_RESET;
        break;
    case VIRTIO_SCSI_T_TMF_QUERY_TASK:      *fn = SCSI_TMF_QUERY_TASK; break;
    case VIRTIO_SCSI_T_TMF_QUERY_TASK_SET:  *fn = SCSI_TMF_QUERY_TASK_SET;
                                            break;
    default:
        return false;                       /* CLEAR_ACA: no ACA support */
    }
    return true;
}

static void tmf_reply(VusReq *r, uint8_t response)
{
    size_t n = virtio_scsi_write_tmf_resp(r->elem.in_sg, r->elem.in_num,
                                          response);
    virtqueue_push(r->vq, &r->elem, (uint32_t)n);
    virtqueue_notify(r->vq);
    free(r);
}

static void tmf_done(ScsiTmfResult result, void *opaque)
{
    static const uint8_t map[] = {
        [SCSI_TMF_COMPLETE] = VIRTIO_SCSI_S_FUNCTION_COMPLETE,
        [SCSI_TMF_SUCCEEDED] = VIRTIO_SCSI_S_FUNCTION_SUCCEEDED,
        [SCSI_TMF_REJECTED] = VIRTIO_SCSI_S_FUNCTION_REJECTED,
        [SCSI_TMF_INCORRECT_LUN] = VIRTIO_SCSI_S_INCORRECT_LUN,
        [SCSI_TMF_FAILED] = VIRTIO_SCSI_S_FAILURE,
    };
    tmf_reply(opaque, (unsigned)result < sizeof(map) ? map[result]
                                                     : VIRTIO_SCSI_S_FAILURE);
}

static void handle_ctrl(VhostUserScsi *s, VirtQueue *vq, VusReq *r)
{
    VirtioScsiCtrlReq req;
    r->s = s;
    r->vq = vq;
    switch (virtio_scsi_parse_ctrl(r->elem.out_sg, r->elem.out_num,
                                   iov_size(r->elem.in_sg, r->elem.in_num),
                                   &req)) {
    case VIRTIO_SCSI_PARSE_OK:
        break;
    case VIRTIO_SCSI_PARSE_BAD_TYPE:
        log_ratelimited(LOG_WARN, "vhost-user-scsi: unknown control request "
                        "type %u", req.type);
        virtqueue_push(vq, &r->elem, 0);
        free(r);
        return;
    default:
        req_malformed(r, "control request shorter than its headers");
        return;
    }
    if (req.type != VIRTIO_SCSI_T_TMF) {
        /* 5.6.6.2.1: no asynchronous notifications are supported. */
        size_t n = virtio_scsi_write_an_resp(r->elem.in_sg, r->elem.in_num, 0,
                                             VIRTIO_SCSI_S_OK);
        virtqueue_push(vq, &r->elem, (uint32_t)n);
        virtqueue_notify(vq);
        free(r);
        return;
    }
    uint8_t target;
    uint16_t lun;
    ScsiTmfFunc fn;
    if (virtio_scsi_lun_decode(req.lun, &target, &lun) != VIRTIO_SCSI_LUN_OK ||
        target != 0) {
        tmf_reply(r, VIRTIO_SCSI_S_BAD_TARGET);
    } else if (!tmf_func(req.subtype, &fn)) {
        tmf_reply(r, VIRTIO_SCSI_S_FUNCTION_REJECTED);
    } else {
        scsi_bus_tmf(s->bus, lun, fn, req.tag, tmf_done, r);
    }
}

/* ---- event queue ---- */

static void send_event(VhostUserScsi *s, VirtQueue *vq, uint32_t event,
                       uint32_t reason, uint16_t lun)
{
    VirtqElement *e = virtqueue_pop(vq, sizeof(*e));
    if (!e) {
        /* 5.6.6.3: report the loss with the next event. */
        s->events_dropped = true;
        return;
    }
    VirtioScsiEvent ev = { .event = event, .reason = reason };
    if (s->events_dropped) {
        ev.event |= VIRTIO_SCSI_T_EVENTS_MISSED;
        s->events_dropped = false;
    }
    virtio_scsi_lun_encode(ev.lun, 0, lun);
    size_t n = virtio_scsi_write_event(e->in_sg, e->in_num, &ev);
    virtqueue_push(vq, e, (uint32_t)n);
    virtqueue_notify(vq);
    free(e);
}

static void queue_kick(VhostUserDev *dev, VirtQueue *vq, void *opaque)
{
    VhostUserScsi *s = opaque;
    if (vq->index == VIRTIO_SCSI_VQ_EVENT) {
        /* Buffers wait for events; a new one may carry a lost event. */
        if (s->events_dropped) {
            send_event(s, vq, VIRTIO_SCSI_T_NO_EVENT, 0, 0);
        }
        return;
    }
    VusReq *r;
    while ((r = virtqueue_pop(vq, sizeof(*r))) != NULL) {
        if (vq->index == VIRTIO_SCSI_VQ_CONTROL) {
            handle_ctrl(s, vq, r);
        } else {
            handle_cmd(s, vq, r);
        }
    }
}

typedef struct HotplugEvent {
    VhostUserScsi *s;
    uint32_t reason;
    uint16_t lun;
} HotplugEvent;

static void hotplug_on_data_loop(void *opaque)
{
    HotplugEvent *h = opaque;
    VirtQueue *vq = vhost_user_dev_queue(h->s->vu, VIRTIO_SCSI_VQ_EVENT);
    /* 5.6.6.3.1: a LUN appeared or went away: transport reset event. */
    send_event(h->s, vq, VIRTIO_SCSI_T_TRANSPORT_RESET, h->reason, h->lun);
    free(h);
}

static void lun_changed(VhostUserScsi *s, ScsiLun *lun, uint32_t reason)
{
    if (!(vhost_user_dev_features(s->vu) & BIT_ULL(VIRTIO_SCSI_F_HOTPLUG))) {
        return;
    }
    HotplugEvent *h = malloc(sizeof(*h));
    if (h) {
        *h = (HotplugEvent){ s, reason, lun->id };
        loop_post(vhost_user_dev_data_loop(s->vu), hotplug_on_data_loop, h);
    }
}

static void lun_added(ScsiBus *bus, ScsiLun *lun, void *opaque)
{
    lun_changed(opaque, lun, VIRTIO_SCSI_EVT_RESET_RESCAN);
}

static void lun_removed(ScsiBus *bus, ScsiLun *lun, void *opaque)
{
    lun_changed(opaque, lun, VIRTIO_SCSI_EVT_RESET_REMOVED);
}

/* ---- device class ---- */

/* Main loop: a ring started or stopped; migration may be waiting for the
 * front end to stop them all. */
static void rings_changed(VhostUserDev *dev, void *opaque)
{
    VhostUserScsi *s = opaque;
    device_vmm_state_changed(&s->parent);
}

static const VhostUserDevOps vus_ops = {
    .queue_kick = queue_kick,
    .rings_changed = rings_changed,
};

static bool vus_read_props(VhostUserScsi *s, KeyVal *props, Error **errp)
{
    const char *path;
    if (!keyval_get_str(props, "socket", NULL, &path, errp) ||
        !keyval_get_u32(props, "num-queues", 1, &s->num_queues, errp) ||
        !keyval_get_bool(props, "dirty-log", true, &s->dirty_log, errp) ||
        !keyval_get_u32(props, "stop-timeout", VUS_STOP_TIMEOUT_MS,
                        &s->stop_timeout_ms, errp)) {
        return false;
    }
    if (s->stop_timeout_ms == 0) {
        error_setg(errp, "stop-timeout must be at least 1 ms");
        return false;
    }
    if (!path || !*path) {
        error_setg(errp, "vhost-user-scsi needs socket=PATH");
        return false;
    }
    if (!device_claim_socket(&s->parent, path, errp)) {
        return false;
    }
    /* 2 fixed queues plus the request queues, at most 256 in all. */
    if (s->num_queues == 0 || s->num_queues > 254) {
        error_setg(errp, "num-queues must be 1..254");
        return false;
    }
    s->socket_path = strdup(path);
    return s->socket_path != NULL;
}

static void vus_unrealize(Device *dev);

static bool vus_realize(Device *dev, KeyVal *props, Error **errp)
{
    VhostUserScsi *s = (VhostUserScsi *)dev;
    if (!vus_read_props(s, props, errp)) {
        return false;
    }
    s->bus = scsi_bus_new(dev->id, errp);
    s->iot = s->bus ? iothread_new("vus-io", errp) : NULL;
    if (!s->iot) {
        vus_unrealize(dev);
        return false;
    }
    VhostUserDevConfig cfg = {
        .socket_path = s->socket_path,
        .num_queues = VIRTIO_SCSI_VQ_REQUEST0 + s->num_queues,
        .device_features = BIT_ULL(VIRTIO_SCSI_F_HOTPLUG) |
                           BIT_ULL(VIRTIO_SCSI_F_CHANGE),
        .dirty_log = s->dirty_log,
        .main_loop = dev->loop,
        .iothread = s->iot,
    };
    s->vu = vhost_user_dev_new(&cfg, &vus_ops, s, errp);
    if (!s->vu) {
        vus_unrealize(dev);
        return false;
    }
    /* Requests are served only while the VM runs (the start hook): a
     * daemon waiting for an incoming migration must not touch the disks
     * before it has the state and owns them, even if the VMM starts the
     * rings early. Kicks that arrive meanwhile are served at start. */
    vhost_user_dev_quiesce_idle(s->vu);
    s->state_num_queues = s->num_queues;
    ScsiBusListener l = {
        .lun_added = lun_added, .lun_removed = lun_removed, .opaque = s,
    };
    scsi_bus_set_listener(s->bus, &l);     /* copied by the bus */
    return true;
}

static void bus_detach(void *opaque)
{
    VhostUserScsi *s = opaque;
    Error *err = NULL;
    if (!scsi_bus_attach_loop(s->bus, NULL, &err)) {
        error_report_err(err);
    }
}

typedef struct BusAttach {
    VhostUserScsi *s;
    Error *err;
} BusAttach;

/* On the I/O thread: a loop's fds are registered on its own thread. */
static void bus_attach(void *opaque)
{
    BusAttach *a = opaque;
    scsi_bus_attach_loop(a->s->bus, iothread_loop(a->s->iot), &a->err);
}

static void vus_unrealize(Device *dev)
{
    VhostUserScsi *s = (VhostUserScsi *)dev;
    vhost_user_dev_free(s->vu);
    s->vu = NULL;
    if (s->bus) {
        scsi_bus_set_listener(s->bus, NULL);
        if (s->iot) {
            iothread_run_sync(s->iot, bus_detach, s);
        }
        scsi_bus_free(s->bus);
        s->bus = NULL;
    }
    iothread_free(s->iot);
    s->iot = NULL;
    free(s->socket_path);
    s->socket_path = NULL;
}

/* VM stopped: no new requests, every in-flight one completed. */
/* The LUNs' data path (the images' io_uring, iSCSI sessions) lives on
 * the I/O thread only while the device runs (scsi.h: the controller
 * attaches the bus when its data path starts and detaches it when it
 * stops). Stopped, it is back on the main loop, where migration flushes
 * and hands over the images: waiting for a completion there while the
 * I/O thread reaps the same ring would hang. */
typedef struct VusStop {
    VhostUserScsi *s;
    DeviceDone *done;
    void *opaque;
} VusStop;

static void vus_quiesced(void *opaque, Error *err)
{
    VusStop st = *(VusStop *)opaque;
    free(opaque);
    if (!err) {
        iothread_run_sync(st.s->iot, bus_detach, st.s);
    }
    st.done(st.opaque, err);
}

/* Nothing waits here: the I/O thread reports when the last request in
 * flight completed, and a disk that does not answer within stop-timeout
 * fails the stop instead of stalling the monitor. */
static void vus_stop(Device *dev, DeviceDone *done, void *opaque)
{
    VhostUserScsi *s = (VhostUserScsi *)dev;
    VusStop *st = malloc(sizeof(*st));
    if (!st) {
        Error *err = NULL;
        error_setg(&err, "out of memory");
        done(opaque, err);
        return;
    }
    *st = (VusStop){ s, done, opaque };
    vhost_user_dev_quiesce(s->vu, s->stop_timeout_ms, vus_quiesced, st);
}

static bool vus_start(Device *dev, Error **errp)
{
    VhostUserScsi *s = (VhostUserScsi *)dev;
    BusAttach a = { s, NULL };
    iothread_run_sync(s->iot, bus_attach, &a);
    if (a.err) {
        error_propagate(errp, a.err);
        iothread_run_sync(s->iot, bus_detach, s);
        return false;
    }
    vhost_user_dev_resume(s->vu);
    return true;
}

/* A ring's state in query-devices: where a stalled guest waits. */
static json_object *queue_json(const VhostUserQueueInfo *q)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "started", json_object_new_boolean(q->started));
    json_object_object_add(o, "enabled", json_object_new_boolean(q->enabled));
    json_object_object_add(o, "running", json_object_new_boolean(q->running));
    json_object_object_add(o, "broken", json_object_new_boolean(q->broken));
    json_object_object_add(o, "call-fd",
                           json_object_new_boolean(q->has_call_fd));
    json_object_object_add(o, "num", json_object_new_int(q->num));
    json_object_object_add(o, "last-avail-idx",
                           json_object_new_int(q->last_avail_idx));
    json_object_object_add(o, "used-idx", json_object_new_int(q->used_idx));
    if (q->ready) {
        json_object_object_add(o, "avail-idx",
                               json_object_new_int(q->avail_idx));
        json_object_object_add(o, "used-event",
                               json_object_new_int(q->used_event));
    }
    json_object_object_add(o, "inflight",
                           json_object_new_int((int)q->inflight));
    json_object_object_add(o, "kicks", json_object_new_int64(
                               (int64_t)q->kicks));
    json_object_object_add(o, "calls", json_object_new_int64(
                               (int64_t)q->calls));
    json_object_object_add(o, "calls-without-fd", json_object_new_int64(
                               (int64_t)q->calls_without_fd));
    return o;
}

static void vus_query(Device *dev, json_object *info)
{
    VhostUserScsi *s = (VhostUserScsi *)dev;
    json_object_object_add(info, "socket",
                           json_object_new_string(s->socket_path));
    json_object_object_add(info, "num-queues",
                           json_object_new_int((int)s->num_queues));
    json_object_object_add(info, "dirty-log",
                           json_object_new_boolean(s->dirty_log));
    json_object_object_add(info, "connected",
                           json_object_new_boolean(
                               vhost_user_dev_connected(s->vu)));
    json_object_object_add(info, "rings-started", json_object_new_int(
                               (int)vhost_user_dev_rings_started(s->vu)));
    json_object *queues = json_object_new_array();
    VhostUserQueueInfo q;
    for (unsigned i = 0; vhost_user_dev_queue_info(s->vu, i, &q); i++) {
        json_object_array_add(queues, queue_json(&q));
    }
    json_object_object_add(info, "queues", queues);
}

/* VMM-coordinated migration: QEMU stops every ring (GET_VRING_BASE, which
 * replies only once nothing is in flight) when it stops the VM at the end
 * of its own migration; from then on our state is final. */
static bool vus_vmm_stopped(Device *dev)
{
    return vhost_user_dev_rings_started(((VhostUserScsi *)dev)->vu) == 0;
}

static bool vus_post_load(void *opaque, int version_id, Error **errp)
{
    VhostUserScsi *s = opaque;
    /* The guest negotiated its queues with the source's controller. */
    if (s->state_num_queues != s->num_queues) {
        error_setg(errp, "%s: state is for %u request queues, this "
                   "controller has %u", s->parent.id, s->state_num_queues,
                   s->num_queues);
        return false;
    }
    return true;
}

static const VMStateField vus_fields[] = {
    VMSTATE_UINT32(state_num_queues, VhostUserScsi),
    VMSTATE_BOOL(events_dropped, VhostUserScsi),
    VMSTATE_END_OF_LIST(),
};

/* Ring indices travel with the VMM's own migration (GET/SET_VRING_BASE);
 * what only we know is whether the guest missed an event (5.6.6.3). */
static const VMStateDescription vus_vmsd = {
    .name = "vhost-user-scsi",
    .version_id = 1,
    .minimum_version_id = 1,
    .post_load = vus_post_load,
    .fields = vus_fields,
};

static const DeviceProperty vhost_user_scsi_properties[] = {
    { "socket", "str", NULL, "vhost-user socket path QEMU connects to" },
    { "num-queues", "uint32", "1", "request queues (1-254)" },
    { "dirty-log", "bool", "on",
      "offer VHOST_F_LOG_ALL for QEMU's live migration" },
    { "stop-timeout", "uint32", "60000",
      "ms a stop waits for requests in flight before it fails" },
    { NULL, NULL, NULL, NULL },
};

static const DeviceClass vhost_user_scsi_class = {
    .properties = vhost_user_scsi_properties,
    .type = "vhost-user-scsi",
    .description = "virtio-scsi controller served over vhost-user",
    .instance_size = sizeof(VhostUserScsi),
    .realize = vus_realize,
    .unrealize = vus_unrealize,
    .stop_async = vus_stop,
    .start = vus_start,
    .query = vus_query,
    .vmsd = &vus_vmsd,
    .vmm_stopped = vus_vmm_stopped,
};

VhostUserDev *vhost_user_scsi_backend(Device *dev)
{
    if (dev->cls != &vhost_user_scsi_class) {
        return NULL;
    }
    return ((VhostUserScsi *)dev)->vu;
}

void vhost_user_scsi_register(void)
{
    device_class_register(&vhost_user_scsi_class);
}
