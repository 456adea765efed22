/* onednn.c: the oneDNN yardstick, two variants: "onednn-matmul" (matmul primitives) and
 * "onednn-ip" (inner_product primitives), each layer with its bias and an eltwise relu/tanh
 * post-op. Shapes are fixed: one set of primitives per batch size, created on first use and
 * cached, because a matmul with a runtime batch dimension (DNNL_RUNTIME_DIM_VAL) crashes with
 * SIGFPE in dnnl_primitive_desc_create on this Zen 5 VM (docs/performance.md). Weights are
 * given as format "any" and reordered once into the layout the primitive prefers, so the timed
 * loop is only the primitives' execute. oneDNN is built with OpenMP: run.py sets
 * OMP_NUM_THREADS=1. */
#include "common.h"

#include <oneapi/dnnl/dnnl.h>

enum { KIND_MATMUL, KIND_IP };

typedef struct dnn_layer {
    dnnl_primitive_t prim;
    dnnl_memory_t src, wei, bias, dst;
} dnn_layer;

typedef struct dnn_set {
    int ready;
    dnn_layer l[YS_MAX_LAYERS];
} dnn_set;

typedef struct dnn_ctx {
    int kind;
    const char *variant;
    const ys_model *m;
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    float *buf[2];
    dnn_set sets[YS_MAX_ROWS + 1]; /* by batch size */
    int failed;
} dnn_ctx;

#define DNN_TRY(call)                                                                              \
    do {                                                                                           \
        dnnl_status_t st_ = (call);                                                                \
        if (st_ != dnnl_success) {                                                                 \
            printf("error %s %s failed with dnnl status %d\n", c->variant, #call, (int)st_);       \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

/* Creates the primitive of layer `li` for `rows` rows and its weights in the preferred layout. */
static int make_layer(dnn_ctx *c, size_t rows, uint32_t li, dnn_layer *dl, float *src_buf,
                      float *dst_buf) {
    const ys_layer *l = &c->m->l[li];
    dnnl_memory_desc_t src_md, wei_user_md, wei_any_md, bias_md, dst_md;
    dnnl_dims_t src_d = {(dnnl_dim_t)rows, l->in}, dst_d = {(dnnl_dim_t)rows, l->out};
    DNN_TRY(dnnl_memory_desc_init_by_tag(&src_md, 2, src_d, dnnl_f32, dnnl_ab));
    DNN_TRY(dnnl_memory_desc_init_by_tag(&dst_md, 2, dst_d, dnnl_f32, dnnl_ab));
    if (c->kind == KIND_MATMUL) { /* y = x [rows][in] * Wt [in][out]; W [out][in] is "ba" */
        dnnl_dims_t wei_d = {l->in, l->out}, bias_d = {1, l->out};
        DNN_TRY(dnnl_memory_desc_init_by_tag(&wei_user_md, 2, wei_d, dnnl_f32, dnnl_ba));
        DNN_TRY(dnnl_memory_desc_init_by_tag(&wei_any_md, 2, wei_d, dnnl_f32, dnnl_format_tag_any));
        DNN_TRY(dnnl_memory_desc_init_by_tag(&bias_md, 2, bias_d, dnnl_f32, dnnl_ab));
    } else { /* inner product: weights [out][in] = "oi" */
        dnnl_dims_t wei_d = {l->out, l->in}, bias_d = {l->out};
        DNN_TRY(dnnl_memory_desc_init_by_tag(&wei_user_md, 2, wei_d, dnnl_f32, dnnl_ab));
        DNN_TRY(dnnl_memory_desc_init_by_tag(&wei_any_md, 2, wei_d, dnnl_f32, dnnl_format_tag_any));
        DNN_TRY(dnnl_memory_desc_init_by_tag(&bias_md, 1, bias_d, dnnl_f32, dnnl_a));
    }
    dnnl_post_ops_t po;
    dnnl_primitive_attr_t attr;
    DNN_TRY(dnnl_post_ops_create(&po));
    if (l->act == YS_ACT_RELU)
        DNN_TRY(dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0, 0));
    if (l->act == YS_ACT_TANH)
        DNN_TRY(dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_tanh, 0, 0));
    DNN_TRY(dnnl_primitive_attr_create(&attr));
    DNN_TRY(dnnl_primitive_attr_set_post_ops(attr, po));
    dnnl_primitive_desc_t pd;
    if (c->kind == KIND_MATMUL) {
        dnnl_matmul_desc_t d;
        DNN_TRY(dnnl_matmul_desc_init(&d, &src_md, &wei_any_md, &bias_md, &dst_md));
        DNN_TRY(dnnl_primitive_desc_create(&pd, &d, attr, c->eng, NULL));
    } else {
        dnnl_inner_product_desc_t d;
        DNN_TRY(dnnl_inner_product_forward_desc_init(&d, dnnl_forward_inference, &src_md,
                                                     &wei_any_md, &bias_md, &dst_md));
        DNN_TRY(dnnl_primitive_desc_create(&pd, &d, attr, c->eng, NULL));
    }
    dnnl_primitive_attr_destroy(attr);
    dnnl_post_ops_destroy(po);
    if (rows == 1 && li == 0) {
        const char *impl = NULL;
        dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
        printf("info %s implementation at batch 1: %s\n", c->variant, impl ? impl : "?");
    }
    if (rows == YS_MAX_ROWS && li == 0) {
        const char *impl = NULL;
        dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
        printf("info %s implementation at batch %d: %s\n", c->variant, YS_MAX_ROWS,
               impl ? impl : "?");
    }
    const dnnl_memory_desc_t *wei_md = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    DNN_TRY(dnnl_primitive_create(&dl->prim, pd));
    DNN_TRY(dnnl_memory_create(&dl->src, &src_md, c->eng, src_buf));
    DNN_TRY(dnnl_memory_create(&dl->dst, &dst_md, c->eng, dst_buf));
    DNN_TRY(dnnl_memory_create(&dl->bias, &bias_md, c->eng, l->b));
    if (dnnl_memory_desc_equal(wei_md, &wei_user_md)) {
        DNN_TRY(dnnl_memory_create(&dl->wei, &wei_user_md, c->eng, l->w));
    } else { /* reorder W once into the primitive's layout */
        dnnl_memory_t user;
        dnnl_primitive_desc_t rpd;
        dnnl_primitive_t reorder;
        DNN_TRY(dnnl_memory_create(&user, &wei_user_md, c->eng, l->w));
        DNN_TRY(dnnl_memory_create(&dl->wei, wei_md, c->eng, DNNL_MEMORY_ALLOCATE));
        DNN_TRY(
            dnnl_reorder_primitive_desc_create(&rpd, &wei_user_md, c->eng, wei_md, c->eng, NULL));
        DNN_TRY(dnnl_primitive_create(&reorder, rpd));
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, user}, {DNNL_ARG_TO, dl->wei}};
        DNN_TRY(dnnl_primitive_execute(reorder, c->stream, 2, args));
        DNN_TRY(dnnl_stream_wait(c->stream));
        dnnl_primitive_destroy(reorder);
        dnnl_primitive_desc_destroy(rpd);
        dnnl_memory_destroy(user);
    }
    dnnl_primitive_desc_destroy(pd);
    return 0;
}

static int forward(void *ctx, const float *x, size_t rows, float *y) {
    dnn_ctx *c = ctx;
    const ys_model *m = c->m;
    if (rows == 0 || rows > YS_MAX_ROWS || c->failed) return -1;
    dnn_set *s = &c->sets[rows];
    if (!s->ready) {
        for (uint32_t i = 0; i < m->n; i++) {
            float *src = i == 0 ? (float *)x : c->buf[(i - 1) & 1];
            float *dst = i + 1 == m->n ? y : c->buf[i & 1];
            if (make_layer(c, rows, i, &s->l[i], src, dst) != 0) {
                c->failed = 1;
                return -1;
            }
        }
        s->ready = 1;
    }
    /* The caller's x and y change between calls; the intermediate buffers do not. */
    dnnl_memory_set_data_handle(s->l[0].src, (void *)x);
    dnnl_memory_set_data_handle(s->l[m->n - 1].dst, y);
    for (uint32_t i = 0; i < m->n; i++) {
        dnn_layer *dl = &s->l[i];
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, dl->src},
                                   {DNNL_ARG_WEIGHTS, dl->wei},
                                   {DNNL_ARG_BIAS, dl->bias},
                                   {DNNL_ARG_DST, dl->dst}};
        if (dnnl_primitive_execute(dl->prim, c->stream, 4, args) != dnnl_success) return -1;
    }
    return dnnl_stream_wait(c->stream) == dnnl_success ? 0 : -1;
}

int main(int argc, char **argv) {
    ys_args a;
    ys_model m;
    int rc = ys_start_weights(argc, argv, "onednn", &a, &m);
    if (rc != 0) return rc;
    const dnnl_version_t *v = dnnl_version();
    printf("info onednn version %d.%d.%d, fixed-shape primitives per batch size\n", v->major,
           v->minor, v->patch);
    int rc = 0;
    const int kinds[2] = {KIND_MATMUL, KIND_IP};
    const char *names[2] = {"onednn-matmul", "onednn-ip"};
    for (int k = 0; k < 2; k++) {
        dnn_ctx *c = calloc(1, sizeof *c);
        if (c == NULL) return 1;
        c->kind = kinds[k];
        c->variant = names[k];
        c->m = &m;
        for (int i = 0; i < 2; i++)
            c->buf[i] = ys_alloc(YS_MAX_ROWS * ys_max_width(&m) * sizeof(float));
        if (dnnl_engine_create(&c->eng, dnnl_cpu, 0) != dnnl_success ||
            dnnl_stream_create(&c->stream, c->eng, dnnl_stream_default_flags) != dnnl_success) {
            printf("error %s cannot create a CPU engine and stream\n", c->variant);
            return 1;
        }
        if (ys_run_variant(c->variant, &a, m.in_width, m.out_width, forward, c) != 0) rc = 1;
        /* Primitives are left to process exit: this is a benchmark, not a library. */
    }
    return rc;
}
