/*
 * QMP request rules: negotiation gate, id echo, each malformed request,
 * unknown commands, argument helpers, and query-commands.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "monitor/monitor-int.h"

/* Runs request text through a session; returns the response. */
static json_object *run(QmpSession *s, const char *text)
{
    json_object *req = json_tokener_parse(text);
    assert_non_null(req);
    json_object *rsp = qmp_session_dispatch(s, req);
    json_object_put(req);
    assert_non_null(rsp);
    return rsp;
}

static json_object *member(json_object *obj, const char *name)
{
    json_object *v = NULL;
    assert_true(json_object_object_get_ex(obj, name, &v));
    return v;
}

/* Checks rsp is {"error": {"class": cls, "desc": desc}} and puts it. */
static void expect_error(json_object *rsp, const char *cls, const char *desc)
{
    json_object *err = member(rsp, "error");
    assert_string_equal(json_object_get_string(member(err, "class")), cls);
    assert_string_equal(json_object_get_string(member(err, "desc")), desc);
    assert_false(json_object_object_get_ex(rsp, "return", NULL));
    json_object_put(rsp);
}

static void expect_dispatch_error(const char *text, const char *cls,
                                  const char *desc)
{
    json_object *req = json_tokener_parse(text);
    assert_non_null(req);
    json_object *rsp = qmp_dispatch(req);
    json_object_put(req);
    expect_error(rsp, cls, desc);
}

/* A test command: echoes its "uri" and optional "force" and "count". */
static bool cmd_echo(json_object *args, json_object **ret, void *opaque,
                     Error **errp)
{
    static const char *const known[] = { "uri", "force", "count", NULL };
    const char *uri;
    bool force = false;
    int64_t count = -1;
    if (!qmp_args_check(args, known, errp) ||
        !qmp_arg_str(args, "uri", false, &uri, errp) ||
        !qmp_arg_bool(args, "force", true, &force, errp) ||
        !qmp_arg_int(args, "count", true, &count, errp)) {
        return false;
    }
    (*(int *)opaque)++;
    *ret = json_object_new_object();
    json_object_object_add(*ret, "uri", json_object_new_string(uri));
    json_object_object_add(*ret, "force", json_object_new_boolean(force));
    json_object_object_add(*ret, "count", json_object_new_int64(count));
    return true;
}

static bool cmd_fail(json_object *args, json_object **ret, void *opaque,
                     Error **errp)
{
    error_set(errp, ERROR_CLASS_DEVICE_NOT_FOUND, "Device 'x' not found");
    return false;
}

static bool cmd_nothing(json_object *args, json_object **ret, void *opaque,
                        Error **errp)
{
    return true;
}

static int echo_calls;

static int setup(void **state)
{
    echo_calls = 0;
    qmp_register_command("echo", cmd_echo, &echo_calls);
    qmp_register_command("fail", cmd_fail, NULL);
    qmp_register_command("nothing", cmd_nothing, NULL);
    return 0;
}

static int teardown(void **state)
{
    qmp_unregister_all();
    return 0;
}

static void test_negotiation_gate(void **state)
{
    QmpSession s = { 0 };
    expect_error(run(&s, "{\"execute\": \"echo\", \"arguments\": "
                     "{\"uri\": \"a\"}}"), "CommandNotFound",
                 "Expecting capabilities negotiation with "
                 "'qmp_capabilities'");
    assert_int_equal(echo_calls, 0);
    /* An offered-nothing capability cannot be enabled. */
    expect_error(run(&s, "{\"execute\": \"qmp_capabilities\", "
                     "\"arguments\": {\"enable\": [\"oob\"]}}"),
                 "GenericError", "Capability 'oob' not available");
    assert_false(s.negotiated);

    json_object *rsp = run(&s, "{\"execute\": \"qmp_capabilities\"}");
    assert_int_equal(json_object_object_length(member(rsp, "return")), 0);
    json_object_put(rsp);
    assert_true(s.negotiated);

    expect_error(run(&s, "{\"execute\": \"qmp_capabilities\"}"),
                 "CommandNotFound", "Capabilities negotiation is already "
                 "complete, command ignored");
    rsp = run(&s, "{\"execute\": \"echo\", \"arguments\": {\"uri\": \"a\"}}");
    assert_string_equal(json_object_get_string(
        member(member(rsp, "return"), "uri")), "a");
    json_object_put(rsp);
    assert_int_equal(echo_calls, 1);
}

static void test_id_echo(void **state)
{
    static const char *const ids[] = {
        "1", "\"abc\"", "{\"a\": [1, 2]}", "null", "[true]",
    };
    for (size_t i = 0; i < sizeof(ids) / sizeof(*ids); i++) {
        char text[256];
        json_object *want = json_tokener_parse(ids[i]);
        /* Same id on success and on error. */
        snprintf(text, sizeof(text), "{\"execute\": \"nothing\", "
                 "\"id\": %s}", ids[i]);
        QmpSession s = { .negotiated = true };
        json_object *rsp = run(&s, text);
        assert_true(json_object_object_get_ex(rsp, "return", NULL));
        assert_true(json_object_equal(member(rsp, "id"), want));
        json_object_put(rsp);
        snprintf(text, sizeof(text), "{\"execute\": \"nope\", "
                 "\"id\": %s}", ids[i]);
        rsp = run(&s, text);
        assert_true(json_object_equal(member(rsp, "id"), want));
        assert_true(json_object_object_get_ex(rsp, "error", NULL));
        json_object_put(rsp);
        json_object_put(want);
    }
    /* No id, no id member. */
    QmpSession s = { .negotiated = true };
    json_object *rsp = run(&s, "{\"execute\": \"nothing\"}");
    assert_false(json_object_object_get_ex(rsp, "id", NULL));
    json_object_put(rsp);
}

static void test_malformed_requests(void **state)
{
    expect_dispatch_error("[1, 2]", "GenericError",
                          "QMP input must be a JSON object");
    expect_dispatch_error("\"execute\"", "GenericError",
                          "QMP input must be a JSON object");
    expect_dispatch_error("{}", "GenericError",
                          "QMP input lacks member 'execute'");
    expect_dispatch_error("{\"id\": 3}", "GenericError",
                          "QMP input lacks member 'execute'");
    expect_dispatch_error("{\"execute\": 42}", "GenericError",
                          "QMP input member 'execute' must be a string");
    expect_dispatch_error("{\"execute\": \"nothing\", \"arguments\": [1]}",
                          "GenericError",
                          "QMP input member 'arguments' must be an object");
    expect_dispatch_error("{\"execute\": \"nothing\", \"argument\": {}}",
                          "GenericError",
                          "QMP input member 'argument' is unexpected");
    expect_dispatch_error("{\"execute\": \"no\\u0000thing\"}",
                          "GenericError", "QMP input member 'execute' "
                          "must not contain a NUL character");
    expect_dispatch_error("{\"execute\": \"frobnicate\"}", "CommandNotFound",
                          "The command frobnicate has not been found");
}

static void test_argument_errors(void **state)
{
    expect_dispatch_error("{\"execute\": \"echo\"}", "GenericError",
                          "Parameter 'uri' is missing");
    expect_dispatch_error("{\"execute\": \"echo\", \"arguments\": {}}",
                          "GenericError", "Parameter 'uri' is missing");
    expect_dispatch_error("{\"execute\": \"echo\", \"arguments\": "
                          "{\"uri\": 5}}", "GenericError",
                          "Invalid parameter type for 'uri', expected: "
                          "string");
    expect_dispatch_error("{\"execute\": \"echo\", \"arguments\": "
                          "{\"uri\": \"u\", \"force\": \"yes\"}}",
                          "GenericError", "Invalid parameter type for "
                          "'force', expected: boolean");
    expect_dispatch_error("{\"execute\": \"echo\", \"arguments\": "
                          "{\"uri\": \"u\", \"count\": 1.5}}",
                          "GenericError", "Invalid parameter type for "
                          "'count', expected: integer");
    expect_dispatch_error("{\"execute\": \"echo\", \"arguments\": "
                          "{\"uri\": \"u\", \"count\": "
                          "18446744073709551615}}",
                          "GenericError", "Parameter 'count' is out of "
                          "range");
    /* null is not "absent" (QEMU: a type error), optional or not. */
    expect_dispatch_error("{\"execute\": \"echo\", \"arguments\": "
                          "{\"uri\": null}}", "GenericError",
                          "Invalid parameter type for 'uri', expected: "
                          "string");
    expect_dispatch_error("{\"execute\": \"echo\", \"arguments\": "
                          "{\"uri\": \"u\", \"force\": null}}",
                          "GenericError", "Invalid parameter type for "
                          "'force', expected: boolean");
    expect_dispatch_error("{\"execute\": \"echo\", \"arguments\": "
                          "{\"uri\": \"u\", \"count\": null}}",
                          "GenericError", "Invalid parameter type for "
                          "'count', expected: integer");
    expect_dispatch_error("{\"execute\": \"echo\", \"arguments\": "
                          "{\"uri\": \"u\", \"x\": 1}}", "GenericError",
                          "Parameter 'x' is unexpected");
    expect_dispatch_error("{\"execute\": \"echo\", \"arguments\": "
                          "{\"uri\": \"a\\u0000b\"}}", "GenericError",
                          "Parameter 'uri' must not contain a NUL "
                          "character");
    assert_int_equal(echo_calls, 0);
    /* The handler's own error class reaches the wire. */
    expect_dispatch_error("{\"execute\": \"fail\"}", "DeviceNotFound",
                          "Device 'x' not found");
}

static void test_arguments_read(void **state)
{
    json_object *req = json_tokener_parse(
        "{\"execute\": \"echo\", \"arguments\": {\"uri\": \"tcp:h:1\", "
        "\"force\": true, \"count\": -9007199254740993}}");
    json_object *rsp = qmp_dispatch(req);
    json_object *ret = member(rsp, "return");
    assert_string_equal(json_object_get_string(member(ret, "uri")),
                        "tcp:h:1");
    assert_true(json_object_get_boolean(member(ret, "force")));
    assert_true(json_object_get_int64(member(ret, "count")) ==
                -9007199254740993LL);
    json_object_put(rsp);
    json_object_put(req);
    assert_int_equal(echo_calls, 1);

    /* Optional members absent: outputs keep their defaults. */
    json_object *args = json_tokener_parse("{}");
    bool b = true;
    int64_t i = 7;
    const char *str = "def";
    assert_true(qmp_arg_bool(args, "b", true, &b, NULL));
    assert_true(qmp_arg_int(args, "i", true, &i, NULL));
    assert_true(qmp_arg_str(args, "s", true, &str, NULL));
    assert_true(b);
    assert_int_equal(i, 7);
    assert_string_equal(str, "def");
    json_object_put(args);
}

static void collect_name(const char *name, void *opaque)
{
    (*(int *)opaque)++;
}

static void test_query_commands(void **state)
{
    json_object *req = json_tokener_parse("{\"execute\": "
                                          "\"query-commands\"}");
    json_object *rsp = qmp_dispatch(req);
    json_object *list = member(rsp, "return");
    assert_true(json_object_is_type(list, json_type_array));
    bool seen_echo = false, seen_caps = false, seen_query = false;
    for (size_t i = 0; i < json_object_array_length(list); i++) {
        const char *name = json_object_get_string(
            member(json_object_array_get_idx(list, i), "name"));
        seen_echo |= strcmp(name, "echo") == 0;
        seen_caps |= strcmp(name, "qmp_capabilities") == 0;
        seen_query |= strcmp(name, "query-commands") == 0;
    }
    assert_true(seen_echo && seen_caps && seen_query);
    int n = 0;
    qmp_for_each_command(collect_name, &n);
    assert_int_equal(json_object_array_length(list), n);
    json_object_put(rsp);
    json_object_put(req);

    /* A duplicate registration is refused, the first handler stays. */
    qmp_register_command("echo", cmd_nothing, NULL);
    expect_dispatch_error("{\"execute\": \"echo\"}", "GenericError",
                          "Parameter 'uri' is missing");
    /* Unregistering removes user commands, not the built-ins. */
    qmp_unregister_all();
    expect_dispatch_error("{\"execute\": \"echo\"}", "CommandNotFound",
                          "The command echo has not been found");
    req = json_tokener_parse("{\"execute\": \"query-commands\"}");
    rsp = qmp_dispatch(req);
    assert_int_equal(json_object_array_length(member(rsp, "return")), 3);
    json_object_put(rsp);
    json_object_put(req);
}

static int described_calls;

static bool cmd_described(json_object *args, json_object **ret,
                          void *opaque, Error **errp)
{
    described_calls++;
    return true;
}

static const QmpArgInfo described_args[] = {
    { "uri", "str", false },
    { "count", "int", true },
    { "tags", "[str]", true },
    { NULL, NULL, false },
};

/* Arguments described at registration are checked before the handler. */
static void test_described_args(void **state)
{
    qmp_register_command_args("described", cmd_described, NULL,
                              described_args);
    qmp_register_command_args("plain", cmd_described, NULL, NULL);
    described_calls = 0;
    expect_dispatch_error("{\"execute\": \"described\"}", "GenericError",
                          "Parameter 'uri' is missing");
    expect_dispatch_error("{\"execute\": \"described\", \"arguments\": "
                          "{\"uri\": \"u\", \"colour\": 1}}",
                          "GenericError", "Parameter 'colour' is unexpected");
    expect_dispatch_error("{\"execute\": \"described\", \"arguments\": "
                          "{\"uri\": 5}}", "GenericError",
                          "Invalid parameter type for 'uri', expected: "
                          "string");
    expect_dispatch_error("{\"execute\": \"described\", \"arguments\": "
                          "{\"uri\": \"u\", \"tags\": \"a\"}}",
                          "GenericError",
                          "Invalid parameter type for 'tags', expected: "
                          "array");
    expect_dispatch_error("{\"execute\": \"plain\", \"arguments\": "
                          "{\"x\": 1}}", "GenericError",
                          "Parameter 'x' is unexpected");
    assert_int_equal(described_calls, 0);
    json_object *req = json_tokener_parse(
        "{\"execute\": \"described\", \"arguments\": {\"uri\": \"u\", "
        "\"count\": 3, \"tags\": [\"a\"]}}");
    json_object *rsp = qmp_dispatch(req);
    assert_true(json_object_object_get_ex(rsp, "return", NULL));
    assert_int_equal(described_calls, 1);
    json_object_put(rsp);
    json_object_put(req);
}

static json_object *schema_find(json_object *schema, const char *name)
{
    for (size_t i = 0; i < json_object_array_length(schema); i++) {
        json_object *e = json_object_array_get_idx(schema, i);
        if (strcmp(json_object_get_string(member(e, "name")), name) == 0) {
            return e;
        }
    }
    fail_msg("'%s' not in query-qmp-schema", name);
    return NULL;
}

/* query-qmp-schema: commands, their argument objects, the types used. */
static void test_qmp_schema(void **state)
{
    qmp_register_command_args("described", cmd_described, NULL,
                              described_args);
    json_object *req = json_tokener_parse(
        "{\"execute\": \"query-qmp-schema\"}");
    json_object *rsp = qmp_dispatch(req);
    json_object *schema = member(rsp, "return");
    json_object *cmd = schema_find(schema, "described");
    assert_string_equal(json_object_get_string(member(cmd, "meta-type")),
                        "command");
    assert_string_equal(json_object_get_string(member(cmd, "ret-type")),
                        "any");
    json_object *obj = schema_find(schema, json_object_get_string(
        member(cmd, "arg-type")));
    assert_string_equal(json_object_get_string(member(obj, "meta-type")),
                        "object");
    json_object *members = member(obj, "members");
    assert_int_equal(json_object_array_length(members), 3);
    json_object *uri = json_object_array_get_idx(members, 0);
    json_object *tags = json_object_array_get_idx(members, 2);
    assert_string_equal(json_object_get_string(member(uri, "type")), "str");
    assert_false(json_object_object_get_ex(uri, "default", NULL));
    assert_string_equal(json_object_get_string(member(tags, "type")),
                        "[str]");
    assert_null(member(tags, "default"));
    schema_find(schema, "[str]");
    schema_find(schema, "int");
    /* Undescribed: "any"; no arguments: the empty object. */
    assert_string_equal(json_object_get_string(
        member(schema_find(schema, "echo"), "arg-type")), "any");
    json_object *empty = schema_find(schema, json_object_get_string(
        member(schema_find(schema, "query-commands"), "arg-type")));
    assert_int_equal(json_object_array_length(member(empty, "members")), 0);
    schema_find(schema, "qmp_capabilities");
    schema_find(schema, "query-qmp-schema");
    json_object_put(rsp);
    json_object_put(req);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_negotiation_gate, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_id_echo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_requests, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_argument_errors, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_arguments_read, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_query_commands, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_described_args, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_qmp_schema, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
