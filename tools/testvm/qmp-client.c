/* Blocking QMP client (see qmp-client.h). */
#include "qmp-client.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/loop.h"

#define QMP_TIMEOUT_MS 30000
#define QMP_MAX_LINE (1u << 20)

struct QmpClient {
    int fd;
    char buf[QMP_MAX_LINE];
    size_t len;
};

static int connect_once(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(sa.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        fd = -1;
    }
    return fd;
}

/* Next JSON line, skipping events. */
static json_object *read_msg(QmpClient *q, Error **errp)
{
    for (;;) {
        char *nl = memchr(q->buf, '\n', q->len);
        if (nl) {
            *nl = '\0';
            json_object *o = json_tokener_parse(q->buf);
            size_t used = (size_t)(nl - q->buf) + 1;
            memmove(q->buf, nl + 1, q->len - used);
            q->len -= used;
            if (o && json_object_object_get_ex(o, "event", NULL)) {
                json_object_put(o);
                continue;
            }
            if (!o) {
                error_setg(errp, "monitor sent bad JSON");
            }
            return o;
        }
        struct pollfd p = { .fd = q->fd, .events = POLLIN };
        ssize_t n = poll(&p, 1, QMP_TIMEOUT_MS) == 1
                    ? read(q->fd, q->buf + q->len, sizeof(q->buf) - q->len)
                    : -1;
        if (n <= 0 || q->len + (size_t)n >= sizeof(q->buf)) {
            error_setg(errp, "monitor connection closed or timed out");
            return NULL;
        }
        q->len += (size_t)n;
    }
}

json_object *qmp_client_cmd(QmpClient *q, const char *name,
                            json_object *args, Error **errp)
{
    json_object *req = json_object_new_object();
    json_object_object_add(req, "execute", json_object_new_string(name));
    if (args) {
        json_object_object_add(req, "arguments", args);
    }
    const char *s = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
    size_t len = strlen(s);
    bool sent = send(q->fd, s, len, MSG_NOSIGNAL) == (ssize_t)len &&
                send(q->fd, "\n", 1, MSG_NOSIGNAL) == 1;
    json_object_put(req);
    json_object *rsp = sent ? read_msg(q, errp) : NULL;
    if (!sent) {
        error_setg(errp, "cannot send %s to the monitor", name);
    }
    if (!rsp) {
        return NULL;
    }
    json_object *ret = NULL, *err;
    if (json_object_object_get_ex(rsp, "error", &err)) {
        json_object *desc = NULL;
        json_object_object_get_ex(err, "desc", &desc);
        error_setg(errp, "%s: %s", name, desc ? json_object_get_string(desc)
                                              : "error");
    } else if (json_object_object_get_ex(rsp, "return", &ret)) {
        json_object_get(ret);
    } else {
        error_setg(errp, "%s: reply without return", name);
    }
    json_object_put(rsp);
    return ret;
}

QmpClient *qmp_client_connect(const char *path, int wait_ms, Error **errp)
{
    uint64_t end = clock_ms() + (uint64_t)wait_ms;
    int fd;
    while ((fd = connect_once(path)) < 0 && clock_ms() < end) {
        usleep(20000);
    }
    if (fd < 0) {
        error_setg_errno(errp, errno, "monitor %s", path);
        return NULL;
    }
    QmpClient *q = calloc(1, sizeof(*q));
    q->fd = fd;
    json_object *greeting = read_msg(q, errp);
    json_object *caps = greeting ? qmp_client_cmd(q, "qmp_capabilities",
                                                  NULL, errp) : NULL;
    json_object_put(greeting);
    if (!caps) {
        error_prepend(errp, "monitor %s: ", path);
        qmp_client_free(q);
        return NULL;
    }
    json_object_put(caps);
    return q;
}

void qmp_client_free(QmpClient *q)
{
    if (q) {
        close(q->fd);
        free(q);
    }
}

bool qmp_client_get_str(QmpClient *q, const char *cmd, const char *member,
                        char *buf, size_t len, Error **errp)
{
    json_object *ret = qmp_client_cmd(q, cmd, NULL, errp), *v;
    bool ok = ret && json_object_object_get_ex(ret, member, &v);
    if (ok) {
        snprintf(buf, len, "%s", json_object_get_string(v));
    } else if (ret) {
        error_setg(errp, "%s: no member %s", cmd, member);
    }
    json_object_put(ret);
    return ok;
}
