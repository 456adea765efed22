/* graph.c: the sequential policy network: builder, finishing passes, workspace and executor.
 * Weights are copied into 64-byte aligned memory the graph owns; a finished graph is immutable
 * and may be run from many threads, each with its own workspace.
 *
 * crl_nn_graph_finish also packs each LINEAR's weights for the kernel table selected at that
 * moment (crl_kernels(), chosen at start-up before any model loads), when that table packs the
 * shape. The packed copy is that table's private layout, so crl_nn_run uses it only while the
 * same table is selected; after a switch (tests, benchmarks) it runs the plain W with `linear`,
 * which gives the same bits (kernels.h), only slower. */
#include "nn/graph.h"

#include "hw/hw.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"

#define NN_ALIGN 64
#define NN_MAX_WIDTH ((size_t)1 << 16)
#define NN_MAX_WEIGHTS ((size_t)256 << 20) /* floats, across all ops of one graph */
#define NN_MAX_OPS 4096
/* A workspace larger than this (floats per buffer) is a configuration mistake, not a batch. */
#define NN_MAX_WS_FLOATS ((size_t)256 << 20)

typedef struct nn_node {
    crl_nn_op op;
    size_t in, out; /* widths; equal for elementwise ops */
    float *w;       /* LINEAR: [out][in] */
    float *b;       /* LINEAR: [out] or NULL; ADD_ROW: [out] */
    float lo, hi;   /* CLIP */
    float alpha;    /* SCALE */
    float *wp;      /* LINEAR: W packed for the graph's packed_for table, or NULL */
    size_t wp_n;    /* floats in wp */
} nn_node;

struct crl_nn_graph {
    size_t in_width;
    size_t width;     /* the current (last) width */
    size_t max_width; /* the widest value anywhere, input included */
    size_t n_weights; /* floats owned, for the cap */
    nn_node *ops;
    size_t n_ops, cap_ops;
    int finished;
    const crl_kernels_t *packed_for; /* the table whose layout the wp are in, or NULL */
};

struct crl_nn_ws {
    size_t max_rows;
    size_t max_width;
    float *buf[2];
};

static float *alloc_floats(size_t n) {
    void *p = NULL;
    size_t bytes = (n ? n : 1) * sizeof(float);
    /* Round up so every buffer also ends on a cache line: kernels may read whole lines. */
    bytes = (bytes + NN_ALIGN - 1) & ~(size_t)(NN_ALIGN - 1);
    if (posix_memalign(&p, NN_ALIGN, bytes) != 0) return NULL;
    return p;
}

crl_status crl_nn_graph_new(size_t in_width, crl_nn_graph_t **out) {
    if (out == NULL) return CRL_EINVAL;
    *out = NULL;
    if (in_width == 0 || in_width > NN_MAX_WIDTH) return CRL_EINVAL;
    crl_nn_graph_t *g = calloc(1, sizeof(*g));
    if (g == NULL) return CRL_ENOMEM;
    g->in_width = g->width = g->max_width = in_width;
    *out = g;
    return CRL_OK;
}

void crl_nn_graph_free(crl_nn_graph_t *g) {
    if (g == NULL) return;
    for (size_t i = 0; i < g->n_ops; i++) {
        free(g->ops[i].w);
        free(g->ops[i].b);
        free(g->ops[i].wp);
    }
    free(g->ops);
    free(g);
}

/* Common checks for every builder call, then room for one more op. */
static crl_status push_op(crl_nn_graph_t *g, nn_node **node, crl_err *err) {
    if (g == NULL) return crl_err_set(err, CRL_EINVAL, "graph is NULL");
    if (g->finished) return crl_err_set(err, CRL_EINVAL, "graph is already finished");
    if (g->n_ops >= NN_MAX_OPS)
        return crl_err_set(err, CRL_ENOMEM, "graph has too many operations (limit %d)", NN_MAX_OPS);
    if (g->n_ops == g->cap_ops) {
        size_t cap = g->cap_ops ? g->cap_ops * 2 : 8;
        nn_node *ops = realloc(g->ops, cap * sizeof(*ops));
        if (ops == NULL) return crl_err_set(err, CRL_ENOMEM, "out of memory growing the graph");
        g->ops = ops;
        g->cap_ops = cap;
    }
    *node = &g->ops[g->n_ops];
    memset(*node, 0, sizeof(**node));
    (*node)->in = (*node)->out = g->width;
    return CRL_OK;
}

crl_status crl_nn_graph_add_linear(crl_nn_graph_t *g, const float *w, const float *b, size_t in,
                                   size_t out, crl_err *err) {
    nn_node *n = NULL;
    crl_status st = push_op(g, &n, err);
    if (st != CRL_OK) return st;
    if (w == NULL) return crl_err_set(err, CRL_EINVAL, "linear layer has no weights");
    if (in != g->width)
        return crl_err_set(err, CRL_ESHAPE, "linear layer expects %zu inputs but the value has %zu",
                           in, g->width);
    if (out == 0 || out > NN_MAX_WIDTH)
        return crl_err_set(err, CRL_EINVAL, "linear layer width %zu is outside 1..%zu", out,
                           NN_MAX_WIDTH);
    /* in, out <= 2^16, so in*out + out cannot overflow size_t. */
    size_t need = in * out + out;
    if (need > NN_MAX_WEIGHTS - g->n_weights)
        return crl_err_set(err, CRL_ENOMEM, "graph weights exceed the limit of %zu floats",
                           NN_MAX_WEIGHTS);
    float *wc = alloc_floats(in * out);
    float *bc = b ? alloc_floats(out) : NULL;
    if (wc == NULL || (b && bc == NULL)) {
        free(wc);
        free(bc);
        return crl_err_set(err, CRL_ENOMEM, "out of memory for a %zux%zu linear layer", out, in);
    }
    memcpy(wc, w, in * out * sizeof(float));
    if (b) memcpy(bc, b, out * sizeof(float));
    n->op = CRL_NN_LINEAR;
    n->in = in;
    n->out = out;
    n->w = wc;
    n->b = bc;
    g->n_ops++;
    g->n_weights += need;
    g->width = out;
    if (out > g->max_width) g->max_width = out;
    return CRL_OK;
}

crl_status crl_nn_graph_add_act(crl_nn_graph_t *g, crl_nn_op op, crl_err *err) {
    if (op != CRL_NN_RELU && op != CRL_NN_TANH && op != CRL_NN_SIGMOID)
        return crl_err_set(err, CRL_EINVAL, "op %d is not an activation", (int)op);
    nn_node *n = NULL;
    crl_status st = push_op(g, &n, err);
    if (st != CRL_OK) return st;
    n->op = op;
    g->n_ops++;
    return CRL_OK;
}

crl_status crl_nn_graph_add_clip(crl_nn_graph_t *g, float lo, float hi, crl_err *err) {
    if (isnan(lo) || isnan(hi) || lo > hi)
        return crl_err_set(err, CRL_EINVAL, "clip bounds [%g, %g] are not an interval", (double)lo,
                           (double)hi);
    nn_node *n = NULL;
    crl_status st = push_op(g, &n, err);
    if (st != CRL_OK) return st;
    n->op = CRL_NN_CLIP;
    n->lo = lo;
    n->hi = hi;
    g->n_ops++;
    return CRL_OK;
}

crl_status crl_nn_graph_add_scale(crl_nn_graph_t *g, float alpha, crl_err *err) {
    if (!isfinite(alpha))
        return crl_err_set(err, CRL_EINVAL, "scale factor %g is not finite", (double)alpha);
    nn_node *n = NULL;
    crl_status st = push_op(g, &n, err);
    if (st != CRL_OK) return st;
    n->op = CRL_NN_SCALE;
    n->alpha = alpha;
    g->n_ops++;
    return CRL_OK;
}

crl_status crl_nn_graph_add_row(crl_nn_graph_t *g, const float *b, size_t width, crl_err *err) {
    nn_node *n = NULL;
    crl_status st = push_op(g, &n, err);
    if (st != CRL_OK) return st;
    if (b == NULL) return crl_err_set(err, CRL_EINVAL, "row addition has no values");
    if (width != g->width)
        return crl_err_set(err, CRL_ESHAPE, "row addition has %zu values but the value has %zu",
                           width, g->width);
    if (width > NN_MAX_WEIGHTS - g->n_weights)
        return crl_err_set(err, CRL_ENOMEM, "graph weights exceed the limit of %zu floats",
                           NN_MAX_WEIGHTS);
    float *bc = alloc_floats(width);
    if (bc == NULL) return crl_err_set(err, CRL_ENOMEM, "out of memory for a row addition");
    memcpy(bc, b, width * sizeof(float));
    n->op = CRL_NN_ADD_ROW;
    n->b = bc;
    g->n_ops++;
    g->n_weights += width;
    return CRL_OK;
}

/* LINEAR followed by ADD_ROW becomes one LINEAR whose bias absorbed the row. This changes the
 * rounding of (dot + b) + c into dot + (b + c): at most an ulp or so, well inside what any
 * exporter guarantees. SCALE is not folded into weights: alpha * (dot + b) and
 * dot(alpha * w) + alpha * b round differently enough that we keep it as its own op. */
static void fold_add_row(crl_nn_graph_t *g) {
    size_t k = 0;
    for (size_t i = 0; i < g->n_ops; i++) {
        nn_node *cur = &g->ops[i];
        if (cur->op == CRL_NN_ADD_ROW && k > 0 && g->ops[k - 1].op == CRL_NN_LINEAR) {
            nn_node *lin = &g->ops[k - 1];
            if (lin->b == NULL) {
                lin->b = cur->b; /* adopt the row as the bias */
            } else {
                for (size_t o = 0; o < lin->out; o++)
                    lin->b[o] += cur->b[o];
                free(cur->b);
            }
            cur->b = NULL;
            continue;
        }
        if (k != i) g->ops[k] = *cur;
        k++;
    }
    g->n_ops = k;
}

static void free_packed(crl_nn_graph_t *g) {
    for (size_t i = 0; i < g->n_ops; i++) {
        free(g->ops[i].wp);
        g->ops[i].wp = NULL;
        g->ops[i].wp_n = 0;
    }
    g->packed_for = NULL;
}

/* Packs every LINEAR whose shape the table packs (pack_size > 0); the others keep using W. */
static crl_status pack_linears(crl_nn_graph_t *g, const crl_kernels_t *k, crl_err *err) {
    if (k->pack_size == NULL || k->pack == NULL || k->linear_packed == NULL) return CRL_OK;
    for (size_t i = 0; i < g->n_ops; i++) {
        nn_node *n = &g->ops[i];
        if (n->op != CRL_NN_LINEAR) continue;
        size_t np = k->pack_size(n->in, n->out);
        if (np == 0) continue;
        n->wp = alloc_floats(np);
        if (n->wp == NULL) {
            free_packed(g);
            return crl_err_set(err, CRL_ENOMEM,
                               "out of memory packing a %zux%zu linear layer for the %s kernels",
                               n->out, n->in, k->name);
        }
        n->wp_n = np;
        k->pack(n->w, n->in, n->out, n->wp);
    }
    g->packed_for = k;
    return CRL_OK;
}

crl_status crl_nn_graph_finish(crl_nn_graph_t *g, crl_err *err) {
    if (g == NULL) return crl_err_set(err, CRL_EINVAL, "graph is NULL");
    if (g->finished) return CRL_OK;
    fold_add_row(g); /* first: it changes the ops, not the weights */
    crl_status st = pack_linears(g, crl_kernels(), err);
    if (st != CRL_OK) return st;
    g->finished = 1;
    return CRL_OK;
}

size_t crl_nn_graph_input_width(const crl_nn_graph_t *g) {
    return g ? g->in_width : 0;
}
size_t crl_nn_graph_output_width(const crl_nn_graph_t *g) {
    return g ? g->width : 0;
}
size_t crl_nn_graph_num_ops(const crl_nn_graph_t *g) {
    return g ? g->n_ops : 0;
}

crl_nn_op crl_nn_graph_op(const crl_nn_graph_t *g, size_t i) {
    /* Out of range has no good answer; SCALE is the closest to a no-op and never crashes. */
    if (g == NULL || i >= g->n_ops) return CRL_NN_SCALE;
    return g->ops[i].op;
}

crl_status crl_nn_ws_new(const crl_nn_graph_t *g, size_t max_rows, crl_nn_ws_t **out) {
    if (out == NULL) return CRL_EINVAL;
    *out = NULL;
    if (g == NULL || !g->finished || max_rows == 0) return CRL_EINVAL;
    if (max_rows > NN_MAX_WS_FLOATS / g->max_width) return CRL_ENOMEM;
    crl_nn_ws_t *ws = calloc(1, sizeof(*ws));
    if (ws == NULL) return CRL_ENOMEM;
    ws->max_rows = max_rows;
    ws->max_width = g->max_width;
    ws->buf[0] = alloc_floats(max_rows * g->max_width);
    ws->buf[1] = alloc_floats(max_rows * g->max_width);
    if (ws->buf[0] == NULL || ws->buf[1] == NULL) {
        crl_nn_ws_free(ws);
        return CRL_ENOMEM;
    }
    *out = ws;
    return CRL_OK;
}

void crl_nn_ws_free(crl_nn_ws_t *ws) {
    if (ws == NULL) return;
    free(ws->buf[0]);
    free(ws->buf[1]);
    free(ws);
}

static void run_elementwise(const crl_kernels_t *k, const nn_node *n, float *v, size_t rows) {
    size_t len = rows * n->out;
    switch (n->op) {
    case CRL_NN_RELU:
        k->relu(v, len);
        break;
    case CRL_NN_TANH:
        k->tanh(v, len);
        break;
    case CRL_NN_SIGMOID:
        k->sigmoid(v, len);
        break;
    case CRL_NN_CLIP:
        k->clip(v, len, n->lo, n->hi);
        break;
    case CRL_NN_ADD_ROW:
        k->add_row(v, rows, n->out, n->b);
        break;
    case CRL_NN_SCALE:
        k->scale(v, len, n->alpha);
        break;
    case CRL_NN_LINEAR:
        break; /* handled by the caller */
    }
}

/* The current value lives in x (read-only, before the first op), in one of the two workspace
 * buffers, or in y (only after the last op). A LINEAR writes into the buffer it does not read
 * (or straight into y when it is last); an elementwise op works in place, after copying the
 * value out of x first when needed. */
crl_status crl_nn_run(const crl_nn_graph_t *g, crl_nn_ws_t *ws, const float *x, size_t rows,
                      float *y) {
    if (g == NULL || ws == NULL || !g->finished || (rows > 0 && (x == NULL || y == NULL)))
        return CRL_EINVAL;
    if (rows > ws->max_rows) return CRL_ERANGE;
    if (ws->max_width < g->max_width) return CRL_ESHAPE; /* a workspace planned for another graph */
    if (rows == 0) return CRL_OK;
    const crl_kernels_t *k = crl_kernels();
    int packed = g->packed_for == k; /* the packed weights are k's layout */
    const float *cur = x;            /* where the current value is read from */
    float *own = NULL; /* the same memory when it is ours to write (not the caller's x) */
    size_t width = g->in_width;
    for (size_t i = 0; i < g->n_ops; i++) {
        const nn_node *n = &g->ops[i];
        int last = i + 1 == g->n_ops;
        float *dst;
        if (n->op == CRL_NN_LINEAR) {
            dst = last ? y : (own == ws->buf[0] ? ws->buf[1] : ws->buf[0]);
            if (packed && n->wp)
                k->linear_packed(cur, rows, n->in, n->wp, n->b, n->out, dst);
            else
                k->linear(cur, rows, n->in, n->w, n->b, n->out, dst);
        } else {
            dst = last ? y : (own ? own : ws->buf[0]);
            if (dst != cur) memcpy(dst, cur, rows * width * sizeof(float));
            run_elementwise(k, n, dst, rows);
        }
        cur = own = dst;
        width = n->out;
    }
    if (cur != y) memcpy(y, cur, rows * width * sizeof(float));
    return CRL_OK;
}

/* ---- memory pinning ------------------------------------------------------------------------ */

crl_status crl_nn_graph_mlock(const crl_nn_graph_t *g, size_t *locked, crl_err *err) {
    for (size_t i = 0; i < g->n_ops; i++) {
        const nn_node *n = &g->ops[i];
        size_t nb = n->op == CRL_NN_LINEAR ? n->out : (n->op == CRL_NN_ADD_ROW ? n->out : 0);
        if (n->w) {
            crl_status st = crl_hw_mlock(n->w, n->in * n->out * sizeof(float), err);
            if (st != CRL_OK) return st;
            *locked += n->in * n->out * sizeof(float);
        }
        if (n->b && nb) {
            crl_status st = crl_hw_mlock(n->b, nb * sizeof(float), err);
            if (st != CRL_OK) return st;
            *locked += nb * sizeof(float);
        }
        if (n->wp) {
            crl_status st = crl_hw_mlock(n->wp, n->wp_n * sizeof(float), err);
            if (st != CRL_OK) return st;
            *locked += n->wp_n * sizeof(float);
        }
    }
    return CRL_OK;
}

crl_status crl_nn_ws_mlock(const crl_nn_ws_t *ws, size_t *locked, crl_err *err) {
    size_t bytes = ws->max_rows * ws->max_width * sizeof(float);
    for (int i = 0; i < 2; i++) {
        crl_status st = crl_hw_mlock(ws->buf[i], bytes, err);
        if (st != CRL_OK) return st;
        *locked += bytes;
    }
    return CRL_OK;
}
