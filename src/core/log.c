/* log.c: flat JSON log lines. */
#include "core/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static _Atomic int g_level = CRL_LOG_INFO;

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

/* Appends s JSON-escaped; stops quietly when the line is full. */
static size_t put_escaped(char *out, size_t pos, size_t cap, const char *s) {
    for (; *s && pos + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[pos++] = '\\';
            out[pos++] = (char)c;
        } else if (c < 0x20) {
            pos += (size_t)snprintf(out + pos, cap - pos, "\\u%04x", c);
        } else {
            out[pos++] = (char)c;
        }
    }
    return pos;
}

static void vlog(crl_log_level level, const char *event, const char *fields, const char *fmt,
                 va_list ap) {
    char msg[1024];
    vsnprintf(msg, sizeof(msg), fmt, ap);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char line[1600];
    size_t pos = (size_t)snprintf(line, sizeof(line),
                                  "{\"timestamp\":\"%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ\","
                                  "\"level\":\"%s\",\"logger\":\"carlarl\",\"event_type\":\"",
                                  tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                                  tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000, level_name(level));
    pos = put_escaped(line, pos, sizeof(line), event ? event : "log");
    line[pos++] = '"';
    /* The caller's members go in whole or not at all, so the line stays valid JSON. */
    size_t flen = fields ? strlen(fields) : 0;
    if (flen && pos + flen + 16 < sizeof(line) / 2) {
        line[pos++] = ',';
        memcpy(line + pos, fields, flen);
        pos += flen;
    }
    pos += (size_t)snprintf(line + pos, sizeof(line) - pos, ",\"message\":\"");
    pos = put_escaped(line, pos, sizeof(line), msg);
    if (pos + 3 > sizeof(line)) pos = sizeof(line) - 3;
    line[pos++] = '"';
    line[pos++] = '}';
    line[pos++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, pos);
    (void)w;
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
