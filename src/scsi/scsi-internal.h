/* Shared between the files of the SCSI layer; not for controllers. */
#ifndef STORMIG_SCSI_SCSI_INTERNAL_H
#define STORMIG_SCSI_SCSI_INTERNAL_H

#include "scsi/scsi.h"

/* In-flight bookkeeping, used by scsi_req_submit/complete. */
void scsi_lun_track(ScsiLun *lun, ScsiRequest *req);
void scsi_lun_untrack(ScsiLun *lun, ScsiRequest *req);
/* Finishes every pending TMF whose affected requests have all completed. */
void scsi_bus_tmf_progress(ScsiBus *bus);
/* Answers req on behalf of a LUN that does not exist. */
void scsi_target_answer(ScsiBus *bus, ScsiRequest *req);

/* Registration of the device classes. */
void scsi_hd_register(void);
void scsi_block_register(void);

#endif
