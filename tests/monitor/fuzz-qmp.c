/*
 * Fuzz target: raw client bytes go through the monitor's JSON stream
 * (json_tokener, error recovery, size bound) into a QMP session, exactly
 * as a socket client's input would. Every response must serialize.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "monitor/monitor-int.h"
#include "monitor/qmp-stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A command with every kind of argument, to reach the helpers. */
static bool cmd_probe(json_object *args, json_object **ret, void *opaque,
                      Error **errp)
{
    static const char *const known[] = { "uri", "on", "n", NULL };
    const char *uri = "";
    bool on = false;
    int64_t n = 0;
    if (!qmp_args_check(args, known, errp) ||
        !qmp_arg_str(args, "uri", false, &uri, errp) ||
        !qmp_arg_bool(args, "on", true, &on, errp) ||
        !qmp_arg_int(args, "n", true, &n, errp)) {
        return false;
    }
    *ret = json_object_new_int64((int64_t)strlen(uri) + on + (n & 1));
    return true;
}

static bool on_value(json_object *value, const Error *err, void *opaque)
{
    QmpSession *session = opaque;
    json_object *rsp = err ? qmp_error_response(err, NULL)
                           : qmp_session_dispatch(session, value);
    const char *text = json_object_to_json_string_ext(
        rsp, JSON_C_TO_STRING_PLAIN);
    if (!text || !*text) {
        abort();    /* every response must be a JSON text */
    }
    json_object_put(rsp);
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool registered;
    if (!registered) {
        qmp_register_command("probe", cmd_probe, NULL);
        registered = true;
    }
    QmpSession session = { 0 };
    QmpStream *s = qmp_stream_new(4096, NULL);
    if (!s) {
        return 0;
    }
    /* Feed in two reads split where the first byte says, so values cut
     * across reads are exercised too. */
    size_t cut = size ? data[0] % (size + 1) : 0;
    const char *text = (const char *)data;
    if (qmp_stream_feed(s, text, cut, on_value, &session) == QMP_STREAM_OK) {
        qmp_stream_feed(s, text + cut, size - cut, on_value, &session);
    }
    qmp_stream_free(s);
    return 0;
}
