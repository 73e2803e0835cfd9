/*
 * query-qmp-schema: the commands and their arguments in QEMU's SchemaInfo
 * shape (qapi/introspect.json), derived from the command registry, so
 * that QMP clients that introspect QEMU can discover stormigd's commands.
 *
 * Each command is {"name", "meta-type": "command", "arg-type",
 * "ret-type"}. Its arguments are an object type "q_obj_NAME-arg" with
 * members {"name", "type"} ("default": null when optional, as QEMU marks
 * them); a command without arguments uses the shared empty object "q_empty".
 * Types referenced are listed as "builtin" (and "[str]" as an "array").
 * Return types are not described: every ret-type is "any". Events are not
 * listed. A command registered without an argument description shows
 * arg-type "any".
 */
#include "monitor/monitor-int.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name, *json_type;
} builtins[] = {
    { "str", "string" },
    { "bool", "boolean" },
    { "int", "int" },
    { "number", "number" },
    { "any", "value" },
};

static json_object *schema_entry(const char *name, const char *meta_type)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "name", json_object_new_string(name));
    json_object_object_add(o, "meta-type",
                           json_object_new_string(meta_type));
    return o;
}

static json_object *arg_object(const char *type_name,
                               const QmpArgInfo *args)
{
    json_object *o = schema_entry(type_name, "object");
    json_object *members = json_object_new_array();
    for (const QmpArgInfo *a = args; a && a->name; a++) {
        json_object *m = json_object_new_object();
        json_object_object_add(m, "name", json_object_new_string(a->name));
        json_object_object_add(m, "type", json_object_new_string(a->type));
        if (a->optional) {
            json_object_object_add(m, "default", NULL);
        }
        json_object_array_add(members, m);
    }
    json_object_object_add(o, "members", members);
    return o;
}

static void add_command(const char *name, void *opaque)
{
    json_object *schema = opaque;
    const QmpArgInfo *args = NULL;
    bool described = qmp_command_args(name, &args);
    const char *arg_type = "any";
    char obj_name[256];
    if (described && args && args->name) {
        snprintf(obj_name, sizeof(obj_name), "q_obj_%s-arg", name);
        json_object_array_add(schema, arg_object(obj_name, args));
        arg_type = obj_name;
    } else if (described) {
        arg_type = "q_empty";
    }
    json_object *cmd = schema_entry(name, "command");
    json_object_object_add(cmd, "arg-type",
                           json_object_new_string(arg_type));
    json_object_object_add(cmd, "ret-type", json_object_new_string("any"));
    json_object_array_add(schema, cmd);
}

bool qmp_query_qmp_schema(json_object *args, json_object **ret,
                          void *opaque, Error **errp)
{
    if (!qmp_args_check_info(args, NULL, errp)) {
        return false;
    }
    json_object *schema = json_object_new_array();
    qmp_for_each_command(add_command, schema);
    json_object_array_add(schema, arg_object("q_empty", NULL));
    for (size_t i = 0; i < sizeof(builtins) / sizeof(*builtins); i++) {
        json_object *b = schema_entry(builtins[i].name, "builtin");
        json_object_object_add(b, "json-type",
                               json_object_new_string(builtins[i].json_type));
        json_object_array_add(schema, b);
    }
    json_object *list = schema_entry("[str]", "array");
    json_object_object_add(list, "element-type",
                           json_object_new_string("str"));
    json_object_array_add(schema, list);
    *ret = schema;
    return true;
}
