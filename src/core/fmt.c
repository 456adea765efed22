/* fmt.c: Python repr(float) for doubles. Every JSON writer goes through here, so an action value
 * prints exactly as the original service printed it: the shortest decimal that reads back to the
 * same double, fixed notation for decimal exponents -4..15 and exponent notation otherwise.
 *
 * Hot path (shortest_fast, about 300 instructions a call): for 2^-30 <= |d| < 2^64, which holds
 * nearly every action value and timing the server writes, the shortest digits come from exact
 * integer arithmetic: the rounding interval of d, scaled by a power of ten, fits 128 bits exactly,
 * and digits are dropped while a multiple of the next power of ten still lies inside it. No
 * printf, no strtod (the old path alone cost about 4000 instructions, mostly glibc's printf).
 *
 * Everything else (subnormals, huge and tiny exponents) takes shortest_slow: one
 * snprintf("%.16e") yields 17 correctly rounded digits; the 15- and 16-digit candidates are derived
 * from them with integer arithmetic and checked with an exact (Clinger fast path) conversion.
 * Both paths are compared digit for digit by tests/unit/test_fmt.c. */
#include "core/fmt.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double k_pow10d[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                    1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                    1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static const uint64_t k_pow10u[20] = {1ULL,
                                      10ULL,
                                      100ULL,
                                      1000ULL,
                                      10000ULL,
                                      100000ULL,
                                      1000000ULL,
                                      10000000ULL,
                                      100000000ULL,
                                      1000000000ULL,
                                      10000000000ULL,
                                      100000000000ULL,
                                      1000000000000ULL,
                                      10000000000000ULL,
                                      100000000000000ULL,
                                      1000000000000000ULL,
                                      10000000000000000ULL,
                                      100000000000000000ULL,
                                      1000000000000000000ULL,
                                      10000000000000000000ULL};

/* Writes the decimal digits of v (no leading zeros, at least one digit); returns their count. */
static int u64_digits(char *out, uint64_t v) {
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (int i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

/* The double nearest to m * 10^k. Exact when m < 2^53 and |k| <= 22 (both operands exact, one
 * correctly rounded operation); otherwise strtod, which glibc rounds correctly. */
static double dec_to_double(uint64_t m, int k) {
    if (m < (1ULL << 53) && k >= -22 && k <= 22)
        return k >= 0 ? (double)m * k_pow10d[k] : (double)m / k_pow10d[-k];
    char tmp[48];
    int n = u64_digits(tmp, m);
    snprintf(tmp + n, sizeof(tmp) - (size_t)n, "e%d", k);
    return strtod(tmp, NULL);
}

/* Parses "d.ddde[+-]x" as written by "%.*e" into its digits (as an integer) and exponent. */
static void parse_sci(const char *s, uint64_t *m, int *e10) {
    uint64_t v = 0;
    for (; *s && *s != 'e'; s++)
        if (*s >= '0' && *s <= '9') v = v * 10 + (uint64_t)(*s - '0');
    *m = v;
    *e10 = *s == 'e' ? atoi(s + 1) : 0;
}

/* q (n digits) rounded from the 17 digits m17, or exactly via printf when the dropped digits
 * sit on the half-way point (the 17-digit string may itself be rounded there). */
static void round_to(double a, uint64_t m17, int e17, int n, uint64_t *q, int *e10) {
    uint64_t div = k_pow10u[17 - n], r = m17 % div, half = div / 2;
    uint64_t v = m17 / div;
    int e = e17;
    if (r == half) {
        char buf[40];
        snprintf(buf, sizeof(buf), "%.*e", n - 1, a);
        parse_sci(buf, &v, &e);
    } else if (r > half) {
        v++;
        if (v == k_pow10u[n]) {
            v = k_pow10u[n - 1];
            e++;
        }
    }
    *q = v;
    *e10 = e;
}

/* Whether a (normal, > 0) has an all-zero fraction: the one place where the rounding interval is
 * lopsided. */
static int is_pow2(double a) {
    uint64_t b;
    memcpy(&b, &a, sizeof(b));
    return (b & ((1ULL << 52) - 1)) == 0;
}

/* Shortest round-trip digits of a finite a > 0: digits into dig (no trailing zeros), returns
 * their count; *x = decimal exponent of the first digit. Handles every double; the fallback of
 * shortest_fast. */
static int shortest_slow(double a, char *dig, int *x) {
    char buf[40];
    uint64_t m17, q = 0;
    int e17, e = 0, n, found = 0;
    if (a < 2.2250738585072014e-308) {
        /* Subnormals carry fewer bits than 15 digits can name, so search upwards instead. */
        for (n = 1; n <= 17; n++) {
            snprintf(buf, sizeof(buf), "%.*e", n - 1, a);
            if (strtod(buf, NULL) == a) break;
        }
        parse_sci(buf, &q, &e);
        *x = e;
        while (q % 10 == 0 && q > 0)
            q /= 10;
        return u64_digits(dig, q);
    }
    snprintf(buf, sizeof(buf), "%.16e", a);
    parse_sci(buf, &m17, &e17);
    for (n = 15; n <= 16 && !found; n++) {
        round_to(a, m17, e17, n, &q, &e);
        double back = dec_to_double(q, e - (n - 1));
        if (back == a) {
            found = 1;
        } else if (n == 16 && back < a && is_pow2(a)) {
            /* At a power of two the interval below a is half as wide as the one above, so the
             * nearest 16-digit decimal may miss while the next one up still reads back. */
            uint64_t q2 = q + 1;
            int e2 = e;
            if (q2 == k_pow10u[16]) {
                q2 = k_pow10u[15];
                e2++;
            }
            if (dec_to_double(q2, e2 - 15) == a) {
                q = q2;
                e = e2;
                found = 1;
            }
        }
    }
    if (!found) {
        q = m17;
        e = e17;
    }
    while (q % 10 == 0 && q > 0)
        q /= 10;
    *x = e;
    return u64_digits(dig, q);
}

/* 5^0 .. 5^27: every power of five below 2^64. */
static const uint64_t k_pow5[28] = {1ULL,
                                    5ULL,
                                    25ULL,
                                    125ULL,
                                    625ULL,
                                    3125ULL,
                                    15625ULL,
                                    78125ULL,
                                    390625ULL,
                                    1953125ULL,
                                    9765625ULL,
                                    48828125ULL,
                                    244140625ULL,
                                    1220703125ULL,
                                    6103515625ULL,
                                    30517578125ULL,
                                    152587890625ULL,
                                    762939453125ULL,
                                    3814697265625ULL,
                                    19073486328125ULL,
                                    95367431640625ULL,
                                    476837158203125ULL,
                                    2384185791015625ULL,
                                    11920928955078125ULL,
                                    59604644775390625ULL,
                                    298023223876953125ULL,
                                    1490116119384765625ULL,
                                    7450580596923828125ULL};

/* "00".."99": two digits per lookup. */
static const char k_digits2[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233"
    "34353637383940414243444546474849505152535455565758596061626364656667"
    "6869707172737475767778798081828384858687888990919293949596979899";

__extension__ typedef unsigned __int128 u128;

/* Binary exponents (value = mantissa * 2^e2, mantissa in [2^52, 2^53)) the fast path takes: above
 * FAST_E2_MAX the scale 10^s would have to be below 1, below FAST_E2_MIN 5^s no longer fits 64
 * bits. That is 2^-30 <= a < 2^64. */
#define FAST_E2_MIN (-82)
#define FAST_E2_MAX 11

/* The 8 decimal digits of v < 10^8 (leading zeros kept) as ASCII, the first in the low byte,
 * with no division in a loop: v splits into two 4-digit halves in 32-bit lanes, each lane into
 * two 2-digit halves in 16-bit lanes (n / 100 == n * 10486 >> 20 for n < 10^4), each of those
 * into tens and units in bytes (n / 10 == n * 103 >> 10 for n < 100). No lane overflows into the
 * next. Checked against printf for every v below 10^8 while this was written; test_fmt.c rechecks
 * a sample. */
static uint64_t swar8(uint32_t v) {
    uint32_t hi4 = v / 10000, lo4 = v - hi4 * 10000;
    uint64_t x = hi4 | ((uint64_t)lo4 << 32);
    uint64_t q = ((x * 10486) >> 20) & 0x0000007F0000007FULL;
    uint64_t z = q | ((x - q * 100) << 16);
    uint64_t t = ((z * 103) >> 10) & 0x000F000F000F000FULL;
    return (t | ((z - t * 10) << 8)) + 0x3030303030303030ULL;
}

/* Stores the 8 bytes of w at p, its low byte first. */
static void store8(char *p, uint64_t w) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(p, &w, sizeof(w));
#else
    for (int i = 0; i < 8; i++)
        p[i] = (char)(w >> (8 * i));
#endif
}

/* Writes the nd digits (1 <= nd <= 17) of v (10^(nd-1) <= v < 10^nd) at p. The leading group is
 * written as a full 8 bytes with its leading zeros shifted out, so up to 8 - nd bytes past the
 * digits may be scribbled on when nd < 8: callers leave that room (out holds 32 bytes). */
static void put_digits(char *p, uint64_t v, int nd) {
    if (nd <= 8) {
        store8(p, swar8((uint32_t)v) >> (8 * (8 - nd)));
        return;
    }
    uint64_t q = v / 100000000;
    uint32_t low = (uint32_t)(v - q * 100000000);
    if (nd <= 16) {
        int lead = nd - 8;
        store8(p, swar8((uint32_t)q) >> (8 * (8 - lead)));
        store8(p + lead, swar8(low));
        return;
    }
    uint64_t q2 = q / 100000000; /* 17 digits: a single digit above two full groups */
    p[0] = (char)('0' + q2);
    store8(p + 1, swar8((uint32_t)(q - q2 * 100000000)));
    store8(p + 9, swar8(low));
}

/* Number of decimal digits of v > 0: floor(bits * log10(2)) is the count or one less. */
static int digit_count(uint64_t v) {
    int bits = 64 - __builtin_clzll(v);
    int t = (bits * 1233) >> 12;
    return t + (v >= k_pow10u[t]);
}

/* Shortest round-trip digits of a finite a > 0, exactly as shortest_slow finds them, without
 * printf: *digits (no trailing zeros) has *nd digits, *x is the decimal exponent of the first.
 * Returns 0, touching nothing, when a is outside the fast range.
 *
 * Method: a = m * 2^e2. Every real in the rounding interval [a - lo_ulp/2, a + ulp/2] reads back
 * as a (the ends too when m is even: strtod rounds ties to even), where lo_ulp is half of ulp
 * when m is a power of two. Scaled by 10^s = 5^s * 2^s and by 4 (so the half- and quarter-ulps
 * are integers) the three points are X * 5^s / 2^sh with X = 4m and 4m - 1 or 4m - 2 and 4m + 2:
 * 128-bit integers divided by a power of two, so their floors and whether they are exact come
 * from one shift. s is chosen so the scaled upper end is below 2^64 but has 18 or more digits, so
 * the answer (at most 17 digits) drops at least one. Then digits are dropped while some multiple
 * of the next power of ten is still inside the interval; among the candidates left the one
 * nearest to a wins, ties to even, as in Python's dtoa. */
static int shortest_fast(double a, uint64_t *digits, int *nd, int *x) {
    uint64_t bits;
    memcpy(&bits, &a, sizeof(bits));
    uint64_t frac = bits & ((1ULL << 52) - 1);
    int e2 = (int)((bits >> 52) & 0x7ff) - 1075;
    if (e2 < FAST_E2_MIN || e2 > FAST_E2_MAX) return 0;
    uint64_t m = frac | (1ULL << 52);
    int inclusive = (m & 1) == 0;
    /* s = floor((11 - e2) * log10(2)), so 2^(53 + e2) * 10^s <= 2^64; exact for this range. */
    int s = ((11 - e2) * 78913) >> 18;
    int sh = 2 - e2 - s; /* 1..57 for e2 <= -2, -9..0 above */
    uint64_t p5 = k_pow5[s];
    u128 nv = (u128)(m << 2) * p5;
    u128 nu = nv + ((u128)p5 << 1);
    u128 nl = nv - (frac == 0 ? (u128)p5 : (u128)p5 << 1);
    uint64_t b, hi, lo;
    int v_exact, u_exact, l_exact;
    if (sh > 0) {
        /* 0 < sh < 64: the dropped bits are all in the low word, and spelling the shift out
         * spares the compiler's general 128-bit shift */
        int up = 64 - sh;
        uint64_t v0 = (uint64_t)nv, u0 = (uint64_t)nu, l0 = (uint64_t)nl;
        b = (v0 >> sh) | ((uint64_t)(nv >> 64) << up);
        hi = (u0 >> sh) | ((uint64_t)(nu >> 64) << up);
        lo = (l0 >> sh) | ((uint64_t)(nl >> 64) << up);
        v_exact = (v0 << up) == 0;
        u_exact = (u0 << up) == 0;
        l_exact = (l0 << up) == 0;
    } else {
        b = (uint64_t)nv << -sh; /* e2 >= -1: small enough that no bit leaves the low word */
        hi = (uint64_t)nu << -sh;
        lo = (uint64_t)nl << -sh;
        v_exact = u_exact = l_exact = 1;
    }
    /* Allowed scaled integers are (lo, hi]: hi the largest inside, lo the largest below. */
    hi -= (uint64_t)(u_exact & !inclusive);
    lo -= (uint64_t)(l_exact & inclusive);

    /* Drop digits while a multiple of 10^(k+1) stays in (lo, hi]. The interval is 2^e2 * 10^s
     * wide, at least 2^11 / 10 > 100 by the choice of s, so the first two always go. */
    uint64_t b0 = b;
    int k = 2;
    b /= 100;
    hi /= 100;
    lo /= 100;
    for (;;) {
        uint64_t h100 = hi / 100, l100 = lo / 100;
        if (h100 <= l100) break;
        b /= 100;
        hi = h100;
        lo = l100;
        k += 2;
    }
    if (hi / 10 > lo / 10) {
        b /= 10;
        hi /= 10;
        lo /= 10;
        k++;
    }
    /* Nearest to a: round b by what was dropped (plus the fraction below b0 when a is not exact
     * at this scale), half to even, then keep it inside (lo, hi]: the interval is lopsided at a
     * power of two, so the nearest may fall just below it. */
    uint64_t rem = b0 - b * k_pow10u[k], half = k_pow10u[k] >> 1;
    uint64_t d = b + (uint64_t)(rem > half || (rem == half && (!v_exact || (b & 1))));
    if (d <= lo) d = lo + 1;
    if (d > hi) d = hi;
    while (d % 10 == 0) { /* cannot happen: d / 10 would have fit one step further */
        d /= 10;
        k++;
    }
    int n = digit_count(d);
    *digits = d;
    *nd = n;
    *x = n - 1 + k - s;
    return 1;
}

/* format_digits for the fast path: the same layout, written straight from the integer. Digits
 * that need a point after the first ip of them are written one place to the right and the first
 * ip moved back, which is short: ip is 1 in exponent form and small for the usual values. At most
 * 24 bytes are touched (a sign, "0.000", 17 digits; or a sign, 17 digits, ".", "e+dd"; put_digits
 * spills only when the digits are few). */
static char *format_fast(char *o, uint64_t d, int nd, int x) {
    if (x < -4 || x >= 16) {
        put_digits(o + 1, d, nd);
        o[0] = o[1];
        if (nd > 1) {
            o[1] = '.';
            o += nd + 1;
        } else {
            o += 1;
        }
        *o++ = 'e';
        *o++ = x < 0 ? '-' : '+';
        int ax = x < 0 ? -x : x;
        if (ax < 100) {
            memcpy(o, k_digits2 + 2 * ax, 2);
            o += 2;
        } else {
            o += u64_digits(o, (uint64_t)ax);
        }
    } else if (x < 0) {
        memcpy(o, "0.000", 5);
        o += 1 - x; /* "0." and -x - 1 zeros (0..3) */
        put_digits(o, d, nd);
        o += nd;
    } else {
        int ip = x + 1; /* digits before the point */
        if (nd > ip) {
            put_digits(o + 1, d, nd);
            for (int i = 0; i < ip; i++)
                o[i] = o[i + 1];
            o[ip] = '.';
            o += nd + 1;
        } else {
            put_digits(o, d, nd);
            o += nd;
            memset(o, '0', (size_t)(ip - nd));
            o += ip - nd;
            *o++ = '.';
            *o++ = '0';
        }
    }
    return o;
}

/* Writes the digits dig[0..nd) with decimal exponent x (of the first digit) as Python's repr
 * lays them out; returns the end of the output (not NUL-terminated). */
static char *format_digits(char *o, const char *dig, int nd, int x) {
    if (x < -4 || x >= 16) {
        /* Python's repr switches to exponent form outside 1e-4 <= |d| < 1e16. */
        *o++ = dig[0];
        if (nd > 1) {
            *o++ = '.';
            memcpy(o, dig + 1, (size_t)nd - 1);
            o += nd - 1;
        }
        *o++ = 'e';
        *o++ = x < 0 ? '-' : '+';
        int ax = x < 0 ? -x : x;
        if (ax < 10) *o++ = '0';
        o += u64_digits(o, (uint64_t)ax);
    } else if (x < 0) {
        *o++ = '0';
        *o++ = '.';
        for (int i = 0; i < -x - 1; i++)
            *o++ = '0';
        memcpy(o, dig, (size_t)nd);
        o += nd;
    } else {
        int ip = x + 1; /* digits before the point */
        for (int i = 0; i < ip; i++)
            *o++ = i < nd ? dig[i] : '0';
        *o++ = '.';
        if (nd > ip) {
            memcpy(o, dig + ip, (size_t)(nd - ip));
            o += nd - ip;
        } else {
            *o++ = '0';
        }
    }
    return o;
}

/* crl_fmt_double with the fast path switchable, so the test can hold each path (digits and
 * layout) against the other. */
static size_t fmt_double_with(char *out, double d, int use_fast) {
    char *o = out;
    if (isnan(d)) {
        memcpy(out, "nan", 4);
        return 3;
    }
    if (signbit(d)) {
        *o++ = '-';
        d = -d;
    }
    if (isinf(d)) {
        memcpy(o, "inf", 4);
        return (size_t)(o - out) + 3;
    }
    if (d == 0.0) {
        memcpy(o, "0.0", 4);
        return (size_t)(o - out) + 3;
    }
    uint64_t digits;
    int nd, x;
    if (use_fast && shortest_fast(d, &digits, &nd, &x)) {
        o = format_fast(o, digits, nd, x);
    } else {
        char dig[24];
        nd = shortest_slow(d, dig, &x);
        o = format_digits(o, dig, nd, x);
    }
    *o = '\0';
    return (size_t)(o - out);
}

size_t crl_fmt_double(char *out, double d) {
    return fmt_double_with(out, d, 1);
}

size_t crl_fmt_json_double(char *out, double d) {
    if (!isfinite(d)) {
        memcpy(out, "null", 5);
        return 4;
    }
    return crl_fmt_double(out, d);
}
