/* pool.c: the compute threads (pool.h). One job slot guarded by `run_mu` (taken with trylock, so a
 * second submitter runs its job alone instead of waiting); the job itself is published under `mu`
 * with a generation number, and tasks are handed out by an atomic counter.
 *
 * A helper that finishes a job spins on the generation for a short while before it sleeps on the
 * condition variable: back-to-back batches then start without a futex wake-up (tens of
 * microseconds on a virtual machine), and an idle pool costs nothing after that while. */
#include "core/pool.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/time.h"

/* How long an idle helper watches for the next job before it sleeps. Short: on a box whose CPUs
 * also run the event loops, a spinning helper takes time from them. */
#define POOL_SPIN_NS 20000u

typedef struct helper {
    crl_pool_t *pool;
    size_t slot;
    pthread_t tid;
} helper_t;

struct crl_pool {
    pthread_mutex_t run_mu; /* held by the submitter of the running job */
    pthread_mutex_t mu;     /* guards the job fields, active, stop */
    pthread_cond_t wake;    /* a new job or stop */
    pthread_cond_t done;    /* the last helper left the job */
    crl_pool_fn fn;         /* NULL: no job */
    void *ctx;
    size_t n_tasks;
    atomic_size_t next;   /* next task to hand out */
    atomic_uint gen;      /* job generation, also read by spinning helpers */
    atomic_size_t active; /* helpers inside the current job; changed under mu */
    int stop;
    size_t n_helpers;
    helper_t *helpers;
};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Takes tasks until none is left. */
static void work(crl_pool_t *p, crl_pool_fn fn, void *ctx, size_t n, size_t slot) {
    for (size_t t = atomic_fetch_add(&p->next, 1); t < n; t = atomic_fetch_add(&p->next, 1))
        fn(ctx, t, slot);
}

/* Spins until the generation moves past `seen` or the spin time is up. */
static void spin_for_job(crl_pool_t *p, unsigned seen) {
    uint64_t t0 = crl_time_mono_ns();
    for (unsigned i = 1;; i++) {
        if (atomic_load_explicit(&p->gen, memory_order_relaxed) != seen) return;
        cpu_relax();
        if ((i & 63) == 0 && crl_time_mono_ns() - t0 > POOL_SPIN_NS) return;
    }
}

static void *helper_main(void *arg) {
    helper_t *h = arg;
    crl_pool_t *p = h->pool;
    unsigned seen = atomic_load(&p->gen);
    for (;;) {
        spin_for_job(p, seen);
        pthread_mutex_lock(&p->mu);
        /* A job whose submitter already finished it (fn NULL) is skipped: its tasks are done. */
        while (!p->stop && (atomic_load(&p->gen) == seen || p->fn == NULL)) {
            seen = atomic_load(&p->gen);
            pthread_cond_wait(&p->wake, &p->mu);
        }
        if (p->stop) break;
        seen = atomic_load(&p->gen);
        crl_pool_fn fn = p->fn;
        void *ctx = p->ctx;
        size_t n = p->n_tasks;
        atomic_fetch_add(&p->active, 1);
        pthread_mutex_unlock(&p->mu);

        work(p, fn, ctx, n, h->slot);

        pthread_mutex_lock(&p->mu);
        if (atomic_fetch_sub(&p->active, 1) == 1) pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void stop_helpers(crl_pool_t *p, size_t started) {
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (size_t i = 0; i < started; i++)
        pthread_join(p->helpers[i].tid, NULL);
}

crl_status crl_pool_new(size_t threads, crl_pool_t **out) {
    if (out == NULL) return CRL_EINVAL;
    *out = NULL;
    if (threads < 1 || threads > 256) return CRL_ERANGE;
    crl_pool_t *p = calloc(1, sizeof(*p));
    if (p == NULL) return CRL_ENOMEM;
    p->n_helpers = threads - 1;
    p->helpers = calloc(p->n_helpers ? p->n_helpers : 1, sizeof(*p->helpers));
    if (p->helpers == NULL) {
        free(p);
        return CRL_ENOMEM;
    }
    pthread_mutex_init(&p->run_mu, NULL);
    /* Adaptive: `mu` is held for a few instructions at a time, so a waiter spins briefly rather
     * than sleep in the kernel. */
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&p->mu, &attr);
    pthread_mutexattr_destroy(&attr);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->next, 0);
    atomic_init(&p->gen, 0);
    atomic_init(&p->active, 0);
    for (size_t i = 0; i < p->n_helpers; i++) {
        p->helpers[i] = (helper_t){.pool = p, .slot = i + 1};
        if (pthread_create(&p->helpers[i].tid, NULL, helper_main, &p->helpers[i]) != 0) {
            p->n_helpers = i;
            crl_pool_free(p);
            return CRL_ENOMEM;
        }
    }
    *out = p;
    return CRL_OK;
}

void crl_pool_free(crl_pool_t *p) {
    if (p == NULL) return;
    stop_helpers(p, p->n_helpers);
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->run_mu);
    free(p->helpers);
    free(p);
}

size_t crl_pool_threads(const crl_pool_t *p) {
    return p ? p->n_helpers + 1 : 1;
}

pthread_t crl_pool_helper(const crl_pool_t *p, size_t i) {
    return p->helpers[i].tid;
}

static void run_inline(size_t n_tasks, crl_pool_fn fn, void *ctx) {
    for (size_t t = 0; t < n_tasks; t++)
        fn(ctx, t, 0);
}

int crl_pool_run(crl_pool_t *p, size_t n_tasks, crl_pool_fn fn, void *ctx) {
    if (p == NULL || p->n_helpers == 0 || n_tasks < 2 || pthread_mutex_trylock(&p->run_mu) != 0) {
        run_inline(n_tasks, fn, ctx);
        return 0;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->n_tasks = n_tasks;
    atomic_store(&p->next, 0);
    atomic_fetch_add(&p->gen, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);

    work(p, fn, ctx, n_tasks, 0);

    /* Every task has been handed out; wait for the helpers still running one, spinning first (a
     * helper's last chunk usually ends within microseconds of ours). A helper joins a job
     * (active++) under `mu` before it takes a task, so one not counted here has taken none. */
    uint64_t t0 = crl_time_mono_ns();
    for (unsigned i = 1; atomic_load_explicit(&p->active, memory_order_relaxed) > 0; i++) {
        cpu_relax();
        if ((i & 63) == 0 && crl_time_mono_ns() - t0 > POOL_SPIN_NS) break;
    }
    pthread_mutex_lock(&p->mu);
    while (atomic_load(&p->active) > 0)
        pthread_cond_wait(&p->done, &p->mu);
    p->fn = NULL;
    p->ctx = NULL;
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_unlock(&p->run_mu);
    return 1;
}
