/*
 * --config FILE: the command line's options, one per line, so that a
 * service manager can start one daemon per VM from /etc/stormig/NAME.conf.
 *
 *   # comment (whole lines only: a value may contain '#')
 *   --device vhost-user-scsi,id=scsi0,socket=/run/stormig/vm1/scsi0.sock
 *   blockdev driver=file,node-name=disk0,filename=/srv/vm1.img
 *   log-level=info
 *
 * The leading "--" is optional; the value is the rest of the line after
 * blanks or '=' (trailing blanks dropped), taken as is: no quoting, so a
 * path may contain spaces. Every error names FILE:LINE.
 */
#include "daemon/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Strings handed to the daemon's options live until daemon_config_free. */
static char **kept;
static size_t n_kept;

static const char *keep(char *s)
{
    char **grown = realloc(kept, (n_kept + 1) * sizeof(*kept));
    if (!grown) {
        free(s);
        return NULL;
    }
    kept = grown;
    kept[n_kept++] = s;
    return s;
}

void daemon_config_free(void)
{
    for (size_t i = 0; i < n_kept; i++) {
        free(kept[i]);
    }
    free(kept);
    kept = NULL;
    n_kept = 0;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static const struct option *find_option(const struct option *options,
                                        const char *name)
{
    for (const struct option *o = options; o->name; o++) {
        if (strcmp(o->name, name) == 0) {
            return o;
        }
    }
    return NULL;
}

/* line is modified in place; where is "FILE:LINE". */
static bool config_line(char *line, const char *where,
                        const struct option *options, ConfigApplyFunc *apply,
                        void *opaque, Error **errp)
{
    char *p = line;
    while (is_blank(*p)) {
        p++;
    }
    if (!*p || *p == '#') {
        return true;
    }
    if (p[0] == '-' && p[1] == '-') {
        p += 2;
    }
    char *name = p;
    while (*p && !is_blank(*p) && *p != '=') {
        p++;
    }
    char *value = p;
    if (*p) {
        *p = '\0';
        value = p + 1;
        while (is_blank(*value)) {
            value++;
        }
    }
    size_t len = strlen(value);
    while (len && is_blank(value[len - 1])) {
        value[--len] = '\0';
    }
    const struct option *opt = find_option(options, name);
    /* Options without a value (--help, --version) and --config itself
     * (no nesting: one file says everything) make no sense here. */
    if (!opt || opt->has_arg != required_argument ||
        strcmp(name, "config") == 0) {
        error_setg(errp, "%s: unknown option '%s' in a config file", where,
                   name);
        return false;
    }
    if (!*value) {
        error_setg(errp, "%s: option '%s' needs a value", where, name);
        return false;
    }
    char *where_copy = strdup(where), *value_copy = strdup(value);
    if (!where_copy || !value_copy || !keep(value_copy) ||
        !keep(where_copy)) {
        error_setg(errp, "%s: out of memory", where);
        return false;
    }
    if (!apply(opt, value_copy, where_copy, opaque)) {
        error_setg(errp, "%s: --%s %s: refused", where, name, value);
        return false;
    }
    return true;
}

bool daemon_config_read(const char *path, const struct option *options,
                        ConfigApplyFunc *apply, void *opaque, Error **errp)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        error_setg_errno(errp, errno, "--config %s", path);
        return false;
    }
    char *line = NULL;
    size_t cap = 0;
    unsigned lineno = 0;
    bool ok = true;
    ssize_t n;
    while (ok && (n = getline(&line, &cap, f)) >= 0) {
        char where[4096 + 16];
        snprintf(where, sizeof(where), "%s:%u", path, ++lineno);
        if (strlen(line) != (size_t)n) {
            error_setg(errp, "%s: NUL character in the line", where);
            ok = false;
            break;
        }
        ok = config_line(line, where, options, apply, opaque, errp);
    }
    if (ok && ferror(f)) {
        error_setg_errno(errp, errno, "--config %s: read error", path);
        ok = false;
    }
    free(line);
    fclose(f);
    return ok;
}
