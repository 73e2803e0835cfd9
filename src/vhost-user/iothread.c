/* I/O thread: an EventLoop on its own pthread, with synchronous calls. */
#include "vhost-user/iothread.h"
#include "util/log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct IOThread {
    EventLoop *loop;
    pthread_t thread;
    char name[16];
};

typedef struct SyncCall {
    LoopFunc *fn;
    void *opaque;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
} SyncCall;

static void *iothread_main(void *opaque)
{
    IOThread *t = opaque;
    loop_run(t->loop);
    return NULL;
}

IOThread *iothread_new(const char *name, Error **errp)
{
    IOThread *t = calloc(1, sizeof(*t));
    if (!t) {
        error_setg(errp, "out of memory");
        return NULL;
    }
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->loop = loop_new(errp);
    if (!t->loop) {
        free(t);
        return NULL;
    }
    int err = pthread_create(&t->thread, NULL, iothread_main, t);
    if (err) {
        error_setg_errno(errp, err, "cannot start I/O thread %s", name);
        loop_free(t->loop);
        free(t);
        return NULL;
    }
    pthread_setname_np(t->thread, t->name);
    return t;
}

void iothread_free(IOThread *t)
{
    if (!t) {
        return;
    }
    loop_stop(t->loop);
    pthread_join(t->thread, NULL);
    loop_free(t->loop);
    free(t);
}

EventLoop *iothread_loop(IOThread *t)
{
    return t->loop;
}

bool iothread_is_current(const IOThread *t)
{
    return t && pthread_equal(pthread_self(), t->thread);
}

static void sync_call_run(void *opaque)
{
    SyncCall *c = opaque;
    c->fn(c->opaque);
    pthread_mutex_lock(&c->lock);
    c->done = true;
    pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

void iothread_run_sync(IOThread *t, LoopFunc *fn, void *opaque)
{
    if (!t || iothread_is_current(t)) {
        fn(opaque);
        return;
    }
    SyncCall c = { .fn = fn, .opaque = opaque };
    pthread_mutex_init(&c.lock, NULL);
    pthread_cond_init(&c.cond, NULL);
    while (!loop_post(t->loop, sync_call_run, &c)) {
        /* Out of memory for a post: the call must still happen. */
        log_ratelimited(LOG_ERROR, "I/O thread %s: cannot post, retrying",
                        t->name);
        usleep(1000);
    }
    pthread_mutex_lock(&c.lock);
    while (!c.done) {
        pthread_cond_wait(&c.cond, &c.lock);
    }
    pthread_mutex_unlock(&c.lock);
    pthread_cond_destroy(&c.cond);
    pthread_mutex_destroy(&c.lock);
}
