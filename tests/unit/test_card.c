/* test_card.c: model_card.yaml validation and the JSON views used by /versions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/card.h"

#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static const char valid_card[] = "model_name: my-policy\n"
                                 "version: v1.2.0\n"
                                 "model_type: ONNX\n"
                                 "description: test policy\n"
                                 "input_shape: [null, 7]\n"
                                 "action_space:\n"
                                 "  steer: [-0.5, 0.5]\n"
                                 "artifact_hashes:\n"
                                 "  model.onnx: \"sha256:" HEX64 "\"\n"
                                 "  sub/pre.json: " HEX64 "\n"
                                 "performance_metrics:\n"
                                 "  latency: {p50_ms: 1.5, p99_ms: 4}\n"
                                 "  throughput: 1000\n"
                                 "  note: fast\n"
                                 "  ok: true\n";

static crl_card_t *parse_ok(const char *text) {
    crl_card_t *c = NULL;
    crl_err err = {{0}};
    if (crl_card_parse(text, strlen(text), "v1/model_card.yaml", &c, &err) != CRL_OK)
        fail_msg("card should parse: %s", err.msg);
    return c;
}

static void expect_error(const char *text, crl_status want, const char *substr) {
    crl_card_t *c = (crl_card_t *)1;
    crl_err err = {{0}};
    crl_status st = crl_card_parse(text, strlen(text), "v1/model_card.yaml", &c, &err);
    if (st != want) fail_msg("status %d, want %d (%s)", st, want, err.msg);
    assert_null(c);
    if (strstr(err.msg, substr) == NULL) fail_msg("'%s' not in '%s'", substr, err.msg);
}

static void test_valid(void **state) {
    (void)state;
    crl_card_t *c = parse_ok(valid_card);
    assert_string_equal(c->model_name, "my-policy");
    assert_string_equal(c->version, "v1.2.0");
    assert_string_equal(c->model_type, "onnx"); /* lower-cased */
    assert_string_equal(c->model_filename, "model.onnx");
    assert_string_equal(c->preprocessor_filename, "preprocessor.json");
    assert_string_equal(c->description, "test policy");
    assert_int_equal(c->input_width, 7);
    assert_int_equal(c->n_hashes, 2);
    assert_string_equal(c->hashes[0].file, "model.onnx");
    assert_string_equal(c->hashes[0].hex, HEX64); /* prefix stripped */
    assert_string_equal(c->hashes[1].file, "sub/pre.json");
    assert_string_equal(c->hashes[1].hex, HEX64);
    /* steer overridden, the others keep their defaults */
    assert_true(c->action_lo[CRL_ACTION_STEER] == -0.5f && c->action_hi[CRL_ACTION_STEER] == 0.5f);
    assert_true(c->action_lo[CRL_ACTION_THROTTLE] == 0.0f &&
                c->action_hi[CRL_ACTION_THROTTLE] == 1.0f);
    assert_true(c->action_lo[CRL_ACTION_BRAKE] == 0.0f && c->action_hi[CRL_ACTION_BRAKE] == 1.0f);

    crl_buf b;
    crl_buf_init(&b, 1 << 16);
    assert_int_equal(crl_card_write_metrics_json(c, &b), CRL_OK);
    assert_string_equal(b.data, "{\"latency_p50_ms\": 1.5, \"latency_p99_ms\": 4.0, "
                                "\"throughput\": 1000.0, \"ok\": 1.0}");
    crl_buf_reset(&b);
    assert_int_equal(crl_card_write_json(c, &b), CRL_OK);
    assert_non_null(strstr(b.data, "\"model_name\": \"my-policy\""));
    assert_non_null(strstr(b.data, "\"input_shape\": [null, 7]"));
    assert_non_null(strstr(b.data, "\"throughput\": 1000"));
    crl_buf_reset(&b);
    assert_int_equal(crl_card_write_json(NULL, &b), CRL_OK);
    assert_string_equal(b.data, "{}");
    crl_buf_reset(&b);
    assert_int_equal(crl_card_write_metrics_json(NULL, &b), CRL_OK);
    assert_string_equal(b.data, "{}");
    crl_buf_free(&b);
    crl_card_free(c);
    crl_card_free(NULL);
}

static void test_minimal_defaults(void **state) {
    (void)state;
    crl_card_t *c = parse_ok("model_name: m\nversion: 1.0.0\nmodel_type: onnx\n"
                             "model_filename: nets/policy.onnx\n");
    assert_string_equal(c->model_filename, "nets/policy.onnx");
    assert_null(c->description);
    assert_int_equal(c->n_hashes, 0);
    assert_int_equal(c->input_width, -1);
    assert_true(c->action_lo[CRL_ACTION_STEER] == -1.0f && c->action_hi[CRL_ACTION_STEER] == 1.0f);
    crl_buf b;
    crl_buf_init(&b, 1024);
    crl_card_write_metrics_json(c, &b);
    assert_string_equal(b.data, "{}");
    crl_buf_free(&b);
    crl_card_free(c);
}

static void test_required_keys(void **state) {
    (void)state;
    expect_error("version: 1.0.0\nmodel_type: onnx\n", CRL_EFORMAT,
                 "v1/model_card.yaml: model card missing required keys: model_name");
    expect_error("model_name: m\nmodel_type: onnx\n", CRL_EFORMAT,
                 "missing required keys: version");
    expect_error("model_name: m\nversion: 1.0.0\n", CRL_EFORMAT,
                 "missing required keys: model_type");
    expect_error("other: 1\n", CRL_EFORMAT,
                 "missing required keys: model_name, version, model_type");
    expect_error("model_name:\nversion: 1.0.0\nmodel_type: onnx\n", CRL_EFORMAT,
                 "v1/model_card.yaml:1: model_name: must be a non-empty string");
    expect_error("- a\n- b\n", CRL_EFORMAT, "v1/model_card.yaml:1: a model card must be a YAML");
}

static void test_model_type(void **state) {
    (void)state;
    expect_error("model_name: m\nversion: 1.0.0\nmodel_type: pytorch\n", CRL_EUNSUPPORTED,
                 "v1/model_card.yaml:3: model_type: unsupported model type 'pytorch'");
    expect_error("model_name: m\nversion: 1.0.0\nmodel_type: TorchScript\n", CRL_EUNSUPPORTED,
                 "tools/make_example_artifact.py");
}

#define HEAD "model_name: m\nversion: 1.0.0\nmodel_type: onnx\n"

static void test_hashes(void **state) {
    (void)state;
    crl_card_t *c = parse_ok(HEAD "artifact_hashes:\n  a: SHA256:" HEX64 "\n"
                                  "  b: \"ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF"
                                  "0123456789\"\n");
    assert_string_equal(c->hashes[0].hex, HEX64);
    assert_string_equal(c->hashes[1].hex,
                        "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789");
    crl_card_free(c);
    c = parse_ok(HEAD "artifact_hashes: {}\n");
    assert_int_equal(c->n_hashes, 0);
    crl_card_free(c);

    expect_error(HEAD "artifact_hashes:\n  model.onnx: sha256:abc\n", CRL_EFORMAT,
                 "v1/model_card.yaml:5: artifact_hashes: model.onnx: expected a SHA-256 of 64");
    expect_error(HEAD "artifact_hashes:\n  model.onnx: " HEX64 "0\n", CRL_EFORMAT,
                 "got 65 characters");
    expect_error(HEAD "artifact_hashes:\n  model.onnx: "
                      "g123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n",
                 CRL_EFORMAT, "non-hex");
    expect_error(HEAD "artifact_hashes:\n  ../x: " HEX64 "\n", CRL_EFORMAT,
                 "v1/model_card.yaml:5: artifact_hashes: '../x' must be a relative path");
    expect_error(HEAD "artifact_hashes:\n  a/../../x: " HEX64 "\n", CRL_EFORMAT, "relative path");
    expect_error(HEAD "artifact_hashes:\n  /etc/passwd: " HEX64 "\n", CRL_EFORMAT, "relative path");
    expect_error(HEAD "artifact_hashes: [a, b]\n", CRL_EFORMAT, "must be a mapping");
    expect_error(HEAD "model_filename: ../model.onnx\n", CRL_EFORMAT,
                 "v1/model_card.yaml:4: model_filename: '../model.onnx' must be a relative");
}

static void test_action_space(void **state) {
    (void)state;
    crl_card_t *c = parse_ok(HEAD "action_space:\n  throttle: [0.2, 0.8]\n  brake: [0, 0.5]\n"
                                  "  steer: [-0.25, 0.75]\n");
    assert_true(c->action_lo[CRL_ACTION_THROTTLE] == 0.2f);
    assert_true(c->action_hi[CRL_ACTION_THROTTLE] == 0.8f);
    assert_true(c->action_lo[CRL_ACTION_BRAKE] == 0.0f);
    assert_true(c->action_hi[CRL_ACTION_BRAKE] == 0.5f);
    assert_true(c->action_lo[CRL_ACTION_STEER] == -0.25f);
    assert_true(c->action_hi[CRL_ACTION_STEER] == 0.75f);
    crl_card_free(c);
    expect_error(HEAD "action_space:\n  throttle: [1, 0]\n", CRL_ERANGE,
                 "v1/model_card.yaml:5: action_space: throttle: low (1) must be below high (0)");
    expect_error(HEAD "action_space:\n  brake: [0.5, 0.5]\n", CRL_ERANGE, "must be below");
    expect_error(HEAD "action_space:\n  steer: [0, 1, 2]\n", CRL_EFORMAT,
                 "steer: expected [low, high]");
    expect_error(HEAD "action_space:\n  steer: [a, 1]\n", CRL_EFORMAT, "expected [low, high]");
    expect_error(HEAD "action_space:\n  gear: [0, 1]\n", CRL_EFORMAT, "unknown action 'gear'");
    expect_error(HEAD "input_shape: [0]\n", CRL_EFORMAT, "input_shape");
    expect_error(HEAD "input_shape: 5\n", CRL_EFORMAT, "input_shape");
}

static void test_syntax_error_and_file(void **state) {
    (void)state;
    expect_error("model_name: m\nversion: [1.0.0\nmodel_type: onnx\n", CRL_EFORMAT,
                 "v1/model_card.yaml:");
    expect_error("model_name: m\n version: x\nmodel_type: onnx\n", CRL_EFORMAT,
                 "v1/model_card.yaml:2:");

    crl_card_t *c = NULL;
    crl_err err = {{0}};
    assert_int_equal(crl_card_load("/nonexistent/v9/model_card.yaml", &c, &err), CRL_ENOTFOUND);
    assert_null(c);
    assert_non_null(strstr(err.msg, "model card not found: /nonexistent/v9/model_card.yaml"));

    char path[] = "/tmp/crl_test_card_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs(HEAD "model_type: keras\n", f);
    fclose(f);
    assert_int_equal(crl_card_load(path, &c, &err), CRL_EUNSUPPORTED);
    char want[128];
    snprintf(want, sizeof(want), "%s:4: model_type", path); /* the last duplicate is used */
    assert_non_null(strstr(err.msg, want));
    remove(path);
}

static void test_artifact_card(void **state) {
    (void)state;
    crl_card_t *c = NULL;
    crl_err err = {{0}};
    assert_int_equal(crl_card_load(CRL_TEST_DATA "/artifacts/v0.1.0/model_card.yaml", &c, &err),
                     CRL_OK);
    assert_string_equal(c->model_type, "onnx");
    assert_int_equal(c->n_hashes, 2);
    assert_int_equal(c->input_width, 5);
    crl_card_free(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_minimal_defaults),
        cmocka_unit_test(test_required_keys),
        cmocka_unit_test(test_model_type),
        cmocka_unit_test(test_hashes),
        cmocka_unit_test(test_action_space),
        cmocka_unit_test(test_syntax_error_and_file),
        cmocka_unit_test(test_artifact_card),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
