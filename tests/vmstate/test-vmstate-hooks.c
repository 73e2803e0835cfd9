/* pre_save refusals and post_load failures with rollback of every
 * section of the stream. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "sample.h"

typedef struct Ctl {
    uint32_t reg;
    bool busy;              /* pre_save refuses while set */
    bool reject;            /* post_load refuses while set */
    uint32_t seen_reg;      /* what post_load found */
    int seen_version;
    int post_loads;
} Ctl;

static bool ctl_pre_save(void *opaque, Error **errp)
{
    Ctl *c = opaque;
    if (c->busy) {
        error_setg(errp, "controller busy with a format command");
        return false;
    }
    return true;
}

static bool ctl_post_load(void *opaque, int version_id, Error **errp)
{
    Ctl *c = opaque;
    c->post_loads++;
    c->seen_reg = c->reg;
    c->seen_version = version_id;
    if (c->reject) {
        error_setg(errp, "register value %u not supported", c->reg);
        return false;
    }
    return true;
}

static const VMStateDescription ctl_vmsd = {
    .name = "ctl", .version_id = 3, .minimum_version_id = 1,
    .pre_save = ctl_pre_save,
    .post_load = ctl_post_load,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT32(reg, Ctl),
        VMSTATE_END_OF_LIST(),
    },
};

static void test_pre_save_refusal(void **state)
{
    Ctl c = { .reg = 5, .busy = true };
    Sample s;
    sample_fill(&s, 1, 0x1, 1);
    VMStateSection secs[] = {
        { "s0", 0, &sample_vmsd, &s },
        { "ctl0", 0, &ctl_vmsd, &c },
    };
    ByteBuf out;
    Error *err = NULL;
    bytebuf_init(&out);
    bytebuf_append(&out, "x", 1);
    assert_false(vmstate_save_stream(secs, 2, true, &out, &err));
    const char *msg = error_get_pretty(err);
    assert_non_null(strstr(msg, "controller busy with a format command"));
    assert_non_null(strstr(msg, "ctl0"));
    assert_int_equal(out.len, 1);       /* nothing appended */
    error_free(err);
    c.busy = false;
    assert_true(vmstate_save_stream(secs, 2, true, &out, NULL));
    assert_true(out.len > 1);
    bytebuf_free(&out);
    sample_free(&s);
}

/* post_load sees the new state and the stream's version. */
static void test_post_load_runs_after_commit(void **state)
{
    Ctl src = { .reg = 77 }, dst = { .reg = 1 };
    VMStateSection s = { "ctl0", 0, &ctl_vmsd, &src };
    VMStateSection d = { "ctl0", 0, &ctl_vmsd, &dst };
    ByteBuf out;
    bytebuf_init(&out);
    assert_true(vmstate_save_stream(&s, 1, false, &out, NULL));
    assert_true(vmstate_load_stream(&d, 1, out.data, out.len, NULL, NULL));
    assert_int_equal(dst.post_loads, 1);
    assert_int_equal(dst.seen_reg, 77);
    assert_int_equal(dst.seen_version, 3);
    bytebuf_free(&out);
}

/*
 * The second section's post_load fails after both were committed: the
 * first section (every kind, with entries allocated and freed by the
 * load) is restored exactly, addresses included; ASan checks that the
 * entries allocated by the load were freed.
 */
static void test_post_load_failure_rolls_back(void **state)
{
    Sample src, dst, copy;
    SampleAddrs addrs;
    Ctl csrc = { .reg = 99 }, cdst = { .reg = 4, .reject = true };
    sample_fill(&src, 3, 0x3, 4);
    sample_fill(&dst, 8, 0xC, 1);
    sample_clone(&copy, &dst);
    sample_addrs(&dst, &addrs);
    VMStateSection ssecs[] = {
        { "s0", 0, &sample_vmsd, &src }, { "ctl0", 0, &ctl_vmsd, &csrc },
    };
    VMStateSection dsecs[] = {
        { "s0", 0, &sample_vmsd, &dst }, { "ctl0", 0, &ctl_vmsd, &cdst },
    };
    ByteBuf out;
    Error *err = NULL;
    VMStateErr code;
    bytebuf_init(&out);
    assert_true(vmstate_save_stream(ssecs, 2, false, &out, NULL));
    assert_false(vmstate_load_stream(dsecs, 2, out.data, out.len, &code,
                                     &err));
    assert_int_equal(code, VMSTATE_E_POST_LOAD);
    assert_non_null(strstr(error_get_pretty(err), "register value 99"));
    assert_non_null(strstr(error_get_pretty(err), "ctl0"));
    assert_int_equal(cdst.seen_reg, 99);    /* it did see the new state */
    assert_int_equal(cdst.reg, 4);          /* and it was rolled back */
    assert_true(sample_unchanged(&dst, &copy, &addrs));
    error_free(err);

    /* Once accepted, the same stream loads. */
    cdst.reject = false;
    assert_true(vmstate_load_stream(dsecs, 2, out.data, out.len, &code,
                                    NULL));
    assert_true(sample_equal(&dst, &src));
    assert_int_equal(cdst.reg, 99);
    bytebuf_free(&out);
    sample_free(&src);
    sample_free(&dst);
    sample_free(&copy);
}

/* Fields with a maximum: a stream carrying a larger value is refused by
 * the loader, naming the field, and nothing changes. */
typedef struct Ranged {
    uint8_t running;        /* a flag kept in a u8 */
    uint8_t key;            /* a 4-bit code */
    uint32_t depth;
} Ranged;

static const VMStateDescription ranged_vmsd = {
    .name = "ranged", .version_id = 1, .minimum_version_id = 1,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT8_MAX(running, Ranged, 1),
        VMSTATE_UINT8_MAX(key, Ranged, 0xf),
        VMSTATE_UINT32_MAX(depth, Ranged, 4096),
        VMSTATE_END_OF_LIST(),
    },
};

static void test_field_max(void **state)
{
    static const struct {
        Ranged src;
        const char *says;
    } cases[] = {
        { { 255, 6, 1 }, "field 'running': value 255 is above its maximum 1" },
        { { 1, 0xff, 1 }, "field 'key': value 255 is above its maximum 15" },
        { { 0, 6, 4097 }, "field 'depth': value 4097 is above its "
                          "maximum 4096" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        Ranged src = cases[i].src, dst = { 1, 6, 7 };
        VMStateSection out = { "r0", 0, &ranged_vmsd, &src };
        VMStateSection in = { "r0", 0, &ranged_vmsd, &dst };
        ByteBuf b;
        bytebuf_init(&b);
        assert_true(vmstate_save_stream(&out, 1, false, &b, NULL));
        Error *err = NULL;
        VMStateErr code = VMSTATE_OK;
        assert_false(vmstate_load_stream(&in, 1, b.data, b.len, &code,
                                         &err));
        assert_int_equal(code, VMSTATE_E_OUT_OF_RANGE);
        if (!strstr(error_get_pretty(err), cases[i].says)) {
            fail_msg("\"%s\" lacks \"%s\"", error_get_pretty(err),
                     cases[i].says);
        }
        assert_true(dst.running == 1 && dst.key == 6 && dst.depth == 7);
        error_free(err);
        bytebuf_free(&b);
    }
    /* The maximum itself loads. */
    Ranged src = { 1, 0xf, 4096 }, dst = { 0, 0, 0 };
    VMStateSection out = { "r0", 0, &ranged_vmsd, &src };
    VMStateSection in = { "r0", 0, &ranged_vmsd, &dst };
    ByteBuf b;
    bytebuf_init(&b);
    assert_true(vmstate_save_stream(&out, 1, false, &b, NULL));
    assert_true(vmstate_load_stream(&in, 1, b.data, b.len, NULL, NULL));
    assert_true(dst.running == 1 && dst.key == 0xf && dst.depth == 4096);
    bytebuf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pre_save_refusal),
        cmocka_unit_test(test_post_load_runs_after_commit),
        cmocka_unit_test(test_post_load_failure_rolls_back),
        cmocka_unit_test(test_field_max),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
