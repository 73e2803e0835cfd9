/* Fuzz target: vmstate_stream_to_json, where both the stream and the
 * description it carries come from the input. */
#include <stdlib.h>
#include <string.h>

#include "fuzz-fixup.h"
#include "vmstate/vmstate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void analyze(const uint8_t *data, size_t size)
{
    VMStateErr code;
    Error *err = NULL;
    char *json = vmstate_stream_to_json(data, size, &code, &err);
    if (!json == !err) {
        abort();            /* exactly one of a result or an error */
    }
    free(json);
    error_free(err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    analyze(data, size);
    /* Again with correct check values, to get behind them. */
    uint8_t *fixed = malloc(size + 1);
    if (fixed) {
        memcpy(fixed, data, size);
        fuzz_fix_checks(fixed, size);
        analyze(fixed, size);
        free(fixed);
    }
    return 0;
}
