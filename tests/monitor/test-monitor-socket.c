/*
 * The monitor over real unix sockets, with the event loop pumped in this
 * process: greeting, negotiation, commands, events, recovery from bad
 * input, and dropping abusive clients while the others keep working.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "monitor/monitor.h"

typedef struct Client {
    int fd;
    char buf[1 << 16];
    size_t len;
} Client;

typedef struct Ctx {
    EventLoop *loop;
    Monitor *mon;
    char dir[256];
    char path[300];
    char uri[310];
} Ctx;

static Ctx *ctx;

static bool cmd_add(json_object *args, json_object **ret, void *opaque,
                    Error **errp)
{
    int64_t a, b;
    if (!qmp_arg_int(args, "a", false, &a, errp) ||
        !qmp_arg_int(args, "b", false, &b, errp)) {
        return false;
    }
    *ret = json_object_new_int64(a + b);
    return true;
}

static bool cmd_close_monitor(json_object *args, json_object **ret,
                              void *opaque, Error **errp)
{
    monitor_close(ctx->mon);
    ctx->mon = NULL;
    return true;
}

static int setup(void **state)
{
    ctx = calloc(1, sizeof(*ctx));
    const char *tmp = getenv("TMPDIR");
    snprintf(ctx->dir, sizeof(ctx->dir), "%s/qmp-test-XXXXXX",
             tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(ctx->dir));
    snprintf(ctx->path, sizeof(ctx->path), "%s/qmp.sock", ctx->dir);
    snprintf(ctx->uri, sizeof(ctx->uri), "unix:%s", ctx->path);
    ctx->loop = loop_new(NULL);
    assert_non_null(ctx->loop);
    qmp_register_command("test-add", cmd_add, NULL);
    qmp_register_command("test-close-monitor", cmd_close_monitor, NULL);
    Error *err = NULL;
    ctx->mon = monitor_open(ctx->loop, ctx->uri, &err);
    assert_null(err);
    assert_non_null(ctx->mon);
    *state = ctx;
    return 0;
}

static int teardown(void **state)
{
    monitor_close(ctx->mon);
    loop_free(ctx->loop);
    qmp_unregister_all();
    unlink(ctx->path);
    rmdir(ctx->dir);
    free(ctx);
    return 0;
}

static Client *client_connect(void)
{
    Client *c = calloc(1, sizeof(*c));
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    strcpy(addr.sun_path, ctx->path);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&addr,
                             sizeof(addr)), 0);
    return c;
}

static void client_free(Client *c)
{
    close(c->fd);
    free(c);
}

/* Pumps the loop until the client has a full line; NULL on EOF/timeout. */
static json_object *client_recv(Client *c)
{
    for (int round = 0; round < 500; round++) {
        char *eol = memmem(c->buf, c->len, "\r\n", 2);
        if (eol) {
            *eol = '\0';
            json_object *msg = json_tokener_parse(c->buf);
            assert_non_null(msg);
            size_t used = (size_t)(eol - c->buf) + 2;
            memmove(c->buf, c->buf + used, c->len - used);
            c->len -= used;
            return msg;
        }
        ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len,
                         MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN)) {
            return NULL;
        }
        if (n > 0) {
            c->len += (size_t)n;
        } else {
            loop_run_once(ctx->loop, 10);
        }
    }
    return NULL;
}

/* True when the server closed the connection (reading what is left). */
static bool client_closed_by_server(Client *c)
{
    char sink[65536];
    for (int round = 0; round < 2000; round++) {
        loop_run_once(ctx->loop, 5);
        ssize_t n = recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno == ECONNRESET)) {
            return true;
        }
    }
    return false;
}

/* No message arrives while the loop runs for a while. */
static void expect_silence(Client *c)
{
    for (int i = 0; i < 10; i++) {
        loop_run_once(ctx->loop, 5);
    }
    char b;
    assert_int_equal(recv(c->fd, &b, 1, MSG_DONTWAIT | MSG_PEEK), -1);
    assert_int_equal(errno, EAGAIN);
    assert_int_equal(c->len, 0);
}

/* Sends all of data, running the loop while the socket is full; returns
 * false if the server closed the connection first. */
static bool client_send_bytes(Client *c, const void *data, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(c->fd, (const char *)data + off, len - off,
                         MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno == EAGAIN) {
            loop_run_once(ctx->loop, 5);
            continue;
        }
        if (n < 0) {
            return false;
        }
        off += (size_t)n;
    }
    return true;
}

static void client_send(Client *c, const char *text)
{
    assert_true(client_send_bytes(c, text, strlen(text)));
}

static json_object *member(json_object *obj, const char *name)
{
    json_object *v = NULL;
    assert_true(json_object_object_get_ex(obj, name, &v));
    return v;
}

static const char *error_desc(json_object *msg)
{
    return json_object_get_string(member(member(msg, "error"), "desc"));
}

static const char *error_class(json_object *msg)
{
    return json_object_get_string(member(member(msg, "error"), "class"));
}

static void check_greeting(Client *c)
{
    json_object *g = client_recv(c);
    assert_non_null(g);
    json_object *qmp = member(g, "QMP");
    json_object *ver = member(member(qmp, "version"), "qemu");
    assert_true(json_object_is_type(member(ver, "major"), json_type_int));
    assert_true(json_object_is_type(member(ver, "minor"), json_type_int));
    assert_true(json_object_is_type(member(ver, "micro"), json_type_int));
    const char *pkg = json_object_get_string(
        member(member(qmp, "version"), "package"));
    assert_true(strncmp(pkg, "stormig ", 8) == 0);
    json_object *caps = member(qmp, "capabilities");
    assert_true(json_object_is_type(caps, json_type_array));
    assert_int_equal(json_object_array_length(caps), 0);
    json_object_put(g);
}

/* Connects, reads the greeting and negotiates. */
static Client *client_ready(void)
{
    Client *c = client_connect();
    check_greeting(c);
    client_send(c, "{\"execute\": \"qmp_capabilities\"}\n");
    json_object *rsp = client_recv(c);
    assert_non_null(rsp);
    assert_true(json_object_object_get_ex(rsp, "return", NULL));
    json_object_put(rsp);
    return c;
}

/* Runs test-add and checks the sum comes back with the id. */
static void check_add(Client *c, int a, int b)
{
    char text[128];
    snprintf(text, sizeof(text), "{\"execute\": \"test-add\", \"arguments\":"
             " {\"a\": %d, \"b\": %d}, \"id\": \"add-%d\"}\n", a, b, a);
    client_send(c, text);
    json_object *rsp = client_recv(c);
    assert_non_null(rsp);
    assert_int_equal(json_object_get_int64(member(rsp, "return")), a + b);
    snprintf(text, sizeof(text), "add-%d", a);
    assert_string_equal(json_object_get_string(member(rsp, "id")), text);
    json_object_put(rsp);
}

static void test_greeting_and_negotiation(void **state)
{
    Client *c = client_connect();
    check_greeting(c);
    client_send(c, "{\"execute\": \"test-add\", \"arguments\": "
                "{\"a\": 1, \"b\": 2}}\n");
    json_object *rsp = client_recv(c);
    assert_string_equal(error_class(rsp), "CommandNotFound");
    assert_string_equal(error_desc(rsp), "Expecting capabilities "
                        "negotiation with 'qmp_capabilities'");
    json_object_put(rsp);

    client_send(c, "{\"execute\": \"qmp_capabilities\", \"id\": 7}\r\n");
    rsp = client_recv(c);
    assert_int_equal(json_object_object_length(member(rsp, "return")), 0);
    assert_int_equal(json_object_get_int(member(rsp, "id")), 7);
    json_object_put(rsp);

    check_add(c, 40, 2);
    client_send(c, "{\"execute\": \"no-such-thing\"}");
    rsp = client_recv(c);
    assert_string_equal(error_desc(rsp),
                        "The command no-such-thing has not been found");
    json_object_put(rsp);
    client_free(c);
}

static void test_events_reach_negotiated_only(void **state)
{
    Client *ready = client_ready();
    Client *fresh = client_connect();
    check_greeting(fresh);

    json_object *data = json_object_new_object();
    json_object_object_add(data, "n", json_object_new_int(5));
    qmp_event_emit("TEST_EVENT", data);
    json_object *ev = client_recv(ready);
    assert_non_null(ev);
    assert_string_equal(json_object_get_string(member(ev, "event")),
                        "TEST_EVENT");
    assert_int_equal(json_object_get_int(member(member(ev, "data"), "n")),
                     5);
    json_object *ts = member(ev, "timestamp");
    assert_true(json_object_get_int64(member(ts, "seconds")) > 0);
    int64_t us = json_object_get_int64(member(ts, "microseconds"));
    assert_true(us >= 0 && us < 1000000);
    json_object_put(ev);
    expect_silence(fresh);

    /* An event without data has no "data" member. */
    qmp_event_emit("TEST_BARE", NULL);
    ev = client_recv(ready);
    assert_false(json_object_object_get_ex(ev, "data", NULL));
    json_object_put(ev);
    expect_silence(fresh);
    client_free(ready);
    client_free(fresh);
}

static void test_bad_input_then_good_command(void **state)
{
    Client *c = client_ready();
    client_send(c, "{\"execute\": nonsense}\n");
    json_object *rsp = client_recv(c);
    assert_string_equal(error_class(rsp), "GenericError");
    assert_true(strncmp(error_desc(rsp), "JSON parse error, ", 18) == 0);
    json_object_put(rsp);
    check_add(c, 1, 1);

    client_send(c, "[1]\n");
    rsp = client_recv(c);
    assert_string_equal(error_desc(rsp), "QMP input must be a JSON object");
    json_object_put(rsp);

    /* One request split across writes, two requests in one write. */
    client_send(c, "{\"execute\": \"test-a");
    expect_silence(c);
    client_send(c, "dd\", \"arguments\": {\"a\": 2, \"b\": 3}}");
    rsp = client_recv(c);
    assert_int_equal(json_object_get_int(member(rsp, "return")), 5);
    json_object_put(rsp);
    client_send(c, "{\"execute\": \"test-add\", \"arguments\": {\"a\": 1, "
                "\"b\": 1}}{\"execute\": \"test-add\", \"arguments\": "
                "{\"a\": \"x\", \"b\": 1}}");
    rsp = client_recv(c);
    assert_int_equal(json_object_get_int(member(rsp, "return")), 2);
    json_object_put(rsp);
    rsp = client_recv(c);
    assert_string_equal(error_desc(rsp), "Invalid parameter type for 'a', "
                        "expected: integer");
    json_object_put(rsp);
    client_free(c);
}

static void test_huge_value_disconnected(void **state)
{
    Client *good = client_ready();
    Client *hog = client_ready();
    size_t len = (1u << 20) + (1u << 18);
    char *blob = malloc(len);
    memset(blob, 'a', len);
    memcpy(blob, "{\"execute\": \"", 13);
    client_send_bytes(hog, blob, len);  /* may fail once dropped */
    free(blob);
    assert_true(client_closed_by_server(hog));
    check_add(good, 3, 4);
    client_free(hog);

    /* A client vanishing mid-request is harmless. */
    Client *quitter = client_ready();
    client_send(quitter, "{\"execute\": \"test-add\", \"argu");
    client_free(quitter);
    for (int i = 0; i < 5; i++) {
        loop_run_once(ctx->loop, 5);
    }
    check_add(good, 5, 6);
    client_free(good);
}

static void test_slow_reader_disconnected(void **state)
{
    Client *good = client_ready();
    Client *deaf = client_ready();
    size_t payload = 32 * 1024;     /* fits a Client buffer */
    char *text = malloc(payload + 1);
    memset(text, 'e', payload);
    text[payload] = '\0';
    /* 8 MiB of events: far past the backlog bound for a peer that never
     * reads, while one that reads keeps up. */
    for (int i = 0; i < 256; i++) {
        json_object *data = json_object_new_object();
        json_object_object_add(data, "blob", json_object_new_string(text));
        qmp_event_emit("TEST_BIG", data);
        json_object *ev = client_recv(good);
        assert_non_null(ev);
        json_object_put(ev);
    }
    free(text);
    assert_true(client_closed_by_server(deaf));
    check_add(good, 8, 9);
    client_free(deaf);
    client_free(good);
}

static void test_close_from_command(void **state)
{
    Client *a = client_ready();
    Client *b = client_ready();
    client_send(a, "{\"execute\": \"test-close-monitor\"}\n");
    assert_true(client_closed_by_server(a));
    assert_true(client_closed_by_server(b));
    assert_null(ctx->mon);
    client_free(a);
    client_free(b);
}

static void test_open_errors_and_stale_socket(void **state)
{
    Error *err = NULL;
    assert_null(monitor_open(ctx->loop, "tcp:localhost:4444", &err));
    assert_non_null(err);
    error_free_or_null(&err);

    /* A socket file left behind by a dead process is replaced. */
    char stale[320];
    snprintf(stale, sizeof(stale), "%s/stale.sock", ctx->dir);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    strcpy(addr.sun_path, stale);
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    close(fd);
    char uri[330];
    snprintf(uri, sizeof(uri), "unix:%s", stale);
    Monitor *second = monitor_open(ctx->loop, uri, &err);
    assert_null(err);
    assert_non_null(second);
    monitor_close(second);
    assert_int_equal(access(stale, F_OK), -1);

    /* A regular file is never removed. */
    fd = open(stale, O_CREAT | O_WRONLY, 0600);
    close(fd);
    assert_null(monitor_open(ctx->loop, uri, &err));
    assert_non_null(err);
    error_free_or_null(&err);
    assert_int_equal(access(stale, F_OK), 0);
    unlink(stale);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_greeting_and_negotiation,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_reach_negotiated_only,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input_then_good_command,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_huge_value_disconnected,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_reader_disconnected,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_from_command,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_errors_and_stale_socket,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
