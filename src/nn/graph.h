/* graph.h: the policy network as carlarl runs it. A graph is a list of nodes in topological order
 * over tensor values. A value is either a constant (any static shape up to CRL_NN_MAX_RANK dims,
 * owned by the graph) or a batched value [batch, d1, ..., dk] (k < CRL_NN_MAX_RANK) whose batch
 * dimension is given at run time; every value is f32, row-major, so each batch row is contiguous.
 * The graph has one batched input and one output; their widths (the product of the non-batch
 * dims) are what callers see: x is [rows x input_width], y is [rows x output_width].
 *
 * Graphs are built through the builder functions below (by the ONNX importer in model/onnx.c and
 * by the built-in example policy), then frozen with crl_nn_graph_finish, which runs the passes
 * (constant folding, BatchNorm and bias folding into LINEAR, dead-node removal) and packs weights;
 * a finished graph may be shared read-only between threads.
 *
 * Running needs a workspace (one arena, planned from value lifetimes for a maximum batch), one per
 * thread. */
#ifndef CRL_NN_GRAPH_H
#define CRL_NN_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef struct crl_nn_graph crl_nn_graph_t;
typedef struct crl_nn_ws crl_nn_ws_t;

#define CRL_NN_MAX_RANK 6 /* batch + 5 */
#define CRL_NN_MAX_INPUTS 8

typedef enum crl_nn_op {
    CRL_NN_LINEAR, /* y = x W^T + b over the last axis, W [out][in] */
    CRL_NN_RELU,
    CRL_NN_TANH,
    CRL_NN_SIGMOID,
    CRL_NN_CLIP,    /* clamp to [lo, hi] */
    CRL_NN_ADD_ROW, /* y = x + b (b broadcast over rows); the chain builder's form of ADD */
    CRL_NN_SCALE,   /* y = alpha * x */
    /* Binary, numpy broadcasting. */
    CRL_NN_ADD,
    CRL_NN_SUB,
    CRL_NN_MUL,
    CRL_NN_DIV,
    CRL_NN_POW,
    /* Unary elementwise (alpha/beta below where they take parameters). */
    CRL_NN_LEAKY_RELU, /* alpha */
    CRL_NN_ELU,        /* alpha */
    CRL_NN_SELU,       /* alpha, gamma in beta */
    CRL_NN_SOFTPLUS,
    CRL_NN_EXP,
    CRL_NN_LOG,
    CRL_NN_SQRT,
    CRL_NN_ERF,
    CRL_NN_GELU, /* x * 0.5 * (1 + erf(x / alpha)); finish fuses torch's exported erf GELU into it
                  */
    /* Structure. */
    CRL_NN_SOFTMAX,     /* axis; flat2d: ONNX opset < 13 (over all dims from axis on) */
    CRL_NN_LOG_SOFTMAX, /* same */
    CRL_NN_CONCAT,      /* axis */
    CRL_NN_RESHAPE,     /* to shape (same element count per row); also Flatten, (Un)Squeeze */
    CRL_NN_EXPAND,      /* broadcast to shape */
    CRL_NN_BATCHNORM,   /* inputs x, scale, bias, mean, var (constants); eps; channel axis 1 */
    CRL_NN_LAYERNORM,   /* inputs x, scale, [bias] (constants); axis, eps */
    CRL_NN_REDUCE_MEAN, /* axes, keepdims */
    CRL_NN_ARGMAX,      /* axis, keepdims, select_last; the index as a float */
    CRL_NN_COPY,        /* y = x; the output of a graph whose output is its input or a constant */
    /* 2-D spatial ops over NCHW values [batch, C, H, W]; kernel, strides, pads, dilations,
     * auto_pad below. */
    CRL_NN_CONV,           /* inputs x, W [M][C/group][kH][kW], [bias M] (constants); group */
    CRL_NN_MAXPOOL,        /* kernel (required), ceil_mode; padding never wins the max */
    CRL_NN_AVGPOOL,        /* kernel (required), ceil_mode, count_include_pad */
    CRL_NN_GLOBAL_AVGPOOL, /* mean over H, W: [batch, C, 1, 1] */
    /* Data movement (nn/movement.c). None touches the batch axis: each batch row of the output
     * comes from the same row of the input. */
    CRL_NN_SLICE,     /* axes[n_axes], starts, ends, steps (ONNX Slice: see crl_nn_attrs) */
    CRL_NN_GATHER,    /* axis; constant indices, built with crl_nn_graph_gather only */
    CRL_NN_TRANSPOSE, /* perm in axes[n_axes] (n_axes = rank), or n_axes 0: reverse the dims */
    CRL_NN_OP_COUNT
} crl_nn_op;

/* A shape. When `batched`, d[0] is the run-time batch (its stored value is ignored). */
typedef struct crl_nn_shape {
    size_t rank;
    int batched;
    size_t d[CRL_NN_MAX_RANK];
} crl_nn_shape;

/* Node parameters; which fields an op reads is listed in crl_nn_op. */
typedef struct crl_nn_attrs {
    float alpha, beta;
    float lo, hi;
    float eps;
    int64_t axis;
    int keepdims;
    int flat2d;
    int select_last;
    int64_t axes[CRL_NN_MAX_RANK];
    size_t n_axes;
    /* SLICE, one entry per axes[k], ONNX's rules: a negative start or end counts from the end of
     * the axis, both are then clamped to it (INT64_MAX: to the end), a negative step walks
     * backwards, step 0 means 1. The batch axis may only be sliced whole (start 0, step 1, end
     * >= INT32_MAX); an empty result is refused. */
    int64_t starts[CRL_NN_MAX_RANK], ends[CRL_NN_MAX_RANK], steps[CRL_NN_MAX_RANK];
    crl_nn_shape shape; /* RESHAPE / EXPAND target (for RESHAPE, batched iff the input is);
                         GATHER: the indices' shape, set by crl_nn_graph_gather */
    /* CONV / MAXPOOL / AVGPOOL. 0 means the default: strides and dilations 1, group 1, the
     * kernel from W (CONV). pads are ONNX's order: top, left, bottom, right. */
    size_t kernel[2], strides[2], dilations[2], pads[4];
    size_t group;
    int auto_pad; /* CRL_NN_PAD_*: the pads computed from the input size override `pads` */
    int ceil_mode;
    int count_include_pad;
} crl_nn_attrs;

enum { CRL_NN_PAD_NOTSET, CRL_NN_PAD_VALID, CRL_NN_PAD_SAME_UPPER, CRL_NN_PAD_SAME_LOWER };

/* ---- general builder ----------------------------------------------------------------------- */

/* A new graph whose input is batched with non-batch dims `dims` (1 to CRL_NN_MAX_RANK-1 of them,
 * product 1..65536). The input is value 0. */
crl_status crl_nn_graph_new_shaped(const size_t *dims, size_t n_dims, crl_nn_graph_t **out);
/* A constant value: copies `data` (product of dims floats; rank 0 = a scalar). */
crl_status crl_nn_graph_const(crl_nn_graph_t *g, const float *data, const size_t *dims, size_t rank,
                              size_t *value, crl_err *err);
/* A node of any op but LINEAR: infers and checks the output shape; *value is the output. */
crl_status crl_nn_graph_node(crl_nn_graph_t *g, crl_nn_op op, const size_t *in, size_t n_in,
                             const crl_nn_attrs *a, size_t *value, crl_err *err);
/* LINEAR on the last axis of value `x` (which must have `in` there); copies w and b. */
crl_status crl_nn_graph_linear(crl_nn_graph_t *g, size_t x, const float *w, const float *b,
                               size_t in, size_t out, size_t *value, crl_err *err);
/* GATHER of value `x` along `axis` (not the batch axis) at constant indices (copied; any rank up
 * to what the output's rank allows, 0 = one index, which removes the axis; negative ones count
 * from the end): the output's shape is x's with that axis replaced by idims. */
crl_status crl_nn_graph_gather(crl_nn_graph_t *g, size_t x, int64_t axis, const int64_t *indices,
                               const size_t *idims, size_t irank, size_t *value, crl_err *err);
crl_status crl_nn_graph_shape(const crl_nn_graph_t *g, size_t value, crl_nn_shape *s);
/* The graph's output (by default the last value the chain builder made). */
crl_status crl_nn_graph_set_output(crl_nn_graph_t *g, size_t value, crl_err *err);
/* An all-default attribute set (keepdims 1, everything else 0). */
void crl_nn_attrs_init(crl_nn_attrs *a);

/* ---- chain builder: each call transforms the current value (the input at first) ------------- */

/* A new graph whose input is [batch, in_width]. */
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

/* Arithmetic of the LINEAR and CONV weights. F32 (the default) is float32 throughout. BF16
 * rounds W once and the activations on every run to bfloat16, multiplies them exactly and sums in
 * float32 (kernels.h, linear_packed_bf16); every other op stays float32. */
typedef enum crl_nn_precision { CRL_NN_PRECISION_F32, CRL_NN_PRECISION_BF16 } crl_nn_precision;

/* Before crl_nn_graph_finish: the precision finish packs for. After it: re-packs the weights now
 * (not while another thread runs the graph); workspaces made before are refused (CRL_ESHAPE) by
 * crl_nn_run and must be made again. BF16 needs the chosen kernel table (crl_kernels()) to have
 * bf16 entries: CRL_EUNSUPPORTED otherwise, naming the CPU flag, and the graph is unchanged (a
 * graph finished for BF16 on such a table fails finish the same way). */
crl_status crl_nn_graph_set_precision(crl_nn_graph_t *g, crl_nn_precision p, crl_err *err);
crl_nn_precision crl_nn_graph_precision(const crl_nn_graph_t *g);

/* Freezes the graph: passes, checks, packing. Calling it again is a no-op. */
crl_status crl_nn_graph_finish(crl_nn_graph_t *g, crl_err *err);
void crl_nn_graph_free(crl_nn_graph_t *g); /* NULL-safe */

size_t crl_nn_graph_input_width(const crl_nn_graph_t *g);
size_t crl_nn_graph_output_width(const crl_nn_graph_t *g);
size_t crl_nn_graph_num_ops(const crl_nn_graph_t *g); /* nodes */
crl_nn_op crl_nn_graph_op(const crl_nn_graph_t *g, size_t i);
size_t crl_nn_graph_num_values(const crl_nn_graph_t *g);

/* Workspace for batches of up to max_rows rows (one arena, planned per batch-size class at
 * creation; no allocation when running). Owned by the caller, used by one thread at a time. */
crl_status crl_nn_ws_new(const crl_nn_graph_t *g, size_t max_rows, crl_nn_ws_t **out);
void crl_nn_ws_free(crl_nn_ws_t *ws); /* NULL-safe */
/* The memory plan, for tests: arena size in floats, and value v's slot (offset and length in
 * floats) and live range [first, last] in node indexes. Returns 0 when v has no slot (the input,
 * constants, the output and the values computed in place into it). An elementwise node that
 * reads a same-sized value last writes its output over it: the two share one slot, the first's
 * range ending where the second's begins. */
size_t crl_nn_ws_arena_floats(const crl_nn_ws_t *ws);
/* A workspace holds one plan per batch-size class (1, 8, 64, 512, ... below max_rows, and
 * max_rows), all in its one arena: a run of `rows` rows uses the smallest class that fits, so a
 * small batch's values sit close together. The floats of values the plan for `rows` uses (0 when
 * rows is 0 or over max_rows); crl_nn_ws_slot describes the max_rows plan. */
size_t crl_nn_ws_plan_floats(const crl_nn_ws_t *ws, size_t rows);
int crl_nn_ws_slot(const crl_nn_ws_t *ws, size_t v, size_t *off, size_t *len, size_t *first,
                   size_t *last);

/* x: [rows x input_width], y: [rows x output_width]; rows <= the workspace's max_rows.
 * Allocates nothing. */
crl_status crl_nn_run(const crl_nn_graph_t *g, crl_nn_ws_t *ws, const float *x, size_t rows,
                      float *y);

/* Memory pinning: mlock(2) the graph's weights / the workspace's buffers, adding the bytes locked
 * to *locked. On failure the message says why (RLIMIT_MEMLOCK, see hw/hw.h). */
crl_status crl_nn_graph_mlock(const crl_nn_graph_t *g, size_t *locked, crl_err *err);
crl_status crl_nn_ws_mlock(const crl_nn_ws_t *ws, size_t *locked, crl_err *err);
/* optimization.huge_pages: madvise(MADV_HUGEPAGE) of the workspace's arena (one of 2 MiB or more
 * is allocated 2 MiB aligned), adding the bytes advised (see crl_hw_hugepages). */
crl_status crl_nn_ws_hugepages(const crl_nn_ws_t *ws, size_t *advised, crl_err *err);

#endif
