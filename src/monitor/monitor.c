/*
 * The QMP server: a listening unix socket, its clients, their buffered
 * output, the greeting and events. Everything runs on the loop thread.
 */
#include "monitor/monitor-int.h"
#include "monitor/qmp-stream.h"
#include "util/bytes.h"
#include "util/keyval.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* A request bigger than this is not a request: drop the client. */
#define MONITOR_MAX_VALUE_BYTES (1u << 20)
/* Output a client leaves unread beyond this gets it dropped. */
#define MONITOR_MAX_BACKLOG (4u << 20)
#define MONITOR_MAX_CLIENTS 64
/* Seconds a new client has to complete qmp_capabilities: clients that
 * never negotiate must not hold the slots an operator needs. */
#define MONITOR_NEGOTIATION_TIMEOUT_DEFAULT 30
#define MONITOR_NEGOTIATION_TIMEOUT_MAX 86400
#define MONITOR_READ_CHUNK 65536

typedef struct MonitorClient {
    Monitor *mon;           /* NULL once detached from its monitor */
    EventLoop *loop;
    int fd;
    unsigned id;
    QmpSession session;
    QmpStream *stream;
    ByteBuf out;
    size_t out_sent;        /* bytes of out already written */
    int busy;               /* inside one of its handlers: free later */
    bool dead;
    uint64_t negotiation_timer; /* 0 once negotiated (or closed) */
    struct MonitorClient *next;
} MonitorClient;

struct Monitor {
    EventLoop *loop;
    int listen_fd;
    char *path;
    MonitorClient *clients;
    unsigned n_clients;
    unsigned next_client_id;
    unsigned negotiation_timeout_s;
    Monitor *next;
};

static Monitor *monitors;

static void client_free(MonitorClient *c)
{
    qmp_stream_free(c->stream);
    bytebuf_free(&c->out);
    free(c);
}

static void client_unlink(MonitorClient *c)
{
    Monitor *mon = c->mon;
    if (!mon) {
        return;
    }
    for (MonitorClient **p = &mon->clients; *p; p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            mon->n_clients--;
            break;
        }
    }
    c->mon = NULL;
}

/* Drops a client; safe from inside its own handlers (freed on return). */
static void client_close(MonitorClient *c, const char *why)
{
    if (c->dead) {
        return;
    }
    log_ratelimited(LOG_INFO, "monitor: client %u %s", c->id, why);
    c->dead = true;
    if (c->negotiation_timer) {
        loop_del_timer(c->loop, c->negotiation_timer);
        c->negotiation_timer = 0;
    }
    loop_del_fd(c->loop, c->fd);
    close(c->fd);
    c->fd = -1;
    client_unlink(c);
    if (!c->busy) {
        client_free(c);
    }
}

static void client_flush(MonitorClient *c)
{
    while (c->out_sent < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->out_sent,
                         c->out.len - c->out_sent,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            /* Slow peer: finish when the socket has room again. */
            if (!loop_set_fd_mask(c->loop, c->fd, LOOP_READ | LOOP_WRITE,
                                  NULL)) {
                client_close(c, "lost: cannot watch its socket");
            }
            return;
        }
        if (n <= 0) {
            client_close(c, "went away while receiving");
            return;
        }
        c->out_sent += (size_t)n;
    }
    bytebuf_reset(&c->out);
    c->out_sent = 0;
    if (!loop_set_fd_mask(c->loop, c->fd, LOOP_READ, NULL)) {
        client_close(c, "lost: cannot watch its socket");
    }
}

/* Queues one serialized message (qmp-spec: each ends with CRLF). */
static void client_send_text(MonitorClient *c, const char *text)
{
    if (c->dead) {
        return;
    }
    size_t len = strlen(text);
    if (c->out.len - c->out_sent + len + 2 > MONITOR_MAX_BACKLOG) {
        client_close(c, "disconnected: it does not read its output");
        return;
    }
    if (c->out_sent > 0 && c->out_sent == c->out.len) {
        bytebuf_reset(&c->out);
        c->out_sent = 0;
    }
    bytebuf_append(&c->out, text, len);
    bytebuf_append(&c->out, "\r\n", 2);
    if (c->out.failed) {
        client_close(c, "disconnected: out of memory for its output");
        return;
    }
    client_flush(c);
}

static const char *to_wire(json_object *obj)
{
    return json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN |
                                          JSON_C_TO_STRING_NOSLASHESCAPE);
}

static void client_send(MonitorClient *c, json_object *obj)
{
    client_send_text(c, to_wire(obj));
}

static bool client_on_value(json_object *value, const Error *parse_err,
                            void *opaque)
{
    MonitorClient *c = opaque;
    json_object *rsp;
    if (parse_err) {
        log_ratelimited(LOG_WARN, "monitor: client %u: %s", c->id,
                        error_get_pretty(parse_err));
        rsp = qmp_error_response(parse_err, NULL);
    } else {
        rsp = qmp_session_dispatch(&c->session, value);
        if (c->session.negotiated && c->negotiation_timer) {
            loop_del_timer(c->loop, c->negotiation_timer);
            c->negotiation_timer = 0;
        }
    }
    client_send(c, rsp);
    json_object_put(rsp);
    return !c->dead;
}

static void client_read(MonitorClient *c)
{
    char buf[MONITOR_READ_CHUNK];
    ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
                  errno == EINTR)) {
        return;
    }
    if (n <= 0) {
        /* A disconnect in the middle of a request is normal. */
        client_close(c, "disconnected");
        return;
    }
    QmpStreamStatus st = qmp_stream_feed(c->stream, buf, (size_t)n,
                                         client_on_value, c);
    if (st == QMP_STREAM_TOO_BIG) {
        log_ratelimited(LOG_WARN, "monitor: client %u sent more than %u "
                        "bytes without completing a JSON value", c->id,
                        MONITOR_MAX_VALUE_BYTES);
        client_close(c, "disconnected: request too large");
    }
}

static void client_on_event(EventLoop *loop, int fd, int mask, void *opaque)
{
    MonitorClient *c = opaque;
    c->busy++;
    if (mask & LOOP_WRITE) {
        client_flush(c);
    }
    if (!c->dead && (mask & (LOOP_READ | LOOP_HUP))) {
        client_read(c);
    }
    c->busy--;
    if (c->dead && !c->busy) {
        client_free(c);
    }
}

/* qmp-spec "Server Greeting": version and the capabilities offered. */
static json_object *greeting(void)
{
    unsigned major = 0, minor = 0, micro = 0;
    sscanf(STORMIG_VERSION, "%u.%u.%u", &major, &minor, &micro);
    json_object *ver = json_object_new_object();
    json_object_object_add(ver, "micro", json_object_new_int(micro));
    json_object_object_add(ver, "minor", json_object_new_int(minor));
    json_object_object_add(ver, "major", json_object_new_int(major));
    json_object *version = json_object_new_object();
    json_object_object_add(version, "qemu", ver);
    json_object_object_add(version, "package",
                           json_object_new_string("stormig " STORMIG_VERSION));
    json_object *qmp = json_object_new_object();
    json_object_object_add(qmp, "version", version);
    json_object_object_add(qmp, "capabilities", json_object_new_array());
    json_object *g = json_object_new_object();
    json_object_object_add(g, "QMP", qmp);
    return g;
}

/* Sends {"error": ...} with a GenericError desc; the client is closed
 * after it by the caller. */
static void client_send_error(MonitorClient *c, const char *desc)
{
    Error *err = NULL;
    error_setg(&err, "%s", desc);
    json_object *rsp = qmp_error_response(err, NULL);
    client_send(c, rsp);
    json_object_put(rsp);
    error_free(err);
}

static int64_t client_negotiation_expired(EventLoop *loop, uint64_t id,
                                          void *opaque)
{
    MonitorClient *c = opaque;
    char desc[160];
    c->negotiation_timer = 0;
    snprintf(desc, sizeof(desc), "no qmp_capabilities within %u s "
             "(negotiation-timeout): disconnecting",
             c->mon ? c->mon->negotiation_timeout_s : 0);
    c->busy++;
    client_send_error(c, desc);
    client_close(c, "disconnected: it never completed negotiation");
    c->busy--;
    if (c->dead && !c->busy) {
        client_free(c);
    }
    return LOOP_TIMER_DONE;
}

/* A connection over the limit is told why before it is closed, so an
 * operator locked out sees the reason instead of a silent hang-up. */
static void monitor_refuse_client(Monitor *mon, int fd)
{
    Error *err = NULL;
    error_setg(&err, "too many monitor clients (%u connected); clients "
               "that do not negotiate are dropped after %u s "
               "(negotiation-timeout)", mon->n_clients,
               mon->negotiation_timeout_s);
    json_object *rsp = qmp_error_response(err, NULL);
    char text[512];
    int len = snprintf(text, sizeof(text), "%s\r\n", to_wire(rsp));
    json_object_put(rsp);
    error_free(err);
    /* Best effort: a fresh socket has room for one short line. */
    if (len > 0 && (size_t)len < sizeof(text) &&
        send(fd, text, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
        log_ratelimited(LOG_INFO, "monitor: refused client went away");
    }
    close(fd);
}

static void monitor_add_client(Monitor *mon, int fd)
{
    MonitorClient *c = calloc(1, sizeof(*c));
    if (c) {
        c->stream = qmp_stream_new(MONITOR_MAX_VALUE_BYTES, NULL);
    }
    if (!c || !c->stream ||
        !loop_add_fd(mon->loop, fd, LOOP_READ, client_on_event, c, NULL)) {
        log_ratelimited(LOG_ERROR, "monitor: cannot set up a new client");
        if (c) {
            qmp_stream_free(c->stream);
            free(c);
        }
        close(fd);
        return;
    }
    c->mon = mon;
    c->loop = mon->loop;
    c->fd = fd;
    c->id = ++mon->next_client_id;
    bytebuf_init(&c->out);
    c->next = mon->clients;
    mon->clients = c;
    mon->n_clients++;
    c->negotiation_timer = loop_add_timer(
        mon->loop, (uint64_t)mon->negotiation_timeout_s * 1000,
        client_negotiation_expired, c);
    log_ratelimited(LOG_INFO, "monitor: client %u connected", c->id);
    json_object *g = greeting();
    c->busy++;
    client_send(c, g);
    c->busy--;
    json_object_put(g);
    if (c->dead) {
        client_free(c);
    }
}

static void monitor_on_accept(EventLoop *loop, int fd, int mask,
                              void *opaque)
{
    Monitor *mon = opaque;
    for (;;) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                log_ratelimited(LOG_WARN, "monitor: accept on %s: %s",
                                mon->path, strerror(errno));
            }
            return;
        }
        if (mon->n_clients >= MONITOR_MAX_CLIENTS) {
            log_ratelimited(LOG_WARN, "monitor: %s: too many clients, "
                            "refusing one", mon->path);
            monitor_refuse_client(mon, cfd);
            continue;
        }
        monitor_add_client(mon, cfd);
    }
}

/* Binds a listening unix socket, replacing a stale socket file. */
static int listen_unix(const char *path, Error **errp)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    if (strlen(path) == 0 || strlen(path) >= sizeof(addr.sun_path)) {
        error_setg(errp, "monitor socket path '%s' is empty or too long",
                   path);
        return -1;
    }
    memcpy(addr.sun_path, path, strlen(path) + 1);
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            error_setg(errp, "'%s' exists and is not a socket", path);
            return -1;
        }
        unlink(path);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        error_setg_errno(errp, errno, "cannot create monitor socket");
        return -1;
    }
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        listen(fd, 16) < 0) {
        error_setg_errno(errp, errno, "cannot listen on '%s'", path);
        close(fd);
        return -1;
    }
    return fd;
}

/* "unix:PATH[,negotiation-timeout=SECONDS]" into *path and *timeout_s. */
static bool monitor_parse(const char *uri, char **path, unsigned *timeout_s,
                          Error **errp)
{
    KeyVal *kv = keyval_parse(uri ? uri : "", "address", errp);
    if (!kv) {
        return false;
    }
    const char *addr = keyval_get(kv, "address");
    uint32_t secs;
    bool ok = false;
    if (!addr || strncmp(addr, "unix:", 5) != 0) {
        error_setg(errp, "monitor address '%s' is not unix:PATH",
                   addr ? addr : "");
    } else if (keyval_get_u32(kv, "negotiation-timeout",
                              MONITOR_NEGOTIATION_TIMEOUT_DEFAULT, &secs,
                              errp) &&
               keyval_check_all_used(kv, "monitor", errp)) {
        if (secs == 0 || secs > MONITOR_NEGOTIATION_TIMEOUT_MAX) {
            error_setg(errp, "negotiation-timeout must be 1 to %u seconds",
                       MONITOR_NEGOTIATION_TIMEOUT_MAX);
        } else if (!(*path = strdup(addr + 5))) {
            error_setg(errp, "out of memory");
        } else {
            *timeout_s = secs;
            ok = true;
        }
    }
    keyval_free(kv);
    return ok;
}

Monitor *monitor_open(EventLoop *loop, const char *uri, Error **errp)
{
    Monitor *mon = calloc(1, sizeof(*mon));
    if (!mon) {
        error_setg(errp, "out of memory");
        return NULL;
    }
    if (!monitor_parse(uri, &mon->path, &mon->negotiation_timeout_s, errp)) {
        free(mon);
        return NULL;
    }
    mon->loop = loop;
    mon->listen_fd = listen_unix(mon->path, errp);
    if (mon->listen_fd < 0) {
        goto fail;
    }
    if (!loop_add_fd(loop, mon->listen_fd, LOOP_READ, monitor_on_accept,
                     mon, errp)) {
        close(mon->listen_fd);
        unlink(mon->path);
        goto fail;
    }
    mon->next = monitors;
    monitors = mon;
    return mon;
fail:
    free(mon->path);
    free(mon);
    return NULL;
}

void monitor_close(Monitor *mon)
{
    if (!mon) {
        return;
    }
    while (mon->clients) {
        client_close(mon->clients, "disconnected: monitor closed");
    }
    for (Monitor **p = &monitors; *p; p = &(*p)->next) {
        if (*p == mon) {
            *p = mon->next;
            break;
        }
    }
    loop_del_fd(mon->loop, mon->listen_fd);
    close(mon->listen_fd);
    unlink(mon->path);
    free(mon->path);
    free(mon);
}

/* qmp-spec "Asynchronous events": only to clients past negotiation. */
void qmp_event_emit(const char *name, json_object *data)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    json_object *stamp = json_object_new_object();
    json_object_object_add(stamp, "seconds",
                           json_object_new_int64(ts.tv_sec));
    json_object_object_add(stamp, "microseconds",
                           json_object_new_int64(ts.tv_nsec / 1000));
    json_object *ev = json_object_new_object();
    json_object_object_add(ev, "event", json_object_new_string(name));
    if (data) {
        json_object_object_add(ev, "data", data);
    }
    json_object_object_add(ev, "timestamp", stamp);
    const char *text = to_wire(ev);
    for (Monitor *mon = monitors; mon; mon = mon->next) {
        MonitorClient *next;
        for (MonitorClient *c = mon->clients; c; c = next) {
            next = c->next;
            if (c->session.negotiated) {
                client_send_text(c, text);
            }
        }
    }
    json_object_put(ev);
}
