/* test_onnx.c: loads the committed models of tests/data/onnx (written by make_onnx_tests.py) and
 * compares carlarl's forward pass with the outputs torch/numpy computed; then the load errors a
 * user can meet: truncated or garbage files, unsupported operators, old opsets, a
 * missing file. */
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

static void test_unsupported_op(void **state) {
    (void)state;
    const char *const needles[] = {"node 'conv1'", "(op Conv, opset 13)", "unsupported operator",
                                   NULL};
    expect_error(ONNX_DIR "conv.onnx", CRL_EUNSUPPORTED, needles);
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
    crl_kernels_select("generic");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_torch_opset11),    cmocka_unit_test(test_torch_opset14),
        cmocka_unit_test(test_torch_opset17),    cmocka_unit_test(test_matmul_add),
        cmocka_unit_test(test_identity_flatten), cmocka_unit_test(test_load_mem_matches_file),
        cmocka_unit_test(test_truncated),        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_unsupported_op),   cmocka_unit_test(test_branch),
        cmocka_unit_test(test_double_weights),   cmocka_unit_test(test_opset10),
        cmocka_unit_test(test_missing_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
