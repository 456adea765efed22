/* semver.c: the original's semantic version grammar and ordering (original-system.md §3.1),
 * hand-written instead of a regex so every rule is visible:
 *   ^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-PRE)?(\+BUILD)?$
 *   PRE   = dot-separated ids, each "0", "[1-9]\d*" or "\d*[a-zA-Z-][0-9a-zA-Z-]*"
 *   BUILD = dot-separated "[0-9a-zA-Z-]+" */
#include "model/semver.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

static int is_digit(char c) {
    return c >= '0' && c <= '9';
}
static int is_ident_char(char c) {
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
}

/* One core number: "0" or no leading zero; values beyond uint64 are refused. */
static const char *parse_num(const char *s, const char *end, uint64_t *out) {
    if (s >= end || !is_digit(*s)) return NULL;
    if (*s == '0' && s + 1 < end && is_digit(s[1])) return NULL;
    uint64_t v = 0;
    while (s < end && is_digit(*s)) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10) return NULL;
        v = v * 10 + d;
        s++;
    }
    *out = v;
    return s;
}

/* Validates dot-separated identifiers in [s, end); prerelease ids also refuse leading zeros in
 * purely numeric ids. */
static int valid_ids(const char *s, const char *end, int prerelease) {
    if (s >= end) return 0;
    while (s <= end) {
        const char *dot = memchr(s, '.', (size_t)(end - s));
        const char *e = dot ? dot : end;
        if (e == s) return 0; /* empty identifier */
        int numeric = 1;
        for (const char *p = s; p < e; p++) {
            if (!is_ident_char(*p)) return 0;
            if (!is_digit(*p)) numeric = 0;
        }
        if (prerelease && numeric && *s == '0' && e - s > 1) return 0;
        if (dot == NULL) break;
        s = dot + 1;
    }
    return 1;
}

crl_status crl_semver_parse(const char *s, crl_semver_t *out) {
    if (s == NULL || out == NULL) return CRL_EFORMAT;
    while (isspace((unsigned char)*s))
        s++;
    const char *end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        end--;
    if (end - s >= CRL_SEMVER_MAX) return CRL_EFORMAT;
    if (s < end && *s == 'v') s++;

    crl_semver_t v;
    memset(&v, 0, sizeof(v));
    const char *p = parse_num(s, end, &v.major);
    if (p == NULL || p >= end || *p != '.') return CRL_EFORMAT;
    p = parse_num(p + 1, end, &v.minor);
    if (p == NULL || p >= end || *p != '.') return CRL_EFORMAT;
    p = parse_num(p + 1, end, &v.patch);
    if (p == NULL) return CRL_EFORMAT;

    const char *plus = memchr(p, '+', (size_t)(end - p));
    const char *pre_end = plus ? plus : end;
    if (p < pre_end) {
        if (*p != '-' || !valid_ids(p + 1, pre_end, 1)) return CRL_EFORMAT;
        memcpy(v.pre, p + 1, (size_t)(pre_end - p - 1));
    }
    if (plus) {
        if (!valid_ids(plus + 1, end, 0)) return CRL_EFORMAT;
        memcpy(v.build, plus + 1, (size_t)(end - plus - 1));
    }
    *out = v;
    return CRL_OK;
}

static int cmp_u64(uint64_t a, uint64_t b) {
    return a < b ? -1 : a > b;
}

static int all_digits(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!is_digit(s[i])) return 0;
    return n > 0;
}

/* One prerelease identifier pair: integers when both are numeric (no leading zeros, so the
 * longer is larger), otherwise ASCII order like Python's str comparison. */
static int cmp_ident(const char *a, size_t na, const char *b, size_t nb) {
    if (all_digits(a, na) && all_digits(b, nb) && na != nb) return na < nb ? -1 : 1;
    size_t n = na < nb ? na : nb;
    int c = memcmp(a, b, n);
    if (c != 0) return c < 0 ? -1 : 1;
    return na < nb ? -1 : na > nb;
}

static int cmp_pre(const char *a, const char *b) {
    if (*a == '\0' || *b == '\0') /* a release beats its prereleases */
        return (*a == '\0') - (*b == '\0');
    for (;;) {
        size_t na = strcspn(a, "."), nb = strcspn(b, ".");
        int c = cmp_ident(a, na, b, nb);
        if (c != 0) return c;
        a += na;
        b += nb;
        if (*a == '\0' || *b == '\0') /* a shorter identifier list sorts lower */
            return (*a != '\0') - (*b != '\0');
        a++;
        b++;
    }
}

int crl_semver_cmp(const crl_semver_t *a, const crl_semver_t *b) {
    int c = cmp_u64(a->major, b->major);
    if (c == 0) c = cmp_u64(a->minor, b->minor);
    if (c == 0) c = cmp_u64(a->patch, b->patch);
    if (c == 0) c = cmp_pre(a->pre, b->pre);
    return c;
}

int crl_semver_is_stable(const crl_semver_t *v) {
    return v->pre[0] == '\0';
}

size_t crl_semver_format(const crl_semver_t *v, char *out, size_t cap) {
    if (out == NULL || cap == 0) return 0;
    snprintf(out, cap, "v%llu.%llu.%llu%s%s%s%s", (unsigned long long)v->major,
             (unsigned long long)v->minor, (unsigned long long)v->patch, v->pre[0] ? "-" : "",
             v->pre, v->build[0] ? "+" : "", v->build);
    return strlen(out);
}
