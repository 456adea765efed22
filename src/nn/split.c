/* split.c: a forward pass split by rows across a compute pool (split.h). */
#include "nn/split.h"

#include <stdatomic.h>
#include <stdlib.h>

struct crl_nn_split {
    const crl_nn_graph_t *g;
    crl_pool_t *pool;
    size_t threads, min_rows, max_chunk;
    crl_nn_ws_t **ws; /* [threads - 1]: helper slot i runs in ws[i - 1] */
};

/* One split run, on the submitter's stack. */
typedef struct job {
    const crl_nn_split_t *s;
    crl_nn_ws_t *caller_ws;
    const float *x;
    float *y;
    size_t rows, chunk, in_w, out_w;
    atomic_int status;
} job_t;

static size_t align_up(size_t n) {
    return (n + CRL_NN_SPLIT_ALIGN - 1) / CRL_NN_SPLIT_ALIGN * CRL_NN_SPLIT_ALIGN;
}

size_t crl_nn_split_chunk(size_t rows, size_t threads, size_t min_rows, size_t max_chunk) {
    if (threads < 2 || rows < 2 || rows < min_rows) return rows;
    /* Small chunks (heavy models split even 3-row batches) are not rounded: a block of rows
     * would swallow the whole batch. */
    size_t chunk = (rows + threads - 1) / threads;
    if (chunk > CRL_NN_SPLIT_ALIGN) chunk = align_up(chunk);
    if (max_chunk > 0 && chunk > max_chunk) chunk = max_chunk;
    return chunk < rows ? chunk : rows;
}

crl_status crl_nn_split_new(const crl_nn_graph_t *g, crl_pool_t *pool, size_t min_rows,
                            size_t max_rows, crl_nn_split_t **out) {
    if (out == NULL) return CRL_EINVAL;
    *out = NULL;
    if (g == NULL || min_rows < 2 || max_rows == 0) return CRL_EINVAL;
    crl_nn_split_t *s = calloc(1, sizeof(*s));
    if (s == NULL) return CRL_ENOMEM;
    s->g = g;
    s->pool = pool;
    s->threads = crl_pool_threads(pool);
    s->min_rows = min_rows;
    /* The largest chunk of the largest batch; never below one aligned block. */
    s->max_chunk = align_up((max_rows + s->threads - 1) / s->threads);
    s->ws = calloc(s->threads, sizeof(*s->ws));
    crl_status st = s->ws ? CRL_OK : CRL_ENOMEM;
    for (size_t i = 0; st == CRL_OK && i + 1 < s->threads; i++)
        st = crl_nn_ws_new(g, s->max_chunk, &s->ws[i]);
    if (st != CRL_OK) {
        crl_nn_split_free(s);
        return st;
    }
    *out = s;
    return CRL_OK;
}

void crl_nn_split_free(crl_nn_split_t *s) {
    if (s == NULL) return;
    for (size_t i = 0; s->ws && i + 1 < s->threads; i++)
        crl_nn_ws_free(s->ws[i]);
    free(s->ws);
    free(s);
}

static void run_chunk(void *ctx, size_t task, size_t slot) {
    job_t *j = ctx;
    size_t r0 = task * j->chunk;
    size_t n = j->rows - r0 < j->chunk ? j->rows - r0 : j->chunk;
    crl_nn_ws_t *ws = slot == 0 ? j->caller_ws : j->s->ws[slot - 1];
    crl_status st = crl_nn_run(j->s->g, ws, j->x + r0 * j->in_w, n, j->y + r0 * j->out_w);
    if (st != CRL_OK) {
        int ok = CRL_OK;
        atomic_compare_exchange_strong(&j->status, &ok, st);
    }
}

crl_status crl_nn_split_run(crl_nn_split_t *s, const crl_nn_graph_t *g, crl_nn_ws_t *ws,
                            const float *x, size_t rows, float *y) {
    if (s == NULL) return crl_nn_run(g, ws, x, rows, y);
    if (g != s->g) return CRL_EINVAL;
    size_t chunk = crl_nn_split_chunk(rows, s->threads, s->min_rows, s->max_chunk);
    if (chunk >= rows) return crl_nn_run(g, ws, x, rows, y);
    if (x == NULL || y == NULL) return CRL_EINVAL;
    job_t j = {.s = s,
               .caller_ws = ws,
               .x = x,
               .y = y,
               .rows = rows,
               .chunk = chunk,
               .in_w = crl_nn_graph_input_width(g),
               .out_w = crl_nn_graph_output_width(g)};
    atomic_init(&j.status, CRL_OK);
    crl_pool_run(s->pool, (rows + chunk - 1) / chunk, run_chunk, &j);
    return atomic_load(&j.status);
}

crl_status crl_nn_split_hugepages(const crl_nn_split_t *s, size_t *advised, crl_err *err) {
    crl_status st = CRL_OK;
    for (size_t i = 0; s && i + 1 < s->threads && st == CRL_OK; i++)
        st = crl_nn_ws_hugepages(s->ws[i], advised, err);
    return st;
}

crl_status crl_nn_split_mlock(const crl_nn_split_t *s, size_t *locked, crl_err *err) {
    crl_status st = CRL_OK;
    for (size_t i = 0; s && i + 1 < s->threads && st == CRL_OK; i++)
        st = crl_nn_ws_mlock(s->ws[i], locked, err);
    return st;
}
