/*
 * An in-process "guest driver" for the NVMe controller: guest memory is a
 * malloc'd buffer (translated in regions, so transfers split), MSI-X
 * messages are counted, and helpers drive BAR0 and the queues the way a
 * driver does. Namespaces are scratch image files in the working
 * directory (the build tree).
 */
#ifndef STORMIG_TESTS_NVME_GUEST_H
#define STORMIG_TESTS_NVME_GUEST_H

#include <stdbool.h>
#include <stdint.h>

#include "block/block.h"
#include "nvme/nvme.h"
#include "nvme/nvme-spec.h"

#define TG_BASE   0x40000000ull     /* guest memory starts here */
#define TG_PAGE   4096u
#define TG_MAX_NS 4

typedef struct TgQueue {
    uint64_t sq;
    uint64_t cq;
    uint16_t size;
    uint16_t cq_size;               /* 0: same as size */
    uint16_t sq_tail;
    uint16_t cq_head;
    bool phase;
    uint16_t next_cid;
} TgQueue;

typedef struct TestGuest {
    uint8_t *mem;
    uint64_t size;
    uint64_t brk;
    uint64_t region;                /* translate() stops at multiples */
    bool no_translate;              /* every access copied (dma_start) */
    uint64_t copy_from;             /* offsets from here on copied too */
    unsigned copy_delay_ms;         /* copies complete after this */
    bool fail_copies;               /* copies complete with an error */
    void *copies;                   /* started, not done */
    unsigned copies_out, copies_max;
    uint64_t copies_done;
    uint32_t cc_extra;              /* ORed into CC by tg_enable */
    bool msix_table_emulated;       /* tg_enable leaves the device's MSI-X
                                       table alone, as a VMM emulating it
                                       does */
    EventLoop *loop;
    NvmeCtrl *ctrl;
    NvmeTransportOps ops;
    char *images[TG_MAX_NS];
    BlockBackend *blks[TG_MAX_NS];
    unsigned nimg;
    unsigned irqs[NVME_MAX_VECTORS];
    uint64_t dirty_bytes;
    TgQueue q[NVME_MAX_QUEUES];
} TestGuest;

/* Guest with nimg scratch namespaces of img_size bytes ("tgdiskN"). */
TestGuest *tg_new(unsigned nimg, uint64_t img_size, uint64_t mem_size);
void tg_free(TestGuest *tg);
/* Creates tg->ctrl with drive= and serial= plus extra (may be NULL). */
bool tg_make_ctrl(TestGuest *tg, const char *extra);

uint64_t tg_alloc(TestGuest *tg, uint64_t size);
void *tg_ptr(TestGuest *tg, uint64_t gpa);

uint32_t tg_r32(TestGuest *tg, uint64_t off);
void tg_w32(TestGuest *tg, uint64_t off, uint32_t v);
void tg_w64(TestGuest *tg, uint64_t off, uint64_t v);

/* Programs the admin queue, enables MSI-X with every vector unmasked
 * (through the device's table unless msix_table_emulated), sets CC and
 * waits for CSTS.RDY. */
bool tg_enable(TestGuest *tg, uint16_t entries);
/* Clears CC.EN and waits for RDY=0 (running the loop). */
bool tg_disable(TestGuest *tg);
bool tg_wait_ready(TestGuest *tg, bool ready, int timeout_ms);

/* Queues a command (cid assigned and returned), rings the SQ doorbell. */
uint16_t tg_submit(TestGuest *tg, uint16_t qid, NvmeCmd *cmd);
/* Queues without ringing (for batches); tg_ring rings. */
uint16_t tg_queue_cmd(TestGuest *tg, uint16_t qid, NvmeCmd *cmd);
void tg_ring(TestGuest *tg, uint16_t qid);
/* Waits for the next CQE of qid; consumes it (rings the CQ head doorbell
 * unless ring is false). */
bool tg_poll(TestGuest *tg, uint16_t qid, NvmeCqe *cqe, int timeout_ms);
bool tg_peek(TestGuest *tg, uint16_t qid, NvmeCqe *cqe, bool ring);
/* Submits and waits; returns the status (DNR included) or 0xffff on
 * timeout. */
uint16_t tg_cmd(TestGuest *tg, uint16_t qid, NvmeCmd *cmd, uint32_t *dw0);

/* Create I/O CQ + SQ qid (vector = qid). */
bool tg_create_io_queue(TestGuest *tg, uint16_t qid, uint16_t entries);

void tg_run(TestGuest *tg, int ms);

/* Read/Write/Compare with PRPs built by the caller in cmd; helpers. */
void tg_rw_cmd(NvmeCmd *cmd, uint8_t opc, uint32_t nsid, uint64_t slba,
               uint32_t nlb);
/* Fills PRP1/PRP2 (and a PRP list if needed) for [gpa, gpa+len). */
void tg_build_prps(TestGuest *tg, NvmeCmd *cmd, uint64_t gpa, uint64_t len);

void tg_fill(void *buf, size_t len, unsigned seed);
bool tg_check(const void *buf, size_t len, unsigned seed);

#define TG_STATUS(st) ((st) & 0x3fff)   /* without DNR/More */

#endif
