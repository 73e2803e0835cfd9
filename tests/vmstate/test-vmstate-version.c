/* Versions (section, since-version fields) and subsection rules, between
 * an "old build" and a "new build" of the same device. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "vmstate/vmstate.h"

typedef struct Dev {
    uint32_t a;
    uint32_t b;             /* added in version 2 */
    uint64_t feat;          /* subsection "dev/feat" in the new build */
} Dev;

static bool feat_needed(void *opaque)
{
    return ((Dev *)opaque)->feat != 0;
}

static const VMStateDescription feat_vmsd = {
    .name = "dev/feat", .version_id = 1, .minimum_version_id = 1,
    .needed = feat_needed,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT64(feat, Dev),
        VMSTATE_END_OF_LIST(),
    },
};

static const VMStateDescription feat_v2_vmsd = {
    .name = "dev/feat", .version_id = 2, .minimum_version_id = 1,
    .needed = feat_needed,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT64(feat, Dev),
        VMSTATE_END_OF_LIST(),
    },
};

/* Old build: version 1, no b, no subsection. */
static const VMStateDescription dev_v1 = {
    .name = "dev", .version_id = 1, .minimum_version_id = 1,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT32(a, Dev),
        VMSTATE_END_OF_LIST(),
    },
};

static const VMStateField dev_v2_fields[] = {
    VMSTATE_UINT32(a, Dev),
    VMSTATE_UINT32_V(b, Dev, 2),
    VMSTATE_END_OF_LIST(),
};

/* New build: version 2 with b since 2, reads version 1, has a subsection. */
static const VMStateDescription dev_v2 = {
    .name = "dev", .version_id = 2, .minimum_version_id = 1,
    .fields = dev_v2_fields,
    .subsections = (const VMStateDescription *const[]) { &feat_vmsd, NULL },
};

/* A later build whose subsection is at version 2. */
static const VMStateDescription dev_v2_feat2 = {
    .name = "dev", .version_id = 2, .minimum_version_id = 1,
    .fields = dev_v2_fields,
    .subsections = (const VMStateDescription *const[]) {
        &feat_v2_vmsd, NULL,
    },
};

/* A build that dropped support for version 1 streams. */
static const VMStateDescription dev_v3_min3 = {
    .name = "dev", .version_id = 3, .minimum_version_id = 3,
    .fields = dev_v2_fields,
};

static ByteBuf save(const VMStateDescription *vmsd, Dev *d)
{
    VMStateSection sec = { "dev0", 0, vmsd, d };
    ByteBuf out;
    bytebuf_init(&out);
    assert_true(vmstate_save_stream(&sec, 1, false, &out, NULL));
    return out;
}

static VMStateErr load(const VMStateDescription *vmsd, Dev *d,
                       const ByteBuf *in, char *msg, size_t msglen)
{
    VMStateSection sec = { "dev0", 0, vmsd, d };
    VMStateErr code = VMSTATE_E_NO_MEMORY;
    Error *err = NULL;
    vmstate_load_stream(&sec, 1, in->data, in->len, &code, &err);
    if (msg) {
        snprintf(msg, msglen, "%s", err ? error_get_pretty(err) : "");
    }
    error_free(err);
    return code;
}

/* Old stream into new code: b is not in it and stays as it was. */
static void test_old_stream_new_code(void **state)
{
    Dev src = { .a = 11, .b = 22, .feat = 5 }, dst = { 1, 2, 3 };
    ByteBuf s = save(&dev_v1, &src);
    assert_int_equal(load(&dev_v2, &dst, &s, NULL, 0), VMSTATE_OK);
    assert_int_equal(dst.a, 11);
    assert_int_equal(dst.b, 2);
    assert_int_equal(dst.feat, 3);
    bytebuf_free(&s);
}

static void test_new_stream_old_code(void **state)
{
    Dev src = { .a = 11, .b = 22 }, dst = { 1, 2, 3 };
    char msg[256];
    ByteBuf s = save(&dev_v2, &src);
    assert_int_equal(load(&dev_v1, &dst, &s, msg, sizeof(msg)),
                     VMSTATE_E_VERSION_TOO_NEW);
    assert_non_null(strstr(msg, "dev0"));
    assert_int_equal(dst.a, 1);
    bytebuf_free(&s);
}

static void test_stream_too_old(void **state)
{
    Dev src = { .a = 11 }, dst = { 1, 2, 3 };
    ByteBuf s = save(&dev_v1, &src);
    assert_int_equal(load(&dev_v3_min3, &dst, &s, NULL, 0),
                     VMSTATE_E_VERSION_TOO_OLD);
    assert_int_equal(dst.a, 1);
    bytebuf_free(&s);
}

/* New to new: b travels. */
static void test_same_version(void **state)
{
    Dev src = { .a = 11, .b = 22 }, dst = { 1, 2, 3 };
    ByteBuf s = save(&dev_v2, &src);
    assert_int_equal(load(&dev_v2, &dst, &s, NULL, 0), VMSTATE_OK);
    assert_int_equal(dst.b, 22);
    bytebuf_free(&s);
}

/* Not needed: not sent (the stream is the same as without subsections),
 * and the destination's member is left alone. */
static void test_subsection_not_needed(void **state)
{
    Dev src = { .a = 11, .b = 22, .feat = 0 }, dst = { 1, 2, 3 };
    static const VMStateDescription no_subs = {
        .name = "dev", .version_id = 2, .minimum_version_id = 1,
        .fields = dev_v2_fields,
    };
    ByteBuf s = save(&dev_v2, &src), plain = save(&no_subs, &src);
    assert_int_equal(s.len, plain.len);
    assert_memory_equal(s.data, plain.data, s.len);
    assert_int_equal(load(&dev_v2, &dst, &s, NULL, 0), VMSTATE_OK);
    assert_int_equal(dst.feat, 3);
    /* The old build reads it too: nothing it does not know was sent. */
    assert_int_equal(load(&dev_v1, &dst, &plain, NULL, 0),
                     VMSTATE_E_VERSION_TOO_NEW);
    bytebuf_free(&s);
    bytebuf_free(&plain);
}

static void test_subsection_needed(void **state)
{
    Dev src = { .a = 11, .b = 22, .feat = 0x123456789ull }, dst = { 1, 2, 3 };
    ByteBuf s = save(&dev_v2, &src);
    assert_int_equal(load(&dev_v2, &dst, &s, NULL, 0), VMSTATE_OK);
    assert_true(dst.feat == 0x123456789ull);
    bytebuf_free(&s);
}

/* A destination without the subsection refuses and names it. */
static void test_unknown_subsection(void **state)
{
    static const VMStateDescription v2_no_subs = {
        .name = "dev", .version_id = 2, .minimum_version_id = 1,
        .fields = dev_v2_fields,
    };
    Dev src = { .a = 11, .b = 22, .feat = 9 }, dst = { 1, 2, 3 };
    char msg[256];
    ByteBuf s = save(&dev_v2, &src);
    assert_int_equal(load(&v2_no_subs, &dst, &s, msg, sizeof(msg)),
                     VMSTATE_E_UNKNOWN_SUBSECTION);
    assert_non_null(strstr(msg, "dev/feat"));
    assert_non_null(strstr(msg, "dev0"));
    assert_int_equal(dst.a, 1);
    assert_int_equal(dst.b, 2);
    bytebuf_free(&s);
}

static void test_subsection_version(void **state)
{
    Dev src = { .a = 11, .b = 22, .feat = 9 }, dst = { 1, 2, 3 };
    ByteBuf s = save(&dev_v2_feat2, &src);
    char msg[256];
    assert_int_equal(load(&dev_v2, &dst, &s, msg, sizeof(msg)),
                     VMSTATE_E_VERSION_TOO_NEW);
    assert_non_null(strstr(msg, "dev/feat"));
    assert_int_equal(dst.feat, 3);
    bytebuf_free(&s);
    /* The other way round, version 1 is within 1..2. */
    s = save(&dev_v2, &src);
    assert_int_equal(load(&dev_v2_feat2, &dst, &s, NULL, 0), VMSTATE_OK);
    assert_int_equal(dst.feat, 9);
    bytebuf_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_old_stream_new_code),
        cmocka_unit_test(test_new_stream_old_code),
        cmocka_unit_test(test_stream_too_old),
        cmocka_unit_test(test_same_version),
        cmocka_unit_test(test_subsection_not_needed),
        cmocka_unit_test(test_subsection_needed),
        cmocka_unit_test(test_unknown_subsection),
        cmocka_unit_test(test_subsection_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
