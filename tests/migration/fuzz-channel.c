/* Fuzz target: arbitrary bytes from a peer, delivered in arbitrary pieces,
 * through the frame decoder and the checks of every message a side may
 * receive. Nothing may crash, leak or read out of bounds. */
#include <stdint.h>
#include <stdlib.h>

#include "migration/channel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    /* The first byte chooses the size of the pieces the bytes arrive in. */
    size_t piece = (size_t)data[0] % 17 + 1;
    data++;
    size--;
    MigDecoder dec;
    mig_decoder_init(&dec);
    for (size_t off = 0; off < size; off += piece) {
        size_t n = size - off < piece ? size - off : piece;
        if (!mig_decoder_feed(&dec, data + off, n, NULL)) {
            break;
        }
        uint16_t type;
        const uint8_t *payload;
        uint32_t len, version, timeout_ms;
        Error *err = NULL;
        MigDecodeResult r;
        while ((r = mig_decoder_next(&dec, &type, &payload, &len, &err)) ==
               MIG_DECODE_FRAME) {
            if (type == MIG_MSG_HELLO) {
                mig_hello_check(payload, len, &version, &timeout_ms, NULL);
            } else if (type == MIG_MSG_ERROR) {
                free(mig_error_text(payload, len));
            }
            (void)mig_msg_name(type);
        }
        error_free(err);
        if (r == MIG_DECODE_ERROR) {
            break;
        }
    }
    mig_decoder_free(&dec);
    return 0;
}
