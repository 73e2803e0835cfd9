/*
 * Live migration of a test VM to a second test VM on another device
 * server (each attached to its own stormigd):
 *
 *   setup     the source device starts DMA dirty logging; all of guest
 *             memory counts as dirty; the destination maps fresh memory.
 *   pre-copy  the workload keeps running; each round copies the pages
 *             dirtied by the VM (tracked in GuestMem) and by the device
 *             (the DMA dirty log), until few remain.
 *   stop      the VM pauses (no more guest steps: commands already
 *             submitted stay in flight), the device goes RUNNING -> STOP
 *             and completes them into guest memory; the last dirty pages
 *             are copied; STOP -> STOP_COPY and the device state is read.
 *   resume    destination device: RESUMING, state written, -> STOP.
 *   switchover the disks change owner (hook, e.g. the stormigd monitors);
 *             the destination device goes RUNNING, the driver and the
 *             workload attach to the copied memory and go on.
 *
 * Failure or cancel before the destination runs: the source device goes
 * back to RUNNING (through STOP), logging stops, the source VM resumes.
 */
#ifndef STORMIG_TESTVM_MIGRATE_H
#define STORMIG_TESTVM_MIGRATE_H

#include "testvm.h"

typedef enum MigPhase {
    MIG_PHASE_NONE,
    MIG_PHASE_SETUP,
    MIG_PHASE_PRECOPY,
    MIG_PHASE_STOP,
    MIG_PHASE_STOP_COPY,
    MIG_PHASE_RESUME,
    MIG_PHASE_SWITCHOVER,
} MigPhase;

const char *mig_phase_name(MigPhase phase);
bool mig_phase_parse(const char *s, MigPhase *phase);

typedef struct MigHooks {
    void *opaque;
    /* Before anything changes: may refuse (allowlist). */
    bool (*check)(void *opaque, Error **errp);
    /* After each pre-copy round, the source VM still running. */
    void (*precopy_round)(void *opaque, TestVm *src, unsigned round);
    /* Disk handoff: source daemon gives its disks up, destination takes
     * them. Failure leaves them with the source. */
    bool (*switchover)(void *opaque, Error **errp);
    /* Right after the phase named by fail_at ran: return false to make
     * the migration fail there (tests: cancel, destination failure). */
    bool (*inject)(void *opaque, MigPhase phase, Error **errp);
} MigHooks;

typedef struct MigOptions {
    unsigned max_precopy_rounds;    /* default 8 */
    uint64_t precopy_ms;            /* workload time per round (20) */
    uint64_t stop_pages;            /* stop when fewer are dirty (64) */
} MigOptions;

/* Where the downtime goes, in order (microseconds). */
typedef struct MigTimes {
    uint64_t quiesce_us;            /* source device RUNNING -> STOP */
    uint64_t memory_us;             /* last dirty pages of guest memory */
    uint64_t save_us;               /* STOP_COPY, device state read */
    uint64_t load_us;               /* destination: map, RESUMING, write */
    uint64_t handoff_us;            /* disk ownership (switchover hook) */
    uint64_t start_us;              /* destination RUNNING, driver attach */
} MigTimes;

typedef struct MigResult {
    unsigned precopy_rounds;
    uint64_t pages_copied;
    uint64_t downtime_us;           /* source paused -> destination runs */
    MigTimes times;
    size_t state_size;              /* device state bytes */
    unsigned in_flight_at_stop;     /* commands outstanding at pause */
    MigPhase failed_phase;
} MigResult;

/*
 * Migrates src to the device behind dst_t (taken in every case). On
 * success returns the destination VM and frees src. On failure returns
 * NULL with errp set and src running again.
 */
TestVm *testvm_migrate(TestVm *src, Transport *dst_t, const MigOptions *o,
                       const MigHooks *hooks, MigResult *res, Error **errp);

#endif
