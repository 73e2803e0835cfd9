/* stormigd: options, start-up, the main loop and a clean shutdown. */
#include "daemon/daemon.h"
#include "daemon/config.h"
#include "daemon/notify.h"
#include "block/ownership.h"
#include "device/device.h"
#include "migration/migration.h"
#include "migration/runstate.h"
#include "monitor/monitor.h"
#ifdef CONFIG_LIBISCSI
#include "scsi/scsi-pr-journal.h"
#endif
#include "util/log.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#ifndef STORMIG_VERSION
#define STORMIG_VERSION "unknown"
#endif

#define MAX_REPEATED 64

typedef struct Options {
    const char *blockdevs[MAX_REPEATED];
    int n_blockdevs;
    const char *devices[MAX_REPEATED];
    int n_devices;
    /* "FILE:LINE" of the options read by --config, NULL for argv. */
    const char *blockdev_where[MAX_REPEATED];
    const char *device_where[MAX_REPEATED];
    const char *monitor;
    const char *incoming;
    const char *name;
    uint32_t debug_load_delay_ms;
} Options;

enum {
    OPT_BLOCKDEV = 256, OPT_DEVICE, OPT_MONITOR, OPT_INCOMING, OPT_NAME,
    OPT_LOG_LEVEL, OPT_COMPAT, OPT_DEBUG_LOAD_DELAY, OPT_PR_JOURNAL,
    OPT_PEER_TIMEOUT,
    OPT_CONFIG,
};

static const struct option long_options[] = {
    { "blockdev", required_argument, NULL, OPT_BLOCKDEV },
    { "device", required_argument, NULL, OPT_DEVICE },
    { "monitor", required_argument, NULL, OPT_MONITOR },
    { "incoming", required_argument, NULL, OPT_INCOMING },
    { "name", required_argument, NULL, OPT_NAME },
    { "log-level", required_argument, NULL, OPT_LOG_LEVEL },
    { "compat-version", required_argument, NULL, OPT_COMPAT },
    { "pr-journal", required_argument, NULL, OPT_PR_JOURNAL },
    { "peer-timeout", required_argument, NULL, OPT_PEER_TIMEOUT },
    { "config", required_argument, NULL, OPT_CONFIG },
    /* Testing aid, not in --help: delays loading incoming state. */
    { "debug-load-delay-ms", required_argument, NULL, OPT_DEBUG_LOAD_DELAY },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    { NULL, 0, NULL, 0 },
};

static void usage(void)
{
    printf(
"Usage: stormigd [options]\n"
"Serves a VM's storage devices and migrates them to another stormigd.\n"
"\n"
"  --blockdev driver=file,node-name=NODE,filename=FILE[,read-only=on]\n"
"             [,cache.direct=on][,discard=unmap]   open a disk image\n"
"  --device TYPE,id=ID[,prop=value...]   create a device (--device help,\n"
"                                --device TYPE,help)\n"
"  --monitor unix:PATH[,negotiation-timeout=SECONDS]\n"
"                                QMP monitor socket; clients that send no\n"
"                                qmp_capabilities within SECONDS (30) are\n"
"                                dropped\n"
"  --incoming URI|defer          wait for a migration (unix:PATH,\n"
"                                tcp:HOST:PORT, file:PATH)\n"
"  --name NAME                   tag for log lines\n"
"  --log-level error|warn|info|debug\n"
"  --compat-version X.Y          behave like release X.Y\n"
"  --peer-timeout MS             how long the other stormigd may keep a\n"
"                                migration step waiting (default 120000)\n"
"  --pr-journal DIR              reservation journals of scsi-block LUNs\n"
"                                without pr-journal= (default\n"
"                                /var/lib/stormig/pr)\n"
"  --config FILE                 read options from FILE, one per line\n"
"  -h, --help                    this text\n"
"  -V, --version                 print the version\n");
}

static void list_device_types(void)
{
    printf("Device types:\n");
    for (const DeviceClass *c = device_class_next(NULL); c;
         c = device_class_next(c)) {
        printf("  %-20s %s\n", c->type, c->description);
    }
}

/* --device TYPE,help: TYPE's properties, as QEMU's -device TYPE,help. */
static bool is_type_help(const char *optstr)
{
    size_t len = strlen(optstr);
    return len > 5 && strcmp(optstr + len - 5, ",help") == 0;
}

static int print_type_help(const char *optstr)
{
    char *type = strndup(optstr, strcspn(optstr, ","));
    Error *err = NULL;
    bool ok = type && device_class_print_help(type, stdout, &err);
    if (!ok) {
        fprintf(stderr, "stormigd: %s (see --device help)\n",
                err ? error_get_pretty(err) : "out of memory");
        error_free(err);
    }
    free(type);
    return ok ? 0 : 1;
}

static bool add_repeated(const char **arr, int *n, const char *val,
                         const char *what)
{
    if (*n == MAX_REPEATED) {
        fprintf(stderr, "stormigd: too many %s options\n", what);
        return false;
    }
    arr[(*n)++] = val;
    return true;
}

/* Digits only, at most COMPAT_PART_MAX (sscanf's %u takes a sign and
 * wraps on overflow). *end is set past the digits. */
#define COMPAT_PART_MAX 65535u

static bool parse_compat_part(const char *s, const char **end,
                              unsigned *out)
{
    unsigned v = 0;
    const char *p = s;
    for (; *p >= '0' && *p <= '9'; p++) {
        v = v * 10 + (unsigned)(*p - '0');
        if (v > COMPAT_PART_MAX) {
            return false;
        }
    }
    *end = p;
    *out = v;
    return p != s;
}

static bool parse_compat(const char *s)
{
    unsigned major, minor;
    const char *p;
    if (!parse_compat_part(s, &p, &major) || *p != '.' ||
        !parse_compat_part(p + 1, &p, &minor) || *p) {
        fprintf(stderr, "stormigd: --compat-version wants X.Y, two numbers "
                "from 0 to %u, not '%s'\n", COMPAT_PART_MAX, s);
        return false;
    }
    device_set_compat_version(major, minor);
    return true;
}

/* Daemon-wide, so that two daemons on one host can keep their journals
 * apart without a property on every LUN (docs/migrate-pr.md). */
static bool set_pr_journal(const char *dir)
{
    if (!*dir) {
        fprintf(stderr, "stormigd: --pr-journal needs a directory\n");
        return false;
    }
#ifdef CONFIG_LIBISCSI
    scsi_pr_journal_set_default_dir(dir);
    return true;
#else
    fprintf(stderr, "stormigd: --pr-journal: built without scsi-block\n");
    return false;
#endif
}

static bool set_peer_timeout(const char *arg)
{
    uint64_t v;
    Error *err = NULL;
    if (!parse_u64(arg, &v) || v > INT64_MAX) {
        fprintf(stderr, "stormigd: --peer-timeout wants milliseconds, not "
                "'%s'\n", arg);
        return false;
    }
    if (!migration_set_peer_timeout((int64_t)v, &err)) {
        fprintf(stderr, "stormigd: --peer-timeout: %s\n",
                error_get_pretty(err));
        error_free(err);
        return false;
    }
    return true;
}
static bool read_config(const char *path, Options *o);

static bool parse_value_option(int c, const char *arg, Options *o)
{
    LogLevel level;
    uint64_t v;
    switch (c) {
    case OPT_BLOCKDEV:
        return add_repeated(o->blockdevs, &o->n_blockdevs, arg, "--blockdev");
    case OPT_DEVICE:
        return add_repeated(o->devices, &o->n_devices, arg, "--device");
    case OPT_MONITOR:
        o->monitor = arg;
        return true;
    case OPT_INCOMING:
        o->incoming = arg;
        return true;
    case OPT_NAME:
        o->name = arg;
        log_set_tag(arg);
        return true;
    case OPT_LOG_LEVEL:
        if (!log_parse_level(arg, &level)) {
            fprintf(stderr, "stormigd: unknown log level '%s'\n", arg);
            return false;
        }
        log_set_level(level);
        return true;
    case OPT_COMPAT:
        return parse_compat(arg);
    case OPT_PR_JOURNAL:
        return set_pr_journal(arg);
    case OPT_PEER_TIMEOUT:
        return set_peer_timeout(arg);
    case OPT_CONFIG:
        return read_config(arg, o);
    case OPT_DEBUG_LOAD_DELAY:
        if (!parse_u64(arg, &v) || v > 600000) {
            fprintf(stderr, "stormigd: bad delay '%s'\n", arg);
            return false;
        }
        o->debug_load_delay_ms = (uint32_t)v;
        return true;
    }
    return false;
}

static bool apply_config_option(const struct option *opt, const char *value,
                                const char *where, void *opaque)
{
    Options *o = opaque;
    if (opt->val == OPT_BLOCKDEV && o->n_blockdevs < MAX_REPEATED) {
        o->blockdev_where[o->n_blockdevs] = where;
    } else if (opt->val == OPT_DEVICE && o->n_devices < MAX_REPEATED) {
        o->device_where[o->n_devices] = where;
    }
    return parse_value_option(opt->val, value, o);
}

static bool read_config(const char *path, Options *o)
{
    Error *err = NULL;
    if (!daemon_config_read(path, long_options, apply_config_option, o,
                            &err)) {
        fprintf(stderr, "stormigd: %s\n", error_get_pretty(err));
        error_free(err);
        return false;
    }
    return true;
}

/* Returns 0 to go on, or an exit status + 1. */
static int parse_options(int argc, char **argv, Options *o)
{
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":hV", long_options, NULL)) != -1) {
        if (c == 'h') {
            usage();
            return 1;
        }
        if (c == 'V') {
            printf("stormigd %s\n", STORMIG_VERSION);
            return 1;
        }
        if (c == ':') {
            fprintf(stderr, "stormigd: option '%s' needs a value\n",
                    argv[optind - 1]);
            return 2;
        }
        if (c == '?') {
            fprintf(stderr, "stormigd: unknown option '%s' (see --help)\n",
                    argv[optind - 1]);
            return 2;
        }
        if (!parse_value_option(c, optarg, o)) {
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "stormigd: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    return 0;
}

static bool create_backends_and_devices(const Options *o, EventLoop *loop,
                                        Error **errp)
{
    for (int i = 0; i < o->n_blockdevs; i++) {
        if (!daemon_blockdev_add(o->blockdevs[i], errp)) {
            if (o->blockdev_where[i]) {
                error_prepend(errp, "%s: ", o->blockdev_where[i]);
            }
            return false;
        }
    }
    for (int i = 0; i < o->n_devices; i++) {
        if (!device_create(o->devices[i], loop, errp)) {
            if (o->device_where[i]) {
                error_prepend(errp, "%s: ", o->device_where[i]);
            }
            return false;
        }
    }
    return true;
}

static void shutdown_stopped(void *opaque, Error *err)
{
    if (err) {
        error_prepend(&err, "stopping the devices for shutdown: ");
        error_report_err(err);
    }
    loop_stop(opaque);
}

void daemon_request_shutdown(EventLoop *loop)
{
    if (vm_stopping()) {
        /* A stop already waits for requests; device teardown ends it. */
        loop_stop(loop);
        return;
    }
    migration_cancel();     /* a source resumes before it stops for good */
    vm_stop(RUN_STATE_SHUTDOWN, shutdown_stopped, loop);
}

static void on_signal(EventLoop *loop, int fd, int mask, void *opaque)
{
    struct signalfd_siginfo si;
    if (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        log_info("signal %u: shutting down", si.ssi_signo);
        daemon_request_shutdown(loop);
    }
}

static int watch_signals(EventLoop *loop, Error **errp)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    int fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (fd < 0 || !loop_add_fd(loop, fd, LOOP_READ, on_signal, NULL, errp)) {
        if (fd >= 0) {
            close(fd);
        } else {
            error_setg(errp, "cannot watch signals");
        }
        return -1;
    }
    return fd;
}

/* Incoming from a file loads now; a bad file leaves the daemon up and
 * waiting, with the reason in query-migrate. A socket that cannot listen
 * is a start-up error. */
static bool start_incoming(const char *uri, Error **errp)
{
    runstate_set(RUN_STATE_INMIGRATE);
    if (strcmp(uri, "defer") == 0) {
        return true;
    }
    if (strncmp(uri, "file:", 5) == 0) {
        Error *err = NULL;
        if (!migration_start_incoming(uri, 0, &err)) {
            error_free(err);    /* logged, and kept for query-migrate */
        }
        return true;
    }
    return migration_start_incoming(uri, 0, errp);
}

static bool daemon_start(const Options *o, EventLoop *loop, Monitor **mon,
                         Error **errp)
{
    blk_ownership_init(o->incoming == NULL);
    migration_init(loop);
    migration_set_debug_load_delay(o->debug_load_delay_ms);
    runstate_set_event_sink(qmp_event_emit);
    if (!create_backends_and_devices(o, loop, errp)) {
        return false;
    }
    daemon_register_qmp_commands(loop);
    if (o->monitor && !(*mon = monitor_open(loop, o->monitor, errp))) {
        error_prepend(errp, "--monitor %s: ", o->monitor);
        return false;
    }
    if (o->incoming) {
        return start_incoming(o->incoming, errp);
    }
    return vm_start(errp);
}

static void daemon_shutdown(Monitor *mon)
{
    daemon_notify_stopping();
    migration_shutdown();
    if (runstate_is_running()) {
        /* Start-up failed, or the stop for shutdown gave up. */
        log_warn("shutting down with the devices running");
    }
    runstate_set(RUN_STATE_SHUTDOWN);
    qmp_event_emit("SHUTDOWN", NULL);
    monitor_close(mon);
    qmp_unregister_all();
    device_destroy_all();
    daemon_blockdev_close_all();
}

int main(int argc, char **argv)
{
    Options o = { 0 };
    daemon_register_device_types();
    int rc = parse_options(argc, argv, &o);
    if (rc) {
        daemon_config_free();
        return rc - 1;
    }
    for (int i = 0; i < o.n_devices; i++) {
        if (strcmp(o.devices[i], "help") == 0) {
            list_device_types();
            daemon_config_free();
            return 0;
        }
        if (is_type_help(o.devices[i])) {
            rc = print_type_help(o.devices[i]);
            daemon_config_free();
            return rc;
        }
    }
    Error *err = NULL;
    Monitor *mon = NULL;
    EventLoop *loop = loop_new(&err);
    int sigfd = loop ? watch_signals(loop, &err) : -1;
    if (sigfd < 0 || !daemon_start(&o, loop, &mon, &err)) {
        fprintf(stderr, "stormigd: %s\n", error_get_pretty(err));
        error_free(err);
        daemon_shutdown(mon);
        loop_free(loop);
        daemon_config_free();
        return 1;
    }
    log_info("stormigd %s ready (%s)", STORMIG_VERSION,
             runstate_name(runstate_get()));
    daemon_notify_ready(runstate_name(runstate_get()));
    loop_run(loop);
    daemon_shutdown(mon);
    close(sigfd);
    loop_free(loop);
    daemon_config_free();
    return 0;
}
