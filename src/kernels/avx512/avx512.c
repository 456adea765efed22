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
 * relu, clip, add_row and scale are bit-identical to generic. sigmoid and exp use SLEEF's 1-ulp
 * vector exp (Sleef_expf16_u10avx512f). tanh, erf, GELU and LayerNormalization come from vmath.h
 * (shared with avx2 and neon): tanh and erf there are our own polynomials around an inline exp,
 * fitted and checked by tools/fit_vmath.py, because SLEEF's vector tanh (6 ns per vector, even in
 * its 3.5-ulp version) and erf (26 ns) were the largest part of the forward pass of the zoo's
 * tanh and GELU models. All are within 2e-7 of the libm versions for |x| <= 20 (tests/unit/
 * test_kernels_isa.c), a NaN input comes back as that same NaN, and +-0, +-inf give what libm
 * gives (tanh: +-0, +-1; sigmoid: 0.5, 1, 0). */
#include <immintrin.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include <sleef.h>

#include "kernels/avx512bf16/bf16.h"
#include "kernels/kernels.h"
#include "kernels/blockio.h"

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

/* t[c] = column c of the 16 x 16 block whose row r is t[r] (unpack pairs, then pairs of pairs,
 * then the 4 x 4 transpose of 128-bit lanes). */
static inline __attribute__((always_inline)) void transpose16(__m512 t[16]) {
    __m512 a[16], bq[16];
    for (int i = 0; i < 8; i++) {
        a[2 * i] = _mm512_unpacklo_ps(t[2 * i], t[2 * i + 1]);
        a[2 * i + 1] = _mm512_unpackhi_ps(t[2 * i], t[2 * i + 1]);
    }
    /* bq[4i + j], 128-bit lane L: column 4L + j of rows 4i .. 4i + 3 */
    for (int i = 0; i < 4; i++) {
        __m512d a0 = _mm512_castps_pd(a[4 * i]), a1 = _mm512_castps_pd(a[4 * i + 1]);
        __m512d a2 = _mm512_castps_pd(a[4 * i + 2]), a3 = _mm512_castps_pd(a[4 * i + 3]);
        bq[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
        bq[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
        bq[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
        bq[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
    }
    for (int j = 0; j < 4; j++) {
        __m512 c0 = _mm512_shuffle_f32x4(bq[j], bq[4 + j], 0x44);
        __m512 c1 = _mm512_shuffle_f32x4(bq[j], bq[4 + j], 0xee);
        __m512 c2 = _mm512_shuffle_f32x4(bq[8 + j], bq[12 + j], 0x44);
        __m512 c3 = _mm512_shuffle_f32x4(bq[8 + j], bq[12 + j], 0xee);
        t[j] = _mm512_shuffle_f32x4(c0, c2, 0x88);
        t[4 + j] = _mm512_shuffle_f32x4(c0, c2, 0xdd);
        t[8 + j] = _mm512_shuffle_f32x4(c1, c3, 0x88);
        t[12 + j] = _mm512_shuffle_f32x4(c1, c3, 0xdd);
    }
}

/* Inputs up to this many take dot_rows16 (its transposed block lives on the stack). */
#define DOT_ROWS_MAX_IN 256
/* dot_rows16 for a block of at least this many rows; fewer go pair by pair through dot1. */
#define DOT_ROWS_MIN 4

/* Outputs [o0, out) of nr <= 16 rows at once, lanes = rows: the dot1 of every (row, output) pair
 * with its exact operations. dot1's lane l holds the chain over inputs 16c + l (from +0, every
 * chunk c in order, a tail chunk's missing inputs as 0 * 0); here that chain is a vector over the
 * rows, fed by the transposed block of x, and the lanes are then added in dot1's tree:
 * e_j = (l_j + l_8+j) + (l_4+j + l_12+j), f0 = e0 + e2, f1 = e1 + e3, f0 + f1. So a row gets the
 * same bits whichever path and block it falls in (batch invariance). */
static void dot_rows16(const float *x, size_t nr, size_t in, const float *w, const float *b,
                       size_t o0, size_t out, float *y, int relu) {
    __m512 xt[DOT_ROWS_MAX_IN];
    size_t nch = (in + VW - 1) / VW;
    for (size_t c = 0; c < nch; c++) {
        __mmask16 m = in - c * VW >= VW ? (__mmask16)0xffff : tail_mask(in - c * VW);
        for (size_t r = 0; r < 16; r++)
            xt[c * VW + r] =
                r < nr ? _mm512_maskz_loadu_ps(m, x + r * in + c * VW) : _mm512_setzero_ps();
        transpose16(xt + c * VW);
    }
    for (size_t o = o0; o < out; o++) {
        const float *wo = w + o * in;
        __m512 acc[16];
        for (int l = 0; l < 16; l++)
            acc[l] = _mm512_setzero_ps();
        for (size_t c = 0; c < nch; c++)
            for (size_t l = 0; l < 16; l++) {
                size_t k = c * VW + l;
                __m512 wv = _mm512_set1_ps(k < in ? wo[k] : 0.0f);
                acc[l] = _mm512_fmadd_ps(xt[k], wv, acc[l]);
            }
        __m512 e[4];
        for (int j = 0; j < 4; j++)
            e[j] = _mm512_add_ps(_mm512_add_ps(acc[j], acc[8 + j]),
                                 _mm512_add_ps(acc[4 + j], acc[12 + j]));
        __m512 s = _mm512_add_ps(_mm512_add_ps(e[0], e[2]), _mm512_add_ps(e[1], e[3]));
        if (b) s = _mm512_add_ps(s, _mm512_set1_ps(b[o]));
        if (relu) s = relu_vec(s);
        float v[16];
        _mm512_storeu_ps(v, s);
        for (size_t r = 0; r < nr; r++)
            y[r * out + o] = v[r];
    }
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
    /* The remaining outputs: 16 rows at a time as long as there are DOT_ROWS_MIN of them. */
    if (in <= DOT_ROWS_MAX_IN)
        while (rows >= DOT_ROWS_MIN) {
            size_t nr = rows < 16 ? rows : 16;
            dot_rows16(x, nr, in, w, b, full, out, y, relu);
            x += nr * in;
            y += nr * out;
            rows -= nr;
        }
    /* The rest, taken 16 (row, output) pairs at a time. Unused slots of the last group repeat the
     * first pair; their sums are discarded. */
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
 * of the packed panel pk ([kc][PANEL]), reading x through s (blockio.h). The accumulators start
 * and end as `mode` says (blockio.h); ow <= PANEL outputs are stored. */
static inline __attribute__((always_inline)) void block(int nr, int nv, int g, xsrc s,
                                                        const float *pk, size_t kc, const float *b,
                                                        block_mode mode, float *y, size_t out,
                                                        size_t ow, int relu) {
    __m512 acc[RB_MAX][NV];
    __mmask16 m[NV];
    for (int v = 0; v < nv; v++) {
        size_t c = (size_t)v * VW;
        m[v] = c >= ow ? 0 : (ow - c >= VW ? (__mmask16)0xffff : tail_mask(ow - c));
    }
    for (int r = 0; r < nr; r++)
        for (int v = 0; v < nv; v++) {
            if (mode == MODE_CONT)
                acc[r][v] = _mm512_maskz_loadu_ps(m[v], y + (size_t)r * out + (size_t)v * VW);
            else if (mode == MODE_FIRST && b)
                acc[r][v] = _mm512_maskz_loadu_ps(m[v], b + (size_t)v * VW);
            else
                acc[r][v] = _mm512_setzero_ps();
        }
    for (size_t k = 0; k < kc; k++) {
        __m512 wv[NV];
        for (int v = 0; v < nv; v++)
            wv[v] = _mm512_loadu_ps(pk + k * PANEL + (size_t)v * VW);
        for (int r = 0; r < nr; r++) {
            __m512 xv = _mm512_set1_ps(*xs_at(g, s, (size_t)r, k));
            for (int v = 0; v < nv; v++)
                acc[r][v] = _mm512_fmadd_ps(xv, wv[v], acc[r][v]);
        }
    }
    for (int r = 0; r < nr; r++)
        for (int v = 0; v < nv; v++) {
            float *dst = y + (size_t)r * out + (size_t)v * VW;
            if (mode == MODE_ADD)
                acc[r][v] = _mm512_add_ps(_mm512_maskz_loadu_ps(m[v], dst), acc[r][v]);
            _mm512_mask_storeu_ps(dst, m[v], relu ? relu_vec(acc[r][v]) : acc[r][v]);
        }
}

/* One row, a split sum (panels.h, split_at): chain A over inputs [0, h) from the bias and chain B
 * over [h, in) from +0 run side by side (2 nv independent accumulators), then y = A + B, exactly
 * as block() for A, block() for B and their sum in panel_rows. */
static inline __attribute__((always_inline)) void block1_split(int nv, int g, xsrc s, size_t in,
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
        __m512 xa = _mm512_set1_ps(*xs_at(g, s, 0, k)), xb = _mm512_set1_ps(*xs_at(g, s, 0, h + k));
        for (int v = 0; v < nv; v++) {
            a[v] = _mm512_fmadd_ps(xa, _mm512_loadu_ps(pk + k * PANEL + (size_t)v * VW), a[v]);
            c[v] = _mm512_fmadd_ps(xb, _mm512_loadu_ps(pb + k * PANEL + (size_t)v * VW), c[v]);
        }
    }
    if (in - h > h) { /* B's last input (in odd) */
        __m512 xb = _mm512_set1_ps(*xs_at(g, s, 0, in - 1));
        for (int v = 0; v < nv; v++)
            c[v] = _mm512_fmadd_ps(xb, _mm512_loadu_ps(pb + h * PANEL + (size_t)v * VW), c[v]);
    }
    for (int v = 0; v < nv; v++) {
        __m512 t = _mm512_add_ps(a[v], c[v]);
        _mm512_mask_storeu_ps(y + (size_t)v * VW, m[v], relu ? relu_vec(t) : t);
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

/* exp: SLEEF's 1-ulp function, a NaN input returned as is. */
static void avx512_exp(float *x, size_t n) {
    for (size_t i = 0; i < n; i += VW) {
        __mmask16 m = n - i >= VW ? (__mmask16)0xffff : tail_mask(n - i);
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        _mm512_mask_storeu_ps(x + i, m, keep_nan(v, Sleef_expf16_u10avx512f(v)));
    }
}

#define VF __m512
#define vf_set1 _mm512_set1_ps
#define vf_fma _mm512_fmadd_ps
#define vf_fnma _mm512_fnmadd_ps
#define vf_mul _mm512_mul_ps
#define vf_add _mm512_add_ps
#define vf_sub _mm512_sub_ps
#define vf_hsum _mm512_reduce_add_ps
#define vf_div _mm512_div_ps
#define vf_sqrt _mm512_sqrt_ps
#define vf_abs _mm512_abs_ps
#define vf_pick_le(a, l, x, y) _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(a, l, _CMP_LE_OQ), x)
#define vf_copysign(m, s)                                                                          \
    _mm512_castsi512_ps(_mm512_ternarylogic_epi32(_mm512_castps_si512(m), _mm512_castps_si512(s),  \
                                                  _mm512_set1_epi32(INT32_MIN), 0xd8))
#define vf_max _mm512_max_ps
#define vf_round(v) _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define vf_pow2i(n)                                                                                \
    _mm512_castsi512_ps(                                                                           \
        _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23))
#define vf_keep_nan keep_nan
#define vf_load_n(p, n) _mm512_maskz_loadu_ps(tail_mask(n), p)
#define vf_load_n_fill(p, n, f) _mm512_mask_loadu_ps(_mm512_set1_ps(f), tail_mask(n), p)
#define vf_store_n(p, v, n) _mm512_mask_storeu_ps(p, tail_mask(n), v)
#include "kernels/vmath.h"

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
    .name = "avx512", .relu = avx512_relu, .exp = avx512_exp, .sigmoid = avx512_sigmoid,           \
    .clip = avx512_clip, .add_row = avx512_add_row, .scale = avx512_scale, PANEL_ENTRIES,          \
    VM_ENTRIES

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
