/*
 * The test VM's core over an in-process NVMe controller: the workload
 * verifies (and does catch a corrupted disk), back-and-forth migrations
 * with I/O in flight, a CQ-full backlog carried across, async events
 * raised before and during migration, and a failure injected at each
 * phase leaving the source running.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "block/block.h"
#include "block/ownership.h"
#include "migrate.h"
#include "transport-local.h"

#define IMG_SIZE (4u << 20)
#define NR_DISKS 2
#define PROPS "drive=tvdisk0:tvdisk1,serial=TESTVM,num-queues=4,mqes=256"

typedef struct Fixture {
    EventLoop *loop;
    char *images[NR_DISKS];
    BlockBackend *blks[NR_DISKS];
} Fixture;

static int setup(void **state)
{
    Fixture *f = calloc(1, sizeof(*f));
    blk_ownership_init(true);
    f->loop = loop_new(NULL);
    for (unsigned i = 0; i < NR_DISKS; i++) {
        char name[16];
        snprintf(name, sizeof(name), "tvdisk%u", i);
        f->images[i] = strdup("testvm-img-XXXXXX");
        int fd = mkstemp(f->images[i]);
        if (fd < 0 || ftruncate(fd, IMG_SIZE) < 0) {
            return -1;
        }
        close(fd);
        BlockOpenOptions o = { .node_name = name, .filename = f->images[i] };
        f->blks[i] = blk_open(&o, NULL);
        if (!f->blks[i]) {
            return -1;
        }
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    Fixture *f = *state;
    for (unsigned i = 0; i < NR_DISKS; i++) {
        blk_close(f->blks[i]);
        unlink(f->images[i]);
        free(f->images[i]);
    }
    loop_free(f->loop);
    free(f);
    return 0;
}

static Transport *new_transport(Fixture *f)
{
    Error *err = NULL;
    Transport *t = transport_local_new(f->loop, PROPS, &err);
    if (!t) {
        fail_msg("%s", error_get_pretty(err));
    }
    return t;
}

static TestVm *boot(Fixture *f, unsigned queues, unsigned qd,
                    unsigned cq_entries, uint64_t max_blocks)
{
    TestVmConfig cfg = {
        .mem_size = 16u << 20,
        .nvme = { .io_queues = queues, .qd = qd, .cq_entries = cq_entries,
                  .namespaces = NR_DISKS },
        .workload = { .max_blocks = max_blocks, .write_pct = 50,
                      .seed = 42 },
    };
    Error *err = NULL;
    TestVm *vm = testvm_boot(new_transport(f), &cfg, &err);
    if (!vm) {
        fail_msg("boot: %s", error_get_pretty(err));
    }
    return vm;
}

static void assert_healthy(TestVm *vm)
{
    const WorkloadStats *s = workload_stats(vm->wl);
    assert_int_equal(s->verify_errors, 0);
    assert_int_equal(s->io_errors, 0);
    assert_int_equal(vm->drv->st->errors, 0);
}

static void test_workload_verifies(void **state)
{
    Fixture *f = *state;
    TestVm *vm = boot(f, 4, 32, 0, 64);
    workload_run(vm->wl, 300);
    assert_true(workload_drain(vm->wl, 2000));
    const WorkloadStats *s = workload_stats(vm->wl);
    assert_true(s->writes > 100);
    assert_true(s->verified > 100);
    assert_true(vm->t->irqs > 0);
    assert_healthy(vm);
    /* Every command the driver submitted completed exactly once. */
    for (unsigned q = 1; q <= 4; q++) {
        assert_int_equal(vm->drv->st->q[q].submitted,
                         vm->drv->st->q[q].completed);
    }
    testvm_free(vm);
}

/* The driver catches a completion doubled by the device: a second CQE
 * for a cid that already completed is a protocol error, and nothing is
 * handed to the workload twice. */
static void test_detects_double_completion(void **state)
{
    Fixture *f = *state;
    TestVm *vm = boot(f, 1, 8, 0, 64);
    workload_run(vm->wl, 100);
    assert_true(workload_drain(vm->wl, 2000));
    DrvQueue *q = &vm->drv->st->q[1];
    uint64_t completed = q->completed;
    assert_true(completed > 0);
    /* The last CQE the device posted, written again as the next one. */
    uint16_t last = (uint16_t)((q->cq_head + q->cq_size - 1) % q->cq_size);
    uint8_t phase = q->cq_head == 0 ? (uint8_t)!q->phase : q->phase;
    NvmeCqe *ring = gm_ptr(vm->gm, q->cq_gpa, q->cq_size * sizeof(NvmeCqe));
    NvmeCqe dup = ring[last];
    assert_int_equal(dup.status & 1, phase);
    dup.status = (uint16_t)((dup.status & ~1u) | q->phase);
    ring[q->cq_head] = dup;
    workload_step(vm->wl);
    assert_int_equal(vm->drv->st->errors, 1);
    assert_int_equal(q->completed, completed);
    assert_int_equal(workload_stats(vm->wl)->verify_errors, 0);
    testvm_free(vm);
}

static void test_detects_corruption(void **state)
{
    Fixture *f = *state;
    TestVm *vm = boot(f, 1, 8, 0, 8);
    workload_run(vm->wl, 100);
    assert_true(workload_drain(vm->wl, 2000));
    assert_healthy(vm);
    /* Another writer scribbles over the working set behind its back. */
    uint8_t junk[TVM_BLOCK];
    memset(junk, 0x5a, sizeof(junk));
    for (unsigned b = 0; b < 8; b++) {
        assert_int_equal(blk_pwrite_sync(f->blks[0], b * TVM_BLOCK, junk,
                                         TVM_BLOCK), 0);
        assert_int_equal(blk_pwrite_sync(f->blks[1], b * TVM_BLOCK, junk,
                                         TVM_BLOCK), 0);
    }
    vm->wl->st->write_pct = 0;
    workload_run(vm->wl, 100);
    assert_true(workload_stats(vm->wl)->verify_errors > 0);
    testvm_free(vm);
}

static TestVm *migrate_ok(Fixture *f, TestVm *src, const MigHooks *h,
                          MigResult *res)
{
    MigOptions o = { .precopy_ms = 10 };
    Error *err = NULL;
    TestVm *dst = testvm_migrate(src, new_transport(f), &o, h, res, &err);
    if (!dst) {
        fail_msg("migrate: %s", error_get_pretty(err));
    }
    return dst;
}

static void test_migrate_back_and_forth(void **state)
{
    Fixture *f = *state;
    TestVm *vm = boot(f, 4, 32, 0, 256);
    workload_run(vm->wl, 50);
    for (int round = 0; round < 10; round++) {
        uint64_t before = workload_stats(vm->wl)->reads +
                          workload_stats(vm->wl)->writes;
        MigResult res;
        vm = migrate_ok(f, vm, NULL, &res);
        assert_true(res.in_flight_at_stop > 0);
        assert_true(res.state_size > 0);
        assert_true(res.pages_copied > 0);
        workload_run(vm->wl, 30);
        assert_true(workload_stats(vm->wl)->reads +
                    workload_stats(vm->wl)->writes > before);
        assert_healthy(vm);
    }
    assert_true(workload_drain(vm->wl, 2000));
    assert_healthy(vm);
    testvm_free(vm);
}

/* The guest stops consuming completions on queue 1 (its CQ holds 3), so
 * the controller keeps the rest pending; they reach the destination. */
static void test_cq_full_backlog(void **state)
{
    Fixture *f = *state;
    TestVm *vm = boot(f, 1, 16, 4, 256);
    vm->drv->st->q[1].stalled = 1;
    workload_run(vm->wl, 50);
    assert_int_equal(workload_in_flight(vm->wl), 16);
    MigResult res;
    vm = migrate_ok(f, vm, NULL, &res);
    assert_int_equal(res.in_flight_at_stop, 16);
    DrvQueue *q = &vm->drv->st->q[1];
    assert_int_equal(q->completed, 0);
    q->stalled = 0;
    assert_true(workload_drain(vm->wl, 2000));
    assert_int_equal(q->completed, q->submitted);
    assert_int_equal(workload_stats(vm->wl)->reads +
                     workload_stats(vm->wl)->writes, 16);
    assert_healthy(vm);
    testvm_free(vm);
}

/* A temperature event raised before the migration (no AER outstanding,
 * so the controller keeps it) and an invalid-doorbell error raised by the
 * guest during pre-copy both arrive on the destination. */
static void raise_doorbell_error(void *opaque, TestVm *src, unsigned round)
{
    if (round == 0) {
        assert_true(nvme_drv_doorbell(src->drv, 40, false, 1, NULL));
    }
}

static void test_async_events(void **state)
{
    Fixture *f = *state;
    TestVm *vm = boot(f, 2, 8, 0, 64);
    NvmeCmd aec = { .opcode = NVME_ADM_SET_FEATURES,
                    .cdw10 = NVME_FEAT_ASYNC_EVENT, .cdw11 = 0x2 };
    NvmeCmd temp = { .opcode = NVME_ADM_SET_FEATURES,
                     .cdw10 = NVME_FEAT_TEMP_THRESH, .cdw11 = 200 };
    assert_int_equal(nvme_drv_admin(vm->drv, &aec, NULL, NULL), 0);
    assert_int_equal(nvme_drv_admin(vm->drv, &temp, NULL, NULL), 0);
    workload_run(vm->wl, 20);
    MigHooks h = { .precopy_round = raise_doorbell_error };
    MigResult res;
    vm = migrate_ok(f, vm, &h, &res);
    assert_int_equal(vm->drv->st->nr_aen, 0);
    assert_true(nvme_drv_post_aers(vm->drv, 3, NULL));
    for (int i = 0; i < 200 && vm->drv->st->nr_aen < 2; i++) {
        workload_run(vm->wl, 5);
    }
    assert_int_equal(vm->drv->st->nr_aen, 2);
    uint32_t types = 0;
    for (unsigned i = 0; i < 2; i++) {
        types |= 1u << (vm->drv->st->aen_dw0[i] & 7);
    }
    assert_int_equal(types, 1u << NVME_AER_TYPE_SMART |
                            1u << NVME_AER_TYPE_ERROR);
    assert_healthy(vm);
    testvm_free(vm);
}

typedef struct Inject {
    MigPhase at;
    unsigned hits;
} Inject;

static bool inject_fail(void *opaque, MigPhase phase, Error **errp)
{
    Inject *in = opaque;
    if (phase != in->at) {
        return true;
    }
    in->hits++;
    error_setg(errp, "injected failure after %s", mig_phase_name(phase));
    return false;
}

static void test_fail_each_phase(void **state)
{
    Fixture *f = *state;
    TestVm *vm = boot(f, 2, 16, 0, 128);
    workload_run(vm->wl, 30);
    for (MigPhase p = MIG_PHASE_SETUP; p <= MIG_PHASE_SWITCHOVER; p++) {
        Inject in = { .at = p };
        MigHooks h = { .opaque = &in, .inject = inject_fail };
        MigOptions o = { .precopy_ms = 5 };
        MigResult res;
        Error *err = NULL;
        assert_null(testvm_migrate(vm, new_transport(f), &o, &h, &res,
                                   &err));
        assert_int_equal(in.hits, 1);
        assert_int_equal(res.failed_phase, p);
        assert_non_null(strstr(error_get_pretty(err), mig_phase_name(p)));
        error_free(err);
        uint64_t before = workload_stats(vm->wl)->verified;
        workload_run(vm->wl, 30);
        assert_true(workload_stats(vm->wl)->verified > before);
        assert_healthy(vm);
    }
    /* And it still migrates. */
    MigResult res;
    vm = migrate_ok(f, vm, NULL, &res);
    assert_true(workload_drain(vm->wl, 2000));
    assert_healthy(vm);
    testvm_free(vm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_workload_verifies, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_detects_double_completion,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_detects_corruption, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_migrate_back_and_forth, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cq_full_backlog, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_async_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fail_each_phase, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
