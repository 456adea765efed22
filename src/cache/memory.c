/* memory.c: the in-process LRU. The table is split into shards (the key's low bits pick one), each
 * with its own mutex, hash chains and LRU list over a slab of entries allocated at start-up; every
 * entry owns a value slot for the largest cached request. get and put never allocate. */
#include "cache/internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define NIL UINT32_MAX
#define CRL_CACHE_SHARDS 16u

typedef struct entry {
    uint64_t h0, h1;
    uint64_t expires_ns; /* 0: never */
    uint32_t n;          /* rows */
    uint32_t hnext;      /* hash chain */
    uint32_t prev, next; /* LRU list, head = most recent */
} entry_t;

typedef struct shard {
    pthread_mutex_t mu;
    entry_t *e;
    float *values; /* [cap x max_floats] */
    uint32_t *bucket;
    uint32_t nbucket; /* power of two */
    uint32_t cap, used;
    uint32_t head, tail;
} shard_t;

struct crl_cache_mem {
    shard_t shard[CRL_CACHE_SHARDS];
    size_t max_floats;
    uint64_t ttl_ns;
    uint64_t (*now_ns)(void);
};

static shard_t *shard_of(crl_cache_mem_t *m, const crl_cache_key_t *k) {
    return &m->shard[k->h[0] & (CRL_CACHE_SHARDS - 1)];
}

static uint32_t *chain_of(shard_t *s, const crl_cache_key_t *k) {
    /* The shard used the low bits; the chain takes high ones. */
    return &s->bucket[(uint32_t)(k->h[0] >> 32) & (s->nbucket - 1)];
}

static void lru_unlink(shard_t *s, uint32_t i) {
    entry_t *e = &s->e[i];
    if (e->prev != NIL)
        s->e[e->prev].next = e->next;
    else
        s->head = e->next;
    if (e->next != NIL)
        s->e[e->next].prev = e->prev;
    else
        s->tail = e->prev;
    e->prev = e->next = NIL;
}

static void lru_push_front(shard_t *s, uint32_t i) {
    entry_t *e = &s->e[i];
    e->prev = NIL;
    e->next = s->head;
    if (s->head != NIL) s->e[s->head].prev = i;
    s->head = i;
    if (s->tail == NIL) s->tail = i;
}

/* Unlinks entry i from its hash chain (it must be on it). */
static void chain_remove(shard_t *s, uint32_t i) {
    const entry_t *e = &s->e[i];
    crl_cache_key_t k = {.h = {e->h0, e->h1}, .n = e->n};
    uint32_t *p = chain_of(s, &k);
    while (*p != i)
        p = &s->e[*p].hnext;
    *p = e->hnext;
}

static uint32_t find(shard_t *s, const crl_cache_key_t *k) {
    for (uint32_t i = *chain_of(s, k); i != NIL; i = s->e[i].hnext) {
        const entry_t *e = &s->e[i];
        if (e->h0 == k->h[0] && e->h1 == k->h[1] && e->n == k->n) return i;
    }
    return NIL;
}

static void shard_free(shard_t *s) {
    free(s->e);
    free(s->values);
    free(s->bucket);
}

static int shard_init(shard_t *s, uint32_t cap, size_t max_floats) {
    s->cap = cap;
    s->nbucket = 1;
    while (s->nbucket < 2 * cap)
        s->nbucket <<= 1;
    s->e = calloc(cap, sizeof(*s->e));
    s->values = calloc((size_t)cap * max_floats, sizeof(float));
    s->bucket = malloc(s->nbucket * sizeof(*s->bucket));
    if (s->e == NULL || s->values == NULL || s->bucket == NULL) return -1;
    memset(s->bucket, 0xff, s->nbucket * sizeof(*s->bucket));
    s->head = s->tail = NIL;
    s->used = 0;
    return pthread_mutex_init(&s->mu, NULL) == 0 ? 0 : -1;
}

crl_status crl_cache__mem_new(const crl_cache_opts_t *o, crl_cache_mem_t **out, crl_err *err) {
    crl_cache_mem_t *m = calloc(1, sizeof(*m));
    if (m == NULL) return crl_err_set(err, CRL_ENOMEM, "cache: out of memory");
    m->max_floats = CRL_CACHE__FLOATS(o->max_observations);
    m->ttl_ns = (uint64_t)(o->ttl * 1e9);
    m->now_ns = o->now_ns;
    /* cache.size entries in all, at least one per shard. */
    size_t per = (o->size + CRL_CACHE_SHARDS - 1) / CRL_CACHE_SHARDS;
    if (per > UINT32_MAX / 4) per = UINT32_MAX / 4;
    for (size_t i = 0; i < CRL_CACHE_SHARDS; i++) {
        if (shard_init(&m->shard[i], (uint32_t)per, m->max_floats) != 0) {
            for (size_t j = 0; j <= i; j++)
                shard_free(&m->shard[j]);
            free(m);
            return crl_err_set(err, CRL_ENOMEM,
                               "cache: cannot allocate %zu entries of %zu observations", o->size,
                               o->max_observations);
        }
    }
    *out = m;
    return CRL_OK;
}

void crl_cache__mem_free(crl_cache_mem_t *m) {
    if (m == NULL) return;
    for (size_t i = 0; i < CRL_CACHE_SHARDS; i++) {
        pthread_mutex_destroy(&m->shard[i].mu);
        shard_free(&m->shard[i]);
    }
    free(m);
}

crl_cache_result crl_cache__mem_get(crl_cache_mem_t *m, const crl_cache_key_t *k, float *actions) {
    shard_t *s = shard_of(m, k);
    crl_cache_result r = CRL_CACHE_MISS;
    pthread_mutex_lock(&s->mu);
    uint32_t i = find(s, k);
    if (i != NIL) {
        entry_t *e = &s->e[i];
        if (e->expires_ns != 0 && m->now_ns() >= e->expires_ns) {
            /* Expired: free the slot now rather than let it age out of the LRU. */
            chain_remove(s, i);
            lru_unlink(s, i);
            e->hnext = NIL;
            e->n = 0;
            /* Keep it reusable: move it to the tail (the next to be taken). */
            e->prev = s->tail;
            e->next = NIL;
            if (s->tail != NIL) s->e[s->tail].next = i;
            s->tail = i;
            if (s->head == NIL) s->head = i;
            e->h0 = e->h1 = 0;
        } else {
            lru_unlink(s, i);
            lru_push_front(s, i);
            memcpy(actions, s->values + (size_t)i * m->max_floats,
                   CRL_CACHE__FLOATS(k->n) * sizeof(float));
            r = CRL_CACHE_HIT;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return r;
}

/* A slot for a new entry: an unused one, else the least recently used (or an expired one parked at
 * the tail), unhooked from its chain. */
static uint32_t take_slot(shard_t *s) {
    if (s->used < s->cap) return s->used++;
    uint32_t i = s->tail;
    entry_t *e = &s->e[i];
    if (e->n != 0) chain_remove(s, i);
    lru_unlink(s, i);
    return i;
}

void crl_cache__mem_put(crl_cache_mem_t *m, const crl_cache_key_t *k, const float *actions) {
    shard_t *s = shard_of(m, k);
    pthread_mutex_lock(&s->mu);
    uint32_t i = find(s, k);
    if (i != NIL) {
        lru_unlink(s, i);
    } else {
        i = take_slot(s);
        entry_t *e = &s->e[i];
        e->h0 = k->h[0];
        e->h1 = k->h[1];
        e->n = k->n;
        uint32_t *c = chain_of(s, k);
        e->hnext = *c;
        *c = i;
    }
    entry_t *e = &s->e[i];
    e->expires_ns = m->ttl_ns ? m->now_ns() + m->ttl_ns : 0;
    memcpy(s->values + (size_t)i * m->max_floats, actions, CRL_CACHE__FLOATS(k->n) * sizeof(float));
    lru_push_front(s, i);
    pthread_mutex_unlock(&s->mu);
}
