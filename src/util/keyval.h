/*
 * Option strings as QEMU writes them: "value,key=value,key=value".
 * The first element may be a bare value (the implied key, e.g. a device
 * type); commas inside a value are written ",,". Every key must be read by
 * its consumer: keyval_check_all_used() turns leftovers into an error, so a
 * misspelt property is never silently ignored.
 */
#ifndef STORMIG_UTIL_KEYVAL_H
#define STORMIG_UTIL_KEYVAL_H

#include <stdbool.h>
#include <stdint.h>

#include "util/error.h"

typedef struct KeyVal KeyVal;

/* implied_key names the first element when it has no '=' (may be NULL). */
KeyVal *keyval_parse(const char *str, const char *implied_key, Error **errp);
void keyval_free(KeyVal *kv);

/* Returns NULL when absent. Marks the key used. */
const char *keyval_get(KeyVal *kv, const char *key);
bool keyval_get_str(KeyVal *kv, const char *key, const char *def,
                    const char **out, Error **errp);
/* Accepts on/off, true/false, yes/no, 1/0. */
bool keyval_get_bool(KeyVal *kv, const char *key, bool def, bool *out,
                     Error **errp);
/* Accepts decimal, 0x hex, and k/M/G/T suffixes (powers of 1024). */
bool keyval_get_u64(KeyVal *kv, const char *key, uint64_t def,
                    uint64_t *out, Error **errp);
bool keyval_get_u32(KeyVal *kv, const char *key, uint32_t def,
                    uint32_t *out, Error **errp);
bool keyval_check_all_used(KeyVal *kv, const char *what, Error **errp);
/* The i-th key in the string's order, NULL past the last (does not mark
 * it used). */
const char *keyval_key_at(const KeyVal *kv, int i);

/* Parses one size/number string the way keyval_get_u64 does. */
bool parse_u64(const char *s, uint64_t *out);

#endif
