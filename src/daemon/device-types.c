/* The device types stormigd offers. Each layer that brings a device type
 * adds one call here. */
#include "daemon/daemon.h"

void daemon_register_device_types(void)
{
    pattern_writer_register();
}
