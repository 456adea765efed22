/* batched.c: POST /predict through the dynamic batcher (src/batch). The handler copies the
 * request's features into a job record of its worker, appends it to the worker's list for this
 * loop iteration and returns without a response; the loop hands the list over once the iteration
 * ends (crl_server__flush). The batcher posts each finished job back to its worker's receiver
 * (h2o_multithread_send_message), and the loop thread answers it there, if the request still
 * exists: over HTTP/2 h2o frees a request the moment its client goes (dependency-lab.md §9.2).
 *
 * How a job learns that its request is gone: §9.2's pool-owned ref-counted token, with one change
 * so that the hot path does not allocate. h2o_mem_alloc_shared mallocs its chunk, so each record
 * makes its token once (with no pool; the record holds that reference) and links it to each
 * request's pool with h2o_mem_link_shared, which adds a reference that h2o_mem_clear_pool drops
 * when the request is disposed, for any reason. So while a record serves a request, its token's
 * count is 2 exactly as long as the request exists. A record is only reused once the count is
 * back to 1 (the previous request's pool was cleared), so a count never mixes two requests. The
 * count is not atomic; only this loop thread touches it. Records and their buffers are kept, so
 * the batched path allocates nothing after warm-up.
 *
 * Deadlines: each record is also linked to its worker's h2o timeout of batching.timeout_ms, so a
 * request gets its 503 from its own loop even when the batcher is stalled (a huge forward pass, a
 * bug). The timer withdraws a job still wholly queued from the batcher (the record is free at
 * once); any other job still comes back through the receiver, whose result is then dropped: the
 * request has had its answer (`answered`). Both run on this loop thread, so exactly one of them
 * answers. */
#include "server/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/time.h"

typedef struct crl_dtoken {
    struct crl_deferred *d;
} crl_dtoken_t;

typedef struct crl_deferred {
    crl_batch_job_t job;
    h2o_multithread_message_t msg;
    h2o_timeout_entry_t deadline; /* on w->deadlines while the job is out */
    int answered;                 /* the deadline's 503 was sent (or the client was gone) */
    crl_worker_t *w;
    crl_rctx_t rc;
    crl_dtoken_t *tok;  /* the record's token (see above) */
    crl_model_t *model; /* the job's reference */
    uint64_t t0;        /* when preprocessing began (inference duration) */
    int cacheable;
    crl_cache_key_t key;
    struct crl_deferred *next_spare;
} crl_deferred_t;

static size_t token_refs(const crl_dtoken_t *t) {
    return H2O_STRUCT_FROM_MEMBER(struct st_h2o_mem_pool_shared_entry_t, bytes, t)->refcnt;
}

/* The batcher thread: post the job back to its loop. */
static void on_job_done(crl_batch_job_t *j) {
    crl_deferred_t *d = (crl_deferred_t *)j;
    memset(&d->msg, 0, sizeof(d->msg)); /* send_message asserts an unlinked message */
    h2o_multithread_send_message(&d->w->batch_rx, &d->msg);
}

static void on_deadline(h2o_timeout_entry_t *e);

/* A spare record whose previous request is disposed, or a new one (warm-up only). */
static crl_deferred_t *take_record(crl_worker_t *w) {
    for (crl_deferred_t **p = &w->spare; *p; p = &(*p)->next_spare) {
        crl_deferred_t *d = *p;
        if (token_refs(d->tok) != 1) continue; /* its last response is still being written */
        *p = d->next_spare;
        return d;
    }
    crl_deferred_t *d = calloc(1, sizeof(*d));
    if (d == NULL) return NULL;
    d->tok = h2o_mem_alloc_shared(NULL, sizeof(*d->tok), NULL);
    d->tok->d = d;
    d->job.done = on_job_done;
    d->deadline.cb = on_deadline;
    return d;
}

static void give_back(crl_worker_t *w, crl_deferred_t *d) {
    crl_model_unref(d->model);
    d->model = NULL;
    d->job.model = NULL;
    d->next_spare = w->spare;
    w->spare = d;
}

void crl_server__deferred_free(crl_worker_t *w) {
    while (w->spare) {
        crl_deferred_t *d = w->spare;
        w->spare = d->next_spare;
        crl_batch_job_release(&d->job);
        if (token_refs(d->tok) == 1) h2o_mem_release_shared(d->tok); /* else: a pool still has it */
        free(d);
    }
}

static void send_overflow(crl_rctx_t *rc) {
    const crl_config_t *c = crl__srv.cfg;
    char *ra = h2o_mem_alloc_pool(&rc->req->pool, 24);
    int n = snprintf(ra, 24, "%ld", c->batching.retry_after);
    h2o_add_header(&rc->req->pool, &rc->req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, ra,
                   (size_t)n);
    crl_buf *b = &rc->w->details;
    crl_buf_reset(b);
    crl_buf_printf(b, "\"max_queue_rows\":%ld,\"retry_after\":%ld", c->batching.max_queue_rows,
                   c->batching.retry_after);
    int st = (int)c->batching.overflow_status;
    crl_server__send_error(rc, st, st == 429 ? "TOO_MANY_REQUESTS" : "SERVICE_UNAVAILABLE",
                           "The batch queue is full; retry later", b->data);
}

void crl_server__defer(crl_rctx_t *rc, const crl_predict_req_t *pr, const crl_model_t *m,
                       const float *x, uint64_t t0, const crl_cache_key_t *key) {
    crl_worker_t *w = rc->w;
    if (!crl_batch_admit(crl__srv.batch, pr->n)) return send_overflow(rc);
    crl_deferred_t *d = take_record(w);
    if (d == NULL || crl_batch_job_reserve(&d->job, m, pr->n) != CRL_OK) {
        if (d) give_back(w, d);
        crl_batch_unadmit(crl__srv.batch, pr->n);
        return crl_server__send_error(rc, 503, "SERVICE_UNAVAILABLE", "Out of memory", NULL);
    }
    d->w = w;
    d->rc = *rc;
    d->t0 = t0;
    d->answered = 0;
    d->model = crl_model_ref((crl_model_t *)m);
    d->job.model = m;
    d->job.head = (crl_predict_req_t){
        .n = pr->n, .deterministic = pr->deterministic, .has_seed = pr->has_seed, .seed = pr->seed};
    memcpy(d->job.x, x, pr->n * m->in_width * sizeof(float));
    d->job.deadline_ns = t0 + (uint64_t)crl__srv.cfg->batching.timeout_ms * 1000000u;
    d->cacheable = key != NULL;
    if (key) d->key = *key;
    h2o_mem_link_shared(&rc->req->pool, d->tok);
    h2o_timeout_link(w->ctx.loop, &w->deadlines, &d->deadline);
    d->job.next = NULL;
    if (w->pend_tail)
        w->pend_tail->next = &d->job;
    else
        w->pend_head = &d->job;
    w->pend_tail = &d->job;
    w->ninflight++;
}

void crl_server__flush(crl_worker_t *w) {
    if (w->pend_head == NULL) return;
    crl_batch_submit(crl__srv.batch, w->pend_head, w->pend_tail);
    w->pend_head = w->pend_tail = NULL;
}

/* 503 for a request past batching.timeout_ms: `computing` when a forward pass had taken its rows
 * (only the loop's timer sees that: a stalled pass), else no inference was run for it. */
static void send_deadline(crl_deferred_t *d, int computing) {
    crl_buf *b = &d->w->details;
    crl_buf_reset(b);
    crl_buf_printf(b, "\"timeout_ms\":%ld,\"batch_size\":%zu", crl__srv.cfg->batching.timeout_ms,
                   d->job.head.n);
    crl_server__send_error(&d->rc, 503, "SERVICE_UNAVAILABLE",
                           computing ? "The request's inference did not finish by its deadline "
                                       "(batching.timeout_ms); its result is discarded"
                                     : "The request waited in the batch queue past its deadline "
                                       "(batching.timeout_ms); no inference was run",
                           b->data);
}

/* This loop's timer: the request's deadline passed and the batcher has not handed it back. */
static void on_deadline(h2o_timeout_entry_t *e) {
    crl_deferred_t *d = H2O_STRUCT_FROM_MEMBER(crl_deferred_t, deadline, e);
    crl_worker_t *w = d->w;
    if (w->pend_head) crl_server__flush(w); /* a cancel needs the job at the batcher */
    crl_batch_cancel_result r = crl_batch_cancel(crl__srv.batch, &d->job);
    if (token_refs(d->tok) == 2) send_deadline(d, r == CRL_BATCH_RUNNING);
    d->answered = 1;
    if (r == CRL_BATCH_WITHDRAWN) { /* the batcher will never hand it back */
        w->ninflight--;
        give_back(w, d);
    }
}

static void answer(crl_deferred_t *d) {
    crl_worker_t *w = d->w;
    crl_rctx_t *rc = &d->rc;
    const crl_batch_job_t *j = &d->job;
    if (j->expired) return send_deadline(d, 0);
    uint64_t t1 = crl_time_mono_ns();
    const int mon = crl__srv.monitoring;
    if (mon)
        crl_metrics_request(w->metrics, j->status == CRL_OK, j->head.n, j->head.deterministic,
                            t1 - d->t0);
    if (mon && j->started_ns) {
        crl_metrics_stage(w->metrics, CRL_STAGE_QUEUE_WAIT, j->started_ns - j->enqueued_ns);
        crl_metrics_stage(w->metrics, CRL_STAGE_INFERENCE, j->forward_ns);
    }
    if (j->status != CRL_OK) return crl_server__send_predict_error(rc, &j->head, j->message);
    if (d->cacheable && crl_cache_put(w->cache, &d->key, j->actions) == CRL_CACHE_ERROR && mon)
        crl_metrics_cache(w->metrics, CRL_METRICS_CACHE_ERROR);
    crl_server__send_actions(rc, &j->head, d->model, j->actions, (double)(t1 - d->t0) * 1e-6);
    /* The head ran on the batcher; writing the response ran here. */
    if (mon)
        crl_metrics_stage(w->metrics, CRL_STAGE_POSTPROCESS, j->head_ns + crl_time_mono_ns() - t1);
}

void crl_server__batch_rx(h2o_multithread_receiver_t *rx, h2o_linklist_t *messages) {
    (void)rx;
    while (!h2o_linklist_is_empty(messages)) {
        crl_deferred_t *d = H2O_STRUCT_FROM_MEMBER(crl_deferred_t, msg.link, messages->next);
        h2o_linklist_unlink(&d->msg.link);
        crl_worker_t *w = d->w;
        w->ninflight--;
        h2o_timeout_unlink(&d->deadline);
        /* Else the client left, or the deadline answered it: drop the result. */
        if (!d->answered && token_refs(d->tok) == 2) answer(d);
        give_back(w, d);
    }
}
