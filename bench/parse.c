/* bench/parse.c: POST /predict body parsing speed (json/predict.h). Build: cmake --build build
 * --target bench_parse; run: build/bench_parse [BODY.json]. Without a file it parses the body
 * bench/throughput.py sends the Nature-CNN: one observation of 7,054 sensors written with 4
 * decimals (about 55 KB). Reports the best of 15 stretches of 50 ms: microseconds per body and
 * nanoseconds per number; on a shared machine compare runs taken back to back. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/time.h"
#include "json/predict.h"

/* The throughput benchmark's CNN body: speed, steering and n sensors in [0, 1), 4 decimals. */
static char *cnn_body(size_t n, size_t *len) {
    size_t cap = 64 + n * 10;
    char *b = malloc(cap);
    if (b == NULL) return NULL;
    size_t o = (size_t)snprintf(b, cap,
                                "{\"observations\": [{\"speed\": 8.062, \"steering\": "
                                "0.695, \"sensors\": [");
    uint64_t s = 88172645463325252ull;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17; /* xorshift64 */
        o += (size_t)snprintf(b + o, cap - o, "%s%.4g", i ? ", " : "", (double)(s % 10000) / 1e4);
    }
    o += (size_t)snprintf(b + o, cap - o, "]}], \"deterministic\": true}");
    *len = o;
    return b;
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = n > 0 ? malloc((size_t)n) : NULL;
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = b ? (size_t)n : 0;
    return b;
}

int main(int argc, char **argv) {
    size_t len = 0;
    char *body = argc > 1 ? read_file(argv[1], &len) : cnn_body(7054, &len);
    if (body == NULL) {
        fprintf(stderr, "bench_parse: cannot read %s\n", argc > 1 ? argv[1] : "(generated body)");
        return 1;
    }
    crl_predict_parser_t *p = NULL;
    crl_predict_req_t r;
    if (crl_predict_parser_new(&p) != CRL_OK || crl_predict_parse(p, body, len, &r) != CRL_OK) {
        fprintf(stderr, "bench_parse: the body is not a valid /predict request\n");
        return 1;
    }
    size_t numbers = 2 * r.n;
    for (size_t i = 0; i < r.n; i++)
        numbers += r.sensor_len[i];
    double best = 1e30;
    for (int k = 0; k < 15; k++) {
        uint64_t t0 = crl_time_mono_ns(), t;
        long n = 0;
        do {
            crl_predict_parse(p, body, len, &r);
            n++;
        } while ((t = crl_time_mono_ns()) - t0 < 50000000ull);
        double ns = (double)(t - t0) / (double)n;
        if (ns < best) best = ns;
    }
    printf("body %zu bytes, %zu observations, %zu numbers: %.1f us per body, %.2f ns per number\n",
           len, r.n, numbers, best / 1e3, best / (double)numbers);
    crl_predict_parser_free(p);
    free(body);
    return 0;
}
