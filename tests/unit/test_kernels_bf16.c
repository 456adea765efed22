/* test_kernels_bf16.c: the bfloat16 entries of the kernel tables (model.precision: bfloat16).
 * Only the avx512 table handed out on a CPU with AVX512_BF16 has them; every other table, and the
 * avx512 table crl_kernels_by_name gives, has them NULL. The kernel is checked against an exact
 * reference: weights and activations rounded to bf16 (to nearest even), products and sums in
 * double; the kernel sums in f32 in its own order, so it may differ by f32 rounding of the sum,
 * at most in * 2^-24 * (|b| + sum |products|) whatever the order. On shapes with odd input tails,
 * partial output panels and several activation chunks, unaligned rows, nothing written outside
 * y, the ReLU epilogue, batch invariance, round-to-nearest-even ties and NaN. The graph's BF16
 * precision runs on that table and is refused, naming the CPU flag, on a table without it. Tests
 * that need AVX512_BF16 are skipped (cmocka skip) on CPUs without it. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hw/hw.h"
#include "kernels/kernels.h"
#include "nn/graph.h"

#define GUARD 16
#define SENTINEL 1234.5f

static uint32_t rng_state = 24681357u;
static uint32_t rnd_u32(void) {
    rng_state = rng_state * 1664525u + 1013904223u;
    return rng_state;
}
/* Uniform in [-2, 2) with 2^-16 steps: bf16 rounding changes most values. */
static float rnd(void) {
    return (float)(rnd_u32() >> 16) / 16384.0f - 2.0f;
}
static size_t rnd_range(size_t lo, size_t hi) {
    return lo + (size_t)(rnd_u32() >> 8) % (hi - lo + 1);
}

/* The bf16 table, or NULL (test skipped) on a CPU without AVX512_BF16 or a build without it. */
static const crl_kernels_t *bf16_table(void) {
    unsigned isas = crl_kernels_isas_for(crl_hw_cpu_features());
    const unsigned need = CRL_ISA_AVX512 | CRL_ISA_AVX512_BF16;
    const crl_kernels_t *k = crl_kernels_choose(isas, "avx512");
    if ((isas & need) != need || k->linear_packed_bf16 == NULL) {
        print_message("[  SKIP    ] no AVX512_BF16 on this CPU (or not built in)\n");
        crl_kernels_choose(0, "generic");
        return NULL;
    }
    crl_kernels_choose(0, "generic");
    assert_string_equal(k->name, "avx512");
    return k;
}

/* Round to nearest even, written independently of the kernel's packing. */
static double bf16(float f) {
    if (isnan(f)) return f;
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    uint32_t lo = u & 0xffffu, hi = u & 0xffff0000u;
    if (lo > 0x8000u || (lo == 0x8000u && (hi & 0x10000u))) hi += 0x10000u;
    float r;
    memcpy(&r, &hi, sizeof(r));
    return r;
}

typedef struct packed_w {
    uint16_t *p;
} packed_w;

static uint16_t *pack(const crl_kernels_t *k, const float *w, size_t in, size_t out) {
    size_t n = k->pack_bf16_size(in, out);
    void *p = NULL;
    assert_int_equal(posix_memalign(&p, 64, (n * 2 + 63) / 64 * 64 + 64), 0);
    k->pack_bf16(w, in, out, p);
    return p;
}

/* Runs the kernel on rows x in (x offset by xoff floats, y by yoff, guards around y) and checks
 * every output against the exact reference. */
static void check_shape(const crl_kernels_t *k, size_t rows, size_t in, size_t out, size_t xoff,
                        size_t yoff, int with_bias, int relu) {
    float *xb = malloc((rows * in + xoff + 1) * sizeof(float));
    float *w = malloc((in * out + 1) * sizeof(float));
    float *b = malloc((out + 1) * sizeof(float));
    size_t ny = rows * out;
    float *yb = malloc((ny + yoff + 2 * GUARD) * sizeof(float));
    assert_true(xb && w && b && yb);
    float *x = xb + xoff, *y = yb + yoff + GUARD;
    for (size_t i = 0; i < rows * in + xoff + 1; i++)
        xb[i] = rnd();
    for (size_t i = 0; i < in * out; i++)
        w[i] = rnd();
    for (size_t i = 0; i < out; i++)
        b[i] = rnd();
    for (size_t i = 0; i < ny + yoff + 2 * GUARD; i++)
        yb[i] = SENTINEL;
    uint16_t *p = pack(k, w, in, out);
    (relu ? k->linear_packed_bf16_relu : k->linear_packed_bf16)(x, rows, in, p,
                                                                with_bias ? b : NULL, out, y);
    for (size_t i = 0; i < GUARD; i++) {
        assert_true(y[-1 - (ptrdiff_t)i] == SENTINEL);
        assert_true(y[ny + i] == SENTINEL);
    }
    for (size_t r = 0; r < rows; r++)
        for (size_t o = 0; o < out; o++) {
            double ref = with_bias ? b[o] : 0.0, mag = fabs(ref);
            for (size_t i = 0; i < in; i++) {
                double t = bf16(x[r * in + i]) * bf16(w[o * in + i]);
                ref += t;
                mag += fabs(t);
            }
            if (relu && ref < 0) ref = 0;
            double tol = (double)(in + 1) * ldexp(1.0, -24) * mag;
            double got = y[r * out + o];
            if (!(fabs(got - ref) <= tol))
                fail_msg("rows %zu in %zu out %zu (x+%zu y+%zu bias %d relu %d): y[%zu][%zu] = "
                         "%.9g, exact %.9g, tolerance %.3g",
                         rows, in, out, xoff, yoff, with_bias, relu, r, o, got, ref, tol);
        }
    free(p);
    free(xb);
    free(w);
    free(b);
    free(yb);
}

static void test_tables_without_bf16_have_null_entries(void **state) {
    (void)state;
    const char *names[] = {"generic", "avx2", "avx512"};
    for (size_t i = 0; i < 3; i++) {
        const crl_kernels_t *k = crl_kernels_by_name(names[i]);
        if (k == NULL) continue;
        assert_null(k->pack_bf16_size);
        assert_null(k->pack_bf16);
        assert_null(k->linear_packed_bf16);
        assert_null(k->linear_packed_bf16_relu);
    }
    /* The bf16 variant is handed out only with CRL_ISA_AVX512_BF16 in the mask. */
    assert_null(crl_kernels_choose(CRL_ISA_AVX512 | CRL_ISA_AVX2, NULL)->linear_packed_bf16);
    assert_null(crl_kernels_choose(CRL_ISA_AVX512_BF16, "avx512")->linear_packed_bf16);
    assert_int_equal(crl_kernels_isas_for(CRL_CPU_AVX512BF16) & CRL_ISA_AVX512_BF16, 0);
    crl_kernels_choose(0, "generic");
}

static void test_bf16_linear_shapes(void **state) {
    (void)state;
    const crl_kernels_t *k = bf16_table();
    if (k == NULL) skip();
    static const size_t ins[] = {1, 2, 3, 5, 16, 31, 32, 33, 34, 63, 64, 65, 97, 257};
    static const size_t outs[] = {1, 3, 15, 16, 17, 48, 63, 64, 65, 130, 200};
    for (size_t i = 0; i < sizeof(ins) / sizeof(ins[0]); i++)
        for (size_t o = 0; o < sizeof(outs) / sizeof(outs[0]); o++)
            check_shape(k, rnd_range(1, 14), ins[i], outs[o], i % 2, o % 3, (int)((i + o) % 4 != 0),
                        0);
    for (int t = 0; t < 40; t++)
        check_shape(k, rnd_range(1, 20), rnd_range(1, 600), rnd_range(1, 300), rnd_range(0, 3),
                    rnd_range(0, 3), t % 3 != 0, t % 2);
    check_shape(k, 1, 3136, 512, 1, 0, 1, 1); /* nature_cnn's first Gemm */
}

static void test_bf16_relu_epilogue_and_batch_invariance(void **state) {
    (void)state;
    const crl_kernels_t *k = bf16_table();
    if (k == NULL) skip();
    const size_t rows = 13, in = 77, out = 70;
    float *x = malloc(rows * in * sizeof(float)), *w = malloc(in * out * sizeof(float));
    float *b = malloc(out * sizeof(float)), *y = malloc(rows * out * sizeof(float));
    float *yr = malloc(rows * out * sizeof(float)), *y1 = malloc(out * sizeof(float));
    assert_true(x && w && b && y && yr && y1);
    for (size_t i = 0; i < rows * in; i++)
        x[i] = rnd();
    for (size_t i = 0; i < in * out; i++)
        w[i] = rnd();
    for (size_t i = 0; i < out; i++)
        b[i] = rnd();
    uint16_t *p = pack(k, w, in, out);
    k->linear_packed_bf16(x, rows, in, p, b, out, y);
    k->linear_packed_bf16_relu(x, rows, in, p, b, out, yr);
    for (size_t i = 0; i < rows * out; i++) {
        float want = y[i] < 0.0f ? 0.0f : y[i];
        assert_memory_equal(&yr[i], &want, sizeof(float));
    }
    /* Each row alone, and every batch size 1..rows, gives the batch's bits for that row. */
    for (size_t n = 1; n <= rows; n++)
        for (size_t r = 0; r < n; r++) {
            k->linear_packed_bf16(x + r * in, 1, in, p, b, out, y1);
            assert_memory_equal(y1, y + r * out, out * sizeof(float));
        }
    free(p);
    free(x);
    free(w);
    free(b);
    free(y);
    free(yr);
    free(y1);
}

/* Ties round to even for weights (pack) and activations (the kernel), and a NaN comes out. */
static void test_bf16_rounding_and_nan(void **state) {
    (void)state;
    const crl_kernels_t *k = bf16_table();
    if (k == NULL) skip();
    const float tie_down = 1.00390625f; /* 1 + 2^-8: between 1 and 1 + 2^-7, even is 1 */
    const float tie_up = 1.01171875f;   /* 1 + 3 * 2^-8: even is 1 + 2^-6 */
    const float above = nextafterf(tie_down, 2.0f); /* just above the tie: 1 + 2^-7 */
    const float cases[3][2] = {{tie_down, 1.0f}, {tie_up, 1.015625f}, {above, 1.0078125f}};
    for (size_t i = 0; i < 3; i++) {
        float one = 1.0f, y = 0;
        uint16_t *p = pack(k, &cases[i][0], 1, 1); /* the weight is rounded */
        k->linear_packed_bf16(&one, 1, 1, p, NULL, 1, &y);
        assert_true(y == cases[i][1]);
        free(p);
        p = pack(k, &one, 1, 1); /* the activation is rounded */
        k->linear_packed_bf16(&cases[i][0], 1, 1, p, NULL, 1, &y);
        assert_true(y == cases[i][1]);
        free(p);
    }
    float w[3] = {1.0f, 2.0f, 3.0f}, x[3] = {1.0f, NAN, 1.0f}, y = 0;
    uint16_t *p = pack(k, w, 3, 1);
    k->linear_packed_bf16(x, 1, 3, p, NULL, 1, &y);
    assert_true(isnan(y));
    free(p);
}

/* A graph in BF16: close to its float32 run on the bf16 table; refused on the generic table. */
static crl_nn_graph_t *small_mlp(void) {
    crl_nn_graph_t *g = NULL;
    float w1[5 * 40], b1[40], w2[40 * 3], b2[3];
    for (size_t i = 0; i < 5 * 40; i++)
        w1[i] = rnd() * 0.5f;
    for (size_t i = 0; i < 40; i++)
        b1[i] = rnd() * 0.1f;
    for (size_t i = 0; i < 40 * 3; i++)
        w2[i] = rnd() * 0.3f;
    for (size_t i = 0; i < 3; i++)
        b2[i] = rnd() * 0.1f;
    assert_int_equal(crl_nn_graph_new(5, &g), CRL_OK);
    assert_int_equal(crl_nn_graph_add_linear(g, w1, b1, 5, 40, NULL), CRL_OK);
    assert_int_equal(crl_nn_graph_add_act(g, CRL_NN_RELU, NULL), CRL_OK);
    assert_int_equal(crl_nn_graph_add_linear(g, w2, b2, 40, 3, NULL), CRL_OK);
    assert_int_equal(crl_nn_graph_add_act(g, CRL_NN_TANH, NULL), CRL_OK);
    return g;
}

static void run_graph(crl_nn_graph_t *g, const float *x, size_t rows, float *y) {
    crl_nn_ws_t *ws = NULL;
    assert_int_equal(crl_nn_ws_new(g, rows, &ws), CRL_OK);
    assert_int_equal(crl_nn_run(g, ws, x, rows, y), CRL_OK);
    crl_nn_ws_free(ws);
}

static void test_graph_precision(void **state) {
    (void)state;
    crl_err err = {{0}};
    crl_kernels_choose(0, "generic");
    crl_nn_graph_t *g = small_mlp();
    assert_int_equal(crl_nn_graph_set_precision(g, CRL_NN_PRECISION_BF16, NULL), CRL_OK);
    assert_int_equal(crl_nn_graph_finish(g, &err), CRL_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "avx512_bf16"));
    crl_nn_graph_free(g);
    g = small_mlp();
    assert_int_equal(crl_nn_graph_finish(g, NULL), CRL_OK);
    memset(&err, 0, sizeof(err));
    assert_int_equal(crl_nn_graph_set_precision(g, CRL_NN_PRECISION_BF16, &err), CRL_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "AVX512_BF16"));
    assert_int_equal(crl_nn_graph_precision(g), CRL_NN_PRECISION_F32); /* unchanged */
    crl_nn_graph_free(g);

    const crl_kernels_t *k = bf16_table();
    if (k == NULL) skip();
    crl_kernels_choose(CRL_ISA_AVX512 | CRL_ISA_AVX512_BF16, "avx512");
    g = small_mlp();
    assert_int_equal(crl_nn_graph_finish(g, NULL), CRL_OK);
    float x[20 * 5], y32[20 * 3], y16[20 * 3], y16b[20 * 3];
    for (size_t i = 0; i < 20 * 5; i++)
        x[i] = rnd();
    run_graph(g, x, 20, y32);
    crl_nn_ws_t *old = NULL;
    assert_int_equal(crl_nn_ws_new(g, 20, &old), CRL_OK);
    assert_int_equal(crl_nn_graph_set_precision(g, CRL_NN_PRECISION_BF16, NULL), CRL_OK);
    assert_int_equal(crl_nn_graph_precision(g), CRL_NN_PRECISION_BF16);
    assert_int_equal(crl_nn_run(g, old, x, 20, y16), CRL_ESHAPE); /* planned for float32 */
    crl_nn_ws_free(old);
    run_graph(g, x, 20, y16);
    double worst = 0;
    int differs = 0;
    for (size_t i = 0; i < 20 * 3; i++) {
        double e = fabs((double)y16[i] - (double)y32[i]);
        if (e > worst) worst = e;
        differs |= y16[i] != y32[i];
    }
    assert_true(differs);      /* it did run in bf16 */
    assert_true(worst < 2e-2); /* and stayed close to float32 */
    /* Back to float32: the float32 bits again. */
    assert_int_equal(crl_nn_graph_set_precision(g, CRL_NN_PRECISION_F32, NULL), CRL_OK);
    run_graph(g, x, 20, y16b);
    assert_memory_equal(y16b, y32, sizeof(y32));
    crl_nn_graph_free(g);
    crl_kernels_choose(0, "generic");
}

int main(void) {
    crl_kernels_choose(0, "generic");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tables_without_bf16_have_null_entries),
        cmocka_unit_test(test_bf16_linear_shapes),
        cmocka_unit_test(test_bf16_relu_epilogue_and_batch_invariance),
        cmocka_unit_test(test_bf16_rounding_and_nan),
        cmocka_unit_test(test_graph_precision),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
