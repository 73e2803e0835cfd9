/*
 * A table of malformed streams, each refused with its own reason and a
 * message naming where, and none of them changing the destination.
 *
 * Streams are written in a small notation (see build_stream): hex bytes,
 * HDR (magic + format version 1), N:name (length-prefixed name), T:text
 * (raw bytes), { ... } (u32 length of the enclosed bytes, then them),
 * CRC (CRC32C of everything before), D{ ... } (description tag, length,
 * text) and DCRC (CRC32C from the description tag on).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tiny.h"

static void put_hex(ByteBuf *b, const char *tok)
{
    size_t n = strlen(tok);
    if (n % 2) {
        fail_msg("odd hex token '%s'", tok);
    }
    for (size_t i = 0; i < n; i += 2) {
        unsigned v;
        if (sscanf(tok + i, "%2x", &v) != 1) {
            fail_msg("bad hex token '%s'", tok);
        }
        bytebuf_put_u8(b, (uint8_t)v);
    }
}

static void build_stream(const char *spec, ByteBuf *b)
{
    char *copy = strdup(spec), *save = NULL;
    size_t open[8], depth = 0, desc_start = 0;
    for (char *tok = strtok_r(copy, " ", &save); tok;
         tok = strtok_r(NULL, " ", &save)) {
        if (!strcmp(tok, "HDR")) {
            bytebuf_append(b, "STMGVMS", 8);
            bytebuf_put_be32(b, 1);
        } else if (!strncmp(tok, "N:", 2)) {
            bytebuf_put_u8(b, (uint8_t)strlen(tok + 2));
            bytebuf_append(b, tok + 2, strlen(tok + 2));
        } else if (!strncmp(tok, "T:", 2)) {
            bytebuf_append(b, tok + 2, strlen(tok + 2));
        } else if (!strcmp(tok, "{") || !strcmp(tok, "D{")) {
            if (tok[0] == 'D') {
                desc_start = b->len;
                bytebuf_put_u8(b, 0x04);
            }
            bytebuf_put_be32(b, 0);
            open[depth++] = b->len;
        } else if (!strcmp(tok, "}")) {
            size_t start = open[--depth];
            st_be32(b->data + start - 4, (uint32_t)(b->len - start));
        } else if (!strcmp(tok, "CRC")) {
            bytebuf_put_be32(b, vmstate_crc32c(0, b->data, b->len));
        } else if (!strcmp(tok, "DCRC")) {
            bytebuf_put_be32(b, vmstate_crc32c(0, b->data + desc_start,
                                               b->len - desc_start));
        } else {
            put_hex(b, tok);
        }
    }
    assert_int_equal(depth, 0);
    free(copy);
}

/* Payload of a valid "tiny" version 2 section (tiny.h). */
#define P_HEAD  "1234 01 00000002 aabb "
#define P_V     "00000002 0a0b "
#define P_P     "00000002 00 01 deadbeef "
#define P_LATER "00000009 "
#define P_OK    P_HEAD P_V P_P P_LATER
#define SUB_OK  "02 N:tiny/extra 00000001 { 5a } "
#define SEC_V(name, inst, ver, body) \
    "01 N:" name " " inst " " ver " { " body " } "
#define SEC(name, body) SEC_V(name, "00000000", "00000002", body)
#define T1      SEC("t1", P_OK)
#define END     "03 CRC "
#define OK_STREAM "HDR " SEC("t0", P_OK SUB_OK) T1 END

typedef struct Case {
    const char *what;
    const char *spec;
    VMStateErr code;
    const char *in_msg;         /* must appear in the message (or NULL) */
} Case;

static const Case cases[] = {
    { "empty input", "", VMSTATE_E_TRUNCATED, NULL },
    { "half a magic", "53544d47", VMSTATE_E_TRUNCATED, NULL },
    { "wrong magic", "5354 4d47 564d 5358 00000001 03 CRC",
      VMSTATE_E_BAD_MAGIC, NULL },
    { "other file", "T:GIF89a", VMSTATE_E_BAD_MAGIC, NULL },
    { "format version 2", "53544d47564d5300 00000002 03 CRC",
      VMSTATE_E_FORMAT_VERSION, "format version 2" },
    { "header only", "HDR", VMSTATE_E_NO_END, NULL },
    { "no end marker", "HDR " SEC("t0", P_OK) T1, VMSTATE_E_NO_END, NULL },
    { "unknown tag", "HDR 07", VMSTATE_E_BAD_TAG, "0x07" },
    { "subsection tag at top", "HDR " SUB_OK END, VMSTATE_E_BAD_TAG, NULL },
    { "unknown section", "HDR " SEC("zz", P_OK) T1 END,
      VMSTATE_E_UNKNOWN_SECTION, "zz" },
    { "unknown instance",
      "HDR " SEC_V("t0", "00000005", "00000002", P_OK) T1 END,
      VMSTATE_E_UNKNOWN_SECTION, "instance 5" },
    { "section twice", "HDR " SEC("t0", P_OK) T1 SEC("t0", P_OK) END,
      VMSTATE_E_DUPLICATE_SECTION, "t0" },
    { "section missing", "HDR " SEC("t0", P_OK) END,
      VMSTATE_E_MISSING_SECTION, "t1" },
    { "version too new",
      "HDR " SEC_V("t0", "00000000", "00000003", P_OK) T1 END,
      VMSTATE_E_VERSION_TOO_NEW, "version 3" },
    { "version too old",
      "HDR " SEC_V("t0", "00000000", "00000000", P_HEAD P_V P_P) T1 END,
      VMSTATE_E_VERSION_TOO_OLD, "version 0" },
    { "empty section name", "HDR 01 00 00000000 00000002 { " P_OK " }",
      VMSTATE_E_BAD_NAME, NULL },
    { "unprintable name", "HDR 01 02 7401 00000000 00000002 { " P_OK " }",
      VMSTATE_E_BAD_NAME, NULL },
    { "bytes left after the fields", "HDR " SEC("t0", P_OK "ff") T1 END,
      VMSTATE_E_SECTION_LENGTH, "t0" },
    { "payload shorter than the fields",
      "HDR " SEC("t0", P_HEAD P_V P_P) T1 END,
      VMSTATE_E_SECTION_LENGTH, "later" },
    { "section length past the stream",
      "HDR 01 N:t0 00000000 00000002 0000ffff " P_OK,
      VMSTATE_E_TRUNCATED, "t0" },
    { "varray count above capacity",
      "HDR " SEC("t0", P_HEAD "00000004 01020304 " P_P P_LATER) T1 END,
      VMSTATE_E_COUNT_TOO_LARGE, "v" },
    { "absurd varray count",
      "HDR " SEC("t0", P_HEAD "ffffffff " P_P P_LATER) T1 END,
      VMSTATE_E_COUNT_TOO_LARGE, "v" },
    { "buffer length differs",
      "HDR " SEC("t0", "1234 01 00000003 aabbcc " P_V P_P P_LATER) T1 END,
      VMSTATE_E_COUNT_MISMATCH, "buf" },
    { "pointer array length differs",
      "HDR " SEC("t0", P_HEAD P_V "00000003 00 00 00 " P_LATER) T1 END,
      VMSTATE_E_COUNT_MISMATCH, "p" },
    { "bool 2", "HDR " SEC("t0", "1234 02 00000002 aabb " P_V P_P P_LATER)
      T1 END, VMSTATE_E_BAD_BOOL, "'b'" },
    { "bool ff", "HDR " SEC("t0", "1234 ff 00000002 aabb " P_V P_P P_LATER)
      T1 END, VMSTATE_E_BAD_BOOL, "'b'" },
    { "pointer marker 2",
      "HDR " SEC("t0", P_HEAD P_V "00000002 00 02 deadbeef " P_LATER) T1 END,
      VMSTATE_E_BAD_PTR_MARKER, "p[1]" },
    { "pointer entry cut short",
      "HDR " SEC("t0", P_HEAD P_V "00000002 00 01 dead") T1 END,
      VMSTATE_E_SECTION_LENGTH, "p[1].x" },
    { "unknown subsection",
      "HDR " SEC("t0", P_OK "02 N:tiny/zz 00000001 { 00 }") T1 END,
      VMSTATE_E_UNKNOWN_SUBSECTION, "tiny/zz" },
    { "subsection twice", "HDR " SEC("t0", P_OK SUB_OK SUB_OK) T1 END,
      VMSTATE_E_DUPLICATE_SUBSECTION, "tiny/extra" },
    { "subsection version too new",
      "HDR " SEC("t0", P_OK "02 N:tiny/extra 00000009 { 5a }") T1 END,
      VMSTATE_E_VERSION_TOO_NEW, "tiny/extra" },
    { "subsection past its section",
      "HDR " SEC("t0", P_OK "02 N:tiny/extra 00000001 000000ff 5a") T1 END,
      VMSTATE_E_SECTION_LENGTH, "tiny/extra" },
    { "subsection payload empty",
      "HDR " SEC("t0", P_OK "02 N:tiny/extra 00000001 { }") T1 END,
      VMSTATE_E_SECTION_LENGTH, "extra" },
    { "subsection name empty",
      "HDR " SEC("t0", P_OK "02 00 00000001 { 5a }") T1 END,
      VMSTATE_E_BAD_NAME, NULL },
    { "check value zero", "HDR " SEC("t0", P_OK) T1 "03 00000000",
      VMSTATE_E_CHECKSUM, NULL },
    { "check value cut", "HDR " SEC("t0", P_OK) T1 "03 e3",
      VMSTATE_E_TRUNCATED, NULL },
    { "garbage after the end", OK_STREAM "00", VMSTATE_E_TRAILING_DATA,
      NULL },
    { "description not JSON", OK_STREAM "D{ T:not-json } DCRC",
      VMSTATE_E_BAD_DESCRIPTION, NULL },
    { "description a JSON list", OK_STREAM "D{ T:[1,2] } DCRC",
      VMSTATE_E_BAD_DESCRIPTION, NULL },
    { "description check value", OK_STREAM "D{ T:{} } 00000000",
      VMSTATE_E_CHECKSUM, "description" },
    { "description cut", OK_STREAM "04 00000010 7b7d",
      VMSTATE_E_TRUNCATED, NULL },
    { "description length absurd", OK_STREAM "04 ffffffff",
      VMSTATE_E_BAD_DESCRIPTION, NULL },
    { "garbage after the description", OK_STREAM "D{ T:{} } DCRC 00",
      VMSTATE_E_TRAILING_DATA, NULL },
};

typedef struct Dest {
    Tiny t0, t1, c0, c1;
    TinyEntry e0;
} Dest;

static void dest_init(Dest *d)
{
    tiny_fill_other(&d->t0);
    tiny_fill_other(&d->t1);
    d->c0 = d->t0;
    d->c1 = d->t1;
    d->e0 = *d->t0.p[0];
}

static VMStateErr load_spec(Dest *d, const char *spec, char *msg,
                            size_t msglen)
{
    VMStateSection secs[] = {
        { "t0", 0, &tiny_vmsd, &d->t0 },
        { "t1", 0, &tiny_vmsd, &d->t1 },
    };
    ByteBuf b;
    Error *err = NULL;
    VMStateErr code = VMSTATE_E_NO_MEMORY;
    bytebuf_init(&b);
    build_stream(spec, &b);
    bool ok = vmstate_load_stream(secs, 2, b.data, b.len, &code, &err);
    assert_int_equal(ok, code == VMSTATE_OK);
    assert_int_equal(ok, err == NULL);
    snprintf(msg, msglen, "%s", err ? error_get_pretty(err) : "");
    error_free(err);
    bytebuf_free(&b);
    return code;
}

/* The notation's base stream is valid: each case differs only by its
 * defect. */
static void test_base_stream_loads(void **state)
{
    Dest d;
    char msg[512];
    dest_init(&d);
    assert_int_equal(load_spec(&d, OK_STREAM, msg, sizeof(msg)), VMSTATE_OK);
    assert_int_equal(d.t0.a, 0x1234);
    assert_int_equal(d.t0.extra, 0x5a);
    assert_null(d.t0.p[0]);
    assert_int_equal(d.t1.p[1]->x, 0xdeadbeef);
    assert_int_equal(load_spec(&d, OK_STREAM "D{ T:{} } DCRC", msg,
                               sizeof(msg)), VMSTATE_OK);
    tiny_free(&d.t0);
    tiny_free(&d.t1);
}

static void test_malformed_table(void **state)
{
    size_t n = sizeof(cases) / sizeof(cases[0]);
    assert_true(n >= 30);
    for (size_t i = 0; i < n; i++) {
        const Case *c = &cases[i];
        Dest d;
        char msg[512];
        dest_init(&d);
        VMStateErr code = load_spec(&d, c->spec, msg, sizeof(msg));
        if (code != c->code) {
            fail_msg("%s: got %s, want %s (%s)", c->what,
                     vmstate_err_name(code), vmstate_err_name(c->code), msg);
        }
        if (!msg[0] || (c->in_msg && !strstr(msg, c->in_msg))) {
            fail_msg("%s: message '%s' lacks '%s'", c->what, msg,
                     c->in_msg ? c->in_msg : "anything");
        }
        if (!tiny_same(&d.t0, &d.c0, &d.e0, NULL) ||
            !tiny_same(&d.t1, &d.c1, &d.e0, NULL)) {
            fail_msg("%s: destination changed", c->what);
        }
        tiny_free(&d.t0);
        tiny_free(&d.t1);
    }
}

/* Each reason in the table is a distinct one. */
static void test_reasons_distinct(void **state)
{
    bool seen[64] = { false };
    size_t distinct = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (!seen[cases[i].code]) {
            seen[cases[i].code] = true;
            distinct++;
        }
        assert_string_not_equal(vmstate_err_name(cases[i].code),
                                "unknown-error");
    }
    assert_true(distinct >= 20);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base_stream_loads),
        cmocka_unit_test(test_malformed_table),
        cmocka_unit_test(test_reasons_distinct),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
