/* log.h: structured logs on stderr, one flat JSON object per line (never JSON inside a string),
 * or one readable text line per event. Once crl_log_start has run, a request thread never writes:
 * it formats its line into a slot of a lock-free ring that a logger thread drains with write(2);
 * a full ring drops the line and counts it (crl_log_dropped). Before crl_log_start and after
 * crl_log_stop each line is written at once, with a single write(2). */
#ifndef CRL_CORE_LOG_H
#define CRL_CORE_LOG_H

#include <stddef.h>

typedef enum crl_log_level {
    CRL_LOG_DEBUG = 10,
    CRL_LOG_INFO = 20,
    CRL_LOG_WARNING = 30,
    CRL_LOG_ERROR = 40,
    CRL_LOG_CRITICAL = 50,
} crl_log_level;

/* In the order of the logging.format values (config.c). */
typedef enum crl_log_format {
    CRL_LOG_FORMAT_JSON = 0,
    CRL_LOG_FORMAT_TEXT = 1,
    CRL_LOG_FORMAT_AUTO = 2, /* text when stderr is a terminal, else JSON */
} crl_log_format;

/* Parses DEBUG/INFO/WARNING/WARN/ERROR/CRITICAL (any case); returns -1 when unknown. */
int crl_log_level_parse(const char *s);
void crl_log_set_level(crl_log_level level);
int crl_log_enabled(crl_log_level level);
/* AUTO is resolved here, against stderr as it is now. */
void crl_log_set_format(crl_log_format format);
/* The access log (one "http_request" line per response, at INFO): on or off. */
void crl_log_set_access(int on);
int crl_log_access_enabled(void);

/* Starts the logger thread (idempotent); from then on lines go through the ring. crl_log_stop
 * writes what is queued and joins the thread; it is also registered with atexit. */
void crl_log_start(void);
void crl_log_stop(void);
/* Lines dropped because the ring was full, since the process started. */
unsigned long long crl_log_dropped(void);

/* `event` is the machine-readable event name; the message is printf-formatted. */
void crl_log(crl_log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* As crl_log, with `fields`: JSON object members ("\"k\":\"v\",\"n\":1") placed after event.
 * The caller guarantees they are valid, flat JSON members; they are dropped whole if the line
 * has no room. The text format shows them as k=v. */
void crl_log_fields(crl_log_level level, const char *event, const char *fields, const char *fmt,
                    ...) __attribute__((format(printf, 4, 5)));

/* As crl_log_fields with the message already written (no printf): for the access log, one line
 * per request. */
void crl_log_line(crl_log_level level, const char *event, const char *fields, const char *msg);

/* Writes s[0..n) as a quoted, escaped JSON string into out (cap bytes, NUL-terminated); returns
 * its length, or 0 when it does not fit. For building `fields`. */
size_t crl_log_json_str(char *out, size_t cap, const char *s, size_t n);

#define CRL_DEBUG(ev, ...) crl_log(CRL_LOG_DEBUG, ev, __VA_ARGS__)
#define CRL_INFO(ev, ...) crl_log(CRL_LOG_INFO, ev, __VA_ARGS__)
#define CRL_WARN(ev, ...) crl_log(CRL_LOG_WARNING, ev, __VA_ARGS__)
#define CRL_ERROR(ev, ...) crl_log(CRL_LOG_ERROR, ev, __VA_ARGS__)

#endif
