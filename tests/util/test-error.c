/* Error objects: set once, prepend, propagate, classes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "util/bytes.h"
#include "util/error.h"

static void test_set_prepend_propagate(void **state)
{
    Error *err = NULL, *dst = NULL;
    error_setg_errno(&err, ENOENT, "open %s", "x.img");
    assert_string_equal(error_get_pretty(err), "open x.img: No such file or directory");
    error_prepend(&err, "disk0: ");
    assert_string_equal(error_get_pretty(err), "disk0: open x.img: No such file or directory");
    error_propagate(&dst, err);
    assert_ptr_equal(dst, err);
    /* A second error does not replace the first. */
    error_setg(&dst, "second");
    assert_non_null(strstr(error_get_pretty(dst), "x.img"));
    assert_string_equal(error_class_name(error_get_class(dst)), "GenericError");
    error_free(dst);
    error_setg(NULL, "ignored");
    err = NULL;
    error_set(&err, ERROR_CLASS_COMMAND_NOT_FOUND, "no");
    assert_string_equal(error_class_name(error_get_class(err)), "CommandNotFound");
    error_free(err);
}

static void test_bytes(void **state)
{
    ByteBuf b;
    bytebuf_init(&b);
    bytebuf_put_u8(&b, 1);
    bytebuf_put_be16(&b, 0x0203);
    bytebuf_put_be32(&b, 0x04050607);
    bytebuf_put_be64(&b, 0x08090a0b0c0d0e0full);
    assert_int_equal(b.len, 15);
    assert_int_equal(ld_be16(b.data + 1), 0x0203);
    assert_int_equal(ld_be32(b.data + 3), 0x04050607);
    assert_true(ld_be64(b.data + 7) == 0x08090a0b0c0d0e0full);
    for (int i = 0; i < 15; i++) {
        assert_int_equal(b.data[i], i + 1);
    }
    bytebuf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_prepend_propagate),
        cmocka_unit_test(test_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
