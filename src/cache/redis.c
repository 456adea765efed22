/* redis.c: the Redis backend (hiredis), one connection per worker. The key is key_prefix followed
 * by the 128-bit key in hex and the row count; the value is the [rows x 3] float32 actions in
 * little-endian byte order behind a 4-byte tag. Every failure is a CRL_CACHE_ERROR for the caller
 * to count and compute through; a broken connection is dropped and retried after retry_ms, so a
 * dead Redis costs one failed connect per worker per retry_ms, not one per request. */
#include "cache/internal.h"

#include <hiredis/hiredis.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

static const char k_tag[4] = {'C', 'R', 'L', '1'};

struct crl_cache_redis {
    crl_cache_t *c;
    redisContext *ctx;
    uint64_t retry_at_ns;
    char key[320];
    size_t key_len;
    /* The value being written or compared; sized for max_observations at start-up. */
    unsigned char *val;
    size_t val_cap;
};

crl_status crl_cache__redis_new(crl_cache_t *c, crl_cache_redis_t **out, crl_err *err) {
    crl_cache_redis_t *r = calloc(1, sizeof(*r));
    if (r == NULL) return crl_err_set(err, CRL_ENOMEM, "cache: out of memory");
    r->c = c;
    r->val_cap = sizeof(k_tag) + CRL_CACHE__FLOATS(c->o.max_observations) * sizeof(float);
    r->val = malloc(r->val_cap);
    if (r->val == NULL) {
        free(r);
        return crl_err_set(err, CRL_ENOMEM, "cache: out of memory");
    }
    *out = r;
    return CRL_OK;
}

static void drop(crl_cache_redis_t *r, const char *why) {
    static _Atomic int warned;
    if (r->ctx) {
        if (atomic_exchange(&warned, 1) == 0)
            CRL_WARN("cache", "redis %s:%d: %s; computing without the cache", r->c->host,
                     r->c->o.port, why);
        redisFree(r->ctx);
        r->ctx = NULL;
    }
    r->retry_at_ns = r->c->o.now_ns() + (uint64_t)r->c->o.retry_ms * 1000000u;
}

void crl_cache__redis_free(crl_cache_redis_t *r) {
    if (r == NULL) return;
    if (r->ctx) redisFree(r->ctx);
    free(r->val);
    free(r);
}

/* Runs one command; 0 when the reply is not an error. Drops the connection on I/O errors. */
static int command_ok(crl_cache_redis_t *r, redisReply *rep) {
    if (rep == NULL) {
        drop(r, r->ctx->errstr[0] ? r->ctx->errstr : "no reply");
        return -1;
    }
    int ok = rep->type != REDIS_REPLY_ERROR;
    freeReplyObject(rep);
    return ok ? 0 : -1;
}

static int connect_(crl_cache_redis_t *r) {
    if (r->ctx) return 0;
    const crl_cache_opts_t *o = &r->c->o;
    if (o->now_ns() < r->retry_at_ns) return -1;
    struct timeval tv = {.tv_sec = o->timeout_ms / 1000, .tv_usec = (o->timeout_ms % 1000) * 1000};
    r->ctx = redisConnectWithTimeout(r->c->host, o->port, tv);
    if (r->ctx == NULL || r->ctx->err) {
        if (r->ctx == NULL) {
            r->retry_at_ns = o->now_ns() + (uint64_t)o->retry_ms * 1000000u;
            return -1;
        }
        drop(r, r->ctx->errstr);
        return -1;
    }
    if (redisSetTimeout(r->ctx, tv) != REDIS_OK) {
        drop(r, "cannot set the timeout");
        return -1;
    }
    if (r->c->password[0] && command_ok(r, redisCommand(r->ctx, "AUTH %s", r->c->password)) != 0) {
        if (r->ctx) drop(r, "AUTH failed");
        return -1;
    }
    if (o->db != 0 && command_ok(r, redisCommand(r->ctx, "SELECT %d", o->db)) != 0) {
        if (r->ctx) drop(r, "SELECT failed");
        return -1;
    }
    return 0;
}

static void make_key(crl_cache_redis_t *r, const crl_cache_key_t *k) {
    int n = snprintf(r->key, sizeof(r->key), "%s%016llx%016llx:%u", r->c->key_prefix,
                     (unsigned long long)k->h[0], (unsigned long long)k->h[1], (unsigned)k->n);
    r->key_len = n < 0 ? 0 : (size_t)n < sizeof(r->key) ? (size_t)n : sizeof(r->key) - 1;
}

crl_cache_result crl_cache__redis_get(crl_cache_redis_t *r, const crl_cache_key_t *k,
                                      float *actions) {
    if (connect_(r) != 0) return CRL_CACHE_ERROR;
    make_key(r, k);
    redisReply *rep = redisCommand(r->ctx, "GET %b", r->key, r->key_len);
    if (rep == NULL) {
        drop(r, r->ctx->errstr[0] ? r->ctx->errstr : "no reply");
        return CRL_CACHE_ERROR;
    }
    crl_cache_result res = CRL_CACHE_MISS;
    size_t want = sizeof(k_tag) + CRL_CACHE__FLOATS(k->n) * sizeof(float);
    if (rep->type == REDIS_REPLY_ERROR) {
        res = CRL_CACHE_ERROR;
    } else if (rep->type == REDIS_REPLY_STRING && (size_t)rep->len == want &&
               memcmp(rep->str, k_tag, sizeof(k_tag)) == 0) {
        /* Stored little-endian; every supported target is little-endian. */
        memcpy(actions, rep->str + sizeof(k_tag), want - sizeof(k_tag));
        res = CRL_CACHE_HIT;
    }
    freeReplyObject(rep);
    return res;
}

crl_cache_result crl_cache__redis_put(crl_cache_redis_t *r, const crl_cache_key_t *k,
                                      const float *actions) {
    if (connect_(r) != 0) return CRL_CACHE_ERROR;
    make_key(r, k);
    size_t len = sizeof(k_tag) + CRL_CACHE__FLOATS(k->n) * sizeof(float);
    memcpy(r->val, k_tag, sizeof(k_tag));
    memcpy(r->val + sizeof(k_tag), actions, len - sizeof(k_tag));
    long long px = (long long)(r->c->o.ttl * 1000.0);
    if (r->c->o.ttl > 0 && px < 1) px = 1; /* a sub-millisecond ttl must not mean "forever" */
    redisReply *rep =
        px > 0 ? redisCommand(r->ctx, "SET %b %b PX %lld", r->key, r->key_len, r->val, len, px)
               : redisCommand(r->ctx, "SET %b %b", r->key, r->key_len, r->val, len);
    return command_ok(r, rep) == 0 ? CRL_CACHE_HIT : CRL_CACHE_ERROR;
}
