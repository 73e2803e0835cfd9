/* Log-linear latency histogram (see latency.h). */
#include "latency.h"

#include <string.h>

#define SUB (1u << LAT_SUB_BITS)

void lat_reset(LatHist *h)
{
    memset(h, 0, sizeof(*h));
    h->min_ns = UINT64_MAX;
}

static unsigned bucket_of(uint64_t v)
{
    if (v < SUB) {
        return (unsigned)v;
    }
    unsigned e = 63u - (unsigned)__builtin_clzll(v);     /* >= SUB_BITS */
    unsigned sub = (unsigned)(v >> (e - LAT_SUB_BITS)) & (SUB - 1);
    unsigned idx = (e - LAT_SUB_BITS + 1) * SUB + sub;
    return idx < LAT_BUCKETS ? idx : LAT_BUCKETS - 1;
}

static uint64_t bucket_upper(unsigned idx)
{
    if (idx < SUB) {
        return idx;
    }
    unsigned e = idx / SUB + LAT_SUB_BITS - 1;
    uint64_t lower = (uint64_t)(SUB + idx % SUB) << (e - LAT_SUB_BITS);
    return lower + (1ull << (e - LAT_SUB_BITS)) - 1;
}

void lat_record(LatHist *h, uint64_t ns)
{
    h->bucket[bucket_of(ns)]++;
    h->count++;
    h->sum_ns += ns;
    if (ns > h->max_ns) {
        h->max_ns = ns;
    }
    if (ns < h->min_ns) {
        h->min_ns = ns;
    }
}

uint64_t lat_percentile(const LatHist *h, double p)
{
    if (h->count == 0) {
        return 0;
    }
    /* The rank of the sample at p, 1-based, rounded up. */
    double want = p / 100.0 * (double)h->count;
    uint64_t rank = (uint64_t)want;
    if ((double)rank < want || rank == 0) {
        rank++;
    }
    uint64_t seen = 0;
    for (unsigned i = 0; i < LAT_BUCKETS; i++) {
        seen += h->bucket[i];
        if (seen >= rank) {
            uint64_t up = bucket_upper(i);
            return up < h->max_ns ? up : h->max_ns;
        }
    }
    return h->max_ns;
}

uint64_t lat_mean(const LatHist *h)
{
    return h->count ? h->sum_ns / h->count : 0;
}
