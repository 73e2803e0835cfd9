/*
 * One test VM: guest memory, the device transport, the guest driver and
 * the workload. Everything but the transport and the host-side pointers
 * lives in guest memory.
 */
#ifndef STORMIG_TESTVM_TESTVM_H
#define STORMIG_TESTVM_TESTVM_H

#include "guest-mem.h"
#include "nvme-drv.h"
#include "transport.h"
#include "workload.h"

typedef struct TestVm {
    GuestMem *gm;
    Transport *t;
    NvmeDrv *drv;
    Workload *wl;
} TestVm;

typedef struct TestVmConfig {
    uint64_t mem_size;
    NvmeDrvConfig nvme;
    WorkloadConfig workload;
} TestVmConfig;

/* Boots a fresh VM on transport t (taken in every case). */
TestVm *testvm_boot(Transport *t, const TestVmConfig *cfg, Error **errp);
/* Frees the VM, its transport and its memory. */
void testvm_free(TestVm *vm);

/* Zero verify errors, zero I/O errors, zero driver protocol errors. */
bool testvm_healthy(const TestVm *vm);
void testvm_print_stats(const TestVm *vm, const char *prefix);

#endif
