/* avx512.c: the "avx512" kernel table (AVX-512 F/BW/VL/DQ + FMA, 16 floats per vector). Built only
 * for x86_64, with these flags on this file alone; kernels.c calls crl_kernels_avx512() only when
 * the CPU and OS support all of them (crl_kernels_isas_for).
 *
 * linear has two paths, chosen by the shape alone:
 *  - "packed" (out >= 16, any in): W transposed into panels of up to 64 outputs, [in][64] (once,
 *    at load, for the graph's layers: pack / linear_packed; on every call, KC inputs at a time
 *    into a stack buffer, for a plain linear). A register block of RB_FOR(nv) rows x nv vectors
 *    (nv = the panel's live vectors, 4 for a full panel: 6 rows x 64 outputs, 24 accumulators)
 *    does y[r][o..] += x[r][k] * Wt[k][o..] with x[r][k] broadcast, k in input order: each output
 *    is one chain of fused multiply-adds from the bias, with no horizontal sums. This is the
 *    BLAS-style GEMM order, fast at every batch size; at batch 1 a full panel keeps 4 chains in
 *    flight. Below PACK_MIN_ROWS rows an unpacked W runs the same chains through linear_fma_rows.
 *  - "dot" (out < 16, e.g. a 64->3 head): 16 dot products at a time along the inputs, summed
 *    horizontally by one transposing reduction tree; (row, output) pairs are gathered across rows
 *    into groups of 16, so a 64->3 layer at batch 1000 still fills the vector; a last group of
 *    SMALL_GROUP pairs or fewer is done one dot product at a time.
 * Results differ from generic only by float reassociation (the tests bound it).
 *
 * Batch invariance: a row's outputs are the same bits whatever the number of rows, because the
 * dynamic batcher runs rows of unrelated requests together and a request's answer must not depend
 * on its neighbours. So the path depends on the shape only, never on rows; a block of any size
 * gives each row the same chains, and every dot product of the dot path (dot16_row, dot16_pairs,
 * dot1) uses the same FMA order and addition tree. linear_packed gives linear's bits for any
 * number of rows (the KC chunks of the unpacked path continue each chain through y).
 *
 * relu, clip, add_row and scale are bit-identical to generic. tanh uses SLEEF's 3.5-ulp vector
 * function (Sleef_tanhf16_u35avx512f: about 7 ns per vector against 21 ns for the 1-ulp one,
 * which was a quarter of the example MLP's batch-1 time; it stays within 1.8e-7 of libm), and
 * sigmoid SLEEF's 1-ulp exp (Sleef_expf16_u10avx512f): both within 2e-7 of the libm
 * versions for |x| <= 20 (tests/unit/test_kernels_isa.c), a NaN input comes back as that same
 * NaN, and +-0, +-inf give what libm gives (tanh: +-0, +-1; sigmoid: 0.5, 1, 0). */
#include <immintrin.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include <sleef.h>

#include "kernels/avx512bf16/bf16.h"
#include "kernels/kernels.h"

#define VW 16 /* floats per vector */
#define NV 4  /* vectors per packed panel: 64 outputs */
/* Rows per register block for a panel of nv live vectors (fewer outputs, more rows: up to 24
 * accumulators), and the most of them. */
#define RB_FOR(nv) ((nv) >= 4 ? 6 : (nv) == 3 ? 8 : 12)
#define RB_MAX 12
#define PANEL (NV * VW) /* outputs per packed panel */
#define PACK_FLOATS 8192
#define KC (PACK_FLOATS / PANEL) /* inputs per packed chunk */
/* Layers with SPLIT_MIN to 2 * KC inputs sum in two chains (panels.h, split_at). */
#define SPLIT_MIN 32
/* Below this many rows the packed path skips the packing (linear_fma_rows; measured). */
#define PACK_MIN_ROWS 4
#define PANEL_ALIGN 64 /* the stack panel of linear_panels */
/* A last group of this many pairs or fewer is done one dot product at a time. */
#define SMALL_GROUP 4

static inline __mmask16 tail_mask(size_t n) {
    return (__mmask16)((1u << n) - 1u);
}

/* acc[j] holds partial sums of dot product j; returns the vector whose lane j is the full sum of
 * acc[j]. Each step halves the vectors and the lanes per vector: 16 -> 8 -> 4 -> 2 -> 1. */
static inline __m512 reduce16(const __m512 acc[16]) {
    __m512 s1[8], s2[4], s3[2];
    /* The tree below leaves in lane 4*L + k the sum of its input 4*k + L, and treats every input
     * alike, so feeding it acc[4*L + k] as input 4*k + L puts acc[j]'s sum in lane j without a
     * final permute: the same additions, so the same bits. */
    for (int j = 0; j < 8; j++) {
        int i0 = 2 * j, i1 = 2 * j + 1;
        __m512 a = acc[i0 % 4 * 4 + i0 / 4], b = acc[i1 % 4 * 4 + i1 / 4];
        /* 128-bit lanes: [a0 a1 b0 b1] + [a2 a3 b2 b3] */
        s1[j] = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(1, 0, 1, 0)),
                              _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(3, 2, 3, 2)));
    }
    for (int j = 0; j < 4; j++) {
        __m512 a = s1[2 * j], b = s1[2 * j + 1];
        s2[j] = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(2, 0, 2, 0)),
                              _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(3, 1, 3, 1)));
    }
    for (int j = 0; j < 2; j++) {
        __m512 a = s2[2 * j], b = s2[2 * j + 1];
        s3[j] = _mm512_add_ps(_mm512_shuffle_ps(a, b, _MM_SHUFFLE(1, 0, 1, 0)),
                              _mm512_shuffle_ps(a, b, _MM_SHUFFLE(3, 2, 3, 2)));
    }
    return _mm512_add_ps(_mm512_shuffle_ps(s3[0], s3[1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_ps(s3[0], s3[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

/* 16 dot products of one input row x with 16 consecutive weight rows w[0..15] (stride in).
 * Always inlined: GCC's heuristics sometimes make it a call, which measured about 30% slower. */
static inline __attribute__((always_inline)) __m512 dot16_row(const float *x, const float *w,
                                                              size_t in) {
    __m512 acc[16];
    for (int j = 0; j < 16; j++)
        acc[j] = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + VW <= in; i += VW) {
        __m512 xv = _mm512_loadu_ps(x + i);
        for (int j = 0; j < 16; j++)
            acc[j] = _mm512_fmadd_ps(xv, _mm512_loadu_ps(w + (size_t)j * in + i), acc[j]);
    }
    if (i < in) {
        __mmask16 m = tail_mask(in - i);
        __m512 xv = _mm512_maskz_loadu_ps(m, x + i);
        for (int j = 0; j < 16; j++)
            acc[j] = _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(m, w + (size_t)j * in + i), acc[j]);
    }
    return reduce16(acc);
}

/* 16 dot products of arbitrary (x row, w row) pairs. */
static __m512 dot16_pairs(const float *const xp[16], const float *const wp[16], size_t in) {
    __m512 acc[16];
    for (int j = 0; j < 16; j++)
        acc[j] = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + VW <= in; i += VW)
        for (int j = 0; j < 16; j++)
            acc[j] =
                _mm512_fmadd_ps(_mm512_loadu_ps(xp[j] + i), _mm512_loadu_ps(wp[j] + i), acc[j]);
    if (i < in) {
        __mmask16 m = tail_mask(in - i);
        for (int j = 0; j < 16; j++)
            acc[j] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, xp[j] + i),
                                     _mm512_maskz_loadu_ps(m, wp[j] + i), acc[j]);
    }
    return reduce16(acc);
}

/* One dot product, for the last few (row, output) pairs when a group of 16 would be mostly
 * wasted work (e.g. the 3 outputs of a 64->3 layer at batch 1). It must give the bits one slot of
 * dot16_pairs gives (see "batch invariance" above): one accumulator, the same FMA order, and
 * reduce16's addition tree for one vector. */
static inline __attribute__((always_inline)) float dot1(const float *x, const float *w, size_t in) {
    __m512 acc = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + VW <= in; i += VW)
        acc = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(w + i), acc);
    if (i < in) {
        __mmask16 m = tail_mask(in - i);
        acc =
            _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, w + i), acc);
    }
    /* 128-bit quarters q0..q3: e = (q0 + q2) + (q1 + q3), then (e0 + e2) + (e1 + e3). */
    __m128 e =
        _mm_add_ps(_mm_add_ps(_mm512_extractf32x4_ps(acc, 0), _mm512_extractf32x4_ps(acc, 2)),
                   _mm_add_ps(_mm512_extractf32x4_ps(acc, 1), _mm512_extractf32x4_ps(acc, 3)));
    __m128 f = _mm_add_ps(e, _mm_movehl_ps(e, e));
    return _mm_cvtss_f32(_mm_add_ss(f, _mm_shuffle_ps(f, f, _MM_SHUFFLE(1, 1, 1, 1))));
}

/* "v < 0 ? 0 : v" lane by lane, as avx512_relu (an ordered less-than: NaN and -0 pass). */
static inline __m512 relu_vec(__m512 v) {
    return _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ),
                              _mm512_setzero_ps());
}

static inline float relu1(int relu, float v) {
    return relu && v < 0.0f ? 0.0f : v;
}

static void linear_dot(const float *x, size_t rows, size_t in, const float *w, const float *b,
                       size_t out, float *y, int relu) {
    size_t full = out - out % 16; /* outputs covered by whole groups of 16, per row */
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * in;
        float *yr = y + r * out;
        for (size_t o = 0; o < full; o += 16) {
            __m512 s = dot16_row(xr, w + o * in, in);
            if (b) s = _mm512_add_ps(s, _mm512_loadu_ps(b + o));
            if (relu) s = relu_vec(s);
            _mm512_storeu_ps(yr + o, s);
        }
    }
    if (full == out) return;
    /* The remaining outputs of every row, taken 16 (row, output) pairs at a time. Unused slots of
     * the last group repeat the first pair; their sums are discarded. */
    const float *xp[16], *wp[16];
    float *yp[16];
    const float *bp[16];
    float sums[16];
    int n = 0;
    for (size_t r = 0; r < rows; r++) {
        for (size_t o = full; o < out; o++) {
            xp[n] = x + r * in;
            wp[n] = w + o * in;
            yp[n] = y + r * out + o;
            bp[n] = b ? b + o : NULL;
            if (++n == 16 || (r + 1 == rows && o + 1 == out)) {
                if (n <= SMALL_GROUP) {
                    for (int j = 0; j < n; j++) {
                        float d = dot1(xp[j], wp[j], in);
                        *yp[j] = relu1(relu, bp[j] ? d + *bp[j] : d);
                    }
                    n = 0;
                    continue;
                }
                for (int j = n; j < 16; j++) {
                    xp[j] = xp[0];
                    wp[j] = wp[0];
                }
                _mm512_storeu_ps(sums, dot16_pairs(xp, wp, in));
                for (int j = 0; j < n; j++)
                    *yp[j] = relu1(relu, bp[j] ? sums[j] + *bp[j] : sums[j]);
                n = 0;
            }
        }
    }
}

/* One register block: nr (RB_FOR(nv) or 1) rows x nv vectors of outputs (both constants after
 * inlining; the panel's vectors past ow are not computed) over kc inputs
 * of the packed panel pk ([kc][PANEL]). The accumulators start from the bias (first chunk) or from
 * y (later chunks); ow <= PANEL outputs are stored. */
static inline __attribute__((always_inline)) void block(int nr, int nv, const float *x, size_t in,
                                                        const float *pk, size_t kc, const float *b,
                                                        int first, float *y, size_t out, size_t ow,
                                                        int relu) {
    __m512 acc[RB_MAX][NV];
    __mmask16 m[NV];
    for (int v = 0; v < nv; v++) {
        size_t c = (size_t)v * VW;
        m[v] = c >= ow ? 0 : (ow - c >= VW ? (__mmask16)0xffff : tail_mask(ow - c));
    }
    for (int r = 0; r < nr; r++)
        for (int v = 0; v < nv; v++) {
            if (!first)
                acc[r][v] = _mm512_maskz_loadu_ps(m[v], y + (size_t)r * out + (size_t)v * VW);
            else if (b)
                acc[r][v] = _mm512_maskz_loadu_ps(m[v], b + (size_t)v * VW);
            else
                acc[r][v] = _mm512_setzero_ps();
        }
    for (size_t k = 0; k < kc; k++) {
        __m512 wv[NV];
        for (int v = 0; v < nv; v++)
            wv[v] = _mm512_loadu_ps(pk + k * PANEL + (size_t)v * VW);
        for (int r = 0; r < nr; r++) {
            __m512 xv = _mm512_set1_ps(x[(size_t)r * in + k]);
            for (int v = 0; v < nv; v++)
                acc[r][v] = _mm512_fmadd_ps(xv, wv[v], acc[r][v]);
        }
    }
    for (int r = 0; r < nr; r++)
        for (int v = 0; v < nv; v++)
            _mm512_mask_storeu_ps(y + (size_t)r * out + (size_t)v * VW, m[v],
                                  relu ? relu_vec(acc[r][v]) : acc[r][v]);
}

/* One row, a split sum (panels.h, split_at): chain A over inputs [0, h) from the bias and chain B
 * over [h, in) from +0 run side by side (2 nv independent accumulators), then y = A + B, exactly
 * as block() for A, block() for B and their sum in panel_rows. */
static inline __attribute__((always_inline)) void block1_split(int nv, const float *x, size_t in,
                                                               const float *pk, size_t h,
                                                               const float *b, float *y, size_t ow,
                                                               int relu) {
    __m512 a[NV], c[NV];
    __mmask16 m[NV];
    for (int v = 0; v < nv; v++) {
        size_t o = (size_t)v * VW;
        m[v] = o >= ow ? 0 : (ow - o >= VW ? (__mmask16)0xffff : tail_mask(ow - o));
        a[v] = b ? _mm512_maskz_loadu_ps(m[v], b + o) : _mm512_setzero_ps();
        c[v] = _mm512_setzero_ps();
    }
    const float *pb = pk + h * PANEL;
    for (size_t k = 0; k < h; k++) {
        __m512 xa = _mm512_set1_ps(x[k]), xb = _mm512_set1_ps(x[h + k]);
        for (int v = 0; v < nv; v++) {
            a[v] = _mm512_fmadd_ps(xa, _mm512_loadu_ps(pk + k * PANEL + (size_t)v * VW), a[v]);
            c[v] = _mm512_fmadd_ps(xb, _mm512_loadu_ps(pb + k * PANEL + (size_t)v * VW), c[v]);
        }
    }
    if (in - h > h) { /* B's last input (in odd) */
        __m512 xb = _mm512_set1_ps(x[in - 1]);
        for (int v = 0; v < nv; v++)
            c[v] = _mm512_fmadd_ps(xb, _mm512_loadu_ps(pb + h * PANEL + (size_t)v * VW), c[v]);
    }
    for (int v = 0; v < nv; v++) {
        __m512 s = _mm512_add_ps(a[v], c[v]);
        _mm512_mask_storeu_ps(y + (size_t)v * VW, m[v], relu ? relu_vec(s) : s);
    }
}

/* The packed path's arithmetic without the packing, for a few rows (packing W would cost more
 * than the rows themselves): per output, start from the bias (or +0) and add x[k] * w[o][k] with
 * one fused multiply-add per k in input order, exactly as block() does in each lane, so the
 * result has the same bits (batch invariance). */
#include "kernels/panels.h"

static void avx512_relu(float *x, size_t n) {
    const __m512 zero = _mm512_setzero_ps();
    for (size_t i = 0; i < n; i += VW) {
        __mmask16 m = n - i >= VW ? (__mmask16)0xffff : tail_mask(n - i);
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        v = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, zero, _CMP_LT_OQ), zero);
        _mm512_mask_storeu_ps(x + i, m, v);
    }
}

/* A NaN input is returned as is (its payload too), as libm does, rather than SLEEF's own NaN. */
static inline __m512 keep_nan(__m512 v, __m512 r) {
    return _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), v);
}

static void avx512_tanh(float *x, size_t n) {
    for (size_t i = 0; i < n; i += VW) {
        __mmask16 m = n - i >= VW ? (__mmask16)0xffff : tail_mask(n - i);
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        _mm512_mask_storeu_ps(x + i, m, keep_nan(v, Sleef_tanhf16_u35avx512f(v)));
    }
}

/* exp and erf: SLEEF's 1-ulp functions, a NaN input returned as is. */
static void avx512_exp(float *x, size_t n) {
    for (size_t i = 0; i < n; i += VW) {
        __mmask16 m = n - i >= VW ? (__mmask16)0xffff : tail_mask(n - i);
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        _mm512_mask_storeu_ps(x + i, m, keep_nan(v, Sleef_expf16_u10avx512f(v)));
    }
}

static void avx512_erf(float *x, size_t n) {
    for (size_t i = 0; i < n; i += VW) {
        __mmask16 m = n - i >= VW ? (__mmask16)0xffff : tail_mask(n - i);
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        _mm512_mask_storeu_ps(x + i, m, keep_nan(v, Sleef_erff16_u10avx512f(v)));
    }
}

/* generic's formula, lane by lane: e = exp(-|v|) never overflows; v >= 0 gives 1 / (1 + e),
 * v < 0 gives e / (1 + e). */
static void avx512_sigmoid(float *x, size_t n) {
    const __m512 one = _mm512_set1_ps(1.0f), zero = _mm512_setzero_ps();
    const __m512 sign = _mm512_set1_ps(-0.0f);
    for (size_t i = 0; i < n; i += VW) {
        __mmask16 m = n - i >= VW ? (__mmask16)0xffff : tail_mask(n - i);
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        __m512 e = Sleef_expf16_u10avx512f(_mm512_or_ps(v, sign));
        __m512 num = _mm512_mask_mov_ps(e, _mm512_cmp_ps_mask(v, zero, _CMP_GE_OQ), one);
        __m512 r = _mm512_div_ps(num, _mm512_add_ps(one, e));
        _mm512_mask_storeu_ps(x + i, m, keep_nan(v, r));
    }
}

/* v < lo ? lo : (v > hi ? hi : v), with the same precedence when lo > hi and NaN passing. */
static void avx512_clip(float *x, size_t n, float lo, float hi) {
    const __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
    for (size_t i = 0; i < n; i += VW) {
        __mmask16 m = n - i >= VW ? (__mmask16)0xffff : tail_mask(n - i);
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        __m512 t = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, vhi, _CMP_GT_OQ), vhi);
        t = _mm512_mask_mov_ps(t, _mm512_cmp_ps_mask(v, vlo, _CMP_LT_OQ), vlo);
        _mm512_mask_storeu_ps(x + i, m, t);
    }
}

static void avx512_add_row(float *x, size_t rows, size_t cols, const float *b) {
    for (size_t r = 0; r < rows; r++) {
        float *xr = x + r * cols;
        for (size_t c = 0; c < cols; c += VW) {
            __mmask16 m = cols - c >= VW ? (__mmask16)0xffff : tail_mask(cols - c);
            __m512 v =
                _mm512_add_ps(_mm512_maskz_loadu_ps(m, xr + c), _mm512_maskz_loadu_ps(m, b + c));
            _mm512_mask_storeu_ps(xr + c, m, v);
        }
    }
}

static void avx512_scale(float *x, size_t n, float alpha) {
    const __m512 a = _mm512_set1_ps(alpha);
    for (size_t i = 0; i < n; i += VW) {
        __mmask16 m = n - i >= VW ? (__mmask16)0xffff : tail_mask(n - i);
        _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), a));
    }
}

/* The float32 entries, shared by both variants of the table. */
#define AVX512_F32_ENTRIES                                                                         \
    .name = "avx512", .linear = simd_linear, .relu = avx512_relu, .tanh = avx512_tanh,             \
    .exp = avx512_exp, .erf = avx512_erf, .sigmoid = avx512_sigmoid, .clip = avx512_clip,          \
    .add_row = avx512_add_row, .scale = avx512_scale, .pack_size = simd_pack_size,                 \
    .pack = simd_pack, .linear_packed = simd_linear_packed, .linear_relu = simd_linear_relu,       \
    .linear_packed_relu = simd_linear_packed_relu

static const crl_kernels_t avx512_table = {AVX512_F32_ENTRIES};

/* The same table with the bfloat16 entries of avx512bf16/ (kernels.h: why two variants). Only
 * pointers to them here: this file is compiled without -mavx512bf16. */
static const crl_kernels_t avx512_bf16_table = {
    AVX512_F32_ENTRIES,
    .pack_bf16_size = crl_kernels__bf16_pack_size,
    .pack_bf16 = crl_kernels__bf16_pack,
    .linear_packed_bf16 = crl_kernels__bf16_linear_packed,
    .linear_packed_bf16_relu = crl_kernels__bf16_linear_packed_relu,
};

const crl_kernels_t *crl_kernels_avx512(void) {
    return &avx512_table;
}

const crl_kernels_t *crl_kernels_avx512_bf16(void) {
    return &avx512_bf16_table;
}
