/* bf16.h: the bfloat16 linear kernels of the "avx512" table (avx512bf16/bf16.c, built with
 * -mavx512bf16 on that file alone). Module-internal: only avx512/avx512.c puts them in a table,
 * the one kernels.c hands out when the CPU has AVX512_BF16 (kernels.h explains the two variants of
 * the avx512 table). The prototypes are those of the kernels.h entries of the same names. */
#ifndef CRL_KERNELS_AVX512BF16_BF16_H
#define CRL_KERNELS_AVX512BF16_BF16_H

#include <stddef.h>
#include <stdint.h>

size_t crl_kernels__bf16_pack_size(size_t in, size_t out);
void crl_kernels__bf16_pack(const float *w, size_t in, size_t out, uint16_t *packed);
void crl_kernels__bf16_linear_packed(const float *x, size_t rows, size_t in, const uint16_t *packed,
                                     const float *b, size_t out, float *y);
void crl_kernels__bf16_linear_packed_relu(const float *x, size_t rows, size_t in,
                                          const uint16_t *packed, const float *b, size_t out,
                                          float *y);

#endif
