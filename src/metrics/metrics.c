/* metrics.c: per-thread shards and the Prometheus text exposition. */
#include "metrics/metrics.h"

#include "core/log.h"
#include "core/fmt.h"

#include <dirent.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static crl_metrics_shard_t *g_shards;
static size_t g_nshards;

static const double k_dur_bounds[CRL_DUR_BUCKETS] = {0.001, 0.002, 0.005, 0.01, 0.02, 0.05,
                                                     0.1,   0.2,   0.5,   1.0,  2.0,  5.0};
static const uint64_t k_dur_bounds_ns[CRL_DUR_BUCKETS] = {
    1000000,   2000000,   5000000,   10000000,   20000000,   50000000,
    100000000, 200000000, 500000000, 1000000000, 2000000000, 5000000000};
static const double k_batch_bounds[CRL_BATCH_BUCKETS] = {1,  2,   4,   8,   16,  32,
                                                         64, 128, 256, 512, 1024};
static const int k_status_codes[CRL_STATUS_SLOTS - 1] = {200, 400, 404, 405, 413,
                                                         422, 429, 500, 503};
static const char *const k_batch_ranges[CRL_BATCH_RANGES] = {"1",     "2-4",   "5-8",    "9-16",
                                                             "17-32", "33-64", "65-128", "129+"};
static const char *const k_stages[CRL_STAGE_COUNT] = {"queue_wait", "preprocess", "inference",
                                                      "postprocess"};
static const char *const k_methods[CRL_METHOD_COUNT] = {"GET", "POST", "HEAD", "OPTIONS", "OTHER"};
static const char *const k_routes[CRL_ROUTE_COUNT] = {
    "/healthz", "/metadata", "/predict",      "/warmup", "/versions", "/metrics",
    "/live",    "/ready",    "/openapi.json", "/docs",   "/redoc",    "unmatched"};

int crl_metrics_init(size_t n) {
    /* Page-aligned, and each shard a whole number of cache lines: two workers never share one. */
    _Static_assert(sizeof(crl_metrics_shard_t) % 64 == 0, "shards must not share a cache line");
    if (posix_memalign((void **)&g_shards, 4096, n * sizeof(*g_shards)) != 0) return -1;
    memset(g_shards, 0, n * sizeof(*g_shards));
    g_nshards = n;
    return 0;
}

crl_metrics_shard_t *crl_metrics_shard(size_t i) {
    return i < g_nshards ? &g_shards[i] : NULL;
}

void crl_metrics_free(void) {
    free(g_shards);
    g_shards = NULL;
    g_nshards = 0;
}

const char *crl_route_label(crl_route r) {
    return k_routes[r];
}

crl_method crl_method_of(const char *m, size_t len) {
    for (int i = 0; i < CRL_METHOD_OTHER; i++)
        if (strlen(k_methods[i]) == len && memcmp(k_methods[i], m, len) == 0) return (crl_method)i;
    return CRL_METHOD_OTHER;
}

/* Single writer per shard: a relaxed load + store is enough and avoids locked instructions. */
static inline void bump(_Atomic uint64_t *c, uint64_t v) {
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
                          memory_order_relaxed);
}

static void observe_dur(crl_hist_t *h, uint64_t ns) {
    int b = 0;
    while (b < CRL_DUR_BUCKETS && ns > k_dur_bounds_ns[b])
        b++;
    bump(&h->bucket[b], 1);
    bump(&h->count, 1);
    bump(&h->sum_ns, ns);
}

static int status_slot(int status) {
    for (int i = 0; i < CRL_STATUS_SLOTS - 1; i++)
        if (k_status_codes[i] == status) return i;
    return CRL_STATUS_SLOTS - 1;
}

void crl_metrics_http(crl_metrics_shard_t *s, crl_route r, crl_method m, int status,
                      uint64_t dur_ns) {
    observe_dur(&s->http[r][m][status_slot(status)], dur_ns);
}

void crl_metrics_cache(crl_metrics_shard_t *s, crl_cache_outcome o) {
    bump(o == CRL_METRICS_CACHE_HIT    ? &s->cache_hits
         : o == CRL_METRICS_CACHE_MISS ? &s->cache_misses
                                       : &s->cache_errors,
         1);
}

void crl_metrics_stage(crl_metrics_shard_t *s, crl_stage st, uint64_t ns) {
    observe_dur(&s->stage[st], ns);
}

void crl_metrics_conn(crl_metrics_shard_t *s, int delta) {
    atomic_store_explicit(&s->open_conns,
                          atomic_load_explicit(&s->open_conns, memory_order_relaxed) + delta,
                          memory_order_relaxed);
}

/* carla_rl_open_connections: the workers' gauges summed (each is exact on its own thread). */
static void write_conns(crl_buf *out) {
    int64_t n = 0;
    for (size_t i = 0; i < g_nshards; i++)
        n += atomic_load_explicit(&g_shards[i].open_conns, memory_order_relaxed);
    crl_buf_printf(out,
                   "# HELP carla_rl_open_connections Client connections open now (HTTP/1 and "
                   "HTTP/2, on every listener, the scraper's own included)\n"
                   "# TYPE carla_rl_open_connections gauge\ncarla_rl_open_connections %lld\n",
                   (long long)(n > 0 ? n : 0));
}

static int batch_range(size_t b) {
    static const size_t upper[CRL_BATCH_RANGES - 1] = {1, 4, 8, 16, 32, 64, 128};
    for (int i = 0; i < CRL_BATCH_RANGES - 1; i++)
        if (b <= upper[i]) return i;
    return CRL_BATCH_RANGES - 1;
}

void crl_metrics_inference(crl_metrics_shard_t *s, int ok, size_t batch, int deterministic,
                           uint64_t dur_ns) {
    crl_metrics_request(s, ok, batch, deterministic, dur_ns);
    crl_metrics_batch(s, batch);
}

void crl_metrics_request(crl_metrics_shard_t *s, int ok, size_t batch, int deterministic,
                         uint64_t dur_ns) {
    bump(ok ? &s->inference_ok : &s->inference_err, 1);
    if (deterministic) bump(&s->deterministic, 1);
    observe_dur(&s->inference_dur[batch_range(batch)], dur_ns);
}

void crl_metrics_batch(crl_metrics_shard_t *s, size_t batch) {
    crl_hist_t *h = &s->batch_size;
    int b = 0;
    while (b < CRL_BATCH_BUCKETS && (double)batch > k_batch_bounds[b])
        b++;
    bump(&h->bucket[b], 1);
    bump(&h->count, 1);
    bump(&h->sum_ns, batch);
}

static uint64_t ld(const _Atomic uint64_t *c) {
    return atomic_load_explicit(c, memory_order_relaxed);
}

/* Sums one histogram across shards; `pick` locates it inside a shard. */
typedef const crl_hist_t *(*hist_pick)(const crl_metrics_shard_t *s, const void *arg);

static void sum_hist(hist_pick pick, const void *arg, uint64_t *buckets, int nb, uint64_t *count,
                     uint64_t *sum) {
    memset(buckets, 0, sizeof(uint64_t) * (size_t)(nb + 1));
    *count = *sum = 0;
    for (size_t i = 0; i < g_nshards; i++) {
        const crl_hist_t *h = pick(&g_shards[i], arg);
        for (int b = 0; b <= nb; b++)
            buckets[b] += ld(&h->bucket[b]);
        *count += ld(&h->count);
        *sum += ld(&h->sum_ns);
    }
}

static void write_hist(crl_buf *out, const char *name, const char *labels, const double *bounds,
                       int nb, const uint64_t *buckets, uint64_t count, double sum) {
    uint64_t cum = 0;
    const char *sep = *labels ? "," : "";
    for (int b = 0; b < nb; b++) {
        cum += buckets[b];
        char le[32];
        crl_fmt_double(le, bounds[b]); /* prometheus_client writes le as Python repr: "1.0" */
        crl_buf_printf(out, "%s_bucket{%s%sle=\"%s\"} %llu\n", name, labels, sep, le,
                       (unsigned long long)cum);
    }
    crl_buf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
                   (unsigned long long)count);
    crl_buf_printf(out, "%s_count{%s} %llu\n%s_sum{%s} %.9g\n", name, labels,
                   (unsigned long long)count, name, labels, sum);
}

struct http_key {
    int r, m, s;
};
static const crl_hist_t *pick_http(const crl_metrics_shard_t *s, const void *arg) {
    const struct http_key *k = arg;
    return &s->http[k->r][k->m][k->s];
}
static const crl_hist_t *pick_inf(const crl_metrics_shard_t *s, const void *arg) {
    return &s->inference_dur[*(const int *)arg];
}
static const crl_hist_t *pick_batch(const crl_metrics_shard_t *s, const void *arg) {
    (void)arg;
    return &s->batch_size;
}

static const crl_hist_t *pick_stage(const crl_metrics_shard_t *s, const void *arg) {
    return &s->stage[*(const int *)arg];
}

/* Every stage is written, with zero counts before the first /predict, so dashboards and alerts
 * find the series from the start; queue_wait only exists with the dynamic batcher. */
static void write_stages(crl_buf *out, int batching) {
    crl_buf_puts(out, "# HELP carla_rl_stage_duration_seconds Time one /predict spent in each "
                      "stage (queue_wait, preprocess, inference, postprocess)\n"
                      "# TYPE carla_rl_stage_duration_seconds histogram\n");
    uint64_t buckets[CRL_DUR_BUCKETS + 1], count, sum;
    for (int st = batching ? CRL_STAGE_QUEUE_WAIT : CRL_STAGE_PREPROCESS; st < CRL_STAGE_COUNT;
         st++) {
        sum_hist(pick_stage, &st, buckets, CRL_DUR_BUCKETS, &count, &sum);
        char labels[64];
        snprintf(labels, sizeof(labels), "stage=\"%s\"", k_stages[st]);
        write_hist(out, "carla_rl_stage_duration_seconds", labels, k_dur_bounds, CRL_DUR_BUCKETS,
                   buckets, count, (double)sum * 1e-9);
    }
}

static void write_http(crl_buf *out) {
    crl_buf_puts(out, "# HELP carla_rl_http_requests_total Total HTTP requests\n"
                      "# TYPE carla_rl_http_requests_total counter\n");
    crl_buf reqdur;
    crl_buf_init(&reqdur, out->limit);
    crl_buf_puts(&reqdur, "# HELP carla_rl_request_duration_seconds HTTP request duration\n"
                          "# TYPE carla_rl_request_duration_seconds histogram\n");
    uint64_t buckets[CRL_DUR_BUCKETS + 1], count, sum;
    for (int r = 0; r < CRL_ROUTE_COUNT; r++)
        for (int m = 0; m < CRL_METHOD_COUNT; m++)
            for (int s = 0; s < CRL_STATUS_SLOTS; s++) {
                struct http_key k = {r, m, s};
                sum_hist(pick_http, &k, buckets, CRL_DUR_BUCKETS, &count, &sum);
                if (count == 0) continue;
                char status[8], labels[160];
                if (s < CRL_STATUS_SLOTS - 1)
                    snprintf(status, sizeof(status), "%d", k_status_codes[s]);
                else
                    snprintf(status, sizeof(status), "other");
                snprintf(labels, sizeof(labels), "method=\"%s\",endpoint=\"%s\",status_code=\"%s\"",
                         k_methods[m], k_routes[r], status);
                crl_buf_printf(out, "carla_rl_http_requests_total{%s} %llu\n", labels,
                               (unsigned long long)count);
                write_hist(&reqdur, "carla_rl_request_duration_seconds", labels, k_dur_bounds,
                           CRL_DUR_BUCKETS, buckets, count, (double)sum * 1e-9);
            }
    crl_buf_append(out, reqdur.data ? reqdur.data : "", reqdur.len);
    crl_buf_free(&reqdur);
}

static void write_inference(crl_buf *out, const char *ver, const char *dev) {
    uint64_t ok = 0, err = 0, det = 0;
    for (size_t i = 0; i < g_nshards; i++) {
        ok += ld(&g_shards[i].inference_ok);
        err += ld(&g_shards[i].inference_err);
        det += ld(&g_shards[i].deterministic);
    }
    crl_buf_puts(out, "# HELP carla_rl_inference_requests_total Total inference requests\n"
                      "# TYPE carla_rl_inference_requests_total counter\n");
    if (ver && (ok || err)) {
        crl_buf_printf(out,
                       "carla_rl_inference_requests_total{model_version=\"%s\",device=\"%s\","
                       "status=\"success\"} %llu\n",
                       ver, dev, (unsigned long long)ok);
        crl_buf_printf(out,
                       "carla_rl_inference_requests_total{model_version=\"%s\",device=\"%s\","
                       "status=\"error\"} %llu\n",
                       ver, dev, (unsigned long long)err);
    }
    crl_buf_puts(out, "# HELP carla_rl_deterministic_requests_total Deterministic inference "
                      "requests\n# TYPE carla_rl_deterministic_requests_total counter\n");
    if (ver && det)
        crl_buf_printf(out, "carla_rl_deterministic_requests_total{model_version=\"%s\"} %llu\n",
                       ver, (unsigned long long)det);

    crl_buf_puts(out, "# HELP carla_rl_inference_duration_seconds Inference duration\n"
                      "# TYPE carla_rl_inference_duration_seconds histogram\n");
    uint64_t buckets[CRL_DUR_BUCKETS + 1], count, sum;
    for (int r = 0; ver && r < CRL_BATCH_RANGES; r++) {
        sum_hist(pick_inf, &r, buckets, CRL_DUR_BUCKETS, &count, &sum);
        if (count == 0) continue;
        char labels[200];
        snprintf(labels, sizeof(labels),
                 "model_version=\"%s\",device=\"%s\",batch_size_range=\"%s\"", ver, dev,
                 k_batch_ranges[r]);
        write_hist(out, "carla_rl_inference_duration_seconds", labels, k_dur_bounds,
                   CRL_DUR_BUCKETS, buckets, count, (double)sum * 1e-9);
    }
    crl_buf_puts(out, "# HELP carla_rl_batch_size Observations per forward pass (per request "
                      "inline; per merged batch with batching.enabled)\n"
                      "# TYPE carla_rl_batch_size histogram\n");
    sum_hist(pick_batch, NULL, buckets, CRL_BATCH_BUCKETS, &count, &sum);
    if (ver && count) {
        char labels[160];
        snprintf(labels, sizeof(labels), "model_version=\"%s\"", ver);
        write_hist(out, "carla_rl_batch_size", labels, k_batch_bounds, CRL_BATCH_BUCKETS, buckets,
                   count, (double)sum);
    }
}

/* The process_* metrics every Prometheus client library exports (carlarl bench reads the first two
 * to measure server memory and CPU per request). CPU time comes from the process clock (ns
 * resolution, where /proc's ticks are 10 ms); resident memory from /proc/self/statm. */
static void write_process(crl_buf *out, double startup_timestamp) {
    struct timespec ts;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) == 0)
        crl_buf_printf(out,
                       "# HELP process_cpu_seconds_total Total user and system CPU time spent in "
                       "seconds.\n# TYPE process_cpu_seconds_total counter\n"
                       "process_cpu_seconds_total %.9f\n",
                       (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9);
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, resident = 0;
    if (f && fscanf(f, "%llu %llu", &size, &resident) == 2) {
        double page = (double)sysconf(_SC_PAGESIZE);
        crl_buf_printf(out,
                       "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
                       "# TYPE process_virtual_memory_bytes gauge\n"
                       "process_virtual_memory_bytes %.0f\n"
                       "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
                       "# TYPE process_resident_memory_bytes gauge\n"
                       "process_resident_memory_bytes %.0f\n",
                       (double)size * page, (double)resident * page);
    }
    if (f) fclose(f);
    crl_buf_printf(out,
                   "# HELP process_start_time_seconds Start time of the process since unix epoch "
                   "in seconds.\n# TYPE process_start_time_seconds gauge\n"
                   "process_start_time_seconds %.6f\n",
                   startup_timestamp);
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        long n = -1; /* the directory's own descriptor is not one of the server's */
        while (readdir(d))
            n++;
        closedir(d);
        crl_buf_printf(out,
                       "# HELP process_open_fds Number of open file descriptors.\n"
                       "# TYPE process_open_fds gauge\nprocess_open_fds %ld\n",
                       n - 2); /* "." and ".." */
    }
}

static void write_cache(crl_buf *out, const char *backend) {
    static const struct {
        const char *name, *help;
        size_t off;
    } k[] = {
        {"hits", "Response cache hits", offsetof(crl_metrics_shard_t, cache_hits)},
        {"misses", "Response cache misses (errors not included)",
         offsetof(crl_metrics_shard_t, cache_misses)},
        {"errors", "Response cache backend failures; each request was computed without the cache",
         offsetof(crl_metrics_shard_t, cache_errors)},
    };
    for (size_t j = 0; j < sizeof(k) / sizeof(k[0]); j++) {
        uint64_t sum = 0;
        for (size_t i = 0; i < g_nshards; i++)
            sum += ld((const _Atomic uint64_t *)((const char *)&g_shards[i] + k[j].off));
        crl_buf_printf(out,
                       "# HELP carla_rl_cache_%s_total %s\n# TYPE carla_rl_cache_%s_total counter\n"
                       "carla_rl_cache_%s_total{backend=\"%s\"} %llu\n",
                       k[j].name, k[j].help, k[j].name, k[j].name, backend,
                       (unsigned long long)sum);
    }
}

/* A label value in the text format: backslash, double quote and newline escaped. */
static void put_label(crl_buf *out, const char *v) {
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            crl_buf_printf(out, "\\%c", *v);
        else if (*v == '\n')
            crl_buf_puts(out, "\\n");
        else
            crl_buf_append(out, v, 1);
    }
}

/* carla_rl_build_info: what was built (version, the commit embedded by CMake, the kernel table in
 * use); carla_rl_model_info: the model served, so dashboards can join on it. Both are 1. */
static void write_info(crl_buf *out, const crl_metrics_state_t *st) {
    crl_buf_printf(out,
                   "# HELP carla_rl_build_info carlarl build: version, git commit, kernel ISA\n"
                   "# TYPE carla_rl_build_info gauge\n"
                   "carla_rl_build_info{version=\"%s\",git=\"%s\",isa=\"%s\"} 1\n",
                   CRL_VERSION, CRL_GIT_SHA, st->isa ? st->isa : "unknown");
    crl_buf_printf(out,
                   "# HELP carla_rl_log_dropped_total Log lines dropped because the logger thread "
                   "fell behind\n"
                   "# TYPE carla_rl_log_dropped_total counter\n"
                   "carla_rl_log_dropped_total %llu\n",
                   crl_log_dropped());
    crl_buf_puts(out, "# HELP carla_rl_model_info The model being served\n"
                      "# TYPE carla_rl_model_info gauge\n");
    if (!st->model_version) return;
    crl_buf_puts(out, "carla_rl_model_info{name=\"");
    put_label(out, st->model_name ? st->model_name : "");
    crl_buf_puts(out, "\",version=\"");
    put_label(out, st->model_version);
    crl_buf_printf(out, "\",device=\"%s\",precision=\"%s\"} 1\n", st->device,
                   st->precision ? st->precision : "float32");
}

int crl_metrics_write(crl_buf *out, const crl_metrics_state_t *st) {
    write_http(out);
    write_inference(out, st->model_version, st->device);
    write_stages(out, st->batch_queue_rows >= 0);
    write_conns(out);
    if (st->cache_backend) write_cache(out, st->cache_backend);
    if (st->batch_queue_rows >= 0)
        crl_buf_printf(out,
                       "# HELP carla_rl_batch_queue_rows Rows admitted to the dynamic batcher and "
                       "not yet answered\n# TYPE carla_rl_batch_queue_rows gauge\n"
                       "carla_rl_batch_queue_rows %ld\n",
                       st->batch_queue_rows);
    /* Unlike the original, model_loaded is 0 (labelled with the configured version) when no model
     * is loaded, so a ModelNotLoaded alert can fire. */
    const char *v = st->model_version ? st->model_version : st->configured_version;
    crl_buf_printf(out,
                   "# HELP carla_rl_model_loaded Whether a model is loaded (1) or not (0)\n"
                   "# TYPE carla_rl_model_loaded gauge\n"
                   "carla_rl_model_loaded{model_version=\"%s\",device=\"%s\"} %d\n",
                   v, st->device, st->model_version != NULL);
    crl_buf_printf(out,
                   "# HELP carla_rl_model_warmed_up Whether the model is warmed up\n"
                   "# TYPE carla_rl_model_warmed_up gauge\n"
                   "carla_rl_model_warmed_up{model_version=\"%s\"} %d\n",
                   v, st->warmed);
    if (st->model_version)
        crl_buf_printf(out,
                       "# HELP carla_rl_model_loading_duration_seconds Model loading time\n"
                       "# TYPE carla_rl_model_loading_duration_seconds summary\n"
                       "carla_rl_model_loading_duration_seconds_count{model_version=\"%s\"} 1\n"
                       "carla_rl_model_loading_duration_seconds_sum{model_version=\"%s\"} %.9g\n",
                       v, v, st->load_seconds);
    if (st->isa)
        crl_buf_printf(out,
                       "# HELP carla_rl_runtime_info What the configuration resolved to on this "
                       "host\n# TYPE carla_rl_runtime_info gauge\n"
                       "carla_rl_runtime_info{isa=\"%s\",device=\"%s\",precision=\"%s\","
                       "workers=\"%d\"} 1\n",
                       st->isa, st->device, st->precision ? st->precision : "float32", st->workers);
    write_info(out, st);
    crl_buf_printf(out,
                   "# HELP carla_rl_service_uptime_seconds Service uptime\n"
                   "# TYPE carla_rl_service_uptime_seconds gauge\n"
                   "carla_rl_service_uptime_seconds %.6f\n"
                   "# HELP carla_rl_service_startup_timestamp_seconds Service start time\n"
                   "# TYPE carla_rl_service_startup_timestamp_seconds gauge\n"
                   "carla_rl_service_startup_timestamp_seconds %.6f\n",
                   st->uptime_seconds, st->startup_timestamp);
    write_process(out, st->startup_timestamp);
    return out->failed ? -1 : 0;
}
