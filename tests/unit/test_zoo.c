/* test_zoo.c: every policy of the zoo (tests/data/zoo, docs/zoo.md) loads through the ONNX
 * importer and matches the torch goldens at batch 1, 7 and 64, within 1e-5 absolute or 1e-4
 * relative, on every kernel table this CPU runs. nature_cnn (Conv, goldens at batch 1 and 7 only)
 * also checks that the convolutions run as CONV nodes with a LINEAR head. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hw/hw.h"
#include "kernels/kernels.h"
#include "model/onnx.h"
#include "nn/graph.h"

#ifndef CRL_TEST_DATA
#error "CRL_TEST_DATA must name the tests/data directory"
#endif
#define ZOO_DIR CRL_TEST_DATA "/zoo/"

typedef struct golden {
    size_t rows, in_width, out_width;
    float *x, *y;
} golden;

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Reads golden_b<N>.bin (docs/zoo.md, version 1, one output); fails the test on any mismatch. */
static void read_golden(const char *path, golden *gd) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) fail_msg("cannot open %s", path);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n > 0);
    rewind(f);
    uint8_t *b = malloc((size_t)n);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    size_t len = (size_t)n, pos = 0;
#define NEED(k)                                                                                    \
    do {                                                                                           \
        if (pos + (k) > len) fail_msg("%s: truncated", path);                                      \
    } while (0)
    NEED(12);
    assert_memory_equal(b, "CRLG", 4);
    assert_int_equal(le32(b + 4), 1);
    size_t rank = le32(b + 8);
    pos = 12;
    assert_true(rank >= 2 && rank <= 6);
    NEED(4 * rank);
    gd->rows = le32(b + pos);
    gd->in_width = 1;
    for (size_t i = 1; i < rank; i++)
        gd->in_width *= le32(b + pos + 4 * i);
    pos += 4 * rank;
    NEED(8);
    assert_int_equal(le32(b + pos), 1); /* one output */
    size_t orank = le32(b + pos + 4);
    pos += 8;
    assert_true(orank >= 2 && orank <= 6);
    NEED(4 * orank);
    assert_int_equal(le32(b + pos), gd->rows);
    gd->out_width = 1;
    for (size_t i = 1; i < orank; i++)
        gd->out_width *= le32(b + pos + 4 * i);
    pos += 4 * orank;
    size_t nx = gd->rows * gd->in_width, ny = gd->rows * gd->out_width;
    assert_int_equal(len, pos + 4 * (nx + ny)); /* no trailing bytes */
    gd->x = malloc(nx * sizeof(float));
    gd->y = malloc(ny * sizeof(float));
    assert_non_null(gd->x);
    assert_non_null(gd->y);
    memcpy(gd->x, b + pos, nx * sizeof(float)); /* little-endian host */
    memcpy(gd->y, b + pos + 4 * nx, ny * sizeof(float));
    free(b);
#undef NEED
}

static const char *const table_names[] = {"generic", "avx2", "avx512", "neon"};
#define N_TABLES (sizeof(table_names) / sizeof(table_names[0]))

/* Loads `name` under every table this CPU runs and checks the first n_batches golden batches of
 * 1, 7, 64. Returns the op count of the last load. */
static size_t check_batches(const char *name, size_t n_batches) {
    unsigned isas = crl_kernels_isas_for(crl_hw_cpu_features());
    static const size_t batches[] = {1, 7, 64};
    size_t ops = 0;
    for (size_t t = 0; t < N_TABLES; t++) {
        if (strcmp(crl_kernels_choose(isas, table_names[t])->name, table_names[t]) != 0) continue;
        char path[512];
        crl_err err = {{0}};
        crl_nn_graph_t *g = NULL;
        snprintf(path, sizeof(path), ZOO_DIR "%s/model.onnx", name);
        if (crl_onnx_load_file(path, &g, &err) != CRL_OK) fail_msg("%s: %s", name, err.msg);
        ops = crl_nn_graph_num_ops(g);
        crl_nn_ws_t *ws = NULL;
        assert_int_equal(crl_nn_ws_new(g, 64, &ws), CRL_OK);
        for (size_t bi = 0; bi < n_batches; bi++) {
            golden gd;
            snprintf(path, sizeof(path), ZOO_DIR "%s/golden_b%zu.bin", name, batches[bi]);
            read_golden(path, &gd);
            assert_int_equal(gd.rows, batches[bi]);
            assert_int_equal(crl_nn_graph_input_width(g), gd.in_width);
            assert_int_equal(crl_nn_graph_output_width(g), gd.out_width);
            float *y = malloc(gd.rows * gd.out_width * sizeof(float));
            assert_non_null(y);
            assert_int_equal(crl_nn_run(g, ws, gd.x, gd.rows, y), CRL_OK);
            double worst = 0;
            for (size_t i = 0; i < gd.rows * gd.out_width; i++) {
                double e = fabs((double)y[i] - (double)gd.y[i]);
                if (!(e <= 1e-5 || e <= 1e-4 * fabs((double)gd.y[i])))
                    fail_msg("%s (%s kernels, batch %zu): output %zu is %.9g, torch %.9g", name,
                             table_names[t], gd.rows, i, (double)y[i], (double)gd.y[i]);
                if (e > worst) worst = e;
            }
            printf("%-14s %-8s batch %2zu: max abs error %.3g\n", name, table_names[t], gd.rows,
                   worst);
            free(y);
            free(gd.x);
            free(gd.y);
        }
        crl_nn_ws_free(ws);
        crl_nn_graph_free(g);
    }
    crl_kernels_choose(0, "generic");
    return ops;
}

static size_t check_model(const char *name) {
    return check_batches(name, 3);
}

static void test_example_mlp(void **state) {
    (void)state;
    assert_int_equal(check_model("example_mlp"), 6);
}

/* Shape + Expand of the log-std constant becomes one broadcast (EXPAND) of a constant. */
static void test_ppo_gaussian(void **state) {
    (void)state;
    assert_int_equal(check_model("ppo_gaussian"), 7); /* 3 LINEAR, 2 TANH, EXPAND, CONCAT */
}

/* Clip's bounds come from rank-0 Constant nodes; a Gemm output feeds two heads. */
static void test_sac_squashed(void **state) {
    (void)state;
    assert_int_equal(check_model("sac_squashed"), 8); /* 4 LINEAR, 2 RELU, CLIP, CONCAT */
}

/* Flatten of [B, 15, 6] vanishes; ReduceMean, Sub and Add broadcast [B, 1] against [B, 5]. */
static void test_dueling_dqn(void **state) {
    (void)state;
    assert_int_equal(check_model("dueling_dqn"), 9);
}

static void test_layernorm_mlp(void **state) {
    (void)state;
    check_model("layernorm_mlp");
}

/* BatchNormalization folds into the Gemm before it: LINEAR RELU LINEAR. */
static void test_batchnorm_mlp(void **state) {
    (void)state;
    assert_int_equal(check_model("batchnorm_mlp"), 3);
}

/* 3 Conv + 4 Relu + Flatten + 2 Gemm: the Flatten vanishes, the rest runs as is. */
static void test_nature_cnn(void **state) {
    (void)state;
    assert_int_equal(check_batches("nature_cnn", 2), 9);
    crl_nn_graph_t *g = NULL;
    crl_err err = {{0}};
    assert_int_equal(crl_onnx_load_file(ZOO_DIR "nature_cnn/model.onnx", &g, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_op(g, 0), CRL_NN_CONV);
    assert_int_equal(crl_nn_graph_op(g, 2), CRL_NN_CONV);
    assert_int_equal(crl_nn_graph_op(g, 4), CRL_NN_CONV);
    assert_int_equal(crl_nn_graph_op(g, 6), CRL_NN_LINEAR);
    assert_int_equal(crl_nn_graph_input_width(g), 4 * 84 * 84);
    crl_nn_graph_free(g);
}

int main(void) {
    crl_kernels_choose(0, "generic");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_mlp),   cmocka_unit_test(test_ppo_gaussian),
        cmocka_unit_test(test_sac_squashed),  cmocka_unit_test(test_dueling_dqn),
        cmocka_unit_test(test_layernorm_mlp), cmocka_unit_test(test_batchnorm_mlp),
        cmocka_unit_test(test_nature_cnn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
