/* The bus object, shared by the bus and task management files. */
#ifndef STORMIG_SCSI_SCSI_BUS_PRIV_H
#define STORMIG_SCSI_SCSI_BUS_PRIV_H

#include "scsi/scsi.h"

typedef struct ScsiPendingTmf ScsiPendingTmf;

struct ScsiBus {
    char *name;
    ScsiLun *luns[SCSI_BUS_MAX_LUNS];
    EventLoop *loop;                /* the controller's I/O loop or NULL */
    ScsiBusListener listener;
    uint64_t seq;                   /* orders requests against TMFs */
    ScsiPendingTmf *tmfs;           /* waiting for aborted requests */
    ScsiBus *next;
};

/* Starts an abort of every request matching (lun, tag) submitted so far;
 * when they completed, resets the LUNs with kind (unless abort only) and
 * calls done. all_luns: every LUN of the bus. */
void scsi_bus_abort_and_reset(ScsiBus *bus, bool all_luns, uint16_t lun,
                              bool match_tag, uint64_t tag, bool reset,
                              ScsiResetKind kind, ScsiTmfDoneFunc *done,
                              void *opaque);
/* Completes every pending TMF with SCSI_TMF_FAILED (bus going away). */
void scsi_bus_tmf_fail_all(ScsiBus *bus);

#endif
