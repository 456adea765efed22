/* split.h: one forward pass split by rows across a compute pool (core/pool.h). Every kernel table
 * is batch-invariant (a row gives the same bits alone or inside any batch), so the rows of a
 * batch can run as contiguous chunks on different threads and the output is bit for bit the
 * output of one crl_nn_run over the whole batch.
 *
 * A splitter belongs to one finished graph and one pool: it holds a workspace for each helper
 * thread of the pool, planned once for the largest chunk, so a split run allocates nothing. The
 * submitting thread runs its chunks in the workspace it passes in. */
#ifndef CRL_NN_SPLIT_H
#define CRL_NN_SPLIT_H

#include <stddef.h>

#include "core/pool.h"
#include "core/status.h"
#include "nn/graph.h"

typedef struct crl_nn_split crl_nn_split_t;

/* Chunks of more than this many rows start on multiples of it, so a SIMD kernel's row blocks
 * stay whole. */
#define CRL_NN_SPLIT_ALIGN 8

/* A splitter for graph g (which must outlive it) over `pool` (which must outlive it too): batches
 * of at least min_rows rows (>= 2) are split; max_rows is the largest batch callers will run
 * (larger ones still split, in more chunks than threads). A one-thread pool gives a splitter that
 * never splits. *out owned by the caller. */
crl_status crl_nn_split_new(const crl_nn_graph_t *g, crl_pool_t *pool, size_t min_rows,
                            size_t max_rows, crl_nn_split_t **out);
void crl_nn_split_free(crl_nn_split_t *s); /* NULL-safe */

/* The rows of each chunk when a batch of `rows` rows is split over `threads` threads, or `rows`
 * when it is not split (threads 1, or rows < min_rows). */
size_t crl_nn_split_chunk(size_t rows, size_t threads, size_t min_rows, size_t max_chunk);

/* crl_nn_run(g, ws, x, rows, y), with the rows split across the pool when there are at least
 * min_rows of them and the pool is free; ws (the caller's, rows <= its max_rows) runs the
 * caller's share. s NULL: plain crl_nn_run. */
crl_status crl_nn_split_run(crl_nn_split_t *s, const crl_nn_graph_t *g, crl_nn_ws_t *ws,
                            const float *x, size_t rows, float *y);

/* Memory pinning of the helpers' workspaces (see crl_nn_ws_mlock). */
crl_status crl_nn_split_mlock(const crl_nn_split_t *s, size_t *locked, crl_err *err);
/* Transparent huge pages for the helpers' arenas (see crl_nn_ws_hugepages). */
crl_status crl_nn_split_hugepages(const crl_nn_split_t *s, size_t *advised, crl_err *err);

#endif
