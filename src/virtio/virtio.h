/* Feature bits and ring flags shared by virtio devices (virtio 1.2 ch. 6
 * "Reserved Feature Bits" and 2.7 "Split Virtqueues"). */
#ifndef STORMIG_VIRTIO_VIRTIO_H
#define STORMIG_VIRTIO_VIRTIO_H

#define VIRTIO_F_NOTIFY_ON_EMPTY    24
#define VIRTIO_RING_F_INDIRECT_DESC 28
#define VIRTIO_RING_F_EVENT_IDX     29
#define VIRTIO_F_VERSION_1          32

#define VIRTQ_DESC_F_NEXT       1
#define VIRTQ_DESC_F_WRITE      2
#define VIRTQ_DESC_F_INDIRECT   4

#define VIRTQ_AVAIL_F_NO_INTERRUPT  1
#define VIRTQ_USED_F_NO_NOTIFY      1

/* 2.7 "Split Virtqueues": Queue Size is a power of 2, at most 32768. */
#define VIRTQ_MAX_SIZE 32768

#define BIT_ULL(n) (1ull << (n))

#endif
