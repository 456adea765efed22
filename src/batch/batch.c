/* batch.c: the dynamic batcher (batch.h). One thread, one mutex + condvar FIFO of jobs (the
 * loop threads hand over whole lists, so the lock is taken once per loop iteration, not once per
 * request). A forward pass takes rows from the head of the queue, in order, up to max_batch_size,
 * from jobs of one model; a job larger than what is left is taken in part and finished by the
 * next pass, so no request is refused for its size. */
#include "batch/batch.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/time.h"

/* One job's share of a forward pass. */
typedef struct slice {
    crl_batch_job_t *job;
    size_t from, rows;
} slice_t;

struct crl_batch {
    crl_batch_opts_t o;
    pthread_t tid;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    crl_batch_job_t *head, *tail; /* under mu */
    size_t q_rows;                /* rows in the queue not yet taken (under mu) */
    int stop;                     /* under mu */
    atomic_size_t admitted;       /* admitted rows not yet answered */
    /* Batcher thread only: the model it has planned for, and its buffers. */
    const crl_model_t *model;
    crl_model_t *model_ref;
    crl_nn_ws_t *ws;
    float *bx, *by;
    slice_t *slices;
    int stalled; /* the test hook has run */
};

crl_status crl_batch_job_reserve(crl_batch_job_t *j, const crl_model_t *m, size_t rows) {
    size_t nx = rows * m->in_width, ny = rows * m->out_width, na = rows * CRL_ACTIONS;
    if (nx > j->x_cap) {
        free(j->x);
        j->x_cap = 0;
        if ((j->x = malloc(nx * sizeof(float))) == NULL) return CRL_ENOMEM;
        j->x_cap = nx;
    }
    if (ny > j->y_cap) {
        free(j->y);
        j->y_cap = 0;
        if ((j->y = malloc(ny * sizeof(float))) == NULL) return CRL_ENOMEM;
        j->y_cap = ny;
    }
    if (na > j->a_cap) {
        free(j->actions);
        j->a_cap = 0;
        if ((j->actions = malloc(na * sizeof(float))) == NULL) return CRL_ENOMEM;
        j->a_cap = na;
    }
    return CRL_OK;
}

void crl_batch_job_release(crl_batch_job_t *j) {
    free(j->x);
    free(j->y);
    free(j->actions);
    j->x = j->y = j->actions = NULL;
    j->x_cap = j->y_cap = j->a_cap = 0;
}

int crl_batch_admit(crl_batch_t *b, size_t rows) {
    size_t before = atomic_fetch_add_explicit(&b->admitted, rows, memory_order_relaxed);
    if (before + rows <= b->o.max_queue_rows || before == 0) return 1; /* one huge job may pass */
    atomic_fetch_sub_explicit(&b->admitted, rows, memory_order_relaxed);
    return 0;
}

void crl_batch_unadmit(crl_batch_t *b, size_t rows) {
    atomic_fetch_sub_explicit(&b->admitted, rows, memory_order_relaxed);
}

size_t crl_batch_queued_rows(const crl_batch_t *b) {
    return atomic_load_explicit(&b->admitted, memory_order_relaxed);
}

const crl_batch_opts_t *crl_batch_options(const crl_batch_t *b) {
    return &b->o;
}

pthread_t crl_batch_thread(const crl_batch_t *b) {
    return b->tid;
}

void crl_batch_submit(crl_batch_t *b, crl_batch_job_t *head, crl_batch_job_t *tail) {
    uint64_t now = crl_time_mono_ns();
    size_t rows = 0;
    for (crl_batch_job_t *j = head, *prev = NULL; j; prev = j, j = j->next) {
        j->prev = prev;
        j->enqueued_ns = now;
        j->taken = 0;
        j->started_ns = j->forward_ns = j->head_ns = 0;
        j->expired = j->abandoned = 0;
        j->queued = 1;
        j->status = CRL_OK;
        rows += j->head.n;
    }
    tail->next = NULL;
    pthread_mutex_lock(&b->mu);
    head->prev = b->tail;
    if (b->tail)
        b->tail->next = head;
    else
        b->head = head;
    b->tail = tail;
    b->q_rows += rows;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

/* Under mu: takes j out of the queue. */
static void unlink_job(crl_batch_t *b, crl_batch_job_t *j) {
    if (j->prev)
        j->prev->next = j->next;
    else
        b->head = j->next;
    if (j->next)
        j->next->prev = j->prev;
    else
        b->tail = j->prev;
    j->queued = 0;
}

crl_batch_cancel_result crl_batch_cancel(crl_batch_t *b, crl_batch_job_t *j) {
    crl_batch_cancel_result r;
    pthread_mutex_lock(&b->mu);
    if (j->queued && j->taken == 0) {
        unlink_job(b, j);
        b->q_rows -= j->head.n;
        atomic_fetch_sub_explicit(&b->admitted, j->head.n, memory_order_relaxed);
        r = CRL_BATCH_WITHDRAWN;
    } else {
        j->abandoned = 1; /* a queued remainder of a split job is dropped by the next cut */
        r = j->taken == 0 ? CRL_BATCH_EXPIRING : CRL_BATCH_RUNNING;
    }
    pthread_mutex_unlock(&b->mu);
    return r;
}

/* ---- the batcher thread ---------------------------------------------------------------------- */

static void finish(crl_batch_t *b, crl_batch_job_t *j) {
    atomic_fetch_sub_explicit(&b->admitted, j->head.n, memory_order_relaxed);
    j->done(j);
}

/* Plans the workspace and batch buffers for m (only when the model changed). */
static crl_status plan(crl_batch_t *b, const crl_model_t *m) {
    if (b->model == m && b->ws) return CRL_OK;
    crl_nn_ws_free(b->ws);
    free(b->bx);
    free(b->by);
    crl_model_unref(b->model_ref);
    b->ws = NULL;
    b->bx = b->by = NULL;
    b->model = m;
    b->model_ref = crl_model_ref((crl_model_t *)m);
    size_t rows = b->o.max_batch_size;
    b->bx = malloc(rows * m->in_width * sizeof(float));
    b->by = malloc(rows * m->out_width * sizeof(float));
    if (b->bx == NULL || b->by == NULL || crl_nn_ws_new(m->graph, rows, &b->ws) != CRL_OK) {
        crl_nn_ws_free(b->ws);
        b->ws = NULL;
        return CRL_ENOMEM;
    }
    return CRL_OK;
}

static int preferred(const crl_batch_t *b, size_t rows) {
    for (size_t i = 0; i < b->o.n_preferred; i++)
        if (b->o.preferred[i] == rows) return 1;
    return 0;
}

/* Under mu: answers expired jobs at the head (none of their rows taken) and abandoned remainders
 * of split jobs, and cuts the next batch into b->slices. Returns the number of slices; *expired
 * collects jobs to answer unlocked. */
static size_t cut(crl_batch_t *b, uint64_t now, crl_batch_job_t **expired) {
    size_t n = 0, rows = 0;
    const crl_model_t *m = NULL;
    while (b->head && rows < b->o.max_batch_size) {
        crl_batch_job_t *j = b->head;
        if ((j->taken == 0 && now > j->deadline_ns) || j->abandoned) {
            unlink_job(b, j);
            b->q_rows -= j->head.n - j->taken;
            j->expired = 1;
            j->next = *expired;
            *expired = j;
            continue;
        }
        if (m && j->model != m) break; /* one model per forward pass */
        m = j->model;
        size_t take = j->head.n - j->taken;
        if (take > b->o.max_batch_size - rows) take = b->o.max_batch_size - rows;
        b->slices[n++] = (slice_t){j, j->taken, take};
        j->taken += take;
        rows += take;
        b->q_rows -= take;
        if (j->taken == j->head.n) unlink_job(b, j);
    }
    return n;
}

static void run(crl_batch_t *b, size_t n) {
    const crl_model_t *m = b->slices[0].job->model;
    crl_err err = {{0}};
    crl_status st = plan(b, m);
    size_t rows = 0;
    for (size_t i = 0; st == CRL_OK && i < n; i++) {
        const slice_t *s = &b->slices[i];
        memcpy(b->bx + rows * m->in_width, s->job->x + s->from * m->in_width,
               s->rows * m->in_width * sizeof(float));
        rows += s->rows;
    }
    uint64_t t0 = crl_time_mono_ns();
    if (b->o.test_stall_ms && !b->stalled) { /* the test hook: a stalled forward pass */
        b->stalled = 1;
        struct timespec ts = {.tv_sec = (time_t)(b->o.test_stall_ms / 1000),
                              .tv_nsec = (long)(b->o.test_stall_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (st == CRL_OK) st = crl_model_forward(m, b->ws, b->bx, rows, b->by, &err);
    uint64_t fwd = crl_time_mono_ns() - t0;
    if (st == CRL_OK && b->o.on_batch) b->o.on_batch(b->o.on_batch_ctx, rows, fwd);
    rows = 0;
    for (size_t i = 0; i < n; i++) {
        const slice_t *s = &b->slices[i];
        crl_batch_job_t *j = s->job;
        if (s->from == 0) j->started_ns = t0;
        j->forward_ns += fwd;
        if (st != CRL_OK) {
            j->status = st;
            snprintf(j->message, sizeof(j->message), "%s", err.msg[0] ? err.msg : "out of memory");
        } else {
            memcpy(j->y + s->from * m->out_width, b->by + rows * m->out_width,
                   s->rows * m->out_width * sizeof(float));
        }
        rows += s->rows;
        if (s->from + s->rows < j->head.n) continue; /* the rest comes in the next pass */
        if (j->status == CRL_OK) {
            crl_err herr = {{0}};
            uint64_t th = crl_time_mono_ns();
            j->status = crl_model_head(m, &j->head, j->y, j->actions, &herr);
            j->head_ns = crl_time_mono_ns() - th;
            if (j->status != CRL_OK) snprintf(j->message, sizeof(j->message), "%s", herr.msg);
        }
        finish(b, j);
    }
}

static void *batch_main(void *arg) {
    crl_batch_t *b = arg;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        if (b->head == NULL) {
            if (b->stop) break;
            pthread_cond_wait(&b->cv, &b->mu);
            continue;
        }
        uint64_t now = crl_time_mono_ns();
        /* Wait for company unless the batch is full, a preferred size, or the oldest job waited
         * long enough. A job already partly taken never waits. */
        uint64_t until = b->head->enqueued_ns + b->o.max_queue_delay_us * 1000u;
        if (!b->stop && b->head->taken == 0 && b->q_rows < b->o.max_batch_size &&
            !preferred(b, b->q_rows) && now < until) {
            struct timespec ts = {.tv_sec = (time_t)(until / 1000000000u),
                                  .tv_nsec = (long)(until % 1000000000u)};
            pthread_cond_timedwait(&b->cv, &b->mu, &ts);
            continue;
        }
        crl_batch_job_t *expired = NULL;
        size_t n = cut(b, now, &expired);
        pthread_mutex_unlock(&b->mu);
        while (expired) {
            crl_batch_job_t *j = expired;
            expired = j->next;
            finish(b, j);
        }
        if (n) run(b, n);
        pthread_mutex_lock(&b->mu);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

crl_status crl_batch_new(const crl_batch_opts_t *o, crl_batch_t **out, crl_err *err) {
    *out = NULL;
    if (o->max_batch_size == 0) return crl_err_set(err, CRL_EINVAL, "max_batch_size must be >= 1");
    crl_batch_t *b = calloc(1, sizeof(*b));
    if (b == NULL) return crl_err_set(err, CRL_ENOMEM, "out of memory");
    b->o = *o;
    b->slices = calloc(o->max_batch_size, sizeof(slice_t));
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* deadlines are crl_time_mono_ns */
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (b->slices == NULL || pthread_create(&b->tid, NULL, batch_main, b) != 0) {
        pthread_cond_destroy(&b->cv);
        pthread_mutex_destroy(&b->mu);
        free(b->slices);
        free(b);
        return crl_err_set(err, CRL_ENOMEM, "cannot start the batcher thread");
    }
    *out = b;
    return CRL_OK;
}

void crl_batch_free(crl_batch_t *b) {
    if (b == NULL) return;
    pthread_mutex_lock(&b->mu);
    b->stop = 1;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
    pthread_join(b->tid, NULL);
    crl_nn_ws_free(b->ws);
    free(b->bx);
    free(b->by);
    crl_model_unref(b->model_ref);
    free(b->slices);
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->mu);
    free(b);
}
