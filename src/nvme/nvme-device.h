/*
 * The stormigd device "nvme": an NVMe controller (nvme.h) served to a VMM
 * over vfio-user (vfio-user/vfu-server.h).
 *
 *   --device nvme,id=ID,socket=PATH,drive=NODE[:NODE...],serial=S
 *            [,num-queues=N][,mqes=N][,lbads=9|12][,dstrd=N][,wrr=on]
 *
 * The device state travels with the VMM's vfio-user migration (v2 state
 * machine, STOP_COPY / RESUMING), not in the stormigd-to-stormigd stream;
 * the daemons' own migration hands the disks over. The controller runs
 * only while both the daemon runs and the VMM's device state is RUNNING.
 * query-devices shows whether the configuration may migrate (allowlist)
 * so a VMM can refuse before it starts, and the completions waiting for
 * CQ space. QMP nvme-ns-changed {"id", "nsid"} raises a Namespace
 * Attribute Changed event (after the host changed a namespace's image).
 */
#ifndef STORMIG_NVME_NVME_DEVICE_H
#define STORMIG_NVME_NVME_DEVICE_H

void nvme_device_register(void);

#endif
