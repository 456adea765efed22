/* graph.h: the policy network as carlarl runs it. A graph is an immutable list of operations over
 * 2-D row-major f32 values [rows x width]; `rows` is the batch and is given at run time. Weights
 * are 64-byte aligned and owned by the graph. Graphs are built through the builder functions below
 * (by the ONNX importer in model/onnx.c and by the built-in example policy), then frozen with
 * crl_nn_graph_finish, after which they may be shared read-only between threads.
 *
 * Running needs a workspace (activation buffers), one per thread, planned for a maximum batch. */
#ifndef CRL_NN_GRAPH_H
#define CRL_NN_GRAPH_H

#include <stddef.h>

#include "core/status.h"

typedef struct crl_nn_graph crl_nn_graph_t;
typedef struct crl_nn_ws crl_nn_ws_t;

typedef enum crl_nn_op {
    CRL_NN_LINEAR, /* y = x W^T + b, W [out][in] */
    CRL_NN_RELU,
    CRL_NN_TANH,
    CRL_NN_SIGMOID,
    CRL_NN_CLIP,    /* clamp to [lo, hi] */
    CRL_NN_ADD_ROW, /* y = x + b (b broadcast over rows) */
    CRL_NN_SCALE,   /* y = alpha * x */
} crl_nn_op;

/* Builder. A new graph takes an input of `in_width` features; each added op transforms the
 * current value. Ops are sequential: the current value flows from one op to the next. */
crl_status crl_nn_graph_new(size_t in_width, crl_nn_graph_t **out);
/* Copies w ([out][in], row-major) and b ([out], may be NULL = zeros). in must equal the current
 * width; the width becomes `out`. */
crl_status crl_nn_graph_add_linear(crl_nn_graph_t *g, const float *w, const float *b, size_t in,
                                   size_t out, crl_err *err);
/* Elementwise ops keep the width. */
crl_status crl_nn_graph_add_act(crl_nn_graph_t *g, crl_nn_op op, crl_err *err);
crl_status crl_nn_graph_add_clip(crl_nn_graph_t *g, float lo, float hi, crl_err *err);
crl_status crl_nn_graph_add_scale(crl_nn_graph_t *g, float alpha, crl_err *err);
/* b has `width` entries (the current width). */
crl_status crl_nn_graph_add_row(crl_nn_graph_t *g, const float *b, size_t width, crl_err *err);
/* Freezes the graph (runs simple passes such as folding ADD_ROW into a preceding LINEAR). */
crl_status crl_nn_graph_finish(crl_nn_graph_t *g, crl_err *err);
void crl_nn_graph_free(crl_nn_graph_t *g); /* NULL-safe */

size_t crl_nn_graph_input_width(const crl_nn_graph_t *g);
size_t crl_nn_graph_output_width(const crl_nn_graph_t *g);
size_t crl_nn_graph_num_ops(const crl_nn_graph_t *g);
crl_nn_op crl_nn_graph_op(const crl_nn_graph_t *g, size_t i);

/* Workspace for batches of up to max_rows rows. Owned by the caller, used by one thread at a time.
 */
crl_status crl_nn_ws_new(const crl_nn_graph_t *g, size_t max_rows, crl_nn_ws_t **out);
void crl_nn_ws_free(crl_nn_ws_t *ws); /* NULL-safe */

/* x: [rows x input_width], y: [rows x output_width]; rows <= the workspace's max_rows.
 * Allocates nothing. */
crl_status crl_nn_run(const crl_nn_graph_t *g, crl_nn_ws_t *ws, const float *x, size_t rows,
                      float *y);

/* Memory pinning: mlock(2) the graph's weights / the workspace's buffers, adding the bytes locked
 * to *locked. On failure the message says why (RLIMIT_MEMLOCK, see hw/hw.h). */
crl_status crl_nn_graph_mlock(const crl_nn_graph_t *g, size_t *locked, crl_err *err);
crl_status crl_nn_ws_mlock(const crl_nn_ws_t *ws, size_t *locked, crl_err *err);

#endif
