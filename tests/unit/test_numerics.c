/* test_numerics.c: the exported example artifact, run through carlarl's parser, preprocessor and
 * network, matches torch on the same inputs (max abs error <= 1e-5) at batch sizes 1, 7 and 1000;
 * and the built-in example gives bit-identical answers to the file-loaded artifact. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "config/yaml.h"
#include "hw/hw.h"
#include "isa.h"
#include "kernels/kernels.h"
#include "json/predict.h"
#include "model/model.h"

#define ARTIFACT CRL_TEST_DATA "/artifacts/v0.1.0"

/* Reads a [rows][cols] matrix node of the golden file into a new array. */
static float *matrix(const crl_yaml_node_t *n, size_t rows, size_t cols) {
    assert_non_null(n);
    assert_int_equal(n->kind, CRL_YAML_SEQ);
    assert_int_equal(n->n, rows);
    float *m = malloc(rows * cols * sizeof(float));
    for (size_t r = 0; r < rows; r++) {
        assert_int_equal(n->items[r]->n, cols);
        for (size_t c = 0; c < cols; c++) {
            double d;
            assert_int_equal(crl_yaml_double(n->items[r]->items[c], &d), CRL_OK);
            m[r * cols + c] = (float)d;
        }
    }
    return m;
}

static void run_golden(size_t batch) {
    char path[512];
    snprintf(path, sizeof(path), CRL_TEST_DATA "/golden/golden_b%zu.json", batch);
    crl_yaml_node_t *doc = NULL;
    crl_err err = {{0}};
    assert_int_equal(crl_yaml_load_file(path, &doc, &err), CRL_OK);

    /* The request goes through the real body parser, as text. */
    crl_buf body;
    crl_buf_init(&body, 16u << 20);
    assert_int_equal(crl_yaml_write_json(crl_yaml_get(doc, "request"), &body), CRL_OK);
    crl_predict_parser_t *parser = NULL;
    assert_int_equal(crl_predict_parser_new(&parser), CRL_OK);
    crl_predict_req_t req;
    assert_int_equal(crl_predict_parse(parser, body.data, body.len, &req), CRL_OK);
    assert_int_equal(req.n, batch);

    crl_model_t *m = NULL;
    assert_int_equal(crl_model_load_dir(ARTIFACT, "v0.1.0", &m, &err), CRL_OK);
    float *want_x = matrix(crl_yaml_get(doc, "features"), batch, m->in_width);
    float *want_y = matrix(crl_yaml_get(doc, "outputs"), batch, m->out_width);

    crl_nn_ws_t *ws = NULL;
    assert_int_equal(crl_nn_ws_new(m->graph, batch, &ws), CRL_OK);
    float *x = malloc(batch * m->in_width * sizeof(float));
    float *y = malloc(batch * m->out_width * sizeof(float));
    float *act = malloc(batch * 3 * sizeof(float));
    assert_int_equal(crl_model_predict(m, ws, &req, x, y, act, &err), CRL_OK);

    /* Features: the original's float32 numpy math, exactly. */
    for (size_t i = 0; i < batch * m->in_width; i++)
        assert_true(x[i] == want_x[i]);
    double max_err = 0;
    /* Not fmax, which would skip a NaN output (and makes aarch64 GCC 12's vectorizer crash). */
    for (size_t i = 0; i < batch * m->out_width; i++) {
        double e = fabs((double)y[i] - (double)want_y[i]);
        if (isnan(e) || e > max_err) max_err = e;
    }
    printf("batch %zu: max |carlarl - torch| = %.3g\n", batch, max_err);
    assert_true(max_err <= 1e-5);
    /* Actions are the outputs clipped to the action space. */
    for (size_t r = 0; r < batch; r++) {
        assert_true(act[r * 3 + 0] == fminf(fmaxf(y[r * 3 + 0], 0.0f), 1.0f));
        assert_true(act[r * 3 + 1] == fminf(fmaxf(y[r * 3 + 1], 0.0f), 1.0f));
        assert_true(act[r * 3 + 2] == fminf(fmaxf(y[r * 3 + 2], -1.0f), 1.0f));
    }

    /* The built-in example answers bit-identically. */
    crl_model_t *b = NULL;
    assert_int_equal(crl_model_load_builtin(&b, &err), CRL_OK);
    float *act2 = malloc(batch * 3 * sizeof(float));
    assert_int_equal(crl_model_predict(b, ws, &req, x, y, act2, &err), CRL_OK);
    assert_memory_equal(act, act2, batch * 3 * sizeof(float));

    free(act2);
    crl_model_unref(b);
    free(act);
    free(y);
    free(x);
    free(want_y);
    free(want_x);
    crl_nn_ws_free(ws);
    crl_model_unref(m);
    crl_predict_parser_free(parser);
    crl_buf_free(&body);
    crl_yaml_free(doc);
}

/* Each golden batch through every kernel table this CPU runs (generic, then the ISA tables). */
static void run_all_tables(size_t batch) {
    unsigned runs = crl_kernels_isas_for(crl_hw_cpu_features());
    for (size_t i = 0; i < CRL_TEST_N_TABLES; i++) {
        if (!crl_test_covers(crl_test_tables[i])) continue;
        const crl_kernels_t *k = crl_kernels_choose(runs, crl_test_tables[i]);
        assert_string_equal(k->name, crl_test_tables[i]);
        printf("kernels %s: ", k->name);
        run_golden(batch);
    }
    crl_test_isa_default();
}

static void test_batch_1(void **state) {
    (void)state;
    run_all_tables(1);
}
static void test_batch_7(void **state) {
    (void)state;
    run_all_tables(7);
}
static void test_batch_1000(void **state) {
    (void)state;
    run_all_tables(1000);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_1),
        cmocka_unit_test(test_batch_7),
        cmocka_unit_test(test_batch_1000),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
