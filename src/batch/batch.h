/* batch.h: the dynamic batcher. Rows from many /predict requests (jobs) are merged into one
 * forward pass of up to max_batch_size rows on a batcher thread; each job then gets the policy
 * head on exactly its own rows and is handed back through its `done` callback.
 *
 * Threads: a loop thread admits a job (crl_batch_admit, which enforces max_queue_rows), collects
 * its iteration's jobs in a list of its own, and hands the whole list over once per loop
 * iteration (crl_batch_submit: one lock, one signal), which costs ~3 us per request against ~13
 * for a signal per request (dependency-lab.md §9.1). `done` runs on the batcher thread and must
 * only post the job back to its owner (h2o_multithread_send_message); it must not block.
 *
 * Ownership: a job and its buffers belong to the submitter; between submit and done the batcher
 * reads x and writes y, actions, status and expired, and nothing else touches them. A job holds
 * its own copy of the request's features, never a pointer into the request (over HTTP/2 h2o frees
 * a request the moment its client goes). The hot path allocates nothing: job buffers grow to the
 * largest request seen (crl_batch_job_reserve) and the batcher's workspace is planned once per
 * model for max_batch_size rows.
 *
 * Deadlines: the batcher answers a job still wholly queued past deadline_ns as `expired`, but a
 * stalled batcher (a huge forward pass, a bug) answers nothing, so the submitter also keeps its
 * own timer and calls crl_batch_cancel when it fires (dependency-lab.md §9.4: deferred requests
 * have no server-side timeout of their own). */
#ifndef CRL_BATCH_BATCH_H
#define CRL_BATCH_BATCH_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "json/predict.h"
#include "model/model.h"

#define CRL_BATCH_MAX_PREFERRED 16

typedef struct crl_batch_job crl_batch_job_t;
typedef void (*crl_batch_done_fn)(crl_batch_job_t *job);

struct crl_batch_job {
    crl_batch_job_t *next;      /* the submitter's pending list, then the batcher's queue */
    crl_batch_job_t *prev;      /* the batcher's queue (under its lock) */
    const crl_model_t *model;   /* the model the features were preprocessed for (caller's ref) */
    crl_predict_req_t head;     /* n, deterministic, has_seed, seed: what the policy head reads */
    float *x, *y, *actions;     /* [n x in_width] in, [n x out_width] scratch, [n x 3] out */
    size_t x_cap, y_cap, a_cap; /* floats */
    uint64_t enqueued_ns;       /* set by crl_batch_submit */
    uint64_t deadline_ns;       /* a job still wholly queued past this is answered `expired` */
    size_t taken;               /* rows handed to a forward pass so far (under the lock) */
    uint64_t started_ns;        /* out: when the first forward pass with its rows began */
    uint64_t forward_ns;        /* out: the forward passes that carried its rows, summed */
    uint64_t head_ns;           /* out: its policy head and clip */
    int expired;                /* out: 1: left the queue unanswered (deadline, or abandoned) */
    int queued;                 /* in the batcher's queue (under its lock) */
    int abandoned;              /* crl_batch_cancel came too late to withdraw it (under the lock) */
    crl_status status;          /* out: CRL_OK, or why it failed (message) */
    char message[512];
    crl_batch_done_fn done;
};

typedef struct crl_batch_opts {
    size_t max_batch_size;       /* rows per forward pass; larger requests are split */
    uint64_t max_queue_delay_us; /* how long the oldest job may wait for company */
    size_t preferred[CRL_BATCH_MAX_PREFERRED]; /* queued row counts that run at once */
    size_t n_preferred;
    size_t max_queue_rows; /* admitted rows not yet answered, beyond which admit refuses */
    /* Called on the batcher thread after each forward pass (executed rows, its duration). */
    void (*on_batch)(void *ctx, size_t rows, uint64_t ns);
    void *on_batch_ctx;
    /* Test hook (the server reads CRL_TEST_BATCH_STALL_MS): the first forward pass sleeps this
     * many milliseconds, a stalled compute thread on demand. 0: off. */
    uint64_t test_stall_ms;
} crl_batch_opts_t;

typedef struct crl_batch crl_batch_t;

/* Starts the batcher thread. *out is freed with crl_batch_free. */
crl_status crl_batch_new(const crl_batch_opts_t *o, crl_batch_t **out, crl_err *err);
/* Answers every job still queued (computing it), then stops and joins the thread. NULL-safe. The
 * callers must have stopped submitting. */
void crl_batch_free(crl_batch_t *b);
pthread_t crl_batch_thread(const crl_batch_t *b); /* for pinning (hw/hw.h) */

/* Grows job's buffers for `rows` rows of model m (a malloc only when a request is larger than
 * any this job has carried). CRL_ENOMEM on failure. */
crl_status crl_batch_job_reserve(crl_batch_job_t *j, const crl_model_t *m, size_t rows);
void crl_batch_job_release(crl_batch_job_t *j); /* frees the buffers */

/* Reserves `rows` rows of queue room: 1 when admitted, 0 when max_queue_rows would be exceeded
 * (the request should be refused: 503 or 429). The room is given back as rows are answered. */
int crl_batch_admit(crl_batch_t *b, size_t rows);
/* Gives back rows admitted for a job that was never submitted. */
void crl_batch_unadmit(crl_batch_t *b, size_t rows);
/* Hands over a list of admitted jobs (linked by next, ending at tail): one lock, one signal. */
void crl_batch_submit(crl_batch_t *b, crl_batch_job_t *head, crl_batch_job_t *tail);
/* What crl_batch_cancel found. */
typedef enum crl_batch_cancel_result {
    CRL_BATCH_WITHDRAWN, /* it was wholly queued: taken out, rows given back, done never runs */
    CRL_BATCH_EXPIRING,  /* the batcher already expired it (no compute spent); done will run */
    CRL_BATCH_RUNNING,   /* a forward pass has its rows; done will run, its result is moot */
} crl_batch_cancel_result;
/* The submitter gives up on a submitted job it has not got back yet (its deadline passed on its
 * own timer). A job still wholly queued is withdrawn; any other comes back through done as usual,
 * and a split job that a pass has started gets no further pass. Takes the batcher's lock once;
 * not for the hot path. */
crl_batch_cancel_result crl_batch_cancel(crl_batch_t *b, crl_batch_job_t *j);
/* Admitted rows not yet answered (the queue depth gauge). */
size_t crl_batch_queued_rows(const crl_batch_t *b);
const crl_batch_opts_t *crl_batch_options(const crl_batch_t *b);

#endif
