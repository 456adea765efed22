/* fuzz_predict.c: libFuzzer target for the /predict body reader. Besides "no crash, no
 * out-of-bounds read", it checks the reader's promises: one json_invalid error or schema errors,
 * never both; a valid result has consistent row and sensor arrays. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json/predict.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static crl_predict_parser_t *p;
    if (!p && crl_predict_parser_new(&p) != CRL_OK) abort();
    /* An exact-size copy, so a read past the end is caught even when data has slack. */
    char *body = malloc(size ? size : 1);
    if (!body) return 0;
    if (size) memcpy(body, data, size);
    crl_predict_req_t r;
    crl_status st = crl_predict_parse(p, body, size, &r);
    if (st == CRL_OK) {
        if (r.n == 0 || r.n > CRL_PREDICT_MAX_OBSERVATIONS || r.n_errors_total) abort();
        size_t next = 0, longest = 0;
        for (size_t i = 0; i < r.n; i++) {
            if (r.sensor_off[i] != next || r.sensor_len[i] == 0 ||
                r.sensor_len[i] > CRL_PREDICT_MAX_SENSORS)
                abort();
            next += r.sensor_len[i];
            if (r.sensor_len[i] > longest) longest = r.sensor_len[i];
            if (!(r.speed[i] >= 0.0f && r.speed[i] <= 200.0f)) abort();
            if (!(r.steering[i] >= -1.0f && r.steering[i] <= 1.0f)) abort();
        }
        for (size_t i = 0; i < next; i++)
            if (!(r.sensors[i] >= -1000.0f && r.sensors[i] <= 1000.0f)) abort();
        if (longest != r.max_sensors) abort();
    } else if (st == CRL_EINVAL) {
        if (r.n_errors_total == 0 || r.n_errors > CRL_PREDICT_MAX_ERRORS) abort();
        if (r.json_invalid && r.n_errors_total != 1) abort();
        for (size_t i = 0; i < r.n_errors; i++)
            if (!r.errors[i].type || !memchr(r.errors[i].field, '\0', sizeof(r.errors[i].field)))
                abort();
    } else if (st != CRL_ENOMEM) {
        abort();
    }
    free(body);
    if (size > 65536) crl_predict_parser_trim(p, 1 << 20);
    return 0;
}
