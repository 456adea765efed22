/* philox.c: Philox4x32-10 (Random123's constants and round order) and the exact uniform/normal
 * mappings the policy heads use, so other implementations can reproduce carlarl's samples. */
#include "model/philox.h"

#include <math.h>

#define TWO_PI 6.283185307179586476925286766559 /* rounds to the double 2 * math.pi */

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u /* golden ratio */
#define PHILOX_W1 0xBB67AE85u /* sqrt(3) - 1 */

static inline void mulhilo(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo) {
    uint64_t p = (uint64_t)a * b;
    *hi = (uint32_t)(p >> 32);
    *lo = (uint32_t)p;
}

crl_philox_block_t crl_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        /* Random123 bumps the key before every round but the first. */
        if (round > 0) {
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        uint32_t hi0, lo0, hi1, lo1;
        mulhilo(PHILOX_M0, c0, &hi0, &lo0);
        mulhilo(PHILOX_M1, c2, &hi1, &lo1);
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
    }
    crl_philox_block_t b = {{c0, c1, c2, c3}};
    return b;
}

crl_philox_block_t crl_philox_at(uint64_t seed, uint32_t row, uint32_t col, uint32_t draw) {
    const uint32_t ctr[4] = {row, col, draw, 0};
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    return crl_philox4x32_10(ctr, key);
}

double crl_philox_uniform53(uint32_t a, uint32_t b) {
    uint64_t r = ((uint64_t)a << 32 | b) >> 11;
    return (double)r * 0x1p-53;
}

double crl_philox_normal(crl_philox_block_t b) {
    /* 1 - u lies in (0, 1], so the log is finite (at most sqrt(-2 ln 2^-53) ~ 8.57 sigma). */
    double u1 = 1.0 - crl_philox_uniform53(b.v[0], b.v[1]);
    double u2 = crl_philox_uniform53(b.v[2], b.v[3]);
    return sqrt(-2.0 * log(u1)) * cos(TWO_PI * u2);
}
