/* Fuzz target: vmstate_stream_to_json, where both the stream and the
 * description it carries come from the input. */
#include <stdlib.h>

#include "vmstate/vmstate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    VMStateErr code;
    Error *err = NULL;
    char *json = vmstate_stream_to_json(data, size, &code, &err);
    if (!json == !err) {
        abort();            /* exactly one of a result or an error */
    }
    free(json);
    error_free(err);
    return 0;
}
