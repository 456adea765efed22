/* handlers.c: routing and the endpoints. POST /predict is the hot path: parse straight into the
 * worker's arrays, preprocess, forward, clip, write the response into the request pool. Every
 * other endpoint is cold and builds its body in the worker's scratch buffer. */
#include "server/internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fmt.h"
#include "core/log.h"
#include "core/time.h"
#include "hw/hw.h"
#include "json/response.h"
#include "json/write.h"
#include "server/docs_page.h"
#include "server/openapi.h"

static const char k_json[] = "application/json";

/* ---- model cache of a worker ---------------------------------------------------------------- */

static void drop_model(crl_worker_t *w) {
    crl_nn_ws_free(w->ws);
    free(w->x);
    free(w->y);
    free(w->actions);
    crl_model_unref(w->model);
    w->ws = NULL;
    w->x = w->y = w->actions = NULL;
    w->model = NULL;
}

/* optimization.memory_pinning: lock the weights and this worker's buffers into RAM. */
static void pin_memory(crl_worker_t *w) {
    static atomic_int reported;
    size_t locked = 0;
    crl_err err = {{0}};
    const crl_model_t *m = w->model;
    const size_t rows = CRL_PREDICT_MAX_OBSERVATIONS;
    crl_status st = crl_nn_graph_mlock(m->graph, &locked, &err);
    if (st == CRL_OK) st = crl_nn_ws_mlock(w->ws, &locked, &err);
    if (st == CRL_OK) st = crl_nn_split_mlock(m->split, &locked, &err); /* the compute helpers' */
    if (st == CRL_OK) st = crl_hw_mlock(w->x, rows * m->in_width * sizeof(float), &err);
    if (st == CRL_OK) st = crl_hw_mlock(w->y, rows * m->out_width * sizeof(float), &err);
    if (st == CRL_OK) st = crl_hw_mlock(w->actions, rows * CRL_ACTIONS * sizeof(float), &err);
    if (st == CRL_OK) locked += rows * (m->in_width + m->out_width + CRL_ACTIONS) * sizeof(float);
    if (atomic_exchange(&reported, 1) == 0) {
        if (st == CRL_OK)
            CRL_INFO("memory_pinning", "locked %zu KiB of weights and buffers (worker %zu)",
                     locked / 1024, w->index);
        else
            CRL_WARN("memory_pinning", "optimization.memory_pinning is on but %s", err.msg);
    }
}

/* The model's identity in cache keys: its version label and the card's artifact hashes, so new
 * weights under an old label never meet the old answers either. */
static crl_cache_model_id_t model_id(const crl_model_t *m) {
    const char *h[16] = {0};
    size_t n = m->card->n_hashes < 16 ? m->card->n_hashes : 16;
    for (size_t i = 0; i < n; i++)
        h[i] = m->card->hashes[i].hex;
    return crl_cache_model_id(m->version, h, n);
}

/* optimization.huge_pages: transparent huge pages for this worker's arenas. */
static void advise_huge_pages(crl_worker_t *w) {
    static atomic_int reported;
    size_t advised = 0;
    crl_err err = {{0}};
    crl_status st = crl_nn_ws_hugepages(w->ws, &advised, &err);
    if (st == CRL_OK) st = crl_nn_split_hugepages(w->model->split, &advised, &err);
    if (atomic_exchange(&reported, 1) == 0) {
        if (st != CRL_OK)
            CRL_WARN("huge_pages", "optimization.huge_pages is on but %s", err.msg);
        else if (advised == 0)
            CRL_INFO("huge_pages",
                     "optimization.huge_pages: no arena reaches 2 MiB (worker %zu's "
                     "is %zu KiB); left on normal pages",
                     w->index, crl_nn_ws_arena_floats(w->ws) * sizeof(float) / 1024);
        else
            CRL_INFO("huge_pages", "advised %zu KiB of arenas to use huge pages (worker %zu)",
                     advised / 1024, w->index);
    }
}

/* Takes the registry's current model when it changed since the last request: one relaxed load on
 * the hot path. Returns 0 on success (w->model may still be NULL: no model loaded). */
int crl_server__refresh_model(crl_worker_t *w) {
    unsigned gen = crl_registry_generation();
    if (gen == w->gen && (w->model == NULL || w->ws != NULL)) return 0;
    drop_model(w);
    w->gen = gen;
    crl_model_t *m = crl_registry_acquire();
    if (m == NULL) return 0;
    const size_t rows = CRL_PREDICT_MAX_OBSERVATIONS;
    w->model = m;
    w->model_id = model_id(m);
    w->x = malloc(rows * m->in_width * sizeof(float));
    w->y = malloc(rows * m->out_width * sizeof(float));
    w->actions = malloc(rows * CRL_ACTIONS * sizeof(float));
    if (w->x == NULL || w->y == NULL || w->actions == NULL ||
        crl_nn_ws_new(m->graph, rows, &w->ws) != CRL_OK) {
        drop_model(w);
        w->gen = gen - 1; /* try again on the next request */
        return -1;
    }
    /* Huge pages first: mlock faults the pages in, and they should be huge ones. */
    if (crl__srv.cfg->optimization.huge_pages) advise_huge_pages(w);
    if (crl__srv.cfg->optimization.memory_pinning) pin_memory(w);
    return 0;
}

/* ---- small writers ------------------------------------------------------------------------- */

static void send_scratch(crl_rctx_t *rc, int status) {
    crl_buf *b = &rc->w->scratch;
    if (b->failed) {
        crl_server__send_error(rc, 500, "INTERNAL_ERROR", "An unexpected error occurred",
                               "\"error_type\":\"response_too_large\"");
        return;
    }
    char *body = h2o_mem_alloc_pool(&rc->req->pool, b->len);
    memcpy(body, b->data, b->len);
    crl_server__send(rc, status, k_json, body, b->len);
}

static void send_unavailable(crl_rctx_t *rc) {
    crl_server__send_error(rc, 503, "SERVICE_UNAVAILABLE", "Model not loaded or service not ready",
                           "\"model_loaded\":false");
}

static const char *reported_version(const crl_worker_t *w) {
    if (w->model) return w->model->version;
    const char *pin = crl__srv.cfg->model.version;
    return *pin ? pin : "v0.1.0";
}

/* ---- cold endpoints ------------------------------------------------------------------------ */

static void on_healthz(crl_rctx_t *rc) {
    crl_buf *b = &rc->w->scratch;
    int ready = rc->w->model != NULL && atomic_load(&crl__srv.warmed);
    crl_buf_reset(b);
    crl_buf_printf(b, "{\"status\":\"%s\",\"version\":", ready ? "ok" : "degraded");
    crl_json_cstr(b, reported_version(rc->w));
    crl_buf_puts(b, ",\"git\":");
    crl_json_cstr(b, crl__srv.git);
    crl_buf_printf(b, ",\"device\":\"cpu\",\"timestamp\":%.6f}", crl_time_wall());
    send_scratch(rc, 200);
}

static void on_live(crl_rctx_t *rc) {
    static const char body[] = "{\"status\":\"alive\"}";
    crl_server__send(rc, 200, k_json, body, sizeof(body) - 1);
}

static void on_ready(crl_rctx_t *rc) {
    if (rc->w->model == NULL || !atomic_load(&crl__srv.warmed)) {
        send_unavailable(rc);
        return;
    }
    crl_buf *b = &rc->w->scratch;
    crl_buf_reset(b);
    crl_buf_puts(b, "{\"status\":\"ready\",\"version\":");
    crl_json_cstr(b, rc->w->model->version);
    crl_buf_puts(b, "}");
    send_scratch(rc, 200);
}

static void write_range(crl_buf *b, const char *name, float lo, float hi, int last) {
    crl_buf_printf(b, "\"%s\":[", name);
    crl_json_num(b, lo);
    crl_buf_puts(b, ",");
    crl_json_num(b, hi);
    crl_buf_puts(b, last ? "]" : "],");
}

static void on_metadata(crl_rctx_t *rc) {
    const crl_model_t *m = rc->w->model;
    if (m == NULL) return send_unavailable(rc);
    crl_buf *b = &rc->w->scratch;
    crl_buf_reset(b);
    crl_buf_puts(b, "{\"modelName\":");
    crl_json_cstr(b, m->card->model_name);
    crl_buf_puts(b, ",\"version\":");
    crl_json_cstr(b, m->version);
    crl_buf_printf(b, ",\"device\":\"cpu\",\"inputShape\":[%zu],\"actionSpace\":{", m->in_width);
    write_range(b, "throttle", m->card->action_lo[0], m->card->action_hi[0], 0);
    write_range(b, "brake", m->card->action_lo[1], m->card->action_hi[1], 0);
    write_range(b, "steer", m->card->action_lo[2], m->card->action_hi[2], 1);
    crl_buf_printf(b, "},\"outputShape\":[%zu],\"sensorCount\":%zu,\"builtin\":%s", m->out_width,
                   m->n_sensors, m->builtin ? "true" : "false");
    /* What the configuration levers resolved to on this host. */
    crl_buf_printf(b, ",\"precision\":\"%s\",\"isa\":\"%s\",\"threads\":%d",
                   crl_config_precision_name(crl__srv.cfg->model.precision), crl__srv.isa,
                   crl__srv.nworkers);
    /* optimization.compute_threads, and the smallest batch this model splits (0: none). */
    crl_buf_printf(b, ",\"computeThreads\":%zu,\"parallelMinRows\":%zu}",
                   crl_pool_threads(crl__srv.pool), m->parallel_min_rows);
    send_scratch(rc, 200);
}

static void on_warmup(crl_rctx_t *rc) {
    crl_worker_t *w = rc->w;
    if (w->model == NULL) return send_unavailable(rc);
    /* The example observation of the original's /warmup, with as many sensors as this model takes
     * (the original only worked for 3). */
    uint64_t t0 = crl_time_mono_ns();
    const crl_model_t *m = w->model;
    float sp = 25.0f, st = 0.0f;
    uint32_t off = 0, len = (uint32_t)m->n_sensors;
    float *tmp = malloc(m->n_sensors * sizeof(float));
    if (tmp == NULL)
        return crl_server__send_error(rc, 503, "SERVICE_UNAVAILABLE", "Warmup failed",
                                      "\"error\":\"out of memory\"");
    for (size_t i = 0; i < m->n_sensors; i++)
        tmp[i] = 0.5f;
    crl_predict_req_t req = {.n = 1,
                             .speed = &sp,
                             .steering = &st,
                             .sensor_off = &off,
                             .sensor_len = &len,
                             .sensors = tmp,
                             .max_sensors = len,
                             .deterministic = 1};
    crl_err err = {{0}};
    crl_status s = crl_model_predict(m, w->ws, &req, w->x, w->y, w->actions, &err);
    free(tmp);
    if (s != CRL_OK) {
        crl_buf *b = &w->details;
        crl_buf_reset(b);
        crl_buf_puts(b, "\"error\":");
        crl_json_cstr(b, err.msg);
        crl_server__send_error(rc, 503, "SERVICE_UNAVAILABLE", "Warmup failed", b->data);
        return;
    }
    atomic_store(&crl__srv.warmed, 1);
    double ms = (double)(crl_time_mono_ns() - t0) * 1e-6;
    char body[128];
    int n = snprintf(body, sizeof(body),
                     "{\"status\":\"warmed\",\"timingMs\":%.6f,\"device\":\"cpu\"}", ms);
    char *p = h2o_mem_alloc_pool(&rc->req->pool, (size_t)n);
    memcpy(p, body, (size_t)n);
    crl_server__send(rc, 200, k_json, p, (size_t)n);
}

static void on_versions(crl_rctx_t *rc) {
    const crl_config_t *o = crl__srv.cfg;
    const crl_model_t *cur = rc->w->model;
    crl_buf *b = &rc->w->scratch;
    crl_buf_reset(b);
    crl_buf_puts(b, "{\"current_version\":");
    crl_json_cstr(b, reported_version(rc->w));
    crl_buf_puts(b, ",\"available_versions\":[");
    int first = 1;
    if (cur && cur->builtin) {
        crl_buf_puts(b, "{\"version\":");
        crl_json_cstr(b, cur->version);
        crl_buf_puts(b, ",\"is_stable\":true,\"is_current\":true,\"performance_metrics\":");
        crl_card_write_metrics_json(cur->card, b);
        crl_buf_puts(b, ",\"model_card\":");
        crl_card_write_json(cur->card, b);
        crl_buf_puts(b, "}");
        first = 0;
    }
    crl_version_entry_t *list = NULL;
    size_t n = 0;
    if (crl_versions_scan(o->model.artifact_dir, &list, &n, NULL) == CRL_OK) {
        for (size_t i = 0; i < n; i++) {
            char path[PATH_MAX + 32];
            snprintf(path, sizeof(path), "%s/model_card.yaml", list[i].dir);
            crl_card_t *card = NULL;
            if (crl_card_load(path, &card, NULL) != CRL_OK) continue; /* as the original: skip */
            int current = cur && !cur->builtin && strcmp(cur->version, list[i].label) == 0;
            crl_buf_puts(b, first ? "{\"version\":" : ",{\"version\":");
            first = 0;
            crl_json_cstr(b, list[i].label);
            crl_buf_printf(b, ",\"is_stable\":%s,\"is_current\":%s,\"performance_metrics\":",
                           crl_semver_is_stable(&list[i].semver) ? "true" : "false",
                           current ? "true" : "false");
            crl_card_write_metrics_json(card, b);
            crl_buf_puts(b, ",\"model_card\":");
            crl_card_write_json(card, b);
            crl_buf_puts(b, "}");
            crl_card_free(card);
        }
        free(list);
    }
    crl_buf_puts(b, "],\"selection_strategy\":");
    crl_json_cstr(b, crl__srv.strategy);
    crl_buf_puts(b, ",\"artifacts_root\":");
    crl_json_cstr(b, o->model.artifact_dir);
    crl_buf_puts(b, "}");
    send_scratch(rc, 200);
}

static void on_metrics(crl_rctx_t *rc) {
    crl_buf *b = &rc->w->scratch;
    crl_buf_reset(b);
    const crl_model_t *m = rc->w->model;
    crl_metrics_state_t st = {
        .batch_queue_rows = crl__srv.batch ? (long)crl_batch_queued_rows(crl__srv.batch) : -1,
        .model_version = m ? m->version : NULL,
        .model_name = m ? m->card->model_name : NULL,
        .configured_version = reported_version(rc->w),
        .device = "cpu",
        .warmed = m != NULL && atomic_load(&crl__srv.warmed),
        .uptime_seconds = (double)(crl_time_mono_ns() - crl__srv.started_mono) * 1e-9,
        .startup_timestamp = crl__srv.started_wall,
        .load_seconds = m ? m->load_seconds : 0,
        .isa = crl__srv.isa,
        .precision = crl_config_precision_name(crl__srv.cfg->model.precision),
        .workers = crl__srv.nworkers,
        .cache_backend =
            crl__srv.cache ? crl_cache_backend_name(crl_cache_backend_of(crl__srv.cache)) : NULL,
    };
    crl_metrics_write(b, &st);
    char *body = h2o_mem_alloc_pool(&rc->req->pool, b->len);
    memcpy(body, b->data, b->len);
    crl_server__send(rc, 200, "text/plain; version=0.0.4; charset=utf-8", body, b->len);
}

static void on_openapi(crl_rctx_t *rc) {
    size_t len;
    const char *doc = crl_openapi_json(&len);
    crl_server__send(rc, 200, k_json, doc, len);
}

static void on_docs(crl_rctx_t *rc) {
    crl_server__send(rc, 200, "text/html; charset=utf-8", crl_docs_page, sizeof(crl_docs_page) - 1);
}

/* ---- POST /predict ------------------------------------------------------------------------- */

/* details.validation_errors from the parser's errors. */
static void send_validation(crl_rctx_t *rc, const crl_verr_t *errs, size_t n, size_t total) {
    crl_buf *b = &rc->w->details;
    crl_buf_reset(b);
    crl_buf_puts(b, "\"validation_errors\":[");
    for (size_t i = 0; i < n; i++) {
        crl_buf_puts(b, i ? ",{\"field\":" : "{\"field\":");
        crl_json_cstr(b, errs[i].field);
        crl_buf_puts(b, ",\"message\":");
        crl_json_cstr(b, errs[i].message);
        crl_buf_puts(b, ",\"type\":");
        crl_json_cstr(b, errs[i].type);
        crl_buf_puts(b, "}");
    }
    crl_buf_puts(b, "]");
    if (total > n) crl_buf_printf(b, ",\"validation_errors_total\":%zu", total);
    crl_server__send_error(rc, 422, "VALIDATION_ERROR", "Input validation failed", b->data);
}

static void send_one_validation(crl_rctx_t *rc, const char *field, const char *message,
                                const char *type) {
    crl_verr_t e;
    snprintf(e.field, sizeof(e.field), "%s", field);
    snprintf(e.message, sizeof(e.message), "%s", message);
    e.type = type;
    send_validation(rc, &e, 1, 1);
}

/* FastAPI reads the body as JSON when there is no Content-Type or an application/json (or
 * +json) one; any other type makes the body a non-object and fails validation at "body". */
static int content_type_is_json(h2o_req_t *req) {
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_TYPE, -1);
    if (i < 0) return 1;
    h2o_iovec_t v = req->headers.entries[i].value;
    size_t len = v.len;
    const char *semi = memchr(v.base, ';', v.len);
    if (semi) len = (size_t)(semi - v.base);
    while (len && (v.base[len - 1] == ' ' || v.base[len - 1] == '\t'))
        len--;
    if (h2o_lcstris(v.base, len, H2O_STRLIT("application/json"))) return 1;
    return len > 17 && h2o_lcstris(v.base, 12, H2O_STRLIT("application/")) &&
           h2o_lcstris(v.base + len - 5, 5, H2O_STRLIT("+json"));
}

void crl_server__send_predict_error(crl_rctx_t *rc, const crl_predict_req_t *pr, const char *msg) {
    crl_buf *b = &rc->w->details;
    crl_buf_reset(b);
    crl_buf_printf(b, "\"batch_size\":%zu,\"deterministic\":%s,\"error\":", pr->n,
                   pr->deterministic ? "true" : "false");
    crl_json_cstr(b, msg);
    crl_server__send_error(rc, 500, "INFERENCE_ERROR", "Inference failed", b->data);
}

/* A clock read for a stage timing: none with monitoring.enabled off. */
static uint64_t stage_clock(int mon) {
    return mon ? crl_time_mono_ns() : 0;
}

static void predict(crl_rctx_t *rc) {
    crl_worker_t *w = rc->w;
    h2o_req_t *req = rc->req;
    const int mon = crl__srv.monitoring;
    uint64_t tp = stage_clock(mon); /* the preprocess stage: parse and features */
    if (!content_type_is_json(req))
        return send_one_validation(rc, "body",
                                   "Input should be a valid dictionary or object to extract "
                                   "fields from",
                                   "model_attributes_type");
    crl_predict_req_t pr;
    crl_status st = crl_predict_parse(w->parser, req->entity.base ? req->entity.base : "",
                                      req->entity.len, &pr);
    if (st == CRL_ENOMEM)
        return crl_server__send_error(rc, 413, "PAYLOAD_TOO_LARGE", "Request body too large",
                                      "\"error\":\"too many values in the request\"");
    /* The original's order: malformed JSON 422, then no model 503, then schema 422. */
    if (st != CRL_OK && pr.json_invalid)
        return send_validation(rc, pr.errors, pr.n_errors, pr.n_errors_total);
    const crl_model_t *m = w->model;
    if (m == NULL) return send_unavailable(rc);
    if (st != CRL_OK) return send_validation(rc, pr.errors, pr.n_errors, pr.n_errors_total);
    if (pr.max_sensors != m->n_sensors) {
        /* The original answered 500; a request the model cannot take is the client's error. */
        size_t row = 0;
        while (row + 1 < pr.n && pr.sensor_len[row] != pr.max_sensors)
            row++;
        char field[64], msg[256];
        snprintf(field, sizeof(field), "body.observations.%zu.sensors", row);
        snprintf(msg, sizeof(msg),
                 "Model %s expects %zu sensor values per observation (input width %zu), got %zu",
                 m->version, m->n_sensors, m->in_width, pr.max_sensors);
        return send_one_validation(rc, field, msg, "sensor_count");
    }

    uint64_t t0 = crl_time_mono_ns();
    crl_err err = {{0}};
    crl_model_preprocess(m, &pr, w->x);
    uint64_t tpre = stage_clock(mon);
    if (mon) crl_metrics_stage(w->metrics, CRL_STAGE_PREPROCESS, tpre - tp);
    /* Step 3, the response cache: deterministic requests only (a sample must stay a fresh draw),
     * keyed on the exact features. A backend failure reads as a miss and is counted. */
    crl_cache_key_t key;
    int cacheable =
        w->cache && pr.deterministic && pr.n <= crl_cache_max_observations(crl__srv.cache);
    if (cacheable) {
        key = crl_cache_key(&w->model_id, pr.deterministic, w->x, pr.n, m->in_width);
        crl_cache_result r = crl_cache_get(w->cache, &key, w->actions);
        if (mon)
            crl_metrics_cache(w->metrics, r == CRL_CACHE_HIT    ? CRL_METRICS_CACHE_HIT
                                          : r == CRL_CACHE_MISS ? CRL_METRICS_CACHE_MISS
                                                                : CRL_METRICS_CACHE_ERROR);
        if (r == CRL_CACHE_HIT) {
            uint64_t th = crl_time_mono_ns();
            crl_server__send_actions(rc, &pr, m, w->actions, (double)(th - t0) * 1e-6);
            if (mon) crl_metrics_stage(w->metrics, CRL_STAGE_POSTPROCESS, crl_time_mono_ns() - th);
            return;
        }
        /* A backend that just failed would fail the store too (a dropped Redis connection waits
         * out cache.retry_ms): one error per request, and no second try. */
        if (r == CRL_CACHE_ERROR) cacheable = 0;
    }
    /* Step 4 through the dynamic batcher: the job gets a copy of the features. */
    if (crl__srv.batch) return crl_server__defer(rc, &pr, m, w->x, t0, cacheable ? &key : NULL);
    uint64_t tf = cacheable ? stage_clock(mon) : tpre; /* after the cache, else no gap */
    st = crl_model_forward(m, w->ws, w->x, pr.n, w->y, &err);
    uint64_t th = stage_clock(mon);
    if (mon) crl_metrics_stage(w->metrics, CRL_STAGE_INFERENCE, th - tf);
    if (st == CRL_OK) st = crl_model_head(m, &pr, w->y, w->actions, &err);
    uint64_t t1 = crl_time_mono_ns();
    if (mon) crl_metrics_inference(w->metrics, st == CRL_OK, pr.n, pr.deterministic, t1 - t0);
    if (st != CRL_OK) return crl_server__send_predict_error(rc, &pr, err.msg);
    if (cacheable && crl_cache_put(w->cache, &key, w->actions) == CRL_CACHE_ERROR && mon)
        crl_metrics_cache(w->metrics, CRL_METRICS_CACHE_ERROR);
    crl_server__send_actions(rc, &pr, m, w->actions, (double)(t1 - t0) * 1e-6);
    if (mon) crl_metrics_stage(w->metrics, CRL_STAGE_POSTPROCESS, crl_time_mono_ns() - th);
}

void crl_server__send_actions(crl_rctx_t *rc, const crl_predict_req_t *pr, const crl_model_t *m,
                              const float *actions, double ms) {
    size_t cap = crl_json_predict_response_cap(pr->n, strlen(m->version));
    char *out = crl_server__body(rc, cap);
    size_t len = crl_json_predict_response(out, actions, pr->n, m->version, ms, pr->deterministic);
    rc->model_version = m->version; /* m outlives the send, which logs it */
    crl_server__send(rc, 200, k_json, out, len);
}

static void on_predict(crl_rctx_t *rc) {
    predict(rc);
    /* A rare huge request must not pin tens of MB per worker for the process's lifetime. */
    crl_predict_parser_trim(rc->w->parser, 1u << 20);
}

/* ---- routing ------------------------------------------------------------------------------- */

typedef struct route {
    const char *path;
    crl_route id;
    crl_method method; /* GET routes also answer HEAD */
    void (*fn)(crl_rctx_t *rc);
} route_t;

static const route_t k_routes[] = {
    {"/predict", CRL_ROUTE_PREDICT, CRL_METHOD_POST, on_predict},
    {"/healthz", CRL_ROUTE_HEALTHZ, CRL_METHOD_GET, on_healthz},
    {"/metadata", CRL_ROUTE_METADATA, CRL_METHOD_GET, on_metadata},
    {"/warmup", CRL_ROUTE_WARMUP, CRL_METHOD_POST, on_warmup},
    {"/versions", CRL_ROUTE_VERSIONS, CRL_METHOD_GET, on_versions},
    {"/metrics", CRL_ROUTE_METRICS, CRL_METHOD_GET, on_metrics},
    {"/live", CRL_ROUTE_LIVE, CRL_METHOD_GET, on_live},
    {"/ready", CRL_ROUTE_READY, CRL_METHOD_GET, on_ready},
    {"/openapi.json", CRL_ROUTE_OPENAPI, CRL_METHOD_GET, on_openapi},
    {"/docs", CRL_ROUTE_DOCS, CRL_METHOD_GET, on_docs},
    {"/redoc", CRL_ROUTE_REDOC, CRL_METHOD_GET, on_docs},
};

int crl_server__on_req(h2o_handler_t *self, h2o_req_t *req) {
    (void)self;
    crl_rctx_t rc = {.w = (crl_worker_t *)req->conn->ctx, .req = req, .t0 = crl_time_mono_ns()};
    rc.method = crl_method_of(req->method.base, req->method.len);
    rc.route = CRL_ROUTE_OTHER;
    crl_server__request_id(&rc);
    if (crl__srv.monitoring) crl_server__trace(&rc);
    if (!crl_server__host_allowed(&rc)) {
        crl_server__send(&rc, 400, "text/plain; charset=utf-8", "Invalid host header", 19);
        return 0;
    }
    ssize_t oi = h2o_find_header_by_str(&req->headers, H2O_STRLIT("origin"), -1);
    if (oi >= 0) rc.origin = req->headers.entries[oi].value;
    if (crl_server__cors_preflight(&rc)) return 0;
    crl_server__refresh_model(rc.w);

    h2o_iovec_t path = req->path_normalized;
    /* monitoring.metrics_port: the metrics port serves the exposition alone, the main port all
     * the rest. */
    int split = crl__srv.cfg->monitoring.metrics_port != 0;
    int on_metrics_port = req->conn->hosts == crl__srv.metrics_hosts;
    for (size_t i = 0; i < sizeof(k_routes) / sizeof(k_routes[0]); i++) {
        const route_t *r = &k_routes[i];
        if (split && (r->id == CRL_ROUTE_METRICS) != on_metrics_port) continue;
        if (r->id == CRL_ROUTE_METRICS && !crl__srv.monitoring) continue; /* no exposition */
        /* monitoring.metrics_path moves the exposition (config.c keeps it off other routes). */
        const char *rp =
            r->id == CRL_ROUTE_METRICS ? crl__srv.cfg->monitoring.metrics_path : r->path;
        if (!h2o_memis(path.base, path.len, rp, strlen(rp))) continue;
        rc.route = r->id;
        if (rc.method == r->method ||
            (r->method == CRL_METHOD_GET && rc.method == CRL_METHOD_HEAD)) {
            r->fn(&rc);
            return 0;
        }
        const char *allow = r->method == CRL_METHOD_GET ? "GET, HEAD" : "POST";
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, allow, strlen(allow));
        crl_buf *b = &rc.w->details;
        crl_buf_reset(b);
        crl_buf_puts(b, "\"method\":");
        crl_json_str(b, req->method.base, req->method.len);
        crl_buf_printf(b, ",\"allowed\":\"%s\"", allow);
        crl_server__send_error(&rc, 405, "METHOD_NOT_ALLOWED", "Method Not Allowed", b->data);
        return 0;
    }
    crl_buf *b = &rc.w->details;
    crl_buf_reset(b);
    crl_buf_puts(b, "\"path\":");
    crl_json_str(b, path.base, path.len < 256 ? path.len : 256);
    crl_server__send_error(&rc, 404, "NOT_FOUND", "Not Found", b->data);
    return 0;
}
