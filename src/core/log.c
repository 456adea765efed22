/* log.c: flat JSON (or text) log lines, written by a logger thread so that no request thread
 * blocks on stderr. The ring is a bounded MPSC queue (Vyukov's, one sequence number per slot):
 * a producer claims a slot with one CAS, copies its line in and publishes it; the logger thread
 * takes slots in order. A full ring drops the line; nothing on that path allocates or locks. */
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
static size_t g_tail;          /* next slot the logger takes; the logger's alone */
static _Atomic int g_async;    /* the logger thread is running: lines go through the ring */
static _Atomic int g_stopping; /* crl_log_stop asked the logger to finish */
static _Atomic unsigned long long g_dropped;
static _Atomic int g_sleeping; /* the logger waits on g_wake: the next producer posts it */
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

static size_t format_json(char *line, size_t cap, const struct tm *tm, long usec,
                          crl_log_level level, const char *event, const char *fields,
                          const char *msg) {
    size_t pos = (size_t)snprintf(line, cap,
                                  "{\"timestamp\":\"%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ\","
                                  "\"level\":\"%s\",\"logger\":\"carlarl\",\"event\":\"",
                                  tm->tm_year + 1900, tm->tm_mon + 1, tm->tm_mday, tm->tm_hour,
                                  tm->tm_min, tm->tm_sec, usec, level_name(level));
    pos = put_escaped(line, pos, cap, event, strlen(event));
    line[pos++] = '"';
    /* The caller's members go in whole or not at all, so the line stays valid JSON. */
    size_t flen = fields ? strlen(fields) : 0;
    if (flen && pos + flen + 64 < cap) {
        line[pos++] = ',';
        memcpy(line + pos, fields, flen);
        pos += flen;
    }
    pos += (size_t)snprintf(line + pos, cap - pos, ",\"message\":\"");
    pos = put_escaped(line, pos, cap - 3, msg, strlen(msg));
    line[pos++] = '"';
    line[pos++] = '}';
    line[pos++] = '\n';
    return pos;
}

static size_t format_text(char *line, size_t cap, const struct tm *tm, long usec,
                          crl_log_level level, const char *event, const char *fields,
                          const char *msg) {
    size_t pos = (size_t)snprintf(line, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s ",
                                  tm->tm_year + 1900, tm->tm_mon + 1, tm->tm_mday, tm->tm_hour,
                                  tm->tm_min, tm->tm_sec, usec / 1000, level_name(level));
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

/* Queues one line; 0 when the ring is full. */
static int ring_push(const char *line, size_t len) {
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
                /* One sem_post (a futex syscall) per wake-up, not per line. The fence pairs with
                 * the logger's: either it sees this line before sleeping or we see it asleep. A
                 * wake-up missed anyway costs at most the logger's one-second timeout. */
                atomic_thread_fence(memory_order_seq_cst);
                if (atomic_load_explicit(&g_sleeping, memory_order_relaxed) &&
                    atomic_exchange(&g_sleeping, 0))
                    sem_post(&g_wake);
                return 1;
            }
        } else if (dif < 0) {
            return 0;
        } else {
            pos = atomic_load_explicit(&g_head, memory_order_relaxed);
        }
    }
}

/* Writes every published line, batching them into few write(2) calls. Logger thread only (or
 * the stopping thread once the logger has been joined). */
static void ring_drain(void) {
    static char batch[64 * 1024];
    size_t used = 0;
    for (;;) {
        slot_t *s = &g_ring[g_tail & (RING_SLOTS - 1)];
        if (atomic_load_explicit(&s->seq, memory_order_acquire) != g_tail + 1) break;
        if (used + s->len > sizeof(batch)) {
            write_all(batch, used);
            used = 0;
        }
        memcpy(batch + used, s->line, s->len);
        used += s->len;
        atomic_store_explicit(&s->seq, g_tail + RING_SLOTS, memory_order_release);
        g_tail++;
    }
    if (used) write_all(batch, used);
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
    while (!atomic_load(&g_stopping)) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        atomic_store(&g_sleeping, 1);
        atomic_thread_fence(memory_order_seq_cst);
        slot_t *next = &g_ring[g_tail & (RING_SLOTS - 1)];
        if (atomic_load_explicit(&next->seq, memory_order_acquire) != g_tail + 1 &&
            !atomic_load(&g_stopping)) {
            while (sem_timedwait(&g_wake, &until) != 0 && errno == EINTR) {
            }
        }
        atomic_store(&g_sleeping, 0);
        ring_drain();
        report_drops(&reported, &last);
    }
    ring_drain();
    return NULL;
}

void crl_log_start(void) {
    static int registered;
    pthread_mutex_lock(&g_start_mu);
    if (!atomic_load(&g_async)) {
        for (size_t i = 0; i < RING_SLOTS; i++)
            atomic_store_explicit(&g_ring[i].seq, atomic_load(&g_head) + i, memory_order_relaxed);
        g_tail = atomic_load(&g_head);
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
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char line[LINE_MAX_BYTES];
    size_t len =
        atomic_load_explicit(&g_text, memory_order_relaxed)
            ? format_text(line, sizeof(line), &tm, ts.tv_nsec / 1000, level, event, fields, msg)
            : format_json(line, sizeof(line), &tm, ts.tv_nsec / 1000, level, event, fields, msg);
    if (!atomic_load_explicit(&g_async, memory_order_acquire))
        write_all(line, len);
    else if (!ring_push(line, len))
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

void crl_log_fields(crl_log_level level, const char *event, const char *fields, const char *fmt,
                    ...) {
    if (!crl_log_enabled(level)) return;
    va_list ap;
    va_start(ap, fmt);
    vlog(level, event, fields, fmt, ap);
    va_end(ap);
}
