/* test_philox.c: Philox4x32-10 against Random123's published known-answer vectors
 * (kat_vectors: "philox4x32 10 <ctr x4> <key x2> <out x4>"), and the exact uniform / normal
 * mappings documented in model/philox.h, which other implementations reproduce. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>

#include "model/philox.h"

static void expect_block(const uint32_t ctr[4], const uint32_t key[2], const uint32_t want[4]) {
    crl_philox_block_t b = crl_philox4x32_10(ctr, key);
    for (int i = 0; i < 4; i++)
        assert_int_equal(b.v[i], want[i]);
}

static void test_known_answers(void **state) {
    (void)state;
    const uint32_t z4[4] = {0, 0, 0, 0}, z2[2] = {0, 0};
    const uint32_t w0[4] = {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8};
    expect_block(z4, z2, w0);
    const uint32_t f4[4] = {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff};
    const uint32_t f2[2] = {0xffffffff, 0xffffffff};
    const uint32_t w1[4] = {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd};
    expect_block(f4, f2, w1);
    const uint32_t p4[4] = {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344};
    const uint32_t p2[2] = {0xa4093822, 0x299f31d0};
    const uint32_t w2[4] = {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1};
    expect_block(p4, p2, w2);
}

/* crl_philox_at: key = {seed low, seed high}, counter = {row, col, draw, 0}. */
static void test_counter_and_key_layout(void **state) {
    (void)state;
    const uint32_t ctr[4] = {0x243f6a88, 0x85a308d3, 0x13198a2e, 0};
    const uint32_t key[2] = {0xa4093822, 0x299f31d0};
    crl_philox_block_t a = crl_philox4x32_10(ctr, key);
    crl_philox_block_t b = crl_philox_at(0x299f31d0a4093822ull, 0x243f6a88, 0x85a308d3, 0x13198a2e);
    for (int i = 0; i < 4; i++)
        assert_int_equal(a.v[i], b.v[i]);
    /* Every coordinate matters. */
    crl_philox_block_t c = crl_philox_at(1, 0, 0, 0), d = crl_philox_at(1ull << 32, 0, 0, 0);
    crl_philox_block_t e = crl_philox_at(1, 1, 0, 0), f = crl_philox_at(1, 0, 1, 0);
    crl_philox_block_t g = crl_philox_at(1, 0, 0, 1);
    assert_true(c.v[0] != d.v[0] && c.v[0] != e.v[0] && c.v[0] != f.v[0] && c.v[0] != g.v[0]);
}

static void test_uniform_mapping(void **state) {
    (void)state;
    assert_true(crl_philox_uniform53(0, 0) == 0.0);
    assert_true(crl_philox_uniform53(0xffffffff, 0xffffffff) == 1.0 - 0x1p-53);
    assert_true(crl_philox_uniform53(0x80000000, 0) == 0.5);
    /* The low 11 bits of the second word are dropped. */
    assert_true(crl_philox_uniform53(0, 0x7ff) == 0.0);
    assert_true(crl_philox_uniform53(0, 0x800) == 0x1p-53);
}

static void test_normal_mapping(void **state) {
    (void)state;
    /* u1 = 1 - 0.5, u2 = 0: sqrt(-2 ln 0.5) * cos 0. */
    crl_philox_block_t b = {{0x80000000, 0, 0, 0}};
    assert_true(fabs(crl_philox_normal(b) - sqrt(2.0 * log(2.0))) < 1e-15);
    /* u2 = 0.5: the cosine is -1. */
    crl_philox_block_t c = {{0x80000000, 0, 0x80000000, 0}};
    assert_true(fabs(crl_philox_normal(c) + sqrt(2.0 * log(2.0))) < 1e-15);
    /* u1 = 1 - 0: log(1) = 0, never -inf. */
    crl_philox_block_t d = {{0, 0, 0, 0}};
    assert_true(crl_philox_normal(d) == 0.0);
    crl_philox_block_t e = {{0xffffffff, 0xffffffff, 0, 0}};
    assert_true(isfinite(crl_philox_normal(e)) && crl_philox_normal(e) > 8.0);
}

/* 100k variates over the counter space: mean 0, variance 1, tails as a normal's. */
static void test_normal_moments(void **state) {
    (void)state;
    const int n = 100000;
    double s = 0, s2 = 0;
    int beyond2 = 0;
    for (int i = 0; i < n; i++) {
        double z = crl_philox_normal(crl_philox_at(42, (uint32_t)i, 1, 0));
        s += z;
        s2 += z * z;
        beyond2 += fabs(z) > 2.0;
    }
    double mean = s / n, var = s2 / n - mean * mean;
    assert_true(fabs(mean) < 0.015);
    assert_true(fabs(var - 1.0) < 0.02);
    assert_true(fabs((double)beyond2 / n - 0.0455) < 0.004);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answers),   cmocka_unit_test(test_counter_and_key_layout),
        cmocka_unit_test(test_uniform_mapping), cmocka_unit_test(test_normal_mapping),
        cmocka_unit_test(test_normal_moments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
