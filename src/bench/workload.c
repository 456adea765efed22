/* workload.c: what carlarl bench sends. Every request is built once, whole (request line, headers,
 * body), before the run: a pool of CRL_BENCH_POOL /predict bodies with seeded random observations,
 * one /predict body read from an --observations file, or any method and path with an optional
 * --body file. The connections cycle through the pool, so the hot path only copies bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bench/internal.h"
#include "core/buf.h"
#include "json/predict.h"

#define CRL_BENCH_POOL 64
#define CRL_BENCH_MAX_BODY (64u << 20)

crl_status crl_bench__parse_url(crl_bench_settings *s, const char *url, crl_err *err) {
    if (strlen(url) >= sizeof(s->url)) return crl_err_set(err, CRL_EINVAL, "URL is too long");
    snprintf(s->url, sizeof(s->url), "%s", url);
    const char *p = url;
    if (strncmp(p, "https://", 8) == 0)
        return crl_err_set(err, CRL_EUNSUPPORTED, "%s: https is not supported", url);
    if (strncmp(p, "http://", 7) == 0) p += 7;
    const char *slash = strchr(p, '/');
    size_t hostport = slash ? (size_t)(slash - p) : strlen(p);
    const char *colon = memchr(p, ':', hostport);
    size_t hlen = colon ? (size_t)(colon - p) : hostport;
    if (hlen == 0 || hlen >= sizeof(s->host))
        return crl_err_set(err, CRL_EINVAL, "%s: no host in the URL", url);
    memcpy(s->host, p, hlen);
    s->host[hlen] = '\0';
    s->port = 80;
    if (colon) {
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if (end != p + hostport || port < 1 || port > 65535)
            return crl_err_set(err, CRL_EINVAL, "%s: bad port", url);
        s->port = (int)port;
    }
    const char *path = slash && slash[1] ? slash : "/predict";
    if (strlen(path) >= sizeof(s->path)) return crl_err_set(err, CRL_EINVAL, "path is too long");
    snprintf(s->path, sizeof(s->path), "%s", path);
    return CRL_OK;
}

/* splitmix64: a tiny seeded generator; bodies depend on the seed only. */
static uint64_t next_u64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double uniform(uint64_t *state, double lo, double hi) {
    return lo + (hi - lo) * ((double)(next_u64(state) >> 11) * 0x1.0p-53);
}

/* One /predict body: `batch` observations in the schema's ranges (speed 0..120, steering -1..1,
 * sensors 0..1, the ranges of a real car's readings). */
static void predict_body(crl_buf *b, const crl_bench_settings *s, uint64_t *rng) {
    crl_buf_puts(b, "{\"observations\":[");
    for (int i = 0; i < s->batch; i++) {
        crl_buf_printf(b, "%s{\"speed\":%.3f,\"steering\":%.4f,\"sensors\":[", i ? "," : "",
                       uniform(rng, 0, 120), uniform(rng, -1, 1));
        for (int k = 0; k < s->sensors; k++)
            crl_buf_printf(b, "%s%.4f", k ? "," : "", uniform(rng, 0, 1));
        crl_buf_puts(b, "]}");
    }
    crl_buf_printf(b, "],\"deterministic\":%s}", s->deterministic ? "true" : "false");
}

static crl_status read_file(const char *path, crl_buf *b, crl_err *err) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) return crl_err_set(err, CRL_EIO, "%s: cannot open", path);
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        if (crl_buf_append(b, chunk, n) != CRL_OK) break;
    int bad = ferror(f) || b->failed;
    fclose(f);
    if (bad) return crl_err_set(err, CRL_EIO, "%s: cannot read (or larger than 64 MiB)", path);
    return CRL_OK;
}

/* An --observations file is a /predict body; it is validated here so a typo fails before the run,
 * and its batch and sensor count feed observations per second. */
static crl_status check_observations(crl_bench_settings *s, const crl_buf *body, crl_err *err) {
    crl_predict_parser_t *p = NULL;
    crl_predict_req_t req;
    crl_status st = crl_predict_parser_new(&p);
    if (st != CRL_OK) return crl_err_set(err, st, "out of memory");
    st = crl_predict_parse(p, body->data ? body->data : "", body->len, &req);
    if (st == CRL_OK) {
        s->batch = (int)req.n;
        s->sensors = (int)req.max_sensors;
        s->deterministic = req.deterministic;
    } else if (req.n_errors > 0) {
        crl_err_set(err, CRL_EFORMAT, "%s: not a valid /predict body: %s: %s", s->body_file,
                    req.errors[0].field, req.errors[0].message);
    } else {
        crl_err_set(err, CRL_EFORMAT, "%s: not a valid /predict body", s->body_file);
    }
    crl_predict_parser_free(p);
    return st == CRL_OK ? CRL_OK : CRL_EFORMAT;
}

static crl_status add_request(crl_bench_workload *w, const crl_bench_settings *s,
                              const crl_bench_headers *hdrs, const crl_buf *body, int has_body) {
    crl_buf r;
    crl_buf_init(&r, (size_t)CRL_BENCH_MAX_BODY + 65536);
    crl_buf_printf(&r, "%s %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: carlarl-bench/%s\r\n",
                   s->method, s->path, s->host, s->port, CRL_VERSION);
    int has_ct = 0;
    for (int i = 0; i < hdrs->n; i++) {
        crl_buf_printf(&r, "%s\r\n", hdrs->h[i]);
        if (strncasecmp(hdrs->h[i], "content-type:", 13) == 0) has_ct = 1;
    }
    if (has_body) {
        if (!has_ct) crl_buf_puts(&r, "Content-Type: application/json\r\n");
        crl_buf_printf(&r, "Content-Length: %zu\r\n\r\n", body->len);
        crl_buf_append(&r, body->data ? body->data : "", body->len);
    } else {
        crl_buf_puts(&r, "\r\n");
    }
    if (r.failed) {
        crl_buf_free(&r);
        return CRL_ENOMEM;
    }
    w->req[w->n] = r.data; /* the buffer's memory now belongs to the workload */
    w->len[w->n] = r.len;
    w->n++;
    return CRL_OK;
}

/* The request mix in words (cut to fit workload_desc when the paths are very long). */
static void describe(crl_bench_settings *s, size_t body_len) {
    crl_buf d;
    crl_buf_init(&d, 4096);
    crl_buf_printf(&d, "%s %s, ", s->method, s->path);
    if (s->predict && s->body_file[0])
        crl_buf_printf(&d, "one body from %s: batch %d x %d sensors, %s", s->body_file, s->batch,
                       s->sensors, s->deterministic ? "deterministic" : "sampled");
    else if (s->predict)
        crl_buf_printf(&d,
                       "batch %d x %d sensors, %s, %d bodies of random observations "
                       "(seed %llu) cycled",
                       s->batch, s->sensors, s->deterministic ? "deterministic" : "sampled",
                       CRL_BENCH_POOL, (unsigned long long)s->seed);
    else if (s->body_file[0])
        crl_buf_printf(&d, "body from %s (%zu bytes)", s->body_file, body_len);
    else
        crl_buf_puts(&d, "no body");
    size_t n = d.len < sizeof(s->workload_desc) - 1 ? d.len : sizeof(s->workload_desc) - 1;
    memcpy(s->workload_desc, d.data ? d.data : "", n);
    s->workload_desc[n] = '\0';
    crl_buf_free(&d);
}

crl_status crl_bench__workload_build(crl_bench_settings *s, const crl_bench_headers *hdrs,
                                     crl_bench_workload *w, crl_err *err) {
    memset(w, 0, sizeof(*w));
    w->head = strcmp(s->method, "HEAD") == 0;
    size_t n = s->predict && !s->body_file[0] ? CRL_BENCH_POOL : 1;
    w->req = calloc(n, sizeof(*w->req));
    w->len = calloc(n, sizeof(*w->len));
    crl_buf body;
    crl_buf_init(&body, CRL_BENCH_MAX_BODY);
    crl_status st = CRL_OK;
    if (w->req == NULL || w->len == NULL) {
        st = crl_err_set(err, CRL_ENOMEM, "out of memory");
        goto out;
    }
    if (s->body_file[0]) {
        if ((st = read_file(s->body_file, &body, err)) != CRL_OK) goto out;
        if (s->predict && (st = check_observations(s, &body, err)) != CRL_OK) goto out;
    }
    uint64_t rng = s->seed;
    for (size_t i = 0; i < n; i++) {
        if (s->predict && !s->body_file[0]) {
            crl_buf_reset(&body);
            predict_body(&body, s, &rng);
        }
        int has_body = s->predict || s->body_file[0];
        if (add_request(w, s, hdrs, &body, has_body) != CRL_OK) {
            st = crl_err_set(err, CRL_ENOMEM, "request too large");
            goto out;
        }
    }
    describe(s, body.len);
out:
    crl_buf_free(&body);
    if (st != CRL_OK) crl_bench__workload_free(w);
    return st;
}

void crl_bench__workload_free(crl_bench_workload *w) {
    for (size_t i = 0; w->req && i < w->n; i++)
        free(w->req[i]);
    free(w->req);
    free(w->len);
    memset(w, 0, sizeof(*w));
}
