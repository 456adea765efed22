/* predict.c: the POST /predict body reader. One pass over the bytes does two jobs at once:
 *  - JSON syntax exactly as Python's json.loads (3.13) sees it, with its error offsets, and
 *  - pydantic v2 lax validation of PredictRequest, with pydantic's messages and error order.
 * Values go straight into the parser's flat float arrays; nothing is allocated per number.
 *
 * Error order follows pydantic: model fields in schema order (speed, steering, sensors;
 * observations, deterministic, seed), list items by index. Scalars (speed, steering, deterministic)
 * are held back and inserted at their place when their object closes; list errors land in place. A
 * JSON syntax error anywhere discards every schema error, as json.loads runs first. */
#include "json/predict.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fmt.h"

/* A 16 MiB body holds at most 8 Mi values ("0," each); more means a cap was raised elsewhere. */
#define MAX_TOTAL_SENSORS ((size_t)8 << 20)
#define NUM_INLINE 512 /* number literals up to this length are converted from a stack copy */

#define FAIL_JSON 1
#define FAIL_NOMEM 2

#define T_MISSING "missing"
#define M_MISSING "Field required"
#define T_FLOAT_TYPE "float_type"
#define M_FLOAT_TYPE "Input should be a valid number"
#define T_FLOAT_PARSING "float_parsing"
#define M_FLOAT_PARSING "Input should be a valid number, unable to parse string as a number"
#define T_FINITE "finite_number"
#define M_FINITE "Input should be a finite number"
#define T_BOOL_TYPE "bool_type"
#define M_BOOL_TYPE "Input should be a valid boolean"
#define T_BOOL_PARSING "bool_parsing"
#define M_BOOL_PARSING "Input should be a valid boolean, unable to interpret input"
#define T_INT_TYPE "int_type"
#define M_INT_TYPE "Input should be a valid integer"
#define T_INT_PARSING "int_parsing"
#define M_INT_PARSING "Input should be a valid integer, unable to parse string as an integer"
#define T_INT_FRACTION "int_from_float"
#define M_INT_FRACTION "Input should be a valid integer, got a number with a fractional part"
#define T_INT_SIZE "int_parsing_size"
#define M_INT_SIZE "Unable to parse input string as an integer, exceeded maximum size"
#define T_GE "greater_than_equal"
#define M_SEED_GE "Input should be greater than or equal to 0"
#define T_LE "less_than_equal"
#define M_SEED_LE "Input should be less than or equal to 18446744073709551615"
#define T_MODEL "model_attributes_type"
#define M_MODEL "Input should be a valid dictionary or object to extract fields from"

struct crl_predict_parser {
    float *speed, *steering;
    uint32_t *off, *len;
    size_t rows_cap;
    float *sensors;
    size_t sensors_cap;
    char *scratch; /* decoded strings that contained escapes */
    size_t scratch_cap;
    crl_verr_t errs[CRL_PREDICT_MAX_ERRORS];
    size_t n_stored, n_total;
};

typedef struct rd {
    crl_predict_parser_t *p;
    const unsigned char *s;
    size_t len, pos;
    size_t base; /* first byte after a UTF-8 BOM: Python decodes bytes with utf-8-sig */
    int depth;
    int fail; /* FAIL_JSON or FAIL_NOMEM stops the parse */
    size_t fail_pos;
    size_t n_rows, n_sens;
    size_t scratch_len;
} rd_t;

enum { JV_NUM, JV_STR, JV_TRUE, JV_FALSE, JV_NULL, JV_ARR, JV_OBJ };
#define WANT_STR 1 /* decode strings (escapes resolved) */
#define WANT_NUM 2 /* convert numbers */

typedef struct jv {
    int kind;
    int num_int;     /* integer literal: no fraction, no exponent, not NaN/Infinity */
    double num;      /* when WANT_NUM */
    const char *lit; /* number literal in the body */
    size_t lit_len;
    const char *str; /* decoded string when WANT_STR */
    size_t str_len;
} jv_t;

/* ---- errors ---------------------------------------------------------------------------------- */

/* Inserts an error at logical position `at` of the document-ordered list. Only the first
 * CRL_PREDICT_MAX_ERRORS are stored (n_stored == min(n_total, max) always holds); the field is
 * formatted only then, so a valid request never pays for it. */
static void err_vinsert(crl_predict_parser_t *p, size_t at, const char *type, const char *msg,
                        const char *fmt, va_list ap) {
    if (at > p->n_total) at = p->n_total;
    p->n_total++;
    if (at >= CRL_PREDICT_MAX_ERRORS) return;
    size_t keep = p->n_stored < CRL_PREDICT_MAX_ERRORS ? p->n_stored : CRL_PREDICT_MAX_ERRORS - 1;
    if (keep > at) memmove(&p->errs[at + 1], &p->errs[at], (keep - at) * sizeof(p->errs[0]));
    crl_verr_t *e = &p->errs[at];
    vsnprintf(e->field, sizeof(e->field), fmt, ap); /* truncates safely */
    snprintf(e->message, sizeof(e->message), "%s", msg);
    e->type = type;
    p->n_stored = keep + 1;
}

static void err_insert(crl_predict_parser_t *p, size_t at, const char *type, const char *msg,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void err_insert(crl_predict_parser_t *p, size_t at, const char *type, const char *msg,
                       const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    err_vinsert(p, at, type, msg, fmt, ap);
    va_end(ap);
}

static void err_add(crl_predict_parser_t *p, const char *type, const char *msg, const char *fmt,
                    ...) __attribute__((format(printf, 4, 5)));
static void err_add(crl_predict_parser_t *p, const char *type, const char *msg, const char *fmt,
                    ...) {
    va_list ap;
    va_start(ap, fmt);
    err_vinsert(p, p->n_total, type, msg, fmt, ap);
    va_end(ap);
}

/* Drops every error after logical position `mark` (a duplicate key or an overlong list). */
static void err_rollback(crl_predict_parser_t *p, size_t mark) {
    if (mark >= p->n_total) return;
    p->n_total = mark;
    if (p->n_stored > mark) p->n_stored = mark;
}

static int jfail(rd_t *r, size_t pos) {
    if (!r->fail) {
        r->fail = FAIL_JSON;
        r->fail_pos = pos;
    }
    return -1;
}

static int nomem(rd_t *r) {
    if (!r->fail) r->fail = FAIL_NOMEM;
    return -1;
}

/* ---- storage --------------------------------------------------------------------------------- */

static int grow(void **ptr, size_t *cap, size_t need, size_t elem, size_t first, size_t limit) {
    if (need <= *cap) return 0;
    if (need > limit) return -1;
    size_t c = *cap ? *cap : first;
    while (c < need)
        c *= 2;
    if (c > limit) c = limit;
    void *n = realloc(*ptr, c * elem);
    if (!n) return -1;
    *ptr = n;
    *cap = c;
    return 0;
}

static int rows_reserve(rd_t *r, size_t need) {
    crl_predict_parser_t *p = r->p;
    if (need <= p->rows_cap) return 0;
    size_t c = p->rows_cap;
    size_t c1 = c, c2 = c, c3 = c, c4 = c;
    const size_t lim = CRL_PREDICT_MAX_OBSERVATIONS;
    if (grow((void **)&p->speed, &c1, need, sizeof(float), 16, lim) ||
        grow((void **)&p->steering, &c2, need, sizeof(float), 16, lim) ||
        grow((void **)&p->off, &c3, need, sizeof(uint32_t), 16, lim) ||
        grow((void **)&p->len, &c4, need, sizeof(uint32_t), 16, lim))
        return nomem(r);
    /* All four grow by the same rule, so they end equal. */
    p->rows_cap = c1;
    return 0;
}

static int scratch_put(rd_t *r, const void *src, size_t n) {
    crl_predict_parser_t *p = r->p;
    if (n == 0) return 0;
    if (grow((void **)&p->scratch, &p->scratch_cap, r->scratch_len + n, 1, 256, (size_t)-1 / 2))
        return nomem(r);
    memcpy(p->scratch + r->scratch_len, src, n);
    r->scratch_len += n;
    return 0;
}

/* ---- lexing ---------------------------------------------------------------------------------- */

static inline void skip_ws(rd_t *r) {
    while (r->pos < r->len) {
        unsigned char c = r->s[r->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        r->pos++;
    }
}

static inline int peek(const rd_t *r) {
    return r->pos < r->len ? r->s[r->pos] : -1;
}

/* Length of the valid UTF-8 sequence at s, or 0. Encoded surrogates pass, because Python
 * decodes request bodies with errors="surrogatepass". */
static size_t utf8_len(const unsigned char *s, size_t avail) {
    unsigned c = s[0];
    if (c < 0xC2) return 0;
    if (c < 0xE0) return avail >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c < 0xF0) {
        if (avail < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
        return c == 0xE0 && s[1] < 0xA0 ? 0 : 3;
    }
    if (c < 0xF5) {
        if (avail < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
            return 0;
        if (c == 0xF0 && s[1] < 0x90) return 0;
        if (c == 0xF4 && s[1] >= 0x90) return 0;
        return 4;
    }
    return 0;
}

/* Whether at least n characters (code points) start at byte `from`; Python's bounds checks on
 * \u escapes count characters, not bytes. */
static int have_chars(const rd_t *r, size_t from, size_t n) {
    size_t got = 0;
    for (size_t i = from; i < r->len && got < n; i++)
        if ((r->s[i] & 0xC0) != 0x80) got++;
    return got >= n;
}

static int hex4(const unsigned char *s, uint32_t *out) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return 0;
    }
    *out = v;
    return 1;
}

static size_t utf8_put(char *o, uint32_t cp) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Reads one escape at r->s[b] == '\\'; error offsets as CPython's scanstring. Returns the
 * code point via *cp and the index after the escape, or 0 on error (r->fail set). */
static size_t scan_escape(rd_t *r, size_t q, size_t b, uint32_t *cp) {
    const unsigned char *s = r->s;
    if (b + 1 >= r->len) return jfail(r, q), 0; /* unterminated string */
    switch (s[b + 1]) {
    case '"':
        *cp = '"';
        return b + 2;
    case '\\':
        *cp = '\\';
        return b + 2;
    case '/':
        *cp = '/';
        return b + 2;
    case 'b':
        *cp = '\b';
        return b + 2;
    case 'f':
        *cp = '\f';
        return b + 2;
    case 'n':
        *cp = '\n';
        return b + 2;
    case 'r':
        *cp = '\r';
        return b + 2;
    case 't':
        *cp = '\t';
        return b + 2;
    case 'u':
        break;
    default:
        return jfail(r, b), 0; /* invalid \escape */
    }
    /* Python wants the 4 digits plus one more character before it looks at the digits. */
    if (!have_chars(r, b + 2, 5) || !hex4(s + b + 2, cp)) return jfail(r, b + 1), 0;
    size_t i = b + 6;
    uint32_t lo;
    if (*cp >= 0xD800 && *cp <= 0xDBFF && i + 1 < r->len && s[i] == '\\' && s[i + 1] == 'u' &&
        have_chars(r, i + 2, 5) && hex4(s + i + 2, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
        *cp = 0x10000 + ((*cp - 0xD800) << 10) + (lo - 0xDC00);
        i += 6;
    }
    /* A lone surrogate stays a lone surrogate, as in Python (written here as WTF-8). */
    return i;
}

/* Scans the string at r->pos (a '"'). With decode, out and olen receive its value: a pointer into
 * the body when it has no escapes, else into the scratch buffer. */
static int scan_string(rd_t *r, int decode, const char **out, size_t *olen) {
    const unsigned char *s = r->s;
    size_t q = r->pos, i = q + 1, chunk = i;
    int copied = 0;
    r->scratch_len = 0;
    for (;;) {
        while (i < r->len && s[i] >= 0x20 && s[i] < 0x80 && s[i] != '"' && s[i] != '\\')
            i++;
        if (i >= r->len) return jfail(r, q); /* unterminated */
        unsigned char c = s[i];
        if (c == '"') break;
        if (c < 0x20) return jfail(r, i); /* invalid control character */
        if (c == '\\') {
            uint32_t cp;
            size_t next = scan_escape(r, q, i, &cp);
            if (!next) return -1;
            if (decode) {
                char u[4];
                if (scratch_put(r, s + chunk, i - chunk) || scratch_put(r, u, utf8_put(u, cp)))
                    return -1;
                copied = 1;
            }
            i = chunk = next;
            continue;
        }
        size_t ul = utf8_len(s + i, r->len - i);
        if (!ul) return jfail(r, i); /* Python would fail to decode the body at all */
        i += ul;
    }
    if (decode) {
        if (copied) {
            if (scratch_put(r, s + chunk, i - chunk)) return -1;
            *out = r->p->scratch;
            *olen = r->scratch_len;
        } else {
            *out = (const char *)s + q + 1;
            *olen = i - q - 1;
        }
    }
    r->pos = i + 1;
    return 0;
}

/* ---- numbers --------------------------------------------------------------------------------- */

static const double k_pow10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                   1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* m x 10^k, negated when neg, correctly rounded when m < 2^53 and |k| <= 22: both factors are
 * then exact doubles, so the one IEEE multiply or divide rounds the exact value (Clinger's fast
 * path), as strtod would. Returns 0 to ask for strtod. */
static inline int clinger(uint64_t m, int k, int neg, double *out) {
    double v;
    if (m == 0)
        v = 0.0;
    else if (m < (1ULL << 53) && k >= -22 && k <= 22)
        v = k >= 0 ? (double)m * k_pow10[k] : (double)m / k_pow10[-k];
    else
        return 0;
    *out = neg ? -v : v;
    return 1;
}

static inline int is_digit(unsigned char c) {
    return c >= '0' && c <= '9';
}

static const uint64_t k_pow10_u[9] = {1,      10,      100,      1000,     10000,
                                      100000, 1000000, 10000000, 100000000};

/* The digits at s[i..n) appended to *m; returns where they end. Eight bytes at a time where the
 * body has them (a digit is a byte 0x30-0x39: high nibble 3, and adding 6 keeps it 3), converted
 * by pairs, quads and octets. *m wraps past 19 digits, so the callers count the digits and leave
 * longer significands to strtod. The eight-byte steps assume little-endian loads (x86-64,
 * aarch64); elsewhere the byte loop does it all. */
static inline size_t add_digits(const unsigned char *s, size_t i, size_t n, uint64_t *m) {
    uint64_t v = *m;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const uint64_t hi = 0xF0F0F0F0F0F0F0F0ull, threes = 0x3333333333333333ull;
    while (i + 8 <= n) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        uint64_t t = (w & hi) | (((w + 0x0606060606060606ull) & hi) >> 4);
        uint64_t not_digit = t ^ threes; /* zero bytes: digits */
        unsigned c = not_digit ? (unsigned)__builtin_ctzll(not_digit) / 8 : 8;
        if (c == 0) break;
        uint64_t d = (w - 0x3030303030303030ull) << (8 * (8 - c)); /* c digits, zeros first */
        d = (d * 10 + (d >> 8)) & 0x00FF00FF00FF00FFull;
        d = (d * 100 + (d >> 16)) & 0x0000FFFF0000FFFFull;
        d = (d * 10000 + (d >> 32)) & 0xFFFFFFFFull;
        v = v * k_pow10_u[c] + d;
        i += c;
        if (c < 8) break;
    }
#endif
    for (; i < n && is_digit(s[i]); i++)
        v = v * 10 + (uint64_t)(s[i] - '0');
    *m = v;
    return i;
}

/* Exact conversion of an already validated decimal literal (an optional sign, digits, an optional
 * fraction and exponent) when clinger() can; returns 0 to ask for strtod. */
static int fast_decimal(const char *str, size_t n, double *out) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0, d;
    int neg = 0, k = 0;
    uint64_t m = 0;
    if (i < n && (s[i] == '-' || s[i] == '+')) neg = s[i++] == '-';
    d = i;
    i = add_digits(s, i, n, &m);
    size_t nd = i - d;
    if (i < n && s[i] == '.') {
        d = ++i;
        i = add_digits(s, i, n, &m);
        nd += i - d;
        k = -(int)(i - d);
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        int eneg = 0, ev = 0;
        i++;
        if (i < n && (s[i] == '-' || s[i] == '+')) eneg = s[i++] == '-';
        for (; i < n && is_digit(s[i]); i++) {
            if (ev > 10000) return 0;
            ev = ev * 10 + (s[i] - '0');
        }
        k += eneg ? -ev : ev;
    }
    return i == n && nd <= 19 && clinger(m, k, neg, out);
}

/* strtod on a validated decimal literal. Long literals (rare) take one temporary allocation. */
static int strtod_decimal(rd_t *r, const char *s, size_t n, double *out) {
    char stack[NUM_INLINE];
    char *tmp = n < sizeof(stack) ? stack : malloc(n + 1);
    if (!tmp) return nomem(r);
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    *out = strtod(tmp, NULL); /* glibc rounds correctly; overflow gives +-inf like Python */
    if (tmp != stack) free(tmp);
    return 0;
}

/* Converts a validated decimal literal (a checked numeric string). */
static int conv_decimal(rd_t *r, const char *s, size_t n, double *out) {
    return fast_decimal(s, n, out) ? 0 : strtod_decimal(r, s, n, out);
}

/* Scans a JSON number at r->pos the way CPython's _match_number does: the longest prefix that
 * is a number; a '.' or exponent without digits is left for the caller to trip over. The same
 * pass gathers the significand and exponent, so that most numbers (a request is mostly sensor
 * values like 0.7638) convert without a second look (clinger), and the rest go to strtod. */
static int scan_number(rd_t *r, jv_t *v, int want) {
    const unsigned char *s = r->s;
    size_t st = r->pos, i = st, n = r->len, nd = 0;
    uint64_t m = 0;
    int neg = 0, k = 0, is_int = 1, exact = 1;
    if (i < n && s[i] == '-') i++, neg = 1;
    if (i >= n) return jfail(r, st);
    if (s[i] == '0') {
        i++;
    } else if (s[i] >= '1' && s[i] <= '9') {
        size_t d = i;
        i = add_digits(s, i, n, &m);
        nd = i - d;
    } else {
        return jfail(r, st); /* expecting value */
    }
    if (i + 1 < n && s[i] == '.' && is_digit(s[i + 1])) {
        size_t d = ++i;
        i = add_digits(s, i, n, &m);
        nd += i - d;
        k = -(int)(i - d);
        is_int = 0;
    }
    if (i + 1 < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t j = i + 1;
        int eneg = 0, ev = 0;
        if (j < n && (s[j] == '+' || s[j] == '-')) eneg = s[j++] == '-';
        if (j < n && is_digit(s[j])) {
            for (; j < n && is_digit(s[j]); j++) {
                if (ev > 10000)
                    exact = 0; /* strtod saturates it */
                else
                    ev = ev * 10 + (s[j] - '0');
            }
            k += eneg ? -ev : ev;
            i = j;
            is_int = 0;
        }
    }
    v->kind = JV_NUM;
    v->num_int = is_int;
    v->lit = (const char *)s + st;
    v->lit_len = i - st;
    r->pos = i;
    if (!(want & WANT_NUM) || (exact && nd <= 19 && clinger(m, k, neg, &v->num))) return 0;
    return strtod_decimal(r, v->lit, v->lit_len, &v->num);
}

/* ---- values ---------------------------------------------------------------------------------- */

static int read_value(rd_t *r, jv_t *v, int want);

static int literal(rd_t *r, const char *w, size_t n) {
    if (r->len - r->pos >= n && memcmp(r->s + r->pos, w, n) == 0) {
        r->pos += n;
        return 1;
    }
    return 0;
}

/* Opens an object or array at r->pos: 1 = a member follows, 0 = it was empty, -1 = error. */
static int open_container(rd_t *r, unsigned char close) {
    if (++r->depth > CRL_JSON_MAX_DEPTH) return jfail(r, r->pos);
    r->pos++;
    skip_ws(r);
    if (peek(r) == close) {
        r->pos++;
        r->depth--;
        return 0;
    }
    return 1;
}

/* After a member: 1 = another follows, 0 = the container closed, -1 = error. Python 3.13
 * reports a trailing comma at the comma. */
static int next_member(rd_t *r, unsigned char close) {
    skip_ws(r);
    int c = peek(r);
    if (c == close) {
        r->pos++;
        r->depth--;
        return 0;
    }
    if (c != ',') return jfail(r, r->pos); /* expecting ',' delimiter */
    size_t comma = r->pos++;
    skip_ws(r);
    if (peek(r) == close) return jfail(r, comma);
    return 1;
}

/* Reads "key": and leaves r->pos on the value. */
static int read_key(rd_t *r, const char **k, size_t *klen) {
    if (peek(r) != '"') return jfail(r, r->pos); /* expecting property name */
    if (scan_string(r, 1, k, klen)) return -1;
    skip_ws(r);
    if (peek(r) != ':') return jfail(r, r->pos);
    r->pos++;
    skip_ws(r);
    return 0;
}

static int key_is(const char *k, size_t n, const char *want) {
    size_t wn = strlen(want);
    return n == wn && memcmp(k, want, n) == 0;
}

static int skip_container(rd_t *r) {
    unsigned char close = r->s[r->pos] == '{' ? '}' : ']';
    int m = open_container(r, close);
    while (m == 1) {
        if (close == '}') {
            if (peek(r) != '"') return jfail(r, r->pos);
            if (scan_string(r, 0, NULL, NULL)) return -1;
            skip_ws(r);
            if (peek(r) != ':') return jfail(r, r->pos);
            r->pos++;
            skip_ws(r);
        }
        jv_t v;
        if (read_value(r, &v, 0)) return -1;
        m = next_member(r, close);
    }
    return m < 0 ? -1 : 0;
}

static int read_value(rd_t *r, jv_t *v, int want) {
    int c = peek(r);
    switch (c) {
    case -1:
        return jfail(r, r->pos);
    case '{':
        v->kind = JV_OBJ;
        return skip_container(r);
    case '[':
        v->kind = JV_ARR;
        return skip_container(r);
    case '"':
        v->kind = JV_STR;
        return scan_string(r, want & WANT_STR, &v->str, &v->str_len);
    case 'n':
        if (literal(r, "null", 4)) return v->kind = JV_NULL, 0;
        break;
    case 't':
        if (literal(r, "true", 4)) return v->kind = JV_TRUE, 0;
        break;
    case 'f':
        if (literal(r, "false", 5)) return v->kind = JV_FALSE, 0;
        break;
    case 'N':
        if (literal(r, "NaN", 3)) return v->kind = JV_NUM, v->num_int = 0, v->num = NAN, 0;
        break;
    case 'I':
        if (literal(r, "Infinity", 8))
            return v->kind = JV_NUM, v->num_int = 0, v->num = INFINITY, 0;
        break;
    case '-':
        if (literal(r, "-Infinity", 9))
            return v->kind = JV_NUM, v->num_int = 0, v->num = -INFINITY, 0;
        break;
    default:
        break;
    }
    return scan_number(r, v, want);
}

/* ---- pydantic coercions ---------------------------------------------------------------------- */

/* Byte length of a Unicode White_Space character at the start (fwd) or end (!fwd) of s[0..n),
 * or 0: pydantic trims numeric strings with Rust's str::trim. */
static size_t uws_len(const unsigned char *s, size_t n, int fwd) {
    static const unsigned char ws3[][3] = {
        {0xE1, 0x9A, 0x80}, {0xE2, 0x80, 0xA8}, {0xE2, 0x80, 0xA9},
        {0xE2, 0x80, 0xAF}, {0xE2, 0x81, 0x9F}, {0xE3, 0x80, 0x80},
    };
    if (n == 0) return 0;
    unsigned c = fwd ? s[0] : s[n - 1];
    if (c == ' ' || (c >= 0x09 && c <= 0x0D)) return 1;
    if (n >= 2) {
        const unsigned char *t = fwd ? s : s + n - 2;
        if (t[0] == 0xC2 && (t[1] == 0x85 || t[1] == 0xA0)) return 2;
    }
    if (n >= 3) {
        const unsigned char *t = fwd ? s : s + n - 3;
        if (t[0] == 0xE2 && t[1] == 0x80 && t[2] >= 0x80 && t[2] <= 0x8A) return 3;
        for (size_t i = 0; i < sizeof(ws3) / sizeof(ws3[0]); i++)
            if (memcmp(t, ws3[i], 3) == 0) return 3;
    }
    return 0;
}

static int ieq(const char *s, size_t n, const char *w) {
    size_t wn = strlen(w);
    if (n != wn) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (c != w[i]) return 0;
    }
    return 1;
}

/* Rust's f64::from_str grammar (what pydantic uses): [+-]? (inf | infinity | nan | digits with
 * an optional '.', at least one digit, optional exponent). 1 = parsed, 0 = not a number. */
static int rust_float(rd_t *r, const char *s, size_t n, double *out, int *err) {
    size_t i = 0;
    int neg = 0;
    if (i < n && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
    if (ieq(s + i, n - i, "inf") || ieq(s + i, n - i, "infinity")) {
        *out = neg ? -INFINITY : INFINITY;
        return 1;
    }
    if (ieq(s + i, n - i, "nan")) {
        *out = NAN;
        return 1;
    }
    size_t digits = 0;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
        digits++;
    if (i < n && s[i] == '.')
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            digits++;
    if (!digits) return 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        size_t ed = 0;
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            ed++;
        if (!ed) return 0;
    }
    if (i != n) return 0;
    if (conv_decimal(r, s, n, out)) {
        *err = 1;
        return 0;
    }
    return 1;
}

/* pydantic's str_as_float: trimmed Rust parse, then a retry with single inner underscores
 * removed from the untrimmed text. 1 = ok, 0 = float_parsing, -1 = out of memory. */
static int py_str_float(rd_t *r, const char *s, size_t n, double *out) {
    const unsigned char *u = (const unsigned char *)s;
    size_t a = 0, b = n, w;
    int err = 0;
    while ((w = uws_len(u + a, b - a, 1)) != 0)
        a += w;
    while ((w = uws_len(u + a, b - a, 0)) != 0)
        b -= w;
    if (rust_float(r, s + a, b - a, out, &err)) return 1;
    if (err) return -1;
    if (n == 0 || !memchr(s, '_', n) || s[0] == '_' || s[n - 1] == '_') return 0;
    for (size_t i = 0; i + 1 < n; i++)
        if (s[i] == '_' && s[i + 1] == '_') return 0;
    char stack[NUM_INLINE];
    char *tmp = n < sizeof(stack) ? stack : malloc(n);
    if (!tmp) return nomem(r);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] != '_') tmp[m++] = s[i];
    int ok = rust_float(r, tmp, m, out, &err);
    if (tmp != stack) free(tmp);
    return err ? -1 : ok;
}

/* Reads a float field (pydantic lax float). etype and emsg stay NULL when the value is usable. */
static int read_float(rd_t *r, double *d, const char **etype, const char **emsg) {
    jv_t v;
    *etype = NULL;
    /* A number that starts with a digit needs none of read_value's other cases. */
    int c = peek(r);
    if (c >= '0' && c <= '9' ? scan_number(r, &v, WANT_NUM)
                             : read_value(r, &v, WANT_STR | WANT_NUM))
        return -1;
    switch (v.kind) {
    case JV_NUM:
        *d = v.num;
        /* A Python int too large for a float cannot be converted: float_type. */
        if (v.num_int && isinf(v.num)) *etype = T_FLOAT_TYPE, *emsg = M_FLOAT_TYPE;
        return 0;
    case JV_TRUE:
        *d = 1.0;
        return 0;
    case JV_FALSE:
        *d = 0.0;
        return 0;
    case JV_STR: {
        int ok = py_str_float(r, v.str, v.str_len, d);
        if (ok < 0) return -1;
        if (!ok) *etype = T_FLOAT_PARSING, *emsg = M_FLOAT_PARSING;
        return 0;
    }
    default:
        *etype = T_FLOAT_TYPE, *emsg = M_FLOAT_TYPE;
        return 0;
    }
}

/* Whether an integer literal fits an i64 (pydantic's int -> bool path needs it). */
static int lit_fits_i64(const char *s, size_t n) {
    int neg = n && s[0] == '-';
    if (neg) s++, n--;
    if (n < 19) return 1;
    if (n > 19) return 0;
    return memcmp(s, neg ? "9223372036854775808" : "9223372036854775807", 19) <= 0;
}

/* pydantic's lax bool for `bool | None` (null is allowed and means false). */
static int read_bool(rd_t *r, int *out, const char **etype, const char **emsg) {
    jv_t v;
    *etype = NULL;
    *out = 0;
    if (read_value(r, &v, WANT_STR | WANT_NUM)) return -1;
    switch (v.kind) {
    case JV_TRUE:
        *out = 1;
        return 0;
    case JV_FALSE:
    case JV_NULL:
        return 0;
    case JV_NUM:
        if (v.num_int && !lit_fits_i64(v.lit, v.lit_len)) break; /* bool_type */
        if (!v.num_int && (!isfinite(v.num) || v.num != floor(v.num) ||
                           !(v.num > -9223372036854775808.0 && v.num < 9223372036854775807.0)))
            break;
        if (v.num == 0.0 || v.num == 1.0) {
            *out = v.num == 1.0;
            return 0;
        }
        *etype = T_BOOL_PARSING, *emsg = M_BOOL_PARSING;
        return 0;
    case JV_STR: {
        static const char *const no[] = {"0", "f", "n", "no", "off", "false"};
        static const char *const yes[] = {"1", "t", "y", "on", "yes", "true"};
        for (size_t i = 0; i < 6; i++) {
            if (ieq(v.str, v.str_len, no[i])) return 0;
            if (ieq(v.str, v.str_len, yes[i])) return *out = 1, 0;
        }
        *etype = T_BOOL_PARSING, *emsg = M_BOOL_PARSING;
        return 0;
    }
    default:
        break;
    }
    *etype = T_BOOL_TYPE, *emsg = M_BOOL_TYPE;
    return 0;
}

/* Decimal digits (single '_' between digits allowed when `underscores`, as Python's int()) into
 * *out. 1 = parsed (*overflow set when above 2^64 - 1), 0 = not an integer. */
static int parse_u64_digits(const char *s, size_t n, int underscores, uint64_t *out,
                            int *overflow) {
    uint64_t v = 0;
    size_t digits = 0;
    *overflow = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '_' && underscores && i > 0 && i + 1 < n && s[i - 1] != '_' && s[i + 1] != '_')
            continue;
        if (c < '0' || c > '9') return 0;
        unsigned d = (unsigned)(c - '0');
        if (v > (UINT64_MAX - d) / 10) *overflow = 1;
        v = v * 10 + d;
        digits++;
    }
    *out = v;
    return digits > 0;
}

/* A sign and magnitude against the seed's bounds 0..2^64-1. */
static void seed_bounds(int neg, uint64_t mag, int overflow, uint64_t *out, const char **etype,
                        const char **emsg) {
    if (neg && (mag != 0 || overflow))
        *etype = T_GE, *emsg = M_SEED_GE;
    else if (overflow)
        *etype = T_LE, *emsg = M_SEED_LE;
    else
        *out = mag;
}

/* pydantic's lax str -> int: trimmed, optional sign, digits (single inner underscores), and an
 * optional '.' followed by zeros only. 1 = ok, 0 = int_parsing. */
static int str_seed(const char *s, size_t n, uint64_t *out, const char **etype, const char **emsg) {
    const unsigned char *u = (const unsigned char *)s;
    size_t a = 0, b = n, w;
    while ((w = uws_len(u + a, b - a, 1)) != 0)
        a += w;
    while ((w = uws_len(u + a, b - a, 0)) != 0)
        b -= w;
    int neg = 0;
    if (a < b && (s[a] == '+' || s[a] == '-')) neg = s[a++] == '-';
    const char *dot = memchr(s + a, '.', b - a);
    if (dot != NULL) {
        for (const char *q = dot + 1; q < s + b; q++)
            if (*q != '0') return 0;
        b = (size_t)(dot - s);
    }
    uint64_t mag;
    int overflow;
    if (!parse_u64_digits(s + a, b - a, 1, &mag, &overflow)) return 0;
    seed_bounds(neg, mag, overflow, out, etype, emsg);
    return 1;
}

/* `seed: Optional[conint(ge=0, le=2**64 - 1)]` in pydantic lax mode. null means absent. */
static int read_seed(rd_t *r, int *has, uint64_t *out, const char **etype, const char **emsg) {
    jv_t v;
    *etype = NULL;
    *has = 0;
    *out = 0;
    if (read_value(r, &v, WANT_STR | WANT_NUM)) return -1;
    switch (v.kind) {
    case JV_NULL:
        return 0;
    case JV_TRUE:
    case JV_FALSE:
        *has = 1;
        *out = v.kind == JV_TRUE;
        return 0;
    case JV_NUM:
        *has = 1;
        if (v.num_int) {
            int neg = v.lit_len && v.lit[0] == '-', overflow;
            uint64_t mag;
            parse_u64_digits(v.lit + neg, v.lit_len - (size_t)neg, 0, &mag, &overflow);
            seed_bounds(neg, mag, overflow, out, etype, emsg);
        } else if (!isfinite(v.num)) {
            *etype = T_FINITE, *emsg = M_FINITE;
        } else if (v.num != floor(v.num)) {
            *etype = T_INT_FRACTION, *emsg = M_INT_FRACTION;
        } else if (v.num >= 9223372036854775808.0 || v.num < -9223372036854775808.0) {
            /* pydantic converts floats through an i64 first. */
            *etype = T_INT_SIZE, *emsg = M_INT_SIZE;
        } else if (v.num < 0) {
            *etype = T_GE, *emsg = M_SEED_GE;
        } else {
            *out = (uint64_t)v.num;
        }
        return 0;
    case JV_STR:
        *has = 1;
        if (!str_seed(v.str, v.str_len, out, etype, emsg))
            *etype = T_INT_PARSING, *emsg = M_INT_PARSING;
        return 0;
    default:
        *has = 1;
        *etype = T_INT_TYPE, *emsg = M_INT_TYPE;
        return 0;
    }
}

/* ---- the schema ------------------------------------------------------------------------------ */

#define SENSORS_FIELD "body.observations.%zu.sensors"

static int parse_sensors(rd_t *r, size_t idx, uint32_t *row_len) {
    crl_predict_parser_t *p = r->p;
    size_t mark = p->n_total, count = 0, oob_idx = 0;
    int over = 0, elem_err = 0, oob = 0;
    double oob_val = 0;
    *row_len = 0;
    if (peek(r) != '[') {
        jv_t v;
        if (read_value(r, &v, 0)) return -1;
        err_add(p, "list_type", "Input should be a valid list", SENSORS_FIELD, idx);
        return 0;
    }
    int m = open_container(r, ']');
    while (m == 1) {
        if (count < CRL_PREDICT_MAX_SENSORS) {
            double d;
            const char *et, *em;
            if (read_float(r, &d, &et, &em)) return -1;
            if (et) {
                err_add(p, et, em, "body.observations.%zu.sensors.%zu", idx, count);
                elem_err = 1;
                d = 0;
            } else if (!oob && !(d >= -1000.0 && d <= 1000.0)) {
                oob = 1, oob_idx = count, oob_val = d;
            }
            if (r->n_sens >= p->sensors_cap &&
                grow((void **)&p->sensors, &p->sensors_cap, r->n_sens + 1, sizeof(float), 4096,
                     MAX_TOTAL_SENSORS))
                return nomem(r);
            /* Out-of-range values make the request invalid; keep the float conversion defined. */
            p->sensors[r->n_sens++] = d >= -1000.0 && d <= 1000.0 ? (float)d : 0.0f;
        } else {
            /* pydantic stops at the first item past max_length and reports only too_long. */
            if (!over) err_rollback(p, mark);
            over = 1;
            jv_t v;
            if (read_value(r, &v, 0)) return -1;
        }
        count++;
        /* The usual separator (",", ", ") and a digit after it: what next_member would find, in
         * a few compares (a request is mostly sensor values). Anything else takes next_member. */
        size_t q = r->pos;
        if (q + 2 < r->len && r->s[q] == ',') {
            q += 1 + (r->s[q + 1] == ' ');
            if (is_digit(r->s[q])) {
                r->pos = q;
                continue;
            }
        }
        m = next_member(r, ']');
    }
    if (m < 0) return -1;
    *row_len = (uint32_t)(count < CRL_PREDICT_MAX_SENSORS ? count : CRL_PREDICT_MAX_SENSORS);
    char msg[160];
    if (over) {
        snprintf(msg, sizeof(msg), "List should have at most %d items after validation, not %zu",
                 CRL_PREDICT_MAX_SENSORS, count);
        err_add(p, "too_long", msg, SENSORS_FIELD, idx);
    } else if (count == 0) {
        err_add(p, "too_short", "List should have at least 1 item after validation, not 0",
                SENSORS_FIELD, idx);
    } else if (!elem_err && oob) {
        char num[32];
        crl_fmt_double(num, oob_val);
        snprintf(msg, sizeof(msg), "Value error, Sensor value at index %zu out of bounds: %s",
                 oob_idx, num);
        err_add(p, "value_error", msg, SENSORS_FIELD, idx);
    }
    return 0;
}

/* Range check of a finite-number field with bounds [lo, hi] (pydantic checks le before ge). */
static void check_range(double d, double lo, double hi, const char **etype, char *msg, size_t cap) {
    char b[32];
    if (!isfinite(d)) {
        *etype = T_FINITE;
        snprintf(msg, cap, "%s", M_FINITE);
    } else if (d > hi) {
        *etype = "less_than_equal";
        snprintf(b, sizeof(b), "%g", hi); /* pydantic prints 200.0 as "200" */
        snprintf(msg, cap, "Input should be less than or equal to %s", b);
    } else if (d < lo) {
        *etype = "greater_than_equal";
        snprintf(b, sizeof(b), "%g", lo);
        snprintf(msg, cap, "Input should be greater than or equal to %s", b);
    }
}

typedef struct scalar_field {
    const char *name;
    double lo, hi;
    int seen;
    const char *etype;
    char msg[160];
} scalar_field_t;

static void scalar_init(scalar_field_t *f, const char *name, double lo, double hi) {
    f->name = name;
    f->lo = lo;
    f->hi = hi;
    f->seen = 0;
    f->etype = NULL;
}

static int read_scalar_field(rd_t *r, scalar_field_t *f, float *dst) {
    double d = 0;
    const char *em = NULL;
    f->seen = 1;
    if (read_float(r, &d, &f->etype, &em)) return -1;
    if (f->etype)
        snprintf(f->msg, sizeof(f->msg), "%s", em);
    else
        check_range(d, f->lo, f->hi, &f->etype, f->msg, sizeof(f->msg));
    if (dst) *dst = f->etype ? 0.0f : (float)d;
    return 0;
}

static int parse_observation(rd_t *r, size_t idx) {
    crl_predict_parser_t *p = r->p;
    if (rows_reserve(r, idx + 1)) return -1;
    p->speed[idx] = p->steering[idx] = 0.0f;
    p->off[idx] = (uint32_t)r->n_sens;
    p->len[idx] = 0;
    if (peek(r) != '{') {
        jv_t v;
        if (read_value(r, &v, 0)) return -1;
        err_add(p, T_MODEL, M_MODEL, "body.observations.%zu", idx);
        return 0;
    }
    size_t mark = p->n_total;
    /* Set field by field: a zeroing initializer would clear both message buffers (rep stos),
     * which cost more than the rest of a batch-1 parse. */
    scalar_field_t sp, st;
    scalar_init(&sp, "speed", 0.0, 200.0);
    scalar_init(&st, "steering", -1.0, 1.0);
    int have_sensors = 0;
    int m = open_container(r, '}');
    while (m == 1) {
        const char *k;
        size_t kn;
        if (read_key(r, &k, &kn)) return -1;
        if (key_is(k, kn, "speed")) {
            if (read_scalar_field(r, &sp, &p->speed[idx])) return -1;
        } else if (key_is(k, kn, "steering")) {
            if (read_scalar_field(r, &st, &p->steering[idx])) return -1;
        } else if (key_is(k, kn, "sensors")) {
            if (have_sensors) { /* last one wins: forget the earlier list and its errors */
                err_rollback(p, mark);
                r->n_sens = p->off[idx];
            }
            have_sensors = 1;
            if (parse_sensors(r, idx, &p->len[idx])) return -1;
        } else {
            jv_t v;
            if (read_value(r, &v, 0)) return -1;
        }
        m = next_member(r, '}');
    }
    if (m < 0) return -1;
    scalar_field_t *order[2] = {&st, &sp}; /* inserted at mark in reverse: speed ends first */
    for (int i = 0; i < 2; i++) {
        scalar_field_t *s = order[i];
        if (!s->seen)
            err_insert(p, mark, T_MISSING, M_MISSING, "body.observations.%zu.%s", idx, s->name);
        else if (s->etype)
            err_insert(p, mark, s->etype, s->msg, "body.observations.%zu.%s", idx, s->name);
    }
    if (!have_sensors) err_add(p, T_MISSING, M_MISSING, "body.observations.%zu.sensors", idx);
    return 0;
}

static int parse_observations(rd_t *r) {
    crl_predict_parser_t *p = r->p;
    size_t mark = p->n_total, count = 0;
    int over = 0;
    r->n_rows = 0;
    r->n_sens = 0;
    if (peek(r) != '[') {
        jv_t v;
        if (read_value(r, &v, 0)) return -1;
        err_add(p, "list_type", "Input should be a valid list", "body.observations");
        return 0;
    }
    int m = open_container(r, ']');
    while (m == 1) {
        if (count < CRL_PREDICT_MAX_OBSERVATIONS) {
            if (parse_observation(r, count)) return -1;
        } else {
            if (!over) err_rollback(p, mark);
            over = 1;
            jv_t v;
            if (read_value(r, &v, 0)) return -1;
        }
        count++;
        m = next_member(r, ']');
    }
    if (m < 0) return -1;
    r->n_rows = count < CRL_PREDICT_MAX_OBSERVATIONS ? count : CRL_PREDICT_MAX_OBSERVATIONS;
    if (over) {
        char msg[160];
        snprintf(msg, sizeof(msg), "List should have at most %d items after validation, not %zu",
                 CRL_PREDICT_MAX_OBSERVATIONS, count);
        err_add(p, "too_long", msg, "body.observations");
    } else if (count == 0) {
        err_add(p, "too_short", "List should have at least 1 item after validation, not 0",
                "body.observations");
    }
    return 0;
}

static int parse_request(rd_t *r, int *deterministic, int *has_seed, uint64_t *seed) {
    crl_predict_parser_t *p = r->p;
    int seen_obs = 0;
    const char *det_type = NULL, *det_msg = NULL, *seed_type = NULL, *seed_msg = NULL;
    int m = open_container(r, '}');
    while (m == 1) {
        const char *k;
        size_t kn;
        if (read_key(r, &k, &kn)) return -1;
        if (key_is(k, kn, "observations")) {
            err_rollback(p, 0); /* last one wins; deterministic's error is held apart */
            seen_obs = 1;
            if (parse_observations(r)) return -1;
        } else if (key_is(k, kn, "deterministic")) {
            if (read_bool(r, deterministic, &det_type, &det_msg)) return -1;
        } else if (key_is(k, kn, "seed")) {
            if (read_seed(r, has_seed, seed, &seed_type, &seed_msg)) return -1;
        } else {
            jv_t v;
            if (read_value(r, &v, 0)) return -1;
        }
        m = next_member(r, '}');
    }
    if (m < 0) return -1;
    if (!seen_obs) err_add(p, T_MISSING, M_MISSING, "body.observations");
    if (det_type) err_add(p, det_type, det_msg, "body.deterministic");
    if (seed_type) err_add(p, seed_type, seed_msg, "body.seed");
    return 0;
}

static void parse_body(rd_t *r, int *deterministic, int *has_seed, uint64_t *seed) {
    skip_ws(r);
    if (peek(r) == '{') {
        if (parse_request(r, deterministic, has_seed, seed)) return;
    } else {
        jv_t v;
        if (read_value(r, &v, 0)) return;
        /* FastAPI treats a JSON null body like no body at all. */
        if (v.kind == JV_NULL)
            err_add(r->p, T_MISSING, M_MISSING, "body");
        else
            err_add(r->p, T_MODEL, M_MODEL, "body");
    }
    skip_ws(r);
    if (r->pos != r->len) jfail(r, r->pos); /* extra data */
}

/* ---- public API ------------------------------------------------------------------------------ */

crl_status crl_predict_parser_new(crl_predict_parser_t **out) {
    if (!out) return CRL_EINVAL;
    *out = calloc(1, sizeof(**out));
    return *out ? CRL_OK : CRL_ENOMEM;
}

void crl_predict_parser_free(crl_predict_parser_t *p) {
    if (!p) return;
    free(p->speed);
    free(p->steering);
    free(p->off);
    free(p->len);
    free(p->sensors);
    free(p->scratch);
    free(p);
}

void crl_predict_parser_trim(crl_predict_parser_t *p, size_t keep_bytes) {
    if (!p) return;
    if (p->sensors_cap * sizeof(float) > keep_bytes) {
        free(p->sensors);
        p->sensors = NULL;
        p->sensors_cap = 0;
    }
    if (p->scratch_cap > keep_bytes) {
        free(p->scratch);
        p->scratch = NULL;
        p->scratch_cap = 0;
    }
    if (p->rows_cap * 2 * (sizeof(float) + sizeof(uint32_t)) > keep_bytes) {
        free(p->speed);
        free(p->steering);
        free(p->off);
        free(p->len);
        p->speed = p->steering = NULL;
        p->off = p->len = NULL;
        p->rows_cap = 0;
    }
}

/* Python reports offsets in characters of the decoded text (after a BOM). */
static size_t char_offset(const rd_t *r, size_t pos) {
    size_t n = 0;
    for (size_t i = r->base; i < pos && i < r->len; i++)
        if ((r->s[i] & 0xC0) != 0x80) n++;
    return n;
}

crl_status crl_predict_parse(crl_predict_parser_t *p, const char *body, size_t len,
                             crl_predict_req_t *out) {
    if (!p || !out || (!body && len)) return CRL_EINVAL;
    memset(out, 0, sizeof(*out));
    p->n_stored = p->n_total = 0;
    out->errors = p->errs;
    int det = 0, has_seed = 0;
    uint64_t seed = 0;
    if (len == 0) {
        /* No body: FastAPI validates it as missing, after the dependencies (a schema error). */
        err_add(p, T_MISSING, M_MISSING, "body");
    } else {
        rd_t r = {.p = p, .s = (const unsigned char *)body, .len = len};
        if (len >= 3 && memcmp(body, "\xEF\xBB\xBF", 3) == 0) r.base = r.pos = 3;
        parse_body(&r, &det, &has_seed, &seed);
        if (r.fail == FAIL_NOMEM) {
            p->n_stored = p->n_total = 0;
            return CRL_ENOMEM;
        }
        if (r.fail == FAIL_JSON) {
            p->n_stored = p->n_total = 0;
            err_add(p, "json_invalid", "JSON decode error", "body.%zu",
                    char_offset(&r, r.fail_pos));
            out->json_invalid = 1;
        } else if (p->n_total == 0) {
            out->n = r.n_rows;
            out->speed = p->speed;
            out->steering = p->steering;
            out->sensor_off = p->off;
            out->sensor_len = p->len;
            out->sensors = p->sensors;
            out->deterministic = det;
            out->has_seed = has_seed;
            out->seed = seed;
            for (size_t i = 0; i < r.n_rows; i++)
                if (p->len[i] > out->max_sensors) out->max_sensors = p->len[i];
        }
    }
    out->n_errors = p->n_stored;
    out->n_errors_total = p->n_total;
    return p->n_total ? CRL_EINVAL : CRL_OK;
}
