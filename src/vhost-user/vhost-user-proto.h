/*
 * The vhost-user wire protocol (QEMU docs/interop/vhost-user.rst): message
 * numbers, feature bits, payload layouts and per-message validation. Pure
 * data handling, no sockets; the server (vhost-user.c) does the I/O.
 *
 * Messages are in host byte order ("Message Specification"); stormig runs
 * on little-endian hosts only, like the QEMU it serves.
 */
#ifndef STORMIG_VHOST_USER_PROTO_H
#define STORMIG_VHOST_USER_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "Front-end message types" */
typedef enum VhostUserRequest {
    VHOST_USER_NONE = 0,
    VHOST_USER_GET_FEATURES = 1,
    VHOST_USER_SET_FEATURES = 2,
    VHOST_USER_SET_OWNER = 3,
    VHOST_USER_RESET_OWNER = 4,
    VHOST_USER_SET_MEM_TABLE = 5,
    VHOST_USER_SET_LOG_BASE = 6,
    VHOST_USER_SET_LOG_FD = 7,
    VHOST_USER_SET_VRING_NUM = 8,
    VHOST_USER_SET_VRING_ADDR = 9,
    VHOST_USER_SET_VRING_BASE = 10,
    VHOST_USER_GET_VRING_BASE = 11,
    VHOST_USER_SET_VRING_KICK = 12,
    VHOST_USER_SET_VRING_CALL = 13,
    VHOST_USER_SET_VRING_ERR = 14,
    VHOST_USER_GET_PROTOCOL_FEATURES = 15,
    VHOST_USER_SET_PROTOCOL_FEATURES = 16,
    VHOST_USER_GET_QUEUE_NUM = 17,
    VHOST_USER_SET_VRING_ENABLE = 18,
    VHOST_USER_RESET_DEVICE = 34,
    VHOST_USER_MAX_REQUEST = 64,
} VhostUserRequest;

/* "Header": flags */
#define VHOST_USER_VERSION          0x1u
#define VHOST_USER_VERSION_MASK     0x3u
#define VHOST_USER_REPLY_MASK       (1u << 2)
#define VHOST_USER_NEED_REPLY_MASK  (1u << 3)

/* Feature bits of SET_FEATURES beyond the virtio ones. */
#define VHOST_F_LOG_ALL                 26
#define VHOST_USER_F_PROTOCOL_FEATURES  30

/* "Protocol features" */
#define VHOST_USER_PROTOCOL_F_MQ            0
#define VHOST_USER_PROTOCOL_F_LOG_SHMFD     1
#define VHOST_USER_PROTOCOL_F_REPLY_ACK     3
#define VHOST_USER_PROTOCOL_F_CONFIG        9
#define VHOST_USER_PROTOCOL_F_RESET_DEVICE  13

/* "Vring descriptor indices for packed virtqueues" aside, the u64 of
 * SET_VRING_KICK/CALL/ERR: bits 0-7 index, bit 8 "no fd" (polling). */
#define VHOST_USER_VRING_IDX_MASK   0xffull
#define VHOST_USER_VRING_NOFD_MASK  (1ull << 8)

/* "Vring address description": flags */
#define VHOST_VRING_F_LOG 0

#define VHOST_USER_HDR_SIZE     12
#define VHOST_USER_MAX_FDS      8       /* VHOST_MEMORY_BASELINE_NREGIONS */
#define VHOST_USER_MAX_REGIONS  8
/* Largest payload we accept; every message we handle is far smaller. */
#define VHOST_USER_PAYLOAD_MAX  512

typedef struct VhostUserVringState {
    uint32_t index;
    uint32_t num;
} VhostUserVringState;

typedef struct VhostUserVringAddr {
    uint32_t index;
    uint32_t flags;
    uint64_t desc_user_addr;
    uint64_t used_user_addr;
    uint64_t avail_user_addr;
    uint64_t log_guest_addr;
} VhostUserVringAddr;

typedef struct VhostUserMemRegion {
    uint64_t guest_phys_addr;
    uint64_t memory_size;
    uint64_t userspace_addr;
    uint64_t mmap_offset;
} VhostUserMemRegion;

typedef struct VhostUserMemory {
    uint32_t nregions;
    uint32_t padding;
    VhostUserMemRegion regions[VHOST_USER_MAX_REGIONS];
} VhostUserMemory;

typedef struct VhostUserLog {
    uint64_t mmap_size;
    uint64_t mmap_offset;
} VhostUserLog;

typedef struct VhostUserMsg {
    uint32_t request;
    uint32_t flags;
    uint32_t size;
    union {
        uint64_t u64;
        VhostUserVringState state;
        VhostUserVringAddr addr;
        VhostUserMemory memory;
        VhostUserLog log;
        uint8_t raw[VHOST_USER_PAYLOAD_MAX];
    } payload;
    int fds[VHOST_USER_MAX_FDS];
    unsigned nfds;
} VhostUserMsg;

_Static_assert(sizeof(VhostUserVringAddr) == 40, "vring addr layout");
_Static_assert(sizeof(VhostUserMemRegion) == 32, "region layout");

const char *vhost_user_request_name(uint32_t request);

/*
 * Checks a received header and its payload size and fd count against the
 * message's definition. Returns NULL when acceptable, else the reason the
 * connection must be closed.
 */
const char *vhost_user_check_header(uint32_t request, uint32_t flags,
                                    uint32_t size);
const char *vhost_user_check_msg(const VhostUserMsg *msg);

/* True when the message has its own reply (so REPLY_ACK does not apply). */
bool vhost_user_has_reply(uint32_t request);

#endif
