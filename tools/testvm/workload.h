/*
 * The verifying workload: random one-block reads and writes over every
 * queue and disk of a BlockDrvOps driver, each write carrying a pattern
 * derived from (disk, block, generation). A per-block generation table
 * says what every block must hold; every read is checked against it
 * (generation 0: never written, must read as zeroes).
 *
 * All of its state (table, in-flight slots, buffers, counters, the random
 * generator) is in guest memory, so it resumes after a migration with
 * workload_attach.
 */
#ifndef STORMIG_TESTVM_WORKLOAD_H
#define STORMIG_TESTVM_WORKLOAD_H

#include "blockdrv.h"
#include "guest-mem.h"
#include "latency.h"

#define WL_BUSY 0x80000000u         /* in a gens entry: I/O in flight */
#define WL_UNKNOWN 0x7fffffffu      /* a failed write: contents unknown */

typedef struct WlSlot {
    uint8_t busy;
    uint8_t write;
    uint8_t disk;
    uint8_t rsvd;
    uint32_t gen;
    uint64_t block;
} WlSlot;

typedef struct WorkloadStats {
    uint64_t reads, writes;
    uint64_t verified;              /* reads checked against the table */
    uint64_t verify_errors;         /* data that did not match */
    uint64_t io_errors;             /* commands the device failed */
} WorkloadStats;

typedef struct WorkloadState {
    uint32_t magic;
    uint32_t nr_queues, qd, nr_disks;
    uint32_t write_pct;
    uint32_t next_gen;
    uint64_t rng;
    uint64_t disk_blocks[TVM_MAX_DISKS];
    uint64_t gens_gpa[TVM_MAX_DISKS];
    uint64_t bufs_gpa;
    uint64_t slots_gpa;
    WorkloadStats stats;
    uint32_t no_verify;             /* benchmark: no patterns, no checks */
    uint32_t rsvd;
} WorkloadState;

typedef struct Workload {
    GuestMem *gm;
    const BlockDrvOps *ops;
    void *drv;
    WorkloadState *st;
    WlSlot *slots;
    bool paused;                    /* no new submissions */
    LatHist *lat;                   /* benchmark: latency of every I/O */
    uint64_t *submit_ns;            /* per tag, while lat is set */
} Workload;

typedef struct WorkloadConfig {
    uint64_t max_blocks;            /* per disk working set (0: whole) */
    unsigned write_pct;             /* 0..100 */
    uint64_t seed;
    bool no_verify;                 /* benchmark: data is not checked */
} WorkloadConfig;

Workload *workload_new(GuestMem *gm, const BlockDrvOps *ops, void *drv,
                       const WorkloadConfig *cfg, Error **errp);
Workload *workload_attach(GuestMem *gm, const BlockDrvOps *ops, void *drv,
                          Error **errp);
void workload_free(Workload *wl);

/* One round: reap every queue, refill to the queue depth (unless
 * paused), kick. Returns the number of completions. */
unsigned workload_step(Workload *wl);
/* Runs steps for ms milliseconds, waiting for interrupts when idle. */
void workload_run(Workload *wl, uint64_t ms);
/* Stops submitting and reaps until nothing is in flight or timeout.
 * Returns false on timeout. */
bool workload_drain(Workload *wl, int timeout_ms);
unsigned workload_in_flight(const Workload *wl);
const WorkloadStats *workload_stats(const Workload *wl);
/* Records submit-to-completion latency of every I/O into h (host memory,
 * not migrated); NULL stops it. */
bool workload_track_latency(Workload *wl, LatHist *h, Error **errp);

/* The pattern of (disk, block, gen) (exposed for tests). */
void workload_fill(uint8_t *buf, unsigned disk, uint64_t block, uint32_t gen);
bool workload_check(const uint8_t *buf, unsigned disk, uint64_t block,
                    uint32_t gen);

#endif
