/*
 * Fuzz target: the loader over the sample description (every field kind)
 * and the tiny one. Whatever the input, a refused stream must leave both
 * destinations exactly as they were; an accepted one must save again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-fixup.h"

#include "sample.h"
#include "tiny.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void load_once(const uint8_t *data, size_t size)
{
    Sample dst, copy;
    SampleAddrs addrs;
    Tiny t;
    sample_fill(&dst, 5, 0x6, 2);
    sample_clone(&copy, &dst);
    sample_addrs(&dst, &addrs);
    tiny_fill_other(&t);
    Tiny tcopy = t;
    TinyEntry e0 = *t.p[0];
    VMStateSection secs[] = {
        { "s0", 0, &sample_vmsd, &dst },
        { "t0", 0, &tiny_vmsd, &t },
    };
    VMStateErr code;
    size_t n = 2;
    bool ok = vmstate_load_stream(secs, n, data, size, &code, NULL);
    if (!ok && (!sample_unchanged(&dst, &copy, &addrs) ||
                !tiny_same(&t, &tcopy, &e0, NULL))) {
        fprintf(stderr, "refused stream (%s) changed the destination\n",
                vmstate_err_name(code));
        abort();
    }
    if (ok) {
        ByteBuf again;
        bytebuf_init(&again);
        if (!vmstate_save_stream(secs, n, false, &again, NULL)) {
            abort();
        }
        bytebuf_free(&again);
    }
    vmstate_free_owned(&sample_vmsd, &dst);
    vmstate_free_owned(&tiny_vmsd, &t);
    sample_free(&copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    load_once(data, size);
    /* Again with correct check values, so commits happen too. */
    uint8_t *fixed = malloc(size + 1);
    if (fixed) {
        memcpy(fixed, data, size);
        fuzz_fix_checks(fixed, size);
        load_once(fixed, size);
        free(fixed);
    }
    return 0;
}
