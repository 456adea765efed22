/* cache.h: the POST /predict response cache (cache.backend: memory | redis | none).
 *
 * A key is a 128-bit SipHash-2-4 of (model identity, deterministic flag, rows, row width, the
 * exact preprocessed feature bytes); the model identity hashes the version label and the card's
 * artifact hashes, so a new version (or new weights under an old label) never meets an old
 * answer. The value is the [n x 3] action floats the model produced, copied bit for bit, so a hit
 * writes exactly the response the model would have produced. Only deterministic requests are
 * cached; the caller decides that.
 *
 * memory: one process-wide table of cache.size entries split into shards with a mutex each, LRU
 * per shard, every entry (key and value slot for cache.max_observations rows) preallocated at
 * start-up: get and put never allocate.
 * redis: one hiredis connection per worker (crl_cache_local_t), connected lazily with
 * cache.timeout_ms for connect and commands; after an error the connection is dropped and retried
 * no sooner than cache.retry_ms later. Every failure reads as a miss (CRL_CACHE_ERROR) and the
 * request is computed as if there were no cache. hiredis allocates its replies, so this backend is
 * not allocation-free. */
#ifndef CRL_CACHE_CACHE_H
#define CRL_CACHE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef enum crl_cache_backend {
    CRL_CACHE_NONE,
    CRL_CACHE_MEMORY,
    CRL_CACHE_REDIS,
} crl_cache_backend;

typedef enum crl_cache_result {
    CRL_CACHE_HIT,
    CRL_CACHE_MISS,
    CRL_CACHE_ERROR, /* the backend failed: treat as a miss, count it */
} crl_cache_result;

typedef struct crl_cache_opts {
    crl_cache_backend backend;
    size_t size;             /* memory: entries in all */
    double ttl;              /* seconds an entry lives; 0: until evicted */
    size_t max_observations; /* rows of the largest request cached */
    const char *host;        /* redis */
    int port;
    int db;
    const char *password; /* "" or NULL: no AUTH */
    const char *key_prefix;
    int timeout_ms;
    int retry_ms;
    uint64_t (*now_ns)(void); /* monotonic clock; NULL: crl_time_mono_ns (tests inject one) */
} crl_cache_opts_t;

typedef struct crl_cache_key {
    uint64_t h[2];
    uint32_t n; /* rows */
} crl_cache_key_t;

/* A model's identity for keys: the version label and every artifact hash of its card. */
typedef struct crl_cache_model_id {
    uint64_t h[2];
} crl_cache_model_id_t;

typedef struct crl_cache crl_cache_t;             /* process-wide */
typedef struct crl_cache_local crl_cache_local_t; /* one per worker thread */

/* NONE gives *out = NULL (and every call below accepts a NULL cache). */
crl_status crl_cache_new(const crl_cache_opts_t *o, crl_cache_t **out, crl_err *err);
void crl_cache_free(crl_cache_t *c); /* NULL-safe; after every local is freed */
crl_status crl_cache_local_new(crl_cache_t *c, crl_cache_local_t **out, crl_err *err);
void crl_cache_local_free(crl_cache_local_t *l); /* NULL-safe */

crl_cache_backend crl_cache_backend_of(const crl_cache_t *c); /* NONE for NULL */
const char *crl_cache_backend_name(crl_cache_backend b);      /* "none", "memory", "redis" */
size_t crl_cache_max_observations(const crl_cache_t *c);      /* 0 for NULL */

/* `hashes` is `n` lowercase hex strings; any may be NULL. */
crl_cache_model_id_t crl_cache_model_id(const char *version, const char *const *hashes, size_t n);
crl_cache_key_t crl_cache_key(const crl_cache_model_id_t *model, int deterministic, const float *x,
                              size_t rows, size_t width);

/* get: on a hit copies key->n * 3 floats into actions. put: stores them (errors are reported,
 * never fatal). Safe from any thread through that thread's own local. */
crl_cache_result crl_cache_get(crl_cache_local_t *l, const crl_cache_key_t *key, float *actions);
crl_cache_result crl_cache_put(crl_cache_local_t *l, const crl_cache_key_t *key,
                               const float *actions);

/* SipHash-2-4 with a 128-bit output over data[0..len) with the 16-byte key k (exposed for the
 * unit test against the reference vectors). */
void crl_cache__siphash128(const uint8_t k[16], const void *data, size_t len, uint8_t out[16]);

#endif
