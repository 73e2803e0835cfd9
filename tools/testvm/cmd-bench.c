/*
 * stormig-testvm bench: the workload as a benchmark, on either transport
 * (NVMe over vfio-user, virtio-scsi over vhost-user): random one-block
 * reads or writes at a fixed queue depth, no data verification (as fio
 * does not verify either), a ramp-up, then a timed window whose IOPS and
 * submit-to-completion latency histogram are printed as one JSON line.
 *
 * Also "run --transport vhost-user": the verifying workload over the
 * virtio-scsi driver, the same report as over NVMe.
 */
#include "cli.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/loop.h"
#include "vscsi-drv.h"

/* Either transport behind the one workload. */
typedef struct BenchVm {
    TestVm *nvme;                   /* vfio-user: the whole test VM */
    GuestMem *gm;                   /* vhost-user: its parts */
    VhostFe *fe;
    VscsiDrv *vs;
    Workload *wl;
} BenchVm;

static bool is_vhost(const CliOptions *o)
{
    return o->transport && strcmp(o->transport, "vhost-user") == 0;
}

static void bench_vm_free(BenchVm *b)
{
    if (b->nvme) {
        testvm_free(b->nvme);
    } else {
        workload_free(b->wl);
        vscsi_drv_free(b->vs);
        vhost_fe_free(b->fe);
        gm_free(b->gm);
    }
    *b = (BenchVm){ 0 };
}

static bool boot_vhost(BenchVm *b, const TestVmConfig *cfg, Error **errp)
{
    b->gm = gm_new(cfg->mem_size, errp);
    if (!b->gm) {
        return false;
    }
    gm_format(b->gm);
    b->vs = vscsi_drv_init(b->fe, b->gm, cfg->nvme.io_queues, cfg->nvme.qd,
                           cfg->nvme.namespaces, errp);
    b->wl = b->vs ? workload_new(b->gm, &b->vs->ops, b->vs, &cfg->workload,
                                 errp) : NULL;
    return b->wl != NULL;
}

static bool bench_vm_boot(BenchVm *b, const CliOptions *o,
                          const TestVmConfig *cfg, Error **errp)
{
    *b = (BenchVm){ 0 };
    if (is_vhost(o)) {
        b->fe = vhost_fe_connect(o->socket, errp);
        if (!b->fe || !boot_vhost(b, cfg, errp)) {
            bench_vm_free(b);
            return false;
        }
        return true;
    }
    Transport *t = transport_vfu_connect(o->socket, errp);
    b->nvme = t ? testvm_boot(t, cfg, errp) : NULL;
    if (!b->nvme) {
        return false;
    }
    b->wl = b->nvme->wl;
    return true;
}

static uint64_t protocol_errors(const BenchVm *b)
{
    return b->nvme ? b->nvme->drv->st->errors : b->vs->st->errors;
}

static uint64_t completions(const WorkloadStats *s)
{
    return s->reads + s->writes;
}

/* ios: completions in the window (the histogram holds those submitted in
 * it too). */
static void print_result(const CliOptions *o, const LatHist *h,
                         uint64_t elapsed_ns, uint64_t ios,
                         const WorkloadStats *s, uint64_t errors)
{
    double secs = (double)elapsed_ns / 1e9;
    printf("{\"transport\": \"%s\", \"queues\": %u, \"qd\": %u, "
           "\"write_pct\": %u, \"seconds\": %.3f, \"ios\": %" PRIu64 ", "
           "\"iops\": %.1f, \"lat_mean_us\": %.2f, \"lat_min_us\": %.2f, "
           "\"p50_us\": %.2f, \"p99_us\": %.2f, \"p999_us\": %.2f, "
           "\"lat_max_us\": %.2f, \"io_errors\": %" PRIu64 ", "
           "\"protocol_errors\": %" PRIu64 "}\n",
           is_vhost(o) ? "vhost-user" : "vfio-user", o->vm.nvme.io_queues,
           o->vm.nvme.qd, o->vm.workload.write_pct, secs, ios,
           (double)ios / secs, lat_mean(h) / 1e3,
           h->count ? h->min_ns / 1e3 : 0.0,
           lat_percentile(h, 50) / 1e3, lat_percentile(h, 99) / 1e3,
           lat_percentile(h, 99.9) / 1e3, h->max_ns / 1e3, s->io_errors,
           errors);
}

int cmd_bench(const CliOptions *o)
{
    Error *err = NULL;
    BenchVm b;
    TestVmConfig cfg = o->vm;
    cfg.workload.no_verify = true;
    if (!o->socket) {
        fprintf(stderr, "stormig-testvm bench: --socket PATH is required\n");
        return 2;
    }
    LatHist *h = malloc(sizeof(*h));
    if (!h || !bench_vm_boot(&b, o, &cfg, &err)) {
        fprintf(stderr, "stormig-testvm: %s\n",
                err ? error_get_pretty(err) : "out of memory");
        error_free(err);
        free(h);
        return 1;
    }
    workload_run(b.wl, o->ramp_ms);
    lat_reset(h);
    int rc = 1;
    if (workload_track_latency(b.wl, h, &err)) {
        const WorkloadStats *s = workload_stats(b.wl);
        uint64_t c0 = completions(s), t0 = clock_ns();
        workload_run(b.wl, o->runtime_ms);
        uint64_t elapsed = clock_ns() - t0, ios = completions(s) - c0;
        workload_track_latency(b.wl, NULL, NULL);
        bool drained = workload_drain(b.wl, 10000);
        print_result(o, h, elapsed, ios, s, protocol_errors(&b));
        rc = drained && s->io_errors == 0 && protocol_errors(&b) == 0 &&
             h->count > 0 ? 0 : 1;
    } else {
        fprintf(stderr, "stormig-testvm: %s\n", error_get_pretty(err));
        error_free(err);
    }
    bench_vm_free(&b);
    free(h);
    return rc;
}

/* run --transport vhost-user: the verifying workload over virtio-scsi. */
int cmd_run_vhost(const CliOptions *o)
{
    Error *err = NULL;
    BenchVm b;
    if (!bench_vm_boot(&b, o, &o->vm, &err)) {
        fprintf(stderr, "stormig-testvm: %s\n", error_get_pretty(err));
        error_free(err);
        return 1;
    }
    workload_run(b.wl, o->seconds * 1000);
    bool drained = workload_drain(b.wl, 10000);
    const WorkloadStats *s = workload_stats(b.wl);
    printf("ops %" PRIu64 " (reads %" PRIu64 ", writes %" PRIu64 ", "
           "verified %" PRIu64 ")\n", s->reads + s->writes, s->reads,
           s->writes, s->verified);
    printf("errors: verify %" PRIu64 ", io %" PRIu64 ", protocol %" PRIu64
           ", never completed %u\n", s->verify_errors, s->io_errors,
           b.vs->st->errors, workload_in_flight(b.wl));
    bool ok = drained && s->verify_errors == 0 && s->io_errors == 0 &&
              b.vs->st->errors == 0 && s->verified > 0;
    printf("result: %s\n", ok ? "PASS" : "FAIL");
    bench_vm_free(&b);
    return ok ? 0 : 1;
}
