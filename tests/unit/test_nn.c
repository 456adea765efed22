/* test_nn.c: the graph builder, its ADD_ROW fold, the workspace and the executor, checked against
 * values computed by hand, plus the errors a caller can provoke; weights packed at finish for one
 * kernel table and run under another; broadcasting, constant and BatchNorm folding, and the
 * memory plan of the general graph; Conv (strides, pads, auto_pad, dilations, groups, bias, a
 * folded BatchNorm) and the pools against a naive reference, on every kernel table. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hw/hw.h"
#include "isa.h"
#include "kernels/kernels.h"
#include "nn/graph.h"

static crl_nn_graph_t *new_graph(size_t in) {
    crl_nn_graph_t *g = NULL;
    assert_int_equal(crl_nn_graph_new(in, &g), CRL_OK);
    assert_non_null(g);
    return g;
}

/* 2 -> 3 linear, relu, 3 -> 1 linear: every intermediate value is exact in float. */
static void test_run_hand_computed(void **state) {
    (void)state;
    crl_err err = {{0}};
    const float w1[] = {1, 2, -1, 0.5f, 0, -3}; /* [3][2] */
    const float b1[] = {0.5f, 1, 0};
    const float w2[] = {1, -2, 0.25f}; /* [1][3] */
    const float b2[] = {-1};
    crl_nn_graph_t *g = new_graph(2);
    assert_int_equal(crl_nn_graph_add_linear(g, w1, b1, 2, 3, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_add_act(g, CRL_NN_RELU, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_add_linear(g, w2, b2, 3, 1, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_finish(g, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_input_width(g), 2);
    assert_int_equal(crl_nn_graph_output_width(g), 1);
    assert_int_equal(crl_nn_graph_num_ops(g), 3);
    assert_int_equal(crl_nn_graph_op(g, 0), CRL_NN_LINEAR);
    assert_int_equal(crl_nn_graph_op(g, 1), CRL_NN_RELU);
    assert_int_equal(crl_nn_graph_op(g, 2), CRL_NN_LINEAR);

    crl_nn_ws_t *ws = NULL;
    assert_int_equal(crl_nn_ws_new(g, 4, &ws), CRL_OK);
    /* row 0 (1, 2): h = (5.5, 1, -6) -> relu (5.5, 1, 0) -> 5.5 - 2 + 0 - 1 = 2.5
     * row 1 (-2, 1): h = (0.5, 3.5, -3) -> (0.5, 3.5, 0) -> 0.5 - 7 - 1 = -7.5
     * row 2 (0, 0): h = (0.5, 1, 0) -> 0.5 - 2 - 1 = -2.5 */
    const float x[] = {1, 2, -2, 1, 0, 0};
    const float x_copy[] = {1, 2, -2, 1, 0, 0};
    float y[3] = {0};
    assert_int_equal(crl_nn_run(g, ws, x, 3, y), CRL_OK);
    assert_true(y[0] == 2.5f);
    assert_true(y[1] == -7.5f);
    assert_true(y[2] == -2.5f);
    assert_memory_equal(x, x_copy, sizeof(x)); /* the input is never written */

    /* The same workspace serves a smaller batch afterwards. */
    assert_int_equal(crl_nn_run(g, ws, x + 2, 1, y), CRL_OK);
    assert_true(y[0] == -7.5f);
    crl_nn_ws_free(ws);
    crl_nn_graph_free(g);
}

/* Elementwise ops first and last: the executor must copy out of x before working in place and
 * still land the final value in y. */
static void test_elementwise_chain(void **state) {
    (void)state;
    crl_err err = {{0}};
    crl_nn_graph_t *g = new_graph(4);
    const float row[] = {1, -1, 0.5f, 0};
    assert_int_equal(crl_nn_graph_add_scale(g, 2.0f, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_add_row(g, row, 4, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_add_clip(g, -2.0f, 3.0f, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_add_act(g, CRL_NN_TANH, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_add_act(g, CRL_NN_SIGMOID, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_finish(g, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_num_ops(g), 5); /* nothing to fold: no LINEAR */

    crl_nn_ws_t *ws = NULL;
    assert_int_equal(crl_nn_ws_new(g, 2, &ws), CRL_OK);
    const float x[] = {0.25f, 3.0f, -4.0f, 0.0f, 10.0f, -10.0f, 1.0f, -0.5f};
    float y[8];
    assert_int_equal(crl_nn_run(g, ws, x, 2, y), CRL_OK);
    for (size_t i = 0; i < 8; i++) {
        double v = 2.0 * x[i] + row[i % 4];
        v = v < -2 ? -2 : (v > 3 ? 3 : v);
        double ref = 1.0 / (1.0 + exp(-tanh(v)));
        assert_true(fabs((double)y[i] - ref) <= 1e-6);
    }
    assert_true(x[1] == 3.0f);
    crl_nn_ws_free(ws);
    crl_nn_graph_free(g);
}

static void test_fold_add_row(void **state) {
    (void)state;
    crl_err err = {{0}};
    const float w[] = {1, 2, 3, 4}; /* [2][2] */
    const float b[] = {0.5f, -0.5f};
    const float r1[] = {1, 2}, r2[] = {10, 20};
    crl_nn_graph_t *g = new_graph(2);
    /* linear(no bias) + add + add, relu, linear(bias) + add: folds to linear, relu, linear. */
    assert_int_equal(crl_nn_graph_add_linear(g, w, NULL, 2, 2, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_add_row(g, r1, 2, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_add_row(g, r2, 2, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_add_act(g, CRL_NN_RELU, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_add_linear(g, w, b, 2, 2, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_add_row(g, r1, 2, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_num_ops(g), 6);
    assert_int_equal(crl_nn_graph_finish(g, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_num_ops(g), 3);
    assert_int_equal(crl_nn_graph_op(g, 0), CRL_NN_LINEAR);
    assert_int_equal(crl_nn_graph_op(g, 1), CRL_NN_RELU);
    assert_int_equal(crl_nn_graph_op(g, 2), CRL_NN_LINEAR);
    /* Finishing twice is harmless and folds nothing more. */
    assert_int_equal(crl_nn_graph_finish(g, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_num_ops(g), 3);

    crl_nn_ws_t *ws = NULL;
    assert_int_equal(crl_nn_ws_new(g, 1, &ws), CRL_OK);
    /* x = (1, -1): h = (-1, -1) + (11, 22) = (10, 21); relu same;
     * y = (10 + 42, 30 + 84) + (0.5, -0.5) + (1, 2) = (53.5, 115.5) */
    const float x[] = {1, -1};
    float y[2];
    assert_int_equal(crl_nn_run(g, ws, x, 1, y), CRL_OK);
    assert_true(y[0] == 53.5f);
    assert_true(y[1] == 115.5f);
    crl_nn_ws_free(ws);
    crl_nn_graph_free(g);
}

static void test_empty_graph_is_identity(void **state) {
    (void)state;
    crl_nn_graph_t *g = new_graph(3);
    assert_int_equal(crl_nn_graph_finish(g, NULL), CRL_OK);
    crl_nn_ws_t *ws = NULL;
    assert_int_equal(crl_nn_ws_new(g, 2, &ws), CRL_OK);
    const float x[] = {1, 2, 3, 4, 5, 6};
    float y[6] = {0};
    assert_int_equal(crl_nn_run(g, ws, x, 2, y), CRL_OK);
    assert_memory_equal(x, y, sizeof(x));
    assert_int_equal(crl_nn_run(g, ws, x, 0, y), CRL_OK);
    crl_nn_ws_free(ws);
    crl_nn_graph_free(g);
}

static void test_builder_errors(void **state) {
    (void)state;
    crl_err err = {{0}};
    crl_nn_graph_t *g = NULL;
    assert_int_equal(crl_nn_graph_new(0, &g), CRL_EINVAL);
    assert_null(g);
    assert_int_equal(crl_nn_graph_new((size_t)1 << 17, &g), CRL_EINVAL);
    assert_null(g);

    g = new_graph(3);
    const float w[12] = {0};
    /* Width mismatch: the value has 3 features, the layer expects 4. */
    assert_int_equal(crl_nn_graph_add_linear(g, w, NULL, 4, 3, &err), CRL_ESHAPE);
    assert_non_null(strstr(err.msg, "expects 4 inputs"));
    assert_int_equal(crl_nn_graph_add_row(g, w, 2, &err), CRL_ESHAPE);
    assert_int_equal(crl_nn_graph_add_linear(g, w, NULL, 3, 0, &err), CRL_EINVAL);
    assert_int_equal(crl_nn_graph_add_linear(g, w, NULL, 3, (size_t)1 << 17, &err), CRL_EINVAL);
    assert_int_equal(crl_nn_graph_add_linear(g, NULL, NULL, 3, 2, &err), CRL_EINVAL);
    assert_int_equal(crl_nn_graph_add_act(g, CRL_NN_LINEAR, &err), CRL_EINVAL);
    assert_int_equal(crl_nn_graph_add_clip(g, 1.0f, -1.0f, &err), CRL_EINVAL);
    assert_int_equal(crl_nn_graph_add_clip(g, NAN, 1.0f, &err), CRL_EINVAL);
    assert_int_equal(crl_nn_graph_add_scale(g, INFINITY, &err), CRL_EINVAL);
    assert_int_equal(crl_nn_graph_num_ops(g), 0); /* failed calls add nothing */

    /* A workspace needs a finished graph; a finished graph takes no more ops. */
    crl_nn_ws_t *ws = NULL;
    assert_int_equal(crl_nn_ws_new(g, 1, &ws), CRL_EINVAL);
    assert_null(ws);
    assert_int_equal(crl_nn_graph_add_linear(g, w, NULL, 3, 4, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_finish(g, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_add_act(g, CRL_NN_RELU, &err), CRL_EINVAL);
    assert_non_null(strstr(err.msg, "finished"));
    assert_int_equal(crl_nn_ws_new(g, 0, &ws), CRL_EINVAL);
    assert_int_equal(crl_nn_ws_new(g, SIZE_MAX / 2, &ws), CRL_ENOMEM);
    assert_null(ws);
    crl_nn_graph_free(g);
    crl_nn_graph_free(NULL);
    crl_nn_ws_free(NULL);
}

/* The weight cap is checked before anything is read or allocated: a 65536x65536 layer (16 GiB)
 * is refused with a message, never attempted. */
static void test_weight_cap(void **state) {
    (void)state;
    crl_err err = {{0}};
    const size_t wide = (size_t)1 << 16;
    crl_nn_graph_t *g = new_graph(wide);
    const float dummy[1] = {0};
    assert_int_equal(crl_nn_graph_add_linear(g, dummy, NULL, wide, wide, &err), CRL_ENOMEM);
    assert_non_null(strstr(err.msg, "limit"));
    assert_int_equal(crl_nn_graph_num_ops(g), 0);
    crl_nn_graph_free(g);
}

static void test_run_errors(void **state) {
    (void)state;
    crl_err err = {{0}};
    const float w[6] = {1, 2, 3, 4, 5, 6};
    crl_nn_graph_t *g = new_graph(2);
    assert_int_equal(crl_nn_graph_add_linear(g, w, NULL, 2, 3, &err), CRL_OK);
    /* Not finished yet: running is refused. */
    crl_nn_ws_t *ws = NULL;
    float x[8] = {0}, y[12];
    assert_int_equal(crl_nn_run(g, ws, x, 1, y), CRL_EINVAL);
    assert_int_equal(crl_nn_graph_finish(g, &err), CRL_OK);
    assert_int_equal(crl_nn_ws_new(g, 2, &ws), CRL_OK);
    assert_int_equal(crl_nn_run(g, ws, x, 2, y), CRL_OK);
    assert_int_equal(crl_nn_run(g, ws, x, 3, y), CRL_ERANGE); /* rows > max_rows */
    assert_int_equal(crl_nn_run(g, ws, NULL, 1, y), CRL_EINVAL);
    assert_int_equal(crl_nn_run(g, NULL, x, 1, y), CRL_EINVAL);

    /* A workspace planned for a narrower graph is refused rather than overrun. */
    crl_nn_graph_t *narrow = new_graph(1);
    assert_int_equal(crl_nn_graph_finish(narrow, &err), CRL_OK);
    crl_nn_ws_t *small = NULL;
    assert_int_equal(crl_nn_ws_new(narrow, 2, &small), CRL_OK);
    assert_int_equal(crl_nn_run(g, small, x, 1, y), CRL_ESHAPE);
    crl_nn_ws_free(small);
    crl_nn_graph_free(narrow);
    crl_nn_ws_free(ws);
    crl_nn_graph_free(g);
}

/* The example policy's shape (5-64-64-3, ReLU ReLU Tanh) with fixed pseudo-random weights. Its
 * 5 -> 64 layer is one the ISA tables pack at finish. */
static crl_nn_graph_t *mlp_graph(void) {
    enum { I = 5, H = 64, O = 3 };
    static float w0[H * I], b0[H], w1[H * H], b1[H], w2[O * H], b2[O];
    uint32_t s = 12345u;
    float *all[] = {w0, b0, w1, b1, w2, b2};
    const size_t n[] = {H * I, H, H * H, H, O * H, O};
    for (size_t a = 0; a < 6; a++)
        for (size_t i = 0; i < n[a]; i++) {
            s = s * 1664525u + 1013904223u;
            all[a][i] = (float)((s >> 8) & 0xffff) / 32768.0f - 1.0f;
        }
    crl_err err = {{0}};
    crl_nn_graph_t *g = new_graph(I);
    assert_int_equal(crl_nn_graph_add_linear(g, w0, b0, I, H, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_add_act(g, CRL_NN_RELU, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_add_linear(g, w1, b1, H, H, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_add_act(g, CRL_NN_RELU, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_add_linear(g, w2, b2, H, O, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_add_act(g, CRL_NN_TANH, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_finish(g, &err), CRL_OK);
    return g;
}

static void run_mlp(const crl_nn_graph_t *g, const float *x, size_t rows, float *y) {
    crl_nn_ws_t *ws = NULL;
    assert_int_equal(crl_nn_ws_new(g, rows, &ws), CRL_OK);
    assert_int_equal(crl_nn_run(g, ws, x, rows, y), CRL_OK);
    crl_nn_ws_free(ws);
}

/* finish packs weights for the table selected then; a graph packed for table A and run after a
 * switch to table B must give exactly what a graph built under B gives (B never reads A's
 * layout), for every pair of tables this CPU runs and several batch sizes. */
static void test_packed_graph_after_table_switch(void **state) {
    (void)state;
    const char *names[] = {"generic", "avx2", "avx512", "neon"};
    enum { NT = 4, MAXR = 37 };
    const crl_kernels_t *tables[NT];
    for (size_t t = 0; t < NT; t++) {
        tables[t] = crl_kernels_by_name(names[t]);
#if defined(__x86_64__)
        __builtin_cpu_init();
        if (t == 1 && !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")))
            tables[t] = NULL;
        if (t == 2 && !(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                        __builtin_cpu_supports("fma")))
            tables[t] = NULL;
#endif
        if (t == 3 && !(crl_kernels_isas_for(crl_hw_cpu_features()) & CRL_ISA_NEON))
            tables[t] = NULL;
    }
    static const size_t row_counts[] = {1, 3, 6, MAXR};
    float x[MAXR * 5], want[MAXR * 3], got[MAXR * 3], ref[MAXR * 3];
    for (size_t i = 0; i < MAXR * 5; i++)
        x[i] = (float)((i * 7919u) % 61u) / 10.0f - 3.0f;
    crl_nn_graph_t *gen_graph = mlp_graph(); /* generic is selected: nothing packed */
    for (size_t a = 0; a < NT; a++) {
        if (tables[a] == NULL || !crl_test_covers(names[a])) continue;
        crl_kernels_choose(~0u, names[a]);
        assert_string_equal(crl_kernels()->name, names[a]);
        crl_nn_graph_t *ga = mlp_graph();
        size_t locked = 0;
        crl_err err = {{0}};
        if (crl_nn_graph_mlock(ga, &locked, &err) == CRL_OK && a > 0) /* packed copy included */
            assert_true(locked > (5 * 64 + 64 + 64 * 64 + 64 + 64 * 3 + 3) * sizeof(float));
        for (size_t b = 0; b < NT; b++) {
            if (tables[b] == NULL) continue;
            crl_kernels_choose(~0u, names[b]);
            crl_nn_graph_t *gb = mlp_graph(); /* packed for b */
            for (size_t rc = 0; rc < sizeof(row_counts) / sizeof(row_counts[0]); rc++) {
                size_t rows = row_counts[rc];
                run_mlp(gb, x, rows, want);
                run_mlp(ga, x, rows, got);
                if (memcmp(got, want, rows * 3 * sizeof(float)) != 0)
                    fail_msg("graph finished under %s, run under %s at %zu rows: differs from "
                             "one finished under %s",
                             names[a], names[b], rows, names[b]);
                /* And every table agrees with generic within float reassociation. */
                crl_kernels_choose(0, "generic");
                run_mlp(gen_graph, x, rows, ref);
                crl_kernels_choose(~0u, names[b]);
                for (size_t i = 0; i < rows * 3; i++)
                    assert_true(fabs((double)got[i] - (double)ref[i]) <= 1e-5);
            }
            crl_nn_graph_free(gb);
        }
        crl_nn_graph_free(ga);
    }
    crl_nn_graph_free(gen_graph);
    crl_test_isa_default();
}

/* Builds torch's erf GELU chain on the input, [B, W]: Div(x, sqrt 2), Erf, Add 1, Mul x, Mul 0.5.
 * With `block`, the Erf's output is read a second time (a CONCAT into the output), so the chain
 * must not fuse. */
static crl_nn_graph_t *gelu_graph(size_t width, int block) {
    crl_err err = {{0}};
    crl_nn_graph_t *g = new_graph(width);
    float sq2 = 1.41421354f, one = 1.0f, half = 0.5f;
    size_t c2, c1, ch, v1, v2, v3, v4, v5, out;
    assert_int_equal(crl_nn_graph_const(g, &sq2, NULL, 0, &c2, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_const(g, &one, NULL, 0, &c1, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_const(g, &half, NULL, 0, &ch, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_DIV, (size_t[]){0, c2}, 2, NULL, &v1, &err),
                     CRL_OK);
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_ERF, &v1, 1, NULL, &v2, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_ADD, (size_t[]){v2, c1}, 2, NULL, &v3, &err),
                     CRL_OK);
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_MUL, (size_t[]){0, v3}, 2, NULL, &v4, &err),
                     CRL_OK);
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_MUL, (size_t[]){v4, ch}, 2, NULL, &v5, &err),
                     CRL_OK);
    out = v5;
    if (block) {
        crl_nn_attrs a;
        crl_nn_attrs_init(&a);
        a.axis = 1;
        assert_int_equal(crl_nn_graph_node(g, CRL_NN_CONCAT, (size_t[]){v5, v2}, 2, &a, &out, &err),
                         CRL_OK);
    }
    assert_int_equal(crl_nn_graph_set_output(g, out, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_finish(g, &err), CRL_OK);
    return g;
}

/* The exported erf GELU chain becomes one GELU node giving exactly the unfused chain's bits, on
 * this run's table; a chain whose intermediate has another reader is left alone. */
static void test_gelu_fused(void **state) {
    (void)state;
    enum { W = 37, ROWS = 9 };
    crl_nn_graph_t *fused = gelu_graph(W, 0), *plain = gelu_graph(W, 1);
    assert_int_equal(crl_nn_graph_num_ops(fused), 1);
    assert_int_equal(crl_nn_graph_op(fused, 0), CRL_NN_GELU);
    assert_int_equal(crl_nn_graph_num_ops(plain), 6);
    static float x[ROWS * W], y1[ROWS * W], y2[ROWS * 2 * W];
    for (size_t i = 0; i < ROWS * W; i++)
        x[i] = (float)((int)((i * 7919u) % 601u) - 300) / 50.0f;
    crl_nn_ws_t *w1 = NULL, *w2 = NULL;
    assert_int_equal(crl_nn_ws_new(fused, ROWS, &w1), CRL_OK);
    assert_int_equal(crl_nn_ws_new(plain, ROWS, &w2), CRL_OK);
    assert_int_equal(crl_nn_run(fused, w1, x, ROWS, y1), CRL_OK);
    assert_int_equal(crl_nn_run(plain, w2, x, ROWS, y2), CRL_OK);
    for (size_t r = 0; r < ROWS; r++)
        assert_memory_equal(y1 + r * W, y2 + r * 2 * W, W * sizeof(float));
    for (size_t i = 0; i < ROWS * W; i++) { /* and it is GELU */
        double v = x[i], want = v * 0.5 * (1.0 + erf(v / sqrt(2.0)));
        assert_true(fabs(y1[i] - want) <= 1e-6 + 1e-6 * fabs(want));
    }
    crl_nn_ws_free(w1);
    crl_nn_ws_free(w2);
    crl_nn_graph_free(fused);
    crl_nn_graph_free(plain);
}

/* One plan per batch-size class: a 100-row workspace has classes 1, 8, 64 and 100; a batch uses
 * the smallest class that fits, whose plan is as compact as that of a workspace made for exactly
 * that many rows, and gives the same bits as a workspace made for the batch alone. */
static void test_plan_per_batch_class(void **state) {
    (void)state;
    crl_nn_graph_t *g = mlp_graph();
    crl_nn_ws_t *big = NULL;
    assert_int_equal(crl_nn_ws_new(g, 100, &big), CRL_OK);
    static const size_t classes[] = {1, 8, 64, 100};
    for (size_t c = 0; c < 4; c++) {
        crl_nn_ws_t *own = NULL;
        assert_int_equal(crl_nn_ws_new(g, classes[c], &own), CRL_OK);
        assert_int_equal(crl_nn_ws_plan_floats(big, classes[c]),
                         crl_nn_ws_plan_floats(own, classes[c]));
        crl_nn_ws_free(own);
    }
    assert_true(crl_nn_ws_plan_floats(big, 1) < crl_nn_ws_plan_floats(big, 100));
    assert_int_equal(crl_nn_ws_plan_floats(big, 5), crl_nn_ws_plan_floats(big, 8));
    assert_int_equal(crl_nn_ws_plan_floats(big, 9), crl_nn_ws_plan_floats(big, 64));
    assert_int_equal(crl_nn_ws_plan_floats(big, 101), 0);
    assert_int_equal(crl_nn_ws_plan_floats(big, 0), 0);
    static const size_t rows_list[] = {1, 2, 8, 9, 63, 64, 65, 100};
    float x[100 * 5], want[100 * 3], got[100 * 3];
    for (size_t i = 0; i < 100 * 5; i++)
        x[i] = (float)((i * 7919u) % 61u) / 10.0f - 3.0f;
    for (size_t i = 0; i < sizeof(rows_list) / sizeof(rows_list[0]); i++) {
        size_t rows = rows_list[i];
        crl_nn_ws_t *own = NULL;
        assert_int_equal(crl_nn_ws_new(g, rows, &own), CRL_OK);
        assert_int_equal(crl_nn_run(g, own, x, rows, want), CRL_OK);
        assert_int_equal(crl_nn_run(g, big, x, rows, got), CRL_OK);
        assert_memory_equal(got, want, rows * 3 * sizeof(float));
        crl_nn_ws_free(own);
    }
    crl_nn_ws_free(big);
    crl_nn_graph_free(g);
}

/* Values given by id (the general builder), numpy broadcasting: [B,2,3] + [3], times [2,1]. */
static void test_broadcast(void **state) {
    (void)state;
    crl_err err = {{0}};
    const size_t in_dims[] = {2, 3}, d3[] = {3}, d21[] = {2, 1}, d4[] = {4}, d223[] = {2, 2, 3};
    const float c1[] = {1, 2, 3}, c2[] = {10, -1}, c4[4] = {0}, c223[12] = {0};
    crl_nn_graph_t *g = NULL;
    assert_int_equal(crl_nn_graph_new_shaped(in_dims, 2, &g), CRL_OK);
    size_t k1, k2, k4, k223, s, m, bad;
    assert_int_equal(crl_nn_graph_const(g, c1, d3, 1, &k1, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_const(g, c2, d21, 2, &k2, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_const(g, c4, d4, 1, &k4, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_const(g, c223, d223, 3, &k223, &err), CRL_OK);
    size_t in[2] = {0, k4};
    /* [3] vs [4] and a constant [2, ...] where the batch is: both refused, nothing added. */
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_ADD, in, 2, NULL, &bad, &err), CRL_ESHAPE);
    in[1] = k223;
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_ADD, in, 2, NULL, &bad, &err), CRL_ESHAPE);
    assert_non_null(strstr(err.msg, "batch"));
    assert_int_equal(crl_nn_graph_num_ops(g), 0);
    in[1] = k1;
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_ADD, in, 2, NULL, &s, &err), CRL_OK);
    size_t in2[2] = {s, k2};
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_MUL, in2, 2, NULL, &m, &err), CRL_OK);
    crl_nn_shape sh;
    assert_int_equal(crl_nn_graph_shape(g, m, &sh), CRL_OK);
    assert_int_equal(sh.rank, 3);
    assert_true(sh.batched);
    assert_int_equal(sh.d[1], 2);
    assert_int_equal(sh.d[2], 3);
    assert_int_equal(crl_nn_graph_finish(g, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_input_width(g), 6);
    assert_int_equal(crl_nn_graph_output_width(g), 6);
    float x[12], y[12];
    for (size_t i = 0; i < 12; i++)
        x[i] = (float)i;
    crl_nn_ws_t *ws = NULL;
    assert_int_equal(crl_nn_ws_new(g, 2, &ws), CRL_OK);
    assert_int_equal(crl_nn_run(g, ws, x, 2, y), CRL_OK);
    for (size_t r = 0; r < 2; r++)
        for (size_t i = 0; i < 2; i++)
            for (size_t j = 0; j < 3; j++) {
                size_t e = r * 6 + i * 3 + j;
                assert_true(y[e] == (x[e] + c1[j]) * c2[i]);
            }
    crl_nn_ws_free(ws);
    crl_nn_graph_free(g);
}

/* exp(c) is computed at finish (constant folding); the ADD of that constant row after a LINEAR
 * becomes its bias; a Tanh nobody reads is removed. One node is left. */
static void test_constant_folding(void **state) {
    (void)state;
    crl_err err = {{0}};
    const float w[] = {1, 0, 0, 1}, c[] = {0, 1};
    const size_t d2[] = {2};
    crl_nn_graph_t *g = new_graph(2);
    size_t k, e, lin, dead, out;
    assert_int_equal(crl_nn_graph_const(g, c, d2, 1, &k, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_EXP, &k, 1, NULL, &e, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_linear(g, 0, w, NULL, 2, 2, &lin, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_TANH, &lin, 1, NULL, &dead, &err), CRL_OK);
    size_t in[2] = {e, lin}; /* the constant first: either side folds */
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_ADD, in, 2, NULL, &out, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_set_output(g, out, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_num_ops(g), 4);
    assert_int_equal(crl_nn_graph_finish(g, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_num_ops(g), 1);
    assert_int_equal(crl_nn_graph_op(g, 0), CRL_NN_LINEAR);
    crl_nn_ws_t *ws = NULL;
    assert_int_equal(crl_nn_ws_new(g, 1, &ws), CRL_OK);
    const float x[] = {3, -4};
    float y[2];
    assert_int_equal(crl_nn_run(g, ws, x, 1, y), CRL_OK);
    assert_true(y[0] == 4.0f);
    assert_true(fabs((double)y[1] - (-4.0 + exp(1.0))) <= 1e-6);
    crl_nn_ws_free(ws);
    crl_nn_graph_free(g);
}

/* BATCHNORM after a 2-D LINEAR folds into W and b: LINEAR RELU remain, same answers. */
static void test_batchnorm_fold(void **state) {
    (void)state;
    crl_err err = {{0}};
    const float w[] = {1, 2, -1, 0.5f}, b[] = {0.5f, -1};
    const float gam[] = {2, 0.5f}, bet[] = {0.1f, -0.2f}, mean[] = {1, -1}, var[] = {4, 0.25f};
    const size_t d2[] = {2};
    crl_nn_graph_t *g = new_graph(2);
    size_t in[5], lin, bn, out;
    assert_int_equal(crl_nn_graph_linear(g, 0, w, b, 2, 2, &lin, &err), CRL_OK);
    in[0] = lin;
    const float *p[] = {gam, bet, mean, var};
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(crl_nn_graph_const(g, p[i], d2, 1, &in[i + 1], &err), CRL_OK);
    crl_nn_attrs a;
    crl_nn_attrs_init(&a);
    a.eps = 1e-5f;
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_BATCHNORM, in, 5, &a, &bn, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_RELU, &bn, 1, NULL, &out, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_finish(g, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_num_ops(g), 2);
    assert_int_equal(crl_nn_graph_op(g, 0), CRL_NN_LINEAR);
    assert_int_equal(crl_nn_graph_op(g, 1), CRL_NN_RELU);
    crl_nn_ws_t *ws = NULL;
    assert_int_equal(crl_nn_ws_new(g, 3, &ws), CRL_OK);
    const float x[] = {1, 2, -3, 0.5f, 0, 0};
    float y[6];
    assert_int_equal(crl_nn_run(g, ws, x, 3, y), CRL_OK);
    for (size_t r = 0; r < 3; r++)
        for (size_t o = 0; o < 2; o++) {
            double h = w[o * 2] * x[r * 2] + w[o * 2 + 1] * x[r * 2 + 1] + b[o];
            double ref = (h - mean[o]) * gam[o] / sqrt(var[o] + 1e-5) + bet[o];
            ref = ref > 0 ? ref : 0;
            assert_true(fabs((double)y[r * 2 + o] - ref) <= 1e-5);
        }
    crl_nn_ws_free(ws);
    crl_nn_graph_free(g);
}

static int in_place_op(crl_nn_op op) {
    return op == CRL_NN_RELU || op == CRL_NN_TANH || op == CRL_NN_SIGMOID || op == CRL_NN_CLIP ||
           op == CRL_NN_SCALE || op == CRL_NN_ADD_ROW || op == CRL_NN_EXP || op == CRL_NN_COPY ||
           op == CRL_NN_RESHAPE || (op >= CRL_NN_LEAKY_RELU && op <= CRL_NN_ERF);
}

/* ReLU fusion and in-place runs under every table this CPU runs: LINEAR -> RELU (fused: the
 * LINEAR applies the ReLU) gives exactly the bits of the table's linear then relu, whether the
 * RELU is the graph's output or feeds another LINEAR (and a TANH after a LINEAR: its kernel, run
 * by the LINEAR's node); a LINEAR read by the RELU and by another node
 * is not fused (the other reader sees the value before the ReLU). The node list is unchanged. */
static void test_relu_fusion(void **state) {
    (void)state;
    crl_err err = {{0}};
    enum { IN = 5, H = 64, ROWS = 3 };
    float w0[H * IN], b0[H], w1[H * H], x[ROWS * IN];
    for (size_t i = 0; i < H * IN; i++)
        w0[i] = (float)((i * 37) % 23) / 11.0f - 1.0f;
    for (size_t i = 0; i < H; i++)
        b0[i] = (float)((i * 13) % 7) / 5.0f - 0.6f;
    for (size_t i = 0; i < H * H; i++)
        w1[i] = (float)((i * 29) % 31) / 15.0f - 1.0f;
    for (size_t i = 0; i < ROWS * IN; i++)
        x[i] = (float)((i * 17) % 11) / 3.0f - 1.7f;
    unsigned isas = crl_kernels_isas_for(crl_hw_cpu_features());
    for (size_t t = 0; t < CRL_TEST_N_TABLES; t++) {
        if (!crl_test_covers(crl_test_tables[t])) continue;
        const crl_kernels_t *k = crl_kernels_choose(isas, crl_test_tables[t]);
        /* The reference: the table's own kernels, unfused. */
        float h[ROWS * H], ref1[ROWS * H], ref2[ROWS * H], ref3[ROWS * H], ref4[ROWS * H];
        k->linear(x, ROWS, IN, w0, b0, H, h);
        memcpy(ref1, h, sizeof(h));
        k->relu(ref1, ROWS * H);
        k->linear(ref1, ROWS, H, w1, NULL, H, ref2);
        k->relu(ref2, ROWS * H);
        for (size_t i = 0; i < ROWS * H; i++)
            ref3[i] = h[i] + ref1[i];
        memcpy(ref4, h, sizeof(h));
        k->tanh(ref4, ROWS * H);
        for (int shape = 0; shape < 4; shape++) {
            crl_nn_graph_t *g = new_graph(IN);
            size_t a, r, c;
            assert_int_equal(crl_nn_graph_linear(g, 0, w0, b0, IN, H, &a, &err), CRL_OK);
            crl_nn_op act = shape == 3 ? CRL_NN_TANH : CRL_NN_RELU; /* TANH: run by the LINEAR */
            assert_int_equal(crl_nn_graph_node(g, act, &a, 1, NULL, &r, &err), CRL_OK);
            if (shape == 1) {
                assert_int_equal(crl_nn_graph_linear(g, r, w1, NULL, H, H, &c, &err), CRL_OK);
                assert_int_equal(crl_nn_graph_node(g, CRL_NN_RELU, &c, 1, NULL, &c, &err), CRL_OK);
            } else if (shape == 2) {
                assert_int_equal(
                    crl_nn_graph_node(g, CRL_NN_ADD, (size_t[]){a, r}, 2, NULL, &c, &err), CRL_OK);
            } else {
                c = r;
            }
            assert_int_equal(crl_nn_graph_set_output(g, c, &err), CRL_OK);
            assert_int_equal(crl_nn_graph_finish(g, &err), CRL_OK);
            assert_int_equal(crl_nn_graph_num_ops(g), shape == 1 ? 4 : 2 + (shape == 2));
            assert_int_equal(crl_nn_graph_op(g, 1), act);
            crl_nn_ws_t *ws = NULL;
            assert_int_equal(crl_nn_ws_new(g, ROWS, &ws), CRL_OK);
            float y[ROWS * H];
            assert_int_equal(crl_nn_run(g, ws, x, ROWS, y), CRL_OK);
            const float *want = shape == 0 ? ref1 : shape == 1 ? ref2 : shape == 2 ? ref3 : ref4;
            if (memcmp(y, want, sizeof(y)) != 0)
                fail_msg("%s: graph shape %d differs from linear then its activation", k->name,
                         shape);
            crl_nn_ws_free(ws);
            crl_nn_graph_free(g);
        }
    }
    crl_test_isa_default();
}

/* Sibling heads (graph.c, merge_heads): x -> LINEAR 6 -> 24, RELU, then two heads of `o1` and
 * `o2` outputs on it (biases on both or neither), CONCAT(second, first). Where the table runs an
 * (o1 + o2)-output layer as dot products, the heads become one LINEAR and two SLICEs (one node
 * more) and every output keeps the bits of the heads run alone by the table's linear; otherwise
 * (too wide for the table, one head without a bias, generic) nothing merges. Batches 1, 5, 40. */
static void test_heads_merged(void **state) {
    (void)state;
    crl_err err = {{0}};
    enum { IN = 6, H = 24, MAXO = 16, ROWS = 40 };
    static float w0[H * IN], b0[H], wh[2][MAXO * H], bh[2][MAXO], x[ROWS * IN];
    for (size_t i = 0; i < H * IN; i++)
        w0[i] = (float)((i * 37) % 23) / 11.0f - 1.0f;
    for (size_t i = 0; i < H; i++)
        b0[i] = (float)((i * 13) % 7) / 5.0f - 0.6f;
    for (size_t h = 0; h < 2; h++)
        for (size_t i = 0; i < MAXO * H; i++)
            wh[h][i] = (float)((i * (29 + h) + h) % 31) / 15.3f - 1.0f;
    for (size_t h = 0; h < 2; h++)
        for (size_t i = 0; i < MAXO; i++)
            bh[h][i] = (float)((i * 7 + h) % 5) / 3.0f - 0.5f;
    for (size_t i = 0; i < ROWS * IN; i++)
        x[i] = (float)((i * 17) % 11) / 3.0f - 1.7f;
    static const size_t cases[][3] = {{1, 5, 1}, {3, 3, 1}, {4, 4, 0}, {8, 8, 1}, {2, 3, 2}};
    static const size_t batches[] = {1, 5, ROWS};
    unsigned isas = crl_kernels_isas_for(crl_hw_cpu_features());
    int merged_somewhere = 0;
    for (size_t t = 0; t < CRL_TEST_N_TABLES; t++) {
        if (!crl_test_covers(crl_test_tables[t])) continue;
        const crl_kernels_t *k = crl_kernels_choose(isas, crl_test_tables[t]);
        for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
            size_t o1 = cases[c][0], o2 = cases[c][1], o = o1 + o2;
            /* bias: 1 both heads, 0 neither, 2 the first only (no merge) */
            const float *bias1 = cases[c][2] ? bh[0] : NULL,
                        *bias2 = cases[c][2] == 1 ? bh[1] : NULL;
            int merge = k->pack_size != NULL && k->pack_size(H, o) == 0 && cases[c][2] != 2;
            merged_somewhere |= merge;
            crl_nn_graph_t *g = new_graph(IN);
            size_t a, r, h1, h2, out;
            assert_int_equal(crl_nn_graph_linear(g, 0, w0, b0, IN, H, &a, &err), CRL_OK);
            assert_int_equal(crl_nn_graph_node(g, CRL_NN_RELU, &a, 1, NULL, &r, &err), CRL_OK);
            assert_int_equal(crl_nn_graph_linear(g, r, wh[0], bias1, H, o1, &h1, &err), CRL_OK);
            assert_int_equal(crl_nn_graph_linear(g, r, wh[1], bias2, H, o2, &h2, &err), CRL_OK);
            crl_nn_attrs at;
            crl_nn_attrs_init(&at);
            at.axis = 1;
            assert_int_equal(
                crl_nn_graph_node(g, CRL_NN_CONCAT, (size_t[]){h2, h1}, 2, &at, &out, &err),
                CRL_OK);
            assert_int_equal(crl_nn_graph_set_output(g, out, &err), CRL_OK);
            assert_int_equal(crl_nn_graph_finish(g, &err), CRL_OK);
            assert_int_equal(crl_nn_graph_num_ops(g), 5 + (size_t)merge);
            crl_nn_ws_t *ws = NULL;
            assert_int_equal(crl_nn_ws_new(g, ROWS, &ws), CRL_OK);
            for (size_t bi = 0; bi < sizeof(batches) / sizeof(batches[0]); bi++) {
                size_t n = batches[bi];
                float hid[ROWS * H], y1[ROWS * MAXO], y2[ROWS * MAXO], y[ROWS * 2 * MAXO];
                k->linear(x, n, IN, w0, b0, H, hid);
                k->relu(hid, n * H);
                k->linear(hid, n, H, wh[0], bias1, o1, y1);
                k->linear(hid, n, H, wh[1], bias2, o2, y2);
                assert_int_equal(crl_nn_run(g, ws, x, n, y), CRL_OK);
                for (size_t i = 0; i < n; i++)
                    if (memcmp(y + i * o, y2 + i * o2, o2 * sizeof(float)) != 0 ||
                        memcmp(y + i * o + o2, y1 + i * o1, o1 * sizeof(float)) != 0)
                        fail_msg(
                            "%s: heads %zu + %zu (bias %zu), batch %zu, row %zu differ from the "
                            "heads run alone",
                            k->name, o1, o2, cases[c][2], n, i);
            }
            crl_nn_ws_free(ws);
            crl_nn_graph_free(g);
        }
    }
    crl_test_isa_default();
    if (!merged_somewhere) print_message("[  NOTE    ] no table here merges heads\n");
}

/* The memory plan: values whose live ranges meet never share memory (but for an elementwise node
 * writing over the input it reads last), the arena is no larger
 * than the sum of the slots, and a long chain reuses memory (smaller than the sum). */
static void test_memory_plan(void **state) {
    (void)state;
    crl_err err = {{0}};
    const float w[] = {1, -1, 0.5f, 2, 0, 1, -1, 1, 1};
    crl_nn_graph_t *g = new_graph(3);
    size_t a, b, c, d, e, f, h, out;
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_TANH, (size_t[]){0}, 1, NULL, &a, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_SIGMOID, (size_t[]){0}, 1, NULL, &b, &err),
                     CRL_OK);
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_ADD, (size_t[]){a, b}, 2, NULL, &c, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_RELU, &c, 1, NULL, &d, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_MUL, (size_t[]){d, a}, 2, NULL, &e, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_SUB, (size_t[]){e, b}, 2, NULL, &f, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_EXP, &f, 1, NULL, &h, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_linear(g, h, w, NULL, 3, 3, &out, &err), CRL_OK);
    for (int i = 0; i < 6; i++) /* a chain: each value dies right after its reader */
        assert_int_equal(crl_nn_graph_add_act(g, i % 2 ? CRL_NN_TANH : CRL_NN_SIGMOID, &err),
                         CRL_OK);
    assert_int_equal(crl_nn_graph_finish(g, &err), CRL_OK);
    crl_nn_ws_t *ws = NULL;
    assert_int_equal(crl_nn_ws_new(g, 5, &ws), CRL_OK);
    size_t nv = crl_nn_graph_num_values(g), sum = 0, slots = 0, in_place = 0;
    for (size_t u = 0; u < nv; u++) {
        size_t ou, lu, fu, tu;
        if (!crl_nn_ws_slot(ws, u, &ou, &lu, &fu, &tu)) continue;
        slots++;
        sum += lu;
        assert_true(lu >= 5 * 3);
        assert_true(ou + lu <= crl_nn_ws_arena_floats(ws));
        for (size_t v = u + 1; v < nv; v++) {
            size_t ov, lv, fv, tv;
            if (!crl_nn_ws_slot(ws, v, &ov, &lv, &fv, &tv)) continue;
            if (!(fu <= tv && fv <= tu && ou < ov + lv && ov < ou + lu)) continue;
            /* The one allowed overlap: an elementwise node that reads u last writes v over it
             * (in place), so u dies exactly where v is born and they share the whole slot. */
            if (ou == ov && lu == lv && tu == fv && in_place_op(crl_nn_graph_op(g, fv))) {
                in_place++;
                continue;
            }
            fail_msg("values %zu and %zu are live together and overlap in the arena", u, v);
        }
    }
    /* Every node's output but the graph's and the ones living in it: the LINEAR and the five
     * activations after it run in the caller's y. */
    assert_int_equal(slots, 7);
    assert_int_equal(in_place, 2); /* RELU over the ADD's output, EXP over the SUB's */
    size_t oc, lc, fc, tc, od, ld, fd, td;
    assert_true(crl_nn_ws_slot(ws, c, &oc, &lc, &fc, &tc));
    assert_true(crl_nn_ws_slot(ws, d, &od, &ld, &fd, &td));
    assert_true(oc == od && tc == fd);
    assert_false(crl_nn_ws_slot(ws, out, &od, &ld, &fd, &td)); /* written straight into y */
    assert_true(crl_nn_ws_arena_floats(ws) < sum);

    /* And the plan computes the right thing. */
    float x[15], y[15];
    for (size_t i = 0; i < 15; i++)
        x[i] = (float)i / 7.0f - 1.0f;
    assert_int_equal(crl_nn_run(g, ws, x, 5, y), CRL_OK);
    for (size_t r = 0; r < 5; r++) {
        double hv[3];
        for (size_t i = 0; i < 3; i++) {
            double xv = x[r * 3 + i], av = tanh(xv), bv = 1 / (1 + exp(-xv));
            double dv = av + bv > 0 ? av + bv : 0;
            hv[i] = exp(dv * av - bv);
        }
        for (size_t o = 0; o < 3; o++) {
            double v = w[o * 3] * hv[0] + w[o * 3 + 1] * hv[1] + w[o * 3 + 2] * hv[2];
            for (int i = 0; i < 6; i++)
                v = i % 2 ? tanh(v) : 1 / (1 + exp(-v));
            assert_true(fabs((double)y[r * 3 + o] - v) <= 1e-5);
        }
    }
    crl_nn_ws_free(ws);
    crl_nn_graph_free(g);
}

/* ---- convolutions and pools ----------------------------------------------------------------- */

typedef struct sp_case {
    size_t n, c, h, w;                /* input */
    size_t m, grp, kh, kw;            /* CONV: filters, group; kernel */
    size_t sh, sw, dh, dw;            /* strides, dilations */
    size_t pt, pl, pb, pr;            /* pads, resolved */
    int ceil_mode, count_include_pad; /* pools */
    size_t oh, ow;                    /* expected output */
} sp_case;

static float test_val(size_t i, unsigned mul, unsigned mod) {
    return (float)((i * mul) % mod) / (float)mod * 2.0f - 1.0f;
}

/* Direct convolution / pooling in double with signed indexes, straight from the ONNX spec. */
static double ref_at(crl_nn_op op, const sp_case *t, const float *x, const float *w, const float *b,
                     size_t n, size_t o, size_t oy, size_t ox) {
    double acc = op == CRL_NN_MAXPOOL ? -INFINITY : 0;
    size_t cnt = 0, cnt_pad = 0;
    size_t cg = op == CRL_NN_CONV ? t->c / t->grp : 1, mg = op == CRL_NN_CONV ? t->m / t->grp : 1;
    size_t gi = op == CRL_NN_CONV ? o / mg : 0;
    for (size_t c = 0; c < cg; c++)
        for (size_t ki = 0; ki < t->kh; ki++)
            for (size_t kj = 0; kj < t->kw; kj++) {
                long iy = (long)(oy * t->sh + ki * t->dh) - (long)t->pt;
                long ix = (long)(ox * t->sw + kj * t->dw) - (long)t->pl;
                if (iy >= (long)(t->h + t->pb) || ix >= (long)(t->w + t->pr)) continue;
                cnt_pad++;
                if (iy < 0 || ix < 0 || iy >= (long)t->h || ix >= (long)t->w) continue;
                cnt++;
                size_t ch = op == CRL_NN_CONV ? gi * cg + c : o;
                double v = x[((n * t->c + ch) * t->h + (size_t)iy) * t->w + (size_t)ix];
                if (op == CRL_NN_CONV)
                    acc += v * w[((o * cg + c) * t->kh + ki) * t->kw + kj];
                else if (op == CRL_NN_MAXPOOL)
                    acc = v > acc ? v : acc;
                else
                    acc += v;
            }
    if (op == CRL_NN_CONV) return acc + (b ? b[o] : 0);
    if (op == CRL_NN_AVGPOOL) return acc / (double)(t->count_include_pad ? cnt_pad : cnt);
    return acc;
}

/* Builds input -> op (CONV with W [m][c/grp][kh][kw] and optional bias; a pool) -> output, checks
 * the output shape and every value on every kernel table this CPU runs, at batch t->n. */
static void check_spatial(crl_nn_op op, const sp_case *t, const crl_nn_attrs *a, int bias) {
    crl_err err = {{0}};
    size_t dims[3] = {t->c, t->h, t->w};
    size_t oc = op == CRL_NN_CONV ? t->m : t->c;
    size_t nx = t->n * t->c * t->h * t->w, ny = t->n * oc * t->oh * t->ow;
    size_t nw = op == CRL_NN_CONV ? t->m * (t->c / t->grp) * t->kh * t->kw : 1;
    float *x = malloc(nx * sizeof(float)), *y = malloc(ny * sizeof(float));
    float *w = malloc(nw * sizeof(float)), bv[64];
    assert_non_null(x);
    assert_non_null(y);
    assert_non_null(w);
    for (size_t i = 0; i < nx; i++)
        x[i] = test_val(i, 7919u, 101u);
    for (size_t i = 0; i < nw; i++)
        w[i] = test_val(i, 104729u, 53u);
    for (size_t i = 0; i < 64; i++)
        bv[i] = test_val(i, 31u, 17u);
    unsigned isas = crl_kernels_isas_for(crl_hw_cpu_features());
    const char *const *names = crl_test_tables;
    for (size_t k = 0; k < CRL_TEST_N_TABLES; k++) {
        if (!crl_test_covers(names[k])) continue;
        crl_kernels_choose(isas, names[k]);
        crl_nn_graph_t *g = NULL;
        assert_int_equal(crl_nn_graph_new_shaped(dims, 3, &g), CRL_OK);
        size_t in[3] = {0}, n_in = 1, out;
        if (op == CRL_NN_CONV) {
            size_t wd[4] = {t->m, t->c / t->grp, t->kh, t->kw}, bd[1] = {t->m};
            assert_int_equal(crl_nn_graph_const(g, w, wd, 4, &in[1], &err), CRL_OK);
            n_in = 2;
            if (bias) assert_int_equal(crl_nn_graph_const(g, bv, bd, 1, &in[n_in++], &err), CRL_OK);
        }
        assert_int_equal(crl_nn_graph_node(g, op, in, n_in, a, &out, &err), CRL_OK);
        crl_nn_shape s;
        assert_int_equal(crl_nn_graph_shape(g, out, &s), CRL_OK);
        assert_int_equal(s.rank, 4);
        assert_int_equal(s.d[1], oc);
        assert_int_equal(s.d[2], t->oh);
        assert_int_equal(s.d[3], t->ow);
        assert_int_equal(crl_nn_graph_finish(g, &err), CRL_OK);
        assert_int_equal(crl_nn_graph_output_width(g), oc * t->oh * t->ow);
        crl_nn_ws_t *ws = NULL;
        assert_int_equal(crl_nn_ws_new(g, t->n, &ws), CRL_OK);
        for (size_t i = 0; i < ny; i++)
            y[i] = NAN;
        assert_int_equal(crl_nn_run(g, ws, x, t->n, y), CRL_OK);
        for (size_t n = 0; n < t->n; n++)
            for (size_t o = 0; o < oc; o++)
                for (size_t oy = 0; oy < t->oh; oy++)
                    for (size_t ox = 0; ox < t->ow; ox++) {
                        double ref = ref_at(op, t, x, w, bias ? bv : NULL, n, o, oy, ox);
                        double got = y[((n * oc + o) * t->oh + oy) * t->ow + ox];
                        if (!(fabs(got - ref) <= 1e-5 + 1e-5 * fabs(ref)))
                            fail_msg("op %d (%s) at n%zu c%zu y%zu x%zu: %.9g, want %.9g", (int)op,
                                     names[k], n, o, oy, ox, got, ref);
                    }
        crl_nn_ws_free(ws);
        crl_nn_graph_free(g);
    }
    crl_test_isa_default();
    free(x);
    free(y);
    free(w);
}

static void sp_attrs(const sp_case *t, crl_nn_attrs *a) {
    crl_nn_attrs_init(a);
    a->strides[0] = t->sh, a->strides[1] = t->sw;
    a->dilations[0] = t->dh, a->dilations[1] = t->dw;
    a->pads[0] = t->pt, a->pads[1] = t->pl, a->pads[2] = t->pb, a->pads[3] = t->pr;
    a->group = t->grp;
    a->ceil_mode = t->ceil_mode;
    a->count_include_pad = t->count_include_pad;
}

/* Strides, asymmetric pads and dilations differing per axis, 2 groups, bias, batch 3. */
static void test_conv_stride_pad_dilation_groups(void **state) {
    (void)state;
    crl_nn_attrs a;
    /* H: (7 + 1 + 2 - 3) / 2 + 1 = 4; W: (6 + 0 + 1 - 3) / 1 + 1 = 5 (kw 2 dilated by 2). */
    sp_case t = {.n = 3,
                 .c = 4,
                 .h = 7,
                 .w = 6,
                 .m = 6,
                 .grp = 2,
                 .kh = 3,
                 .kw = 2,
                 .sh = 2,
                 .sw = 1,
                 .dh = 1,
                 .dw = 2,
                 .pt = 1,
                 .pl = 0,
                 .pb = 2,
                 .pr = 1,
                 .oh = 4,
                 .ow = 5};
    sp_attrs(&t, &a);
    check_spatial(CRL_NN_CONV, &t, &a, 1);
    a.kernel[0] = 3, a.kernel[1] = 2; /* an explicit kernel_shape that agrees */
    check_spatial(CRL_NN_CONV, &t, &a, 0);
    /* Plain: group 1, stride 1, no pads, 1x1 kernel. */
    sp_case p = {.n = 2,
                 .c = 3,
                 .h = 4,
                 .w = 5,
                 .m = 5,
                 .grp = 1,
                 .kh = 1,
                 .kw = 1,
                 .sh = 1,
                 .sw = 1,
                 .dh = 1,
                 .dw = 1,
                 .oh = 4,
                 .ow = 5};
    sp_attrs(&p, &a);
    check_spatial(CRL_NN_CONV, &p, &a, 1);
    /* Wide groups (20 filters each): the packed filters, a partial panel, per group. */
    sp_case wide = t;
    wide.m = 40;
    sp_attrs(&wide, &a);
    check_spatial(CRL_NN_CONV, &wide, &a, 1);
    check_spatial(CRL_NN_CONV, &wide, &a, 0);
}

/* CONV -> RELU (or TANH): the activation is done by the convolution (fused, the node skipped),
 * giving exactly the convolution's output followed by the table's own activation, with 1 and 2
 * groups of 20 filters. */
static void test_conv_activation_fused(void **state) {
    (void)state;
    crl_err err = {{0}};
    enum { N = 2, C = 4, H = 6, W = 5, M = 40, OH = 4, OW = 3 };
    size_t dims[3] = {C, H, W};
    static float x[N * C * H * W], w[M * C * 3 * 3], bias[M], plain[N * M * OH * OW],
        fused[N * M * OH * OW];
    for (size_t i = 0; i < sizeof(x) / sizeof(x[0]); i++)
        x[i] = test_val(i, 7919u, 101u);
    for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++)
        w[i] = test_val(i, 104729u, 53u);
    for (size_t i = 0; i < M; i++)
        bias[i] = test_val(i, 31u, 17u);
    for (size_t grp = 1; grp <= 2; grp++)
        for (int act = 0; act < 2; act++) {
            crl_nn_op aop = act ? CRL_NN_TANH : CRL_NN_RELU;
            for (int with_act = 0; with_act < 2; with_act++) {
                crl_nn_graph_t *g = NULL;
                assert_int_equal(crl_nn_graph_new_shaped(dims, 3, &g), CRL_OK);
                size_t wd[4] = {M, C / grp, 3, 3}, bd[1] = {M}, in[3] = {0}, out;
                assert_int_equal(crl_nn_graph_const(g, w, wd, 4, &in[1], &err), CRL_OK);
                assert_int_equal(crl_nn_graph_const(g, bias, bd, 1, &in[2], &err), CRL_OK);
                crl_nn_attrs a;
                crl_nn_attrs_init(&a);
                a.group = grp;
                assert_int_equal(crl_nn_graph_node(g, CRL_NN_CONV, in, 3, &a, &out, &err), CRL_OK);
                if (with_act)
                    assert_int_equal(crl_nn_graph_node(g, aop, &out, 1, NULL, &out, &err), CRL_OK);
                assert_int_equal(crl_nn_graph_set_output(g, out, &err), CRL_OK);
                assert_int_equal(crl_nn_graph_finish(g, &err), CRL_OK);
                assert_int_equal(crl_nn_graph_num_ops(g), 1 + (size_t)with_act);
                crl_nn_ws_t *ws = NULL;
                assert_int_equal(crl_nn_ws_new(g, N, &ws), CRL_OK);
                assert_int_equal(crl_nn_run(g, ws, x, N, with_act ? fused : plain), CRL_OK);
                crl_nn_ws_free(ws);
                crl_nn_graph_free(g);
            }
            if (act)
                crl_kernels()->tanh(plain, N * M * OH * OW);
            else
                crl_kernels()->relu(plain, N * M * OH * OW);
            if (memcmp(plain, fused, sizeof(plain)) != 0)
                fail_msg("%s: CONV (group %zu) with a fused %s differs from CONV then %s",
                         crl_kernels()->name, grp, act ? "TANH" : "RELU", act ? "TANH" : "RELU");
        }
}

/* input [3, 9, 8] -> CONV 3x3 pad 1 -> RELU -> CONV 3x2, stride 2x1, dilation 1x2, pads 1/0/0/1
 * (group `grp2`) -> RELU -> CONV 2x2 -> Flatten -> LINEAR 7. With `block`, a 1x1 MaxPool (an
 * identity) after each RELU. */
static crl_nn_graph_t *conv_chain(size_t grp2, int block) {
    crl_err err = {{0}};
    size_t dims[3] = {3, 9, 8};
    static float w1[6 * 3 * 9], w2[6 * 6 * 6], w3[4 * 6 * 4], b1[6], b2[6], b3[4];
    static float wl[7 * 72], bl[7];
    for (size_t i = 0; i < sizeof(w1) / sizeof(w1[0]); i++)
        w1[i] = test_val(i, 7919u, 53u);
    for (size_t i = 0; i < sizeof(w2) / sizeof(w2[0]); i++)
        w2[i] = test_val(i, 104729u, 59u);
    for (size_t i = 0; i < sizeof(w3) / sizeof(w3[0]); i++)
        w3[i] = test_val(i, 31u, 61u);
    for (size_t i = 0; i < sizeof(wl) / sizeof(wl[0]); i++)
        wl[i] = test_val(i, 7u, 67u);
    for (size_t i = 0; i < 7; i++)
        b1[i % 6] = b2[i % 6] = b3[i % 4] = bl[i] = test_val(i, 13u, 17u);
    crl_nn_graph_t *g = NULL;
    assert_int_equal(crl_nn_graph_new_shaped(dims, 3, &g), CRL_OK);
    struct {
        const float *w, *b;
        size_t m, c, kh, kw, grp, sh, sw, dw, pads[4];
    } layer[3] = {{w1, b1, 6, 3, 3, 3, 1, 1, 1, 1, {1, 1, 1, 1}},
                  {w2, b2, 6, 6, 3, 2, grp2, 2, 1, 2, {1, 0, 0, 1}},
                  {w3, b3, 4, 6, 2, 2, 1, 1, 1, 1, {0, 0, 0, 0}}};
    size_t v = 0;
    for (size_t l = 0; l < 3; l++) {
        size_t wd[4] = {layer[l].m, layer[l].c / layer[l].grp, layer[l].kh, layer[l].kw};
        size_t bd[1] = {layer[l].m}, in[3] = {v};
        assert_int_equal(crl_nn_graph_const(g, layer[l].w, wd, 4, &in[1], &err), CRL_OK);
        assert_int_equal(crl_nn_graph_const(g, layer[l].b, bd, 1, &in[2], &err), CRL_OK);
        crl_nn_attrs a;
        crl_nn_attrs_init(&a);
        a.group = layer[l].grp;
        a.strides[0] = layer[l].sh, a.strides[1] = layer[l].sw, a.dilations[1] = layer[l].dw;
        memcpy(a.pads, layer[l].pads, sizeof(layer[l].pads));
        assert_int_equal(crl_nn_graph_node(g, CRL_NN_CONV, in, 3, &a, &v, &err), CRL_OK);
        if (l < 2)
            assert_int_equal(crl_nn_graph_node(g, CRL_NN_RELU, &v, 1, NULL, &v, &err), CRL_OK);
        if (l < 2 && block) {
            crl_nn_attrs_init(&a);
            a.kernel[0] = a.kernel[1] = 1;
            assert_int_equal(crl_nn_graph_node(g, CRL_NN_MAXPOOL, &v, 1, &a, &v, &err), CRL_OK);
        }
    }
    crl_nn_shape s;
    assert_int_equal(crl_nn_graph_shape(g, v, &s), CRL_OK);
    assert_int_equal(s.d[1] * s.d[2] * s.d[3], 72); /* 9x8 -> 9x8 -> 4x7 -> 3x6, 4 maps */
    crl_nn_attrs a;
    crl_nn_attrs_init(&a);
    a.shape.rank = 2;
    a.shape.batched = 1;
    a.shape.d[1] = 72;
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_RESHAPE, &v, 1, &a, &v, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_linear(g, v, wl, bl, 72, 7, &v, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_set_output(g, v, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_finish(g, &err), CRL_OK);
    return g;
}

/* Convolutions feeding convolutions and a Flatten + LINEAR keep their feature maps NHWC between
 * them (graph.c, plan_nhwc: W's columns reordered, whole window rows copied); the answer is the
 * NCHW one (the same chain with identity pools in between, which keep NCHW) up to the order of
 * the sums, on every table, with padding, stride and dilation in the middle layer, 1 or 2 groups
 * there (2 keeps that layer's input and output NCHW), and a batch of 3 row by row the same bits. */
static void test_conv_chain_nhwc(void **state) {
    (void)state;
    enum { N = 3, IW = 3 * 9 * 8 };
    static float x[N * IW];
    for (size_t i = 0; i < N * IW; i++)
        x[i] = test_val(i, 7919u, 101u);
    unsigned isas = crl_kernels_isas_for(crl_hw_cpu_features());
    for (size_t k = 0; k < CRL_TEST_N_TABLES; k++) {
        if (!crl_test_covers(crl_test_tables[k])) continue;
        crl_kernels_choose(isas, crl_test_tables[k]);
        for (size_t grp2 = 1; grp2 <= 2; grp2++) {
            crl_nn_graph_t *chain = conv_chain(grp2, 0), *plain = conv_chain(grp2, 1);
            float y1[N * 7], y2[N * 7], one[7];
            crl_nn_ws_t *w1 = NULL, *w2 = NULL;
            assert_int_equal(crl_nn_ws_new(chain, N, &w1), CRL_OK);
            assert_int_equal(crl_nn_ws_new(plain, N, &w2), CRL_OK);
            assert_int_equal(crl_nn_run(chain, w1, x, N, y1), CRL_OK);
            assert_int_equal(crl_nn_run(plain, w2, x, N, y2), CRL_OK);
            for (size_t i = 0; i < N * 7; i++)
                if (!(fabs(y1[i] - y2[i]) <= 1e-5 + 1e-5 * fabs(y2[i])))
                    fail_msg("%s group %zu: [%zu] %.9g, NCHW %.9g", crl_test_tables[k], grp2, i,
                             (double)y1[i], (double)y2[i]);
            for (size_t r = 0; r < N; r++) {
                assert_int_equal(crl_nn_run(chain, w1, x + r * IW, 1, one), CRL_OK);
                assert_memory_equal(one, y1 + r * 7, sizeof(one));
            }
            crl_nn_ws_free(w1);
            crl_nn_ws_free(w2);
            crl_nn_graph_free(chain);
            crl_nn_graph_free(plain);
        }
    }
    crl_test_isa_default();
}

/* Wide values make a batch run in row tiles; the narrow layers after the last wide value then run
 * once on the whole batch (graph.c, split_plan), or, where they read more than one value made
 * before them (or the input), tile by tile with the rest. Either way every row gets exactly the
 * bits it gets alone. The graphs: x [20000] -> RELU (a) -> 2 * a (b) -> LINEAR 20000->8 of
 * `from` (a, b, or x), TANH, LINEAR 8->3; with `both`, LINEAR(a) + LINEAR(b) instead. */
static crl_nn_graph_t *wide_then_narrow(int from, int both) {
    enum { W = 20000 };
    crl_err err = {{0}};
    static float w1[8 * W], w2[3 * 8], b1[8];
    for (size_t i = 0; i < 8 * W; i++)
        w1[i] = test_val(i, 7919u, 101u) * 0.01f;
    for (size_t i = 0; i < 24; i++)
        w2[i] = test_val(i, 31u, 17u);
    for (size_t i = 0; i < 8; i++)
        b1[i] = test_val(i, 13u, 11u);
    size_t dims[1] = {W}, a, b, two, l1, l2, v;
    crl_nn_graph_t *g = NULL;
    assert_int_equal(crl_nn_graph_new_shaped(dims, 1, &g), CRL_OK);
    float c2 = 2.0f;
    assert_int_equal(crl_nn_graph_const(g, &c2, NULL, 0, &two, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_RELU, (size_t[]){0}, 1, NULL, &a, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_MUL, (size_t[]){a, two}, 2, NULL, &b, &err),
                     CRL_OK);
    size_t src = from == 0 ? a : from == 1 ? b : 0;
    assert_int_equal(crl_nn_graph_linear(g, src, w1, b1, W, 8, &l1, &err), CRL_OK);
    v = l1;
    if (both) {
        assert_int_equal(crl_nn_graph_linear(g, b, w1, NULL, W, 8, &l2, &err), CRL_OK);
        assert_int_equal(crl_nn_graph_node(g, CRL_NN_ADD, (size_t[]){l1, l2}, 2, NULL, &v, &err),
                         CRL_OK);
    }
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_TANH, &v, 1, NULL, &v, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_linear(g, v, w2, NULL, 8, 3, &v, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_set_output(g, v, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_finish(g, &err), CRL_OK);
    return g;
}

static void test_row_tiles_and_narrow_tail(void **state) {
    (void)state;
    enum { W = 20000, ROWS = 10 };
    static float x[ROWS * W];
    for (size_t i = 0; i < ROWS * W; i++)
        x[i] = test_val(i, 104729u, 97u);
    const int cases[][2] = {{0, 0}, {1, 0}, {2, 0}, {0, 1}};
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        crl_nn_graph_t *g = wide_then_narrow(cases[c][0], cases[c][1]);
        crl_nn_ws_t *ws = NULL, *w1 = NULL;
        assert_int_equal(crl_nn_ws_new(g, ROWS, &ws), CRL_OK);
        assert_int_equal(crl_nn_ws_new(g, 1, &w1), CRL_OK);
        float all[ROWS * 3], one[3];
        assert_int_equal(crl_nn_run(g, ws, x, ROWS, all), CRL_OK);
        for (size_t r = 0; r < ROWS; r++) {
            assert_int_equal(crl_nn_run(g, w1, x + r * W, 1, one), CRL_OK);
            if (memcmp(one, all + r * 3, sizeof(one)) != 0)
                fail_msg("case %zu: row %zu of a tiled batch differs from the row alone", c, r);
        }
        /* and a batch's rows again, with the workspace reused (the tail's pointers restored) */
        float again[ROWS * 3];
        assert_int_equal(crl_nn_run(g, ws, x, ROWS, again), CRL_OK);
        assert_memory_equal(again, all, sizeof(all));
        assert_int_equal(crl_nn_run(g, ws, x, 2, again), CRL_OK);
        assert_memory_equal(again, all, 2 * 3 * sizeof(float));
        crl_nn_ws_free(ws);
        crl_nn_ws_free(w1);
        crl_nn_graph_free(g);
    }
}

/* Depthwise (group = C = M) with auto_pad SAME_UPPER / SAME_LOWER / VALID: the pads come from
 * the input size. H 5, stride 2, k3: out 3, total pad 2 -> 1/1; W 6, stride 2, k5: out 3, total
 * pad 3 -> 1/2 (SAME_UPPER: the extra one at the end) or 2/1 (SAME_LOWER). */
static void test_conv_depthwise_auto_pad(void **state) {
    (void)state;
    crl_nn_attrs a;
    sp_case t = {.n = 2,
                 .c = 3,
                 .h = 5,
                 .w = 6,
                 .m = 3,
                 .grp = 3,
                 .kh = 3,
                 .kw = 5,
                 .sh = 2,
                 .sw = 2,
                 .dh = 1,
                 .dw = 1,
                 .pt = 1,
                 .pl = 1,
                 .pb = 1,
                 .pr = 2,
                 .oh = 3,
                 .ow = 3};
    sp_attrs(&t, &a);
    memset(a.pads, 0, sizeof(a.pads));
    a.auto_pad = CRL_NN_PAD_SAME_UPPER;
    check_spatial(CRL_NN_CONV, &t, &a, 1);
    t.pl = 2, t.pr = 1;
    a.auto_pad = CRL_NN_PAD_SAME_LOWER;
    check_spatial(CRL_NN_CONV, &t, &a, 1);
    /* VALID ignores the pads given: H (5 - 3) / 2 + 1 = 2, W (6 - 5) / 2 + 1 = 1. */
    t.pt = t.pl = t.pb = t.pr = 0;
    t.oh = 2, t.ow = 1;
    a.pads[0] = a.pads[2] = 3;
    a.auto_pad = CRL_NN_PAD_VALID;
    check_spatial(CRL_NN_CONV, &t, &a, 0);
}

static void test_pools(void **state) {
    (void)state;
    crl_nn_attrs a;
    /* k3 s2 pad 1: (7 + 2 - 3) / 2 + 1 = 4 by (8 + 2 - 3) / 2 + 1 = 4. */
    sp_case t = {.n = 2,
                 .c = 3,
                 .h = 7,
                 .w = 8,
                 .kh = 3,
                 .kw = 3,
                 .sh = 2,
                 .sw = 2,
                 .dh = 1,
                 .dw = 1,
                 .pt = 1,
                 .pl = 1,
                 .pb = 1,
                 .pr = 1,
                 .oh = 4,
                 .ow = 4};
    sp_attrs(&t, &a);
    a.kernel[0] = a.kernel[1] = 3;
    check_spatial(CRL_NN_MAXPOOL, &t, &a, 0);
    check_spatial(CRL_NN_AVGPOOL, &t, &a, 0);
    t.count_include_pad = a.count_include_pad = 1;
    check_spatial(CRL_NN_AVGPOOL, &t, &a, 0);
    /* ceil_mode: W (8 + 2 - 3) / 2 = 3.5 rounds up to 5 outputs; the last window is partial. */
    t.ceil_mode = a.ceil_mode = 1;
    t.ow = 5;
    check_spatial(CRL_NN_MAXPOOL, &t, &a, 0);
    check_spatial(CRL_NN_AVGPOOL, &t, &a, 0);
    /* ceil_mode drops a last window that would start in the trailing pad: 5 + 1 + 1 with k2 s2
     * gives ceil(5 / 2) + 1 = 4 windows, but the 4th starts at 6 >= 5 + 1, so 3 (as torch). */
    sp_case c5 = {.n = 1,
                  .c = 2,
                  .h = 5,
                  .w = 5,
                  .kh = 2,
                  .kw = 2,
                  .sh = 2,
                  .sw = 2,
                  .dh = 1,
                  .dw = 1,
                  .pt = 1,
                  .pl = 1,
                  .pb = 1,
                  .pr = 1,
                  .ceil_mode = 1,
                  .oh = 3,
                  .ow = 3};
    sp_attrs(&c5, &a);
    a.kernel[0] = a.kernel[1] = 2;
    check_spatial(CRL_NN_MAXPOOL, &c5, &a, 0);
    check_spatial(CRL_NN_AVGPOOL, &c5, &a, 0);
    /* Dilated max pool, asymmetric kernel, no pads. */
    sp_case d = {.n = 1,
                 .c = 2,
                 .h = 6,
                 .w = 5,
                 .kh = 2,
                 .kw = 3,
                 .sh = 1,
                 .sw = 2,
                 .dh = 2,
                 .dw = 1,
                 .oh = 4,
                 .ow = 2};
    sp_attrs(&d, &a);
    a.kernel[0] = 2, a.kernel[1] = 3;
    check_spatial(CRL_NN_MAXPOOL, &d, &a, 0);
    /* Global average pool = an average pool with the whole plane as its kernel. */
    sp_case gp = {.n = 3,
                  .c = 4,
                  .h = 5,
                  .w = 3,
                  .kh = 5,
                  .kw = 3,
                  .sh = 1,
                  .sw = 1,
                  .dh = 1,
                  .dw = 1,
                  .oh = 1,
                  .ow = 1};
    sp_attrs(&gp, &a);
    a.kernel[0] = 5, a.kernel[1] = 3;
    check_spatial(CRL_NN_AVGPOOL, &gp, &a, 0);
}

/* A Conv followed by BatchNormalization runs as one CONV with the BN in its weights. */
static void test_conv_batchnorm_fold(void **state) {
    (void)state;
    crl_err err = {{0}};
    const size_t dims[3] = {2, 3, 3}, wd[4] = {2, 2, 2, 2}, cd[1] = {2};
    float w[16], x[2 * 18], y[2 * 8];
    for (size_t i = 0; i < 16; i++)
        w[i] = test_val(i, 13u, 29u);
    for (size_t i = 0; i < 36; i++)
        x[i] = test_val(i, 7u, 23u);
    const float bias[] = {0.25f, -0.5f}, gam[] = {2, 0.5f}, bet[] = {0.1f, -0.2f}, mean[] = {1, -1},
                var[] = {4, 0.25f};
    crl_nn_graph_t *g = NULL;
    assert_int_equal(crl_nn_graph_new_shaped(dims, 3, &g), CRL_OK);
    size_t in[5] = {0}, conv, bn, out;
    assert_int_equal(crl_nn_graph_const(g, w, wd, 4, &in[1], &err), CRL_OK);
    assert_int_equal(crl_nn_graph_const(g, bias, cd, 1, &in[2], &err), CRL_OK);
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_CONV, in, 3, NULL, &conv, &err), CRL_OK);
    in[0] = conv;
    const float *p[] = {gam, bet, mean, var};
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(crl_nn_graph_const(g, p[i], cd, 1, &in[i + 1], &err), CRL_OK);
    crl_nn_attrs a;
    crl_nn_attrs_init(&a);
    a.eps = 1e-5f;
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_BATCHNORM, in, 5, &a, &bn, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_RELU, &bn, 1, NULL, &out, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_finish(g, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_num_ops(g), 2);
    assert_int_equal(crl_nn_graph_op(g, 0), CRL_NN_CONV);
    assert_int_equal(crl_nn_graph_op(g, 1), CRL_NN_RELU);
    crl_nn_ws_t *ws = NULL;
    assert_int_equal(crl_nn_ws_new(g, 2, &ws), CRL_OK);
    /* The im2col scratch (8 floats: 2x2x2 per pixel... times 4 pixels = 32) is in the arena. */
    assert_true(crl_nn_ws_arena_floats(ws) >= 32);
    assert_int_equal(crl_nn_run(g, ws, x, 2, y), CRL_OK);
    sp_case t = {.n = 2,
                 .c = 2,
                 .h = 3,
                 .w = 3,
                 .m = 2,
                 .grp = 1,
                 .kh = 2,
                 .kw = 2,
                 .sh = 1,
                 .sw = 1,
                 .dh = 1,
                 .dw = 1,
                 .oh = 2,
                 .ow = 2};
    for (size_t n = 0; n < 2; n++)
        for (size_t o = 0; o < 2; o++)
            for (size_t q = 0; q < 4; q++) {
                double h = ref_at(CRL_NN_CONV, &t, x, w, bias, n, o, q / 2, q % 2);
                double ref = (h - mean[o]) * gam[o] / sqrt(var[o] + 1e-5) + bet[o];
                ref = ref > 0 ? ref : 0;
                assert_true(fabs((double)y[(n * 2 + o) * 4 + q] - ref) <= 1e-5);
            }
    crl_nn_ws_free(ws);
    crl_nn_graph_free(g);
}

static void test_spatial_errors(void **state) {
    (void)state;
    crl_err err = {{0}};
    const size_t dims[3] = {4, 5, 5}, wd[4] = {6, 3, 3, 3}, flat[1] = {100};
    float w[6 * 3 * 9] = {0};
    crl_nn_graph_t *g = NULL;
    assert_int_equal(crl_nn_graph_new_shaped(dims, 3, &g), CRL_OK);
    size_t in[2] = {0}, out, in2[2];
    assert_int_equal(crl_nn_graph_const(g, w, wd, 4, &in[1], &err), CRL_OK);
    crl_nn_attrs a;
    crl_nn_attrs_init(&a);
    /* 4 input channels, W made for 3 per group. */
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_CONV, in, 2, &a, &out, &err), CRL_ESHAPE);
    assert_non_null(strstr(err.msg, "group"));
    /* The weight must be a constant. */
    in2[0] = 0, in2[1] = 0;
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_CONV, in2, 2, &a, &out, &err), CRL_EUNSUPPORTED);
    /* A kernel bigger than the padded input. */
    a.kernel[0] = a.kernel[1] = 7;
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_MAXPOOL, in, 1, &a, &out, &err), CRL_ESHAPE);
    /* A pool without a kernel. */
    crl_nn_attrs_init(&a);
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_AVGPOOL, in, 1, &a, &out, &err), CRL_EUNSUPPORTED);
    crl_nn_graph_free(g);
    /* Only 4-D (NCHW) inputs. */
    assert_int_equal(crl_nn_graph_new_shaped(flat, 1, &g), CRL_OK);
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_GLOBAL_AVGPOOL, in, 1, NULL, &out, &err),
                     CRL_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "NCHW"));
    crl_nn_graph_free(g);
}

static void test_global_avgpool(void **state) {
    (void)state;
    crl_err err = {{0}};
    const size_t dims[3] = {3, 4, 5};
    float x[2 * 60], y[2 * 3];
    for (size_t i = 0; i < 120; i++)
        x[i] = test_val(i, 17u, 37u);
    crl_nn_graph_t *g = NULL;
    assert_int_equal(crl_nn_graph_new_shaped(dims, 3, &g), CRL_OK);
    size_t in = 0, out;
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_GLOBAL_AVGPOOL, &in, 1, NULL, &out, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_finish(g, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_output_width(g), 3);
    crl_nn_ws_t *ws = NULL;
    assert_int_equal(crl_nn_ws_new(g, 2, &ws), CRL_OK);
    assert_int_equal(crl_nn_run(g, ws, x, 2, y), CRL_OK);
    for (size_t pl = 0; pl < 6; pl++) {
        double s = 0;
        for (size_t i = 0; i < 20; i++)
            s += x[pl * 20 + i];
        assert_true(fabs((double)y[pl] - s / 20) <= 1e-6);
    }
    crl_nn_ws_free(ws);
    crl_nn_graph_free(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_hand_computed),
        cmocka_unit_test(test_elementwise_chain),
        cmocka_unit_test(test_fold_add_row),
        cmocka_unit_test(test_empty_graph_is_identity),
        cmocka_unit_test(test_builder_errors),
        cmocka_unit_test(test_weight_cap),
        cmocka_unit_test(test_run_errors),
        cmocka_unit_test(test_packed_graph_after_table_switch),
        cmocka_unit_test(test_broadcast),
        cmocka_unit_test(test_constant_folding),
        cmocka_unit_test(test_batchnorm_fold),
        cmocka_unit_test(test_memory_plan),
        cmocka_unit_test(test_relu_fusion),
        cmocka_unit_test(test_heads_merged),
        cmocka_unit_test(test_conv_stride_pad_dilation_groups),
        cmocka_unit_test(test_conv_activation_fused),
        cmocka_unit_test(test_conv_chain_nhwc),
        cmocka_unit_test(test_row_tiles_and_narrow_tail),
        cmocka_unit_test(test_plan_per_batch_class),
        cmocka_unit_test(test_gelu_fused),
        cmocka_unit_test(test_conv_depthwise_auto_pad),
        cmocka_unit_test(test_pools),
        cmocka_unit_test(test_conv_batchnorm_fold),
        cmocka_unit_test(test_spatial_errors),
        cmocka_unit_test(test_global_avgpool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
