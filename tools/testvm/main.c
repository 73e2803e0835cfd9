/*
 * stormig-testvm: a small VM that drives an NVMe controller over
 * vfio-user like a guest driver, runs a verifying workload and live-
 * migrates between two device servers.
 *
 *   stormig-testvm run --socket PATH [--mem 64M] [--queues 4] [--qd 32]
 *                  [--namespaces 2] [--seconds N]
 *   stormig-testvm migrate-test --src-socket A --dst-socket B
 *                  --src-qmp QA --dst-qmp QB [--rounds 10] [...]
 *   stormig-testvm bench --socket PATH [--transport vhost-user]
 *                  [--queues 1] [--qd 32] [--write-pct 0] [--runtime-ms N]
 */
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/keyval.h"
#include "util/log.h"
#include "util/loop.h"

enum {
    O_SOCKET = 256, O_SRC_SOCKET, O_DST_SOCKET, O_SRC_QMP, O_DST_QMP, O_MEM,
    O_QUEUES, O_QD, O_CQ, O_NS, O_SECONDS, O_ROUNDS, O_ROUND_MS, O_FAIL_AT,
    O_FAIL_ROUND, O_DST_FAIL, O_CQ_STALL, O_BLOCKS, O_WRITE_PCT, O_WRR,
    O_TRANSPORT, O_RUNTIME_MS, O_RAMP_MS, O_SQ, O_DMA_NO_FD, O_AEN_TEST,
};

static const struct option long_opts[] = {
    { "socket", required_argument, NULL, O_SOCKET },
    { "src-socket", required_argument, NULL, O_SRC_SOCKET },
    { "dst-socket", required_argument, NULL, O_DST_SOCKET },
    { "src-qmp", required_argument, NULL, O_SRC_QMP },
    { "dst-qmp", required_argument, NULL, O_DST_QMP },
    { "mem", required_argument, NULL, O_MEM },
    { "queues", required_argument, NULL, O_QUEUES },
    { "qd", required_argument, NULL, O_QD },
    { "cq-entries", required_argument, NULL, O_CQ },
    { "namespaces", required_argument, NULL, O_NS },
    { "blocks", required_argument, NULL, O_BLOCKS },
    { "write-pct", required_argument, NULL, O_WRITE_PCT },
    { "seconds", required_argument, NULL, O_SECONDS },
    { "rounds", required_argument, NULL, O_ROUNDS },
    { "round-ms", required_argument, NULL, O_ROUND_MS },
    { "fail-at", required_argument, NULL, O_FAIL_AT },
    { "fail-round", required_argument, NULL, O_FAIL_ROUND },
    { "dst-fail", no_argument, NULL, O_DST_FAIL },
    { "cq-stall", no_argument, NULL, O_CQ_STALL },
    { "wrr", no_argument, NULL, O_WRR },
    { "transport", required_argument, NULL, O_TRANSPORT },
    { "runtime-ms", required_argument, NULL, O_RUNTIME_MS },
    { "ramp-ms", required_argument, NULL, O_RAMP_MS },
    { "sq-entries", required_argument, NULL, O_SQ },
    { "dma-no-fd", no_argument, NULL, O_DMA_NO_FD },
    { "aen-test", no_argument, NULL, O_AEN_TEST },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

static void usage(void)
{
    printf(
"Usage: stormig-testvm run --socket PATH [options]\n"
"       stormig-testvm migrate-test --src-socket A --dst-socket B\n"
"                      --src-qmp QA --dst-qmp QB [options]\n"
"       stormig-testvm bench --socket PATH [options]\n"
"  --mem SIZE (64M) --queues N (4) --qd N (32) --namespaces N (2)\n"
"  --cq-entries N (qd+1) --blocks N (working set per disk, 1024)\n"
"  --write-pct N (50) --seconds N (run: 5)\n"
"  --rounds N (10) --round-ms N (200): migrations and workload between\n"
"  --fail-at PHASE [--fail-round N]: cancel a migration at setup,\n"
"      precopy, stop, stop-copy, resume or switchover\n"
"  --dst-fail [--fail-round N]: the destination daemon quits after\n"
"      STOP_COPY\n"
"  --cq-stall: queue 1 stops consuming completions before round 0;\n"
"      migrate-test checks they arrive in the order the device made them\n"
"  --dma-no-fd (run, migrate-test): map guest memory without its fd;\n"
"      the device reads and writes it with vfio-user DMA_READ /\n"
"      DMA_WRITE requests\n"
"  --aen-test (migrate-test): raise an async event before round 0 and\n"
"      one during its pre-copy; both must arrive on the destination\n"
"  --wrr: weighted round robin arbitration (CC.AMS)\n"
"  --sq-entries N (qd+1): NVMe I/O queue size\n"
"  --transport vfio-user|vhost-user (run, bench): NVMe over vfio-user or\n"
"      virtio-scsi over vhost-user (--namespaces: LUNs 0..N-1)\n"
"  --runtime-ms N (3000) --ramp-ms N (500): bench's measured window\n"
"      (--blocks 0: whole disks; the data is not verified)\n"
"migrate-test expects a daemon that quits (the source after a completed\n"
"migration) to be restarted at the same paths with --incoming defer.\n");
}

static bool num(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    return parse_u64(s, out) && *out >= min && *out <= max;
}

static bool set_opt(CliOptions *o, int c, const char *a)
{
    uint64_t v = 0;
    switch (c) {
    case O_SOCKET: o->socket = a; return true;
    case O_SRC_SOCKET: o->src_socket = a; return true;
    case O_DST_SOCKET: o->dst_socket = a; return true;
    case O_SRC_QMP: o->src_qmp = a; return true;
    case O_DST_QMP: o->dst_qmp = a; return true;
    case O_DST_FAIL: o->dst_fail = true; return true;
    case O_CQ_STALL: o->cq_stall = true; return true;
    case O_DMA_NO_FD: o->dma_no_fd = true; return true;
    case O_AEN_TEST: o->aen_test = true; return true;
    case O_WRR: o->vm.nvme.wrr = true; return true;
    case O_TRANSPORT:
        o->transport = a;
        return strcmp(a, "vfio-user") == 0 || strcmp(a, "vhost-user") == 0;
    case O_RUNTIME_MS: return num(a, 1, 3600000, &o->runtime_ms);
    case O_RAMP_MS: return num(a, 0, 600000, &o->ramp_ms);
    case O_SQ: return num(a, 2, DRV_MAX_SQ_ENTRIES, &v) &&
                      (o->vm.nvme.sq_entries = (unsigned)v);
    case O_FAIL_AT: return mig_phase_parse(a, &o->fail_at);
    case O_MEM: return num(a, 1 << 20, 16ull << 30, &o->vm.mem_size);
    case O_QUEUES: return num(a, 1, DRV_MAX_IO_QUEUES, &v) &&
                          (o->vm.nvme.io_queues = (unsigned)v);
    case O_QD: return num(a, 1, DRV_MAX_QD, &v) &&
                      (o->vm.nvme.qd = (unsigned)v);
    case O_CQ: return num(a, 2, DRV_MAX_SQ_ENTRIES, &v) &&
                      (o->vm.nvme.cq_entries = (unsigned)v);
    case O_NS: return num(a, 1, TVM_MAX_DISKS, &v) &&
                      (o->vm.nvme.namespaces = (unsigned)v);
    case O_BLOCKS: return num(a, 0, 1ull << 24, &o->vm.workload.max_blocks);
    case O_WRITE_PCT: return num(a, 0, 100, &v) &&
                             ((o->vm.workload.write_pct = (unsigned)v), 1);
    case O_SECONDS: return num(a, 0, 86400, &o->seconds);
    case O_ROUNDS: return num(a, 0, 100000, &v) &&
                          ((o->rounds = (unsigned)v), 1);
    case O_ROUND_MS: return num(a, 0, 600000, &o->round_ms);
    case O_FAIL_ROUND: return num(a, 0, 100000, &v) &&
                              ((o->fail_round = (int)v), 1);
    }
    return false;
}

static void defaults(CliOptions *o)
{
    *o = (CliOptions){
        .vm = { .mem_size = 64u << 20,
                .nvme = { .io_queues = 4, .qd = 32, .namespaces = 2 },
                .workload = { .max_blocks = 1024, .write_pct = 50 } },
        .seconds = 5, .rounds = 10, .round_ms = 200, .fail_round = -1,
        .runtime_ms = 3000, .ramp_ms = 500,
    };
    o->vm.workload.seed = clock_ns();
}

int main(int argc, char **argv)
{
    CliOptions o;
    int c;
    defaults(&o);
    log_set_tag("testvm");
    if (argc < 2 || strcmp(argv[1], "--help") == 0) {
        usage();
        return argc < 2 ? 2 : 0;
    }
    optind = 2;
    while ((c = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
        if (c == 'h') {
            usage();
            return 0;
        }
        if (c == '?' || !set_opt(&o, c, optarg)) {
            fprintf(stderr, "stormig-testvm: bad option '%s' (see --help)\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (strcmp(argv[1], "run") == 0) {
        return cmd_run(&o);
    }
    if (strcmp(argv[1], "migrate-test") == 0) {
        return cmd_migrate_test(&o);
    }
    if (strcmp(argv[1], "bench") == 0) {
        return cmd_bench(&o);
    }
    fprintf(stderr, "stormig-testvm: unknown command '%s'\n", argv[1]);
    return 2;
}
