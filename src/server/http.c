/* http.c: response plumbing shared by every endpoint: request ids, the error envelope, CORS and
 * trusted hosts (original-system.md §1.3, §1.4). */
#include "server/internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "core/time.h"
#include "json/write.h"

static h2o_generator_t k_generator = {NULL, NULL};

static const crl_config_t *live(void) {
    return atomic_load_explicit(&crl__srv.live, memory_order_acquire);
}

static int list_has_star(const crl_strlist_t *l) {
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->items[i], "*") == 0) return 1;
    return 0;
}

static int origin_allowed(h2o_iovec_t origin) {
    const crl_strlist_t *l = &live()->security.cors_origins;
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->items[i], "*") == 0 || (strlen(l->items[i]) == origin.len &&
                                              memcmp(l->items[i], origin.base, origin.len) == 0))
            return 1;
    return 0;
}

static void add_hdr(h2o_req_t *req, const h2o_token_t *tok, const char *v, size_t len) {
    h2o_add_header(&req->pool, &req->res.headers, tok, NULL, v, len);
}

static void add_hdr_str(h2o_req_t *req, const char *name, const char *v, size_t len) {
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 0, NULL, v, len);
}

/* The names of the headers every response carries that are not h2o tokens, as token-shaped
 * structs: h2o_add_header stores the name's address (no copy of it from the request's pool, no
 * strlen); h2o tells its own tokens by address, so these are sent as literal names. */
static const h2o_token_t k_request_id = {.buf = {H2O_STRLIT("x-request-id")}};
static const h2o_token_t k_traceparent = {.buf = {H2O_STRLIT("traceparent")}};
static const h2o_token_t k_process_time = {.buf = {H2O_STRLIT("x-process-time")}};

/* Headers of a simple (non-preflight) cross-origin request, as Starlette's CORSMiddleware. */
static void add_cors(crl_rctx_t *rc) {
    if (rc->origin.base == NULL) return;
    h2o_req_t *req = rc->req;
    int any = list_has_star(&live()->security.cors_origins);
    int cookie = h2o_find_header(&req->headers, H2O_TOKEN_COOKIE, -1) >= 0;
    if (any && !cookie) {
        add_hdr(req, H2O_TOKEN_ACCESS_CONTROL_ALLOW_ORIGIN, H2O_STRLIT("*"));
    } else if (origin_allowed(rc->origin)) {
        add_hdr(req, H2O_TOKEN_ACCESS_CONTROL_ALLOW_ORIGIN, rc->origin.base, rc->origin.len);
        add_hdr(req, H2O_TOKEN_VARY, H2O_STRLIT("Origin"));
    }
    add_hdr_str(req, "access-control-allow-credentials", H2O_STRLIT("true"));
}

/* v / 10^decimals with exactly `decimals` digits after the point ("0.000123456"), or v itself
 * when decimals is 0, without printf on the hot path: X-Process-Time in seconds like the
 * original's, the access log's duration_ms and status. */
static size_t fmt_fixed(char *out, uint64_t v, int decimals) {
    uint64_t scale = 1;
    for (int i = 0; i < decimals; i++)
        scale *= 10;
    uint64_t s = v / scale, frac = v % scale;
    char whole[20];
    size_t n = 0, k = 0;
    do
        whole[k++] = (char)('0' + s % 10);
    while ((s /= 10) != 0);
    while (k)
        out[n++] = whole[--k];
    if (decimals == 0) return n;
    out[n++] = '.';
    for (int i = decimals - 1; i >= 0; i--, frac /= 10)
        out[n + (size_t)i] = (char)('0' + frac % 10);
    return n + (size_t)decimals;
}

/* h2o 2.2.5 h2o_mem_alloc_pool: sizes >= sizeof(chunk bytes) / 4 (4088 / 4) are malloc'd. */
#define POOL_DIRECT 1000

static size_t slab_bytes(unsigned cls) {
    return (size_t)4096 << (2 * cls);
}

static void slab_release(crl_resp_slab_t *s) {
    crl_worker_t *w = s->w;
    s->next = w->slabs[s->cls];
    w->slabs[s->cls] = s;
}

/* The body is written: end the response, then the slab is free again. */
static void slab_proceed(h2o_generator_t *gen, h2o_req_t *req) {
    crl_resp_slab_t *s = H2O_STRUCT_FROM_MEMBER(crl_resp_slab_t, gen, gen);
    h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
    slab_release(s);
}

/* The request went away (client gone) before the body was written. */
static void slab_stop(h2o_generator_t *gen, h2o_req_t *req) {
    (void)req;
    slab_release(H2O_STRUCT_FROM_MEMBER(crl_resp_slab_t, gen, gen));
}

char *crl_server__body(crl_rctx_t *rc, size_t cap) {
    unsigned cls = 0;
    while (cls < CRL_SLAB_CLASSES && slab_bytes(cls) < cap)
        cls++;
    if (cap < POOL_DIRECT || cls == CRL_SLAB_CLASSES || rc->slab != NULL)
        return h2o_mem_alloc_pool(&rc->req->pool, cap);
    crl_worker_t *w = rc->w;
    crl_resp_slab_t *s = w->slabs[cls];
    if (s != NULL) {
        w->slabs[cls] = s->next;
    } else {
        if (w->n_slabs[cls] >= CRL_SLABS_MAX || (s = malloc(sizeof(*s) + slab_bytes(cls))) == NULL)
            return h2o_mem_alloc_pool(&rc->req->pool, cap);
        w->n_slabs[cls]++;
        s->w = w;
        s->cls = cls;
        s->gen.proceed = slab_proceed;
        s->gen.stop = slab_stop;
    }
    s->next = NULL;
    rc->slab = s;
    return s->data;
}

void crl_server__slabs_free(crl_worker_t *w) {
    for (unsigned c = 0; c < CRL_SLAB_CLASSES; c++) {
        while (w->slabs[c] != NULL) {
            crl_resp_slab_t *s = w->slabs[c];
            w->slabs[c] = s->next;
            free(s);
        }
    }
}

/* Appends n bytes (the access log's parts: every one fits its buffer by construction). */
static char *put(char *o, const char *s, size_t n) {
    memcpy(o, s, n);
    return o + n;
}

/* The access log line: flat JSON members, the path escaped (it is the client's bytes). Built
 * with memcpy and fmt_fixed: printf's float formatting cost more than the rest of the line. */
void crl_server__log_access(const crl_rctx_t *rc, int status, uint64_t dur) {
    const h2o_req_t *req = rc->req;
    const char *mv = rc->model_version ? rc->model_version
                     : rc->w->model    ? rc->w->model->version
                                       : NULL;
    size_t mlen = req->method.len < 16 ? req->method.len : 16;
    size_t plen = req->path.len < 200 ? req->path.len : 200;
    char method[104], path[1210], version[800], num[48];
    size_t ml = crl_log_json_str(method, sizeof(method), req->method.base, mlen);
    size_t pl = crl_log_json_str(path, sizeof(path), req->path.base, plen);
    size_t vl = mv ? crl_log_json_str(version, sizeof(version), mv, strlen(mv)) : 0;
    if (vl == 0) vl = (size_t)(put(version, "null", 4) - version); /* none, or too long */
    size_t sl = fmt_fixed(num, (uint64_t)(status > 0 ? status : 0), 0);
    num[sl] = ' ';
    size_t dl = fmt_fixed(num + sl + 1, (dur + 500) / 1000, 3); /* ms, rounded to the us */
    /* Both ids are plain [A-Za-z0-9._:-] and hex, so they need no escaping. */
    char fields[2400], *o = fields;
    o = put(o, H2O_STRLIT("\"request_id\":\""));
    o = put(o, rc->rid, rc->rid_len);
    o = put(o, H2O_STRLIT("\",\"trace_id\":\""));
    o = put(o, rc->tp + 3, rc->tp[0] ? 32 : 0);
    o = put(o, H2O_STRLIT("\",\"method\":"));
    o = put(o, method, ml);
    o = put(o, H2O_STRLIT(",\"path\":"));
    o = put(o, path, pl);
    o = put(o, H2O_STRLIT(",\"status\":"));
    o = put(o, num, sl);
    o = put(o, H2O_STRLIT(",\"duration_ms\":"));
    o = put(o, num + sl + 1, dl);
    o = put(o, H2O_STRLIT(",\"model_version\":"));
    o = put(o, version, vl);
    *o = '\0';
    /* The message: "POST /predict 200 0.123 ms" (escaped by the logger). */
    char msg[256], *m = msg;
    m = put(m, req->method.base, mlen);
    *m++ = ' ';
    m = put(m, req->path.base, plen);
    *m++ = ' ';
    m = put(m, num, sl + 1 + dl);
    m = put(m, " ms", 4);
    crl_log_line(CRL_LOG_INFO, "http_request", fields, msg);
}

void crl_server__send(crl_rctx_t *rc, int status, const char *ctype, const char *body, size_t len) {
    h2o_req_t *req = rc->req;
    req->res.status = status;
    req->res.reason = status == 200 ? "OK" : "";
    req->res.content_length = len;
    add_hdr(req, H2O_TOKEN_CONTENT_TYPE, ctype, strlen(ctype));
    add_hdr(req, &k_request_id, rc->rid, rc->rid_len);
    if (rc->tp[0]) add_hdr(req, &k_traceparent, rc->tp, CRL_TRACEPARENT_LEN);
    add_cors(rc);
    uint64_t dur = crl_time_mono_ns() - rc->t0;
    char *pt = h2o_mem_alloc_pool(&req->pool, 32);
    add_hdr(req, &k_process_time, pt, fmt_fixed(pt, dur, 9));
    if (crl__srv.monitoring) crl_metrics_http(rc->w->metrics, rc->route, rc->method, status, dur);
    if (crl_log_access_enabled()) crl_server__log_access(rc, status, dur);

    crl_resp_slab_t *slab = rc->slab;
    if (slab != NULL && body >= slab->data && body < slab->data + slab_bytes(slab->cls)) {
        /* Sent in progress; the final (empty) send and the slab's release follow once h2o has
         * written it (slab_proceed), or the release alone if the request is dropped (slab_stop). */
        rc->slab = NULL;
        h2o_start_response(req, &slab->gen);
        h2o_iovec_t buf = h2o_iovec_init(body, rc->method == CRL_METHOD_HEAD ? 0 : len);
        h2o_send(req, &buf, buf.len ? 1 : 0, H2O_SEND_STATE_IN_PROGRESS);
        return;
    }
    if (slab != NULL) { /* taken, then not used (an error answered instead) */
        rc->slab = NULL;
        slab_release(slab);
    }
    h2o_start_response(req, &k_generator);
    if (rc->method == CRL_METHOD_HEAD) {
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
    } else {
        h2o_iovec_t buf = h2o_iovec_init(body, len);
        h2o_send(req, &buf, 1, H2O_SEND_STATE_FINAL);
    }
}

void crl_server__send_error(crl_rctx_t *rc, int status, const char *code, const char *message,
                            const char *details_json) {
    crl_buf *b = &rc->w->scratch;
    crl_buf_reset(b);
    crl_buf_puts(b, "{\"error\":");
    crl_json_cstr(b, code);
    crl_buf_puts(b, ",\"message\":");
    crl_json_cstr(b, message);
    crl_buf_puts(b, ",\"details\":{");
    if (details_json && *details_json) {
        crl_buf_puts(b, details_json);
        crl_buf_puts(b, ",");
    }
    crl_buf_puts(b, "\"request_id\":");
    crl_json_str(b, rc->rid, rc->rid_len);
    crl_buf_puts(b, "},\"timestamp\":");
    char ts[32];
    snprintf(ts, sizeof(ts), "%.6f", crl_time_wall());
    crl_buf_puts(b, ts);
    crl_buf_puts(b, "}");
    if (b->failed) {
        /* Only reachable if the details were enormous: answer without them. */
        crl_buf_reset(b);
        crl_buf_printf(b, "{\"error\":\"%s\",\"message\":\"response too large\",\"details\":{}}",
                       code);
    }
    char *body = h2o_mem_alloc_pool(&rc->req->pool, b->len);
    memcpy(body, b->data, b->len);
    crl_server__send(rc, status, "application/json", body, b->len);
}

/* "00" .. "ff": a byte's two hex digits in one copy. */
static const char hex_pairs[513] =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
    "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
    "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
    "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
    "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
    "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
    "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
    "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";

/* v as 16 lowercase hex digits, most significant first. */
static void put_hex64(char *out, uint64_t v) {
#pragma GCC unroll 8 /* -O2 keeps the loop otherwise: its counter cost as much as the digits */
    for (int i = 7; i >= 0; i--, v >>= 8)
        memcpy(out + 2 * i, hex_pairs + 2 * (v & 0xff), 2);
}

/* The first request header called `name` (len bytes, lowercase), or -1. h2o keeps header names
 * lowercase (HTTP/1 lowercases them, HTTP/2 requires it), so a length test and a memcmp do; this
 * is h2o_find_header_by_str's work without its per-header call, which was a quarter of what
 * tracing cost per request. */
static ssize_t find_header(const h2o_headers_t *h, const char *name, size_t len) {
    for (size_t i = 0; i < h->size; i++) {
        const h2o_iovec_t *n = h->entries[i].name;
        if (n->len == len && memcmp(n->base, name, len) == 0) return (ssize_t)i;
    }
    return -1;
}

/* splitmix64 steps: a fast per-thread generator for request ids (seeded from getrandom). */
static uint64_t next_rand(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* An incoming X-Request-ID is kept when it is 1..64 characters of [A-Za-z0-9._:-], so it can be
 * echoed in headers, JSON and logs without escaping; anything else gets a fresh UUIDv4. */
void crl_server__request_id(crl_rctx_t *rc) {
    h2o_req_t *req = rc->req;
    ssize_t i = find_header(&req->headers, H2O_STRLIT("x-request-id"));
    if (i >= 0) {
        h2o_iovec_t v = req->headers.entries[i].value;
        int ok = v.len >= 1 && v.len < sizeof(rc->rid);
        for (size_t k = 0; ok && k < v.len; k++) {
            char c = v.base[k];
            ok = isalnum((unsigned char)c) || c == '.' || c == '_' || c == ':' || c == '-';
        }
        if (ok) {
            rc->rid_hex[0] = '\0';
            memcpy(rc->rid, v.base, v.len);
            rc->rid_len = v.len;
            rc->rid[v.len] = '\0';
            return;
        }
    }
    /* 128 random bits, the version (4) and variant (10) bits set, as 8-4-4-4-12 hex digits. */
    uint64_t hi = next_rand(&rc->w->rng[0]), lo = next_rand(&rc->w->rng[1]);
    hi = (hi & ~0xf000ull) | 0x4000ull;
    lo = (lo & ~(0xc0ull << 56)) | (0x80ull << 56);
    char *hex = rc->rid_hex, *o = rc->rid;
    put_hex64(hex, hi);
    put_hex64(hex + 16, lo);
    hex[32] = '\0';
    static const unsigned char seg[] = {8, 4, 4, 4, 12};
    for (size_t k = 0, at = 0; k < sizeof(seg); at += seg[k++]) {
        if (k) *o++ = '-';
        memcpy(o, hex + at, seg[k]);
        o += seg[k];
    }
    *o = '\0';
    rc->rid_len = 36;
}

/* ---- W3C Trace Context ------------------------------------------------------------------- */

static int hex_val(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1; /* the spec allows lowercase only */
}

/* n lowercase hex digits, not all zero (when nonzero is set). */
static int hex_ok(const char *p, size_t n, int nonzero) {
    int any = 0;
    for (size_t i = 0; i < n; i++) {
        int v = hex_val(p[i]);
        if (v < 0) return 0;
        any |= v;
    }
    return !nonzero || any;
}

/* "vv-<32 hex>-<16 hex>-ff": version 00 is exactly 55 characters; a later version may append
 * "-..." fields, which are ignored (and version ff is invalid), as the spec asks of parsers. */
static int traceparent_valid(h2o_iovec_t v) {
    const char *p = v.base;
    if (v.len < CRL_TRACEPARENT_LEN || !hex_ok(p, 2, 0) || memcmp(p, "ff", 2) == 0) return 0;
    if (memcmp(p, "00", 2) == 0 ? v.len != CRL_TRACEPARENT_LEN
                                : v.len > CRL_TRACEPARENT_LEN && p[CRL_TRACEPARENT_LEN] != '-')
        return 0;
    return p[2] == '-' && p[35] == '-' && p[52] == '-' && hex_ok(p + 3, 32, 1) &&
           hex_ok(p + 36, 16, 1) && hex_ok(p + 53, 2, 0);
}

void crl_server__trace(crl_rctx_t *rc) {
    h2o_req_t *req = rc->req;
    char *tp = rc->tp;
    uint64_t *rng = rc->w->rng;
    ssize_t i = find_header(&req->headers, H2O_STRLIT("traceparent"));
    memcpy(tp, "00-", 3);
    if (i >= 0 && traceparent_valid(req->headers.entries[i].value)) {
        const char *in = req->headers.entries[i].value.base;
        memcpy(tp + 3, in + 3, 32);
        /* Only the sampled bit is defined for version 00; other bits are not passed on. */
        tp[53] = '0';
        tp[54] = (hex_val(in[54]) & 1) ? '1' : '0';
    } else {
        /* A new trace: its id is the request id the server made (128 bits, 122 of them random,
         * so never all zero), which ties the trace to the request's log lines; else a draw. */
        if (rc->rid_hex[0]) {
            memcpy(tp + 3, rc->rid_hex, 32);
        } else {
            uint64_t hi, lo;
            do { /* an all-zero trace id is invalid: astronomically unlikely, cheap to rule out */
                hi = next_rand(&rng[0]);
                lo = next_rand(&rng[1]);
            } while ((hi | lo) == 0);
            put_hex64(tp + 3, hi);
            put_hex64(tp + 19, lo);
        }
        double rate = live()->monitoring.trace_sample_rate;
        /* rate 1 always samples, rate 0 never; between, the top 53 bits of a draw decide. */
        int sampled = rate >= 1.0 || (double)(next_rand(&rng[0]) >> 11) * 0x1p-53 < rate;
        tp[53] = '0';
        tp[54] = sampled ? '1' : '0';
    }
    tp[35] = '-';
    uint64_t span;
    while ((span = next_rand(&rng[1])) == 0)
        ;
    put_hex64(tp + 36, span);
    tp[52] = '-';
    tp[CRL_TRACEPARENT_LEN] = '\0';
}

int crl_server__host_allowed(const crl_rctx_t *rc) {
    const crl_strlist_t *l = &live()->security.allowed_hosts;
    if (list_has_star(l)) return 1;
    h2o_iovec_t a = rc->req->authority;
    /* Host without the port; "[::1]:8080" -> "[::1]". */
    size_t len = a.len;
    if (len && a.base[0] == '[') {
        const char *rb = memchr(a.base, ']', a.len);
        len = rb ? (size_t)(rb - a.base) + 1 : a.len;
    } else {
        const char *colon = memchr(a.base, ':', a.len);
        if (colon) len = (size_t)(colon - a.base);
    }
    for (size_t i = 0; i < l->n; i++) {
        const char *p = l->items[i];
        size_t pl = strlen(p);
        if (p[0] == '*' && pl > 1) { /* "*.example.com" matches any subdomain */
            if (len >= pl - 1 && strncasecmp(a.base + len - (pl - 1), p + 1, pl - 1) == 0) return 1;
        } else if (pl == len && strncasecmp(a.base, p, len) == 0) {
            return 1;
        }
    }
    return 0;
}

int crl_server__cors_preflight(crl_rctx_t *rc) {
    h2o_req_t *req = rc->req;
    if (rc->method != CRL_METHOD_OPTIONS || rc->origin.base == NULL) return 0;
    ssize_t mi =
        h2o_find_header_by_str(&req->headers, H2O_STRLIT("access-control-request-method"), -1);
    if (mi < 0) return 0;
    h2o_iovec_t m = req->headers.entries[mi].value;
    int origin_ok = origin_allowed(rc->origin);
    int method_ok =
        h2o_memis(m.base, m.len, H2O_STRLIT("GET")) || h2o_memis(m.base, m.len, H2O_STRLIT("POST"));
    rc->route = CRL_ROUTE_OTHER;
    if (!origin_ok || !method_ok) {
        const char *msg = !origin_ok && !method_ok ? "Disallowed CORS origin, method"
                          : !origin_ok             ? "Disallowed CORS origin"
                                                   : "Disallowed CORS method";
        h2o_iovec_t saved = rc->origin;
        rc->origin.base = NULL; /* no CORS headers on a refused preflight */
        crl_server__send(rc, 400, "text/plain; charset=utf-8", msg, strlen(msg));
        rc->origin = saved;
        return 1;
    }
    add_hdr(req, H2O_TOKEN_ACCESS_CONTROL_ALLOW_ORIGIN, rc->origin.base, rc->origin.len);
    add_hdr(req, H2O_TOKEN_VARY, H2O_STRLIT("Origin"));
    add_hdr_str(req, "access-control-allow-methods", H2O_STRLIT("GET, POST"));
    add_hdr_str(req, "access-control-max-age", H2O_STRLIT("600"));
    add_hdr_str(req, "access-control-allow-credentials", H2O_STRLIT("true"));
    ssize_t hi =
        h2o_find_header_by_str(&req->headers, H2O_STRLIT("access-control-request-headers"), -1);
    if (hi >= 0)
        add_hdr_str(req, "access-control-allow-headers", req->headers.entries[hi].value.base,
                    req->headers.entries[hi].value.len);
    h2o_iovec_t saved = rc->origin;
    rc->origin.base = NULL; /* the preflight headers above replace the simple-request ones */
    crl_server__send(rc, 200, "text/plain; charset=utf-8", "OK", 2);
    rc->origin = saved;
    return 1;
}
