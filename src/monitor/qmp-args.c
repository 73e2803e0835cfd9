/*
 * Reading a command's "arguments" object. Messages follow QEMU's wording
 * so that clients matching on them keep working.
 */
#include "monitor/monitor-int.h"

#include <stdint.h>
#include <string.h>

static void arg_type_error(const char *name, const char *expected,
                           Error **errp)
{
    error_setg(errp, "Invalid parameter type for '%s', expected: %s",
               name, expected);
}

/*
 * Finds member name. Returns false (with *member NULL) only on error;
 * returns true with *member NULL when it is absent and optional. A member
 * present as null is not absent: json-c hands it over as NULL, and QEMU
 * calls it a type error.
 */
static bool arg_lookup(json_object *args, const char *name, bool optional,
                       const char *expected, json_object **member,
                       Error **errp)
{
    bool present = false;
    *member = NULL;
    if (args && json_object_is_type(args, json_type_object)) {
        present = json_object_object_get_ex(args, name, member);
    }
    if (present && !*member) {
        arg_type_error(name, expected, errp);
        return false;
    }
    if (!*member && !optional) {
        error_setg(errp, "Parameter '%s' is missing", name);
        return false;
    }
    return true;
}

bool qmp_arg_str(json_object *args, const char *name, bool optional,
                 const char **out, Error **errp)
{
    json_object *v;
    if (!arg_lookup(args, name, optional, "string", &v, errp)) {
        return false;
    }
    if (!v) {
        return true;
    }
    if (!json_object_is_type(v, json_type_string)) {
        arg_type_error(name, "string", errp);
        return false;
    }
    const char *s = json_object_get_string(v);
    /* JSON allows "\u0000"; a C string would silently end there. */
    if (strlen(s) != (size_t)json_object_get_string_len(v)) {
        error_setg(errp, "Parameter '%s' must not contain a NUL character",
                   name);
        return false;
    }
    *out = s;
    return true;
}

bool qmp_arg_bool(json_object *args, const char *name, bool optional,
                  bool *out, Error **errp)
{
    json_object *v;
    if (!arg_lookup(args, name, optional, "boolean", &v, errp)) {
        return false;
    }
    if (!v) {
        return true;
    }
    if (!json_object_is_type(v, json_type_boolean)) {
        arg_type_error(name, "boolean", errp);
        return false;
    }
    *out = json_object_get_boolean(v);
    return true;
}

bool qmp_arg_int(json_object *args, const char *name, bool optional,
                 int64_t *out, Error **errp)
{
    json_object *v;
    if (!arg_lookup(args, name, optional, "integer", &v, errp)) {
        return false;
    }
    if (!v) {
        return true;
    }
    if (!json_object_is_type(v, json_type_int)) {
        arg_type_error(name, "integer", errp);
        return false;
    }
    /* json-c keeps values above INT64_MAX as unsigned and clamps them
     * when read as int64: refuse rather than hand out a wrong number. */
    int64_t i = json_object_get_int64(v);
    if (i == INT64_MAX && json_object_get_uint64(v) > (uint64_t)INT64_MAX) {
        error_setg(errp, "Parameter '%s' is out of range", name);
        return false;
    }
    *out = i;
    return true;
}

bool qmp_args_check(json_object *args, const char *const *known,
                    Error **errp)
{
    if (!args) {
        return true;
    }
    if (!json_object_is_type(args, json_type_object)) {
        error_setg(errp, "QMP input member 'arguments' must be an object");
        return false;
    }
    json_object_object_foreach(args, key, val) {
        (void)val;
        bool found = false;
        for (size_t i = 0; known && known[i]; i++) {
            if (strcmp(known[i], key) == 0) {
                found = true;
                break;
            }
        }
        if (!found) {
            error_setg(errp, "Parameter '%s' is unexpected", key);
            return false;
        }
    }
    return true;
}

/* The JSON type a QAPI built-in type name stands for ("any": every one). */
static bool arg_type_matches(json_object *v, const char *type,
                             const char **expected)
{
    static const struct {
        const char *name, *expected;
        json_type json;
    } types[] = {
        { "str", "string", json_type_string },
        { "bool", "boolean", json_type_boolean },
        { "int", "integer", json_type_int },
        { "[str]", "array", json_type_array },
    };
    if (strcmp(type, "any") == 0) {
        return true;
    }
    if (strcmp(type, "number") == 0) {
        *expected = "number";
        return json_object_is_type(v, json_type_double) ||
               json_object_is_type(v, json_type_int);
    }
    for (size_t i = 0; i < sizeof(types) / sizeof(*types); i++) {
        if (strcmp(types[i].name, type) == 0) {
            *expected = types[i].expected;
            return json_object_is_type(v, types[i].json);
        }
    }
    *expected = type;
    return false;
}

bool qmp_args_check_info(json_object *args, const QmpArgInfo *info,
                         Error **errp)
{
    if (args && !json_object_is_type(args, json_type_object)) {
        error_setg(errp, "QMP input member 'arguments' must be an object");
        return false;
    }
    if (args) {
        json_object_object_foreach(args, key, val) {
            const QmpArgInfo *a = info;
            while (a && a->name && strcmp(a->name, key) != 0) {
                a++;
            }
            const char *expected;
            if (!a || !a->name) {
                error_setg(errp, "Parameter '%s' is unexpected", key);
                return false;
            }
            if (!arg_type_matches(val, a->type, &expected)) {
                arg_type_error(key, expected, errp);
                return false;
            }
        }
    }
    for (const QmpArgInfo *a = info; a && a->name; a++) {
        json_object *v = NULL;
        if (!a->optional &&
            !(args && json_object_object_get_ex(args, a->name, &v))) {
            error_setg(errp, "Parameter '%s' is missing", a->name);
            return false;
        }
    }
    return true;
}
