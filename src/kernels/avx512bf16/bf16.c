/* bf16.c: bfloat16 weights with float32 accumulation for the "avx512" table, on CPUs with
 * AVX512_BF16 (vdpbf16ps). Built only for x86_64, with -mavx512bf16 on this file alone; kernels.c
 * hands out the table that holds these functions only when the CPU and OS support AVX-512 F, BW,
 * VL, DQ, FMA and BF16 (kernels.h: the two variants of the avx512 table).
 *
 * The scheme is oneDNN's "bf16 weights, f32 accumulation": vdpbf16ps multiplies bf16 by bf16, so
 * the activations are rounded to bf16 too (round to nearest even, as the weights), 32 floats of
 * a row at a time with vcvtne2ps2bf16; each product of two bf16 values is exact in f32 and the
 * sums are f32. So the error against float32 is that of rounding both operands to 8 significant
 * bits (relative 2^-9 per operand), not that of a bf16 accumulator. The instruction treats
 * subnormal inputs as zero and flushes subnormal results (it ignores MXCSR).
 *
 * Packing (once, at load): outputs in panels of up to 64 (the last one rounded up to a multiple
 * of 16 outputs), inputs in pairs: panel[k][c][j] = bf16(w[o0 + c][2k + j]), so one 64-byte load
 * is 16 outputs x 2 inputs, the layout vdpbf16ps reads against a broadcast (x[2k], x[2k+1]) pair.
 * An odd last input and the outputs past `out` are zeros (and the matching x lanes are loaded as
 * zeros), so odd tails need no special case.
 *
 * A block of up to 6 rows x 64 outputs keeps 24 accumulators in registers over all the inputs;
 * each row is the same arithmetic in the same order whatever the number of rows (batch
 * invariance, as in avx512.c), and the bias is the accumulators' starting value. */
#include "kernels/avx512bf16/bf16.h"

#include <immintrin.h>
#include <string.h>

#define VW 16           /* floats per vector */
#define NV 4            /* vectors per panel */
#define RB 6            /* rows per register block */
#define PANEL (NV * VW) /* outputs per panel */
#define KCH 16          /* input pairs per activation chunk: 32 floats, one conversion per row */

static inline __mmask16 mask16(size_t n) {
    return n >= VW ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1u);
}

/* Round to nearest even; a NaN stays a (quiet) NaN. The same rounding as vcvtne2ps2bf16 on
 * normal numbers. */
static uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* Outputs in the panel starting at o0, rounded up to whole vectors. */
static size_t panel_width(size_t out, size_t o0) {
    size_t ow = out - o0 < PANEL ? out - o0 : PANEL;
    return (ow + VW - 1) / VW * VW;
}

size_t crl_kernels__bf16_pack_size(size_t in, size_t out) {
    if (in == 0 || out == 0) return 0;
    return (in + 1) / 2 * 2 * ((out + VW - 1) / VW * VW);
}

/* Panel p starts at p * PANEL * kp * 2 (every panel before the last is full). */
void crl_kernels__bf16_pack(const float *w, size_t in, size_t out, uint16_t *packed) {
    size_t kp = (in + 1) / 2;
    for (size_t o0 = 0; o0 < out; o0 += PANEL) {
        size_t pw = panel_width(out, o0);
        uint16_t *pk = packed + o0 * kp * 2;
        for (size_t k = 0; k < kp; k++)
            for (size_t c = 0; c < pw; c++)
                for (size_t j = 0; j < 2; j++) {
                    size_t o = o0 + c, i = 2 * k + j;
                    pk[(k * pw + c) * 2 + j] = o < out && i < in ? to_bf16(w[o * in + i]) : 0;
                }
    }
}

/* "v < 0 ? 0 : v" lane by lane, as the table's relu (NaN and -0 pass). */
static inline __m512 relu_vec(__m512 v) {
    return _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ),
                              _mm512_setzero_ps());
}

/* nr rows (RB or 1) x nv vectors of outputs (1..NV), constants after inlining, over all kp input
 * pairs of the panel pk; ow <= nv * VW outputs are stored. */
static inline __attribute__((always_inline)) void block(int nr, int nv, const float *x, size_t in,
                                                        const uint16_t *pk, size_t kp,
                                                        const float *b, float *y, size_t out,
                                                        size_t ow, int relu) {
    __m512 acc[RB][NV];
    __mmask16 m[NV];
    uint32_t xb[RB][KCH] __attribute__((aligned(64))); /* bf16 pairs of each row's chunk */
    const size_t pw = (size_t)nv * VW;
    for (int v = 0; v < nv; v++)
        m[v] = mask16(ow - (size_t)v * VW);
    for (int r = 0; r < nr; r++)
        for (int v = 0; v < nv; v++)
            acc[r][v] = b ? _mm512_maskz_loadu_ps(m[v], b + (size_t)v * VW) : _mm512_setzero_ps();
    for (size_t k0 = 0; k0 < kp; k0 += KCH) {
        size_t kc = kp - k0 < KCH ? kp - k0 : KCH;
        size_t f0 = 2 * k0, nf = in - f0 < 2 * KCH ? in - f0 : 2 * KCH;
        __mmask16 mlo = mask16(nf), mhi = nf > VW ? mask16(nf - VW) : 0;
        for (int r = 0; r < nr; r++) {
            const float *xr = x + (size_t)r * in + f0;
            __m512 lo = _mm512_maskz_loadu_ps(mlo, xr), hi = _mm512_maskz_loadu_ps(mhi, xr + VW);
            _mm512_store_si512((void *)xb[r], (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
        }
        for (size_t k = 0; k < kc; k++) {
            const uint16_t *wk = pk + (k0 + k) * pw * 2;
            __m512bh wv[NV];
            for (int v = 0; v < nv; v++)
                wv[v] = (__m512bh)_mm512_load_si512((const void *)(wk + (size_t)v * 2 * VW));
            for (int r = 0; r < nr; r++) {
                __m512bh xv = (__m512bh)_mm512_set1_epi32((int)xb[r][k]);
                for (int v = 0; v < nv; v++)
                    acc[r][v] = _mm512_dpbf16_ps(acc[r][v], xv, wv[v]);
            }
        }
    }
    for (int r = 0; r < nr; r++)
        for (int v = 0; v < nv; v++)
            _mm512_mask_storeu_ps(y + (size_t)r * out + (size_t)v * VW, m[v],
                                  relu ? relu_vec(acc[r][v]) : acc[r][v]);
}

static inline __attribute__((always_inline)) void panel_rows(int nv, const float *x, size_t rows,
                                                             size_t in, const uint16_t *pk,
                                                             size_t kp, const float *b, float *y,
                                                             size_t out, size_t ow, int relu) {
    size_t r = 0;
    for (; r + RB <= rows; r += RB)
        block(RB, nv, x + r * in, in, pk, kp, b, y + r * out, out, ow, relu);
    for (; r < rows; r++)
        block(1, nv, x + r * in, in, pk, kp, b, y + r * out, out, ow, relu);
}

static void linear_run(const float *x, size_t rows, size_t in, const uint16_t *packed,
                       const float *b, size_t out, float *y, int relu) {
    if (rows == 0 || out == 0) return;
    if (in == 0) { /* nothing was packed (pack_size 0): the bias alone */
        for (size_t r = 0; r < rows; r++)
            for (size_t o = 0; o < out; o++) {
                float v = b ? b[o] : 0.0f;
                y[r * out + o] = relu && v < 0.0f ? 0.0f : v;
            }
        return;
    }
    size_t kp = (in + 1) / 2;
    for (size_t o0 = 0; o0 < out; o0 += PANEL) {
        size_t ow = out - o0 < PANEL ? out - o0 : PANEL;
        const uint16_t *pk = packed + o0 * kp * 2;
        const float *bo = b ? b + o0 : NULL;
        float *yo = y + o0;
        switch ((ow + VW - 1) / VW) {
        case 4:
            panel_rows(4, x, rows, in, pk, kp, bo, yo, out, ow, relu);
            break;
        case 3:
            panel_rows(3, x, rows, in, pk, kp, bo, yo, out, ow, relu);
            break;
        case 2:
            panel_rows(2, x, rows, in, pk, kp, bo, yo, out, ow, relu);
            break;
        default:
            panel_rows(1, x, rows, in, pk, kp, bo, yo, out, ow, relu);
            break;
        }
    }
}

void crl_kernels__bf16_linear_packed(const float *x, size_t rows, size_t in, const uint16_t *packed,
                                     const float *b, size_t out, float *y) {
    linear_run(x, rows, in, packed, b, out, y, 0);
}

void crl_kernels__bf16_linear_packed_relu(const float *x, size_t rows, size_t in,
                                          const uint16_t *packed, const float *b, size_t out,
                                          float *y) {
    linear_run(x, rows, in, packed, b, out, y, 1);
}
