/* Option strings: implied key, escapes, typed getters, unused keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "util/keyval.h"

static void test_implied_and_escape(void **state)
{
    Error *err = NULL;
    KeyVal *kv = keyval_parse("scsi-hd,id=d0,file=a,,b", "driver", &err);
    assert_non_null(kv);
    assert_string_equal(keyval_get(kv, "driver"), "scsi-hd");
    assert_string_equal(keyval_get(kv, "id"), "d0");
    assert_string_equal(keyval_get(kv, "file"), "a,b");
    assert_true(keyval_check_all_used(kv, "dev", &err));
    keyval_free(kv);
}

static void test_unused_key_is_an_error(void **state)
{
    Error *err = NULL;
    KeyVal *kv = keyval_parse("x,id=d0,bogus=1", "driver", &err);
    keyval_get(kv, "driver");
    keyval_get(kv, "id");
    assert_false(keyval_check_all_used(kv, "dev", &err));
    assert_non_null(strstr(error_get_pretty(err), "bogus"));
    error_free(err);
    keyval_free(kv);
}

static void test_duplicate_and_malformed(void **state)
{
    Error *err = NULL;
    assert_null(keyval_parse("a=1,a=2", NULL, &err));
    assert_non_null(strstr(error_get_pretty(err), "twice"));
    error_free_or_null(&err);
    assert_null(keyval_parse("a=1,noequals", NULL, &err));
    error_free_or_null(&err);
    assert_null(keyval_parse("=1", NULL, &err));
    error_free_or_null(&err);
}

static void test_numbers_and_bools(void **state)
{
    Error *err = NULL;
    uint64_t v;
    uint32_t v32;
    bool b;
    KeyVal *kv = keyval_parse("s=4k,h=0x10,big=1T,b=off,bad=12q,huge=5G",
                              NULL, &err);
    assert_true(keyval_get_u64(kv, "s", 0, &v, &err));
    assert_int_equal(v, 4096);
    assert_true(keyval_get_u64(kv, "h", 0, &v, &err));
    assert_int_equal(v, 16);
    assert_true(keyval_get_u64(kv, "big", 0, &v, &err));
    assert_int_equal(v, 1ull << 40);
    assert_true(keyval_get_u64(kv, "missing", 7, &v, &err));
    assert_int_equal(v, 7);
    assert_true(keyval_get_bool(kv, "b", true, &b, &err));
    assert_false(b);
    assert_false(keyval_get_u64(kv, "bad", 0, &v, &err));
    error_free_or_null(&err);
    assert_false(keyval_get_u32(kv, "huge", 0, &v32, &err));
    error_free_or_null(&err);
    assert_false(parse_u64("-1", &v));
    assert_false(parse_u64("99999999999999999999", &v));
    assert_false(parse_u64("20000000T", &v));
    keyval_free(kv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_implied_and_escape),
        cmocka_unit_test(test_unused_key_is_an_error),
        cmocka_unit_test(test_duplicate_and_malformed),
        cmocka_unit_test(test_numbers_and_bools),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
