/*
 * Disk ownership: exactly one process writes a disk at any time.
 *
 * One record per process says whether it owns ("has activated") its disks
 * (seed 004). A fresh daemon owns them; one started for an incoming
 * migration does not until switchover. Ownership of an image is an OFD
 * write lock on the file, so two processes can never both write it, on
 * this host or through a shared filesystem that honours OFD locks.
 *
 * Both transitions are idempotent: inactivating twice or activating twice
 * is a no-op, which makes the double-migration crash of seed 004
 * impossible by construction.
 */
#ifndef STORMIG_BLOCK_OWNERSHIP_H
#define STORMIG_BLOCK_OWNERSHIP_H

#include <stdbool.h>

#include "util/error.h"

/* Called once at start: owned (normal start) or not (incoming). */
void blk_ownership_init(bool owned);
bool blk_ownership_is_owned(void);

/*
 * Takes the write lock of every open read-write backend and allows writes.
 * Fails, taking nothing, with an error naming the holder (pid and program)
 * when another process owns an image. No-op when already owned.
 */
bool blk_ownership_activate_all(Error **errp);

/*
 * Drains and flushes every backend, stops all writes and releases the
 * locks. No-op when not owned. On a flush failure the disks stay owned and
 * the error says which image failed.
 */
bool blk_ownership_inactivate_all(Error **errp);

#endif
