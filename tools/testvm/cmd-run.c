/* stormig-testvm run: boot on one device and run the workload. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

int report_final(TestVm *vm, unsigned migrations, unsigned failures_expected,
                 unsigned failures)
{
    bool drained = workload_drain(vm->wl, 10000);
    const WorkloadStats *s = workload_stats(vm->wl);
    printf("ops %llu (reads %llu, writes %llu, verified %llu)\n",
           (unsigned long long)(s->reads + s->writes),
           (unsigned long long)s->reads, (unsigned long long)s->writes,
           (unsigned long long)s->verified);
    printf("errors: verify %llu, io %llu, protocol %llu, never completed "
           "%u\n", (unsigned long long)s->verify_errors,
           (unsigned long long)s->io_errors,
           (unsigned long long)vm->drv->st->errors,
           workload_in_flight(vm->wl));
    printf("migrations %u, failed as asked %u of %u\n", migrations,
           failures, failures_expected);
    bool ok = drained && testvm_healthy(vm) &&
              failures == failures_expected && s->verified > 0;
    printf("result: %s\n", ok ? "PASS" : "FAIL");
    return ok ? 0 : 1;
}

int cmd_run(const CliOptions *o)
{
    Error *err = NULL;
    if (!o->socket) {
        fprintf(stderr, "stormig-testvm run: --socket PATH is required\n");
        return 2;
    }
    if (o->transport && strcmp(o->transport, "vhost-user") == 0) {
        return cmd_run_vhost(o);
    }
    Transport *t = transport_vfu_connect_opts(o->socket, o->dma_no_fd, &err);
    TestVm *vm = t ? testvm_boot(t, &o->vm, &err) : NULL;
    if (!vm) {
        fprintf(stderr, "stormig-testvm: %s\n", error_get_pretty(err));
        error_free(err);
        return 1;
    }
    if (o->cq_stall) {
        vm->drv->st->q[1].stalled = 1;
    }
    workload_run(vm->wl, o->seconds * 1000);
    vm->drv->st->q[1].stalled = 0;
    if (t->ops->dma_requests) {
        printf("device DMA requests answered: %llu\n",
               (unsigned long long)t->ops->dma_requests(t));
    }
    int rc = report_final(vm, 0, 0, 0);
    testvm_free(vm);
    return rc;
}
