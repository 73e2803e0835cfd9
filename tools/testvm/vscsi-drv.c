/*
 * Guest virtio-scsi driver: split request queues (virtio 1.2 section 2.7)
 * and SCSI commands (SBC-3) for the workload. See vscsi-drv.h.
 */
#include "vscsi-drv.h"

#include <endian.h>
#include <stdlib.h>
#include <string.h>

#include "util/bytes.h"
#include "util/log.h"
#include "util/loop.h"
#include "virtio/virtio.h"
#include "virtio/virtio-scsi.h"

#define VSCSI_MAGIC     0x56534344u         /* "VSCD" */
#define DESC_PER_CMD    3
#define HDR_SLOT        256u                /* request + response area */
#define REQ_SIZE        (VIRTIO_SCSI_CMD_REQ_FIXED + VIRTIO_SCSI_CDB_DEFAULT)
#define RESP_OFF        128u
#define RESP_SIZE       (VIRTIO_SCSI_CMD_RESP_FIXED + VIRTIO_SCSI_SENSE_DEFAULT)
#define SYNC_TIMEOUT_MS 5000

_Static_assert(REQ_SIZE <= RESP_OFF && RESP_OFF + RESP_SIZE <= HDR_SLOT,
               "header slot layout");

/* A command to queue: CDB, direction and one data buffer. */
typedef struct VscsiCmd {
    uint8_t cdb[16];
    unsigned lun;
    bool write;
    uint64_t buf_gpa;
    uint32_t len;
} VscsiCmd;

static uint32_t ld_le32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return le32toh(v);
}

static void *gptr(VscsiDrv *drv, uint64_t gpa, uint64_t len)
{
    return gm_ptr(drv->gm, gpa, len);
}

/* 2.7.5: descriptor (addr, len, flags, next), little endian. */
static void put_desc(VscsiDrv *drv, VscsiQueue *q, unsigned i, uint64_t addr,
                     uint32_t len, uint16_t flags)
{
    uint8_t *d = gptr(drv, q->desc_gpa + 16u * i, 16);
    uint64_t a = htole64(addr);
    uint32_t l = htole32(len);
    uint16_t f = htole16(flags), n = htole16((uint16_t)(i + 1));
    memcpy(d, &a, 8);
    memcpy(d + 8, &l, 4);
    memcpy(d + 12, &f, 2);
    memcpy(d + 14, &n, 2);
}

/* 5.6.6.1 request header: LUN (4.2 addressing: 1, target, LUN with the
 * flat-space bit), tag, task attribute SIMPLE, CDB. */
static void put_req(VscsiDrv *drv, VscsiQueue *q, unsigned slot,
                    const VscsiCmd *c)
{
    uint8_t *r = gptr(drv, q->hdr_gpa + (uint64_t)slot * HDR_SLOT, HDR_SLOT);
    memset(r, 0, REQ_SIZE);
    r[0] = 1;
    r[2] = (uint8_t)(0x40 | (c->lun >> 8));
    r[3] = (uint8_t)c->lun;
    uint64_t tag = htole64(slot);
    memcpy(r + 8, &tag, 8);
    memcpy(r + VIRTIO_SCSI_CMD_REQ_FIXED, c->cdb, sizeof(c->cdb));
    memset(r + RESP_OFF, 0xff, RESP_SIZE);
}

static int take_slot(VscsiQueue *q, unsigned qd)
{
    for (unsigned i = 0; i < qd; i++) {
        unsigned s = (q->next_slot + i) % qd;
        if (!q->slots[s].busy) {
            q->next_slot = (uint16_t)((s + 1) % qd);
            return (int)s;
        }
    }
    return -1;
}

/* Lays out the chain of a command and makes it available (2.7.13); the
 * device sees it after the next kick publishes the index. */
static bool queue_cmd(VscsiDrv *drv, unsigned qi, const VscsiCmd *c,
                      uint32_t tag)
{
    VscsiQueue *q = &drv->st->q[qi];
    int s = take_slot(q, drv->st->qd);
    if (s < 0) {
        return false;
    }
    unsigned head = (unsigned)s * DESC_PER_CMD;
    uint64_t hdr = q->hdr_gpa + (uint64_t)s * HDR_SLOT;
    put_req(drv, q, (unsigned)s, c);
    put_desc(drv, q, head, hdr, REQ_SIZE, VIRTQ_DESC_F_NEXT);
    if (c->len == 0) {
        put_desc(drv, q, head + 1, hdr + RESP_OFF, RESP_SIZE,
                 VIRTQ_DESC_F_WRITE);
    } else if (c->write) {
        put_desc(drv, q, head + 1, c->buf_gpa, c->len, VIRTQ_DESC_F_NEXT);
        put_desc(drv, q, head + 2, hdr + RESP_OFF, RESP_SIZE,
                 VIRTQ_DESC_F_WRITE);
    } else {
        put_desc(drv, q, head + 1, hdr + RESP_OFF, RESP_SIZE,
                 VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE);
        put_desc(drv, q, head + 2, c->buf_gpa, c->len, VIRTQ_DESC_F_WRITE);
    }
    uint16_t *ring = gptr(drv, q->avail_gpa + 4 + 2u * (q->avail_idx %
                                                       q->num), 2);
    *ring = htole16((uint16_t)head);
    q->avail_idx++;
    q->slots[s] = (VscsiSlot){ .busy = 1, .tag = tag };
    q->outstanding++;
    q->submitted++;
    return true;
}

/* 2.7.10: with EVENT_IDX the device names the avail index it wants to
 * be notified at (avail_event, after the used ring); a kick is due only
 * when this batch moved the index past it. */
static bool kick_due(VscsiDrv *drv, VscsiQueue *q)
{
    uint16_t old = q->kicked_idx, cur = q->avail_idx;
    q->kicked_idx = cur;
    if (q->event_idx) {
        const uint16_t *ev = gptr(drv, q->used_gpa + 4 + 8u * q->num, 2);
        uint16_t event = le16toh(__atomic_load_n(ev, __ATOMIC_ACQUIRE));
        return (uint16_t)(cur - event - 1) < (uint16_t)(cur - old);
    }
    const uint16_t *flags = gptr(drv, q->used_gpa, 2);
    return !(le16toh(__atomic_load_n(flags, __ATOMIC_ACQUIRE)) &
             VIRTQ_USED_F_NO_NOTIFY);
}

/* 2.7.13.3/2.7.13.4: publish the avail index, then notify unless the
 * device asked not to be (VIRTQ_USED_F_NO_NOTIFY, or avail_event). */
static bool kick_queue(VscsiDrv *drv, unsigned qi)
{
    VscsiQueue *q = &drv->st->q[qi];
    uint16_t *idx = gptr(drv, q->avail_gpa + 2, 2);
    __atomic_store_n(idx, htole16(q->avail_idx), __ATOMIC_RELEASE);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (!kick_due(drv, q)) {
        return true;
    }
    return vhost_fe_kick(drv->fe, VIRTIO_SCSI_VQ_REQUEST0 + qi);
}

static void protocol_error(VscsiDrv *drv, unsigned qi, uint32_t id,
                           const char *what)
{
    drv->st->errors++;
    log_ratelimited(LOG_ERROR, "testvm: virtio-scsi queue %u: used element "
                    "%u: %s", qi, id, what);
}

/* The response of a finished slot: virtio response << 8 | SCSI status. */
static uint16_t slot_status(VscsiDrv *drv, VscsiQueue *q, unsigned s,
                            uint8_t *sense_key)
{
    const uint8_t *r = gptr(drv, q->hdr_gpa + (uint64_t)s * HDR_SLOT +
                            RESP_OFF, RESP_SIZE);
    /* 5.6.6.1: sense_len, resid, status_qualifier, status, response. */
    if (sense_key) {
        *sense_key = ld_le32(r) >= 3 ? r[VIRTIO_SCSI_CMD_RESP_FIXED + 2] & 0xf
                                     : 0;
    }
    return (uint16_t)(r[11] << 8 | r[10]);
}

typedef void VscsiDoneFunc(VscsiDrv *drv, void *opaque, uint32_t tag,
                           uint16_t status, uint8_t sense_key);

static unsigned reap_used(VscsiDrv *drv, unsigned qi, VscsiDoneFunc *fn,
                          void *opaque);

/* 2.7.10: with EVENT_IDX the driver asks for the next interrupt at the
 * first entry it has not reaped (used_event, after the avail ring); an
 * entry the device published before seeing that is reaped here, since
 * no interrupt will announce it. */
static unsigned reap_queue(VscsiDrv *drv, unsigned qi, VscsiDoneFunc *fn,
                           void *opaque)
{
    VscsiQueue *q = &drv->st->q[qi];
    unsigned n = reap_used(drv, qi, fn, opaque);
    if (!q->event_idx) {
        return n;
    }
    const uint16_t *uidx = gptr(drv, q->used_gpa + 2, 2);
    uint16_t *used_event = gptr(drv, q->avail_gpa + 4 + 2u * q->num, 2);
    do {
        __atomic_store_n(used_event, htole16(q->last_used), __ATOMIC_RELEASE);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        if (le16toh(__atomic_load_n(uidx, __ATOMIC_ACQUIRE)) ==
            q->last_used) {
            return n;
        }
        n += reap_used(drv, qi, fn, opaque);
    } while (true);
}

static unsigned reap_used(VscsiDrv *drv, unsigned qi, VscsiDoneFunc *fn,
                          void *opaque)
{
    VscsiQueue *q = &drv->st->q[qi];
    const uint16_t *uidx = gptr(drv, q->used_gpa + 2, 2);
    uint16_t used = le16toh(__atomic_load_n(uidx, __ATOMIC_ACQUIRE));
    unsigned n = 0;
    for (; q->last_used != used; q->last_used++, n++) {
        const uint8_t *e = gptr(drv, q->used_gpa + 4 + 8u * (q->last_used %
                                                             q->num), 8);
        uint32_t id = ld_le32(e);
        unsigned s = id / DESC_PER_CMD;
        if (id % DESC_PER_CMD || s >= drv->st->qd || !q->slots[s].busy) {
            protocol_error(drv, qi, id, "not the head of a command in "
                           "flight");
            continue;
        }
        uint8_t key;
        uint16_t status = slot_status(drv, q, s, &key);
        q->slots[s].busy = 0;
        q->outstanding--;
        q->completed++;
        fn(drv, opaque, q->slots[s].tag, status, key);
    }
    return n;
}

/* ---- synchronous commands (bring-up) ---- */

typedef struct SyncResult {
    bool done;
    uint16_t status;
    uint8_t sense_key;
} SyncResult;

static void sync_done(VscsiDrv *drv, void *opaque, uint32_t tag,
                      uint16_t status, uint8_t sense_key)
{
    SyncResult *r = opaque;
    *r = (SyncResult){ true, status, sense_key };
}

static bool cmd_sync(VscsiDrv *drv, const VscsiCmd *c, SyncResult *res,
                     Error **errp)
{
    *res = (SyncResult){ 0 };
    if (!queue_cmd(drv, 0, c, 0) || !kick_queue(drv, 0)) {
        error_setg(errp, "cannot queue SCSI command 0x%02x", c->cdb[0]);
        return false;
    }
    uint64_t end = clock_ms() + SYNC_TIMEOUT_MS;
    while (reap_queue(drv, 0, sync_done, res), !res->done) {
        if (clock_ms() > end) {
            error_setg(errp, "SCSI command 0x%02x timed out", c->cdb[0]);
            return false;
        }
        vhost_fe_wait(drv->fe, 10);
    }
    return true;
}

/* SPC-4 6.37: TEST UNIT READY until GOOD; the first commands of a fresh
 * I_T nexus may report UNIT ATTENTION (power on / reset). */
static bool lun_ready(VscsiDrv *drv, unsigned lun, Error **errp)
{
    VscsiCmd c = { .lun = lun, .buf_gpa = drv->st->buf_gpa, .len = 0 };
    SyncResult r;
    for (int i = 0; i < 8; i++) {
        if (!cmd_sync(drv, &c, &r, errp)) {
            return false;
        }
        if (r.status == 0) {
            return true;
        }
        if (r.status != 0x02 || r.sense_key != 0x6) {
            break;
        }
    }
    error_setg(errp, "LUN %u not ready (response %u, status 0x%02x, sense "
               "key 0x%x)", lun, r.status >> 8, r.status & 0xff,
               r.sense_key);
    return false;
}

/* SBC-3 5.16: READ CAPACITY(16): last LBA and logical block length. */
static bool lun_capacity(VscsiDrv *drv, unsigned lun, Error **errp)
{
    VscsiCmd c = { .lun = lun, .buf_gpa = drv->st->buf_gpa, .len = 32 };
    c.cdb[0] = 0x9e;
    c.cdb[1] = 0x10;
    st_be32(&c.cdb[10], 32);
    SyncResult r;
    if (!cmd_sync(drv, &c, &r, errp)) {
        return false;
    }
    const uint8_t *d = gptr(drv, drv->st->buf_gpa, 32);
    uint64_t last = ld_be64(d);
    uint32_t bl = ld_be32(d + 8);
    if (r.status != 0 || bl < 512 || bl > TVM_BLOCK || (bl & (bl - 1)) ||
        last == UINT64_MAX) {
        error_setg(errp, "LUN %u: READ CAPACITY(16) status 0x%x, block "
                   "length %u", lun, r.status, bl);
        return false;
    }
    drv->st->block_shift[lun] = (uint32_t)__builtin_ctz(bl);
    drv->st->blocks[lun] = last + 1;
    return true;
}

/* ---- bring-up ---- */

static uint16_t ring_size(unsigned qd)
{
    uint16_t n = 4;
    while (n < qd * DESC_PER_CMD) {
        n = (uint16_t)(n * 2);
    }
    return n;
}

static bool start_queue(VscsiDrv *drv, unsigned qi, bool event_idx,
                        Error **errp)
{
    VscsiQueue *q = &drv->st->q[qi];
    uint16_t num = ring_size(drv->st->qd);
    uint64_t avail_off = 16u * num;
    uint64_t used_off = (avail_off + 6 + 2u * num + GM_PAGE - 1) &
                        ~(uint64_t)(GM_PAGE - 1);
    uint64_t ring = gm_alloc(drv->gm, used_off + 6 + 8u * num, errp);
    uint64_t hdr = ring ? gm_alloc(drv->gm, (uint64_t)drv->st->qd *
                                   HDR_SLOT, errp) : 0;
    if (!hdr) {
        return false;
    }
    *q = (VscsiQueue){ .desc_gpa = ring, .avail_gpa = ring + avail_off,
                       .used_gpa = ring + used_off, .hdr_gpa = hdr,
                       .num = num, .event_idx = event_idx };
    return vhost_fe_start_ring(drv->fe, VIRTIO_SCSI_VQ_REQUEST0 + qi, num,
                               q->desc_gpa, q->avail_gpa, q->used_gpa,
                               errp);
}

static bool bring_up(VscsiDrv *drv, unsigned queues, unsigned luns,
                     Error **errp)
{
    uint64_t acked;
    uint64_t want = BIT_ULL(VIRTIO_F_VERSION_1) |
                    BIT_ULL(VIRTIO_RING_F_EVENT_IDX);
    if (!vhost_fe_setup(drv->fe, drv->gm, want, &acked, errp)) {
        return false;
    }
    unsigned rings = vhost_fe_queue_num(drv->fe);
    if (!(acked & BIT_ULL(VIRTIO_F_VERSION_1)) ||
        (rings && rings < VIRTIO_SCSI_VQ_REQUEST0 + queues)) {
        error_setg(errp, "back end offers %u rings (%u wanted) or no "
                   "VIRTIO_F_VERSION_1", rings,
                   VIRTIO_SCSI_VQ_REQUEST0 + queues);
        return false;
    }
    for (unsigned i = 0; i < queues; i++) {
        if (!start_queue(drv, i, acked & BIT_ULL(VIRTIO_RING_F_EVENT_IDX),
                         errp)) {
            return false;
        }
        drv->st->nr_queues = i + 1;
    }
    for (unsigned l = 0; l < luns; l++) {
        if (!lun_ready(drv, l, errp) || !lun_capacity(drv, l, errp)) {
            return false;
        }
        drv->st->nr_luns = l + 1;
    }
    return true;
}

extern const BlockDrvOps vscsi_blockdrv_ops;

VscsiDrv *vscsi_drv_init(VhostFe *fe, GuestMem *gm, unsigned queues,
                         unsigned qd, unsigned luns, Error **errp)
{
    if (queues < 1 || queues > VSCSI_MAX_QUEUES || qd < 1 ||
        qd > VSCSI_MAX_QD || luns < 1 || luns > TVM_MAX_DISKS) {
        error_setg(errp, "virtio-scsi: queues 1..%u, queue depth 1..%u, "
                   "LUNs 1..%u", VSCSI_MAX_QUEUES, VSCSI_MAX_QD,
                   TVM_MAX_DISKS);
        return NULL;
    }
    VscsiDrv *drv = calloc(1, sizeof(*drv));
    uint64_t st_gpa = drv ? gm_alloc(gm, sizeof(VscsiDrvState), errp) : 0;
    if (!st_gpa) {
        free(drv);
        return NULL;
    }
    *drv = (VscsiDrv){ .fe = fe, .gm = gm, .ops = vscsi_blockdrv_ops,
                       .st = gm_ptr(gm, st_gpa, sizeof(VscsiDrvState)) };
    drv->st->magic = VSCSI_MAGIC;
    drv->st->qd = qd;
    drv->st->buf_gpa = gm_alloc(gm, GM_PAGE, errp);
    gm_header(gm)->driver_gpa = st_gpa;
    if (!drv->st->buf_gpa || !bring_up(drv, queues, luns, errp)) {
        error_prepend(errp, "virtio-scsi bring-up: ");
        free(drv);
        return NULL;
    }
    return drv;
}

void vscsi_drv_free(VscsiDrv *drv)
{
    free(drv);
}

/* ---- the driver as a BlockDrvOps ---- */

static void vs_info(void *opaque, BlockDrvInfo *info)
{
    VscsiDrv *drv = opaque;
    info->nr_queues = drv->st->nr_queues;
    info->qd = drv->st->qd;
    info->nr_disks = drv->st->nr_luns;
    for (unsigned i = 0; i < drv->st->nr_luns; i++) {
        info->disk_blocks[i] = (drv->st->blocks[i] <<
                                drv->st->block_shift[i]) / TVM_BLOCK;
    }
}

/* SBC-3 5.11 / 5.13 (READ(10)/(16)), 5.39 / 5.41 (WRITE(10)/(16)): the
 * 10-byte form while the LBA fits in 32 bits. */
static void rw_cdb(uint8_t *cdb, bool write, uint64_t lba, uint32_t count)
{
    if (lba <= UINT32_MAX && count <= UINT16_MAX) {
        cdb[0] = write ? 0x2a : 0x28;
        st_be32(&cdb[2], (uint32_t)lba);
        st_be16(&cdb[7], (uint16_t)count);
    } else {
        cdb[0] = write ? 0x8a : 0x88;
        st_be64(&cdb[2], lba);
        st_be32(&cdb[10], count);
    }
}

static bool vs_submit(void *opaque, unsigned queue, bool write,
                      unsigned disk, uint64_t block, uint64_t buf_gpa,
                      uint32_t tag)
{
    VscsiDrv *drv = opaque;
    if (queue >= drv->st->nr_queues || disk >= drv->st->nr_luns) {
        return false;
    }
    unsigned shift = drv->st->block_shift[disk];
    VscsiCmd c = { .lun = disk, .write = write, .buf_gpa = buf_gpa,
                   .len = TVM_BLOCK };
    rw_cdb(c.cdb, write, block * (TVM_BLOCK >> shift), TVM_BLOCK >> shift);
    return queue_cmd(drv, queue, &c, tag);
}

static bool vs_kick(void *opaque, unsigned queue)
{
    return kick_queue(opaque, queue);
}

typedef struct ReapCtx {
    BlockDrvDone *done;
    void *opaque;
} ReapCtx;

static void vs_io_done(VscsiDrv *drv, void *opaque, uint32_t tag,
                       uint16_t status, uint8_t sense_key)
{
    ReapCtx *ctx = opaque;
    ctx->done(ctx->opaque, tag, status == 0, status);
}

static unsigned vs_reap(void *opaque, unsigned queue, BlockDrvDone *done,
                        void *done_opaque)
{
    ReapCtx ctx = { done, done_opaque };
    return reap_queue(opaque, queue, vs_io_done, &ctx);
}

static void vs_wait(void *opaque, int timeout_ms)
{
    VscsiDrv *drv = opaque;
    vhost_fe_wait(drv->fe, timeout_ms);
}

const BlockDrvOps vscsi_blockdrv_ops = {
    .info = vs_info,
    .submit = vs_submit,
    .kick = vs_kick,
    .reap = vs_reap,
    .wait = vs_wait,
};
