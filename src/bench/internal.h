/* internal.h: what the files of src/bench/ share with each other and nothing else: the built
 * workload, the client run, the server samples and the progress line. bench.h is the module's
 * public face; this header is included only by the files of src/bench/ and their unit tests. */
#ifndef CRL_BENCH_INTERNAL_H
#define CRL_BENCH_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "bench/bench.h"

/* ---- histogram helpers (hist.c): one log-linear bucket scheme, any number of sub-bucket bits, so
 * the coarse per-second histograms of the timeline share the code of the fine one ---- */

size_t crl_bench__bucket_index(uint64_t v, int sub_bits);
uint64_t crl_bench__bucket_mid(size_t idx, int sub_bits);

/* The per-second timeline's histogram: 16 sub-buckets per power of two (<= 3.2% error). */
#define CRL_BENCH_TICK_SUB_BITS 4
#define CRL_BENCH_TICK_BUCKETS (64 << CRL_BENCH_TICK_SUB_BITS)
typedef struct crl_bench_tick_hist {
    uint64_t count, done, errors;
    uint32_t bucket[CRL_BENCH_TICK_BUCKETS];
} crl_bench_tick_hist;

void crl_bench__tick_add(crl_bench_tick_hist *t, uint64_t ns);
void crl_bench__tick_merge(crl_bench_tick_hist *into, const crl_bench_tick_hist *from);
uint64_t crl_bench__tick_quantile(const crl_bench_tick_hist *t, double q);

/* ---- workload (workload.c) ---- */

/* Complete HTTP/1.1 requests (request line, headers, body), built once and shared read-only by
 * every connection; connection i starts at request i % n and cycles through them. */
typedef struct crl_bench_workload {
    char **req;
    size_t *len;
    size_t n;
    int head; /* the method is HEAD: responses carry no body */
} crl_bench_workload;

/* Extra request headers from -H, "Name: value" each. */
#define CRL_BENCH_MAX_HEADERS 16
typedef struct crl_bench_headers {
    const char *h[CRL_BENCH_MAX_HEADERS];
    int n;
} crl_bench_headers;

/* Builds the requests `s` describes and fills s->workload_desc (and s->batch, s->sensors for an
 * --observations file). CRL_EINVAL/CRL_EIO/CRL_EFORMAT with a message on bad input. */
crl_status crl_bench__workload_build(crl_bench_settings *s, const crl_bench_headers *hdrs,
                                     crl_bench_workload *w, crl_err *err);
void crl_bench__workload_free(crl_bench_workload *w);

/* Splits http://host[:port][/path] into s->host, s->port, s->path (default /predict). */
crl_status crl_bench__parse_url(crl_bench_settings *s, const char *url, crl_err *err);

/* ---- client (client.c) ---- */

/* What the threads publish while running, read by the progress line. */
typedef struct crl_bench_live {
    _Atomic uint64_t done, errors; /* measured responses and transport errors so far */
    _Atomic int measuring;         /* warm-up is over */
    _Atomic int finished;          /* threads that have stopped */
    uint64_t start_ns;             /* when measuring begins (monotonic) */
} crl_bench_live;

typedef struct crl_bench_run crl_bench_run;

/* Starts the client threads (connections, schedule, loops). The run is over when
 * crl_bench__run_finished says so; crl_bench__run_join waits for it and fills r's measured fields
 * (everything except set, server, started_at and carlarl_version). */
crl_status crl_bench__run_start(const crl_bench_settings *s, const crl_bench_workload *w,
                                crl_bench_run **out, crl_err *err);
crl_bench_live *crl_bench__run_live(crl_bench_run *run);
int crl_bench__run_finished(crl_bench_run *run);
/* Asks the threads to stop scheduling (Ctrl-C); what is in flight gets a second to finish. */
void crl_bench__run_stop(crl_bench_run *run);
/* The p99 of every measured response of the whole seconds so far (0 when none). */
uint64_t crl_bench__run_p99_so_far(crl_bench_run *run);
crl_status crl_bench__run_join(crl_bench_run *run, crl_bench_result *r, crl_err *err);

/* Connects once (blocking, with a timeout) to check that something listens at host:port. */
crl_status crl_bench__probe(const crl_bench_settings *s, crl_err *err);

/* ---- server figures (server.c) ---- */

typedef struct crl_bench_sample {
    int ok;
    double rss_bytes, cpu_s;
} crl_bench_sample;

/* One reading of the server's memory and CPU: from /proc/PID when pid > 0, else from
 * GET /metrics (process_resident_memory_bytes, process_cpu_seconds_total). */
crl_status crl_bench__server_sample(const crl_bench_settings *s, int pid, crl_bench_sample *out,
                                    crl_err *err);
/* The figures from two samples around `requests` measured requests. */
void crl_bench__server_figures(const crl_bench_sample *before, const crl_bench_sample *after,
                               uint64_t requests, int pid, crl_bench_server *out);
/* Reads the number after `name ` at the start of a line of Prometheus text; 0 when found. */
int crl_bench__prom_value(const char *text, const char *name, double *out);

/* ---- output (output.c) ---- */

/* One "\r..." progress line: elapsed, requests per second, p99 so far. */
void crl_bench__progress_line(FILE *f, double elapsed_s, uint64_t done, uint64_t errors,
                              uint64_t p99_ns);

#endif
