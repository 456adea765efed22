/* bench.h: `carlarl bench`, the HTTP load generator (issue 5). One run drives a server with
 * HTTP/1.1 keep-alive connections spread over threads (epoll, one loop per thread), closed loop
 * (--concurrency) or open loop (--rate, constant or Poisson arrivals, latency measured from each
 * request's intended send time so coordinated omission is corrected), and fills a crl_bench_result
 * that the outputs below turn into a table, JSON, an HTML report, and threshold and baseline
 * verdicts.
 *
 * Module layout (src/bench/):
 *   hist.c      log-linear latency histogram (<= 1% relative error), merge, percentiles
 *   client.c    the connections, the loops, request building, response parsing, error accounting
 *   workload.c  what is sent: /predict bodies (batch, sensors, seeded observations or a JSON file),
 *               or any method + path + body file
 *   server.c    server memory and CPU from its /metrics (process_* metrics) or from /proc/PID
 *   output.c    the live progress line, the final table, --json
 *   report.c    --report FILE.html: one self-contained page, inline SVG charts, no JavaScript
 *   verdict.c   --thresholds FILE --env NAME, --baseline FILE.json
 *   cli.c       crl_cmd_bench: options, wiring, exit status
 * Owns what it allocates; crl_bench_result_free releases a result. */
#ifndef CRL_BENCH_BENCH_H
#define CRL_BENCH_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/status.h"

/* ---- histogram ------------------------------------------------------------------------------ */

/* Values are nanoseconds (any uint64). Log-linear buckets: 2^k ranges each split into
 * CRL_BENCH_HIST_SUB linear sub-buckets, so a reported percentile is within 1% of the exact one.
 * Fixed size, no allocation after init: one per thread, merged at the end. */
#define CRL_BENCH_HIST_SUB 128
#define CRL_BENCH_HIST_EXP 64
typedef struct crl_bench_hist {
    uint64_t count, min, max;
    long double sum; /* for the mean */
    uint64_t bucket[CRL_BENCH_HIST_EXP * CRL_BENCH_HIST_SUB];
} crl_bench_hist;

void crl_bench_hist_init(crl_bench_hist *h);
void crl_bench_hist_add(crl_bench_hist *h, uint64_t ns);
void crl_bench_hist_merge(crl_bench_hist *into, const crl_bench_hist *from);
/* The value at quantile q in [0, 1] (q = 0.99: p99): a representative value of the bucket holding
 * the ceil(q * count)-th smallest sample, clamped to [min, max]; 0 when empty. */
uint64_t crl_bench_hist_quantile(const crl_bench_hist *h, double q);
double crl_bench_hist_mean(const crl_bench_hist *h);

/* ---- one run's result ----------------------------------------------------------------------- */

enum { CRL_BENCH_CLOSED, CRL_BENCH_OPEN };
enum { CRL_BENCH_CONSTANT, CRL_BENCH_POISSON };

/* Transport errors, by kind. */
enum {
    CRL_BENCH_ERR_CONNECT,  /* connect() refused or failed */
    CRL_BENCH_ERR_RESET,    /* ECONNRESET / EPIPE while sending or receiving */
    CRL_BENCH_ERR_CLOSED,   /* the server closed the connection before a full response */
    CRL_BENCH_ERR_TIMEOUT,  /* no full response within --timeout */
    CRL_BENCH_ERR_PROTOCOL, /* a response that is not valid HTTP/1.1 */
    CRL_BENCH_ERR_KINDS
};

/* Per-second timeline point (from the end of warm-up). */
typedef struct crl_bench_tick {
    double t_s;      /* seconds since measuring began, the end of this interval */
    uint64_t done;   /* responses completed in the interval (any status) */
    uint64_t errors; /* non-2xx plus transport errors in the interval */
    uint64_t p50_ns, p99_ns;
} crl_bench_tick;

typedef struct crl_bench_settings {
    char url[512];  /* http://host:port/path */
    char host[256]; /* as resolved from url */
    int port;
    char method[16];
    char path[256];
    int mode;          /* CRL_BENCH_CLOSED / CRL_BENCH_OPEN */
    int arrival;       /* CRL_BENCH_CONSTANT / CRL_BENCH_POISSON (open loop) */
    double rate;       /* requests per second (open loop) */
    int concurrency;   /* in-flight requests (closed loop) */
    int connections;   /* open-loop connections (closed loop: = concurrency) */
    int threads;       /* client threads */
    double duration_s; /* measured time, 0 when a request count is given */
    uint64_t requests; /* measured requests, 0 when a duration is given */
    double warmup_s;   /* excluded from every figure */
    double timeout_s;  /* per request */
    int http2;         /* --http2 (h2c prior knowledge), when implemented */
    /* workload */
    int predict;        /* 1: /predict bodies built from the fields below */
    int batch, sensors; /* observations per request, sensors per observation */
    int deterministic;
    uint64_t seed;
    char body_file[512];     /* --body FILE (any path) or --observations FILE.json */
    char workload_desc[256]; /* the request mix in words, printed in every report */
} crl_bench_settings;

typedef struct crl_bench_server {
    int known;       /* 1 when the figures below were read */
    char source[64]; /* "metrics" or "pid 1234" */
    double rss_before_mb, rss_after_mb;
    double rss_growth_per_1000_kb; /* (after - before) / requests * 1000 */
    double cpu_s;                  /* server CPU seconds spent while measuring */
    double cpu_us_per_request;
} crl_bench_server;

typedef struct crl_bench_result {
    crl_bench_settings set;
    double elapsed_s;                        /* measured wall time */
    uint64_t sent;                           /* requests sent while measuring */
    uint64_t done;                           /* responses received while measuring (any status) */
    uint64_t ok;                             /* 2xx */
    uint64_t status[600];                    /* responses by status code */
    uint64_t transport[CRL_BENCH_ERR_KINDS]; /* transport errors by kind */
    double rps;                              /* done / elapsed */
    double observations_per_s;               /* ok * batch / elapsed (predict workloads) */
    double error_rate_percent;               /* (non-2xx + transport) / (done + transport) */
    crl_bench_hist latency;                  /* every completed response, 2xx or not */
    crl_bench_tick *ticks;                   /* one per second of measuring */
    size_t n_ticks;
    crl_bench_server server;
    char started_at[32]; /* ISO-8601 UTC */
    char carlarl_version[32];
} crl_bench_result;

void crl_bench_result_free(crl_bench_result *r); /* frees ticks; NULL-safe */

/* ---- outputs -------------------------------------------------------------------------------- */

/* The human table (figures, status and error counts, latency percentiles, server figures). */
void crl_bench_print_table(FILE *f, const crl_bench_result *r);
/* --json: one object; docs/benchmarking.md documents its schema (version 1). */
crl_status crl_bench_write_json(FILE *f, const crl_bench_result *r);
/* --report: one self-contained HTML page with inline SVG: latency CDF (log x), latency and
 * throughput over time, and the figures table. */
crl_status crl_bench_write_report(const char *path, const crl_bench_result *r, crl_err *err);

/* ---- verdicts ------------------------------------------------------------------------------- */

/* --thresholds FILE --env NAME: the original's performance-thresholds.yaml format (p50/p95/p99 in
 * ms, throughput_rps, memory_usage_mb, error_rate_percent per environment). Prints a table of
 * every check to f; *failed is the number that failed. */
crl_status crl_bench_check_thresholds(FILE *f, const crl_bench_result *r, const char *path,
                                      const char *env, int *failed, crl_err *err);
/* --baseline FILE.json: a saved --json run, compared with the file's regression_thresholds
 * percentages (from the thresholds file; see docs/benchmarking.md). */
crl_status crl_bench_check_baseline(FILE *f, const crl_bench_result *r, const char *path,
                                    const char *thresholds_path, int *failed, crl_err *err);

/* `carlarl bench [URL] [options]`: exit 0, 1 when a threshold or baseline check failed, 2 on a
 * usage error, 3 when the run itself could not happen (no server). */
int crl_cmd_bench(int argc, char **argv);

#endif
