/*
 * Test harness: vfio-user servers serving the test device on an event
 * loop in a thread of their own, and blocking clients in the test thread.
 * Device and server state is read on the loop thread (harness_sync).
 */
#ifndef STORMIG_TESTS_VFIO_USER_HARNESS_H
#define STORMIG_TESTS_VFIO_USER_HARNESS_H

#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test-dev.h"
#include "vfio-user/vfu-client.h"

typedef struct Harness {
    EventLoop *loop;
    pthread_t thread;
    char dir[64];
    char path[2][128];
    TestDev dev[2];
    VfuServer *srv[2];
    unsigned n;
} Harness;

static void *harness_thread(void *opaque)
{
    loop_run(opaque);
    return NULL;
}

static bool harness_start(Harness *h, unsigned n)
{
    memset(h, 0, sizeof(*h));
    const char *tmp = getenv("TMPDIR");
    snprintf(h->dir, sizeof(h->dir), "%s/vfu-test-XXXXXX", tmp ? tmp : "/tmp");
    if (!mkdtemp(h->dir) || !(h->loop = loop_new(NULL))) {
        return false;
    }
    h->n = n;
    for (unsigned i = 0; i < n; i++) {
        VfuDeviceDesc desc;
        test_dev_init(&h->dev[i], &desc);
        h->dev[i].loop = h->loop;
        snprintf(h->path[i], sizeof(h->path[i]), "%s/s%u", h->dir, i);
        VfuServerConfig cfg = {
            .socket_path = h->path[i], .loop = h->loop, .desc = &desc,
            .ops = &test_dev_ops, .opaque = &h->dev[i],
        };
        h->srv[i] = h->dev[i].srv = vfu_server_new(&cfg, NULL);
        if (!h->srv[i]) {
            return false;
        }
    }
    return pthread_create(&h->thread, NULL, harness_thread, h->loop) == 0;
}

static void harness_stop(Harness *h)
{
    loop_stop(h->loop);
    pthread_join(h->thread, NULL);
    for (unsigned i = 0; i < h->n; i++) {
        vfu_server_free(h->srv[i]);
        test_dev_cleanup(&h->dev[i]);
    }
    loop_free(h->loop);
    rmdir(h->dir);
}

typedef struct SyncCall {
    void (*fn)(Harness *h, void *arg);
    Harness *h;
    void *arg;
    sem_t done;
} SyncCall;

static void sync_trampoline(void *opaque)
{
    SyncCall *c = opaque;
    c->fn(c->h, c->arg);
    sem_post(&c->done);
}

/* Runs fn on the loop thread and waits for it. */
static void harness_sync(Harness *h, void (*fn)(Harness *, void *), void *arg)
{
    SyncCall c = { .fn = fn, .h = h, .arg = arg };
    sem_init(&c.done, 0, 0);
    loop_post(h->loop, sync_trampoline, &c);
    sem_wait(&c.done);
    sem_destroy(&c.done);
}

typedef struct ConnQuery {
    unsigned idx;
    bool connected;
} ConnQuery;

static void query_connected(Harness *h, void *arg)
{
    ConnQuery *q = arg;
    q->connected = vfu_server_connected(h->srv[q->idx]);
}

/* Waits (up to 5 s) until server idx has no client. */
static bool harness_wait_disconnected(Harness *h, unsigned idx)
{
    for (int i = 0; i < 500; i++) {
        ConnQuery q = { .idx = idx };
        harness_sync(h, query_connected, &q);
        if (!q.connected) {
            return true;
        }
        usleep(10000);
    }
    return false;
}

/* Connects to server idx and negotiates the version. */
static VfuClient *harness_client(Harness *h, unsigned idx)
{
    VfuClient *c = vfu_client_connect(h->path[idx], NULL);
    if (c && !vfu_client_negotiate(c, NULL)) {
        vfu_client_free(c);
        return NULL;
    }
    return c;
}

/* Closes a client and waits until the server noticed. */
static bool harness_client_close(Harness *h, unsigned idx, VfuClient *c)
{
    vfu_client_free(c);
    return harness_wait_disconnected(h, idx);
}

#endif
