/* onednn.c: the oneDNN yardstick: runs a zoo model's plan (onnx_weights.py) with oneDNN primitives,
 * in two variants that differ only in the primitive behind DENSE: "onednn-matmul" (matmul) and
 * "onednn-ip" (inner_product).
 *   DENSE      matmul / inner_product with bias and the activation as an eltwise post-op
 *              (relu, tanh, logistic, gelu_erf); weights in format "any", reordered once.
 *   CONV       convolution primitive (direct algorithm), src/weights/dst in format "any": oneDNN
 *              picks its blocked layouts. The model input is reordered from NCHW into the first
 *              convolution's layout inside the timed forward (it is the caller's data); the
 *              weights once, outside it. The blocked output of the last convolution feeds
 *              inner_product directly (4-D source, its weights reordered once); matmul needs a
 *              plain 2-D source, so that variant reorders it to NCHW inside the forward.
 *   LAYERNORM  layer_normalization primitive (scale and shift), then an eltwise primitive in
 *              place for its activation (layer normalization takes no post-ops in 2.6).
 *   ACT        eltwise primitive in place.
 *   CLIP_COLS, CONCAT_CONST, DUELING: plain C (common.h), on the primitives' plain buffers.
 * Shapes are fixed: one set of primitives per batch size, created on first use and cached,
 * because a matmul with a runtime batch dimension (DNNL_RUNTIME_DIM_VAL) crashes with SIGFPE in
 * dnnl_primitive_desc_create on this Zen 5 VM (docs/performance.md). oneDNN is built with
 * OpenMP: run.py sets OMP_NUM_THREADS=1. */
#include "common.h"

#include <oneapi/dnnl/dnnl.h>

enum { KIND_MATMUL, KIND_IP };
enum { STEP_PRIM, STEP_CLIP, STEP_CONCAT, STEP_DUELING };

#define MAX_STEPS (2 * YS_MAX_OPS + 2)

typedef struct dnn_step {
    int type;
    dnnl_primitive_t prim;
    int nargs;
    dnnl_exec_arg_t args[6];
    const ys_op *op;        /* the C steps */
    dnnl_memory_t src, dst; /* the C steps' plain buffers (handles read at run time) */
} dnn_step;

typedef struct dnn_set {
    int ready, n;
    dnn_step s[MAX_STEPS];
    dnnl_memory_t in, out; /* their handles are the caller's x and y on every call */
} dnn_set;

typedef struct dnn_ctx {
    int kind;
    const char *variant;
    const ys_plan *p;
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    dnn_set sets[YS_MAX_ROWS + 1]; /* by batch size */
    int failed;
} dnn_ctx;

/* The tensor between two steps while a set is built. */
typedef struct dnn_tensor {
    dnnl_memory_t mem;
    dnnl_memory_desc_t md;
    int plain; /* row-major [rows][width] (a 4-D one is NCHW) */
} dnn_tensor;

#define DNN_TRY(call)                                                                              \
    do {                                                                                           \
        dnnl_status_t st_ = (call);                                                                \
        if (st_ != dnnl_success) {                                                                 \
            printf("error %s %s failed with dnnl status %d\n", c->variant, #call, (int)st_);       \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

static dnnl_alg_kind_t alg_of(uint32_t act) {
    switch (act) {
    case YS_ACT_RELU:
        return dnnl_eltwise_relu;
    case YS_ACT_TANH:
        return dnnl_eltwise_tanh;
    case YS_ACT_SIGMOID:
        return dnnl_eltwise_logistic;
    case YS_ACT_GELU:
        return dnnl_eltwise_gelu_erf;
    default:
        return dnnl_alg_kind_undef;
    }
}

static void info_impl(dnn_ctx *c, dnnl_primitive_desc_t pd, size_t rows, const char *what) {
    const char *impl = NULL;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    printf("info %s %s at batch %zu: %s\n", c->variant, what, rows, impl ? impl : "?");
}

static int add_prim(dnn_ctx *c, dnn_set *s, dnnl_primitive_desc_t pd, int nargs,
                    const dnnl_exec_arg_t *args) {
    if (s->n >= MAX_STEPS) return -1;
    dnn_step *st = &s->s[s->n++];
    st->type = STEP_PRIM;
    DNN_TRY(dnnl_primitive_create(&st->prim, pd));
    st->nargs = nargs;
    memcpy(st->args, args, (size_t)nargs * sizeof *args);
    return 0;
}

static int run_once(dnn_ctx *c, dnnl_primitive_desc_t pd, int nargs, const dnnl_exec_arg_t *args) {
    dnnl_primitive_t prim;
    DNN_TRY(dnnl_primitive_create(&prim, pd));
    DNN_TRY(dnnl_primitive_execute(prim, c->stream, nargs, args));
    DNN_TRY(dnnl_stream_wait(c->stream));
    dnnl_primitive_destroy(prim);
    return 0;
}

/* Memory of the layout `want` holding the user data `user_md`/`data`, reordered once here. */
static int const_memory(dnn_ctx *c, const dnnl_memory_desc_t *user_md,
                        const dnnl_memory_desc_t *want, void *data, dnnl_memory_t *out) {
    if (dnnl_memory_desc_equal(want, user_md)) {
        DNN_TRY(dnnl_memory_create(out, user_md, c->eng, data));
        return 0;
    }
    dnnl_memory_t user;
    dnnl_primitive_desc_t rpd;
    DNN_TRY(dnnl_memory_create(&user, user_md, c->eng, data));
    DNN_TRY(dnnl_memory_create(out, want, c->eng, DNNL_MEMORY_ALLOCATE));
    DNN_TRY(dnnl_reorder_primitive_desc_create(&rpd, user_md, c->eng, want, c->eng, NULL));
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, user}, {DNNL_ARG_TO, *out}};
    if (run_once(c, rpd, 2, args) != 0) return -1;
    dnnl_primitive_desc_destroy(rpd);
    dnnl_memory_destroy(user);
    return 0;
}

/* A reorder step inside the forward: t into layout `want` (a new tensor). */
static int reorder_step(dnn_ctx *c, dnn_set *s, dnn_tensor *t, const dnnl_memory_desc_t *want) {
    dnnl_primitive_desc_t rpd;
    dnnl_memory_t dst;
    DNN_TRY(dnnl_memory_create(&dst, want, c->eng, DNNL_MEMORY_ALLOCATE));
    DNN_TRY(dnnl_reorder_primitive_desc_create(&rpd, &t->md, c->eng, want, c->eng, NULL));
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, t->mem}, {DNNL_ARG_TO, dst}};
    if (add_prim(c, s, rpd, 2, args) != 0) return -1;
    dnnl_primitive_desc_destroy(rpd);
    t->mem = dst;
    t->md = *want;
    return 0;
}

static int plain_md(dnn_ctx *c, dnnl_memory_desc_t *md, size_t rows, uint32_t width) {
    dnnl_dims_t d = {(dnnl_dim_t)rows, width};
    DNN_TRY(dnnl_memory_desc_init_by_tag(md, 2, d, dnnl_f32, dnnl_ab));
    return 0;
}

/* Makes t a plain [rows][width] tensor (a reorder step if it is blocked). */
static int make_plain(dnn_ctx *c, dnn_set *s, dnn_tensor *t, size_t rows, uint32_t width) {
    if (!t->plain) {
        dnnl_memory_desc_t nchw;
        int nd = t->md.ndims;
        DNN_TRY(dnnl_memory_desc_init_by_tag(&nchw, nd, t->md.dims, dnnl_f32,
                                             nd == 4 ? dnnl_abcd : dnnl_ab));
        if (reorder_step(c, s, t, &nchw) != 0) return -1;
        t->plain = 1;
    }
    if (t->md.ndims != 2) {
        dnnl_memory_desc_t md2;
        if (plain_md(c, &md2, rows, width) != 0) return -1;
        dnnl_memory_t m2;
        void *h;
        DNN_TRY(dnnl_memory_get_data_handle(t->mem, &h));
        DNN_TRY(dnnl_memory_create(&m2, &md2, c->eng, h));
        t->mem = m2;
        t->md = md2;
    }
    return 0;
}

static int eltwise_step(dnn_ctx *c, dnn_set *s, dnn_tensor *t, uint32_t act) {
    dnnl_eltwise_desc_t d;
    dnnl_primitive_desc_t pd;
    DNN_TRY(dnnl_eltwise_forward_desc_init(&d, dnnl_forward_inference, alg_of(act), &t->md, 0, 0));
    DNN_TRY(dnnl_primitive_desc_create(&pd, &d, NULL, c->eng, NULL));
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_SRC, t->mem}, {DNNL_ARG_DST, t->mem}};
    if (add_prim(c, s, pd, 2, args) != 0) return -1;
    dnnl_primitive_desc_destroy(pd);
    return 0;
}

static int attr_with_act(dnn_ctx *c, uint32_t act, dnnl_primitive_attr_t *attr) {
    dnnl_post_ops_t po;
    DNN_TRY(dnnl_post_ops_create(&po));
    if (act != YS_ACT_NONE) DNN_TRY(dnnl_post_ops_append_eltwise(po, 1.0f, alg_of(act), 0, 0));
    DNN_TRY(dnnl_primitive_attr_create(attr));
    DNN_TRY(dnnl_primitive_attr_set_post_ops(*attr, po));
    dnnl_post_ops_destroy(po);
    return 0;
}

static int dense_step(dnn_ctx *c, dnn_set *s, dnn_tensor *t, const ys_op *o, size_t rows,
                      int first) {
    /* inner_product takes the blocked 4-D output of a convolution as it is; matmul does not. */
    int use4d = c->kind == KIND_IP && !t->plain && t->md.ndims == 4;
    if (!use4d && make_plain(c, s, t, rows, o->in) != 0) return -1;
    dnnl_memory_desc_t wei_user_md, wei_any_md, bias_md, dst_md;
    if (plain_md(c, &dst_md, rows, o->out) != 0) return -1;
    if (c->kind == KIND_MATMUL) { /* y = x [rows][in] * Wt [in][out]; W [out][in] is "ba" */
        dnnl_dims_t wei_d = {o->in, o->out}, bias_d = {1, o->out};
        DNN_TRY(dnnl_memory_desc_init_by_tag(&wei_user_md, 2, wei_d, dnnl_f32, dnnl_ba));
        DNN_TRY(dnnl_memory_desc_init_by_tag(&wei_any_md, 2, wei_d, dnnl_f32, dnnl_format_tag_any));
        DNN_TRY(dnnl_memory_desc_init_by_tag(&bias_md, 2, bias_d, dnnl_f32, dnnl_ab));
    } else if (use4d) { /* weights [out][C][H][W] = "oihw" */
        dnnl_dims_t wei_d = {o->out, t->md.dims[1], t->md.dims[2], t->md.dims[3]},
                    bias_d = {o->out};
        DNN_TRY(dnnl_memory_desc_init_by_tag(&wei_user_md, 4, wei_d, dnnl_f32, dnnl_abcd));
        DNN_TRY(dnnl_memory_desc_init_by_tag(&wei_any_md, 4, wei_d, dnnl_f32, dnnl_format_tag_any));
        DNN_TRY(dnnl_memory_desc_init_by_tag(&bias_md, 1, bias_d, dnnl_f32, dnnl_a));
    } else { /* inner product: weights [out][in] = "oi" */
        dnnl_dims_t wei_d = {o->out, o->in}, bias_d = {o->out};
        DNN_TRY(dnnl_memory_desc_init_by_tag(&wei_user_md, 2, wei_d, dnnl_f32, dnnl_ab));
        DNN_TRY(dnnl_memory_desc_init_by_tag(&wei_any_md, 2, wei_d, dnnl_f32, dnnl_format_tag_any));
        DNN_TRY(dnnl_memory_desc_init_by_tag(&bias_md, 1, bias_d, dnnl_f32, dnnl_a));
    }
    dnnl_primitive_attr_t attr;
    if (attr_with_act(c, o->act, &attr) != 0) return -1;
    dnnl_primitive_desc_t pd;
    if (c->kind == KIND_MATMUL) {
        dnnl_matmul_desc_t d;
        DNN_TRY(dnnl_matmul_desc_init(&d, &t->md, &wei_any_md, &bias_md, &dst_md));
        DNN_TRY(dnnl_primitive_desc_create(&pd, &d, attr, c->eng, NULL));
    } else {
        dnnl_inner_product_desc_t d;
        DNN_TRY(dnnl_inner_product_forward_desc_init(&d, dnnl_forward_inference, &t->md,
                                                     &wei_any_md, &bias_md, &dst_md));
        DNN_TRY(dnnl_primitive_desc_create(&pd, &d, attr, c->eng, NULL));
    }
    dnnl_primitive_attr_destroy(attr);
    if (first && (rows == 1 || rows == YS_MAX_ROWS)) info_impl(c, pd, rows, "dense");
    dnnl_memory_t wei, bias, dst;
    if (const_memory(c, &wei_user_md, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0),
                     o->wt, &wei) != 0)
        return -1;
    DNN_TRY(dnnl_memory_create(&bias, &bias_md, c->eng, o->b));
    DNN_TRY(dnnl_memory_create(&dst, &dst_md, c->eng, DNNL_MEMORY_ALLOCATE));
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, t->mem},
                               {DNNL_ARG_WEIGHTS, wei},
                               {DNNL_ARG_BIAS, bias},
                               {DNNL_ARG_DST, dst}};
    if (add_prim(c, s, pd, 4, args) != 0) return -1;
    dnnl_primitive_desc_destroy(pd);
    t->mem = dst;
    t->md = dst_md;
    t->plain = 1;
    return 0;
}

static int conv_step(dnn_ctx *c, dnn_set *s, dnn_tensor *t, const ys_op *o, size_t rows,
                     int first) {
    dnnl_memory_desc_t src_any, wei_user_md, wei_any, bias_md, dst_any;
    dnnl_dims_t src_d = {(dnnl_dim_t)rows, o->c, o->h, o->w}, wei_d = {o->m, o->c, o->kh, o->kw},
                bias_d = {o->m}, dst_d = {(dnnl_dim_t)rows, o->m, o->oh, o->ow},
                strides = {o->sh, o->sw}, pad_l = {o->pt, o->pl}, pad_r = {o->pb, o->pr};
    if (t->plain && t->md.ndims != 4) { /* the model input, [rows][C*H*W], viewed as NCHW */
        dnnl_memory_desc_t md4;
        DNN_TRY(dnnl_memory_desc_init_by_tag(&md4, 4, src_d, dnnl_f32, dnnl_abcd));
        void *h;
        DNN_TRY(dnnl_memory_get_data_handle(t->mem, &h));
        dnnl_memory_t m4;
        DNN_TRY(dnnl_memory_create(&m4, &md4, c->eng, h));
        if (t->mem == s->in) s->in = m4;
        t->mem = m4;
        t->md = md4;
    }
    DNN_TRY(dnnl_memory_desc_init_by_tag(&src_any, 4, src_d, dnnl_f32, dnnl_format_tag_any));
    DNN_TRY(dnnl_memory_desc_init_by_tag(&wei_user_md, 4, wei_d, dnnl_f32, dnnl_abcd));
    DNN_TRY(dnnl_memory_desc_init_by_tag(&wei_any, 4, wei_d, dnnl_f32, dnnl_format_tag_any));
    DNN_TRY(dnnl_memory_desc_init_by_tag(&bias_md, 1, bias_d, dnnl_f32, dnnl_a));
    DNN_TRY(dnnl_memory_desc_init_by_tag(&dst_any, 4, dst_d, dnnl_f32, dnnl_format_tag_any));
    dnnl_convolution_desc_t d;
    DNN_TRY(dnnl_convolution_forward_desc_init(&d, dnnl_forward_inference, dnnl_convolution_direct,
                                               &src_any, &wei_any, &bias_md, &dst_any, strides,
                                               pad_l, pad_r));
    dnnl_primitive_attr_t attr;
    if (attr_with_act(c, o->act, &attr) != 0) return -1;
    dnnl_primitive_desc_t pd;
    DNN_TRY(dnnl_primitive_desc_create(&pd, &d, attr, c->eng, NULL));
    dnnl_primitive_attr_destroy(attr);
    if (first && (rows == 1 || rows == YS_MAX_ROWS)) info_impl(c, pd, rows, "conv");
    const dnnl_memory_desc_t *src_md = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    if (!dnnl_memory_desc_equal(src_md, &t->md)) {
        if (reorder_step(c, s, t, src_md) != 0) return -1;
        t->plain = 0;
    }
    dnnl_memory_t wei, bias, dst;
    if (const_memory(c, &wei_user_md, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0),
                     o->wt, &wei) != 0)
        return -1;
    DNN_TRY(dnnl_memory_create(&bias, &bias_md, c->eng, o->b));
    const dnnl_memory_desc_t *dst_md = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    DNN_TRY(dnnl_memory_create(&dst, dst_md, c->eng, DNNL_MEMORY_ALLOCATE));
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, t->mem},
                               {DNNL_ARG_WEIGHTS, wei},
                               {DNNL_ARG_BIAS, bias},
                               {DNNL_ARG_DST, dst}};
    if (add_prim(c, s, pd, 4, args) != 0) return -1;
    t->mem = dst;
    t->md = *dst_md;
    dnnl_memory_desc_t nchw;
    DNN_TRY(dnnl_memory_desc_init_by_tag(&nchw, 4, dst_d, dnnl_f32, dnnl_abcd));
    t->plain = dnnl_memory_desc_equal(&t->md, &nchw);
    dnnl_primitive_desc_destroy(pd);
    return 0;
}

static int layernorm_step(dnn_ctx *c, dnn_set *s, dnn_tensor *t, const ys_op *o, size_t rows) {
    if (make_plain(c, s, t, rows, o->in_w) != 0) return -1;
    dnnl_layer_normalization_desc_t d;
    dnnl_primitive_desc_t pd;
    dnnl_memory_desc_t vec_md;
    dnnl_dims_t vd = {o->in_w};
    DNN_TRY(dnnl_memory_desc_init_by_tag(&vec_md, 1, vd, dnnl_f32, dnnl_a));
    DNN_TRY(dnnl_layer_normalization_forward_desc_init(&d, dnnl_forward_inference, &t->md, NULL,
                                                       o->eps, dnnl_use_scale | dnnl_use_shift));
    DNN_TRY(dnnl_primitive_desc_create(&pd, &d, NULL, c->eng, NULL));
    dnnl_memory_t scale, shift, dst;
    DNN_TRY(dnnl_memory_create(&scale, &vec_md, c->eng, o->gamma));
    DNN_TRY(dnnl_memory_create(&shift, &vec_md, c->eng, o->beta));
    DNN_TRY(dnnl_memory_create(&dst, &t->md, c->eng, DNNL_MEMORY_ALLOCATE));
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, t->mem},
                               {DNNL_ARG_SCALE, scale},
                               {DNNL_ARG_SHIFT, shift},
                               {DNNL_ARG_DST, dst}};
    if (add_prim(c, s, pd, 4, args) != 0) return -1;
    dnnl_primitive_desc_destroy(pd);
    t->mem = dst;
    if (o->act != YS_ACT_NONE) return eltwise_step(c, s, t, o->act);
    return 0;
}

/* A plain-C step: src t (made plain), dst a new plain tensor of width out_w (or t itself). */
static int c_step(dnn_ctx *c, dnn_set *s, dnn_tensor *t, const ys_op *o, size_t rows, int type) {
    if (make_plain(c, s, t, rows, o->in_w) != 0 || s->n >= MAX_STEPS) return -1;
    dnn_step *st = &s->s[s->n++];
    st->type = type;
    st->op = o;
    st->src = t->mem;
    st->dst = t->mem;
    if (type != STEP_CLIP) {
        dnnl_memory_desc_t md;
        if (plain_md(c, &md, rows, o->out_w) != 0) return -1;
        DNN_TRY(dnnl_memory_create(&st->dst, &md, c->eng, DNNL_MEMORY_ALLOCATE));
        t->mem = st->dst;
        t->md = md;
    }
    return 0;
}

static int build_set(dnn_ctx *c, dnn_set *s, size_t rows) {
    const ys_plan *p = c->p;
    dnn_tensor t = {0};
    if (plain_md(c, &t.md, rows, p->in_width) != 0) return -1;
    DNN_TRY(dnnl_memory_create(&t.mem, &t.md, c->eng, DNNL_MEMORY_NONE));
    t.plain = 1;
    s->in = t.mem;
    int first = 1;
    for (uint32_t i = 0; i < p->n; i++) {
        const ys_op *o = &p->op[i];
        int rc = 0;
        switch (o->kind) {
        case YS_DENSE:
            rc = dense_step(c, s, &t, o, rows, first);
            first = 0;
            break;
        case YS_CONV:
            rc = conv_step(c, s, &t, o, rows, first);
            first = 0;
            break;
        case YS_LAYERNORM:
            rc = layernorm_step(c, s, &t, o, rows);
            break;
        case YS_ACT:
            rc = make_plain(c, s, &t, rows, o->in_w) != 0 ? -1 : eltwise_step(c, s, &t, o->act);
            break;
        case YS_CLIP_COLS:
            rc = c_step(c, s, &t, o, rows, STEP_CLIP);
            break;
        case YS_CONCAT_CONST:
            rc = c_step(c, s, &t, o, rows, STEP_CONCAT);
            break;
        case YS_DUELING:
            rc = c_step(c, s, &t, o, rows, STEP_DUELING);
            break;
        default:
            rc = -1;
        }
        if (rc != 0) return -1;
    }
    if (make_plain(c, s, &t, rows, p->out_width) != 0) return -1;
    /* The output tensor gets the caller's y as its buffer on every call; the input too. */
    if (t.mem == s->in) return -1;
    s->out = t.mem;
    return 0;
}

static int forward(void *ctx, const float *x, size_t rows, float *y) {
    dnn_ctx *c = ctx;
    if (rows == 0 || rows > YS_MAX_ROWS || c->failed) return -1;
    dnn_set *s = &c->sets[rows];
    if (!s->ready) {
        if (build_set(c, s, rows) != 0) {
            c->failed = 1;
            return -1;
        }
        s->ready = 1;
    }
    dnnl_memory_set_data_handle(s->in, (void *)x);
    dnnl_memory_set_data_handle(s->out, y);
    for (int i = 0; i < s->n; i++) {
        const dnn_step *st = &s->s[i];
        if (st->type == STEP_PRIM) {
            if (dnnl_primitive_execute(st->prim, c->stream, st->nargs, st->args) != dnnl_success)
                return -1;
            continue;
        }
        void *src, *dst;
        dnnl_memory_get_data_handle(st->src, &src);
        dnnl_memory_get_data_handle(st->dst, &dst);
        if (st->type == STEP_CLIP)
            ys_clip_cols(st->op, dst, rows);
        else if (st->type == STEP_CONCAT)
            ys_concat_const(st->op, src, dst, rows);
        else
            ys_dueling(st->op, src, dst, rows);
    }
    return dnnl_stream_wait(c->stream) == dnnl_success ? 0 : -1;
}

int main(int argc, char **argv) {
    ys_args a;
    static ys_plan p;
    int rc = ys_start_plan(argc, argv, "onednn", &a, &p);
    if (rc != 0) return rc;
    const dnnl_version_t *v = dnnl_version();
    printf("info onednn version %d.%d.%d, fixed-shape primitives per batch size\n", v->major,
           v->minor, v->patch);
    const int kinds[2] = {KIND_MATMUL, KIND_IP};
    const char *names[2] = {"onednn-matmul", "onednn-ip"};
    for (int k = 0; k < 2; k++) {
        dnn_ctx *c = calloc(1, sizeof *c);
        if (c == NULL) return 1;
        c->kind = kinds[k];
        c->variant = names[k];
        c->p = &p;
        if (dnnl_engine_create(&c->eng, dnnl_cpu, 0) != dnnl_success ||
            dnnl_stream_create(&c->stream, c->eng, dnnl_stream_default_flags) != dnnl_success) {
            printf("error %s cannot create a CPU engine and stream\n", c->variant);
            return 1;
        }
        if (ys_run_variant(c->variant, &a, p.in_width, p.out_width, forward, c) != 0) rc = 1;
        /* Primitives are left to process exit: this is a benchmark, not a library. */
    }
    return rc;
}
