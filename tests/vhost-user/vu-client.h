/* A test front end: sends vhost-user messages (with fds) over a socket and
 * reads replies while running the back end's main loop. */
#ifndef STORMIG_TESTS_VU_CLIENT_H
#define STORMIG_TESTS_VU_CLIENT_H

#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/loop.h"
#include "vhost-user/vhost-user-proto.h"

static inline bool vuc_send(int sock, uint32_t request, uint32_t flags,
                            const void *payload, uint32_t size,
                            const int *fds, unsigned nfds)
{
    uint8_t buf[VHOST_USER_HDR_SIZE + 4096];
    uint32_t hdr[3] = { request, VHOST_USER_VERSION | flags, size };
    memcpy(buf, hdr, sizeof(hdr));
    if (size) {
        memcpy(buf + VHOST_USER_HDR_SIZE, payload, size);
    }
    struct iovec iov = { buf, VHOST_USER_HDR_SIZE + size };
    char cbuf[CMSG_SPACE(sizeof(int) * 8)];
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
    return sendmsg(sock, &mh, MSG_NOSIGNAL) == (ssize_t)iov.iov_len;
}

/* A memfd of size bytes with the given seals added (QEMU's
 * memory-backend-memfd and vhost log add F_SEAL_GROW | F_SEAL_SHRINK |
 * F_SEAL_SEAL); -1 on failure. */
static inline int vuc_memfd(const char *name, off_t size, int seals)
{
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0 || ftruncate(fd, size) < 0 ||
        (seals && fcntl(fd, F_ADD_SEALS, seals) < 0)) {
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    return fd;
}

#define VUC_QEMU_SEALS (F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL)

/* Runs the loop until sock is readable (or 2 s passed). */
static inline bool vuc_wait(EventLoop *loop, int sock)
{
    for (int i = 0; i < 200; i++) {
        struct pollfd p = { .fd = sock, .events = POLLIN };
        if (poll(&p, 1, 0) == 1) {
            return true;
        }
        loop_run_once(loop, 10);
    }
    return false;
}

/* Reads one reply; false on EOF or timeout. */
static inline bool vuc_recv(EventLoop *loop, int sock, uint32_t *request,
                            void *payload, uint32_t *size)
{
    uint32_t hdr[3];
    if (!vuc_wait(loop, sock) ||
        recv(sock, hdr, sizeof(hdr), MSG_WAITALL) != sizeof(hdr)) {
        return false;
    }
    if (!(hdr[1] & VHOST_USER_REPLY_MASK) || hdr[2] > 512) {
        return false;
    }
    *request = hdr[0];
    *size = hdr[2];
    return recv(sock, payload, hdr[2], MSG_WAITALL) == (ssize_t)hdr[2];
}

/* True when the back end closed its end (after running the loop). */
static inline bool vuc_closed(EventLoop *loop, int sock)
{
    char b;
    return vuc_wait(loop, sock) && recv(sock, &b, 1, MSG_DONTWAIT) == 0;
}

#endif
