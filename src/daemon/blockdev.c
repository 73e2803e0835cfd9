/* --blockdev: opens a block backend from a QEMU-style option string. */
#include "daemon/daemon.h"
#include "block/block.h"
#include "util/keyval.h"

#include <string.h>

static bool parse_discard(KeyVal *kv, bool *discard, Error **errp)
{
    const char *mode;
    if (!keyval_get_str(kv, "discard", "ignore", &mode, errp)) {
        return false;
    }
    if (strcmp(mode, "unmap") == 0 || strcmp(mode, "on") == 0) {
        *discard = true;
    } else if (strcmp(mode, "ignore") == 0 || strcmp(mode, "off") == 0) {
        *discard = false;
    } else {
        error_setg(errp, "discard must be 'unmap' or 'ignore', not '%s'",
                   mode);
        return false;
    }
    return true;
}

static bool blockdev_open(KeyVal *kv, Error **errp)
{
    const char *driver;
    BlockOpenOptions opts = { 0 };
    if (!keyval_get_str(kv, "driver", NULL, &driver, errp)) {
        return false;
    }
    if (!driver) {
        error_setg(errp, "needs driver=file");
        return false;
    }
    if (strcmp(driver, "file") != 0) {
        error_setg(errp, "unknown driver '%s' (only 'file' is supported)",
                   driver);
        return false;
    }
    if (!keyval_get_str(kv, "node-name", NULL, &opts.node_name, errp) ||
        !keyval_get_str(kv, "filename", NULL, &opts.filename, errp) ||
        !keyval_get_bool(kv, "read-only", false, &opts.read_only, errp) ||
        !keyval_get_bool(kv, "cache.direct", false, &opts.direct, errp) ||
        !parse_discard(kv, &opts.discard, errp) ||
        !keyval_get_u32(kv, "x-debug-delay-ms", 0, &opts.debug_delay_ms,
                        errp) ||
        !keyval_check_all_used(kv, "blockdev", errp)) {
        return false;
    }
    if (!opts.node_name || !opts.filename) {
        error_setg(errp, "needs node-name= and filename=");
        return false;
    }
    return blk_open(&opts, errp) != NULL;
}

bool daemon_blockdev_add(const char *optstr, Error **errp)
{
    KeyVal *kv = keyval_parse(optstr, "driver", errp);
    bool ok = kv && blockdev_open(kv, errp);
    keyval_free(kv);
    if (!ok) {
        error_prepend(errp, "--blockdev %s: ", optstr);
    }
    return ok;
}

void daemon_blockdev_close_all(void)
{
    BlockBackend *blk;
    while ((blk = blk_next(NULL)) != NULL) {
        blk_close(blk);
    }
}
