/* Event loop: epoll for fds, a sorted list for timers, eventfd for posts. */
#include "util/loop.h"
#include "util/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

typedef struct LoopFd {
    int fd;
    int mask;
    LoopFdHandler *handler;
    void *opaque;
    struct LoopFd *next;
} LoopFd;

typedef struct LoopTimer {
    uint64_t id;
    uint64_t when_ms;
    LoopTimerHandler *handler;
    void *opaque;
    struct LoopTimer *next;
} LoopTimer;

typedef struct LoopPrepare {
    LoopPrepareFunc *fn;
    void *opaque;
    struct LoopPrepare *next;
} LoopPrepare;

typedef struct LoopPost {
    LoopFunc *fn;
    void *opaque;
    struct LoopPost *next;
} LoopPost;

struct EventLoop {
    int epfd;
    int wakefd;
    LoopFd *fds;
    LoopTimer *timers;
    uint64_t next_timer_id;
    pthread_mutex_t post_lock;
    LoopPost *posts, **posts_tail;
    LoopFd *dead;       /* removed during a batch, freed after it */
    LoopPrepare *prepares;
    volatile int stop;
};

uint64_t clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t clock_ms(void)
{
    return clock_ns() / 1000000ull;
}

static uint32_t epoll_events(int mask)
{
    return ((mask & LOOP_READ) ? EPOLLIN : 0) |
           ((mask & LOOP_WRITE) ? EPOLLOUT : 0);
}

static LoopFd *find_fd(EventLoop *loop, int fd)
{
    for (LoopFd *f = loop->fds; f; f = f->next) {
        if (f->fd == fd) {
            return f;
        }
    }
    return NULL;
}

EventLoop *loop_new(Error **errp)
{
    EventLoop *loop = calloc(1, sizeof(*loop));
    if (!loop) {
        error_setg(errp, "out of memory");
        return NULL;
    }
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    loop->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (loop->epfd < 0 || loop->wakefd < 0) {
        error_setg_errno(errp, errno, "cannot create event loop");
        goto fail;
    }
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->wakefd, &ev) < 0) {
        error_setg_errno(errp, errno, "cannot watch loop wake-up fd");
        goto fail;
    }
    pthread_mutex_init(&loop->post_lock, NULL);
    loop->posts_tail = &loop->posts;
    loop->next_timer_id = 1;
    return loop;
fail:
    if (loop->epfd >= 0) {
        close(loop->epfd);
    }
    if (loop->wakefd >= 0) {
        close(loop->wakefd);
    }
    free(loop);
    return NULL;
}

void loop_free(EventLoop *loop)
{
    if (!loop) {
        return;
    }
    while (loop->fds) {
        LoopFd *f = loop->fds;
        loop->fds = f->next;
        free(f);
    }
    while (loop->dead) {
        LoopFd *f = loop->dead;
        loop->dead = f->next;
        free(f);
    }
    while (loop->timers) {
        LoopTimer *t = loop->timers;
        loop->timers = t->next;
        free(t);
    }
    while (loop->posts) {
        LoopPost *p = loop->posts;
        loop->posts = p->next;
        free(p);
    }
    while (loop->prepares) {
        LoopPrepare *h = loop->prepares;
        loop->prepares = h->next;
        free(h);
    }
    pthread_mutex_destroy(&loop->post_lock);
    close(loop->epfd);
    close(loop->wakefd);
    free(loop);
}

bool loop_add_fd(EventLoop *loop, int fd, int mask, LoopFdHandler *handler,
                 void *opaque, Error **errp)
{
    LoopFd *f = find_fd(loop, fd);
    bool is_new = !f;
    if (is_new) {
        f = calloc(1, sizeof(*f));
        if (!f) {
            error_setg(errp, "out of memory");
            return false;
        }
        f->fd = fd;
    }
    struct epoll_event ev = { .events = epoll_events(mask), .data.ptr = f };
    if (epoll_ctl(loop->epfd, is_new ? EPOLL_CTL_ADD : EPOLL_CTL_MOD,
                  fd, &ev) < 0) {
        error_setg_errno(errp, errno, "cannot watch fd %d", fd);
        if (is_new) {
            free(f);
        }
        return false;
    }
    f->mask = mask;
    f->handler = handler;
    f->opaque = opaque;
    if (is_new) {
        f->next = loop->fds;
        loop->fds = f;
    }
    return true;
}

bool loop_set_fd_mask(EventLoop *loop, int fd, int mask, Error **errp)
{
    LoopFd *f = find_fd(loop, fd);
    if (!f) {
        error_setg(errp, "fd %d is not watched", fd);
        return false;
    }
    if (f->mask == mask) {
        return true;
    }
    struct epoll_event ev = { .events = epoll_events(mask), .data.ptr = f };
    if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) < 0) {
        error_setg_errno(errp, errno, "cannot change events of fd %d", fd);
        return false;
    }
    f->mask = mask;
    return true;
}

void loop_del_fd(EventLoop *loop, int fd)
{
    for (LoopFd **p = &loop->fds; *p; p = &(*p)->next) {
        if ((*p)->fd == fd) {
            LoopFd *f = *p;
            *p = f->next;
            epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
            /* Invalidate: a pending event for it in this batch is skipped. */
            f->handler = NULL;
            /* Freed after the batch: an event for it may still be pending. */
            f->next = loop->dead;
            loop->dead = f;
            return;
        }
    }
}

static void insert_timer(EventLoop *loop, LoopTimer *t)
{
    LoopTimer **p = &loop->timers;
    while (*p && (*p)->when_ms <= t->when_ms) {
        p = &(*p)->next;
    }
    t->next = *p;
    *p = t;
}

uint64_t loop_add_timer(EventLoop *loop, uint64_t delay_ms,
                        LoopTimerHandler *handler, void *opaque)
{
    LoopTimer *t = calloc(1, sizeof(*t));
    if (!t) {
        return 0;
    }
    t->id = loop->next_timer_id++;
    t->when_ms = clock_ms() + delay_ms;
    t->handler = handler;
    t->opaque = opaque;
    insert_timer(loop, t);
    return t->id;
}

void loop_del_timer(EventLoop *loop, uint64_t id)
{
    for (LoopTimer **p = &loop->timers; *p; p = &(*p)->next) {
        if ((*p)->id == id) {
            LoopTimer *t = *p;
            *p = t->next;
            free(t);
            return;
        }
    }
}

bool loop_post(EventLoop *loop, LoopFunc *fn, void *opaque)
{
    LoopPost *p = calloc(1, sizeof(*p));
    if (!p) {
        return false;
    }
    p->fn = fn;
    p->opaque = opaque;
    pthread_mutex_lock(&loop->post_lock);
    *loop->posts_tail = p;
    loop->posts_tail = &p->next;
    pthread_mutex_unlock(&loop->post_lock);
    uint64_t one = 1;
    ssize_t n = write(loop->wakefd, &one, sizeof(one));
    (void)n;    /* EAGAIN means a wake-up is already pending */
    return true;
}

void loop_stop(EventLoop *loop)
{
    loop->stop = 1;
    uint64_t one = 1;
    ssize_t n = write(loop->wakefd, &one, sizeof(one));
    (void)n;
}

bool loop_add_prepare(EventLoop *loop, LoopPrepareFunc *fn, void *opaque,
                      Error **errp)
{
    LoopPrepare *h = calloc(1, sizeof(*h));
    if (!h) {
        error_setg(errp, "out of memory");
        return false;
    }
    h->fn = fn;
    h->opaque = opaque;
    h->next = loop->prepares;
    loop->prepares = h;
    return true;
}

void loop_del_prepare(EventLoop *loop, LoopPrepareFunc *fn, void *opaque)
{
    for (LoopPrepare **p = &loop->prepares; *p; p = &(*p)->next) {
        if ((*p)->fn == fn && (*p)->opaque == opaque) {
            LoopPrepare *h = *p;
            *p = h->next;
            free(h);
            return;
        }
    }
}

/* True when a hook has work left: the next wait must not block. */
static bool run_prepares(EventLoop *loop)
{
    bool again = false;
    LoopPrepare *h = loop->prepares;
    while (h) {
        LoopPrepare *next = h->next;   /* a hook may remove itself */
        again |= h->fn(h->opaque);
        h = next;
    }
    return again;
}

static void run_posts(EventLoop *loop)
{
    uint64_t v;
    ssize_t n = read(loop->wakefd, &v, sizeof(v));
    (void)n;
    pthread_mutex_lock(&loop->post_lock);
    LoopPost *list = loop->posts;
    loop->posts = NULL;
    loop->posts_tail = &loop->posts;
    pthread_mutex_unlock(&loop->post_lock);
    while (list) {
        LoopPost *p = list;
        list = p->next;
        p->fn(p->opaque);
        free(p);
    }
}

static void run_timers(EventLoop *loop)
{
    uint64_t now = clock_ms();
    /* Only timers due now; ones added by handlers wait for the next round. */
    uint64_t last_id = loop->next_timer_id;
    while (loop->timers && loop->timers->when_ms <= now &&
           loop->timers->id < last_id) {
        LoopTimer *t = loop->timers;
        loop->timers = t->next;
        uint64_t id = t->id;
        int64_t again = t->handler(loop, id, t->opaque);
        if (again >= 0) {
            t->when_ms = clock_ms() + (uint64_t)again;
            insert_timer(loop, t);
        } else {
            free(t);
        }
    }
}

static int next_timeout(EventLoop *loop, int timeout_ms)
{
    if (!loop->timers) {
        return timeout_ms;
    }
    uint64_t now = clock_ms();
    int64_t until = loop->timers->when_ms > now ?
                    (int64_t)(loop->timers->when_ms - now) : 0;
    if (timeout_ms < 0 || until < timeout_ms) {
        return (int)until;
    }
    return timeout_ms;
}

void loop_run_once(EventLoop *loop, int timeout_ms)
{
    struct epoll_event evs[64];
    int timeout = run_prepares(loop) ? 0 : next_timeout(loop, timeout_ms);
    int n = epoll_wait(loop->epfd, evs, 64, timeout);
    if (n < 0 && errno != EINTR) {
        log_error("epoll_wait: %s", strerror(errno));
    }
    for (int i = 0; i < n; i++) {
        LoopFd *f = evs[i].data.ptr;
        if (!f) {
            run_posts(loop);
            continue;
        }
        /*
         * A handler earlier in this batch may have removed this fd; look it
         * up again by pointer before touching it.
         */
        LoopFd *live = loop->fds;
        while (live && live != f) {
            live = live->next;
        }
        if (!live) {
            continue;
        }
        int mask = 0;
        if (evs[i].events & EPOLLIN) {
            mask |= LOOP_READ;
        }
        if (evs[i].events & EPOLLOUT) {
            mask |= LOOP_WRITE;
        }
        if (evs[i].events & (EPOLLHUP | EPOLLERR)) {
            mask |= LOOP_HUP;
        }
        live->handler(loop, live->fd, mask, live->opaque);
    }
    while (loop->dead) {
        LoopFd *f = loop->dead;
        loop->dead = f->next;
        free(f);
    }
    run_timers(loop);
}

void loop_run(EventLoop *loop)
{
    loop->stop = 0;
    while (!loop->stop) {
        loop_run_once(loop, -1);
    }
}
