/* test_example.c: the built-in example policy is the same policy as the artifact the tool wrote:
 * identical preprocessor stats, identical weights (found byte for byte inside model.onnx),
 * outputs matching torch on the golden features, and the same card. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/yaml.h"
#include "isa.h"
#include "model/example.h"

#define ART_DIR CRL_TEST_DATA "/artifacts/v0.1.0"

static void test_preproc_matches_tool(void **state) {
    (void)state;
    crl_preproc_t ex, file;
    crl_err err = {{0}};
    crl_example_preproc(&ex);
    assert_int_equal(crl_preproc_load(ART_DIR "/preprocessor.json", &file, &err), CRL_OK);
    assert_int_equal(ex.type, CRL_PREPROC_STANDARD);
    assert_int_equal(file.type, ex.type);
    assert_true(ex.normalize_speed && ex.normalize_steering && ex.normalize_sensors);
    assert_int_equal(file.normalize_speed, 1);
    assert_int_equal(file.normalize_steering, 1);
    assert_int_equal(file.normalize_sensors, 1);
    const float a[] = {ex.speed_mean,  ex.speed_std,  ex.steering_mean, ex.steering_std,
                       ex.sensor_mean, ex.sensor_std, ex.clip_lo,       ex.clip_hi};
    const float b[] = {file.speed_mean,  file.speed_std,  file.steering_mean, file.steering_std,
                       file.sensor_mean, file.sensor_std, file.clip_lo,       file.clip_hi};
    assert_memory_equal(a, b, sizeof(a)); /* bit-exact */
    /* §2.5's table, to the printed precision. */
    assert_float_equal(ex.speed_mean, 44.75, 1e-6);
    assert_float_equal(ex.speed_std, 14.433035, 1e-5);
    assert_float_equal(ex.steering_mean, -0.01, 1e-6);
    assert_float_equal(ex.steering_std, 0.577321, 1e-6);
    assert_float_equal(ex.sensor_mean, 0.83, 1e-6);
    assert_float_equal(ex.sensor_std, 0.613569, 1e-6);
}

/* example.h's recipe, restated: the tool must have exported exactly these numbers. */
static uint64_t sm64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void test_onnx_holds_the_weights(void **state) {
    (void)state;
    FILE *f = fopen(ART_DIR "/model.onnx", "rb");
    assert_non_null(f);
    static unsigned char onnx[1 << 20];
    size_t n = fread(onnx, 1, sizeof(onnx), f);
    fclose(f);
    assert_true(n > 0 && n < sizeof(onnx));

    static const size_t count[5] = {64 * 5, 64, 64 * 64, 64, 3 * 64};
    static const double fan[5] = {5, 5, 64, 64, 64}, scale[5] = {1, 1, 1, 1, 0.1};
    uint64_t s = CRL_EXAMPLE_SEED;
    static float block[64 * 64];
    for (int k = 0; k < 5; k++) {
        for (size_t i = 0; i < count[k]; i++) {
            double u = (double)(sm64(&s) >> 40) * (1.0 / 16777216.0);
            block[i] = (float)((2.0 * u - 1.0) * (1.0 / sqrt(fan[k])) * scale[k]);
        }
        /* ONNX raw_data is little-endian float32, like the hosts carlarl runs on. */
        if (memmem(onnx, n, block, count[k] * sizeof(float)) == NULL)
            fail_msg("weight block %d not found in model.onnx", k);
    }
    static const float b2[3] = {0.5f, -2.0f, 0.0f};
    assert_non_null(memmem(onnx, n, b2, sizeof(b2)));
}

static void run_golden(const char *path) {
    crl_yaml_node_t *doc = NULL;
    crl_nn_graph_t *g = NULL;
    crl_nn_ws_t *ws = NULL;
    crl_err err = {{0}};
    if (crl_yaml_load_file(path, &doc, &err) != CRL_OK) fail_msg("%s", err.msg);
    const crl_yaml_node_t *feats = crl_yaml_get(doc, "features");
    const crl_yaml_node_t *outs = crl_yaml_get(doc, "outputs");
    assert_non_null(feats);
    assert_non_null(outs);
    size_t n = feats->n;
    float *x = calloc(n * 5, sizeof(float)), *y = calloc(n * 3, sizeof(float));
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(feats->items[i]->n, 5);
        for (size_t j = 0; j < 5; j++) {
            double d;
            assert_int_equal(crl_yaml_double(feats->items[i]->items[j], &d), CRL_OK);
            x[i * 5 + j] = (float)d;
        }
    }
    assert_int_equal(crl_example_graph(&g, &err), CRL_OK);
    assert_int_equal(crl_nn_ws_new(g, n, &ws), CRL_OK);
    assert_int_equal(crl_nn_run(g, ws, x, n, y), CRL_OK);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < 3; j++) {
            double d;
            assert_int_equal(crl_yaml_double(outs->items[i]->items[j], &d), CRL_OK);
            /* Summation order differs from torch's; a weight off by one draw would be ~1e-2. */
            if (fabs(y[i * 3 + j] - d) > 1e-5)
                fail_msg("%s row %zu out %zu: %.9g vs torch %.9g", path, i, j, y[i * 3 + j], d);
        }
    }
    crl_nn_ws_free(ws);
    crl_nn_graph_free(g);
    free(x);
    free(y);
    crl_yaml_free(doc);
}

static void test_graph_matches_torch(void **state) {
    (void)state;
    crl_nn_graph_t *g = NULL;
    crl_err err = {{0}};
    assert_int_equal(crl_example_graph(&g, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_input_width(g), 5);
    assert_int_equal(crl_nn_graph_output_width(g), 3);
    crl_nn_graph_free(g);
    run_golden(CRL_TEST_DATA "/golden/golden_b1.json");
    run_golden(CRL_TEST_DATA "/golden/golden_b7.json");
    run_golden(CRL_TEST_DATA "/golden/golden_b1000.json");
}

static void test_card_matches_tool(void **state) {
    (void)state;
    crl_card_t *ex = NULL, *file = NULL;
    crl_err err = {{0}};
    assert_int_equal(crl_example_card(&ex, &err), CRL_OK);
    assert_int_equal(crl_card_load(ART_DIR "/model_card.yaml", &file, &err), CRL_OK);
    assert_string_equal(ex->model_name, CRL_EXAMPLE_NAME);
    assert_string_equal(ex->version, CRL_EXAMPLE_VERSION);
    assert_string_equal(ex->model_type, "onnx");
    assert_int_equal(ex->input_width, 5);
    assert_int_equal(ex->n_hashes, 0);
    assert_non_null(ex->description);
    assert_string_equal(ex->model_name, file->model_name);
    assert_string_equal(ex->version, file->version);
    assert_string_equal(ex->description, file->description);
    assert_string_equal(ex->model_filename, file->model_filename);
    assert_string_equal(ex->preprocessor_filename, file->preprocessor_filename);
    assert_int_equal(ex->input_width, file->input_width);
    assert_memory_equal(ex->action_lo, file->action_lo, sizeof(ex->action_lo));
    assert_memory_equal(ex->action_hi, file->action_hi, sizeof(ex->action_hi));
    assert_true(ex->action_lo[CRL_ACTION_STEER] == -1.0f &&
                ex->action_hi[CRL_ACTION_BRAKE] == 1.0f);
    crl_buf b;
    crl_buf_init(&b, 4096);
    assert_int_equal(crl_card_write_json(ex, &b), CRL_OK);
    assert_non_null(strstr(b.data, "\"model_name\": \"" CRL_EXAMPLE_NAME "\""));
    crl_buf_free(&b);
    crl_card_free(ex);
    crl_card_free(file);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_preproc_matches_tool),
        cmocka_unit_test(test_onnx_holds_the_weights),
        cmocka_unit_test(test_graph_matches_torch),
        cmocka_unit_test(test_card_matches_tool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
