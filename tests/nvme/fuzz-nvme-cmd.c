/*
 * Fuzz target: random submission queue entries on the admin queue and an
 * I/O queue (and raw BAR0 / MSI-X writes) against a controller whose guest
 * memory is a buffer. Input: records of one selector byte and 64 bytes.
 * Selector bits 0-1: 0 admin SQE, 1 I/O SQE, 2 BAR0 write, 3 MSI-X write;
 * bit 2: point the data pointers into guest memory; bit 3: from this
 * record on, the upper half of guest memory is reached only by
 * asynchronous copies (as vfio-user memory mapped without an fd); bit 4:
 * those copies fail.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "guest.h"

#define MEM_SIZE (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static TestGuest *guest;

/* The scratch images live in the working directory: remove them. */
static void free_guest(void)
{
    tg_free(guest);
    guest = NULL;
}

static void fix_pointers(NvmeCmd *c)
{
    /* Land most pointers inside guest memory, keeping the low bits the
     * fuzzer chose (offsets, alignment errors). */
    c->dptr[0] = TG_BASE + c->dptr[0] % MEM_SIZE;
    c->dptr[1] = TG_BASE + c->dptr[1] % MEM_SIZE;
}

static void drain(TestGuest *tg)
{
    NvmeCqe cqe;
    for (int i = 0; i < 64; i++) {
        loop_run_once(tg->loop, 0);
        while (tg_peek(tg, 0, &cqe, true) || tg_peek(tg, 1, &cqe, true)) {
        }
        NvmeCtrlStats st;
        nvme_ctrl_get_stats(tg->ctrl, &st);
        if (!st.in_flight && i > 2) {
            break;
        }
    }
}

static void one_record(TestGuest *tg, uint8_t sel, const uint8_t *rec)
{
    NvmeCmd c;
    uint64_t off, val;
    memcpy(&c, rec, 64);
    if (sel & 8) {
        tg->copy_from = MEM_SIZE / 2;
    }
    tg->fail_copies = sel & 16;
    switch (sel & 3) {
    case 0:
    case 1:
        if (sel & 4) {
            fix_pointers(&c);
        }
        tg_submit(tg, sel & 1, &c);
        break;
    case 2:
        memcpy(&off, rec, 8);
        memcpy(&val, rec + 8, 8);
        /* Keep the controller enabled most of the time. */
        if ((off % NVME_BAR0_SIZE) != NVME_REG_CC || (val & 1)) {
            nvme_mmio_write(tg->ctrl, off % NVME_BAR0_SIZE,
                            rec[16] & 8 ? 8 : 4, val);
        }
        break;
    default:
        memcpy(&off, rec, 8);
        memcpy(&val, rec + 8, 8);
        nvme_msix_write(tg->ctrl, off % NVME_MSIX_BAR_SIZE, 4, val);
        break;
    }
    drain(tg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!guest) {
        guest = tg_new(2, 1u << 20, MEM_SIZE);
        if (!guest) {
            abort();
        }
        atexit(free_guest);
    }
    TestGuest *tg = guest;
    memset(tg->mem, 0, tg->size);
    memset(tg->q, 0, sizeof(tg->q));
    tg->brk = TG_BASE;
    tg->copy_from = 0;
    tg->fail_copies = false;
    if (!tg_make_ctrl(tg, "num-queues=2,mqes=64") || !tg_enable(tg, 16) ||
        !tg_create_io_queue(tg, 1, 16)) {
        abort();
    }
    for (size_t pos = 0; pos + 65 <= size && pos < 65 * 64; pos += 65) {
        one_record(tg, data[pos], data + pos + 1);
    }
    nvme_ctrl_free(tg->ctrl);
    tg->ctrl = NULL;
    return 0;
}
