/* Round trips of every field kind, pointer-array ownership, and the
 * description a stream carries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "sample.h"

static ByteBuf save_sample(Sample *s, bool with_description)
{
    VMStateSection sec = { "s0", 0, &sample_vmsd, s };
    ByteBuf out;
    Error *err = NULL;
    bytebuf_init(&out);
    bool ok = vmstate_save_stream(&sec, 1, with_description, &out, &err);
    if (!ok) {
        fail_msg("save failed: %s", error_get_pretty(err));
    }
    return out;
}

static VMStateErr load_sample(Sample *s, const ByteBuf *stream, Error **errp)
{
    VMStateSection sec = { "s0", 0, &sample_vmsd, s };
    VMStateErr code = VMSTATE_E_NO_MEMORY;
    bool ok = vmstate_load_stream(&sec, 1, stream->data, stream->len, &code,
                                  errp);
    assert_int_equal(ok, code == VMSTATE_OK);
    return code;
}

/* Every kind with distinct values; the destination starts different. */
static void test_every_kind(void **state)
{
    Sample src, dst;
    sample_fill(&src, 7, 0x5, 3);       /* sq: 0 and 2 present */
    sample_fill(&dst, 2, 0x6, 5);       /* sq: 1 and 2 present */
    assert_false(sample_equal(&src, &dst));
    ByteBuf stream = save_sample(&src, false);

    Error *err = NULL;
    assert_int_equal(load_sample(&dst, &stream, &err), VMSTATE_OK);
    assert_null(err);
    assert_true(sample_equal(&src, &dst));
    assert_int_equal(dst.not_migrated, 0x77770002u);    /* left alone */
    assert_int_equal(dst.i64, -5000000007LL);
    assert_int_equal(dst.log[src.nlog - 1], src.log[src.nlog - 1]);
    bytebuf_free(&stream);
    sample_free(&src);
    sample_free(&dst);
}

/*
 * NULL-aware pointer array: NULL on the source and non-NULL at the
 * destination frees the entry; present on both loads in place (address and
 * unmigrated members kept); present only on the source allocates a zeroed
 * entry. ASan's leak check covers the frees.
 */
static void test_pointer_array_ownership(void **state)
{
    Sample src, dst;
    sample_fill(&src, 1, 0x5, 0);       /* 0 and 2 present, 1 and 3 NULL */
    sample_fill(&dst, 4, 0xA, 2);       /* 1 and 3 present, 0 and 2 NULL */
    dst.sq[2] = calloc(1, sizeof(SampleQueue));
    dst.sq[2]->cookie = 0xABCD;
    SampleQueue *kept = dst.sq[2];
    ByteBuf stream = save_sample(&src, false);

    assert_int_equal(load_sample(&dst, &stream, NULL), VMSTATE_OK);
    assert_true(sample_equal(&src, &dst));
    assert_non_null(dst.sq[0]);
    assert_int_equal(dst.sq[0]->cookie, 0);         /* calloc'd */
    assert_null(dst.sq[1]);
    assert_ptr_equal(dst.sq[2], kept);              /* loaded in place */
    assert_int_equal(dst.sq[2]->cookie, 0xABCD);
    assert_null(dst.sq[3]);
    assert_int_equal(dst.nextra, 0);
    assert_null(dst.extra);                         /* count 0: no array */
    bytebuf_free(&stream);
    sample_free(&src);
    sample_free(&dst);
}

/* VARRAY_ALLOC: the array is replaced by one of the stream's length. */
static void test_alloc_array_resized(void **state)
{
    Sample src, dst;
    sample_fill(&src, 3, 0, SAMPLE_MAX_EXTRA);
    sample_fill(&dst, 5, 0xF, 1);
    ByteBuf stream = save_sample(&src, false);
    assert_int_equal(load_sample(&dst, &stream, NULL), VMSTATE_OK);
    assert_int_equal(dst.nextra, SAMPLE_MAX_EXTRA);
    assert_true(sample_equal(&src, &dst));
    for (unsigned i = 0; i < SAMPLE_NSQ; i++) {
        assert_null(dst.sq[i]);
    }
    assert_int_equal(dst.extra[SAMPLE_MAX_EXTRA - 1].cookie, 0);
    bytebuf_free(&stream);
    sample_free(&src);
    sample_free(&dst);
}

/* Saving refuses a count above its bound instead of writing it. */
static void test_save_refuses_bad_count(void **state)
{
    Sample src;
    sample_fill(&src, 1, 0, 0);
    src.nlog = 9;
    VMStateSection sec = { "s0", 0, &sample_vmsd, &src };
    ByteBuf out;
    Error *err = NULL;
    bytebuf_init(&out);
    assert_false(vmstate_save_stream(&sec, 1, false, &out, &err));
    assert_non_null(strstr(error_get_pretty(err), "log"));
    assert_non_null(strstr(error_get_pretty(err), "s0"));
    assert_int_equal(out.len, 0);
    error_free(err);
    bytebuf_free(&out);
}

static json_object *find_by_name(json_object *arr, const char *name)
{
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        json_object *o = json_object_array_get_idx(arr, i), *n;
        if (json_object_object_get_ex(o, "name", &n) &&
            !strcmp(json_object_get_string(n), name)) {
            return o;
        }
    }
    return NULL;
}

/* The description names every section, field, kind and subsection. */
static void test_description(void **state)
{
    Sample s;
    sample_fill(&s, 1, 0, 0);
    VMStateSection sec = { "s0", 9, &sample_vmsd, &s };
    char *text = vmstate_describe_json(&sec, 1);
    json_object *root = json_tokener_parse(text), *secs, *vmsd, *fields, *o;
    assert_non_null(root);
    assert_true(json_object_object_get_ex(root, "sections", &secs));
    json_object *s0 = find_by_name(secs, "s0");
    assert_non_null(s0);
    assert_true(json_object_object_get_ex(s0, "instance_id", &o));
    assert_int_equal(json_object_get_int(o), 9);
    assert_true(json_object_object_get_ex(s0, "vmsd", &vmsd));
    assert_true(json_object_object_get_ex(vmsd, "fields", &fields));
    assert_int_equal(json_object_array_length(fields), 19);
    json_object *sq = find_by_name(fields, "sq");
    assert_true(json_object_object_get_ex(sq, "kind", &o));
    assert_string_equal(json_object_get_string(o), "struct_ptr_array");
    json_object *since2 = find_by_name(fields, "since2");
    assert_true(json_object_object_get_ex(since2, "since", &o));
    assert_int_equal(json_object_get_int(o), 2);
    assert_true(json_object_object_get_ex(vmsd, "subsections", &o));
    assert_non_null(find_by_name(o, "sample/features"));
    json_object_put(root);
    free(text);
    sample_free(&s);
}

/* A stream with its description loads like one without. */
static void test_with_description_loads(void **state)
{
    Sample src, dst;
    sample_fill(&src, 6, 0x3, 2);
    sample_fill(&dst, 1, 0, 0);
    ByteBuf stream = save_sample(&src, true);
    assert_int_equal(load_sample(&dst, &stream, NULL), VMSTATE_OK);
    assert_true(sample_equal(&src, &dst));
    bytebuf_free(&stream);
    sample_free(&src);
    sample_free(&dst);
}

/* The deepest nesting a description may have (levels 0..16, the format's
 * limit): saved with its JSON description, the stream loads and
 * stormig-analyze's decoder reads it; the JSON parser must not stop
 * short of the format's own depth. Level i is one byte "v" at offset 0
 * and, below the last level, a struct "inner" at offset 1. */
#define NEST_LEVELS 17

static void test_deepest_description(void **state)
{
    static VMStateDescription vmsd[NEST_LEVELS];
    static VMStateField fields[NEST_LEVELS][3];
    static char names[NEST_LEVELS][16];
    for (int i = NEST_LEVELS - 1; i >= 0; i--) {
        snprintf(names[i], sizeof(names[i]), "level%d", i);
        fields[i][0] = (VMStateField){ .name = "v", .kind = VMS_U8,
                                       .size = 1 };
        if (i < NEST_LEVELS - 1) {
            fields[i][1] = (VMStateField){
                .name = "inner", .kind = VMS_STRUCT, .offset = 1,
                .size = (size_t)(NEST_LEVELS - 1 - i), .vmsd = &vmsd[i + 1] };
        }
        vmsd[i] = (VMStateDescription){ .name = names[i], .version_id = 1,
                                        .minimum_version_id = 1,
                                        .fields = fields[i] };
    }
    uint8_t src[NEST_LEVELS], dst[NEST_LEVELS] = { 0 };
    for (int i = 0; i < NEST_LEVELS; i++) {
        src[i] = (uint8_t)(0x40 + i);
    }
    VMStateSection out = { "deep", 0, &vmsd[0], src };
    VMStateSection in = { "deep", 0, &vmsd[0], dst };
    ByteBuf b;
    bytebuf_init(&b);
    Error *err = NULL;
    if (!vmstate_save_stream(&out, 1, true, &b, &err)) {
        fail_msg("save: %s", error_get_pretty(err));
    }
    if (!vmstate_load_stream(&in, 1, b.data, b.len, NULL, &err)) {
        fail_msg("load: %s", error_get_pretty(err));
    }
    assert_memory_equal(src, dst, sizeof(src));
    VMStateErr code;
    char *json = vmstate_stream_to_json(b.data, b.len, &code, &err);
    if (!json) {
        fail_msg("analyze: %s", error_get_pretty(err));
    }
    /* The deepest value, level 16 (0x50), is printed. */
    assert_non_null(strstr(json, "\"v\": 80"));
    free(json);

    /* One level more is refused by the engine, not by the JSON parser. */
    fields[NEST_LEVELS - 1][1] = (VMStateField){
        .name = "inner", .kind = VMS_STRUCT, .offset = 0, .size = 1,
        .vmsd = &vmsd[NEST_LEVELS - 1] };
    bytebuf_reset(&b);
    assert_false(vmstate_save_stream(&out, 1, true, &b, &err));
    assert_non_null(strstr(error_get_pretty(err), "nests deeper than 16"));
    error_free(err);
    bytebuf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_kind),
        cmocka_unit_test(test_pointer_array_ownership),
        cmocka_unit_test(test_alloc_array_resized),
        cmocka_unit_test(test_save_refuses_bad_count),
        cmocka_unit_test(test_description),
        cmocka_unit_test(test_with_description_loads),
        cmocka_unit_test(test_deepest_description),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
