/*
 * scsi-hd: an emulated SBC-3 disk on a BlockBackend. Internal to the SCSI
 * layer; controllers only see the ScsiLun.
 *
 * Decisions:
 *  - PERSISTENT RESERVE IN/OUT: INVALID OPCODE (persistent reservations
 *    are a scsi-block feature); RESERVE(6)/RELEASE(6) are served, with
 *    the one I_T nexus of a virtio-scsi controller as the only holder;
 *  - MODE SELECT accepts a change of WCE in the caching page; every other
 *    field must equal its current value (INVALID FIELD IN PARAMETER LIST);
 *    SP=1 is refused (INVALID FIELD IN CDB, no saved pages);
 *  - a write refused because this process does not own its disks (-EPERM)
 *    completes with NOT READY, ASYMMETRIC ACCESS STATE TRANSITION, which
 *    initiators retry;
 *  - UNMAP and WRITE SAME with UNMAP are served by write-zeroes with
 *    may_unmap, so unmapped blocks always read zero (LBPRZ = 1).
 */
#ifndef STORMIG_SCSI_SCSI_HD_H
#define STORMIG_SCSI_SCSI_HD_H

#include "block/block.h"
#include "device/device.h"
#include "scsi/scsi.h"

#define HD_MAX_XFER_BLOCKS      65535u  /* Block limits: MAX TRANSFER */
/* libiscsi's conformance suite takes more than 1 Mi blocks for insane. */
#define HD_MAX_UNMAP_BLOCKS     (1u << 20)
#define HD_MAX_UNMAP_DESCS      255u
#define HD_MAX_WRITE_SAME_BLOCKS (1u << 22)
/* COMPARE AND WRITE: its CDB's NUMBER OF LOGICAL BLOCKS is one byte. */
#define HD_MAX_CAW_BLOCKS       255u

typedef struct HdIo HdIo;

typedef struct ScsiHd {
    Device dev;
    ScsiLun lun;
    ScsiBus *bus;
    BlockBackend *blk;
    char serial[37];
    char vendor[9];
    char product[17];
    uint64_t wwn;                   /* 0: none */
    uint32_t block_size;
    uint64_t nb_blocks;
    uint32_t discard_granularity;   /* bytes */
    bool read_only;

    /* Device state that migrates (scsi_hd_vmsd). */
    bool wce;                       /* caching mode page, WCE */
    bool stopped;                   /* START STOP UNIT with START=0 */
    bool reserved;                  /* RESERVE(6) held by the nexus */
    bool ua_pending;
    uint8_t ua_key, ua_asc, ua_ascq;

    /* Requests the backend had no room for (-EAGAIN), oldest first. */
    HdIo *retry_head, *retry_tail;
    uint64_t retry_timer;

    /* Range serialisation for COMPARE AND WRITE (scsi-hd-lock.c): writing
     * commands holding their range, and those waiting, oldest first. */
    HdIo *locked;
    unsigned n_exclusive;
    HdIo *lock_wait_head, *lock_wait_tail;
    bool lock_kicking, lock_rekick;
} ScsiHd;

/* A command handler; it completes req (now or later). */
typedef void HdCmdFunc(ScsiHd *hd, ScsiRequest *req);

/* scsi-hd-cmd.c: non-I/O commands. */
HdCmdFunc hd_cmd_inquiry, hd_cmd_read_capacity_10, hd_cmd_service_action_in,
    hd_cmd_request_sense, hd_cmd_test_unit_ready, hd_cmd_start_stop,
    hd_cmd_report_luns, hd_cmd_prefetch, hd_cmd_reserve, hd_cmd_release;

/* scsi-hd-cmp.c: commands that compare or read back. */
HdCmdFunc hd_cmd_verify, hd_cmd_write_verify, hd_cmd_compare_and_write,
    hd_cmd_orwrite;

/* scsi-hd-lba-status.c: GET LBA STATUS (from SERVICE ACTION IN(16)). */
HdCmdFunc hd_cmd_get_lba_status;

/* scsi-hd-opcodes.c: MAINTENANCE IN (REPORT SUPPORTED OPERATION CODES). */
HdCmdFunc hd_cmd_maintenance_in;

/* scsi-hd-mode.c: MODE SENSE / MODE SELECT. */
HdCmdFunc hd_cmd_mode_sense, hd_cmd_mode_select;

/* scsi-hd-io.c: commands that reach the backend. */
HdCmdFunc hd_cmd_read, hd_cmd_write, hd_cmd_sync_cache, hd_cmd_unmap,
    hd_cmd_write_same;
/* Drops a request still waiting for room in the backend. */
void hd_io_cancel(ScsiHd *hd, ScsiRequest *req);

/* scsi-hd.c */
void hd_set_unit_attention(ScsiHd *hd, ScsiSense sense);
/* Checks an LBA range against the capacity (SBC-3 4.5). */
static inline bool hd_range_ok(const ScsiHd *hd, uint64_t lba, uint64_t n)
{
    return lba <= hd->nb_blocks && n <= hd->nb_blocks - lba;
}
/* Copies min(len, alloc_len) bytes of data-in and completes GOOD. */
void hd_reply(ScsiRequest *req, const void *data, size_t len,
              size_t alloc_len);

#endif
