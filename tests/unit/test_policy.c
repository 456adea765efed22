/* test_policy.c: the model card's `policy:` section and the heads it declares. Parsing errors
 * name the card line; the width check runs at model load; Gaussian and categorical sampling have
 * the right statistics; a seed reproduces the same actions whatever the batch around a row; and
 * carlarl's heads agree with tools/make_example_artifact.py's Python implementation
 * (tests/data/artifacts-policies/golden_*.json) on the stored network outputs to 1e-6, and on the
 * served artifacts end to end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <math.h>

#include "config/yaml.h"
#include "isa.h"
#include "json/predict.h"
#include "model/card.h"
#include "model/model.h"
#include "model/policy.h"

#define POLICIES CRL_TEST_DATA "/artifacts-policies"

static const char card_head[] = "model_name: p\n"     /* line 1 */
                                "version: v1.0.0\n"   /* line 2 */
                                "model_type: onnx\n"; /* line 3; policy: is line 4 */

static crl_card_t *card_with(const char *policy, crl_status want, const char *substr) {
    char text[4096];
    snprintf(text, sizeof(text), "%s%s", card_head, policy);
    crl_card_t *c = NULL;
    crl_err err = {{0}};
    crl_status st = crl_card_parse(text, strlen(text), "model_card.yaml", &c, &err);
    if (st != want || (substr && strstr(err.msg, substr) == NULL))
        fail_msg("policy %s: status %d, message '%s' (wanted %d, '%s')", policy, st, err.msg, want,
                 substr ? substr : "");
    return c;
}

static void test_parse_valid(void **state) {
    (void)state;
    crl_card_t *c = card_with("", CRL_OK, NULL);
    assert_int_equal(c->policy.type, CRL_POLICY_DETERMINISTIC);
    crl_card_free(c);
    c = card_with("policy:\n  type: deterministic\n", CRL_OK, NULL);
    assert_int_equal(c->policy.type, CRL_POLICY_DETERMINISTIC);
    assert_int_equal(crl_policy_min_width(&c->policy), 3);
    crl_card_free(c);

    c = card_with("policy:\n  type: gaussian\n  log_std: output\n  squash: tanh\n", CRL_OK, NULL);
    assert_int_equal(c->policy.type, CRL_POLICY_GAUSSIAN);
    assert_int_equal(c->policy.log_std_output, 1);
    assert_int_equal(c->policy.squash_tanh, 1);
    assert_true(c->policy.log_std_min == -20.0f && c->policy.log_std_max == 2.0f);
    assert_int_equal(crl_policy_min_width(&c->policy), 6);
    crl_card_free(c);

    c = card_with("policy:\n  type: gaussian\n  log_std: [-0.5, -1, 0.25]\n  squash: none\n"
                  "  log_std_range: [-5, 1]\n",
                  CRL_OK, NULL);
    assert_int_equal(c->policy.log_std_output, 0);
    assert_true(c->policy.log_std_const[0] == -0.5f && c->policy.log_std_const[2] == 0.25f);
    assert_true(c->policy.log_std_min == -5.0f && c->policy.log_std_max == 1.0f);
    assert_int_equal(c->policy.squash_tanh, 0);
    assert_int_equal(crl_policy_min_width(&c->policy), 3);
    crl_card_free(c);

    c = card_with("policy:\n  type: categorical\n  actions:\n"
                  "    - {throttle: 0.3, brake: 0, steer: -0.5}\n"
                  "    - {throttle: 0, brake: 0.5, steer: 0}\n"
                  "    - throttle: 1\n      brake: 0\n      steer: 1\n",
                  CRL_OK, NULL);
    assert_int_equal(c->policy.type, CRL_POLICY_CATEGORICAL);
    assert_int_equal(c->policy.n_actions, 3);
    assert_true(c->policy.actions[0] == 0.3f && c->policy.actions[2] == -0.5f);
    assert_true(c->policy.actions[4] == 0.5f && c->policy.actions[8] == 1.0f);
    assert_int_equal(crl_policy_min_width(&c->policy), 3);
    crl_card_free(c);
}

static void test_parse_errors(void **state) {
    (void)state;
    card_with("policy: gaussian\n", CRL_EFORMAT, "model_card.yaml:4: policy: must be a mapping");
    card_with("policy:\n  squash: tanh\n", CRL_EFORMAT,
              "model_card.yaml:5: policy: missing 'type'");
    card_with("policy:\n  type: beta\n", CRL_EFORMAT,
              "model_card.yaml:5: policy: type: expected deterministic, gaussian or categorical, "
              "got 'beta'");
    card_with("policy:\n  type: gaussian\n  log_std: output\n  sqush: tanh\n", CRL_EFORMAT,
              "model_card.yaml:7: policy: unknown key 'sqush'");
    card_with(
        "policy:\n  type: deterministic\n  squash: tanh\n", CRL_EFORMAT,
        "model_card.yaml:6: policy: 'squash' applies to gaussian policies, not deterministic");
    card_with("policy:\n  type: gaussian\n  log_std: output\n  actions: []\n", CRL_EFORMAT,
              "'actions' applies to categorical policies, not gaussian");
    /* gaussian */
    card_with("policy:\n  type: gaussian\n", CRL_EFORMAT,
              "model_card.yaml:5: policy: gaussian needs 'log_std: output'");
    card_with("policy:\n  type: gaussian\n  log_std: [1, 2]\n", CRL_EFORMAT,
              "model_card.yaml:6: policy: log_std: expected 'output' or three finite numbers");
    card_with("policy:\n  type: gaussian\n  log_std: [1, .nan, 2]\n", CRL_EFORMAT,
              "policy: log_std: expected");
    card_with("policy:\n  type: gaussian\n  log_std: [1, 1e39, 2]\n", CRL_EFORMAT,
              "policy: log_std: expected");
    card_with("policy:\n  type: gaussian\n  log_std: outputs\n", CRL_EFORMAT,
              "policy: log_std: expected");
    card_with("policy:\n  type: gaussian\n  log_std: output\n  squash: sigmoid\n", CRL_EFORMAT,
              "model_card.yaml:7: policy: squash: expected none or tanh");
    card_with("policy:\n  type: gaussian\n  log_std: output\n  log_std_range: [2, -20]\n",
              CRL_EFORMAT, "model_card.yaml:7: policy: log_std_range: expected [low, high]");
    card_with("policy:\n  type: gaussian\n  log_std: output\n  log_std_range: [-1, .inf]\n",
              CRL_EFORMAT, "policy: log_std_range");
    /* categorical */
    card_with("policy:\n  type: categorical\n", CRL_EFORMAT,
              "model_card.yaml:5: policy: categorical needs 'actions'");
    card_with("policy:\n  type: categorical\n  actions: {throttle: 1}\n", CRL_EFORMAT,
              "model_card.yaml:6: policy: actions: expected a list");
    card_with("policy:\n  type: categorical\n  actions:\n    - {throttle: 1, brake: 0, steer: 0}\n",
              CRL_EFORMAT, "policy: actions: a categorical policy needs 2..4096 actions, got 1");
    card_with("policy:\n  type: categorical\n  actions:\n    - {throttle: 1, brake: 0, steer: 0}\n"
              "    - 3\n",
              CRL_EFORMAT, "model_card.yaml:8: policy: actions[1]: expected a mapping");
    card_with("policy:\n  type: categorical\n  actions:\n    - {throttle: 1, brake: 0, steer: 0}\n"
              "    - {throttle: 1, brake: 0}\n",
              CRL_EFORMAT, "model_card.yaml:8: policy: actions[1]: missing 'steer'");
    card_with("policy:\n  type: categorical\n  actions:\n    - {throttle: 1, brake: 0, steer: 0}\n"
              "    - {throttle: x, brake: 0, steer: 0}\n",
              CRL_EFORMAT, "policy: actions[1]: throttle: expected a finite number");
    card_with("policy:\n  type: categorical\n  actions:\n    - {throttle: 1, brake: 0, steer: 0}\n"
              "    - {throttle: 1, brake: 0, steer: 0, gear: 2}\n",
              CRL_EFORMAT, "policy: actions[1]: unknown key 'gear'");
}

static void test_width_check(void **state) {
    (void)state;
    crl_err err = {{0}};
    crl_card_t *c = card_with("policy:\n  type: gaussian\n  log_std: output\n", CRL_OK, NULL);
    assert_int_equal(crl_policy_check_width(&c->policy, 6, &err), CRL_OK);
    assert_int_equal(crl_policy_check_width(&c->policy, 8, &err), CRL_OK);
    assert_int_equal(crl_policy_check_width(&c->policy, 3, &err), CRL_ESHAPE);
    assert_non_null(strstr(err.msg, "model_card.yaml:5: policy: gaussian with log_std: output "
                                    "needs 6 model outputs"));
    crl_card_free(c);
    c = card_with(
        "policy:\n  type: categorical\n  actions:\n    - {throttle: 1, brake: 0, steer: 0}"
        "\n    - {throttle: 0, brake: 1, steer: 0}\n",
        CRL_OK, NULL);
    assert_int_equal(crl_policy_check_width(&c->policy, 2, &err), CRL_OK);
    assert_int_equal(crl_policy_check_width(&c->policy, 3, &err), CRL_ESHAPE);
    assert_non_null(strstr(err.msg, "categorical lists 2 actions but the model outputs 3 logits"));
    crl_card_free(c);
}

/* ---- model load: the card's head must fit the network ------------------------------------- */

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = malloc(1 << 20);
    *len = fread(buf, 1, 1 << 20, f);
    fclose(f);
    return buf;
}

static void spit(const char *path, const char *data, size_t len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

/* A copy of a policy artifact with its card's policy section replaced. */
static void make_variant(char dir[64], const char *src, const char *policy) {
    strcpy(dir, "/tmp/crl_policy_XXXXXX");
    assert_non_null(mkdtemp(dir));
    const char *files[] = {"model.onnx", "preprocessor.json"};
    char path[512];
    size_t len;
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "%s/%s", src, files[i]);
        char *data = slurp(path, &len);
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        spit(path, data, len);
        free(data);
    }
    char card[1024];
    int n = snprintf(card, sizeof(card), "model_name: p\nversion: v1.0.0\nmodel_type: onnx\n%s",
                     policy);
    snprintf(path, sizeof(path), "%s/model_card.yaml", dir);
    spit(path, card, (size_t)n);
}

static void remove_variant(const char *dir) {
    char path[512];
    const char *files[] = {"model.onnx", "preprocessor.json", "model_card.yaml"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

static void test_load_width_mismatch(void **state) {
    (void)state;
    char dir[64];
    crl_model_t *m = NULL;
    crl_err err = {{0}};
    /* Categorical card with 4 actions on a 5-logit network. */
    make_variant(
        dir, POLICIES "/categorical/v1.0.0",
        "policy:\n  type: categorical\n  actions:\n"
        "    - {throttle: 1, brake: 0, steer: 0}\n    - {throttle: 0, brake: 1, steer: 0}\n"
        "    - {throttle: 0, brake: 0, steer: 1}\n    - {throttle: 0, brake: 0, steer: 0}\n");
    assert_int_equal(crl_model_load_dir(dir, "v1.0.0", &m, &err), CRL_ESHAPE);
    assert_null(m);
    assert_non_null(strstr(err.msg, dir));
    assert_non_null(strstr(err.msg, "model_card.yaml:5: policy: categorical lists 4 actions but "
                                    "the model outputs 5 logits"));
    remove_variant(dir);
    /* The 5-logit network read as a Gaussian with log-std outputs needs 6 columns. */
    make_variant(dir, POLICIES "/categorical/v1.0.0",
                 "policy:\n  type: gaussian\n  log_std: output\n");
    assert_int_equal(crl_model_load_dir(dir, "v1.0.0", &m, &err), CRL_ESHAPE);
    assert_non_null(strstr(err.msg, "needs 6 model outputs"));
    remove_variant(dir);
    /* ... but with constant log-std it loads. */
    make_variant(dir, POLICIES "/categorical/v1.0.0",
                 "policy:\n  type: gaussian\n  log_std: [0, 0, 0]\n");
    assert_int_equal(crl_model_load_dir(dir, "v1.0.0", &m, &err), CRL_OK);
    assert_int_equal(m->card->policy.type, CRL_POLICY_GAUSSIAN);
    crl_model_unref(m);
    remove_variant(dir);
}

/* ---- sampling statistics ------------------------------------------------------------------- */

#define NS 20000

static void test_gaussian_statistics(void **state) {
    (void)state;
    crl_policy_t p = {
        .type = CRL_POLICY_GAUSSIAN, .log_std_output = 1, .log_std_min = -20, .log_std_max = 2};
    /* Rows: mean (0.5, -1, 2), log-std (log 0.1, 0, 5 -> clamped to 2). */
    const float row[6] = {0.5f, -1.0f, 2.0f, logf(0.1f), 0.0f, 5.0f};
    float *y = malloc(NS * 6 * sizeof(float)), *a = malloc(NS * 3 * sizeof(float));
    for (size_t r = 0; r < NS; r++)
        memcpy(y + r * 6, row, sizeof(row));
    crl_err err = {{0}};
    assert_int_equal(crl_policy_apply(&p, y, 6, NS, 0, 99, a, &err), CRL_OK);
    const double want_std[3] = {0.1, 1.0, exp(2.0)};
    for (int k = 0; k < 3; k++) {
        double s = 0, s2 = 0;
        for (size_t r = 0; r < NS; r++) {
            s += a[r * 3 + k];
            s2 += (double)a[r * 3 + k] * a[r * 3 + k];
        }
        double mean = s / NS, sd = sqrt(s2 / NS - mean * mean);
        /* 4 standard errors of the mean and of the standard deviation. */
        assert_true(fabs(mean - row[k]) < 4 * want_std[k] / sqrt(NS));
        assert_true(fabs(sd - want_std[k]) < 4 * want_std[k] / sqrt(2.0 * NS));
    }
    /* deterministic: the mean itself; with tanh: tanh(mean). */
    assert_int_equal(crl_policy_apply(&p, y, 6, 2, 1, 99, a, &err), CRL_OK);
    assert_true(a[0] == 0.5f && a[1] == -1.0f && a[2] == 2.0f && a[3] == 0.5f);
    p.squash_tanh = 1;
    assert_int_equal(crl_policy_apply(&p, y, 6, 1, 1, 99, a, &err), CRL_OK);
    assert_true(a[0] == (float)tanh(0.5) && a[2] == (float)tanh(2.0));
    /* Squashed samples stay inside (-1, 1). */
    assert_int_equal(crl_policy_apply(&p, y, 6, NS, 0, 5, a, &err), CRL_OK);
    for (size_t i = 0; i < NS * 3; i++)
        assert_true(a[i] >= -1.0f && a[i] <= 1.0f);
    /* Constant log-std from the card, the extra output columns ignored. */
    p = (crl_policy_t){.type = CRL_POLICY_GAUSSIAN,
                       .log_std_const = {-30, 0, 0},
                       .log_std_min = -20,
                       .log_std_max = 2};
    assert_int_equal(crl_policy_apply(&p, y, 6, 1, 0, 5, a, &err), CRL_OK);
    assert_true(fabs(a[0] - 0.5) < 1e-6); /* exp(-20) * z: the clamp still applies */
    free(y);
    free(a);
}

static void test_categorical_statistics(void **state) {
    (void)state;
    float acts[4 * 3] = {0};
    for (int i = 0; i < 4; i++)
        acts[i * 3] = (float)i; /* throttle = the action index */
    crl_policy_t p = {.type = CRL_POLICY_CATEGORICAL, .n_actions = 4, .actions = acts};
    const float row[4] = {0.0f, 1.0f, 2.0f, -INFINITY};
    float *y = malloc(NS * 4 * sizeof(float)), *a = malloc(NS * 3 * sizeof(float));
    for (size_t r = 0; r < NS; r++)
        memcpy(y + r * 4, row, sizeof(row));
    crl_err err = {{0}};
    assert_int_equal(crl_policy_apply(&p, y, 4, NS, 0, 2024, a, &err), CRL_OK);
    size_t count[4] = {0};
    for (size_t r = 0; r < NS; r++)
        count[(int)a[r * 3]]++;
    double z = 1 + exp(1) + exp(2);
    const double want[4] = {1 / z, exp(1) / z, exp(2) / z, 0};
    for (int k = 0; k < 4; k++) {
        double f = (double)count[k] / NS, se = sqrt(want[k] * (1 - want[k]) / NS);
        assert_true(fabs(f - want[k]) <= 4 * se);
    }
    assert_int_equal(count[3], 0); /* a -inf logit is never drawn */
    /* argmax, first maximum on ties. */
    const float tie[4] = {0.5f, 3.0f, 3.0f, 1.0f};
    assert_int_equal(crl_policy_apply(&p, tie, 4, 1, 1, 0, a, &err), CRL_OK);
    assert_true(a[0] == 1.0f);
    free(y);
    free(a);
}

static void test_bad_outputs(void **state) {
    (void)state;
    crl_err err = {{0}};
    float a[3];
    float acts[6] = {0};
    crl_policy_t cat = {.type = CRL_POLICY_CATEGORICAL, .n_actions = 2, .actions = acts};
    const float nan_row[2] = {0.0f, NAN}, inf_row[2] = {INFINITY, 0.0f};
    const float none[2] = {-INFINITY, -INFINITY};
    assert_int_equal(crl_policy_apply(&cat, nan_row, 2, 1, 0, 1, a, &err), CRL_ERANGE);
    assert_non_null(strstr(err.msg, "model output 1 of observation 0 is NaN"));
    assert_int_equal(crl_policy_apply(&cat, inf_row, 2, 1, 1, 1, a, &err), CRL_ERANGE);
    assert_int_equal(crl_policy_apply(&cat, none, 2, 1, 0, 1, a, &err), CRL_ERANGE);
    crl_policy_t g = {
        .type = CRL_POLICY_GAUSSIAN, .log_std_output = 1, .log_std_min = -20, .log_std_max = 2};
    const float gn[6] = {0, 0, 0, 0, NAN, 0};
    assert_int_equal(crl_policy_apply(&g, gn, 6, 1, 0, 1, a, &err), CRL_ERANGE);
    assert_non_null(strstr(err.msg, "model output 4 of observation 0 is NaN"));
    /* A row narrower than the head needs is refused, never read past. */
    assert_int_equal(crl_policy_apply(&g, gn, 3, 1, 0, 1, a, &err), CRL_ESHAPE);
}

/* ---- reproducibility ----------------------------------------------------------------------- */

static void test_reproducible(void **state) {
    (void)state;
    crl_policy_t p = {
        .type = CRL_POLICY_GAUSSIAN, .log_std_output = 1, .log_std_min = -20, .log_std_max = 2};
    float y[4 * 6], a1[12], a2[12], a3[12];
    for (int i = 0; i < 24; i++)
        y[i] = (float)((i % 6) < 3 ? 0.1 * i : -0.5);
    crl_err err = {{0}};
    assert_int_equal(crl_policy_apply(&p, y, 6, 4, 0, 7, a1, &err), CRL_OK);
    assert_int_equal(crl_policy_apply(&p, y, 6, 4, 0, 7, a2, &err), CRL_OK);
    assert_memory_equal(a1, a2, sizeof(a1)); /* same seed, same actions */
    assert_int_equal(crl_policy_apply(&p, y, 6, 4, 0, 8, a3, &err), CRL_OK);
    assert_memory_not_equal(a1, a3, sizeof(a1)); /* another seed, other actions */
    /* A smaller batch: rows 0..1 are unchanged (the counter is the row index, not a stream
     * position), and a row's sample does not depend on what other rows hold. */
    float y2[4 * 6];
    memcpy(y2, y, sizeof(y));
    for (int i = 12; i < 24; i++)
        y2[i] = 1.5f;
    assert_int_equal(crl_policy_apply(&p, y2, 6, 4, 0, 7, a2, &err), CRL_OK);
    assert_memory_equal(a1, a2, 6 * sizeof(float));
    assert_int_equal(crl_policy_apply(&p, y, 6, 2, 0, 7, a2, &err), CRL_OK);
    assert_memory_equal(a1, a2, 6 * sizeof(float));
    /* The row index is part of the counter: the same observation at row 0 and row 1 draws
     * differently. */
    float same[12];
    memcpy(same, y, 6 * sizeof(float));
    memcpy(same + 6, y, 6 * sizeof(float));
    assert_int_equal(crl_policy_apply(&p, same, 6, 2, 0, 7, a2, &err), CRL_OK);
    assert_memory_not_equal(a2, a2 + 3, 3 * sizeof(float));
    /* Fresh seeds differ call to call. */
    uint64_t s1 = crl_policy_fresh_seed(), s2 = crl_policy_fresh_seed();
    assert_true(s1 != s2);
}

/* ---- agreement with the Python implementation ---------------------------------------------- */

static float *matrix(const crl_yaml_node_t *n, size_t *rows, size_t *cols) {
    assert_non_null(n);
    assert_int_equal(n->kind, CRL_YAML_SEQ);
    *rows = n->n;
    *cols = n->items[0]->n;
    float *m = malloc(*rows * *cols * sizeof(float));
    for (size_t r = 0; r < *rows; r++) {
        assert_int_equal(n->items[r]->n, *cols);
        for (size_t c = 0; c < *cols; c++) {
            double d;
            assert_int_equal(crl_yaml_double(n->items[r]->items[c], &d), CRL_OK);
            m[r * *cols + c] = (float)d;
        }
    }
    return m;
}

/* Actions [{throttle, brake, steer}] as [n][3]. */
static float *actions_of(const crl_yaml_node_t *n, size_t rows) {
    static const char *const keys[3] = {"throttle", "brake", "steer"};
    assert_int_equal(n->n, rows);
    float *a = malloc(rows * 3 * sizeof(float));
    for (size_t r = 0; r < rows; r++)
        for (int k = 0; k < 3; k++) {
            double d;
            assert_int_equal(crl_yaml_double(crl_yaml_get(n->items[r], keys[k]), &d), CRL_OK);
            a[r * 3 + (size_t)k] = (float)d;
        }
    return a;
}

/* Not fmax, which would skip a NaN difference (and makes aarch64 GCC 12's vectorizer crash). */
static double max_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (isnan(d) || d > m) m = d;
    }
    return m;
}

static void check_golden(const char *kind) {
    char path[512];
    snprintf(path, sizeof(path), POLICIES "/golden_%s.json", kind);
    crl_yaml_node_t *doc = NULL;
    crl_err err = {{0}};
    assert_int_equal(crl_yaml_load_file(path, &doc, &err), CRL_OK);
    snprintf(path, sizeof(path), POLICIES "/%s/v1.0.0", kind);
    crl_model_t *m = NULL;
    assert_int_equal(crl_model_load_dir(path, "v1.0.0", &m, &err), CRL_OK);
    size_t n, w;
    float *out = matrix(crl_yaml_get(doc, "outputs"), &n, &w);
    assert_int_equal(w, m->out_width);
    float *act = malloc(n * 3 * sizeof(float));
    const crl_policy_t *p = &m->card->policy;
    const crl_yaml_node_t *samples = crl_yaml_get(doc, "samples");
    assert_non_null(samples);

    /* 1. The head alone on Python's stored outputs: the same numbers to 1e-6 (in practice
     *    bit-identical: the same double math and libm). */
    float *want = actions_of(crl_yaml_get(doc, "deterministic"), n);
    assert_int_equal(crl_policy_apply(p, out, w, n, 1, 0, act, &err), CRL_OK);
    for (size_t i = 0; i < n * 3; i++)
        act[i] = fminf(fmaxf(act[i], m->card->action_lo[i % 3]), m->card->action_hi[i % 3]);
    assert_true(max_diff(act, want, n * 3) <= 1e-6);
    free(want);
    for (size_t s = 0; s < samples->n; s++) {
        double seed_d;
        const crl_yaml_node_t *sn = crl_yaml_get(samples->items[s], "seed");
        assert_int_equal(crl_yaml_double(sn, &seed_d), CRL_OK);
        uint64_t seed = strtoull(sn->scalar, NULL, 10);
        want = actions_of(crl_yaml_get(samples->items[s], "actions"), n);
        assert_int_equal(crl_policy_apply(p, out, w, n, 0, seed, act, &err), CRL_OK);
        for (size_t i = 0; i < n * 3; i++)
            act[i] = fminf(fmaxf(act[i], m->card->action_lo[i % 3]), m->card->action_hi[i % 3]);
        double d = max_diff(act, want, n * 3);
        printf("%s seed %llu: max |C - Python| = %.3g\n", kind, (unsigned long long)seed, d);
        assert_true(d <= 1e-6);
        free(want);
    }

    /* 2. End to end: the request text (with its seed) through the parser, forward pass, head,
     *    clip. The forward pass differs from torch by <= 1e-5. */
    crl_predict_parser_t *parser = NULL;
    assert_int_equal(crl_predict_parser_new(&parser), CRL_OK);
    crl_nn_ws_t *ws = NULL;
    assert_int_equal(crl_nn_ws_new(m->graph, n, &ws), CRL_OK);
    float *x = malloc(n * m->in_width * sizeof(float)), *y = malloc(n * w * sizeof(float));
    for (size_t s = 0; s <= samples->n; s++) {
        crl_buf body;
        crl_buf_init(&body, 1 << 20);
        crl_buf_puts(&body, "{\"observations\":");
        crl_yaml_write_json(crl_yaml_get(doc, "observations"), &body);
        if (s == samples->n) {
            crl_buf_puts(&body, ",\"deterministic\":true}");
            want = actions_of(crl_yaml_get(doc, "deterministic"), n);
        } else {
            crl_buf_printf(&body, ",\"seed\":%s}", crl_yaml_get(samples->items[s], "seed")->scalar);
            want = actions_of(crl_yaml_get(samples->items[s], "actions"), n);
        }
        crl_predict_req_t req;
        assert_int_equal(crl_predict_parse(parser, body.data, body.len, &req), CRL_OK);
        assert_int_equal(req.has_seed, s < samples->n);
        assert_int_equal(crl_model_predict(m, ws, &req, x, y, act, &err), CRL_OK);
        assert_true(max_diff(act, want, n * 3) <= 1e-5);
        free(want);
        crl_buf_free(&body);
    }
    free(x);
    free(y);
    crl_nn_ws_free(ws);
    crl_predict_parser_free(parser);
    free(act);
    free(out);
    crl_model_unref(m);
    crl_yaml_free(doc);
}

static void test_golden_gaussian(void **state) {
    (void)state;
    check_golden("gaussian");
}

static void test_golden_categorical(void **state) {
    (void)state;
    check_golden("categorical");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid),         cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_width_check),         cmocka_unit_test(test_load_width_mismatch),
        cmocka_unit_test(test_gaussian_statistics), cmocka_unit_test(test_categorical_statistics),
        cmocka_unit_test(test_bad_outputs),         cmocka_unit_test(test_reproducible),
        cmocka_unit_test(test_golden_gaussian),     cmocka_unit_test(test_golden_categorical),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
