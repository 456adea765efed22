/* metrics.h: Prometheus metrics with the original's names and labels (original-system.md §5.1).
 * Each worker thread writes only its own shard with relaxed atomics (no locks, no shared cache
 * lines on the hot path); a scrape sums the shards. Label sets are small fixed enums, so the
 * `endpoint` label is the route, never the raw path (the original's unbounded cardinality bug). */
#ifndef CRL_METRICS_METRICS_H
#define CRL_METRICS_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* Routes, in the order of their `endpoint` label values. */
typedef enum crl_route {
    CRL_ROUTE_HEALTHZ,
    CRL_ROUTE_METADATA,
    CRL_ROUTE_PREDICT,
    CRL_ROUTE_WARMUP,
    CRL_ROUTE_VERSIONS,
    CRL_ROUTE_METRICS,
    CRL_ROUTE_LIVE,
    CRL_ROUTE_READY,
    CRL_ROUTE_OPENAPI,
    CRL_ROUTE_DOCS,
    CRL_ROUTE_REDOC,
    CRL_ROUTE_OTHER, /* unmatched paths: one label value, not one per path */
    CRL_ROUTE_COUNT
} crl_route;

typedef enum crl_method {
    CRL_METHOD_GET,
    CRL_METHOD_POST,
    CRL_METHOD_HEAD,
    CRL_METHOD_OPTIONS,
    CRL_METHOD_OTHER,
    CRL_METHOD_COUNT
} crl_method;

#define CRL_STATUS_SLOTS 10  /* 200 400 404 405 413 422 429 500 503 other */
#define CRL_DUR_BUCKETS 12   /* 0.001 .. 5.0, then +Inf */
#define CRL_BATCH_BUCKETS 11 /* 1 .. 1024, then +Inf */
#define CRL_BATCH_RANGES 8   /* 1, 2-4, 5-8, 9-16, 17-32, 33-64, 65-128, 129+ */

/* Stages of one /predict, in the order of their `stage` label values
 * (carla_rl_stage_duration_seconds). */
typedef enum crl_stage {
    CRL_STAGE_QUEUE_WAIT,  /* batched path: submitted to the batcher until its first forward pass */
    CRL_STAGE_PREPROCESS,  /* body parse and feature computation */
    CRL_STAGE_INFERENCE,   /* the forward pass (batched: the passes that carried its rows) */
    CRL_STAGE_POSTPROCESS, /* the policy head, the clip and writing the response */
    CRL_STAGE_COUNT
} crl_stage;

typedef struct crl_hist {
    _Atomic uint64_t bucket[CRL_DUR_BUCKETS + 1]; /* non-cumulative; last is +Inf */
    _Atomic uint64_t count;
    _Atomic uint64_t sum_ns; /* durations in ns, batch sizes as-is */
} crl_hist_t;

/* Cache-line aligned (so its size is a multiple of 64): neighbouring shards in the array never
 * share a line. */
typedef struct crl_metrics_shard {
    _Alignas(64) crl_hist_t http[CRL_ROUTE_COUNT][CRL_METHOD_COUNT][CRL_STATUS_SLOTS];
    _Atomic uint64_t inference_ok, inference_err, deterministic;
    crl_hist_t inference_dur[CRL_BATCH_RANGES];
    crl_hist_t batch_size;
    _Atomic uint64_t cache_hits, cache_misses, cache_errors;
    crl_hist_t stage[CRL_STAGE_COUNT];
    _Atomic int64_t open_conns; /* this worker's client connections: accepted, not yet closed */
} crl_metrics_shard_t;

/* Creates `n` shards (one per worker). Call once at start-up. */
int crl_metrics_init(size_t n);
crl_metrics_shard_t *crl_metrics_shard(size_t i);
void crl_metrics_free(void);

void crl_metrics_http(crl_metrics_shard_t *s, crl_route r, crl_method m, int status,
                      uint64_t dur_ns);
void crl_metrics_inference(crl_metrics_shard_t *s, int ok, size_t batch, int deterministic,
                           uint64_t dur_ns);
/* crl_metrics_inference in two parts, for the dynamic batcher: the request (counts, duration)
 * on its worker's shard, and each executed forward pass's rows on the batcher's shard. */
void crl_metrics_request(crl_metrics_shard_t *s, int ok, size_t batch, int deterministic,
                         uint64_t dur_ns);
void crl_metrics_batch(crl_metrics_shard_t *s, size_t batch);
/* One response-cache lookup: a hit, a miss, or a backend failure (computed as a miss). */
typedef enum crl_cache_outcome {
    CRL_METRICS_CACHE_HIT,
    CRL_METRICS_CACHE_MISS,
    CRL_METRICS_CACHE_ERROR
} crl_cache_outcome;
void crl_metrics_cache(crl_metrics_shard_t *s, crl_cache_outcome o);
/* One stage of one /predict took `ns`. */
void crl_metrics_stage(crl_metrics_shard_t *s, crl_stage st, uint64_t ns);
/* A client connection was accepted (+1) or closed (-1) on the shard's worker. */
void crl_metrics_conn(crl_metrics_shard_t *s, int delta);

/* The state the exposition reports besides the shards. */
typedef struct crl_metrics_state {
    const char *model_version;      /* NULL when no model is loaded */
    const char *configured_version; /* MODEL_VERSION, reported when nothing is loaded */
    const char *device;
    int warmed;
    double uptime_seconds;
    double startup_timestamp;
    double load_seconds;
    const char *isa;       /* the kernel table in use */
    const char *precision; /* model.precision */
    int workers;
    const char *cache_backend; /* "memory" or "redis"; NULL: no cache, no cache metrics */
    long batch_queue_rows;     /* the batcher's queue depth; -1: batching off, no gauge */
    const char *model_name;    /* the card's model_name (any text: escaped in labels) */
} crl_metrics_state_t;

/* Appends the whole text exposition (format 0.0.4). */
int crl_metrics_write(crl_buf *out, const crl_metrics_state_t *st);

crl_method crl_method_of(const char *m, size_t len);
const char *crl_route_label(crl_route r);

#endif
