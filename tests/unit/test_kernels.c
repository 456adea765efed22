/* test_kernels.c: the generic kernels against naive double-precision math on odd shapes and
 * unaligned rows, the kernel-table choice with its fallback, and the CPU-feature to ISA mapping.
 * (The ISA tables against generic: test_kernels_isa.c.) */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/cpufeat.h"
#include "kernels/kernels.h"

/* A fixed pseudo-random sequence in [-2, 2), so failures reproduce. */
static uint32_t rng_state = 12345;
static float rnd(void) {
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)((rng_state >> 8) & 0xffff) / 16384.0f - 2.0f;
}

static float *rnd_vec(size_t n, size_t offset) {
    /* offset floats of padding in front: the kernels must not assume aligned rows. */
    float *p = malloc((n + offset + 1) * sizeof(float));
    assert_non_null(p);
    for (size_t i = 0; i < n + offset + 1; i++)
        p[i] = rnd();
    return p;
}

static void check_linear_shape(const crl_kernels_t *k, size_t rows, size_t in, size_t out,
                               int with_bias, size_t offset) {
    float *xb = rnd_vec(rows * in, offset), *wb = rnd_vec(out * in, offset);
    float *bb = rnd_vec(out, offset), *y = calloc(rows * out + 1, sizeof(float));
    assert_non_null(y);
    const float *x = xb + offset, *w = wb + offset, *b = with_bias ? bb + offset : NULL;
    y[rows * out] = 123.0f; /* a sentinel just past the output */
    k->linear(x, rows, in, w, b, out, y);
    for (size_t r = 0; r < rows; r++) {
        for (size_t o = 0; o < out; o++) {
            double ref = b ? (double)b[o] : 0.0, mag = fabs(ref);
            for (size_t i = 0; i < in; i++) {
                ref += (double)x[r * in + i] * (double)w[o * in + i];
                mag += fabs((double)x[r * in + i] * (double)w[o * in + i]);
            }
            double tol = 1e-6 * (1.0 + mag);
            if (fabs((double)y[r * out + o] - ref) > tol)
                fail_msg("linear %zux%zu->%zu: y[%zu][%zu]=%.9g, expected %.9g", rows, in, out, r,
                         o, (double)y[r * out + o], ref);
        }
    }
    assert_true(y[rows * out] == 123.0f);
    free(xb);
    free(wb);
    free(bb);
    free(y);
}

static void test_linear_odd_shapes(void **state) {
    (void)state;
    static const size_t shapes[][3] = {{1, 1, 1},   {3, 7, 5}, {2, 17, 3}, {5, 33, 9},
                                       {1, 64, 64}, {4, 3, 1}, {9, 1, 13}, {2, 129, 7}};
    const crl_kernels_t *k = crl_kernels_generic();
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++)
        for (int bias = 0; bias < 2; bias++)
            for (size_t off = 0; off < 3; off += 2)
                check_linear_shape(k, shapes[s][0], shapes[s][1], shapes[s][2], bias, off);
}

static void test_linear_exact_small(void **state) {
    (void)state;
    /* Two rows, in=3, out=2, values chosen so every product and sum is exact. */
    const float x[] = {1, 2, 3, -1, 0.5f, 4};
    const float w[] = {1, 0, -1, 0.25f, 2, 1};
    const float b[] = {10, -1};
    float y[4];
    crl_kernels_generic()->linear(x, 2, 3, w, b, 2, y);
    assert_true(y[0] == 1 - 3 + 10.0f);
    assert_true(y[1] == 0.25f + 4 + 3 - 1);
    assert_true(y[2] == -1 - 4 + 10.0f);
    assert_true(y[3] == -0.25f + 1 + 4 - 1);
}

static void test_activations(void **state) {
    (void)state;
    const crl_kernels_t *k = crl_kernels_generic();
    enum { N = 37 };
    float base[N], v[N];
    for (size_t i = 0; i < N; i++)
        base[i] = rnd() * 5.0f;
    base[0] = 0.0f;
    base[1] = 100.0f;
    base[2] = -100.0f;
    base[3] = -1000.0f;
    base[4] = 1000.0f;

    memcpy(v, base, sizeof(v));
    k->relu(v, N);
    for (size_t i = 0; i < N; i++)
        assert_true(v[i] == (base[i] > 0 ? base[i] : 0.0f));

    memcpy(v, base, sizeof(v));
    k->tanh(v, N);
    for (size_t i = 0; i < N; i++)
        assert_true(fabs((double)v[i] - tanh((double)base[i])) <= 1e-6);

    memcpy(v, base, sizeof(v));
    k->sigmoid(v, N);
    for (size_t i = 0; i < N; i++) {
        double ref = 1.0 / (1.0 + exp(-(double)base[i]));
        assert_false(isnan(v[i]));
        assert_true(fabs((double)v[i] - ref) <= 1e-6);
    }
    assert_true(v[3] == 0.0f && v[4] == 1.0f);

    memcpy(v, base, sizeof(v));
    k->clip(v, N, -1.5f, 0.75f);
    for (size_t i = 0; i < N; i++) {
        float ref = base[i] < -1.5f ? -1.5f : (base[i] > 0.75f ? 0.75f : base[i]);
        assert_true(v[i] == ref);
    }

    memcpy(v, base, sizeof(v));
    k->scale(v, N, -0.5f);
    for (size_t i = 0; i < N; i++)
        assert_true(v[i] == base[i] * -0.5f);
}

static void test_nan_propagates(void **state) {
    (void)state;
    const crl_kernels_t *k = crl_kernels_generic();
    float v[1] = {NAN};
    k->relu(v, 1);
    assert_true(isnan(v[0]));
    k->clip(v, 1, -1.0f, 1.0f);
    assert_true(isnan(v[0]));
    k->sigmoid(v, 1);
    assert_true(isnan(v[0]));
}

static void test_add_row(void **state) {
    (void)state;
    enum { ROWS = 5, COLS = 7 };
    float x[ROWS * COLS + 1], ref[ROWS * COLS], b[COLS];
    for (size_t i = 0; i < ROWS * COLS; i++)
        x[i] = ref[i] = rnd();
    for (size_t c = 0; c < COLS; c++)
        b[c] = rnd();
    for (size_t r = 0; r < ROWS; r++)
        for (size_t c = 0; c < COLS; c++)
            ref[r * COLS + c] += b[c];
    x[ROWS * COLS] = 99.0f;
    crl_kernels_generic()->add_row(x, ROWS, COLS, b);
    for (size_t i = 0; i < ROWS * COLS; i++)
        assert_true(x[i] == ref[i]);
    assert_true(x[ROWS * COLS] == 99.0f);
}

static void test_zero_length_is_noop(void **state) {
    (void)state;
    const crl_kernels_t *k = crl_kernels_generic();
    float v[1] = {-3.0f};
    k->relu(v, 0);
    k->tanh(v, 0);
    k->sigmoid(v, 0);
    k->clip(v, 0, 0, 0);
    k->scale(v, 0, 2.0f);
    k->add_row(v, 0, 1, v);
    k->linear(v, 0, 1, v, NULL, 1, v + 1);
    assert_true(v[0] == -3.0f);
}

static void test_selection(void **state) {
    (void)state;
    /* Before any choice, callers get the reference table. */
    assert_ptr_equal(crl_kernels(), crl_kernels_generic());
    const unsigned all = CRL_ISA_AVX2 | CRL_ISA_AVX512 | CRL_ISA_NEON;
    const crl_kernels_t *best = crl_kernels_choose(all, NULL);
    assert_non_null(best);
    assert_non_null(best->linear);
    assert_ptr_equal(crl_kernels(), best);
#if defined(__x86_64__)
    /* Both ISA tables are built on x86_64, and avx512 is preferred to avx2. */
    assert_string_equal(best->name, "avx512");
    assert_null(best->linear_packed_bf16);
    /* With AVX512_BF16 too, the avx512 table with the bf16 entries, forced or not. */
    const crl_kernels_t *bf = crl_kernels_choose(all | CRL_ISA_AVX512_BF16, NULL);
    assert_string_equal(bf->name, "avx512");
    assert_non_null(bf->linear_packed_bf16);
    assert_ptr_equal(crl_kernels_choose(all | CRL_ISA_AVX512_BF16, "avx512"), bf);
    assert_ptr_equal(crl_kernels_by_name("avx512"), best); /* by name: the plain variant */
    best = crl_kernels_choose(all, NULL);
    assert_ptr_equal(crl_kernels_choose(CRL_ISA_AVX2, NULL), crl_kernels_by_name("avx2"));
    assert_null(crl_kernels_by_name("neon"));
#elif defined(__aarch64__)
    /* The neon table is built on aarch64 (and only there) and preferred to generic. */
    assert_string_equal(best->name, "neon");
    assert_ptr_equal(crl_kernels_choose(CRL_ISA_NEON, NULL), crl_kernels_by_name("neon"));
    assert_null(crl_kernels_by_name("avx2"));
    assert_null(crl_kernels_by_name("avx512"));
#else
    assert_ptr_equal(best, crl_kernels_generic());
#endif

    /* Nothing allowed: generic, whatever is asked for. */
    assert_ptr_equal(crl_kernels_choose(0, NULL), crl_kernels_generic());
    assert_ptr_equal(crl_kernels(), crl_kernels_generic());
    assert_ptr_equal(crl_kernels_choose(0, "avx512"), crl_kernels_generic());
    assert_ptr_equal(crl_kernels_choose(0, "avx2"), crl_kernels_generic());

    /* Forcing generic works with everything allowed. */
    assert_ptr_equal(crl_kernels_choose(all, "generic"), crl_kernels_generic());
    assert_string_equal(crl_kernels()->name, "generic");

    /* Without the AVX512 bit, avx512 is never chosen, not even when forced. */
    for (unsigned allowed = 0; allowed < 8; allowed++) {
        if (allowed & CRL_ISA_AVX512) continue;
        assert_string_not_equal(crl_kernels_choose(allowed, NULL)->name, "avx512");
        assert_string_not_equal(crl_kernels_choose(allowed, "avx512")->name, "avx512");
    }

    /* An unknown name is not fatal: it falls back to the best allowed table. */
    assert_ptr_equal(crl_kernels_choose(all, "no-such-isa"), best);
    assert_ptr_equal(crl_kernels(), best);
    assert_ptr_equal(crl_kernels_choose(all, ""), best);
    assert_ptr_equal(crl_kernels_choose(CRL_ISA_AVX2, "no-such-isa"),
                     crl_kernels_choose(CRL_ISA_AVX2, NULL));

#if defined(__x86_64__)
    /* A forced table that is allowed is taken even when a better one is allowed too. */
    assert_string_equal(crl_kernels_choose(all, "avx2")->name, "avx2");
    assert_string_equal(crl_kernels_choose(CRL_ISA_AVX2, "avx512")->name, "avx2");
#elif defined(__aarch64__)
    /* Forcing neon without its bit gives generic; forcing generic beats neon. */
    assert_string_equal(crl_kernels_choose(0, "neon")->name, "generic");
    assert_string_equal(crl_kernels_choose(CRL_ISA_NEON, "generic")->name, "generic");
    assert_string_equal(crl_kernels_choose(CRL_ISA_NEON, "neon")->name, "neon");
#endif

    /* The deprecated crl_kernels_select only ever gives generic (it allows no ISA table). */
    assert_ptr_equal(crl_kernels_select("generic"), crl_kernels_generic());
    assert_ptr_equal(crl_kernels_select(NULL), crl_kernels_generic());

    assert_null(crl_kernels_by_name("no-such-isa"));
    assert_null(crl_kernels_by_name(NULL));
    assert_ptr_equal(crl_kernels_by_name("generic"), crl_kernels_generic());

    const crl_kernels_t *g = crl_kernels_generic();
    assert_non_null(g->relu);
    assert_non_null(g->tanh);
    assert_non_null(g->sigmoid);
    assert_non_null(g->clip);
    assert_non_null(g->add_row);
    assert_non_null(g->scale);
}

/* CPU feature bits -> ISA tables: every required bit matters. */
static void test_isas_for(void **state) {
    (void)state;
    const unsigned avx2 = CRL_CPU_SSE42 | CRL_CPU_AVX | CRL_CPU_AVX2 | CRL_CPU_FMA;
    const unsigned avx512 =
        avx2 | CRL_CPU_AVX512F | CRL_CPU_AVX512BW | CRL_CPU_AVX512VL | CRL_CPU_AVX512DQ;
    assert_int_equal(crl_kernels_isas_for(0), 0);
    assert_int_equal(crl_kernels_isas_for(CRL_CPU_SSE42 | CRL_CPU_AVX), 0);
    assert_int_equal(crl_kernels_isas_for(avx2), CRL_ISA_AVX2);
    assert_int_equal(crl_kernels_isas_for(avx2 & ~CRL_CPU_FMA), 0);
    assert_int_equal(crl_kernels_isas_for(avx512), CRL_ISA_AVX2 | CRL_ISA_AVX512);
    assert_int_equal(crl_kernels_isas_for(avx512 | CRL_CPU_AMX), CRL_ISA_AVX2 | CRL_ISA_AVX512);
    /* AVX512_BF16 adds the bf16 entries to avx512, and means nothing without avx512. */
    assert_int_equal(crl_kernels_isas_for(avx512 | CRL_CPU_AVX512BF16),
                     CRL_ISA_AVX2 | CRL_ISA_AVX512 | CRL_ISA_AVX512_BF16);
    assert_int_equal(crl_kernels_isas_for((avx512 & ~CRL_CPU_AVX512BW) | CRL_CPU_AVX512BF16),
                     CRL_ISA_AVX2);
    static const unsigned each[] = {CRL_CPU_AVX512F, CRL_CPU_AVX512BW, CRL_CPU_AVX512VL,
                                    CRL_CPU_AVX512DQ, CRL_CPU_FMA};
    for (size_t i = 0; i < sizeof(each) / sizeof(each[0]); i++)
        assert_false(crl_kernels_isas_for(avx512 & ~each[i]) & CRL_ISA_AVX512);
    assert_int_equal(crl_kernels_isas_for(CRL_CPU_NEON), CRL_ISA_NEON);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_selection), /* first: checks the state before any selection */
        cmocka_unit_test(test_linear_odd_shapes), cmocka_unit_test(test_linear_exact_small),
        cmocka_unit_test(test_activations),       cmocka_unit_test(test_nan_propagates),
        cmocka_unit_test(test_add_row),           cmocka_unit_test(test_zero_length_is_noop),
        cmocka_unit_test(test_isas_for),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
