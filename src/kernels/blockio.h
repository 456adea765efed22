/* blockio.h: how the SIMD tables' register blocks (block() in avx2/, avx512/, neon/; panels.h)
 * start and end (block_mode), and where they read their inputs (xsrc). Inputs come from either a
 * matrix, row r's input k at x[r * in + k], or a gather, row r's input k at rows[r][off[k]]: the
 * implicit-GEMM convolution (kernels.h, linear_packed_gather), whose row r is output pixel r's
 * window read where it lies (rows[r] at the window's origin, off[k] input k's place within any
 * window), so the im2col matrix is never written. Which one is a constant after inlining: the
 * callers pass a literal `gather`, so each block is compiled once per kind.
 */
#ifndef CRL_KERNELS_BLOCKIO_H
#define CRL_KERNELS_BLOCKIO_H

#include <stddef.h>
#include <stdint.h>

/* How a block starts and ends. */
typedef enum block_mode {
    MODE_FIRST, /* from the bias (or +0); store */
    MODE_CONT,  /* from y (a later chunk of the same chain); store */
    MODE_ADD    /* from +0; store y + the sum (the second chain of a split, panels.h split_at) */
} block_mode;

typedef struct xsrc {
    const float *x;           /* the matrix (gather 0) */
    size_t in;                /* its row length */
    const float *const *rows; /* the gather's row origins (gather 1) */
    const int32_t *off;       /* the gather's input offsets (gather 1) */
} xsrc;

/* The address of row r's input k. */
static inline __attribute__((always_inline)) const float *xs_at(int gather, xsrc s, size_t r,
                                                                size_t k) {
    return gather ? s.rows[r] + s.off[k] : s.x + r * s.in + k;
}

/* The same source from row r on. */
static inline __attribute__((always_inline)) xsrc xs_row(int gather, xsrc s, size_t r) {
    if (gather)
        s.rows += r;
    else
        s.x += r * s.in;
    return s;
}

/* The same source from input k on (the second chain of a split sum). */
static inline __attribute__((always_inline)) xsrc xs_col(int gather, xsrc s, size_t k) {
    if (gather)
        s.off += k;
    else
        s.x += k;
    return s;
}

#endif
