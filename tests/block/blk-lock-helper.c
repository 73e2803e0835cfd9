/*
 * A second process for the ownership tests: it opens images and moves the
 * ownership record on command, so two real processes contend for an image.
 *
 * Commands, one per line on stdin; one reply line each on stdout:
 *   init 0|1                 -> ok
 *   open NAME FILE           -> ok | err MESSAGE     (read-write backend)
 *   activate | inactivate    -> ok | err MESSAGE
 *   write NAME OFFSET BYTE   -> ret ERRNO            (4096 bytes of BYTE)
 *   quit
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "block/block.h"
#include "block/ownership.h"
#include "util/log.h"

static void reply_result(bool ok, Error *err)
{
    if (ok) {
        printf("ok\n");
    } else {
        printf("err %s\n", error_get_pretty(err));
        error_free(err);
    }
}

static void cmd_open(const char *name, const char *file)
{
    Error *err = NULL;
    BlockOpenOptions opts = { .node_name = name, .filename = file };
    bool ok = blk_open(&opts, &err) != NULL;
    reply_result(ok, err);
}

static void cmd_write(const char *name, unsigned long long offset, int byte)
{
    static char buf[4096];
    BlockBackend *blk = blk_by_name(name);
    if (!blk) {
        printf("ret %d\n", -19);
        return;
    }
    memset(buf, byte, sizeof(buf));
    printf("ret %d\n", blk_pwrite_sync(blk, offset, buf, sizeof(buf)));
}

static bool run_command(char *line)
{
    char a[256], b[256];
    unsigned long long off;
    int v;
    Error *err = NULL;
    if (sscanf(line, "init %d", &v) == 1) {
        blk_ownership_init(v != 0);
        printf("ok\n");
    } else if (sscanf(line, "open %255s %255s", a, b) == 2) {
        cmd_open(a, b);
    } else if (strncmp(line, "activate", 8) == 0) {
        bool ok = blk_ownership_activate_all(&err);
        reply_result(ok, err);
    } else if (strncmp(line, "inactivate", 10) == 0) {
        bool ok = blk_ownership_inactivate_all(&err);
        reply_result(ok, err);
    } else if (sscanf(line, "write %255s %llu %d", a, &off, &v) == 3) {
        cmd_write(a, off, v);
    } else if (strncmp(line, "quit", 4) == 0) {
        return false;
    } else {
        printf("err unknown command\n");
    }
    fflush(stdout);
    return true;
}

int main(void)
{
    char line[600];
    log_set_level(LOG_ERROR);
    while (fgets(line, sizeof(line), stdin) && run_command(line)) {
    }
    BlockBackend *blk;
    while ((blk = blk_next(NULL))) {
        blk_close(blk);
    }
    return 0;
}
