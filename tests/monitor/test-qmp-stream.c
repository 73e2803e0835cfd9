/*
 * Framing a byte stream into JSON values: split reads, several values per
 * read, recovery after syntax errors, and the size bound.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "monitor/qmp-stream.h"

/* What the stream reported, one line per event: the value as JSON text,
 * or "ERR: message". */
typedef struct Seen {
    char lines[16][256];
    int n;
    int stop_after;     /* return false after this many events (0: never) */
} Seen;

static bool record(json_object *value, const Error *err, void *opaque)
{
    Seen *seen = opaque;
    assert_true(seen->n < 16);
    assert_true((value == NULL) != (err == NULL));
    if (err) {
        snprintf(seen->lines[seen->n], 256, "ERR: %s",
                 error_get_pretty(err));
    } else {
        snprintf(seen->lines[seen->n], 256, "%s",
                 json_object_to_json_string_ext(value,
                                                JSON_C_TO_STRING_PLAIN));
    }
    seen->n++;
    return seen->stop_after == 0 || seen->n < seen->stop_after;
}

static QmpStreamStatus feed_str(QmpStream *s, const char *text, Seen *seen)
{
    return qmp_stream_feed(s, text, strlen(text), record, seen);
}

static void test_split_and_joined(void **state)
{
    const char *text = " {\"execute\": \"a\", \"id\": [1, 2]}\r\n"
                       "{\"execute\":\"b\"}42\n\"s\"\n";
    /* Byte by byte and all at once give the same values. */
    for (int mode = 0; mode < 2; mode++) {
        QmpStream *s = qmp_stream_new(1024, NULL);
        Seen seen = { 0 };
        if (mode == 0) {
            for (size_t i = 0; i < strlen(text); i++) {
                assert_int_equal(qmp_stream_feed(s, text + i, 1, record,
                                                 &seen), QMP_STREAM_OK);
            }
        } else {
            assert_int_equal(feed_str(s, text, &seen), QMP_STREAM_OK);
        }
        assert_int_equal(seen.n, 4);
        assert_string_equal(seen.lines[0],
                            "{\"execute\":\"a\",\"id\":[1,2]}");
        assert_string_equal(seen.lines[1], "{\"execute\":\"b\"}");
        assert_string_equal(seen.lines[2], "42");
        assert_string_equal(seen.lines[3], "\"s\"");
        qmp_stream_free(s);
    }
}

static void test_recovery(void **state)
{
    QmpStream *s = qmp_stream_new(1024, NULL);
    Seen seen = { 0 };
    /* A bad keyword inside a request: one error, the rest of that line is
     * skipped, the next request parses. */
    feed_str(s, "{\"execute\": foo, \"x\": 1}\n{\"execute\": \"ok\"}\n",
             &seen);
    assert_int_equal(seen.n, 2);
    assert_true(strncmp(seen.lines[0], "ERR: JSON parse error, ", 23) == 0);
    assert_string_equal(seen.lines[1], "{\"execute\":\"ok\"}");

    /* Without a newline, the next '{' is where parsing restarts. */
    seen.n = 0;
    feed_str(s, "{\"execute\" 1}{\"execute\": \"ok2\"}", &seen);
    assert_int_equal(seen.n, 2);
    assert_true(strncmp(seen.lines[0], "ERR: ", 5) == 0);
    assert_string_equal(seen.lines[1], "{\"execute\":\"ok2\"}");

    /* A half-sent request followed by 0xFF (the documented reset). */
    seen.n = 0;
    feed_str(s, "{\"execute\": \"lost", &seen);
    assert_int_equal(seen.n, 0);
    feed_str(s, "\xff{\"execute\": \"ok3\"}", &seen);
    assert_int_equal(seen.n, 2);
    assert_true(strncmp(seen.lines[0], "ERR: ", 5) == 0);
    assert_string_equal(seen.lines[1], "{\"execute\":\"ok3\"}");

    /* Invalid UTF-8 and stray closers are errors, never values. */
    seen.n = 0;
    feed_str(s, "{\"execute\": \"\xc3\x28\"}\n]\n{\"execute\": \"ok4\"}\n",
             &seen);
    assert_int_equal(seen.n, 3);
    assert_true(strncmp(seen.lines[0], "ERR: ", 5) == 0);
    assert_true(strncmp(seen.lines[1], "ERR: ", 5) == 0);
    assert_string_equal(seen.lines[2], "{\"execute\":\"ok4\"}");
    qmp_stream_free(s);
}

static void test_stop(void **state)
{
    QmpStream *s = qmp_stream_new(1024, NULL);
    Seen seen = { .stop_after = 1 };
    assert_int_equal(feed_str(s, "{}{}{}", &seen), QMP_STREAM_STOPPED);
    assert_int_equal(seen.n, 1);
    qmp_stream_free(s);
}

static void test_size_bound(void **state)
{
    QmpStream *s = qmp_stream_new(100, NULL);
    Seen seen = { 0 };
    /* Whitespace between values does not count against the bound. */
    char *blank = malloc(1000);
    memset(blank, '\n', 1000);
    assert_int_equal(qmp_stream_feed(s, blank, 1000, record, &seen),
                     QMP_STREAM_OK);
    free(blank);
    /* A complete value just under the bound is fine... */
    char text[300];
    snprintf(text, sizeof(text), "{\"execute\": \"%0*d\"}", 80, 0);
    assert_int_equal(feed_str(s, text, &seen), QMP_STREAM_OK);
    assert_int_equal(seen.n, 1);
    /* ...an unfinished one past it is refused. */
    snprintf(text, sizeof(text), "{\"execute\": \"%0*d", 120, 0);
    assert_int_equal(feed_str(s, text, &seen), QMP_STREAM_TOO_BIG);
    qmp_stream_free(s);
}

static void test_depth_bound(void **state)
{
    QmpStream *s = qmp_stream_new(1 << 20, NULL);
    Seen seen = { 0 };
    char text[2100];
    memset(text, '[', 2000);
    strcpy(text + 2000, "\n{\"execute\": \"ok\"}");
    assert_int_equal(feed_str(s, text, &seen), QMP_STREAM_OK);
    assert_true(seen.n >= 2);
    assert_true(strncmp(seen.lines[0], "ERR: JSON parse error, ", 23) == 0);
    assert_string_equal(seen.lines[seen.n - 1], "{\"execute\":\"ok\"}");
    qmp_stream_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_and_joined),
        cmocka_unit_test(test_recovery),
        cmocka_unit_test(test_stop),
        cmocka_unit_test(test_size_bound),
        cmocka_unit_test(test_depth_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
