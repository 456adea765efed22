/* server.c: start-up, worker threads with their own h2o loops and SO_REUSEPORT listeners, and
 * graceful shutdown (dependency-lab.md §9.5). */
#include "server/internal.h"

#include <errno.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/time.h"
#include "hw/hw.h"
#include "kernels/kernels.h"
#include "server/server.h"

crl_server_t crl__srv;

#ifndef CRL_GIT_SHA
#define CRL_GIT_SHA "unknown"
#endif

/* ---- listeners ----------------------------------------------------------------------------- */

/* reuseport: the workers' listeners share the main port (SO_REUSEPORT); the metrics listener is
 * alone, so another process already on its port is an error rather than a silent share. */
static int open_listener(const char *host, int port, int reuseport, crl_err *err) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        crl_err_set(err, CRL_EINVAL, "cannot resolve listen address '%s': %s", host,
                    gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
        crl_err_set(err, CRL_EIO, "cannot listen on %s:%d: %s", host, port, strerror(errno));
        if (fd >= 0) close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static int bound_port(int fd) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) return -1;
    if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* ---- worker threads ------------------------------------------------------------------------ */

static void on_conn_close(void *data) {
    crl_worker_t *w = data;
    w->nconns--;
    crl_metrics_conn(w->metrics, -1);
}

static void on_accept(h2o_socket_t *listener, const char *errstr) {
    crl_worker_t *w = listener->data;
    if (errstr != NULL) return;
    h2o_accept_ctx_t *actx =
        listener == w->metrics_listener ? &w->metrics_accept_ctx : &w->accept_ctx;
    /* Take what the backlog holds, a bounded number per wake-up so one loop is not starved. */
    for (int i = 0; i < 16; i++) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL) return;
        w->nconns++;
        crl_metrics_conn(w->metrics, 1);
        sock->on_close.cb = on_conn_close;
        sock->on_close.data = w;
        h2o_accept(actx, sock);
    }
}

static void on_ctl(h2o_multithread_receiver_t *r, h2o_linklist_t *messages) {
    (void)r;
    (void)messages; /* the wake-up itself is the message; `stop` says what to do */
}

#define CRL_SOCKET_BUFFER ((size_t)64 << 10)

static void *worker_main(void *arg) {
    crl_worker_t *w = arg;
    /* This thread's socket input buffers (h2o keeps the prototype per thread): 64 KiB, so that a
     * request of up to ~60 KiB (about 600 observations of the example schema) is read without
     * the buffer growing, and growing means a malloc and a free per request. Emptied buffers go
     * back to h2o's per-thread recycle list (16 kept). Larger requests still grow it, once per
     * request. */
    if (h2o_socket_buffer_prototype._initial_buf.capacity < CRL_SOCKET_BUFFER)
        h2o_socket_buffer_prototype._initial_buf.capacity = CRL_SOCKET_BUFFER;
    h2o_context_init(&w->ctx, h2o_evloop_create(), &crl__srv.config);
    w->accept_ctx.ctx = &w->ctx;
    w->accept_ctx.hosts = crl__srv.config.hosts;
    w->queue = h2o_multithread_create_queue(w->ctx.loop);
    h2o_multithread_register_receiver(w->queue, &w->ctl, on_ctl);
    h2o_multithread_register_receiver(w->queue, &w->batch_rx, crl_server__batch_rx);
    if (crl__srv.batch) {
        h2o_timeout_init(w->ctx.loop, &w->deadlines, (uint64_t)crl__srv.cfg->batching.timeout_ms);
        w->deadlines_on = 1;
    }
    atomic_store_explicit(&w->ready, 1, memory_order_release);
    w->listener = h2o_evloop_socket_create(w->ctx.loop, w->fd, H2O_SOCKET_FLAG_DONT_READ);
    w->listener->data = w;
    h2o_socket_read_start(w->listener, on_accept);
    if (w->mfd >= 0) {
        w->metrics_accept_ctx.ctx = &w->ctx;
        w->metrics_accept_ctx.hosts = crl__srv.metrics_hosts;
        w->metrics_listener =
            h2o_evloop_socket_create(w->ctx.loop, w->mfd, H2O_SOCKET_FLAG_DONT_READ);
        w->metrics_listener->data = w;
        h2o_socket_read_start(w->metrics_listener, on_accept);
    }

    /* Take the model and plan this worker's buffers now, not on the first request (and lock them
     * into RAM when optimization.memory_pinning is on). */
    crl_server__refresh_model(w);
    /* h2o_evloop_run returns after each poll iteration: the requests this iteration deferred go
     * to the batcher in one hand-over (dependency-lab.md §9.1, b'). */
    while (!atomic_load(&w->stop)) {
        h2o_evloop_run(w->ctx.loop, INT32_MAX);
        if (w->pend_head) crl_server__flush(w);
    }

    /* Graceful shutdown: stop accepting, tell HTTP/2 peers (GOAWAY), let HTTP/1 connections end
     * after their current response, and close idle keep-alive connections within a second. */
    h2o_socket_read_stop(w->listener);
    h2o_socket_close(w->listener);
    w->listener = NULL;
    if (w->metrics_listener) {
        h2o_socket_read_stop(w->metrics_listener);
        h2o_socket_close(w->metrics_listener);
        w->metrics_listener = NULL;
    }
    h2o_context_request_shutdown(&w->ctx);
    if (w->ctx.http1.req_timeout.timeout > 1000) w->ctx.http1.req_timeout.timeout = 1000;
    uint64_t deadline = crl_time_mono_ns() + 10ull * 1000000000ull;
    /* Jobs still at the batcher must come back before the queue they post to goes away. */
    if (w->pend_head) crl_server__flush(w);
    while ((w->nconns != 0 || w->ninflight != 0) && crl_time_mono_ns() < deadline) {
        h2o_evloop_run(w->ctx.loop, 10);
        if (w->pend_head) crl_server__flush(w);
    }
    if (w->nconns != 0 || w->ninflight != 0)
        CRL_WARN("shutdown",
                 "worker %zu: %zu connection(s) and %zu batched request(s) still open after 10 s; "
                 "closing",
                 w->index, w->nconns, w->ninflight);
    w->drained = w->nconns == 0 && w->ninflight == 0;
    return NULL;
}

/* Releases a worker's h2o context and loop. Runs on the main thread after the worker joined, so
 * no message can still be in flight to its queue (dependency-lab.md §9.5 lists the traps). A
 * worker that could not drain its connections keeps its context: they still point into it. */
static void worker_dispose(crl_worker_t *w) {
    if (w->ctx.loop == NULL || !w->drained) return;
    h2o_evloop_t *loop = w->ctx.loop;
    h2o_timeout_unlink(&w->ctx.http2._graceful_shutdown_timeout);
    h2o_multithread_unregister_receiver(w->queue, &w->ctl);
    h2o_multithread_unregister_receiver(w->queue, &w->batch_rx);
    if (w->deadlines_on) h2o_timeout_dispose(loop, &w->deadlines); /* drained: none linked */
    h2o_multithread_destroy_queue(w->queue);
    h2o_context_dispose(&w->ctx);
    h2o_evloop_destroy(loop);
}

static crl_status worker_init(crl_worker_t *w, size_t index, int fd, crl_err *err) {
    memset(w, 0, sizeof(*w));
    w->index = index;
    w->fd = fd;
    w->mfd = -1;
    w->metrics = crl_metrics_shard(index);
    crl_buf_init(&w->scratch, 64u << 20);
    crl_buf_init(&w->details, 1u << 20);
    if (getrandom(w->rng, sizeof(w->rng), 0) != (ssize_t)sizeof(w->rng)) {
        w->rng[0] = crl_time_mono_ns() ^ ((uint64_t)index << 32);
        w->rng[1] = (uint64_t)getpid() * 0x9E3779B97F4A7C15ull;
    }
    if (crl_predict_parser_new(&w->parser) != CRL_OK)
        return crl_err_set(err, CRL_ENOMEM, "out of memory");
    crl_status st = crl_cache_local_new(crl__srv.cache, &w->cache, err);
    if (st != CRL_OK) return st;
    w->gen = crl_registry_generation() - 1; /* forces the first refresh */
    return CRL_OK;
}

static void worker_free(crl_worker_t *w) {
    if (w->drained) crl_server__deferred_free(w); /* else a job may still point at a record */
    crl_server__slabs_free(w);
    crl_predict_parser_free(w->parser);
    crl_cache_local_free(w->cache);
    crl_buf_free(&w->scratch);
    crl_buf_free(&w->details);
    crl_nn_ws_free(w->ws);
    free(w->x);
    free(w->y);
    free(w->actions);
    crl_model_unref(w->model);
}

/* ---- h2o configuration --------------------------------------------------------------------- */

/* Errors h2o answers itself before any handler runs (413 for an oversized body) are bound to the
 * host's fallback path: give them a request id and a process time too. (A request line h2o cannot
 * parse at all gets a canned "400 Bad Request" written straight to the socket, without filters.) */
static void on_fallback_response(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot) {
    (void)self;
    crl_rctx_t rc = {.w = (crl_worker_t *)req->conn->ctx, .req = req};
    crl_server__request_id(&rc);
    char *id = h2o_mem_alloc_pool(&req->pool, rc.rid_len);
    memcpy(id, rc.rid, rc.rid_len);
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-request-id"), 0, NULL, id,
                          rc.rid_len);
    if (crl__srv.monitoring) {
        crl_server__trace(&rc);
        char *tp = h2o_mem_alloc_pool(&req->pool, CRL_TRACEPARENT_LEN);
        memcpy(tp, rc.tp, CRL_TRACEPARENT_LEN);
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("traceparent"), 0, NULL, tp,
                              CRL_TRACEPARENT_LEN);
    }
    struct timeval now;
    gettimeofday(&now, NULL);
    double secs = (double)(now.tv_sec - req->timestamps.request_begin_at.tv_sec) +
                  (double)(now.tv_usec - req->timestamps.request_begin_at.tv_usec) * 1e-6;
    char *pt = h2o_mem_alloc_pool(&req->pool, 32);
    int n = snprintf(pt, 32, "%.6f", secs > 0 ? secs : 0.0);
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-process-time"), 0, NULL, pt,
                          (size_t)n);
    if (crl_log_access_enabled())
        crl_server__log_access(&rc, req->res.status, (uint64_t)((secs > 0 ? secs : 0.0) * 1e9));
    h2o_setup_next_ostream(req, slot);
}

static void configure_h2o(const crl_config_t *c) {
    h2o_config_init(&crl__srv.config);
    crl__srv.config.max_request_entity_size = (size_t)c->server.max_request_size;
    crl__srv.config.http1.req_timeout = (uint64_t)(c->server.request_timeout * 1000.0);
    crl__srv.config.http2.idle_timeout = 30000;
    crl__srv.config.http2.graceful_shutdown_timeout = 5000;
    crl__srv.config.server_name = h2o_iovec_init(H2O_STRLIT("carlarl"));
    h2o_hostconf_t *host =
        h2o_config_register_host(&crl__srv.config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_filter_t *fallback = h2o_create_filter(&host->fallback_path, sizeof(*fallback));
    fallback->on_setup_ostream = on_fallback_response;
    crl__srv.metrics_hosts[0] = host;
    crl__srv.metrics_hosts[1] = NULL;
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *handler = h2o_create_handler(path, sizeof(*handler));
    handler->on_req = crl_server__on_req;
    if (c->server.gzip_min_size > 0) {
        h2o_compress_args_t args = {.min_size = (size_t)c->server.gzip_min_size,
                                    .gzip = {.quality = 1},
                                    .brotli = {.quality = -1}};
        h2o_compress_register(path, &args);
    }
}

static int online_cpus(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static crl_log_level log_level_of(const crl_config_t *c) {
    return (crl_log_level)((c->logging.level + 1) * 10);
}

/* logging.*: all three are reloadable. */
static void apply_logging(const crl_config_t *c) {
    crl_log_set_level(log_level_of(c));
    crl_log_set_format((crl_log_format)c->logging.format);
    crl_log_set_access(c->logging.access_log);
}

crl_status crl_server_check(const crl_config_t *c, crl_err *err) {
    if (c->model.device == CRL_DEVICE_CUDA)
        return crl_err_set(err, CRL_EUNSUPPORTED,
                           "%s: model.device: cuda is not available: this build has no CUDA "
                           "backend (use cpu or auto)",
                           crl_config_where(c, "model", "device"));
    if (c->model.device == CRL_DEVICE_MPS)
        return crl_err_set(err, CRL_EUNSUPPORTED,
                           "%s: model.device: mps is not available: Metal exists only on Apple "
                           "silicon under macOS (use cpu or auto)",
                           crl_config_where(c, "model", "device"));
    crl_status st = crl_server_check_precision(c, err);
    if (st != CRL_OK) return st;
    if (c->monitoring.metrics_port != 0 && c->monitoring.metrics_port == c->server.port)
        return crl_err_set(err, CRL_EINVAL,
                           "%s: monitoring.metrics_port: %ld is server.port too; the metrics "
                           "listener needs a port of its own (0: metrics on server.port)",
                           crl_config_where(c, "monitoring", "metrics_port"),
                           c->monitoring.metrics_port);
    cpu_set_t set;
    if (c->server.worker_cpus[0] && crl_cpulist_parse(c->server.worker_cpus, &set, err) != CRL_OK)
        return crl_err_prefix(err, CRL_EINVAL, "%s: server.worker_cpus",
                              crl_config_where(c, "server", "worker_cpus"));
    if (c->optimization.compute_cpus[0] &&
        crl_cpulist_parse(c->optimization.compute_cpus, &set, err) != CRL_OK)
        return crl_err_prefix(err, CRL_EINVAL, "%s: optimization.compute_cpus",
                              crl_config_where(c, "optimization", "compute_cpus"));
    return CRL_OK;
}

static unsigned allowed_isas(const crl_config_t *c) {
    unsigned allowed = crl_kernels_isas_for(crl_hw_cpu_features());
    if (!c->optimization.enable_avx || !c->optimization.enable_avx2) allowed &= ~CRL_ISA_AVX2;
    if (!c->optimization.enable_avx || !c->optimization.enable_avx512) allowed &= ~CRL_ISA_AVX512;
    if (!c->optimization.enable_neon) allowed &= ~CRL_ISA_NEON;
    return allowed;
}

/* float32 always; bfloat16 where the avx512 kernels with bf16 entries will be chosen (the same
 * conditions as crl_kernels_choose, checked without choosing); float16 and int8 never. */
crl_status crl_server_check_precision(const crl_config_t *c, crl_err *err) {
    const char *where = crl_config_where(c, "model", "precision");
    if (c->model.precision == CRL_PRECISION_FLOAT32) return CRL_OK;
    if (c->model.precision != CRL_PRECISION_BFLOAT16)
        return crl_err_set(err, CRL_EUNSUPPORTED,
                           "%s: model.precision: %s is not supported yet: carlarl's kernels "
                           "compute in float32, or in bfloat16 on CPUs with AVX512_BF16",
                           where, crl_config_precision_name(c->model.precision));
    if (!(crl_hw_cpu_features() & CRL_CPU_AVX512BF16))
        return crl_err_set(err, CRL_EUNSUPPORTED,
                           "%s: model.precision: bfloat16 needs a CPU with AVX512_BF16 (the "
                           "avx512_bf16 flag of /proc/cpuinfo, `carlarl hwinfo`); this one lacks "
                           "it (use float32)",
                           where);
    const unsigned need = CRL_ISA_AVX512 | CRL_ISA_AVX512_BF16;
    int forced_other =
        strcmp(c->optimization.isa, "auto") != 0 && strcmp(c->optimization.isa, "avx512") != 0;
    if ((allowed_isas(c) & need) != need || forced_other)
        return crl_err_set(err, CRL_EUNSUPPORTED,
                           "%s: model.precision: bfloat16 runs on the avx512 kernels only, and "
                           "optimization.enable_avx / enable_avx512 / isa (%s) rule them out",
                           where, c->optimization.isa);
    return CRL_OK;
}

const crl_kernels_t *crl_server_choose_kernels(const crl_config_t *c) {
    const char *force = strcmp(c->optimization.isa, "auto") == 0 ? NULL : c->optimization.isa;
    const crl_kernels_t *k = crl_kernels_choose(allowed_isas(c), force);
    crl_model_set_precision(c->model.precision == CRL_PRECISION_BFLOAT16 ? CRL_NN_PRECISION_BF16
                                                                         : CRL_NN_PRECISION_F32);
    return k;
}

/* CPU i of a cpu list, round robin. */
static int nth_cpu(const cpu_set_t *set, int i) {
    int n = CPU_COUNT(set), k = 0;
    if (n == 0) return -1;
    i %= n;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
        if (CPU_ISSET(cpu, set) && k++ == i) return cpu;
    return -1;
}

/* Pins worker i as server.worker_cpus says (round robin over the list). */
static void pin_workers(const crl_config_t *c, crl_worker_t *workers, int n) {
    cpu_set_t set;
    if (!c->server.worker_cpus[0] || crl_cpulist_parse(c->server.worker_cpus, &set, NULL) != CRL_OK)
        return;
    for (int i = 0; i < n; i++) {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(nth_cpu(&set, i), &one);
        crl_err err = {{0}};
        if (crl_hw_pin_thread(workers[i].tid, &one, &err) != CRL_OK)
            CRL_WARN("affinity", "worker %d: %s", i, err.msg);
    }
}

/* optimization.compute_threads: the helper threads that share large batches with the workers.
 * Created after the NUMA binding (they inherit it) and before any model loads (each model plans
 * a workspace per helper). Helper i runs on the i-th CPU of optimization.compute_cpus, or anywhere
 * in server.worker_cpus when only that is set. */
static crl_status start_pool(const crl_config_t *c, crl_err *err) {
    if (c->optimization.compute_threads <= 1) return CRL_OK;
    if (crl_pool_new((size_t)c->optimization.compute_threads, &crl__srv.pool) != CRL_OK)
        return crl_err_set(err, CRL_ENOMEM,
                           "optimization.compute_threads: cannot start %ld threads",
                           c->optimization.compute_threads);
    const char *list =
        c->optimization.compute_cpus[0] ? c->optimization.compute_cpus : c->server.worker_cpus;
    cpu_set_t set;
    if (!list[0] || crl_cpulist_parse(list, &set, NULL) != CRL_OK) return CRL_OK;
    for (size_t i = 0; i + 1 < crl_pool_threads(crl__srv.pool); i++) {
        cpu_set_t one = set;
        if (c->optimization.compute_cpus[0]) {
            CPU_ZERO(&one);
            CPU_SET(nth_cpu(&set, (int)i), &one);
        }
        crl_err perr = {{0}};
        if (crl_hw_pin_thread(crl_pool_helper(crl__srv.pool, i), &one, &perr) != CRL_OK)
            CRL_WARN("affinity", "compute helper %zu: %s", i, perr.msg);
    }
    return CRL_OK;
}

static void on_batch(void *ctx, size_t rows, uint64_t ns) {
    (void)ns;
    crl_metrics_batch(ctx, rows);
}

/* batching.enabled: the batcher thread, pinned to batching.cpus, else optimization.compute_cpus,
 * else anywhere in server.worker_cpus. */
static crl_status start_batcher(const crl_config_t *c, crl_err *err) {
    const long max = c->batching.max_batch_size;
    crl_batch_opts_t o = {.max_batch_size = (size_t)max,
                          .max_queue_delay_us = (uint64_t)c->batching.max_queue_delay_us,
                          .max_queue_rows = (size_t)c->batching.max_queue_rows,
                          .on_batch = c->monitoring.enabled ? on_batch : NULL,
                          .on_batch_ctx = crl__srv.batch_metrics};
    if (c->batching.overflow_status != 429 && c->batching.overflow_status != 503)
        return crl_err_set(err, CRL_EINVAL, "batching.overflow_status: must be 429 or 503, got %ld",
                           c->batching.overflow_status);
    const crl_strlist_t *pl = &c->batching.preferred_batch_sizes;
    for (size_t i = 0; i < pl->n && pl->items[i][0]; i++) {
        char *end = NULL;
        long v = strtol(pl->items[i], &end, 10);
        if (end == pl->items[i] || *end || v < 1 || v > max ||
            o.n_preferred == CRL_BATCH_MAX_PREFERRED)
            return crl_err_set(err, CRL_EINVAL,
                               "batching.preferred_batch_sizes: \"%s\" is not a size from 1 to "
                               "max_batch_size (%ld), or more than %d sizes",
                               pl->items[i], max, CRL_BATCH_MAX_PREFERRED);
        o.preferred[o.n_preferred++] = (size_t)v;
    }
    /* A test hook, not a setting (tests/integration/test_deadline.py): stall the first forward
     * pass, to show that deadlines hold without the batcher. */
    const char *stall = getenv("CRL_TEST_BATCH_STALL_MS");
    if (stall && *stall) {
        o.test_stall_ms = strtoull(stall, NULL, 10);
        CRL_WARN("batching",
                 "test hook CRL_TEST_BATCH_STALL_MS: the first forward pass stalls "
                 "for %llu ms",
                 (unsigned long long)o.test_stall_ms);
    }
    crl_status st = crl_batch_new(&o, &crl__srv.batch, err);
    if (st != CRL_OK) return st;
    const char *list = c->batching.cpus[0]               ? c->batching.cpus
                       : c->optimization.compute_cpus[0] ? c->optimization.compute_cpus
                                                         : c->server.worker_cpus;
    cpu_set_t set;
    if (list[0] && crl_cpulist_parse(list, &set, NULL) == CRL_OK) {
        crl_err perr = {{0}};
        if (crl_hw_pin_thread(crl_batch_thread(crl__srv.batch), &set, &perr) != CRL_OK)
            CRL_WARN("affinity", "batcher: %s", perr.msg);
    }
    CRL_INFO("batching",
             "dynamic batcher: max_batch_size=%ld, max_queue_delay_us=%ld, max_queue_rows=%ld, "
             "timeout_ms=%ld, cpus=%s",
             max, c->batching.max_queue_delay_us, c->batching.max_queue_rows,
             c->batching.timeout_ms, list[0] ? list : "any");
    return CRL_OK;
}

/* SIGHUP: re-read the files; reloadable settings apply now, the others after a restart. A file
 * that does not load leaves everything as it was. Old configurations stay allocated until exit,
 * because a worker may still be reading one. */
static void reload(int argc, char **argv, crl_config_t **history, size_t *n_history) {
    const crl_config_t *cur = atomic_load(&crl__srv.live);
    crl_config_t *next = malloc(sizeof(*next));
    crl_err err = {{0}};
    if (next == NULL || *n_history == 64 ||
        crl_config_reload(cur, next, argc, argv, &err) != CRL_OK) {
        CRL_ERROR("config_reload", "reload failed, keeping the running configuration: %s",
                  next == NULL || *n_history == 64 ? "too many reloads" : err.msg);
        free(next);
        return;
    }
    int restart = crl_config_diff(cur, next);
    apply_logging(next);
    atomic_store_explicit(&crl__srv.live, next, memory_order_release);
    history[(*n_history)++] = next;
    CRL_INFO("config_reload", "configuration reloaded%s",
             restart ? "; some changes need a restart" : "");
}

crl_status crl_server_run(const crl_config_t *c, int argc, char **argv, crl_err *err) {
    crl_status st = CRL_OK;
    memset(&crl__srv, 0, sizeof(crl__srv));
    crl__srv.cfg = c;
    atomic_store(&crl__srv.live, c);
    crl__srv.started_wall = crl_time_wall();
    crl__srv.started_mono = crl_time_mono_ns();
    crl__srv.git = *c->server.git_sha ? c->server.git_sha : CRL_GIT_SHA;
    crl__srv.monitoring = c->monitoring.enabled;
    apply_logging(c);
    /* From here on no request thread writes to stderr: a logger thread does (core/log.h). */
    crl_log_start();

    /* A vanished client must be an error code on write, never a process kill. gzip allocates and
     * frees ~260 KB of zlib state per response; without a high trim threshold glibc hands it back
     * to the kernel every time (dependency-lab.md §9.3). */
    signal(SIGPIPE, SIG_IGN);
    mallopt(M_TRIM_THRESHOLD, 64 << 20);

    CRL_INFO("startup", "Starting CarlaRL Policy Service carlarl %s", CRL_VERSION);
    crl_config_warn_no_effect(c);
    const crl_kernels_t *k = crl_server_choose_kernels(c);
    crl__srv.isa = k->name;
    if (c->optimization.numa_node >= 0) {
        crl_err nerr = {{0}};
        if (crl_hw_numa_bind((int)c->optimization.numa_node, &nerr) != CRL_OK)
            return crl_err_set(err, CRL_EINVAL, "optimization.numa_node: %s", nerr.msg);
    }

    if ((st = start_pool(c, err)) != CRL_OK) return st;

    crl_registry_opts_t ro = {.artifact_dir = c->model.artifact_dir,
                              .pin = c->model.version,
                              .pool = crl__srv.pool,
                              .parallel_min_rows = (size_t)c->optimization.parallel_min_rows,
                              .parallel_max_rows = CRL_PREDICT_MAX_OBSERVATIONS};
    crl_err lerr = {{0}};
    if (crl_registry_load_startup(&ro, &crl__srv.strategy, &lerr) == CRL_OK)
        atomic_store(&crl__srv.warmed, 1); /* every load runs a warm-up forward pass */
    if (crl__srv.strategy == NULL) crl__srv.strategy = "environment_with_fallback";

    int nworkers = c->server.workers > 0             ? (int)c->server.workers
                   : c->optimization.cpu_threads > 0 ? (int)c->optimization.cpu_threads
                                                     : online_cpus();
    crl__srv.nworkers = nworkers;
    crl_worker_t *workers = calloc((size_t)nworkers, sizeof(*workers));
    /* One more shard when batching: the batcher thread's (executed batch sizes). */
    size_t nshards = (size_t)nworkers + (c->batching.enabled ? 1 : 0);
    if (workers == NULL || crl_metrics_init(nshards) != 0) {
        free(workers);
        crl_registry_shutdown();
        crl_pool_free(crl__srv.pool);
        return crl_err_set(err, CRL_ENOMEM, "out of memory");
    }
    crl_cache_opts_t co = {.backend = (crl_cache_backend)c->cache.backend,
                           .size = (size_t)c->cache.size,
                           .ttl = c->cache.ttl,
                           .max_observations = (size_t)c->cache.max_observations,
                           .host = c->cache.host,
                           .port = (int)c->cache.port,
                           .db = (int)c->cache.db,
                           .password = c->cache.password,
                           .key_prefix = c->cache.key_prefix,
                           .timeout_ms = (int)c->cache.timeout_ms,
                           .retry_ms = (int)c->cache.retry_ms};
    if ((st = crl_cache_new(&co, &crl__srv.cache, err)) != CRL_OK) {
        free(workers);
        crl_metrics_free();
        crl_registry_shutdown();
        crl_pool_free(crl__srv.pool);
        return st;
    }
    if (crl__srv.cache)
        CRL_INFO("cache", "response cache: %s (%s)", crl_cache_backend_name(co.backend),
                 co.backend == CRL_CACHE_MEMORY ? "in process" : co.host);
    configure_h2o(c);
    if (c->batching.enabled) {
        crl__srv.batch_metrics = crl_metrics_shard((size_t)nworkers);
        st = start_batcher(c, err);
    }

    int port = (int)c->server.port, started = 0;
    for (int i = 0; st == CRL_OK && i < nworkers; i++) {
        int fd = open_listener(c->server.host, port, 1, err);
        if (fd < 0) {
            st = CRL_EIO;
            break;
        }
        if (i == 0) port = bound_port(fd); /* port 0: the others join the port the kernel chose */
        if ((st = worker_init(&workers[i], (size_t)i, fd, err)) != CRL_OK) {
            close(fd);
            break;
        }
        started++;
    }
    int mport = c->monitoring.enabled ? (int)c->monitoring.metrics_port : 0;
    if (st == CRL_OK && mport != 0 &&
        (workers[0].mfd = open_listener(c->server.host, mport, 0, err)) < 0)
        st = CRL_EIO;

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* threads inherit the mask; main sigwaits */
    int running = 0;
    for (int i = 0; st == CRL_OK && i < started; i++) {
        if (pthread_create(&workers[i].tid, NULL, worker_main, &workers[i]) != 0) {
            st = crl_err_set(err, CRL_EIO, "cannot start worker thread %d", i);
            break;
        }
        running++;
    }
    pin_workers(c, workers, running);
    crl_config_t *history[64];
    size_t n_history = 0;
    if (st == CRL_OK) {
        const char *h = c->server.host;
        CRL_INFO("startup",
                 "applied: workers=%d, compute_threads=%zu, kernels=%s, device=cpu, "
                 "precision=%s, worker_cpus=%s, numa_node=%ld, memory_pinning=%s",
                 nworkers, crl_pool_threads(crl__srv.pool), k->name,
                 crl_config_precision_name(c->model.precision),
                 c->server.worker_cpus[0] ? c->server.worker_cpus : "any",
                 c->optimization.numa_node, c->optimization.memory_pinning ? "on" : "off");
        const char *lb = strchr(h, ':') ? "[" : "", *rb = strchr(h, ':') ? "]" : "";
        if (mport != 0)
            CRL_INFO("metrics_listening", "Prometheus metrics on http://%s%s%s:%d%s (worker 0)", lb,
                     h, rb, mport, c->monitoring.metrics_path);
        CRL_INFO("listening", "listening on http://%s%s%s:%d/ with %d worker(s)", lb, h, rb, port,
                 nworkers);
        int sig = 0;
        while (sigwait(&set, &sig) == 0 && sig == SIGHUP)
            reload(argc, argv, history, &n_history);
        CRL_INFO("shutdown",
                 "Shutting down CarlaRL Policy Service (signal %d): finishing in-flight requests",
                 sig);
    }
    for (int i = 0; i < running; i++) {
        /* A worker creates the queue it is told through: a signal right after start-up must
         * wait for it (moments). */
        while (!atomic_load_explicit(&workers[i].ready, memory_order_acquire))
            nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
        atomic_store(&workers[i].stop, 1);
        h2o_multithread_send_message(&workers[i].ctl, NULL);
    }
    for (int i = 0; i < running; i++) {
        pthread_join(workers[i].tid, NULL);
        worker_dispose(&workers[i]);
    }
    for (int i = 0; i < started; i++) {
        if (i >= running) {
            close(workers[i].fd);
            if (workers[i].mfd >= 0) close(workers[i].mfd);
        }
        worker_free(&workers[i]);
    }
    free(workers);
    crl_batch_free(crl__srv.batch); /* after the workers: it answers what is still queued */
    crl__srv.batch = NULL;
    crl_cache_free(crl__srv.cache); /* after every worker's local */
    crl__srv.cache = NULL;
    for (size_t i = 0; i < n_history; i++)
        free(history[i]);
    h2o_config_dispose(&crl__srv.config);
    crl_metrics_free();
    crl_registry_shutdown();
    crl_pool_free(crl__srv.pool); /* after the last model: models hold workspaces for it */
    crl__srv.pool = NULL;
    if (st == CRL_OK) CRL_INFO("shutdown", "stopped cleanly");
    crl_log_stop(); /* writes what is queued; the early returns above rely on its atexit */
    return st;
}
