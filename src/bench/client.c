/* client.c: the load of carlarl bench. Connections are dealt round-robin to threads; each thread
 * runs one epoll loop over its non-blocking HTTP/1.1 keep-alive connections, at most one request
 * in flight per connection (no pipelining), and keeps its own histogram and counters (merged at
 * the end, so the hot path shares no cache line with another thread).
 *
 * Closed loop: every idle connection sends its next request at once. Open loop: each thread
 * follows its own schedule of intended send times (its share of --rate, constant gaps or seeded
 * exponential ones); a request whose time has come waits in a queue for a free connection, and its
 * latency is measured from the intended time, so a slow server cannot hide its queueing
 * (coordinated omission). A request belongs to the figures when its intended send time falls in
 * the measured window (after warm-up). Every measured request ends either as a response (any
 * status) or as one transport error, so sent = done + sum(transport). */
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench/internal.h"
#include "core/time.h"

#define NS 1000000000ull
#define SCAN_NS 10000000ull   /* timeouts, back-off and publishing: every 10 ms */
#define RETRY_NS 10000000ull  /* a failed connect waits 10 ms before the next try */
#define HEAD_MAX 8192         /* response status line + headers */
#define QUEUE_MAX (16u << 20) /* open-loop requests waiting for a connection */
#define READ_CHUNK 65536

enum { C_DOWN, C_CONNECTING, C_UP };
enum { P_HEAD, P_BODY, P_CHUNK_SIZE, P_CHUNK_DATA, P_CHUNK_END, P_TRAILER, P_EOF_BODY, P_DONE };

typedef struct conn {
    int fd, state, id;
    int has_req, counted, want_out, idle_listed, close_after;
    uint64_t intended, issued, retry_at;
    const char *req;
    size_t req_len, req_off, next;
    /* response parser */
    int ps, status;
    uint64_t remain;
    size_t head_len, line_len;
    char line[64];
    char head[HEAD_MAX];
} conn;

typedef struct worker {
    crl_bench_run *run;
    int id, ep, nconns;
    pthread_t th;
    conn *conns;
    int *idle;
    int nidle;
    /* figures */
    crl_bench_hist hist;
    uint64_t status[600], transport[CRL_BENCH_ERR_KINDS];
    uint64_t sent, done, ok, in_flight, last_done_ns;
    crl_bench_tick_hist *ticks;
    size_t nticks, published;
    /* the window and the schedule */
    uint64_t tm, te, deadline, quota, issued_measured, scheduled_measured;
    double gap_ns;
    uint64_t next_intended, rng;
    uint64_t *queue;
    size_t qhead, qlen, qcap;
    /* published for the progress line */
    _Atomic uint64_t live_done, live_errors;
    pthread_mutex_t mu;
    crl_bench_tick_hist sofar;
    char scratch[READ_CHUNK];
} worker;

struct crl_bench_run {
    const crl_bench_settings *s;
    const crl_bench_workload *w;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int nworkers;
    worker **workers;
    crl_bench_live live;
    _Atomic int stop;
};

/* ---- address and probe ---------------------------------------------------------------------- */

static crl_status resolve(const crl_bench_settings *s, struct sockaddr_storage *addr,
                          socklen_t *len, crl_err *err) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    char port[16];
    snprintf(port, sizeof(port), "%d", s->port);
    int rc = getaddrinfo(s->host, port, &hints, &res);
    if (rc != 0 || res == NULL)
        return crl_err_set(err, CRL_EIO, "cannot resolve %s: %s", s->host, gai_strerror(rc));
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return CRL_OK;
}

crl_status crl_bench__probe(const crl_bench_settings *s, crl_err *err) {
    struct sockaddr_storage addr;
    socklen_t len;
    crl_status st = resolve(s, &addr, &len, err);
    if (st != CRL_OK) return st;
    int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return crl_err_set(err, CRL_EIO, "socket: %s", strerror(errno));
    struct timeval tv = {.tv_sec = (time_t)s->timeout_s,
                         .tv_usec = (suseconds_t)(fmod(s->timeout_s, 1.0) * 1e6)};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&addr, len) != 0) {
        int e = errno;
        close(fd);
        return crl_err_set(err, CRL_EIO, "cannot connect to %s:%d: %s", s->host, s->port,
                           strerror(e));
    }
    close(fd);
    return CRL_OK;
}

/* ---- response parsing ----------------------------------------------------------------------- */

static int header_is(const char *line, size_t len, const char *name) {
    size_t n = strlen(name);
    return len > n && line[n] == ':' && strncasecmp(line, name, n) == 0;
}

static int value_has(const char *v, size_t len, const char *word) {
    size_t n = strlen(word);
    for (size_t i = 0; i + n <= len; i++)
        if (strncasecmp(v + i, word, n) == 0) return 1;
    return 0;
}

/* The status line and headers in c->head[0..c->head_len) (ending in the blank line): sets the
 * status and the state the body is read in. -1 when it is not HTTP/1.x. */
static int parse_head(conn *c, int head_req) {
    const char *h = c->head;
    if (c->head_len < 13 || memcmp(h, "HTTP/1.", 7) != 0 || h[8] != ' ') return -1;
    int minor = h[7] - '0';
    if (h[9] < '1' || h[9] > '5' || h[10] < '0' || h[10] > '9' || h[11] < '0' || h[11] > '9')
        return -1;
    c->status = (h[9] - '0') * 100 + (h[10] - '0') * 10 + (h[11] - '0');
    int chunked = 0, have_len = 0, keep = minor >= 1;
    uint64_t clen = 0;
    const char *p = memchr(h, '\n', c->head_len) + 1, *end = h + c->head_len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = (size_t)(nl - p);
        if (len && p[len - 1] == '\r') len--;
        if (len == 0) break;
        const char *v = memchr(p, ':', len);
        size_t vlen = v ? len - (size_t)(v + 1 - p) : 0;
        if (header_is(p, len, "content-length")) {
            char *e;
            errno = 0;
            unsigned long long n = strtoull(v + 1, &e, 10);
            if (errno || e == v + 1) return -1;
            clen = n;
            have_len = 1;
        } else if (header_is(p, len, "transfer-encoding")) {
            chunked = value_has(v + 1, vlen, "chunked");
        } else if (header_is(p, len, "connection")) {
            if (value_has(v + 1, vlen, "close")) keep = 0;
            if (value_has(v + 1, vlen, "keep-alive")) keep = 1;
        }
        p = nl + 1;
    }
    c->close_after = !keep;
    if (c->status < 200) return 0; /* interim (100 Continue ...): the real response follows */
    if (head_req || c->status == 204 || c->status == 304 || (have_len && clen == 0 && !chunked))
        c->ps = P_DONE;
    else if (chunked)
        c->ps = P_CHUNK_SIZE;
    else if (have_len)
        c->ps = P_BODY, c->remain = clen;
    else
        c->ps = P_EOF_BODY, c->close_after = 1;
    return 0;
}

/* Copies header bytes until the blank line; returns bytes used, or -1 on overflow/bad head. */
static long feed_head(conn *c, const char *p, size_t n, int head_req) {
    size_t room = HEAD_MAX - c->head_len, take = n < room ? n : room;
    size_t from = c->head_len >= 3 ? c->head_len - 3 : 0;
    memcpy(c->head + c->head_len, p, take);
    c->head_len += take;
    for (size_t i = from; i + 3 < c->head_len; i++) {
        if (memcmp(c->head + i, "\r\n\r\n", 4) != 0) continue;
        size_t used = i + 4 - (c->head_len - take);
        c->head_len = i + 4;
        if (parse_head(c, head_req) != 0) return -1;
        if (c->status < 200) c->head_len = 0; /* interim: read the next head */
        return (long)used;
    }
    return c->head_len == HEAD_MAX ? -1 : (long)take;
}

/* Feeds response bytes: 1 when the response is complete (*used says how many bytes it took),
 * 0 when it needs more, -1 when the bytes are not HTTP/1.1. */
static int feed(conn *c, const char *p, size_t n, size_t *used, int head_req) {
    size_t i = 0;
    while (i < n && c->ps != P_DONE) {
        if (c->ps == P_HEAD) {
            long k = feed_head(c, p + i, n - i, head_req);
            if (k < 0) return -1;
            i += (size_t)k;
        } else if (c->ps == P_BODY || c->ps == P_CHUNK_DATA) {
            uint64_t k = n - i < c->remain ? n - i : c->remain;
            i += (size_t)k;
            c->remain -= k;
            if (c->remain == 0) c->ps = c->ps == P_BODY ? P_DONE : P_CHUNK_END;
        } else if (c->ps == P_EOF_BODY) {
            i = n;
        } else {
            char ch = p[i++];
            if (ch != '\n') {
                if (ch != '\r' && c->line_len < sizeof(c->line) - 1) c->line[c->line_len] = ch;
                c->line_len += ch != '\r';
                continue;
            }
            size_t len = c->line_len < sizeof(c->line) - 1 ? c->line_len : sizeof(c->line) - 1;
            c->line[len] = '\0';
            c->line_len = 0;
            if (c->ps == P_CHUNK_END) {
                if (len) return -1;
                c->ps = P_CHUNK_SIZE;
            } else if (c->ps == P_CHUNK_SIZE) {
                char *e;
                c->remain = strtoull(c->line, &e, 16);
                if (e == c->line) return -1;
                c->ps = c->remain ? P_CHUNK_DATA : P_TRAILER;
            } else if (len == 0) { /* P_TRAILER: the blank line ends the message */
                c->ps = P_DONE;
            }
        }
    }
    *used = i;
    return c->ps == P_DONE;
}

/* ---- connections ---------------------------------------------------------------------------- */

static void idle_push(worker *t, conn *c) {
    if (!c->idle_listed) t->idle[t->nidle++] = c->id, c->idle_listed = 1;
}

static void close_conn(conn *c) {
    if (c->fd >= 0) close(c->fd); /* also leaves the epoll set */
    c->fd = -1;
    c->state = C_DOWN;
    c->want_out = 0;
}

static void set_out(worker *t, conn *c, int out) {
    if (c->want_out == out) return;
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(t->ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = out;
}

static crl_bench_tick_hist *tick_at(worker *t, uint64_t now) {
    if (now < t->tm) return NULL;
    size_t s = (size_t)((now - t->tm) / NS);
    if (s >= t->nticks) {
        size_t cap = s + 1 > t->nticks * 2 ? s + 1 : t->nticks * 2;
        crl_bench_tick_hist *p = realloc(t->ticks, cap * sizeof(*p));
        if (p == NULL) return NULL;
        memset(p + t->nticks, 0, (cap - t->nticks) * sizeof(*p));
        t->ticks = p;
        t->nticks = cap;
    }
    return &t->ticks[s];
}

/* The request on c ended without a response. */
static void fail(worker *t, conn *c, int kind, uint64_t now) {
    close_conn(c);
    if (kind == CRL_BENCH_ERR_CONNECT) c->retry_at = now + RETRY_NS;
    if (!c->has_req) return;
    c->has_req = 0;
    t->in_flight--;
    if (c->counted) {
        t->transport[kind]++;
        crl_bench_tick_hist *k = tick_at(t, now);
        if (k) k->errors++;
    }
    if (kind != CRL_BENCH_ERR_CONNECT) idle_push(t, c);
}

static void complete(worker *t, conn *c, uint64_t now, int leftover) {
    c->has_req = 0;
    t->in_flight--;
    if (c->counted) {
        uint64_t lat = now > c->intended ? now - c->intended : 0;
        crl_bench_hist_add(&t->hist, lat);
        t->status[c->status]++;
        t->done++;
        int ok = c->status >= 200 && c->status < 300;
        t->ok += ok;
        t->last_done_ns = now;
        crl_bench_tick_hist *k = tick_at(t, now);
        if (k) {
            crl_bench__tick_add(k, lat);
            k->done++;
            k->errors += !ok;
        }
    }
    if (c->close_after || leftover) close_conn(c);
    idle_push(t, c);
}

static void send_some(worker *t, conn *c, uint64_t now) {
    while (c->req_off < c->req_len) {
        ssize_t n = send(c->fd, c->req + c->req_off, c->req_len - c->req_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->req_off += (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_out(t, c, 1);
            return;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            fail(t, c, CRL_BENCH_ERR_RESET, now);
            return;
        }
    }
    set_out(t, c, 0);
}

static int start_connect(worker *t, conn *c) {
    const crl_bench_run *run = t->run;
    int fd = socket(run->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int rc = connect(fd, (const struct sockaddr *)&run->addr, run->addrlen);
    if (rc != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN | (rc ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(t->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        close(fd);
        return -1;
    }
    c->fd = fd;
    c->state = rc ? C_CONNECTING : C_UP;
    c->want_out = rc != 0;
    return 0;
}

static void issue(worker *t, conn *c, uint64_t intended, uint64_t now) {
    const crl_bench_workload *w = t->run->w;
    c->has_req = 1;
    t->in_flight++;
    c->intended = intended;
    c->issued = now;
    c->counted = intended >= t->tm && intended < t->te;
    if (c->counted) t->sent++, t->issued_measured++;
    c->req = w->req[c->next];
    c->req_len = w->len[c->next];
    c->req_off = 0;
    c->next = (c->next + 1) % w->n;
    c->ps = P_HEAD;
    c->head_len = c->line_len = 0;
    c->close_after = 0;
    if (c->fd < 0 && start_connect(t, c) != 0) {
        fail(t, c, CRL_BENCH_ERR_CONNECT, now);
        return;
    }
    if (c->state == C_UP) send_some(t, c, now);
}

static void on_readable(worker *t, conn *c, uint64_t now) {
    for (;;) {
        ssize_t n = recv(c->fd, t->scratch, sizeof(t->scratch), 0);
        if (n > 0) {
            if (!c->has_req) { /* bytes nobody asked for: this connection is out of step */
                close_conn(c);
                return;
            }
            size_t used = 0;
            int r = feed(c, t->scratch, (size_t)n, &used, t->run->w->head);
            if (r < 0) {
                fail(t, c, CRL_BENCH_ERR_PROTOCOL, now);
                return;
            }
            if (r == 1) {
                complete(t, c, now, used < (size_t)n);
                return;
            }
            if ((size_t)n < sizeof(t->scratch))
                return; /* level-triggered: more comes as an event */
        } else if (n == 0) {
            if (c->has_req && c->ps == P_EOF_BODY) {
                complete(t, c, now, 0);
            } else if (c->has_req) {
                fail(t, c, CRL_BENCH_ERR_CLOSED, now);
            } else {
                close_conn(c); /* an idle keep-alive connection closed: reconnect when needed */
            }
            return;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return;
        } else {
            if (c->has_req)
                fail(t, c, CRL_BENCH_ERR_RESET, now);
            else
                close_conn(c);
            return;
        }
    }
}

static void on_event(worker *t, conn *c, uint32_t ev, uint64_t now) {
    if (c->state == C_CONNECTING) {
        int e = 0;
        socklen_t len = sizeof(e);
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &len) != 0) e = errno;
        if (e == EINPROGRESS || e == EALREADY) return;
        if (e != 0) {
            fail(t, c, CRL_BENCH_ERR_CONNECT, now);
            return;
        }
        c->state = C_UP;
        if (c->has_req)
            send_some(t, c, now);
        else
            set_out(t, c, 0);
        return;
    }
    if ((ev & EPOLLOUT) && c->has_req && c->req_off < c->req_len) send_some(t, c, now);
    if (c->fd >= 0 && (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))) on_readable(t, c, now);
}

/* ---- the schedule and the loop -------------------------------------------------------------- */

static uint64_t rng_next(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t next_gap(worker *t) {
    if (t->run->s->arrival != CRL_BENCH_POISSON) return (uint64_t)t->gap_ns;
    double u = (double)(rng_next(&t->rng) >> 11) * 0x1.0p-53; /* [0, 1) */
    return (uint64_t)(-log1p(-u) * t->gap_ns);
}

/* More requests to come from this thread's schedule (open loop) or loop (closed)? */
static int more_to_issue(const worker *t, uint64_t at) {
    if (at < t->tm) return 1;
    if (t->run->s->requests)
        return (t->run->s->mode == CRL_BENCH_OPEN ? t->scheduled_measured : t->issued_measured) <
               t->quota;
    return at < t->te;
}

static void queue_push(worker *t, uint64_t at) {
    if (at >= t->tm && at < t->te) t->scheduled_measured++;
    if (t->qlen == t->qcap) {
        size_t cap = t->qcap ? t->qcap * 2 : 1024;
        uint64_t *q = cap <= QUEUE_MAX ? malloc(cap * sizeof(*q)) : NULL;
        if (q == NULL) { /* the server is hopelessly behind: this request is lost, and counted */
            if (at >= t->tm && at < t->te) t->sent++, t->transport[CRL_BENCH_ERR_TIMEOUT]++;
            return;
        }
        for (size_t i = 0; i < t->qlen; i++)
            q[i] = t->queue[(t->qhead + i) % t->qcap];
        free(t->queue);
        t->queue = q, t->qcap = cap, t->qhead = 0;
    }
    t->queue[(t->qhead + t->qlen++) % t->qcap] = at;
}

static void schedule(worker *t, uint64_t now) {
    while (t->next_intended <= now && more_to_issue(t, t->next_intended)) {
        queue_push(t, t->next_intended);
        t->next_intended += next_gap(t);
    }
}

/* An idle connection that is not backing off after a failed connect, or NULL. */
static conn *take_idle(worker *t, uint64_t now) {
    for (int i = t->nidle - 1; i >= 0; i--) {
        conn *c = &t->conns[t->idle[i]];
        if (c->retry_at > now) continue;
        t->idle[i] = t->idle[--t->nidle];
        c->idle_listed = 0;
        return c;
    }
    return NULL;
}

static void dispatch(worker *t, uint64_t now) {
    int open = t->run->s->mode == CRL_BENCH_OPEN;
    for (;;) {
        if (open ? t->qlen == 0 : !more_to_issue(t, now)) return;
        conn *c = take_idle(t, now);
        if (c == NULL) return;
        uint64_t at = now;
        if (open) {
            at = t->queue[t->qhead];
            t->qhead = (t->qhead + 1) % t->qcap;
            t->qlen--;
        }
        issue(t, c, at, now);
    }
}

/* Timeouts, connect back-off ends, and the finished seconds published for the progress line. */
static void scan(worker *t, uint64_t now) {
    uint64_t limit = (uint64_t)(t->run->s->timeout_s * 1e9);
    for (int i = 0; i < t->nconns; i++) {
        conn *c = &t->conns[i];
        if (c->has_req && now - c->issued > limit) fail(t, c, CRL_BENCH_ERR_TIMEOUT, now);
        if (!c->has_req && c->fd < 0 && c->retry_at && c->retry_at <= now) {
            c->retry_at = 0;
            idle_push(t, c);
        }
    }
    uint64_t errs = 0;
    for (int k = 0; k < CRL_BENCH_ERR_KINDS; k++)
        errs += t->transport[k];
    atomic_store_explicit(&t->live_done, t->done, memory_order_relaxed);
    atomic_store_explicit(&t->live_errors, errs + t->done - t->ok, memory_order_relaxed);
    size_t cur = now > t->tm ? (size_t)((now - t->tm) / NS) : 0;
    if (cur > t->published) {
        pthread_mutex_lock(&t->mu);
        for (size_t s = t->published; s < cur && s < t->nticks; s++)
            crl_bench__tick_merge(&t->sofar, &t->ticks[s]);
        pthread_mutex_unlock(&t->mu);
        t->published = cur;
    }
}

/* Past the drain deadline: whatever is still queued or in flight is a timeout. */
static void give_up(worker *t, uint64_t now) {
    for (int i = 0; i < t->nconns; i++)
        if (t->conns[i].has_req) fail(t, &t->conns[i], CRL_BENCH_ERR_TIMEOUT, now);
    for (; t->qlen; t->qlen--, t->qhead = (t->qhead + 1) % t->qcap) {
        uint64_t at = t->queue[t->qhead];
        if (at >= t->tm && at < t->te) t->sent++, t->transport[CRL_BENCH_ERR_TIMEOUT]++;
    }
}

static int wait_events(worker *t, struct epoll_event *ev, int max, uint64_t wake, uint64_t now) {
    uint64_t d = wake > now ? wake - now : 0;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
    static _Atomic int no_pwait2;
    if (!atomic_load_explicit(&no_pwait2, memory_order_relaxed)) {
        struct timespec ts = {.tv_sec = (time_t)(d / NS), .tv_nsec = (long)(d % NS)};
        int n = epoll_pwait2(t->ep, ev, max, &ts, NULL);
        if (n >= 0 || errno != ENOSYS) return n;
        atomic_store_explicit(&no_pwait2, 1, memory_order_relaxed);
    }
#endif
    return epoll_wait(t->ep, ev, max, (int)((d + 999999) / 1000000));
}

static void *worker_main(void *arg) {
    worker *t = arg;
    crl_bench_run *run = t->run;
    int open = run->s->mode == CRL_BENCH_OPEN;
    prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0); /* wake within ~1 us of an intended send time */
    struct epoll_event ev[256];
    uint64_t next_scan = 0;
    for (;;) {
        uint64_t now = crl_time_mono_ns();
        if (atomic_load_explicit(&run->stop, memory_order_relaxed) && t->te > now) {
            /* Interrupted: nothing new is scheduled; what is out may finish for a second. */
            t->te = now > t->tm ? now : t->tm;
            t->deadline = now + NS;
            t->quota = open ? t->scheduled_measured : t->issued_measured;
        }
        if (open) schedule(t, now);
        dispatch(t, now);
        if (now >= next_scan) scan(t, now), next_scan = now + SCAN_NS;
        int more = open ? more_to_issue(t, t->next_intended) : more_to_issue(t, now);
        if (!more && t->qlen == 0 && t->in_flight == 0) break;
        if (now >= t->deadline) {
            give_up(t, now);
            break;
        }
        uint64_t wake = next_scan;
        if (open && more && t->next_intended < wake) wake = t->next_intended;
        int n = wait_events(t, ev, 256, wake, now);
        now = crl_time_mono_ns();
        for (int i = 0; i < n; i++)
            on_event(t, ev[i].data.ptr, ev[i].events, now);
    }
    scan(t, crl_time_mono_ns());
    for (int i = 0; i < t->nconns; i++)
        close_conn(&t->conns[i]);
    atomic_fetch_add(&run->live.finished, 1);
    return NULL;
}

/* ---- start, progress, join ------------------------------------------------------------------ */

static void worker_free(worker *t) {
    if (t == NULL) return;
    if (t->ep >= 0) close(t->ep);
    pthread_mutex_destroy(&t->mu);
    free(t->conns);
    free(t->idle);
    free(t->ticks);
    free(t->queue);
    free(t);
}

/* floor(n * part / whole) without overflow: the requests of the first `part` connections. */
static uint64_t share(uint64_t n, int part, int whole) {
    return (uint64_t)((unsigned __int128)n * (unsigned)part / (unsigned)whole);
}

static worker *worker_new(crl_bench_run *run, int id, uint64_t t0) {
    const crl_bench_settings *s = run->s;
    int total = s->mode == CRL_BENCH_OPEN ? s->connections : s->concurrency;
    worker *t = aligned_alloc(64, (sizeof(worker) + 63) / 64 * 64);
    if (t == NULL) return NULL;
    memset(t, 0, sizeof(*t));
    pthread_mutex_init(&t->mu, NULL);
    t->run = run, t->id = id;
    t->nconns = total / run->nworkers + (id < total % run->nworkers);
    t->ep = epoll_create1(EPOLL_CLOEXEC);
    t->conns = calloc((size_t)t->nconns, sizeof(conn));
    t->idle = calloc((size_t)t->nconns, sizeof(int));
    if (t->ep < 0 || t->conns == NULL || t->idle == NULL) {
        worker_free(t);
        return NULL;
    }
    crl_bench_hist_init(&t->hist);
    for (int i = 0; i < t->nconns; i++) {
        conn *c = &t->conns[i];
        c->fd = -1, c->id = i;
        c->next = (size_t)(id + i * run->nworkers) % run->w->n; /* global connection number */
        idle_push(t, c);
    }
    t->tm = t0 + (uint64_t)(s->warmup_s * 1e9);
    t->te = s->requests ? UINT64_MAX : t->tm + (uint64_t)(s->duration_s * 1e9);
    t->deadline = s->requests ? UINT64_MAX : t->te + (uint64_t)(s->timeout_s * 1e9);
    /* This thread's share of the requests and of the rate follows its share of connections. */
    int before =
        id * (total / run->nworkers) + (id < total % run->nworkers ? id : total % run->nworkers);
    t->quota = share(s->requests, before + t->nconns, total) - share(s->requests, before, total);
    if (s->mode == CRL_BENCH_OPEN) {
        double rate_t = s->rate * t->nconns / total;
        t->gap_ns = 1e9 / rate_t;
        t->rng = s->seed ^ (0x5851f42d4c957f2dull * (uint64_t)(id + 1));
        /* Constant gaps: the threads' schedules interleave into one evenly spaced stream. */
        t->next_intended =
            t0 + (s->arrival == CRL_BENCH_POISSON ? next_gap(t) : (uint64_t)(1e9 / s->rate * id));
    }
    return t;
}

crl_status crl_bench__run_start(const crl_bench_settings *s, const crl_bench_workload *w,
                                crl_bench_run **out, crl_err *err) {
    crl_bench_run *run = calloc(1, sizeof(*run));
    if (run == NULL) return crl_err_set(err, CRL_ENOMEM, "out of memory");
    run->s = s, run->w = w;
    crl_status st = resolve(s, &run->addr, &run->addrlen, err);
    if (st != CRL_OK) goto fail;
    int total = s->mode == CRL_BENCH_OPEN ? s->connections : s->concurrency;
    run->nworkers = s->threads < total ? s->threads : total;
    run->workers = calloc((size_t)run->nworkers, sizeof(worker *));
    if (run->workers == NULL) goto oom;
    uint64_t t0 = crl_time_mono_ns();
    run->live.start_ns = t0 + (uint64_t)(s->warmup_s * 1e9);
    for (int i = 0; i < run->nworkers; i++)
        if ((run->workers[i] = worker_new(run, i, t0)) == NULL) goto oom;
    for (int i = 0; i < run->nworkers; i++) {
        if (pthread_create(&run->workers[i]->th, NULL, worker_main, run->workers[i]) != 0) {
            atomic_store(&run->stop, 1);
            for (int j = 0; j < i; j++)
                pthread_join(run->workers[j]->th, NULL);
            st = crl_err_set(err, CRL_ENOMEM, "cannot start client threads");
            goto fail;
        }
    }
    *out = run;
    return CRL_OK;
oom:
    st = crl_err_set(err, CRL_ENOMEM, "out of memory");
fail:
    for (int i = 0; run->workers && i < run->nworkers; i++)
        worker_free(run->workers[i]);
    free(run->workers);
    free(run);
    return st;
}

crl_bench_live *crl_bench__run_live(crl_bench_run *run) {
    uint64_t done = 0, errs = 0;
    for (int i = 0; i < run->nworkers; i++) {
        done += atomic_load_explicit(&run->workers[i]->live_done, memory_order_relaxed);
        errs += atomic_load_explicit(&run->workers[i]->live_errors, memory_order_relaxed);
    }
    atomic_store(&run->live.done, done);
    atomic_store(&run->live.errors, errs);
    atomic_store(&run->live.measuring, crl_time_mono_ns() >= run->live.start_ns);
    return &run->live;
}

void crl_bench__run_stop(crl_bench_run *run) {
    atomic_store(&run->stop, 1);
}

int crl_bench__run_finished(crl_bench_run *run) {
    return atomic_load(&run->live.finished) == run->nworkers;
}

uint64_t crl_bench__run_p99_so_far(crl_bench_run *run) {
    crl_bench_tick_hist *all = calloc(1, sizeof(*all));
    if (all == NULL) return 0;
    for (int i = 0; i < run->nworkers; i++) {
        pthread_mutex_lock(&run->workers[i]->mu);
        crl_bench__tick_merge(all, &run->workers[i]->sofar);
        pthread_mutex_unlock(&run->workers[i]->mu);
    }
    uint64_t p99 = crl_bench__tick_quantile(all, 0.99);
    free(all);
    return p99;
}

static crl_status merge_ticks(crl_bench_run *run, crl_bench_result *r) {
    size_t n = (size_t)ceil(r->elapsed_s - 1e-9);
    if (n == 0) return CRL_OK;
    crl_bench_tick_hist *sum = calloc(n, sizeof(*sum));
    r->ticks = calloc(n, sizeof(*r->ticks));
    if (sum == NULL || r->ticks == NULL) {
        free(sum);
        return CRL_ENOMEM;
    }
    for (int i = 0; i < run->nworkers; i++)
        for (size_t k = 0; k < run->workers[i]->nticks && k < n; k++)
            crl_bench__tick_merge(&sum[k], &run->workers[i]->ticks[k]);
    for (size_t k = 0; k < n; k++) {
        r->ticks[k].t_s = (double)(k + 1) < r->elapsed_s ? (double)(k + 1) : r->elapsed_s;
        r->ticks[k].done = sum[k].done;
        r->ticks[k].errors = sum[k].errors;
        r->ticks[k].p50_ns = crl_bench__tick_quantile(&sum[k], 0.50);
        r->ticks[k].p99_ns = crl_bench__tick_quantile(&sum[k], 0.99);
    }
    r->n_ticks = n;
    free(sum);
    return CRL_OK;
}

crl_status crl_bench__run_join(crl_bench_run *run, crl_bench_result *r, crl_err *err) {
    const crl_bench_settings *s = run->s;
    uint64_t tm = run->live.start_ns, end = 0, now = crl_time_mono_ns();
    crl_bench_hist_init(&r->latency);
    for (int i = 0; i < run->nworkers; i++) {
        worker *t = run->workers[i];
        pthread_join(t->th, NULL);
        crl_bench_hist_merge(&r->latency, &t->hist);
        for (int k = 0; k < 600; k++)
            r->status[k] += t->status[k];
        for (int k = 0; k < CRL_BENCH_ERR_KINDS; k++)
            r->transport[k] += t->transport[k];
        r->sent += t->sent, r->done += t->done, r->ok += t->ok;
        if (t->last_done_ns > end) end = t->last_done_ns;
        if (!s->requests && t->te != UINT64_MAX && t->te > end) end = t->te;
    }
    if (end <= tm) end = now > tm ? now : tm + 1;
    r->elapsed_s = (double)(end - tm) * 1e-9;
    uint64_t transport = 0;
    for (int k = 0; k < CRL_BENCH_ERR_KINDS; k++)
        transport += r->transport[k];
    r->rps = r->elapsed_s > 0 ? (double)r->done / r->elapsed_s : 0;
    r->observations_per_s =
        s->predict && r->elapsed_s > 0 ? (double)r->ok * (double)s->batch / r->elapsed_s : 0;
    uint64_t attempts = r->done + transport;
    r->error_rate_percent =
        attempts ? 100.0 * (double)(r->done - r->ok + transport) / (double)attempts : 0;
    crl_status st = merge_ticks(run, r);
    for (int i = 0; i < run->nworkers; i++)
        worker_free(run->workers[i]);
    free(run->workers);
    free(run);
    if (st != CRL_OK) return crl_err_set(err, st, "out of memory");
    return CRL_OK;
}
