/* vfio-user server: version negotiation, device and region information,
 * region access and reset. */
#include "vfio-user/vfu-int.h"

#include <errno.h>
#include <string.h>

#include <json-c/json.h>

#include "util/log.h"

/* --- VERSION --------------------------------------------------------- */

/* Reads the client's capabilities (spec "VFIO_USER_VERSION", table
 * "Capabilities"). Unknown keys are ignored: later minors may add some. */
static VfuStatus parse_caps(VfuServer *s, const char *json, size_t len)
{
    json_tokener *tok = json_tokener_new();
    if (!tok) {
        return ENOMEM;
    }
    json_object *root = json_tokener_parse_ex(tok, json, (int)len);
    bool complete = json_tokener_get_error(tok) == json_tokener_success;
    json_tokener_free(tok);
    VfuStatus st = EINVAL;
    json_object *caps = NULL, *v;
    if (!complete || !json_object_is_type(root, json_type_object)) {
        goto out;
    }
    if (json_object_object_get_ex(root, "capabilities", &caps) &&
        !json_object_is_type(caps, json_type_object)) {
        goto out;
    }
    if (caps && json_object_object_get_ex(caps, "max_msg_fds", &v)) {
        int64_t n = json_object_get_int64(v);
        if (!json_object_is_type(v, json_type_int) || n < 0 ||
            n > 0x10000) {
            goto out;
        }
        s->client_max_fds = (uint32_t)n;
    }
    if (caps && json_object_object_get_ex(caps, "max_data_xfer_size", &v)) {
        int64_t n = json_object_get_int64(v);
        if (!json_object_is_type(v, json_type_int) || n <= 0) {
            goto out;
        }
        s->client_max_xfer = (uint64_t)n;
    }
    st = VFU_OK;
out:
    if (st != VFU_OK) {
        log_ratelimited(LOG_WARN, "vfio-user: VERSION: bad capabilities");
    }
    json_object_put(root);
    return st;
}

static void put_caps(VfuServer *s, VfuMsg *m)
{
    json_object *root = json_object_new_object();
    json_object *caps = json_object_new_object();
    json_object_object_add(caps, "max_msg_fds",
                           json_object_new_int64(VFU_MAX_MSG_FDS));
    json_object_object_add(caps, "max_data_xfer_size",
                           json_object_new_int64(VFU_MAX_DATA_XFER));
    json_object_object_add(caps, "max_dma_maps",
                           json_object_new_int64(VFU_MAX_DMA_MAPS));
    json_object_object_add(caps, "pgsizes", json_object_new_int64(4096));
    if (vfu_migration_supported(s)) {
        /* Earlier revisions announced migration here; harmless to new
         * clients, which probe VFIO_DEVICE_FEATURE_MIGRATION. */
        json_object *mig = json_object_new_object();
        json_object_object_add(mig, "pgsize", json_object_new_int64(4096));
        json_object_object_add(mig, "max_bitmap_size",
                               json_object_new_int64(VFU_MAX_DATA_XFER));
        json_object_object_add(caps, "migration", mig);
    }
    json_object_object_add(root, "capabilities", caps);
    const char *str = json_object_to_json_string_ext(root,
                                                     JSON_C_TO_STRING_PLAIN);
    vfu_reply_put(m, str, strlen(str) + 1);
    json_object_put(root);
}

VfuStatus vfu_handle_version(VfuServer *s, VfuMsg *m)
{
    VfuVersion v;
    if (m->len < sizeof(v)) {
        log_ratelimited(LOG_WARN, "vfio-user: VERSION: short payload");
        return EINVAL;
    }
    memcpy(&v, m->payload, sizeof(v));
    s->client_max_fds = 1;                  /* spec defaults */
    s->client_max_xfer = VFU_MAX_DATA_XFER;
    /* Spec: the reply's major must equal the proposed one, else the
     * connection is closed. */
    if (v.major != VFU_PROTO_MAJOR) {
        log_ratelimited(LOG_WARN, "vfio-user: client speaks %u.%u, not %u.x",
                        v.major, v.minor, VFU_PROTO_MAJOR);
        m->close_after = true;
        return ENOTSUP;
    }
    size_t jlen = m->len - sizeof(v);
    if (jlen) {
        const char *json = (const char *)m->payload + sizeof(v);
        /* The JSON includes its terminating NUL. */
        if (json[jlen - 1] != '\0' || strlen(json) != jlen - 1) {
            log_ratelimited(LOG_WARN, "vfio-user: VERSION: bad JSON length");
            return EINVAL;
        }
        VfuStatus st = parse_caps(s, json, jlen - 1);
        if (st != VFU_OK) {
            return st;
        }
    }
    VfuVersion r = {
        .major = VFU_PROTO_MAJOR,
        .minor = v.minor < VFU_PROTO_MINOR ? v.minor : VFU_PROTO_MINOR,
    };
    vfu_reply_put(m, &r, sizeof(r));
    put_caps(s, m);
    s->negotiated = true;
    return VFU_OK;
}

/* --- DEVICE_GET_INFO ------------------------------------------------- */

VfuStatus vfu_handle_device_info(VfuServer *s, VfuMsg *m)
{
    VfuDeviceInfo in;
    if (m->len < sizeof(in)) {
        log_ratelimited(LOG_WARN, "vfio-user: GET_INFO: short payload");
        return EINVAL;
    }
    memcpy(&in, m->payload, sizeof(in));
    if (in.argsz < sizeof(in)) {
        return EINVAL;
    }
    VfuDeviceInfo out = {
        .argsz = sizeof(out),
        .flags = VFU_DEVICE_FLAG_PCI |
                 (s->ops->reset ? VFU_DEVICE_FLAG_RESET : 0),
        .num_regions = VFU_PCI_NUM_REGIONS,
        .num_irqs = VFU_PCI_NUM_IRQS,
    };
    vfu_reply_put(m, &out, sizeof(out));
    return VFU_OK;
}

/* --- DEVICE_GET_REGION_INFO ------------------------------------------ */

static size_t sparse_cap_size(const VfuRegionDesc *r)
{
    if (r->mmap_fd < 0 || !r->nr_sparse) {
        return 0;
    }
    return sizeof(VfuCapHeader) + sizeof(VfuSparseMmap) +
           r->nr_sparse * sizeof(VfuSparseArea);
}

VfuStatus vfu_handle_region_info(VfuServer *s, VfuMsg *m)
{
    VfuRegionInfo in;
    if (m->len < sizeof(in)) {
        log_ratelimited(LOG_WARN, "vfio-user: REGION_INFO: short payload");
        return EINVAL;
    }
    memcpy(&in, m->payload, sizeof(in));
    if (in.argsz < sizeof(in) || in.index >= VFU_PCI_NUM_REGIONS) {
        log_ratelimited(LOG_WARN, "vfio-user: REGION_INFO: bad index %u "
                        "or argsz %u", in.index, in.argsz);
        return EINVAL;
    }
    const VfuRegionDesc *r = &s->desc.regions[in.index];
    size_t caps = sparse_cap_size(r);
    VfuRegionInfo out = {
        .argsz = (uint32_t)(sizeof(out) + caps),
        .index = in.index,
        .size = r->size,
        .offset = r->mmap_fd >= 0 ? r->mmap_offset : 0,
    };
    if (r->size) {
        out.flags = (r->readable ? VFU_REGION_FLAG_READ : 0) |
                    (r->writable ? VFU_REGION_FLAG_WRITE : 0);
    }
    if (r->size && r->mmap_fd >= 0) {
        out.flags |= VFU_REGION_FLAG_MMAP;
        m->reply_fd = r->mmap_fd;
    }
    if (caps) {
        out.flags |= VFU_REGION_FLAG_CAPS;
    }
    /* Spec "Message sizes": a short argsz gets the needed size back and
     * no capabilities. */
    bool fits = in.argsz >= out.argsz;
    out.cap_offset = caps && fits ? sizeof(out) : 0;
    vfu_reply_put(m, &out, sizeof(out));
    if (caps && fits) {
        VfuCapHeader h = { .id = VFU_REGION_CAP_SPARSE_MMAP, .version = 1 };
        VfuSparseMmap sm = { .nr_areas = r->nr_sparse };
        vfu_reply_put(m, &h, sizeof(h));
        vfu_reply_put(m, &sm, sizeof(sm));
        vfu_reply_put(m, r->sparse, r->nr_sparse * sizeof(r->sparse[0]));
    }
    return VFU_OK;
}

/* --- REGION_READ / REGION_WRITE -------------------------------------- */

/* Checks an access header (spec "Read and Write Operations"). */
static VfuStatus check_access(VfuServer *s, const VfuRegionAccess *a,
                              bool is_write)
{
    const char *why = NULL;
    if (a->region >= VFU_PCI_NUM_REGIONS || !s->desc.regions[a->region].size) {
        why = "no such region";
    } else if (a->count == 0 || a->count > VFU_MAX_DATA_XFER) {
        why = "bad count";
    } else {
        const VfuRegionDesc *r = &s->desc.regions[a->region];
        if (is_write ? !r->writable : !r->readable) {
            why = "access not permitted";
        } else if (a->offset > r->size || a->count > r->size - a->offset) {
            why = "out of range";
        }
    }
    if (why) {
        log_ratelimited(LOG_WARN, "vfio-user: REGION_%s region %u offset "
                        "0x%llx count %u: %s", is_write ? "WRITE" : "READ",
                        a->region, (unsigned long long)a->offset, a->count,
                        why);
        return EINVAL;
    }
    return VFU_OK;
}

VfuStatus vfu_handle_region_read(VfuServer *s, VfuMsg *m)
{
    VfuRegionAccess a;
    if (m->len != sizeof(a)) {
        log_ratelimited(LOG_WARN, "vfio-user: REGION_READ: bad size %zu",
                        m->len);
        return EINVAL;
    }
    memcpy(&a, m->payload, sizeof(a));
    VfuStatus st = check_access(s, &a, false);
    if (st != VFU_OK) {
        return st;
    }
    vfu_reply_put(m, &a, sizeof(a));
    if (!bytebuf_reserve(m->reply, a.count)) {
        return ENOMEM;
    }
    uint8_t *data = m->reply->data + m->reply->len;
    memset(data, 0, a.count);
    if (!s->ops->region_access(s->opaque, a.region, a.offset, data, a.count,
                               false)) {
        return EINVAL;
    }
    m->reply->len += a.count;
    return VFU_OK;
}

VfuStatus vfu_handle_region_write(VfuServer *s, VfuMsg *m)
{
    VfuRegionAccess a;
    if (m->len < sizeof(a)) {
        log_ratelimited(LOG_WARN, "vfio-user: REGION_WRITE: short payload");
        return EINVAL;
    }
    memcpy(&a, m->payload, sizeof(a));
    if (m->len - sizeof(a) != a.count) {
        log_ratelimited(LOG_WARN, "vfio-user: REGION_WRITE: count %u but "
                        "%zu data bytes", a.count, m->len - sizeof(a));
        return EINVAL;
    }
    VfuStatus st = check_access(s, &a, true);
    if (st != VFU_OK) {
        return st;
    }
    /* The device may keep nothing from the buffer: copy it out of the
     * message so it can be modified (and is aligned). */
    uint8_t stackbuf[64];
    uint8_t *buf = a.count <= sizeof(stackbuf) ? stackbuf : malloc(a.count);
    if (!buf) {
        return ENOMEM;
    }
    memcpy(buf, m->payload + sizeof(a), a.count);
    bool ok = s->ops->region_access(s->opaque, a.region, a.offset, buf,
                                    a.count, true);
    if (buf != stackbuf) {
        free(buf);
    }
    if (!ok) {
        return EINVAL;
    }
    vfu_reply_put(m, &a, sizeof(a));
    return VFU_OK;
}

/* --- DEVICE_RESET ---------------------------------------------------- */

VfuStatus vfu_handle_reset(VfuServer *s, VfuMsg *m)
{
    if (m->len != 0) {
        log_ratelimited(LOG_WARN, "vfio-user: RESET: unexpected payload");
        return EINVAL;
    }
    if (!s->ops->reset) {
        return ENOTSUP;
    }
    s->ops->reset(s->opaque);
    /* Interrupts come back unmasked with nothing pending; the eventfds
     * stay (the client owns them). */
    for (unsigned i = 0; i < VFU_PCI_NUM_IRQS; i++) {
        for (uint32_t j = 0; j < s->desc.irqs[i].count; j++) {
            s->irqs[i][j].masked = false;
            s->irqs[i][j].pending = false;
        }
    }
    /* Spec "MIG_DEVICE_STATE": reset returns the device to RUNNING. */
    vfu_migration_reset(s);
    return VFU_OK;
}
