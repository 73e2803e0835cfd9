/* Migration addresses: "unix:PATH", "tcp:HOST:PORT", "file:PATH". */
#ifndef STORMIG_MIGRATION_URI_H
#define STORMIG_MIGRATION_URI_H

#include <stdbool.h>

#include "util/error.h"

typedef enum MigUriKind {
    MIG_URI_UNIX,
    MIG_URI_TCP,
    MIG_URI_FILE,
} MigUriKind;

typedef struct MigUri {
    MigUriKind kind;
    char *path;         /* unix, file */
    char *host;         /* tcp ("" or brackets-free IPv6 allowed) */
    char *port;         /* tcp */
} MigUri;

bool mig_uri_parse(const char *uri, MigUri *out, Error **errp);
void mig_uri_free(MigUri *uri);

/* Starts a non-blocking connect; *in_progress says the caller must wait
 * for the socket to become writable and then call mig_socket_finish. */
int mig_socket_connect(const MigUri *uri, bool *in_progress, Error **errp);
/* Reports the outcome of a non-blocking connect. */
bool mig_socket_finish_connect(int fd, Error **errp);
/* A non-blocking listening socket (unix: replaces a stale socket file). */
int mig_socket_listen(const MigUri *uri, Error **errp);

#endif
