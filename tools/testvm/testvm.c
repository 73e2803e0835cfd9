/* A test VM: boot, health and report. */
#include "testvm.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

TestVm *testvm_boot(Transport *t, const TestVmConfig *cfg, Error **errp)
{
    TestVm *vm = calloc(1, sizeof(*vm));
    if (!vm) {
        transport_close(t);
        error_setg(errp, "out of memory");
        return NULL;
    }
    vm->t = t;
    vm->gm = gm_new(cfg->mem_size, errp);
    if (vm->gm) {
        gm_format(vm->gm);
        vm->drv = nvme_drv_init(t, vm->gm, &cfg->nvme, errp);
    }
    if (vm->drv) {
        vm->wl = workload_new(vm->gm, &vm->drv->ops, vm->drv, &cfg->workload,
                              errp);
    }
    if (!vm->wl) {
        testvm_free(vm);
        return NULL;
    }
    return vm;
}

void testvm_free(TestVm *vm)
{
    if (!vm) {
        return;
    }
    workload_free(vm->wl);
    nvme_drv_free(vm->drv);
    transport_close(vm->t);
    gm_free(vm->gm);
    free(vm);
}

bool testvm_healthy(const TestVm *vm)
{
    const WorkloadStats *s = workload_stats(vm->wl);
    return s->verify_errors == 0 && s->io_errors == 0 &&
           vm->drv->st->errors == 0;
}

void testvm_print_stats(const TestVm *vm, const char *prefix)
{
    const WorkloadStats *s = workload_stats(vm->wl);
    printf("%sreads %" PRIu64 " writes %" PRIu64 " verified %" PRIu64
           " verify-errors %" PRIu64 " io-errors %" PRIu64
           " protocol-errors %" PRIu64 " in-flight %u\n", prefix,
           s->reads, s->writes, s->verified, s->verify_errors, s->io_errors,
           vm->drv->st->errors, workload_in_flight(vm->wl));
}
