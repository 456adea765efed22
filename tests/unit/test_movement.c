/* test_movement.c: the data-movement ops of the graph (SLICE, GATHER, TRANSPOSE, nn/movement.c)
 * against index arithmetic written out here: ONNX's Slice rules (negative starts and ends,
 * clamping, INT64_MAX ends, negative steps), Gather with indices of rank 0 to 2 and negative
 * ones, Transpose with a permutation and by default; the batch axis refused where it would move
 * or be cut; constant inputs folded at finish; the memory plan giving each op its own slot; and
 * every kernel table giving the same bits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hw/hw.h"
#include "kernels/kernels.h"
#include "nn/graph.h"

#define ROWS 3

static crl_nn_graph_t *new_shaped(const size_t *dims, size_t n) {
    crl_nn_graph_t *g = NULL;
    assert_int_equal(crl_nn_graph_new_shaped(dims, n, &g), CRL_OK);
    return g;
}

/* x[i] = i * 0.5 - 7: distinct values, so a misplaced element always shows. */
static void fill(float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        x[i] = (float)i * 0.5f - 7.0f;
}

/* Finishes g, runs ROWS rows of input and checks the output against want (exactly: these ops
 * only copy). */
static void run_check(crl_nn_graph_t *g, const float *want, size_t out_width) {
    crl_err err = {{0}};
    if (crl_nn_graph_finish(g, &err) != CRL_OK) fail_msg("%s", err.msg);
    assert_int_equal(crl_nn_graph_output_width(g), out_width);
    size_t in_width = crl_nn_graph_input_width(g);
    float *x = malloc(ROWS * in_width * sizeof(float)),
          *y = malloc(ROWS * out_width * sizeof(float));
    assert_non_null(x);
    assert_non_null(y);
    fill(x, ROWS * in_width);
    crl_nn_ws_t *ws = NULL;
    assert_int_equal(crl_nn_ws_new(g, ROWS, &ws), CRL_OK);
    assert_int_equal(crl_nn_run(g, ws, x, ROWS, y), CRL_OK);
    for (size_t i = 0; i < ROWS * out_width; i++)
        if (y[i] != want[i])
            fail_msg("output %zu is %g, expected %g", i, (double)y[i], (double)want[i]);
    /* Row by row gives the same as the batch. */
    for (size_t r = 0; r < ROWS; r++) {
        assert_int_equal(crl_nn_run(g, ws, x + r * in_width, 1, y), CRL_OK);
        assert_memory_equal(y, want + r * out_width, out_width * sizeof(float));
    }
    crl_nn_ws_free(ws);
    free(x);
    free(y);
}

static crl_nn_attrs slice_attrs(size_t n, const int64_t *axes, const int64_t *starts,
                                const int64_t *ends, const int64_t *steps) {
    crl_nn_attrs a;
    crl_nn_attrs_init(&a);
    a.n_axes = n;
    for (size_t k = 0; k < n; k++) {
        a.axes[k] = axes[k];
        a.starts[k] = starts[k];
        a.ends[k] = ends[k];
        a.steps[k] = steps ? steps[k] : 1;
    }
    return a;
}

/* [B, 3, 5]: axis -1 from -4 to the end (INT64_MAX) by 2 takes columns 1, 3; axis 1 backwards
 * from -1 to INT64_MIN takes rows 2, 1, 0. */
static void test_slice_steps(void **state) {
    (void)state;
    const size_t dims[2] = {3, 5};
    const int64_t axes[2] = {-1, 1}, starts[2] = {-4, -1}, ends[2] = {INT64_MAX, INT64_MIN},
                  steps[2] = {2, -1};
    crl_nn_graph_t *g = new_shaped(dims, 2);
    crl_nn_attrs a = slice_attrs(2, axes, starts, ends, steps);
    size_t in = 0, v;
    crl_err err = {{0}};
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_SLICE, &in, 1, &a, &v, &err), CRL_OK);
    crl_nn_shape s;
    assert_int_equal(crl_nn_graph_shape(g, v, &s), CRL_OK);
    assert_int_equal(s.rank, 3);
    assert_true(s.batched);
    assert_int_equal(s.d[1], 3);
    assert_int_equal(s.d[2], 2);
    float x[ROWS * 15], want[ROWS * 6];
    fill(x, ROWS * 15);
    for (size_t b = 0; b < ROWS; b++)
        for (size_t i = 0; i < 3; i++)
            for (size_t j = 0; j < 2; j++)
                want[b * 6 + i * 2 + j] = x[b * 15 + (2 - i) * 5 + 1 + 2 * j];
    run_check(g, want, 6);
    assert_int_equal(crl_nn_graph_num_ops(g), 1);
    assert_int_equal(crl_nn_graph_op(g, 0), CRL_NN_SLICE);
    crl_nn_graph_free(g);
}

/* Bounds beyond the axis clamp to it: [-100, 100) is the whole axis (step 0 means 1), and 7 down
 * to 2 (excluded) by -2 on an axis of 5 starts at 4 and takes only index 4. */
static void test_slice_clamp(void **state) {
    (void)state;
    const size_t dims[2] = {4, 5};
    const int64_t axes[2] = {1, 2}, starts[2] = {-100, 7}, ends[2] = {100, 2}, steps[2] = {0, -2};
    crl_nn_graph_t *g = new_shaped(dims, 2);
    crl_nn_attrs a = slice_attrs(2, axes, starts, ends, steps);
    size_t in = 0, v;
    crl_err err = {{0}};
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_SLICE, &in, 1, &a, &v, &err), CRL_OK);
    float x[ROWS * 20], want[ROWS * 4];
    fill(x, ROWS * 20);
    for (size_t b = 0; b < ROWS; b++)
        for (size_t i = 0; i < 4; i++)
            want[b * 4 + i] = x[b * 20 + i * 5 + 4];
    run_check(g, want, 4);
    crl_nn_graph_free(g);
}

static void expect_node_error(crl_nn_graph_t *g, crl_nn_op op, const crl_nn_attrs *a,
                              crl_status want, const char *needle) {
    crl_err err = {{0}};
    size_t in = 0, v;
    size_t before = crl_nn_graph_num_ops(g);
    assert_int_equal(crl_nn_graph_node(g, op, &in, 1, a, &v, &err), want);
    if (strstr(err.msg, needle) == NULL) fail_msg("\"%s\" lacks \"%s\"", err.msg, needle);
    assert_int_equal(crl_nn_graph_num_ops(g), before);
}

/* The batch axis: a whole slice is allowed (and costs nothing), anything else is refused. */
static void test_slice_batch_axis(void **state) {
    (void)state;
    const size_t dims[1] = {4};
    crl_nn_graph_t *g = new_shaped(dims, 1);
    const int64_t ax0[1] = {0}, zero[1] = {0}, one[1] = {1}, big[1] = {INT64_MAX}, five[1] = {5},
                  m1[1] = {-1}, i32[1] = {INT32_MAX};
    crl_nn_attrs a = slice_attrs(1, ax0, one, big, NULL);
    expect_node_error(g, CRL_NN_SLICE, &a, CRL_EUNSUPPORTED, "batch axis (axis 0)");
    a = slice_attrs(1, ax0, zero, five, NULL);
    expect_node_error(g, CRL_NN_SLICE, &a, CRL_EUNSUPPORTED, "batch axis");
    a = slice_attrs(1, ax0, zero, big, m1);
    expect_node_error(g, CRL_NN_SLICE, &a, CRL_EUNSUPPORTED, "batch axis");
    /* Empty, twice the same axis, no axes, an axis out of range. */
    const int64_t ax1[2] = {1, -1}, two[2] = {2, 2}, three[2] = {3, 3}, ax9[1] = {9};
    a = slice_attrs(1, ax1, three, two, NULL);
    expect_node_error(g, CRL_NN_SLICE, &a, CRL_ESHAPE, "is empty");
    a = slice_attrs(2, ax1, two, three, NULL);
    expect_node_error(g, CRL_NN_SLICE, &a, CRL_EINVAL, "sliced twice");
    a = slice_attrs(0, ax1, zero, three, NULL);
    expect_node_error(g, CRL_NN_SLICE, &a, CRL_EINVAL, "axes");
    a = slice_attrs(1, ax9, zero, three, NULL);
    expect_node_error(g, CRL_NN_SLICE, &a, CRL_ESHAPE, "outside");

    /* Whole: [0, INT64_MAX) and [0, INT32_MAX) on the batch and the whole of axis 1 -> one
     * RESHAPE, which is the output and stays. */
    size_t in = 0, v;
    crl_err err = {{0}};
    const int64_t axb[2] = {0, 1}, st2[2] = {0, 0}, en2[2] = {INT64_MAX, 4};
    a = slice_attrs(2, axb, st2, en2, NULL);
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_SLICE, &in, 1, &a, &v, &err), CRL_OK);
    a = slice_attrs(1, ax0, zero, i32, NULL);
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_SLICE, &v, 1, &a, &v, &err), CRL_OK);
    float want[ROWS * 4];
    fill(want, ROWS * 4);
    run_check(g, want, 4);
    assert_int_equal(crl_nn_graph_num_ops(g), 1);
    assert_int_equal(crl_nn_graph_op(g, 0), CRL_NN_RESHAPE);
    crl_nn_graph_free(g);
}

/* [B, 2, 3, 4] -> perm (0, 2, 3, 1) -> [B, 3, 4, 2], the NCHW -> NHWC of an image policy. */
static void test_transpose_perm(void **state) {
    (void)state;
    const size_t dims[3] = {2, 3, 4};
    crl_nn_graph_t *g = new_shaped(dims, 3);
    crl_nn_attrs a;
    crl_nn_attrs_init(&a);
    a.n_axes = 4;
    a.axes[0] = 0, a.axes[1] = 2, a.axes[2] = 3, a.axes[3] = 1;
    size_t in = 0, v;
    crl_err err = {{0}};
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_TRANSPOSE, &in, 1, &a, &v, &err), CRL_OK);
    float x[ROWS * 24], want[ROWS * 24];
    fill(x, ROWS * 24);
    for (size_t b = 0; b < ROWS; b++)
        for (size_t h = 0; h < 3; h++)
            for (size_t w = 0; w < 4; w++)
                for (size_t c = 0; c < 2; c++)
                    want[b * 24 + (h * 4 + w) * 2 + c] = x[b * 24 + (c * 3 + h) * 4 + w];
    run_check(g, want, 24);
    assert_int_equal(crl_nn_graph_op(g, 0), CRL_NN_TRANSPOSE);
    crl_nn_graph_free(g);
}

static void test_transpose_errors(void **state) {
    (void)state;
    const size_t dims[2] = {3, 4};
    crl_nn_graph_t *g = new_shaped(dims, 2);
    crl_nn_attrs a;
    crl_nn_attrs_init(&a); /* default: reverse, which moves the batch to the end */
    expect_node_error(g, CRL_NN_TRANSPOSE, &a, CRL_EUNSUPPORTED, "to position 2");
    a.n_axes = 3;
    a.axes[0] = 1, a.axes[1] = 0, a.axes[2] = 2;
    expect_node_error(g, CRL_NN_TRANSPOSE, &a, CRL_EUNSUPPORTED, "batch axis (axis 0)");
    a.axes[0] = 0, a.axes[1] = 2, a.axes[2] = 2;
    expect_node_error(g, CRL_NN_TRANSPOSE, &a, CRL_EINVAL, "permutation");
    a.axes[2] = -1;
    expect_node_error(g, CRL_NN_TRANSPOSE, &a, CRL_EINVAL, "permutation");
    a.n_axes = 2;
    expect_node_error(g, CRL_NN_TRANSPOSE, &a, CRL_ESHAPE, "2 entries for a 3-D value");
    crl_nn_graph_free(g);
}

/* A transpose that moves only dims of size 1 ([B, 1, 6] -> [B, 6, 1]) is a RESHAPE, which the
 * graph drops. */
static void test_transpose_unit_dims(void **state) {
    (void)state;
    const size_t dims[2] = {1, 6};
    crl_nn_graph_t *g = new_shaped(dims, 2);
    crl_nn_attrs a;
    crl_nn_attrs_init(&a);
    a.n_axes = 3;
    a.axes[0] = 0, a.axes[1] = 2, a.axes[2] = 1;
    size_t in = 0, v;
    crl_err err = {{0}};
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_TRANSPOSE, &in, 1, &a, &v, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_RELU, &v, 1, NULL, &v, &err), CRL_OK);
    float want[ROWS * 6];
    fill(want, ROWS * 6);
    for (size_t i = 0; i < ROWS * 6; i++)
        want[i] = want[i] > 0 ? want[i] : 0;
    run_check(g, want, 6);
    assert_int_equal(crl_nn_graph_num_ops(g), 1);
    assert_int_equal(crl_nn_graph_op(g, 0), CRL_NN_RELU);
    crl_nn_graph_free(g);
}

/* [B, 4, 5]: axis 1 at (3, -1, 0) -> [B, 3, 5]; axis -1 at the scalar -2 -> [B, 4] (the axis
 * goes); axis 2 at [[0, 1], [4, 4]] -> [B, 4, 2, 2]. */
static void test_gather(void **state) {
    (void)state;
    const size_t dims[2] = {4, 5};
    float x[ROWS * 20];
    fill(x, ROWS * 20);
    crl_err err = {{0}};
    for (int variant = 0; variant < 3; variant++) {
        crl_nn_graph_t *g = new_shaped(dims, 2);
        const int64_t list[3] = {3, -1, 0}, scalar[1] = {-2}, mat[4] = {0, 1, 4, 4};
        const size_t ld[1] = {3}, md[2] = {2, 2};
        size_t v, width = 0;
        float want[ROWS * 20];
        if (variant == 0) {
            assert_int_equal(crl_nn_graph_gather(g, 0, 1, list, ld, 1, &v, &err), CRL_OK);
            width = 15;
            for (size_t b = 0; b < ROWS; b++)
                for (size_t j = 0; j < 3; j++)
                    for (size_t k = 0; k < 5; k++)
                        want[b * 15 + j * 5 + k] =
                            x[b * 20 + (size_t)(list[j] < 0 ? 3 : list[j]) * 5 + k];
        } else if (variant == 1) {
            assert_int_equal(crl_nn_graph_gather(g, 0, -1, scalar, NULL, 0, &v, &err), CRL_OK);
            width = 4;
            for (size_t b = 0; b < ROWS; b++)
                for (size_t i = 0; i < 4; i++)
                    want[b * 4 + i] = x[b * 20 + i * 5 + 3];
        } else {
            assert_int_equal(crl_nn_graph_gather(g, 0, 2, mat, md, 2, &v, &err), CRL_OK);
            width = 16;
            for (size_t b = 0; b < ROWS; b++)
                for (size_t i = 0; i < 4; i++)
                    for (size_t j = 0; j < 4; j++)
                        want[b * 16 + i * 4 + j] = x[b * 20 + i * 5 + (size_t)mat[j]];
        }
        crl_nn_shape s;
        assert_int_equal(crl_nn_graph_shape(g, v, &s), CRL_OK);
        static const size_t ranks[3] = {3, 2, 4};
        assert_int_equal(s.rank, ranks[variant]);
        run_check(g, want, width);
        assert_int_equal(crl_nn_graph_op(g, 0), CRL_NN_GATHER);
        crl_nn_graph_free(g);
    }
}

static void test_gather_errors(void **state) {
    (void)state;
    const size_t dims[2] = {4, 5}, one[1] = {1}, zero[1] = {0}, deep[5] = {1, 1, 1, 1, 1};
    const int64_t ix[1] = {0}, far[1] = {4}, neg[1] = {-5};
    crl_nn_graph_t *g = new_shaped(dims, 2);
    crl_err err = {{0}};
    size_t v;
    assert_int_equal(crl_nn_graph_gather(g, 0, 0, ix, one, 1, &v, &err), CRL_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "batch axis"));
    assert_int_equal(crl_nn_graph_gather(g, 0, 1, far, one, 1, &v, &err), CRL_ESHAPE);
    assert_non_null(strstr(err.msg, "index 4 is outside axis 1 of size 4"));
    assert_int_equal(crl_nn_graph_gather(g, 0, 1, neg, one, 1, &v, &err), CRL_ESHAPE);
    assert_int_equal(crl_nn_graph_gather(g, 0, 3, ix, one, 1, &v, &err), CRL_ESHAPE);
    assert_int_equal(crl_nn_graph_gather(g, 0, 1, ix, zero, 1, &v, &err), CRL_EUNSUPPORTED);
    assert_int_equal(crl_nn_graph_gather(g, 0, 1, ix, deep, 5, &v, &err), CRL_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "dimensions"));
    assert_int_equal(crl_nn_graph_gather(g, 0, 1, NULL, one, 1, &v, &err), CRL_EINVAL);
    assert_int_equal(crl_nn_graph_gather(g, 99, 1, ix, one, 1, &v, &err), CRL_EINVAL);
    size_t in = 0;
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_GATHER, &in, 1, NULL, &v, &err), CRL_EINVAL);
    assert_int_equal(crl_nn_graph_num_ops(g), 0);
    crl_nn_graph_free(g);
}

/* All three over a constant fold at finish: c [2, 3] -> default transpose [3, 2] -> gather
 * rows (2, 0) -> slice column 1 backwards to the start -> [2, 2], added to x [B, 2, 2]. Only
 * the ADD remains. */
static void test_fold_constants(void **state) {
    (void)state;
    const size_t dims[2] = {2, 2}, cd[2] = {2, 3}, id[1] = {2};
    const float c[6] = {1, 2, 3, 4, 5, 6}; /* c^T = [[1, 4], [2, 5], [3, 6]] */
    const int64_t ix[2] = {2, 0}, ax[1] = {1}, st[1] = {1}, en[1] = {INT64_MIN}, sp[1] = {-1};
    crl_nn_graph_t *g = new_shaped(dims, 2);
    crl_err err = {{0}};
    size_t cv, in[2] = {0, 0};
    assert_int_equal(crl_nn_graph_const(g, c, cd, 2, &cv, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_TRANSPOSE, &cv, 1, NULL, &cv, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_gather(g, cv, 0, ix, id, 1, &cv, &err), CRL_OK);
    crl_nn_attrs a = slice_attrs(1, ax, st, en, sp);
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_SLICE, &cv, 1, &a, &in[1], &err), CRL_OK);
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_ADD, in, 2, NULL, NULL, &err), CRL_OK);
    /* [[3, 6], [1, 4]] reversed along columns: [[6, 3], [4, 1]] */
    const float k[4] = {6, 3, 4, 1};
    float want[ROWS * 4];
    fill(want, ROWS * 4);
    for (size_t i = 0; i < ROWS * 4; i++)
        want[i] += k[i % 4];
    run_check(g, want, 4);
    assert_int_equal(crl_nn_graph_num_ops(g), 1);
    assert_int_equal(crl_nn_graph_op(g, 0), CRL_NN_ADD);
    crl_nn_graph_free(g);
}

/* x -> TRANSPOSE -> SLICE -> GATHER -> RELU: none runs in place, so each output gets a slot of
 * its own that does not overlap any slot live at the same time; the result is the same under
 * every kernel table. */
static void test_memory_plan(void **state) {
    (void)state;
    const size_t dims[2] = {6, 8}, id[1] = {4};
    const int64_t ix[4] = {5, 0, 5, 2}, ax[1] = {2}, st[1] = {1}, en[1] = {-1};
    crl_nn_graph_t *g = new_shaped(dims, 2);
    crl_err err = {{0}};
    crl_nn_attrs a;
    crl_nn_attrs_init(&a);
    a.n_axes = 3;
    a.axes[0] = 0, a.axes[1] = 2, a.axes[2] = 1;
    size_t v[4], x0 = 0;
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_TRANSPOSE, &x0, 1, &a, &v[0], &err), CRL_OK);
    a = slice_attrs(1, ax, st, en, NULL); /* [B, 8, 6] -> [B, 8, 4] */
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_SLICE, &v[0], 1, &a, &v[1], &err), CRL_OK);
    assert_int_equal(crl_nn_graph_gather(g, v[1], 1, ix, id, 1, &v[2], &err), CRL_OK);
    assert_int_equal(crl_nn_graph_node(g, CRL_NN_RELU, &v[2], 1, NULL, &v[3], &err), CRL_OK);
    float x[ROWS * 48], want[ROWS * 16];
    fill(x, ROWS * 48);
    for (size_t b = 0; b < ROWS; b++)
        for (size_t j = 0; j < 4; j++)
            for (size_t k = 0; k < 4; k++) {
                /* gathered row ix[j] of the transpose = column ix[j] of x; slice keeps 1..4 */
                float e = x[b * 48 + (1 + k) * 8 + (size_t)ix[j]];
                want[b * 16 + j * 4 + k] = e > 0 ? e : 0;
            }
    run_check(g, want, 16);
    crl_nn_ws_t *ws = NULL;
    assert_int_equal(crl_nn_ws_new(g, ROWS, &ws), CRL_OK);
    size_t off[2], len[2], first[2], last[2];
    assert_true(crl_nn_ws_slot(ws, v[0], &off[0], &len[0], &first[0], &last[0]));
    assert_true(crl_nn_ws_slot(ws, v[1], &off[1], &len[1], &first[1], &last[1]));
    assert_true(len[0] >= ROWS * 48 && len[1] >= ROWS * 32);
    assert_true(off[0] + len[0] <= off[1] || off[1] + len[1] <= off[0]); /* both live at SLICE */
    assert_int_equal(last[0], first[1]);
    /* The GATHER's output and the RELU done in place over it live in the caller's y. */
    size_t o, l, f, t;
    assert_false(crl_nn_ws_slot(ws, v[2], &o, &l, &f, &t));
    crl_nn_ws_free(ws);

    unsigned isas = crl_kernels_isas_for(crl_hw_cpu_features());
    static const char *const tables[] = {"generic", "avx2", "avx512"};
    for (size_t i = 0; i < 3; i++) {
        if (strcmp(crl_kernels_choose(isas, tables[i])->name, tables[i]) != 0) continue;
        float y[ROWS * 16];
        assert_int_equal(crl_nn_ws_new(g, ROWS, &ws), CRL_OK);
        assert_int_equal(crl_nn_run(g, ws, x, ROWS, y), CRL_OK);
        assert_memory_equal(y, want, sizeof(y));
        crl_nn_ws_free(ws);
    }
    crl_kernels_choose(0, "generic");
    crl_nn_graph_free(g);
}

int main(void) {
    crl_kernels_choose(0, "generic");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slice_steps),      cmocka_unit_test(test_slice_clamp),
        cmocka_unit_test(test_slice_batch_axis), cmocka_unit_test(test_transpose_perm),
        cmocka_unit_test(test_transpose_errors), cmocka_unit_test(test_transpose_unit_dims),
        cmocka_unit_test(test_gather),           cmocka_unit_test(test_gather_errors),
        cmocka_unit_test(test_fold_constants),   cmocka_unit_test(test_memory_plan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
