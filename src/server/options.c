/* options.c: environment variables and flags of `carlarl serve`. */
#include "server/options.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"

void crl_server_options_defaults(crl_server_options_t *o) {
    memset(o, 0, sizeof(*o));
    snprintf(o->host, sizeof(o->host), "127.0.0.1");
    o->port = 8080;
    snprintf(o->artifact_dir, sizeof(o->artifact_dir), "artifacts");
    snprintf(o->log_level, sizeof(o->log_level), "INFO");
    o->cors_origins.items[o->cors_origins.n++] = strdup("*");
    o->allowed_hosts.items[o->allowed_hosts.n++] = strdup("*");
    o->max_body_size = 16u << 20;
    o->request_timeout_ms = 10000;
    o->gzip_min_size = 1000;
}

static void list_clear(crl_str_list_t *l) {
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i]);
    l->n = 0;
}

void crl_server_options_free(crl_server_options_t *o) {
    list_clear(&o->cors_origins);
    list_clear(&o->allowed_hosts);
}

/* Comma-separated, whitespace-trimmed (the original did not trim), empty items dropped. */
static crl_status list_parse(crl_str_list_t *l, const char *name, const char *s, crl_err *err) {
    list_clear(l);
    while (*s) {
        const char *e = strchr(s, ',');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        const char *a = s, *b = s + len;
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        if (b > a) {
            if (l->n == CRL_MAX_LIST)
                return crl_err_set(err, CRL_ERANGE, "%s: at most %d entries", name, CRL_MAX_LIST);
            l->items[l->n++] = strndup(a, (size_t)(b - a));
        }
        s += len + (e != NULL);
    }
    if (l->n == 0) return crl_err_set(err, CRL_EINVAL, "%s: empty list", name);
    return CRL_OK;
}

static crl_status int_parse(const char *name, const char *s, long lo, long hi, long *out,
                            crl_err *err) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0')
        return crl_err_set(err, CRL_EINVAL, "%s: '%s' is not an integer", name, s);
    if (v < lo || v > hi)
        return crl_err_set(err, CRL_ERANGE, "%s: %ld is outside %ld..%ld", name, v, lo, hi);
    *out = v;
    return CRL_OK;
}

/* Sizes: plain bytes or with a K/M/G suffix (KiB multiples), e.g. 16M, 1048576. */
static crl_status size_parse(const char *name, const char *s, size_t *out, crl_err *err) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *s == '-')
        return crl_err_set(err, CRL_EINVAL, "%s: '%s' is not a size", name, s);
    unsigned long long mul = 1;
    if (*end == 'k' || *end == 'K')
        mul = 1ull << 10, end++;
    else if (*end == 'm' || *end == 'M')
        mul = 1ull << 20, end++;
    else if (*end == 'g' || *end == 'G')
        mul = 1ull << 30, end++;
    if (*end == 'i') end++;
    if (*end == 'B' || *end == 'b') end++;
    if (*end != '\0') return crl_err_set(err, CRL_EINVAL, "%s: '%s' is not a size", name, s);
    v *= mul;
    if (v < 1024 || v > (1ull << 30))
        return crl_err_set(err, CRL_ERANGE, "%s: %s is outside 1KiB..1GiB", name, s);
    *out = (size_t)v;
    return CRL_OK;
}

static crl_status bool_parse(const char *name, const char *s, int *out, crl_err *err) {
    static const char *t[] = {"1", "true", "yes", "on"}, *f[] = {"0", "false", "no", "off", ""};
    for (size_t i = 0; i < 4; i++)
        if (strcasecmp(s, t[i]) == 0) return *out = 1, CRL_OK;
    for (size_t i = 0; i < 5; i++)
        if (strcasecmp(s, f[i]) == 0) return *out = 0, CRL_OK;
    return crl_err_set(err, CRL_EINVAL, "%s: '%s' is not a boolean", name, s);
}

static crl_status copy_str(char *dst, size_t cap, const char *name, const char *s, crl_err *err) {
    if (strlen(s) >= cap) return crl_err_set(err, CRL_ERANGE, "%s: value too long", name);
    memcpy(dst, s, strlen(s) + 1);
    return CRL_OK;
}

/* One setter per option, shared by the environment and the flags. */
static crl_status set_opt(crl_server_options_t *o, const char *key, const char *name, const char *v,
                          crl_err *err) {
    long n;
    crl_status st;
    if (strcmp(key, "host") == 0) return copy_str(o->host, sizeof(o->host), name, v, err);
    if (strcmp(key, "port") == 0) {
        if ((st = int_parse(name, v, 0, 65535, &n, err)) == CRL_OK) o->port = (int)n;
        return st;
    }
    if (strcmp(key, "workers") == 0) {
        if ((st = int_parse(name, v, 0, 256, &n, err)) == CRL_OK) o->workers = (int)n;
        return st;
    }
    if (strcmp(key, "artifact-dir") == 0)
        return copy_str(o->artifact_dir, sizeof(o->artifact_dir), name, v, err);
    if (strcmp(key, "model-version") == 0)
        return copy_str(o->model_version, sizeof(o->model_version), name, v, err);
    if (strcmp(key, "use-gpu") == 0) return bool_parse(name, v, &o->use_gpu, err);
    if (strcmp(key, "log-level") == 0) {
        if (crl_log_level_parse(v) < 0)
            return crl_err_set(err, CRL_EINVAL,
                               "%s: '%s' is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL", name,
                               v);
        return copy_str(o->log_level, sizeof(o->log_level), name, v, err);
    }
    if (strcmp(key, "cors-origins") == 0) return list_parse(&o->cors_origins, name, v, err);
    if (strcmp(key, "allowed-hosts") == 0) return list_parse(&o->allowed_hosts, name, v, err);
    if (strcmp(key, "git-sha") == 0) return copy_str(o->git_sha, sizeof(o->git_sha), name, v, err);
    if (strcmp(key, "max-body-size") == 0) return size_parse(name, v, &o->max_body_size, err);
    if (strcmp(key, "request-timeout-ms") == 0) {
        if ((st = int_parse(name, v, 100, 3600000, &n, err)) == CRL_OK)
            o->request_timeout_ms = (int)n;
        return st;
    }
    if (strcmp(key, "gzip-min-size") == 0) {
        if ((st = int_parse(name, v, 0, 1 << 30, &n, err)) == CRL_OK) o->gzip_min_size = (int)n;
        return st;
    }
    return crl_err_set(err, CRL_EINVAL, "unknown option '%s'", name);
}

static const struct {
    const char *env, *key;
} k_env[] = {
    {"HOST", "host"},
    {"PORT", "port"},
    {"WORKERS", "workers"},
    {"ARTIFACT_DIR", "artifact-dir"},
    {"MODEL_VERSION", "model-version"},
    {"USE_GPU", "use-gpu"},
    {"LOG_LEVEL", "log-level"},
    {"CORS_ORIGINS", "cors-origins"},
    {"ALLOWED_HOSTS", "allowed-hosts"},
    {"GIT_SHA", "git-sha"},
    {"MAX_REQUEST_SIZE", "max-body-size"},
    {"REQUEST_TIMEOUT_MS", "request-timeout-ms"},
    {"GZIP_MIN_SIZE", "gzip-min-size"},
};

crl_status crl_server_options_from_env(crl_server_options_t *o, crl_err *err) {
    for (size_t i = 0; i < sizeof(k_env) / sizeof(k_env[0]); i++) {
        const char *v = getenv(k_env[i].env);
        if (v == NULL) continue;
        char name[64];
        snprintf(name, sizeof(name), "env %s", k_env[i].env);
        crl_status st = set_opt(o, k_env[i].key, name, v, err);
        if (st != CRL_OK) return st;
    }
    return CRL_OK;
}

crl_status crl_server_options_from_args(crl_server_options_t *o, int argc, char **argv,
                                        int *want_help, crl_err *err) {
    *want_help = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            *want_help = 1;
            return CRL_OK;
        }
        if (strncmp(a, "--", 2) != 0)
            return crl_err_set(err, CRL_EINVAL, "unexpected argument '%s'", a);
        char key[64];
        const char *eq = strchr(a, '='), *val;
        size_t klen = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        if (klen >= sizeof(key)) return crl_err_set(err, CRL_EINVAL, "unknown option '%s'", a);
        memcpy(key, a + 2, klen);
        key[klen] = '\0';
        if (eq) {
            val = eq + 1;
        } else {
            if (i + 1 >= argc) return crl_err_set(err, CRL_EINVAL, "option '%s' needs a value", a);
            val = argv[++i];
        }
        char name[80];
        snprintf(name, sizeof(name), "--%s", key);
        crl_status st = set_opt(o, key, name, val, err);
        if (st != CRL_OK) return st;
    }
    return CRL_OK;
}

void crl_server_options_usage(FILE *f) {
    fputs("usage: carlarl serve [options]\n"
          "\n"
          "Serves the newest stable policy version under the artifact directory over HTTP\n"
          "(the built-in example policy when there is none).\n"
          "\n"
          "options (environment variable in brackets; flags win):\n"
          "  --host ADDR              listen address [HOST] (127.0.0.1)\n"
          "  --port N                 listen port, 0 = any free port [PORT] (8080)\n"
          "  --workers N              event-loop threads, 0 = online CPUs [WORKERS] (0)\n"
          "  --artifact-dir DIR       artifact root holding vX.Y.Z/ [ARTIFACT_DIR] (artifacts)\n"
          "  --model-version V        serve this version [MODEL_VERSION]\n"
          "  --use-gpu BOOL           request CUDA; this build is CPU-only [USE_GPU] (0)\n"
          "  --log-level LEVEL        DEBUG|INFO|WARNING|ERROR|CRITICAL [LOG_LEVEL] (INFO)\n"
          "  --cors-origins LIST      comma list of allowed origins [CORS_ORIGINS] (*)\n"
          "  --allowed-hosts LIST     comma list of Host patterns [ALLOWED_HOSTS] (*)\n"
          "  --git-sha SHA            reported by /healthz [GIT_SHA] (build commit)\n"
          "  --max-body-size SIZE     request body cap, e.g. 16M [MAX_REQUEST_SIZE] (16M)\n"
          "  --request-timeout-ms N   HTTP/1 request and keep-alive deadline\n"
          "                           [REQUEST_TIMEOUT_MS] (10000)\n"
          "  --gzip-min-size N        gzip responses of at least N bytes [GZIP_MIN_SIZE] (1000)\n"
          "  -h, --help               this text\n",
          f);
}
