/* neon.c: the "neon" kernel table (AArch64 Advanced SIMD, 4 floats per vector, fused multiply-add).
 * Built only for aarch64, with these flags on this file alone; Advanced SIMD is part of the
 * AArch64 baseline, and kernels.c still offers the table only when hw/ reports it (HWCAP_ASIMD).
 *
 * linear has the two paths of avx512.c and avx2.c (see avx512.c for why):
 *  - "packed" (out >= 4): W transposed one panel of 16 outputs by up to KC inputs at a time
 *    (once, at load, for the graph's layers), then a 6-row x 16-output register block with x[r][k]
 *    broadcast (24 accumulators + 4 weight vectors + 1 broadcast of the 32 vector registers);
 *    panels of fewer live vectors take more rows. Below PACK_MIN_ROWS rows the same arithmetic
 *    runs unpacked (panels.h, linear_fma_rows).
 *  - "dot" (out < 4): 8 dot products at a time along the inputs, summed horizontally by
 *    one pairwise-add tree (reduce4); outputs that do not fill a group of 8 are gathered across
 *    rows into groups of 8 (row, output) pairs, and a last group of SMALL_GROUP pairs or fewer is
 *    done one dot product at a time (dot1, the same FMA order and tree).
 * Input and output tails are moved lane by lane (Advanced SIMD has no masked loads), so nothing is
 * read or written past a row. Results differ from generic only by float reassociation (the tests
 * bound it). A row's outputs do not depend on the number of rows (batch invariance, see avx512.c):
 * the path depends on the shape only, and every dot product has the same FMA order and tree.
 *
 * Weights packed at load time (pack / linear_packed, see kernels.h): as on x86, only the "packed"
 * shapes gain, and linear_packed runs the same block() on the same panels, so it gives linear's
 * bits for any number of rows.
 *
 * relu, clip, add_row and scale are bit-identical to generic. sigmoid and exp use SLEEF's 1-ulp
 * Advanced SIMD exp (Sleef_expf4_u10advsimd); tanh, erf, GELU and LayerNormalization come from
 * vmath.h. All are within 2e-7 of the libm versions for |x| <= 20, NaN passed through as is, and
 * +-0, +-inf as in libm (see avx512.c). */
#include <arm_neon.h>
#include <math.h>
#include <stddef.h>

#include <sleef.h>

#include "kernels/kernels.h"
#include "kernels/blockio.h"

#define VW 4 /* floats per vector */
#define NV 4 /* vectors per packed panel: 16 outputs */
/* Rows per register block for a panel of nv live vectors (up to 24 accumulators), the most. */
#define RB_FOR(nv) ((nv) >= 4 ? 6 : (nv) == 3 ? 8 : 12)
#define RB_MAX 12
#define PANEL (NV * VW) /* outputs per packed panel */
#define PACK_FLOATS 4096
#define KC (PACK_FLOATS / PANEL) /* inputs per packed chunk */
/* Below this many rows the packed path skips the packing (linear_fma_rows), as on x86. */
#define PACK_MIN_ROWS 4
#define PANEL_ALIGN 16 /* the stack panel of linear_panels */
#define G 8            /* dot products per group of the dot path */
/* A last group of this many pairs or fewer is done one dot product at a time. */
#define SMALL_GROUP 4

/* The first n (0..4) floats at p, zeros in the other lanes; nothing past p + n is read. */
static inline float32x4_t load_part(const float *p, size_t n) {
    if (n >= VW) return vld1q_f32(p);
    float32x4_t v = vdupq_n_f32(0.0f);
    if (n > 0) v = vld1q_lane_f32(p, v, 0);
    if (n > 1) v = vld1q_lane_f32(p + 1, v, 1);
    if (n > 2) v = vld1q_lane_f32(p + 2, v, 2);
    return v;
}

/* Stores the first n (0..4) lanes of v at p; nothing past p + n is written. */
static inline void store_part(float *p, float32x4_t v, size_t n) {
    if (n >= VW) {
        vst1q_f32(p, v);
        return;
    }
    if (n > 0) vst1q_lane_f32(p, v, 0);
    if (n > 1) vst1q_lane_f32(p + 1, v, 1);
    if (n > 2) vst1q_lane_f32(p + 2, v, 2);
}

/* Returns the vector whose lane j is the sum of the lanes of a[j], as (l0 + l1) + (l2 + l3). */
static inline float32x4_t reduce4(float32x4_t a0, float32x4_t a1, float32x4_t a2, float32x4_t a3) {
    return vpaddq_f32(vpaddq_f32(a0, a1), vpaddq_f32(a2, a3));
}

/* G dot products of one input row x with G consecutive weight rows w[0..G-1] (stride in); sums
 * of products j in lane j % 4 of s[j / 4]. */
static inline __attribute__((always_inline)) void dot8_row(const float *x, const float *w,
                                                           size_t in, float32x4_t s[G / VW]) {
    float32x4_t acc[G];
    for (int j = 0; j < G; j++)
        acc[j] = vdupq_n_f32(0.0f);
    size_t i = 0;
    for (; i + VW <= in; i += VW) {
        float32x4_t xv = vld1q_f32(x + i);
        for (int j = 0; j < G; j++)
            acc[j] = vfmaq_f32(acc[j], xv, vld1q_f32(w + (size_t)j * in + i));
    }
    if (i < in) {
        float32x4_t xv = load_part(x + i, in - i);
        for (int j = 0; j < G; j++)
            acc[j] = vfmaq_f32(acc[j], xv, load_part(w + (size_t)j * in + i, in - i));
    }
    s[0] = reduce4(acc[0], acc[1], acc[2], acc[3]);
    s[1] = reduce4(acc[4], acc[5], acc[6], acc[7]);
}

/* G dot products of arbitrary (x row, w row) pairs, laid out as dot8_row's. */
static void dot8_pairs(const float *const xp[G], const float *const wp[G], size_t in,
                       float32x4_t s[G / VW]) {
    float32x4_t acc[G];
    for (int j = 0; j < G; j++)
        acc[j] = vdupq_n_f32(0.0f);
    size_t i = 0;
    for (; i + VW <= in; i += VW)
        for (int j = 0; j < G; j++)
            acc[j] = vfmaq_f32(acc[j], vld1q_f32(xp[j] + i), vld1q_f32(wp[j] + i));
    if (i < in)
        for (int j = 0; j < G; j++)
            acc[j] = vfmaq_f32(acc[j], load_part(xp[j] + i, in - i), load_part(wp[j] + i, in - i));
    s[0] = reduce4(acc[0], acc[1], acc[2], acc[3]);
    s[1] = reduce4(acc[4], acc[5], acc[6], acc[7]);
}

/* One dot product with the bits one slot of dot8_pairs gives: one accumulator, the same FMA
 * order, and reduce4's tree for one vector. */
static inline float dot1(const float *x, const float *w, size_t in) {
    float32x4_t acc = vdupq_n_f32(0.0f);
    size_t i = 0;
    for (; i + VW <= in; i += VW)
        acc = vfmaq_f32(acc, vld1q_f32(x + i), vld1q_f32(w + i));
    if (i < in) acc = vfmaq_f32(acc, load_part(x + i, in - i), load_part(w + i, in - i));
    float32x4_t p = vpaddq_f32(acc, acc); /* [l0 + l1, l2 + l3, ...] */
    return vgetq_lane_f32(p, 0) + vgetq_lane_f32(p, 1);
}

/* "v < 0 ? 0 : v" lane by lane, as neon_relu (an ordered less-than: NaN and -0 pass). */
static inline float32x4_t relu_vec(float32x4_t v) {
    return vbslq_f32(vcltzq_f32(v), vdupq_n_f32(0.0f), v);
}

static inline float relu1(int relu, float v) {
    return relu && v < 0.0f ? 0.0f : v;
}

/* The outputs left over by whole groups of G, of every row, taken G (row, output) pairs at a
 * time. Unused slots of the last group repeat the first pair; their sums are discarded. */
static void linear_dot_rest(const float *x, size_t rows, size_t in, const float *w, const float *b,
                            size_t out, float *y, int relu, size_t full) {
    const float *xp[G], *wp[G];
    float *yp[G];
    const float *bp[G];
    float sums[G];
    int n = 0;
    for (size_t r = 0; r < rows; r++) {
        for (size_t o = full; o < out; o++) {
            xp[n] = x + r * in;
            wp[n] = w + o * in;
            yp[n] = y + r * out + o;
            bp[n] = b ? b + o : NULL;
            if (++n < G && !(r + 1 == rows && o + 1 == out)) continue;
            if (n <= SMALL_GROUP) {
                for (int j = 0; j < n; j++)
                    sums[j] = dot1(xp[j], wp[j], in);
            } else {
                float32x4_t s[G / VW];
                for (int j = n; j < G; j++) {
                    xp[j] = xp[0];
                    wp[j] = wp[0];
                }
                dot8_pairs(xp, wp, in, s);
                vst1q_f32(sums, s[0]);
                vst1q_f32(sums + VW, s[1]);
            }
            for (int j = 0; j < n; j++)
                *yp[j] = relu1(relu, bp[j] ? sums[j] + *bp[j] : sums[j]);
            n = 0;
        }
    }
}

static void linear_dot(const float *x, size_t rows, size_t in, const float *w, const float *b,
                       size_t out, float *y, int relu) {
    size_t full = out - out % G; /* outputs covered by whole groups of G, per row */
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * in;
        float *yr = y + r * out;
        for (size_t o = 0; o < full; o += G) {
            float32x4_t s[G / VW];
            dot8_row(xr, w + o * in, in, s);
            for (int h = 0; h < G / VW; h++) {
                if (b) s[h] = vaddq_f32(s[h], vld1q_f32(b + o + (size_t)h * VW));
                if (relu) s[h] = relu_vec(s[h]);
                vst1q_f32(yr + o + (size_t)h * VW, s[h]);
            }
        }
    }
    if (full < out) linear_dot_rest(x, rows, in, w, b, out, y, relu, full);
}

/* One register block: nr (RB_FOR(nv) or 1) rows x nv vectors of outputs (both constants after
 * inlining; the panel's vectors past ow are not computed) over kc inputs
 * of the packed panel pk ([kc][PANEL]), reading x through s (blockio.h). The accumulators start
 * and end as `mode` says (blockio.h); ow <= PANEL outputs are stored. */
static inline __attribute__((always_inline)) void block(int nr, int nv, int g, xsrc s,
                                                        const float *pk, size_t kc, const float *b,
                                                        block_mode mode, float *y, size_t out,
                                                        size_t ow, int relu) {
    float32x4_t acc[RB_MAX][NV];
    size_t m[NV]; /* outputs of vector v to load and store */
    for (int v = 0; v < nv; v++) {
        size_t c = (size_t)v * VW;
        m[v] = c >= ow ? 0 : (ow - c >= VW ? VW : ow - c);
    }
    for (int r = 0; r < nr; r++)
        for (int v = 0; v < nv; v++) {
            if (mode == MODE_CONT)
                acc[r][v] = load_part(y + (size_t)r * out + (size_t)v * VW, m[v]);
            else if (mode == MODE_FIRST && b)
                acc[r][v] = load_part(b + (size_t)v * VW, m[v]);
            else
                acc[r][v] = vdupq_n_f32(0.0f);
        }
    for (size_t k = 0; k < kc; k++) {
        float32x4_t wv[NV];
        for (int v = 0; v < nv; v++)
            wv[v] = vld1q_f32(pk + k * PANEL + (size_t)v * VW);
        for (int r = 0; r < nr; r++) {
            float32x4_t xv = vld1q_dup_f32(xs_at(g, s, (size_t)r, k));
            for (int v = 0; v < nv; v++)
                acc[r][v] = vfmaq_f32(acc[r][v], xv, wv[v]);
        }
    }
    for (int r = 0; r < nr; r++)
        for (int v = 0; v < nv; v++) {
            float *dst = y + (size_t)r * out + (size_t)v * VW;
            if (mode == MODE_ADD) acc[r][v] = vaddq_f32(load_part(dst, m[v]), acc[r][v]);
            store_part(dst, relu ? relu_vec(acc[r][v]) : acc[r][v], m[v]);
        }
}

/* The packed path's arithmetic without the packing, for a few rows (packing W would cost more
 * than the rows themselves): per output, start from the bias (or +0) and add x[k] * w[o][k] with
 * one fused multiply-add per k in input order, exactly as block() does in each lane, so the
 * result has the same bits (batch invariance). */
#include "kernels/panels.h"

/* "x < 0 ? 0 : x": an ordered less-than is false for NaN, so NaN passes through as in generic. */
static void neon_relu(float *x, size_t n) {
    size_t i = 0;
    for (; i + VW <= n; i += VW)
        vst1q_f32(x + i, relu_vec(vld1q_f32(x + i)));
    for (; i < n; i++)
        x[i] = x[i] < 0.0f ? 0.0f : x[i];
}

/* A NaN input is returned as is (its payload too), as libm does, rather than SLEEF's own NaN. */
static inline float32x4_t keep_nan(float32x4_t v, float32x4_t r) {
    return vbslq_f32(vceqq_f32(v, v), r, v);
}

/* generic's formula, lane by lane: e = exp(-|v|) never overflows; v >= 0 gives 1 / (1 + e),
 * v < 0 gives e / (1 + e). */
static inline float32x4_t sigmoid_vec(float32x4_t v) {
    const float32x4_t one = vdupq_n_f32(1.0f);
    float32x4_t e = Sleef_expf4_u10advsimd(vnegq_f32(vabsq_f32(v)));
    float32x4_t num = vbslq_f32(vcgezq_f32(v), one, e);
    return keep_nan(v, vdivq_f32(num, vaddq_f32(one, e)));
}

/* exp: SLEEF's 1-ulp Advanced SIMD function, a NaN input returned as is. */
static void neon_exp(float *x, size_t n) {
    for (size_t i = 0; i < n; i += VW) {
        size_t m = n - i >= VW ? VW : n - i;
        float32x4_t v = load_part(x + i, m);
        store_part(x + i, keep_nan(v, Sleef_expf4_u10advsimd(v)), m);
    }
}

/* The first n (0..4) floats at p, f in the other lanes; nothing past p + n is read. */
static inline float32x4_t load_part_fill(const float *p, size_t n, float f) {
    static const uint32_t lanes[4] = {0, 1, 2, 3};
    uint32x4_t keep = vcltq_u32(vld1q_u32(lanes), vdupq_n_u32((uint32_t)n));
    return vbslq_f32(keep, load_part(p, n), vdupq_n_f32(f));
}

#define VF float32x4_t
#define vf_set1 vdupq_n_f32
#define vf_fma(a, b, c) vfmaq_f32(c, a, b)
#define vf_fnma(a, b, c) vfmsq_f32(c, a, b)
#define vf_mul vmulq_f32
#define vf_add vaddq_f32
#define vf_sub vsubq_f32
#define vf_hsum vaddvq_f32
#define vf_div vdivq_f32
#define vf_sqrt vsqrtq_f32
#define vf_abs vabsq_f32
#define vf_pick_le(a, l, x, y) vbslq_f32(vcleq_f32(a, l), x, y)
#define vf_copysign(m, s) vbslq_f32(vdupq_n_u32(0x80000000u), s, m)
#define vf_max vmaxq_f32
#define vf_round vrndnq_f32
#define vf_pow2i(n)                                                                                \
    vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(vcvtnq_s32_f32(n), vdupq_n_s32(127)), 23))
#define vf_keep_nan keep_nan
#define vf_load_n load_part
#define vf_load_n_fill load_part_fill
#define vf_store_n store_part
#include "kernels/vmath.h"

static void neon_sigmoid(float *x, size_t n) {
    for (size_t i = 0; i < n; i += VW) {
        size_t m = n - i >= VW ? VW : n - i;
        store_part(x + i, sigmoid_vec(load_part(x + i, m)), m);
    }
}

/* v < lo ? lo : (v > hi ? hi : v), with the same precedence when lo > hi and NaN passing. */
static void neon_clip(float *x, size_t n, float lo, float hi) {
    const float32x4_t vlo = vdupq_n_f32(lo), vhi = vdupq_n_f32(hi);
    size_t i = 0;
    for (; i + VW <= n; i += VW) {
        float32x4_t v = vld1q_f32(x + i);
        float32x4_t t = vbslq_f32(vcgtq_f32(v, vhi), vhi, v);
        vst1q_f32(x + i, vbslq_f32(vcltq_f32(v, vlo), vlo, t));
    }
    for (; i < n; i++) {
        float v = x[i];
        x[i] = v < lo ? lo : (v > hi ? hi : v);
    }
}

static void neon_add_row(float *x, size_t rows, size_t cols, const float *b) {
    for (size_t r = 0; r < rows; r++) {
        float *xr = x + r * cols;
        size_t c = 0;
        for (; c + VW <= cols; c += VW)
            vst1q_f32(xr + c, vaddq_f32(vld1q_f32(xr + c), vld1q_f32(b + c)));
        for (; c < cols; c++)
            xr[c] += b[c];
    }
}

static void neon_scale(float *x, size_t n, float alpha) {
    size_t i = 0;
    for (; i + VW <= n; i += VW)
        vst1q_f32(x + i, vmulq_n_f32(vld1q_f32(x + i), alpha));
    for (; i < n; i++)
        x[i] *= alpha;
}

static const crl_kernels_t neon_table = {
    .name = "neon",
    .relu = neon_relu,
    .exp = neon_exp,
    .sigmoid = neon_sigmoid,
    .clip = neon_clip,
    .add_row = neon_add_row,
    .scale = neon_scale,
    PANEL_ENTRIES,
    VM_ENTRIES,
};

const crl_kernels_t *crl_kernels_neon(void) {
    return &neon_table;
}
