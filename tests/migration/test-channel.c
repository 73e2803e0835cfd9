/* Migration channel: frame encoding and checked decoding, the HELLO
 * handshake, peer error text, addresses, and the socket transport on a
 * real event loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "migration/channel.h"
#include "migration/uri.h"

static MigDecodeResult next(MigDecoder *dec, uint16_t *type,
                            const uint8_t **p, uint32_t *len, Error **errp)
{
    return mig_decoder_next(dec, type, p, len, errp);
}

static void test_roundtrip_bytewise(void **state)
{
    ByteBuf wire;
    bytebuf_init(&wire);
    mig_frame_encode(&wire, MIG_MSG_DEVICE_STATE, "abcdef", 6);
    mig_frame_encode(&wire, MIG_MSG_STATE_LOADED, NULL, 0);
    assert_int_equal(wire.len, 2 * MIG_FRAME_HEADER_SIZE + 6);

    MigDecoder dec;
    mig_decoder_init(&dec);
    uint16_t type;
    const uint8_t *p;
    uint32_t len;
    int frames = 0;
    /* One byte at a time: a frame appears exactly when its last byte
     * arrived, never earlier. */
    for (size_t i = 0; i < wire.len; i++) {
        assert_true(mig_decoder_feed(&dec, wire.data + i, 1, NULL));
        MigDecodeResult r = next(&dec, &type, &p, &len, NULL);
        if (i == MIG_FRAME_HEADER_SIZE + 5) {
            assert_int_equal(r, MIG_DECODE_FRAME);
            assert_int_equal(type, MIG_MSG_DEVICE_STATE);
            assert_int_equal(len, 6);
            assert_memory_equal(p, "abcdef", 6);
            frames++;
        } else if (i == wire.len - 1) {
            assert_int_equal(r, MIG_DECODE_FRAME);
            assert_int_equal(type, MIG_MSG_STATE_LOADED);
            assert_int_equal(len, 0);
            frames++;
        } else {
            assert_int_equal(r, MIG_DECODE_NEED_MORE);
        }
    }
    assert_int_equal(frames, 2);
    assert_int_equal(next(&dec, &type, &p, &len, NULL), MIG_DECODE_NEED_MORE);
    mig_decoder_free(&dec);
    bytebuf_free(&wire);
}

static void expect_refused(const uint8_t hdr[8], const char *word)
{
    MigDecoder dec;
    Error *err = NULL;
    uint16_t type;
    const uint8_t *p;
    uint32_t len;
    mig_decoder_init(&dec);
    assert_true(mig_decoder_feed(&dec, hdr, 8, NULL));
    assert_int_equal(next(&dec, &type, &p, &len, &err), MIG_DECODE_ERROR);
    assert_non_null(strstr(error_get_pretty(err), word));
    error_free_or_null(&err);
    /* A failed stream stays failed, whatever arrives next. */
    uint8_t ok[8] = { 0, MIG_MSG_STATE_LOADED, 0, 0, 0, 0, 0, 0 };
    mig_decoder_feed(&dec, ok, 8, NULL);
    assert_int_equal(next(&dec, &type, &p, &len, &err), MIG_DECODE_ERROR);
    error_free(err);
    mig_decoder_free(&dec);
}

static void test_bad_headers(void **state)
{
    uint8_t h[8];
    st_be16(h, 0); st_be16(h + 2, 0); st_be32(h + 4, 0);
    expect_refused(h, "unknown");
    st_be16(h, MIG_MSG__MAX);
    expect_refused(h, "unknown");
    st_be16(h, MIG_MSG_HELLO); st_be16(h + 2, 1);
    expect_refused(h, "reserved");
    st_be16(h + 2, 0); st_be32(h + 4, MIG_FRAME_MAX_PAYLOAD + 1);
    expect_refused(h, "too long");
    st_be32(h + 4, 0xffffffffu);
    expect_refused(h, "too long");
}

static void test_hello(void **state)
{
    ByteBuf b;
    Error *err = NULL;
    uint32_t v = 0, t = 0;
    bytebuf_init(&b);
    mig_hello_encode(&b, MIG_PROTO_VERSION, 4500);
    assert_int_equal(b.len, MIG_PROTO_MAGIC_LEN + 8);
    assert_true(mig_hello_check(b.data, (uint32_t)b.len, &v, &t, NULL));
    assert_int_equal(v, MIG_PROTO_VERSION);
    assert_int_equal(t, 4500);
    /* Version 2 carries the timeout: without it the length is wrong. */
    assert_false(mig_hello_check(b.data, (uint32_t)b.len - 4, &v, &t, &err));
    assert_non_null(strstr(error_get_pretty(err), "length"));
    error_free_or_null(&err);
    assert_false(mig_hello_check(b.data, 11, &v, &t, &err));
    assert_non_null(strstr(error_get_pretty(err), "length"));
    error_free_or_null(&err);
    b.data[0] ^= 1;
    assert_false(mig_hello_check(b.data, (uint32_t)b.len, &v, &t, &err));
    assert_non_null(strstr(error_get_pretty(err), "not a stormigd"));
    error_free_or_null(&err);
    b.data[0] ^= 1;
    st_be32(b.data + MIG_PROTO_MAGIC_LEN, MIG_PROTO_VERSION + 1);
    assert_false(mig_hello_check(b.data, (uint32_t)b.len, &v, &t, &err));
    assert_non_null(strstr(error_get_pretty(err), "version"));
    error_free_or_null(&err);
    st_be32(b.data + MIG_PROTO_MAGIC_LEN, 0);
    assert_false(mig_hello_check(b.data, (uint32_t)b.len, &v, &t, &err));
    assert_non_null(strstr(error_get_pretty(err), "version"));
    error_free_or_null(&err);
    bytebuf_free(&b);

    /* A version 1 peer (12 bytes, no timeout, no KEEPALIVE) is still
     * spoken to. */
    bytebuf_init(&b);
    mig_hello_encode(&b, 1, 4500);
    assert_int_equal(b.len, MIG_PROTO_MAGIC_LEN + 4);
    assert_true(mig_hello_check(b.data, (uint32_t)b.len, &v, &t, NULL));
    assert_int_equal(v, 1);
    assert_int_equal(t, 0);
    bytebuf_free(&b);
}

static void test_error_text(void **state)
{
    char *s = mig_error_text((const uint8_t *)"bad\n\x01state", 10);
    assert_string_equal(s, "bad??state");
    free(s);
    uint8_t big[5000];
    memset(big, 'x', sizeof(big));
    s = mig_error_text(big, sizeof(big));
    assert_int_equal(strlen(s), 1024);
    free(s);
}

static void test_uri(void **state)
{
    MigUri u;
    Error *err = NULL;
    assert_true(mig_uri_parse("tcp:[::1]:4444", &u, NULL));
    assert_int_equal(u.kind, MIG_URI_TCP);
    assert_string_equal(u.host, "::1");
    assert_string_equal(u.port, "4444");
    mig_uri_free(&u);
    assert_true(mig_uri_parse("unix:/run/x.sock", &u, NULL));
    assert_string_equal(u.path, "/run/x.sock");
    mig_uri_free(&u);
    assert_true(mig_uri_parse("file:state.bin", &u, NULL));
    assert_int_equal(u.kind, MIG_URI_FILE);
    mig_uri_free(&u);
    const char *bad[] = { "tcp:host", "tcp:host:", "tcp:h:12x", "unix:",
                          "ftp:x", "", "file:" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        assert_false(mig_uri_parse(bad[i], &u, &err));
        assert_non_null(err);
        error_free_or_null(&err);
    }
}

/* Transport: a socketpair, one end a MigChannel on a real loop. */
typedef struct Seen {
    int frames;
    uint16_t last_type;
    uint32_t last_len;
    uint32_t sum;
    char failure[256];
} Seen;

static void on_message(MigChannel *ch, uint16_t type, const uint8_t *p,
                       uint32_t len, void *opaque)
{
    Seen *s = opaque;
    s->frames++;
    s->last_type = type;
    s->last_len = len;
    for (uint32_t i = 0; i < len; i++) {
        s->sum += p[i];
    }
}

static void on_failed(MigChannel *ch, Error *err, void *opaque)
{
    Seen *s = opaque;
    snprintf(s->failure, sizeof(s->failure), "%s", error_get_pretty(err));
    error_free(err);
}

static const MigChannelOps ops = { .message = on_message,
                                   .failed = on_failed };

static void spin(EventLoop *loop, Seen *s, int frames)
{
    for (int i = 0; i < 500 && s->frames < frames && !s->failure[0]; i++) {
        loop_run_once(loop, 10);
    }
}

static void test_transport(void **state)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    EventLoop *loop = loop_new(NULL);
    Seen a = { 0 }, b = { 0 };
    MigChannel *ca = mig_channel_new(loop, sv[0], &ops, &a, NULL);
    MigChannel *cb = mig_channel_new(loop, sv[1], &ops, &b, NULL);
    assert_non_null(ca);
    assert_non_null(cb);
    /* Larger than any socket buffer: written over many loop turns. */
    size_t big = 4u << 20;
    uint8_t *payload = malloc(big);
    uint32_t want = 0;
    for (size_t i = 0; i < big; i++) {
        payload[i] = (uint8_t)(i * 7);
        want += payload[i];
    }
    assert_true(mig_channel_send(ca, MIG_MSG_DEVICE_STATE, payload,
                                 (uint32_t)big, NULL));
    assert_true(mig_channel_send(ca, MIG_MSG_STATE_LOADED, NULL, 0, NULL));
    spin(loop, &b, 2);
    assert_int_equal(b.frames, 2);
    assert_int_equal(b.sum, want);
    assert_int_equal(b.last_type, MIG_MSG_STATE_LOADED);
    assert_int_equal(mig_channel_bytes_received(cb),
                     big + 2 * MIG_FRAME_HEADER_SIZE);

    /* The peer hangs up: reported once, with a reason. */
    mig_channel_free(ca);
    spin(loop, &b, 3);
    assert_non_null(strstr(b.failure, "closed"));
    Error *err = NULL;
    assert_false(mig_channel_send(cb, MIG_MSG_HELLO, NULL, 0, &err));
    error_free(err);
    mig_channel_free(cb);
    free(payload);
    loop_free(loop);
}

static void test_transport_bad_frame(void **state)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    EventLoop *loop = loop_new(NULL);
    Seen s = { 0 };
    MigChannel *ch = mig_channel_new(loop, sv[1], &ops, &s, NULL);
    uint8_t h[8];
    st_be16(h, MIG_MSG_DEVICE_STATE);
    st_be16(h + 2, 0);
    st_be32(h + 4, 0x7fffffff);     /* a lying length */
    assert_int_equal(write(sv[0], h, 8), 8);
    spin(loop, &s, 1);
    assert_int_equal(s.frames, 0);
    assert_non_null(strstr(s.failure, "too long"));
    mig_channel_free(ch);
    close(sv[0]);
    loop_free(loop);
}

/* The peer dies with our data unread in its socket: the read sees a
 * reset, which is reported as the peer closing, like an end of file. */
static void test_transport_peer_reset(void **state)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    EventLoop *loop = loop_new(NULL);
    Seen s = { 0 };
    MigChannel *ch = mig_channel_new(loop, sv[0], &ops, &s, NULL);
    assert_non_null(ch);
    assert_true(mig_channel_send(ch, MIG_MSG_HELLO, NULL, 0, NULL));
    for (int i = 0; i < 5; i++) {
        loop_run_once(loop, 10);
    }
    close(sv[1]);                   /* the HELLO still unread there */
    spin(loop, &s, 1);
    assert_non_null(strstr(s.failure, "peer closed the connection"));
    assert_non_null(strstr(s.failure, "reset"));
    mig_channel_free(ch);
    loop_free(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_bytewise),
        cmocka_unit_test(test_bad_headers),
        cmocka_unit_test(test_hello),
        cmocka_unit_test(test_error_text),
        cmocka_unit_test(test_uri),
        cmocka_unit_test(test_transport),
        cmocka_unit_test(test_transport_bad_frame),
        cmocka_unit_test(test_transport_peer_reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
