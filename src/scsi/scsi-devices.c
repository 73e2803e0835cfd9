/* Registration of the SCSI device classes. */
#include "scsi/scsi.h"
#include "scsi/scsi-internal.h"

void scsi_register_devices(void)
{
    scsi_hd_register();
#ifdef CONFIG_LIBISCSI
    scsi_block_register();
#endif
#ifdef CONFIG_LIBISCSI
    scsi_block_register();
#endif
}
