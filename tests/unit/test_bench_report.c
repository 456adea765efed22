/* test_bench_report.c: the outputs of `carlarl bench` that judge and show a run: the
 * --thresholds gate (every shipped environment passing and failing, missing environments,
 * malformed files with file:line: key), the --baseline regression check, and the --report page.
 * The result is built by hand: a long-tailed latency histogram with known quantiles and a
 * per-second timeline.
 *
 * With CRL_BENCH_REPORT_OUT=FILE in the environment the report test also writes its page there:
 * tests/integration/test_bench_report.py runs this binary that way and parses the page as HTML
 * and as XML. The values it checks are those of make_result() below (p50 2.828 ms, p99 19.98 ms).
 */
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

#include "bench/bench.h"

#define THRESHOLDS CRL_TEST_DATA "/../../config/performance-thresholds.yaml"
#define N_SAMPLES 20000
#define N_TICKS 40

static crl_bench_tick g_ticks[N_TICKS];

/* Latency quantile function of the fixture: 2 ms * (1 - q)^-0.5, so p50 = 2.83 ms, p95 = 8.9 ms,
 * p99 = 20 ms, p99.9 = 63 ms, max 283 ms: passes ci's and production's latency limits. */
static double fixture_ms(double q) {
    return 2.0 / sqrt(1 - q);
}

static void make_result(crl_bench_result *r) {
    memset(r, 0, sizeof(*r));
    crl_bench_settings *s = &r->set;
    snprintf(s->url, sizeof(s->url), "http://127.0.0.1:8080/predict");
    snprintf(s->host, sizeof(s->host), "127.0.0.1");
    s->port = 8080;
    snprintf(s->method, sizeof(s->method), "POST");
    snprintf(s->path, sizeof(s->path), "/predict");
    s->mode = CRL_BENCH_CLOSED;
    s->concurrency = s->connections = 32;
    s->threads = 4;
    s->duration_s = 40;
    s->warmup_s = 5;
    s->timeout_s = 10;
    s->predict = 1;
    s->batch = 8;
    s->sensors = 3;
    s->seed = 42;
    snprintf(s->workload_desc, sizeof(s->workload_desc), "/predict, 8 <obs> & \"3 sensors\"");
    crl_bench_hist_init(&r->latency);
    for (int i = 0; i < N_SAMPLES; i++)
        crl_bench_hist_add(&r->latency, (uint64_t)(fixture_ms((i + 0.5) / N_SAMPLES) * 1e6));
    r->elapsed_s = 40;
    r->sent = r->done = N_SAMPLES;
    r->ok = N_SAMPLES - 10;
    r->status[200] = N_SAMPLES - 10;
    r->status[503] = 10;
    r->transport[CRL_BENCH_ERR_TIMEOUT] = 2;
    r->rps = 500;
    r->observations_per_s = r->ok * 8 / 40.0;
    r->error_rate_percent = 0.06;
    for (int i = 0; i < N_TICKS; i++) {
        g_ticks[i] = (crl_bench_tick){i + 1.0, 500 + (uint64_t)(40 * sin(i / 3.0) + 40), i % 9 == 0,
                                      (uint64_t)(2.8e6 + 3e5 * sin(i / 4.0)),
                                      (uint64_t)(20e6 + 4e6 * cos(i / 5.0))};
    }
    g_ticks[17].done = 0; /* a stalled second: no latency point, zero throughput */
    r->ticks = g_ticks;
    r->n_ticks = N_TICKS;
    r->server = (crl_bench_server){1, "metrics", 180, 300, 6144, 12, 600};
    snprintf(r->started_at, sizeof(r->started_at), "2025-01-02T03:04:05Z");
    snprintf(r->carlarl_version, sizeof(r->carlarl_version), "0.1.0");
}

/* Output captured from a verdict function. */
typedef struct captured {
    char *text;
    size_t len;
    FILE *f;
} captured;

static void cap_open(captured *c) {
    c->text = NULL;
    c->f = open_memstream(&c->text, &c->len);
    assert_non_null(c->f);
}

static void cap_close(captured *c) {
    fclose(c->f);
    c->f = NULL;
}

/* The table line that starts with label. */
static const char *line_of(const char *text, const char *label) {
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, label, strlen(label)) == 0) return p;
    fail_msg("no line '%s' in:\n%s", label, text);
    return NULL;
}

/* Asserts the line starting with label ends in result ("pass", "FAIL", "skip"). */
static void expect_line(const char *text, const char *label, const char *result) {
    const char *p = line_of(text, label), *end = strchr(p, '\n');
    size_t n = strlen(result);
    if (end == NULL || (size_t)(end - p) < n || strncmp(end - n, result, n) != 0)
        fail_msg("line '%s' does not end in %s:\n%s", label, result, text);
}

static char *write_temp(const char *text, const char *suffix) {
    char *path = malloc(64);
    assert_non_null(path);
    snprintf(path, 64, "/tmp/crl-bench-test-XXXXXX%s", suffix);
    int fd = mkstemps(path, (int)strlen(suffix));
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void drop_temp(char *path) {
    unlink(path);
    free(path);
}

/* ---- thresholds ----------------------------------------------------------------------------- */

static int thresholds(const crl_bench_result *r, const char *path, const char *env, char **out) {
    captured c;
    int failed = -1;
    crl_err err = {{0}};
    cap_open(&c);
    crl_status st = crl_bench_check_thresholds(c.f, r, path, env, &failed, &err);
    cap_close(&c);
    if (st != CRL_OK) fail_msg("%s: %s", env, err.msg);
    *out = c.text;
    return failed;
}

static void test_thresholds_shipped_envs(void **state) {
    (void)state;
    crl_bench_result r;
    char *text;
    make_result(&r);
    assert_int_equal(thresholds(&r, THRESHOLDS, "ci", &text), 0);
    assert_non_null(strstr(text, "environment ci"));
    expect_line(text, "p50 latency (ms)", "pass");
    assert_non_null(strstr(line_of(text, "p50 latency"), "<= 10.000"));
    expect_line(text, "throughput (req/s)", "pass");
    assert_non_null(strstr(text, "6 checks, 0 failed\n"));
    free(text);
    /* production asks 1000 req/s: the one failure, with value and limit on its line */
    assert_int_equal(thresholds(&r, THRESHOLDS, "production", &text), 1);
    expect_line(text, "throughput (req/s)", "FAIL");
    assert_non_null(strstr(line_of(text, "throughput"), "500.0"));
    assert_non_null(strstr(line_of(text, "throughput"), ">= 1000.0"));
    expect_line(text, "p99 latency (ms)", "pass");
    expect_line(text, "server memory (MB)", "pass");
    assert_non_null(strstr(text, "6 checks, 1 failed\n"));
    free(text);
    assert_int_equal(thresholds(&r, THRESHOLDS, "development", &text), 0);
    free(text);
}

static void test_thresholds_fail_each_kind(void **state) {
    (void)state;
    crl_bench_result r;
    char *text;
    make_result(&r);
    r.rps = 100;
    r.error_rate_percent = 2.0;
    r.server.rss_after_mb = 1500;
    assert_int_equal(thresholds(&r, THRESHOLDS, "ci", &text), 3);
    expect_line(text, "throughput (req/s)", "FAIL");
    expect_line(text, "error rate (%)", "FAIL");
    expect_line(text, "server memory (MB)", "FAIL");
    expect_line(text, "p95 latency (ms)", "pass");
    free(text);
    /* production's p99 limit is 30 ms: a slower tail fails only the latency lines */
    make_result(&r);
    r.rps = 5000;
    for (int i = 0; i < 500; i++)
        crl_bench_hist_add(&r.latency, 45000000);
    assert_int_equal(thresholds(&r, THRESHOLDS, "production", &text), 1);
    expect_line(text, "p99 latency (ms)", "FAIL");
    expect_line(text, "p50 latency (ms)", "pass");
    free(text);
}

static void test_thresholds_unmeasured(void **state) {
    (void)state;
    crl_bench_result r;
    char *text;
    make_result(&r);
    r.server.known = 0; /* a remote server: memory is skipped, not failed */
    assert_int_equal(thresholds(&r, THRESHOLDS, "ci", &text), 0);
    expect_line(text, "server memory (MB)", "skip");
    assert_non_null(strstr(text, "5 checks, 0 failed, 1 skipped\n"));
    free(text);
    crl_bench_hist_init(&r.latency); /* no responses at all: latency cannot pass */
    assert_int_equal(thresholds(&r, THRESHOLDS, "ci", &text), 3);
    expect_line(text, "p50 latency (ms)", "FAIL");
    assert_non_null(strstr(line_of(text, "p50 latency"), "no responses"));
    free(text);
}

static void expect_threshold_error(const char *yaml, const char *env, crl_status want,
                                   const char *msg) {
    crl_bench_result r;
    make_result(&r);
    char *path = write_temp(yaml, ".yaml"), *text = NULL, expect[256];
    captured c;
    crl_err err = {{0}};
    int failed = -1;
    cap_open(&c);
    crl_status st = crl_bench_check_thresholds(c.f, &r, path, env, &failed, &err);
    cap_close(&c);
    text = c.text;
    if (st != want) fail_msg("%s: got %d (%s), want %d", yaml, st, err.msg, want);
    snprintf(expect, sizeof(expect), "%s%s", path, msg);
    if (strstr(err.msg, expect) == NULL) fail_msg("'%s' not in '%s'", expect, err.msg);
    assert_int_equal(c.len, 0); /* no half table */
    free(text);
    drop_temp(path);
}

static void test_thresholds_errors(void **state) {
    (void)state;
    crl_bench_result r;
    crl_err err = {{0}};
    int failed;
    make_result(&r);
    assert_int_equal(crl_bench_check_thresholds(NULL, &r, THRESHOLDS, "staging", &failed, &err),
                     CRL_ENOTFOUND);
    assert_non_null(strstr(err.msg, "no staging_thresholds block"));
    assert_non_null(strstr(err.msg, "(environments: ci, production, development)"));
    assert_int_equal(crl_bench_check_thresholds(NULL, &r, THRESHOLDS, NULL, &failed, &err),
                     CRL_EINVAL);
    assert_int_equal(
        crl_bench_check_thresholds(NULL, &r, "/nonexistent/t.yaml", "ci", &failed, &err),
        CRL_ENOTFOUND);
    assert_non_null(strstr(err.msg, "/nonexistent/t.yaml"));
    expect_threshold_error("ci_thresholds:\n  p50_latency_ms: 10\n  p95_latency_ms: fast\n", "ci",
                           CRL_EFORMAT, ":3: ci_thresholds.p95_latency_ms: not a number ('fast')");
    expect_threshold_error("ci_thresholds:\n  p50_latency_ms: 10\n  p90_latency_ms: 5\n", "ci",
                           CRL_EFORMAT, ":3: ci_thresholds.p90_latency_ms: unknown threshold");
    expect_threshold_error("ci_thresholds:\n  p50_latency_ms: -1\n", "ci", CRL_ERANGE,
                           ":2: ci_thresholds.p50_latency_ms: must not be negative");
    expect_threshold_error("ci_thresholds:\n  p50_latency_ms: [10\n", "ci", CRL_EFORMAT, ":");
    expect_threshold_error("- 1\n- 2\n", "ci", CRL_EFORMAT, ":1: expected a mapping");
    expect_threshold_error("x: 1\nci_thresholds: 5\n", "ci", CRL_EFORMAT,
                           ":2: ci_thresholds: expected a mapping");
    expect_threshold_error("ci_thresholds: {}\n", "ci", CRL_EFORMAT,
                           ":1: ci_thresholds: no thresholds");
    expect_threshold_error("regression_thresholds: {latency_increase_percent: 1}\n", "ci",
                           CRL_ENOTFOUND,
                           ": no ci_thresholds block for --env ci (environments: "
                           "none)");
}

/* ---- baseline ------------------------------------------------------------------------------- */

static double cur_ms(const crl_bench_result *r, double q) {
    return (double)crl_bench_hist_quantile(&r->latency, q) / 1e6;
}

/* A saved --json run: latencies are the current run's divided by lat_div. */
static char *baseline_json(const crl_bench_result *r, double lat_div, double rps, double err_pct,
                           const char *server) {
    char text[2048];
    snprintf(text, sizeof(text),
             "{\n  \"version\": 1,\n  \"url\": \"http://127.0.0.1:8080/predict\",\n"
             "  \"latency_ms\": {\"min\": 2.0, \"mean\": 4.1, \"p50\": %.6f, \"p90\": 6.3,\n"
             "                 \"p95\": %.6f, \"p99\": %.6f, \"p99_9\": 63.2, \"max\": 283.0},\n"
             "  \"throughput_rps\": %.6f,\n  \"observations_per_s\": 3998.0,\n"
             "  \"error_rate_percent\": %g,\n  \"server\": %s\n}\n",
             cur_ms(r, 0.5) / lat_div, cur_ms(r, 0.95) / lat_div, cur_ms(r, 0.99) / lat_div, rps,
             err_pct, server);
    return write_temp(text, ".json");
}

#define SERVER_300                                                                                 \
    "{\"rss_after_mb\": 300.0, \"rss_growth_per_1000_kb\": 6144, \"cpu_us_per_request\": 600}"

static int baseline(const crl_bench_result *r, const char *path, const char *thr, char **out) {
    captured c;
    int failed = -1;
    crl_err err = {{0}};
    cap_open(&c);
    crl_status st = crl_bench_check_baseline(c.f, r, path, thr, &failed, &err);
    cap_close(&c);
    if (st != CRL_OK) fail_msg("%s", err.msg);
    *out = c.text;
    return failed;
}

static void test_baseline_no_regression(void **state) {
    (void)state;
    crl_bench_result r;
    char *text, *path;
    make_result(&r);
    path = baseline_json(&r, 1.0, 500, 0.06, SERVER_300);
    assert_int_equal(baseline(&r, path, THRESHOLDS, &text), 0);
    assert_non_null(strstr(text, "regression limits (from " THRESHOLDS "): latency +15%, "
                                 "throughput -10%, memory +20%, error rate +5 points"));
    expect_line(text, "p99 latency (ms)", "pass");
    assert_non_null(strstr(text, "6 checks, 0 failed\n"));
    free(text);
    drop_temp(path);
    /* slower and leaner, but inside every limit: +10 % latency, -7 % throughput, +15 % memory */
    path = baseline_json(&r, 1.10, 540, 0, "{\"rss_after_mb\": 260}");
    assert_int_equal(baseline(&r, path, THRESHOLDS, &text), 0);
    assert_non_null(strstr(line_of(text, "p50 latency"), "+10.0%"));
    assert_non_null(strstr(line_of(text, "error rate"), "+0.060 pt"));
    free(text);
    drop_temp(path);
}

static void test_baseline_regression(void **state) {
    (void)state;
    crl_bench_result r;
    char *text, *path;
    make_result(&r);
    /* +40 % latency, -16.7 % throughput, +50 % memory, +0.06 points of errors */
    path = baseline_json(&r, 1.40, 600, 0, "{\"rss_after_mb\": 200}");
    assert_int_equal(baseline(&r, path, THRESHOLDS, &text), 5);
    expect_line(text, "p50 latency (ms)", "FAIL");
    expect_line(text, "p99 latency (ms)", "FAIL");
    expect_line(text, "throughput (req/s)", "FAIL");
    assert_non_null(strstr(line_of(text, "throughput"), "-16.7%"));
    assert_non_null(strstr(line_of(text, "throughput"), ">= 540.0"));
    expect_line(text, "server memory (MB)", "FAIL");
    expect_line(text, "error rate (%)", "pass");
    free(text);
    /* the thresholds file's percentages are the ones used */
    char *thr = write_temp("regression_thresholds:\n  latency_increase_percent: 50\n"
                           "  throughput_decrease_percent: 20\n",
                           ".yaml");
    assert_int_equal(baseline(&r, path, thr, &text), 1);
    expect_line(text, "p99 latency (ms)", "pass");
    expect_line(text, "throughput (req/s)", "pass");
    expect_line(text, "server memory (MB)", "FAIL"); /* still the default +20 % */
    free(text);
    drop_temp(thr);
    /* no thresholds file: the original's values */
    assert_int_equal(baseline(&r, path, NULL, &text), 5);
    assert_non_null(strstr(text, "regression limits (defaults): latency +15%"));
    free(text);
    drop_temp(path);
    /* errors are compared in percentage points: +6 points fails */
    path = baseline_json(&r, 1.0, 500, 0.06, SERVER_300);
    r.error_rate_percent = 6.06;
    assert_int_equal(baseline(&r, path, NULL, &text), 1);
    expect_line(text, "error rate (%)", "FAIL");
    free(text);
    drop_temp(path);
}

static void test_baseline_unmeasured_memory(void **state) {
    (void)state;
    crl_bench_result r;
    char *text, *path;
    make_result(&r);
    path = baseline_json(&r, 1.0, 500, 0, "null");
    assert_int_equal(baseline(&r, path, NULL, &text), 0);
    expect_line(text, "server memory (MB)", "skip");
    assert_non_null(strstr(text, "5 checks, 0 failed, 1 skipped\n"));
    free(text);
    drop_temp(path);
    path = baseline_json(&r, 1.0, 500, 0, "{\"rss_after_mb\": null}");
    assert_int_equal(baseline(&r, path, NULL, &text), 0);
    expect_line(text, "server memory (MB)", "skip");
    free(text);
    drop_temp(path);
    r.server.known = 0; /* this run could not see the server's memory */
    path = baseline_json(&r, 1.0, 500, 0, SERVER_300);
    assert_int_equal(baseline(&r, path, NULL, &text), 0);
    assert_non_null(strstr(line_of(text, "server memory"), "not measured"));
    expect_line(text, "server memory (MB)", "skip");
    free(text);
    drop_temp(path);
}

/* JSON as other writers lay it out: compact, exponents, tabs, escapes. */
static void test_baseline_json_forms(void **state) {
    (void)state;
    crl_bench_result r;
    char *text, *path;
    make_result(&r);
    path = write_temp("{\"latency_ms\":{\"p50\":2.8e0,\"p95\":8.9,\"p99\":1.998E1},"
                      "\"throughput_rps\":5e2,\"error_rate_percent\":6e-2,\"note\":\"a\\u00e9\\n\","
                      "\"server\":{\"rss_after_mb\":300}}",
                      ".json");
    assert_int_equal(baseline(&r, path, NULL, &text), 0);
    assert_non_null(strstr(text, "6 checks, 0 failed\n"));
    free(text);
    drop_temp(path);
    path = write_temp("{\n\t\"latency_ms\": {\n\t\t\"p50\": 2.8,\n\t\t\"p95\": 8.9,\n\t\t\"p99\": "
                      "20.0\n\t},\n\t\"throughput_rps\": 500,\n\t\"error_rate_percent\": 0\n}\n",
                      ".json");
    assert_int_equal(baseline(&r, path, NULL, &text), 0);
    free(text);
    drop_temp(path);
}

static void expect_baseline_error(const char *json, const char *thr_yaml, crl_status want,
                                  const char *msg) {
    crl_bench_result r;
    make_result(&r);
    char *path = write_temp(json, ".json"), *thr = thr_yaml ? write_temp(thr_yaml, ".yaml") : NULL;
    char expect[256];
    crl_err err = {{0}};
    int failed = -1;
    crl_status st = crl_bench_check_baseline(NULL, &r, path, thr, &failed, &err);
    if (st != want) fail_msg("%s: got %d (%s), want %d", json, st, err.msg, want);
    snprintf(expect, sizeof(expect), "%s%s", thr ? thr : path, msg);
    if (strstr(err.msg, expect) == NULL) fail_msg("'%s' not in '%s'", expect, err.msg);
    drop_temp(path);
    if (thr) drop_temp(thr);
}

static void test_baseline_errors(void **state) {
    (void)state;
    const char *good = "{\"latency_ms\": {\"p50\": 1, \"p95\": 2, \"p99\": 3},\n"
                       " \"throughput_rps\": 10, \"error_rate_percent\": 0}";
    expect_baseline_error("{\"latency_ms\": {\"p50\": 1, \"p95\": 2, \"p99\": 3},\n"
                          " \"error_rate_percent\": 0}",
                          NULL, CRL_EFORMAT, ": throughput_rps: missing");
    expect_baseline_error("{\"latency_ms\": {\"p50\": 1, \"p95\": 2},\n"
                          " \"throughput_rps\": 10, \"error_rate_percent\": 0}",
                          NULL, CRL_EFORMAT, ":1: latency_ms.p99: missing");
    expect_baseline_error("{\"throughput_rps\": 10,\n\"latency_ms\": {\"p50\": 1, \"p95\": 2,\n"
                          "\"p99\": \"slow\"}, \"error_rate_percent\": 0}",
                          NULL, CRL_EFORMAT, ":3: latency_ms.p99: not a number ('slow')");
    expect_baseline_error("{\"latency_ms\": [1, 2], \"throughput_rps\": 10}", NULL, CRL_EFORMAT,
                          ":1: latency_ms: expected an object");
    expect_baseline_error("{\"latency_ms\": {\"p50\": 1", NULL, CRL_EFORMAT, ":");
    expect_baseline_error("[1, 2]", NULL, CRL_EFORMAT, ":1: expected a mapping");
    expect_baseline_error(good, "regression_thresholds:\n  throughput_decrease_percent: 150\n",
                          CRL_ERANGE, ":2: regression_thresholds.throughput_decrease_percent");
    expect_baseline_error(good, "regression_thresholds:\n  latency_percent: 1\n", CRL_EFORMAT,
                          ":2: regression_thresholds.latency_percent: unknown key");
    expect_baseline_error(good, "regression_thresholds:\n  memory_increase_percent: lots\n",
                          CRL_EFORMAT, ":2: regression_thresholds.memory_increase_percent: not a");
}

/* ---- report --------------------------------------------------------------------------------- */

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = 0;
    fclose(f);
    return s;
}

static size_t count(const char *s, const char *what) {
    size_t n = 0;
    for (const char *p = strstr(s, what); p; p = strstr(p + 1, what))
        n++;
    return n;
}

static char *report(const crl_bench_result *r, const char *path) {
    crl_err err = {{0}};
    crl_status st = crl_bench_write_report(path, r, &err);
    if (st != CRL_OK) fail_msg("%s", err.msg);
    return slurp(path);
}

static void test_report_page(void **state) {
    (void)state;
    crl_bench_result r;
    make_result(&r);
    const char *env = getenv("CRL_BENCH_REPORT_OUT");
    char *path = env && *env ? NULL : write_temp("", ".html");
    char *page = report(&r, path ? path : env);
    assert_int_equal(count(page, "<svg "), 3);
    assert_int_equal(count(page, "</svg>"), 3);
    assert_int_equal(count(page, "<polyline "), 5); /* CDF; p50, p99; responses/s, errors/s */
    assert_non_null(strstr(page, "id=\"latency-cdf\""));
    assert_non_null(strstr(page, "id=\"latency-time\""));
    assert_non_null(strstr(page, "id=\"throughput-time\""));
    assert_null(strstr(page, "<script"));
    assert_non_null(strstr(page, "<title>carlarl bench: http://127.0.0.1:8080/predict</title>"));
    assert_non_null(strstr(page, "/predict, 8 &lt;obs&gt; &amp; &quot;3 sensors&quot;"));
    assert_null(strstr(page, "<obs>"));
    assert_non_null(strstr(page, "<th scope=\"row\">HTTP 503</th><td class=\"num\">10</td>"));
    char p50[128];
    snprintf(p50, sizeof(p50), "<th scope=\"row\">p50</th><td class=\"num\">%.3f</td>",
             cur_ms(&r, 0.5));
    assert_non_null(strstr(page, p50));
    assert_true(fabs(cur_ms(&r, 0.5) - fixture_ms(0.5)) < 0.01 * fixture_ms(0.5));
    free(page);
    if (path) drop_temp(path);
}

static void test_report_edge_cases(void **state) {
    (void)state;
    crl_bench_result r;
    crl_err err = {{0}};
    char *path = write_temp("", ".html"), *page;
    /* nothing measured at all: still a valid page, every chart says so */
    memset(&r, 0, sizeof(r));
    page = report(&r, path);
    assert_int_equal(count(page, ">no data</text>"), 3);
    assert_non_null(strstr(page, "not measured"));
    free(page);
    /* open loop shows its target rate; bytes that are not UTF-8 or are control characters go */
    make_result(&r);
    r.set.mode = CRL_BENCH_OPEN;
    r.set.rate = 450;
    snprintf(r.set.url, sizeof(r.set.url), "http://h/\xff\x01\xc3\xa9");
    page = report(&r, path);
    assert_non_null(strstr(page, ">target rate</text>"));
    assert_non_null(strstr(page, "http://h/??\xc3\xa9"));
    free(page);
    drop_temp(path);
    assert_int_equal(crl_bench_write_report("/nonexistent-dir/r.html", &r, &err), CRL_EIO);
    assert_non_null(strstr(err.msg, "/nonexistent-dir/r.html: cannot open"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_thresholds_shipped_envs),
        cmocka_unit_test(test_thresholds_fail_each_kind),
        cmocka_unit_test(test_thresholds_unmeasured),
        cmocka_unit_test(test_thresholds_errors),
        cmocka_unit_test(test_baseline_no_regression),
        cmocka_unit_test(test_baseline_regression),
        cmocka_unit_test(test_baseline_unmeasured_memory),
        cmocka_unit_test(test_baseline_json_forms),
        cmocka_unit_test(test_baseline_errors),
        cmocka_unit_test(test_report_page),
        cmocka_unit_test(test_report_edge_cases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
