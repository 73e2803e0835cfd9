/*
 * The test VM as a vhost-user front end (QEMU docs/interop/vhost-user.rst):
 * it connects to a back end's socket, negotiates features, shares guest
 * memory (one memfd region, SET_MEM_TABLE) and starts split rings with a
 * kick and a call eventfd each. What travels on the rings is the driver's
 * business (vscsi-drv.h); this is only the VMM side of the protocol.
 */
#ifndef STORMIG_TESTVM_VHOST_FE_H
#define STORMIG_TESTVM_VHOST_FE_H

#include <stdbool.h>
#include <stdint.h>

#include "guest-mem.h"
#include "util/error.h"

#define VHOST_FE_MAX_RINGS 32

typedef struct VhostFe VhostFe;

VhostFe *vhost_fe_connect(const char *path, Error **errp);
void vhost_fe_free(VhostFe *fe);

/* GET/SET_FEATURES (the intersection of offered and wanted, always with
 * PROTOCOL_FEATURES when offered), protocol features (REPLY_ACK, MQ),
 * SET_OWNER and SET_MEM_TABLE with gm. *acked: the features set. */
bool vhost_fe_setup(VhostFe *fe, GuestMem *gm, uint64_t want,
                    uint64_t *acked, Error **errp);
/* Number of rings the back end serves (GET_QUEUE_NUM with MQ, else 0). */
unsigned vhost_fe_queue_num(const VhostFe *fe);

/* Starts ring idx of num entries laid out at the given guest addresses:
 * NUM, BASE 0, ADDR, CALL, KICK, ENABLE. */
bool vhost_fe_start_ring(VhostFe *fe, unsigned idx, uint16_t num,
                         uint64_t desc_gpa, uint64_t avail_gpa,
                         uint64_t used_gpa, Error **errp);
/* Signals ring idx's kick eventfd (the guest's notify register write). */
bool vhost_fe_kick(VhostFe *fe, unsigned idx);
/* Waits up to timeout_ms for a call on any started ring; returns how many
 * calls were seen. */
unsigned vhost_fe_wait(VhostFe *fe, int timeout_ms);
uint64_t vhost_fe_calls(const VhostFe *fe);

#endif
