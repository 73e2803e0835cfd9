/*
 * A bare iSCSI I_T nexus (libiscsi; every call waits for its commands)
 * for reservation work outside the daemon: stormig-prtest and the tests'
 * "other hosts".
 */
#ifndef STORMIG_SCSI_SCSI_PR_NEXUS_H
#define STORMIG_SCSI_SCSI_PR_NEXUS_H

#include "scsi/scsi-pr-io.h"

typedef struct ScsiPrNexus ScsiPrNexus;

/* Logs in to the LUN of url (iscsi://HOST[:PORT]/IQN/LUN) as initiator. */
ScsiPrNexus *scsi_pr_nexus_open(const char *url, const char *initiator,
                                Error **errp);
void scsi_pr_nexus_close(ScsiPrNexus *n);
/* The ScsiPrIo of this nexus (valid until close). */
const ScsiPrIo *scsi_pr_nexus_io(ScsiPrNexus *n);
const char *scsi_pr_nexus_initiator(const ScsiPrNexus *n);

/* READ(10) or WRITE(10) of one block at lba; *status gets the status
 * (false: not delivered). Data written is a fixed pattern. */
bool scsi_pr_nexus_rw(ScsiPrNexus *n, bool write, uint32_t lba,
                      uint8_t *status, Error **errp);

#endif
