/*
 * A small event loop in the spirit of redis' ae.c: file descriptors with
 * read/write interest, one-shot or periodic timers, and a thread-safe way to
 * run a function on the loop's thread.
 *
 * One EventLoop is driven by one thread. Protocol engines (vhost-user,
 * vfio-user, libiscsi sessions, io_uring) expose an fd and a service
 * function; they register them here and stay loop-agnostic otherwise.
 */
#ifndef STORMIG_UTIL_LOOP_H
#define STORMIG_UTIL_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include "util/error.h"

typedef struct EventLoop EventLoop;

enum {
    LOOP_READ = 1 << 0,
    LOOP_WRITE = 1 << 1,
    LOOP_HUP = 1 << 2,      /* reported only, never requested */
};

/* mask says which of LOOP_READ / LOOP_WRITE / LOOP_HUP happened. */
typedef void LoopFdHandler(EventLoop *loop, int fd, int mask, void *opaque);
/* Returns the delay in ms until the next run, or LOOP_TIMER_DONE. */
typedef int64_t LoopTimerHandler(EventLoop *loop, uint64_t id, void *opaque);
typedef void LoopFunc(void *opaque);

#define LOOP_TIMER_DONE (-1)

EventLoop *loop_new(Error **errp);
void loop_free(EventLoop *loop);

/*
 * Watch fd for the events in mask (LOOP_READ | LOOP_WRITE). Registering an
 * fd again replaces its handler and mask. Must be called on the loop thread
 * (or before the loop runs).
 */
bool loop_add_fd(EventLoop *loop, int fd, int mask, LoopFdHandler *handler,
                 void *opaque, Error **errp);
/* Changes only the mask of an fd already registered. */
bool loop_set_fd_mask(EventLoop *loop, int fd, int mask, Error **errp);
void loop_del_fd(EventLoop *loop, int fd);

/* Returns a timer id (never 0). */
uint64_t loop_add_timer(EventLoop *loop, uint64_t delay_ms,
                        LoopTimerHandler *handler, void *opaque);
void loop_del_timer(EventLoop *loop, uint64_t id);

/* Thread-safe: fn(opaque) runs on the loop thread at its next iteration. */
bool loop_post(EventLoop *loop, LoopFunc *fn, void *opaque);

/*
 * Prepare hooks run on the loop thread before every wait for events, so
 * work queued by the handlers of one iteration (io_uring submissions,
 * interrupts to coalesce) is flushed once per iteration, not once per
 * item. A hook returns true when work is left over (a retry is due): the
 * loop then polls without blocking. Loop thread only.
 */
typedef bool LoopPrepareFunc(void *opaque);
bool loop_add_prepare(EventLoop *loop, LoopPrepareFunc *fn, void *opaque,
                      Error **errp);
void loop_del_prepare(EventLoop *loop, LoopPrepareFunc *fn, void *opaque);

/* Runs one iteration, waiting at most timeout_ms (-1: no limit). */
void loop_run_once(EventLoop *loop, int timeout_ms);
/* Runs until loop_stop(). */
void loop_run(EventLoop *loop);
/* Thread-safe. */
void loop_stop(EventLoop *loop);

/* Monotonic clock. */
uint64_t clock_ns(void);
uint64_t clock_ms(void);

#endif
