/* graph.c: the policy network's IR (values and nodes), its builder with shape inference, the
 * finishing passes, the memory plan and the executor.
 *
 * Every node keeps a copy of its input and output shapes, so a pass may re-point a node at
 * another value with the same data (a Reshape's input) without re-inferring anything. The
 * executor turns those shapes into concrete dims by substituting the batch, so the same code runs
 * a node over batched values and, at finish, over constants (constant folding).
 *
 * crl_nn_graph_finish packs each LINEAR's weights for the kernel table selected at that moment
 * (crl_kernels(), chosen at start-up before any model loads), when that table packs the shape.
 * The packed copy is that table's private layout, so crl_nn_run uses it only while the same table
 * is selected; after a switch (tests, benchmarks) it runs the plain W with `linear`, which gives
 * the same bits (kernels.h), only slower.
 *
 * With crl_nn_graph_set_precision(CRL_NN_PRECISION_BF16) every LINEAR's W, and every CONV's
 * filters, are packed to bfloat16 instead (the table's pack_bf16) and run through
 * linear_packed_bf16; a table without bf16 entries makes that a load error, never a silent float32
 * fallback. A CONV in bf16 computes col x W^T (pixels as rows, the packed filters as weights) into
 * scratch and transposes it into NCHW. After a table switch a bf16 graph runs in float32 (the
 * plain W), like a float32 graph does with its packing.
 *
 * The data-movement ops (SLICE, GATHER, TRANSPOSE) have their shape rules and kernels in
 * movement.c; this file builds, folds and plans them like any other node. */
#include "nn/graph.h"

#include "hw/hw.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "nn/movement.h"

#define NN_ALIGN 64
#define NN_MAX_WIDTH ((size_t)1 << 16)     /* input and output widths */
#define NN_MAX_ROW ((size_t)1 << 22)       /* floats per batch row of any value */
#define NN_MAX_WEIGHTS ((size_t)256 << 20) /* floats, constants and weights of one graph */
#define NN_MAX_OPS 4096
#define NN_MAX_VALUES (4 * NN_MAX_OPS)
/* A workspace larger than this (floats per value) is a configuration mistake, not a batch. */
#define NN_MAX_WS_FLOATS ((size_t)256 << 20)
#define NN_NONE SIZE_MAX
#define NN_CLASS_STEP 8   /* batch-size classes: 1, 8, 64, 512, ... up to a workspace's max_rows */
#define NN_MAX_CLASSES 12 /* enough for any max_rows a workspace can have */
/* A batch runs in tiles of rows whose widest value fits this many floats (256 KB: L2-sized, so a
 * CNN's feature maps stay in cache from one layer to the next; an MLP's rows are a few hundred
 * floats, and its batches never tile). */
#define NN_TILE_FLOATS ((size_t)64 << 10)
/* A tiled graph whose last wide values are followed by values this narrow (floats per row) runs
 * those last nodes once on the whole batch (split_plan). */
#define NN_TAIL_MAX_ROW 4096

typedef struct nn_value {
    crl_nn_shape s;
    size_t row;  /* floats per batch row (batched) or in all (constant) */
    float *data; /* constants only */
    int is_const;
} nn_value;

typedef struct nn_node {
    crl_nn_op op;
    int dead; /* removed by a pass, compacted away at the end of it */
    size_t in[CRL_NN_MAX_INPUTS], n_in, out;
    crl_nn_shape ish[CRL_NN_MAX_INPUTS], osh;
    crl_nn_attrs a;
    float *w, *b;       /* LINEAR: W [k_out][k_in], bias [k_out] or NULL */
    size_t k_in, k_out; /* LINEAR */
    /* LINEAR, CONV: W packed for the graph's packed_for table (CONV: group after group), or NULL */
    float *wp;
    size_t wp_n;
    uint16_t *wh; /* LINEAR, CONV: W in bf16, packed for packed_for (precision BF16), or NULL */
    size_t wh_n;
    float *p; /* ADD_ROW: the row; BATCHNORM: scale[C], shift[C]; LAYERNORM: gamma[n], beta[n] */
    size_t p_n;
    int64_t *ix; /* GATHER: the indices, non-negative after infer */
    size_t n_ix;
    /* Set at finish (plan_in_place): */
    size_t xrow; /* floats of input 0 per batch row (batched) or in all */
    size_t mrow; /* LINEAR: xrow / k_in, the matrix rows per batch row (no division per run) */
    int relu;    /* LINEAR, CONV: applies the ReLU of the node that reads its output (fused) */
    int post;    /* LINEAR, CONV: CRL_NN_TANH / CRL_NN_SIGMOID run right after it (fused), or 0 */
    int fused;   /* RELU / TANH / SIGMOID: done by the LINEAR / CONV before it, in place; skipped */
    /* Set at finish (plan_nhwc), CONV only: its output is in memory as [N][H][W][C] (its value's
     * shape still says [N, C, H, W]); its input is such an output, and W's rows are in
     * (ki, kj, c) order to match. */
    int out_nhwc, in_nhwc;
    /* Set at load (pack_linears), CONV with a packed W and a table with linear_packed_gather:
     * input k's place in any window of the (padded) image, k_in of them; else NULL (im2col). */
    int32_t *goff;
} nn_node;

struct crl_nn_graph {
    nn_value *vals;
    size_t n_vals, cap_vals;
    nn_node *nodes;
    size_t n_nodes, cap_nodes;
    size_t cur, output; /* chain builder's current value; the output (NN_NONE until set) */
    size_t n_weights;
    int finished;
    uint64_t id;    /* plan_key(), set at finish */
    size_t max_row; /* the widest batched value, floats per row */
    /* Tiled runs (crl_nn_run): nodes [0, split) run tile by tile and the rows of the one value
     * whose memory is `cross` are gathered; nodes [split, n_nodes) then run once on all rows
     * (split_plan). split 0: the whole graph runs tile by tile. */
    size_t split, cross;
    size_t scratch; /* floats of per-node scratch (CONV's im2col), at the arena's end */
    size_t *first;  /* per value: producing node, at finish */
    size_t *last;   /* per value: last node reading it */
    /* per value: the value whose memory it lives in (itself unless an in-place node's output, see
     * plan_in_place) */
    size_t *alias;
    size_t *outg, n_outg; /* the values that live in the caller's y (the output's alias group) */
    const crl_kernels_t *packed_for;
    crl_nn_precision precision;
};

struct crl_nn_ws {
    uint64_t graph_id;
    size_t max_rows, n_vals;
    float *arena;
    size_t arena_n;
    size_t scratch_off; /* g->scratch floats of node scratch at this offset in the arena */
    size_t stage_off;   /* a split graph's cross value for max_rows rows (split_plan) */
    size_t *off, *len, *first, *last; /* per value, the plan for max_rows; off NN_NONE = no slot */
    float **ptr; /* per value: the class's pointers, with x and y set per run */
    /* One plan per batch-size class (NN_CLASS_STEP^i rows, and max_rows), all in the one arena:
     * a small batch uses a compact plan, its values close together. class_ptr[c] holds class c's
     * pointer per value (x's and y's are written by each run). */
    size_t n_classes, class_rows[NN_MAX_CLASSES], class_top[NN_MAX_CLASSES];
    float **class_ptr[NN_MAX_CLASSES];
};

static float *alloc_floats_aligned(size_t n, size_t align) {
    void *p = NULL;
    size_t bytes = (n ? n : 1) * sizeof(float);
    /* Round up so every buffer also ends on a cache line: kernels may read whole lines. */
    bytes = (bytes + align - 1) & ~(size_t)(align - 1);
    if (posix_memalign(&p, align, bytes) != 0) return NULL;
    return p;
}

static float *alloc_floats(size_t n) {
    return alloc_floats_aligned(n, NN_ALIGN);
}

/* ---- shapes -------------------------------------------------------------------------------- */

/* Product of the dims from `from` on (the batch dim excluded when batched). 0 on overflow of cap.
 */
static size_t shape_prod(const crl_nn_shape *s, size_t from, size_t to, size_t cap) {
    size_t p = 1;
    for (size_t i = from; i < to && i < s->rank; i++) {
        if (i == 0 && s->batched) continue;
        if (s->d[i] == 0 || p > cap / s->d[i]) return 0;
        p *= s->d[i];
    }
    return p;
}

static size_t shape_row(const crl_nn_shape *s) {
    return shape_prod(s, 0, s->rank, s->batched ? NN_MAX_ROW : NN_MAX_WEIGHTS);
}

/* Concrete dims with `rows` as the batch. */
static void concrete(const crl_nn_shape *s, size_t rows, size_t *d) {
    for (size_t i = 0; i < s->rank; i++)
        d[i] = (i == 0 && s->batched) ? rows : s->d[i];
}

static size_t prod(const size_t *d, size_t from, size_t to) {
    size_t p = 1;
    for (size_t i = from; i < to; i++)
        p *= d[i];
    return p;
}

void crl_nn_attrs_init(crl_nn_attrs *a) {
    memset(a, 0, sizeof(*a));
    a->keepdims = 1;
}

/* ---- graph and values ---------------------------------------------------------------------- */

static crl_status check_open(const crl_nn_graph_t *g, crl_err *err) {
    if (g == NULL) return crl_err_set(err, CRL_EINVAL, "graph is NULL");
    if (g->finished) return crl_err_set(err, CRL_EINVAL, "graph is already finished");
    return CRL_OK;
}

static crl_status push_value(crl_nn_graph_t *g, const crl_nn_shape *s, size_t *id, crl_err *err) {
    if (g->n_vals >= NN_MAX_VALUES)
        return crl_err_set(err, CRL_ENOMEM, "graph has too many values (limit %d)", NN_MAX_VALUES);
    size_t row = shape_row(s);
    if (row == 0)
        return crl_err_set(
            err, CRL_EUNSUPPORTED, "a value of %zu dimensions is empty or larger than %zu floats%s",
            s->rank, s->batched ? NN_MAX_ROW : NN_MAX_WEIGHTS, s->batched ? " per row" : "");
    if (g->n_vals == g->cap_vals) {
        size_t cap = g->cap_vals ? g->cap_vals * 2 : 16;
        nn_value *v = realloc(g->vals, cap * sizeof(*v));
        if (v == NULL) return crl_err_set(err, CRL_ENOMEM, "out of memory growing the graph");
        g->vals = v;
        g->cap_vals = cap;
    }
    nn_value *v = &g->vals[g->n_vals];
    memset(v, 0, sizeof(*v));
    v->s = *s;
    v->row = row;
    *id = g->n_vals++;
    return CRL_OK;
}

crl_status crl_nn_graph_new_shaped(const size_t *dims, size_t n_dims, crl_nn_graph_t **out) {
    if (out == NULL) return CRL_EINVAL;
    *out = NULL;
    if (dims == NULL || n_dims == 0 || n_dims >= CRL_NN_MAX_RANK) return CRL_EINVAL;
    crl_nn_shape s = {.rank = n_dims + 1, .batched = 1};
    for (size_t i = 0; i < n_dims; i++)
        s.d[i + 1] = dims[i];
    size_t w = shape_prod(&s, 0, s.rank, NN_MAX_WIDTH);
    if (w == 0) return CRL_EINVAL;
    crl_nn_graph_t *g = calloc(1, sizeof(*g));
    if (g == NULL) return CRL_ENOMEM;
    size_t id;
    if (push_value(g, &s, &id, NULL) != CRL_OK) {
        free(g);
        return CRL_ENOMEM;
    }
    g->cur = id;
    g->output = NN_NONE;
    *out = g;
    return CRL_OK;
}

crl_status crl_nn_graph_new(size_t in_width, crl_nn_graph_t **out) {
    return crl_nn_graph_new_shaped(&in_width, 1, out);
}

static void node_free(nn_node *n) {
    free(n->w);
    free(n->b);
    free(n->wp);
    free(n->wh);
    n->wh = NULL;
    free(n->goff);
    n->goff = NULL;
    free(n->p);
    free(n->ix);
    n->w = n->b = n->wp = n->p = NULL;
    n->ix = NULL;
}

void crl_nn_graph_free(crl_nn_graph_t *g) {
    if (g == NULL) return;
    for (size_t i = 0; i < g->n_nodes; i++)
        node_free(&g->nodes[i]);
    for (size_t i = 0; i < g->n_vals; i++)
        free(g->vals[i].data);
    free(g->nodes);
    free(g->vals);
    free(g->first);
    free(g->last);
    free(g->alias);
    free(g->outg);
    free(g);
}

crl_status crl_nn_graph_const(crl_nn_graph_t *g, const float *data, const size_t *dims, size_t rank,
                              size_t *value, crl_err *err) {
    crl_status st = check_open(g, err);
    if (st != CRL_OK) return st;
    if (data == NULL || (rank > 0 && dims == NULL) || value == NULL)
        return crl_err_set(err, CRL_EINVAL, "constant has no data");
    if (rank > CRL_NN_MAX_RANK)
        return crl_err_set(err, CRL_EUNSUPPORTED, "constant has %zu dimensions (max %d)", rank,
                           CRL_NN_MAX_RANK);
    crl_nn_shape s = {.rank = rank};
    for (size_t i = 0; i < rank; i++)
        s.d[i] = dims[i];
    size_t n = shape_row(&s);
    if (n == 0) return crl_err_set(err, CRL_EUNSUPPORTED, "constant is empty or too large");
    if (n > NN_MAX_WEIGHTS - g->n_weights)
        return crl_err_set(err, CRL_ENOMEM, "graph weights exceed the limit of %zu floats",
                           NN_MAX_WEIGHTS);
    float *c = alloc_floats(n);
    if (c == NULL) return crl_err_set(err, CRL_ENOMEM, "out of memory for a constant");
    st = push_value(g, &s, value, err);
    if (st != CRL_OK) {
        free(c);
        return st;
    }
    memcpy(c, data, n * sizeof(float));
    g->vals[*value].data = c;
    g->vals[*value].is_const = 1;
    g->n_weights += n;
    return CRL_OK;
}

crl_status crl_nn_graph_shape(const crl_nn_graph_t *g, size_t value, crl_nn_shape *s) {
    if (g == NULL || s == NULL || value >= g->n_vals) return CRL_EINVAL;
    *s = g->vals[value].s;
    return CRL_OK;
}

crl_status crl_nn_graph_set_output(crl_nn_graph_t *g, size_t value, crl_err *err) {
    crl_status st = check_open(g, err);
    if (st != CRL_OK) return st;
    if (value >= g->n_vals)
        return crl_err_set(err, CRL_EINVAL, "output value %zu does not exist", value);
    g->output = value;
    return CRL_OK;
}

/* ---- shape inference ----------------------------------------------------------------------- */

/* numpy broadcasting of a and b into o. The batch must stay the leading axis of the result. */
static crl_status bcast_shape(const crl_nn_shape *a, const crl_nn_shape *b, crl_nn_shape *o,
                              crl_err *err) {
    size_t r = a->rank > b->rank ? a->rank : b->rank;
    if ((a->batched && a->rank != r) || (b->batched && b->rank != r))
        return crl_err_set(err, CRL_EUNSUPPORTED,
                           "broadcasting a %zu-D batched value with a %zu-D one would move the "
                           "batch axis",
                           a->batched ? a->rank : b->rank, r);
    memset(o, 0, sizeof(*o));
    o->rank = r;
    o->batched = a->batched || b->batched;
    for (size_t i = 0; i < r; i++) {
        int ba = 0, bb = 0;
        size_t da = 1, db = 1;
        if (i + a->rank >= r) {
            size_t j = i + a->rank - r;
            ba = a->batched && j == 0;
            da = a->d[j];
        }
        if (i + b->rank >= r) {
            size_t j = i + b->rank - r;
            bb = b->batched && j == 0;
            db = b->d[j];
        }
        if (ba || bb) {
            if ((!ba && da != 1) || (!bb && db != 1))
                return crl_err_set(err, CRL_ESHAPE,
                                   "a constant dimension of %zu does not broadcast over the batch",
                                   ba ? db : da);
            o->d[i] = 0;
        } else if (da == db || db == 1) {
            o->d[i] = da;
        } else if (da == 1) {
            o->d[i] = db;
        } else {
            return crl_err_set(err, CRL_ESHAPE, "dimensions %zu and %zu do not broadcast", da, db);
        }
    }
    return CRL_OK;
}

static crl_status norm_axis(int64_t axis, size_t rank, int batched, size_t *out, crl_err *err) {
    int64_t r = (int64_t)rank;
    if (axis < -r || axis >= r)
        return crl_err_set(err, CRL_ESHAPE, "axis %lld is outside a %zu-D value", (long long)axis,
                           rank);
    *out = (size_t)(axis < 0 ? axis + r : axis);
    if (batched && *out == 0)
        return crl_err_set(err, CRL_EUNSUPPORTED, "working along the batch axis is not supported");
    return CRL_OK;
}

static int is_unary(crl_nn_op op) {
    switch (op) {
    case CRL_NN_RELU:
    case CRL_NN_TANH:
    case CRL_NN_SIGMOID:
    case CRL_NN_CLIP:
    case CRL_NN_SCALE:
    case CRL_NN_LEAKY_RELU:
    case CRL_NN_ELU:
    case CRL_NN_SELU:
    case CRL_NN_SOFTPLUS:
    case CRL_NN_EXP:
    case CRL_NN_LOG:
    case CRL_NN_SQRT:
    case CRL_NN_ERF:
    case CRL_NN_GELU:
    case CRL_NN_COPY:
        return 1;
    default:
        return 0;
    }
}

static int is_binary(crl_nn_op op) {
    return op == CRL_NN_ADD || op == CRL_NN_SUB || op == CRL_NN_MUL || op == CRL_NN_DIV ||
           op == CRL_NN_POW;
}

/* A constant input of BATCHNORM / LAYERNORM with n elements (or 1, broadcast). */
static crl_status param_input(const crl_nn_graph_t *g, size_t v, size_t n, int allow_scalar,
                              const char *role, float *dst, crl_err *err) {
    const nn_value *c = &g->vals[v];
    if (!c->is_const) return crl_err_set(err, CRL_EUNSUPPORTED, "%s must be a constant", role);
    if (c->row != n && !(allow_scalar && c->row == 1))
        return crl_err_set(err, CRL_ESHAPE, "%s has %zu elements, expected %zu", role, c->row, n);
    for (size_t i = 0; i < n; i++)
        dst[i] = c->data[c->row == 1 ? 0 : i];
    return CRL_OK;
}

#define NN_MAX_SPATIAL ((size_t)1 << 16) /* kernel, stride, dilation, pad: sanity bound */

/* CONV / pools: resolves defaults and auto_pad into a->kernel/strides/dilations/pads (so the
 * executor reads plain numbers) and sets the output's H and W. */
static crl_status infer_spatial(nn_node *n, const crl_nn_shape *s, crl_err *err) {
    crl_nn_attrs *a = &n->a;
    int ap = a->auto_pad;
    if (ap < CRL_NN_PAD_NOTSET || ap > CRL_NN_PAD_SAME_LOWER)
        return crl_err_set(err, CRL_EINVAL, "unknown auto_pad %d", ap);
    for (size_t i = 0; i < 2; i++) {
        size_t in = s->d[2 + i];
        if (a->strides[i] == 0) a->strides[i] = 1;
        if (a->dilations[i] == 0) a->dilations[i] = 1;
        size_t k = a->kernel[i], st = a->strides[i], dl = a->dilations[i];
        if (k == 0 || k > NN_MAX_SPATIAL || st > NN_MAX_SPATIAL || dl > NN_MAX_SPATIAL ||
            a->pads[i] > NN_MAX_SPATIAL || a->pads[i + 2] > NN_MAX_SPATIAL)
            return crl_err_set(err, CRL_EUNSUPPORTED,
                               "kernel %zu, stride %zu, dilation %zu or pads %zu/%zu are outside "
                               "1..%zu",
                               k, st, dl, a->pads[i], a->pads[i + 2], NN_MAX_SPATIAL);
        size_t ek = (k - 1) * dl + 1, out;
        if (ap == CRL_NN_PAD_SAME_UPPER || ap == CRL_NN_PAD_SAME_LOWER) {
            out = (in + st - 1) / st;
            size_t need = (out - 1) * st + ek, total = need > in ? need - in : 0;
            size_t small = total / 2, big = total - small;
            a->pads[i] = ap == CRL_NN_PAD_SAME_UPPER ? small : big;
            a->pads[i + 2] = ap == CRL_NN_PAD_SAME_UPPER ? big : small;
        } else {
            if (ap == CRL_NN_PAD_VALID) a->pads[i] = a->pads[i + 2] = 0;
            size_t padded = in + a->pads[i] + a->pads[i + 2];
            if (padded < ek)
                return crl_err_set(err, CRL_ESHAPE,
                                   "the %zu-wide kernel (dilated) does not fit the padded input "
                                   "of %zu",
                                   ek, padded);
            out = (padded - ek) / st + 1;
            if (a->ceil_mode && (padded - ek) % st != 0) {
                out++;
                /* The last window must start inside the input or its leading pad (torch). */
                if ((out - 1) * st >= in + a->pads[i]) out--;
            }
        }
        n->osh.d[2 + i] = out;
    }
    a->auto_pad = CRL_NN_PAD_NOTSET;
    return CRL_OK;
}

static crl_status infer_conv(crl_nn_graph_t *g, nn_node *n, crl_err *err) {
    const crl_nn_shape *s = &n->ish[0];
    crl_nn_attrs *a = &n->a;
    if (n->n_in != 2 && n->n_in != 3) return crl_err_set(err, CRL_EINVAL, "takes 2 or 3 inputs");
    const nn_value *wv = &g->vals[n->in[1]];
    if (!wv->is_const || wv->s.rank != 4)
        return crl_err_set(err, CRL_EUNSUPPORTED,
                           "the weight must be a constant [M, C/group, kH, kW] (2-D convolution)");
    size_t m = wv->s.d[0], cg = wv->s.d[1], grp = a->group ? a->group : 1;
    a->group = grp;
    for (size_t i = 0; i < 2; i++) {
        if (a->kernel[i] != 0 && a->kernel[i] != wv->s.d[2 + i])
            return crl_err_set(err, CRL_ESHAPE, "kernel_shape %zu does not match the weight's %zu",
                               a->kernel[i], wv->s.d[2 + i]);
        a->kernel[i] = wv->s.d[2 + i];
    }
    if (cg * grp != s->d[1] || m % grp != 0)
        return crl_err_set(err, CRL_ESHAPE,
                           "%zu input channels, %zu output channels and group %zu do not match a "
                           "weight of %zu channels per group",
                           s->d[1], m, grp, cg);
    crl_status st = infer_spatial(n, s, err);
    if (st != CRL_OK) return st;
    if (wv->row / m > NN_MAX_WS_FLOATS / (n->osh.d[2] * n->osh.d[3]))
        return crl_err_set(err, CRL_EUNSUPPORTED,
                           "the convolution's im2col matrix (%zu x %zu) is larger than %zu floats",
                           n->osh.d[2] * n->osh.d[3], wv->row / m, NN_MAX_WS_FLOATS);
    n->osh.d[1] = m;
    n->k_out = m;
    n->k_in = wv->row / m;
    if (g->n_weights > NN_MAX_WEIGHTS - wv->row - m)
        return crl_err_set(err, CRL_ENOMEM, "graph weights exceed the limit of %zu floats",
                           NN_MAX_WEIGHTS);
    n->w = alloc_floats(wv->row);
    if (n->w == NULL) return crl_err_set(err, CRL_ENOMEM, "out of memory for a convolution");
    memcpy(n->w, wv->data, wv->row * sizeof(float));
    if (n->n_in == 3) {
        n->b = alloc_floats(m);
        if (n->b == NULL) return crl_err_set(err, CRL_ENOMEM, "out of memory");
        if ((st = param_input(g, n->in[2], m, 0, "bias", n->b, err)) != CRL_OK) return st;
    }
    g->n_weights += wv->row + m;
    n->n_in = 1; /* W and B live in the node now */
    return CRL_OK;
}

/* Fills n->osh (and n->p for the ops that take constant parameters) from the inputs. */
static crl_status infer(crl_nn_graph_t *g, nn_node *n, crl_err *err) {
    const crl_nn_shape *s = &n->ish[0];
    crl_nn_attrs *a = &n->a;
    crl_status st = CRL_OK;
    size_t ax;
    n->osh = *s;
    if (is_unary(n->op))
        return n->n_in == 1 ? CRL_OK : crl_err_set(err, CRL_EINVAL, "takes 1 input");
    if (is_binary(n->op)) {
        if (n->n_in != 2) return crl_err_set(err, CRL_EINVAL, "takes 2 inputs");
        return bcast_shape(&n->ish[0], &n->ish[1], &n->osh, err);
    }
    switch (n->op) {
    case CRL_NN_CONV:
    case CRL_NN_MAXPOOL:
    case CRL_NN_AVGPOOL:
    case CRL_NN_GLOBAL_AVGPOOL:
        if (s->rank != 4)
            return crl_err_set(err, CRL_EUNSUPPORTED,
                               "only 2-D NCHW inputs [batch, C, H, W] are supported, this one "
                               "has %zu dimensions",
                               s->rank);
        if (n->op == CRL_NN_CONV) return infer_conv(g, n, err);
        if (n->n_in != 1) return crl_err_set(err, CRL_EINVAL, "takes 1 input");
        if (n->op == CRL_NN_GLOBAL_AVGPOOL) {
            n->osh.d[2] = n->osh.d[3] = 1;
            return CRL_OK;
        }
        return infer_spatial(n, s, err);
    case CRL_NN_SOFTMAX:
    case CRL_NN_LOG_SOFTMAX:
    case CRL_NN_ARGMAX:
        if (n->n_in != 1) return crl_err_set(err, CRL_EINVAL, "takes 1 input");
        if ((st = norm_axis(a->axis, s->rank, s->batched, &ax, err)) != CRL_OK) return st;
        a->axis = (int64_t)ax;
        if (n->op == CRL_NN_ARGMAX) {
            if (a->keepdims) {
                n->osh.d[ax] = 1;
            } else {
                for (size_t i = ax; i + 1 < s->rank; i++)
                    n->osh.d[i] = s->d[i + 1];
                n->osh.rank--;
            }
        }
        return CRL_OK;
    case CRL_NN_CONCAT:
        if (n->n_in < 1) return crl_err_set(err, CRL_EINVAL, "takes at least 1 input");
        if ((st = norm_axis(a->axis, s->rank, s->batched, &ax, err)) != CRL_OK) return st;
        a->axis = (int64_t)ax;
        n->osh.d[ax] = 0;
        for (size_t k = 0; k < n->n_in; k++) {
            const crl_nn_shape *t = &n->ish[k];
            if (t->rank != s->rank || t->batched != s->batched)
                return crl_err_set(err, CRL_EUNSUPPORTED,
                                   "inputs differ in rank or in having a batch axis");
            for (size_t i = 0; i < s->rank; i++)
                if (i != ax && !(i == 0 && s->batched) && t->d[i] != s->d[i])
                    return crl_err_set(err, CRL_ESHAPE, "inputs differ in dimension %zu", i);
            n->osh.d[ax] += t->d[ax];
        }
        return CRL_OK;
    case CRL_NN_RESHAPE:
        if (n->n_in != 1) return crl_err_set(err, CRL_EINVAL, "takes 1 input");
        if (a->shape.batched != s->batched || a->shape.rank > CRL_NN_MAX_RANK ||
            (a->shape.batched && a->shape.rank == 0) || shape_row(&a->shape) != shape_row(s))
            return crl_err_set(err, CRL_ESHAPE,
                               "cannot reshape %zu elements per row into the target shape",
                               shape_row(s));
        n->osh = a->shape;
        return CRL_OK;
    case CRL_NN_EXPAND:
        if (n->n_in != 1) return crl_err_set(err, CRL_EINVAL, "takes 1 input");
        if (a->shape.rank > CRL_NN_MAX_RANK)
            return crl_err_set(err, CRL_EUNSUPPORTED, "target shape has too many dimensions");
        return bcast_shape(s, &a->shape, &n->osh, err);
    case CRL_NN_BATCHNORM: {
        if (n->n_in != 5) return crl_err_set(err, CRL_EINVAL, "takes 5 inputs");
        if (s->rank < 2) return crl_err_set(err, CRL_ESHAPE, "input needs at least 2 dimensions");
        size_t c = s->d[1];
        n->p = alloc_floats(4 * c);
        if (n->p == NULL) return crl_err_set(err, CRL_ENOMEM, "out of memory");
        n->p_n = 2 * c;
        float *gam = n->p, *bet = n->p + c, *mean = n->p + 2 * c, *var = n->p + 3 * c;
        if ((st = param_input(g, n->in[1], c, 0, "scale", gam, err)) != CRL_OK ||
            (st = param_input(g, n->in[2], c, 0, "bias", bet, err)) != CRL_OK ||
            (st = param_input(g, n->in[3], c, 0, "mean", mean, err)) != CRL_OK ||
            (st = param_input(g, n->in[4], c, 0, "variance", var, err)) != CRL_OK)
            return st;
        /* Inference form: y = x * s + t with s = gamma / sqrt(var + eps), t = beta - mean * s. */
        for (size_t i = 0; i < c; i++) {
            float sc = gam[i] / sqrtf(var[i] + a->eps);
            gam[i] = sc;
            bet[i] = bet[i] - mean[i] * sc;
        }
        n->n_in = 1; /* the parameters live in p now */
        return CRL_OK;
    }
    case CRL_NN_LAYERNORM: {
        if (n->n_in != 2 && n->n_in != 3)
            return crl_err_set(err, CRL_EINVAL, "takes 2 or 3 inputs");
        if ((st = norm_axis(a->axis, s->rank, s->batched, &ax, err)) != CRL_OK) return st;
        a->axis = (int64_t)ax;
        size_t m = shape_prod(s, ax, s->rank, NN_MAX_ROW);
        n->p = alloc_floats(2 * m);
        if (n->p == NULL) return crl_err_set(err, CRL_ENOMEM, "out of memory");
        n->p_n = 2 * m;
        if ((st = param_input(g, n->in[1], m, 1, "scale", n->p, err)) != CRL_OK) return st;
        if (n->n_in == 3) {
            if ((st = param_input(g, n->in[2], m, 1, "bias", n->p + m, err)) != CRL_OK) return st;
        } else {
            memset(n->p + m, 0, m * sizeof(float));
        }
        n->n_in = 1;
        return CRL_OK;
    }
    case CRL_NN_REDUCE_MEAN: {
        if (n->n_in != 1) return crl_err_set(err, CRL_EINVAL, "takes 1 input");
        int mask[CRL_NN_MAX_RANK] = {0};
        if (a->n_axes == 0) {
            for (size_t i = 0; i < s->rank; i++)
                mask[i] = 1;
            if (s->batched)
                return crl_err_set(err, CRL_EUNSUPPORTED,
                                   "reducing over all axes includes the batch axis");
        }
        for (size_t k = 0; k < a->n_axes; k++) {
            if ((st = norm_axis(a->axes[k], s->rank, s->batched, &ax, err)) != CRL_OK) return st;
            mask[ax] = 1;
        }
        a->n_axes = 0;
        size_t r = 0;
        for (size_t i = 0; i < s->rank; i++) {
            if (mask[i]) a->axes[a->n_axes++] = (int64_t)i;
            if (mask[i] && !a->keepdims) continue;
            n->osh.d[r++] = mask[i] ? 1 : s->d[i];
        }
        n->osh.rank = r;
        return CRL_OK;
    }
    case CRL_NN_SLICE:
    case CRL_NN_TRANSPOSE:
    case CRL_NN_GATHER:
        if (n->n_in != 1) return crl_err_set(err, CRL_EINVAL, "takes 1 input");
        if (n->op == CRL_NN_SLICE)
            st = crl_nn__infer_slice(s, a, &n->osh, err);
        else if (n->op == CRL_NN_TRANSPOSE)
            st = crl_nn__infer_transpose(s, a, &n->osh, err);
        else
            st = crl_nn__infer_gather(s, a, n->ix, n->n_ix, &n->osh, err);
        /* A whole slice, or a transpose that only moves dims of size 1, renames the data: as a
         * RESHAPE it costs nothing (elide_reshapes). */
        if (st == CRL_OK && crl_nn__moves_nothing(n->op, s, a, &n->osh)) {
            n->op = CRL_NN_RESHAPE;
            a->shape = n->osh;
        }
        return st;
    default:
        return crl_err_set(err, CRL_EINVAL, "op %d cannot be built as a node", (int)n->op);
    }
}

static crl_status push_node(crl_nn_graph_t *g, nn_node **node, crl_err *err) {
    crl_status st = check_open(g, err);
    if (st != CRL_OK) return st;
    if (g->n_nodes >= NN_MAX_OPS)
        return crl_err_set(err, CRL_ENOMEM, "graph has too many operations (limit %d)", NN_MAX_OPS);
    if (g->n_nodes == g->cap_nodes) {
        size_t cap = g->cap_nodes ? g->cap_nodes * 2 : 8;
        nn_node *ops = realloc(g->nodes, cap * sizeof(*ops));
        if (ops == NULL) return crl_err_set(err, CRL_ENOMEM, "out of memory growing the graph");
        g->nodes = ops;
        g->cap_nodes = cap;
    }
    *node = &g->nodes[g->n_nodes];
    memset(*node, 0, sizeof(**node));
    return CRL_OK;
}

/* Adds the node prepared in g->nodes[g->n_nodes] (inputs set): infers, makes its output value. */
static crl_status commit_node(crl_nn_graph_t *g, nn_node *n, size_t *value, crl_err *err) {
    crl_status st = infer(g, n, err);
    if (st == CRL_OK) st = push_value(g, &n->osh, &n->out, err);
    if (st != CRL_OK) {
        node_free(n);
        return st;
    }
    g->n_nodes++;
    g->cur = n->out;
    if (value) *value = n->out;
    return CRL_OK;
}

crl_status crl_nn_graph_node(crl_nn_graph_t *g, crl_nn_op op, const size_t *in, size_t n_in,
                             const crl_nn_attrs *a, size_t *value, crl_err *err) {
    nn_node *n = NULL;
    crl_status st = push_node(g, &n, err);
    if (st != CRL_OK) return st;
    if (op == CRL_NN_LINEAR || op == CRL_NN_ADD_ROW || op == CRL_NN_GATHER || (int)op < 0 ||
        op >= CRL_NN_OP_COUNT)
        return crl_err_set(err, CRL_EINVAL, "op %d cannot be built with crl_nn_graph_node",
                           (int)op);
    if (n_in == 0 || n_in > CRL_NN_MAX_INPUTS || in == NULL)
        return crl_err_set(err, CRL_EINVAL, "a node takes 1 to %d inputs", CRL_NN_MAX_INPUTS);
    n->op = op;
    n->n_in = n_in;
    if (a)
        n->a = *a;
    else
        crl_nn_attrs_init(&n->a);
    for (size_t i = 0; i < n_in; i++) {
        if (in[i] >= g->n_vals) return crl_err_set(err, CRL_EINVAL, "input value does not exist");
        n->in[i] = in[i];
        n->ish[i] = g->vals[in[i]].s;
    }
    return commit_node(g, n, value, err);
}

crl_status crl_nn_graph_gather(crl_nn_graph_t *g, size_t x, int64_t axis, const int64_t *indices,
                               const size_t *idims, size_t irank, size_t *value, crl_err *err) {
    nn_node *n = NULL;
    crl_status st = push_node(g, &n, err);
    if (st != CRL_OK) return st;
    if (x >= g->n_vals) return crl_err_set(err, CRL_EINVAL, "input value does not exist");
    if (indices == NULL || (irank > 0 && idims == NULL))
        return crl_err_set(err, CRL_EINVAL, "a gather needs its indices");
    if (irank > CRL_NN_MAX_RANK)
        return crl_err_set(err, CRL_EUNSUPPORTED, "the indices have %zu dimensions (max %d)", irank,
                           CRL_NN_MAX_RANK);
    size_t cnt = 1;
    for (size_t i = 0; i < irank; i++) {
        if (idims[i] == 0 || cnt > NN_MAX_ROW / idims[i])
            return crl_err_set(err, CRL_EUNSUPPORTED, "the indices are empty or more than %zu",
                               NN_MAX_ROW);
        cnt *= idims[i];
    }
    n->op = CRL_NN_GATHER;
    n->n_in = 1;
    n->in[0] = x;
    n->ish[0] = g->vals[x].s;
    crl_nn_attrs_init(&n->a);
    n->a.axis = axis;
    n->a.shape.rank = irank;
    for (size_t i = 0; i < irank; i++)
        n->a.shape.d[i] = idims[i];
    n->ix = malloc(cnt * sizeof(*n->ix));
    if (n->ix == NULL) return crl_err_set(err, CRL_ENOMEM, "out of memory for gather indices");
    memcpy(n->ix, indices, cnt * sizeof(*n->ix));
    n->n_ix = cnt;
    return commit_node(g, n, value, err);
}

crl_status crl_nn_graph_linear(crl_nn_graph_t *g, size_t x, const float *w, const float *b,
                               size_t in, size_t out, size_t *value, crl_err *err) {
    nn_node *n = NULL;
    crl_status st = push_node(g, &n, err);
    if (st != CRL_OK) return st;
    if (w == NULL) return crl_err_set(err, CRL_EINVAL, "linear layer has no weights");
    if (x >= g->n_vals) return crl_err_set(err, CRL_EINVAL, "input value does not exist");
    const crl_nn_shape *s = &g->vals[x].s;
    size_t have = s->rank ? s->d[s->rank - 1] : 1;
    if (s->rank == 0 || (s->batched && s->rank == 1) || in != have)
        return crl_err_set(err, CRL_ESHAPE, "linear layer expects %zu inputs but the value has %zu",
                           in, s->rank == 0 || (s->batched && s->rank == 1) ? 1 : have);
    if (out == 0 || out > NN_MAX_WIDTH)
        return crl_err_set(err, CRL_EINVAL, "linear layer width %zu is outside 1..%zu", out,
                           NN_MAX_WIDTH);
    if (in > NN_MAX_WIDTH)
        return crl_err_set(err, CRL_EUNSUPPORTED, "linear layer input %zu is above %zu", in,
                           NN_MAX_WIDTH);
    /* in, out <= 2^16, so in*out + out cannot overflow size_t. */
    size_t need = in * out + out;
    if (need > NN_MAX_WEIGHTS - g->n_weights)
        return crl_err_set(err, CRL_ENOMEM, "graph weights exceed the limit of %zu floats",
                           NN_MAX_WEIGHTS);
    n->op = CRL_NN_LINEAR;
    n->n_in = 1;
    n->in[0] = x;
    n->ish[0] = *s;
    n->k_in = in;
    n->k_out = out;
    n->osh = *s;
    n->osh.d[s->rank - 1] = out;
    n->w = alloc_floats(in * out);
    n->b = b ? alloc_floats(out) : NULL;
    if (n->w == NULL || (b && n->b == NULL)) {
        node_free(n);
        return crl_err_set(err, CRL_ENOMEM, "out of memory for a %zux%zu linear layer", out, in);
    }
    memcpy(n->w, w, in * out * sizeof(float));
    if (b) memcpy(n->b, b, out * sizeof(float));
    st = push_value(g, &n->osh, &n->out, err);
    if (st != CRL_OK) {
        node_free(n);
        return st;
    }
    g->n_nodes++;
    g->n_weights += need;
    g->cur = n->out;
    if (value) *value = n->out;
    return CRL_OK;
}

/* ---- chain builder ------------------------------------------------------------------------- */

crl_status crl_nn_graph_add_linear(crl_nn_graph_t *g, const float *w, const float *b, size_t in,
                                   size_t out, crl_err *err) {
    crl_status st = check_open(g, err);
    if (st != CRL_OK) return st;
    return crl_nn_graph_linear(g, g->cur, w, b, in, out, NULL, err);
}

crl_status crl_nn_graph_add_act(crl_nn_graph_t *g, crl_nn_op op, crl_err *err) {
    if (op != CRL_NN_RELU && op != CRL_NN_TANH && op != CRL_NN_SIGMOID)
        return crl_err_set(err, CRL_EINVAL, "op %d is not an activation", (int)op);
    crl_status st = check_open(g, err);
    if (st != CRL_OK) return st;
    return crl_nn_graph_node(g, op, &g->cur, 1, NULL, NULL, err);
}

crl_status crl_nn_graph_add_clip(crl_nn_graph_t *g, float lo, float hi, crl_err *err) {
    if (isnan(lo) || isnan(hi) || lo > hi)
        return crl_err_set(err, CRL_EINVAL, "clip bounds [%g, %g] are not an interval", (double)lo,
                           (double)hi);
    crl_status st = check_open(g, err);
    if (st != CRL_OK) return st;
    crl_nn_attrs a;
    crl_nn_attrs_init(&a);
    a.lo = lo;
    a.hi = hi;
    return crl_nn_graph_node(g, CRL_NN_CLIP, &g->cur, 1, &a, NULL, err);
}

crl_status crl_nn_graph_add_scale(crl_nn_graph_t *g, float alpha, crl_err *err) {
    if (!isfinite(alpha))
        return crl_err_set(err, CRL_EINVAL, "scale factor %g is not finite", (double)alpha);
    crl_status st = check_open(g, err);
    if (st != CRL_OK) return st;
    crl_nn_attrs a;
    crl_nn_attrs_init(&a);
    a.alpha = alpha;
    return crl_nn_graph_node(g, CRL_NN_SCALE, &g->cur, 1, &a, NULL, err);
}

crl_status crl_nn_graph_add_row(crl_nn_graph_t *g, const float *b, size_t width, crl_err *err) {
    nn_node *n = NULL;
    crl_status st = push_node(g, &n, err);
    if (st != CRL_OK) return st;
    if (b == NULL) return crl_err_set(err, CRL_EINVAL, "row addition has no values");
    const crl_nn_shape *s = &g->vals[g->cur].s;
    size_t have = s->rank ? s->d[s->rank - 1] : 1;
    if (s->rank < 2 || width != have)
        return crl_err_set(err, CRL_ESHAPE, "row addition has %zu values but the value has %zu",
                           width, have);
    if (width > NN_MAX_WEIGHTS - g->n_weights)
        return crl_err_set(err, CRL_ENOMEM, "graph weights exceed the limit of %zu floats",
                           NN_MAX_WEIGHTS);
    n->op = CRL_NN_ADD_ROW;
    n->n_in = 1;
    n->in[0] = g->cur;
    n->ish[0] = *s;
    n->osh = *s;
    n->p = alloc_floats(width);
    if (n->p == NULL) return crl_err_set(err, CRL_ENOMEM, "out of memory for a row addition");
    n->p_n = width;
    memcpy(n->p, b, width * sizeof(float));
    st = push_value(g, &n->osh, &n->out, err);
    if (st != CRL_OK) {
        node_free(n);
        return st;
    }
    g->n_nodes++;
    g->n_weights += width;
    g->cur = n->out;
    return CRL_OK;
}

/* ---- executor ------------------------------------------------------------------------------ */

/* Strides of a value of dims d[rank] aligned to the right of an r-D result; 0 where it
 * broadcasts. */
static void bcast_strides(const size_t *d, size_t rank, size_t r, size_t *st) {
    size_t s = 1;
    for (size_t i = r; i-- > 0;) {
        if (i + rank < r) {
            st[i] = 0;
            continue;
        }
        size_t di = d[i + rank - r];
        st[i] = di == 1 ? 0 : s;
        s *= di;
    }
}

static float binop(crl_nn_op op, float a, float b) {
    switch (op) {
    case CRL_NN_ADD:
        return a + b;
    case CRL_NN_SUB:
        return a - b;
    case CRL_NN_MUL:
        return a * b;
    case CRL_NN_DIV:
        return a / b;
    case CRL_NN_POW:
        return powf(a, b);
    default:
        return a; /* EXPAND: a copy */
    }
}

/* yo[j] = a[j] op b[j * ib] for ib 0 (b a scalar) or 1: one loop per op and stride, so the
 * compiler vectorizes them. */
static void run_binary_row(crl_nn_op op, const float *a, const float *b, size_t ib, float *yo,
                           size_t n) {
#define ROW(expr_vec, expr_sc)                                                                     \
    do {                                                                                           \
        if (ib) {                                                                                  \
            for (size_t j = 0; j < n; j++)                                                         \
                yo[j] = expr_vec;                                                                  \
        } else {                                                                                   \
            const float s = b[0];                                                                  \
            for (size_t j = 0; j < n; j++)                                                         \
                yo[j] = expr_sc;                                                                   \
        }                                                                                          \
    } while (0)
    switch (op) {
    case CRL_NN_ADD:
        ROW(a[j] + b[j], a[j] + s);
        break;
    case CRL_NN_SUB:
        ROW(a[j] - b[j], a[j] - s);
        break;
    case CRL_NN_MUL:
        ROW(a[j] * b[j], a[j] * s);
        break;
    default: /* DIV */
        ROW(a[j] / b[j], a[j] / s);
        break;
    }
#undef ROW
}

/* y[dy] = a op b with numpy broadcasting (b NULL: EXPAND, a broadcast copy). The last axis is the
 * inner loop; the others are walked with an index vector. */
static void run_bcast(crl_nn_op op, const float *a, const size_t *da, size_t ra, const float *b,
                      const size_t *db, size_t rb, float *y, const size_t *dy, size_t r) {
    size_t sa[CRL_NN_MAX_RANK], sb[CRL_NN_MAX_RANK], idx[CRL_NN_MAX_RANK] = {0};
    bcast_strides(da, ra, r, sa);
    if (b)
        bcast_strides(db, rb, r, sb);
    else
        memset(sb, 0, sizeof(sb));
    size_t inner = r ? dy[r - 1] : 1, outer = prod(dy, 0, r ? r - 1 : 0);
    size_t ia = r ? sa[r - 1] : 0, ib = r ? sb[r - 1] : 0;
    for (size_t o = 0; o < outer; o++) {
        size_t oa = 0, ob = 0;
        for (size_t i = 0; i + 1 < r; i++) {
            oa += idx[i] * sa[i];
            ob += idx[i] * sb[i];
        }
        float *yo = y + o * inner;
        if (b != NULL && ia == 1 && (ib == 1 || ib == 0) && op != CRL_NN_POW) {
            run_binary_row(op, a + oa, b + ob, ib, yo, inner);
        } else if (b == NULL) {
            for (size_t j = 0; j < inner; j++)
                yo[j] = a[oa + j * ia];
        } else if (op == CRL_NN_ADD) {
            for (size_t j = 0; j < inner; j++)
                yo[j] = a[oa + j * ia] + b[ob + j * ib];
        } else if (op == CRL_NN_MUL) {
            for (size_t j = 0; j < inner; j++)
                yo[j] = a[oa + j * ia] * b[ob + j * ib];
        } else {
            for (size_t j = 0; j < inner; j++)
                yo[j] = binop(op, a[oa + j * ia], b[ob + j * ib]);
        }
        for (size_t i = r >= 2 ? r - 2 : 0; r >= 2; i--) { /* next outer index */
            if (++idx[i] < dy[i]) break;
            idx[i] = 0;
            if (i == 0) break;
        }
    }
}

static float unop(const nn_node *n, float x) {
    switch (n->op) {
    case CRL_NN_LEAKY_RELU:
        return x >= 0 ? x : n->a.alpha * x;
    case CRL_NN_ELU:
        return x >= 0 ? x : n->a.alpha * (expf(x) - 1.0f);
    case CRL_NN_SELU:
        return n->a.beta * (x > 0 ? x : n->a.alpha * (expf(x) - 1.0f));
    case CRL_NN_SOFTPLUS:
        return x > 20.0f ? x : log1pf(expf(x));
    case CRL_NN_EXP:
        return expf(x);
    case CRL_NN_LOG:
        return logf(x);
    case CRL_NN_SQRT:
        return sqrtf(x);
    case CRL_NN_ERF:
        return erff(x);
    default:
        return x;
    }
}

/* y = (x * (erf(x / c) + 1)) * 0.5, element by element: exactly the float operations of the
 * Div, Erf, Add, Mul, Mul chain it replaces (fuse_gelu), with the table's erf (libm's erff when it
 * has none): the table's gelu when it has one, else in one pass over blocks small enough to stay
 * in L1. y may be x. */
static void run_gelu(const crl_kernels_t *k, float c, const float *x, float *y, size_t n) {
    if (k->gelu) {
        k->gelu(x, y, n, c);
        return;
    }
    float t[256];
    for (size_t i0 = 0; i0 < n; i0 += 256) {
        size_t m = n - i0 < 256 ? n - i0 : 256;
        for (size_t j = 0; j < m; j++)
            t[j] = x[i0 + j] / c;
        if (k->erf) {
            k->erf(t, m);
        } else {
            for (size_t j = 0; j < m; j++)
                t[j] = erff(t[j]);
        }
        for (size_t j = 0; j < m; j++)
            y[i0 + j] = (x[i0 + j] * (t[j] + 1.0f)) * 0.5f;
    }
}

/* softmax / log-softmax over n elements spaced `inner` apart. */
static void run_softmax(int logsm, const float *x, float *y, size_t outer, size_t n, size_t inner) {
    for (size_t o = 0; o < outer; o++)
        for (size_t in = 0; in < inner; in++) {
            const float *xs = x + o * n * inner + in;
            float *ys = y + o * n * inner + in;
            float mx = xs[0];
            for (size_t i = 1; i < n; i++)
                if (xs[i * inner] > mx) mx = xs[i * inner];
            double sum = 0;
            for (size_t i = 0; i < n; i++)
                sum += exp((double)xs[i * inner] - (double)mx);
            double lse = log(sum);
            for (size_t i = 0; i < n; i++) {
                double v = (double)xs[i * inner] - (double)mx;
                ys[i * inner] = (float)(logsm ? v - lse : exp(v) / sum);
            }
        }
}

/* The sum of x[i] (sq 0) or of (x[i] - c)^2 (sq 1) over n floats, in double, with four
 * independent partial sums (one chain would wait on the adder's latency for every element). */
static double sum4(const float *x, size_t n, double c, int sq) {
    double s[4] = {0, 0, 0, 0};
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int j = 0; j < 4; j++) {
            double v = (double)x[i + (size_t)j] - c;
            s[j] += sq ? v * v : v;
        }
    for (; i < n; i++) {
        double v = (double)x[i] - c;
        s[0] += sq ? v * v : v;
    }
    return (s[0] + s[1]) + (s[2] + s[3]);
}

static void run_reduce_mean(const nn_node *n, const float *x, const size_t *d, size_t r, float *y) {
    int mask[CRL_NN_MAX_RANK] = {0};
    for (size_t k = 0; k < n->a.n_axes; k++)
        mask[n->a.axes[k]] = 1;
    size_t od[CRL_NN_MAX_RANK], ost[CRL_NN_MAX_RANK], idx[CRL_NN_MAX_RANK] = {0};
    size_t cnt = 1;
    for (size_t i = 0; i < r; i++) {
        od[i] = mask[i] ? 1 : d[i];
        if (mask[i]) cnt *= d[i];
    }
    bcast_strides(od, r, r, ost);
    size_t total = prod(d, 0, r), on = prod(od, 0, r);
    for (size_t i = 0; i < on; i++)
        y[i] = 0;
    for (size_t e = 0; e < total; e++) {
        size_t o = 0;
        for (size_t i = 0; i < r; i++)
            o += idx[i] * ost[i];
        y[o] += x[e];
        for (size_t i = r; i-- > 0;) {
            if (++idx[i] < d[i]) break;
            idx[i] = 0;
        }
    }
    for (size_t i = 0; i < on; i++)
        y[i] /= (float)cnt;
}

/* A CONV's input image (one group), padded: its height and width, and whether it has pads. */
static size_t conv_padded(const nn_node *n, size_t *hp, size_t *wp) {
    const crl_nn_attrs *a = &n->a;
    *hp = n->ish[0].d[2] + a->pads[0] + a->pads[2];
    *wp = n->ish[0].d[3] + a->pads[1] + a->pads[3];
    return a->pads[0] | a->pads[1] | a->pads[2] | a->pads[3];
}

/* Floats, rounded up to whole 64-byte lines, so the next part of the scratch stays aligned. */
static size_t lines(size_t floats) {
    return (floats + NN_ALIGN / sizeof(float) - 1) & ~(NN_ALIGN / sizeof(float) - 1);
}

/* The implicit GEMM's scratch (run_conv): the window origins of one image's pixels, the padded
 * image (when the CONV pads), and the [pixel][filter] result unless it is NHWC already. */
static size_t gather_scratch(const nn_node *n, float **pad, float **yt, float *scratch) {
    size_t np = n->osh.d[2] * n->osh.d[3], hp, wp, cg = n->ish[0].d[1] / n->a.group;
    size_t o_pad = lines(np * sizeof(float *) / sizeof(float) + 1);
    size_t o_yt = o_pad + (conv_padded(n, &hp, &wp) ? lines(cg * hp * wp) : 0);
    if (scratch) {
        *pad = scratch + o_pad;
        *yt = scratch + o_yt;
    }
    return o_yt + (n->out_nhwc ? 0 : np * (n->k_out / n->a.group));
}

/* Floats of scratch a node needs: CONV's im2col matrix and its output pixels (one image, one
 * group), or the implicit GEMM's, whichever is more (the kernel table decides at run time). */
static size_t node_scratch(const nn_node *n) {
    if (n->op != CRL_NN_CONV) return 0;
    size_t np = n->osh.d[2] * n->osh.d[3],
           im2col = lines(np * n->k_in) + np * (n->k_out / n->a.group);
    size_t gather = gather_scratch(n, NULL, NULL, NULL);
    return im2col > gather ? im2col : gather;
}

/* y = x W^T + b over m rows through the table's linear: W's bf16 copy `wh` (precision BF16) or
 * packed copy `wp` when there is one, with the ReLU epilogue when `relu`. */
static void run_linear(const crl_kernels_t *k, const float *wp, const uint16_t *wh, const float *w,
                       const float *x, size_t m, size_t in, const float *b, size_t out, float *y,
                       int relu) {
    if (wh) {
        if (relu)
            k->linear_packed_bf16_relu(x, m, in, wh, b, out, y);
        else
            k->linear_packed_bf16(x, m, in, wh, b, out, y);
        return;
    }
    if (wp) {
        if (relu && k->linear_packed_relu) {
            k->linear_packed_relu(x, m, in, wp, b, out, y);
            return;
        }
        k->linear_packed(x, m, in, wp, b, out, y);
    } else {
        if (relu && k->linear_relu) {
            k->linear_relu(x, m, in, w, b, out, y);
            return;
        }
        k->linear(x, m, in, w, b, out, y);
    }
    if (relu) k->relu(y, m * out);
}

/* count window rows of n floats: dst[i * dstep .. + n) = src[i * sstep .. + n). Window rows are a
 * few floats: a constant n lets the compiler inline each copy (a libc call per window row cost
 * more than the copy). */
static void copy_run(float *dst, size_t dstep, const float *src, size_t sstep, size_t n,
                     size_t count) {
    switch (n) {
#define COPY_N(k)                                                                                  \
    case k:                                                                                        \
        for (size_t i = 0; i < count; i++)                                                         \
            memcpy(dst + i * dstep, src + i * sstep, k * sizeof(float));                           \
        return;
        COPY_N(1)
        COPY_N(2)
        COPY_N(3)
        COPY_N(4)
        COPY_N(5)
        COPY_N(6)
        COPY_N(7)
        COPY_N(8)
#undef COPY_N
    default:
        for (size_t i = 0; i < count; i++)
            memcpy(dst + i * dstep, src + i * sstep, n * sizeof(float));
    }
}

/* The rows [p][q] of one image's (and group's) im2col matrix: p an output pixel, q = (c, ki, kj) in
 * W's order, zero where the window hits padding. Loops run per (output row, channel, kernel row)
 * over the output columns, so one window row is one small fixed-size copy where it lies inside
 * the image (dilation 1 across) and the index arithmetic is hoisted out of the copies. */
static void im2col(const crl_nn_attrs *a, const float *xg, size_t cg, size_t h, size_t w, size_t oh,
                   size_t ow, size_t kin, float *col) {
    size_t kh = a->kernel[0], kw = a->kernel[1], sw = a->strides[1], pl = a->pads[1];
    /* The output columns whose window row lies inside [0, w): ox_lo <= ox < ox_hi. */
    size_t ox_lo = 0, ox_hi = 0;
    if (a->dilations[1] == 1 && kw <= w + pl) {
        while (ox_lo < ow && ox_lo * sw < pl)
            ox_lo++;
        ox_hi = ox_lo;
        while (ox_hi < ow && ox_hi * sw - pl + kw <= w)
            ox_hi++;
    }
    for (size_t oy = 0; oy < oh; oy++) {
        /* The next output row's window rows, fetched while this one is copied: a batch's images
         * come from memory (the input of a large batch is far larger than the caches), and these
         * reads, a few rows of every channel, defeat the hardware's stream prefetch (measured:
         * most of im2col's time at batch 256 was spent waiting for them). */
        for (size_t c = 0; oy + 1 < oh && c < cg; c++)
            for (size_t ki = 0; ki < kh; ki++) {
                size_t iy = (oy + 1) * a->strides[0] + ki * a->dilations[0] - a->pads[0];
                for (size_t b = 0; iy < h && b < w * sizeof(float); b += 64)
                    __builtin_prefetch((const char *)(xg + (c * h + iy) * w) + b, 0, 2);
            }
        for (size_t c = 0; c < cg; c++)
            for (size_t ki = 0; ki < kh; ki++) {
                /* iy = oy*s - pad + ki*dil, as unsigned arithmetic: out of range (negative
                 * wraps) is >= h. */
                size_t iy = oy * a->strides[0] + ki * a->dilations[0] - a->pads[0];
                float *dst = col + oy * ow * kin + (c * kh + ki) * kw;
                if (iy >= h) {
                    for (size_t ox = 0; ox < ow; ox++)
                        memset(dst + ox * kin, 0, kw * sizeof(float));
                    continue;
                }
                const float *src = xg + (c * h + iy) * w;
                for (size_t ox = 0; ox < ow; ox++) {
                    if (ox == ox_lo && ox_lo < ox_hi) { /* the inside run */
                        copy_run(dst + ox * kin, kin, src + ox * sw - pl, sw, kw, ox_hi - ox_lo);
                        ox = ox_hi - 1;
                        continue;
                    }
                    /* ix = ox*s - pad + kj*dil, unsigned as iy */
                    for (size_t kj = 0; kj < kw; kj++) {
                        size_t ix = ox * sw + kj * a->dilations[1] - pl;
                        dst[ox * kin + kj] = ix < w ? src[ix] : 0.0f;
                    }
                }
            }
    }
}

/* im2col from an image in [h][w][c] memory (a convolution's NHWC output, plan_nhwc): the rows
 * col[p][q] with q = (ki, kj, c), zero where the window hits padding. Inside the image, a window
 * row's kw pixels are adjacent, so with dilation 1 across it is one copy of kw * c floats, where
 * the NCHW im2col copies kw floats per channel. */
static void im2col_nhwc(const crl_nn_attrs *a, const float *x, size_t c, size_t h, size_t w,
                        size_t oh, size_t ow, size_t kin, float *col) {
    size_t kh = a->kernel[0], kw = a->kernel[1], sw = a->strides[1], pl = a->pads[1];
    size_t dw = a->dilations[1];
    for (size_t oy = 0; oy < oh; oy++)
        for (size_t ki = 0; ki < kh; ki++) {
            size_t iy = oy * a->strides[0] + ki * a->dilations[0] - a->pads[0]; /* as im2col */
            for (size_t ox = 0; ox < ow; ox++) {
                float *dst = col + (oy * ow + ox) * kin + ki * kw * c;
                size_t ix0 = ox * sw - pl;
                if (iy >= h) {
                    memset(dst, 0, kw * c * sizeof(float));
                } else if (dw == 1 && ix0 < w && ix0 + kw <= w) {
                    memcpy(dst, x + (iy * w + ix0) * c, kw * c * sizeof(float));
                } else {
                    for (size_t kj = 0; kj < kw; kj++) {
                        size_t ix = ox * sw + kj * dw - pl;
                        if (ix < w)
                            memcpy(dst + kj * c, x + (iy * w + ix) * c, c * sizeof(float));
                        else
                            memset(dst + kj * c, 0, c * sizeof(float));
                    }
                }
            }
        }
}

/* The [pixel][filter] GEMM result yt of one image and group into NCHW yg, in tiles of 16 pixels:
 * each filter's 16 outputs are one contiguous store, and the tile's rows of yt stay in L1 while
 * every filter reads them. */
static void pixels_to_nchw(const float *yt, size_t np, size_t mg, float *yg) {
    for (size_t p0 = 0; p0 < np; p0 += 16) {
        size_t pn = np - p0 < 16 ? np - p0 : 16;
        for (size_t m = 0; m < mg; m++)
            for (size_t p = 0; p < pn; p++)
                yg[m * np + p0 + p] = yt[(p0 + p) * mg + m];
    }
}

/* One image (group) into the zero-padded copy pad, [c][hp][wp] (NCHW) or [hp][wp][c] (NHWC). */
static void pad_image(const crl_nn_attrs *a, const float *x, size_t c, size_t h, size_t w, int nhwc,
                      float *pad) {
    size_t hp = h + a->pads[0] + a->pads[2], wp = w + a->pads[1] + a->pads[3];
    size_t planes = nhwc ? 1 : c, px = nhwc ? c : 1; /* planes of [hp][wp] pixels of px floats */
    memset(pad, 0, planes * hp * wp * px * sizeof(float));
    for (size_t pl = 0; pl < planes; pl++)
        for (size_t iy = 0; iy < h; iy++)
            memcpy(pad + ((pl * hp + iy + a->pads[0]) * wp + a->pads[1]) * px,
                   x + (pl * h + iy) * w * px, w * px * sizeof(float));
}

/* Convolution as one GEMM per image and group, the pixels its rows and the group's filters its W,
 * packed at load like a LINEAR's (in bf16 for precision BF16), so the pixels get the GEMM's
 * register blocking and the bias (and a fused ReLU) its epilogue. Row p is pixel p's window, with
 * q = (c, ki, kj) in W's order ((ki, kj, c) for an NHWC input), zero where it hits padding. Where
 * the table has linear_packed_gather and W is packed in f32, the GEMM reads each window in the
 * image itself (an implicit GEMM: row p's origin and the offsets n->goff, into a zero-padded copy
 * when the CONV pads), the same values in the same order, so the same bits; otherwise im2col
 * writes the rows out first. The [pixel][filter] result is then transposed into NCHW, unless the
 * output stays NHWC (plan_nhwc). */
static void run_conv(const crl_kernels_t *k, int packed, const nn_node *n, const size_t *d,
                     const size_t *od, const float *x, float *col, float *y) {
    const crl_nn_attrs *a = &n->a;
    size_t grp = a->group, cg = d[1] / grp, mg = n->k_out / grp, kin = n->k_in;
    size_t h = d[2], w = d[3], oh = od[2], ow = od[3], np = oh * ow;
    int gather = packed && n->wp && n->goff && k->linear_packed_gather;
    float *pad = NULL, *gt = NULL;
    size_t hp = h, wp = w, sh = a->strides[0], sw = a->strides[1];
    int padded = gather && conv_padded(n, &hp, &wp);
    if (gather) gather_scratch(n, &pad, &gt, col);
    for (size_t b = 0; b < d[0]; b++)
        for (size_t gi = 0; gi < grp; gi++) {
            const float *xg = x + (b * d[1] + gi * cg) * h * w;
            float *yg = y + (b * n->k_out + gi * mg) * np, *yt = n->out_nhwc ? yg : gt;
            const float *bg = n->b ? n->b + gi * mg : NULL;
            if (gather) {
                const float *src = xg, **xr = (const float **)(void *)col;
                if (padded) {
                    pad_image(a, xg, cg, h, w, n->in_nhwc, pad);
                    src = pad;
                }
                size_t px = n->in_nhwc ? cg : 1; /* floats per pixel */
                for (size_t oy = 0; oy < oh; oy++)
                    for (size_t ox = 0; ox < ow; ox++)
                        xr[oy * ow + ox] = src + (oy * sh * wp + ox * sw) * px;
                k->linear_packed_gather(xr, np, n->goff, kin, n->wp + gi * (n->wp_n / grp), bg, mg,
                                        yt, n->relu);
            } else {
                if (n->in_nhwc) /* group 1 */
                    im2col_nhwc(a, xg, cg, h, w, oh, ow, kin, col);
                else
                    im2col(a, xg, cg, h, w, oh, ow, kin, col);
                if (!n->out_nhwc) yt = col + lines(np * kin);
                const float *wpk = packed && n->wp ? n->wp + gi * (n->wp_n / grp) : NULL;
                const uint16_t *wh = packed && n->wh ? n->wh + gi * (n->wh_n / grp) : NULL;
                run_linear(k, wpk, wh, n->w + gi * mg * kin, col, np, kin, bg, mg, yt, n->relu);
            }
            if (!n->out_nhwc) pixels_to_nchw(yt, np, mg, yg);
        }
    if (n->post == CRL_NN_TANH) k->tanh(y, d[0] * n->k_out * np);
    if (n->post == CRL_NN_SIGMOID) k->sigmoid(y, d[0] * n->k_out * np);
}

static void run_pool(const nn_node *n, const size_t *d, const size_t *od, const float *x,
                     float *y) {
    const crl_nn_attrs *a = &n->a;
    size_t h = d[2], w = d[3], oh = od[2], ow = od[3];
    int is_max = n->op == CRL_NN_MAXPOOL;
    for (size_t pl = 0; pl < d[0] * d[1]; pl++) {
        const float *xp = x + pl * h * w;
        for (size_t oy = 0; oy < oh; oy++)
            for (size_t ox = 0; ox < ow; ox++) {
                float mx = -INFINITY;
                double sum = 0;
                size_t cnt = 0, cnt_pad = 0;
                for (size_t ki = 0; ki < a->kernel[0]; ki++) {
                    size_t py = oy * a->strides[0] + ki * a->dilations[0]; /* padded coords */
                    if (py >= h + a->pads[0] + a->pads[2]) continue;
                    for (size_t kj = 0; kj < a->kernel[1]; kj++) {
                        size_t px = ox * a->strides[1] + kj * a->dilations[1];
                        if (px >= w + a->pads[1] + a->pads[3]) continue;
                        cnt_pad++;
                        size_t iy = py - a->pads[0], ix = px - a->pads[1];
                        if (iy >= h || ix >= w) continue;
                        float v = xp[iy * w + ix];
                        if (v > mx || isnan(v)) mx = v;
                        sum += v;
                        cnt++;
                    }
                }
                size_t div = a->count_include_pad ? cnt_pad : cnt;
                y[(pl * oh + oy) * ow + ox] =
                    is_max ? mx : (div ? (float)(sum / (double)div) : 0.0f);
            }
    }
}

/* The nodes of a plain MLP, run without exec_node's shape work (at batch 1 that work costs as
 * much as the kernels). Returns 0 for the other ops. */
static int exec_fast(const crl_kernels_t *k, int packed, const nn_node *n, size_t rows,
                     const float *x, float *y) {
    size_t len = n->ish[0].batched ? rows * n->xrow : n->xrow;
    switch (n->op) {
    case CRL_NN_LINEAR: {
        size_t m = n->ish[0].batched ? rows * n->mrow : n->mrow;
        run_linear(k, packed ? n->wp : NULL, packed ? n->wh : NULL, n->w, x, m, n->k_in, n->b,
                   n->k_out, y, n->relu);
        /* The activation node's own kernel call on the same memory, without its dispatch. */
        if (n->post == CRL_NN_TANH) k->tanh(y, m * n->k_out);
        if (n->post == CRL_NN_SIGMOID) k->sigmoid(y, m * n->k_out);
        return 1;
    }
    case CRL_NN_RELU:
        if (y != x) memcpy(y, x, len * sizeof(float));
        k->relu(y, len);
        return 1;
    case CRL_NN_TANH:
        if (y != x) memcpy(y, x, len * sizeof(float));
        k->tanh(y, len);
        return 1;
    case CRL_NN_SIGMOID:
        if (y != x) memcpy(y, x, len * sizeof(float));
        k->sigmoid(y, len);
        return 1;
    default:
        return 0;
    }
}

/* Runs one node with concrete batch `rows` (ignored when nothing is batched). `scratch` holds
 * node_scratch(n) floats. */
static void exec_node(const crl_kernels_t *k, int packed, const nn_node *n, size_t rows,
                      const float *const *in, float *y, float *scratch) {
    size_t d[CRL_NN_MAX_RANK], od[CRL_NN_MAX_RANK];
    size_t r = n->ish[0].rank;
    concrete(&n->ish[0], rows, d);
    concrete(&n->osh, rows, od);
    size_t len = prod(d, 0, r), ax = (size_t)n->a.axis;
    const float *x = in[0];
    switch (n->op) {
    case CRL_NN_LINEAR:
        exec_fast(k, packed, n, rows, x, y);
        return;
    case CRL_NN_RELU:
    case CRL_NN_TANH:
    case CRL_NN_SIGMOID:
    case CRL_NN_CLIP:
    case CRL_NN_SCALE:
    case CRL_NN_ADD_ROW:
    case CRL_NN_COPY:
    case CRL_NN_RESHAPE:
        if (y != x) memcpy(y, x, len * sizeof(float));
        if (n->op == CRL_NN_RELU) k->relu(y, len);
        if (n->op == CRL_NN_TANH) k->tanh(y, len);
        if (n->op == CRL_NN_SIGMOID) k->sigmoid(y, len);
        if (n->op == CRL_NN_CLIP) k->clip(y, len, n->a.lo, n->a.hi);
        if (n->op == CRL_NN_SCALE) k->scale(y, len, n->a.alpha);
        if (n->op == CRL_NN_ADD_ROW) k->add_row(y, len / n->p_n, n->p_n, n->p);
        return;
    case CRL_NN_EXP:
    case CRL_NN_ERF:
    case CRL_NN_LEAKY_RELU:
    case CRL_NN_ELU:
    case CRL_NN_SELU:
    case CRL_NN_SOFTPLUS:
    case CRL_NN_LOG:
    case CRL_NN_SQRT: {
        /* exp and erf through the table's vector functions when it has them, else libm. */
        void (*vec)(float *, size_t) = n->op == CRL_NN_EXP   ? k->exp
                                       : n->op == CRL_NN_ERF ? k->erf
                                                             : NULL;
        if (vec) {
            if (y != x) memcpy(y, x, len * sizeof(float));
            vec(y, len);
            return;
        }
        for (size_t i = 0; i < len; i++)
            y[i] = unop(n, x[i]);
        return;
    }
    case CRL_NN_GELU:
        run_gelu(k, n->a.alpha, x, y, len);
        return;
    case CRL_NN_ADD:
    case CRL_NN_SUB:
    case CRL_NN_MUL:
    case CRL_NN_DIV:
    case CRL_NN_POW: {
        size_t d1[CRL_NN_MAX_RANK];
        concrete(&n->ish[1], rows, d1);
        run_bcast(n->op, x, d, r, in[1], d1, n->ish[1].rank, y, od, n->osh.rank);
        return;
    }
    case CRL_NN_EXPAND:
        run_bcast(n->op, x, d, r, NULL, NULL, 0, y, od, n->osh.rank);
        return;
    case CRL_NN_SOFTMAX:
    case CRL_NN_LOG_SOFTMAX: {
        size_t outer = prod(d, 0, ax), cnt = n->a.flat2d ? prod(d, ax, r) : d[ax];
        size_t inner = n->a.flat2d ? 1 : prod(d, ax + 1, r);
        run_softmax(n->op == CRL_NN_LOG_SOFTMAX, x, y, outer, cnt, inner);
        return;
    }
    case CRL_NN_ARGMAX: {
        size_t outer = prod(d, 0, ax), cnt = d[ax], inner = prod(d, ax + 1, r);
        for (size_t o = 0; o < outer; o++)
            for (size_t i = 0; i < inner; i++) {
                const float *xs = x + o * cnt * inner + i;
                size_t best = 0;
                for (size_t j = 1; j < cnt; j++)
                    if (xs[j * inner] > xs[best * inner] ||
                        (n->a.select_last && xs[j * inner] == xs[best * inner]))
                        best = j;
                y[o * inner + i] = (float)best;
            }
        return;
    }
    case CRL_NN_CONCAT: {
        size_t outer = prod(od, 0, ax), pos = 0;
        size_t inner = prod(od, ax + 1, n->osh.rank), orow = od[ax] * inner;
        for (size_t k2 = 0; k2 < n->n_in; k2++) {
            size_t chunk = n->ish[k2].d[ax] * inner;
            for (size_t o = 0; o < outer; o++)
                memcpy(y + o * orow + pos, in[k2] + o * chunk, chunk * sizeof(float));
            pos += chunk;
        }
        return;
    }
    case CRL_NN_BATCHNORM: {
        size_t c = d[1], inner = prod(d, 2, r);
        const float *sc = n->p, *sh = n->p + c;
        for (size_t o = 0; o < d[0]; o++)
            for (size_t ch = 0; ch < c; ch++) {
                size_t base = (o * c + ch) * inner;
                for (size_t i = 0; i < inner; i++)
                    y[base + i] = x[base + i] * sc[ch] + sh[ch];
            }
        return;
    }
    case CRL_NN_LAYERNORM: {
        size_t outer = prod(d, 0, ax), m = prod(d, ax, r);
        const float *gam = n->p, *bet = n->p + m;
        if (k->layernorm) {
            k->layernorm(x, outer, m, gam, bet, n->a.eps, y);
            return;
        }
        for (size_t o = 0; o < outer; o++) {
            const float *xs = x + o * m;
            float *ys = y + o * m;
            double mean = sum4(xs, m, 0.0, 0) / (double)m;
            double var = sum4(xs, m, mean, 1) / (double)m;
            /* Statistics in double, the normalization in float (as torch computes it): one
             * vectorizable multiply-add per element. */
            float mf = (float)mean, inv = (float)(1.0 / sqrt(var + (double)n->a.eps));
            for (size_t i = 0; i < m; i++)
                ys[i] = (xs[i] - mf) * inv * gam[i] + bet[i];
        }
        return;
    }
    case CRL_NN_REDUCE_MEAN:
        run_reduce_mean(n, x, d, r, y);
        return;
    case CRL_NN_CONV:
        run_conv(k, packed, n, d, od, x, scratch, y);
        return;
    case CRL_NN_MAXPOOL:
    case CRL_NN_AVGPOOL:
        run_pool(n, d, od, x, y);
        return;
    case CRL_NN_GLOBAL_AVGPOOL: {
        size_t hw = d[2] * d[3];
        for (size_t pl = 0; pl < d[0] * d[1]; pl++) {
            double sum = 0;
            for (size_t i = 0; i < hw; i++)
                sum += x[pl * hw + i];
            y[pl] = (float)(sum / (double)hw);
        }
        return;
    }
    case CRL_NN_SLICE:
        crl_nn__run_slice(&n->a, x, d, r, od, y);
        return;
    case CRL_NN_TRANSPOSE:
        crl_nn__run_transpose(&n->a, x, d, r, y);
        return;
    case CRL_NN_GATHER:
        crl_nn__run_gather(&n->a, n->ix, n->n_ix, x, d, r, y);
        return;
    case CRL_NN_OP_COUNT:
        return;
    }
}

/* ---- finishing passes ---------------------------------------------------------------------- */

static void compact(crl_nn_graph_t *g) {
    size_t k = 0;
    for (size_t i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i].dead) {
            node_free(&g->nodes[i]);
            continue;
        }
        if (k != i) g->nodes[k] = g->nodes[i];
        k++;
    }
    g->n_nodes = k;
}

/* uses[v]: how many node inputs read v, plus one for the graph output. */
static void count_uses(const crl_nn_graph_t *g, size_t *uses) {
    memset(uses, 0, g->n_vals * sizeof(*uses));
    for (size_t i = 0; i < g->n_nodes; i++)
        for (size_t j = 0; j < g->nodes[i].n_in; j++)
            uses[g->nodes[i].in[j]]++;
    uses[g->output]++;
}

/* Any node whose inputs are all constants is run once now, by the executor itself, and its
 * output becomes a constant. */
static crl_status fold_constants(crl_nn_graph_t *g, crl_err *err) {
    const crl_kernels_t *k = crl_kernels();
    for (size_t i = 0; i < g->n_nodes; i++) {
        nn_node *n = &g->nodes[i];
        int all = 1;
        const float *in[CRL_NN_MAX_INPUTS];
        for (size_t j = 0; j < n->n_in; j++) {
            all &= g->vals[n->in[j]].is_const;
            in[j] = g->vals[n->in[j]].data;
        }
        nn_value *v = &g->vals[n->out];
        if (!all || v->s.batched) continue; /* an EXPAND of a constant to the batch stays */
        if (v->row > NN_MAX_WEIGHTS - g->n_weights)
            return crl_err_set(err, CRL_ENOMEM, "folded constants exceed the limit of %zu floats",
                               NN_MAX_WEIGHTS);
        float *data = alloc_floats(v->row);
        float *scratch = alloc_floats(node_scratch(n));
        if (data == NULL || scratch == NULL) {
            free(data);
            free(scratch);
            return crl_err_set(err, CRL_ENOMEM, "out of memory folding constants");
        }
        exec_node(k, 0, n, 1, in, data, scratch);
        free(scratch);
        v->data = data;
        v->is_const = 1;
        g->n_weights += v->row;
        n->dead = 1;
    }
    compact(g);
    return CRL_OK;
}

static void replace_uses(crl_nn_graph_t *g, size_t from, size_t to) {
    for (size_t i = 0; i < g->n_nodes; i++)
        for (size_t j = 0; j < g->nodes[i].n_in; j++)
            if (g->nodes[i].in[j] == from) g->nodes[i].in[j] = to;
}

/* A Reshape (Flatten, Squeeze, ...) only renames row-major data: its readers read its input
 * instead (each node kept the shapes it was built with). The one that makes the output stays. */
static void elide_reshapes(crl_nn_graph_t *g) {
    for (size_t i = 0; i < g->n_nodes; i++) {
        nn_node *n = &g->nodes[i];
        if (n->op != CRL_NN_RESHAPE || n->out == g->output) continue;
        replace_uses(g, n->out, n->in[0]);
        n->dead = 1;
    }
    compact(g);
}

/* Drops nodes whose output nobody reads, then the constants nobody reads. */
static crl_status remove_dead(crl_nn_graph_t *g, crl_err *err) {
    size_t *uses = calloc(g->n_vals, sizeof(*uses));
    if (uses == NULL) return crl_err_set(err, CRL_ENOMEM, "out of memory");
    count_uses(g, uses);
    for (size_t i = g->n_nodes; i-- > 0;) {
        nn_node *n = &g->nodes[i];
        if (uses[n->out] != 0) continue;
        n->dead = 1;
        for (size_t j = 0; j < n->n_in; j++)
            uses[n->in[j]]--;
    }
    compact(g);
    for (size_t v = 0; v < g->n_vals; v++)
        if (uses[v] == 0 && g->vals[v].data) {
            g->n_weights -= g->vals[v].row;
            free(g->vals[v].data);
            g->vals[v].data = NULL;
        }
    free(uses);
    return CRL_OK;
}

/* The one node reading v (and v not the graph's output), or NULL. */
static nn_node *sole_reader(crl_nn_graph_t *g, const size_t *uses, size_t v) {
    if (uses[v] != 1 || v == g->output) return NULL;
    for (size_t i = 0; i < g->n_nodes; i++)
        for (size_t j = 0; j < g->nodes[i].n_in; j++)
            if (g->nodes[i].in[j] == v) return &g->nodes[i];
    return NULL;
}

/* A constant of one element equal to `want` (want NaN: any value, returned in *got). */
static int scalar_const(const crl_nn_graph_t *g, size_t v, float want, float *got) {
    const nn_value *c = &g->vals[v];
    if (!c->is_const || c->row != 1 || c->data == NULL) return 0;
    if (got) *got = c->data[0];
    return isnan(want) || c->data[0] == want;
}

/* The other input of a two-input node n, given one of them. */
static size_t other_input(const nn_node *n, size_t one) {
    return n->in[0] == one ? n->in[1] : n->in[0];
}

/* torch exports GELU (erf form) as y = x * 0.5 * (1 + erf(x / sqrt(2))): Div(x, c), Erf,
 * Add(1), Mul(x), Mul(0.5). When every intermediate has that one reader and nothing broadcasts,
 * the chain becomes one GELU node (run_gelu: the same float operations, so the same bits, in one
 * pass instead of five). */
static crl_status fuse_gelu(crl_nn_graph_t *g, crl_err *err) {
    size_t *uses = calloc(g->n_vals, sizeof(*uses));
    if (uses == NULL) return crl_err_set(err, CRL_ENOMEM, "out of memory");
    count_uses(g, uses);
    for (size_t i = 0; i < g->n_nodes; i++) {
        nn_node *d = &g->nodes[i];
        float c = 0;
        if (d->dead || d->op != CRL_NN_DIV || d->n_in != 2 || !scalar_const(g, d->in[1], NAN, &c))
            continue;
        size_t x = d->in[0];
        const nn_value *vx = &g->vals[x];
        if (vx->is_const || g->vals[d->out].row != vx->row) continue;
        nn_node *e = sole_reader(g, uses, d->out), *a = NULL, *m = NULL, *h = NULL;
        if (e == NULL || e->op != CRL_NN_ERF) continue;
        a = sole_reader(g, uses, e->out);
        if (a == NULL || a->op != CRL_NN_ADD || a->n_in != 2 ||
            !scalar_const(g, other_input(a, e->out), 1.0f, NULL))
            continue;
        m = sole_reader(g, uses, a->out);
        if (m == NULL || m->op != CRL_NN_MUL || m->n_in != 2 || other_input(m, a->out) != x)
            continue;
        h = sole_reader(g, uses, m->out);
        if (h == NULL || h->op != CRL_NN_MUL || h->n_in != 2 ||
            !scalar_const(g, other_input(h, m->out), 0.5f, NULL) ||
            g->vals[h->out].row != vx->row || g->vals[a->out].row != vx->row ||
            g->vals[m->out].row != vx->row)
            continue;
        h->op = CRL_NN_GELU;
        h->in[0] = x;
        h->n_in = 1;
        h->ish[0] = d->ish[0];
        h->a.alpha = c;
        d->dead = e->dead = a->dead = m->dead = 1;
    }
    free(uses);
    compact(g);
    return CRL_OK;
}

/* BATCHNORM (channel axis 1) right after a 2-D LINEAR whose output nothing else reads:
 * W' = W * s[:, None], b' = b * s + t. Then ADD / ADD_ROW of a constant row (or scalar) after
 * such a LINEAR becomes part of its bias. This changes (dot + b) + c into dot + (b + c): an ulp
 * or so. SCALE is not folded: alpha * (dot + b) and dot(alpha * w) + alpha * b round differently
 * enough that we keep it. A ReLU is fused later (plan_in_place), bit for bit. */
static crl_status fold_into_linear(crl_nn_graph_t *g, crl_err *err) {
    size_t *uses = calloc(g->n_vals, sizeof(*uses)), *prod_of = malloc(g->n_vals * sizeof(size_t));
    if (uses == NULL || prod_of == NULL) {
        free(uses);
        free(prod_of);
        return crl_err_set(err, CRL_ENOMEM, "out of memory");
    }
    count_uses(g, uses);
    for (size_t v = 0; v < g->n_vals; v++)
        prod_of[v] = NN_NONE;
    for (size_t i = 0; i < g->n_nodes; i++) {
        nn_node *n = &g->nodes[i];
        prod_of[n->out] = i;
        size_t src = NN_NONE, c = NN_NONE;
        if (n->op == CRL_NN_BATCHNORM || n->op == CRL_NN_ADD_ROW) {
            src = n->in[0];
        } else if (n->op == CRL_NN_ADD) {
            int c0 = g->vals[n->in[0]].is_const, c1 = g->vals[n->in[1]].is_const;
            if (c0 == c1) continue;
            src = c0 ? n->in[1] : n->in[0];
            c = c0 ? n->in[0] : n->in[1];
        } else {
            continue;
        }
        if (prod_of[src] == NN_NONE || uses[src] != 1 || src == g->output) continue;
        nn_node *lin = &g->nodes[prod_of[src]];
        /* A CONV takes a following BATCHNORM (its channels are W's rows), nothing else. */
        int conv_bn = lin->op == CRL_NN_CONV && n->op == CRL_NN_BATCHNORM;
        if ((lin->op != CRL_NN_LINEAR && !conv_bn) || lin->dead) continue;
        size_t o = lin->k_out;
        const float *row = NULL, *scale = NULL;
        size_t step = 1;
        if (n->op == CRL_NN_BATCHNORM) {
            if (lin->osh.rank != 2 && !conv_bn) continue;
            scale = n->p;
            row = n->p + o;
        } else if (n->op == CRL_NN_ADD_ROW) {
            row = n->p;
        } else {
            const nn_value *cv = &g->vals[c];
            /* Only a row that leaves the shape alone: [o], [1, o], a scalar... */
            int ok = cv->s.rank <= lin->osh.rank && (cv->row == 1 || cv->row == o);
            for (size_t j = 0; ok && j + 1 < cv->s.rank; j++)
                ok = cv->s.d[j] == 1;
            if (!ok || cv->data == NULL) continue;
            row = cv->data;
            step = cv->row == 1 ? 0 : 1;
        }
        if (lin->b == NULL) {
            lin->b = alloc_floats(o);
            if (lin->b == NULL) {
                free(uses);
                free(prod_of);
                return crl_err_set(err, CRL_ENOMEM, "out of memory");
            }
            memset(lin->b, 0, o * sizeof(float));
        }
        for (size_t j = 0; j < o; j++) {
            if (scale) {
                for (size_t q = 0; q < lin->k_in; q++)
                    lin->w[j * lin->k_in + q] *= scale[j];
                lin->b[j] = lin->b[j] * scale[j] + row[j];
            } else {
                lin->b[j] += row[j * step];
            }
        }
        if (c != NN_NONE) uses[c]--;
        lin->out = n->out;
        lin->osh = n->osh;
        prod_of[n->out] = prod_of[src];
        n->dead = 1;
    }
    free(uses);
    free(prod_of);
    compact(g);
    return CRL_OK;
}

/* Room for one more node at position pos (the nodes from pos on move up by one); the new node is
 * zeroed. For passes on a finished graph, before the plan's per-node arrays exist. */
static crl_status insert_node(crl_nn_graph_t *g, size_t pos, nn_node **node, crl_err *err) {
    if (g->n_nodes >= NN_MAX_OPS)
        return crl_err_set(err, CRL_ENOMEM, "graph has too many operations (limit %d)", NN_MAX_OPS);
    if (g->n_nodes == g->cap_nodes) {
        size_t cap = g->cap_nodes * 2;
        nn_node *ops = realloc(g->nodes, cap * sizeof(*ops));
        if (ops == NULL) return crl_err_set(err, CRL_ENOMEM, "out of memory growing the graph");
        g->nodes = ops;
        g->cap_nodes = cap;
    }
    memmove(&g->nodes[pos + 1], &g->nodes[pos], (g->n_nodes - pos) * sizeof(*g->nodes));
    g->n_nodes++;
    *node = &g->nodes[pos];
    memset(*node, 0, sizeof(**node));
    return CRL_OK;
}

/* Whether two shapes are the same (rank, batch axis and dimensions; a memcmp would also compare
 * the struct's padding and the unused dimensions). */
static int same_shape(const crl_nn_shape *a, const crl_nn_shape *b) {
    if (a->rank != b->rank || a->batched != b->batched) return 0;
    for (size_t i = 0; i < a->rank; i++)
        if (a->d[i] != b->d[i]) return 0;
    return 1;
}

/* n becomes a SLICE of value v (shape vs) along its last axis, columns [c0, c1), writing `out`. */
static crl_status make_column_slice(nn_node *n, size_t v, const crl_nn_shape *vs, size_t c0,
                                    size_t c1, size_t out, crl_err *err) {
    crl_nn_shape want = *vs;
    want.d[vs->rank - 1] = c1 - c0;
    n->op = CRL_NN_SLICE;
    n->n_in = 1;
    n->in[0] = v;
    n->ish[0] = *vs;
    n->out = out;
    crl_nn_attrs_init(&n->a);
    n->a.n_axes = 1;
    n->a.axes[0] = (int64_t)vs->rank - 1;
    n->a.starts[0] = (int64_t)c0;
    n->a.ends[0] = (int64_t)c1;
    n->a.steps[0] = 1;
    crl_status st = crl_nn__infer_slice(vs, &n->a, &n->osh, err);
    if (st == CRL_OK && !same_shape(&n->osh, &want))
        st = crl_err_set(err, CRL_EINVAL, "merging heads: the slice's shape is not the head's");
    return st;
}

/* Narrow sibling heads: two LINEARs reading the same value (the value and advantage heads of a
 * dueling DQN, the mean and log-std heads of a SAC or PPO actor), both with a bias or both
 * without, whose outputs together are still a narrow layer for the kernel table k (one it does
 * not pack: kernels.h, a row of separate dot products), become one LINEAR with W's rows and the
 * biases stacked, and two SLICEs give each head its columns back. Every output is the same dot
 * product as before, so the same bits; the gain is that the input is read once: the avx512 table
 * transposes each block of 16 rows once for both heads instead of once per head (dueling_dqn and
 * sac_squashed spent 6-9 % of a 64-row forward pass there). Tables without packing (generic)
 * gain nothing and are left alone. */
static crl_status merge_heads(crl_nn_graph_t *g, const crl_kernels_t *k, crl_err *err) {
    if (k->pack_size == NULL) return CRL_OK;
    for (size_t i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i].op != CRL_NN_LINEAR) continue;
        for (size_t j = i + 1; j < g->n_nodes; j++) {
            nn_node *a = &g->nodes[i], *b = &g->nodes[j];
            if (b->op != CRL_NN_LINEAR || b->in[0] != a->in[0] || b->k_in != a->k_in ||
                (a->b == NULL) != (b->b == NULL) || k->pack_size(a->k_in, a->k_out + b->k_out) ||
                !same_shape(&a->ish[0], &b->ish[0]))
                continue;
            size_t o1 = a->k_out, o = o1 + b->k_out, in = a->k_in;
            float *w = alloc_floats(o * in), *bias = a->b ? alloc_floats(o) : NULL;
            if (w == NULL || (a->b && bias == NULL)) {
                free(bias);
                free(w);
                return crl_err_set(err, CRL_ENOMEM, "out of memory merging heads");
            }
            memcpy(w, a->w, o1 * in * sizeof(float));
            memcpy(w + o1 * in, b->w, (o - o1) * in * sizeof(float));
            if (bias) {
                memcpy(bias, a->b, o1 * sizeof(float));
                memcpy(bias + o1, b->b, (o - o1) * sizeof(float));
            }
            crl_nn_shape ms = a->osh;
            ms.d[ms.rank - 1] = o;
            size_t mv, out_a = a->out, out_b = b->out;
            crl_status st = push_value(g, &ms, &mv, err);
            if (st != CRL_OK) {
                free(w);
                free(bias);
                return st;
            }
            free(a->w);
            free(a->b);
            a->w = w;
            a->b = bias;
            a->k_out = o;
            a->osh = ms;
            a->out = mv;
            free(b->w);
            free(b->b);
            b->w = b->b = NULL;
            b->k_in = b->k_out = 0;
            nn_node *sa = NULL;
            if ((st = make_column_slice(b, mv, &ms, o1, o, out_b, err)) != CRL_OK ||
                (st = insert_node(g, i + 1, &sa, err)) != CRL_OK ||
                (st = make_column_slice(sa, mv, &ms, 0, o1, out_a, err)) != CRL_OK)
                return st;
            break; /* the merged LINEAR takes no third head */
        }
    }
    return CRL_OK;
}

static void free_packed(crl_nn_graph_t *g) {
    for (size_t i = 0; i < g->n_nodes; i++) {
        free(g->nodes[i].wp);
        g->nodes[i].wp = NULL;
        g->nodes[i].wp_n = 0;
        free(g->nodes[i].wh);
        g->nodes[i].wh = NULL;
        g->nodes[i].wh_n = 0;
        free(g->nodes[i].goff);
        g->nodes[i].goff = NULL;
    }
    g->packed_for = NULL;
}

static int has_bf16(const crl_kernels_t *k) {
    return k->pack_bf16_size && k->pack_bf16 && k->linear_packed_bf16 && k->linear_packed_bf16_relu;
}

/* Precision BF16: every LINEAR's W and every CONV's filters (group by group) in bf16. */
static crl_status pack_bf16(crl_nn_graph_t *g, const crl_kernels_t *k, crl_err *err) {
    if (!has_bf16(k))
        return crl_err_set(err, CRL_EUNSUPPORTED,
                           "bfloat16 weights need the avx512 kernels on a CPU with AVX512_BF16 "
                           "(the avx512_bf16 flag of /proc/cpuinfo); the %s kernels chosen here "
                           "have no bfloat16 path",
                           k->name);
    for (size_t i = 0; i < g->n_nodes; i++) {
        nn_node *n = &g->nodes[i];
        if (n->op != CRL_NN_LINEAR && n->op != CRL_NN_CONV) continue;
        size_t grp = n->op == CRL_NN_CONV ? n->a.group : 1, mg = n->k_out / grp;
        size_t per = k->pack_bf16_size(n->k_in, mg), bytes = grp * per * sizeof(uint16_t);
        if (per == 0) continue;
        void *p = NULL;
        if (posix_memalign(&p, NN_ALIGN, (bytes + NN_ALIGN - 1) & ~(size_t)(NN_ALIGN - 1))) {
            free_packed(g);
            return crl_err_set(err, CRL_ENOMEM, "out of memory packing a %zux%zu layer to bfloat16",
                               n->k_out, n->k_in);
        }
        n->wh = p;
        n->wh_n = grp * per;
        for (size_t gi = 0; gi < grp; gi++)
            k->pack_bf16(n->w + gi * mg * n->k_in, n->k_in, mg, n->wh + gi * per);
    }
    g->packed_for = k;
    return CRL_OK;
}

/* n->goff for a CONV (run_conv's implicit GEMM): input q = (c, ki, kj) of any window, (ki, kj, c)
 * for an NHWC input, at this offset from the window's origin in the (padded) image. Left NULL
 * when an image is too large for int32 offsets (run_conv then uses im2col). */
static crl_status conv_offsets(nn_node *n) {
    const crl_nn_attrs *a = &n->a;
    size_t hp, wp, cg = n->ish[0].d[1] / a->group, kh = a->kernel[0], kw = a->kernel[1];
    conv_padded(n, &hp, &wp);
    if (cg * hp * wp > INT32_MAX) return CRL_OK;
    n->goff = malloc(n->k_in * sizeof(int32_t));
    if (n->goff == NULL) return CRL_ENOMEM;
    size_t q = 0;
    for (size_t c = 0; c < cg && !n->in_nhwc; c++)
        for (size_t ki = 0; ki < kh; ki++)
            for (size_t kj = 0; kj < kw; kj++)
                n->goff[q++] =
                    (int32_t)((c * hp + ki * a->dilations[0]) * wp + kj * a->dilations[1]);
    for (size_t ki = 0; ki < kh && n->in_nhwc; ki++)
        for (size_t kj = 0; kj < kw; kj++)
            for (size_t c = 0; c < cg; c++)
                n->goff[q++] =
                    (int32_t)(((ki * a->dilations[0]) * wp + kj * a->dilations[1]) * cg + c);
    return CRL_OK;
}

/* Packs every LINEAR whose shape the table packs (pack_size > 0), and every CONV's filters, one
 * group after another (W_g is [k_out / group][k_in]); the others keep using W. */
static crl_status pack_linears(crl_nn_graph_t *g, const crl_kernels_t *k, crl_err *err) {
    if (g->precision == CRL_NN_PRECISION_BF16) return pack_bf16(g, k, err);
    if (k->pack_size == NULL || k->pack == NULL || k->linear_packed == NULL) return CRL_OK;
    for (size_t i = 0; i < g->n_nodes; i++) {
        nn_node *n = &g->nodes[i];
        if (n->op != CRL_NN_LINEAR && n->op != CRL_NN_CONV) continue;
        size_t grp = n->op == CRL_NN_CONV ? n->a.group : 1, mg = n->k_out / grp;
        size_t np = k->pack_size(n->k_in, mg);
        if (np == 0) continue;
        n->wp = alloc_floats(np * grp);
        if (n->wp == NULL) {
            free_packed(g);
            return crl_err_set(err, CRL_ENOMEM,
                               "out of memory packing a %zux%zu linear layer for the %s kernels",
                               n->k_out, n->k_in, k->name);
        }
        n->wp_n = np * grp;
        for (size_t gi = 0; gi < grp; gi++)
            k->pack(n->w + gi * mg * n->k_in, n->k_in, mg, n->wp + gi * np);
        if (n->op == CRL_NN_CONV && k->linear_packed_gather && conv_offsets(n) != CRL_OK) {
            free_packed(g);
            return crl_err_set(err, CRL_ENOMEM, "out of memory planning a convolution");
        }
    }
    g->packed_for = k;
    return CRL_OK;
}

/* The output must come from a node that writes the caller's y: a graph whose output is its input
 * or a constant gets a final COPY / EXPAND. */
static crl_status ensure_output_node(crl_nn_graph_t *g, crl_err *err) {
    for (size_t i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].out == g->output) return CRL_OK;
    const nn_value *v = &g->vals[g->output];
    crl_nn_attrs a;
    crl_nn_attrs_init(&a);
    if (v->is_const) {
        if (v->s.rank >= CRL_NN_MAX_RANK)
            return crl_err_set(err, CRL_EUNSUPPORTED, "the constant output has too many dims");
        a.shape.rank = v->s.rank + 1;
        a.shape.batched = 1;
        for (size_t i = 0; i < v->s.rank; i++)
            a.shape.d[i + 1] = v->s.d[i];
    }
    size_t out;
    g->finished = 0;
    crl_status st = crl_nn_graph_node(g, v->is_const ? CRL_NN_EXPAND : CRL_NN_COPY, &g->output, 1,
                                      &a, &out, err);
    g->finished = 1;
    if (st == CRL_OK) g->output = out;
    return st;
}

/* Elementwise ops whose executor gives the right result with y == x (each element is read
 * before it is written, and nothing else is read from x). */
static int runs_in_place(crl_nn_op op) {
    return is_unary(op) || op == CRL_NN_ADD_ROW || op == CRL_NN_RESHAPE;
}

/* In-place execution: an elementwise node whose input is a batched value of the same size that no
 * later node reads writes over its input instead of into a new slot (saving the copy and the
 * memory). Such values form chains (alias groups) sharing one memory, named by the chain's first
 * value; the group that ends in the graph's output lives in the caller's y. Never the graph's input
 * (value 0, the caller's x, which is only read) or a constant. */
static crl_status plan_in_place(crl_nn_graph_t *g, crl_err *err) {
    g->alias = malloc(g->n_vals * sizeof(size_t));
    g->outg = malloc(g->n_vals * sizeof(size_t));
    if (g->alias == NULL || g->outg == NULL) return crl_err_set(err, CRL_ENOMEM, "out of memory");
    for (size_t v = 0; v < g->n_vals; v++)
        g->alias[v] = v;
    for (size_t i = 0; i < g->n_nodes; i++) {
        const nn_node *n = &g->nodes[i];
        if (!runs_in_place(n->op) || n->n_in != 1) continue;
        size_t u = n->in[0];
        const nn_value *vu = &g->vals[u], *vo = &g->vals[n->out];
        if (u == 0 || u == g->output || vu->is_const || !vu->s.batched || !vo->s.batched ||
            vu->row != vo->row || g->last[u] != i)
            continue;
        g->alias[n->out] = g->alias[u]; /* u's root: u's own producer ran earlier */
    }
    /* Activation fusion: a RELU running in place over the output of a LINEAR that nothing else
     * reads (so no one sees the value before the ReLU) is done by the LINEAR as it writes (the
     * kernels' ReLU epilogue); a TANH or SIGMOID there is run by the LINEAR's node right after
     * it, with the same kernel. The activation node stays (the graph's node list is what callers
     * see) but is skipped. */
    for (size_t i = 0; i < g->n_nodes; i++) {
        nn_node *n = &g->nodes[i];
        size_t u = n->in[0];
        n->xrow = n->n_in > 0 ? shape_row(&n->ish[0]) : 0;
        n->mrow = n->op == CRL_NN_LINEAR && n->k_in > 0 ? n->xrow / n->k_in : 0;
        if ((n->op != CRL_NN_RELU && n->op != CRL_NN_TANH && n->op != CRL_NN_SIGMOID) ||
            n->n_in != 1 || g->alias[n->out] == n->out || g->first[u] == NN_NONE)
            continue;
        nn_node *p = &g->nodes[g->first[u]];
        size_t readers = 0;
        for (size_t j = 0; j < g->n_nodes; j++)
            for (size_t q = 0; q < g->nodes[j].n_in; q++)
                readers += g->nodes[j].in[q] == u;
        if ((p->op != CRL_NN_LINEAR && p->op != CRL_NN_CONV) || readers != 1) continue;
        if (n->op == CRL_NN_RELU)
            p->relu = 1;
        else
            p->post = (int)n->op;
        n->fused = 1;
    }
    g->n_outg = 0;
    for (size_t v = 0; v < g->n_vals; v++)
        if (g->alias[v] == g->alias[g->output]) g->outg[g->n_outg++] = v;
    return CRL_OK;
}

/* The value a node's output becomes after its fused activations (they run in place, skipped). */
static size_t after_fused(const crl_nn_graph_t *g, size_t v) {
    for (size_t i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].fused && g->nodes[i].in[0] == v) return after_fused(g, g->nodes[i].out);
    return v;
}

/* W [o][c][q] -> [o][q][c] (q: the inner positions), in place through a scratch copy. */
static crl_status permute_cols(float *w, size_t o, size_t c, size_t q, crl_err *err) {
    float *t = alloc_floats(c * q);
    if (t == NULL) return crl_err_set(err, CRL_ENOMEM, "out of memory");
    for (size_t r = 0; r < o; r++) {
        float *wr = w + r * c * q;
        memcpy(t, wr, c * q * sizeof(float));
        for (size_t ci = 0; ci < c; ci++)
            for (size_t qi = 0; qi < q; qi++)
                wr[qi * c + ci] = t[ci * q + qi];
    }
    free(t);
    return CRL_OK;
}

/* NHWC between convolutions. A CONV's GEMM gives [pixel][filter], which is NHWC; NCHW needs a
 * transpose per image, and the next CONV's im2col then copies kw floats per channel and window
 * row. So where a (group 1) CONV's output, after its fused activations, is read only by group 1
 * CONVs (as their data input) and by LINEARs taking the whole image as one row (the exported
 * Flatten, elided), that output stays NHWC: the CONV readers take W's columns in (ki, kj, c) order
 * and copy whole window rows (im2col_nhwc), the LINEAR readers W's columns in (h, w, c) order. The
 * same arithmetic in another order of the sums; the graph's output is never NHWC. */
static crl_status plan_nhwc(crl_nn_graph_t *g, crl_err *err) {
    for (size_t i = 0; i < g->n_nodes; i++) {
        nn_node *p = &g->nodes[i];
        if (p->op != CRL_NN_CONV || p->a.group != 1 || p->osh.rank != 4) continue;
        size_t v = after_fused(g, p->out), c = p->osh.d[1], hw = p->osh.d[2] * p->osh.d[3];
        if (v == g->output) continue;
        int ok = 1, readers = 0;
        for (size_t j = 0; j < g->n_nodes && ok; j++) {
            const nn_node *r = &g->nodes[j];
            if (r->fused) continue;
            for (size_t q = 0; q < r->n_in; q++) {
                if (r->in[q] != v) continue;
                readers++;
                if (r->op == CRL_NN_CONV)
                    ok = ok && q == 0 && r->a.group == 1;
                else if (r->op == CRL_NN_LINEAR)
                    ok = ok && q == 0 && r->k_in == c * hw && r->xrow == r->k_in;
                else
                    ok = 0;
            }
        }
        if (!ok || readers == 0) continue;
        for (size_t j = 0; j < g->n_nodes; j++) {
            nn_node *r = &g->nodes[j];
            if (r->fused || r->n_in == 0 || r->in[0] != v) continue;
            crl_status st = r->op == CRL_NN_CONV ? permute_cols(r->w, r->k_out, c, r->k_in / c, err)
                                                 : permute_cols(r->w, r->k_out, c, hw, err);
            if (st != CRL_OK) return st;
            if (r->op == CRL_NN_CONV) r->in_nhwc = 1;
        }
        p->out_nhwc = 1;
    }
    return CRL_OK;
}

/* Where a tiled run may stop tiling. Row tiles keep a CNN's wide feature maps in cache, but the
 * narrow layers after them would run tile by tile too: the Nature-CNN's 3136 -> 64 linear (800 KB
 * of weights) on two images at a time took 6.7 us per image against 2.5 us on 64 at once. split is
 * the first node after the last one writing a value wider than NN_TAIL_MAX_ROW; the nodes from
 * there on must read exactly one value (one memory, counting in-place aliases) made before it,
 * neither the input nor the output's memory. Otherwise split stays 0 (tile everything). */
static void split_plan(crl_nn_graph_t *g) {
    size_t s = 0, cross = NN_NONE;
    g->split = 0;
    g->cross = NN_NONE;
    for (size_t i = 0; i < g->n_nodes; i++)
        if (g->vals[g->nodes[i].out].row > NN_TAIL_MAX_ROW) s = i + 1;
    while (s < g->n_nodes && g->nodes[s].fused)
        s++;
    if (s == 0 || s >= g->n_nodes) return;
    for (size_t i = s; i < g->n_nodes; i++) {
        const nn_node *n = &g->nodes[i];
        if (n->fused) continue;
        for (size_t q = 0; q < n->n_in; q++) {
            size_t v = n->in[q], p = g->first[g->alias[v]]; /* where its memory is written */
            if (g->vals[v].is_const || (p != NN_NONE && p >= s)) continue;
            if (cross != NN_NONE && g->alias[v] != cross) return;
            cross = g->alias[v];
        }
    }
    if (cross == NN_NONE || cross == 0 || cross == g->alias[g->output] || !g->vals[cross].s.batched)
        return;
    g->split = s;
    g->cross = cross;
}

/* What a workspace's plan depends on, hashed (FNV-1a): graphs with the same key can share
 * workspaces (the server reuses one across versions of the same network shape). */
static uint64_t plan_key(const crl_nn_graph_t *g) {
    uint64_t h = 1469598103934665603ull;
    size_t words[7];
    for (size_t v = 0; v <= g->n_vals; v++) {
        if (v == g->n_vals) {
            words[0] = g->n_vals;
            words[1] = g->output;
            words[2] = g->scratch;
            words[3] = (size_t)g->precision;
            words[4] = g->split;
            words[5] = g->cross;
            words[6] = 0;
        } else {
            words[0] = g->first[v];
            words[1] = g->last[v];
            words[2] = g->vals[v].row;
            words[3] = (size_t)g->vals[v].is_const;
            words[4] = (size_t)g->vals[v].s.batched;
            words[5] = v;
            words[6] = g->alias[v];
        }
        const unsigned char *b = (const unsigned char *)words;
        for (size_t i = 0; i < sizeof(words); i++)
            h = (h ^ b[i]) * 1099511628211ull;
    }
    return h;
}

crl_status crl_nn_graph_finish(crl_nn_graph_t *g, crl_err *err) {
    if (g == NULL) return crl_err_set(err, CRL_EINVAL, "graph is NULL");
    if (g->finished) return CRL_OK;
    if (g->output == NN_NONE) g->output = g->cur;
    g->finished = 1; /* from here on the builder refuses new nodes */
    crl_status st = fold_constants(g, err);
    if (st == CRL_OK) {
        elide_reshapes(g);
        st = remove_dead(g, err);
    }
    if (st == CRL_OK) st = fold_into_linear(g, err);
    if (st == CRL_OK) st = fuse_gelu(g, err);
    if (st == CRL_OK) st = remove_dead(g, err);
    if (st == CRL_OK) st = merge_heads(g, crl_kernels(), err);
    if (st == CRL_OK) st = ensure_output_node(g, err);
    if (st != CRL_OK) goto fail;
    const nn_value *ov = &g->vals[g->output];
    if (!ov->s.batched || ov->row > NN_MAX_WIDTH) {
        st = crl_err_set(err, CRL_EUNSUPPORTED,
                         "the output has %zu values per row; at most %zu are supported", ov->row,
                         NN_MAX_WIDTH);
        goto fail;
    }
    /* Live ranges for the memory plan, and the widest row. */
    g->first = malloc(g->n_vals * sizeof(size_t));
    g->last = malloc(g->n_vals * sizeof(size_t));
    if (g->first == NULL || g->last == NULL) {
        st = crl_err_set(err, CRL_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t v = 0; v < g->n_vals; v++) {
        g->first[v] = g->last[v] = NN_NONE;
        if (g->vals[v].s.batched && g->vals[v].row > g->max_row) g->max_row = g->vals[v].row;
    }
    for (size_t i = 0; i < g->n_nodes; i++) {
        const nn_node *n = &g->nodes[i];
        g->first[n->out] = g->last[n->out] = i;
        if (node_scratch(n) > g->scratch) g->scratch = node_scratch(n);
        for (size_t j = 0; j < n->n_in; j++)
            g->last[n->in[j]] = i;
    }
    st = plan_in_place(g, err);
    if (st == CRL_OK) st = plan_nhwc(g, err);
    if (st == CRL_OK) split_plan(g);
    if (st == CRL_OK) st = pack_linears(g, crl_kernels(), err);
    if (st != CRL_OK) goto fail;
    g->id = plan_key(g);
    return CRL_OK;
fail:
    /* A graph whose passes failed is not runnable: keep it finished (frozen) but unplanned. */
    free(g->first);
    free(g->last);
    free(g->alias);
    free(g->outg);
    g->first = g->last = g->alias = g->outg = NULL;
    return st;
}

size_t crl_nn_graph_input_width(const crl_nn_graph_t *g) {
    return g ? g->vals[0].row : 0;
}
size_t crl_nn_graph_output_width(const crl_nn_graph_t *g) {
    if (g == NULL) return 0;
    return g->vals[g->output == NN_NONE ? g->cur : g->output].row;
}
size_t crl_nn_graph_num_ops(const crl_nn_graph_t *g) {
    return g ? g->n_nodes : 0;
}
size_t crl_nn_graph_num_values(const crl_nn_graph_t *g) {
    return g ? g->n_vals : 0;
}

crl_nn_op crl_nn_graph_op(const crl_nn_graph_t *g, size_t i) {
    /* Out of range has no good answer; SCALE is the closest to a no-op and never crashes. */
    if (g == NULL || i >= g->n_nodes) return CRL_NN_SCALE;
    return g->nodes[i].op;
}

/* ---- workspace and memory plan ------------------------------------------------------------- */

static int runnable(const crl_nn_graph_t *g) {
    return g != NULL && g->finished && g->first != NULL;
}

crl_status crl_nn_graph_set_precision(crl_nn_graph_t *g, crl_nn_precision p, crl_err *err) {
    if (g == NULL || (p != CRL_NN_PRECISION_F32 && p != CRL_NN_PRECISION_BF16))
        return crl_err_set(err, CRL_EINVAL, "bad graph or precision");
    if (!runnable(g)) { /* finish packs */
        g->precision = p;
        return CRL_OK;
    }
    if (p == CRL_NN_PRECISION_BF16 && !has_bf16(crl_kernels()))
        return pack_bf16(g, crl_kernels(), err); /* the error, before anything changes */
    crl_nn_precision old = g->precision;
    g->precision = p;
    free_packed(g);
    crl_status st = pack_linears(g, crl_kernels(), err);
    if (st != CRL_OK) { /* out of memory: back to the old packing, best effort */
        g->precision = old;
        pack_linears(g, crl_kernels(), NULL);
    }
    g->id = plan_key(g);
    return st;
}

crl_nn_precision crl_nn_graph_precision(const crl_nn_graph_t *g) {
    return g ? g->precision : CRL_NN_PRECISION_F32;
}

typedef struct nn_slot {
    size_t v, off, len;
} nn_slot;

static int slot_by_len(const void *a, const void *b) {
    const nn_slot *x = a, *y = b;
    if (x->len != y->len) return x->len < y->len ? 1 : -1;
    return x->v < y->v ? -1 : (x->v > y->v);
}

static int slot_by_off(const void *a, const void *b) {
    const nn_slot *x = a, *y = b;
    return x->off < y->off ? -1 : (x->off > y->off);
}

/* Greedy first fit, largest first: each alias group (plan_in_place) goes at the lowest offset
 * that does not overlap any already placed group whose live range meets its own; a group's range
 * runs from its first value's producer to the last reader of any of its values. */
/* The memory plan of `g` for batches of `rows` rows: off/len per value (off NN_NONE: no slot),
 * *top the floats the values need. */
static crl_status plan(const crl_nn_graph_t *g, size_t rows, size_t *offs, size_t *lens,
                       size_t *top_out) {
    size_t n = 0;
    nn_slot *slots = malloc((g->n_vals + 1) * sizeof(*slots));
    nn_slot *near = malloc((g->n_vals + 1) * sizeof(*near));
    size_t *glast = malloc((g->n_vals + 1) * sizeof(*glast));
    if (slots == NULL || near == NULL || glast == NULL) {
        free(slots);
        free(near);
        free(glast);
        return CRL_ENOMEM;
    }
    for (size_t v = 0; v < g->n_vals; v++)
        glast[v] = g->last[v];
    for (size_t v = 0; v < g->n_vals; v++) /* a group's members follow its root */
        if (g->alias[v] != v && g->last[v] > glast[g->alias[v]]) glast[g->alias[v]] = g->last[v];
    for (size_t v = 0; v < g->n_vals; v++) {
        offs[v] = NN_NONE;
        /* input, constants, the values in y, and non-first members of a group */
        if (g->first[v] == NN_NONE || g->alias[v] == g->alias[g->output] || g->alias[v] != v)
            continue;
        size_t len = rows * g->vals[v].row;
        len = (len + 15) & ~(size_t)15; /* every slot starts on a cache line */
        slots[n++] = (nn_slot){v, 0, len};
    }
    qsort(slots, n, sizeof(*slots), slot_by_len);
    size_t top = 0;
    for (size_t i = 0; i < n; i++) {
        size_t v = slots[i].v, m = 0;
        for (size_t j = 0; j < i; j++) {
            size_t u = slots[j].v;
            if (g->first[u] <= glast[v] && g->first[v] <= glast[u]) near[m++] = slots[j];
        }
        qsort(near, m, sizeof(*near), slot_by_off);
        size_t off = 0;
        for (size_t j = 0; j < m; j++) {
            if (near[j].off >= off + slots[i].len) break;
            if (near[j].off + near[j].len > off) off = near[j].off + near[j].len;
        }
        slots[i].off = off;
        offs[v] = off;
        lens[v] = slots[i].len;
        if (off + slots[i].len > top) top = off + slots[i].len;
    }
    for (size_t v = 0; v < g->n_vals; v++) {
        size_t r = g->alias[v];
        if (r != v && offs[r] != NN_NONE) {
            offs[v] = offs[r];
            lens[v] = lens[r];
        }
    }
    *top_out = top;
    free(slots);
    free(near);
    free(glast);
    return CRL_OK;
}

/* The plans of every batch-size class of ws (the last, max_rows, is the one ws->off keeps), the
 * arena that holds the largest, and each class's pointers. */
static crl_status plan_classes(const crl_nn_graph_t *g, crl_nn_ws_t *ws) {
    size_t nv = g->n_vals, top = 0, top_c = 0;
    for (size_t rows = 1; rows < ws->max_rows; rows *= NN_CLASS_STEP)
        ws->class_rows[ws->n_classes++] = rows;
    ws->class_rows[ws->n_classes++] = ws->max_rows;
    size_t *offs = malloc(ws->n_classes * nv * sizeof(size_t));
    if (offs == NULL) return CRL_ENOMEM;
    crl_status st = CRL_OK;
    for (size_t c = 0; c < ws->n_classes && st == CRL_OK; c++) {
        size_t *oc = c + 1 == ws->n_classes ? ws->off : offs + c * nv;
        st = plan(g, ws->class_rows[c], oc, ws->len, &top_c);
        ws->class_top[c] = top_c;
        if (top_c > top) top = top_c;
    }
    /* Node scratch (im2col) is used only inside one node, after its inputs are read into it and
     * before its output is complete, so it cannot share with any value: it goes after them. */
    ws->arena_n = top + ((g->scratch + 15) & ~(size_t)15);
    ws->scratch_off = top;
    /* A split graph's cross value for all rows (split_plan), after everything else. */
    ws->stage_off = ws->arena_n;
    if (g->split) ws->arena_n += (ws->max_rows * g->vals[g->cross].row + 15) & ~(size_t)15;
    /* An arena of a huge page or more starts and ends on huge-page boundaries, so that
     * optimization.huge_pages (crl_nn_ws_hugepages) can back all of it with 2 MiB pages. */
    size_t align = ws->arena_n * sizeof(float) >= CRL_HW_HUGE_PAGE ? CRL_HW_HUGE_PAGE : NN_ALIGN;
    if (st == CRL_OK && (ws->arena = alloc_floats_aligned(ws->arena_n, align)) == NULL)
        st = CRL_ENOMEM;
    for (size_t c = 0; c < ws->n_classes && st == CRL_OK; c++) {
        const size_t *oc = c + 1 == ws->n_classes ? ws->off : offs + c * nv;
        if ((ws->class_ptr[c] = calloc(nv, sizeof(float *))) == NULL) {
            st = CRL_ENOMEM;
            break;
        }
        for (size_t v = 0; v < nv; v++)
            if (oc[v] != NN_NONE) ws->class_ptr[c][v] = ws->arena + oc[v];
    }
    for (size_t v = 0; v < nv; v++) {
        ws->first[v] = g->first[v];
        ws->last[v] = g->last[v];
    }
    free(offs);
    return st;
}

crl_status crl_nn_ws_new(const crl_nn_graph_t *g, size_t max_rows, crl_nn_ws_t **out) {
    if (out == NULL) return CRL_EINVAL;
    *out = NULL;
    if (!runnable(g) || max_rows == 0) return CRL_EINVAL;
    if (max_rows > NN_MAX_WS_FLOATS / (g->max_row ? g->max_row : 1)) return CRL_ENOMEM;
    if (g->scratch > NN_MAX_WS_FLOATS) return CRL_ENOMEM;
    crl_nn_ws_t *ws = calloc(1, sizeof(*ws));
    if (ws == NULL) return CRL_ENOMEM;
    ws->graph_id = g->id;
    ws->max_rows = max_rows;
    ws->n_vals = g->n_vals;
    size_t nv = g->n_vals;
    ws->off = malloc(nv * sizeof(size_t));
    ws->len = calloc(nv, sizeof(size_t));
    ws->first = malloc(nv * sizeof(size_t));
    ws->last = malloc(nv * sizeof(size_t));
    crl_status st = CRL_ENOMEM;
    if (ws->off && ws->len && ws->first && ws->last) st = plan_classes(g, ws);
    if (st != CRL_OK) {
        crl_nn_ws_free(ws);
        return st;
    }
    *out = ws;
    return CRL_OK;
}

void crl_nn_ws_free(crl_nn_ws_t *ws) {
    if (ws == NULL) return;
    free(ws->arena);
    free(ws->off);
    free(ws->len);
    free(ws->first);
    free(ws->last);
    for (size_t c = 0; c < ws->n_classes; c++)
        free(ws->class_ptr[c]);
    free(ws);
}

size_t crl_nn_ws_arena_floats(const crl_nn_ws_t *ws) {
    return ws ? ws->arena_n : 0;
}

size_t crl_nn_ws_plan_floats(const crl_nn_ws_t *ws, size_t rows) {
    if (ws == NULL || rows == 0 || rows > ws->max_rows) return 0;
    size_t c = 0;
    while (ws->class_rows[c] < rows)
        c++;
    return ws->class_top[c];
}

int crl_nn_ws_slot(const crl_nn_ws_t *ws, size_t v, size_t *off, size_t *len, size_t *first,
                   size_t *last) {
    if (ws == NULL || v >= ws->n_vals || ws->off[v] == NN_NONE) return 0;
    *off = ws->off[v];
    *len = ws->len[v];
    *first = ws->first[v];
    *last = ws->last[v];
    return 1;
}

static void run_rows(const crl_nn_graph_t *g, crl_nn_ws_t *ws, const float *x, size_t rows,
                     float *y, size_t lo, size_t hi, float *stage);

crl_status crl_nn_run(const crl_nn_graph_t *g, crl_nn_ws_t *ws, const float *x, size_t rows,
                      float *y) {
    if (!runnable(g) || ws == NULL || (rows > 0 && (x == NULL || y == NULL))) return CRL_EINVAL;
    if (ws->graph_id != g->id) return CRL_ESHAPE; /* a workspace planned for another shape */
    if (rows > ws->max_rows) return CRL_ERANGE;
    if (rows == 0) return CRL_OK;
    /* Row tiles: a batch whose values would overflow the cache runs a tile of rows through the
     * whole graph at a time (each row's bits do not depend on the rows beside it). */
    size_t tile = NN_TILE_FLOATS / (g->max_row ? g->max_row : 1);
    if (tile < 1) tile = 1;
    if (rows > tile) {
        size_t iw = crl_nn_graph_input_width(g), ow = crl_nn_graph_output_width(g);
        size_t head = g->split ? g->split : g->n_nodes, cw = g->split ? g->vals[g->cross].row : 0;
        float *stage = g->split ? ws->arena + ws->stage_off : NULL;
        for (size_t r0 = 0; r0 < rows; r0 += tile)
            run_rows(g, ws, x + r0 * iw, rows - r0 < tile ? rows - r0 : tile, y + r0 * ow, 0, head,
                     stage ? stage + r0 * cw : NULL);
        if (stage) run_rows(g, ws, x, rows, y, g->split, g->n_nodes, stage);
        return CRL_OK;
    }
    run_rows(g, ws, x, rows, y, 0, g->n_nodes, NULL);
    return CRL_OK;
}

/* Nodes [lo, hi) on `rows` rows with the plan of their batch-size class. With `stage` (a split
 * graph's tiled run, crl_nn_run): a head run (lo 0) copies the cross value's rows there at its
 * end; the tail run reads the cross value (and its in-place aliases) from there. */
static void run_rows(const crl_nn_graph_t *g, crl_nn_ws_t *ws, const float *x, size_t rows,
                     float *y, size_t lo, size_t hi, float *stage) {
    const crl_kernels_t *k = crl_kernels();
    int packed = g->packed_for == k; /* the packed weights are k's layout */
    size_t c = 0;
    while (ws->class_rows[c] < rows)
        c++;
    float **ptr = ws->class_ptr[c]; /* the class's pointers; x's and y's are set here */
    /* The input is only ever read: no node writes value 0. */
    ptr[0] = (float *)(uintptr_t)x;
    for (size_t i = 0; i < g->n_outg; i++)
        ptr[g->outg[i]] = y;
    float *own = stage && lo > 0 ? ptr[g->cross] : NULL; /* the class's own, restored below */
    if (own)
        for (size_t v = 0; v < g->n_vals; v++)
            if (g->alias[v] == g->cross) ptr[v] = stage;
    for (size_t i = lo; i < hi; i++) {
        const nn_node *n = &g->nodes[i];
        if (n->fused) continue;
        if (n->n_in == 1 && !g->vals[n->in[0]].is_const &&
            exec_fast(k, packed, n, rows, ptr[n->in[0]], ptr[n->out]))
            continue;
        const float *in[CRL_NN_MAX_INPUTS];
        for (size_t j = 0; j < n->n_in; j++) {
            const nn_value *v = &g->vals[n->in[j]];
            in[j] = v->is_const ? v->data : ptr[n->in[j]];
        }
        exec_node(k, packed, n, rows, in, ptr[n->out], ws->arena + ws->scratch_off);
    }
    if (stage && lo == 0)
        memcpy(stage, ptr[g->cross], rows * g->vals[g->cross].row * sizeof(float));
    if (own)
        for (size_t v = 0; v < g->n_vals; v++)
            if (g->alias[v] == g->cross) ptr[v] = own;
}

/* ---- memory pinning ------------------------------------------------------------------------ */

static crl_status lock(const void *p, size_t floats, size_t *locked, crl_err *err) {
    if (p == NULL || floats == 0) return CRL_OK;
    crl_status st = crl_hw_mlock(p, floats * sizeof(float), err);
    if (st == CRL_OK) *locked += floats * sizeof(float);
    return st;
}

crl_status crl_nn_graph_mlock(const crl_nn_graph_t *g, size_t *locked, crl_err *err) {
    crl_status st = CRL_OK;
    for (size_t i = 0; i < g->n_nodes && st == CRL_OK; i++) {
        const nn_node *n = &g->nodes[i];
        st = lock(n->w, n->k_in * n->k_out, locked, err);
        if (st == CRL_OK) st = lock(n->b, n->k_out, locked, err);
        if (st == CRL_OK) st = lock(n->wp, n->wp_n, locked, err);
        if (st == CRL_OK) st = lock(n->wh, (n->wh_n + 1) / 2, locked, err);
        if (st == CRL_OK) st = lock(n->p, n->p_n, locked, err);
        if (st == CRL_OK) st = lock(n->ix, n->n_ix * (sizeof(*n->ix) / sizeof(float)), locked, err);
    }
    for (size_t v = 0; v < g->n_vals && st == CRL_OK; v++)
        st = lock(g->vals[v].data, g->vals[v].row, locked, err);
    return st;
}

crl_status crl_nn_ws_mlock(const crl_nn_ws_t *ws, size_t *locked, crl_err *err) {
    return lock(ws->arena, ws->arena_n, locked, err);
}

crl_status crl_nn_ws_hugepages(const crl_nn_ws_t *ws, size_t *advised, crl_err *err) {
    return crl_hw_hugepages(ws->arena, ws->arena_n * sizeof(float), advised, err);
}
