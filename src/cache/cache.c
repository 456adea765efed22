/* cache.c: the response cache's front: keys (SipHash-2-4, 128-bit output) and the dispatch to the
 * memory or redis backend. */
#include "cache/internal.h"

#include <stdlib.h>
#include <string.h>

#include "core/time.h"

/* ---- SipHash-2-4, 128-bit output, fed incrementally ------------------------------------------ */

typedef struct sip {
    uint64_t v0, v1, v2, v3;
    uint8_t tail[8];
    size_t ntail, total;
} sip_t;

static inline uint64_t rotl(uint64_t x, int b) {
    return (x << b) | (x >> (64 - b));
}

static inline uint64_t load64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static inline void round_(sip_t *s) {
    s->v0 += s->v1;
    s->v1 = rotl(s->v1, 13);
    s->v1 ^= s->v0;
    s->v0 = rotl(s->v0, 32);
    s->v2 += s->v3;
    s->v3 = rotl(s->v3, 16);
    s->v3 ^= s->v2;
    s->v0 += s->v3;
    s->v3 = rotl(s->v3, 21);
    s->v3 ^= s->v0;
    s->v2 += s->v1;
    s->v1 = rotl(s->v1, 17);
    s->v1 ^= s->v2;
    s->v2 = rotl(s->v2, 32);
}

static void sip_init(sip_t *s, const uint8_t k[16]) {
    uint64_t k0 = load64(k), k1 = load64(k + 8);
    s->v0 = 0x736f6d6570736575ULL ^ k0;
    s->v1 = 0x646f72616e646f6dULL ^ k1;
    s->v2 = 0x6c7967656e657261ULL ^ k0;
    s->v3 = 0x7465646279746573ULL ^ k1;
    s->v1 ^= 0xee; /* 128-bit output */
    s->ntail = s->total = 0;
}

static void sip_block(sip_t *s, uint64_t m) {
    s->v3 ^= m;
    round_(s);
    round_(s);
    s->v0 ^= m;
}

static void sip_update(sip_t *s, const void *data, size_t len) {
    const uint8_t *p = data;
    s->total += len;
    while (len && s->ntail) { /* finish a partial block first */
        s->tail[s->ntail++] = *p++;
        len--;
        if (s->ntail == 8) {
            sip_block(s, load64(s->tail));
            s->ntail = 0;
        }
    }
    for (; len >= 8; p += 8, len -= 8)
        sip_block(s, load64(p));
    memcpy(s->tail + s->ntail, p, len);
    s->ntail += len;
}

static void sip_final(sip_t *s, uint64_t out[2]) {
    uint64_t b = (uint64_t)s->total << 56;
    for (size_t i = 0; i < s->ntail; i++)
        b |= (uint64_t)s->tail[i] << (8 * i);
    sip_block(s, b);
    s->v2 ^= 0xee;
    for (int i = 0; i < 4; i++)
        round_(s);
    out[0] = s->v0 ^ s->v1 ^ s->v2 ^ s->v3;
    s->v1 ^= 0xdd;
    for (int i = 0; i < 4; i++)
        round_(s);
    out[1] = s->v0 ^ s->v1 ^ s->v2 ^ s->v3;
}

void crl_cache__siphash128(const uint8_t k[16], const void *data, size_t len, uint8_t out[16]) {
    sip_t s;
    uint64_t h[2];
    sip_init(&s, k);
    sip_update(&s, data, len);
    sip_final(&s, h);
    for (int i = 0; i < 8; i++) {
        out[i] = (uint8_t)(h[0] >> (8 * i));
        out[8 + i] = (uint8_t)(h[1] >> (8 * i));
    }
}

/* A fixed key: replicas sharing one Redis must agree on keys. Not a secret: the cache holds
 * nothing a client could not compute by asking. */
static const uint8_t k_sip_key[16] = "carlarl-cache-01";

crl_cache_model_id_t crl_cache_model_id(const char *version, const char *const *hashes, size_t n) {
    sip_t s;
    crl_cache_model_id_t id;
    sip_init(&s, k_sip_key);
    sip_update(&s, version ? version : "", strlen(version ? version : "") + 1);
    for (size_t i = 0; i < n; i++)
        if (hashes[i]) sip_update(&s, hashes[i], strlen(hashes[i]) + 1);
    sip_final(&s, id.h);
    return id;
}

crl_cache_key_t crl_cache_key(const crl_cache_model_id_t *model, int deterministic, const float *x,
                              size_t rows, size_t width) {
    sip_t s;
    crl_cache_key_t k;
    uint8_t hdr[16 + 1 + 8];
    for (int i = 0; i < 8; i++) {
        hdr[i] = (uint8_t)(model->h[0] >> (8 * i));
        hdr[8 + i] = (uint8_t)(model->h[1] >> (8 * i));
    }
    hdr[16] = deterministic ? 1 : 0;
    uint32_t r = (uint32_t)rows, w = (uint32_t)width;
    memcpy(hdr + 17, &r, 4);
    memcpy(hdr + 21, &w, 4);
    sip_init(&s, k_sip_key);
    sip_update(&s, hdr, sizeof(hdr));
    sip_update(&s, x, rows * width * sizeof(float));
    sip_final(&s, k.h);
    k.n = r;
    return k;
}

/* ---- front ----------------------------------------------------------------------------------- */

static uint64_t mono_ns(void) {
    return crl_time_mono_ns();
}

static void copy_str(char *dst, size_t cap, const char *src) {
    size_t n = src ? strlen(src) : 0;
    if (n >= cap) n = cap - 1;
    if (n) memcpy(dst, src, n);
    dst[n] = '\0';
}

crl_status crl_cache_new(const crl_cache_opts_t *o, crl_cache_t **out, crl_err *err) {
    *out = NULL;
    if (o->backend == CRL_CACHE_NONE) return CRL_OK;
    if (o->max_observations == 0 || (o->backend == CRL_CACHE_MEMORY && o->size == 0))
        return crl_err_set(err, CRL_EINVAL, "cache: size and max_observations must be positive");
    crl_cache_t *c = calloc(1, sizeof(*c));
    if (c == NULL) return crl_err_set(err, CRL_ENOMEM, "cache: out of memory");
    c->o = *o;
    if (c->o.now_ns == NULL) c->o.now_ns = mono_ns;
    copy_str(c->host, sizeof(c->host), o->host);
    copy_str(c->password, sizeof(c->password), o->password);
    copy_str(c->key_prefix, sizeof(c->key_prefix), o->key_prefix);
    c->o.host = c->host;
    c->o.password = c->password;
    c->o.key_prefix = c->key_prefix;
    if (o->backend == CRL_CACHE_MEMORY) {
        crl_status st = crl_cache__mem_new(&c->o, &c->mem, err);
        if (st != CRL_OK) {
            free(c);
            return st;
        }
    }
    *out = c;
    return CRL_OK;
}

void crl_cache_free(crl_cache_t *c) {
    if (c == NULL) return;
    crl_cache__mem_free(c->mem);
    free(c);
}

crl_status crl_cache_local_new(crl_cache_t *c, crl_cache_local_t **out, crl_err *err) {
    *out = NULL;
    if (c == NULL) return CRL_OK;
    crl_cache_local_t *l = calloc(1, sizeof(*l));
    if (l == NULL) return crl_err_set(err, CRL_ENOMEM, "cache: out of memory");
    l->c = c;
    if (c->o.backend == CRL_CACHE_REDIS) {
        crl_status st = crl_cache__redis_new(c, &l->redis, err);
        if (st != CRL_OK) {
            free(l);
            return st;
        }
    }
    *out = l;
    return CRL_OK;
}

void crl_cache_local_free(crl_cache_local_t *l) {
    if (l == NULL) return;
    crl_cache__redis_free(l->redis);
    free(l);
}

crl_cache_backend crl_cache_backend_of(const crl_cache_t *c) {
    return c ? c->o.backend : CRL_CACHE_NONE;
}

const char *crl_cache_backend_name(crl_cache_backend b) {
    return b == CRL_CACHE_MEMORY ? "memory" : b == CRL_CACHE_REDIS ? "redis" : "none";
}

size_t crl_cache_max_observations(const crl_cache_t *c) {
    return c ? c->o.max_observations : 0;
}

crl_cache_result crl_cache_get(crl_cache_local_t *l, const crl_cache_key_t *key, float *actions) {
    if (l == NULL || key->n == 0 || key->n > l->c->o.max_observations) return CRL_CACHE_MISS;
    if (l->redis) return crl_cache__redis_get(l->redis, key, actions);
    return crl_cache__mem_get(l->c->mem, key, actions);
}

crl_cache_result crl_cache_put(crl_cache_local_t *l, const crl_cache_key_t *key,
                               const float *actions) {
    if (l == NULL || key->n == 0 || key->n > l->c->o.max_observations) return CRL_CACHE_MISS;
    if (l->redis) return crl_cache__redis_put(l->redis, key, actions);
    crl_cache__mem_put(l->c->mem, key, actions);
    return CRL_CACHE_HIT;
}
