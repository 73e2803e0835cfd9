/* Fuzzing helper: rewrites the check values of a stream so that mutated
 * inputs reach the code behind the CRC checks. */
#ifndef STORMIG_TESTS_VMSTATE_FUZZ_FIXUP_H
#define STORMIG_TESTS_VMSTATE_FUZZ_FIXUP_H

#include <stddef.h>
#include <stdint.h>

/* Walks the framing of data (header, sections by their length, end
 * marker, description) and stores correct CRC32C values where the checks
 * sit. Stops quietly at the first thing that does not fit. */
void fuzz_fix_checks(uint8_t *data, size_t len);

#endif
