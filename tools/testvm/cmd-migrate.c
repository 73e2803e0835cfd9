/*
 * stormig-testvm migrate-test: back-and-forth live migrations between two
 * stormigd daemons, each serving the NVMe device on its own vfio-user
 * socket, with the workload verifying throughout.
 *
 * Disk ownership moves at switchover with the daemons' own migration:
 * the destination listens (migrate-incoming), the source runs migrate
 * (stopping its devices, giving its disks up; the destination takes them
 * and runs). The NVMe state itself goes through vfio-user. Before a
 * round starts, the source's query-devices must report every device
 * migratable (the controller's allowlist); otherwise the migration is
 * refused with the blocker's message.
 */
#include "cli.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "mig-checks.h"
#include "qmp-client.h"
#include "util/loop.h"

#define DAEMON_WAIT_MS 20000
#define NVME_DEV_ID "nvme0"         /* the daemons' --device nvme,id= */

typedef struct Round {
    const CliOptions *o;
    QmpClient *src, *dst;
    const char *dst_qmp_path;
    char uri[300];
    int n;
    unsigned failures;
    TestVm *vm;                     /* the running VM (source) */
    CqOrder cq;                     /* --cq-stall */
    bool check_failed;              /* --cq-stall / --aen-test */
    double daemon_total_ms;         /* the daemons' migrate: query-migrate */
    double daemon_downtime_ms;
} Round;

static bool check_migratable(void *opaque, Error **errp)
{
    Round *r = opaque;
    json_object *devs = qmp_client_cmd(r->src, "query-devices", NULL, errp);
    bool ok = devs != NULL;
    for (size_t i = 0; ok && i < json_object_array_length(devs); i++) {
        json_object *d = json_object_array_get_idx(devs, i), *m, *why;
        if (json_object_object_get_ex(d, "migratable", &m) &&
            !json_object_get_boolean(m)) {
            json_object_object_get_ex(d, "migration-blocker", &why);
            error_setg(errp, "refused before starting: %s",
                       why ? json_object_get_string(why) : "not migratable");
            ok = false;
        }
    }
    json_object_put(devs);
    return ok;
}

static bool wait_status(QmpClient *q, const char *cmd, const char *member,
                        const char *want, const char *bad, Error **errp)
{
    char st[64];
    uint64_t end = clock_ms() + DAEMON_WAIT_MS;
    while (qmp_client_get_str(q, cmd, member, st, sizeof(st), errp)) {
        if (strcmp(st, want) == 0) {
            return true;
        }
        if ((bad && strstr(bad, st)) || clock_ms() > end) {
            error_setg(errp, "%s: %s is '%s', waited for '%s'", cmd, member,
                       st, want);
            return false;
        }
        /* Short: the handoff's own duration is measured through this. */
        usleep(200);
    }
    return false;
}

static double member_double(json_object *o, const char *name)
{
    json_object *v;
    return o && json_object_object_get_ex(o, name, &v)
           ? json_object_get_double(v) : -1;
}

/* The daemons' migration moves the disks (and their run state). */
static bool handoff_disks(void *opaque, Error **errp)
{
    Round *r = opaque;
    json_object *a = json_object_new_object();
    json_object_object_add(a, "uri", json_object_new_string(r->uri));
    json_object *ret = qmp_client_cmd(r->src, "migrate", a, errp);
    json_object_put(ret);
    return ret && wait_status(r->src, "query-migrate", "status", "completed",
                              "failed cancelled", errp) &&
           wait_status(r->dst, "query-status", "status", "running", NULL,
                       errp);
}

/* After the round (outside the measured downtime): the source daemon's
 * own figures of the handoff. */
static void daemon_figures(Round *r)
{
    json_object *q = qmp_client_cmd(r->src, "query-migrate", NULL, NULL);
    r->daemon_total_ms = member_double(q, "total-time");
    r->daemon_downtime_ms = member_double(q, "downtime");
    json_object_put(q);
}

static bool inject(void *opaque, MigPhase phase, Error **errp)
{
    Round *r = opaque;
    /* The source device is stopped: its completions are final. */
    if (phase == MIG_PHASE_STOP && r->o->cq_stall && r->n == 0 &&
        !cq_order_record(&r->cq, 1, r->vm->drv, r->src, errp)) {
        return false;
    }
    if (r->o->fail_round != r->n && !(r->o->fail_round < 0 && r->n == 0)) {
        return true;
    }
    if (r->o->dst_fail && phase == MIG_PHASE_STOP_COPY) {
        json_object_put(qmp_client_cmd(r->dst, "quit", NULL, NULL));
        usleep(100000);             /* let it go; resume then fails */
        return true;
    }
    if (phase == r->o->fail_at) {
        error_setg(errp, "cancelled at %s as asked", mig_phase_name(phase));
        return false;
    }
    return true;
}

/* --aen-test: an event raised by the source daemon during pre-copy. */
static void precopy_hook(void *opaque, TestVm *src, unsigned round)
{
    Round *r = opaque;
    Error *err = NULL;
    if (r->o->aen_test && r->n == 0 && round == 0 &&
        !aen_raise_during(r->src, NVME_DEV_ID, &err)) {
        fprintf(stderr, "stormig-testvm: %s\n", error_get_pretty(err));
        error_free(err);
        r->check_failed = true;
    }
}

static bool open_round(Round *r, const char *src_qmp, const char *dst_qmp,
                       Error **errp)
{
    r->src = qmp_client_connect(src_qmp, DAEMON_WAIT_MS, errp);
    r->dst = r->src ? qmp_client_connect(dst_qmp, DAEMON_WAIT_MS, errp)
                    : NULL;
    if (!r->dst || !wait_status(r->dst, "query-status", "status",
                                "inmigrate", NULL, errp)) {
        return false;
    }
    snprintf(r->uri, sizeof(r->uri), "unix:%s.mig", dst_qmp);
    json_object *a = json_object_new_object();
    json_object_object_add(a, "uri", json_object_new_string(r->uri));
    json_object *ret = qmp_client_cmd(r->dst, "migrate-incoming", a, errp);
    json_object_put(ret);
    return ret != NULL;
}

static void close_round(Round *r, bool quit_src)
{
    if (quit_src && r->src) {
        /* Migrated out: its supervisor restarts it as a destination. */
        json_object_put(qmp_client_cmd(r->src, "quit", NULL, NULL));
    }
    qmp_client_free(r->src);
    qmp_client_free(r->dst);
    r->src = r->dst = NULL;
}

static void print_round(int n, const char *from, const MigResult *res,
                        const Error *err)
{
    if (err) {
        printf("round %d: %s -> other: FAILED in %s: %s\n", n, from,
               mig_phase_name(res->failed_phase), error_get_pretty(err));
        return;
    }
    const MigTimes *t = &res->times;
    printf("round %d: %s -> other: downtime %llu us, device state %zu "
           "bytes, in flight at stop %u, pre-copy rounds %u, pages %llu\n",
           n, from, (unsigned long long)res->downtime_us, res->state_size,
           res->in_flight_at_stop, res->precopy_rounds,
           (unsigned long long)res->pages_copied);
    printf("round %d: times us: quiesce %llu memory %llu save %llu load %llu "
           "handoff %llu start %llu\n", n,
           (unsigned long long)t->quiesce_us, (unsigned long long)t->memory_us,
           (unsigned long long)t->save_us, (unsigned long long)t->load_us,
           (unsigned long long)t->handoff_us,
           (unsigned long long)t->start_us);
}

static bool expect_failure(const CliOptions *o, int n)
{
    bool any = o->dst_fail || o->fail_at != MIG_PHASE_NONE;
    return any && (o->fail_round == n || (o->fail_round < 0 && n == 0));
}

/* One migration attempt; *vm is the running VM afterwards. */
static bool one_round(Round *r, TestVm **vm, bool a_is_src, Error **errp)
{
    const CliOptions *o = r->o;
    const char *sq = a_is_src ? o->src_qmp : o->dst_qmp;
    const char *dq = a_is_src ? o->dst_qmp : o->src_qmp;
    const char *ds = a_is_src ? o->dst_socket : o->src_socket;
    MigHooks h = { .opaque = r, .check = check_migratable,
                   .precopy_round = precopy_hook,
                   .switchover = handoff_disks, .inject = inject };
    MigOptions mo = { 0 };
    MigResult res = { 0 };
    r->vm = *vm;
    if (!open_round(r, sq, dq, errp)) {
        close_round(r, false);
        return false;
    }
    Transport *t = transport_vfu_connect_opts(ds, o->dma_no_fd, errp);
    TestVm *next = t ? testvm_migrate(*vm, t, &mo, &h, &res, errp) : NULL;
    print_round(r->n, a_is_src ? "A" : "B", &res, next ? NULL : *errp);
    if (next) {
        daemon_figures(r);
        printf("round %d: daemons: migrate total %.3f ms, stopped %.3f "
               "ms\n", r->n, r->daemon_total_ms, r->daemon_downtime_ms);
        *vm = next;
    } else {
        /* A fresh destination for the next attempt. */
        json_object_put(qmp_client_cmd(r->dst, "quit", NULL, NULL));
    }
    close_round(r, next != NULL);
    return next != NULL;
}

/* Destination of round 0: trace the stalled queue before it is
 * consumed again; ask for the events that travelled in the device. */
static void after_first_round(Round *r, TestVm *vm)
{
    Error *err = NULL;
    if (r->n != 0) {
        return;
    }
    if (r->o->cq_stall) {
        cq_order_watch(&r->cq, vm->drv);
    }
    if (r->o->aen_test && !aen_verify(vm->drv, &err)) {
        fprintf(stderr, "stormig-testvm: %s\n", error_get_pretty(err));
        error_free(err);
        r->check_failed = true;
    }
}

int cmd_migrate_test(const CliOptions *o)
{
    Error *err = NULL;
    if (!o->src_socket || !o->dst_socket || !o->src_qmp || !o->dst_qmp) {
        fprintf(stderr, "stormig-testvm migrate-test: --src-socket, "
                "--dst-socket, --src-qmp and --dst-qmp are required\n");
        return 2;
    }
    Transport *t = transport_vfu_connect_opts(o->src_socket, o->dma_no_fd,
                                              &err);
    TestVm *vm = t ? testvm_boot(t, &o->vm, &err) : NULL;
    if (!vm) {
        fprintf(stderr, "stormig-testvm: %s\n", error_get_pretty(err));
        error_free(err);
        return 1;
    }
    Round r = { .o = o };
    bool a_is_src = true;
    unsigned migrations = 0, expected = 0;
    if (o->cq_stall) {
        vm->drv->st->q[1].stalled = 1;
    }
    workload_run(vm->wl, o->round_ms);
    if (o->aen_test && !aen_raise_before(vm->drv, &err)) {
        fprintf(stderr, "stormig-testvm: %s\n", error_get_pretty(err));
        error_free_or_null(&err);
        r.check_failed = true;
    }
    for (r.n = 0; r.n < (int)o->rounds; r.n++) {
        bool want_fail = expect_failure(o, r.n);
        expected += want_fail;
        if (one_round(&r, &vm, a_is_src, &err)) {
            migrations++;
            a_is_src = !a_is_src;
            after_first_round(&r, vm);
        } else {
            r.failures += want_fail;
            if (!want_fail || strstr(error_get_pretty(err), "refused")) {
                fprintf(stderr, "stormig-testvm: %s\n",
                        error_get_pretty(err));
                error_free(err);
                testvm_free(vm);
                return 1;
            }
            error_free_or_null(&err);
        }
        vm->drv->st->q[1].stalled = 0;
        workload_run(vm->wl, o->round_ms);
    }
    int rc = report_final(vm, migrations, expected, r.failures);
    if ((o->cq_stall && !cq_order_report(&r.cq)) || r.check_failed) {
        printf("migration checks: FAIL\n");
        rc = 1;
    }
    testvm_free(vm);
    return rc;
}
