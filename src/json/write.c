/* write.c: JSON string and number writing. */
#include "json/write.h"

#include "core/fmt.h"

void crl_json_str(crl_buf *b, const char *s, size_t len) {
    static const char hex[] = "0123456789abcdef";
    crl_buf_reserve(b, len + 2);
    crl_buf_append(b, "\"", 1);
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        const unsigned char *run = p;
        while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
            p++;
        if (p > run) crl_buf_append(b, run, (size_t)(p - run));
        if (p == end) break;
        unsigned c = *p;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            crl_buf_append(b, e, 2);
            p++;
        } else if (c < 0x20) {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            crl_buf_append(b, e, 6);
            p++;
        } else {
            /* Copy a well-formed UTF-8 sequence whole; escape a stray byte as \u00XX. */
            size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
            int ok = n && c < 0xF5 && (size_t)(end - p) >= n;
            for (size_t i = 1; ok && i < n; i++)
                ok = (p[i] & 0xC0) == 0x80;
            if (ok) {
                crl_buf_append(b, p, n);
                p += n;
            } else {
                char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                crl_buf_append(b, e, 6);
                p++;
            }
        }
    }
    crl_buf_append(b, "\"", 1);
}

void crl_json_num(crl_buf *b, double d) {
    char tmp[40];
    size_t n = crl_fmt_json_double(tmp, d);
    crl_buf_append(b, tmp, n);
}
