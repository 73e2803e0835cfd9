/* A blocking QMP client for the stormigd monitors (json-c). */
#ifndef STORMIG_TESTVM_QMP_CLIENT_H
#define STORMIG_TESTVM_QMP_CLIENT_H

#include <json-c/json.h>

#include "util/error.h"

typedef struct QmpClient QmpClient;

/* Connects and negotiates capabilities; retries for up to wait_ms. */
QmpClient *qmp_client_connect(const char *path, int wait_ms, Error **errp);
void qmp_client_free(QmpClient *q);
/* Runs a command (args may be NULL, taken); returns its "return" value
 * (caller puts it) or NULL with the monitor's error in errp. */
json_object *qmp_client_cmd(QmpClient *q, const char *name,
                            json_object *args, Error **errp);
/* A command that returns an object with a string member: its value
 * copied into buf. */
bool qmp_client_get_str(QmpClient *q, const char *cmd, const char *member,
                        char *buf, size_t len, Error **errp);

#endif
