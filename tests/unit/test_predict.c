/* test_predict.c: the /predict body reader. Every expectation is what the original service (Python
 * 3.13 json.loads + FastAPI + pydantic 2 lax mode) answers for the same bytes: the accepted
 * values, and for bad bodies the exact field, message and type of each validation error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/predict.h"

static crl_predict_parser_t *g_p;

static int setup(void **state) {
    (void)state;
    return crl_predict_parser_new(&g_p) == CRL_OK ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    crl_predict_parser_free(g_p);
    g_p = NULL;
    return 0;
}

static crl_status parse(const char *s, crl_predict_req_t *o) {
    return crl_predict_parse(g_p, s, strlen(s), o);
}

static void expect_err(const crl_predict_req_t *o, size_t i, const char *field, const char *type,
                       const char *msg) {
    assert_true(i < o->n_errors);
    assert_string_equal(o->errors[i].field, field);
    assert_string_equal(o->errors[i].type, type);
    assert_string_equal(o->errors[i].message, msg);
}

/* Exactly one error, and it is this one. */
static void expect_one(const char *body, const char *field, const char *type, const char *msg) {
    crl_predict_req_t o;
    assert_int_equal(parse(body, &o), CRL_EINVAL);
    assert_int_equal(o.n_errors_total, 1);
    assert_int_equal(o.n_errors, 1);
    expect_err(&o, 0, field, type, msg);
}

static void expect_json_invalid(const char *body, size_t len, size_t offset) {
    crl_predict_req_t o;
    char field[32];
    snprintf(field, sizeof(field), "body.%zu", offset);
    assert_int_equal(crl_predict_parse(g_p, body, len, &o), CRL_EINVAL);
    assert_int_equal(o.json_invalid, 1);
    assert_int_equal(o.n_errors_total, 1);
    expect_err(&o, 0, field, "json_invalid", "JSON decode error");
}

#define JI(s, off) expect_json_invalid(s, sizeof(s) - 1, off)

static const char *const k_valid =
    "{\"observations\":[{\"speed\":25.5,\"steering\":0.1,\"sensors\":[0.5,-0.25,1000]}],"
    "\"deterministic\":true}";

#define M_MISSING "Field required"
#define M_FLOAT_TYPE "Input should be a valid number"
#define M_FLOAT_PARSE "Input should be a valid number, unable to parse string as a number"
#define M_FINITE "Input should be a finite number"
#define M_MODEL "Input should be a valid dictionary or object to extract fields from"
#define M_BOOL_TYPE "Input should be a valid boolean"
#define M_BOOL_PARSE "Input should be a valid boolean, unable to interpret input"
#define M_SHORT "List should have at least 1 item after validation, not 0"

static void test_valid_single(void **state) {
    (void)state;
    crl_predict_req_t o;
    assert_int_equal(parse(k_valid, &o), CRL_OK);
    assert_int_equal(o.n, 1);
    assert_int_equal(o.json_invalid, 0);
    assert_int_equal(o.n_errors_total, 0);
    assert_float_equal(o.speed[0], 25.5f, 0);
    assert_float_equal(o.steering[0], 0.1f, 0);
    assert_int_equal(o.sensor_off[0], 0);
    assert_int_equal(o.sensor_len[0], 3);
    assert_int_equal(o.max_sensors, 3);
    assert_float_equal(o.sensors[0], 0.5f, 0);
    assert_float_equal(o.sensors[1], -0.25f, 0);
    assert_float_equal(o.sensors[2], 1000.0f, 0);
    assert_int_equal(o.deterministic, 1);
}

static void test_valid_batch(void **state) {
    (void)state;
    crl_predict_req_t o;
    const char *b = " \r\n\t{ \"observations\" : [ {\"sensors\": [1, 2], \"speed\": 0, "
                    "\"steering\": -1}, {\"speed\": 200, \"steering\": 1, \"sensors\": [3, 4, "
                    "5, 6], \"extra\": {\"deep\": [1, {\"x\": null}]}} ,{\"speed\":1e1,"
                    "\"steering\":-0.0,\"sensors\":[-1000]}], \"deterministic\": null, "
                    "\"unknown\": \"\\u00e9\\ud83d\\ude00\" } \n";
    assert_int_equal(parse(b, &o), CRL_OK);
    assert_int_equal(o.n, 3);
    assert_int_equal(o.deterministic, 0);
    assert_int_equal(o.max_sensors, 4);
    assert_int_equal(o.sensor_off[1], 2);
    assert_int_equal(o.sensor_len[1], 4);
    assert_int_equal(o.sensor_off[2], 6);
    assert_int_equal(o.sensor_len[2], 1);
    assert_float_equal(o.sensors[5], 6.0f, 0);
    assert_float_equal(o.sensors[6], -1000.0f, 0);
    assert_float_equal(o.speed[2], 10.0f, 0);
    assert_float_equal(o.steering[0], -1.0f, 0);
    assert_true(signbit(o.steering[2]));
    /* deterministic absent is false too */
    assert_int_equal(parse("{\"observations\":[{\"speed\":1,\"steering\":0,\"sensors\":[0]}]}", &o),
                     CRL_OK);
    assert_int_equal(o.deterministic, 0);
}

static void test_lax_coercions(void **state) {
    (void)state;
    crl_predict_req_t o;
    assert_int_equal(parse("{\"observations\":[{\"speed\":\" 25.5\\n\",\"steering\":true,"
                           "\"sensors\":[false,\"1_0\",\"\\u0033\",\".5\",\"1.\",\"+2e1\","
                           "\"\\u00a07\\u3000\"]}],\"deterministic\":\"YES\"}",
                           &o),
                     CRL_OK);
    assert_float_equal(o.speed[0], 25.5f, 0);
    assert_float_equal(o.steering[0], 1.0f, 0);
    const float want[] = {0, 10, 3, 0.5f, 1, 20, 7};
    assert_int_equal(o.sensor_len[0], 7);
    for (int i = 0; i < 7; i++)
        assert_float_equal(o.sensors[i], want[i], 0);
    assert_int_equal(o.deterministic, 1);

    static const struct {
        const char *v;
        int want;
    } bools[] = {{"1", 1},      {"0", 0},       {"1.0", 1},   {"\"t\"", 1},   {"\"F\"", 0},
                 {"\"on\"", 1}, {"\"Off\"", 0}, {"\"n\"", 0}, {"\"y\"", 1},   {"\"no\"", 0},
                 {"\"1\"", 1},  {"\"0\"", 0},   {"false", 0}, {"\"TRUE\"", 1}};
    for (size_t i = 0; i < sizeof(bools) / sizeof(bools[0]); i++) {
        char b[160];
        snprintf(b, sizeof(b),
                 "{\"observations\":[{\"speed\":1,\"steering\":0,\"sensors\":[0]}],"
                 "\"deterministic\":%s}",
                 bools[i].v);
        assert_int_equal(parse(b, &o), CRL_OK);
        assert_int_equal(o.deterministic, bools[i].want);
    }
}

static void test_missing_fields(void **state) {
    (void)state;
    crl_predict_req_t o;
    expect_one("{}", "body.observations", "missing", M_MISSING);
    expect_one("null", "body", "missing", M_MISSING);
    assert_int_equal(parse("{\"observations\":[{}]}", &o), CRL_EINVAL);
    assert_int_equal(o.json_invalid, 0);
    assert_int_equal(o.n_errors_total, 3);
    expect_err(&o, 0, "body.observations.0.speed", "missing", M_MISSING);
    expect_err(&o, 1, "body.observations.0.steering", "missing", M_MISSING);
    expect_err(&o, 2, "body.observations.0.sensors", "missing", M_MISSING);
    /* An empty body is a schema error ("missing"), not a JSON error: FastAPI validates it after
     * the dependencies, so with no model loaded it yields 503 like other schema errors. */
    assert_int_equal(crl_predict_parse(g_p, "", 0, &o), CRL_EINVAL);
    assert_int_equal(o.json_invalid, 0);
    assert_int_equal(o.n_errors_total, 1);
    expect_err(&o, 0, "body", "missing", M_MISSING);
}

/* pydantic reports fields in schema order, whatever order the keys came in. */
static void test_error_order(void **state) {
    (void)state;
    crl_predict_req_t o;
    assert_int_equal(parse("{\"deterministic\":\"maybe\",\"observations\":[{\"sensors\":[\"x\",1,"
                           "null],\"steering\":5,\"speed\":-1},{\"steering\":0}]}",
                           &o),
                     CRL_EINVAL);
    assert_int_equal(o.n_errors_total, 7);
    expect_err(&o, 0, "body.observations.0.speed", "greater_than_equal",
               "Input should be greater than or equal to 0");
    expect_err(&o, 1, "body.observations.0.steering", "less_than_equal",
               "Input should be less than or equal to 1");
    expect_err(&o, 2, "body.observations.0.sensors.0", "float_parsing", M_FLOAT_PARSE);
    expect_err(&o, 3, "body.observations.0.sensors.2", "float_type", M_FLOAT_TYPE);
    expect_err(&o, 4, "body.observations.1.speed", "missing", M_MISSING);
    expect_err(&o, 5, "body.observations.1.sensors", "missing", M_MISSING);
    expect_err(&o, 6, "body.deterministic", "bool_parsing", M_BOOL_PARSE);
}

static void test_type_errors(void **state) {
    (void)state;
    expect_one("[]", "body", "model_attributes_type", M_MODEL);
    expect_one("\"x\"", "body", "model_attributes_type", M_MODEL);
    expect_one("NaN", "body", "model_attributes_type", M_MODEL);
    expect_one("{\"observations\":\"x\"}", "body.observations", "list_type",
               "Input should be a valid list");
    expect_one("{\"observations\":null}", "body.observations", "list_type",
               "Input should be a valid list");
    expect_one("{\"observations\":{}}", "body.observations", "list_type",
               "Input should be a valid list");
    expect_one("{\"observations\":[]}", "body.observations", "too_short", M_SHORT);
    expect_one("{\"observations\":[1]}", "body.observations.0", "model_attributes_type", M_MODEL);
    expect_one("{\"observations\":[{\"speed\":null,\"steering\":0,\"sensors\":[1]}]}",
               "body.observations.0.speed", "float_type", M_FLOAT_TYPE);
    expect_one("{\"observations\":[{\"speed\":[1],\"steering\":0,\"sensors\":[1]}]}",
               "body.observations.0.speed", "float_type", M_FLOAT_TYPE);
    expect_one("{\"observations\":[{\"speed\":{},\"steering\":0,\"sensors\":[1]}]}",
               "body.observations.0.speed", "float_type", M_FLOAT_TYPE);
    expect_one("{\"observations\":[{\"speed\":\"abc\",\"steering\":0,\"sensors\":[1]}]}",
               "body.observations.0.speed", "float_parsing", M_FLOAT_PARSE);
    expect_one("{\"observations\":[{\"speed\":\"\",\"steering\":0,\"sensors\":[1]}]}",
               "body.observations.0.speed", "float_parsing", M_FLOAT_PARSE);
    expect_one("{\"observations\":[{\"speed\":\"1__0\",\"steering\":0,\"sensors\":[1]}]}",
               "body.observations.0.speed", "float_parsing", M_FLOAT_PARSE);
    expect_one("{\"observations\":[{\"speed\":\"0x10\",\"steering\":0,\"sensors\":[1]}]}",
               "body.observations.0.speed", "float_parsing", M_FLOAT_PARSE);
    expect_one("{\"observations\":[{\"speed\":1,\"steering\":0,\"sensors\":\"1\"}]}",
               "body.observations.0.sensors", "list_type", "Input should be a valid list");
    expect_one("{\"observations\":[{\"speed\":1,\"steering\":0,\"sensors\":[]}]}",
               "body.observations.0.sensors", "too_short", M_SHORT);
}

static void test_ranges(void **state) {
    (void)state;
    expect_one("{\"observations\":[{\"speed\":200.0001,\"steering\":0,\"sensors\":[1]}]}",
               "body.observations.0.speed", "less_than_equal",
               "Input should be less than or equal to 200");
    expect_one("{\"observations\":[{\"speed\":-0.001,\"steering\":0,\"sensors\":[1]}]}",
               "body.observations.0.speed", "greater_than_equal",
               "Input should be greater than or equal to 0");
    expect_one("{\"observations\":[{\"speed\":1,\"steering\":-1.5,\"sensors\":[1]}]}",
               "body.observations.0.steering", "greater_than_equal",
               "Input should be greater than or equal to -1");
    expect_one("{\"observations\":[{\"speed\":1,\"steering\":\"1.01\",\"sensors\":[1]}]}",
               "body.observations.0.steering", "less_than_equal",
               "Input should be less than or equal to 1");
    crl_predict_req_t o;
    assert_int_equal(
        parse("{\"observations\":[{\"speed\":-0,\"steering\":0,\"sensors\":[1]}]}", &o), CRL_OK);
}

static void test_non_finite(void **state) {
    (void)state;
    static const char *const vals[] = {"NaN",     "Infinity", "-Infinity",    "1e999",    "-1e999",
                                       "\"nan\"", "\"-inf\"", "\"Infinity\"", "\"1e400\""};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        char b[128];
        snprintf(b, sizeof(b), "{\"observations\":[{\"speed\":%s,\"steering\":0,\"sensors\":[1]}]}",
                 vals[i]);
        expect_one(b, "body.observations.0.speed", "finite_number", M_FINITE);
        snprintf(b, sizeof(b), "{\"observations\":[{\"speed\":1,\"steering\":%s,\"sensors\":[1]}]}",
                 vals[i]);
        expect_one(b, "body.observations.0.steering", "finite_number", M_FINITE);
    }
    /* An integer too large for a double: Python cannot convert the int at all. */
    char big[600];
    int n = snprintf(big, sizeof(big), "{\"observations\":[{\"speed\":1");
    for (int i = 0; i < 400; i++)
        big[n++] = '0';
    snprintf(big + n, sizeof(big) - (size_t)n, ",\"steering\":0,\"sensors\":[1]}]}");
    expect_one(big, "body.observations.0.speed", "float_type", M_FLOAT_TYPE);
}

static void test_sensor_bounds(void **state) {
    (void)state;
    expect_one("{\"observations\":[{\"speed\":1,\"steering\":0,\"sensors\":[0,1001,2000]}]}",
               "body.observations.0.sensors", "value_error",
               "Value error, Sensor value at index 1 out of bounds: 1001.0");
    expect_one("{\"observations\":[{\"speed\":1,\"steering\":0,\"sensors\":[NaN]}]}",
               "body.observations.0.sensors", "value_error",
               "Value error, Sensor value at index 0 out of bounds: nan");
    expect_one("{\"observations\":[{\"speed\":1,\"steering\":0,\"sensors\":[1,\"inf\"]}]}",
               "body.observations.0.sensors", "value_error",
               "Value error, Sensor value at index 1 out of bounds: inf");
    expect_one("{\"observations\":[{\"speed\":1,\"steering\":0,\"sensors\":[-1e999]}]}",
               "body.observations.0.sensors", "value_error",
               "Value error, Sensor value at index 0 out of bounds: -inf");
    expect_one("{\"observations\":[{\"speed\":1,\"steering\":0,\"sensors\":[-1000.0000001]}]}",
               "body.observations.0.sensors", "value_error",
               "Value error, Sensor value at index 0 out of bounds: -1000.0000001");
    /* The validator only runs on a list whose items all parsed. */
    expect_one("{\"observations\":[{\"speed\":1,\"steering\":0,\"sensors\":[5000,\"x\"]}]}",
               "body.observations.0.sensors.1", "float_parsing", M_FLOAT_PARSE);
}

static char *repeat_body(const char *head, const char *item, size_t n, const char *tail) {
    size_t hl = strlen(head), il = strlen(item), tl = strlen(tail);
    char *b = malloc(hl + n * (il + 1) + tl + 1);
    assert_non_null(b);
    char *o = b;
    memcpy(o, head, hl);
    o += hl;
    for (size_t i = 0; i < n; i++) {
        if (i) *o++ = ',';
        memcpy(o, item, il);
        o += il;
    }
    memcpy(o, tail, tl + 1);
    return b;
}

static void test_list_caps(void **state) {
    (void)state;
    crl_predict_req_t o;
    /* 1000 observations are fine, 1001 give one too_long and nothing about the items. */
    char *b = repeat_body("{\"observations\":[", "{\"speed\":1,\"steering\":0,\"sensors\":[1]}",
                          1000, "]}");
    assert_int_equal(parse(b, &o), CRL_OK);
    assert_int_equal(o.n, 1000);
    free(b);
    b = repeat_body("{\"observations\":[", "{\"speed\":-1,\"steering\":0,\"sensors\":[1]}", 1001,
                    "],\"deterministic\":[]}");
    assert_int_equal(parse(b, &o), CRL_EINVAL);
    assert_int_equal(o.n_errors_total, 2);
    expect_err(&o, 0, "body.observations", "too_long",
               "List should have at most 1000 items after validation, not 1001");
    expect_err(&o, 1, "body.deterministic", "bool_type", M_BOOL_TYPE);
    free(b);
    b = repeat_body("{\"observations\":[", "7", 1500, "]}");
    expect_one(b, "body.observations", "too_long",
               "List should have at most 1000 items after validation, not 1500");
    free(b);

    b = repeat_body("{\"observations\":[{\"speed\":1,\"steering\":0,\"sensors\":[", "0.5", 10000,
                    "]}]}");
    assert_int_equal(parse(b, &o), CRL_OK);
    assert_int_equal(o.max_sensors, 10000);
    free(b);
    b = repeat_body("{\"observations\":[{\"speed\":1,\"steering\":0,\"sensors\":[", "\"x\"", 10001,
                    "]}]}");
    expect_one(b, "body.observations.0.sensors", "too_long",
               "List should have at most 10000 items after validation, not 10001");
    free(b);
}

static void test_error_cap(void **state) {
    (void)state;
    crl_predict_req_t o;
    char *b = repeat_body("{\"observations\":[{\"sensors\":[", "null", 100,
                          "],\"speed\":-5,\"steering\":0}]}");
    assert_int_equal(parse(b, &o), CRL_EINVAL);
    assert_int_equal(o.n_errors_total, 101);
    assert_int_equal(o.n_errors, CRL_PREDICT_MAX_ERRORS);
    expect_err(&o, 0, "body.observations.0.speed", "greater_than_equal",
               "Input should be greater than or equal to 0");
    expect_err(&o, 1, "body.observations.0.sensors.0", "float_type", M_FLOAT_TYPE);
    expect_err(&o, CRL_PREDICT_MAX_ERRORS - 1, "body.observations.0.sensors.62", "float_type",
               M_FLOAT_TYPE);
    free(b);
}

static void test_bool_errors(void **state) {
    (void)state;
    static const struct {
        const char *v, *type, *msg;
    } cases[] = {
        {"2", "bool_parsing", M_BOOL_PARSE},
        {"-1", "bool_parsing", M_BOOL_PARSE},
        {"2.0", "bool_parsing", M_BOOL_PARSE},
        {"\"maybe\"", "bool_parsing", M_BOOL_PARSE},
        {"\" true\"", "bool_parsing", M_BOOL_PARSE},
        {"1.5", "bool_type", M_BOOL_TYPE},
        {"[]", "bool_type", M_BOOL_TYPE},
        {"{}", "bool_type", M_BOOL_TYPE},
        {"NaN", "bool_type", M_BOOL_TYPE},
        {"1e300", "bool_type", M_BOOL_TYPE},
        {"99999999999999999999", "bool_type", M_BOOL_TYPE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char b[160];
        snprintf(b, sizeof(b),
                 "{\"observations\":[{\"speed\":1,\"steering\":0,\"sensors\":[0]}],"
                 "\"deterministic\":%s}",
                 cases[i].v);
        expect_one(b, "body.deterministic", cases[i].type, cases[i].msg);
    }
}

static void test_duplicate_keys(void **state) {
    (void)state;
    crl_predict_req_t o;
    assert_int_equal(parse("{\"observations\":[{\"speed\":-1,\"speed\":5,\"steering\":0,"
                           "\"sensors\":[\"x\",9],\"sensors\":[1,2,3]},{\"speed\":1,"
                           "\"steering\":0,\"sensors\":[4]}],\"deterministic\":\"bad\","
                           "\"deterministic\":true}",
                           &o),
                     CRL_OK);
    assert_float_equal(o.speed[0], 5.0f, 0);
    assert_int_equal(o.sensor_len[0], 3);
    assert_int_equal(o.sensor_off[1], 3);
    assert_float_equal(o.sensors[3], 4.0f, 0);
    assert_int_equal(o.deterministic, 1);
    /* A second observations list replaces the first, errors included. */
    assert_int_equal(parse("{\"observations\":[1,2,{}],\"observations\":[{\"speed\":3,"
                           "\"steering\":0,\"sensors\":[7,8]}]}",
                           &o),
                     CRL_OK);
    assert_int_equal(o.n, 1);
    assert_int_equal(o.sensor_off[0], 0);
    assert_float_equal(o.sensors[1], 8.0f, 0);
    expect_one("{\"observations\":[{\"speed\":1,\"steering\":0,\"sensors\":[1]}],"
               "\"observations\":[]}",
               "body.observations", "too_short", M_SHORT);
}

static void test_json_errors(void **state) {
    (void)state;
    JI("   ", 3);
    JI("{", 1);
    JI("{\"observations\": [1,]}", 19);
    JI("{\"a\":1,}", 6);
    JI("{\"a\":1} x", 8);
    JI("01", 1);
    JI("{\"a\":01}", 6);
    JI("{\"a\":+1}", 5);
    JI("{\"a\":.5}", 5);
    JI("{\"a\":1.}", 6);
    JI("{\"a\":1e}", 6);
    JI("{\"a\":-}", 5);
    JI("{'a':1}", 1);
    JI("{\"a\" 1}", 5);
    JI("{\"a\":tru}", 5);
    JI("{\"a\":nulll}", 9);
    JI("[1 2]", 3);
    JI("{\"a\":\"x\ty\"}", 7);
    JI("{\"a\":\"\\x\"}", 6);
    JI("{\"a\":\"\\u12G4\"}", 7);
    JI("{\"a\":\"\\u12\"}", 7);
    JI("{\"a\":\"abc", 5);
    JI("{\"a\":\"\\", 5);
    JI("{\"a\":-Inf}", 5);
    JI("{\"a\":infinity}", 5);
    JI("{\"a\" : 1 , }", 9);
    JI("{,}", 1);
    JI("[,1]", 1);
    JI("{\"a\":[}", 6);
    JI("\"\x80\"", 1);             /* stray continuation byte */
    JI("\"\xc3\"", 1);             /* truncated sequence */
    JI("\"\xc0\xaf\"", 1);         /* overlong */
    JI("\"\xf4\x90\x80\x80\"", 1); /* above U+10FFFF */
    JI("{\"\xc3\xa9\":x}", 5);     /* offsets count characters, not bytes */
    JI("\xef\xbb\xbf[1,]", 2);     /* a BOM is dropped before counting */
    crl_predict_req_t o;
    /* Encoded surrogates pass (Python decodes with surrogatepass), so this is only a schema error.
     */
    assert_int_equal(parse("\"\xed\xa0\x80\"", &o), CRL_EINVAL);
    assert_int_equal(o.json_invalid, 0);
    assert_int_equal(parse("\xef\xbb\xbf{\"observations\":[{\"speed\":1,\"steering\":0,"
                           "\"sensors\":[1]}]}",
                           &o),
                     CRL_OK);
    /* Schema errors before the bad byte are dropped: only the JSON error is reported. */
    JI("{\"observations\":\"x\",\"deterministic\":[]", 38);
    /* NUL inside a string is a control character. */
    expect_json_invalid("\"a\0\"", 4, 2);
}

static void test_depth(void **state) {
    (void)state;
    char b[400];
    crl_predict_req_t o;
    /* 64 levels in total are allowed (the top object is level 1). */
    int n = snprintf(b, sizeof(b),
                     "{\"observations\":[{\"speed\":1,\"steering\":0,\"sensors\":[1],"
                     "\"x\":");
    int open = 64 - 3;
    for (int i = 0; i < open; i++)
        b[n++] = '[';
    for (int i = 0; i < open; i++)
        b[n++] = ']';
    snprintf(b + n, sizeof(b) - (size_t)n, "}]}");
    assert_int_equal(parse(b, &o), CRL_OK);
    memset(b, '[', 65);
    memset(b + 65, ']', 65);
    expect_json_invalid(b, 130, 64);
}

/* Every strict prefix of a valid body is malformed JSON (or, at length 0, a missing body). */
static void test_truncations(void **state) {
    (void)state;
    const char *full = "{\"observations\": [{\"speed\": 25.5, \"steering\": -0.1, \"sensors\": "
                       "[0.5, \"1\", true]}, {\"speed\": 1e1, \"steering\": 0, \"sensors\": "
                       "[1E-3]}], \"deterministic\": \"on\", \"k\": \"\\u00e9\\ud83d\\ude00\"}";
    size_t n = strlen(full);
    crl_predict_req_t o;
    assert_int_equal(crl_predict_parse(g_p, full, n, &o), CRL_OK);
    for (size_t len = 0; len < n; len++) {
        /* Copy to an exact-size heap block so ASan catches any read past len. */
        char *b = malloc(len ? len : 1);
        memcpy(b, full, len);
        assert_int_equal(crl_predict_parse(g_p, b, len, &o), CRL_EINVAL);
        assert_int_equal(o.n_errors_total, 1);
        if (len == 0) {
            assert_string_equal(o.errors[0].type, "missing");
        } else {
            assert_int_equal(o.json_invalid, 1);
            assert_string_equal(o.errors[0].type, "json_invalid");
        }
        free(b);
    }
}

static void test_trailing_garbage(void **state) {
    (void)state;
    char b[512];
    int n = snprintf(b, sizeof(b), "%s  x", k_valid);
    expect_json_invalid(b, (size_t)n, strlen(k_valid) + 2);
    n = snprintf(b, sizeof(b), "%s}", k_valid);
    expect_json_invalid(b, (size_t)n, strlen(k_valid));
    n = snprintf(b, sizeof(b), "%s%s", k_valid, k_valid);
    expect_json_invalid(b, (size_t)n, strlen(k_valid));
}

static void test_reuse(void **state) {
    (void)state;
    crl_predict_req_t o;
    char *big = repeat_body("{\"observations\":[",
                            "{\"speed\":100,\"steering\":0.5,\"sensors\":[9,9,9,9,9,9,9,9]}", 1000,
                            "],\"deterministic\":1}");
    for (int round = 0; round < 3; round++) {
        assert_int_equal(parse(big, &o), CRL_OK);
        assert_int_equal(o.n, 1000);
        assert_int_equal(o.sensor_off[999], 999 * 8);
        assert_int_equal(o.deterministic, 1);
        assert_int_equal(parse("{\"observations\":[{\"speed\":2,\"steering\":-0.5,\"sensors\":[3]}"
                               "]}",
                               &o),
                         CRL_OK);
        assert_int_equal(o.n, 1);
        assert_int_equal(o.max_sensors, 1);
        assert_float_equal(o.speed[0], 2.0f, 0);
        assert_float_equal(o.steering[0], -0.5f, 0);
        assert_float_equal(o.sensors[0], 3.0f, 0);
        assert_int_equal(o.deterministic, 0);
        assert_int_equal(parse("{}", &o), CRL_EINVAL);
        crl_predict_parser_trim(g_p, 4096);
    }
    free(big);
    assert_int_equal(parse(k_valid, &o), CRL_OK);
    assert_int_equal(o.sensor_len[0], 3);
}

/* Beyond what a 16 MiB body can hold, the parser refuses with ENOMEM instead of growing. */
static void test_sensor_total_cap(void **state) {
    (void)state;
    const size_t rows = 1000, per = 8400;
    char *row = repeat_body("{\"speed\":1,\"steering\":0,\"sensors\":[", "0", per, "]}");
    char *b = repeat_body("{\"observations\":[", row, rows, "]}");
    crl_predict_req_t o;
    assert_int_equal(parse(b, &o), CRL_ENOMEM);
    assert_int_equal(o.n_errors_total, 0);
    free(b);
    free(row);
    crl_predict_parser_trim(g_p, 0);
    assert_int_equal(parse(k_valid, &o), CRL_OK);
}

/* ---- "seed": Optional[conint(ge=0, le=2**64 - 1)] (carlarl's addition) ---------------------- */

#define OBS1 "{\"observations\":[{\"speed\":1,\"steering\":0,\"sensors\":[1]}],"
#define M_INT_TYPE "Input should be a valid integer"
#define M_INT_PARSE "Input should be a valid integer, unable to parse string as an integer"
#define M_INT_FRAC "Input should be a valid integer, got a number with a fractional part"
#define M_SEED_GE "Input should be greater than or equal to 0"
#define M_SEED_LE "Input should be less than or equal to 18446744073709551615"

static void expect_seed(const char *body, int has, uint64_t want) {
    crl_predict_req_t o;
    assert_int_equal(parse(body, &o), CRL_OK);
    assert_int_equal(o.has_seed, has);
    assert_true(o.seed == want);
}

static void test_seed_values(void **state) {
    (void)state;
    expect_seed(OBS1 "\"deterministic\":false}", 0, 0);
    expect_seed(OBS1 "\"seed\":null}", 0, 0);
    expect_seed(OBS1 "\"seed\":0}", 1, 0);
    expect_seed(OBS1 "\"seed\":-0}", 1, 0);
    expect_seed(OBS1 "\"seed\":42}", 1, 42);
    expect_seed(OBS1 "\"seed\":18446744073709551615}", 1, UINT64_MAX);
    expect_seed(OBS1 "\"seed\":12345678901234567890}", 1, 12345678901234567890ull);
    /* pydantic lax int: exact floats, numeric strings (trimmed, '_' separators, ".0"), bools. */
    expect_seed(OBS1 "\"seed\":7.0}", 1, 7);
    expect_seed(OBS1 "\"seed\":1e3}", 1, 1000);
    expect_seed(OBS1 "\"seed\":\" 99 \"}", 1, 99);
    expect_seed(OBS1 "\"seed\":\"\\u00a07\"}", 1, 7);
    expect_seed(OBS1 "\"seed\":\"1_000\"}", 1, 1000);
    expect_seed(OBS1 "\"seed\":\"+5.00\"}", 1, 5);
    expect_seed(OBS1 "\"seed\":true}", 1, 1);
    expect_seed(OBS1 "\"seed\":false}", 1, 0);
    /* The last duplicate wins, null included. */
    expect_seed(OBS1 "\"seed\":1,\"seed\":2}", 1, 2);
    expect_seed(OBS1 "\"seed\":1,\"seed\":null}", 0, 0);
    expect_seed(OBS1 "\"seed\":\"x\",\"seed\":3}", 1, 3);
}

static void test_seed_errors(void **state) {
    (void)state;
    expect_one(OBS1 "\"seed\":-1}", "body.seed", "greater_than_equal", M_SEED_GE);
    expect_one(OBS1 "\"seed\":-99999999999999999999999}", "body.seed", "greater_than_equal",
               M_SEED_GE);
    expect_one(OBS1 "\"seed\":\"-3\"}", "body.seed", "greater_than_equal", M_SEED_GE);
    expect_one(OBS1 "\"seed\":-2.0}", "body.seed", "greater_than_equal", M_SEED_GE);
    expect_one(OBS1 "\"seed\":18446744073709551616}", "body.seed", "less_than_equal", M_SEED_LE);
    /* pydantic takes floats through an i64: beyond it, int_parsing_size. */
    expect_one(OBS1 "\"seed\":1e20}", "body.seed", "int_parsing_size",
               "Unable to parse input string as an integer, exceeded maximum size");
    expect_one(OBS1 "\"seed\":-9.3e18}", "body.seed", "int_parsing_size",
               "Unable to parse input string as an integer, exceeded maximum size");
    expect_seed(OBS1 "\"seed\":9.2e18}", 1, 9200000000000000000ull);
    expect_one(OBS1 "\"seed\":\"18446744073709551616\"}", "body.seed", "less_than_equal",
               M_SEED_LE);
    expect_one(OBS1 "\"seed\":1.5}", "body.seed", "int_from_float", M_INT_FRAC);
    expect_one(OBS1 "\"seed\":NaN}", "body.seed", "finite_number", M_FINITE);
    expect_one(OBS1 "\"seed\":Infinity}", "body.seed", "finite_number", M_FINITE);
    expect_one(OBS1 "\"seed\":\"abc\"}", "body.seed", "int_parsing", M_INT_PARSE);
    expect_one(OBS1 "\"seed\":\"1.5\"}", "body.seed", "int_parsing", M_INT_PARSE);
    expect_one(OBS1 "\"seed\":\"\"}", "body.seed", "int_parsing", M_INT_PARSE);
    expect_one(OBS1 "\"seed\":\"1__0\"}", "body.seed", "int_parsing", M_INT_PARSE);
    expect_one(OBS1 "\"seed\":[1]}", "body.seed", "int_type", M_INT_TYPE);
    expect_one(OBS1 "\"seed\":{}}", "body.seed", "int_type", M_INT_TYPE);

    /* Schema order: observations, deterministic, seed. */
    crl_predict_req_t o;
    assert_int_equal(parse("{\"seed\":\"x\",\"deterministic\":\"maybe\"}", &o), CRL_EINVAL);
    assert_int_equal(o.n_errors_total, 3);
    expect_err(&o, 0, "body.observations", "missing", M_MISSING);
    expect_err(&o, 1, "body.deterministic", "bool_parsing", M_BOOL_PARSE);
    expect_err(&o, 2, "body.seed", "int_parsing", M_INT_PARSE);
    /* A JSON syntax error still wins over a seed error. */
    JI(OBS1 "\"seed\":-}", 64);
}

/* xorshift64: the literals below are the same on every run. */
static uint64_t rnd(uint64_t *s) {
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return *s;
}

/* A random JSON number literal: sign, 0-4 integer digits, 0-25 fraction digits, sometimes an
 * exponent; long ones leave the fast path for strtod, and exponents cross +-22. */
static size_t random_literal(uint64_t *s, char *o) {
    size_t n = 0;
    if (rnd(s) % 3 == 0) o[n++] = '-';
    size_t id = rnd(s) % 5, fd = rnd(s) % 26;
    if (id == 0) o[n++] = '0';
    for (size_t i = 0; i < id; i++)
        o[n++] = (char)('0' + (i == 0 ? 1 + rnd(s) % 9 : rnd(s) % 10));
    if (fd) {
        o[n++] = '.';
        for (size_t i = 0; i < fd; i++)
            o[n++] = (char)('0' + rnd(s) % 10);
    }
    if (rnd(s) % 4 == 0)
        n += (size_t)sprintf(o + n, "%s%s%d", rnd(s) % 2 ? "e" : "E",
                             rnd(s) % 3 == 0 ? "+"
                             : rnd(s) % 2    ? "-"
                                             : "",
                             (int)(rnd(s) % 40));
    o[n] = '\0';
    return n;
}

/* The midpoint between a float32 in [512, 900) and the next one, to 13 decimals (16 significant
 * digits: the fast path's), sometimes one unit in the last digit off. The literal is within about
 * a double's ulp of the midpoint, so a double one ulp off the correctly rounded one narrows to the
 * other float32. */
static size_t midpoint_literal(uint64_t *s, char *o) {
    float f = 512.0f + (float)(rnd(s) % 388000) / 1000.0f;
    double mid = ((double)f + (double)nextafterf(f, 2000.0f)) / 2; /* exact: 25 bits */
    int n = sprintf(o, "%s%.13f", rnd(s) % 2 ? "-" : "", mid);
    int nudge = (int)(rnd(s) % 3) - 1;
    if (o[n - 1] + nudge >= '0' && o[n - 1] + nudge <= '9') o[n - 1] = (char)(o[n - 1] + nudge);
    return (size_t)n;
}

/* A sensor value is the literal's Python float (correctly rounded double, as strtod) narrowed to
 * float32, bit for bit, whichever way the parser converts it. That is not always strtof: a
 * literal just above a float32 rounding midpoint can round down in the double step first (the
 * first edge case below: strtof gives 1 + 2^-23, Python's float32(float(s)) gives 1). */
static void test_numbers_round_like_python(void **state) {
    (void)state;
    static const char *const edge[] = {"1.00000005960464477539062501",
                                       "1.000000059604644775390625",
                                       "0",
                                       "-0",
                                       "0.0",
                                       "-0.0",
                                       "1000",
                                       "-1000",
                                       "1e3",
                                       "1E+3",
                                       "-1e+3",
                                       "10e2",
                                       "0.1e1",
                                       "0e99999",
                                       "0.000e-5",
                                       "999.99999999999999999999",
                                       "0.1",
                                       "0.2",
                                       "0.3",
                                       "0.7638",
                                       "123456789012345678e-15",
                                       "1234567890123456789e-16",
                                       "9007199254740993e-13",
                                       "9007199254740992e-13",
                                       "0.000000000000000000000000000001",
                                       "1e-22",
                                       "1e-23",
                                       "4.9e-324",
                                       "5e-324",
                                       "2.2250738585072014e-308",
                                       "0.33333333333333331483",
                                       "3.4028235e-38",
                                       "1.17549435e-38",
                                       "7.006492321624085e-46",
                                       "1.401298464324817e-45",
                                       "0.4999999999999999722444243843710865"};
    char lit[128], *body = malloc(10000 * 64 + 256);
    assert_non_null(body);
    uint64_t seed = 0x9E3779B97F4A7C15ull;
    size_t total = 0;
    for (int round = 0; round < 21; round++) {
        /* Round 0: the edge cases; then 20 bodies of 10,000 random literals each, a quarter of
         * them float32 midpoints. */
        float want[10000];
        size_t o = (size_t)sprintf(body, "{\"observations\":[{\"speed\":1,\"steering\":0,"
                                         "\"sensors\":[");
        size_t n = 0;
        while (n < (round ? 10000u : sizeof(edge) / sizeof(edge[0]))) {
            if (round && n % 4 == 3)
                midpoint_literal(&seed, lit);
            else if (round)
                random_literal(&seed, lit);
            else
                snprintf(lit, sizeof(lit), "%s", edge[n]);
            double d = strtod(lit, NULL);
            if (!(d >= -1000.0 && d <= 1000.0)) continue; /* out of bounds: a validation error */
            want[n++] = (float)d;
            o += (size_t)sprintf(body + o, "%s%s", n > 1 ? ", " : "", lit);
        }
        o += (size_t)sprintf(body + o, "]}]}");
        crl_predict_req_t r;
        assert_int_equal(crl_predict_parse(g_p, body, o, &r), CRL_OK);
        assert_int_equal(r.sensor_len[0], n);
        for (size_t i = 0; i < n; i++)
            if (memcmp(&r.sensors[i], &want[i], sizeof(float)) != 0)
                fail_msg("sensor %zu of round %d: %a, want %a", i, round, (double)r.sensors[i],
                         (double)want[i]);
        total += n;
    }
    assert_true(total > 200000);
    free(body);
}

static void test_bad_args(void **state) {
    (void)state;
    crl_predict_req_t o;
    assert_int_equal(crl_predict_parse(NULL, "{}", 2, &o), CRL_EINVAL);
    assert_int_equal(crl_predict_parse(g_p, NULL, 2, &o), CRL_EINVAL);
    assert_int_equal(crl_predict_parse(g_p, "{}", 2, NULL), CRL_EINVAL);
    assert_int_equal(crl_predict_parser_new(NULL), CRL_EINVAL);
    crl_predict_parser_free(NULL);
    crl_predict_parser_trim(NULL, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_single),
        cmocka_unit_test(test_valid_batch),
        cmocka_unit_test(test_lax_coercions),
        cmocka_unit_test(test_missing_fields),
        cmocka_unit_test(test_error_order),
        cmocka_unit_test(test_type_errors),
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_non_finite),
        cmocka_unit_test(test_sensor_bounds),
        cmocka_unit_test(test_list_caps),
        cmocka_unit_test(test_error_cap),
        cmocka_unit_test(test_bool_errors),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_json_errors),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_trailing_garbage),
        cmocka_unit_test(test_reuse),
        cmocka_unit_test(test_sensor_total_cap),
        cmocka_unit_test(test_seed_values),
        cmocka_unit_test(test_seed_errors),
        cmocka_unit_test(test_numbers_round_like_python),
        cmocka_unit_test(test_bad_args),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
