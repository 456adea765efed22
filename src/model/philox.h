/* philox.h: Philox4x32-10, the counter-based generator of Salmon et al., "Parallel random numbers:
 * as easy as 1, 2, 3" (SC'11), as in Random123. A block is a pure function of (counter, key), so
 * a sample can be recomputed from its coordinates alone: no generator state travels between
 * requests, batches or workers.
 *
 * carlarl's mapping (docs/api.md "Sampling"; tools/make_example_artifact.py implements the same):
 *   key     = {seed & 0xffffffff, seed >> 32}
 *   counter = {observation index, action index, draw, 0}
 *   uniform53(a, b) = (((uint64)a << 32 | b) >> 11) * 2^-53        in [0, 1)
 *   normal(x)  = sqrt(-2 ln(1 - uniform53(x0, x1))) * cos(2 pi uniform53(x2, x3))   (Box-Muller,
 *                cosine branch only, all in double) */
#ifndef CRL_MODEL_PHILOX_H
#define CRL_MODEL_PHILOX_H

#include <stdint.h>

typedef struct crl_philox_block {
    uint32_t v[4];
} crl_philox_block_t;

/* One Philox4x32-10 block. */
crl_philox_block_t crl_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2]);

/* The block at counter (row, col, draw, 0) under the 64-bit seed. */
crl_philox_block_t crl_philox_at(uint64_t seed, uint32_t row, uint32_t col, uint32_t draw);

/* [0, 1) with 53 random bits from two words (a high, b low). */
double crl_philox_uniform53(uint32_t a, uint32_t b);

/* One standard normal variate from a block (Box-Muller, cosine branch). */
double crl_philox_normal(crl_philox_block_t b);

#endif
