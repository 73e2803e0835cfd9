/* Error objects: a message and a class, set once, propagated up. */
#include "util/error.h"
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct Error {
    char *msg;
    ErrorClass cls;
};

static void error_setv(Error **errp, ErrorClass cls, int err,
                       const char *fmt, va_list ap)
{
    if (!errp) {
        return;
    }
    if (*errp) {
        /* Setting twice is a programming error; keep the first message. */
        log_warn("error already set, dropping a second error");
        return;
    }
    Error *e = calloc(1, sizeof(*e));
    char *msg = NULL;
    if (!e || vasprintf(&msg, fmt, ap) < 0) {
        free(e);
        *errp = NULL;
        return;
    }
    if (err) {
        char *full = NULL;
        if (asprintf(&full, "%s: %s", msg, strerror(err)) >= 0) {
            free(msg);
            msg = full;
        }
    }
    e->msg = msg;
    e->cls = cls;
    *errp = e;
}

void error_setg(Error **errp, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_setv(errp, ERROR_CLASS_GENERIC, 0, fmt, ap);
    va_end(ap);
}

void error_set(Error **errp, ErrorClass cls, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_setv(errp, cls, 0, fmt, ap);
    va_end(ap);
}

void error_setg_errno(Error **errp, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_setv(errp, ERROR_CLASS_GENERIC, err < 0 ? -err : err, fmt, ap);
    va_end(ap);
}

void error_prepend(Error **errp, const char *fmt, ...)
{
    if (!errp || !*errp) {
        return;
    }
    va_list ap;
    char *prefix = NULL, *full = NULL;
    va_start(ap, fmt);
    int n = vasprintf(&prefix, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    if (asprintf(&full, "%s%s", prefix, (*errp)->msg) >= 0) {
        free((*errp)->msg);
        (*errp)->msg = full;
    }
    free(prefix);
}

void error_propagate(Error **dst, Error *local)
{
    if (!local) {
        return;
    }
    if (dst && !*dst) {
        *dst = local;
    } else {
        error_free(local);
    }
}

const char *error_get_pretty(const Error *err)
{
    return err ? err->msg : "(no error)";
}

ErrorClass error_get_class(const Error *err)
{
    return err ? err->cls : ERROR_CLASS_GENERIC;
}

const char *error_class_name(ErrorClass cls)
{
    switch (cls) {
    case ERROR_CLASS_COMMAND_NOT_FOUND:
        return "CommandNotFound";
    case ERROR_CLASS_DEVICE_NOT_FOUND:
        return "DeviceNotFound";
    case ERROR_CLASS_GENERIC:
    default:
        return "GenericError";
    }
}

Error *error_copy(const Error *err)
{
    Error *copy = NULL;
    if (err) {
        error_set(&copy, err->cls, "%s", err->msg);
    }
    return copy;
}

void error_free(Error *err)
{
    if (err) {
        free(err->msg);
        free(err);
    }
}

void error_free_or_null(Error **errp)
{
    if (errp && *errp) {
        error_free(*errp);
        *errp = NULL;
    }
}

void error_report_err(Error *err)
{
    if (err) {
        log_error("%s", err->msg);
        error_free(err);
    }
}
