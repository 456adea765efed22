/* buf.c: growable, capped byte buffer. */
#include "core/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void crl_buf_init(crl_buf *b, size_t limit) {
    memset(b, 0, sizeof(*b));
    b->limit = limit;
}

void crl_buf_free(crl_buf *b) {
    if (b == NULL) return;
    free(b->data);
    size_t limit = b->limit;
    crl_buf_init(b, limit);
}

void crl_buf_reset(crl_buf *b) {
    b->len = 0;
    b->failed = 0;
    if (b->data) b->data[0] = '\0';
}

crl_status crl_buf_reserve(crl_buf *b, size_t extra) {
    if (b->failed) return CRL_ENOMEM;
    if (extra > b->limit || b->len > b->limit - extra) {
        b->failed = 1;
        return CRL_ENOMEM;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return CRL_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (p == NULL) {
        b->failed = 1;
        return CRL_ENOMEM;
    }
    b->data = p;
    b->cap = cap;
    return CRL_OK;
}

crl_status crl_buf_append(crl_buf *b, const void *p, size_t n) {
    crl_status st = crl_buf_reserve(b, n);
    if (st != CRL_OK) return st;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return CRL_OK;
}

crl_status crl_buf_puts(crl_buf *b, const char *s) {
    return crl_buf_append(b, s, strlen(s));
}

crl_status crl_buf_printf(crl_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char tmp[256];
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0) return CRL_EINVAL;
    if ((size_t)n < sizeof(tmp)) return crl_buf_append(b, tmp, (size_t)n);
    crl_status st = crl_buf_reserve(b, (size_t)n);
    if (st != CRL_OK) return st;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return CRL_OK;
}
