/* internal.h: what the cache's files share. Not for use outside src/cache. */
#ifndef CRL_CACHE_INTERNAL_H
#define CRL_CACHE_INTERNAL_H

#include "cache/cache.h"

/* Bytes of one stored value: the rows then the [rows x 3] floats. */
#define CRL_CACHE__FLOATS(rows) ((size_t)(rows)*3u)

typedef struct crl_cache_mem crl_cache_mem_t;
typedef struct crl_cache_redis crl_cache_redis_t;

struct crl_cache {
    crl_cache_opts_t o;
    char host[256];
    char password[256];
    char key_prefix[256];
    crl_cache_mem_t *mem;
};

struct crl_cache_local {
    crl_cache_t *c;
    crl_cache_redis_t *redis; /* NULL for memory */
};

/* memory.c */
crl_status crl_cache__mem_new(const crl_cache_opts_t *o, crl_cache_mem_t **out, crl_err *err);
void crl_cache__mem_free(crl_cache_mem_t *m);
crl_cache_result crl_cache__mem_get(crl_cache_mem_t *m, const crl_cache_key_t *k, float *actions);
void crl_cache__mem_put(crl_cache_mem_t *m, const crl_cache_key_t *k, const float *actions);

/* redis.c */
crl_status crl_cache__redis_new(crl_cache_t *c, crl_cache_redis_t **out, crl_err *err);
void crl_cache__redis_free(crl_cache_redis_t *r);
crl_cache_result crl_cache__redis_get(crl_cache_redis_t *r, const crl_cache_key_t *k,
                                      float *actions);
crl_cache_result crl_cache__redis_put(crl_cache_redis_t *r, const crl_cache_key_t *k,
                                      const float *actions);

#endif
