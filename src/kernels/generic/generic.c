/* generic.c: the plain-C reference kernels. Every ISA-specific table is tested against these, so
 * they favour obvious correctness over speed: one float accumulator per output, summed in input
 * order from zero, with the bias added last (the order a straightforward dot product uses). */
#include <math.h>
#include <stddef.h>

#include "kernels/kernels.h"

/* Four outputs at a time: four independent accumulator chains keep the FP adder busy instead of
 * waiting on one chain. Each output is still summed in input order from 0, so the results are
 * bit-identical to the plain one-output loop. */
static void generic_linear(const float *x, size_t rows, size_t in, const float *w, const float *b,
                           size_t out, float *y) {
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * in;
        float *yr = y + r * out;
        size_t o = 0;
        for (; o + 4 <= out; o += 4) {
            const float *w0 = w + o * in, *w1 = w0 + in, *w2 = w1 + in, *w3 = w2 + in;
            float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
            for (size_t i = 0; i < in; i++) {
                float xi = xr[i];
                a0 += xi * w0[i];
                a1 += xi * w1[i];
                a2 += xi * w2[i];
                a3 += xi * w3[i];
            }
            yr[o] = b ? a0 + b[o] : a0;
            yr[o + 1] = b ? a1 + b[o + 1] : a1;
            yr[o + 2] = b ? a2 + b[o + 2] : a2;
            yr[o + 3] = b ? a3 + b[o + 3] : a3;
        }
        for (; o < out; o++) {
            const float *wo = w + o * in;
            float acc = 0.0f;
            for (size_t i = 0; i < in; i++)
                acc += xr[i] * wo[i];
            yr[o] = b ? acc + b[o] : acc;
        }
    }
}

/* Written as "x < 0 ? 0 : x" rather than fmaxf so a NaN passes through, as it does in PyTorch. */
static void generic_relu(float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        x[i] = x[i] < 0.0f ? 0.0f : x[i];
}

static void generic_tanh(float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        x[i] = tanhf(x[i]);
}

/* exp() only ever sees a non-positive argument, so it cannot overflow and the result never
 * becomes inf/inf for large |x|. */
static void generic_sigmoid(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        if (v >= 0.0f) {
            x[i] = 1.0f / (1.0f + expf(-v));
        } else {
            float e = expf(v);
            x[i] = e / (1.0f + e);
        }
    }
}

/* Comparisons rather than fminf/fmaxf so NaN propagates (torch.clamp does the same). */
static void generic_clip(float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        x[i] = v < lo ? lo : (v > hi ? hi : v);
    }
}

static void generic_add_row(float *x, size_t rows, size_t cols, const float *b) {
    for (size_t r = 0; r < rows; r++) {
        float *xr = x + r * cols;
        for (size_t c = 0; c < cols; c++)
            xr[c] += b[c];
    }
}

static void generic_scale(float *x, size_t n, float alpha) {
    for (size_t i = 0; i < n; i++)
        x[i] *= alpha;
}

/* The ReLU epilogue: relu over the rows just written, while they are still in L1; the same
 * accumulated values clamped the same way as linear then relu, so the same bits. */
static void generic_linear_relu(const float *x, size_t rows, size_t in, const float *w,
                                const float *b, size_t out, float *y) {
    generic_linear(x, rows, in, w, b, out, y);
    generic_relu(y, rows * out);
}

static const crl_kernels_t generic_table = {
    .name = "generic",
    .linear = generic_linear,
    .relu = generic_relu,
    .tanh = generic_tanh,
    .sigmoid = generic_sigmoid,
    .clip = generic_clip,
    .add_row = generic_add_row,
    .scale = generic_scale,
    .linear_relu = generic_linear_relu,
};

const crl_kernels_t *crl_kernels_generic(void) {
    return &generic_table;
}
