/*
 * A latency histogram for the benchmark mode: log-linear buckets (the
 * power of two of a value in nanoseconds, split in 16 linear steps), so
 * percentiles are exact to within 1/16 of the value (6.25 %) over a range
 * of 1 ns to ~1 min, in a fixed 8 KiB table with O(1) recording.
 */
#ifndef STORMIG_TESTVM_LATENCY_H
#define STORMIG_TESTVM_LATENCY_H

#include <stdint.h>

#define LAT_SUB_BITS 4
#define LAT_BUCKETS  (36 << LAT_SUB_BITS)

typedef struct LatHist {
    uint64_t count;
    uint64_t sum_ns;
    uint64_t max_ns;
    uint64_t min_ns;
    uint64_t bucket[LAT_BUCKETS];
} LatHist;

void lat_reset(LatHist *h);
void lat_record(LatHist *h, uint64_t ns);
/* The value at percentile p (0 < p <= 100): the upper bound of the
 * bucket holding it, clamped to the largest value recorded; 0 when
 * empty. */
uint64_t lat_percentile(const LatHist *h, double p);
uint64_t lat_mean(const LatHist *h);

#endif
