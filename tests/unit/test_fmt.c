/* test_fmt.c: crl_fmt_double must print exactly what Python's repr(float) prints, since clients
 * of the original service see these strings in every /predict response. fmt.c is included so the
 * printf-free fast path can be held byte for byte against the printf-based slow path; set
 * CRL_FMT_SWEEP=<n> to multiply the random sweeps by n (the default run takes well under 2 s). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/fmt.c"

typedef struct {
    double d;
    const char *want;
} fmt_case_t;

/* Expected strings were produced by CPython 3.13 repr(). */
static const fmt_case_t k_cases[] = {
    {0.0, "0.0"},
    {-0.0, "-0.0"},
    {1.0, "1.0"},
    {-1.0, "-1.0"},
    {0.1, "0.1"},
    {0.3, "0.3"},
    {1.0 / 3, "0.3333333333333333"},
    {2.0 / 3, "0.6666666666666666"},
    {1e16, "1e+16"},
    {1e15, "1000000000000000.0"},
    {9999999999999998.0, "9999999999999998.0"},
    {123456789012345.0, "123456789012345.0"},
    {1234567890123456.0, "1234567890123456.0"},
    {1.5e-5, "1.5e-05"},
    {1e-4, "0.0001"},
    {0.00011, "0.00011"},
    {1e-5, "1e-05"},
    {1e22, "1e+22"},
    {1e23, "1e+23"},
    {5e-324, "5e-324"},
    {2.2250738585072014e-308, "2.2250738585072014e-308"},
    {1.7976931348623157e308, "1.7976931348623157e+308"},
    {(double)(float)(0.3), "0.30000001192092896"},
    {(double)(float)(-0.7), "-0.699999988079071"},
    {(double)(float)(1e-7), "1.0000000116860974e-07"},
    {9.5367431640625e-07, "9.5367431640625e-07"},
    {1152921504606846976.0, "1.152921504606847e+18"},
    {1001.0, "1001.0"},
    {-1000.5, "-1000.5"},
    {100.0, "100.0"},
    {1e100, "1e+100"},
    {1.25e-300, "1.25e-300"},
    {0.30000000000000004, "0.30000000000000004"},
    {9007199254740992.0, "9007199254740992.0"},
    {123.456, "123.456"},
};

static void test_python_repr_table(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof(k_cases) / sizeof(k_cases[0]); i++) {
        char out[32];
        size_t n = crl_fmt_double(out, k_cases[i].d);
        assert_string_equal(out, k_cases[i].want);
        assert_int_equal(n, strlen(k_cases[i].want));
    }
}

static void test_non_finite(void **state) {
    (void)state;
    char out[32];
    assert_int_equal(crl_fmt_double(out, INFINITY), 3);
    assert_string_equal(out, "inf");
    crl_fmt_double(out, -INFINITY);
    assert_string_equal(out, "-inf");
    crl_fmt_double(out, NAN);
    assert_string_equal(out, "nan");
    crl_fmt_double(out, -NAN);
    assert_string_equal(out, "nan");
    assert_int_equal(crl_fmt_json_double(out, NAN), 4);
    assert_string_equal(out, "null");
    crl_fmt_json_double(out, INFINITY);
    assert_string_equal(out, "null");
    crl_fmt_json_double(out, -INFINITY);
    assert_string_equal(out, "null");
    crl_fmt_json_double(out, 0.5);
    assert_string_equal(out, "0.5");
    crl_fmt_json_double(out, -0.0);
    assert_string_equal(out, "-0.0");
}

/* Property: whatever is printed reads back to the same bits, fits 32 bytes, and is never longer
 * than the 17 digits %.17g needs. */
static void test_round_trip_random(void **state) {
    (void)state;
    uint64_t x = 0x9E3779B97F4A7C15ULL;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double d;
        if (i % 2) {
            float f;
            uint32_t b = (uint32_t)x;
            memcpy(&f, &b, sizeof(f));
            d = f;
        } else {
            memcpy(&d, &x, sizeof(d));
        }
        if (!isfinite(d)) continue;
        char out[32];
        size_t n = crl_fmt_double(out, d);
        assert_true(n < 32);
        assert_int_equal(n, strlen(out));
        double back = strtod(out, NULL);
        assert_memory_equal(&back, &d, sizeof(d));
        size_t digits = 0;
        for (const char *p = out; *p && *p != 'e'; p++)
            if (*p >= '1' && *p <= '9') digits++;
        assert_true(digits <= 17);
    }
}

/* Exponent form exactly outside [1e-4, 1e16), as Python. */
static void test_notation_switch(void **state) {
    (void)state;
    char out[32];
    crl_fmt_double(out, 0.0001);
    assert_string_equal(out, "0.0001");
    crl_fmt_double(out, 0.00009999);
    assert_string_equal(out, "9.999e-05");
    crl_fmt_double(out, 9999999999999998.0);
    assert_null(strchr(out, 'e'));
    crl_fmt_double(out, 1e16);
    assert_string_equal(out, "1e+16");
    crl_fmt_double(out, -2.5e-10);
    assert_string_equal(out, "-2.5e-10");
}

/* xorshift64: deterministic, so a failure reproduces. */
static uint64_t rng_next(uint64_t *x) {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static long sweep_factor(void) {
    const char *s = getenv("CRL_FMT_SWEEP");
    long n = s ? strtol(s, NULL, 10) : 1;
    return n > 0 ? n : 1;
}

static long g_fast_hits; /* how many compared values the fast path answered itself */

/* The fast path must print d exactly as the slow path does, and d must read back. */
static void check_paths_agree(double d) {
    char fast[32], slow[32];
    size_t nf = fmt_double_with(fast, d, 1);
    size_t ns = fmt_double_with(slow, d, 0);
    if (nf != ns || memcmp(fast, slow, nf + 1) != 0) {
        uint64_t b;
        memcpy(&b, &d, sizeof(b));
        fail_msg("bits 0x%016llx: fast \"%s\" slow \"%s\"", (unsigned long long)b, fast, slow);
    }
    double a = fabs(d), back = strtod(fast, NULL);
    if (!isnan(d)) assert_memory_equal(&back, &d, sizeof(d));
    uint64_t digits;
    int nd, x;
    if (isfinite(a) && a > 0 && shortest_fast(a, &digits, &nd, &x)) g_fast_hits++;
}

/* The neighbours of d too: the interval ends of a double sit half-way to them. */
static void check_around(double d) {
    double up = d, down = d;
    for (int i = 0; i < 3; i++) {
        check_paths_agree(up);
        check_paths_agree(-up);
        check_paths_agree(down);
        check_paths_agree(-down);
        up = nextafter(up, INFINITY);
        down = nextafter(down, -INFINITY);
    }
}

/* Random float32 bit patterns widened to double: all exponents, both signs, subnormals, plus
 * the action-value range [-1, 1] the server formats most. */
static void test_fast_path_float32(void **state) {
    (void)state;
    uint64_t x = 0x2545F4914F6CDD1DULL;
    long n = 300000 * sweep_factor();
    g_fast_hits = 0;
    for (long i = 0; i < n; i++) {
        uint64_t r = rng_next(&x);
        float f;
        if (i % 4 == 3) {
            f = (float)((double)(r >> 11) / 9007199254740992.0 * 2.0 - 1.0);
        } else {
            uint32_t b = (uint32_t)(r >> 32);
            memcpy(&f, &b, sizeof(f));
        }
        check_paths_agree((double)f);
    }
    /* The fast range covers over a third of float32 exponents and nearly all of [-1, 1]. */
    assert_true(g_fast_hits > n / 4);
}

/* Random double bit patterns, and random mantissas under every exponent in and around the fast
 * range (random bits alone seldom land there). */
static void test_fast_path_double(void **state) {
    (void)state;
    uint64_t x = 0x9E3779B97F4A7C15ULL;
    long n = 200000 * sweep_factor();
    g_fast_hits = 0;
    for (long i = 0; i < n; i++) {
        uint64_t r = rng_next(&x);
        if (i % 2) {
            uint64_t e =
                1075 + (uint64_t)(FAST_E2_MIN - 3) + (r >> 1) % (FAST_E2_MAX - FAST_E2_MIN + 7);
            r = (r & 0x800FFFFFFFFFFFFFULL) | (e << 52);
        }
        double d;
        memcpy(&d, &r, sizeof(d));
        check_paths_agree(d);
    }
    assert_true(g_fast_hits > n / 3);
}

/* Powers of two (where the interval is lopsided), powers of ten, the smallest and largest
 * mantissa under every exponent, and the fast range's own ends. */
static void test_fast_path_edges(void **state) {
    (void)state;
    for (int e = -1074; e <= 1023; e++)
        check_around(ldexp(1.0, e));
    for (int e = -30; e <= 30; e++) {
        char s[32];
        snprintf(s, sizeof(s), "1e%d", e);
        check_around(strtod(s, NULL));
        snprintf(s, sizeof(s), "5e%d", e);
        check_around(strtod(s, NULL));
        snprintf(s, sizeof(s), "9.999e%d", e);
        check_around(strtod(s, NULL));
    }
    for (int e2 = FAST_E2_MIN - 2; e2 <= FAST_E2_MAX + 2; e2++) {
        check_around(ldexp((double)(1ULL << 52), e2));
        check_around(ldexp((double)((1ULL << 53) - 1), e2));
        check_around(ldexp((double)((1ULL << 52) + 1), e2));
    }
    check_around(ldexp(1.0, -30));
    check_around(ldexp(1.0, 64));
    check_around(1e-4);
    check_around(1e16);
    check_around(1e15);
    check_around(1e-9);
    check_around(1.8446744073709552e19);
}

/* Short decimals (1 to 4 digits) under every exponent the fast path covers, and their
 * neighbours: the longest digit-dropping runs, and interval ends that fall right on them. */
static void test_fast_path_short_decimals(void **state) {
    (void)state;
    long per = 2000 * sweep_factor();
    uint64_t x = 0xD1B54A32D192ED03ULL;
    for (int e = -10; e <= 19; e++) {
        for (long i = 0; i < per; i++) {
            char s[40];
            unsigned c = (unsigned)(rng_next(&x) % 10000);
            snprintf(s, sizeof(s), "%ue%d", c, e - 3);
            check_around(strtod(s, NULL));
        }
    }
}

/* Ties: c * 10^(e2 - 1) with c odd is exactly half-way between the doubles j * 2^e2 and
 * (j + 1) * 2^e2, so it is inside the rounding interval of the even one only. Both neighbours,
 * for every exponent of the fast range where such short midpoints exist. */
static void test_fast_path_ties(void **state) {
    (void)state;
    uint64_t x = 0xA0761D6478BD642FULL;
    long per = 300 * sweep_factor();
    for (int e2 = 1; e2 <= FAST_E2_MAX; e2++) {
        /* midpoint D = (2j + 1) * 2^(e2 - 1) must lie in [2^(52 + e2), 2^(53 + e2)) */
        u128 lo = (u128)1 << (52 + e2), span = lo;
        u128 unit = 1;
        for (int i = 0; i < e2 - 1; i++)
            unit *= 10;
        for (long i = 0; i < per; i++) {
            u128 c = (lo + (u128)(rng_next(&x) % (uint64_t)(span >> 4)) * 16) / unit + 1;
            c |= 1; /* odd c: D / 2^(e2 - 1) = c * 5^(e2 - 1) is odd */
            u128 dmid = c * unit;
            if (dmid < lo || dmid >= lo + span) continue;
            uint64_t j = (uint64_t)(dmid >> e2);
            check_paths_agree(ldexp((double)j, e2));
            check_paths_agree(ldexp((double)(j + 1), e2));
        }
    }
}

/* The fast path's digit writers against printf: swar8 for every value below 10^5 and a random
 * sample of the rest (all 10^8 were checked once), put_digits for every length. */
static void test_fast_digit_writers(void **state) {
    (void)state;
    uint64_t x = 0xC2B2AE3D27D4EB4FULL;
    for (uint32_t i = 0; i < 300000; i++) {
        uint32_t v = i < 100000 ? i : (uint32_t)(rng_next(&x) % 100000000);
        char want[16], got[8];
        snprintf(want, sizeof(want), "%08u", (unsigned)v);
        store8(got, swar8(v));
        assert_memory_equal(got, want, 8);
    }
    for (int nd = 1; nd <= 17; nd++) {
        for (int i = 0; i < 2000; i++) {
            uint64_t lo = k_pow10u[nd - 1], v = lo + rng_next(&x) % (k_pow10u[nd] - lo);
            if (i == 0) v = lo;
            if (i == 1) v = k_pow10u[nd] - 1;
            char want[24], got[32];
            memset(got, 'x', sizeof(got));
            snprintf(want, sizeof(want), "%llu", (unsigned long long)v);
            put_digits(got, v, nd);
            assert_memory_equal(got, want, (size_t)nd);
            if (nd >= 8) assert_int_equal(got[nd], 'x'); /* spills only when short */
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_python_repr_table), cmocka_unit_test(test_non_finite),
        cmocka_unit_test(test_round_trip_random), cmocka_unit_test(test_notation_switch),
        cmocka_unit_test(test_fast_path_float32), cmocka_unit_test(test_fast_path_double),
        cmocka_unit_test(test_fast_path_edges),   cmocka_unit_test(test_fast_path_short_decimals),
        cmocka_unit_test(test_fast_path_ties),    cmocka_unit_test(test_fast_digit_writers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
