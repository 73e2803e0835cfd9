/* --config FILE: command-line options read from a file (config.c). */
#ifndef STORMIG_DAEMON_CONFIG_H
#define STORMIG_DAEMON_CONFIG_H

#include <getopt.h>
#include <stdbool.h>

#include "util/error.h"

/*
 * Called for each option line, in file order, with the option's entry in
 * the daemon's table, its value and "FILE:LINE" (both live until
 * daemon_config_free). Returns false when the value is refused (the
 * callee has said why on stderr).
 */
typedef bool ConfigApplyFunc(const struct option *opt, const char *value,
                             const char *where, void *opaque);

/* Reads path; every error names FILE:LINE. Only options that take a value
 * are allowed, and not --config itself. */
bool daemon_config_read(const char *path, const struct option *options,
                        ConfigApplyFunc *apply, void *opaque, Error **errp);
void daemon_config_free(void);

#endif
