/*
 * The command table shared by every monitor, and the built-in
 * query-commands. qmp_capabilities is built in too but lives with the
 * dispatcher, because it changes the session state.
 */
#include "monitor/monitor-int.h"
#include "util/log.h"

#include <stdlib.h>
#include <string.h>

typedef struct QmpCommand {
    char *name;
    QmpCommandFunc *fn;
    void *opaque;
    bool described;
    const QmpArgInfo *args;
} QmpCommand;

static QmpCommand *commands;
static size_t n_commands;

static const char *const builtin_names[] = {
    "qmp_capabilities",
    "query-commands",
    "query-qmp-schema",
};

static const QmpArgInfo capabilities_args[] = {
    { "enable", "[str]", true },
    { NULL, NULL, false },
};

static bool is_builtin(const char *name)
{
    for (size_t i = 0; i < sizeof(builtin_names) / sizeof(*builtin_names);
         i++) {
        if (strcmp(builtin_names[i], name) == 0) {
            return true;
        }
    }
    return false;
}

static void register_command(const char *name, QmpCommandFunc *fn,
                             void *opaque, bool described,
                             const QmpArgInfo *args);

void qmp_register_command(const char *name, QmpCommandFunc *fn,
                          void *opaque)
{
    register_command(name, fn, opaque, false, NULL);
}

void qmp_register_command_args(const char *name, QmpCommandFunc *fn,
                               void *opaque, const QmpArgInfo *args)
{
    register_command(name, fn, opaque, true, args);
}

static void register_command(const char *name, QmpCommandFunc *fn,
                             void *opaque, bool described,
                             const QmpArgInfo *args)
{
    QmpCommandFunc *old_fn;
    void *old_opaque;
    /* Registration is program code, never client input: a clash is a bug
     * worth a loud line, but not worth stopping the daemon for. */
    if (!name || !fn || is_builtin(name) ||
        qmp_find_command(name, &old_fn, &old_opaque)) {
        log_error("QMP command '%s' not registered: invalid or duplicate",
                  name ? name : "(null)");
        return;
    }
    QmpCommand *grown = realloc(commands,
                                (n_commands + 1) * sizeof(*commands));
    char *copy = strdup(name);
    if (!grown || !copy) {
        free(copy);
        commands = grown ? grown : commands;
        log_error("QMP command '%s' not registered: out of memory", name);
        return;
    }
    commands = grown;
    commands[n_commands++] = (QmpCommand) { copy, fn, opaque, described,
                                            args };
}

void qmp_unregister_all(void)
{
    for (size_t i = 0; i < n_commands; i++) {
        free(commands[i].name);
    }
    free(commands);
    commands = NULL;
    n_commands = 0;
}

bool qmp_find_command(const char *name, QmpCommandFunc **fn, void **opaque)
{
    for (size_t i = 0; i < n_commands; i++) {
        if (strcmp(commands[i].name, name) == 0) {
            *fn = commands[i].fn;
            *opaque = commands[i].opaque;
            return true;
        }
    }
    return false;
}

bool qmp_command_args(const char *name, const QmpArgInfo **args)
{
    if (is_builtin(name)) {
        *args = strcmp(name, "qmp_capabilities") == 0 ? capabilities_args
                                                      : NULL;
        return true;
    }
    for (size_t i = 0; i < n_commands; i++) {
        if (strcmp(commands[i].name, name) == 0) {
            *args = commands[i].args;
            return commands[i].described;
        }
    }
    return false;
}

void qmp_for_each_command(QmpCommandNameFunc *fn, void *opaque)
{
    for (size_t i = 0; i < sizeof(builtin_names) / sizeof(*builtin_names);
         i++) {
        fn(builtin_names[i], opaque);
    }
    for (size_t i = 0; i < n_commands; i++) {
        fn(commands[i].name, opaque);
    }
}

static void add_command_info(const char *name, void *opaque)
{
    json_object *info = json_object_new_object();
    json_object_object_add(info, "name", json_object_new_string(name));
    json_object_array_add(opaque, info);
}

/* Returns [{"name": ...}, ...] as QEMU's query-commands does. */
bool qmp_query_commands(json_object *args, json_object **ret, void *opaque,
                        Error **errp)
{
    static const char *const known[] = { NULL };
    if (!qmp_args_check(args, known, errp)) {
        return false;
    }
    json_object *list = json_object_new_array();
    qmp_for_each_command(add_command_info, list);
    *ret = list;
    return true;
}
