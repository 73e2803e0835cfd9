/*
 * Malformed vfio-user messages, one table row each: every one is answered
 * with an error reply carrying the expected errno, or ends the connection;
 * the server keeps serving either way (a fresh client still works).
 *
 * Payloads are written as 32-bit words (a 64-bit field is two words, low
 * first: the host order of the little-endian machines this runs on).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "harness.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "payload words are written little-endian");

#define CLOSES  (-1)    /* the server drops the connection */
#define SILENT  (-2)    /* no reply; the connection keeps working */
#define U64(v)  (uint32_t)(v), (uint32_t)((uint64_t)(v) >> 32)

typedef struct Case {
    const char *name;
    uint16_t cmd;
    uint32_t flags;
    uint32_t words[16];
    unsigned nwords;
    uint32_t size;          /* header size field; 0: the real size */
    unsigned send_bytes;    /* send only this much, then EOF; 0: all */
    unsigned nfds;          /* fds attached */
    unsigned memfd_size;    /* fds are memfds of this size (else eventfds) */
    bool raw;               /* no VERSION before */
    int expect;             /* errno, CLOSES or SILENT */
} Case;

#define PAYLOAD(...) .words = { __VA_ARGS__ }, \
    .nwords = sizeof((uint32_t[]){ __VA_ARGS__ }) / 4

static const Case cases[] = {
    { "size below header", VFU_CMD_DEVICE_GET_INFO, 0, PAYLOAD(16, 0, 0, 0),
      .size = 8, .expect = CLOSES },
    { "size over limit", VFU_CMD_REGION_WRITE, 0, PAYLOAD(0, 0, 0, 0),
      .size = UINT32_MAX, .expect = CLOSES },
    { "short header then EOF", VFU_CMD_DEVICE_GET_INFO, 0,
      PAYLOAD(16, 0, 0, 0), .send_bytes = 10, .expect = CLOSES },
    { "body cut short then EOF", VFU_CMD_DEVICE_GET_INFO, 0,
      PAYLOAD(16, 0, 0, 0), .send_bytes = 20, .expect = CLOSES },
    { "unknown command", 99, 0, PAYLOAD(0), .expect = EINVAL },
    { "command 0", 0, 0, PAYLOAD(0), .expect = EINVAL },
    { "DMA_READ from the client", VFU_CMD_DMA_READ, 0, PAYLOAD(U64(0), U64(8)),
      .expect = EINVAL },
    { "reply where a command belongs", VFU_CMD_DEVICE_GET_INFO,
      VFU_FLAG_TYPE_REPLY, PAYLOAD(16, 0, 0, 0), .expect = SILENT },
    { "unknown flag bits", VFU_CMD_DEVICE_GET_INFO, 1u << 9,
      PAYLOAD(16, 0, 0, 0), .expect = EINVAL },
    { "type 2", VFU_CMD_DEVICE_GET_INFO, 2, PAYLOAD(16, 0, 0, 0),
      .expect = EINVAL },
    { "REGION_READ short payload", VFU_CMD_REGION_READ, 0, PAYLOAD(U64(0)),
      .expect = EINVAL },
    { "REGION_READ long payload", VFU_CMD_REGION_READ, 0,
      PAYLOAD(U64(0), 0, 8, 0), .expect = EINVAL },
    { "REGION_WRITE count above data", VFU_CMD_REGION_WRITE, 0,
      PAYLOAD(U64(8), 0, 16, 1, 2), .expect = EINVAL },
    { "REGION_WRITE count below data", VFU_CMD_REGION_WRITE, 0,
      PAYLOAD(U64(8), 0, 4, 1, 2), .expect = EINVAL },
    { "REGION_READ no such region", VFU_CMD_REGION_READ, 0,
      PAYLOAD(U64(0), 200, 8), .expect = EINVAL },
    { "REGION_READ huge count", VFU_CMD_REGION_READ, 0,
      PAYLOAD(U64(0), 0, UINT32_MAX), .expect = EINVAL },
    { "REGION_READ offset wraps", VFU_CMD_REGION_READ, 0,
      PAYLOAD(U64(UINT64_MAX - 3), 0, 8), .expect = EINVAL },
    { "REGION_READ with an fd", VFU_CMD_REGION_READ, 0,
      PAYLOAD(U64(0), 0, 8), .nfds = 1, .expect = EINVAL },
    { "DMA_MAP with 17 fds", VFU_CMD_DMA_MAP, 0,
      PAYLOAD(32, 3, U64(0), U64(0x10000), U64(0x1000)), .nfds = 17,
      .memfd_size = 0x1000, .expect = EINVAL },
    { "DMA_MAP with 2 fds", VFU_CMD_DMA_MAP, 0,
      PAYLOAD(32, 3, U64(0), U64(0x10000), U64(0x1000)), .nfds = 2,
      .memfd_size = 0x1000, .expect = EINVAL },
    { "DMA_MAP unaligned", VFU_CMD_DMA_MAP, 0,
      PAYLOAD(32, 3, U64(0), U64(0x10010), U64(0x1000)), .nfds = 1,
      .memfd_size = 0x2000, .expect = EINVAL },
    { "DMA_MAP wraps", VFU_CMD_DMA_MAP, 0,
      PAYLOAD(32, 3, U64(0), U64(UINT64_MAX - 0xfff), U64(0x2000)),
      .expect = EINVAL },
    { "DMA_MAP zero size", VFU_CMD_DMA_MAP, 0,
      PAYLOAD(32, 3, U64(0), U64(0x10000), U64(0)), .expect = EINVAL },
    { "DMA_MAP unknown flags", VFU_CMD_DMA_MAP, 0,
      PAYLOAD(32, 8, U64(0), U64(0x10000), U64(0x1000)), .expect = EINVAL },
    { "DMA_MAP fd shorter than window", VFU_CMD_DMA_MAP, 0,
      PAYLOAD(32, 3, U64(0), U64(0x10000), U64(0x2000)), .nfds = 1,
      .memfd_size = 0x1000, .expect = EINVAL },
    { "DMA_MAP short payload", VFU_CMD_DMA_MAP, 0,
      PAYLOAD(32, 3, U64(0), U64(0x10000)), .expect = EINVAL },
    { "DMA_UNMAP unknown range", VFU_CMD_DMA_UNMAP, 0,
      PAYLOAD(24, 0, U64(0x40000), U64(0x1000)), .expect = EINVAL },
    { "DMA_UNMAP short payload", VFU_CMD_DMA_UNMAP, 0, PAYLOAD(24, 0),
      .expect = EINVAL },
    { "DMA_UNMAP all with an address", VFU_CMD_DMA_UNMAP, 0,
      PAYLOAD(24, VFU_DMA_UNMAP_FLAG_ALL, U64(0x1000), U64(0)),
      .expect = EINVAL },
    { "DMA_UNMAP bitmap while not logging", VFU_CMD_DMA_UNMAP, 0,
      PAYLOAD(48, VFU_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, U64(0), U64(0x1000),
              U64(4096), U64(8)), .expect = EINVAL },
    { "SET_IRQS huge count", VFU_CMD_DEVICE_SET_IRQS, 0,
      PAYLOAD(20, VFU_IRQ_SET_DATA_NONE | VFU_IRQ_SET_ACTION_TRIGGER,
              VFU_PCI_MSIX_IRQ, 0, UINT32_MAX), .expect = EINVAL },
    { "SET_IRQS start + count wraps", VFU_CMD_DEVICE_SET_IRQS, 0,
      PAYLOAD(20, VFU_IRQ_SET_DATA_NONE | VFU_IRQ_SET_ACTION_TRIGGER,
              VFU_PCI_MSIX_IRQ, UINT32_MAX, 2), .expect = EINVAL },
    { "SET_IRQS bad index", VFU_CMD_DEVICE_SET_IRQS, 0,
      PAYLOAD(20, VFU_IRQ_SET_DATA_NONE | VFU_IRQ_SET_ACTION_TRIGGER,
              9, 0, 1), .expect = EINVAL },
    { "SET_IRQS two data kinds", VFU_CMD_DEVICE_SET_IRQS, 0,
      PAYLOAD(20, VFU_IRQ_SET_DATA_NONE | VFU_IRQ_SET_DATA_BOOL |
              VFU_IRQ_SET_ACTION_TRIGGER, VFU_PCI_MSIX_IRQ, 0, 1),
      .expect = EINVAL },
    { "SET_IRQS no action", VFU_CMD_DEVICE_SET_IRQS, 0,
      PAYLOAD(20, VFU_IRQ_SET_DATA_NONE, VFU_PCI_MSIX_IRQ, 0, 1),
      .expect = EINVAL },
    { "SET_IRQS bools missing", VFU_CMD_DEVICE_SET_IRQS, 0,
      PAYLOAD(24, VFU_IRQ_SET_DATA_BOOL | VFU_IRQ_SET_ACTION_TRIGGER,
              VFU_PCI_MSIX_IRQ, 0, 4), .expect = EINVAL },
    { "SET_IRQS fds but count 1", VFU_CMD_DEVICE_SET_IRQS, 0,
      PAYLOAD(20, VFU_IRQ_SET_DATA_EVENTFD | VFU_IRQ_SET_ACTION_TRIGGER,
              VFU_PCI_MSIX_IRQ, 0, 1), .nfds = 2, .expect = EINVAL },
    { "SET_IRQS fds with DATA_NONE", VFU_CMD_DEVICE_SET_IRQS, 0,
      PAYLOAD(20, VFU_IRQ_SET_DATA_NONE | VFU_IRQ_SET_ACTION_TRIGGER,
              VFU_PCI_MSIX_IRQ, 0, 1), .nfds = 1, .expect = EINVAL },
    { "GET_IRQ_INFO bad index", VFU_CMD_DEVICE_GET_IRQ_INFO, 0,
      PAYLOAD(16, 0, VFU_PCI_NUM_IRQS, 0), .expect = EINVAL },
    { "GET_REGION_INFO short argsz", VFU_CMD_DEVICE_GET_REGION_INFO, 0,
      PAYLOAD(8, 0, 0, 0, U64(0), U64(0)), .expect = EINVAL },
    { "LOGGING_START huge range count", VFU_CMD_DEVICE_FEATURE, 0,
      PAYLOAD(24, VFU_FEATURE_SET | VFU_FEATURE_DMA_LOGGING_START,
              U64(4096), UINT32_MAX, 0), .expect = EINVAL },
    { "LOGGING_START ranges missing", VFU_CMD_DEVICE_FEATURE, 0,
      PAYLOAD(24, VFU_FEATURE_SET | VFU_FEATURE_DMA_LOGGING_START,
              U64(4096), 2, 0), .expect = EINVAL },
    { "LOGGING_REPORT not logging", VFU_CMD_DEVICE_FEATURE, 0,
      PAYLOAD(64, VFU_FEATURE_GET | VFU_FEATURE_DMA_LOGGING_REPORT,
              U64(0), U64(UINT64_MAX), U64(1)), .expect = EINVAL },
    { "FEATURE unknown", VFU_CMD_DEVICE_FEATURE, 0,
      PAYLOAD(8, VFU_FEATURE_GET | 99), .expect = ENOTSUP },
    { "FEATURE get and set", VFU_CMD_DEVICE_FEATURE, 0,
      PAYLOAD(16, VFU_FEATURE_GET | VFU_FEATURE_SET |
              VFU_FEATURE_MIG_DEVICE_STATE), .expect = EINVAL },
    { "FEATURE set of a get-only feature", VFU_CMD_DEVICE_FEATURE, 0,
      PAYLOAD(16, VFU_FEATURE_SET | VFU_FEATURE_MIGRATION), .expect = EINVAL },
    { "MIG_DEVICE_STATE short data", VFU_CMD_DEVICE_FEATURE, 0,
      PAYLOAD(16, VFU_FEATURE_SET | VFU_FEATURE_MIG_DEVICE_STATE, 1),
      .expect = EINVAL },
    { "MIG_DATA_READ huge size", VFU_CMD_MIG_DATA_READ, 0,
      PAYLOAD(UINT32_MAX, UINT32_MAX), .expect = EINVAL },
    { "MIG_DATA_WRITE size mismatch", VFU_CMD_MIG_DATA_WRITE, 0,
      PAYLOAD(8, 100, 1), .expect = EINVAL },
    { "GET_REGION_IO_FDS", VFU_CMD_DEVICE_GET_REGION_IO_FDS, 0,
      PAYLOAD(16, 0, 0, 0), .expect = ENOTSUP },
    { "REGION_WRITE_MULTI", VFU_CMD_REGION_WRITE_MULTI, 0, PAYLOAD(U64(0)),
      .expect = ENOTSUP },
    { "DEVICE_RESET with payload", VFU_CMD_DEVICE_RESET, 0, PAYLOAD(1),
      .expect = EINVAL },
    { "VERSION twice", VFU_CMD_VERSION, 0, PAYLOAD(0 | (1u << 16)),
      .expect = EINVAL },
    { "command before VERSION", VFU_CMD_DEVICE_GET_INFO, 0,
      PAYLOAD(16, 0, 0, 0), .raw = true, .expect = EINVAL },
    { "VERSION major 1", VFU_CMD_VERSION, 0, PAYLOAD(1), .raw = true,
      .expect = ENOTSUP },
    { "VERSION short", VFU_CMD_VERSION, 0, PAYLOAD(0), .size = 18,
      .raw = true, .expect = EINVAL },
    { "VERSION JSON without NUL", VFU_CMD_VERSION, 0,
      PAYLOAD(1u << 16, 0x7d7b2020), .raw = true, .expect = EINVAL },
    { "VERSION JSON not an object", VFU_CMD_VERSION, 0,
      PAYLOAD(1u << 16, 0x00343231), .raw = true, .expect = EINVAL },
    { "VERSION JSON broken", VFU_CMD_VERSION, 0,
      PAYLOAD(1u << 16, 0x00227b7b), .raw = true, .expect = EINVAL },
};

static Harness H;

static int setup(void **state)
{
    return harness_start(&H, 1) ? 0 : -1;
}

static int teardown(void **state)
{
    harness_stop(&H);
    return 0;
}

/* The device still answers a good request on this connection. */
static void assert_serving(VfuClient *c)
{
    uint64_t id = 0;
    assert_true(vfu_client_region_read(c, 0, TDEV_REG_ID, &id, 8, NULL));
    assert_int_equal(id, TDEV_ID);
}

static void make_fds(const Case *t, int *fds)
{
    for (unsigned i = 0; i < t->nfds; i++) {
        if (t->memfd_size) {
            /* Sealed, so each case fails for its own reason. */
            fds[i] = memfd_create("m", MFD_CLOEXEC | MFD_ALLOW_SEALING);
            assert_int_equal(ftruncate(fds[i], t->memfd_size), 0);
            assert_int_equal(fcntl(fds[i], F_ADD_SEALS, F_SEAL_SHRINK), 0);
        } else {
            fds[i] = eventfd(0, EFD_CLOEXEC);
        }
        assert_true(fds[i] >= 0);
    }
}

static void send_case(VfuClient *c, const Case *t)
{
    uint8_t msg[sizeof(VfuHeader) + sizeof(t->words)];
    size_t len = sizeof(VfuHeader) + t->nwords * 4;
    VfuHeader h = { .msg_id = 0x4242, .cmd = t->cmd, .flags = t->flags,
                    .size = t->size ? t->size : (uint32_t)len };
    memcpy(msg, &h, sizeof(h));
    memcpy(msg + sizeof(h), t->words, t->nwords * 4);
    if (t->size && t->size < len && t->size >= sizeof(h)) {
        len = t->size;
    }
    if (t->send_bytes) {
        len = t->send_bytes;
    }
    int fds[32];
    make_fds(t, fds);
    assert_true(vfu_client_send_raw(c, msg, len, fds, t->nfds, NULL));
    for (unsigned i = 0; i < t->nfds; i++) {
        close(fds[i]);
    }
    if (t->send_bytes) {
        shutdown(vfu_client_fd(c), SHUT_WR);
    }
}

static void check_case(const Case *t)
{
    VfuClient *c = t->raw ? vfu_client_connect(H.path[0], NULL)
                          : harness_client(&H, 0);
    assert_non_null(c);
    vfu_client_set_timeout(c, 5000);
    send_case(c, t);
    VfuHeader h;
    uint8_t *payload = NULL;
    if (t->expect == SILENT) {
        assert_serving(c);
    } else if (t->expect == CLOSES) {
        assert_false(vfu_client_recv(c, &h, &payload, NULL, NULL));
    } else {
        assert_true(vfu_client_recv(c, &h, &payload, NULL, NULL));
        assert_int_equal(h.msg_id, 0x4242);
        assert_int_equal(h.cmd, t->cmd);
        assert_int_equal(h.flags, VFU_FLAG_TYPE_REPLY | VFU_FLAG_ERROR);
        assert_int_equal(h.error, t->expect);
        assert_int_equal(h.size, sizeof(h));    /* header only */
        if (!t->raw) {
            assert_serving(c);
        }
    }
    free(payload);
    assert_true(harness_client_close(&H, 0, c));
    /* Whatever happened, a new client is served. */
    c = harness_client(&H, 0);
    assert_non_null(c);
    assert_serving(c);
    assert_true(harness_client_close(&H, 0, c));
}

static void test_malformed_table(void **state)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        print_message("  %s\n", cases[i].name);
        check_case(&cases[i]);
    }
}

/* The major-version refusal also closes the connection after replying. */
static void test_version_major_closes(void **state)
{
    VfuClient *c = vfu_client_connect(H.path[0], NULL);
    Case t = { "major", VFU_CMD_VERSION, 0, PAYLOAD(1), .raw = true };
    send_case(c, &t);
    VfuHeader h;
    uint8_t *payload;
    assert_true(vfu_client_recv(c, &h, &payload, NULL, NULL));
    free(payload);
    assert_int_equal(h.error, ENOTSUP);
    assert_false(vfu_client_recv(c, &h, &payload, NULL, NULL));
    assert_true(harness_client_close(&H, 0, c));
}

/* A pipeline of commands with NO_REPLY, then one with a reply: the
 * earlier ones were handled first, and a failing silent one is not
 * answered. */
static void test_no_reply_pipeline(void **state)
{
    VfuClient *c = harness_client(&H, 0);
    uint8_t msg[3][sizeof(VfuHeader) + 24];
    uint64_t v = 0x5151;
    VfuRegionAccess good = { TDEV_REG_SCRATCH, 0, 8 };
    VfuRegionAccess bad = { TDEV_BAR0_SIZE, 0, 8 };
    VfuHeader h = { 1, VFU_CMD_REGION_WRITE, sizeof(msg[0]),
                    VFU_FLAG_NO_REPLY, 0 };
    memcpy(msg[0], &h, sizeof(h));
    memcpy(msg[0] + 16, &bad, sizeof(bad));
    memcpy(msg[0] + 32, &v, 8);
    h.msg_id = 2;
    memcpy(msg[1], &h, sizeof(h));
    memcpy(msg[1] + 16, &good, sizeof(good));
    memcpy(msg[1] + 32, &v, 8);
    h.msg_id = 3;
    h.flags = 0;
    memcpy(msg[2], msg[1], sizeof(msg[2]));
    memcpy(msg[2], &h, sizeof(h));
    assert_true(vfu_client_send_raw(c, msg, sizeof(msg), NULL, 0, NULL));
    uint8_t *payload;
    assert_true(vfu_client_recv(c, &h, &payload, NULL, NULL));
    free(payload);
    assert_int_equal(h.msg_id, 3);
    assert_int_equal(h.flags, VFU_FLAG_TYPE_REPLY);
    uint64_t got = 0;
    assert_true(vfu_client_region_read(c, 0, TDEV_REG_SCRATCH, &got, 8, NULL));
    assert_int_equal(got, 0x5151);
    assert_true(harness_client_close(&H, 0, c));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malformed_table),
        cmocka_unit_test(test_version_major_closes),
        cmocka_unit_test(test_no_reply_pipeline),
    };
    return cmocka_run_group_tests_name("vfio-user-malformed", tests, setup,
                                       teardown);
}
