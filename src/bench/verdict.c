/* verdict.c: the pass/fail gates of `carlarl bench`.
 *
 * --thresholds FILE --env NAME reads the original system's config/performance-thresholds.yaml
 * format: a block `<NAME>_thresholds` (ci, production, development in the shipped file) with
 *   p50_latency_ms, p95_latency_ms, p99_latency_ms   upper limits, from the latency histogram
 *   throughput_rps                                   lower limit, responses per second
 *   memory_usage_mb                                  upper limit, the server's RSS after the run
 *   error_rate_percent                               upper limit
 * A block may leave a check out; a key outside this list is an error (a typo must not turn a
 * gate off). The memory check is skipped, not failed, when the server's memory was not measured
 * (a remote server without process metrics): the table says so.
 *
 * --baseline FILE.json compares with a saved `carlarl bench --json` run, using the
 * `regression_thresholds` block of the thresholds file (the original's values, also the defaults
 * when no thresholds file is given or it has no such block):
 *   latency_increase_percent     15   p50, p95, p99 may rise at most this much (relative)
 *   throughput_decrease_percent  10   throughput_rps may fall at most this much (relative)
 *   memory_increase_percent      20   server.rss_after_mb may rise at most this much (relative)
 *   error_rate_increase_percent   5   error_rate_percent may rise at most this many percentage
 *                                     POINTS: a relative rise from a baseline of 0 errors would
 *                                     fail on the first error, which no one means by "+5 %"
 * The keys read from the baseline (the --json schema written by output.c, version 1):
 *   "latency_ms": {"min", "mean", "p50", "p90", "p95", "p99", "p99_9", "max"}  (p50/p95/p99 read)
 *   "throughput_rps", "observations_per_s", "error_rate_percent"   (throughput, error rate read)
 *   "server": {"rss_after_mb", "rss_growth_per_1000_kb", "cpu_us_per_request"}   (rss_after_mb
 *             read; "server" may be null or absent, or rss_after_mb null: the memory check is
 *             then skipped)
 * JSON is read with the YAML reader (JSON is flow YAML), so errors carry file:line. */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bench/bench.h"
#include "config/yaml.h"

/* The figures a gate can check. */
enum { M_P50, M_P95, M_P99, M_RPS, M_MEM, M_ERR, M_COUNT };

static const struct {
    const char *label;
    int decimals;
} METRIC[M_COUNT] = {
    {"p50 latency (ms)", 3},   {"p95 latency (ms)", 3},   {"p99 latency (ms)", 3},
    {"throughput (req/s)", 1}, {"server memory (MB)", 1}, {"error rate (%)", 3},
};

/* The run's value of metric m; 0 when the run has none (no responses, memory not measured). */
static int current(const crl_bench_result *r, int m, double *v) {
    static const double q[] = {0.5, 0.95, 0.99};
    switch (m) {
    case M_P50:
    case M_P95:
    case M_P99:
        *v = (double)crl_bench_hist_quantile(&r->latency, q[m]) / 1e6;
        return r->latency.count > 0;
    case M_RPS:
        *v = r->rps;
        return 1;
    case M_MEM:
        *v = r->server.rss_after_mb;
        return r->server.known;
    default:
        *v = r->error_rate_percent;
        return 1;
    }
}

static void out(FILE *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out(FILE *f, const char *fmt, ...) {
    if (f == NULL) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
}

static int is_null(const crl_yaml_node_t *n) {
    const char *s = crl_yaml_str(n);
    return n == NULL || (s && !n->quoted && (!*s || !strcmp(s, "null") || !strcmp(s, "~")));
}

/* A number at map[key]; errors name file:line: block.key. A missing key is CRL_ENOTFOUND with no
 * message, for the caller to decide. */
static crl_status get_num(const crl_yaml_node_t *map, const char *file, const char *block,
                          const char *key, double *v, crl_err *err) {
    const crl_yaml_node_t *n = crl_yaml_get(map, key);
    if (n == NULL) return CRL_ENOTFOUND;
    if (crl_yaml_double(n, v) != CRL_OK)
        return crl_err_set(err, CRL_EFORMAT, "%s:%d: %s%s%s: not a number%s%s%s", file, n->line,
                           block, *block ? "." : "", key, crl_yaml_str(n) ? " ('" : "",
                           crl_yaml_str(n) ? crl_yaml_str(n) : "", crl_yaml_str(n) ? "')" : "");
    if (*v < 0)
        return crl_err_set(err, CRL_ERANGE, "%s:%d: %s%s%s: must not be negative", file, n->line,
                           block, *block ? "." : "", key);
    return CRL_OK;
}

/* The root of a YAML/JSON file, which must be a map. */
static crl_status load_map(const char *path, crl_yaml_node_t **root, crl_err *err) {
    crl_status st = crl_yaml_load_file(path, root, err);
    if (st != CRL_OK) return st;
    if ((*root)->kind != CRL_YAML_MAP) {
        int line = (*root)->line;
        crl_yaml_free(*root);
        *root = NULL;
        return crl_err_set(err, CRL_EFORMAT, "%s:%d: expected a mapping at the top level", path,
                           line);
    }
    return CRL_OK;
}

static void summary(FILE *f, int checks, int failed, int skipped) {
    out(f, "%d check%s, %d failed", checks, checks == 1 ? "" : "s", failed);
    if (skipped) out(f, ", %d skipped", skipped);
    out(f, "\n");
}

/* ---- --thresholds --------------------------------------------------------------------------- */

static const char *const THRESHOLD_KEY[M_COUNT] = {
    "p50_latency_ms", "p95_latency_ms",  "p99_latency_ms",
    "throughput_rps", "memory_usage_mb", "error_rate_percent",
};

/* The block `name` (<env>_thresholds), or an error that lists the environments the file has. */
static crl_status env_block(const crl_yaml_node_t *root, const char *path, const char *name,
                            const char *env, const crl_yaml_node_t **block, crl_err *err) {
    char have[256] = "";
    *block = crl_yaml_get(root, name);
    if (*block != NULL && (*block)->kind == CRL_YAML_MAP) return CRL_OK;
    if (*block != NULL)
        return crl_err_set(err, CRL_EFORMAT, "%s:%d: %s: expected a mapping of thresholds", path,
                           (*block)->line, name);
    for (size_t i = 0; i < root->n; i++) {
        size_t len = strlen(root->keys[i]), used = strlen(have);
        if (len > 11 && !strcmp(root->keys[i] + len - 11, "_thresholds") &&
            strcmp(root->keys[i], "regression_thresholds") != 0)
            snprintf(have + used, sizeof(have) - used, "%s%.*s", used ? ", " : "", (int)(len - 11),
                     root->keys[i]);
    }
    return crl_err_set(err, CRL_ENOTFOUND, "%s: no %s block for --env %s (environments: %s)", path,
                       name, env, have[0] ? have : "none");
}

/* The index of `key` in names[0..n), or n when it is not there. */
static int key_index(const char *const *names, int n, const char *key) {
    int i = 0;
    while (i < n && strcmp(key, names[i]) != 0)
        i++;
    return i;
}

/* Reads the block's limits; has[m] says which checks it asks for. */
static crl_status read_limits(const crl_yaml_node_t *block, const char *path, const char *name,
                              double *limit, int *has, crl_err *err) {
    for (size_t i = 0; i < block->n; i++) {
        int m = key_index(THRESHOLD_KEY, M_COUNT, block->keys[i]);
        if (m == M_COUNT)
            return crl_err_set(err, CRL_EFORMAT,
                               "%s:%d: %s.%s: unknown threshold (known: p50_latency_ms, "
                               "p95_latency_ms, p99_latency_ms, throughput_rps, memory_usage_mb, "
                               "error_rate_percent)",
                               path, block->items[i]->line, name, block->keys[i]);
        crl_status st = get_num(block, path, name, THRESHOLD_KEY[m], &limit[m], err);
        if (st != CRL_OK) return st;
        has[m] = 1;
    }
    for (int m = 0; m < M_COUNT; m++)
        if (has[m]) return CRL_OK;
    return crl_err_set(err, CRL_EFORMAT, "%s:%d: %s: no thresholds in the block", path, block->line,
                       name);
}

/* One table line; returns 1 when the check failed, 0 when it passed, -1 when it was skipped. */
static int threshold_line(FILE *f, const crl_bench_result *r, int m, double limit) {
    double v;
    int known = current(r, m, &v), d = METRIC[m].decimals, upper = m != M_RPS;
    char value[32], lim[40];
    snprintf(lim, sizeof(lim), "%s %.*f", upper ? "<=" : ">=", d, limit);
    if (!known) {
        /* Memory is skipped (not measurable from here); latency without responses fails. */
        int skip = m == M_MEM;
        out(f, "%-20s %14s %14s  %s\n", METRIC[m].label, skip ? "not measured" : "no responses",
            lim, skip ? "skip" : "FAIL");
        return skip ? -1 : 1;
    }
    snprintf(value, sizeof(value), "%.*f", d, v);
    int ok = upper ? v <= limit : v >= limit;
    out(f, "%-20s %14s %14s  %s\n", METRIC[m].label, value, lim, ok ? "pass" : "FAIL");
    return !ok;
}

crl_status crl_bench_check_thresholds(FILE *f, const crl_bench_result *r, const char *path,
                                      const char *env, int *failed, crl_err *err) {
    crl_yaml_node_t *root = NULL;
    const crl_yaml_node_t *block;
    double limit[M_COUNT] = {0};
    int has[M_COUNT] = {0}, checks = 0, skipped = 0;
    char name[128];
    *failed = 0;
    if (env == NULL || !*env)
        return crl_err_set(err, CRL_EINVAL, "%s: --thresholds needs --env (ci, production, ...)",
                           path);
    snprintf(name, sizeof(name), "%s_thresholds", env);
    crl_status st = load_map(path, &root, err);
    if (st == CRL_OK) st = env_block(root, path, name, env, &block, err);
    if (st == CRL_OK) st = read_limits(block, path, name, limit, has, err);
    if (st != CRL_OK) goto out;
    out(f, "thresholds: %s, environment %s\n%-20s %14s %14s  %s\n", path, env, "check", "value",
        "limit", "result");
    for (int m = 0; m < M_COUNT; m++) {
        if (!has[m]) continue;
        int res = threshold_line(f, r, m, limit[m]);
        checks += res >= 0;
        skipped += res < 0;
        *failed += res > 0;
    }
    summary(f, checks, *failed, skipped);
out:
    crl_yaml_free(root);
    return st;
}

/* ---- --baseline ----------------------------------------------------------------------------- */

enum { R_LAT, R_THR, R_MEM, R_ERR, R_COUNT };
static const char *const REGRESSION_KEY[R_COUNT] = {
    "latency_increase_percent",
    "throughput_decrease_percent",
    "memory_increase_percent",
    "error_rate_increase_percent",
};
static const double REGRESSION_DEFAULT[R_COUNT] = {15, 10, 20, 5}; /* the original's file */

/* Where each checked figure is in the baseline JSON, and which regression limit applies. */
static const struct {
    int metric;
    const char *key, *sub;
    int reg;
} BASE[] = {
    {M_P50, "latency_ms", "p50", R_LAT},      {M_P95, "latency_ms", "p95", R_LAT},
    {M_P99, "latency_ms", "p99", R_LAT},      {M_RPS, "throughput_rps", NULL, R_THR},
    {M_MEM, "server", "rss_after_mb", R_MEM}, {M_ERR, "error_rate_percent", NULL, R_ERR},
};
#define N_BASE (sizeof(BASE) / sizeof(BASE[0]))

static crl_status regression_block(const crl_yaml_node_t *block, const char *path, double *pct,
                                   crl_err *err) {
    const char *name = "regression_thresholds";
    if (block->kind != CRL_YAML_MAP)
        return crl_err_set(err, CRL_EFORMAT, "%s:%d: %s: expected a mapping", path, block->line,
                           name);
    for (size_t i = 0; i < block->n; i++) {
        int k = key_index(REGRESSION_KEY, R_COUNT, block->keys[i]);
        if (k == R_COUNT)
            return crl_err_set(err, CRL_EFORMAT,
                               "%s:%d: %s.%s: unknown key (known: latency_increase_percent, "
                               "throughput_decrease_percent, memory_increase_percent, "
                               "error_rate_increase_percent)",
                               path, block->items[i]->line, name, block->keys[i]);
        crl_status st = get_num(block, path, name, REGRESSION_KEY[k], &pct[k], err);
        if (st != CRL_OK) return st;
        if (k == R_THR && pct[k] > 100)
            return crl_err_set(err, CRL_ERANGE, "%s:%d: %s.%s: at most 100", path,
                               block->items[i]->line, name, block->keys[i]);
    }
    return CRL_OK;
}

/* The regression percentages: the thresholds file's block, key by key over the defaults. */
static crl_status read_regression(const char *path, double *pct, int *from_file, crl_err *err) {
    memcpy(pct, REGRESSION_DEFAULT, sizeof(REGRESSION_DEFAULT));
    *from_file = 0;
    if (path == NULL) return CRL_OK;
    crl_yaml_node_t *root = NULL;
    crl_status st = load_map(path, &root, err);
    if (st != CRL_OK) return st;
    const crl_yaml_node_t *block = crl_yaml_get(root, "regression_thresholds");
    if (block != NULL) {
        st = regression_block(block, path, pct, err);
        *from_file = 1;
    }
    crl_yaml_free(root);
    return st;
}

/* The baseline's figure i; *known = 0 when the baseline holds null there (or no server). */
static crl_status read_base(const crl_yaml_node_t *root, const char *path, size_t i, double *v,
                            int *known, crl_err *err) {
    const crl_yaml_node_t *top = crl_yaml_get(root, BASE[i].key);
    *known = 0;
    if (top == NULL && BASE[i].metric == M_MEM) return CRL_OK;
    if (top == NULL)
        return crl_err_set(err, CRL_EFORMAT,
                           "%s: %s: missing (is this a `carlarl bench --json` file?)", path,
                           BASE[i].key);
    if (is_null(top)) return CRL_OK;
    const crl_yaml_node_t *map = root;
    const char *block = "", *key = BASE[i].key;
    if (BASE[i].sub != NULL) {
        if (top->kind != CRL_YAML_MAP)
            return crl_err_set(err, CRL_EFORMAT, "%s:%d: %s: expected an object", path, top->line,
                               BASE[i].key);
        map = top;
        block = BASE[i].key;
        key = BASE[i].sub;
        if (is_null(crl_yaml_get(map, key)) && BASE[i].metric == M_MEM) return CRL_OK;
    }
    const crl_yaml_node_t *n = crl_yaml_get(map, key);
    if (n != NULL && is_null(n)) return CRL_OK;
    crl_status st = get_num(map, path, block, key, v, err);
    if (st == CRL_ENOTFOUND)
        return crl_err_set(err, CRL_EFORMAT, "%s:%d: %s.%s: missing", path, top->line, block, key);
    *known = st == CRL_OK;
    return st;
}

/* One table line; returns 1 when the check failed, 0 when it passed, -1 when it was skipped. */
static int baseline_line(FILE *f, const crl_bench_result *r, size_t i, double base, int known,
                         const double *pct) {
    int m = BASE[i].metric, d = METRIC[m].decimals, reg = BASE[i].reg;
    double cur, limit = reg == R_ERR   ? base + pct[reg]
                        : reg == R_THR ? base * (1 - pct[reg] / 100)
                                       : base * (1 + pct[reg] / 100);
    int have = current(r, m, &cur);
    char b[32] = "none", c[32], l[40] = "", ch[24] = "";
    if (known) snprintf(b, sizeof(b), "%.*f", d, base);
    if (have)
        snprintf(c, sizeof(c), "%.*f", d, cur);
    else
        snprintf(c, sizeof(c), "%s", m == M_MEM ? "not measured" : "no responses");
    /* Nothing to compare with, or memory this run could not see: skipped, not failed. */
    int skip = !known || (!have && m == M_MEM), ok = 0;
    if (!skip) {
        snprintf(l, sizeof(l), "%s %.*f", reg == R_THR ? ">=" : "<=", d, limit);
        if (have && reg == R_ERR)
            snprintf(ch, sizeof(ch), "%+.3f pt", cur - base);
        else if (have && base > 0)
            snprintf(ch, sizeof(ch), "%+.1f%%", (cur - base) / base * 100);
        ok = have && (reg == R_THR ? cur >= limit : cur <= limit);
    }
    out(f, "%-20s %12s %14s %14s %10s  %s\n", METRIC[m].label, b, c, l, ch,
        skip ? "skip"
        : ok ? "pass"
             : "FAIL");
    return skip ? -1 : !ok;
}

crl_status crl_bench_check_baseline(FILE *f, const crl_bench_result *r, const char *path,
                                    const char *thresholds_path, int *failed, crl_err *err) {
    double pct[R_COUNT], base[N_BASE] = {0};
    int from_file, known[N_BASE] = {0}, checks = 0, skipped = 0;
    crl_yaml_node_t *root = NULL;
    *failed = 0;
    crl_status st = read_regression(thresholds_path, pct, &from_file, err);
    if (st == CRL_OK) st = load_map(path, &root, err);
    /* Everything is read before anything is printed: a bad file prints no half table. */
    for (size_t i = 0; st == CRL_OK && i < N_BASE; i++)
        st = read_base(root, path, i, &base[i], &known[i], err);
    if (st != CRL_OK) goto out;
    out(f,
        "baseline: %s; regression limits (%s%s): latency +%g%%, throughput -%g%%, memory +%g%%, "
        "error rate +%g points\n",
        path, from_file ? "from " : "defaults", from_file ? thresholds_path : "", pct[R_LAT],
        pct[R_THR], pct[R_MEM], pct[R_ERR]);
    out(f, "%-20s %12s %14s %14s %10s  %s\n", "check", "baseline", "current", "limit", "change",
        "result");
    for (size_t i = 0; i < N_BASE; i++) {
        int res = baseline_line(f, r, i, base[i], known[i], pct);
        checks += res >= 0;
        skipped += res < 0;
        *failed += res > 0;
    }
    summary(f, checks, *failed, skipped);
out:
    crl_yaml_free(root);
    return st;
}
