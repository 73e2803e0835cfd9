/*
 * Telling a service manager (systemd's Type=notify) when stormigd is ready
 * and when it stops (notify.c). Does nothing when NOTIFY_SOCKET is unset
 * or stormigd was built without libsystemd.
 */
#ifndef STORMIG_DAEMON_NOTIFY_H
#define STORMIG_DAEMON_NOTIFY_H

/* Every socket (monitor, devices, incoming listener) accepts connections. */
void daemon_notify_ready(const char *status);
void daemon_notify_stopping(void);

#endif
