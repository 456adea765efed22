/* server.c: the server's side of a bench run: its resident memory and CPU time, read before and
 * after the measured window, from its own GET /metrics (process_resident_memory_bytes,
 * process_cpu_seconds_total: any Prometheus-style server has them) or, with --server-pid, from
 * /proc/PID/stat and /proc/PID/status (a server on this machine that exports neither). */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "bench/internal.h"
#include "core/buf.h"

int crl_bench__prom_value(const char *text, const char *name, double *out) {
    size_t n = strlen(name);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, name, n) != 0 || (p[n] != ' ' && p[n] != '{')) continue;
        const char *v = p + n;
        if (*v == '{') { /* labels: the value follows the closing brace */
            v = strchr(v, '}');
            if (v == NULL) return -1;
            v++;
        }
        char *end;
        double d = strtod(v, &end);
        if (end == v) return -1;
        *out = d;
        return 0;
    }
    return -1;
}

/* GET /metrics over one short blocking connection; the body lands in b. */
static crl_status get_metrics(const crl_bench_settings *s, crl_buf *b, crl_err *err) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    char port[16];
    snprintf(port, sizeof(port), "%d", s->port);
    if (getaddrinfo(s->host, port, &hints, &res) != 0 || res == NULL)
        return crl_err_set(err, CRL_EIO, "cannot resolve %s", s->host);
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {.tv_sec = 5};
    crl_status st = CRL_OK;
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    }
    if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
        st = crl_err_set(err, CRL_EIO, "GET /metrics: cannot connect: %s", strerror(errno));
        goto out;
    }
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "GET /metrics HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n", s->host,
                     s->port);
    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
        st = crl_err_set(err, CRL_EIO, "GET /metrics: cannot send");
        goto out;
    }
    char chunk[16384];
    ssize_t got;
    while ((got = recv(fd, chunk, sizeof(chunk), 0)) > 0)
        if (crl_buf_append(b, chunk, (size_t)got) != CRL_OK) break;
    if (b->len < 12 || strncmp(b->data, "HTTP/1.", 7) != 0 || strncmp(b->data + 9, "200", 3) != 0)
        st = crl_err_set(err, CRL_EIO, "GET /metrics: no 200 response");
out:
    if (fd >= 0) close(fd);
    freeaddrinfo(res);
    return st;
}

static crl_status sample_metrics(const crl_bench_settings *s, crl_bench_sample *out, crl_err *err) {
    crl_buf b;
    crl_buf_init(&b, 16u << 20);
    crl_status st = get_metrics(s, &b, err);
    if (st == CRL_OK &&
        (crl_bench__prom_value(b.data, "process_resident_memory_bytes", &out->rss_bytes) != 0 ||
         crl_bench__prom_value(b.data, "process_cpu_seconds_total", &out->cpu_s) != 0))
        st = crl_err_set(err, CRL_ENOTFOUND,
                         "GET /metrics has no process_resident_memory_bytes and "
                         "process_cpu_seconds_total (use --server-pid)");
    crl_buf_free(&b);
    out->ok = st == CRL_OK;
    return st;
}

/* /proc/PID/stat: utime and stime are fields 14 and 15, counted after the ")" that ends the
 * command name (which may itself hold spaces and parentheses). */
static crl_status sample_pid(int pid, crl_bench_sample *out, crl_err *err) {
    char path[64], buf[4096];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) return crl_err_set(err, CRL_ENOTFOUND, "%s: %s", path, strerror(errno));
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    unsigned long long ut = 0, stime = 0;
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &stime) != 2)
        return crl_err_set(err, CRL_EFORMAT, "%s: unexpected format", path);
    out->cpu_s = (double)(ut + stime) / (double)sysconf(_SC_CLK_TCK);
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    if ((f = fopen(path, "r")) == NULL)
        return crl_err_set(err, CRL_ENOTFOUND, "%s: %s", path, strerror(errno));
    double kb = -1;
    while (fgets(buf, sizeof(buf), f))
        if (strncmp(buf, "VmRSS:", 6) == 0) kb = strtod(buf + 6, NULL);
    fclose(f);
    if (kb < 0) return crl_err_set(err, CRL_EFORMAT, "%s: no VmRSS", path);
    out->rss_bytes = kb * 1024;
    out->ok = 1;
    return CRL_OK;
}

crl_status crl_bench__server_sample(const crl_bench_settings *s, int pid, crl_bench_sample *out,
                                    crl_err *err) {
    memset(out, 0, sizeof(*out));
    return pid > 0 ? sample_pid(pid, out, err) : sample_metrics(s, out, err);
}

void crl_bench__server_figures(const crl_bench_sample *before, const crl_bench_sample *after,
                               uint64_t requests, int pid, crl_bench_server *out) {
    memset(out, 0, sizeof(*out));
    if (!before->ok || !after->ok) return;
    out->known = 1;
    if (pid > 0)
        snprintf(out->source, sizeof(out->source), "pid %d", pid);
    else
        snprintf(out->source, sizeof(out->source), "metrics");
    out->rss_before_mb = before->rss_bytes / (1024.0 * 1024.0);
    out->rss_after_mb = after->rss_bytes / (1024.0 * 1024.0);
    out->cpu_s = after->cpu_s - before->cpu_s;
    if (requests) {
        out->rss_growth_per_1000_kb =
            (after->rss_bytes - before->rss_bytes) / 1024.0 / (double)requests * 1000.0;
        out->cpu_us_per_request = out->cpu_s * 1e6 / (double)requests;
    }
}
