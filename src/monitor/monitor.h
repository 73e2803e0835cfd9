/*
 * A QMP-compatible JSON monitor.
 *
 * Clients connect to a listening socket, get the greeting, must send
 * qmp_capabilities, then issue commands; events go to every client that
 * finished negotiation. Malformed JSON, unknown commands and bad arguments
 * get QMP errors; nothing a client sends can stop the daemon (only the
 * 'quit' command does, through its handler).
 *
 * All of it runs on the main loop thread. Code on another thread that
 * wants to emit an event posts to the main loop first (loop_post).
 */
#ifndef STORMIG_MONITOR_MONITOR_H
#define STORMIG_MONITOR_MONITOR_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "util/error.h"
#include "util/loop.h"

typedef struct Monitor Monitor;

/*
 * args is the command's "arguments" object (an empty object when absent).
 * On success return true and set *ret to the return value (left NULL it
 * becomes {}). On failure return false and set errp; the error class
 * becomes the QMP error class.
 */
typedef bool QmpCommandFunc(json_object *args, json_object **ret,
                            void *opaque, Error **errp);

/*
 * One argument of a command, as query-qmp-schema shows it. type is a QAPI
 * built-in type name: "str", "bool", "int", "number", "any", or "[str]"
 * (a list of strings).
 */
typedef struct QmpArgInfo {
    const char *name;
    const char *type;
    bool optional;
} QmpArgInfo;

/* Registers a command for every monitor. Names are unique. Its arguments
 * are not described: query-qmp-schema shows its arg-type as "any". */
void qmp_register_command(const char *name, QmpCommandFunc *fn,
                          void *opaque);
/*
 * The same, with the arguments described (terminated by a NULL name; NULL
 * or an empty list: none). The dispatcher then refuses, before fn runs,
 * an unknown argument, a missing mandatory one and one of the wrong JSON
 * type, with QEMU's messages; query-qmp-schema lists them.
 */
void qmp_register_command_args(const char *name, QmpCommandFunc *fn,
                               void *opaque, const QmpArgInfo *args);
void qmp_unregister_all(void);

/* Listens on "unix:PATH" (several clients at once). */
Monitor *monitor_open(EventLoop *loop, const char *uri, Error **errp);
void monitor_close(Monitor *mon);

/*
 * Runs one request (a parsed JSON value) as a connected, negotiated client
 * would, and returns the response object (caller puts it). For tests and
 * for in-process callers.
 */
json_object *qmp_dispatch(json_object *request);

/* Sends {"event": name, "data": data, "timestamp": {...}} to every
 * negotiated client of every monitor. Takes the reference to data (may be
 * NULL). */
void qmp_event_emit(const char *name, json_object *data);

/* Argument helpers: fail with a QMP-style message when the member is
 * missing (unless optional) or of the wrong type. */
bool qmp_arg_str(json_object *args, const char *name, bool optional,
                 const char **out, Error **errp);
bool qmp_arg_bool(json_object *args, const char *name, bool optional,
                  bool *out, Error **errp);
bool qmp_arg_int(json_object *args, const char *name, bool optional,
                 int64_t *out, Error **errp);
/* Fails when args has a member not in the NULL-terminated list. */
bool qmp_args_check(json_object *args, const char *const *known,
                    Error **errp);

#endif
