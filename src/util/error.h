/*
 * Error reporting for internal calls.
 *
 * Rules (the same as QEMU's qapi/error.h):
 *  - a function that can fail takes "Error **errp" as its last argument and
 *    returns bool (true on success) or a pointer (NULL on failure);
 *  - on failure it sets *errp exactly once; on success it leaves it alone;
 *  - errp may be NULL (caller does not care) or error_abort is not offered:
 *    input from a guest or a peer must never abort the daemon.
 */
#ifndef STORMIG_UTIL_ERROR_H
#define STORMIG_UTIL_ERROR_H

#include <stdbool.h>

/* Error classes, named as QMP names them on the wire. */
typedef enum ErrorClass {
    ERROR_CLASS_GENERIC,            /* "GenericError" */
    ERROR_CLASS_COMMAND_NOT_FOUND,  /* "CommandNotFound" */
    ERROR_CLASS_DEVICE_NOT_FOUND,   /* "DeviceNotFound" */
} ErrorClass;

typedef struct Error Error;

void error_setg(Error **errp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void error_set(Error **errp, ErrorClass cls, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Appends ": strerror(err)" to the message. err is a positive errno. */
void error_setg_errno(Error **errp, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prefixes the message of an already set error: "prefix<old message>". */
void error_prepend(Error **errp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Moves local into *dst (or frees it when dst is NULL or already set). */
void error_propagate(Error **dst, Error *local);

const char *error_get_pretty(const Error *err);
ErrorClass error_get_class(const Error *err);
const char *error_class_name(ErrorClass cls);
Error *error_copy(const Error *err);
void error_free(Error *err);
/* Frees *errp and sets it to NULL. */
void error_free_or_null(Error **errp);
/* Logs the message at error level and frees err. */
void error_report_err(Error *err);

#endif
