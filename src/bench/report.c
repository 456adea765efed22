/* report.c: `carlarl bench --report FILE.html`. One self-contained page: the run's settings, the
 * figures table, and three inline SVG charts (latency CDF on a log-scale x axis, p50/p99 latency
 * over time, throughput over time). No JavaScript, no fonts or images fetched from anywhere: the
 * page is meant to be attached to a CI run or mailed around and still open years later.
 *
 * The markup is polyglot (well-formed XML as well as HTML5: every element closed, attributes
 * quoted, only numeric character references), so a test can parse it with an XML parser and
 * anyone can post-process it with XSLT or lxml. Text that comes from the user (the URL, the
 * workload description) is escaped, and bytes that are not valid UTF-8 or are control characters
 * become '?', since either would make the page invalid XML. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"

/* ---- text ----------------------------------------------------------------------------------- */

/* The length of the valid UTF-8 sequence at s (2..4), or 0 when it is not one. */
static size_t utf8_len(const unsigned char *s) {
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    size_t n;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4;
    else
        return 0;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F; /* no UTF-16 surrogates */
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return n;
}

/* Writes s as HTML/XML text or attribute content. */
static void put_esc(FILE *f, const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n;
        if (*p == '&')
            fputs("&amp;", f);
        else if (*p == '<')
            fputs("&lt;", f);
        else if (*p == '>')
            fputs("&gt;", f);
        else if (*p == '"')
            fputs("&quot;", f);
        else if (*p == '\'')
            fputs("&#39;", f);
        else if (*p < 0x20 && *p != '\t' && *p != '\n')
            fputc('?', f);
        else if (*p < 0x80)
            fputc(*p, f);
        else if ((n = utf8_len(p)) > 0) {
            fwrite(p, 1, n, f);
            p += n;
            continue;
        } else
            fputc('?', f);
        p++;
    }
}

static double ns_to_ms(uint64_t ns) {
    return (double)ns / 1e6;
}

/* ---- charts --------------------------------------------------------------------------------- */

#define CH_W 760 /* the whole chart */
#define CH_H 330
#define CH_L 76 /* left margin: y tick labels and the y axis title */
#define CH_R 18
#define CH_T 36 /* top: the chart title */
#define CH_B 54 /* bottom: x tick labels and the x axis title */

typedef struct series {
    const char *name, *color;
    const double *x, *y;
    size_t n;
    int dashed;
} series;

typedef struct mark {
    double x, y;
    const char *label;
} mark;

typedef struct chart {
    const char *id, *title, *xlabel, *ylabel;
    int xlog;              /* 1: log10 x axis with a tick per decade */
    double x0, x1, y0, y1; /* x1 > x0 (> 0 when xlog), y1 > y0 */
    const series *s;
    size_t ns;
    const mark *m;
    size_t nm;
} chart;

static double px(const chart *c, double x) {
    double t = c->xlog ? (log10(x) - log10(c->x0)) / (log10(c->x1) - log10(c->x0))
                       : (x - c->x0) / (c->x1 - c->x0);
    return CH_L + t * (CH_W - CH_L - CH_R);
}

static double py(const chart *c, double y) {
    return (CH_H - CH_B) - (y - c->y0) / (c->y1 - c->y0) * (CH_H - CH_T - CH_B);
}

/* 1, 2 or 5 times a power of ten, about range / target. */
static double nice_step(double range, int target) {
    double raw = range / target;
    double mag = pow(10, floor(log10(raw)));
    double r = raw / mag;
    return (r <= 1 ? 1 : r <= 2 ? 2 : r <= 5 ? 5 : 10) * mag;
}

/* The smallest 1/2/5 step multiple at or above v: the top of a linear axis. */
static double nice_max(double v) {
    if (!(v > 0) || !isfinite(v)) return 1;
    double step = nice_step(v, 5);
    return ceil(v / step - 1e-9) * step;
}

static void tick_label(char *out, size_t size, double v, double step) {
    int decimals = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    snprintf(out, size, "%.*f", decimals, v);
}

static void grid_y(FILE *f, const chart *c) {
    double step = nice_step(c->y1 - c->y0, 5);
    for (double v = c->y0; v <= c->y1 + step * 1e-6; v += step) {
        char label[32];
        double y = py(c, v);
        tick_label(label, sizeof(label), v, step);
        fprintf(f, "<line class=\"grid\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>\n", CH_L, y,
                CH_W - CH_R, y);
        fprintf(f, "<text class=\"tick\" x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
                CH_L - 6, y + 4, label);
    }
}

static void tick_x(FILE *f, double x, const char *label, int minor) {
    fprintf(f, "<line class=\"%s\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>\n",
            minor ? "grid minor" : "grid", x, CH_T, x, CH_H - CH_B);
    if (label)
        fprintf(f, "<text class=\"tick\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", x,
                CH_H - CH_B + 16, label);
}

static void grid_x(FILE *f, const chart *c) {
    char label[32];
    if (c->xlog) {
        for (double d = c->x0; d <= c->x1 * (1 + 1e-9); d *= 10) {
            snprintf(label, sizeof(label), "%g", d);
            tick_x(f, px(c, d), label, 0);
            for (int k = 2; k <= 9 && d * k < c->x1; k++)
                tick_x(f, px(c, d * k), NULL, 1);
        }
        return;
    }
    double step = nice_step(c->x1 - c->x0, 8);
    for (double v = c->x0; v <= c->x1 + step * 1e-6; v += step) {
        tick_label(label, sizeof(label), v, step);
        tick_x(f, px(c, v), label, 0);
    }
}

static void axes(FILE *f, const chart *c) {
    fprintf(f, "<rect class=\"frame\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\"/>\n", CH_L, CH_T,
            CH_W - CH_L - CH_R, CH_H - CH_T - CH_B);
    fprintf(f, "<text class=\"axis-title\" x=\"%d\" y=\"%d\" text-anchor=\"middle\">",
            (CH_L + CH_W) / 2, CH_H - 12);
    put_esc(f, c->xlabel);
    fprintf(f,
            "</text>\n<text class=\"axis-title\" text-anchor=\"middle\" "
            "transform=\"translate(18,%d) rotate(-90)\">",
            (CH_T + CH_H - CH_B) / 2);
    put_esc(f, c->ylabel);
    fputs("</text>\n", f);
}

static void plot_series(FILE *f, const chart *c, const series *s) {
    if (s->n == 1) {
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", px(c, s->x[0]),
                py(c, s->y[0]), s->color);
        return;
    }
    fprintf(f,
            "<polyline class=\"series\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"",
            s->color, s->dashed ? " stroke-dasharray=\"6 4\"" : "");
    for (size_t i = 0; i < s->n; i++)
        fprintf(f, "%s%.1f,%.1f", i ? " " : "", px(c, s->x[i]), py(c, s->y[i]));
    fputs("\"/>\n", f);
}

static void legend(FILE *f, const chart *c) {
    int x = CH_W - CH_R - 150, y = CH_T + 8;
    fprintf(f, "<rect class=\"legend\" x=\"%d\" y=\"%d\" width=\"142\" height=\"%d\"/>\n", x, y,
            (int)c->ns * 18 + 6);
    for (size_t i = 0; i < c->ns; i++) {
        int ly = y + 14 + (int)i * 18;
        fprintf(
            f,
            "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\"%s/>\n",
            x + 8, ly - 4, x + 32, ly - 4, c->s[i].color,
            c->s[i].dashed ? " stroke-dasharray=\"6 4\"" : "");
        fprintf(f, "<text x=\"%d\" y=\"%d\">", x + 38, ly);
        put_esc(f, c->s[i].name);
        fputs("</text>\n", f);
    }
}

static void chart_write(FILE *f, const chart *c) {
    size_t points = 0;
    for (size_t i = 0; i < c->ns; i++)
        points += c->s[i].n;
    fprintf(f,
            "<figure>\n<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"%s\" class=\"chart\" "
            "width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" "
            "aria-labelledby=\"%s-title\">\n<title id=\"%s-title\">",
            c->id, CH_W, CH_H, CH_W, CH_H, c->id, c->id);
    put_esc(f, c->title);
    fprintf(f, "</title>\n<text class=\"chart-title\" x=\"%d\" y=\"22\">", CH_L);
    put_esc(f, c->title);
    fputs("</text>\n", f);
    grid_y(f, c);
    grid_x(f, c);
    axes(f, c);
    if (points == 0) {
        fprintf(f,
                "<text class=\"nodata\" x=\"%d\" y=\"%d\" text-anchor=\"middle\">no data</text>\n",
                (CH_L + CH_W) / 2, (CH_T + CH_H - CH_B) / 2);
    } else {
        for (size_t i = 0; i < c->ns; i++)
            plot_series(f, c, &c->s[i]);
        for (size_t i = 0; i < c->nm; i++)
            fprintf(f,
                    "<circle class=\"mark\" cx=\"%.1f\" cy=\"%.1f\" r=\"4\"/>\n"
                    "<text class=\"mark\" x=\"%.1f\" y=\"%.1f\">%s</text>\n",
                    px(c, c->m[i].x), py(c, c->m[i].y), px(c, c->m[i].x) - 8, py(c, c->m[i].y) - 8,
                    c->m[i].label);
        legend(f, c);
    }
    fputs("</svg>\n</figure>\n", f);
}

/* ---- the three charts ----------------------------------------------------------------------- */

#define CDF_MAX_POINTS 320
#define LATENCY_FLOOR_MS 1e-3 /* a log axis cannot show 0; nothing real is faster than 1 us */

/* The quantiles the CDF is drawn through: every half percent, then ever finer into the tail
 * (1 - 10^-2.05 ... 1 - 10^-5) where the interesting latencies live, then the maximum. */
static size_t cdf_quantiles(double *q) {
    size_t n = 0;
    for (int i = 0; i <= 198; i++)
        q[n++] = i * 0.005;
    for (int j = 1; j <= 60; j++)
        q[n++] = 1 - pow(10, -2 - j / 20.0);
    q[n++] = 1;
    return n;
}

static void chart_cdf(FILE *f, const crl_bench_result *r) {
    double q[CDF_MAX_POINTS], x[CDF_MAX_POINTS], y[CDF_MAX_POINTS];
    const crl_bench_hist *h = &r->latency;
    size_t nq = cdf_quantiles(q), n = 0;
    for (size_t i = 0; h->count > 0 && i < nq; i++) {
        double v = fmax(ns_to_ms(crl_bench_hist_quantile(h, q[i])), LATENCY_FLOOR_MS);
        if (n > 0 && v == x[n - 1] && q[i] == y[n - 1]) continue;
        x[n] = v;
        y[n++] = q[i];
    }
    double lo = h->count ? fmax(ns_to_ms(h->min), LATENCY_FLOOR_MS) : 1;
    double hi = h->count ? fmax(ns_to_ms(h->max), lo) : 10;
    double x0 = pow(10, floor(log10(lo))), x1 = pow(10, ceil(log10(hi)));
    if (x1 <= x0) x1 = x0 * 10;
    static const double mq[] = {0.5, 0.99, 0.999};
    static const char *ml[] = {"p50", "p99", "p99.9"};
    mark m[3];
    for (int i = 0; i < 3; i++)
        m[i] = (mark){fmax(ns_to_ms(crl_bench_hist_quantile(h, mq[i])), LATENCY_FLOOR_MS), mq[i],
                      ml[i]};
    series s = {"responses", "#1f77b4", x, y, n, 0};
    chart c = {"latency-cdf",
               "Latency distribution (CDF)",
               "latency (ms, log scale)",
               "fraction of responses",
               1,
               x0,
               x1,
               0,
               1,
               &s,
               1,
               m,
               h->count ? 3 : 0};
    chart_write(f, &c);
}

/* Chart 2 (kind 0: p50 and p99 latency) or chart 3 (kind 1: responses and errors per second). */
static crl_status chart_time(FILE *f, const crl_bench_result *r, int kind) {
    size_t n = r->n_ticks, k = 0;
    double *buf = malloc((n ? n : 1) * 3 * sizeof(double));
    if (buf == NULL) return CRL_ENOMEM;
    double *t = buf, *a = buf + n, *b = buf + 2 * n, top = 0, prev = 0;
    for (size_t i = 0; i < n; i++) {
        const crl_bench_tick *tk = &r->ticks[i];
        double dt = tk->t_s - prev;
        prev = tk->t_s;
        if (kind == 0 && tk->done == 0) continue; /* no responses, no latency to show */
        t[k] = tk->t_s;
        a[k] = kind == 0 ? ns_to_ms(tk->p50_ns) : dt > 0 ? (double)tk->done / dt : 0;
        b[k] = kind == 0 ? ns_to_ms(tk->p99_ns) : dt > 0 ? (double)tk->errors / dt : 0;
        top = fmax(top, fmax(a[k], b[k]));
        k++;
    }
    double tx[2] = {0, prev}, ty[2] = {r->set.rate, r->set.rate};
    int target = kind == 1 && r->set.mode == CRL_BENCH_OPEN && r->set.rate > 0 && k > 0;
    if (target) top = fmax(top, r->set.rate);
    series s[3] = {{kind ? "responses/s" : "p50", "#1f77b4", t, a, k, 0},
                   {kind ? "errors/s" : "p99", "#d62728", t, b, k, 0},
                   {"target rate", "#7f7f7f", tx, ty, 2, 1}};
    chart c = {kind ? "throughput-time" : "latency-time",
               kind ? "Throughput over time" : "Latency over time (per second)",
               "time since the end of warm-up (s)",
               kind ? "per second" : "latency (ms)",
               0,
               0,
               nice_max(prev),
               0,
               nice_max(top * 1.05),
               s,
               target ? 3 : 2,
               NULL,
               0};
    chart_write(f, &c);
    free(buf);
    return CRL_OK;
}

/* ---- tables --------------------------------------------------------------------------------- */

static void group(FILE *f, const char *title) {
    fprintf(f, "<tr class=\"group\"><th colspan=\"3\">%s</th></tr>\n", title);
}

/* One row: label and value are escaped; unit is trusted markup (constants with entities). */
static void row(FILE *f, const char *label, const char *value, const char *unit) {
    fputs("<tr><th scope=\"row\">", f);
    put_esc(f, label);
    fputs("</th><td class=\"num\">", f);
    put_esc(f, value);
    fprintf(f, "</td><td>%s</td></tr>\n", unit);
}

static void row_u64(FILE *f, const char *label, uint64_t v, const char *unit) {
    char s[32];
    snprintf(s, sizeof(s), "%" PRIu64, v);
    row(f, label, s, unit);
}

static void row_dbl(FILE *f, const char *label, double v, int decimals, const char *unit) {
    char s[64];
    snprintf(s, sizeof(s), "%.*f", decimals, v);
    row(f, label, s, unit);
}

static void settings_table(FILE *f, const crl_bench_result *r) {
    const crl_bench_settings *s = &r->set;
    char v[640];
    fputs("<h2>Settings</h2>\n<table class=\"settings\">\n", f);
    snprintf(v, sizeof(v), "%s %s", s->method, s->path);
    row(f, "request", v, s->http2 ? "HTTP/2 (h2c)" : "HTTP/1.1 keep-alive");
    row(f, "workload", s->workload_desc, "");
    if (s->mode == CRL_BENCH_OPEN) {
        snprintf(v, sizeof(v), "open loop, %g req/s, %s arrivals", s->rate,
                 s->arrival == CRL_BENCH_POISSON ? "Poisson" : "constant");
        row(f, "mode", v, "latency from each request's intended send time");
    } else {
        snprintf(v, sizeof(v), "closed loop, concurrency %d", s->concurrency);
        row(f, "mode", v, "");
    }
    row_dbl(f, "connections", s->connections, 0, "");
    row_dbl(f, "threads", s->threads, 0, "");
    if (s->requests > 0)
        row_u64(f, "requests", s->requests, "measured");
    else
        row_dbl(f, "duration", s->duration_s, 1, "s measured");
    row_dbl(f, "warm-up", s->warmup_s, 1, "s, excluded from every figure");
    row_dbl(f, "timeout", s->timeout_s, 1, "s per request");
    if (s->predict) {
        snprintf(v, sizeof(v), "%d x %d sensors, %s, seed %" PRIu64, s->batch, s->sensors,
                 s->deterministic ? "deterministic" : "stochastic", s->seed);
        row(f, "observations per request", v, "");
    }
    if (s->body_file[0]) row(f, "body file", s->body_file, "");
    fputs("</table>\n", f);
}

static void counts_rows(FILE *f, const crl_bench_result *r) {
    static const char *kind[CRL_BENCH_ERR_KINDS] = {"connect", "reset", "closed", "timeout",
                                                    "protocol"};
    uint64_t transport = 0;
    for (int i = 0; i < CRL_BENCH_ERR_KINDS; i++)
        transport += r->transport[i];
    group(f, "Requests");
    row_u64(f, "sent", r->sent, "");
    row_u64(f, "responses", r->done, "any status");
    row_u64(f, "ok", r->ok, "2xx");
    row_u64(f, "non-2xx", r->done >= r->ok ? r->done - r->ok : 0, "");
    row_u64(f, "transport errors", transport, "");
    row_dbl(f, "error rate", r->error_rate_percent, 3, "%");
    group(f, "Responses by status");
    for (int code = 0; code < 600; code++) {
        char label[24]; /* room for any int: GCC cannot see that code < 600 */
        snprintf(label, sizeof(label), "HTTP %d", code);
        if (r->status[code]) row_u64(f, label, r->status[code], "");
    }
    group(f, "Transport errors by kind");
    for (int i = 0; i < CRL_BENCH_ERR_KINDS; i++)
        row_u64(f, kind[i], r->transport[i], "");
}

static void figures_table(FILE *f, const crl_bench_result *r) {
    static const double q[] = {0.5, 0.9, 0.95, 0.99, 0.999};
    static const char *ql[] = {"p50", "p90", "p95", "p99", "p99.9"};
    const crl_bench_hist *h = &r->latency;
    const crl_bench_server *sv = &r->server;
    fputs("<h2>Figures</h2>\n<table class=\"figures\">\n", f);
    counts_rows(f, r);
    group(f, "Throughput");
    row_dbl(f, "measured time", r->elapsed_s, 2, "s");
    row_dbl(f, "requests/s", r->rps, 1, "responses per second, any status");
    row_dbl(f, "observations/s", r->observations_per_s, 1, "in 2xx responses");
    group(f, "Latency");
    row_dbl(f, "min", ns_to_ms(h->min), 3, "ms");
    row_dbl(f, "mean", crl_bench_hist_mean(h) / 1e6, 3, "ms");
    for (int i = 0; i < 5; i++)
        row_dbl(f, ql[i], ns_to_ms(crl_bench_hist_quantile(h, q[i])), 3, "ms");
    row_dbl(f, "max", ns_to_ms(h->max), 3, "ms");
    group(f, "Server");
    if (sv->known) {
        row(f, "measured from", sv->source, "");
        row_dbl(f, "RSS before", sv->rss_before_mb, 1, "MB");
        row_dbl(f, "RSS after", sv->rss_after_mb, 1, "MB");
        row_dbl(f, "RSS growth", sv->rss_growth_per_1000_kb, 1, "KB per 1000 requests");
        row_dbl(f, "CPU", sv->cpu_s, 2, "s");
        row_dbl(f, "CPU per request", sv->cpu_us_per_request, 1, "&#181;s");
    } else {
        row(f, "server figures", "not measured", "no /metrics and no --pid");
    }
    fputs("</table>\n", f);
}

/* ---- the page ------------------------------------------------------------------------------- */

static const char CSS[] =
    "body{font:14px/1.45 system-ui,sans-serif;color:#222;max-width:980px;margin:24px auto;"
    "padding:0 16px}\n"
    "h1{font-size:20px;margin-bottom:4px}h2{font-size:16px;margin-top:28px}\n"
    ".meta{color:#555;margin-top:0}\n"
    "table{border-collapse:collapse;margin:8px 0}\n"
    "th,td{padding:3px 12px;border-bottom:1px solid #e2e2e2;text-align:left;font-weight:normal}\n"
    "td.num{text-align:right;font-variant-numeric:tabular-nums}\n"
    "tr.group th{background:#f2f2f2;font-weight:bold}\n"
    "figure{margin:16px 0}\n"
    "svg.chart{font:12px sans-serif;background:#fff}\n"
    "svg .grid{stroke:#e6e6e6}svg .minor{stroke:#f3f3f3}\n"
    "svg .frame{fill:none;stroke:#888}\n"
    "svg .chart-title{font-size:14px;font-weight:bold}\n"
    "svg .tick{fill:#444}svg .axis-title{fill:#222}svg .nodata{fill:#999;font-size:16px}\n"
    "svg .legend{fill:#fff;fill-opacity:0.85;stroke:#ccc}\n"
    "svg circle.mark{fill:#fff;stroke:#222}svg text.mark{fill:#222;text-anchor:end}\n";

static void header(FILE *f, const crl_bench_result *r) {
    fputs("<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head>\n"
          "<meta charset=\"utf-8\"/>\n<title>carlarl bench: ",
          f);
    put_esc(f, r->set.url);
    fprintf(f, "</title>\n<style>\n%s</style>\n</head>\n<body>\n<h1>carlarl bench: ", CSS);
    put_esc(f, r->set.url);
    fputs("</h1>\n<p class=\"meta\">started ", f);
    put_esc(f, r->started_at[0] ? r->started_at : "(unknown)");
    fputs(" &#183; carlarl ", f);
    put_esc(f, r->carlarl_version[0] ? r->carlarl_version : "(unknown)");
    fputs(" &#183; ", f);
    put_esc(f, r->set.workload_desc);
    fputs("</p>\n", f);
}

crl_status crl_bench_write_report(const char *path, const crl_bench_result *r, crl_err *err) {
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return crl_err_set(err, CRL_EIO, "%s: cannot open for writing: %s", path, strerror(errno));
    header(f, r);
    settings_table(f, r);
    figures_table(f, r);
    fputs("<h2>Charts</h2>\n", f);
    chart_cdf(f, r);
    crl_status st = chart_time(f, r, 0);
    if (st == CRL_OK) st = chart_time(f, r, 1);
    fputs("</body>\n</html>\n", f);
    int bad = ferror(f);
    if (fclose(f) != 0) bad = 1;
    if (st != CRL_OK) return crl_err_set(err, st, "%s: out of memory", path);
    if (bad) return crl_err_set(err, CRL_EIO, "%s: write error: %s", path, strerror(errno));
    return CRL_OK;
}
