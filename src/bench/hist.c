/* hist.c: the log-linear latency histogram of carlarl bench. Values below 2^s are counted exactly;
 * above, every power of two [2^e, 2^(e+1)) is split into 2^s equal sub-buckets, so a bucket is at
 * most 1/2^s of its lower bound wide and its midpoint is within 1/2^(s+1) of any value in it
 * (s = 7: 0.4%, well inside the promised 1%). The same scheme with s = 4 serves the coarse
 * per-second histograms of the timeline. */
#include <string.h>

#include "bench/internal.h"

size_t crl_bench__bucket_index(uint64_t v, int sub_bits) {
    uint64_t sub = 1ull << sub_bits;
    if (v < sub) return (size_t)v;
    int e = 63 - __builtin_clzll(v);
    return ((size_t)(e - sub_bits + 1) << sub_bits) | (size_t)((v >> (e - sub_bits)) - sub);
}

uint64_t crl_bench__bucket_mid(size_t idx, int sub_bits) {
    size_t sub = (size_t)1 << sub_bits;
    if (idx < sub) return idx;
    size_t k = idx >> sub_bits;
    uint64_t low = (uint64_t)(sub + (idx & (sub - 1))) << (k - 1);
    uint64_t width = 1ull << (k - 1);
    return low + (width - 1) / 2;
}

/* CRL_BENCH_HIST_SUB = 2^7: the fine histogram's sub-bucket bits. */
#define FINE_BITS 7
_Static_assert((1 << FINE_BITS) == CRL_BENCH_HIST_SUB, "CRL_BENCH_HIST_SUB is 2^FINE_BITS");
_Static_assert((size_t)(64 - FINE_BITS + 1) << FINE_BITS <=
                   (size_t)CRL_BENCH_HIST_EXP * CRL_BENCH_HIST_SUB,
               "every uint64 has a bucket");

void crl_bench_hist_init(crl_bench_hist *h) {
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

void crl_bench_hist_add(crl_bench_hist *h, uint64_t ns) {
    h->bucket[crl_bench__bucket_index(ns, FINE_BITS)]++;
    h->count++;
    h->sum += (long double)ns;
    if (ns < h->min) h->min = ns;
    if (ns > h->max) h->max = ns;
}

void crl_bench_hist_merge(crl_bench_hist *into, const crl_bench_hist *from) {
    if (from->count == 0) return;
    for (size_t i = 0; i < sizeof(into->bucket) / sizeof(into->bucket[0]); i++)
        into->bucket[i] += from->bucket[i];
    into->count += from->count;
    into->sum += from->sum;
    if (from->min < into->min) into->min = from->min;
    if (from->max > into->max) into->max = from->max;
}

/* The rank (1-based) of the sample quantile q selects: ceil(q * count), at least 1. */
static uint64_t rank_of(double q, uint64_t count) {
    if (!(q > 0)) return 1;
    if (q >= 1) return count;
    long double r = (long double)q * (long double)count;
    uint64_t k = (uint64_t)r;
    if ((long double)k < r) k++;
    return k < 1 ? 1 : k;
}

uint64_t crl_bench_hist_quantile(const crl_bench_hist *h, double q) {
    if (h->count == 0) return 0;
    uint64_t want = rank_of(q, h->count), seen = 0;
    size_t n = sizeof(h->bucket) / sizeof(h->bucket[0]);
    for (size_t i = 0; i < n; i++) {
        seen += h->bucket[i];
        if (seen >= want) {
            uint64_t v = crl_bench__bucket_mid(i, FINE_BITS);
            return v < h->min ? h->min : v > h->max ? h->max : v;
        }
    }
    return h->max;
}

double crl_bench_hist_mean(const crl_bench_hist *h) {
    return h->count ? (double)(h->sum / (long double)h->count) : 0.0;
}

void crl_bench__tick_add(crl_bench_tick_hist *t, uint64_t ns) {
    t->bucket[crl_bench__bucket_index(ns, CRL_BENCH_TICK_SUB_BITS)]++;
    t->count++;
}

void crl_bench__tick_merge(crl_bench_tick_hist *into, const crl_bench_tick_hist *from) {
    for (size_t i = 0; i < CRL_BENCH_TICK_BUCKETS; i++)
        into->bucket[i] += from->bucket[i];
    into->count += from->count;
    into->done += from->done;
    into->errors += from->errors;
}

uint64_t crl_bench__tick_quantile(const crl_bench_tick_hist *t, double q) {
    if (t->count == 0) return 0;
    uint64_t want = rank_of(q, t->count), seen = 0;
    for (size_t i = 0; i < CRL_BENCH_TICK_BUCKETS; i++) {
        seen += t->bucket[i];
        if (seen >= want) return crl_bench__bucket_mid(i, CRL_BENCH_TICK_SUB_BITS);
    }
    return 0;
}
