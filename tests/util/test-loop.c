/* Event loop: fd readiness, timers, posts from another thread, removal of
 * an fd from inside a handler of the same batch. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <unistd.h>

#include "util/loop.h"

typedef struct Ctx {
    int reads;
    int timer_runs;
    int posts;
    int pipes[2][2];
} Ctx;

static void on_read(EventLoop *loop, int fd, int mask, void *opaque)
{
    Ctx *c = opaque;
    char b;
    assert_true(mask & LOOP_READ);
    assert_int_equal(read(fd, &b, 1), 1);
    c->reads++;
    /* Removing the other pipe while its event may be pending is safe. */
    loop_del_fd(loop, c->pipes[1][0]);
}

static void test_fd_and_removal(void **state)
{
    Ctx c = { 0 };
    EventLoop *loop = loop_new(NULL);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pipe(c.pipes[i]), 0);
        assert_true(loop_add_fd(loop, c.pipes[i][0], LOOP_READ, on_read, &c,
                                NULL));
        assert_int_equal(write(c.pipes[i][1], "x", 1), 1);
    }
    loop_run_once(loop, 1000);
    /* Exactly one handler ran: the first removed the other. */
    assert_int_equal(c.reads, 1);
    loop_free(loop);
    for (int i = 0; i < 2; i++) {
        close(c.pipes[i][0]);
        close(c.pipes[i][1]);
    }
}

static int64_t on_timer(EventLoop *loop, uint64_t id, void *opaque)
{
    Ctx *c = opaque;
    if (++c->timer_runs == 3) {
        loop_stop(loop);
        return LOOP_TIMER_DONE;
    }
    return 1;
}

static void test_periodic_timer(void **state)
{
    Ctx c = { 0 };
    EventLoop *loop = loop_new(NULL);
    uint64_t id = loop_add_timer(loop, 1, on_timer, &c);
    assert_true(id != 0);
    uint64_t other = loop_add_timer(loop, 0, on_timer, &c);
    loop_del_timer(loop, other);
    loop_run(loop);
    assert_int_equal(c.timer_runs, 3);
    loop_free(loop);
}

static void on_post(void *opaque)
{
    Ctx *c = opaque;
    c->posts++;
}

static EventLoop *post_loop;
static Ctx post_ctx;

static void *poster(void *arg)
{
    for (int i = 0; i < 100; i++) {
        loop_post(post_loop, on_post, &post_ctx);
    }
    return NULL;
}

static void test_post_from_thread(void **state)
{
    pthread_t t;
    post_loop = loop_new(NULL);
    pthread_create(&t, NULL, poster, NULL);
    pthread_join(t, NULL);
    while (post_ctx.posts < 100) {
        loop_run_once(post_loop, 1000);
    }
    assert_int_equal(post_ctx.posts, 100);
    loop_free(post_loop);
}

static int prepare_runs;
static int prepare_left;

static bool on_prepare(void *opaque)
{
    prepare_runs++;
    return --prepare_left > 0;     /* work left: do not block */
}

static void test_prepare_hook(void **state)
{
    EventLoop *loop = loop_new(NULL);
    assert_true(loop_add_prepare(loop, on_prepare, NULL, NULL));
    /* With work left over the loop must not sleep its whole timeout. */
    prepare_left = 4;
    uint64_t t0 = clock_ms();
    for (int i = 0; i < 3; i++) {
        loop_run_once(loop, 5000);
    }
    assert_int_equal(prepare_runs, 3);
    assert_true(clock_ms() - t0 < 4000);
    loop_del_prepare(loop, on_prepare, NULL);
    loop_run_once(loop, 0);
    assert_int_equal(prepare_runs, 3);
    loop_free(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fd_and_removal),
        cmocka_unit_test(test_periodic_timer),
        cmocka_unit_test(test_post_from_thread),
        cmocka_unit_test(test_prepare_hook),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
