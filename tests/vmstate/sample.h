/*
 * A representative device state using every field kind, shared by the
 * unit tests, the fuzz targets and the corpus generator. The comparison
 * and copy helpers are written by hand (not with the engine), so tests
 * can check the engine against them.
 */
#ifndef STORMIG_TESTS_VMSTATE_SAMPLE_H
#define STORMIG_TESTS_VMSTATE_SAMPLE_H

#include <stdbool.h>
#include <stdint.h>

#include "vmstate/vmstate.h"

typedef struct SampleQueue {
    uint16_t head;
    uint16_t tail;
    uint64_t addr;
    bool enabled;
    uint32_t cookie;            /* not migrated: kept by in-place loads */
} SampleQueue;

typedef struct SampleInner {
    int8_t a;
    int16_t b;
    int32_t c;
    int64_t d;
} SampleInner;

#define SAMPLE_NSQ 4
#define SAMPLE_MAX_EXTRA 16

typedef struct Sample {
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    int8_t i8;
    int16_t i16;
    int32_t i32;
    int64_t i64;
    bool flag;
    uint8_t mac[6];                     /* BUFFER */
    uint32_t regs[4];                   /* ARRAY of u32 */
    bool bits[3];                       /* ARRAY of bool */
    uint16_t nlog;
    int16_t log[8];                     /* VARRAY, length nlog */
    SampleInner inner;                  /* STRUCT */
    SampleInner pair[2];                /* STRUCT_ARRAY */
    uint8_t nslots;
    SampleInner slots[4];               /* STRUCT_VARRAY, length nslots */
    uint32_t nextra;
    SampleQueue *extra;                 /* VARRAY_ALLOC, length nextra */
    SampleQueue *sq[SAMPLE_NSQ];        /* PTR_ARRAY, NULL allowed */
    uint32_t since2;                    /* since version 2 */
    uint64_t features;                  /* subsection, sent when != 0 */
    uint32_t not_migrated;
} Sample;

extern const VMStateDescription sample_vmsd;

/* Fills every migrated member from seed; present says which sq entries are
 * allocated (bit i: sq[i]). nextra extra entries are allocated. */
void sample_fill(Sample *s, unsigned seed, unsigned present, uint32_t nextra);
/* Frees what sample_fill (or a load) allocated. */
void sample_free(Sample *s);
/* Deep copy (new allocations). */
void sample_clone(Sample *dst, const Sample *src);
/* Migrated state equal (pointers compared by pointee). */
bool sample_equal(const Sample *a, const Sample *b);
/* Where the heap parts of a Sample live. */
typedef struct SampleAddrs {
    const void *extra;
    const void *sq[SAMPLE_NSQ];
} SampleAddrs;

void sample_addrs(const Sample *s, SampleAddrs *addrs);
/* live is still exactly what clone copied when addrs were taken: migrated
 * and unmigrated members, and the addresses of its heap parts. */
bool sample_unchanged(const Sample *live, const Sample *clone,
                      const SampleAddrs *addrs);

#endif
