/*
 * Writes the seed corpora of the vmstate fuzz targets:
 *   gen-corpus LOAD-DIR ANALYZE-DIR
 * Valid streams of the sample and tiny sections (several shapes, with and
 * without the description) and a few broken ones. Run by hand when the
 * format changes; the output is committed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sample.h"
#include "tiny.h"

static void write_file(const char *dir, const char *name, const ByteBuf *b,
                       size_t len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b->data, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static void save(unsigned seed, unsigned present, uint32_t nextra,
                 bool desc, ByteBuf *out)
{
    Sample s;
    Tiny t;
    sample_fill(&s, seed, present, nextra);
    tiny_fill(&t);
    t.extra = (uint8_t)(seed & 1 ? 0 : 0x5a);
    VMStateSection secs[] = {
        { "s0", 0, &sample_vmsd, &s },
        { "t0", 0, &tiny_vmsd, &t },
    };
    bytebuf_reset(out);
    if (!vmstate_save_stream(secs, 2, desc, out, NULL)) {
        exit(1);
    }
    sample_free(&s);
    tiny_free(&t);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s LOAD-DIR ANALYZE-DIR\n", argv[0]);
        return 2;
    }
    static const struct { unsigned seed, present; uint32_t nextra; } shapes[] = {
        { 1, 0x0, 0 }, { 2, 0x5, 3 }, { 7, 0xF, 16 }, { 12, 0xA, 1 },
    };
    ByteBuf b;
    bytebuf_init(&b);
    char name[64];
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        save(shapes[i].seed, shapes[i].present, shapes[i].nextra, false, &b);
        snprintf(name, sizeof(name), "valid-%zu", i);
        write_file(argv[1], name, &b, b.len);
        save(shapes[i].seed, shapes[i].present, shapes[i].nextra, true, &b);
        snprintf(name, sizeof(name), "described-%zu", i);
        write_file(argv[1], name, &b, b.len);
        write_file(argv[2], name, &b, b.len);
    }
    save(2, 0x5, 3, true, &b);
    write_file(argv[1], "broken-truncated", &b, b.len / 2);
    write_file(argv[2], "broken-truncated", &b, b.len - 7);
    b.data[40] ^= 0x01;
    write_file(argv[1], "broken-bitflip", &b, b.len);
    write_file(argv[2], "broken-bitflip", &b, b.len);
    save(2, 0x5, 3, false, &b);
    b.data[b.len - 1] ^= 0xff;
    write_file(argv[1], "broken-checksum", &b, b.len);
    bytebuf_free(&b);
    return 0;
}
