/* response.c: the POST /predict response writer (hot path: no allocation, no printf per value). */
#include "json/response.h"

#include <string.h>

#include "core/fmt.h"

static char *put(char *p, const char *s, size_t n) {
    memcpy(p, s, n);
    return p + n;
}

size_t crl_json_predict_response(char *out, const float *actions, size_t n, const char *version,
                                 double timing_ms, int deterministic) {
    char *p = put(out, "{\"actions\":[", 12);
    for (size_t i = 0; i < n; i++) {
        const float *a = actions + i * 3;
        if (i) *p++ = ',';
        p = put(p, "{\"throttle\":", 12);
        p += crl_fmt_json_double(p, a[0]);
        p = put(p, ",\"brake\":", 9);
        p += crl_fmt_json_double(p, a[1]);
        p = put(p, ",\"steer\":", 9);
        p += crl_fmt_json_double(p, a[2]);
        *p++ = '}';
    }
    p = put(p, "],\"version\":", 12);
    /* Version labels come from semver parsing: only [0-9A-Za-z.+-], nothing to escape. */
    *p++ = '"';
    p = put(p, version, strlen(version));
    *p++ = '"';
    p = put(p, ",\"timingMs\":", 12);
    p += crl_fmt_json_double(p, timing_ms);
    p = put(p, deterministic ? ",\"deterministic\":true}" : ",\"deterministic\":false}",
            deterministic ? 22 : 23);
    return (size_t)(p - out);
}
