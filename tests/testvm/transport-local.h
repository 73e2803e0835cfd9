/*
 * A Transport over an in-process NVMe controller (the project's model),
 * for unit tests of the test VM without a daemon: BAR0 and the MSI-X BAR
 * go straight to the controller, guest memory is translated in place, the
 * controller's dirty marks form the DMA dirty log, and migration saves
 * and loads nvme_ctrl_vmsd. Every controller runs on the given loop;
 * wait_irqs runs that loop.
 */
#ifndef STORMIG_TESTS_TESTVM_TRANSPORT_LOCAL_H
#define STORMIG_TESTS_TESTVM_TRANSPORT_LOCAL_H

#include "transport.h"
#include "util/loop.h"

/* props: nvme_ctrl_new properties (drive=..., serial=..., ...). */
Transport *transport_local_new(EventLoop *loop, const char *props,
                               Error **errp);

#endif
