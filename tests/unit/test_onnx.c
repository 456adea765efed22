/* test_onnx.c: loads the committed models of tests/data/onnx (written by make_onnx_tests.py) and
 * compares carlarl's forward pass with the outputs torch/numpy computed; then the load errors a
 * user can meet: truncated or garbage files, unsupported operators, old opsets, a
 * missing file. Conv and the pools are checked on a model encoded here (attribute mapping, auto_pad
 * strings) against the same graph built directly (whose numbers test_nn.c checks). */
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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_torch_opset11),    cmocka_unit_test(test_torch_opset14),
        cmocka_unit_test(test_torch_opset17),    cmocka_unit_test(test_matmul_add),
        cmocka_unit_test(test_identity_flatten), cmocka_unit_test(test_load_mem_matches_file),
        cmocka_unit_test(test_truncated),        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_unsupported_op),   cmocka_unit_test(test_branch),
        cmocka_unit_test(test_double_weights),   cmocka_unit_test(test_opset10),
        cmocka_unit_test(test_missing_file),     cmocka_unit_test(test_conv_not_2d),
        cmocka_unit_test(test_conv_pool_model),  cmocka_unit_test(test_conv_bad_attrs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
