/* test_yaml.c: the YAML/JSON document tree: structure, lines, conversions, the refusals
 * (aliases, size, depth) and the JSON writer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "config/yaml.h"

static crl_yaml_node_t *parse_ok(const char *text) {
    crl_yaml_node_t *n = NULL;
    crl_err err = {{0}};
    crl_status st = crl_yaml_parse(text, strlen(text), "t.yaml", &n, &err);
    if (st != CRL_OK) fail_msg("parse failed: %s", err.msg);
    return n;
}

static void test_structure_and_lines(void **state) {
    (void)state;
    crl_yaml_node_t *n = parse_ok("a: 1\n"
                                  "b:\n"
                                  "  - x\n"
                                  "  - \"2\"\n"
                                  "c: {d: [1, 2]}\n");
    assert_int_equal(n->kind, CRL_YAML_MAP);
    assert_int_equal(n->n, 3);
    const crl_yaml_node_t *b = crl_yaml_get(n, "b");
    assert_non_null(b);
    assert_int_equal(b->kind, CRL_YAML_SEQ);
    assert_int_equal(b->n, 2);
    assert_int_equal(b->line, 3);
    assert_string_equal(crl_yaml_str(b->items[0]), "x");
    assert_int_equal(b->items[1]->quoted, 1);
    assert_int_equal(b->items[0]->quoted, 0);
    assert_int_equal(b->items[1]->line, 4);
    const crl_yaml_node_t *d = crl_yaml_get(crl_yaml_get(n, "c"), "d");
    assert_non_null(d);
    assert_int_equal(d->n, 2);
    assert_int_equal(d->line, 5);
    assert_null(crl_yaml_get(n, "missing"));
    assert_null(crl_yaml_get(b, "x")); /* not a map */
    assert_null(crl_yaml_str(b));
    crl_yaml_free(n);
}

static void test_duplicate_last_wins(void **state) {
    (void)state;
    crl_yaml_node_t *n = parse_ok("{\"k\": 1, \"k\": 2}");
    assert_string_equal(crl_yaml_str(crl_yaml_get(n, "k")), "2");
    crl_buf b;
    crl_buf_init(&b, 1024);
    assert_int_equal(crl_yaml_write_json(n, &b), CRL_OK);
    assert_string_equal(b.data, "{\"k\": 2}");
    crl_buf_free(&b);
    crl_yaml_free(n);
}

static void test_conversions(void **state) {
    (void)state;
    crl_yaml_node_t *n =
        parse_ok("[1.5, -2e-3, abc, .inf, nan, '', true, No, ON, 0, maybe, 1x, \"7\"]");
    double d = 0;
    int b = -1;
    assert_int_equal(crl_yaml_double(n->items[0], &d), CRL_OK);
    assert_true(d == 1.5);
    assert_int_equal(crl_yaml_double(n->items[1], &d), CRL_OK);
    assert_true(d == -2e-3);
    assert_int_equal(crl_yaml_double(n->items[2], &d), CRL_EFORMAT);
    assert_int_equal(crl_yaml_double(n->items[3], &d), CRL_EFORMAT);  /* .inf */
    assert_int_equal(crl_yaml_double(n->items[4], &d), CRL_EFORMAT);  /* nan is not finite */
    assert_int_equal(crl_yaml_double(n->items[5], &d), CRL_EFORMAT);  /* empty */
    assert_int_equal(crl_yaml_double(n->items[11], &d), CRL_EFORMAT); /* trailing junk */
    assert_int_equal(crl_yaml_double(n, &d), CRL_EFORMAT);            /* not a scalar */
    assert_int_equal(crl_yaml_bool(n->items[6], &b), CRL_OK);
    assert_int_equal(b, 1);
    assert_int_equal(crl_yaml_bool(n->items[7], &b), CRL_OK);
    assert_int_equal(b, 0);
    assert_int_equal(crl_yaml_bool(n->items[8], &b), CRL_OK);
    assert_int_equal(b, 1);
    assert_int_equal(crl_yaml_bool(n->items[9], &b), CRL_OK);
    assert_int_equal(b, 0);
    assert_int_equal(crl_yaml_bool(n->items[10], &b), CRL_EFORMAT);
    crl_yaml_free(n);
}

static void expect_error(const char *text, crl_status want, const char *substr) {
    crl_yaml_node_t *n = NULL;
    crl_err err = {{0}};
    crl_status st = crl_yaml_parse(text, strlen(text), "bad.yaml", &n, &err);
    assert_int_equal(st, want);
    assert_null(n);
    if (strstr(err.msg, substr) == NULL) fail_msg("'%s' not in '%s'", substr, err.msg);
}

static void test_errors(void **state) {
    (void)state;
    expect_error("a: 1\nb: [1, 2\n", CRL_EFORMAT, "bad.yaml:");
    expect_error("a: 1\n  b: 2\n", CRL_EFORMAT, "bad.yaml:2:");
    expect_error("a: &x 1\nb: *x\n", CRL_EUNSUPPORTED, "bad.yaml:1: anchors");
    expect_error("a: [1]\nb: *x\n", CRL_EUNSUPPORTED, "bad.yaml:2: anchors (&x) and aliases");
    expect_error("base: &b {x: 1}\n", CRL_EUNSUPPORTED, "anchors");
    expect_error("? [a, b]\n: 1\n", CRL_EUNSUPPORTED, "mapping keys");
    expect_error("a: \"x\\0y\"\n", CRL_EFORMAT, "NUL");
}

static void test_depth_and_size_caps(void **state) {
    (void)state;
    char deep[300];
    memset(deep, '[', 200);
    deep[200] = '\0';
    expect_error(deep, CRL_EFORMAT, "nesting");

    size_t big = (1u << 20) + 10;
    char *text = malloc(big + 1);
    assert_non_null(text);
    memset(text, ' ', big);
    memcpy(text, "a: 1\n", 5);
    text[big] = '\0';
    crl_yaml_node_t *n = NULL;
    crl_err err = {{0}};
    assert_int_equal(crl_yaml_parse(text, big, "big.yaml", &n, &err), CRL_ENOMEM);
    assert_non_null(strstr(err.msg, "1 MiB"));
    free(text);
}

static void test_empty_and_json(void **state) {
    (void)state;
    crl_yaml_node_t *n = parse_ok("");
    assert_int_equal(n->kind, CRL_YAML_SCALAR);
    assert_string_equal(n->scalar, "");
    crl_yaml_free(n);

    n = parse_ok("name: \"a\\\"b\"\nnum: 3\nneg: -1.5e3\nplus: +2\nt: True\nnl: ~\nempty:\n"
                 "s: hello\nq: '12'\nlist: [a, 1]\nyes: yes\n");
    crl_buf b;
    crl_buf_init(&b, 4096);
    assert_int_equal(crl_yaml_write_json(n, &b), CRL_OK);
    assert_string_equal(b.data,
                        "{\"name\": \"a\\\"b\", \"num\": 3, \"neg\": -1.5e3, \"plus\": 2.0, "
                        "\"t\": true, \"nl\": null, \"empty\": null, \"s\": \"hello\", "
                        "\"q\": \"12\", \"list\": [\"a\", 1], \"yes\": \"yes\"}");
    crl_buf_free(&b);
    crl_yaml_free(n);
    crl_yaml_free(NULL);
}

static void test_load_file(void **state) {
    (void)state;
    crl_yaml_node_t *n = NULL;
    crl_err err = {{0}};
    assert_int_equal(crl_yaml_load_file("/nonexistent/x.yaml", &n, &err), CRL_ENOTFOUND);
    assert_non_null(strstr(err.msg, "/nonexistent/x.yaml"));
    /* JSON through the same parser. */
    assert_int_equal(
        crl_yaml_load_file(CRL_TEST_DATA "/artifacts/v0.1.0/preprocessor.json", &n, &err), CRL_OK);
    assert_string_equal(crl_yaml_str(crl_yaml_get(n, "type")), "standard");
    crl_yaml_free(n);
    /* The largest golden file (a single ~250 KB JSON line) parses. */
    assert_int_equal(crl_yaml_load_file(CRL_TEST_DATA "/golden/golden_b1000.json", &n, &err),
                     CRL_OK);
    assert_int_equal(crl_yaml_get(crl_yaml_get(n, "request"), "observations")->n, 1000);
    crl_yaml_free(n);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_structure_and_lines), cmocka_unit_test(test_duplicate_last_wins),
        cmocka_unit_test(test_conversions),         cmocka_unit_test(test_errors),
        cmocka_unit_test(test_depth_and_size_caps), cmocka_unit_test(test_empty_and_json),
        cmocka_unit_test(test_load_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
