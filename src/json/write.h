/* write.h: small JSON writing helpers over crl_buf for the cold endpoints and error envelopes. */
#ifndef CRL_JSON_WRITE_H
#define CRL_JSON_WRITE_H

#include <stddef.h>

#include "core/buf.h"

/* Appends s (len bytes) as a quoted JSON string; control characters and invalid UTF-8 bytes are
 * escaped (\u00XX), so any byte string yields valid JSON. */
void crl_json_str(crl_buf *b, const char *s, size_t len);
static inline void crl_json_cstr(crl_buf *b, const char *s);
/* A number in Python repr style; non-finite as null. */
void crl_json_num(crl_buf *b, double d);

#include <string.h>
static inline void crl_json_cstr(crl_buf *b, const char *s) {
    crl_json_str(b, s, strlen(s));
}

#endif
