/*
 * Request validation and dispatch (qmp-spec "Issuing Commands" and
 * "Commands Responses"), and the negotiation gate of qmp-spec
 * "Capabilities Negotiation".
 */
#include "monitor/monitor-int.h"
#include "util/log.h"

#include <string.h>

/* Copies the request's "id" (any JSON value, null included) to rsp. */
static void add_id(json_object *rsp, json_object *request)
{
    json_object *id = NULL;
    if (request && json_object_is_type(request, json_type_object) &&
        json_object_object_get_ex(request, "id", &id)) {
        json_object_object_add(rsp, "id", json_object_get(id));
    }
}

json_object *qmp_error_response(const Error *err, json_object *request)
{
    json_object *body = json_object_new_object();
    json_object_object_add(body, "class", json_object_new_string(
        error_class_name(error_get_class(err))));
    json_object_object_add(body, "desc",
                           json_object_new_string(error_get_pretty(err)));
    json_object *rsp = json_object_new_object();
    json_object_object_add(rsp, "error", body);
    add_id(rsp, request);
    return rsp;
}

/*
 * A request is an object with a string "execute", an optional object
 * "arguments" and an optional "id" of any type; nothing else. On success
 * sets *name and *args (args NULL when absent).
 */
static bool check_request(json_object *req, const char **name,
                          json_object **args, Error **errp)
{
    if (!json_object_is_type(req, json_type_object)) {
        error_setg(errp, "QMP input must be a JSON object");
        return false;
    }
    json_object *exec = NULL;
    *args = NULL;
    json_object_object_foreach(req, key, val) {
        if (strcmp(key, "execute") == 0) {
            if (!json_object_is_type(val, json_type_string)) {
                error_setg(errp, "QMP input member 'execute' must be a "
                           "string");
                return false;
            }
            exec = val;
        } else if (strcmp(key, "arguments") == 0) {
            if (!json_object_is_type(val, json_type_object)) {
                error_setg(errp, "QMP input member 'arguments' must be an "
                           "object");
                return false;
            }
            *args = val;
        } else if (strcmp(key, "id") != 0) {
            error_setg(errp, "QMP input member '%s' is unexpected", key);
            return false;
        }
    }
    if (!exec) {
        error_setg(errp, "QMP input lacks member 'execute'");
        return false;
    }
    *name = json_object_get_string(exec);
    /* "\u0000" is valid JSON but would cut the name short in C. */
    if (strlen(*name) != (size_t)json_object_get_string_len(exec)) {
        error_setg(errp, "QMP input member 'execute' must not contain a "
                   "NUL character");
        return false;
    }
    return true;
}

/*
 * qmp_capabilities: accepts an optional "enable" list of capabilities.
 * The greeting offers none, so any entry is refused.
 */
static bool qmp_capabilities(QmpSession *session, json_object *args,
                             Error **errp)
{
    static const char *const known[] = { "enable", NULL };
    if (session->negotiated) {
        error_set(errp, ERROR_CLASS_COMMAND_NOT_FOUND,
                  "Capabilities negotiation is already complete, command "
                  "ignored");
        return false;
    }
    if (!qmp_args_check(args, known, errp)) {
        return false;
    }
    json_object *enable = NULL;
    if (args && json_object_object_get_ex(args, "enable", &enable)) {
        if (!json_object_is_type(enable, json_type_array)) {
            error_setg(errp, "Invalid parameter type for 'enable', "
                       "expected: array");
            return false;
        }
        if (json_object_array_length(enable) > 0) {
            json_object *cap = json_object_array_get_idx(enable, 0);
            error_setg(errp, "Capability '%s' not available",
                       json_object_is_type(cap, json_type_string)
                       ? json_object_get_string(cap) : "?");
            return false;
        }
    }
    session->negotiated = true;
    return true;
}

static bool run_command(QmpSession *session, const char *name,
                        json_object *args, json_object **ret, Error **errp)
{
    QmpCommandFunc *fn;
    void *opaque;
    if (strcmp(name, "qmp_capabilities") == 0) {
        return qmp_capabilities(session, args, errp);
    }
    if (!session->negotiated) {
        error_set(errp, ERROR_CLASS_COMMAND_NOT_FOUND,
                  "Expecting capabilities negotiation with "
                  "'qmp_capabilities'");
        return false;
    }
    if (strcmp(name, "query-commands") == 0) {
        fn = qmp_query_commands;
        opaque = NULL;
    } else if (strcmp(name, "query-qmp-schema") == 0) {
        fn = qmp_query_qmp_schema;
        opaque = NULL;
    } else if (!qmp_find_command(name, &fn, &opaque)) {
        error_set(errp, ERROR_CLASS_COMMAND_NOT_FOUND,
                  "The command %s has not been found", name);
        return false;
    }
    const QmpArgInfo *info;
    if (qmp_command_args(name, &info) &&
        !qmp_args_check_info(args, info, errp)) {
        return false;
    }
    json_object *empty = NULL;
    if (!args) {
        args = empty = json_object_new_object();
    }
    Error *local = NULL;
    bool ok = fn(args, ret, opaque, &local);
    json_object_put(empty);
    if (ok && local) {
        log_warn("QMP command %s succeeded but set an error: %s", name,
                 error_get_pretty(local));
        error_free(local);
    } else if (!ok && !local) {
        /* A handler that forgot its error must still get an answer out. */
        error_setg(&local, "Command %s failed", name);
    }
    error_propagate(errp, local);
    return ok;
}

json_object *qmp_session_dispatch(QmpSession *session, json_object *request)
{
    Error *err = NULL;
    const char *name = NULL;
    json_object *args = NULL;
    json_object *ret = NULL;

    if (!check_request(request, &name, &args, &err) ||
        !run_command(session, name, args, &ret, &err)) {
        json_object_put(ret);   /* a failing handler may have set it */
        /* The id is echoed even when the rest of the request is bad. */
        json_object *rsp = qmp_error_response(err, request);
        error_free(err);
        return rsp;
    }
    json_object *rsp = json_object_new_object();
    json_object_object_add(rsp, "return",
                           ret ? ret : json_object_new_object());
    add_id(rsp, request);
    return rsp;
}

json_object *qmp_dispatch(json_object *request)
{
    QmpSession session = { .negotiated = true };
    return qmp_session_dispatch(&session, request);
}
