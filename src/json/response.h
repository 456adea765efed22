/* response.h: the POST /predict response body, shared by the server and `carlarl predict`:
 * {"actions":[{"throttle":f,"brake":f,"steer":f},...],"version":s,"timingMs":f,"deterministic":b}
 * Floats are the float32 values written as Python would write them after float() (the
 * original's JSON), e.g. 0.46211716532707214. */
#ifndef CRL_JSON_RESPONSE_H
#define CRL_JSON_RESPONSE_H

#include <stddef.h>

/* Bytes that always suffice for n actions and a version string of version_len bytes. */
static inline size_t crl_json_predict_response_cap(size_t n, size_t version_len) {
    return n * 112 + version_len + 96;
}

/* Writes into out (at least crl_json_predict_response_cap bytes); actions is [n x 3]. Returns the
 * length. `version` must be a semver label (nothing in it needs escaping). */
size_t crl_json_predict_response(char *out, const float *actions, size_t n, const char *version,
                                 double timing_ms, int deterministic);

#endif
