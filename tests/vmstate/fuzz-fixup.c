/* See fuzz-fixup.h. Offsets follow docs/device-state-format.md. */
#include "fuzz-fixup.h"

#include "util/bytes.h"
#include "vmstate/vmstate.h"

static void fix_description(uint8_t *data, size_t len, size_t pos)
{
    if (pos + 5 > len || data[pos] != 0x04) {
        return;
    }
    uint32_t dlen = ld_be32(data + pos + 1);
    if (dlen > len - pos - 5 || len - pos - 5 - dlen < 4) {
        return;
    }
    size_t covered = 5 + (size_t)dlen;
    st_be32(data + pos + covered, vmstate_crc32c(0, data + pos, covered));
}

void fuzz_fix_checks(uint8_t *data, size_t len)
{
    size_t pos = 12;                        /* magic + format version */
    while (pos < len) {
        if (data[pos] == 0x03) {            /* end marker */
            if (len - pos >= 5) {
                st_be32(data + pos + 1, vmstate_crc32c(0, data, pos + 1));
                fix_description(data, len, pos + 5);
            }
            return;
        }
        if (data[pos] != 0x01 || pos + 2 > len) {
            return;
        }
        size_t hdr = 2 + (size_t)data[pos + 1] + 12;
        if (hdr > len - pos) {
            return;
        }
        uint32_t plen = ld_be32(data + pos + hdr - 4);
        if (plen > len - pos - hdr) {
            return;
        }
        pos += hdr + plen;
    }
}
