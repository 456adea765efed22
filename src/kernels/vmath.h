/* vmath.h: the vector erf, GELU, tanh and LayerNormalization shared by the SIMD kernel tables.
 * Not a normal header, like panels.h: an ISA file includes it after defining
 *   VF                       its float vector type; VW floats per vector
 *   vf_set1(f)               every lane f
 *   vf_fma(a, b, c)          a * b + c, one rounding; vf_fnma(a, b, c): c - a * b, one rounding
 *   vf_mul, vf_add, vf_sub   IEEE lane by lane; vf_div, vf_sqrt likewise
 *   vf_hsum(v)               the sum of v's lanes (any order of additions)
 *   vf_abs(v)                |v|
 *   vf_pick_le(a, l, x, y)   lane by lane a <= l ? x : y
 *   vf_copysign(m, s)        |m| with the sign of s
 *   vf_max(a, b)             lane by lane maximum (either operand where one is a NaN)
 *   vf_round(v)              to the nearest integer, ties to even
 *   vf_pow2i(n)              2^n for integral n in [-126, 127]
 *   vf_keep_nan(v, r)        r, with v where v is a NaN
 *   vf_load_n(p, n)          the first n <= VW floats of p, other lanes 0, nothing read past n
 *   vf_load_n_fill(p, n, f)  the same with the other lanes f
 *   vf_store_n(p, v, n)      the first n <= VW lanes of v to p, nothing written past n
 * so the code below is compiled once per ISA with that ISA's flags and intrinsics.
 *
 * layernorm: in vectors, VW rows at a time (the graph's generic loop computes the statistics in
 * double, one element at a time; that loop was 40 % of layernorm_mlp's forward pass at batch 256).
 *
 * erf: SLEEF's vector erff (Sleef_erff16_u10avx512f) costs about 26 ns per vector of 16 here,
 * most of the time of a GELU layer (layernorm_mlp at batch 256 spent 53 % of its forward pass in
 * it). This one, inline and with no call, takes about 5 ns:
 *   erf(x) = x + x * A(x^2)                     for |x| <= 1
 *   erf(x) = 1 - exp(-x^2) * B(1 / (1 + |x|/2))  above, sign restored,
 * with A (degree 6), B (degree 8) and exp's E (degree 4, vm_exp_parts) fitted by
 * tools/fit_vmath.py, which also checks the float32 evaluation against a double erf: at most 0.99
 * ulp for |x| <= 1, 1.22 ulp above, 7.3e-8 absolute (tests/unit/test_kernels_isa.c holds every
 * table to 2 ulp and 1.2e-7 of libm's erff). For |x| > 3.92 erf rounds to +-1; +-inf give +-1, +-0
 * gives +-0 and a NaN comes back as itself.
 *
 * tanh: from the same exp as expm1 (vm_tanh), at most 2.49 ulp and 1.5e-7 from a double tanh
 * (tools/fit_vmath.py; SLEEF's faster vector tanh is a 3.5-ulp one), with no polynomial of its
 * own: SLEEF's was 40 % of ppo_gaussian's forward pass at batch 256.
 */
#ifndef CRL_KERNELS_VMATH_H
#define CRL_KERNELS_VMATH_H

#include <stddef.h>

/* tools/fit_vmath.py's output. */
#define VM_ERF_A                                                                                   \
    1.283791661e-01f, -3.761262596e-01f, 1.128358245e-01f, -2.685369179e-02f, 5.188099109e-03f,    \
        -8.008189034e-04f, 7.847259258e-05f
#define VM_ERF_B                                                                                   \
    -1.049210041e-04f, 2.840613127e-01f, 2.660674751e-01f, 3.207193315e-01f, -3.239291161e-02f,    \
        4.444895089e-01f, -3.485030830e-01f, 4.757333919e-02f, 1.820661686e-02f
#define VM_EXP_E                                                                                   \
    4.999998808e-01f, 1.666651815e-01f, 4.166953266e-02f, 8.368915878e-03f, 1.375140739e-03f

static inline VF vm_horner(const float *c, int deg, VF s) {
    VF r = vf_set1(c[deg]);
#pragma GCC unroll 16 /* -O2 keeps the loop otherwise, with a load and broadcast per step */
    for (int i = deg - 1; i >= 0; i--)
        r = vf_fma(r, s, vf_set1(c[i]));
    return r;
}

/* exp(x) = 2^n + 2^n P for x <= 0 (clamped at -87: beyond it erf and tanh are +-1 in float
 * anyway): Cody and Waite's reduction x = n ln2 + r, |r| <= ln2 / 2, and P = r + r^2 E(r). Returns
 * P and sets *pow2 = 2^n. Inline, unlike SLEEF's exp, whose call clobbers every vector register
 * (with it the polynomials' constants were reloaded and spilled around each call). */
static inline VF vm_exp_parts(VF x, VF *pow2) {
    static const float e[] = {VM_EXP_E};
    x = vf_max(x, vf_set1(-87.0f));
    VF n = vf_round(vf_mul(x, vf_set1(1.44269504f)));
    VF r = vf_fma(n, vf_set1(-0.693359375f), x);
    r = vf_fma(n, vf_set1(2.12194440e-4f), r);
    *pow2 = vf_pow2i(n);
    return vf_fma(vf_mul(r, r), vm_horner(e, (int)(sizeof e / sizeof e[0]) - 1, r), r);
}

static inline VF vm_erf(VF v) {
    static const float a[] = {VM_ERF_A}, b[] = {VM_ERF_B};
    const VF one = vf_set1(1.0f);
    VF x = vf_abs(v), s = vf_mul(x, x);
    VF small = vf_fma(x, vm_horner(a, (int)(sizeof a / sizeof a[0]) - 1, s), x);
    VF t = vf_div(one, vf_fma(x, vf_set1(0.5f), one));
    VF p2, p = vm_exp_parts(vf_mul(s, vf_set1(-1.0f)), &p2);
    VF big = vf_fnma(vf_fma(p2, p, p2), vm_horner(b, (int)(sizeof b / sizeof b[0]) - 1, t), one);
    return vf_keep_nan(v, vf_copysign(vf_pick_le(x, one, small, big), v));
}

/* The table's erf entry: x[i] = erf(x[i]). */
static void vm_erf_n(float *x, size_t n) {
    for (size_t i = 0; i < n; i += VW) {
        size_t m = n - i < VW ? n - i : VW;
        vf_store_n(x + i, vm_erf(vf_load_n(x + i, m)), m);
    }
}

/* The table's gelu entry: y = (x * (erf(x / c) + 1)) * 0.5 lane by lane, the float operations of
 * torch's exported Div, Erf, Add, Mul, Mul chain with this table's erf, so a fused GELU node gives
 * the unfused chain's bits. y may be x. */
static void vm_gelu_n(const float *x, float *y, size_t n, float c) {
    const VF vc = vf_set1(c), one = vf_set1(1.0f), half = vf_set1(0.5f);
    for (size_t i = 0; i < n; i += VW) {
        size_t m = n - i < VW ? n - i : VW;
        VF v = vf_load_n(x + i, m);
        VF e = vm_erf(vf_div(v, vc));
        vf_store_n(y + i, vf_mul(vf_mul(v, vf_add(e, one)), half), m);
    }
}

/* tanh(x) = -m / (2 + m) with m = expm1(-2|x|) = (2^n - 1) + 2^n P (2^n - 1 is exact, and m has
 * no cancellation near 0, so one formula serves every x), sign restored; +-inf give +-1, +-0 gives
 * +-0, a NaN comes back as itself. */
static inline VF vm_tanh(VF v) {
    VF x = vf_abs(v), p2;
    VF p = vm_exp_parts(vf_mul(x, vf_set1(-2.0f)), &p2); /* -2 abs(x), exactly */
    VF m = vf_fma(p2, p, vf_sub(p2, vf_set1(1.0f)));
    return vf_keep_nan(v, vf_copysign(vf_div(m, vf_sub(vf_set1(-2.0f), m)), v));
}

/* The table's tanh entry: x[i] = tanh(x[i]). */
static void vm_tanh_n(float *x, size_t n) {
    for (size_t i = 0; i < n; i += VW) {
        size_t m = n - i < VW ? n - i : VW;
        vf_store_n(x + i, vm_tanh(vf_load_n(x + i, m)), m);
    }
}

/* The table's layernorm entry (kernels.h), VW rows at a time: each row's sums are independent
 * work the CPU overlaps, and the VW square roots and divisions are one vector operation each. A
 * row's tail lanes are loaded as the mean, so they add nothing to the deviations. */
static void vm_layernorm(const float *x, size_t rows, size_t m, const float *gamma,
                         const float *beta, float eps, float *y) {
    for (size_t r0 = 0; r0 < rows; r0 += VW) {
        size_t nb = rows - r0 < VW ? rows - r0 : VW;
        const float *xb = x + r0 * m;
        float mean[VW], ss[VW] = {0}, inv[VW];
        for (size_t j = 0; j < nb; j++) {
            VF acc = vf_set1(0.0f);
            for (size_t i = 0; i < m; i += VW)
                acc = vf_add(acc, vf_load_n(xb + j * m + i, m - i < VW ? m - i : VW));
            mean[j] = vf_hsum(acc) / (float)m;
        }
        for (size_t j = 0; j < nb; j++) {
            VF vm = vf_set1(mean[j]), sd = vf_set1(0.0f), acc = vf_set1(0.0f);
            for (size_t i = 0; i < m; i += VW) {
                VF d = vf_sub(vf_load_n_fill(xb + j * m + i, m - i < VW ? m - i : VW, mean[j]), vm);
                sd = vf_add(sd, d);
                acc = vf_fma(d, d, acc);
            }
            /* The corrected two-pass algorithm: the deviations' own sum (the first mean's
             * rounding, m times) corrects the mean and the sum of squares. */
            float c = vf_hsum(sd);
            mean[j] += c / (float)m;
            ss[j] = vf_hsum(acc) - c * c / (float)m;
        }
        VF var = vf_add(vf_div(vf_max(vf_load_n(ss, VW), vf_set1(0.0f)), vf_set1((float)m)),
                        vf_set1(eps));
        vf_store_n(inv, vf_div(vf_set1(1.0f), vf_sqrt(var)), VW);
        for (size_t j = 0; j < nb; j++) {
            VF vm = vf_set1(mean[j]), vi = vf_set1(inv[j]);
            for (size_t i = 0; i < m; i += VW) {
                size_t n = m - i < VW ? m - i : VW;
                VF d = vf_mul(vf_sub(vf_load_n(xb + j * m + i, n), vm), vi);
                vf_store_n(y + (r0 + j) * m + i,
                           vf_fma(d, vf_load_n(gamma + i, n), vf_load_n(beta + i, n)), n);
            }
        }
    }
}

/* The table entries this header gives, for the ISA file's table initializer. */
#define VM_ENTRIES .tanh = vm_tanh_n, .erf = vm_erf_n, .gelu = vm_gelu_n, .layernorm = vm_layernorm

#endif
