/* options.h: what `carlarl serve` reads today: the original's environment variables and matching
 * command-line flags (CLI wins). The YAML configuration system (a later issue) replaces this
 * struct's sources, not its consumers. */
#ifndef CRL_SERVER_OPTIONS_H
#define CRL_SERVER_OPTIONS_H

#include <stddef.h>
#include <stdio.h>

#include "core/status.h"

#define CRL_MAX_LIST 32

typedef struct crl_str_list {
    size_t n;
    char *items[CRL_MAX_LIST];
} crl_str_list_t;

typedef struct crl_server_options {
    char host[256];
    int port;
    int workers; /* 0 = online CPUs */
    char artifact_dir[4096];
    char model_version[128]; /* pin; "" = none */
    int use_gpu;             /* accepted; CPU-only build: warns */
    char log_level[16];
    crl_str_list_t cors_origins;  /* "*" = any */
    crl_str_list_t allowed_hosts; /* "*" = any */
    char git_sha[64];
    size_t max_body_size;   /* bytes; default 16 MiB */
    int request_timeout_ms; /* HTTP/1 request/keep-alive deadline */
    int gzip_min_size;      /* bytes; default 1000 (the guide's GZipMiddleware minimum_size) */
} crl_server_options_t;

void crl_server_options_defaults(crl_server_options_t *o);
/* Reads HOST, PORT, WORKERS, ARTIFACT_DIR, MODEL_VERSION, USE_GPU, LOG_LEVEL, CORS_ORIGINS,
 * ALLOWED_HOSTS, GIT_SHA, MAX_REQUEST_SIZE. */
crl_status crl_server_options_from_env(crl_server_options_t *o, crl_err *err);
/* Parses `serve` flags from argv[0..argc). CRL_EINVAL with a message on a bad flag;
 * *want_help = 1 for --help. */
crl_status crl_server_options_from_args(crl_server_options_t *o, int argc, char **argv,
                                        int *want_help, crl_err *err);
void crl_server_options_usage(FILE *f);
void crl_server_options_free(crl_server_options_t *o);

#endif
