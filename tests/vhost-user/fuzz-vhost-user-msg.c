/*
 * Fuzz target: the input is the byte stream a front end sends (headers
 * and payloads, no fds), fed to a fresh back end. Messages that need fds
 * fail validation; the rest reach their handlers.
 */
#include <stdint.h>
#include <stdlib.h>

#include "util/log.h"
#include "vhost-user/vhost-user.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void kick(VhostUserDev *dev, VirtQueue *vq, void *opaque)
{
    VirtqElement *e;
    while ((e = virtqueue_pop(vq, sizeof(*e))) != NULL) {
        virtqueue_push(vq, e, 0);
        free(e);
    }
}

static const VhostUserDevOps ops = { .queue_kick = kick };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static EventLoop *loop;
    if (!loop) {
        loop = loop_new(NULL);
        log_set_level(LOG_ERROR);
    }
    VhostUserDevConfig cfg = {
        .num_queues = 4, .dirty_log = true, .main_loop = loop,
    };
    VhostUserDev *dev = vhost_user_dev_new(&cfg, &ops, NULL, NULL);
    if (!dev) {
        return 0;
    }
    if (vhost_user_dev_add_conn(dev, -1, NULL)) {
        vhost_user_dev_feed(dev, data, size);
    }
    vhost_user_dev_free(dev);
    return 0;
}
