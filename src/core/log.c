/* log.c: flat JSON (or text) log lines, written by a logger thread so that no request thread
 * blocks on stderr. The ring is a bounded MPSC queue (Vyukov's, one sequence number per slot):
 * a producer claims a slot with one CAS, copies its line in and publishes it; the logger thread
 * takes slots in order. A full ring drops the line; nothing on that path allocates or locks.
 *
 * Waking the logger costs a futex call on the request thread and a context switch, more than
 * formatting the line, so busy traffic does not wake it: while lines keep coming the logger
 * drains the ring every POLL_MS with a few large write(2)s, and a producer wakes it early only
 * for a WARNING or worse or when the ring is half full. Once a poll finds nothing, the logger
 * waits until the next line, which wakes it at once. */
#include "core/log.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 2048
#define RING_SLOTS 1024 /* a power of two: 2 MiB of lines in flight */
#define POLL_MS 20      /* the logger's drain interval while lines keep coming */

typedef struct slot {
    _Atomic size_t seq;
    size_t len;
    char line[LINE_MAX_BYTES];
} slot_t;

static _Atomic int g_level = CRL_LOG_INFO;
static _Atomic int g_text = 0;
static _Atomic int g_access = 1;

static slot_t g_ring[RING_SLOTS];
static _Atomic size_t g_head;  /* next slot a producer claims */
static _Atomic size_t g_tail;  /* next slot the logger takes; written by the logger alone */
static _Atomic int g_async;    /* the logger thread is running: lines go through the ring */
static _Atomic int g_stopping; /* crl_log_stop asked the logger to finish */
static _Atomic unsigned long long g_dropped;
/* How the logger waits on g_wake: a producer that sees WAIT_IDLE, or WAIT_POLL with an urgent
 * line or a half-full ring, swaps in WAIT_NONE and posts it (so one post per wait). */
enum { WAIT_NONE, WAIT_POLL, WAIT_IDLE };
static _Atomic int g_wait;
static sem_t g_wake;
static pthread_t g_thread;
static pthread_mutex_t g_start_mu = PTHREAD_MUTEX_INITIALIZER; /* start/stop only */

int crl_log_level_parse(const char *s) {
    static const struct {
        const char *name;
        int level;
    } names[] = {{"debug", CRL_LOG_DEBUG},     {"info", CRL_LOG_INFO},
                 {"warning", CRL_LOG_WARNING}, {"warn", CRL_LOG_WARNING},
                 {"error", CRL_LOG_ERROR},     {"critical", CRL_LOG_CRITICAL}};
    for (size_t i = 0; s && i < sizeof(names) / sizeof(names[0]); i++)
        if (strcasecmp(s, names[i].name) == 0) return names[i].level;
    return -1;
}

void crl_log_set_level(crl_log_level level) {
    atomic_store(&g_level, (int)level);
}
int crl_log_enabled(crl_log_level level) {
    return (int)level >= atomic_load(&g_level);
}
void crl_log_set_format(crl_log_format format) {
    int text = format == CRL_LOG_FORMAT_TEXT || (format == CRL_LOG_FORMAT_AUTO && isatty(2) == 1);
    atomic_store(&g_text, text);
}
void crl_log_set_access(int on) {
    atomic_store(&g_access, on != 0);
}
int crl_log_access_enabled(void) {
    return atomic_load_explicit(&g_access, memory_order_relaxed) && crl_log_enabled(CRL_LOG_INFO);
}
unsigned long long crl_log_dropped(void) {
    return atomic_load(&g_dropped);
}

static const char *level_name(crl_log_level level) {
    switch (level) {
    case CRL_LOG_DEBUG:
        return "DEBUG";
    case CRL_LOG_INFO:
        return "INFO";
    case CRL_LOG_WARNING:
        return "WARNING";
    case CRL_LOG_ERROR:
        return "ERROR";
    case CRL_LOG_CRITICAL:
        return "CRITICAL";
    }
    return "INFO";
}

/* ---- formatting ---------------------------------------------------------------------------- */

/* Appends s[0..n) JSON-escaped; stops quietly when the line is full. */
static size_t put_escaped(char *out, size_t pos, size_t cap, const char *s, size_t n) {
    for (size_t i = 0; i < n && s[i] && pos + 7 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            out[pos++] = '\\';
            out[pos++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            pos += (size_t)snprintf(out + pos, cap - pos, "\\u%04x", c);
        } else {
            out[pos++] = (char)c;
        }
    }
    return pos;
}

size_t crl_log_json_str(char *out, size_t cap, const char *s, size_t n) {
    if (cap < 3 || n * 6 + 3 > cap) {
        if (cap) out[0] = '\0';
        return 0;
    }
    size_t pos = 0;
    out[pos++] = '"';
    pos = put_escaped(out, pos, cap, s, n);
    out[pos++] = '"';
    out[pos] = '\0';
    return pos;
}

/* Appends s with control characters shown as '?', for the text format. */
static size_t put_text(char *out, size_t pos, size_t cap, const char *s, size_t n) {
    for (size_t i = 0; i < n && s[i] && pos + 1 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        out[pos++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    return pos;
}

/* The flat JSON members of `fields` as " k=v" pairs: strings lose their quotes (escapes are
 * kept as written), numbers and literals stay as they are. */
static size_t put_fields_text(char *out, size_t pos, size_t cap, const char *f) {
    while (*f && pos + 4 < cap) {
        if (*f == ',') f++;
        if (*f != '"') break; /* not a member: the caller broke the contract; stop */
        const char *k = ++f;
        while (*f && *f != '"')
            f++;
        size_t klen = (size_t)(f - k);
        if (*f) f++;
        if (*f == ':') f++;
        out[pos++] = ' ';
        pos = put_text(out, pos, cap, k, klen);
        if (pos + 2 < cap) out[pos++] = '=';
        if (*f == '"') {
            const char *v = ++f;
            while (*f && *f != '"')
                f += f[0] == '\\' && f[1] ? 2 : 1;
            pos = put_text(out, pos, cap, v, (size_t)(f - v));
            if (*f) f++;
        } else {
            const char *v = f;
            while (*f && *f != ',')
                f++;
            pos = put_text(out, pos, cap, v, (size_t)(f - v));
        }
    }
    return pos;
}

/* ---- the line's start, without printf (an access line is written per request) -----------------
 */

#define STAMP_BYTES 24 /* "YYYY-MM-DDTHH:MM:SS" and its NUL, with room to spare */

/* Appends v as exactly `width` decimal digits (zero-padded; higher digits dropped). */
static size_t put_digits(char *out, size_t pos, unsigned long v, int width) {
    for (int i = width - 1; i >= 0; i--, v /= 10)
        out[pos + (size_t)i] = (char)('0' + v % 10);
    return pos + (size_t)width;
}

static void stamp_tm(const struct tm *tm, char out[STAMP_BYTES]) {
    const int v[6] = {tm->tm_year + 1900, tm->tm_mon + 1, tm->tm_mday,
                      tm->tm_hour,        tm->tm_min,     tm->tm_sec};
    static const char sep[6] = "--T::";
    size_t pos = 0;
    for (int i = 0; i < 6; i++) {
        pos = put_digits(out, pos, (unsigned long)(v[i] < 0 ? 0 : v[i]), i == 0 ? 4 : 2);
        out[pos++] = sep[i]; /* the last is the NUL */
    }
}

/* The stamp of second t in UTC, made once a second per thread (gmtime_r and snprintf cost more
 * than the rest of an access line). */
static const char *second_stamp(time_t t) {
    static _Thread_local time_t cached = (time_t)-1;
    static _Thread_local char stamp[STAMP_BYTES];
    if (t != cached) {
        struct tm tm;
        gmtime_r(&t, &tm);
        stamp_tm(&tm, stamp);
        cached = t;
    }
    return stamp;
}

/* Appends s, leaving at least 4 bytes of the line free (the closing characters and a NUL). */
static size_t put_str(char *out, size_t pos, size_t cap, const char *s) {
    size_t n = strlen(s);
    if (pos + 4 >= cap) return pos;
    if (n > cap - 4 - pos) n = cap - 4 - pos;
    memcpy(out + pos, s, n);
    return pos + n;
}

/* "<stamp>.<usec, `digits` of its 6>Z", near the start of a line (it has the room). */
static size_t put_time(char *out, size_t pos, const char *stamp, long usec, int digits) {
    size_t n = strlen(stamp);
    memcpy(out + pos, stamp, n);
    pos += n;
    out[pos++] = '.';
    for (int i = digits; i < 6; i++)
        usec /= 10;
    pos = put_digits(out, pos, (unsigned long)usec, digits);
    out[pos++] = 'Z';
    return pos;
}

static size_t format_json(char *line, size_t cap, const char *stamp, long usec, crl_log_level level,
                          const char *event, const char *fields, const char *msg) {
    size_t pos = put_str(line, 0, cap, "{\"timestamp\":\"");
    pos = put_time(line, pos, stamp, usec, 6);
    pos = put_str(line, pos, cap, "\",\"level\":\"");
    pos = put_str(line, pos, cap, level_name(level));
    pos = put_str(line, pos, cap, "\",\"logger\":\"carlarl\",\"event\":\"");
    pos = put_escaped(line, pos, cap, event, strlen(event));
    line[pos++] = '"';
    /* The caller's members go in whole or not at all, so the line stays valid JSON. */
    size_t flen = fields ? strlen(fields) : 0;
    if (flen && pos + flen + 64 < cap) {
        line[pos++] = ',';
        memcpy(line + pos, fields, flen);
        pos += flen;
    }
    pos = put_str(line, pos, cap, ",\"message\":\"");
    pos = put_escaped(line, pos, cap - 3, msg, strlen(msg));
    line[pos++] = '"';
    line[pos++] = '}';
    line[pos++] = '\n';
    return pos;
}

static size_t format_text(char *line, size_t cap, const char *stamp, long usec, crl_log_level level,
                          const char *event, const char *fields, const char *msg) {
    size_t pos = put_time(line, 0, stamp, usec, 3);
    line[pos++] = ' ';
    size_t lv = pos;
    pos = put_str(line, pos, cap, level_name(level));
    while (pos < lv + 5) /* the level left-aligned in 5 columns */
        line[pos++] = ' ';
    line[pos++] = ' ';
    pos = put_text(line, pos, cap - 2, event, strlen(event));
    line[pos++] = ' ';
    pos = put_text(line, pos, cap - 2, msg, strlen(msg));
    if (fields) pos = put_fields_text(line, pos, cap - 2, fields);
    line[pos++] = '\n';
    return pos;
}

/* ---- output -------------------------------------------------------------------------------- */

static void write_all(const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return; /* stderr is gone: nothing better to do with a log line */
        p += w;
        n -= (size_t)w;
    }
}

/* Lines claimed and not yet drained, seen from anywhere (an over-estimate while the logger
 * drains). */
static size_t ring_queued(void) {
    return atomic_load_explicit(&g_head, memory_order_relaxed) -
           atomic_load_explicit(&g_tail, memory_order_relaxed);
}

/* After a producer published a line: wake the logger if it waits for any line, or if it waits
 * for its next poll and this line is urgent or the ring half full. The fence pairs with the
 * logger's: either it sees the line (or the fill) before it waits, or we see it waiting. */
static void wake_logger(int urgent) {
    atomic_thread_fence(memory_order_seq_cst);
    int w = atomic_load_explicit(&g_wait, memory_order_relaxed);
    if (w == WAIT_NONE || (w == WAIT_POLL && !urgent && ring_queued() < RING_SLOTS / 2)) return;
    if (atomic_exchange(&g_wait, WAIT_NONE) != WAIT_NONE) sem_post(&g_wake);
}

/* Queues one line; 0 when the ring is full. urgent: wake the logger now (WARNING and worse). */
static int ring_push(const char *line, size_t len, int urgent) {
    size_t pos = atomic_load_explicit(&g_head, memory_order_relaxed);
    for (;;) {
        slot_t *s = &g_ring[pos & (RING_SLOTS - 1)];
        size_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
        intptr_t dif = (intptr_t)seq - (intptr_t)pos;
        if (dif == 0) {
            if (atomic_compare_exchange_weak_explicit(&g_head, &pos, pos + 1, memory_order_relaxed,
                                                      memory_order_relaxed)) {
                memcpy(s->line, line, len);
                s->len = len;
                atomic_store_explicit(&s->seq, pos + 1, memory_order_release);
                wake_logger(urgent);
                return 1;
            }
        } else if (dif < 0) {
            return 0;
        } else {
            pos = atomic_load_explicit(&g_head, memory_order_relaxed);
        }
    }
}

/* Empties the ring (no producer or logger may run): slot (head + i) expects position head + i.
 * After a stop the head is anywhere, not only at a multiple of RING_SLOTS. */
static void ring_reset(void) {
    size_t head = atomic_load(&g_head);
    for (size_t i = 0; i < RING_SLOTS; i++)
        atomic_store_explicit(&g_ring[(head + i) & (RING_SLOTS - 1)].seq, head + i,
                              memory_order_relaxed);
    atomic_store(&g_tail, head);
}

/* The next line to drain is published. */
static int ring_ready(void) {
    size_t tail = atomic_load_explicit(&g_tail, memory_order_relaxed);
    return atomic_load_explicit(&g_ring[tail & (RING_SLOTS - 1)].seq, memory_order_acquire) ==
           tail + 1;
}

/* Writes every published line, batching them into few write(2) calls, and returns how many.
 * Logger thread only (or the stopping thread once the logger has been joined). */
static size_t ring_drain(void) {
    static char batch[64 * 1024];
    size_t used = 0, n = 0;
    size_t tail = atomic_load_explicit(&g_tail, memory_order_relaxed);
    for (;; n++, tail++) {
        slot_t *s = &g_ring[tail & (RING_SLOTS - 1)];
        if (atomic_load_explicit(&s->seq, memory_order_acquire) != tail + 1) break;
        if (used + s->len > sizeof(batch)) {
            write_all(batch, used);
            used = 0;
        }
        memcpy(batch + used, s->line, s->len);
        used += s->len;
        atomic_store_explicit(&s->seq, tail + RING_SLOTS, memory_order_release);
        atomic_store_explicit(&g_tail, tail + 1, memory_order_relaxed);
    }
    if (used) write_all(batch, used);
    return n;
}

static void emit(crl_log_level level, const char *event, const char *fields, const char *msg);

/* Says, at most once a second, how many lines the full ring cost since it last said. */
static void report_drops(unsigned long long *reported, struct timespec *last) {
    unsigned long long d = atomic_load(&g_dropped);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (d == *reported || now.tv_sec == last->tv_sec) return;
    char fields[64], msg[96];
    snprintf(fields, sizeof(fields), "\"dropped\":%llu", d - *reported);
    snprintf(msg, sizeof(msg), "log ring full: %llu line(s) dropped", d - *reported);
    *reported = d;
    *last = now;
    emit(CRL_LOG_WARNING, "log_dropped", fields, msg);
}

static void *logger_main(void *arg) {
    (void)arg;
    prctl(PR_SET_NAME, "crl-log"); /* so tools (and tests) can tell it from the workers */
    unsigned long long reported = 0;
    struct timespec last = {0, 0};
    int idle = 1; /* the last drain found nothing: wait for the next line, not the next poll */
    while (!atomic_load(&g_stopping)) {
        /* A missed wake-up (none is expected) costs at most a second. */
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        long ns = idle ? 1000000000L : POLL_MS * 1000000L;
        until.tv_sec += (until.tv_nsec + ns) / 1000000000L;
        until.tv_nsec = (until.tv_nsec + ns) % 1000000000L;
        atomic_store(&g_wait, idle ? WAIT_IDLE : WAIT_POLL);
        atomic_thread_fence(memory_order_seq_cst);
        int go = idle ? ring_ready() : ring_queued() >= RING_SLOTS / 2;
        if (!go && !atomic_load(&g_stopping)) {
            while (sem_timedwait(&g_wake, &until) != 0 && errno == EINTR) {
            }
        }
        atomic_store(&g_wait, WAIT_NONE);
        idle = ring_drain() == 0;
        report_drops(&reported, &last);
    }
    ring_drain();
    return NULL;
}

void crl_log_start(void) {
    static int registered;
    pthread_mutex_lock(&g_start_mu);
    if (!atomic_load(&g_async)) {
        ring_reset();
        atomic_store(&g_stopping, 0);
        static int sem_ok;
        if (!sem_ok) sem_ok = sem_init(&g_wake, 0, 0) == 0;
        /* The logger takes no signals: the main thread sigwaits for them. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        if (sem_ok && pthread_create(&g_thread, NULL, logger_main, NULL) == 0)
            atomic_store(&g_async, 1);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (!registered) registered = atexit(crl_log_stop) == 0;
    }
    pthread_mutex_unlock(&g_start_mu);
}

void crl_log_stop(void) {
    pthread_mutex_lock(&g_start_mu);
    if (atomic_load(&g_async)) {
        atomic_store(&g_stopping, 1);
        sem_post(&g_wake);
        pthread_join(g_thread, NULL);
        atomic_store(&g_async, 0);
        /* A line queued while the logger was finishing. The semaphore stays: a late producer
         * may still post it. */
        ring_drain();
    }
    pthread_mutex_unlock(&g_start_mu);
}

static void emit(crl_log_level level, const char *event, const char *fields, const char *msg) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    const char *stamp = second_stamp(ts.tv_sec);
    char line[LINE_MAX_BYTES];
    size_t len =
        atomic_load_explicit(&g_text, memory_order_relaxed)
            ? format_text(line, sizeof(line), stamp, ts.tv_nsec / 1000, level, event, fields, msg)
            : format_json(line, sizeof(line), stamp, ts.tv_nsec / 1000, level, event, fields, msg);
    if (!atomic_load_explicit(&g_async, memory_order_acquire))
        write_all(line, len);
    else if (!ring_push(line, len, level >= CRL_LOG_WARNING))
        atomic_fetch_add_explicit(&g_dropped, 1, memory_order_relaxed);
}

static void vlog(crl_log_level level, const char *event, const char *fields, const char *fmt,
                 va_list ap) {
    char msg[1024];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    emit(level, event ? event : "log", fields, msg);
}

void crl_log(crl_log_level level, const char *event, const char *fmt, ...) {
    if (!crl_log_enabled(level)) return;
    va_list ap;
    va_start(ap, fmt);
    vlog(level, event, NULL, fmt, ap);
    va_end(ap);
}

void crl_log_line(crl_log_level level, const char *event, const char *fields, const char *msg) {
    if (!crl_log_enabled(level)) return;
    emit(level, event ? event : "log", fields, msg);
}

void crl_log_fields(crl_log_level level, const char *event, const char *fields, const char *fmt,
                    ...) {
    if (!crl_log_enabled(level)) return;
    va_list ap;
    va_start(ap, fmt);
    vlog(level, event, fields, fmt, ap);
    va_end(ap);
}
