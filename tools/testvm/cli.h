/* stormig-testvm command line: options and the two commands. */
#ifndef STORMIG_TESTVM_CLI_H
#define STORMIG_TESTVM_CLI_H

#include "migrate.h"

typedef struct CliOptions {
    const char *socket;             /* run, bench */
    const char *transport;          /* vfio-user (NULL) or vhost-user */
    uint64_t runtime_ms, ramp_ms;   /* bench: measured window, ramp-up */
    const char *src_socket, *dst_socket, *src_qmp, *dst_qmp;
    TestVmConfig vm;
    uint64_t seconds;               /* run: workload time */
    unsigned rounds;                /* migrate-test */
    uint64_t round_ms;              /* workload time between rounds */
    MigPhase fail_at;               /* cancel there (MIG_PHASE_NONE: no) */
    int fail_round;                 /* round of fail_at / dst_fail (-1) */
    bool dst_fail;                  /* destination dies after STOP_COPY */
    bool cq_stall;                  /* queue 1 stops consuming before */
    bool dma_no_fd;                 /* run: guest memory mapped without
                                       its fd (vfio-user DMA_READ/WRITE) */
    bool aen_test;                  /* migrate-test: async events raised
                                       before and during round 0 */
} CliOptions;

int cmd_run(const CliOptions *o);
int cmd_migrate_test(const CliOptions *o);
int cmd_bench(const CliOptions *o);
int cmd_run_vhost(const CliOptions *o);
/* Prints the final report; returns the exit status (1 on any error). */
int report_final(TestVm *vm, unsigned migrations, unsigned failures_expected,
                 unsigned failures);

#endif
