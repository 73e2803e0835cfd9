/* vhost-user front end of the test VM (see vhost-fe.h). */
#include "vhost-fe.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/log.h"
#include "vhost-user/vhost-user-proto.h"
#include "virtio/virtio.h"

#define REPLY_TIMEOUT_MS 5000

struct VhostFe {
    int sock;
    GuestMem *gm;
    uint64_t protocol;              /* acked protocol features */
    unsigned queue_num;
    int kick[VHOST_FE_MAX_RINGS];
    int call[VHOST_FE_MAX_RINGS];
    unsigned started[VHOST_FE_MAX_RINGS];
    unsigned nr_started;
    uint64_t calls;
};

VhostFe *vhost_fe_connect(const char *path, Error **errp)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(sa.sun_path)) {
        error_setg(errp, "vhost-user socket path too long: %s", path);
        return NULL;
    }
    strcpy(sa.sun_path, path);
    VhostFe *fe = calloc(1, sizeof(*fe));
    if (!fe) {
        error_setg(errp, "out of memory");
        return NULL;
    }
    for (unsigned i = 0; i < VHOST_FE_MAX_RINGS; i++) {
        fe->kick[i] = fe->call[i] = -1;
    }
    fe->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fe->sock < 0 ||
        connect(fe->sock, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        error_setg_errno(errp, errno, "vhost-user %s", path);
        vhost_fe_free(fe);
        return NULL;
    }
    return fe;
}

void vhost_fe_free(VhostFe *fe)
{
    if (!fe) {
        return;
    }
    for (unsigned i = 0; i < VHOST_FE_MAX_RINGS; i++) {
        if (fe->kick[i] >= 0) {
            close(fe->kick[i]);
        }
        if (fe->call[i] >= 0) {
            close(fe->call[i]);
        }
    }
    if (fe->sock >= 0) {
        close(fe->sock);
    }
    free(fe);
}

/* "Message Specification": header (request, flags, size), payload, and
 * the fds as SCM_RIGHTS ancillary data of the same sendmsg. */
static bool send_msg(VhostFe *fe, uint32_t req, uint32_t flags,
                     const void *payload, uint32_t size, const int *fds,
                     unsigned nfds, Error **errp)
{
    uint8_t buf[VHOST_USER_HDR_SIZE + VHOST_USER_PAYLOAD_MAX];
    uint32_t hdr[3] = { req, VHOST_USER_VERSION | flags, size };
    char cbuf[CMSG_SPACE(sizeof(int) * VHOST_USER_MAX_FDS)];
    if (size > VHOST_USER_PAYLOAD_MAX || nfds > VHOST_USER_MAX_FDS) {
        error_setg(errp, "vhost-user: message %u too big", req);
        return false;
    }
    memcpy(buf, hdr, sizeof(hdr));
    if (size) {
        memcpy(buf + VHOST_USER_HDR_SIZE, payload, size);
    }
    struct iovec iov = { buf, VHOST_USER_HDR_SIZE + size };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (nfds) {
        mh.msg_control = cbuf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    if (sendmsg(fe->sock, &mh, MSG_NOSIGNAL) != (ssize_t)iov.iov_len) {
        error_setg_errno(errp, errno, "vhost-user: sending request %u",
                         req);
        return false;
    }
    return true;
}

static bool recv_all(VhostFe *fe, void *buf, size_t len, Error **errp)
{
    size_t got = 0;
    while (got < len) {
        struct pollfd p = { .fd = fe->sock, .events = POLLIN };
        if (poll(&p, 1, REPLY_TIMEOUT_MS) != 1) {
            error_setg(errp, "vhost-user: no reply from the back end");
            return false;
        }
        ssize_t n = recv(fe->sock, (uint8_t *)buf + got, len - got, 0);
        if (n <= 0) {
            error_setg(errp, "vhost-user: back end closed the connection");
            return false;
        }
        got += (size_t)n;
    }
    return true;
}

/* A reply to req: its u64 (GET_* and REPLY_ACK both carry one). */
static bool recv_u64(VhostFe *fe, uint32_t req, uint64_t *v, Error **errp)
{
    uint32_t hdr[3];
    if (!recv_all(fe, hdr, sizeof(hdr), errp)) {
        return false;
    }
    if (hdr[0] != req || !(hdr[1] & VHOST_USER_REPLY_MASK) ||
        hdr[2] != sizeof(*v)) {
        error_setg(errp, "vhost-user: unexpected reply (request %u, flags "
                   "0x%x, size %u) to request %u", hdr[0], hdr[1], hdr[2],
                   req);
        return false;
    }
    return recv_all(fe, v, sizeof(*v), errp);
}

static bool get_u64(VhostFe *fe, uint32_t req, uint64_t *v, Error **errp)
{
    return send_msg(fe, req, 0, NULL, 0, NULL, 0, errp) &&
           recv_u64(fe, req, v, errp);
}

/* Sends a message that has no reply of its own; with REPLY_ACK asks for
 * one and checks it ("REPLY_ACK": 0 is success). */
static bool set_msg(VhostFe *fe, uint32_t req, const void *payload,
                    uint32_t size, const int *fds, unsigned nfds,
                    Error **errp)
{
    bool ack = fe->protocol & BIT_ULL(VHOST_USER_PROTOCOL_F_REPLY_ACK);
    uint64_t status = 0;
    if (!send_msg(fe, req, ack ? VHOST_USER_NEED_REPLY_MASK : 0, payload,
                  size, fds, nfds, errp) ||
        (ack && !recv_u64(fe, req, &status, errp))) {
        return false;
    }
    if (status != 0) {
        error_setg(errp, "vhost-user: back end refused request %u", req);
        return false;
    }
    return true;
}

static bool negotiate_protocol(VhostFe *fe, Error **errp)
{
    uint64_t offered, want = BIT_ULL(VHOST_USER_PROTOCOL_F_REPLY_ACK) |
                             BIT_ULL(VHOST_USER_PROTOCOL_F_MQ);
    if (!get_u64(fe, VHOST_USER_GET_PROTOCOL_FEATURES, &offered, errp)) {
        return false;
    }
    uint64_t set = offered & want;
    if (!send_msg(fe, VHOST_USER_SET_PROTOCOL_FEATURES, 0, &set, sizeof(set),
                  NULL, 0, errp)) {
        return false;
    }
    fe->protocol = set;
    uint64_t qn = 0;
    if ((set & BIT_ULL(VHOST_USER_PROTOCOL_F_MQ)) &&
        !get_u64(fe, VHOST_USER_GET_QUEUE_NUM, &qn, errp)) {
        return false;
    }
    fe->queue_num = qn > VHOST_FE_MAX_RINGS ? VHOST_FE_MAX_RINGS
                                            : (unsigned)qn;
    return true;
}

static bool set_mem_table(VhostFe *fe, GuestMem *gm, Error **errp)
{
    VhostUserMemory m = { .nregions = 1 };
    m.regions[0] = (VhostUserMemRegion){
        .guest_phys_addr = 0, .memory_size = gm->size,
        .userspace_addr = (uint64_t)(uintptr_t)gm->base, .mmap_offset = 0,
    };
    uint32_t size = (uint32_t)(offsetof(VhostUserMemory, regions) +
                               sizeof(m.regions[0]));
    fe->gm = gm;
    return set_msg(fe, VHOST_USER_SET_MEM_TABLE, &m, size, &gm->fd, 1,
                   errp);
}

bool vhost_fe_setup(VhostFe *fe, GuestMem *gm, uint64_t want,
                    uint64_t *acked, Error **errp)
{
    uint64_t offered;
    if (!get_u64(fe, VHOST_USER_GET_FEATURES, &offered, errp)) {
        return false;
    }
    uint64_t set = offered & (want | BIT_ULL(VHOST_USER_F_PROTOCOL_FEATURES));
    if ((set & BIT_ULL(VHOST_USER_F_PROTOCOL_FEATURES)) &&
        !negotiate_protocol(fe, errp)) {
        return false;
    }
    if (!send_msg(fe, VHOST_USER_SET_OWNER, 0, NULL, 0, NULL, 0, errp) ||
        !set_msg(fe, VHOST_USER_SET_FEATURES, &set, sizeof(set), NULL, 0,
                 errp) ||
        !set_mem_table(fe, gm, errp)) {
        return false;
    }
    *acked = set;
    return true;
}

unsigned vhost_fe_queue_num(const VhostFe *fe)
{
    return fe->queue_num;
}

static bool set_state(VhostFe *fe, uint32_t req, unsigned idx, unsigned num,
                      Error **errp)
{
    VhostUserVringState s = { idx, num };
    return set_msg(fe, req, &s, sizeof(s), NULL, 0, errp);
}

static bool set_ring_fd(VhostFe *fe, uint32_t req, unsigned idx, int *fd,
                        Error **errp)
{
    if (*fd < 0) {
        *fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    }
    if (*fd < 0) {
        error_setg_errno(errp, errno, "eventfd");
        return false;
    }
    uint64_t v = idx;
    return set_msg(fe, req, &v, sizeof(v), fd, 1, errp);
}

bool vhost_fe_start_ring(VhostFe *fe, unsigned idx, uint16_t num,
                         uint64_t desc_gpa, uint64_t avail_gpa,
                         uint64_t used_gpa, Error **errp)
{
    if (idx >= VHOST_FE_MAX_RINGS || !fe->gm) {
        error_setg(errp, "vhost-user: ring %u cannot be started", idx);
        return false;
    }
    /* "Vring address description": front-end virtual addresses. */
    uint64_t base = (uint64_t)(uintptr_t)fe->gm->base;
    VhostUserVringAddr a = { .index = idx, .desc_user_addr = base + desc_gpa,
                             .avail_user_addr = base + avail_gpa,
                             .used_user_addr = base + used_gpa };
    if (!set_state(fe, VHOST_USER_SET_VRING_NUM, idx, num, errp) ||
        !set_state(fe, VHOST_USER_SET_VRING_BASE, idx, 0, errp) ||
        !set_msg(fe, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0,
                 errp) ||
        !set_ring_fd(fe, VHOST_USER_SET_VRING_CALL, idx, &fe->call[idx],
                     errp) ||
        !set_ring_fd(fe, VHOST_USER_SET_VRING_KICK, idx, &fe->kick[idx],
                     errp)) {
        return false;
    }
    /* "Ring states": with PROTOCOL_FEATURES a started ring stays disabled
     * until SET_VRING_ENABLE. */
    if (!set_state(fe, VHOST_USER_SET_VRING_ENABLE, idx, 1, errp)) {
        return false;
    }
    fe->started[fe->nr_started++] = idx;
    return true;
}

bool vhost_fe_kick(VhostFe *fe, unsigned idx)
{
    uint64_t one = 1;
    if (idx >= VHOST_FE_MAX_RINGS || fe->kick[idx] < 0) {
        return false;
    }
    return write(fe->kick[idx], &one, sizeof(one)) == sizeof(one);
}

unsigned vhost_fe_wait(VhostFe *fe, int timeout_ms)
{
    struct pollfd pfd[VHOST_FE_MAX_RINGS];
    for (unsigned i = 0; i < fe->nr_started; i++) {
        pfd[i] = (struct pollfd){ .fd = fe->call[fe->started[i]],
                                  .events = POLLIN };
    }
    if (poll(pfd, fe->nr_started, timeout_ms) <= 0) {
        return 0;
    }
    unsigned n = 0;
    for (unsigned i = 0; i < fe->nr_started; i++) {
        uint64_t cnt;
        if ((pfd[i].revents & POLLIN) &&
            read(pfd[i].fd, &cnt, sizeof(cnt)) == sizeof(cnt)) {
            n += (unsigned)cnt;
        }
    }
    fe->calls += n;
    return n;
}

uint64_t vhost_fe_calls(const VhostFe *fe)
{
    return fe->calls;
}
