/* config.h: carlarl's configuration. One declarative table (config.c) drives the YAML files, the
 * environment, the command line, `carlarl config` and docs/configuration.md. Precedence:
 * command line > environment > file (--config / CONFIG_FILE, over --profile / CARLARL_PROFILE) >
 * defaults. Every value remembers where it came from. */
#ifndef CRL_CONFIG_CONFIG_H
#define CRL_CONFIG_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/buf.h"
#include "core/status.h"

#define CRL_LIST_MAX 32
#define CRL_ITEM_MAX 256

typedef struct crl_strlist {
    size_t n;
    char items[CRL_LIST_MAX][CRL_ITEM_MAX];
} crl_strlist_t;

enum { CRL_DEVICE_AUTO, CRL_DEVICE_CPU, CRL_DEVICE_CUDA, CRL_DEVICE_MPS };
enum { CRL_PRECISION_FLOAT32, CRL_PRECISION_FLOAT16, CRL_PRECISION_BFLOAT16, CRL_PRECISION_INT8 };

typedef enum crl_src_kind {
    CRL_SRC_DEFAULT,
    CRL_SRC_FILE,
    CRL_SRC_ENV,
    CRL_SRC_CLI,
} crl_src_kind;

typedef struct crl_src {
    crl_src_kind kind;
    char where[192]; /* "config/production.yaml:12", "env SERVER_PORT", "--port" */
} crl_src_t;

#define CRL_CONFIG_MAX_OPTS 96

typedef struct crl_config {
    struct {
        char host[256];
        long port;
        long workers; /* 0: optimization.cpu_threads, else online CPUs */
        uint64_t max_request_size;
        double request_timeout; /* seconds */
        long gzip_min_size;
        char worker_cpus[256]; /* cpulist; "" = no pinning */
        char git_sha[64];
    } server;
    struct {
        char artifact_dir[4096];
        char version[128];
        int device;
        int precision;
        int use_gpu;
        long batch_size;
        long max_batch_size;
        int optimize;
        int use_tensorrt, use_mps, use_neon, use_neural_engine;
    } model;
    struct {
        int enable_sse, enable_avx, enable_avx2, enable_avx512, enable_neon, enable_mkl;
        char isa[16];           /* auto, generic, avx2, avx512, neon */
        long cpu_threads;       /* 0 = auto */
        long compute_threads;   /* threads sharing one large batch (1: no split) */
        long parallel_min_rows; /* smallest batch that is split; 0 = measured at load */
        char compute_cpus[256]; /* cpulist for the helper threads; "" = see the doc */
        int memory_pinning;
        int huge_pages; /* madvise(MADV_HUGEPAGE) the workspace arenas */
        long numa_node; /* -1 = no binding */
        long cache_size;
        int enable_cuda, enable_tensorrt, enable_mps, enable_neural_engine;
        double gpu_memory_fraction;
        char memory_efficiency[16];
        uint64_t unified_memory_limit;
        char cuda_visible_devices[64];
    } optimization;
    struct {
        int enabled;
        long max_batch_size;     /* rows per forward pass */
        long max_queue_delay_us; /* how long the oldest request waits for company */
        crl_strlist_t preferred_batch_sizes;
        long max_queue_rows;  /* beyond it: overflow_status */
        long overflow_status; /* 503 (with Retry-After) or 429 */
        long retry_after;     /* seconds, the Retry-After of an overflow answer */
        long timeout_ms;      /* a request still queued after this gets 503, no compute spent */
        char cpus[256];       /* cpulist for the batcher thread; "" = see the doc */
    } batching;
    struct {
        int backend; /* crl_cache_backend: none, memory, redis */
        long size;
        double ttl; /* seconds; 0: until evicted */
        long max_observations;
        char host[256];
        long port;
        long db;
        char password[256];
        char key_prefix[128];
        long timeout_ms;
        long retry_ms;
    } cache;
    struct {
        int level;      /* index into DEBUG..CRITICAL; crl_log_level is (level + 1) * 10 */
        int format;     /* crl_log_format: json, text, auto */
        int access_log; /* one http_request line per response, at INFO */
    } logging;
    struct {
        int enabled;              /* per-request metrics, stage timings and tracing */
        double trace_sample_rate; /* 0..1: share of new traces marked sampled */
        char metrics_path[256];   /* where GET serves the Prometheus exposition; starts with / */
        long metrics_port;        /* 0: metrics_path on server.port; else its own listener */
    } monitoring;
    struct {
        crl_strlist_t cors_origins;
        crl_strlist_t allowed_hosts;
    } security;

    /* Where each value came from (indexed like the option table) and the files read. */
    crl_src_t src[CRL_CONFIG_MAX_OPTS];
    char profile_path[4096]; /* "" when none */
    char config_path[4096];  /* "" when none */
} crl_config_t;

/* What a command line holds besides option values. */
typedef struct crl_config_args {
    const char *command; /* "serve", "config", "predict" (for messages) */
    int help;            /* --help */
    const char *check;   /* config --check FILE */
    int markdown;        /* config --markdown: the reference page */
} crl_config_args_t;

/* Loads defaults, then the profile and config files, the environment and argv (which must not
 * include the command name). Errors are "file:line: key: reason", "env NAME: reason" or
 * "--flag: reason" (with a suggestion for near-miss names); the caller exits 2 on them. */
crl_status crl_config_load(crl_config_t *c, int argc, char **argv, crl_config_args_t *args,
                           crl_err *err);
/* Re-reads the files over the current environment and command line into a new config (SIGHUP).
 * argv is the command line given at start. */
crl_status crl_config_reload(const crl_config_t *old, crl_config_t *out, int argc, char **argv,
                             crl_err *err);
/* Validates one file alone (config --check). */
crl_status crl_config_check_file(const char *path, crl_err *err);

/* Logs one warning per option set away from its default that has no effect here, saying why. */
void crl_config_warn_no_effect(const crl_config_t *c);
/* For a reload: logs which changed options apply live and which need a restart; returns the
 * number of changed options that need a restart. */
int crl_config_diff(const crl_config_t *old, const crl_config_t *cur);

/* `carlarl config`: the effective configuration as YAML, each value with its source. */
void crl_config_write_yaml(const crl_config_t *c, crl_buf *out);
/* docs/configuration.md. */
void crl_config_write_markdown(crl_buf *out);
void crl_config_usage(FILE *f, const char *command);

/* Helpers for consumers. */
/* Where section.key's value came from ("default", "file:line", "env NAME", "--flag"). */
const char *crl_config_where(const crl_config_t *c, const char *section, const char *key);
const char *crl_config_device_name(int device);
const char *crl_config_precision_name(int precision);

#endif
