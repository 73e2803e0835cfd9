/* A small description whose stream is written out byte by byte in the
 * tests (docs/device-state-format.md shows the same example). */
#ifndef STORMIG_TESTS_VMSTATE_TINY_H
#define STORMIG_TESTS_VMSTATE_TINY_H

#include <stdbool.h>
#include <stdint.h>

#include "vmstate/vmstate.h"

typedef struct TinyEntry {
    uint32_t x;
} TinyEntry;

typedef struct Tiny {
    uint16_t a;
    bool b;
    uint8_t buf[2];
    uint8_t n;
    uint8_t v[3];               /* VARRAY, length n */
    TinyEntry *p[2];            /* PTR_ARRAY */
    uint32_t later;             /* since version 2 */
    uint8_t extra;              /* subsection "tiny/extra", sent if != 0 */
} Tiny;

/* Version 2, minimum 1. */
extern const VMStateDescription tiny_vmsd;

/* a=0x1234 b=1 buf=aa bb v=0a 0b p={NULL, {x=0xdeadbeef}} later=9
 * extra=0x5a; p[1] is malloc'd. */
void tiny_fill(Tiny *t);
/* Distinct values: p[0] allocated, p[1] NULL. */
void tiny_fill_other(Tiny *t);
void tiny_free(Tiny *t);
/* Same values, same entry addresses and the same entry contents. */
bool tiny_same(const Tiny *live, const Tiny *copy, const TinyEntry *e0,
               const TinyEntry *e1);

#endif
