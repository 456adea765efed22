/* pool.h: a fixed set of compute threads that share one job at a time with the thread that
 * submits it. A job is n_tasks independent tasks; every participant (the submitting thread and
 * each helper) takes the next task from a shared counter until none is left, so a helper that is
 * slow to wake or descheduled costs nothing: the submitter takes its share too.
 *
 * One job at a time: a submitter that finds the pool busy with another thread's job does not wait
 * for it; it runs all of its own tasks itself, at once (what it would have done without a pool).
 * Event-loop threads submit, and an event loop must never block behind another loop's batch.
 *
 * Threads are created in crl_pool_new and live until crl_pool_free; running a job allocates
 * nothing. */
#ifndef CRL_CORE_POOL_H
#define CRL_CORE_POOL_H

#include <pthread.h>
#include <stddef.h>

#include "core/status.h"

typedef struct crl_pool crl_pool_t;

/* Runs task `task` of a job on participant `slot`: 0 is the submitting thread, 1..threads-1 the
 * pool's helpers. A slot is used by one thread at a time, so per-slot scratch needs no lock. */
typedef void (*crl_pool_fn)(void *ctx, size_t task, size_t slot);

/* A pool of `threads` participants: the submitter plus threads-1 helper threads (threads 1: no
 * helper, every job runs on its submitter). threads is 1..256. *out owned by the caller. */
crl_status crl_pool_new(size_t threads, crl_pool_t **out);
/* Stops and joins the helpers. No job may be running. NULL-safe. */
void crl_pool_free(crl_pool_t *p);

/* Participants (helpers + 1); 1 for a NULL pool. */
size_t crl_pool_threads(const crl_pool_t *p);
/* Helper i's thread (0 <= i < threads-1), for pinning (hw/hw.h crl_hw_pin_thread). */
pthread_t crl_pool_helper(const crl_pool_t *p, size_t i);

/* Runs fn(ctx, t, slot) for every t < n_tasks and returns when all have finished. Returns 1 when
 * the helpers took part, 0 when every task ran on the calling thread (slot 0): a NULL or
 * one-thread pool, or a pool busy with another submitter's job. Not reentrant from inside fn. */
int crl_pool_run(crl_pool_t *p, size_t n_tasks, crl_pool_fn fn, void *ctx);

#endif
