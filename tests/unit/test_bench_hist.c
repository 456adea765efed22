/* test_bench_hist.c: the latency histogram of carlarl bench against exact percentiles. Each
 * synthetic distribution is sorted, its exact quantile taken as the ceil(q * n)-th smallest value
 * (the definition bench.h promises), and the histogram's answer must be within 1% of it; values
 * below 128 ns must be exact. Also: merging equals adding everything to one histogram, the empty
 * histogram, the mean, and the coarse per-second histograms of the timeline (within 3.2%). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench/internal.h"

static const double k_qs[] = {0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1};
#define NQS (sizeof(k_qs) / sizeof(k_qs[0]))

static uint64_t g_rng = 12345;
static uint64_t rnd(void) { /* splitmix64 */
    uint64_t z = (g_rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double unif(void) {
    return ((double)(rnd() >> 11) + 0.5) * 0x1.0p-53; /* (0, 1) */
}
static double normal(void) {
    return sqrt(-2 * log(unif())) * cos(2 * M_PI * unif());
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t exact(const uint64_t *sorted, size_t n, double q) {
    size_t k = (size_t)ceil(q * (double)n);
    if (k < 1) k = 1;
    if (k > n) k = n;
    return sorted[k - 1];
}

static double rel_err(uint64_t got, uint64_t want) {
    if (want == got) return 0;
    double w = (double)want, g = (double)got;
    return fabs(g - w) / w;
}

/* Adds the values to a histogram and checks every quantile, min, max, count and mean. */
static void check(uint64_t *v, size_t n, double tol) {
    crl_bench_hist *h = malloc(sizeof(*h));
    assert_non_null(h);
    crl_bench_hist_init(h);
    long double sum = 0;
    for (size_t i = 0; i < n; i++)
        crl_bench_hist_add(h, v[i]), sum += v[i];
    qsort(v, n, sizeof(*v), cmp_u64);
    assert_int_equal(h->count, n);
    assert_int_equal(h->min, v[0]);
    assert_int_equal(h->max, v[n - 1]);
    for (size_t i = 0; i < NQS; i++) {
        uint64_t want = exact(v, n, k_qs[i]), got = crl_bench_hist_quantile(h, k_qs[i]);
        if (want < 128) assert_int_equal(got, want);
        if (rel_err(got, want) > tol)
            fail_msg("q=%g: got %llu, exact %llu", k_qs[i], (unsigned long long)got,
                     (unsigned long long)want);
    }
    double mean = (double)(sum / n);
    assert_true(fabs(crl_bench_hist_mean(h) - mean) <= 1e-9 * mean + 1e-9);
    free(h);
}

#define N 200000

static void test_uniform(void **state) {
    (void)state;
    uint64_t *v = malloc(N * sizeof(*v));
    for (size_t i = 0; i < N; i++)
        v[i] = 1000 + rnd() % 10000000; /* 1 us .. 10 ms */
    check(v, N, 0.01);
    for (size_t i = 0; i < N; i++)
        v[i] = rnd() % 1000; /* 0 .. 1 us: the exact range and the first octaves */
    check(v, N, 0.01);
    free(v);
}

static void test_lognormal(void **state) {
    (void)state;
    uint64_t *v = malloc(N * sizeof(*v));
    for (size_t i = 0; i < N; i++)
        v[i] = (uint64_t)exp(log(200e3) + 1.2 * normal()); /* median 200 us, long tail */
    check(v, N, 0.01);
    free(v);
}

static void test_bimodal(void **state) {
    (void)state;
    uint64_t *v = malloc(N * sizeof(*v));
    for (size_t i = 0; i < N; i++) /* 97% fast around 100 us, 3% stalls around 50 ms */
        v[i] = (uint64_t)(rnd() % 100 < 97 ? 100e3 + 10e3 * normal() : 50e6 + 5e6 * normal());
    check(v, N, 0.01);
    free(v);
}

static void test_constants(void **state) {
    (void)state;
    static uint64_t v[1000];
    const uint64_t consts[] = {0, 1, 127, 128, 12345, 1000000007ull, UINT64_MAX};
    for (size_t c = 0; c < sizeof(consts) / sizeof(consts[0]); c++) {
        for (size_t i = 0; i < 1000; i++)
            v[i] = consts[c];
        crl_bench_hist h;
        crl_bench_hist_init(&h);
        for (size_t i = 0; i < 1000; i++)
            crl_bench_hist_add(&h, v[i]);
        for (size_t i = 0; i < NQS; i++) /* clamped to [min, max]: exact */
            assert_int_equal(crl_bench_hist_quantile(&h, k_qs[i]), consts[c]);
    }
}

static void test_huge_values(void **state) {
    (void)state;
    uint64_t *v = malloc(N * sizeof(*v));
    for (size_t i = 0; i < N; i++) /* every octave up to 2^64 - 1 */
        v[i] = rnd() >> (rnd() % 64);
    v[0] = UINT64_MAX;
    v[1] = 1ull << 63;
    check(v, N, 0.01);
    free(v);
    /* Bucket midpoints stay within 1/256 of every value, across all octaves. */
    for (int i = 0; i < 100000; i++) {
        uint64_t x = rnd() >> (rnd() % 64);
        uint64_t mid = crl_bench__bucket_mid(crl_bench__bucket_index(x, 7), 7);
        assert_true(rel_err(mid, x) <= 1.0 / 256 + 1e-12);
        assert_true(crl_bench__bucket_index(x, 7) < CRL_BENCH_HIST_EXP * CRL_BENCH_HIST_SUB);
        assert_true(crl_bench__bucket_index(x, 4) < CRL_BENCH_TICK_BUCKETS);
        if (x) assert_true(crl_bench__bucket_index(x - 1, 7) <= crl_bench__bucket_index(x, 7));
    }
}

static void test_merge(void **state) {
    (void)state;
    crl_bench_hist *one = malloc(sizeof(*one)), *parts = malloc(4 * sizeof(*parts)),
                   *merged = malloc(sizeof(*merged));
    crl_bench_hist_init(one);
    crl_bench_hist_init(merged);
    for (int p = 0; p < 4; p++)
        crl_bench_hist_init(&parts[p]);
    for (int i = 0; i < 100000; i++) {
        uint64_t x = (uint64_t)exp(log(1e6) + normal());
        crl_bench_hist_add(one, x);
        crl_bench_hist_add(&parts[i % 3 == 0 ? 0 : i % 7 == 0 ? 1 : 2], x); /* part 3: empty */
    }
    for (int p = 0; p < 4; p++)
        crl_bench_hist_merge(merged, &parts[p]);
    assert_int_equal(merged->count, one->count);
    assert_int_equal(merged->min, one->min);
    assert_int_equal(merged->max, one->max);
    assert_memory_equal(merged->bucket, one->bucket, sizeof(one->bucket));
    for (size_t i = 0; i < NQS; i++)
        assert_int_equal(crl_bench_hist_quantile(merged, k_qs[i]),
                         crl_bench_hist_quantile(one, k_qs[i]));
    assert_true(fabs(crl_bench_hist_mean(merged) - crl_bench_hist_mean(one)) < 1e-6);
    free(one);
    free(parts);
    free(merged);
}

static void test_empty(void **state) {
    (void)state;
    crl_bench_hist h, other;
    crl_bench_hist_init(&h);
    crl_bench_hist_init(&other);
    for (size_t i = 0; i < NQS; i++)
        assert_int_equal(crl_bench_hist_quantile(&h, k_qs[i]), 0);
    assert_true(crl_bench_hist_mean(&h) == 0.0);
    crl_bench_hist_merge(&h, &other);
    assert_int_equal(h.count, 0);
    crl_bench_hist_add(&other, 5000);
    crl_bench_hist_merge(&h, &other); /* into an empty one */
    assert_int_equal(h.min, 5000);
    assert_int_equal(h.max, 5000);
    assert_int_equal(crl_bench_hist_quantile(&h, 0.5), 5000);
}

static void test_tick_hist(void **state) {
    (void)state;
    crl_bench_tick_hist *t = calloc(1, sizeof(*t));
    uint64_t *v = malloc(N * sizeof(*v));
    for (size_t i = 0; i < N; i++) {
        v[i] = (uint64_t)exp(log(300e3) + normal());
        crl_bench__tick_add(t, v[i]);
    }
    qsort(v, N, sizeof(*v), cmp_u64);
    for (size_t i = 1; i < NQS - 1; i++)
        assert_true(rel_err(crl_bench__tick_quantile(t, k_qs[i]), exact(v, N, k_qs[i])) <= 0.032);
    free(v);
    free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uniform),     cmocka_unit_test(test_lognormal),
        cmocka_unit_test(test_bimodal),     cmocka_unit_test(test_constants),
        cmocka_unit_test(test_huge_values), cmocka_unit_test(test_merge),
        cmocka_unit_test(test_empty),       cmocka_unit_test(test_tick_hist),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
