/* avx2.c: the "avx2" kernel table (AVX2 + FMA, 8 floats per vector). Built only for x86_64, with
 * these flags on this file alone; kernels.c calls crl_kernels_avx2() only when the CPU and OS
 * support both (crl_kernels_isas_for).
 *
 * linear has the same two paths as avx512.c (see there for why):
 *  - "packed" (out >= 8, any in): W transposed into panels of 16 outputs (at load, or KC inputs at
 *    a time on the stack for a plain linear), then a register block of 6 rows x 16 outputs (12
 *    accumulators + 2 weight vectors + 1 broadcast fit the 16 ymm registers; 12 rows for a panel
 *    of one live vector) with x[r][k] broadcast: one FMA chain per output, in input order.
 *  - "dot" (out < 8): 8 dot products at a time along the inputs, summed horizontally by one hadd
 *    tree; (row, output) pairs are gathered across rows into groups of 8.
 * Input tails use masked loads, so nothing is read past a row. Results differ from generic only
 * by float reassociation (the tests bound it). A row's outputs do not depend on the number of rows
 * (batch invariance, see avx512.c): the path depends on the shape only, and dot8_row and
 * dot8_pairs give every dot product the same FMA order and addition tree; linear_packed gives
 * linear's bits for any number of rows.
 *
 * relu, clip, add_row and scale are bit-identical to generic. sigmoid and exp use SLEEF's 1-ulp
 * vector exp (Sleef_expf8_u10avx2); tanh, erf, GELU and LayerNormalization come from vmath.h.
 * All are within 2e-7 of the libm versions for |x| <= 20, NaN passed through as is, and +-0,
 * +-inf as in libm (see avx512.c). */
#include <immintrin.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include <sleef.h>

#include "kernels/kernels.h"
#include "kernels/blockio.h"

#define VW 8 /* floats per vector */
#define NV 2 /* vectors per packed panel: 16 outputs */
/* Rows per register block for a panel of nv live vectors, and the most of them. */
#define RB_FOR(nv) ((nv) >= 2 ? 6 : 12)
#define RB_MAX 12
#define PANEL (NV * VW) /* outputs per packed panel */
#define PACK_FLOATS 4096
#define KC (PACK_FLOATS / PANEL) /* inputs per packed chunk */
/* Below this many rows the packed path skips the packing (linear_fma_rows; measured). */
#define PACK_MIN_ROWS 4
#define PANEL_ALIGN 32 /* the stack panel of linear_panels */

/* mask_for(n) for 0 <= n <= 8: the first n lanes set (a sliding window over this table). */
static const int32_t mask_tab[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
static inline __m256i mask_for(size_t n) {
    return _mm256_loadu_si256((const __m256i *)(mask_tab + 8 - n));
}

/* Returns the vector whose lane j is the sum of all lanes of acc[j]. */
static inline __m256 reduce8(const __m256 acc[8]) {
    __m256 h01 = _mm256_hadd_ps(acc[0], acc[1]), h23 = _mm256_hadd_ps(acc[2], acc[3]);
    __m256 h45 = _mm256_hadd_ps(acc[4], acc[5]), h67 = _mm256_hadd_ps(acc[6], acc[7]);
    /* Each 128-bit half: [s0 s1 s2 s3] over that half's lanes. */
    __m256 h0123 = _mm256_hadd_ps(h01, h23), h4567 = _mm256_hadd_ps(h45, h67);
    return _mm256_add_ps(_mm256_permute2f128_ps(h0123, h4567, 0x20),
                         _mm256_permute2f128_ps(h0123, h4567, 0x31));
}

/* 8 dot products of one input row x with 8 consecutive weight rows w[0..7] (stride in). */
static __m256 dot8_row(const float *x, const float *w, size_t in) {
    __m256 acc[8];
    for (int j = 0; j < 8; j++)
        acc[j] = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + VW <= in; i += VW) {
        __m256 xv = _mm256_loadu_ps(x + i);
        for (int j = 0; j < 8; j++)
            acc[j] = _mm256_fmadd_ps(xv, _mm256_loadu_ps(w + (size_t)j * in + i), acc[j]);
    }
    if (i < in) {
        __m256i m = mask_for(in - i);
        __m256 xv = _mm256_maskload_ps(x + i, m);
        for (int j = 0; j < 8; j++)
            acc[j] = _mm256_fmadd_ps(xv, _mm256_maskload_ps(w + (size_t)j * in + i, m), acc[j]);
    }
    return reduce8(acc);
}

/* 8 dot products of arbitrary (x row, w row) pairs. */
static __m256 dot8_pairs(const float *const xp[8], const float *const wp[8], size_t in) {
    __m256 acc[8];
    for (int j = 0; j < 8; j++)
        acc[j] = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + VW <= in; i += VW)
        for (int j = 0; j < 8; j++)
            acc[j] =
                _mm256_fmadd_ps(_mm256_loadu_ps(xp[j] + i), _mm256_loadu_ps(wp[j] + i), acc[j]);
    if (i < in) {
        __m256i m = mask_for(in - i);
        for (int j = 0; j < 8; j++)
            acc[j] = _mm256_fmadd_ps(_mm256_maskload_ps(xp[j] + i, m),
                                     _mm256_maskload_ps(wp[j] + i, m), acc[j]);
    }
    return reduce8(acc);
}

/* "v < 0 ? 0 : v" lane by lane, as avx2_relu (an ordered less-than: NaN and -0 pass). */
static inline __m256 relu_vec(__m256 v) {
    const __m256 zero = _mm256_setzero_ps();
    return _mm256_blendv_ps(v, zero, _mm256_cmp_ps(v, zero, _CMP_LT_OQ));
}

static inline float relu1(int relu, float v) {
    return relu && v < 0.0f ? 0.0f : v;
}

static void linear_dot(const float *x, size_t rows, size_t in, const float *w, const float *b,
                       size_t out, float *y, int relu) {
    size_t full = out - out % 8; /* outputs covered by whole groups of 8, per row */
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * in;
        float *yr = y + r * out;
        for (size_t o = 0; o < full; o += 8) {
            __m256 s = dot8_row(xr, w + o * in, in);
            if (b) s = _mm256_add_ps(s, _mm256_loadu_ps(b + o));
            if (relu) s = relu_vec(s);
            _mm256_storeu_ps(yr + o, s);
        }
    }
    if (full == out) return;
    /* The remaining outputs of every row, taken 8 (row, output) pairs at a time. Unused slots of
     * the last group repeat the first pair; their sums are discarded. */
    const float *xp[8], *wp[8];
    float *yp[8];
    const float *bp[8];
    float sums[8];
    int n = 0;
    for (size_t r = 0; r < rows; r++) {
        for (size_t o = full; o < out; o++) {
            xp[n] = x + r * in;
            wp[n] = w + o * in;
            yp[n] = y + r * out + o;
            bp[n] = b ? b + o : NULL;
            if (++n == 8 || (r + 1 == rows && o + 1 == out)) {
                for (int j = n; j < 8; j++) {
                    xp[j] = xp[0];
                    wp[j] = wp[0];
                }
                _mm256_storeu_ps(sums, dot8_pairs(xp, wp, in));
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
 * and end as `mode` says (blockio.h); ow <= PANEL outputs are stored. Whole vectors use plain
 * stores because vmaskmovps stores are slow on some CPUs (AMD among them); only the panel's tail is
 * masked. */
static inline __attribute__((always_inline)) void block(int nr, int nv, int g, xsrc s,
                                                        const float *pk, size_t kc, const float *b,
                                                        block_mode mode, float *y, size_t out,
                                                        size_t ow, int relu) {
    __m256 acc[RB_MAX][NV];
    __m256i m[NV];
    int whole[NV];
    for (int v = 0; v < nv; v++) {
        size_t c = (size_t)v * VW;
        size_t n = c >= ow ? 0 : (ow - c >= VW ? VW : ow - c);
        m[v] = mask_for(n);
        whole[v] = n == VW;
    }
    for (int r = 0; r < nr; r++)
        for (int v = 0; v < nv; v++) {
            if (mode == MODE_CONT)
                acc[r][v] = _mm256_maskload_ps(y + (size_t)r * out + (size_t)v * VW, m[v]);
            else if (mode == MODE_FIRST && b)
                acc[r][v] = _mm256_maskload_ps(b + (size_t)v * VW, m[v]);
            else
                acc[r][v] = _mm256_setzero_ps();
        }
    for (size_t k = 0; k < kc; k++) {
        __m256 wv[NV];
        for (int v = 0; v < nv; v++)
            wv[v] = _mm256_load_ps(pk + k * PANEL + (size_t)v * VW);
        for (int r = 0; r < nr; r++) {
            __m256 xv = _mm256_broadcast_ss(xs_at(g, s, (size_t)r, k));
            for (int v = 0; v < nv; v++)
                acc[r][v] = _mm256_fmadd_ps(xv, wv[v], acc[r][v]);
        }
    }
    for (int r = 0; r < nr; r++)
        for (int v = 0; v < nv; v++) {
            float *dst = y + (size_t)r * out + (size_t)v * VW;
            if (mode == MODE_ADD)
                acc[r][v] = _mm256_add_ps(_mm256_maskload_ps(dst, m[v]), acc[r][v]);
            if (relu) acc[r][v] = relu_vec(acc[r][v]);
            if (whole[v])
                _mm256_storeu_ps(dst, acc[r][v]);
            else
                _mm256_maskstore_ps(dst, m[v], acc[r][v]);
        }
}

/* The packed path's arithmetic without the packing, for a few rows (packing W would cost more
 * than the rows themselves): per output, start from the bias (or +0) and add x[k] * w[o][k] with
 * one fused multiply-add per k in input order, exactly as block() does in each lane, so the
 * result has the same bits (batch invariance). */
#include "kernels/panels.h"

/* "x < 0 ? 0 : x": an ordered less-than is false for NaN, so NaN passes through as in generic. */
static void avx2_relu(float *x, size_t n) {
    const __m256 zero = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + VW <= n; i += VW) {
        __m256 v = _mm256_loadu_ps(x + i);
        _mm256_storeu_ps(x + i, _mm256_blendv_ps(v, zero, _mm256_cmp_ps(v, zero, _CMP_LT_OQ)));
    }
    for (; i < n; i++)
        x[i] = x[i] < 0.0f ? 0.0f : x[i];
}

/* A NaN input is returned as is (its payload too), as libm does, rather than SLEEF's own NaN. */
static inline __m256 keep_nan(__m256 v, __m256 r) {
    return _mm256_blendv_ps(r, v, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
}

/* The tail goes through a zero-filled vector: masked loads and stores, nothing touched past n. */
/* exp: SLEEF's 1-ulp function, a NaN input returned as is. */
static void avx2_exp(float *x, size_t n) {
    for (size_t i = 0; i < n; i += VW) {
        __m256i m = mask_for(n - i >= VW ? VW : n - i);
        __m256 v = _mm256_maskload_ps(x + i, m);
        _mm256_maskstore_ps(x + i, m, keep_nan(v, Sleef_expf8_u10avx2(v)));
    }
}

static inline float hsum8(__m256 v) {
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(_mm_add_ss(h, _mm_movehdup_ps(h)));
}

#define VF __m256
#define vf_set1 _mm256_set1_ps
#define vf_fma _mm256_fmadd_ps
#define vf_fnma _mm256_fnmadd_ps
#define vf_mul _mm256_mul_ps
#define vf_add _mm256_add_ps
#define vf_sub _mm256_sub_ps
#define vf_hsum hsum8
#define vf_div _mm256_div_ps
#define vf_sqrt _mm256_sqrt_ps
#define vf_abs(v) _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v)
#define vf_pick_le(a, l, x, y) _mm256_blendv_ps(y, x, _mm256_cmp_ps(a, l, _CMP_LE_OQ))
#define vf_copysign(m, s)                                                                          \
    _mm256_or_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), m),                                       \
                 _mm256_and_ps(_mm256_set1_ps(-0.0f), s))
#define vf_max _mm256_max_ps
#define vf_round(v) _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define vf_pow2i(n)                                                                                \
    _mm256_castsi256_ps(                                                                           \
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23))
#define vf_keep_nan keep_nan
#define vf_load_n(p, n) _mm256_maskload_ps(p, mask_for(n))
#define vf_load_n_fill(p, n, f)                                                                    \
    _mm256_blendv_ps(_mm256_set1_ps(f), _mm256_maskload_ps(p, mask_for(n)),                        \
                     _mm256_castsi256_ps(mask_for(n)))
#define vf_store_n(p, v, n) _mm256_maskstore_ps(p, mask_for(n), v)
#include "kernels/vmath.h"

/* generic's formula, lane by lane: e = exp(-|v|) never overflows; v >= 0 gives 1 / (1 + e),
 * v < 0 gives e / (1 + e). */
static void avx2_sigmoid(float *x, size_t n) {
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (size_t i = 0; i < n; i += VW) {
        __m256i m = mask_for(n - i >= VW ? VW : n - i);
        __m256 v = _mm256_maskload_ps(x + i, m);
        __m256 e = Sleef_expf8_u10avx2(_mm256_or_ps(v, sign));
        __m256 num = _mm256_blendv_ps(e, one, _mm256_cmp_ps(v, zero, _CMP_GE_OQ));
        __m256 r = _mm256_div_ps(num, _mm256_add_ps(one, e));
        _mm256_maskstore_ps(x + i, m, keep_nan(v, r));
    }
}

/* v < lo ? lo : (v > hi ? hi : v), with the same precedence when lo > hi and NaN passing. */
static void avx2_clip(float *x, size_t n, float lo, float hi) {
    const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
    size_t i = 0;
    for (; i + VW <= n; i += VW) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 t = _mm256_blendv_ps(v, vhi, _mm256_cmp_ps(v, vhi, _CMP_GT_OQ));
        t = _mm256_blendv_ps(t, vlo, _mm256_cmp_ps(v, vlo, _CMP_LT_OQ));
        _mm256_storeu_ps(x + i, t);
    }
    for (; i < n; i++) {
        float v = x[i];
        x[i] = v < lo ? lo : (v > hi ? hi : v);
    }
}

static void avx2_add_row(float *x, size_t rows, size_t cols, const float *b) {
    for (size_t r = 0; r < rows; r++) {
        float *xr = x + r * cols;
        size_t c = 0;
        for (; c + VW <= cols; c += VW)
            _mm256_storeu_ps(xr + c,
                             _mm256_add_ps(_mm256_loadu_ps(xr + c), _mm256_loadu_ps(b + c)));
        for (; c < cols; c++)
            xr[c] += b[c];
    }
}

static void avx2_scale(float *x, size_t n, float alpha) {
    const __m256 a = _mm256_set1_ps(alpha);
    size_t i = 0;
    for (; i + VW <= n; i += VW)
        _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), a));
    for (; i < n; i++)
        x[i] *= alpha;
}

static const crl_kernels_t avx2_table = {
    .name = "avx2",
    .relu = avx2_relu,
    .exp = avx2_exp,
    .sigmoid = avx2_sigmoid,
    .clip = avx2_clip,
    .add_row = avx2_add_row,
    .scale = avx2_scale,
    PANEL_ENTRIES,
    VM_ENTRIES,
};

const crl_kernels_t *crl_kernels_avx2(void) {
    return &avx2_table;
}
