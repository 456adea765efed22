/* test_onnx.c: loads the committed models of tests/data/onnx (written by make_onnx_tests.py) and
 * compares carlarl's forward pass with the outputs torch/numpy computed; then the load errors a
 * user can meet: truncated or garbage files, unsupported operators, old opsets, a
 * missing file. Conv and the pools are checked on a model encoded here (attribute mapping, auto_pad
 * strings) against the same graph built directly (whose numbers test_nn.c checks). Split (opset
 * 11 and 13 forms, equal parts), Slice, Gather and Transpose are checked on models encoded here
 * against index arithmetic, with the load errors for the batch axis, and on movement.onnx; the
 * integer arithmetic torch writes for chunk() on Shape -> Gather -> Div -> Slice. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "isa.h"
#include "kernels/kernels.h"
#include "model/onnx.h"
#include "nn/graph.h"

#ifndef CRL_TEST_DATA
#error "CRL_TEST_DATA must name the tests/data directory"
#endif
#define ONNX_DIR CRL_TEST_DATA "/onnx/"

static uint8_t *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) fail_msg("cannot open %s", path);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    uint8_t *p = malloc((size_t)n + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return p;
}

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static float lef32(const uint8_t *p) {
    uint32_t u = le32(p);
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

/* Loads NAME.onnx, runs NAME.bin's inputs, compares with its outputs (max abs error <= 1e-5). */
static void check_model(const char *name, size_t expect_ops) {
    char path[512];
    crl_err err = {{0}};
    crl_nn_graph_t *g = NULL;
    snprintf(path, sizeof(path), ONNX_DIR "%s.onnx", name);
    crl_status st = crl_onnx_load_file(path, &g, &err);
    if (st != CRL_OK) fail_msg("%s: %s", name, err.msg);
    assert_non_null(g);
    if (expect_ops) assert_int_equal(crl_nn_graph_num_ops(g), expect_ops);

    size_t len;
    snprintf(path, sizeof(path), ONNX_DIR "%s.bin", name);
    uint8_t *bin = slurp(path, &len);
    assert_true(len >= 12);
    size_t rows = le32(bin), in = le32(bin + 4), out = le32(bin + 8);
    assert_int_equal(len, 12 + 4 * rows * (in + out));
    assert_int_equal(crl_nn_graph_input_width(g), in);
    assert_int_equal(crl_nn_graph_output_width(g), out);

    float *x = malloc(rows * in * sizeof(float)), *y = malloc(rows * out * sizeof(float));
    assert_non_null(x);
    assert_non_null(y);
    for (size_t i = 0; i < rows * in; i++)
        x[i] = lef32(bin + 12 + 4 * i);
    crl_nn_ws_t *ws = NULL;
    assert_int_equal(crl_nn_ws_new(g, rows, &ws), CRL_OK);
    assert_int_equal(crl_nn_run(g, ws, x, rows, y), CRL_OK);
    double worst = 0;
    for (size_t i = 0; i < rows * out; i++) {
        double e = fabs((double)y[i] - (double)lef32(bin + 12 + 4 * (rows * in + i)));
        if (!(e <= worst)) worst = e; /* also catches NaN */
    }
    if (!(worst <= 1e-5)) fail_msg("%s: max abs error %g > 1e-5", name, worst);

    /* Row by row gives the same answer as the batch. */
    float y1[64];
    assert_true(out <= 64);
    for (size_t r = 0; r < rows; r++) {
        assert_int_equal(crl_nn_run(g, ws, x + r * in, 1, y1), CRL_OK);
        assert_memory_equal(y1, y + r * out, out * sizeof(float));
    }
    crl_nn_ws_free(ws);
    crl_nn_graph_free(g);
    free(x);
    free(y);
    free(bin);
}

/* Gemm+Tanh, Gemm+Relu, Gemm, Clip: six ops; Clip's bounds come from Constant nodes, which fold
 * away. */
static void test_torch_opset11(void **state) {
    (void)state;
    check_model("mlp_gemm_op11", 6); /* also lists its weights as graph inputs */
}
static void test_torch_opset14(void **state) {
    (void)state;
    check_model("mlp_gemm_op14", 6);
}
static void test_torch_opset17(void **state) {
    (void)state;
    check_model("mlp_gemm_op17", 6);
}

/* MatMul+Add folds into one LINEAR each; the scalar Add folds too: LINEAR SIGMOID LINEAR CLIP. */
static void test_matmul_add(void **state) {
    (void)state;
    check_model("mlp_matmul_add", 4);
}

/* Identity and Flatten vanish; Gemm with alpha=0.5 keeps LINEAR, SCALE, ADD_ROW; then Relu. */
static void test_identity_flatten(void **state) {
    (void)state;
    check_model("identity_flatten", 4);
}

/* A hand-built model (make_onnx_tests.py) through Transpose, Split with a sizes input, Slice with
 * negative steps, Gather with 2-D INT32 and scalar INT64 indices (int32_data / int64_data):
 * TRANSPOSE, 2 SLICE (Split), SLICE, 2 GATHER, CONCAT; the Flattens vanish. */
static void test_movement(void **state) {
    (void)state;
    check_model("movement", 7);
}

static void test_load_mem_matches_file(void **state) {
    (void)state;
    size_t len;
    uint8_t *data = slurp(ONNX_DIR "mlp_gemm_op14.onnx", &len);
    crl_nn_graph_t *g = NULL;
    crl_err err = {{0}};
    assert_int_equal(crl_onnx_load_mem(data, len, &g, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_input_width(g), 5);
    assert_int_equal(crl_nn_graph_output_width(g), 3);
    assert_int_equal(crl_nn_graph_op(g, 1), CRL_NN_TANH);
    assert_int_equal(crl_nn_graph_op(g, 5), CRL_NN_CLIP);
    crl_nn_graph_free(g);
    free(data);
}

/* Every proper prefix of a valid model is an error, never a crash and never a graph. */
static void test_truncated(void **state) {
    (void)state;
    size_t len;
    uint8_t *data = slurp(ONNX_DIR "mlp_gemm_op14.onnx", &len);
    for (size_t n = 0; n < len; n++) {
        crl_nn_graph_t *g = NULL;
        crl_err err = {{0}};
        /* A copy of exactly n bytes, so ASan sees any read past the end. */
        uint8_t *cut = malloc(n ? n : 1);
        assert_non_null(cut);
        memcpy(cut, data, n);
        crl_status st = crl_onnx_load_mem(cut, n, &g, &err);
        if (st == CRL_OK) fail_msg("a %zu-byte prefix of a %zu-byte model loaded", n, len);
        assert_null(g);
        assert_true(err.msg[0] != '\0');
        free(cut);
    }

    /* The same through a file: the message names the file. */
    char path[] = "/tmp/crl_test_onnx_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len / 2), (ssize_t)(len / 2));
    close(fd);
    crl_nn_graph_t *g = NULL;
    crl_err err = {{0}};
    assert_int_equal(crl_onnx_load_file(path, &g, &err), CRL_EFORMAT);
    assert_null(g);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "truncated"));
    unlink(path);
    free(data);
}

static void test_garbage(void **state) {
    (void)state;
    uint8_t junk[512];
    uint32_t s = 7;
    for (int round = 0; round < 200; round++) {
        for (size_t i = 0; i < sizeof(junk); i++) {
            s = s * 1103515245u + 12345u;
            junk[i] = (uint8_t)(s >> 16);
        }
        crl_nn_graph_t *g = NULL;
        crl_err err = {{0}};
        assert_int_not_equal(crl_onnx_load_mem(junk, sizeof(junk), &g, &err), CRL_OK);
        assert_null(g);
    }
    /* An overlong varint (11 continuation bytes) and a group wire type. */
    const uint8_t overlong[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff,
                                0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    const uint8_t group[] = {0x0b, 0x0c};
    crl_nn_graph_t *g = NULL;
    crl_err err = {{0}};
    assert_int_equal(crl_onnx_load_mem(overlong, sizeof(overlong), &g, &err), CRL_EFORMAT);
    assert_int_equal(crl_onnx_load_mem(group, sizeof(group), &g, &err), CRL_EFORMAT);
    /* Valid protobuf with no graph in it (just ir_version = 8). */
    const uint8_t nograph[] = {0x08, 0x08};
    assert_int_equal(crl_onnx_load_mem(nograph, sizeof(nograph), &g, &err), CRL_EFORMAT);
    assert_non_null(strstr(err.msg, "no graph"));
    assert_int_equal(crl_onnx_load_mem(nograph, 0, &g, &err), CRL_EFORMAT);
    assert_null(g);
}

static void expect_error(const char *file, crl_status want, const char *const *needles) {
    crl_nn_graph_t *g = NULL;
    crl_err err = {{0}};
    assert_int_equal(crl_onnx_load_file(file, &g, &err), want);
    assert_null(g);
    for (; *needles; needles++)
        if (strstr(err.msg, *needles) == NULL)
            fail_msg("error \"%s\" does not mention \"%s\"", err.msg, *needles);
}

/* conv.onnx runs a Conv over a [batch, 16] input: only 2-D (NCHW) convolutions are supported. */
static void test_conv_not_2d(void **state) {
    (void)state;
    const char *const needles[] = {"node 'conv1'", "(op Conv, opset 13)", "2-D NCHW", NULL};
    expect_error(ONNX_DIR "conv.onnx", CRL_EUNSUPPORTED, needles);
}

/* ---- a tiny protobuf writer for models made in the test ---------------------------------------
 */

typedef struct pbw {
    uint8_t b[8192];
    size_t n;
} pbw;

static void pb_varint(pbw *w, uint64_t v) {
    do {
        assert_true(w->n < sizeof(w->b));
        w->b[w->n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
}

static void pb_key(pbw *w, unsigned field, unsigned wt) {
    pb_varint(w, (uint64_t)field << 3 | wt);
}

static void pb_int(pbw *w, unsigned field, int64_t v) {
    pb_key(w, field, 0);
    pb_varint(w, (uint64_t)v);
}

static void pb_bytes(pbw *w, unsigned field, const void *p, size_t n) {
    pb_key(w, field, 2);
    pb_varint(w, n);
    assert_true(w->n + n <= sizeof(w->b));
    memcpy(w->b + w->n, p, n);
    w->n += n;
}

static void pb_str(pbw *w, unsigned field, const char *s) {
    pb_bytes(w, field, s, strlen(s));
}

static void pb_msg(pbw *w, unsigned field, const pbw *m) {
    pb_bytes(w, field, m->b, m->n);
}

/* AttributeProto: ints (type INTS = 7) or a string (type STRING = 3) or an int (INT = 2). */
static void attr_ints(pbw *node, const char *name, const int64_t *v, size_t n) {
    pbw a = {.n = 0};
    pb_str(&a, 1, name);
    for (size_t i = 0; i < n; i++)
        pb_int(&a, 8, v[i]);
    pb_int(&a, 20, 7);
    pb_msg(node, 5, &a);
}

static void attr_str(pbw *node, const char *name, const char *v) {
    pbw a = {.n = 0};
    pb_str(&a, 1, name);
    pb_str(&a, 4, v);
    pb_int(&a, 20, 3);
    pb_msg(node, 5, &a);
}

static void attr_int1(pbw *node, const char *name, int64_t v) {
    pbw a = {.n = 0};
    pb_str(&a, 1, name);
    pb_int(&a, 3, v);
    pb_int(&a, 20, 2);
    pb_msg(node, 5, &a);
}

static void start_node(pbw *node, const char *op, const char *in0, const char *in1,
                       const char *out) {
    node->n = 0;
    pb_str(node, 1, in0);
    if (in1) pb_str(node, 1, in1);
    pb_str(node, 2, out);
    pb_str(node, 3, out); /* named after its output */
    pb_str(node, 4, op);
}

/* A float initializer (raw_data). */
static void add_init(pbw *graph, const char *name, const int64_t *dims, size_t rank,
                     const float *data, size_t n) {
    pbw t = {.n = 0};
    for (size_t i = 0; i < rank; i++)
        pb_int(&t, 1, dims[i]);
    pb_int(&t, 2, 1);
    pb_str(&t, 8, name);
    pb_bytes(&t, 9, data, n * sizeof(float));
    pb_msg(graph, 5, &t);
}

/* ValueInfoProto name: float [batch, dims...]. */
static void add_io(pbw *graph, unsigned field, const char *name, const int64_t *dims, size_t rank) {
    pbw shape = {.n = 0}, d = {.n = 0}, tt = {.n = 0}, ty = {.n = 0}, vi = {.n = 0};
    pb_str(&d, 2, "batch");
    pb_msg(&shape, 1, &d);
    for (size_t i = 0; i < rank; i++) {
        d.n = 0;
        pb_int(&d, 1, dims[i]);
        pb_msg(&shape, 1, &d);
    }
    pb_int(&tt, 1, 1);
    pb_msg(&tt, 2, &shape);
    pb_msg(&ty, 1, &tt);
    pb_str(&vi, 1, name);
    pb_msg(&vi, 2, &ty);
    pb_msg(graph, field, &vi);
}

static void finish_model(pbw *model, const pbw *graph, int64_t opset) {
    pbw os = {.n = 0};
    model->n = 0;
    pb_int(model, 1, 8);
    pb_int(&os, 2, opset);
    pb_msg(model, 8, &os);
    pb_msg(model, 7, graph);
}

static void test_unsupported_op(void **state) {
    (void)state;
    static pbw graph, node, model;
    graph.n = 0;
    const int64_t d[1] = {4};
    start_node(&node, "LSTM", "x", NULL, "y");
    pb_msg(&graph, 1, &node);
    add_io(&graph, 11, "x", d, 1);
    add_io(&graph, 12, "y", d, 1);
    finish_model(&model, &graph, 14);
    crl_nn_graph_t *g = NULL;
    crl_err err = {{0}};
    assert_int_equal(crl_onnx_load_mem(model.b, model.n, &g, &err), CRL_EUNSUPPORTED);
    assert_null(g);
    assert_non_null(strstr(err.msg, "node 'y' (op LSTM, opset 14): unsupported operator"));
}

/* x [B, 4, 9, 8] -> Conv (W [6, 2, 3, 2], bias, group 2, strides 2x1, dilations 1x2, auto_pad
 * `pad`) -> MaxPool (k 2x2, s 2, pads 1 0 0 1, ceil_mode) -> AveragePool (k 2, pads 1,
 * count_include_pad) -> Conv 1x1 (W [3, 6, 1, 1], VALID) -> GlobalAveragePool -> y [B, 3, 1, 1],
 * loaded from ONNX and built by hand: the two must agree exactly. */
static void check_conv_model(const char *pad, int pad_code, int64_t opset) {
    static pbw graph, node, model;
    float w1[6 * 2 * 3 * 2], b1[6], w2[3 * 6], x[2 * 4 * 9 * 8], ya[2 * 3], yb[2 * 3];
    for (size_t i = 0; i < sizeof(w1) / sizeof(w1[0]); i++)
        w1[i] = (float)((i * 37u) % 19u) / 9.0f - 1.0f;
    for (size_t i = 0; i < 6; i++)
        b1[i] = (float)i / 10.0f - 0.2f;
    for (size_t i = 0; i < 18; i++)
        w2[i] = (float)((i * 11u) % 7u) / 3.0f - 1.0f;
    for (size_t i = 0; i < sizeof(x) / sizeof(x[0]); i++)
        x[i] = (float)((i * 7919u) % 101u) / 50.0f - 1.0f;
    const int64_t wd1[4] = {6, 2, 3, 2}, bd1[1] = {6}, wd2[4] = {3, 6, 1, 1}, xd[3] = {4, 9, 8},
                  yd[3] = {3, 1, 1};
    const int64_t s21[2] = {2, 1}, d12[2] = {1, 2}, k22[2] = {2, 2}, s22[2] = {2, 2},
                  p1001[4] = {1, 0, 0, 1}, p1111[4] = {1, 1, 1, 1};
    graph.n = 0;
    start_node(&node, "Conv", "x", "w1", "c1");
    pb_str(&node, 1, "b1");
    attr_ints(&node, "strides", s21, 2);
    attr_ints(&node, "dilations", d12, 2);
    attr_int1(&node, "group", 2);
    attr_str(&node, "auto_pad", pad);
    pb_msg(&graph, 1, &node);
    start_node(&node, "MaxPool", "c1", NULL, "p1");
    attr_ints(&node, "kernel_shape", k22, 2);
    attr_ints(&node, "strides", s22, 2);
    attr_ints(&node, "pads", p1001, 4);
    attr_int1(&node, "ceil_mode", 1);
    pb_msg(&graph, 1, &node);
    start_node(&node, "AveragePool", "p1", NULL, "p2");
    attr_ints(&node, "kernel_shape", k22, 2);
    attr_ints(&node, "pads", p1111, 4);
    attr_int1(&node, "count_include_pad", 1);
    pb_msg(&graph, 1, &node);
    start_node(&node, "Conv", "p2", "w2", "c2");
    attr_str(&node, "auto_pad", "VALID");
    pb_msg(&graph, 1, &node);
    start_node(&node, "GlobalAveragePool", "c2", NULL, "y");
    pb_msg(&graph, 1, &node);
    add_init(&graph, "w1", wd1, 4, w1, 72);
    add_init(&graph, "b1", bd1, 1, b1, 6);
    add_init(&graph, "w2", wd2, 4, w2, 18);
    add_io(&graph, 11, "x", xd, 3);
    add_io(&graph, 12, "y", yd, 3);
    finish_model(&model, &graph, opset);

    crl_nn_graph_t *ga = NULL, *gb = NULL;
    crl_err err = {{0}};
    if (crl_onnx_load_mem(model.b, model.n, &ga, &err) != CRL_OK) fail_msg("%s", err.msg);
    assert_int_equal(crl_nn_graph_num_ops(ga), 5);
    assert_int_equal(crl_nn_graph_op(ga, 0), CRL_NN_CONV);
    assert_int_equal(crl_nn_graph_op(ga, 1), CRL_NN_MAXPOOL);
    assert_int_equal(crl_nn_graph_op(ga, 2), CRL_NN_AVGPOOL);
    assert_int_equal(crl_nn_graph_op(ga, 3), CRL_NN_CONV);
    assert_int_equal(crl_nn_graph_op(ga, 4), CRL_NN_GLOBAL_AVGPOOL);
    assert_int_equal(crl_nn_graph_output_width(ga), 3);

    const size_t xs[3] = {4, 9, 8}, w1s[4] = {6, 2, 3, 2}, b1s[1] = {6}, w2s[4] = {3, 6, 1, 1};
    size_t in[3] = {0}, v;
    crl_nn_attrs a;
    assert_int_equal(crl_nn_graph_new_shaped(xs, 3, &gb), CRL_OK);
    assert_int_equal(crl_nn_graph_const(gb, w1, w1s, 4, &in[1], &err), CRL_OK);
    assert_int_equal(crl_nn_graph_const(gb, b1, b1s, 1, &in[2], &err), CRL_OK);
    crl_nn_attrs_init(&a);
    a.strides[0] = 2, a.strides[1] = 1, a.dilations[0] = 1, a.dilations[1] = 2, a.group = 2;
    a.auto_pad = pad_code;
    assert_int_equal(crl_nn_graph_node(gb, CRL_NN_CONV, in, 3, &a, &v, &err), CRL_OK);
    crl_nn_attrs_init(&a);
    a.kernel[0] = a.kernel[1] = 2, a.strides[0] = a.strides[1] = 2, a.pads[0] = a.pads[3] = 1;
    a.ceil_mode = 1;
    assert_int_equal(crl_nn_graph_node(gb, CRL_NN_MAXPOOL, &v, 1, &a, &v, &err), CRL_OK);
    crl_nn_attrs_init(&a);
    a.kernel[0] = a.kernel[1] = 2, a.pads[0] = a.pads[1] = a.pads[2] = a.pads[3] = 1;
    a.count_include_pad = 1;
    assert_int_equal(crl_nn_graph_node(gb, CRL_NN_AVGPOOL, &v, 1, &a, &v, &err), CRL_OK);
    in[0] = v;
    assert_int_equal(crl_nn_graph_const(gb, w2, w2s, 4, &in[1], &err), CRL_OK);
    assert_int_equal(crl_nn_graph_node(gb, CRL_NN_CONV, in, 2, NULL, &v, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_node(gb, CRL_NN_GLOBAL_AVGPOOL, &v, 1, NULL, &v, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_finish(gb, &err), CRL_OK);

    crl_nn_ws_t *wa = NULL, *wb = NULL;
    assert_int_equal(crl_nn_ws_new(ga, 2, &wa), CRL_OK);
    assert_int_equal(crl_nn_ws_new(gb, 2, &wb), CRL_OK);
    assert_int_equal(crl_nn_run(ga, wa, x, 2, ya), CRL_OK);
    assert_int_equal(crl_nn_run(gb, wb, x, 2, yb), CRL_OK);
    assert_memory_equal(ya, yb, sizeof(ya));
    crl_nn_ws_free(wa);
    crl_nn_ws_free(wb);
    crl_nn_graph_free(ga);
    crl_nn_graph_free(gb);
}

static void test_conv_pool_model(void **state) {
    (void)state;
    check_conv_model("SAME_UPPER", CRL_NN_PAD_SAME_UPPER, 11);
    check_conv_model("SAME_LOWER", CRL_NN_PAD_SAME_LOWER, 17);
    check_conv_model("VALID", CRL_NN_PAD_VALID, 14);
    check_conv_model("NOTSET", CRL_NN_PAD_NOTSET, 13);
}

/* Attributes the importer refuses, each with a message naming the node. */
static void test_conv_bad_attrs(void **state) {
    (void)state;
    static pbw graph, node, model;
    const int64_t xd[3] = {2, 5, 5}, wd[4] = {2, 2, 3, 3}, yd[3] = {2, 3, 3}, k3[3] = {3, 3, 3};
    float w[36] = {0};
    for (int c = 0; c < 3; c++) {
        graph.n = 0;
        start_node(&node, c == 2 ? "MaxPool" : "Conv", "x", c == 2 ? NULL : "w", "y");
        if (c == 0) attr_str(&node, "auto_pad", "SAME");
        if (c == 1) attr_ints(&node, "kernel_shape", k3, 3);
        pb_msg(&graph, 1, &node);
        add_init(&graph, "w", wd, 4, w, 36);
        add_io(&graph, 11, "x", xd, 3);
        add_io(&graph, 12, "y", yd, 3);
        finish_model(&model, &graph, 14);
        crl_nn_graph_t *g = NULL;
        crl_err err = {{0}};
        crl_status st = crl_onnx_load_mem(model.b, model.n, &g, &err);
        assert_int_not_equal(st, CRL_OK);
        assert_null(g);
        assert_non_null(strstr(err.msg, "node 'y'"));
        const char *want[] = {"auto_pad", "only 2-D", "kernel_shape"};
        if (strstr(err.msg, want[c]) == NULL) fail_msg("\"%s\" lacks \"%s\"", err.msg, want[c]);
    }
}

/* x feeds both Relu and Tanh, whose outputs are added: a graph, not a chain, computes
 * relu(x) + tanh(x). */
static void test_branch(void **state) {
    (void)state;
    crl_nn_graph_t *g = NULL;
    crl_err err = {{0}};
    if (crl_onnx_load_file(ONNX_DIR "branch.onnx", &g, &err) != CRL_OK) fail_msg("%s", err.msg);
    size_t w = crl_nn_graph_input_width(g);
    assert_int_equal(crl_nn_graph_output_width(g), w);
    assert_int_equal(crl_nn_graph_num_ops(g), 3);
    assert_int_equal(crl_nn_graph_op(g, 2), CRL_NN_ADD);
    float x[2 * 64], y[2 * 64];
    assert_true(w <= 64);
    for (size_t i = 0; i < 2 * w; i++)
        x[i] = (float)i / 3.0f - 2.0f;
    crl_nn_ws_t *ws = NULL;
    assert_int_equal(crl_nn_ws_new(g, 2, &ws), CRL_OK);
    assert_int_equal(crl_nn_run(g, ws, x, 2, y), CRL_OK);
    for (size_t i = 0; i < 2 * w; i++)
        assert_true(fabs((double)y[i] - (fmax(x[i], 0.0) + tanh((double)x[i]))) <= 1e-6);
    crl_nn_ws_free(ws);
    crl_nn_graph_free(g);
}

static void test_double_weights(void **state) {
    (void)state;
    const char *const needles[] = {"node 'mm64'", "(op MatMul, opset", "DOUBLE", "only FLOAT",
                                   NULL};
    expect_error(ONNX_DIR "double_weights.onnx", CRL_EUNSUPPORTED, needles);
}

static void test_opset10(void **state) {
    (void)state;
    const char *const needles[] = {"opset 10", "11", NULL};
    expect_error(ONNX_DIR "mlp_opset10.onnx", CRL_EUNSUPPORTED, needles);
}

static void test_missing_file(void **state) {
    (void)state;
    const char *const needles[] = {"no_such_model.onnx", NULL};
    expect_error(ONNX_DIR "no_such_model.onnx", CRL_ENOTFOUND, needles);
    crl_nn_graph_t *g = NULL;
    assert_int_equal(crl_onnx_load_file(NULL, &g, NULL), CRL_EINVAL);
}

/* ---- Split, Slice, Gather, Transpose ----------------------------------------------------------
 */

/* An INT64 (dtype 7) or INT32 (dtype 6) initializer (raw_data, little-endian). */
static void add_init_int(pbw *graph, const char *name, const int64_t *dims, size_t rank, int dtype,
                         const int64_t *v, size_t n) {
    pbw t = {.n = 0};
    uint8_t raw[8 * 16];
    size_t w = dtype == 7 ? 8 : 4;
    assert_true(n <= 16);
    for (size_t i = 0; i < rank; i++)
        pb_int(&t, 1, dims[i]);
    pb_int(&t, 2, dtype);
    pb_str(&t, 8, name);
    for (size_t i = 0; i < n; i++)
        for (size_t b = 0; b < w; b++)
            raw[i * w + b] = (uint8_t)((uint64_t)v[i] >> (8 * b));
    pb_bytes(&t, 9, raw, n * w);
    pb_msg(graph, 5, &t);
}

#define MV_ROWS 2

/* Loads the model, runs MV_ROWS rows of x[i] = i * 0.5 - 7 and compares with want exactly (the
 * ops under test only move data). Returns the graph's op count. */
static size_t run_exact(const pbw *model, size_t in_w, const float *want, size_t out_w) {
    crl_nn_graph_t *g = NULL;
    crl_err err = {{0}};
    if (crl_onnx_load_mem(model->b, model->n, &g, &err) != CRL_OK) fail_msg("%s", err.msg);
    assert_int_equal(crl_nn_graph_input_width(g), in_w);
    assert_int_equal(crl_nn_graph_output_width(g), out_w);
    float x[MV_ROWS * 64], y[MV_ROWS * 64];
    assert_true(in_w <= 64 && out_w <= 64);
    for (size_t i = 0; i < MV_ROWS * in_w; i++)
        x[i] = (float)i * 0.5f - 7.0f;
    crl_nn_ws_t *ws = NULL;
    assert_int_equal(crl_nn_ws_new(g, MV_ROWS, &ws), CRL_OK);
    assert_int_equal(crl_nn_run(g, ws, x, MV_ROWS, y), CRL_OK);
    for (size_t i = 0; i < MV_ROWS * out_w; i++)
        if (y[i] != want[i])
            fail_msg("output %zu is %g, expected %g", i, (double)y[i], (double)want[i]);
    size_t ops = crl_nn_graph_num_ops(g);
    crl_nn_ws_free(ws);
    crl_nn_graph_free(g);
    return ops;
}

static void expect_load_error(const pbw *model, crl_status want, const char *const *needles) {
    crl_nn_graph_t *g = NULL;
    crl_err err = {{0}};
    assert_int_equal(crl_onnx_load_mem(model->b, model->n, &g, &err), want);
    assert_null(g);
    for (; *needles; needles++)
        if (strstr(err.msg, *needles) == NULL)
            fail_msg("error \"%s\" does not mention \"%s\"", err.msg, *needles);
}

/* x [B, 6] -> Split along `axis` into n parts (sizes: the 'split' attribute before opset 13, an
 * INT64 initializer from 13 on; NULL: equal parts) -> Concat of the parts in reverse order. */
static void build_split(pbw *model, int64_t opset, int64_t axis, const int64_t *sizes, size_t n) {
    static pbw graph, node;
    const int64_t xd[1] = {6}, sd[1] = {(int64_t)n};
    static const char *const parts[] = {"p0", "p1", "p2", "p3"};
    graph.n = 0;
    node.n = 0;
    pb_str(&node, 1, "x");
    if (sizes && opset >= 13) pb_str(&node, 1, "sizes");
    for (size_t k = 0; k < n; k++)
        pb_str(&node, 2, parts[k]);
    pb_str(&node, 3, "split");
    pb_str(&node, 4, "Split");
    attr_int1(&node, "axis", axis);
    if (sizes && opset < 13) attr_ints(&node, "split", sizes, n);
    pb_msg(&graph, 1, &node);
    node.n = 0;
    for (size_t k = n; k-- > 0;)
        pb_str(&node, 1, parts[k]);
    pb_str(&node, 2, "y");
    pb_str(&node, 3, "y");
    pb_str(&node, 4, "Concat");
    attr_int1(&node, "axis", 1);
    pb_msg(&graph, 1, &node);
    if (sizes && opset >= 13) add_init_int(&graph, "sizes", sd, 1, 7, sizes, n);
    add_io(&graph, 11, "x", xd, 1);
    add_io(&graph, 12, "y", xd, 1);
    finish_model(model, &graph, opset);
}

/* The parts of [0..6) of sizes sz[n], concatenated last first, as indices into a row. */
static void reversed_blocks(const int64_t *sz, size_t n, float *want) {
    size_t starts[4], pos = 0, o = 0;
    for (size_t k = 0; k < n; k++) {
        starts[k] = pos;
        pos += (size_t)sz[k];
    }
    for (size_t b = 0; b < MV_ROWS; b++)
        for (size_t k = n; k-- > 0;)
            for (size_t i = 0; i < (size_t)sz[k]; i++)
                want[o++] = (float)(b * 6 + starts[k] + i) * 0.5f - 7.0f;
}

static void test_split(void **state) {
    (void)state;
    static pbw model;
    const int64_t sizes[2] = {2, 4}, equal3[3] = {2, 2, 2}, whole[1] = {6};
    float want[MV_ROWS * 6];
    for (int64_t opset = 11; opset <= 17; opset += 2) {
        build_split(&model, opset, 1, sizes, 2); /* explicit sizes: attribute or input */
        reversed_blocks(sizes, 2, want);
        assert_int_equal(run_exact(&model, 6, want, 6), 3); /* 2 SLICE + CONCAT */
        build_split(&model, opset, -1, NULL, 3);            /* equal parts, negative axis */
        reversed_blocks(equal3, 3, want);
        assert_int_equal(run_exact(&model, 6, want, 6), 4);
        build_split(&model, opset, 1, NULL, 1); /* one part: the whole, a copy */
        reversed_blocks(whole, 1, want);
        run_exact(&model, 6, want, 6);
    }
}

static void test_split_errors(void **state) {
    (void)state;
    static pbw model;
    const int64_t bad_sum[2] = {2, 3}, zero[2] = {0, 6}, two[2] = {3, 3};
    const char *const batch[] = {"node 'split' (op Split, opset 13)", "batch axis (axis 0)", NULL};
    build_split(&model, 13, 0, NULL, 2);
    expect_load_error(&model, CRL_EUNSUPPORTED, batch);
    const char *const sum[] = {"add up to 5", NULL};
    build_split(&model, 11, 1, bad_sum, 2);
    expect_load_error(&model, CRL_ESHAPE, sum);
    build_split(&model, 13, 1, bad_sum, 2);
    expect_load_error(&model, CRL_ESHAPE, sum);
    const char *const empty[] = {"split size 0", NULL};
    build_split(&model, 14, 1, zero, 2);
    expect_load_error(&model, CRL_EUNSUPPORTED, empty);
    const char *const parts[] = {"does not split into 4 equal parts", NULL};
    build_split(&model, 11, 1, NULL, 4);
    expect_load_error(&model, CRL_ESHAPE, parts);
    const char *const axis[] = {"axis 2 is outside", NULL};
    build_split(&model, 13, 2, two, 2);
    expect_load_error(&model, CRL_ESHAPE, axis);
}

/* x [B, 3, 5] -> Slice (starts, ends, axes, steps as initializers of type `dtype`, steps and
 * axes optional) -> y. */
static void build_slice(pbw *model, int dtype, size_t n, const int64_t *starts, const int64_t *ends,
                        const int64_t *axes, const int64_t *steps, const int64_t *yd) {
    static pbw graph, node;
    const int64_t xd[2] = {3, 5}, nd[1] = {(int64_t)n};
    graph.n = 0;
    start_node(&node, "Slice", "x", "starts", "y");
    pb_str(&node, 1, "ends");
    if (axes || steps) pb_str(&node, 1, axes ? "axes" : "");
    if (steps) pb_str(&node, 1, "steps");
    pb_msg(&graph, 1, &node);
    add_init_int(&graph, "starts", nd, 1, dtype, starts, n);
    add_init_int(&graph, "ends", nd, 1, dtype, ends, n);
    if (axes) add_init_int(&graph, "axes", nd, 1, dtype, axes, n);
    if (steps) add_init_int(&graph, "steps", nd, 1, dtype, steps, n);
    add_io(&graph, 11, "x", xd, 2);
    add_io(&graph, 12, "y", yd, 2);
    finish_model(model, &graph, 13);
}

static void test_slice(void **state) {
    (void)state;
    static pbw model;
    float want[MV_ROWS * 15];
    /* Axis 1 backwards from -1 to INT64_MIN, axis -1 from -4 to INT64_MAX by 2: [B, 3, 2]. */
    const int64_t st[2] = {-1, -4}, en[2] = {INT64_MIN, INT64_MAX}, ax[2] = {1, -1},
                  sp[2] = {-1, 2}, yd[2] = {3, 2};
    build_slice(&model, 7, 2, st, en, ax, sp, yd);
    for (size_t b = 0, o = 0; b < MV_ROWS; b++)
        for (size_t i = 0; i < 3; i++)
            for (size_t j = 0; j < 2; j++)
                want[o++] = (float)(b * 15 + (2 - i) * 5 + 1 + 2 * j) * 0.5f - 7.0f;
    assert_int_equal(run_exact(&model, 15, want, 6), 1);
    /* INT32 bounds, no axes or steps (axes 0, 1): the whole batch, rows 1..2 clamped. */
    const int64_t st32[2] = {0, 1}, en32[2] = {INT32_MAX, 100}, yd32[2] = {2, 5};
    build_slice(&model, 6, 2, st32, en32, NULL, NULL, yd32);
    for (size_t b = 0, o = 0; b < MV_ROWS; b++)
        for (size_t i = 0; i < 10; i++)
            want[o++] = (float)(b * 15 + 5 + i) * 0.5f - 7.0f;
    assert_int_equal(run_exact(&model, 15, want, 10), 1);

    const char *const batch[] = {"node 'y' (op Slice, opset 13)", "batch axis (axis 0)", NULL};
    const int64_t st0[1] = {1}, en0[1] = {INT64_MAX}, ax0[1] = {0};
    build_slice(&model, 7, 1, st0, en0, ax0, NULL, yd);
    expect_load_error(&model, CRL_EUNSUPPORTED, batch);
    const char *const step0[] = {"a step is 0", NULL};
    const int64_t ax1[1] = {1}, zero[1] = {0};
    build_slice(&model, 7, 1, st0, en0, ax1, zero, yd);
    expect_load_error(&model, CRL_EFORMAT, step0);
    const char *const empty[] = {"is empty", NULL};
    build_slice(&model, 7, 1, en0, st0, ax1, NULL, yd);
    expect_load_error(&model, CRL_ESHAPE, empty);
}

/* x [B, 4, 5] -> Gather(axis, indices: an INT64 / INT32 initializer of shape idims) -> y. */
static void build_gather(pbw *model, int64_t axis, int dtype, const int64_t *ix,
                         const int64_t *idims, size_t irank, const int64_t *yd, size_t yrank) {
    static pbw graph, node;
    const int64_t xd[2] = {4, 5};
    size_t n = 1;
    for (size_t i = 0; i < irank; i++)
        n *= (size_t)idims[i];
    graph.n = 0;
    start_node(&node, "Gather", "x", "ix", "y");
    attr_int1(&node, "axis", axis);
    pb_msg(&graph, 1, &node);
    add_init_int(&graph, "ix", idims, irank, dtype, ix, n);
    add_io(&graph, 11, "x", xd, 2);
    add_io(&graph, 12, "y", yd, yrank);
    finish_model(model, &graph, 14);
}

static void test_gather(void **state) {
    (void)state;
    static pbw model;
    float want[MV_ROWS * 20];
    const int64_t list[3] = {3, -1, 0}, ld[1] = {3}, yd1[2] = {3, 5};
    for (int dtype = 6; dtype <= 7; dtype++) {
        build_gather(&model, 1, dtype, list, ld, 1, yd1, 2);
        for (size_t b = 0, o = 0; b < MV_ROWS; b++)
            for (size_t j = 0; j < 3; j++)
                for (size_t k = 0; k < 5; k++)
                    want[o++] =
                        (float)(b * 20 + (size_t)(j == 1 ? 3 : list[j]) * 5 + k) * 0.5f - 7.0f;
        assert_int_equal(run_exact(&model, 20, want, 15), 1);
    }
    /* A scalar (rank-0) index removes the axis: x[:, :, -2] is [B, 4]. */
    const int64_t m2[1] = {-2}, yd2[1] = {4};
    build_gather(&model, -1, 7, m2, NULL, 0, yd2, 1);
    for (size_t b = 0, o = 0; b < MV_ROWS; b++)
        for (size_t i = 0; i < 4; i++)
            want[o++] = (float)(b * 20 + i * 5 + 3) * 0.5f - 7.0f;
    assert_int_equal(run_exact(&model, 20, want, 4), 1);

    const char *const batch[] = {"node 'y' (op Gather, opset 14)", "batch axis (axis 0)", NULL};
    build_gather(&model, 0, 7, list, ld, 1, yd1, 2);
    expect_load_error(&model, CRL_EUNSUPPORTED, batch);
    const char *const range[] = {"index 5 is outside axis 2 of size 5", NULL};
    const int64_t far[1] = {5}, fd[1] = {1};
    build_gather(&model, 2, 7, far, fd, 1, yd1, 2);
    expect_load_error(&model, CRL_ESHAPE, range);
}

/* Ten INT64 indices (int64_data) from a Constant node, more than a shape ever has: they stay a
 * tensor until Gather reads them. x [B, 4, 5] -> [B, 4, 10]. */
static void test_gather_constant_node(void **state) {
    (void)state;
    static pbw graph, node, model;
    const int64_t xd[2] = {4, 5}, yd[2] = {4, 10}, ix[10] = {4, 3, 2, 1, 0, -1, -2, -3, -4, -5};
    pbw t = {.n = 0}, a = {.n = 0};
    graph.n = 0;
    node.n = 0;
    pb_str(&node, 2, "ix");
    pb_str(&node, 3, "ix");
    pb_str(&node, 4, "Constant");
    pb_int(&t, 1, 10);
    pb_int(&t, 2, 7);
    for (size_t i = 0; i < 10; i++)
        pb_int(&t, 7, ix[i]);
    pb_str(&a, 1, "value");
    pb_msg(&a, 5, &t);
    pb_int(&a, 20, 4);
    pb_msg(&node, 5, &a);
    pb_msg(&graph, 1, &node);
    start_node(&node, "Gather", "x", "ix", "y");
    attr_int1(&node, "axis", 2);
    pb_msg(&graph, 1, &node);
    add_io(&graph, 11, "x", xd, 2);
    add_io(&graph, 12, "y", yd, 2);
    finish_model(&model, &graph, 15);
    float want[MV_ROWS * 40];
    for (size_t b = 0, o = 0; b < MV_ROWS; b++)
        for (size_t i = 0; i < 4; i++)
            for (size_t j = 0; j < 10; j++)
                want[o++] =
                    (float)(b * 20 + i * 5 + (size_t)(ix[j] < 0 ? ix[j] + 5 : ix[j])) * 0.5f - 7.0f;
    assert_int_equal(run_exact(&model, 20, want, 40), 1);
}

/* Gather from a FLOAT initializer W [3, 4] (row 1, then row -1 of that) folds into a constant:
 * x [B, 4] + W[1] is one ADD. */
static void test_gather_constant_folds(void **state) {
    (void)state;
    static pbw graph, node, model;
    const int64_t wd[2] = {3, 4}, xd[1] = {4};
    const float w[12] = {1, 2, 3, 4, 10, 20, 30, 40, 100, 200, 300, 400};
    const int64_t one[1] = {1};
    graph.n = 0;
    start_node(&node, "Gather", "w", "one", "row");
    pb_msg(&graph, 1, &node);
    start_node(&node, "Add", "x", "row", "y");
    pb_msg(&graph, 1, &node);
    add_init(&graph, "w", wd, 2, w, 12);
    add_init_int(&graph, "one", NULL, 0, 7, one, 1);
    add_io(&graph, 11, "x", xd, 1);
    add_io(&graph, 12, "y", xd, 1);
    finish_model(&model, &graph, 13);
    float want[MV_ROWS * 4];
    for (size_t i = 0; i < MV_ROWS * 4; i++)
        want[i] = ((float)i * 0.5f - 7.0f) + w[4 + i % 4];
    assert_int_equal(run_exact(&model, 4, want, 4), 1);
}

/* x [B, 2, 3, 4] -> Transpose(perm) -> y; without perm the dims reverse, moving the batch. */
static void build_transpose(pbw *model, const int64_t *perm, size_t n) {
    static pbw graph, node;
    const int64_t xd[3] = {2, 3, 4}, yd[3] = {3, 4, 2};
    graph.n = 0;
    start_node(&node, "Transpose", "x", NULL, "y");
    if (perm) attr_ints(&node, "perm", perm, n);
    pb_msg(&graph, 1, &node);
    add_io(&graph, 11, "x", xd, 3);
    add_io(&graph, 12, "y", yd, 3);
    finish_model(model, &graph, 17);
}

static void test_transpose(void **state) {
    (void)state;
    static pbw model;
    float want[MV_ROWS * 24];
    const int64_t nhwc[4] = {0, 2, 3, 1};
    build_transpose(&model, nhwc, 4);
    for (size_t b = 0, o = 0; b < MV_ROWS; b++)
        for (size_t h = 0; h < 3; h++)
            for (size_t w = 0; w < 4; w++)
                for (size_t c = 0; c < 2; c++)
                    want[o++] = (float)(b * 24 + (c * 3 + h) * 4 + w) * 0.5f - 7.0f;
    assert_int_equal(run_exact(&model, 24, want, 24), 1);

    const char *const dflt[] = {"node 'y' (op Transpose, opset 17)", "batch axis (axis 0)",
                                "position 3", NULL};
    build_transpose(&model, NULL, 0);
    expect_load_error(&model, CRL_EUNSUPPORTED, dflt);
    const char *const len[] = {"3 entries for a 4-D value", NULL};
    build_transpose(&model, nhwc, 3);
    expect_load_error(&model, CRL_ESHAPE, len);
}

/* torch's chunk(): Shape(x) -> Gather(pick) -> Div by 2 -> the end of a Slice of axis 1, all
 * worked out at load time. Picking the batch size, or moving it, is refused. */
static void build_chunk(pbw *model, const int64_t *pick, size_t n) {
    static pbw graph, node;
    const int64_t xd[1] = {6}, yd[1] = {3}, nd[1] = {(int64_t)n}, one[1] = {1}, two[1] = {2},
                  zero[1] = {0};
    graph.n = 0;
    start_node(&node, "Shape", "x", NULL, "shape");
    pb_msg(&graph, 1, &node);
    start_node(&node, "Gather", "shape", "pick", "width");
    pb_msg(&graph, 1, &node);
    start_node(&node, "Div", "width", "two", "half");
    pb_msg(&graph, 1, &node);
    start_node(&node, "Slice", "x", "zero", "y");
    pb_str(&node, 1, "half");
    pb_str(&node, 1, "one");
    pb_msg(&graph, 1, &node);
    add_init_int(&graph, "pick", nd, 1, 7, pick, n);
    add_init_int(&graph, "two", one, 1, 7, two, 1);
    add_init_int(&graph, "zero", one, 1, 7, zero, 1);
    add_init_int(&graph, "one", one, 1, 7, one, 1);
    add_io(&graph, 11, "x", xd, 1);
    add_io(&graph, 12, "y", yd, 1);
    finish_model(model, &graph, 13);
}

static void test_shape_arithmetic(void **state) {
    (void)state;
    static pbw model;
    const int64_t width[1] = {1}, batch[1] = {0}, moved[2] = {1, 0};
    float want[MV_ROWS * 3];
    build_chunk(&model, width, 1);
    for (size_t b = 0, o = 0; b < MV_ROWS; b++)
        for (size_t i = 0; i < 3; i++)
            want[o++] = (float)(b * 6 + i) * 0.5f - 7.0f;
    assert_int_equal(run_exact(&model, 6, want, 3), 1);
    const char *const arith[] = {"node 'half' (op Div", "run-time batch size", NULL};
    build_chunk(&model, batch, 1);
    expect_load_error(&model, CRL_EUNSUPPORTED, arith);
    const char *const move[] = {"node 'width' (op Gather", "batch size would move", NULL};
    build_chunk(&model, moved, 2);
    expect_load_error(&model, CRL_EUNSUPPORTED, move);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_torch_opset11),
        cmocka_unit_test(test_torch_opset14),
        cmocka_unit_test(test_torch_opset17),
        cmocka_unit_test(test_matmul_add),
        cmocka_unit_test(test_identity_flatten),
        cmocka_unit_test(test_load_mem_matches_file),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_unsupported_op),
        cmocka_unit_test(test_branch),
        cmocka_unit_test(test_double_weights),
        cmocka_unit_test(test_opset10),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_conv_not_2d),
        cmocka_unit_test(test_conv_pool_model),
        cmocka_unit_test(test_conv_bad_attrs),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_split_errors),
        cmocka_unit_test(test_slice),
        cmocka_unit_test(test_gather),
        cmocka_unit_test(test_gather_constant_folds),
        cmocka_unit_test(test_transpose),
        cmocka_unit_test(test_shape_arithmetic),
        cmocka_unit_test(test_movement),
        cmocka_unit_test(test_gather_constant_node),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
