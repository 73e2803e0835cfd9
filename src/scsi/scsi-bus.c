/* SCSI buses: the LUN table of one controller, loops, hot-plug. */
#include "scsi/scsi.h"
#include "scsi/scsi-internal.h"
#include "scsi/scsi-bus-priv.h"
#include "util/log.h"

#include <stdlib.h>
#include <string.h>

static ScsiBus *buses;

void scsi_lun_init(ScsiLun *lun, const ScsiLunOps *ops, const char *type,
                   EventLoop *home_loop, void *opaque)
{
    memset(lun, 0, sizeof(*lun));
    lun->ops = ops;
    lun->type = type;
    lun->home_loop = home_loop;
    lun->loop = home_loop;
    lun->opaque = opaque;
}

void scsi_lun_track(ScsiLun *lun, ScsiRequest *req)
{
    req->lun = lun;
    req->seq = lun->bus ? ++lun->bus->seq : 0;
    req->next_in_flight = lun->in_flight;
    lun->in_flight = req;
    lun->n_in_flight++;
}

void scsi_lun_untrack(ScsiLun *lun, ScsiRequest *req)
{
    for (ScsiRequest **p = &lun->in_flight; *p; p = &(*p)->next_in_flight) {
        if (*p == req) {
            *p = req->next_in_flight;
            req->next_in_flight = NULL;
            lun->n_in_flight--;
            return;
        }
    }
}

void scsi_lun_drain(ScsiLun *lun)
{
    if (lun->ops->drain) {
        lun->ops->drain(lun);
    }
    /* Whatever the LUN's own drain left (e.g. a completion posted to the
     * loop), the loop finishes. */
    while (lun->n_in_flight > 0 && lun->loop) {
        loop_run_once(lun->loop, 100);
    }
}

ScsiBus *scsi_bus_new(const char *name, Error **errp)
{
    if (!name || !*name) {
        error_setg(errp, "a SCSI bus needs a name");
        return NULL;
    }
    if (scsi_bus_find(name)) {
        error_setg(errp, "SCSI bus '%s' already exists", name);
        return NULL;
    }
    ScsiBus *bus = calloc(1, sizeof(*bus));
    if (!bus || !(bus->name = strdup(name))) {
        free(bus);
        error_setg(errp, "out of memory");
        return NULL;
    }
    bus->next = buses;
    buses = bus;
    return bus;
}

void scsi_bus_free(ScsiBus *bus)
{
    if (!bus) {
        return;
    }
    for (unsigned i = 0; i < SCSI_BUS_MAX_LUNS; i++) {
        if (bus->luns[i]) {
            scsi_bus_remove_lun(bus, bus->luns[i]);
        }
    }
    scsi_bus_tmf_fail_all(bus);
    for (ScsiBus **p = &buses; *p; p = &(*p)->next) {
        if (*p == bus) {
            *p = bus->next;
            break;
        }
    }
    free(bus->name);
    free(bus);
}

ScsiBus *scsi_bus_find(const char *name)
{
    for (ScsiBus *b = buses; b; b = b->next) {
        if (strcmp(b->name, name) == 0) {
            return b;
        }
    }
    return NULL;
}

const char *scsi_bus_name(const ScsiBus *bus)
{
    return bus->name;
}

void scsi_bus_set_listener(ScsiBus *bus, const ScsiBusListener *l)
{
    if (l) {
        bus->listener = *l;
    } else {
        memset(&bus->listener, 0, sizeof(bus->listener));
    }
}

static bool lun_move_loop(ScsiLun *lun, EventLoop *loop, Error **errp)
{
    EventLoop *target = loop ? loop : lun->home_loop;
    if (target == lun->loop) {
        return true;
    }
    scsi_lun_drain(lun);
    if (lun->ops->attach_loop && !lun->ops->attach_loop(lun, target, errp)) {
        return false;
    }
    lun->loop = target;
    return true;
}

bool scsi_bus_add_lun(ScsiBus *bus, ScsiLun *lun, uint16_t id, Error **errp)
{
    if (id >= SCSI_BUS_MAX_LUNS) {
        error_setg(errp, "LUN %u out of range (0..%u)", id,
                   SCSI_BUS_MAX_LUNS - 1);
        return false;
    }
    if (bus->luns[id]) {
        error_setg(errp, "LUN %u of SCSI bus '%s' is already in use", id,
                   bus->name);
        return false;
    }
    if (lun->bus) {
        error_setg(errp, "LUN is already on SCSI bus '%s'", lun->bus->name);
        return false;
    }
    if (!lun_move_loop(lun, bus->loop, errp)) {
        return false;
    }
    lun->bus = bus;
    lun->id = id;
    bus->luns[id] = lun;
    if (bus->listener.lun_added) {
        bus->listener.lun_added(bus, lun, bus->listener.opaque);
    }
    return true;
}

void scsi_bus_remove_lun(ScsiBus *bus, ScsiLun *lun)
{
    if (lun->bus != bus || bus->luns[lun->id] != lun) {
        return;
    }
    scsi_lun_drain(lun);
    bus->luns[lun->id] = NULL;
    lun->bus = NULL;
    Error *err = NULL;
    if (!lun_move_loop(lun, NULL, &err)) {
        error_report_err(err);
    }
    if (bus->listener.lun_removed) {
        bus->listener.lun_removed(bus, lun, bus->listener.opaque);
    }
}

ScsiLun *scsi_bus_lun(ScsiBus *bus, uint16_t id)
{
    return id < SCSI_BUS_MAX_LUNS ? bus->luns[id] : NULL;
}

ScsiLun *scsi_bus_next_lun(ScsiBus *bus, ScsiLun *lun)
{
    unsigned i = lun ? lun->id + 1u : 0;
    for (; i < SCSI_BUS_MAX_LUNS; i++) {
        if (bus->luns[i]) {
            return bus->luns[i];
        }
    }
    return NULL;
}

bool scsi_bus_attach_loop(ScsiBus *bus, EventLoop *loop, Error **errp)
{
    for (ScsiLun *l = scsi_bus_next_lun(bus, NULL); l;
         l = scsi_bus_next_lun(bus, l)) {
        if (!lun_move_loop(l, loop, errp)) {
            error_prepend(errp, "LUN %u of SCSI bus '%s': ", l->id,
                          bus->name);
            return false;
        }
    }
    bus->loop = loop;
    return true;
}

EventLoop *scsi_bus_loop(const ScsiBus *bus)
{
    return bus->loop;
}

void scsi_bus_submit(ScsiBus *bus, uint16_t id, ScsiRequest *req)
{
    ScsiLun *lun = scsi_bus_lun(bus, id);
    if (lun) {
        scsi_req_submit(lun, req);
        return;
    }
    scsi_req_init(req);
    scsi_target_answer(bus, req);
}

void scsi_lun_encode(uint16_t id, uint8_t out[8])
{
    memset(out, 0, 8);
    if (id < 256) {
        out[1] = (uint8_t)id;           /* SAM-5 4.7.7.2 peripheral */
    } else {
        out[0] = 0x40 | ((id >> 8) & 0x3f); /* SAM-5 4.7.7.4 flat space */
        out[1] = (uint8_t)id;
    }
}

bool scsi_lun_decode(const uint8_t in[8], uint16_t *id)
{
    /* Only single level: bytes 2..7 must be zero (SAM-5 4.7.5). */
    for (int i = 2; i < 8; i++) {
        if (in[i]) {
            return false;
        }
    }
    switch (in[0] >> 6) {
    case 0:
        if (in[0] & 0x3f) {
            return false;       /* peripheral with a bus identifier */
        }
        *id = in[1];
        return true;
    case 1:
        *id = (uint16_t)(((in[0] & 0x3f) << 8) | in[1]);
        return true;
    default:
        return false;
    }
}

void scsi_bus_report_luns(ScsiBus *bus, ByteBuf *out)
{
    uint32_t n = 0;
    for (ScsiLun *l = scsi_bus_next_lun(bus, NULL); l;
         l = scsi_bus_next_lun(bus, l)) {
        n++;
    }
    /* SPC-4 6.33.2: LUN LIST LENGTH, 4 reserved bytes, then the list. */
    bytebuf_put_be32(out, n * 8);
    bytebuf_put_be32(out, 0);
    for (ScsiLun *l = scsi_bus_next_lun(bus, NULL); l;
         l = scsi_bus_next_lun(bus, l)) {
        uint8_t lun[8];
        scsi_lun_encode(l->id, lun);
        bytebuf_append(out, lun, sizeof(lun));
    }
}

void scsi_bus_reset(ScsiBus *bus)
{
    scsi_bus_abort_and_reset(bus, true, 0, false, 0, true, SCSI_RESET_BUS,
                             NULL, NULL);
    for (ScsiLun *l = scsi_bus_next_lun(bus, NULL); l;
         l = scsi_bus_next_lun(bus, l)) {
        scsi_lun_drain(l);
    }
}
