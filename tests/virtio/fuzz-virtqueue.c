/*
 * Fuzz target: the input is guest memory. Its first 8 KiB hold a 64-entry
 * descriptor table, avail and used rings and indirect tables; the device
 * pops whatever the bytes describe, pushes each chain back and notifies.
 * The first bytes also pick features and the starting index.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "virtio/virtqueue.h"

#define QSIZE 64
#define MEM_GPA 0x10000
#define MEM_SIZE 0x10000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void noop(VirtQueue *vq, void *opaque)
{
}

static const VirtQueueHooks hooks = { noop, noop, noop };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t mem[MEM_SIZE] __attribute__((aligned(4096)));
    static uint8_t log[8];
    static GuestMemory gm;
    static VirtQueue vq;
    if (size < 4) {
        return 0;
    }
    uint8_t feat = data[0];
    uint16_t base = (uint16_t)(data[1] | data[2] << 8);
    memset(mem, 0, sizeof(mem));
    memcpy(mem, data + 3, size - 3 < sizeof(mem) ? size - 3 : sizeof(mem));
    gm = (GuestMemory){ .nregions = 1 };
    gm.regions[0] = (GuestRegion){ MEM_GPA, MEM_SIZE, 0, mem };
    if (feat & 8) {
        gm.log = log;
        gm.log_size = sizeof(log);
    }
    virtqueue_init(&vq, 0, &gm, &hooks, NULL);
    virtqueue_set_num(&vq, QSIZE);
    /* desc at 0, avail at 0x400, used at 0x1000. */
    virtqueue_set_addr(&vq, MEM_GPA, MEM_GPA + 0x400, MEM_GPA + 0x1000);
    virtqueue_set_features(&vq,
        ((feat & 1) ? BIT_ULL(VIRTIO_RING_F_INDIRECT_DESC) : 0) |
        ((feat & 2) ? BIT_ULL(VIRTIO_RING_F_EVENT_IDX) : 0) |
        ((feat & 4) ? BIT_ULL(VIRTIO_F_NOTIFY_ON_EMPTY) : 0));
    vq.log_used = feat & 8;
    vq.used_log_gpa = MEM_GPA + 0x1000;
    if (virtqueue_map_rings(&vq)) {
        return 0;
    }
    virtqueue_set_base(&vq, base);
    for (int i = 0; i < 2 * QSIZE; i++) {
        VirtqElement *e = virtqueue_pop(&vq, sizeof(*e));
        if (!e) {
            break;
        }
        /* Touch every buffer the way a device would. */
        uint8_t scratch[64];
        iov_to_buf(e->out_sg, e->out_num, 0, scratch, sizeof(scratch));
        size_t in = iov_size(e->in_sg, e->in_num);
        iov_from_buf(e->in_sg, e->in_num, in / 2, scratch, sizeof(scratch));
        virtqueue_push(&vq, e, (uint32_t)in);
        virtqueue_notify(&vq);
        free(e);
    }
    return 0;
}
