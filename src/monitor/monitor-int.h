/*
 * Monitor internals shared by its files and its tests: the command table,
 * per-client negotiation state, and response building.
 */
#ifndef STORMIG_MONITOR_MONITOR_INT_H
#define STORMIG_MONITOR_MONITOR_INT_H

#include <stdbool.h>

#include <json-c/json.h>

#include "monitor/monitor.h"
#include "util/error.h"

/* The QMP session state of one client (qmp-spec "Capabilities
 * Negotiation"): commands are refused until qmp_capabilities succeeded. */
typedef struct QmpSession {
    bool negotiated;
} QmpSession;

/* Runs one request for a session; returns the response (caller puts it). */
json_object *qmp_session_dispatch(QmpSession *session, json_object *request);

/* {"error": {"class": ..., "desc": ...}}, plus the "id" of request when
 * it is an object that has one (request may be NULL). */
json_object *qmp_error_response(const Error *err, json_object *request);

/* Looks a registered command up (built-ins excluded). */
bool qmp_find_command(const char *name, QmpCommandFunc **fn, void **opaque);

/* Calls fn for every command name, built-ins first. */
typedef void QmpCommandNameFunc(const char *name, void *opaque);
void qmp_for_each_command(QmpCommandNameFunc *fn, void *opaque);

/* A command's described arguments (built-ins included): true and *args
 * (NULL-name terminated, or NULL for none) when described, false when it
 * was registered without a description or does not exist. */
bool qmp_command_args(const char *name, const QmpArgInfo **args);

/* Checks args against a description: unknown, missing and mistyped
 * members are refused (qmp-args.c). */
bool qmp_args_check_info(json_object *args, const QmpArgInfo *info,
                         Error **errp);

/* The built-in query-qmp-schema handler (qmp-schema.c). */
bool qmp_query_qmp_schema(json_object *args, json_object **ret,
                          void *opaque, Error **errp);

/* The built-in query-commands handler. */
bool qmp_query_commands(json_object *args, json_object **ret, void *opaque,
                        Error **errp);

#endif
