/* Fuzz target: a byte stream of vfio-user messages (no fds), delivered in
 * arbitrary pieces, into a server serving the test device, the loop's due
 * timers run between pieces; replies in the stream meet the server's
 * DMA_READ / DMA_WRITE requests. Nothing may crash, leak or read out of
 * bounds. */
#include <stdint.h>
#include <stdlib.h>

#include "test-dev.h"
#include "util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static EventLoop *loop;
    if (size < 1) {
        return 0;
    }
    if (!loop) {
        log_set_level(LOG_ERROR);
        loop = loop_new(NULL);
    }
    /* The first byte chooses the size of the pieces. */
    size_t piece = (size_t)data[0] * 7 % 257 + 1;
    data++;
    size--;
    TestDev dev;
    VfuDeviceDesc desc;
    test_dev_init(&dev, &desc);
    desc.max_state_size = 1 << 20;
    VfuServerConfig cfg = { .loop = loop, .desc = &desc,
                            .ops = &test_dev_ops, .opaque = &dev };
    VfuServer *s = dev.srv = vfu_server_new(&cfg, NULL);
    for (size_t off = 0; s && off < size; off += piece) {
        size_t n = size - off < piece ? size - off : piece;
        if (!vfu_server_feed(s, data + off, n)) {
            break;
        }
        /* Due timers: DMA requests go out between the pieces (their
         * replies may follow in the input). */
        loop_run_once(loop, 0);
    }
    vfu_server_free(s);
    test_dev_cleanup(&dev);
    return 0;
}
