/* output.c: what a bench run shows: the live progress line, the final table and --json (schema
 * version 1, documented key by key in docs/benchmarking.md). Latencies are printed in ms. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/internal.h"
#include "core/buf.h"
#include "json/write.h"

static const char *const k_err_names[CRL_BENCH_ERR_KINDS] = {"connect", "reset", "closed",
                                                             "timeout", "protocol"};

/* Milliseconds to the microsecond, so JSON carries 0.104703 rather than 0.10470299999999999. */
static double ms(uint64_t ns) {
    return round((double)ns * 1e-3) * 1e-3;
}

void crl_bench__progress_line(FILE *f, double elapsed_s, uint64_t done, uint64_t errors,
                              uint64_t p99_ns) {
    double rps = elapsed_s > 0 ? (double)done / elapsed_s : 0;
    fprintf(f, "\r%6.1f s  %10" PRIu64 " done  %9.0f req/s  %6" PRIu64 " errors  p99 %8.3f ms ",
            elapsed_s, done, rps, errors, ms(p99_ns));
    fflush(f);
}

/* The quantiles every output reports, with their JSON names. */
static const struct {
    const char *name;
    double q;
} k_quantiles[] = {{"p50", 0.50}, {"p90", 0.90}, {"p95", 0.95}, {"p99", 0.99}, {"p99_9", 0.999}};
#define NQ (sizeof(k_quantiles) / sizeof(k_quantiles[0]))

static uint64_t transport_total(const crl_bench_result *r) {
    uint64_t n = 0;
    for (int k = 0; k < CRL_BENCH_ERR_KINDS; k++)
        n += r->transport[k];
    return n;
}

static void print_load(FILE *f, const crl_bench_settings *s) {
    if (s->mode == CRL_BENCH_CLOSED)
        fprintf(f, "load       closed loop, concurrency %d, %d thread%s", s->concurrency,
                s->threads, s->threads == 1 ? "" : "s");
    else
        fprintf(f, "load       open loop, %.6g req/s %s arrivals, %d connections, %d thread%s",
                s->rate, s->arrival == CRL_BENCH_POISSON ? "Poisson" : "constant", s->connections,
                s->threads, s->threads == 1 ? "" : "s");
    if (s->requests)
        fprintf(f, ", %" PRIu64 " requests", s->requests);
    else
        fprintf(f, ", %.6g s", s->duration_s);
    fprintf(f, " after %.6g s warm-up, timeout %.6g s\n", s->warmup_s, s->timeout_s);
}

static void print_errors(FILE *f, const crl_bench_result *r) {
    fprintf(f, "status    ");
    int any = 0;
    for (int c = 0; c < 600; c++)
        if (r->status[c]) fprintf(f, " %d: %" PRIu64, c, r->status[c]), any = 1;
    fprintf(f, "%s\n", any ? "" : " none");
    fprintf(f, "errors     %.3f%% of requests", r->error_rate_percent);
    if (transport_total(r)) {
        fprintf(f, "; transport:");
        for (int k = 0; k < CRL_BENCH_ERR_KINDS; k++)
            if (r->transport[k]) fprintf(f, " %s %" PRIu64, k_err_names[k], r->transport[k]);
    }
    fputc('\n', f);
}

void crl_bench_print_table(FILE *f, const crl_bench_result *r) {
    const crl_bench_settings *s = &r->set;
    fprintf(f, "carlarl bench %s   %s   %s\n", r->carlarl_version, s->url, r->started_at);
    fprintf(f, "workload   %s\n", s->workload_desc);
    print_load(f, s);
    fprintf(f, "\nrequests   %" PRIu64 " sent, %" PRIu64 " done, %" PRIu64 " 2xx in %.3f s\n",
            r->sent, r->done, r->ok, r->elapsed_s);
    fprintf(f, "throughput %.1f req/s", r->rps);
    if (s->predict) fprintf(f, ", %.1f observations/s", r->observations_per_s);
    fputc('\n', f);
    print_errors(f, r);
    const crl_bench_hist *h = &r->latency;
    fprintf(f, "\nlatency ms %9s %9s", "min", "mean");
    for (size_t i = 0; i < NQ; i++)
        fprintf(f, " %9s", i == NQ - 1 ? "p99.9" : k_quantiles[i].name);
    fprintf(f, " %9s\n%10s %9.3f %9.3f", "max", "", ms(h->count ? h->min : 0),
            round(crl_bench_hist_mean(h) * 1e-3) * 1e-3);
    for (size_t i = 0; i < NQ; i++)
        fprintf(f, " %9.3f", ms(crl_bench_hist_quantile(h, k_quantiles[i].q)));
    fprintf(f, " %9.3f\n", ms(h->max));
    if (s->mode == CRL_BENCH_OPEN)
        fprintf(f, "           (open loop: from each request's intended send time)\n");
    const crl_bench_server *sv = &r->server;
    if (sv->known)
        fprintf(f,
                "\nserver     (%s) rss %.1f MB -> %.1f MB (%+.2f KB per 1000 requests), "
                "cpu %.3f s = %.1f us per request\n",
                sv->source, sv->rss_before_mb, sv->rss_after_mb, sv->rss_growth_per_1000_kb,
                sv->cpu_s, sv->cpu_us_per_request);
    else
        fprintf(f, "\nserver     figures unknown (no process metrics; try --server-pid)\n");
}

/* ---- JSON ----------------------------------------------------------------------------------- */

static void key(crl_buf *b, const char *k) {
    crl_json_cstr(b, k);
    crl_buf_puts(b, ":");
}

static void kv_num(crl_buf *b, const char *k, double v, int comma) {
    key(b, k);
    crl_json_num(b, v);
    if (comma) crl_buf_puts(b, ",");
}

static void kv_u64(crl_buf *b, const char *k, uint64_t v, int comma) {
    key(b, k);
    crl_buf_printf(b, "%" PRIu64 "%s", v, comma ? "," : "");
}

static void kv_str(crl_buf *b, const char *k, const char *v, int comma) {
    key(b, k);
    if (v)
        crl_json_cstr(b, v);
    else
        crl_buf_puts(b, "null");
    if (comma) crl_buf_puts(b, ",");
}

static void json_settings(crl_buf *b, const crl_bench_settings *s) {
    key(b, "settings");
    crl_buf_puts(b, "{");
    kv_str(b, "url", s->url, 1);
    kv_str(b, "method", s->method, 1);
    kv_str(b, "path", s->path, 1);
    kv_str(b, "mode", s->mode == CRL_BENCH_OPEN ? "open" : "closed", 1);
    kv_str(b, "arrival",
           s->mode != CRL_BENCH_OPEN         ? NULL
           : s->arrival == CRL_BENCH_POISSON ? "poisson"
                                             : "constant",
           1);
    kv_num(b, "rate", s->mode == CRL_BENCH_OPEN ? s->rate : 0, 1);
    kv_u64(b, "concurrency", (uint64_t)s->concurrency, 1);
    kv_u64(b, "connections", (uint64_t)s->connections, 1);
    kv_u64(b, "threads", (uint64_t)s->threads, 1);
    kv_num(b, "duration_s", s->duration_s, 1);
    kv_u64(b, "requests", s->requests, 1);
    kv_num(b, "warmup_s", s->warmup_s, 1);
    kv_num(b, "timeout_s", s->timeout_s, 1);
    key(b, "http2");
    crl_buf_puts(b, s->http2 ? "true," : "false,");
    key(b, "workload");
    crl_buf_puts(b, "{");
    key(b, "predict");
    crl_buf_puts(b, s->predict ? "true," : "false,");
    kv_u64(b, "batch", s->predict ? (uint64_t)s->batch : 0, 1);
    kv_u64(b, "sensors", s->predict ? (uint64_t)s->sensors : 0, 1);
    key(b, "deterministic");
    crl_buf_puts(b, s->deterministic ? "true," : "false,");
    kv_u64(b, "seed", s->seed, 1);
    kv_str(b, "body_file", s->body_file[0] ? s->body_file : NULL, 1);
    kv_str(b, "description", s->workload_desc, 0);
    crl_buf_puts(b, "}},");
}

static void json_counts(crl_buf *b, const crl_bench_result *r) {
    key(b, "status");
    crl_buf_puts(b, "{");
    int first = 1;
    for (int c = 0; c < 600; c++) {
        if (!r->status[c]) continue;
        crl_buf_printf(b, "%s\"%d\":%" PRIu64, first ? "" : ",", c, r->status[c]);
        first = 0;
    }
    crl_buf_puts(b, "},");
    key(b, "transport_errors");
    crl_buf_puts(b, "{");
    for (int k = 0; k < CRL_BENCH_ERR_KINDS; k++)
        kv_u64(b, k_err_names[k], r->transport[k], k + 1 < CRL_BENCH_ERR_KINDS);
    crl_buf_puts(b, "},");
}

static void json_latency(crl_buf *b, const crl_bench_hist *h) {
    key(b, "latency_ms");
    crl_buf_puts(b, "{");
    kv_u64(b, "count", h->count, 1);
    kv_num(b, "min", ms(h->count ? h->min : 0), 1);
    kv_num(b, "mean", round(crl_bench_hist_mean(h) * 1e-3) * 1e-3, 1);
    for (size_t i = 0; i < NQ; i++)
        kv_num(b, k_quantiles[i].name, ms(crl_bench_hist_quantile(h, k_quantiles[i].q)), 1);
    kv_num(b, "max", ms(h->max), 0);
    crl_buf_puts(b, "},");
}

static void json_server(crl_buf *b, const crl_bench_server *sv) {
    key(b, "server");
    crl_buf_puts(b, "{");
    key(b, "known");
    crl_buf_puts(b, sv->known ? "true," : "false,");
    kv_str(b, "source", sv->known ? sv->source : NULL, 1);
    if (sv->known) {
        kv_num(b, "rss_before_mb", sv->rss_before_mb, 1);
        kv_num(b, "rss_after_mb", sv->rss_after_mb, 1);
        kv_num(b, "rss_growth_per_1000_kb", sv->rss_growth_per_1000_kb, 1);
        kv_num(b, "cpu_s", sv->cpu_s, 1);
        kv_num(b, "cpu_us_per_request", sv->cpu_us_per_request, 0);
    } else {
        crl_buf_puts(b, "\"rss_before_mb\":null,\"rss_after_mb\":null,"
                        "\"rss_growth_per_1000_kb\":null,\"cpu_s\":null,"
                        "\"cpu_us_per_request\":null");
    }
    crl_buf_puts(b, "},");
}

static void json_timeline(crl_buf *b, const crl_bench_result *r) {
    key(b, "timeline");
    crl_buf_puts(b, "[");
    for (size_t i = 0; i < r->n_ticks; i++) {
        const crl_bench_tick *t = &r->ticks[i];
        crl_buf_puts(b, i ? ",{" : "{");
        kv_num(b, "t_s", t->t_s, 1);
        kv_u64(b, "done", t->done, 1);
        kv_u64(b, "errors", t->errors, 1);
        kv_num(b, "p50_ms", ms(t->p50_ns), 1);
        kv_num(b, "p99_ms", ms(t->p99_ns), 0);
        crl_buf_puts(b, "}");
    }
    crl_buf_puts(b, "]");
}

crl_status crl_bench_write_json(FILE *f, const crl_bench_result *r) {
    crl_buf b;
    crl_buf_init(&b, 256u << 20);
    crl_buf_puts(&b, "{");
    kv_u64(&b, "schema_version", 1, 1);
    kv_str(&b, "tool", "carlarl bench", 1);
    kv_str(&b, "carlarl_version", r->carlarl_version, 1);
    kv_str(&b, "started_at", r->started_at, 1);
    json_settings(&b, &r->set);
    kv_num(&b, "elapsed_s", r->elapsed_s, 1);
    kv_u64(&b, "sent", r->sent, 1);
    kv_u64(&b, "done", r->done, 1);
    kv_u64(&b, "ok", r->ok, 1);
    kv_num(&b, "throughput_rps", r->rps, 1);
    kv_num(&b, "observations_per_s", r->observations_per_s, 1);
    kv_num(&b, "error_rate_percent", r->error_rate_percent, 1);
    json_counts(&b, r);
    json_latency(&b, &r->latency);
    json_server(&b, &r->server);
    json_timeline(&b, r);
    crl_buf_puts(&b, "}\n");
    crl_status st = b.failed ? CRL_ENOMEM : CRL_OK;
    if (st == CRL_OK && fwrite(b.data, 1, b.len, f) != b.len) st = CRL_EIO;
    crl_buf_free(&b);
    return st;
}

void crl_bench_result_free(crl_bench_result *r) {
    if (r == NULL) return;
    free(r->ticks);
    r->ticks = NULL;
    r->n_ticks = 0;
}
