/* test_preproc.c: the original's feature math (padding before normalisation, clipping, float32
 * rounding), the minimal preprocessor, preprocessor.json loading, and bit-exact agreement with
 * the numpy features in the golden files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/yaml.h"
#include "model/example.h"
#include "model/preproc.h"

/* Two observations: the first has 2 sensors (padded to 3), one beyond the +10 clip. */
static const float speed[] = {50.0f, 0.0f};
static const float steering[] = {0.5f, -1.0f};
static const float sensors[] = {20.0f, -0.5f, -1000.0f, 1.25f, 3.0f};
static const uint32_t off[] = {0, 2};
static const uint32_t len[] = {2, 3};

static crl_predict_req_t two_rows(void) {
    crl_predict_req_t r;
    memset(&r, 0, sizeof(r));
    r.n = 2;
    r.speed = speed;
    r.steering = steering;
    r.sensors = sensors;
    r.sensor_off = off;
    r.sensor_len = len;
    r.max_sensors = 3;
    return r;
}

static void test_standard_math(void **state) {
    (void)state;
    crl_preproc_t p;
    crl_example_preproc(&p);
    crl_predict_req_t r = two_rows();
    float x[10];
    crl_preproc_apply(&p, &r, 3, x);
    /* Hand-computed in double from the example stats (44.75/14.433035, -0.01/0.577321,
     * 0.83/0.613569): */
    assert_float_equal(x[0], (50 - 44.75) / 14.433035, 1e-5);
    assert_float_equal(x[1], (0.5 + 0.01) / 0.577321, 1e-5);
    assert_float_equal(x[2], (10 - 0.83) / 0.613569, 1e-4); /* 20 clipped to 10 */
    assert_float_equal(x[3], (-0.5 - 0.83) / 0.613569, 1e-5);
    assert_float_equal(x[4], (0 - 0.83) / 0.613569, 1e-5); /* padded BEFORE normalising */
    assert_float_equal(x[4], -1.3527411, 1e-6);
    assert_float_equal(x[7], (-10 - 0.83) / 0.613569, 1e-4); /* -1000 clipped to -10 */
    /* And bit for bit what numpy float32 gives (tools/make_example_artifact.py preprocess()): */
    static const float numpy_f32[10] = {0.363748848f, 0.883390069f, 14.9453487f,  -2.16764569f,
                                        -1.35274136f, -3.10052609f, -1.71481597f, -17.6508312f,
                                        0.684519768f, 3.53668547f};
    for (int i = 0; i < 10; i++)
        if (x[i] != numpy_f32[i]) fail_msg("feature %d: %.9g != numpy %.9g", i, x[i], numpy_f32[i]);
}

static void test_flags_and_wider_rows(void **state) {
    (void)state;
    crl_preproc_t p;
    crl_example_preproc(&p);
    p.normalize_speed = 0;
    p.normalize_sensors = 0;
    crl_predict_req_t r = two_rows();
    float x[2 * 6];
    crl_preproc_apply(&p, &r, 4, x); /* a model wider than the batch: more padding */
    assert_true(x[0] == 50.0f);      /* raw speed */
    assert_true(x[1] != 0.5f);       /* steering still normalised */
    assert_true(x[2] == 10.0f);      /* sensors still clipped, not normalised */
    assert_true(x[3] == -0.5f);
    assert_true(x[4] == 0.0f && x[5] == 0.0f);
    assert_true(x[8] == -10.0f);
}

static void test_minimal_keeps_raw(void **state) {
    (void)state;
    crl_preproc_t p;
    crl_preproc_minimal(&p);
    assert_int_equal(p.type, CRL_PREPROC_MINIMAL);
    crl_predict_req_t r = two_rows();
    float x[10];
    crl_preproc_apply(&p, &r, 3, x);
    static const float want[10] = {50, 0.5f, 20, -0.5f, 0, 0, -1, -1000, 1.25f, 3};
    for (int i = 0; i < 10; i++)
        assert_true(x[i] == want[i]);
}

static char tmpdir[64];

static const char *write_tmp(const char *name, const char *text) {
    static char path[128];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static void expect_load_error(const char *text, crl_status want, const char *substr) {
    crl_preproc_t p;
    crl_preproc_minimal(&p);
    p.speed_mean = 123.0f; /* must survive a failed load */
    crl_err err = {{0}};
    const char *path = write_tmp("pre.json", text);
    crl_status st = crl_preproc_load(path, &p, &err);
    if (st != want) fail_msg("status %d, want %d (%s)", st, want, err.msg);
    if (strstr(err.msg, substr) == NULL) fail_msg("'%s' not in '%s'", substr, err.msg);
    assert_true(p.speed_mean == 123.0f);
}

static void test_load(void **state) {
    (void)state;
    crl_preproc_t p, ex;
    crl_err err = {{0}};
    assert_int_equal(
        crl_preproc_load(CRL_TEST_DATA "/artifacts/v0.1.0/preprocessor.json", &p, &err), CRL_OK);
    crl_example_preproc(&ex);
    assert_int_equal(p.type, CRL_PREPROC_STANDARD);
    assert_true(p.speed_std == ex.speed_std && p.sensor_mean == ex.sensor_mean);
    assert_true(p.clip_lo == -10.0f && p.clip_hi == 10.0f);

    assert_int_equal(crl_preproc_load(write_tmp("m.json", "{\"type\": \"minimal\"}"), &p, &err),
                     CRL_OK);
    assert_int_equal(p.type, CRL_PREPROC_MINIMAL);

    assert_int_equal(
        crl_preproc_load(write_tmp("s.json", "{\"normalize_speed\": false, \"normalize_steering\""
                                             ": false, \"normalize_sensors\": true, "
                                             "\"sensor_mean\": 1, \"sensor_std\": 2, "
                                             "\"sensor_clip_range\": [-5, 5]}"),
                         &p, &err),
        CRL_OK);
    assert_int_equal(p.type, CRL_PREPROC_STANDARD); /* the original's default type */
    assert_int_equal(p.normalize_speed, 0);
    assert_true(p.sensor_std == 2.0f && p.clip_lo == -5.0f && p.clip_hi == 5.0f);

    expect_load_error("{\"type\": \"robust\"}", CRL_EUNSUPPORTED,
                      "pre.json:1: type: unknown preprocessor type 'robust' (available: "
                      "standard, minimal)");
    expect_load_error("{\"type\": \"standard\",\n \"speed_mean\": 1, \"speed_std\": 0,\n"
                      " \"steering_mean\": 0, \"steering_std\": 1, \"sensor_mean\": 0,"
                      " \"sensor_std\": 1}",
                      CRL_ERANGE, "pre.json:2: speed_std: standard deviation must be > 0");
    expect_load_error("{\"speed_mean\": 1, \"speed_std\": -1}", CRL_ERANGE, "speed_std");
    expect_load_error("{\"speed_mean\": 1, \"speed_std\": 1e-60}", CRL_ERANGE, "speed_std");
    expect_load_error("{\"speed_mean\": 1, \"speed_std\": \"x\"}", CRL_EFORMAT,
                      "speed_std: expected a finite number");
    expect_load_error("{\"speed_mean\": 1e300, \"speed_std\": 1}", CRL_ERANGE, "speed_mean");
    expect_load_error("{\"speed_mean\": 1, \"speed_std\": 1, \"steering_mean\": 0}", CRL_EFORMAT,
                      "steering_std: missing");
    expect_load_error("{\"normalize_speed\": \"maybe\"}", CRL_EFORMAT,
                      "normalize_speed: expected true or false");
    expect_load_error("{\"normalize_speed\": false, \"normalize_steering\": false, "
                      "\"normalize_sensors\": false, \"sensor_clip_range\": [5, -5]}",
                      CRL_ERANGE, "sensor_clip_range");
    expect_load_error("[1, 2]", CRL_EFORMAT, "expected a JSON object");
    expect_load_error("{\"type\": ", CRL_EFORMAT, "pre.json:");
    assert_int_equal(crl_preproc_load("/nonexistent/preprocessor.json", &p, &err), CRL_ENOTFOUND);
}

/* Every golden file's features must come out bit-identical to numpy's. */
static void check_golden(const char *path) {
    crl_yaml_node_t *doc = NULL;
    crl_err err = {{0}};
    if (crl_yaml_load_file(path, &doc, &err) != CRL_OK) fail_msg("%s", err.msg);
    const crl_yaml_node_t *obs = crl_yaml_get(crl_yaml_get(doc, "request"), "observations");
    const crl_yaml_node_t *feats = crl_yaml_get(doc, "features");
    assert_non_null(obs);
    assert_non_null(feats);
    size_t n = obs->n, total = 0, maxs = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = crl_yaml_get(obs->items[i], "sensors")->n;
        total += k;
        maxs = k > maxs ? k : maxs;
    }
    float *sp = calloc(n, sizeof(float)), *st = calloc(n, sizeof(float));
    float *se = calloc(total, sizeof(float)), *x = calloc(n * (2 + maxs), sizeof(float));
    uint32_t *of = calloc(n, sizeof(uint32_t)), *ln = calloc(n, sizeof(uint32_t));
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        double d;
        const crl_yaml_node_t *o = obs->items[i], *s = crl_yaml_get(o, "sensors");
        assert_int_equal(crl_yaml_double(crl_yaml_get(o, "speed"), &d), CRL_OK);
        sp[i] = (float)d;
        assert_int_equal(crl_yaml_double(crl_yaml_get(o, "steering"), &d), CRL_OK);
        st[i] = (float)d;
        of[i] = (uint32_t)pos;
        ln[i] = (uint32_t)s->n;
        for (size_t j = 0; j < s->n; j++) {
            assert_int_equal(crl_yaml_double(s->items[j], &d), CRL_OK);
            se[pos++] = (float)d;
        }
    }
    crl_predict_req_t r;
    memset(&r, 0, sizeof(r));
    r.n = n;
    r.speed = sp;
    r.steering = st;
    r.sensors = se;
    r.sensor_off = of;
    r.sensor_len = ln;
    r.max_sensors = maxs;
    crl_preproc_t p;
    crl_example_preproc(&p);
    crl_preproc_apply(&p, &r, maxs, x);
    assert_int_equal(feats->n, n);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < 2 + maxs; j++) {
            double d;
            assert_int_equal(crl_yaml_double(feats->items[i]->items[j], &d), CRL_OK);
            if (x[i * (2 + maxs) + j] != (float)d)
                fail_msg("%s row %zu col %zu: %.9g != numpy %.9g", path, i, j,
                         x[i * (2 + maxs) + j], d);
        }
    }
    free(sp);
    free(st);
    free(se);
    free(x);
    free(of);
    free(ln);
    crl_yaml_free(doc);
}

static void test_golden_features(void **state) {
    (void)state;
    check_golden(CRL_TEST_DATA "/golden/golden_b1.json");
    check_golden(CRL_TEST_DATA "/golden/golden_b7.json");
    check_golden(CRL_TEST_DATA "/golden/golden_b1000.json");
}

static int setup(void **state) {
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/crl_test_preproc_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char path[128];
    static const char *const names[] = {"pre.json", "m.json", "s.json"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/%s", tmpdir, names[i]);
        remove(path);
    }
    rmdir(tmpdir);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_standard_math),     cmocka_unit_test(test_flags_and_wider_rows),
        cmocka_unit_test(test_minimal_keeps_raw), cmocka_unit_test(test_load),
        cmocka_unit_test(test_golden_features),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
