/*
 * stormig-analyze FILE: prints a saved device-state stream as JSON, using
 * only the description the stream carries (saved with it by
 * vmstate_save_stream). "-" reads standard input.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/bytes.h"
#include "util/error.h"
#include "vmstate/vmstate.h"

static bool read_all(FILE *f, ByteBuf *buf)
{
    uint8_t chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        bytebuf_append(buf, chunk, n);
    }
    return !ferror(f) && !buf->failed;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: stormig-analyze FILE\n"
            "Prints a device-state stream (with its description) as JSON.\n"
            "FILE may be - for standard input.\n"
            "  -h, --help   this text\n");
}

int main(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        usage(stdout);
        return 0;
    }
    if (argc != 2) {
        usage(stderr);
        return 2;
    }
    FILE *f = strcmp(argv[1], "-") ? fopen(argv[1], "rb") : stdin;
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    ByteBuf buf;
    bytebuf_init(&buf);
    bool ok = read_all(f, &buf);
    if (f != stdin) {
        fclose(f);
    }
    if (!ok) {
        fprintf(stderr, "stormig-analyze: cannot read %s\n", argv[1]);
        bytebuf_free(&buf);
        return 1;
    }
    Error *err = NULL;
    VMStateErr code;
    char *json = vmstate_stream_to_json(buf.data, buf.len, &code, &err);
    bytebuf_free(&buf);
    if (!json) {
        fprintf(stderr, "stormig-analyze: %s: %s (%s)\n", argv[1],
                err ? error_get_pretty(err) : "failed",
                vmstate_err_name(code));
        error_free(err);
        return 1;
    }
    printf("%s\n", json);
    free(json);
    return 0;
}
