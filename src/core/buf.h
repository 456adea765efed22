/* buf.h: a growable byte buffer with a hard cap (curl's dynbuf idea). Used for response bodies,
 * metrics exposition and other text built piece by piece. The buffer owns its memory. */
#ifndef CRL_CORE_BUF_H
#define CRL_CORE_BUF_H

#include <stddef.h>

#include "core/status.h"

typedef struct crl_buf {
    char *data; /* NUL-terminated while len < cap */
    size_t len;
    size_t cap;   /* bytes allocated */
    size_t limit; /* hard cap on len; appends beyond it fail with CRL_ENOMEM and set `failed` */
    int failed;   /* sticky: set by the first failed append so callers may check once at the end */
} crl_buf;

void crl_buf_init(crl_buf *b, size_t limit);
void crl_buf_free(crl_buf *b);  /* NULL-safe; leaves an empty buffer */
void crl_buf_reset(crl_buf *b); /* len = 0, keeps the memory for reuse */
crl_status crl_buf_reserve(crl_buf *b, size_t extra);
crl_status crl_buf_append(crl_buf *b, const void *p, size_t n);
crl_status crl_buf_puts(crl_buf *b, const char *s);
crl_status crl_buf_printf(crl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
