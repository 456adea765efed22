/* kernels.h: the table of compute kernels. generic/ is plain C, always built, and is the reference
 * every ISA-specific table is tested against; avx2/ and avx512/ are built on x86_64 only and neon/
 * on aarch64 only, each with its own compiler flags. The table is chosen once at start-up
 * (crl_kernels_choose, from the CPU features hw/ detects) and read through crl_kernels()
 * afterwards. All matrices are row-major f32.
 */
#ifndef CRL_KERNELS_KERNELS_H
#define CRL_KERNELS_KERNELS_H

#include <stddef.h>
#include <stdint.h>

typedef struct crl_kernels {
    const char *name; /* "generic", "avx2", "avx512", "neon" */
    /* y[r][o] = sum_i x[r][i] * w[o][i] + (b ? b[o] : 0), for r < rows, o < out.
     * w is [out][in] (the PyTorch Linear / ONNX Gemm transB=1 layout); y must not alias x. */
    void (*linear)(const float *x, size_t rows, size_t in, const float *w, const float *b,
                   size_t out, float *y);
    void (*relu)(float *x, size_t n);
    void (*tanh)(float *x, size_t n);
    void (*sigmoid)(float *x, size_t n);
    void (*clip)(float *x, size_t n, float lo, float hi);
    /* x[r][c] += b[c] (row broadcast) */
    void (*add_row)(float *x, size_t rows, size_t cols, const float *b);
    /* x[i] = x[i] * alpha */
    void (*scale)(float *x, size_t n, float alpha);
    /* Optional weight packing, done once at load time (nn/graph.c), so that linear does not
     * re-arrange W on every call. NULL in a table that does not pack (generic). pack_size gives
     * the floats pack writes for a [out][in] W, or 0 when this table gains nothing from packing
     * that shape (the caller then uses linear with W as is). `packed` is 64-byte aligned and
     * belongs to this table only: another table must never read it. linear_packed gives exactly
     * the bits linear gives for the same W, for any number of rows. */
    size_t (*pack_size)(size_t in, size_t out);
    void (*pack)(const float *w, size_t in, size_t out, float *packed);
    void (*linear_packed)(const float *x, size_t rows, size_t in, const float *packed,
                          const float *b, size_t out, float *y);
    /* linear / linear_packed with a ReLU epilogue (nn/graph.c fuses a LINEAR whose only reader is
     * a RELU): exactly the bits of linear (linear_packed) followed by relu on y. NULL in a table
     * that has none (the caller then runs the two). */
    void (*linear_relu)(const float *x, size_t rows, size_t in, const float *w, const float *b,
                        size_t out, float *y);
    void (*linear_packed_relu)(const float *x, size_t rows, size_t in, const float *packed,
                               const float *b, size_t out, float *y);
    /* Optional implicit GEMM (a convolution without its im2col matrix): linear_packed, with a
     * ReLU epilogue when relu != 0, over the matrix whose row r is xr[r][off[0]], ...,
     * xr[r][off[in - 1]] (row r an output pixel, xr[r] its window's origin in the input, off[k]
     * input k's place in any window), for a W packed by pack: exactly the bits linear_packed
     * (linear_packed_relu) gives for that matrix. NULL in a table without it (generic). */
    void (*linear_packed_gather)(const float *const *xr, size_t rows, const int32_t *off, size_t in,
                                 const float *packed, const float *b, size_t out, float *y,
                                 int relu);
    /* bfloat16 weights with float32 accumulation (model.precision: bfloat16). All four are NULL
     * in a table without them; they are set only in the avx512 table handed out on CPUs with
     * AVX512_BF16 (see below). pack_bf16 rounds W to bf16 (to nearest even) in this table's
     * private layout, pack_bf16_size(in, out) bf16 values (0 when in or out is 0: nothing to
     * round, the caller uses linear), 64-byte aligned. linear_packed_bf16 rounds the activations
     * x to bf16 too (the hardware multiplies bf16 by bf16) and sums the exact products in f32,
     * starting from the bias; the result differs from linear by the rounding of both operands
     * (about 2^-9 relative each), not by a bf16 accumulator. Batch invariant like linear. */
    size_t (*pack_bf16_size)(size_t in, size_t out);
    void (*pack_bf16)(const float *w, size_t in, size_t out, uint16_t *packed);
    void (*linear_packed_bf16)(const float *x, size_t rows, size_t in, const uint16_t *packed,
                               const float *b, size_t out, float *y);
    void (*linear_packed_bf16_relu)(const float *x, size_t rows, size_t in, const uint16_t *packed,
                                    const float *b, size_t out, float *y);
    /* Optional vector exp and erf (the SIMD tables: SLEEF's 1-ulp exp; erf from vmath.h, within
     * 2 ulp of libm's erff; a NaN comes back as that NaN). NULL in generic: the graph then calls
     * libm's expf / erff per element. */
    void (*exp)(float *x, size_t n);
    void (*erf)(float *x, size_t n);
    /* Optional GELU, y = (x * (erf(x / c) + 1)) * 0.5 lane by lane with this table's erf: the
     * float operations of torch's exported erf chain, so the same bits (y may be x). NULL in
     * generic: the graph runs the chain with libm's erff. */
    void (*gelu)(const float *x, float *y, size_t n, float c);
    /* Optional LayerNormalization of `rows` rows of m: per row, mean and then the mean of the
     * squared deviations in float (torch's precision), inv = 1 / sqrt(var + eps), and
     * y = (x - mean) * inv * gamma + beta. Each row on its own: batch invariant. NULL in generic:
     * the graph computes the statistics in double. */
    void (*layernorm)(const float *x, size_t rows, size_t m, const float *gamma, const float *beta,
                      float eps, float *y);
} crl_kernels_t;

/* The reference table. */
const crl_kernels_t *crl_kernels_generic(void);

/* ISA tables, as CRL_ISA_* bits. */
enum {
    CRL_ISA_AVX2 = 1u << 0,
    CRL_ISA_AVX512 = 1u << 1,
    CRL_ISA_NEON = 1u << 2,
    /* Not a table of its own: the avx512 table with its bf16 entries set (kernels.c hands it out
     * in place of the plain one when the mask has both CRL_ISA_AVX512 and this bit). */
    CRL_ISA_AVX512_BF16 = 1u << 3,
};

/* The tables this CPU can run, from CRL_CPU_* feature bits (core/cpufeat.h): avx2 needs AVX2 and
 * FMA; avx512 needs AVX-512 F, BW, VL, DQ and FMA, and its bf16 entries (CRL_ISA_AVX512_BF16)
 * AVX512_BF16 as well; neon needs Advanced SIMD (CRL_CPU_NEON). A bit here does not mean the
 * table is compiled into this binary (crl_kernels_choose skips those that are not). */
unsigned crl_kernels_isas_for(unsigned cpu_features);

/* Chooses the best table among `allowed` (CRL_ISA_* mask; generic is always allowed), or the
 * one named by `force` ("generic", "avx2", "avx512", "neon") when it is allowed; logs a warning
 * and falls back to the best allowed when `force` names an unknown or not-allowed table. NULL or
 * "" means no preference. Preference: avx512 > avx2 > generic on x86_64, neon > generic on
 * aarch64. Makes the choice what crl_kernels()
 * returns, and returns it. */
const crl_kernels_t *crl_kernels_choose(unsigned allowed, const char *force);

/* The table named `name` if it is compiled into this binary, else NULL (for tests: the caller must
 * check that the CPU can run it). For "avx512" it is the variant without bf16 entries. */
const crl_kernels_t *crl_kernels_by_name(const char *name);

/* Deprecated: crl_kernels_choose(0, force), so always the generic table (a `force` naming another
 * one logs the fallback warning). Kept for the tests that pin the reference table with
 * crl_kernels_select("generic"); new code calls crl_kernels_choose. */
const crl_kernels_t *crl_kernels_select(const char *force);

/* The table chosen by crl_kernels_choose (generic before any choice). */
const crl_kernels_t *crl_kernels(void);

#if defined(__x86_64__)
/* Call only when crl_kernels_isas_for() has the table's bit: they use instructions older CPUs
 * lack. */
const crl_kernels_t *crl_kernels_avx2(void);
const crl_kernels_t *crl_kernels_avx512(void);
/* The avx512 table (same name, same float32 functions) with the bf16 entries set; needs
 * CRL_ISA_AVX512_BF16 too. There are two variants rather than one table so that the bf16 code,
 * compiled with -mavx512bf16, is reachable only on CPUs that have the instructions: kernels.c
 * hands this one out (crl_kernels_choose) only when the allowed mask has CRL_ISA_AVX512_BF16. */
const crl_kernels_t *crl_kernels_avx512_bf16(void);
#elif defined(__aarch64__)
/* Call only when crl_kernels_isas_for() has CRL_ISA_NEON. */
const crl_kernels_t *crl_kernels_neon(void);
#endif

#endif
