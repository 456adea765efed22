/* test_fmt.c: crl_fmt_double must print exactly what Python's repr(float) prints, since clients
 * of the original service see these strings in every /predict response. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/fmt.h"

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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_python_repr_table),
        cmocka_unit_test(test_non_finite),
        cmocka_unit_test(test_round_trip_random),
        cmocka_unit_test(test_notation_switch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
