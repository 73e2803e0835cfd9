/* Migration addresses and the sockets behind them. */
#include "migration/uri.h"

#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static bool parse_tcp(const char *rest, MigUri *out, Error **errp)
{
    const char *colon = strrchr(rest, ':');
    if (!colon || colon[1] == '\0') {
        error_setg(errp, "tcp migration address needs HOST:PORT");
        return false;
    }
    const char *host = rest;
    size_t host_len = (size_t)(colon - rest);
    if (host_len >= 2 && host[0] == '[' && host[host_len - 1] == ']') {
        host++;
        host_len -= 2;
    }
    unsigned long port = 0;
    for (const char *p = colon + 1; *p; p++) {
        if (*p < '0' || *p > '9') {
            error_setg(errp, "bad tcp port '%s'", colon + 1);
            return false;
        }
        port = port * 10 + (unsigned long)(*p - '0');
        if (port > 65535) {
            /* getaddrinfo() would take it modulo 65536. */
            error_setg(errp, "tcp port '%s' is out of range (0 to 65535)",
                       colon + 1);
            return false;
        }
    }
    out->host = strndup(host, host_len);
    out->port = strdup(colon + 1);
    return out->host && out->port;
}

bool mig_uri_parse(const char *uri, MigUri *out, Error **errp)
{
    memset(out, 0, sizeof(*out));
    bool ok = false;
    if (strncmp(uri, "unix:", 5) == 0 && uri[5]) {
        out->kind = MIG_URI_UNIX;
        out->path = strdup(uri + 5);
        ok = out->path != NULL;
        if (ok && strlen(out->path) >= sizeof(((struct sockaddr_un *)0)
                                                  ->sun_path)) {
            error_setg(errp, "unix socket path too long: %s", out->path);
            mig_uri_free(out);
            return false;
        }
    } else if (strncmp(uri, "file:", 5) == 0 && uri[5]) {
        out->kind = MIG_URI_FILE;
        out->path = strdup(uri + 5);
        ok = out->path != NULL;
    } else if (strncmp(uri, "tcp:", 4) == 0) {
        out->kind = MIG_URI_TCP;
        if (!parse_tcp(uri + 4, out, errp)) {
            mig_uri_free(out);
            return false;
        }
        ok = true;
    } else {
        error_setg(errp, "unsupported migration address '%s' (use unix:PATH, "
                   "tcp:HOST:PORT or file:PATH)", uri);
        return false;
    }
    if (!ok) {
        error_setg(errp, "out of memory");
        mig_uri_free(out);
    }
    return ok;
}

void mig_uri_free(MigUri *uri)
{
    free(uri->path);
    free(uri->host);
    free(uri->port);
    memset(uri, 0, sizeof(*uri));
}

static int connect_unix(const char *path, bool *in_progress, Error **errp)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    strncpy(sa.sun_path, path, sizeof(sa.sun_path) - 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        error_setg_errno(errp, errno, "cannot create socket");
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        if (errno == EINPROGRESS || errno == EAGAIN) {
            *in_progress = true;
            return fd;
        }
        error_setg_errno(errp, errno, "cannot connect to unix:%s", path);
        close(fd);
        return -1;
    }
    return fd;
}

static struct addrinfo *resolve(const MigUri *uri, bool passive, Error **errp)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC,
        .ai_socktype = SOCK_STREAM,
        .ai_flags = passive ? AI_PASSIVE : 0,
    };
    struct addrinfo *res = NULL;
    const char *host = uri->host[0] ? uri->host : NULL;
    int rc = getaddrinfo(host, uri->port, &hints, &res);
    if (rc != 0) {
        error_setg(errp, "cannot resolve %s:%s: %s", uri->host, uri->port,
                   gai_strerror(rc));
        return NULL;
    }
    return res;
}

static int connect_tcp(const MigUri *uri, bool *in_progress, Error **errp)
{
    struct addrinfo *res = resolve(uri, false, errp);
    if (!res) {
        return -1;
    }
    int err = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family,
                        ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
        err = rc < 0 ? errno : 0;
        if (rc == 0 || err == EINPROGRESS) {
            *in_progress = rc < 0;
            freeaddrinfo(res);
            return fd;
        }
        close(fd);
    }
    freeaddrinfo(res);
    error_setg_errno(errp, err ? err : ECONNREFUSED,
                     "cannot connect to tcp:%s:%s", uri->host, uri->port);
    return -1;
}

int mig_socket_connect(const MigUri *uri, bool *in_progress, Error **errp)
{
    *in_progress = false;
    switch (uri->kind) {
    case MIG_URI_UNIX:
        return connect_unix(uri->path, in_progress, errp);
    case MIG_URI_TCP:
        return connect_tcp(uri, in_progress, errp);
    default:
        error_setg(errp, "not a socket address");
        return -1;
    }
}

bool mig_socket_finish_connect(int fd, Error **errp)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) {
        err = errno;
    }
    if (err) {
        error_setg_errno(errp, err, "cannot connect to the destination");
        return false;
    }
    return true;
}

static int listen_unix(const char *path, Error **errp)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    strncpy(sa.sun_path, path, sizeof(sa.sun_path) - 1);
    struct stat st;
    /* Only ever remove a stale socket, never some other file. */
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        unlink(path);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(fd, 1) < 0) {
        error_setg_errno(errp, errno, "cannot listen on unix:%s", path);
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    return fd;
}

static int listen_tcp(const MigUri *uri, Error **errp)
{
    struct addrinfo *res = resolve(uri, true, errp);
    if (!res) {
        return -1;
    }
    int err = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family,
                        ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        int one = 1;
        if (fd < 0) {
            err = errno;
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 1) == 0) {
            freeaddrinfo(res);
            return fd;
        }
        err = errno;
        close(fd);
    }
    freeaddrinfo(res);
    error_setg_errno(errp, err ? err : EADDRNOTAVAIL,
                     "cannot listen on tcp:%s:%s", uri->host, uri->port);
    return -1;
}

int mig_socket_listen(const MigUri *uri, Error **errp)
{
    switch (uri->kind) {
    case MIG_URI_UNIX:
        return listen_unix(uri->path, errp);
    case MIG_URI_TCP:
        return listen_tcp(uri, errp);
    default:
        error_setg(errp, "not a socket address");
        return -1;
    }
}
