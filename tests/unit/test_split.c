/* test_split.c: a batch split by rows across 1-4 compute threads (nn/split.h) gives bit for bit
 * the output of one crl_nn_run over the whole batch, for batches of 1, 7, 63, 64, 65, 256 and 1000
 * rows, on the example MLP and zoo models (nature_cnn's convolutions included), under every kernel
 * table this CPU runs; the chunking rule; and the model path (crl_model_set_pool +
 * crl_model_predict) answers exactly as without a pool. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/pool.h"
#include "hw/hw.h"
#include "json/predict.h"
#include "kernels/kernels.h"
#include "model/example.h"
#include "model/model.h"
#include "model/onnx.h"
#include "nn/split.h"

static const char *const table_names[] = {"generic", "avx2", "avx512"};
static const size_t all_rows[] = {1, 7, 63, 64, 65, 256, 1000};

static void test_chunks(void **state) {
    (void)state;
    assert_int_equal(crl_nn_split_chunk(1, 4, 2, 0), 1);       /* batch 1 never splits */
    assert_int_equal(crl_nn_split_chunk(1000, 1, 2, 0), 1000); /* one thread */
    assert_int_equal(crl_nn_split_chunk(63, 4, 64, 0), 63);    /* below min_rows */
    assert_int_equal(crl_nn_split_chunk(7, 2, 2, 0), 4);       /* small chunks stay small */
    assert_int_equal(crl_nn_split_chunk(3, 4, 2, 0), 1);
    assert_int_equal(crl_nn_split_chunk(64, 2, 64, 0), 32);
    assert_int_equal(crl_nn_split_chunk(65, 2, 2, 0), 40);      /* 33 rounded to a block of 8 */
    assert_int_equal(crl_nn_split_chunk(1000, 3, 2, 0), 336);   /* 336 + 336 + 328 */
    assert_int_equal(crl_nn_split_chunk(1000, 2, 2, 104), 104); /* capped: more chunks */
}

/* Runs g over each batch size of x whole, then split over 1..4 threads: all outputs must be equal.
 */
static void check_graph(const char *what, const crl_nn_graph_t *g, const float *x,
                        const size_t *rows_list, size_t n_rows) {
    size_t max_rows = 0, out = crl_nn_graph_output_width(g);
    for (size_t i = 0; i < n_rows; i++)
        if (rows_list[i] > max_rows) max_rows = rows_list[i];
    crl_nn_ws_t *ws = NULL;
    assert_int_equal(crl_nn_ws_new(g, max_rows, &ws), CRL_OK);
    float *want = malloc(max_rows * out * sizeof(float));
    float *got = malloc(max_rows * out * sizeof(float));
    assert_non_null(want);
    assert_non_null(got);
    crl_pool_t *pools[4] = {NULL};
    crl_nn_split_t *splits[4] = {NULL};
    for (size_t t = 0; t < 4; t++) {
        assert_int_equal(crl_pool_new(t + 1, &pools[t]), CRL_OK);
        assert_int_equal(crl_nn_split_new(g, pools[t], 2, max_rows, &splits[t]), CRL_OK);
    }
    for (size_t i = 0; i < n_rows; i++) {
        size_t rows = rows_list[i];
        assert_int_equal(crl_nn_run(g, ws, x, rows, want), CRL_OK);
        for (size_t t = 0; t < 4; t++) {
            memset(got, 0xff, rows * out * sizeof(float));
            assert_int_equal(crl_nn_split_run(splits[t], g, ws, x, rows, got), CRL_OK);
            if (memcmp(got, want, rows * out * sizeof(float)) != 0)
                fail_msg("%s (%s kernels): %zu rows on %zu threads differ from one thread", what,
                         crl_kernels()->name, rows, t + 1);
        }
    }
    for (size_t t = 0; t < 4; t++) {
        crl_nn_split_free(splits[t]);
        crl_pool_free(pools[t]);
    }
    free(want);
    free(got);
    crl_nn_ws_free(ws);
}

static float *inputs(size_t rows, size_t width) {
    float *x = malloc(rows * width * sizeof(float));
    assert_non_null(x);
    uint32_t r = 12345;
    for (size_t i = 0; i < rows * width; i++) {
        r = r * 1664525u + 1013904223u;
        x[i] = (float)(r >> 8) / (float)(1u << 24) * 2.0f - 1.0f;
    }
    return x;
}

/* Loads the graph after each table is chosen (as the server does: packed weights are the table's)
 * and checks it. `zoo` NULL: the built-in example. */
static void check_tables(const char *zoo, const size_t *rows_list, size_t n_rows) {
    unsigned isas = crl_kernels_isas_for(crl_hw_cpu_features());
    int ran = 0;
    for (size_t t = 0; t < 3; t++) {
        if (strcmp(crl_kernels_choose(isas, table_names[t])->name, table_names[t]) != 0) continue;
        crl_nn_graph_t *g = NULL;
        crl_err err = {{0}};
        char path[512];
        snprintf(path, sizeof(path), CRL_TEST_DATA "/zoo/%s/model.onnx", zoo ? zoo : "");
        crl_status st = zoo ? crl_onnx_load_file(path, &g, &err) : crl_example_graph(&g, &err);
        if (st != CRL_OK) fail_msg("%s: %s", zoo ? zoo : "example", err.msg);
        size_t max_rows = 0;
        for (size_t i = 0; i < n_rows; i++)
            if (rows_list[i] > max_rows) max_rows = rows_list[i];
        float *x = inputs(max_rows, crl_nn_graph_input_width(g));
        check_graph(zoo ? zoo : "example", g, x, rows_list, n_rows);
        free(x);
        crl_nn_graph_free(g);
        ran++;
    }
    assert_true(ran >= 1);
    crl_kernels_choose(0, "generic");
}

static void test_example_mlp(void **state) {
    (void)state;
    check_tables(NULL, all_rows, sizeof(all_rows) / sizeof(all_rows[0]));
}

/* LayerNorm and a reduction per row. */
static void test_zoo_mlps(void **state) {
    (void)state;
    check_tables("layernorm_mlp", all_rows, sizeof(all_rows) / sizeof(all_rows[0]));
    check_tables("dueling_dqn", all_rows, sizeof(all_rows) / sizeof(all_rows[0]));
}

/* Convolutions. A nature_cnn row costs ~0.35 ms (more with the generic table), so the sweep stops
 * at 65 rows here (chunks of 40+25 on two threads, 24+24+17 on three or four); 256 and 1000
 * rows are covered above. */
static void test_zoo_nature_cnn(void **state) {
    (void)state;
    check_tables("nature_cnn", all_rows, 5);
}

/* ---- the model path ------------------------------------------------------------------------- */

static void predict(const crl_model_t *m, size_t n, float *actions) {
    static float speed[1000], steering[1000], sensors[1000 * 3];
    static uint32_t off[1000], len[1000];
    for (size_t i = 0; i < n; i++) {
        speed[i] = (float)(i % 40);
        steering[i] = (float)((int)(i % 9) - 4) * 0.2f;
        off[i] = (uint32_t)(i * 3);
        len[i] = 3;
        for (size_t k = 0; k < 3; k++)
            sensors[i * 3 + k] = (float)((i * 3 + k) % 11) * 0.1f;
    }
    crl_predict_req_t req = {.n = n,
                             .speed = speed,
                             .steering = steering,
                             .sensor_off = off,
                             .sensor_len = len,
                             .sensors = sensors,
                             .max_sensors = 3,
                             .deterministic = 1};
    crl_nn_ws_t *ws = NULL;
    assert_int_equal(crl_nn_ws_new(m->graph, n, &ws), CRL_OK);
    float *x = malloc(n * m->in_width * sizeof(float));
    float *y = malloc(n * m->out_width * sizeof(float));
    crl_err err = {{0}};
    assert_int_equal(crl_model_predict(m, ws, &req, x, y, actions, &err), CRL_OK);
    free(x);
    free(y);
    crl_nn_ws_free(ws);
}

static void test_model_predict(void **state) {
    (void)state;
    crl_model_t *plain = NULL, *split = NULL;
    crl_err err = {{0}};
    assert_int_equal(crl_model_load_builtin(&plain, &err), CRL_OK);
    assert_int_equal(crl_model_load_builtin(&split, &err), CRL_OK);
    crl_pool_t *p = NULL;
    assert_int_equal(crl_pool_new(2, &p), CRL_OK);
    assert_int_equal(crl_model_set_pool(split, p, 64, 1000, &err), CRL_OK);
    assert_non_null(split->split);
    assert_int_equal(split->parallel_min_rows, 64);
    static float a[1000 * 3], b[1000 * 3];
    for (size_t i = 0; i < sizeof(all_rows) / sizeof(all_rows[0]); i++) {
        predict(plain, all_rows[i], a);
        predict(split, all_rows[i], b);
        assert_memory_equal(a, b, all_rows[i] * 3 * sizeof(float));
    }
    /* A one-thread pool leaves the model unsplit; min_rows 0 measures a threshold (>= 2). */
    crl_pool_t *one = NULL;
    assert_int_equal(crl_pool_new(1, &one), CRL_OK);
    assert_int_equal(crl_model_set_pool(plain, one, 0, 1000, &err), CRL_OK);
    assert_null(plain->split);
    crl_model_t *measured = NULL;
    assert_int_equal(crl_model_load_builtin(&measured, &err), CRL_OK);
    assert_int_equal(crl_model_set_pool(measured, p, 0, 1000, &err), CRL_OK);
    assert_true(measured->parallel_min_rows >= 2);
    printf("example MLP: measured parallel_min_rows %zu\n", measured->parallel_min_rows);
    crl_model_unref(measured);
    crl_model_unref(plain);
    crl_model_unref(split);
    crl_pool_free(one);
    crl_pool_free(p);
}

int main(void) {
    crl_kernels_choose(0, "generic");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chunks),        cmocka_unit_test(test_example_mlp),
        cmocka_unit_test(test_zoo_mlps),      cmocka_unit_test(test_zoo_nature_cnn),
        cmocka_unit_test(test_model_predict),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
