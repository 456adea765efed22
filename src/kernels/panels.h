/* panels.h: the linear-layer drivers shared by the SIMD kernel tables (avx2/, avx512/, neon/).
 * Not a normal header: an ISA file includes it after defining VW (floats per vector), PANEL
 * (outputs per packed panel), KC (inputs per packed chunk), RB (rows per register block),
 * PACK_MIN_ROWS, PANEL_ALIGN, and its own block() and linear_dot(), so the code below is compiled
 * once per ISA with that ISA's flags and intrinsics (STYLE.md: intrinsics stay in the ISA
 * directories). PACK_IN (optional, VW when not defined): layers with fewer inputs than this (and
 * at least VW outputs) take the "packed" path; neon's 4-float vectors set it above VW so that the
 * 5 -> 64 first layer of the example MLP is packed as on x86. */
#ifndef CRL_KERNELS_PANELS_H
#define CRL_KERNELS_PANELS_H

#include <math.h>
#include <stddef.h>

#ifndef PACK_IN
#define PACK_IN VW
#endif
_Static_assert(PACK_IN <= KC, "a packed layer's inputs must fit one chunk (simd_pack_size)");

/* The ReLU epilogue (relu != 0) is "v < 0 ? 0 : v" on the finished sum, as the tables' relu. */
static inline float relu_if(int relu, float v) {
    return relu && v < 0.0f ? 0.0f : v;
}

static void linear_fma_rows(const float *x, size_t rows, size_t in, const float *w, const float *b,
                            size_t out, float *y, int relu) {
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * in;
        size_t o = 0;
        /* Eight independent chains at a time: one chain alone would wait on FMA latency. */
        for (; o + 8 <= out; o += 8) {
            float acc[8];
            for (int j = 0; j < 8; j++)
                acc[j] = b ? b[o + (size_t)j] : 0.0f;
            for (size_t k = 0; k < in; k++) {
                float xk = xr[k];
                for (int j = 0; j < 8; j++)
                    acc[j] = fmaf(xk, w[(o + (size_t)j) * in + k], acc[j]);
            }
            for (int j = 0; j < 8; j++)
                y[r * out + o + (size_t)j] = relu_if(relu, acc[j]);
        }
        for (; o < out; o++) {
            const float *wo = w + o * in;
            float acc = b ? b[o] : 0.0f;
            for (size_t k = 0; k < in; k++)
                acc = fmaf(xr[k], wo[k], acc);
            y[r * out + o] = relu_if(relu, acc);
        }
    }
}

static void linear_panels(const float *x, size_t rows, size_t in, const float *w, const float *b,
                          size_t out, float *y, int relu) {
    float pk[KC * PANEL] __attribute__((aligned(PANEL_ALIGN)));
    for (size_t o0 = 0; o0 < out; o0 += PANEL) {
        size_t ow = out - o0 < PANEL ? out - o0 : PANEL;
        for (size_t k0 = 0; k0 < in; k0 += KC) {
            size_t kc = in - k0 < KC ? in - k0 : KC;
            /* pk[k][c] = w[o0 + c][k0 + k], zero past the last output. Written row by row:
             * contiguous stores, strided loads. */
            const float *wp = w + o0 * in + k0;
            for (size_t k = 0; k < kc; k++) {
                float *pr = pk + k * PANEL;
                size_t c = 0;
                for (; c < ow; c++)
                    pr[c] = wp[c * in + k];
                for (; c < PANEL; c++)
                    pr[c] = 0.0f;
            }
            const float *bo = b ? b + o0 : NULL;
            int first = k0 == 0, last = relu && k0 + kc == in; /* ReLU on the full sums */
            size_t r = 0;
            for (; r + RB <= rows; r += RB)
                block(RB, x + r * in + k0, in, pk, kc, bo, first, y + r * out + o0, out, ow, last);
            for (; r < rows; r++)
                block(1, x + r * in + k0, in, pk, kc, bo, first, y + r * out + o0, out, ow, last);
        }
    }
}

static void linear_run(const float *x, size_t rows, size_t in, const float *w, const float *b,
                       size_t out, float *y, int relu) {
    if (rows == 0 || out == 0) return;
    if (in == 0) { /* empty sums: the bias alone */
        for (size_t r = 0; r < rows; r++)
            for (size_t o = 0; o < out; o++)
                y[r * out + o] = relu_if(relu, b ? b[o] : 0.0f);
        return;
    }
    if (out >= VW && in < PACK_IN) {
        if (rows < PACK_MIN_ROWS)
            linear_fma_rows(x, rows, in, w, b, out, y, relu);
        else
            linear_panels(x, rows, in, w, b, out, y, relu);
    } else {
        linear_dot(x, rows, in, w, b, out, y, relu);
    }
}

static void simd_linear(const float *x, size_t rows, size_t in, const float *w, const float *b,
                        size_t out, float *y) {
    linear_run(x, rows, in, w, b, out, y, 0);
}

/* linear, then relu on y, in one pass: the ReLU is applied to each sum before it is stored. */
static void simd_linear_relu(const float *x, size_t rows, size_t in, const float *w, const float *b,
                             size_t out, float *y) {
    linear_run(x, rows, in, w, b, out, y, 1);
}

/* Packing pays for the "packed" shapes only; in < PACK_IN <= KC, so W is one chunk of inputs. */
static size_t simd_pack_size(size_t in, size_t out) {
    if (!(out >= VW && in < PACK_IN) || in == 0) return 0;
    return (out + PANEL - 1) / PANEL * in * PANEL;
}

/* Panel p is [in][PANEL]: packed[p][k][c] = w[p * PANEL + c][k], zero past the last output. The
 * same values linear_panels builds on its stack on every call. */
static void simd_pack(const float *w, size_t in, size_t out, float *packed) {
    for (size_t o0 = 0; o0 < out; o0 += PANEL) {
        float *pk = packed + o0 / PANEL * in * PANEL;
        size_t ow = out - o0 < PANEL ? out - o0 : PANEL;
        for (size_t k = 0; k < in; k++)
            for (size_t c = 0; c < PANEL; c++)
                pk[k * PANEL + c] = c < ow ? w[(o0 + c) * in + k] : 0.0f;
    }
}

/* linear for a W packed by simd_pack: block() on every row count, so the same bits as
 * linear_panels and linear_fma_rows. block() may use aligned loads: packed is 64-byte aligned
 * and every panel row is PANEL floats. */
static void linear_packed_run(const float *x, size_t rows, size_t in, const float *packed,
                              const float *b, size_t out, float *y, int relu) {
    if (rows == 0 || out == 0) return;
    for (size_t o0 = 0; o0 < out; o0 += PANEL) {
        const float *pk = packed + o0 / PANEL * in * PANEL;
        size_t ow = out - o0 < PANEL ? out - o0 : PANEL;
        const float *bo = b ? b + o0 : NULL;
        size_t r = 0;
        for (; r + RB <= rows; r += RB)
            block(RB, x + r * in, in, pk, in, bo, 1, y + r * out + o0, out, ow, relu);
        for (; r < rows; r++)
            block(1, x + r * in, in, pk, in, bo, 1, y + r * out + o0, out, ow, relu);
    }
}

static void simd_linear_packed(const float *x, size_t rows, size_t in, const float *packed,
                               const float *b, size_t out, float *y) {
    linear_packed_run(x, rows, in, packed, b, out, y, 0);
}

static void simd_linear_packed_relu(const float *x, size_t rows, size_t in, const float *packed,
                                    const float *b, size_t out, float *y) {
    linear_packed_run(x, rows, in, packed, b, out, y, 1);
}

#endif
