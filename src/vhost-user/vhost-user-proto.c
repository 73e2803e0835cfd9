/* vhost-user message names and validation ("Message types" of
 * docs/interop/vhost-user.rst). */
#include "vhost-user/vhost-user-proto.h"

#include <stddef.h>

const char *vhost_user_request_name(uint32_t request)
{
    static const char *const names[] = {
        [VHOST_USER_GET_FEATURES] = "GET_FEATURES",
        [VHOST_USER_SET_FEATURES] = "SET_FEATURES",
        [VHOST_USER_SET_OWNER] = "SET_OWNER",
        [VHOST_USER_RESET_OWNER] = "RESET_OWNER",
        [VHOST_USER_SET_MEM_TABLE] = "SET_MEM_TABLE",
        [VHOST_USER_SET_LOG_BASE] = "SET_LOG_BASE",
        [VHOST_USER_SET_LOG_FD] = "SET_LOG_FD",
        [VHOST_USER_SET_VRING_NUM] = "SET_VRING_NUM",
        [VHOST_USER_SET_VRING_ADDR] = "SET_VRING_ADDR",
        [VHOST_USER_SET_VRING_BASE] = "SET_VRING_BASE",
        [VHOST_USER_GET_VRING_BASE] = "GET_VRING_BASE",
        [VHOST_USER_SET_VRING_KICK] = "SET_VRING_KICK",
        [VHOST_USER_SET_VRING_CALL] = "SET_VRING_CALL",
        [VHOST_USER_SET_VRING_ERR] = "SET_VRING_ERR",
        [VHOST_USER_GET_PROTOCOL_FEATURES] = "GET_PROTOCOL_FEATURES",
        [VHOST_USER_SET_PROTOCOL_FEATURES] = "SET_PROTOCOL_FEATURES",
        [VHOST_USER_GET_QUEUE_NUM] = "GET_QUEUE_NUM",
        [VHOST_USER_SET_VRING_ENABLE] = "SET_VRING_ENABLE",
        [VHOST_USER_RESET_DEVICE] = "RESET_DEVICE",
    };
    if (request < sizeof(names) / sizeof(names[0]) && names[request]) {
        return names[request];
    }
    return "unknown";
}

const char *vhost_user_check_header(uint32_t request, uint32_t flags,
                                    uint32_t size)
{
    /* "Header": version 1, and a request never carries the reply bit. */
    if ((flags & VHOST_USER_VERSION_MASK) != VHOST_USER_VERSION) {
        return "unsupported protocol version";
    }
    if (flags & VHOST_USER_REPLY_MASK) {
        return "request marked as a reply";
    }
    if (size > VHOST_USER_PAYLOAD_MAX) {
        return "payload too large";
    }
    return NULL;
}

bool vhost_user_has_reply(uint32_t request)
{
    switch (request) {
    case VHOST_USER_GET_FEATURES:
    case VHOST_USER_GET_PROTOCOL_FEATURES:
    case VHOST_USER_GET_VRING_BASE:
    case VHOST_USER_GET_QUEUE_NUM:
    case VHOST_USER_SET_LOG_BASE:
        return true;
    default:
        return false;
    }
}

static const char *check_mem_table(const VhostUserMsg *msg)
{
    size_t fixed = offsetof(VhostUserMemory, regions);
    if (msg->size < fixed) {
        return "memory table too short";
    }
    uint32_t n = msg->payload.memory.nregions;
    if (n == 0 || n > VHOST_USER_MAX_REGIONS) {
        return "bad number of memory regions";
    }
    if (msg->size != fixed + n * sizeof(VhostUserMemRegion)) {
        return "memory table size does not match its region count";
    }
    if (msg->nfds != n) {
        return "memory table needs one fd per region";
    }
    return NULL;
}

static const char *check_vring_fd(const VhostUserMsg *msg)
{
    if (msg->size != 8) {
        return "vring fd message needs a u64 payload";
    }
    bool nofd = msg->payload.u64 & VHOST_USER_VRING_NOFD_MASK;
    if (msg->nfds != (nofd ? 0u : 1u)) {
        return "vring fd message with a wrong number of fds";
    }
    return NULL;
}

/* Expected payload size and fd count; -1 means "checked elsewhere". */
static const char *check_plain(const VhostUserMsg *msg, uint32_t size,
                               unsigned nfds)
{
    if (msg->size != size) {
        return "payload size does not match the message";
    }
    if (msg->nfds != nfds) {
        return "unexpected file descriptors";
    }
    return NULL;
}

const char *vhost_user_check_msg(const VhostUserMsg *msg)
{
    const char *err = vhost_user_check_header(msg->request, msg->flags,
                                              msg->size);
    if (err) {
        return err;
    }
    switch (msg->request) {
    case VHOST_USER_GET_FEATURES:
    case VHOST_USER_GET_PROTOCOL_FEATURES:
    case VHOST_USER_SET_OWNER:
    case VHOST_USER_RESET_OWNER:
    case VHOST_USER_RESET_DEVICE:
    case VHOST_USER_GET_QUEUE_NUM:
        return check_plain(msg, 0, 0);
    case VHOST_USER_SET_FEATURES:
    case VHOST_USER_SET_PROTOCOL_FEATURES:
    case VHOST_USER_SET_VRING_NUM:
    case VHOST_USER_SET_VRING_BASE:
    case VHOST_USER_GET_VRING_BASE:
    case VHOST_USER_SET_VRING_ENABLE:
        return check_plain(msg, 8, 0);
    case VHOST_USER_SET_VRING_ADDR:
        return check_plain(msg, sizeof(VhostUserVringAddr), 0);
    case VHOST_USER_SET_MEM_TABLE:
        return check_mem_table(msg);
    case VHOST_USER_SET_LOG_BASE:
        return check_plain(msg, sizeof(VhostUserLog), 1);
    case VHOST_USER_SET_LOG_FD:
        if (msg->nfds != 1 || (msg->size != 0 && msg->size != 8)) {
            return "SET_LOG_FD needs one fd";
        }
        return NULL;
    case VHOST_USER_SET_VRING_KICK:
    case VHOST_USER_SET_VRING_CALL:
    case VHOST_USER_SET_VRING_ERR:
        return check_vring_fd(msg);
    default:
        return "unsupported request";
    }
}
