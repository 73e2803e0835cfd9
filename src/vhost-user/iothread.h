/*
 * An I/O thread: one EventLoop driven by its own pthread. A controller's
 * data path (kick eventfds, block completions) runs here so that a slow
 * disk never stalls the main loop.
 */
#ifndef STORMIG_VHOST_USER_IOTHREAD_H
#define STORMIG_VHOST_USER_IOTHREAD_H

#include <stdbool.h>

#include "util/error.h"
#include "util/loop.h"

typedef struct IOThread IOThread;

IOThread *iothread_new(const char *name, Error **errp);
/* Stops the loop and joins the thread. */
void iothread_free(IOThread *t);
EventLoop *iothread_loop(IOThread *t);
bool iothread_is_current(const IOThread *t);

/*
 * Runs fn(opaque) on the I/O thread between two events and waits for it:
 * the caller's way to change data-path state without sharing it. Runs fn
 * inline when t is NULL or is the calling thread.
 */
void iothread_run_sync(IOThread *t, LoopFunc *fn, void *opaque);

#endif
