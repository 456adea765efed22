/* test_pool.c: the compute pool (core/pool.h) runs every task of a job exactly once, on valid
 * slots, with the helpers taking part; a submitter that finds the pool busy runs its job alone at
 * once instead of waiting; several threads submitting at once all get their jobs done; a split
 * forward pass (nn/split.h) called from several threads at once gives every caller its own
 * answer. Run it under the tsan preset too (cmake --preset tsan). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "core/pool.h"
#include "core/time.h"
#include "model/example.h"
#include "nn/split.h"

#define MAX_TASKS 64

typedef struct count_job {
    atomic_int ran[MAX_TASKS];
    atomic_int bad_slot;
    atomic_int on_helper; /* tasks that ran on a slot other than 0 */
    size_t slots;
    unsigned spin_ns; /* busy time per task, so helpers get a chance to join */
} count_job;

static void count_task(void *ctx, size_t task, size_t slot) {
    count_job *j = ctx;
    atomic_fetch_add(&j->ran[task], 1);
    if (slot >= j->slots) atomic_fetch_add(&j->bad_slot, 1);
    if (slot != 0) atomic_fetch_add(&j->on_helper, 1);
    uint64_t t0 = crl_time_mono_ns();
    while (crl_time_mono_ns() - t0 < j->spin_ns) {
    }
}

static void check_once(count_job *j, size_t n) {
    for (size_t t = 0; t < MAX_TASKS; t++)
        assert_int_equal(atomic_load(&j->ran[t]), t < n ? 1 : 0);
    assert_int_equal(atomic_load(&j->bad_slot), 0);
}

static void test_every_task_once(void **state) {
    (void)state;
    for (size_t threads = 1; threads <= 4; threads++) {
        crl_pool_t *p = NULL;
        assert_int_equal(crl_pool_new(threads, &p), CRL_OK);
        assert_int_equal(crl_pool_threads(p), threads);
        const size_t sizes[] = {0, 1, 2, 3, 4, 5, 17, MAX_TASKS};
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
            for (int rep = 0; rep < 20; rep++) {
                count_job j = {.slots = threads};
                int par = crl_pool_run(p, sizes[i], count_task, &j);
                check_once(&j, sizes[i]);
                /* One task, or no helper: the submitter runs it all. */
                if (threads == 1 || sizes[i] < 2) assert_int_equal(par, 0);
                if (!par) assert_int_equal(atomic_load(&j.on_helper), 0);
            }
        crl_pool_free(p);
    }
    /* No pool: the submitter runs everything. */
    count_job j = {.slots = 1};
    assert_int_equal(crl_pool_run(NULL, 5, count_task, &j), 0);
    check_once(&j, 5);
    assert_int_equal(crl_pool_threads(NULL), 1);
    crl_pool_free(NULL);
    crl_pool_t *p = NULL;
    assert_int_equal(crl_pool_new(0, &p), CRL_ERANGE);
    assert_int_equal(crl_pool_new(257, &p), CRL_ERANGE);
}

/* With tasks that take a while, the helpers do take some (the pool is not just a loop). */
static void test_helpers_take_part(void **state) {
    (void)state;
    crl_pool_t *p = NULL;
    assert_int_equal(crl_pool_new(2, &p), CRL_OK);
    int helped = 0;
    for (int rep = 0; rep < 50 && !helped; rep++) {
        count_job j = {.slots = 2, .spin_ns = 2000000};
        assert_int_equal(crl_pool_run(p, 8, count_task, &j), 1);
        check_once(&j, 8);
        helped = atomic_load(&j.on_helper) > 0;
    }
    assert_true(helped);
    crl_pool_free(p);
}

/* ---- a busy pool ------------------------------------------------------------------------------
 */

typedef struct hold_job {
    atomic_int started, release;
} hold_job;

static void hold_task(void *ctx, size_t task, size_t slot) {
    (void)task;
    (void)slot;
    hold_job *h = ctx;
    atomic_fetch_add(&h->started, 1);
    while (!atomic_load(&h->release)) {
    }
}

typedef struct holder {
    crl_pool_t *p;
    hold_job job;
} holder;

static void *hold_main(void *arg) {
    holder *h = arg;
    crl_pool_run(h->p, 2, hold_task, &h->job);
    return NULL;
}

static void test_busy_runs_inline(void **state) {
    (void)state;
    holder h = {0};
    assert_int_equal(crl_pool_new(2, &h.p), CRL_OK);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, hold_main, &h), 0);
    while (atomic_load(&h.job.started) == 0) {
    }
    /* The pool is held by the other thread's job: this one must not wait for it. */
    count_job j = {.slots = 1};
    uint64_t t0 = crl_time_mono_ns();
    assert_int_equal(crl_pool_run(h.p, 10, count_task, &j), 0);
    uint64_t dt = crl_time_mono_ns() - t0;
    check_once(&j, 10);
    assert_int_equal(atomic_load(&j.on_helper), 0);
    assert_true(dt < 1000000000ull);
    atomic_store(&h.job.release, 1);
    assert_int_equal(pthread_join(t, NULL), 0);
    /* Free again: the helpers take part once more. */
    count_job k = {.slots = 2};
    assert_int_equal(crl_pool_run(h.p, 4, count_task, &k), 1);
    check_once(&k, 4);
    crl_pool_free(h.p);
}

/* ---- many submitters ---------------------------------------------------------------------- */

typedef struct submitter {
    crl_pool_t *p;
    int failures;
} submitter;

static void *submit_main(void *arg) {
    submitter *s = arg;
    for (int rep = 0; rep < 300; rep++) {
        count_job j = {.slots = crl_pool_threads(s->p)};
        size_t n = 1 + (size_t)rep % MAX_TASKS;
        crl_pool_run(s->p, n, count_task, &j);
        for (size_t t = 0; t < MAX_TASKS; t++)
            if (atomic_load(&j.ran[t]) != (t < n ? 1 : 0)) s->failures++;
        if (atomic_load(&j.bad_slot)) s->failures++;
    }
    return NULL;
}

static void test_concurrent_submitters(void **state) {
    (void)state;
    crl_pool_t *p = NULL;
    assert_int_equal(crl_pool_new(3, &p), CRL_OK);
    submitter s[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        s[i] = (submitter){.p = p};
        assert_int_equal(pthread_create(&t[i], NULL, submit_main, &s[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(s[i].failures, 0);
    }
    crl_pool_free(p);
}

/* ---- split forward passes from several threads at once ------------------------------------ */

#define ROWS 256
#define CALLERS 4

typedef struct caller {
    const crl_nn_graph_t *g;
    crl_nn_split_t *s;
    const float *x;    /* [ROWS x 5], this caller's own observations */
    const float *want; /* [ROWS x 3], the unsplit answer */
    int failures;
} caller;

static void *caller_main(void *arg) {
    caller *c = arg;
    crl_nn_ws_t *ws = NULL;
    if (crl_nn_ws_new(c->g, ROWS, &ws) != CRL_OK) {
        c->failures++;
        return NULL;
    }
    float y[ROWS * 3];
    for (int rep = 0; rep < 200; rep++) {
        size_t rows = rep % 2 ? ROWS : 65;
        memset(y, 0, sizeof(y));
        if (crl_nn_split_run(c->s, c->g, ws, c->x, rows, y) != CRL_OK ||
            memcmp(y, c->want, rows * 3 * sizeof(float)) != 0)
            c->failures++;
    }
    crl_nn_ws_free(ws);
    return NULL;
}

static void test_concurrent_split_callers(void **state) {
    (void)state;
    crl_nn_graph_t *g = NULL;
    crl_err err = {{0}};
    assert_int_equal(crl_example_graph(&g, &err), CRL_OK);
    crl_pool_t *p = NULL;
    crl_nn_split_t *s = NULL;
    assert_int_equal(crl_pool_new(3, &p), CRL_OK);
    assert_int_equal(crl_nn_split_new(g, p, 2, ROWS, &s), CRL_OK);
    crl_nn_ws_t *ws = NULL;
    assert_int_equal(crl_nn_ws_new(g, ROWS, &ws), CRL_OK);
    static float x[CALLERS][ROWS * 5], want[CALLERS][ROWS * 3];
    caller c[CALLERS];
    pthread_t t[CALLERS];
    for (int i = 0; i < CALLERS; i++) {
        for (size_t k = 0; k < ROWS * 5; k++)
            x[i][k] = (float)((k * 7 + (size_t)i * 13) % 29) * 0.1f - 1.0f;
        assert_int_equal(crl_nn_run(g, ws, x[i], ROWS, want[i]), CRL_OK);
        c[i] = (caller){.g = g, .s = s, .x = x[i], .want = want[i]};
    }
    for (int i = 0; i < CALLERS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, caller_main, &c[i]), 0);
    for (int i = 0; i < CALLERS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(c[i].failures, 0);
    }
    crl_nn_ws_free(ws);
    crl_nn_split_free(s);
    crl_pool_free(p);
    crl_nn_graph_free(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_task_once),
        cmocka_unit_test(test_helpers_take_part),
        cmocka_unit_test(test_busy_runs_inline),
        cmocka_unit_test(test_concurrent_submitters),
        cmocka_unit_test(test_concurrent_split_callers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
