/* The wire format against hand-written bytes, the check value, and every
 * truncation of valid streams. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "sample.h"
#include "tiny.h"

/* docs/device-state-format.md, "Example": section "t0" instance 7. */
static const uint8_t tiny_expected[] = {
    'S', 'T', 'M', 'G', 'V', 'M', 'S', 0,   /* magic */
    0x00, 0x00, 0x00, 0x01,                 /* format version 1 */
    0x01,                                   /* section tag */
    0x02, 't', '0',                         /* name */
    0x00, 0x00, 0x00, 0x07,                 /* instance id */
    0x00, 0x00, 0x00, 0x02,                 /* section version */
    0x00, 0x00, 0x00, 0x32,                 /* payload length: 50 */
    0x12, 0x34,                             /* a (u16) */
    0x01,                                   /* b (bool) */
    0x00, 0x00, 0x00, 0x02, 0xaa, 0xbb,     /* buf: length, bytes */
    0x00, 0x00, 0x00, 0x02, 0x0a, 0x0b,     /* v: count, u8 elements */
    0x00, 0x00, 0x00, 0x02,                 /* p: count */
    0x00,                                   /*   p[0]: NULL */
    0x01, 0xde, 0xad, 0xbe, 0xef,           /*   p[1]: present, x */
    0x00, 0x00, 0x00, 0x09,                 /* later (since 2) */
    0x02,                                   /* subsection tag */
    0x0a, 't', 'i', 'n', 'y', '/', 'e', 'x', 't', 'r', 'a',
    0x00, 0x00, 0x00, 0x01,                 /* subsection version */
    0x00, 0x00, 0x00, 0x01,                 /* subsection length */
    0x5a,                                   /* extra */
    0x03,                                   /* end tag */
    0x19, 0xb3, 0x17, 0xfd,                 /* CRC32C of all above */
};

/* The published CRC32C check value (RFC 3720 test vectors family). */
static void test_crc32c_vector(void **state)
{
    assert_int_equal(vmstate_crc32c(0, "123456789", 9), 0xe3069283u);
    uint32_t part = vmstate_crc32c(0, "1234", 4);
    assert_int_equal(vmstate_crc32c(part, "56789", 5), 0xe3069283u);
}

static void test_tiny_fixed_bytes(void **state)
{
    Tiny t;
    tiny_fill(&t);
    VMStateSection sec = { "t0", 7, &tiny_vmsd, &t };
    ByteBuf out;
    bytebuf_init(&out);
    assert_true(vmstate_save_stream(&sec, 1, false, &out, NULL));
    assert_int_equal(out.len, sizeof(tiny_expected));
    assert_memory_equal(out.data, tiny_expected, sizeof(tiny_expected));
    bytebuf_free(&out);
    tiny_free(&t);
}

/* The hand-written bytes load into the values they spell. */
static void test_tiny_fixed_bytes_load(void **state)
{
    Tiny t;
    tiny_fill_other(&t);
    VMStateSection sec = { "t0", 7, &tiny_vmsd, &t };
    VMStateErr code;
    assert_true(vmstate_load_stream(&sec, 1, tiny_expected,
                                    sizeof(tiny_expected), &code, NULL));
    assert_int_equal(t.a, 0x1234);
    assert_true(t.b);
    assert_int_equal(t.n, 2);
    assert_int_equal(t.v[1], 0x0b);
    assert_int_equal(t.v[2], 0x33);         /* past the count: untouched */
    assert_null(t.p[0]);
    assert_int_equal(t.p[1]->x, 0xdeadbeef);
    assert_int_equal(t.later, 9);
    assert_int_equal(t.extra, 0x5a);
    tiny_free(&t);
}

/* Every proper prefix fails as TRUNCATED or NO_END, state unchanged. */
static void test_tiny_every_truncation(void **state)
{
    Tiny t, copy;
    tiny_fill_other(&t);
    copy = t;
    TinyEntry e0 = *t.p[0];
    VMStateSection sec = { "t0", 7, &tiny_vmsd, &t };
    for (size_t len = 0; len < sizeof(tiny_expected); len++) {
        VMStateErr code = VMSTATE_OK;
        Error *err = NULL;
        assert_false(vmstate_load_stream(&sec, 1, tiny_expected, len, &code,
                                         &err));
        if (code != VMSTATE_E_TRUNCATED && code != VMSTATE_E_NO_END) {
            fail_msg("prefix %zu: %s", len, vmstate_err_name(code));
        }
        assert_non_null(err);
        error_free(err);
        assert_true(tiny_same(&t, &copy, &e0, NULL));
    }
    tiny_free(&t);
}

static void check_sample_prefixes(const ByteBuf *stream, size_t valid_len)
{
    Sample dst, copy;
    SampleAddrs addrs;
    sample_fill(&dst, 9, 0x9, 2);
    sample_clone(&copy, &dst);
    sample_addrs(&dst, &addrs);
    VMStateSection sec = { "s0", 0, &sample_vmsd, &dst };
    for (size_t len = 0; len < stream->len; len++) {
        if (len == valid_len) {
            continue;       /* a whole stream without its description */
        }
        VMStateErr code = VMSTATE_OK;
        assert_false(vmstate_load_stream(&sec, 1, stream->data, len, &code,
                                         NULL));
        if (code != VMSTATE_E_TRUNCATED && code != VMSTATE_E_NO_END) {
            fail_msg("prefix %zu of %zu: %s", len, stream->len,
                     vmstate_err_name(code));
        }
        assert_true(sample_unchanged(&dst, &copy, &addrs));
    }
    sample_free(&dst);
    sample_free(&copy);
}

/* Every truncation of a stream with every kind, with and without the
 * description after the end marker. */
static void test_sample_every_truncation(void **state)
{
    Sample src;
    sample_fill(&src, 6, 0xB, 3);
    VMStateSection sec = { "s0", 0, &sample_vmsd, &src };
    ByteBuf plain, described;
    bytebuf_init(&plain);
    bytebuf_init(&described);
    assert_true(vmstate_save_stream(&sec, 1, false, &plain, NULL));
    assert_true(vmstate_save_stream(&sec, 1, true, &described, NULL));
    assert_true(described.len > plain.len);
    assert_memory_equal(described.data, plain.data, plain.len);
    check_sample_prefixes(&plain, SIZE_MAX);
    check_sample_prefixes(&described, plain.len);
    bytebuf_free(&plain);
    bytebuf_free(&described);
    sample_free(&src);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_vector),
        cmocka_unit_test(test_tiny_fixed_bytes),
        cmocka_unit_test(test_tiny_fixed_bytes_load),
        cmocka_unit_test(test_tiny_every_truncation),
        cmocka_unit_test(test_sample_every_truncation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
