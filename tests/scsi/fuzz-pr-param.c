/* Fuzz target: guest- and LUN-supplied persistent reservation data. The
 * first byte picks the parser; the rest is its input. A PR OUT input is a
 * CDB (its first 10 bytes) and a parameter list (the remainder); a
 * successful parse is fed to the tracking state machine, whose state must
 * stay one SPC-4 allows. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scsi/scsi-pr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ScsiPrState state;

static void fuzz_out(const uint8_t *d, size_t n)
{
    ScsiPrOut out;
    size_t cdb_len = n < 10 ? n : 10;
    if (scsi_pr_out_parse(d, cdb_len, d + cdb_len, n - cdb_len, &out) ==
        SCSI_PR_OUT_OK) {
        ScsiPrSnoop r = scsi_pr_snoop(&state, &out);
        if (r == SCSI_PR_SNOOP_READ_BACK && n > 12) {
            ScsiPrReservation res = { .held = d[11] & 1, .key = out.sa_key,
                                      .type = d[12] & 0x0f };
            scsi_pr_apply_reservation(&state, &res);
        }
        if (!scsi_pr_state_valid(&state)) {
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Error *err = NULL;
    if (size < 1) {
        return 0;
    }
    const uint8_t *d = data + 1;
    size_t n = size - 1;
    uint8_t *copy = malloc(n ? n : 1);
    if (!copy) {
        return 0;
    }
    memcpy(copy, d, n);
    switch (data[0] % 5) {
    case 0:
        fuzz_out(copy, n);
        break;
    case 1: {
        ScsiPrKeys k;
        scsi_pr_keys_decode(copy, n, &k, &err);
        break;
    }
    case 2: {
        ScsiPrReservation r;
        scsi_pr_reservation_decode(copy, n, &r, &err);
        break;
    }
    case 3: {
        ScsiPrFullStatus e[4];
        size_t got;
        scsi_pr_full_status_decode(copy, n, e, 4, &got, &err);
        break;
    }
    default: {
        ScsiPrCaps c;
        scsi_pr_caps_decode(copy, n, &c, &err);
        scsi_pr_caps_mask(copy, n);
        break;
    }
    }
    error_free(err);
    free(copy);
    return 0;
}
