/* panels.h: the linear-layer drivers shared by the SIMD kernel tables (avx2/, avx512/, neon/).
 * Not a normal header: an ISA file includes it after defining VW (floats per vector), PANEL
 * (outputs per packed panel), NV (vectors per panel), KC (inputs per packed chunk), RB_FOR(nv)
 * (rows per register block for a panel of nv live vectors), RB_MAX (the largest), PACK_MIN_ROWS,
 * PANEL_ALIGN, and its own block(nr, nv, g, s, ...) (reading its inputs through blockio.h) and
 * linear_dot(), so the code below is compiled once per ISA with that ISA's flags and intrinsics
 * (STYLE.md: intrinsics stay in the ISA directories).
 */
#ifndef CRL_KERNELS_PANELS_H
#define CRL_KERNELS_PANELS_H

#include <math.h>
#include <stddef.h>

#include "kernels/blockio.h"

/* The ReLU epilogue (relu != 0) is "v < 0 ? 0 : v" on the finished sum, as the tables' relu. */
static inline float relu_if(int relu, float v) {
    return relu && v < 0.0f ? 0.0f : v;
}

/* Where each output's sum splits into two chains of fused multiply-adds (0: one chain). A table
 * that defines SPLIT_MIN computes, for SPLIT_MIN <= in <= 2 * KC, y = A + B with A the chain over
 * inputs [0, h) from the bias and B the chain over [h, in) from +0, h = in / 2: at one row the two
 * chains run side by side (block1_split), twice the FMAs in flight. Each chain fits one packed
 * chunk, so linear_panels computes the same sums. The split depends on `in` only: batch
 * invariance holds. */
static inline size_t split_at(size_t in) {
#ifdef SPLIT_MIN
    return in >= SPLIT_MIN && in <= 2 * (size_t)KC ? in / 2 : 0;
#else
    (void)in;
    return 0;
#endif
}

/* One chain: acc from `start`, fused multiply-adds over inputs [k0, k1) in order. */
static inline float fma_chain(const float *xr, const float *wo, size_t k0, size_t k1, float acc) {
    for (size_t k = k0; k < k1; k++)
        acc = fmaf(xr[k], wo[k], acc);
    return acc;
}

static void linear_fma_rows(const float *x, size_t rows, size_t in, const float *w, const float *b,
                            size_t out, float *y, int relu) {
    size_t h = split_at(in);
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * in;
        size_t o = 0;
        /* Eight independent chains at a time: one chain alone would wait on FMA latency. */
        for (; !h && o + 8 <= out; o += 8) {
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
            float acc = fma_chain(xr, wo, 0, h ? h : in, b ? b[o] : 0.0f);
            if (h) acc = acc + fma_chain(xr, wo, h, in, 0.0f);
            y[r * out + o] = relu_if(relu, acc);
        }
    }
}

/* Rows [r, r + nr) through block() over one panel of ow outputs, nv live vectors. h == 0: one
 * block(mode) over the kc inputs of pk. h > 0 (a split, pk holding all `in` inputs): chain A over
 * [0, h) then chain B over [h, in) added to it; a single row runs both side by side where the table
 * has block1_split. */
static inline __attribute__((always_inline)) void
rows_block(int nr, int nv, int g, xsrc s, size_t r, size_t in, const float *pk, size_t kc, size_t h,
           const float *b, block_mode mode, float *y, size_t out, size_t ow, int relu) {
    xsrc sr = xs_row(g, s, r);
    y += r * out;
    if (h == 0) {
        block(nr, nv, g, sr, pk, kc, b, mode, y, out, ow, relu);
        return;
    }
#ifdef SPLIT_MIN
    if (nr == 1) {
        block1_split(nv, g, sr, in, pk, h, b, y, ow, relu);
        return;
    }
#endif
    block(nr, nv, g, sr, pk, h, b, MODE_FIRST, y, out, ow, 0);
    block(nr, nv, g, xs_col(g, sr, h), pk + h * PANEL, in - h, NULL, MODE_ADD, y, out, ow, relu);
}

/* Every row through rows_block, RB_FOR(nv) rows at a time, and the last few in blocks of half that,
 * then of 2 and then 1 (one row alone keeps too few chains in flight to feed the FMA units; a
 * batch of 64 left 4 such rows per panel). block() gives a row the same bits whatever the block
 * size, so the blocking never shows in the results. */
static inline __attribute__((always_inline)) void
panel_rows(int nv, int g, xsrc s, size_t rows, size_t in, const float *pk, size_t kc, size_t h,
           const float *b, block_mode mode, float *y, size_t out, size_t ow, int relu) {
    const int RB = RB_FOR(nv), HALF = RB_FOR(nv) / 2; /* constants after inlining */
    size_t r = 0;
    for (; r + RB <= rows; r += RB)
        rows_block(RB, nv, g, s, r, in, pk, kc, h, b, mode, y, out, ow, relu);
    if (HALF > 2 && r + HALF <= rows) {
        rows_block(HALF, nv, g, s, r, in, pk, kc, h, b, mode, y, out, ow, relu);
        r += HALF;
    }
    for (; r + 2 <= rows; r += 2)
        rows_block(2, nv, g, s, r, in, pk, kc, h, b, mode, y, out, ow, relu);
    if (r < rows) rows_block(1, nv, g, s, r, in, pk, kc, h, b, mode, y, out, ow, relu);
}

/* panel_rows for the panel's live vectors, nv = ceil(ow / VW). */
static inline __attribute__((always_inline)) void
panel_nv(int g, xsrc s, size_t rows, size_t in, const float *pk, size_t kc, size_t h,
         const float *b, block_mode mode, float *y, size_t out, size_t ow, int relu) {
    switch ((ow + VW - 1) / VW) {
    case 1:
        panel_rows(1, g, s, rows, in, pk, kc, h, b, mode, y, out, ow, relu);
        break;
#if NV >= 3
    case 2:
        panel_rows(2, g, s, rows, in, pk, kc, h, b, mode, y, out, ow, relu);
        break;
#endif
#if NV >= 4
    case 3:
        panel_rows(3, g, s, rows, in, pk, kc, h, b, mode, y, out, ow, relu);
        break;
#endif
    default:
        panel_rows(NV, g, s, rows, in, pk, kc, h, b, mode, y, out, ow, relu);
        break;
    }
}

/* One panel over the rows of the matrix x. */
static void panel_run(const float *x, size_t rows, size_t in, const float *pk, size_t kc, size_t h,
                      const float *b, block_mode mode, float *y, size_t out, size_t ow, int relu) {
    xsrc s = {x, in, NULL, NULL};
    panel_nv(0, s, rows, in, pk, kc, h, b, mode, y, out, ow, relu);
}

/* One panel over gathered rows (blockio.h), a packed panel of all `in` inputs. */
static void panel_run_gather(const float *const *xr, const int32_t *off, size_t rows, size_t in,
                             const float *pk, size_t h, const float *b, float *y, size_t out,
                             size_t ow, int relu) {
    xsrc s = {NULL, 0, xr, off};
    panel_nv(1, s, rows, in, pk, in, h, b, MODE_FIRST, y, out, ow, relu);
}

/* pk[k][c] = w[o0 + c][k0 + k] for k < kc, zero past the last output (ow of them). Written row
 * by row: contiguous stores, strided loads. */
static void pack_chunk(const float *w, size_t in, size_t o0, size_t ow, size_t k0, size_t kc,
                       float *pk) {
    const float *wp = w + o0 * in + k0;
    for (size_t k = 0; k < kc; k++) {
        float *pr = pk + k * PANEL;
        size_t c = 0;
        for (; c < ow; c++)
            pr[c] = wp[c * in + k];
        for (; c < PANEL; c++)
            pr[c] = 0.0f;
    }
}

static void linear_panels(const float *x, size_t rows, size_t in, const float *w, const float *b,
                          size_t out, float *y, int relu) {
    float pk[KC * PANEL] __attribute__((aligned(PANEL_ALIGN)));
    size_t h = split_at(in);
    for (size_t o0 = 0; o0 < out; o0 += PANEL) {
        size_t ow = out - o0 < PANEL ? out - o0 : PANEL;
        const float *bo = b ? b + o0 : NULL;
        if (h) { /* each chain is one chunk: A for every row, then B added */
            pack_chunk(w, in, o0, ow, 0, h, pk);
            panel_run(x, rows, in, pk, h, 0, bo, MODE_FIRST, y + o0, out, ow, 0);
            pack_chunk(w, in, o0, ow, h, in - h, pk);
            panel_run(x + h, rows, in, pk, in - h, 0, NULL, MODE_ADD, y + o0, out, ow, relu);
            continue;
        }
        for (size_t k0 = 0; k0 < in; k0 += KC) {
            size_t kc = in - k0 < KC ? in - k0 : KC;
            pack_chunk(w, in, o0, ow, k0, kc, pk);
            int last = relu && k0 + kc == in; /* ReLU on the full sums */
            panel_run(x + k0, rows, in, pk, kc, 0, bo, k0 == 0 ? MODE_FIRST : MODE_CONT, y + o0,
                      out, ow, last);
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
    if (out >= VW) {
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

/* Packing pays for the "packed" shapes (out >= VW) only. A packed panel holds all `in` inputs, so
 * linear_packed runs one chunk where linear_panels runs KC-input chunks that continue the same
 * sums through y: the same FMAs in the same order. */
static size_t simd_pack_size(size_t in, size_t out) {
    if (out < VW || in == 0) return 0;
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
        panel_run(x, rows, in, pk, in, split_at(in), bo, MODE_FIRST, y + o0, out, ow, relu);
    }
}

/* linear_packed over the rows xr[r][off[0..in)] (kernels.h): the same panels, blocks and chains,
 * so the bits linear_packed gives for the matrix of those rows. */
static void simd_linear_packed_gather(const float *const *xr, size_t rows, const int32_t *off,
                                      size_t in, const float *packed, const float *b, size_t out,
                                      float *y, int relu) {
    if (rows == 0 || out == 0) return;
    for (size_t o0 = 0; o0 < out; o0 += PANEL) {
        const float *pk = packed + o0 / PANEL * in * PANEL;
        size_t ow = out - o0 < PANEL ? out - o0 : PANEL;
        panel_run_gather(xr, off, rows, in, pk, split_at(in), b ? b + o0 : NULL, y + o0, out, ow,
                         relu);
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

/* The table entries this header gives, for the ISA file's table initializer. */
#define PANEL_ENTRIES                                                                              \
    .linear = simd_linear, .linear_relu = simd_linear_relu, .pack_size = simd_pack_size,           \
    .pack = simd_pack, .linear_packed = simd_linear_packed,                                        \
    .linear_packed_relu = simd_linear_packed_relu,                                                 \
    .linear_packed_gather = simd_linear_packed_gather

#endif
