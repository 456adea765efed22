/* log.h: structured logs, one flat JSON object per line on stderr (the original double-encoded its
 * lines; we do not). Thread-safe: each line is written with a single write(2). */
#ifndef CRL_CORE_LOG_H
#define CRL_CORE_LOG_H

typedef enum crl_log_level {
    CRL_LOG_DEBUG = 10,
    CRL_LOG_INFO = 20,
    CRL_LOG_WARNING = 30,
    CRL_LOG_ERROR = 40,
    CRL_LOG_CRITICAL = 50,
} crl_log_level;

/* Parses DEBUG/INFO/WARNING/WARN/ERROR/CRITICAL (any case); returns -1 when unknown. */
int crl_log_level_parse(const char *s);
void crl_log_set_level(crl_log_level level);
int crl_log_enabled(crl_log_level level);

/* `event` is the machine-readable event_type; the message is printf-formatted. */
void crl_log(crl_log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* As crl_log, with `fields`: JSON object members ("\"k\":\"v\",...") placed after event_type.
 * The caller guarantees they are valid JSON; they are dropped whole if the line has no room. */
void crl_log_fields(crl_log_level level, const char *event, const char *fields, const char *fmt,
                    ...) __attribute__((format(printf, 4, 5)));

#define CRL_DEBUG(ev, ...) crl_log(CRL_LOG_DEBUG, ev, __VA_ARGS__)
#define CRL_INFO(ev, ...) crl_log(CRL_LOG_INFO, ev, __VA_ARGS__)
#define CRL_WARN(ev, ...) crl_log(CRL_LOG_WARNING, ev, __VA_ARGS__)
#define CRL_ERROR(ev, ...) crl_log(CRL_LOG_ERROR, ev, __VA_ARGS__)

#endif
