/* Incremental JSON framing over json_tokener, with error recovery. */
#include "monitor/qmp-stream.h"

#include <limits.h>
#include <stdlib.h>

/* Nesting deeper than this is refused; no QMP request comes close. */
#define QMP_STREAM_MAX_DEPTH 64

struct QmpStream {
    json_tokener *tok;
    size_t max_value_bytes;
    size_t pending;         /* bytes fed into the value being parsed */
    bool recovering;        /* skipping input after a syntax error */
};

QmpStream *qmp_stream_new(size_t max_value_bytes, Error **errp)
{
    QmpStream *s = calloc(1, sizeof(*s));
    if (!s || !(s->tok = json_tokener_new_ex(QMP_STREAM_MAX_DEPTH))) {
        free(s);
        error_setg(errp, "out of memory");
        return NULL;
    }
    /* Strict RFC 8259 input, valid UTF-8 only, and several values may
     * follow each other in one read. */
    json_tokener_set_flags(s->tok, JSON_TOKENER_STRICT |
                           JSON_TOKENER_ALLOW_TRAILING_CHARS |
                           JSON_TOKENER_VALIDATE_UTF8);
    s->max_value_bytes = max_value_bytes;
    return s;
}

void qmp_stream_free(QmpStream *s)
{
    if (s) {
        json_tokener_free(s->tok);
        free(s);
    }
}

/*
 * Bytes that end error recovery when consumed: line ends and the control
 * characters / impossible UTF-8 bytes that qmp-spec tells clients to send
 * to reset the server's parser.
 */
static bool is_resync_byte(unsigned char c)
{
    return (c < 0x20 && c != '\t') || c == 0xfe || c == 0xff;
}

static bool is_json_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Skips recovery input; returns how many bytes it consumed. */
static size_t skip_recovery(QmpStream *s, const char *data, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)data[i];
        if (c == '{') {
            /* Likely the start of the next request: parse from here. */
            s->recovering = false;
            return i;
        }
        i++;
        if (is_resync_byte(c)) {
            s->recovering = false;
            return i;
        }
    }
    return i;
}

/*
 * After a syntax error at data[at]: report it, restart the tokener and
 * decide where to continue. Returns the new position.
 */
static size_t handle_error(QmpStream *s, const char *data, size_t len,
                           size_t at, bool fresh_at_start, size_t start)
{
    s->pending = 0;
    json_tokener_reset(s->tok);
    if (at >= len) {
        return len;
    }
    unsigned char c = (unsigned char)data[at];
    /* A '{' that broke the old value starts a new one, unless it was the
     * very first byte of a fresh parse (no progress otherwise). */
    if (c == '{' && !(fresh_at_start && at == start)) {
        return at;
    }
    s->recovering = !is_resync_byte(c);
    return at + 1;
}

static void parse_error(enum json_tokener_error jerr, Error **errp)
{
    error_setg(errp, "JSON parse error, %s", json_tokener_error_desc(jerr));
}

QmpStreamStatus qmp_stream_feed(QmpStream *s, const char *data, size_t len,
                                QmpStreamFunc *fn, void *opaque)
{
    size_t pos = 0;
    while (pos < len) {
        if (s->recovering) {
            pos += skip_recovery(s, data + pos, len - pos);
            continue;
        }
        bool fresh = s->pending == 0;
        if (fresh) {
            /* Whitespace between values is not part of any value: keep it
             * out of the size bound (idle clients may send newlines). */
            while (pos < len && is_json_space(data[pos])) {
                pos++;
            }
            if (pos == len) {
                break;
            }
        }
        size_t chunk = len - pos < INT_MAX ? len - pos : INT_MAX;
        json_object *v = json_tokener_parse_ex(s->tok, data + pos,
                                               (int)chunk);
        enum json_tokener_error jerr = json_tokener_get_error(s->tok);
        size_t used = json_tokener_get_parse_end(s->tok);
        if (used > chunk) {
            used = chunk;
        }
        if (jerr == json_tokener_continue) {
            pos += chunk;
            s->pending += chunk;
            if (s->pending > s->max_value_bytes) {
                return QMP_STREAM_TOO_BIG;
            }
            continue;
        }
        if (jerr != json_tokener_success) {
            Error *err = NULL;
            parse_error(jerr, &err);
            pos = handle_error(s, data, len, pos + used, fresh, pos);
            bool go_on = fn(NULL, err, opaque);
            error_free(err);
            if (!go_on) {
                return QMP_STREAM_STOPPED;
            }
            continue;
        }
        pos += used;
        s->pending = 0;
        json_tokener_reset(s->tok);
        bool go_on = fn(v, NULL, opaque);
        json_object_put(v);
        if (!go_on) {
            return QMP_STREAM_STOPPED;
        }
    }
    return QMP_STREAM_OK;
}
