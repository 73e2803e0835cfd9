/*
 * Cutting a client's byte stream into JSON values (json_tokener), with
 * QEMU's error recovery: after a syntax error the bytes up to the next
 * likely start of a request are skipped, so one bad chunk costs one error
 * and the client keeps working (qmp-spec "Forcing the JSON parser into
 * known-good state").
 */
#ifndef STORMIG_MONITOR_QMP_STREAM_H
#define STORMIG_MONITOR_QMP_STREAM_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "util/error.h"

typedef struct QmpStream QmpStream;

/*
 * Called for each complete value (parse_err NULL) or syntax error (value
 * NULL). The value stays owned by the stream. Return false to stop
 * feeding (e.g. the client is going away).
 */
typedef bool QmpStreamFunc(json_object *value, const Error *parse_err,
                           void *opaque);

typedef enum QmpStreamStatus {
    QMP_STREAM_OK,          /* all bytes consumed */
    QMP_STREAM_STOPPED,     /* the callback returned false */
    QMP_STREAM_TOO_BIG,     /* a value grew past max_value_bytes */
} QmpStreamStatus;

/* max_value_bytes bounds the bytes of one not yet complete value. */
QmpStream *qmp_stream_new(size_t max_value_bytes, Error **errp);
void qmp_stream_free(QmpStream *s);

QmpStreamStatus qmp_stream_feed(QmpStream *s, const char *data, size_t len,
                                QmpStreamFunc *fn, void *opaque);

#endif
