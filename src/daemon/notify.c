/* sd_notify glue: libsystemd's sd_notify speaks the protocol (a datagram
 * to NOTIFY_SOCKET, abstract sockets included); it is optional at build
 * time so that stormigd builds where libsystemd-dev is missing. */
#include "daemon/notify.h"
#include "util/log.h"

#ifdef CONFIG_LIBSYSTEMD
#include <systemd/sd-daemon.h>

void daemon_notify_ready(const char *status)
{
    int r = sd_notifyf(0, "READY=1\nSTATUS=%s", status);
    if (r < 0) {
        log_warn("sd_notify READY=1 failed: error %d", -r);
    }
}

void daemon_notify_stopping(void)
{
    (void)sd_notify(0, "STOPPING=1");
}
#else
void daemon_notify_ready(const char *status)
{
    (void)status;
}

void daemon_notify_stopping(void)
{
}
#endif
