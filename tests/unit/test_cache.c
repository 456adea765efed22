/* test_cache.c: the response cache (cache/cache.h). SipHash-2-4-128 against the reference vector
 * and fed in pieces; keys change with the model version, its hashes, the deterministic flag, the
 * rows and every feature bit; the memory backend returns exact copies, evicts the least recently
 * used entry of a shard first, expires entries by an injected clock, spreads keys over its shards,
 * and is safe from several threads at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "cache/cache.c"
#include "cache/memory.c"

static uint64_t g_now;
static uint64_t fake_now(void) {
    return g_now;
}

static crl_cache_t *mem_cache(size_t size, double ttl) {
    crl_cache_opts_t o = {.backend = CRL_CACHE_MEMORY,
                          .size = size,
                          .ttl = ttl,
                          .max_observations = 4,
                          .now_ns = fake_now};
    crl_cache_t *c = NULL;
    assert_int_equal(crl_cache_new(&o, &c, NULL), CRL_OK);
    assert_non_null(c);
    return c;
}

static void test_siphash_reference(void **state) {
    (void)state;
    uint8_t k[16], out[16];
    for (int i = 0; i < 16; i++)
        k[i] = (uint8_t)i;
    static const uint8_t want[16] = {0xa3, 0x81, 0x7f, 0x04, 0xba, 0x25, 0xa8, 0xe6,
                                     0x6d, 0xf6, 0x72, 0x14, 0xc7, 0x55, 0x02, 0x93};
    crl_cache__siphash128(k, "", 0, out);
    assert_memory_equal(out, want, 16);
}

static void test_key_pieces_and_sensitivity(void **state) {
    (void)state;
    const char *h1[] = {"aa", "bb"}, *h2[] = {"aa", "bc"};
    crl_cache_model_id_t v1 = crl_cache_model_id("v1.0.0", h1, 2);
    crl_cache_model_id_t v1b = crl_cache_model_id("v1.0.0", h1, 2);
    crl_cache_model_id_t v2 = crl_cache_model_id("v2.0.0", h1, 2);
    crl_cache_model_id_t v1w = crl_cache_model_id("v1.0.0", h2, 2);
    assert_memory_equal(&v1, &v1b, sizeof(v1));
    assert_memory_not_equal(&v1, &v2, sizeof(v1));
    assert_memory_not_equal(&v1, &v1w, sizeof(v1)); /* new weights under an old label */
    float x[10];
    for (int i = 0; i < 10; i++)
        x[i] = 0.1f * (float)i;
    crl_cache_key_t a = crl_cache_key(&v1, 1, x, 2, 5);
    crl_cache_key_t b = crl_cache_key(&v1, 1, x, 2, 5);
    assert_memory_equal(a.h, b.h, sizeof(a.h));
    crl_cache_key_t c = crl_cache_key(&v2, 1, x, 2, 5);
    crl_cache_key_t d = crl_cache_key(&v1, 0, x, 2, 5);
    crl_cache_key_t e = crl_cache_key(&v1, 1, x, 1, 10);
    assert_memory_not_equal(a.h, c.h, sizeof(a.h));
    assert_memory_not_equal(a.h, d.h, sizeof(a.h));
    assert_memory_not_equal(a.h, e.h, sizeof(a.h));
    /* One bit of one feature (-0.0 vs 0.0 too: the key is the bytes). */
    x[0] = -0.0f;
    crl_cache_key_t f = crl_cache_key(&v1, 1, x, 2, 5);
    assert_memory_not_equal(a.h, f.h, sizeof(a.h));
    /* Incremental feeding equals one shot, for every split point. */
    uint8_t buf[40], one[16];
    for (int i = 0; i < 40; i++)
        buf[i] = (uint8_t)(i * 7 + 3);
    for (size_t len = 0; len <= 40; len++) {
        crl_cache__siphash128(k_sip_key, buf, len, one);
        for (size_t cut = 0; cut <= len; cut++) {
            sip_t s;
            uint64_t h[2];
            sip_init(&s, k_sip_key);
            sip_update(&s, buf, cut);
            sip_update(&s, buf + cut, len - cut);
            sip_final(&s, h);
            assert_memory_equal(h, one, 16);
        }
    }
}

static crl_cache_key_t key_in_shard(unsigned shard, unsigned i, uint32_t n) {
    crl_cache_key_t k = {.h = {((uint64_t)i << 32) | shard, 0x1234u + i}, .n = n};
    return k;
}

static void test_exact_copy_and_miss(void **state) {
    (void)state;
    crl_cache_t *c = mem_cache(64, 0);
    crl_cache_local_t *l = NULL;
    assert_int_equal(crl_cache_local_new(c, &l, NULL), CRL_OK);
    float a[12], got[12];
    uint32_t bits[12] = {0x3eec8a3bu, 0x00000000u, 0x80000000u, 0x7f7fffffu,
                         0x00000001u, 0xbf800000u, 1u,          2u,
                         3u,          4u,          5u,          6u};
    memcpy(a, bits, sizeof(a));
    crl_cache_key_t k = key_in_shard(3, 1, 4);
    assert_int_equal(crl_cache_get(l, &k, got), CRL_CACHE_MISS);
    crl_cache_put(l, &k, a);
    memset(got, 0xab, sizeof(got));
    assert_int_equal(crl_cache_get(l, &k, got), CRL_CACHE_HIT);
    assert_memory_equal(got, bits, sizeof(bits));
    /* Same hash, other row count: a different key. */
    crl_cache_key_t k2 = k;
    k2.n = 2;
    assert_int_equal(crl_cache_get(l, &k2, got), CRL_CACHE_MISS);
    /* Larger than max_observations: never stored. */
    crl_cache_key_t big = key_in_shard(3, 9, 5);
    crl_cache_put(l, &big, a);
    assert_int_equal(crl_cache_get(l, &big, got), CRL_CACHE_MISS);
    crl_cache_local_free(l);
    crl_cache_free(c);
}

static void test_lru_eviction_order(void **state) {
    (void)state;
    /* 64 entries in 16 shards: 4 per shard. */
    crl_cache_t *c = mem_cache(64, 0);
    crl_cache_local_t *l = NULL;
    assert_int_equal(crl_cache_local_new(c, &l, NULL), CRL_OK);
    float v[3] = {1, 2, 3}, got[3];
    for (unsigned i = 0; i < 4; i++) {
        crl_cache_key_t k = key_in_shard(5, i, 1);
        v[0] = (float)i;
        crl_cache_put(l, &k, v);
    }
    crl_cache_key_t k0 = key_in_shard(5, 0, 1), k1 = key_in_shard(5, 1, 1);
    assert_int_equal(crl_cache_get(l, &k0, got), CRL_CACHE_HIT); /* 0 is now the most recent */
    crl_cache_key_t k4 = key_in_shard(5, 4, 1);
    crl_cache_put(l, &k4, v); /* evicts 1, the least recently used */
    assert_int_equal(crl_cache_get(l, &k1, got), CRL_CACHE_MISS);
    assert_int_equal(crl_cache_get(l, &k0, got), CRL_CACHE_HIT);
    assert_true(got[0] == 0.0f);
    for (unsigned i = 2; i <= 4; i++) {
        crl_cache_key_t k = key_in_shard(5, i, 1);
        assert_int_equal(crl_cache_get(l, &k, got), CRL_CACHE_HIT);
    }
    /* Another shard is untouched by this one's pressure. */
    crl_cache_key_t other = key_in_shard(6, 0, 1);
    crl_cache_put(l, &other, v);
    assert_int_equal(crl_cache_get(l, &other, got), CRL_CACHE_HIT);
    /* Overwriting keeps one entry and the new value. */
    v[0] = 42;
    crl_cache_put(l, &k0, v);
    assert_int_equal(crl_cache_get(l, &k0, got), CRL_CACHE_HIT);
    assert_true(got[0] == 42.0f);
    crl_cache_local_free(l);
    crl_cache_free(c);
}

static void test_ttl_expiry(void **state) {
    (void)state;
    g_now = 1000;
    crl_cache_t *c = mem_cache(32, 2.0);
    crl_cache_local_t *l = NULL;
    assert_int_equal(crl_cache_local_new(c, &l, NULL), CRL_OK);
    float v[3] = {1, 2, 3}, got[3];
    crl_cache_key_t k = key_in_shard(1, 1, 1);
    crl_cache_put(l, &k, v);
    g_now += 1999999999ull;
    assert_int_equal(crl_cache_get(l, &k, got), CRL_CACHE_HIT);
    g_now += 1;
    assert_int_equal(crl_cache_get(l, &k, got), CRL_CACHE_MISS);
    assert_int_equal(crl_cache_get(l, &k, got), CRL_CACHE_MISS);
    /* The expired slot is reused; the shard keeps working at capacity. */
    for (unsigned i = 0; i < 10; i++) {
        crl_cache_key_t ki = key_in_shard(1, 10 + i, 1);
        crl_cache_put(l, &ki, v);
        assert_int_equal(crl_cache_get(l, &ki, got), CRL_CACHE_HIT);
    }
    crl_cache_put(l, &k, v);
    assert_int_equal(crl_cache_get(l, &k, got), CRL_CACHE_HIT);
    crl_cache_local_free(l);
    crl_cache_free(c);
}

static void test_shard_distribution(void **state) {
    (void)state;
    crl_cache_model_id_t id = crl_cache_model_id("v1.0.0", NULL, 0);
    unsigned count[CRL_CACHE_SHARDS] = {0};
    for (unsigned i = 0; i < 16000; i++) {
        float x[3] = {(float)i, 0.5f, -1.0f};
        crl_cache_key_t k = crl_cache_key(&id, 1, x, 1, 3);
        count[k.h[0] & (CRL_CACHE_SHARDS - 1)]++;
    }
    for (unsigned s = 0; s < CRL_CACHE_SHARDS; s++)
        assert_true(count[s] > 800 && count[s] < 1200);
}

typedef struct hammer {
    crl_cache_t *c;
    unsigned seed;
    int bad;
} hammer_t;

static void *hammer_main(void *arg) {
    hammer_t *h = arg;
    crl_cache_local_t *l = NULL;
    if (crl_cache_local_new(h->c, &l, NULL) != CRL_OK) return NULL;
    for (unsigned i = 0; i < 20000; i++) {
        unsigned id = (i * 2654435761u + h->seed) % 500;
        crl_cache_key_t k = key_in_shard(id % 16, id, 1);
        float v[3] = {(float)id, (float)id + 1, (float)id + 2}, got[3];
        if (crl_cache_get(l, &k, got) == CRL_CACHE_HIT) {
            if (memcmp(got, v, sizeof(v)) != 0) h->bad = 1;
        } else {
            crl_cache_put(l, &k, v);
        }
    }
    crl_cache_local_free(l);
    return NULL;
}

static void test_threads(void **state) {
    (void)state;
    crl_cache_t *c = mem_cache(256, 0);
    pthread_t t[4];
    hammer_t h[4];
    for (int i = 0; i < 4; i++) {
        h[i] = (hammer_t){.c = c, .seed = (unsigned)i * 7919u};
        pthread_create(&t[i], NULL, hammer_main, &h[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_false(h[i].bad);
    }
    crl_cache_free(c);
}

static void test_none_backend(void **state) {
    (void)state;
    crl_cache_opts_t o = {.backend = CRL_CACHE_NONE};
    crl_cache_t *c = (crl_cache_t *)1;
    assert_int_equal(crl_cache_new(&o, &c, NULL), CRL_OK);
    assert_null(c);
    crl_cache_local_t *l = (crl_cache_local_t *)1;
    assert_int_equal(crl_cache_local_new(NULL, &l, NULL), CRL_OK);
    assert_null(l);
    crl_cache_key_t k = {.h = {1, 2}, .n = 1};
    float v[3];
    assert_int_equal(crl_cache_get(NULL, &k, v), CRL_CACHE_MISS);
    crl_cache_free(NULL);
    crl_cache_local_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_siphash_reference),
        cmocka_unit_test(test_key_pieces_and_sensitivity),
        cmocka_unit_test(test_exact_copy_and_miss),
        cmocka_unit_test(test_lru_eviction_order),
        cmocka_unit_test(test_ttl_expiry),
        cmocka_unit_test(test_shard_distribution),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_none_backend),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
