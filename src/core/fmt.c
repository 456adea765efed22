/* fmt.c: Python repr(float) for doubles. Every JSON writer goes through here, so an action value
 * prints exactly as the original service printed it: the shortest decimal that reads back to the
 * same double, fixed notation for decimal exponents -4..15 and exponent notation otherwise.
 *
 * Hot path (shortest_fast): for 2^-30 <= |d| < 2^64, which holds every action value and timing
 * the server writes, the shortest digits come from exact integer arithmetic: the rounding
 * interval of d, scaled by a power of ten, fits 128 bits exactly, and digits are dropped while a
 * multiple of the next power of ten still lies inside it. No printf, no strtod.
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
 * their count; *x = decimal exponent of the first digit. */
static int shortest(double a, char *dig, int *x) {
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

size_t crl_fmt_double(char *out, double d) {
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
    char dig[24];
    int x, nd = shortest(d, dig, &x);
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
    *o = '\0';
    return (size_t)(o - out);
}

size_t crl_fmt_json_double(char *out, double d) {
    if (!isfinite(d)) {
        memcpy(out, "null", 5);
        return 4;
    }
    return crl_fmt_double(out, d);
}
