/*
 * Runs stormig-analyze (argv[1]) on saved streams written into a scratch
 * directory (argv[2]) and checks the JSON a person would read.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <json-c/json.h>

#include "sample.h"

static const char *tool, *dir;

static char *write_stream(const char *name, const ByteBuf *b)
{
    char *path = NULL;
    assert_true(asprintf(&path, "%s/%s", dir, name) > 0);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b->data, 1, b->len, f), b->len);
    fclose(f);
    return path;
}

/* Runs the tool; returns its stdout (its stderr with want_stderr),
 * *status its exit status. */
static char *run_tool_output(const char *path, bool want_stderr, int *status)
{
    char *cmd = NULL;
    assert_true(asprintf(&cmd, "'%s' '%s' %s", tool, path,
                         want_stderr ? "2>&1 >/dev/null" : "2>/dev/null") > 0);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    ByteBuf out;
    bytebuf_init(&out);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0) {
        bytebuf_append(&out, chunk, n);
    }
    bytebuf_put_u8(&out, 0);
    int st = pclose(p);
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    free(cmd);
    return (char *)bytebuf_steal(&out, NULL);
}

static char *run_tool(const char *path, int *status)
{
    return run_tool_output(path, false, status);
}

static json_object *get(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(o, key, &v)) {
        fail_msg("no key '%s' in %s", key, json_object_to_json_string(o));
    }
    return v;
}

static void test_analyze_sample(void **state)
{
    Sample s;
    sample_fill(&s, 2, 0x5, 2);         /* features != 0: subsection sent */
    VMStateSection sec = { "nvme0", 3, &sample_vmsd, &s };
    ByteBuf b;
    bytebuf_init(&b);
    assert_true(vmstate_save_stream(&sec, 1, true, &b, NULL));
    char *path = write_stream("analyze-sample.bin", &b);
    int status;
    char *text = run_tool(path, &status);
    assert_int_equal(status, 0);

    json_object *root = json_tokener_parse(text);
    assert_non_null(root);
    json_object *secs = get(root, "sections");
    assert_int_equal(json_object_array_length(secs), 1);
    json_object *s0 = json_object_array_get_idx(secs, 0);
    assert_string_equal(json_object_get_string(get(s0, "section")), "nvme0");
    assert_int_equal(json_object_get_int(get(s0, "instance_id")), 3);
    assert_string_equal(json_object_get_string(get(s0, "vmsd")), "sample");
    assert_int_equal(json_object_get_int(get(s0, "version")), 2);

    json_object *f = get(s0, "fields");
    assert_int_equal(json_object_get_uint64(get(f, "u64")), s.u64);
    assert_int_equal(json_object_get_int64(get(f, "i64")), s.i64);
    assert_int_equal(json_object_get_int(get(f, "i8")), s.i8);
    assert_int_equal(json_object_get_boolean(get(f, "flag")), s.flag);
    assert_string_equal(json_object_get_string(get(f, "mac")),
                        "0e0f10111213");
    json_object *regs = get(f, "regs");
    assert_int_equal(json_object_array_length(regs), 4);
    assert_int_equal(json_object_get_int64(json_object_array_get_idx(regs, 3)),
                     s.regs[3]);
    assert_int_equal(json_object_array_length(get(f, "log")), s.nlog);
    assert_int_equal(json_object_get_int(get(get(f, "inner"), "b")),
                     s.inner.b);
    json_object *sq = get(f, "sq");
    assert_int_equal(json_object_array_length(sq), SAMPLE_NSQ);
    assert_null(json_object_array_get_idx(sq, 1));      /* NULL entry */
    json_object *q2 = json_object_array_get_idx(sq, 2);
    assert_non_null(q2);
    assert_int_equal(json_object_get_int(get(q2, "head")), s.sq[2]->head);
    assert_int_equal(json_object_array_length(get(f, "extra")), 2);
    assert_int_equal(json_object_get_int64(get(f, "since2")), s.since2);

    json_object *subs = get(s0, "subsections");
    assert_int_equal(json_object_array_length(subs), 1);
    json_object *sub = json_object_array_get_idx(subs, 0);
    assert_string_equal(json_object_get_string(get(sub, "name")),
                        "sample/features");
    assert_int_equal(json_object_get_uint64(get(get(sub, "fields"),
                                                "features")), s.features);
    json_object_put(root);
    free(text);
    free(path);
    bytebuf_free(&b);
    sample_free(&s);
}

/* Without a description, or damaged, the tool fails and prints nothing. */
static void test_analyze_refuses(void **state)
{
    Sample s;
    sample_fill(&s, 1, 0, 0);
    VMStateSection sec = { "s0", 0, &sample_vmsd, &s };
    ByteBuf b;
    bytebuf_init(&b);
    assert_true(vmstate_save_stream(&sec, 1, false, &b, NULL));
    char *path = write_stream("analyze-plain.bin", &b);
    int status;
    char *text = run_tool(path, &status);
    assert_int_equal(status, 1);
    assert_string_equal(text, "");
    free(text);
    free(path);

    bytebuf_reset(&b);
    assert_true(vmstate_save_stream(&sec, 1, true, &b, NULL));
    b.data[20] ^= 0x40;                 /* inside the first section */
    path = write_stream("analyze-damaged.bin", &b);
    text = run_tool(path, &status);
    assert_int_equal(status, 1);
    free(text);
    free(path);
    bytebuf_free(&b);
    sample_free(&s);
}

/* An empty file and a file cut inside the stream header are refused with
 * a message saying so, not read through a NULL or short buffer. */
static void test_analyze_empty_and_truncated_header(void **state)
{
    Sample s;
    sample_fill(&s, 1, 0, 0);
    VMStateSection sec = { "s0", 0, &sample_vmsd, &s };
    ByteBuf b;
    bytebuf_init(&b);
    assert_true(vmstate_save_stream(&sec, 1, true, &b, NULL));
    static const struct {
        size_t len;
        const char *says;
    } cuts[] = {
        { 0, "empty: no device-state stream header" },
        { 5, "stream header truncated: 5 of 12 bytes" },
        { 10, "stream header truncated: 10 of 12 bytes" },
    };
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        ByteBuf cut = { .data = b.data, .len = cuts[i].len };
        char *path = write_stream("analyze-cut.bin", &cut);
        int status;
        char *text = run_tool_output(path, true, &status);
        assert_int_equal(status, 1);
        if (!strstr(text, cuts[i].says)) {
            fail_msg("%zu bytes: \"%s\" lacks \"%s\"", cuts[i].len, text,
                     cuts[i].says);
        }
        free(text);
        free(path);
    }
    bytebuf_free(&b);
    sample_free(&s);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s STORMIG-ANALYZE SCRATCH-DIR\n", argv[0]);
        return 2;
    }
    tool = argv[1];
    dir = argv[2];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_analyze_sample),
        cmocka_unit_test(test_analyze_refuses),
        cmocka_unit_test(test_analyze_empty_and_truncated_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
