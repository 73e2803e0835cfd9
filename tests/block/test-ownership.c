/*
 * Disk ownership: every transition of the process-wide record, and two
 * real processes (this one and blk-lock-helper) contending for one image.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include "block/block.h"
#include "block/image-lock.h"
#include "block/ownership.h"
#include "test-common.h"

#define DISK_SIZE (1024 * 1024)

typedef struct Helper {
    pid_t pid;
    FILE *to;
    FILE *from;
} Helper;

typedef struct Fixture {
    char *img_a;
    char *img_b;
    Helper helper;
} Fixture;

static void helper_start(Helper *h)
{
    const char *path = getenv("BLK_LOCK_HELPER");
    assert_non_null(path);
    int in[2], out[2];
    assert_int_equal(pipe2(in, O_CLOEXEC), 0);
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    h->pid = fork();
    assert_true(h->pid >= 0);
    if (h->pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        execl(path, path, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    h->to = fdopen(in[1], "w");
    h->from = fdopen(out[0], "r");
}

/* Sends one command; returns the reply line (static storage). */
static const char *helper_cmd(Helper *h, const char *fmt, ...)
{
    static char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vfprintf(h->to, fmt, ap);
    va_end(ap);
    fputc('\n', h->to);
    fflush(h->to);
    if (!fgets(line, sizeof(line), h->from)) {
        return "eof";
    }
    line[strcspn(line, "\n")] = '\0';
    return line;
}

static void helper_stop(Helper *h)
{
    if (!h->pid) {
        return;
    }
    fprintf(h->to, "quit\n");
    fclose(h->to);
    fclose(h->from);
    int status;
    waitpid(h->pid, &status, 0);
    h->pid = 0;
}

static int setup(void **state)
{
    Fixture *f = calloc(1, sizeof(*f));
    f->img_a = scratch_image("own-a", DISK_SIZE);
    f->img_b = scratch_image("own-b", DISK_SIZE);
    *state = f;
    return f->img_a && f->img_b ? 0 : -1;
}

static int teardown(void **state)
{
    Fixture *f = *state;
    helper_stop(&f->helper);
    BlockBackend *blk;
    while ((blk = blk_next(NULL))) {
        blk_close(blk);
    }
    blk_ownership_init(true);
    remove_image(f->img_a);
    remove_image(f->img_b);
    free(f);
    return 0;
}

static BlockBackend *open_rw(const char *name, const char *file,
                             bool read_only)
{
    Error *err = NULL;
    BlockOpenOptions opts = { .node_name = name, .filename = file,
                              .read_only = read_only };
    BlockBackend *blk = blk_open(&opts, &err);
    if (!blk) {
        print_error("blk_open: %s\n", error_get_pretty(err));
        error_free(err);
    }
    return blk;
}

/* Who holds the image's ownership lock, seen through a fresh descriptor
 * (so this process's own backends count as other holders): 0 = nobody. */
static pid_t lock_holder(const char *file)
{
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    ImageLockHolder h = { 0 };
    int ret = image_lock_probe(fd, &h);
    close(fd);
    assert_true(ret >= 0);
    if (ret == 0) {
        return 0;
    }
    assert_true(h.pid > 0);
    return h.pid;
}

static int write_byte(BlockBackend *blk, int byte)
{
    static char buf[4096];
    memset(buf, byte, sizeof(buf));
    return blk_pwrite_sync(blk, 0, buf, sizeof(buf));
}

static uint64_t flushes(BlockBackend *blk)
{
    BlockStats st;
    blk_get_stats(blk, &st);
    return st.flush_ops;
}

/* Error text names the holder by pid and program name. */
static void assert_names(const char *msg, pid_t pid)
{
    char want[64], comm[32] = "", path[64];
    snprintf(want, sizeof(want), "process %d (", (int)pid);
    assert_non_null(strstr(msg, want));
    snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    assert_non_null(fgets(comm, sizeof(comm), fp));
    fclose(fp);
    comm[strcspn(comm, "\n")] = '\0';
    assert_true(comm[0]);
    assert_non_null(strstr(msg, comm));
}

static void test_fresh_process_owns(void **state)
{
    Fixture *f = *state;
    blk_ownership_init(true);
    assert_true(blk_ownership_is_owned());
    BlockBackend *a = open_rw("a", f->img_a, false);
    assert_non_null(a);
    assert_true(blk_is_active(a));
    assert_int_equal(lock_holder(f->img_a), getpid());
    assert_int_equal(write_byte(a, 1), 0);
    /* Even within one process, one image has one writer. */
    Error *err = NULL;
    BlockOpenOptions opts = { .node_name = "a2", .filename = f->img_a };
    assert_null(blk_open(&opts, &err));
    assert_non_null(strstr(error_get_pretty(err), "this process"));
    error_free(err);
    /* Closing releases the lock. */
    blk_close(a);
    assert_int_equal(lock_holder(f->img_a), 0);
}

/* Migrate, fail, migrate again; repeats are no-ops. */
static void test_all_transitions(void **state)
{
    Fixture *f = *state;
    blk_ownership_init(true);
    BlockBackend *a = open_rw("a", f->img_a, false);
    BlockBackend *b = open_rw("b", f->img_b, false);
    BlockBackend *ro = open_rw("ro", f->img_a, true);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(ro);
    assert_false(blk_is_active(ro));
    for (int round = 0; round < 2; round++) {
        assert_int_equal(write_byte(a, 2 + round), 0);
        assert_true(blk_ownership_inactivate_all(NULL));
        assert_false(blk_ownership_is_owned());
        assert_int_equal(flushes(a), round + 1);
        assert_int_equal(lock_holder(f->img_a), 0);
        assert_int_equal(lock_holder(f->img_b), 0);
        assert_int_equal(write_byte(a, 9), -EPERM);
        assert_int_equal(blk_flush_sync(b), -EPERM);
        assert_int_equal(blk_discard(b, 0, 4096, NULL, NULL), -EPERM);
        assert_int_equal(blk_write_zeroes(b, 0, 4096, false, NULL, NULL),
                         -EPERM);
        /* Reads go on; the data written before inactivation is there. */
        char buf[4096];
        assert_int_equal(blk_pread_sync(ro, 0, buf, sizeof(buf)), 0);
        assert_int_equal(buf[0], 2 + round);
        /* Double inactivation: nothing happens, no flush. */
        assert_true(blk_ownership_inactivate_all(NULL));
        assert_int_equal(flushes(a), round + 1);
        /* The migration failed: the source takes its disks back. */
        assert_true(blk_ownership_activate_all(NULL));
        assert_true(blk_ownership_is_owned());
        assert_int_equal(lock_holder(f->img_a), getpid());
        assert_int_equal(lock_holder(f->img_b), getpid());
        assert_true(blk_ownership_activate_all(NULL));
        assert_true(blk_is_active(a) && blk_is_active(b));
        assert_false(blk_is_active(ro));
    }
}

/* An incoming process migrates out again without ever running: the
 * inactivation is a no-op that never touches the files. */
static void test_incoming_then_migrate_out(void **state)
{
    Fixture *f = *state;
    blk_ownership_init(false);
    assert_false(blk_ownership_is_owned());
    BlockBackend *a = open_rw("a", f->img_a, false);
    assert_non_null(a);
    assert_false(blk_is_active(a));
    assert_int_equal(lock_holder(f->img_a), 0);
    assert_int_equal(write_byte(a, 1), -EPERM);
    assert_true(blk_ownership_inactivate_all(NULL));
    assert_false(blk_ownership_is_owned());
    BlockStats st;
    blk_get_stats(a, &st);
    assert_int_equal(st.flush_ops + st.wr_ops + st.failed_ops, 0);
    assert_int_equal(lock_holder(f->img_a), 0);
    /* At switchover it takes the disk. */
    assert_true(blk_ownership_activate_all(NULL));
    assert_int_equal(write_byte(a, 1), 0);
}

/* Two real processes: the second cannot take what the first owns. */
static void test_two_processes(void **state)
{
    Fixture *f = *state;
    Helper *h = &f->helper;
    blk_ownership_init(true);
    BlockBackend *a = open_rw("a", f->img_a, false);
    assert_non_null(a);
    assert_int_equal(write_byte(a, 0x11), 0);
    helper_start(h);
    assert_string_equal(helper_cmd(h, "init 0"), "ok");
    assert_string_equal(helper_cmd(h, "open a %s", f->img_a), "ok");
    assert_string_equal(helper_cmd(h, "write a 0 34"), "ret -1");
    const char *r = helper_cmd(h, "activate");
    assert_true(strncmp(r, "err ", 4) == 0);
    assert_names(r, getpid());
    assert_non_null(strstr(r, f->img_a));
    /* The first hands over; the second takes the image and writes. */
    assert_true(blk_ownership_inactivate_all(NULL));
    assert_string_equal(helper_cmd(h, "activate"), "ok");
    assert_int_equal(lock_holder(f->img_a), h->pid);
    assert_string_equal(helper_cmd(h, "write a 0 34"), "ret 0");
    assert_int_equal(write_byte(a, 0x11), -EPERM);
    Error *err = NULL;
    assert_false(blk_ownership_activate_all(&err));
    assert_names(error_get_pretty(err), h->pid);
    error_free(err);
    assert_false(blk_ownership_is_owned());
    char buf[4096];
    assert_int_equal(blk_pread_sync(a, 0, buf, sizeof(buf)), 0);
    assert_int_equal(buf[0], 34);
    /* And back: the helper gives the image up, the first owns it again. */
    assert_string_equal(helper_cmd(h, "inactivate"), "ok");
    assert_true(blk_ownership_activate_all(NULL));
    assert_int_equal(write_byte(a, 0x11), 0);
}

/* Opening while owned takes the lock at once, or fails naming the holder;
 * a read-only user never blocks the owner. */
static void test_open_names_holder(void **state)
{
    Fixture *f = *state;
    Helper *h = &f->helper;
    helper_start(h);
    assert_string_equal(helper_cmd(h, "init 1"), "ok");
    assert_string_equal(helper_cmd(h, "open a %s", f->img_a), "ok");
    blk_ownership_init(true);
    Error *err = NULL;
    BlockOpenOptions opts = { .node_name = "a", .filename = f->img_a };
    assert_null(blk_open(&opts, &err));
    assert_names(error_get_pretty(err), h->pid);
    error_free(err);
    BlockBackend *ro = open_rw("ro", f->img_a, true);
    assert_non_null(ro);
    assert_string_equal(helper_cmd(h, "inactivate"), "ok");
    assert_string_equal(helper_cmd(h, "activate"), "ok");
    assert_string_equal(helper_cmd(h, "write a 4096 7"), "ret 0");
}

/* Activation takes every image or none. */
static void test_activation_all_or_nothing(void **state)
{
    Fixture *f = *state;
    Helper *h = &f->helper;
    helper_start(h);
    assert_string_equal(helper_cmd(h, "init 1"), "ok");
    assert_string_equal(helper_cmd(h, "open b %s", f->img_b), "ok");
    blk_ownership_init(false);
    BlockBackend *a = open_rw("a", f->img_a, false);
    BlockBackend *b = open_rw("b", f->img_b, false);
    assert_non_null(a);
    assert_non_null(b);
    Error *err = NULL;
    assert_false(blk_ownership_activate_all(&err));
    assert_names(error_get_pretty(err), h->pid);
    assert_non_null(strstr(error_get_pretty(err), f->img_b));
    error_free(err);
    assert_false(blk_ownership_is_owned());
    assert_int_equal(lock_holder(f->img_a), 0);
    assert_int_equal(lock_holder(f->img_b), h->pid);
    assert_int_equal(write_byte(a, 1), -EPERM);
    /* The holder dies: the kernel drops its lock, activation succeeds. */
    kill(h->pid, SIGKILL);
    waitpid(h->pid, NULL, 0);
    fclose(h->to);
    fclose(h->from);
    h->pid = 0;
    assert_true(blk_ownership_activate_all(NULL));
    assert_int_equal(lock_holder(f->img_a), getpid());
    assert_int_equal(lock_holder(f->img_b), getpid());
}

/*
 * A child takes the lock, then parks its descriptor in a unix socket's
 * queue (SCM_RIGHTS) and closes it: the lock stays held through a file no
 * process has a descriptor of, as with a killed process whose io_uring
 * teardown still holds its files. The child exits after hold_ms, which
 * drops the queue and the lock.
 */
static pid_t orphan_lock_start(const char *file, int hold_ms)
{
    int ready[2];
    assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* A failed assertion in the parent must not leave us behind. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(file, O_RDWR | O_CLOEXEC);
        int sv[2];
        if (fd < 0 || !image_lock_acquire(fd, file, NULL) ||
            socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
            _exit(1);
        }
        char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
        char byte = 0;
        struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
                              .msg_control = cbuf,
                              .msg_controllen = sizeof(cbuf) };
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
        if (sendmsg(sv[0], &msg, 0) != 1) {
            _exit(1);
        }
        close(fd);
        if (write(ready[1], "r", 1) != 1) {
            _exit(1);
        }
        struct timespec ts = { hold_ms / 1000, (hold_ms % 1000) * 1000000l };
        nanosleep(&ts, NULL);
        _exit(0);
    }
    close(ready[1]);
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    close(ready[0]);
    return pid;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A lock whose holder is exiting is waited for, not reported as owned. */
static void test_orphaned_lock_is_waited_for(void **state)
{
    Fixture *f = *state;
    int64_t start = now_ms();
    pid_t child = orphan_lock_start(f->img_a, 200);
    int fd = open(f->img_a, O_RDWR | O_CLOEXEC);
    assert_true(fd >= 0);
    ImageLockHolder h = { 0 };
    assert_int_equal(image_lock_probe(fd, &h), 1);
    assert_int_equal(h.pid, 0);
    Error *err = NULL;
    bool ok = image_lock_acquire(fd, f->img_a, &err);
    if (!ok) {
        print_error("%s\n", error_get_pretty(err));
        error_free(err);
    }
    assert_true(ok);
    assert_true(now_ms() - start >= 200);
    assert_int_equal(lock_holder(f->img_a), getpid());
    image_lock_release(fd);
    close(fd);
    waitpid(child, NULL, 0);
}

/* ...but only for a bounded time, and the error says why. */
static void test_orphaned_lock_wait_is_bounded(void **state)
{
    Fixture *f = *state;
    pid_t child = orphan_lock_start(f->img_a,
                                    IMAGE_LOCK_ORPHAN_WAIT_MS + 3000);
    int fd = open(f->img_a, O_RDWR | O_CLOEXEC);
    assert_true(fd >= 0);
    Error *err = NULL;
    int64_t start = now_ms();
    assert_false(image_lock_acquire(fd, f->img_a, &err));
    assert_true(now_ms() - start >= IMAGE_LOCK_ORPHAN_WAIT_MS);
    assert_non_null(strstr(error_get_pretty(err), "no running process"));
    error_free(err);
    close(fd);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fresh_process_owns, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_all_transitions, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_incoming_then_migrate_out,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_processes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_names_holder, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_activation_all_or_nothing,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_orphaned_lock_is_waited_for,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_orphaned_lock_wait_is_bounded,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
