/* Blocking vfio-user client (the VMM side of the protocol). */
#include "vfio-user/vfu-client.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-c/json.h>

/* Memory mapped without an fd: the client answers the server's DMA_READ
 * and DMA_WRITE from it. */
typedef struct VfuClientMem {
    uint64_t iova;
    uint64_t size;
    uint8_t *host;
    uint32_t prot;
} VfuClientMem;

struct VfuClient {
    int fd;
    uint16_t next_id;
    int last_errno;
    int timeout_ms;
    VfuClientCaps caps;
    VfuClientMem *mem;
    size_t n_mem;
    uint64_t dma_served;
};

VfuClient *vfu_client_new_fd(int fd, Error **errp)
{
    VfuClient *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        error_setg(errp, "out of memory");
        return NULL;
    }
    c->fd = fd;
    c->timeout_ms = 10000;
    c->caps.max_msg_fds = 1;
    c->caps.max_data_xfer = VFU_MAX_DATA_XFER;
    return c;
}

VfuClient *vfu_client_connect(const char *path, Error **errp)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(sa.sun_path)) {
        error_setg(errp, "socket path too long: %s", path);
        return NULL;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        error_setg_errno(errp, errno, "cannot connect to %s", path);
        if (fd >= 0) {
            close(fd);
        }
        return NULL;
    }
    return vfu_client_new_fd(fd, errp);
}

void vfu_client_free(VfuClient *c)
{
    if (c) {
        close(c->fd);
        free(c->mem);
        free(c);
    }
}

int vfu_client_fd(const VfuClient *c)
{
    return c->fd;
}

int vfu_client_last_errno(const VfuClient *c)
{
    return c->last_errno;
}

void vfu_client_set_timeout(VfuClient *c, int timeout_ms)
{
    c->timeout_ms = timeout_ms;
}

const VfuClientCaps *vfu_client_caps(const VfuClient *c)
{
    return &c->caps;
}

/* --- transport ------------------------------------------------------- */

bool vfu_client_send_raw(VfuClient *c, const void *buf, size_t len,
                         const int *fds, size_t nfds, Error **errp)
{
    const uint8_t *p = buf;
    size_t off = 0;
    char cbuf[CMSG_SPACE(sizeof(int) * 64)];
    if (nfds > 64) {
        error_setg(errp, "too many fds to send");
        return false;
    }
    do {
        struct iovec iov = { (void *)(p + off), len - off };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        if (nfds && off == 0) {
            memset(cbuf, 0, sizeof(cbuf));
            mh.msg_control = cbuf;
            mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
            struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
            cm->cmsg_level = SOL_SOCKET;
            cm->cmsg_type = SCM_RIGHTS;
            cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
            memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
        }
        ssize_t n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            error_setg_errno(errp, errno, "vfio-user send");
            return false;
        }
        off += (size_t)n;
    } while (off < len);
    return true;
}

/* Reads exactly len bytes; collects at most one fd into *fd. */
static bool read_full(VfuClient *c, void *buf, size_t len, int *fd,
                      Error **errp)
{
    size_t off = 0;
    while (off < len) {
        struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
        int r = poll(&pfd, 1, c->timeout_ms);
        if (r == 0) {
            error_setg(errp, "vfio-user: no reply within %d ms",
                       c->timeout_ms);
            return false;
        }
        char cbuf[CMSG_SPACE(sizeof(int) * 4)];
        struct iovec iov = { (uint8_t *)buf + off, len - off };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                             .msg_control = cbuf,
                             .msg_controllen = sizeof(cbuf) };
        ssize_t n = r < 0 ? -1 : recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            error_setg_errno(errp, n == 0 ? ECONNRESET : errno,
                             "vfio-user receive");
            return false;
        }
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm;
             cm = CMSG_NXTHDR(&mh, cm)) {
            size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; cm->cmsg_type == SCM_RIGHTS && i < k; i++) {
                int got;
                memcpy(&got, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
                if (fd && *fd < 0) {
                    *fd = got;
                } else {
                    close(got);
                }
            }
        }
        off += (size_t)n;
    }
    return true;
}

bool vfu_client_recv(VfuClient *c, VfuHeader *hdr, uint8_t **payload,
                     int *fd, Error **errp)
{
    *payload = NULL;
    if (fd) {
        *fd = -1;
    }
    if (!read_full(c, hdr, sizeof(*hdr), fd, errp)) {
        return false;
    }
    if (hdr->size < sizeof(*hdr) || hdr->size > VFU_MAX_MSG_SIZE) {
        error_setg(errp, "vfio-user: bad reply size %u", hdr->size);
        return false;
    }
    size_t len = hdr->size - sizeof(*hdr);
    *payload = malloc(len ? len : 1);
    if (!*payload) {
        error_setg(errp, "out of memory");
        return false;
    }
    if (!read_full(c, *payload, len, fd, errp)) {
        free(*payload);
        *payload = NULL;
        return false;
    }
    return true;
}

static bool send_command(VfuClient *c, uint16_t cmd, const void *payload,
                         size_t len, const int *fds, size_t nfds,
                         uint16_t *id, Error **errp)
{
    VfuHeader h = { .msg_id = c->next_id++, .cmd = cmd,
                    .size = (uint32_t)(sizeof(h) + len) };
    uint8_t *msg = malloc(sizeof(h) + len);
    if (!msg) {
        error_setg(errp, "out of memory");
        return false;
    }
    memcpy(msg, &h, sizeof(h));
    if (len) {
        memcpy(msg + sizeof(h), payload, len);
    }
    bool ok = vfu_client_send_raw(c, msg, sizeof(h) + len, fds, nfds, errp);
    free(msg);
    *id = h.msg_id;
    return ok;
}

/* --- requests from the server (DMA_READ / DMA_WRITE) ------------------ */

/* The memory behind [iova, iova + len) with permission prot, or NULL. */
static uint8_t *client_mem(VfuClient *c, uint64_t iova, uint64_t len,
                           uint32_t prot)
{
    for (size_t i = 0; i < c->n_mem; i++) {
        const VfuClientMem *m = &c->mem[i];
        if (iova >= m->iova && iova - m->iova < m->size &&
            len <= m->size - (iova - m->iova) && (m->prot & prot) == prot) {
            return m->host + (iova - m->iova);
        }
    }
    return NULL;
}

/* Spec "VFIO_USER_DMA_READ" / "VFIO_USER_DMA_WRITE": the reply echoes
 * address and count (a read's data follows). Returns an errno or 0. */
static int dma_answer(VfuClient *c, const VfuHeader *h, const uint8_t *p,
                      size_t len, ByteBuf *out)
{
    VfuDmaAccess a;
    bool write = h->cmd == VFU_CMD_DMA_WRITE;
    if (h->cmd != VFU_CMD_DMA_READ && !write) {
        return ENOTSUP;
    }
    if (len < sizeof(a)) {
        return EINVAL;
    }
    memcpy(&a, p, sizeof(a));
    if (!a.count || a.count > VFU_MAX_DATA_XFER ||
        len != sizeof(a) + (write ? a.count : 0)) {
        return EINVAL;
    }
    uint8_t *host = client_mem(c, a.addr, a.count,
                               write ? VFU_DMA_FLAG_WRITE : VFU_DMA_FLAG_READ);
    if (!host) {
        return EFAULT;
    }
    bytebuf_append(out, &a, sizeof(a));
    if (write) {
        memcpy(host, p + sizeof(a), a.count);
    } else {
        bytebuf_append(out, host, a.count);
    }
    c->dma_served++;
    return out->failed ? ENOMEM : 0;
}

/* Answers one command the server sent. */
static bool serve_one(VfuClient *c, const VfuHeader *h, const uint8_t *p,
                      Error **errp)
{
    ByteBuf out;
    bytebuf_init(&out);
    int err = dma_answer(c, h, p, h->size - sizeof(*h), &out);
    VfuHeader r = { .msg_id = h->msg_id, .cmd = h->cmd,
                    .flags = VFU_FLAG_TYPE_REPLY };
    if (err) {
        r.flags |= VFU_FLAG_ERROR;
        r.error = (uint32_t)err;
        out.len = 0;
    }
    r.size = (uint32_t)(sizeof(r) + out.len);
    bool ok = true;
    if (!(h->flags & VFU_FLAG_NO_REPLY)) {
        uint8_t *msg = malloc(r.size);
        ok = msg != NULL;
        if (ok) {
            memcpy(msg, &r, sizeof(r));
            if (out.len) {
                memcpy(msg + sizeof(r), out.data, out.len);
            }
            ok = vfu_client_send_raw(c, msg, r.size, NULL, 0, errp);
        } else {
            error_setg(errp, "out of memory");
        }
        free(msg);
    }
    bytebuf_free(&out);
    return ok;
}

static bool is_command(const VfuHeader *h)
{
    return (h->flags & VFU_FLAG_TYPE_MASK) == VFU_FLAG_TYPE_COMMAND;
}

int vfu_client_serve(VfuClient *c, int timeout_ms, Error **errp)
{
    int served = 0;
    for (;;) {
        struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
        int r = poll(&pfd, 1, served ? 0 : timeout_ms);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return served;
        }
        VfuHeader h;
        uint8_t *data;
        if (!vfu_client_recv(c, &h, &data, NULL, errp)) {
            return -1;
        }
        bool ok = is_command(&h);
        if (!ok) {
            error_setg(errp, "vfio-user: unexpected reply to %s (id %u)",
                       vfu_cmd_name(h.cmd), h.msg_id);
        }
        ok = ok && serve_one(c, &h, data, errp);
        free(data);
        if (!ok) {
            return -1;
        }
        served++;
    }
}

uint64_t vfu_client_dma_requests(const VfuClient *c)
{
    return c->dma_served;
}

/* Receives until the reply to (cmd, id), answering server commands met
 * on the way. */
static bool recv_reply(VfuClient *c, uint16_t cmd, uint16_t id, VfuHeader *h,
                       uint8_t **data, int *fd, Error **errp)
{
    for (;;) {
        if (!vfu_client_recv(c, h, data, fd, errp)) {
            return false;
        }
        if (!is_command(h)) {
            break;
        }
        bool ok = serve_one(c, h, *data, errp);
        free(*data);
        *data = NULL;
        if (!ok) {
            return false;
        }
        if (*fd >= 0) {
            close(*fd);
            *fd = -1;
        }
    }
    if ((h->flags & VFU_FLAG_TYPE_MASK) != VFU_FLAG_TYPE_REPLY ||
        h->msg_id != id || h->cmd != cmd) {
        error_setg(errp, "vfio-user: unexpected message (cmd %u id %u) "
                   "waiting for the reply to %s", h->cmd, h->msg_id,
                   vfu_cmd_name(cmd));
        free(*data);
        *data = NULL;
        return false;
    }
    return true;
}

bool vfu_client_request(VfuClient *c, uint16_t cmd, const void *payload,
                        size_t len, const int *fds, size_t nfds,
                        uint8_t **reply, size_t *reply_len, int *reply_fd,
                        Error **errp)
{
    uint16_t id;
    VfuHeader h;
    uint8_t *data = NULL;
    int fd = -1;
    c->last_errno = 0;
    if (!send_command(c, cmd, payload, len, fds, nfds, &id, errp) ||
        !recv_reply(c, cmd, id, &h, &data, &fd, errp)) {
        if (fd >= 0) {
            close(fd);
        }
        return false;
    }
    bool ok = false;
    if (h.flags & VFU_FLAG_ERROR) {
        c->last_errno = (int)h.error;
        error_setg_errno(errp, (int)h.error, "vfio-user %s refused",
                         vfu_cmd_name(cmd));
    } else {
        ok = true;
    }
    if (ok && reply_fd) {
        *reply_fd = fd;
        fd = -1;
    }
    if (fd >= 0) {
        close(fd);
    }
    if (ok && reply) {
        *reply = data;
        data = NULL;
    }
    if (ok && reply_len) {
        *reply_len = h.size - sizeof(h);
    }
    free(data);
    return ok;
}

/* Request whose reply must be at least want bytes; copies them out. */
static bool request_fixed(VfuClient *c, uint16_t cmd, const void *payload,
                          size_t len, void *out, size_t want, Error **errp)
{
    uint8_t *r;
    size_t rlen;
    if (!vfu_client_request(c, cmd, payload, len, NULL, 0, &r, &rlen, NULL,
                            errp)) {
        return false;
    }
    bool ok = rlen >= want;
    if (ok) {
        memcpy(out, r, want);
    } else {
        error_setg(errp, "vfio-user %s: short reply", vfu_cmd_name(cmd));
    }
    free(r);
    return ok;
}

/* --- VERSION ------------------------------------------------------- */

static bool read_caps(VfuClient *c, const char *json, Error **errp)
{
    json_object *root = json_tokener_parse(json), *caps, *v;
    if (!root || !json_object_object_get_ex(root, "capabilities", &caps)) {
        json_object_put(root);
        error_setg(errp, "vfio-user: VERSION reply without capabilities");
        return false;
    }
    if (json_object_object_get_ex(caps, "max_msg_fds", &v)) {
        c->caps.max_msg_fds = (uint32_t)json_object_get_int64(v);
    }
    if (json_object_object_get_ex(caps, "max_data_xfer_size", &v)) {
        c->caps.max_data_xfer = (uint64_t)json_object_get_int64(v);
    }
    if (json_object_object_get_ex(caps, "max_dma_maps", &v)) {
        c->caps.max_dma_maps = (uint64_t)json_object_get_int64(v);
    }
    if (json_object_object_get_ex(caps, "pgsizes", &v)) {
        c->caps.pgsizes = (uint64_t)json_object_get_int64(v);
    }
    json_object_put(root);
    if (!c->caps.max_data_xfer) {
        c->caps.max_data_xfer = 4096;
    }
    return true;
}

bool vfu_client_negotiate(VfuClient *c, Error **errp)
{
    static const char caps[] = "{\"capabilities\":{\"max_msg_fds\":8,"
                               "\"max_data_xfer_size\":1048576}}";
    uint8_t req[sizeof(VfuVersion) + sizeof(caps)];
    VfuVersion v = { VFU_PROTO_MAJOR, VFU_PROTO_MINOR };
    memcpy(req, &v, sizeof(v));
    memcpy(req + sizeof(v), caps, sizeof(caps));
    uint8_t *r;
    size_t rlen;
    if (!vfu_client_request(c, VFU_CMD_VERSION, req, sizeof(req), NULL, 0,
                            &r, &rlen, NULL, errp)) {
        return false;
    }
    bool ok = rlen > sizeof(v) && r[rlen - 1] == '\0';
    if (ok) {
        memcpy(&v, r, sizeof(v));
        c->caps.major = v.major;
        c->caps.minor = v.minor;
        ok = read_caps(c, (const char *)r + sizeof(v), errp);
    } else {
        error_setg(errp, "vfio-user: malformed VERSION reply");
    }
    free(r);
    return ok;
}

/* --- device, regions, interrupts ------------------------------------- */

bool vfu_client_device_info(VfuClient *c, VfuDeviceInfo *info, Error **errp)
{
    VfuDeviceInfo in = { .argsz = sizeof(in) };
    return request_fixed(c, VFU_CMD_DEVICE_GET_INFO, &in, sizeof(in), info,
                         sizeof(*info), errp);
}

static void parse_sparse(const uint8_t *r, size_t rlen,
                         const VfuRegionInfo *info, VfuSparseArea *areas,
                         unsigned max_areas, unsigned *nr_areas)
{
    size_t off = info->cap_offset;
    VfuCapHeader h;
    VfuSparseMmap sm;
    if (!(info->flags & VFU_REGION_FLAG_CAPS) || !off ||
        off > rlen || rlen - off < sizeof(h) + sizeof(sm)) {
        return;
    }
    memcpy(&h, r + off, sizeof(h));
    memcpy(&sm, r + off + sizeof(h), sizeof(sm));
    if (h.id != VFU_REGION_CAP_SPARSE_MMAP) {
        return;
    }
    size_t at = off + sizeof(h) + sizeof(sm);
    for (unsigned i = 0; i < sm.nr_areas && i < max_areas &&
         rlen - at >= sizeof(VfuSparseArea); i++) {
        memcpy(&areas[i], r + at, sizeof(VfuSparseArea));
        at += sizeof(VfuSparseArea);
        *nr_areas = i + 1;
    }
}

bool vfu_client_region_info(VfuClient *c, uint32_t index, VfuRegionInfo *info,
                            VfuSparseArea *areas, unsigned max_areas,
                            unsigned *nr_areas, int *fd, Error **errp)
{
    VfuRegionInfo in = { .argsz = 256, .index = index };
    uint8_t *r;
    size_t rlen;
    int rfd = -1;
    if (nr_areas) {
        *nr_areas = 0;
    }
    if (!vfu_client_request(c, VFU_CMD_DEVICE_GET_REGION_INFO, &in,
                            sizeof(in), NULL, 0, &r, &rlen, &rfd, errp)) {
        return false;
    }
    if (rlen < sizeof(*info)) {
        free(r);
        if (rfd >= 0) {
            close(rfd);
        }
        error_setg(errp, "vfio-user REGION_INFO: short reply");
        return false;
    }
    memcpy(info, r, sizeof(*info));
    if (areas && nr_areas) {
        parse_sparse(r, rlen, info, areas, max_areas, nr_areas);
    }
    free(r);
    if (fd) {
        *fd = rfd;
    } else if (rfd >= 0) {
        close(rfd);
    }
    return true;
}

static bool region_rw(VfuClient *c, uint32_t region, uint64_t offset,
                      uint8_t *buf, size_t len, bool write, Error **errp)
{
    size_t max = c->caps.max_data_xfer;
    uint8_t *msg = malloc(sizeof(VfuRegionAccess) + (len < max ? len : max));
    if (!msg) {
        error_setg(errp, "out of memory");
        return false;
    }
    bool ok = true;
    for (size_t done = 0; ok && done < len;) {
        size_t n = len - done < max ? len - done : max;
        VfuRegionAccess a = { .offset = offset + done, .region = region,
                              .count = (uint32_t)n };
        memcpy(msg, &a, sizeof(a));
        uint8_t *r = NULL;
        size_t rlen = 0;
        if (write) {
            memcpy(msg + sizeof(a), buf + done, n);
        }
        ok = vfu_client_request(c, write ? VFU_CMD_REGION_WRITE
                                : VFU_CMD_REGION_READ, msg,
                                sizeof(a) + (write ? n : 0), NULL, 0, &r,
                                &rlen, NULL, errp);
        if (ok && !write && rlen != sizeof(a) + n) {
            error_setg(errp, "vfio-user REGION_READ: short reply");
            ok = false;
        } else if (ok && !write) {
            memcpy(buf + done, r + sizeof(a), n);
        }
        free(r);
        done += n;
    }
    free(msg);
    return ok;
}

bool vfu_client_region_read(VfuClient *c, uint32_t region, uint64_t offset,
                            void *buf, size_t len, Error **errp)
{
    return region_rw(c, region, offset, buf, len, false, errp);
}

bool vfu_client_region_write(VfuClient *c, uint32_t region, uint64_t offset,
                             const void *buf, size_t len, Error **errp)
{
    return region_rw(c, region, offset, (uint8_t *)buf, len, true, errp);
}

bool vfu_client_dma_map(VfuClient *c, uint64_t iova, uint64_t size, int fd,
                        uint64_t fd_offset, uint32_t prot, Error **errp)
{
    VfuDmaMap m = { .argsz = sizeof(m), .flags = prot,
                    .offset = fd >= 0 ? fd_offset : 0, .addr = iova,
                    .size = size };
    return vfu_client_request(c, VFU_CMD_DMA_MAP, &m, sizeof(m),
                              fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0,
                              NULL, NULL, NULL, errp);
}

bool vfu_client_dma_map_mem(VfuClient *c, uint64_t iova, uint64_t size,
                            void *host, uint32_t prot, Error **errp)
{
    VfuClientMem *m = realloc(c->mem, (c->n_mem + 1) * sizeof(*m));
    if (!m) {
        error_setg(errp, "out of memory");
        return false;
    }
    c->mem = m;
    if (!vfu_client_dma_map(c, iova, size, -1, 0, prot, errp)) {
        return false;
    }
    c->mem[c->n_mem++] = (VfuClientMem){ iova, size, host, prot };
    return true;
}

bool vfu_client_dma_unmap(VfuClient *c, uint64_t iova, uint64_t size,
                          Error **errp)
{
    VfuDmaUnmap u = { .argsz = sizeof(u), .addr = iova, .size = size };
    if (!request_fixed(c, VFU_CMD_DMA_UNMAP, &u, sizeof(u), &u, sizeof(u),
                       errp)) {
        return false;
    }
    for (size_t i = 0; i < c->n_mem; i++) {
        if (c->mem[i].iova == iova && c->mem[i].size == size) {
            c->mem[i] = c->mem[--c->n_mem];
            break;
        }
    }
    return true;
}

bool vfu_client_irq_info(VfuClient *c, uint32_t index, VfuIrqInfo *info,
                         Error **errp)
{
    VfuIrqInfo in = { .argsz = sizeof(in), .index = index };
    return request_fixed(c, VFU_CMD_DEVICE_GET_IRQ_INFO, &in, sizeof(in),
                         info, sizeof(*info), errp);
}

bool vfu_client_set_irq_eventfds(VfuClient *c, uint32_t index, uint32_t start,
                                 uint32_t count, const int *fds, Error **errp)
{
    VfuIrqSet s = { .argsz = sizeof(s), .index = index, .start = start,
                    .count = count,
                    .flags = VFU_IRQ_SET_DATA_EVENTFD |
                             VFU_IRQ_SET_ACTION_TRIGGER };
    return vfu_client_request(c, VFU_CMD_DEVICE_SET_IRQS, &s, sizeof(s), fds,
                              fds ? count : 0, NULL, NULL, NULL, errp);
}

bool vfu_client_set_irqs(VfuClient *c, uint32_t index, uint32_t start,
                         uint32_t count, uint32_t action,
                         const uint8_t *bools, Error **errp)
{
    VfuIrqSet s = { .index = index, .start = start, .count = count,
                    .flags = action | (bools ? VFU_IRQ_SET_DATA_BOOL
                                             : VFU_IRQ_SET_DATA_NONE) };
    size_t len = sizeof(s) + (bools ? count : 0);
    uint8_t *msg = malloc(len);
    if (!msg) {
        error_setg(errp, "out of memory");
        return false;
    }
    s.argsz = (uint32_t)len;
    memcpy(msg, &s, sizeof(s));
    if (bools) {
        memcpy(msg + sizeof(s), bools, count);
    }
    bool ok = vfu_client_request(c, VFU_CMD_DEVICE_SET_IRQS, msg, len, NULL,
                                 0, NULL, NULL, NULL, errp);
    free(msg);
    return ok;
}

bool vfu_client_reset(VfuClient *c, Error **errp)
{
    return vfu_client_request(c, VFU_CMD_DEVICE_RESET, NULL, 0, NULL, 0,
                              NULL, NULL, NULL, errp);
}

/* --- migration and dirty logging ------------------------------------- */

/* DEVICE_FEATURE with data; the reply's feature data goes to out. */
static bool feature(VfuClient *c, uint32_t flags, const void *data,
                    size_t len, uint32_t argsz, void *out, size_t out_len,
                    Error **errp)
{
    VfuFeature f = { .argsz = argsz, .flags = flags };
    uint8_t *msg = malloc(sizeof(f) + len);
    if (!msg) {
        error_setg(errp, "out of memory");
        return false;
    }
    memcpy(msg, &f, sizeof(f));
    if (len) {
        memcpy(msg + sizeof(f), data, len);
    }
    uint8_t *r = NULL;
    size_t rlen = 0;
    bool ok = vfu_client_request(c, VFU_CMD_DEVICE_FEATURE, msg,
                                 sizeof(f) + len, NULL, 0, &r, &rlen, NULL,
                                 errp);
    free(msg);
    if (ok && rlen < sizeof(f) + out_len) {
        error_setg(errp, "vfio-user DEVICE_FEATURE: short reply");
        ok = false;
    }
    if (ok && out_len) {
        memcpy(out, r + sizeof(f), out_len);
    }
    free(r);
    return ok;
}

bool vfu_client_mig_flags(VfuClient *c, uint64_t *flags, Error **errp)
{
    return feature(c, VFU_FEATURE_GET | VFU_FEATURE_MIGRATION, NULL, 0, 16,
                   flags, sizeof(*flags), errp);
}

bool vfu_client_mig_get_state(VfuClient *c, uint32_t *state, Error **errp)
{
    VfuMigStateData d;
    if (!feature(c, VFU_FEATURE_GET | VFU_FEATURE_MIG_DEVICE_STATE, NULL, 0,
                 16, &d, sizeof(d), errp)) {
        return false;
    }
    *state = d.device_state;
    return true;
}

bool vfu_client_mig_set_state(VfuClient *c, uint32_t state, Error **errp)
{
    VfuMigStateData d = { .device_state = state, .data_fd = UINT32_MAX };
    return feature(c, VFU_FEATURE_SET | VFU_FEATURE_MIG_DEVICE_STATE, &d,
                   sizeof(d), 16, &d, sizeof(d), errp);
}

bool vfu_client_mig_read(VfuClient *c, void *buf, uint32_t cap,
                         uint32_t *got, Error **errp)
{
    VfuMigData d = { .argsz = (uint32_t)(sizeof(d) + cap), .size = cap };
    uint8_t *r;
    size_t rlen;
    if (!vfu_client_request(c, VFU_CMD_MIG_DATA_READ, &d, sizeof(d), NULL,
                            0, &r, &rlen, NULL, errp)) {
        return false;
    }
    bool ok = rlen >= sizeof(d);
    if (ok) {
        memcpy(&d, r, sizeof(d));
        ok = d.size <= cap && rlen == sizeof(d) + d.size;
    }
    if (ok) {
        memcpy(buf, r + sizeof(d), d.size);
        *got = d.size;
    } else {
        error_setg(errp, "vfio-user MIG_DATA_READ: malformed reply");
    }
    free(r);
    return ok;
}

bool vfu_client_mig_read_all(VfuClient *c, ByteBuf *out, Error **errp)
{
    uint32_t chunk = c->caps.max_data_xfer < 65536
                     ? (uint32_t)c->caps.max_data_xfer : 65536;
    for (;;) {
        uint32_t got;
        if (!bytebuf_reserve(out, chunk)) {
            error_setg(errp, "out of memory");
            return false;
        }
        if (!vfu_client_mig_read(c, out->data + out->len, chunk, &got,
                                 errp)) {
            return false;
        }
        out->len += got;
        if (got < chunk) {
            return true;
        }
    }
}

bool vfu_client_mig_write(VfuClient *c, const void *data, size_t len,
                          Error **errp)
{
    size_t max = c->caps.max_data_xfer;
    uint8_t *msg = malloc(sizeof(VfuMigData) + (len < max ? len : max));
    if (!msg) {
        error_setg(errp, "out of memory");
        return false;
    }
    bool ok = true;
    for (size_t done = 0; ok && done < len;) {
        size_t n = len - done < max ? len - done : max;
        VfuMigData d = { .argsz = sizeof(d), .size = (uint32_t)n };
        memcpy(msg, &d, sizeof(d));
        memcpy(msg + sizeof(d), (const uint8_t *)data + done, n);
        ok = vfu_client_request(c, VFU_CMD_MIG_DATA_WRITE, msg,
                                sizeof(d) + n, NULL, 0, NULL, NULL, NULL,
                                errp);
        done += n;
    }
    free(msg);
    return ok;
}

bool vfu_client_dirty_start(VfuClient *c, uint64_t page_size,
                            const VfuLoggingRange *ranges, uint32_t n,
                            uint64_t *page_used, Error **errp)
{
    VfuLoggingStart ls = { .page_size = page_size, .num_ranges = n };
    size_t len = sizeof(ls) + (size_t)n * sizeof(*ranges);
    uint8_t *data = malloc(len);
    if (!data) {
        error_setg(errp, "out of memory");
        return false;
    }
    memcpy(data, &ls, sizeof(ls));
    if (n) {
        memcpy(data + sizeof(ls), ranges, n * sizeof(*ranges));
    }
    bool ok = feature(c, VFU_FEATURE_SET | VFU_FEATURE_DMA_LOGGING_START,
                      data, len, (uint32_t)(8 + len), &ls, sizeof(ls), errp);
    free(data);
    if (ok && page_used) {
        *page_used = ls.page_size;
    }
    return ok;
}

bool vfu_client_dirty_stop(VfuClient *c, Error **errp)
{
    return feature(c, VFU_FEATURE_SET | VFU_FEATURE_DMA_LOGGING_STOP, NULL,
                   0, 8, NULL, 0, errp);
}

bool vfu_client_dirty_report(VfuClient *c, uint64_t iova, uint64_t length,
                             uint64_t page_size, uint64_t *bitmap,
                             size_t words, Error **errp)
{
    VfuLoggingReport rep = { iova, length, page_size };
    size_t out = sizeof(rep) + words * sizeof(uint64_t);
    uint8_t *buf = malloc(out);
    if (!buf) {
        error_setg(errp, "out of memory");
        return false;
    }
    bool ok = feature(c, VFU_FEATURE_GET | VFU_FEATURE_DMA_LOGGING_REPORT,
                      &rep, sizeof(rep), (uint32_t)(8 + out), buf, out, errp);
    if (ok) {
        memcpy(bitmap, buf + sizeof(rep), words * sizeof(uint64_t));
    }
    free(buf);
    return ok;
}
