/* kernels.h: the table of compute kernels. generic/ is plain C, always built, and is the reference
 * every ISA-specific table is tested against. The table is chosen once at start-up
 * (crl_kernels_select) and read through crl_kernels() afterwards. All matrices are row-major f32.
 */
#ifndef CRL_KERNELS_KERNELS_H
#define CRL_KERNELS_KERNELS_H

#include <stddef.h>

typedef struct crl_kernels {
    const char *name; /* "generic", later "avx2", "avx512", "neon" */
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
} crl_kernels_t;

/* The reference table. */
const crl_kernels_t *crl_kernels_generic(void);

/* Chooses the table for this CPU; `force` may name one ("generic") or be NULL. Returns the choice.
 * Unknown or unsupported names fall back to the best available and return it. */
const crl_kernels_t *crl_kernels_select(const char *force);

/* The table chosen by crl_kernels_select (generic before any selection). */
const crl_kernels_t *crl_kernels(void);

#endif
