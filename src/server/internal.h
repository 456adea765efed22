/* internal.h: what the server's files share: the worker (one per event-loop thread), the
 * per-request context, and the response helpers. Not for use outside src/server. */
#ifndef CRL_SERVER_INTERNAL_H
#define CRL_SERVER_INTERNAL_H

#include <h2o.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "batch/batch.h"
#include "cache/cache.h"
#include "core/buf.h"
#include "json/predict.h"
#include "metrics/metrics.h"
#include "model/model.h"
#include "config/config.h"

/* A response body that outlives its handler without a malloc per request: h2o 2.2.5's
 * h2o_mem_alloc_pool mallocs (and frees) every allocation of a quarter chunk (~1 KiB) or more, so
 * larger /predict bodies come from per-worker free lists of slabs (size classes 4, 16, 64, 256
 * KiB), each slab returned when h2o has written it (the generator's proceed) or dropped the
 * request (its stop). Slabs are made on demand up to the worker's peak number of large responses
 * in flight (at most CRL_SLABS_MAX per class) and kept until the worker ends. */
#define CRL_SLAB_CLASSES 4
#define CRL_SLABS_MAX 32
typedef struct crl_resp_slab {
    struct crl_resp_slab *next;
    struct crl_worker *w;
    h2o_generator_t gen;
    unsigned cls;
    char data[];
} crl_resp_slab_t;

typedef struct crl_worker {
    h2o_context_t ctx; /* first: handlers find their worker from req->conn->ctx */
    h2o_accept_ctx_t accept_ctx;
    h2o_socket_t *listener;
    int fd;
    /* monitoring.metrics_port: worker 0's second listener (mfd -1 on the others, or when 0). */
    h2o_accept_ctx_t metrics_accept_ctx;
    h2o_socket_t *metrics_listener;
    int mfd;
    size_t index;
    pthread_t tid;
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t ctl;
    atomic_int stop;
    atomic_int ready; /* its queue and receivers exist: the main thread may post to them */
    size_t nconns;
    int drained; /* the loop ended with no open connection */
    crl_metrics_shard_t *metrics;
    crl_predict_parser_t *parser;
    /* The model this worker serves and its per-thread buffers, refreshed when the registry's
     * generation changes. */
    unsigned gen;
    crl_model_t *model;
    crl_nn_ws_t *ws;
    float *x, *y, *actions;
    uint64_t rng[2];
    /* The response cache (NULL: cache.backend none) and the current model's identity in keys. */
    crl_cache_local_t *cache;
    crl_cache_model_id_t model_id;
    crl_buf scratch; /* cold-path response bodies */
    crl_buf details; /* the details object of an error envelope, built before the envelope */
    crl_resp_slab_t *slabs[CRL_SLAB_CLASSES]; /* free response slabs per size class */
    size_t n_slabs[CRL_SLAB_CLASSES];         /* made, free or in flight */
    /* batching.enabled: this iteration's jobs (handed to the batcher once the loop iteration
     * ends), the completions' receiver, the jobs' deadlines (batching.timeout_ms; `deadlines_on`
     * once initialised), the jobs not yet answered, and spare job records. */
    crl_batch_job_t *pend_head, *pend_tail;
    h2o_multithread_receiver_t batch_rx;
    h2o_timeout_t deadlines;
    int deadlines_on;
    size_t ninflight;
    struct crl_deferred *spare;
} crl_worker_t;

/* Process-wide server state, read-only after start-up except where atomic. */
typedef struct crl_server {
    const crl_config_t *cfg;            /* as started: what non-reloadable settings use */
    _Atomic(const crl_config_t *) live; /* the latest (re)loaded: reloadable settings (CORS,
                                           hosts) are read from it on each request */
    const char *isa;                    /* the kernel table in use */
    crl_pool_t *pool; /* optimization.compute_threads (NULL when 1); outlives every model */
    int nworkers;
    int monitoring; /* monitoring.enabled: record per-request metrics and stages, trace */
    h2o_globalconf_t config;
    /* The host list of connections accepted on the metrics port (monitoring.metrics_port): the
     * same host as the main port's, in an array of its own, so a request's conn->hosts says which
     * listener took it. */
    h2o_hostconf_t *metrics_hosts[2];
    double started_wall;
    uint64_t started_mono;
    const char *strategy; /* /versions selection_strategy */
    const char *git;
    atomic_int warmed;  /* POST /warmup succeeded at least once, or load-time warm-up */
    crl_cache_t *cache; /* cache.backend (NULL: none); every worker has a local of it */
    crl_batch_t *batch; /* batching.enabled (NULL: inference runs inline on the loops) */
    crl_metrics_shard_t *batch_metrics; /* the batcher thread's shard (executed batch sizes) */
} crl_server_t;

extern crl_server_t crl__srv;

#define CRL_TRACEPARENT_LEN 55

typedef struct crl_rctx {
    crl_worker_t *w;
    h2o_req_t *req;
    uint64_t t0;
    crl_route route;
    crl_method method;
    char rid[64];
    size_t rid_len;
    /* A request id the server made (no usable X-Request-ID): its 32 hex digits, which a new
     * trace takes as its id (crl_server__trace); rid_hex[0] == '\0' otherwise. */
    char rid_hex[33];
    /* The traceparent sent back: "00-<trace id>-<this request's span id>-<flags>" (W3C Trace
     * Context), filled by crl_server__trace. tp[0] == '\0' until then. */
    char tp[CRL_TRACEPARENT_LEN + 1];
    h2o_iovec_t origin;        /* CORS: the request's Origin, base == NULL if absent */
    crl_resp_slab_t *slab;     /* the body's slab (crl_server__body), sent by crl_server__send */
    const char *model_version; /* the model that answered, for the access log; NULL if none */
} crl_rctx_t;

/* batched.c: /predict through the dynamic batcher (dependency-lab.md §9.1, §9.2). */
/* Admits and queues one request whose features (rows preprocessed for m) are in x; answers it
 * now when the queue is full. The response is sent later, on this loop thread. */
void crl_server__defer(crl_rctx_t *rc, const crl_predict_req_t *pr, const crl_model_t *m,
                       const float *x, uint64_t t0, const crl_cache_key_t *key);
/* Hands this iteration's jobs to the batcher: once per loop iteration, after h2o_evloop_run. */
void crl_server__flush(crl_worker_t *w);
void crl_server__batch_rx(h2o_multithread_receiver_t *rx, h2o_linklist_t *messages);
void crl_server__deferred_free(crl_worker_t *w); /* the spare records, at the worker's end */
/* POST /predict's 200: the actions of pr->n rows. */
void crl_server__send_actions(crl_rctx_t *rc, const crl_predict_req_t *pr, const crl_model_t *m,
                              const float *actions, double ms);
void crl_server__send_predict_error(crl_rctx_t *rc, const crl_predict_req_t *pr, const char *msg);

/* http.c: the access log line of one response (dur in ns); callers check
 * crl_log_access_enabled. */
void crl_server__log_access(const crl_rctx_t *rc, int status, uint64_t dur);

/* handlers.c */
int crl_server__on_req(h2o_handler_t *self, h2o_req_t *req);
int crl_server__refresh_model(crl_worker_t *w);

/* http.c: sending. Every response gets Content-Type, X-Request-ID, traceparent, X-Process-Time
 * and CORS. */
void crl_server__send(crl_rctx_t *rc, int status, const char *ctype, const char *body, size_t len);
/* cap bytes for a response body that crl_server__send then sends: from the request pool when
 * small, else from a response slab (see crl_resp_slab_t), else (larger than 256 KiB, or too many
 * in flight) from the pool. At most one slab per request. */
char *crl_server__body(crl_rctx_t *rc, size_t cap);
/* Frees a worker's free response slabs (at its end, when none is in flight). */
void crl_server__slabs_free(crl_worker_t *w);
/* The envelope {error, message, details{<details_json>, request_id}, timestamp}. details_json is
 * the inside of the details object (NULL, "" or "\"k\":v,..."), usually built in w->details. */
void crl_server__send_error(crl_rctx_t *rc, int status, const char *code, const char *message,
                            const char *details_json);
void crl_server__request_id(crl_rctx_t *rc);
/* Fills rc->tp: a valid incoming traceparent keeps its trace id and flags under a new span id;
 * otherwise a new trace starts, sampled with monitoring.trace_sample_rate. No allocation. */
void crl_server__trace(crl_rctx_t *rc);
/* Trusted hosts: 1 when req's Host matches ALLOWED_HOSTS. */
int crl_server__host_allowed(const crl_rctx_t *rc);
/* CORS preflight: returns 1 when the request was a preflight and has been answered. */
int crl_server__cors_preflight(crl_rctx_t *rc);

#endif
