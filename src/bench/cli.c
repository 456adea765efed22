/* cli.c: `carlarl bench [URL] [options]`: the options, the run (probe, server samples around the
 * measured window, live progress, Ctrl-C), the outputs and verdicts, and the exit status: 0 ok, 1 a
 * threshold or baseline check failed, 2 usage error, 3 the run could not happen. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench/internal.h"
#include "core/time.h"

static void usage(FILE *f) {
    fputs(
        "usage: carlarl bench [URL] [options]\n"
        "\n"
        "Load-tests a server with HTTP/1.1 keep-alive connections. URL is "
        "http://host[:port][/path]\n"
        "(default http://127.0.0.1:8080/predict).\n"
        "\n"
        "load (closed loop unless --rate is given):\n"
        "  -c, --concurrency N     closed loop: N requests in flight, one per connection (8)\n"
        "  -r, --rate R            open loop: R requests per second at intended send times;\n"
        "                          latency counts from the intended time (coordinated omission)\n"
        "      --poisson           open loop: exponential gaps between sends (default constant)\n"
        "      --connections N     open loop: connections (default 32)\n"
        "  -t, --threads N         client threads, connections dealt round-robin (CPUs / 2)\n"
        "  -d, --duration S        measure for S seconds (10)\n"
        "  -n, --requests N        measure exactly N requests instead of a duration\n"
        "  -w, --warmup S          seconds of load before measuring, excluded from figures (1)\n"
        "      --timeout S         per-request timeout in seconds (10)\n"
        "      --http2             HTTP/2 (not supported yet)\n"
        "\n"
        "workload (the request mix is stated in every output):\n"
        "  -b, --batch B           observations per /predict request (1)\n"
        "  -k, --sensors K         sensors per observation (3)\n"
        "      --deterministic     ask for deterministic actions\n"
        "      --seed N            seed of the random observations (1)\n"
        "      --observations FILE send this /predict body (JSON) instead of random observations\n"
        "  -X, --method M          HTTP method (POST for /predict, else GET)\n"
        "      --body FILE         request body for any method and path\n"
        "  -H, --header 'K: V'     extra request header (repeatable)\n"
        "\n"
        "server figures (memory, CPU per request):\n"
        "      --server-pid PID    read /proc/PID instead of the server's GET /metrics\n"
        "      --no-server-stats   do not read them\n"
        "\n"
        "output:\n"
        "      --json FILE         the result as JSON ('-': stdout; the table then goes to "
        "stderr)\n"
        "      --report FILE.html  an HTML report with charts\n"
        "  -q, --quiet             no table\n"
        "      --no-progress       no live progress line (shown only on a terminal)\n"
        "      --thresholds FILE   check the result against a performance-thresholds file ...\n"
        "      --env NAME          ... for this environment (default production)\n"
        "      --baseline FILE     compare with a saved --json run\n"
        "\n"
        "exit status: 0 ok, 1 a threshold or baseline check failed, 2 usage error,\n"
        "3 the run could not happen (no server)\n",
        f);
}

typedef struct opts {
    crl_bench_settings s;
    crl_bench_headers hdrs;
    const char *json, *report, *thresholds, *env, *baseline;
    int pid, no_stats, quiet, no_progress, method_set, rate_set, conns_set, threads_set;
    int conc_set;
} opts;

static int bad(const char *opt, const char *why) {
    fprintf(stderr, "carlarl bench: %s: %s\n", opt, why);
    return 2;
}

static int num(const char *opt, const char *v, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end || !(d >= lo && d <= hi)) {
        fprintf(stderr, "carlarl bench: %s: expected a number in %g..%g, got '%s'\n", opt, lo, hi,
                v);
        return 2;
    }
    *out = d;
    return 0;
}

static int copy(const char *opt, char *dst, size_t cap, const char *v) {
    if (strlen(v) >= cap) return bad(opt, "too long");
    snprintf(dst, cap, "%s", v);
    return 0;
}

static int is(const char *k, const char *name, const char *short_name) {
    return strcmp(k, name) == 0 || (short_name && strcmp(k, short_name) == 0);
}

/* One option with its value; 0, or 2 on a usage error. */
static int set_option(opts *o, const char *k, const char *v) {
    crl_bench_settings *s = &o->s;
    double d = 0;
    int rc = 0;
#define IS(a, b) is(k, a, b)
    if (IS("--concurrency", "-c")) {
        if (!(rc = num(k, v, 1, 100000, &d))) s->concurrency = (int)d, o->conc_set = 1;
    } else if (IS("--rate", "-r")) {
        if (!(rc = num(k, v, 1e-3, 1e7, &d))) s->rate = d, o->rate_set = 1;
    } else if (IS("--connections", NULL)) {
        if (!(rc = num(k, v, 1, 100000, &d))) s->connections = (int)d, o->conns_set = 1;
    } else if (IS("--threads", "-t")) {
        if (!(rc = num(k, v, 1, 1024, &d))) s->threads = (int)d, o->threads_set = 1;
    } else if (IS("--duration", "-d")) {
        if (!(rc = num(k, v, 1e-3, 1e7, &d))) s->duration_s = d;
    } else if (IS("--requests", "-n")) {
        if (!(rc = num(k, v, 1, 1e15, &d))) s->requests = (uint64_t)d;
    } else if (IS("--warmup", "-w")) {
        rc = num(k, v, 0, 1e6, &s->warmup_s);
    } else if (IS("--timeout", NULL)) {
        rc = num(k, v, 1e-3, 1e6, &s->timeout_s);
    } else if (IS("--batch", "-b")) {
        if (!(rc = num(k, v, 1, 1000, &d))) s->batch = (int)d;
    } else if (IS("--sensors", "-k")) {
        if (!(rc = num(k, v, 1, 10000, &d))) s->sensors = (int)d;
    } else if (IS("--seed", NULL)) {
        if (!(rc = num(k, v, 0, 1.8e19, &d))) s->seed = strtoull(v, NULL, 10);
    } else if (IS("--observations", NULL)) {
        rc = copy(k, s->body_file, sizeof(s->body_file), v);
        s->predict = 1;
    } else if (IS("--body", NULL)) {
        rc = copy(k, s->body_file, sizeof(s->body_file), v);
    } else if (IS("--method", "-X")) {
        rc = copy(k, s->method, sizeof(s->method), v);
        o->method_set = 1;
    } else if (IS("--header", "-H")) {
        if (o->hdrs.n == CRL_BENCH_MAX_HEADERS) return bad(k, "too many headers");
        if (strchr(v, ':') == NULL || strpbrk(v, "\r\n")) return bad(k, "expected 'Name: value'");
        o->hdrs.h[o->hdrs.n++] = v;
    } else if (IS("--server-pid", NULL)) {
        if (!(rc = num(k, v, 1, 4194304, &d))) o->pid = (int)d;
    } else if (IS("--json", NULL)) {
        o->json = v;
    } else if (IS("--report", NULL)) {
        o->report = v;
    } else if (IS("--thresholds", NULL)) {
        o->thresholds = v;
    } else if (IS("--env", NULL)) {
        o->env = v;
    } else if (IS("--baseline", NULL)) {
        o->baseline = v;
    } else {
        fprintf(stderr, "carlarl bench: unknown option '%s' (see carlarl bench --help)\n", k);
        return 2;
    }
#undef IS
    return rc;
}

static int is_flag(opts *o, const char *k) {
    if (strcmp(k, "--poisson") == 0) return o->s.arrival = CRL_BENCH_POISSON, 1;
    if (strcmp(k, "--deterministic") == 0) return o->s.deterministic = 1, 1;
    if (strcmp(k, "--http2") == 0) return o->s.http2 = 1, 1;
    if (strcmp(k, "--no-server-stats") == 0) return o->no_stats = 1, 1;
    if (strcmp(k, "--quiet") == 0 || strcmp(k, "-q") == 0) return o->quiet = 1, 1;
    if (strcmp(k, "--no-progress") == 0) return o->no_progress = 1, 1;
    return 0;
}

static void defaults(opts *o) {
    memset(o, 0, sizeof(*o));
    crl_bench_settings *s = &o->s;
    s->concurrency = 8;
    s->connections = 32;
    s->duration_s = 10;
    s->warmup_s = 1;
    s->timeout_s = 10;
    s->batch = 1;
    s->sensors = 3;
    s->seed = 1;
    o->env = "production";
}

/* Settings that depend on each other, once every option is in. */
static int finish_settings(opts *o, const char *url) {
    crl_bench_settings *s = &o->s;
    crl_err err = {{0}};
    if (crl_bench__parse_url(s, url, &err) != CRL_OK) return bad("URL", err.msg);
    if (s->http2) return bad("--http2", "HTTP/2 is not supported yet (use HTTP/1.1, the default)");
    s->mode = o->rate_set ? CRL_BENCH_OPEN : CRL_BENCH_CLOSED;
    if (s->mode == CRL_BENCH_CLOSED && (o->conns_set || s->arrival == CRL_BENCH_POISSON))
        return bad(o->conns_set ? "--connections" : "--poisson", "needs --rate (open loop)");
    if (s->mode == CRL_BENCH_OPEN && !o->conns_set && o->conc_set) s->connections = s->concurrency;
    if (s->mode == CRL_BENCH_CLOSED) s->connections = s->concurrency;
    int conns = s->connections;
    if (!o->threads_set) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        s->threads = cpus > 1 ? (int)(cpus / 2) : 1;
    }
    if (s->threads > conns) s->threads = conns;
    int is_predict = strcmp(s->path, "/predict") == 0;
    if (!o->method_set) snprintf(s->method, sizeof(s->method), "%s", is_predict ? "POST" : "GET");
    if (!s->predict) s->predict = is_predict && strcmp(s->method, "POST") == 0 && !s->body_file[0];
    return 0;
}

static int parse(opts *o, int argc, char **argv) {
    defaults(o);
    const char *url = "http://127.0.0.1:8080/predict";
    int have_url = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (a[0] != '-') {
            if (have_url) return bad(a, "only one URL");
            url = a, have_url = 1;
            continue;
        }
        if (is_flag(o, a)) continue;
        const char *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
        char key[64];
        const char *val;
        if (eq) {
            snprintf(key, sizeof(key), "%.*s", (int)(eq - a), a);
            val = eq + 1;
        } else {
            snprintf(key, sizeof(key), "%s", a);
            if (i + 1 >= argc) return bad(a, "needs a value");
            val = argv[++i];
        }
        int rc = set_option(o, key, val);
        if (rc) return rc;
    }
    return finish_settings(o, url) ? 2 : -1;
}

/* ---- the run -------------------------------------------------------------------------------- */

static volatile sig_atomic_t g_interrupted;
static void on_sigint(int sig) {
    (void)sig;
    g_interrupted = 1;
}

static void sleep_ms(int ms) {
    struct timespec ts = {.tv_sec = 0, .tv_nsec = ms * 1000000L};
    nanosleep(&ts, NULL);
}

static void sample(const opts *o, crl_bench_sample *out) {
    crl_err err = {{0}};
    if (o->no_stats || crl_bench__server_sample(&o->s, o->pid, out, &err) == CRL_OK) return;
    fprintf(stderr, "carlarl bench: no server figures: %s\n", err.msg);
}

/* Runs the load, sampling the server at the start and the end of the measured window. */
static int run_load(const opts *o, const crl_bench_workload *w, crl_bench_result *r) {
    crl_err err = {{0}};
    crl_bench_sample before = {0}, after = {0};
    int progress = !o->no_progress && isatty(STDERR_FILENO);
    if (o->s.warmup_s == 0) sample(o, &before);
    crl_bench_run *run = NULL;
    if (crl_bench__run_start(&o->s, w, &run, &err) != CRL_OK) {
        fprintf(stderr, "carlarl bench: %s\n", err.msg);
        return 3;
    }
    struct sigaction sa = {.sa_handler = on_sigint}, old;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old);
    int sampled = o->s.warmup_s == 0, shown = 0;
    uint64_t next_show = 0;
    while (!crl_bench__run_finished(run)) {
        sleep_ms(50);
        crl_bench_live *live = crl_bench__run_live(run);
        uint64_t now = crl_time_mono_ns();
        if (!sampled && live->measuring) sample(o, &before), sampled = 1;
        if (g_interrupted) crl_bench__run_stop(run);
        if (progress && live->measuring && now >= next_show) {
            crl_bench__progress_line(stderr, (double)(now - live->start_ns) * 1e-9, live->done,
                                     live->errors, crl_bench__run_p99_so_far(run));
            next_show = now + 500000000ull, shown = 1;
        }
    }
    if (shown) fputs("\r\033[K", stderr);
    crl_status st = crl_bench__run_join(run, r, &err);
    sigaction(SIGINT, &old, NULL);
    if (st != CRL_OK) {
        fprintf(stderr, "carlarl bench: %s\n", err.msg);
        return 3;
    }
    sample(o, &after);
    crl_bench__server_figures(&before, &after, r->done, o->pid, &r->server);
    return 0;
}

static int outputs(const opts *o, const crl_bench_result *r) {
    int to_stdout = o->json && strcmp(o->json, "-") == 0;
    if (!o->quiet) crl_bench_print_table(to_stdout ? stderr : stdout, r);
    if (o->json) {
        FILE *f = to_stdout ? stdout : fopen(o->json, "w");
        crl_status st = f ? crl_bench_write_json(f, r) : CRL_EIO;
        if (f && !to_stdout && fclose(f) != 0) st = CRL_EIO;
        if (st != CRL_OK) return fprintf(stderr, "carlarl bench: %s: cannot write\n", o->json), 3;
    }
    crl_err err = {{0}};
    if (o->report && crl_bench_write_report(o->report, r, &err) != CRL_OK)
        return fprintf(stderr, "carlarl bench: %s\n", err.msg), 3;
    int failed = 0, f2 = 0;
    FILE *vf = to_stdout ? stderr : stdout;
    if (o->thresholds &&
        crl_bench_check_thresholds(vf, r, o->thresholds, o->env, &failed, &err) != CRL_OK)
        return fprintf(stderr, "carlarl bench: %s\n", err.msg), 2;
    if (o->baseline &&
        crl_bench_check_baseline(vf, r, o->baseline, o->thresholds, &f2, &err) != CRL_OK)
        return fprintf(stderr, "carlarl bench: %s\n", err.msg), 2;
    return failed + f2 > 0 ? 1 : 0;
}

int crl_cmd_bench(int argc, char **argv) {
    opts o;
    int rc = parse(&o, argc, argv);
    if (rc >= 0) return rc;
    crl_err err = {{0}};
    crl_bench_workload w;
    if (crl_bench__workload_build(&o.s, &o.hdrs, &w, &err) != CRL_OK) {
        fprintf(stderr, "carlarl bench: %s\n", err.msg);
        return 2;
    }
    crl_bench_result *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        crl_bench__workload_free(&w);
        return 3;
    }
    r->set = o.s;
    snprintf(r->carlarl_version, sizeof(r->carlarl_version), "%s", CRL_VERSION);
    time_t now = time(NULL);
    struct tm tm;
    strftime(r->started_at, sizeof(r->started_at), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
    if (crl_bench__probe(&o.s, &err) != CRL_OK) {
        fprintf(stderr, "carlarl bench: %s (is the server running?)\n", err.msg);
        rc = 3;
    } else if ((rc = run_load(&o, &w, r)) == 0) {
        rc = outputs(&o, r);
    }
    crl_bench_result_free(r);
    free(r);
    crl_bench__workload_free(&w);
    return rc;
}
