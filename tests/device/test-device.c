/* Device model: creation from option strings, property checking, hooks in
 * order, the first failure named, state sections. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "device/device.h"

typedef struct TestDev {
    Device parent;
    uint32_t value;
    bool fail_start;
} TestDev;

static char trace[256];

static void note(const char *what, Device *dev)
{
    strcat(trace, what);
    strcat(trace, ":");
    strcat(trace, dev->id);
    strcat(trace, " ");
}

static bool testdev_realize(Device *dev, KeyVal *props, Error **errp)
{
    TestDev *t = (TestDev *)dev;
    return keyval_get_u32(props, "value", 0, &t->value, errp) &&
           keyval_get_bool(props, "fail-start", false, &t->fail_start, errp);
}

static bool testdev_start(Device *dev, Error **errp)
{
    note("start", dev);
    if (((TestDev *)dev)->fail_start) {
        error_setg(errp, "refused");
        return false;
    }
    return true;
}

static void testdev_inactivate(Device *dev)
{
    note("inact", dev);
}

static const VMStateField testdev_fields[] = {
    VMSTATE_UINT32(value, TestDev),
    VMSTATE_END_OF_LIST(),
};

static const VMStateDescription testdev_vmsd = {
    .name = "testdev", .version_id = 1, .minimum_version_id = 1,
    .fields = testdev_fields,
};

static const DeviceClass testdev_class = {
    .type = "testdev",
    .instance_size = sizeof(TestDev),
    .realize = testdev_realize,
    .start = testdev_start,
    .inactivate = testdev_inactivate,
    .vmsd = &testdev_vmsd,
};

static void test_create_errors(void **state)
{
    Error *err = NULL;
    device_class_register(&testdev_class);
    static const char *const bad[] = {
        "nosuchtype,id=a",          /* unknown type */
        "testdev",                  /* no id */
        "testdev,id=bad/id",        /* invalid id */
        "testdev,id=a,bogus=1",     /* unknown property */
        "testdev,id=a,value=abc",   /* bad number */
        "testdev,id=a,id=b",        /* duplicate key */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_null(device_create(bad[i], NULL, &err));
        assert_non_null(err);
        /* The message quotes the option string it refused. */
        assert_non_null(strstr(error_get_pretty(err), bad[i]));
        error_free_or_null(&err);
    }
    assert_null(device_next(NULL));
}

static void test_hooks_and_sections(void **state)
{
    Error *err = NULL;
    device_class_register(&testdev_class);
    Device *a = device_create("testdev,id=a,value=7", NULL, &err);
    Device *b = device_create("testdev,id=b,fail-start=on", NULL, &err);
    assert_non_null(a);
    assert_non_null(b);
    assert_null(device_create("testdev,id=a", NULL, &err));
    assert_non_null(strstr(error_get_pretty(err), "duplicate"));
    error_free_or_null(&err);

    trace[0] = 0;
    assert_false(device_start_all(&err));
    assert_string_equal(trace, "start:a start:b ");
    assert_non_null(strstr(error_get_pretty(err), "'b'"));
    error_free_or_null(&err);

    trace[0] = 0;
    device_inactivate_all();
    assert_string_equal(trace, "inact:b inact:a ");

    size_t n;
    VMStateSection *secs = device_vmstate_sections(&n);
    assert_int_equal(n, 2);
    assert_string_equal(secs[0].name, "a");
    assert_ptr_equal(secs[0].opaque, a);
    assert_ptr_equal(secs[1].vmsd, &testdev_vmsd);
    free(secs);

    assert_ptr_equal(device_find("b"), b);
    device_destroy_all();
    assert_null(device_find("a"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_errors),
        cmocka_unit_test(test_hooks_and_sections),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
