/* test_batch.c: crl_batch_cancel, the submitter's side of a deadline (batch/batch.h). A job still
 * wholly queued is withdrawn: its rows leave the queue at once and it is never handed back; a job
 * a stalled pass holds comes back once, and the rest of its split request never runs; a job the
 * batcher expired or finished reports so. Answers of jobs around a withdrawn one are unchanged. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "batch/batch.h"
#include "core/time.h"

typedef struct job {
    crl_batch_job_t j; /* first: the done callback casts back */
    atomic_int done;
} job_t;

static atomic_size_t g_passes, g_rows;

static void on_done(crl_batch_job_t *j) {
    atomic_fetch_add(&((job_t *)j)->done, 1);
}

static void on_batch(void *ctx, size_t rows, uint64_t ns) {
    (void)ctx;
    (void)ns;
    atomic_fetch_add(&g_passes, 1);
    atomic_fetch_add(&g_rows, rows);
}

static crl_model_t *model(void) {
    crl_model_t *m = NULL;
    assert_int_equal(crl_model_load_builtin(&m, NULL), CRL_OK);
    return m;
}

static crl_batch_t *batcher(size_t max_batch, uint64_t delay_us, uint64_t stall_ms) {
    atomic_store(&g_passes, 0);
    atomic_store(&g_rows, 0);
    crl_batch_opts_t o = {.max_batch_size = max_batch,
                          .max_queue_delay_us = delay_us,
                          .max_queue_rows = 1000,
                          .on_batch = on_batch,
                          .test_stall_ms = stall_ms};
    crl_batch_t *b = NULL;
    assert_int_equal(crl_batch_new(&o, &b, NULL), CRL_OK);
    return b;
}

/* Admits and submits one job of `rows` rows (features i*0.01). */
static void submit(crl_batch_t *b, job_t *jb, const crl_model_t *m, size_t rows,
                   uint64_t deadline_ns) {
    memset(jb, 0, sizeof(*jb));
    assert_int_equal(crl_batch_job_reserve(&jb->j, m, rows), CRL_OK);
    for (size_t i = 0; i < rows * m->in_width; i++)
        jb->j.x[i] = (float)i * 0.01f;
    jb->j.model = m;
    jb->j.head = (crl_predict_req_t){.n = rows, .deterministic = 1};
    jb->j.deadline_ns = deadline_ns;
    jb->j.done = on_done;
    assert_true(crl_batch_admit(b, rows));
    crl_batch_submit(b, &jb->j, &jb->j);
}

static void sleep_ms(long ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void wait_done(job_t *jb) {
    for (int i = 0; i < 5000 && atomic_load(&jb->done) == 0; i++)
        sleep_ms(1);
    assert_int_equal(atomic_load(&jb->done), 1);
}

static const uint64_t k_far = UINT64_MAX / 2;

static void release(crl_model_t *m, job_t *const *jobs) {
    for (; *jobs; jobs++)
        crl_batch_job_release(&(*jobs)->j);
    crl_model_unref(m);
}

static void test_withdraws_a_queued_job(void **state) {
    (void)state;
    crl_model_t *m = model();
    crl_batch_t *b = batcher(64, 1000000, 0); /* a pass waits up to 1 s for company */
    job_t a, c, d;
    submit(b, &a, m, 2, k_far);
    submit(b, &c, m, 3, k_far);
    submit(b, &d, m, 1, k_far);
    assert_int_equal(crl_batch_queued_rows(b), 6);
    assert_int_equal(crl_batch_cancel(b, &c.j), CRL_BATCH_WITHDRAWN); /* from the middle */
    assert_int_equal(crl_batch_queued_rows(b), 3);
    assert_int_equal(crl_batch_cancel(b, &a.j), CRL_BATCH_WITHDRAWN); /* the head */
    crl_batch_free(b); /* answers what is still queued: d alone */
    assert_int_equal(atomic_load(&a.done), 0);
    assert_int_equal(atomic_load(&c.done), 0);
    assert_int_equal(atomic_load(&d.done), 1);
    assert_int_equal(d.j.status, CRL_OK);
    assert_int_equal(d.j.expired, 0);
    assert_int_equal(atomic_load(&g_rows), 1);
    /* d's answer is the one it gets alone, inline. */
    float y[8], act[3];
    crl_nn_ws_t *ws = NULL;
    assert_int_equal(crl_nn_ws_new(m->graph, 1, &ws), CRL_OK);
    assert_int_equal(crl_model_forward(m, ws, d.j.x, 1, y, NULL), CRL_OK);
    assert_int_equal(crl_model_head(m, &d.j.head, y, act, NULL), CRL_OK);
    assert_memory_equal(act, d.j.actions, sizeof(act));
    crl_nn_ws_free(ws);
    release(m, (job_t *const[]){&a, &c, &d, NULL});
}

static void test_a_stalled_split_job_comes_back_once(void **state) {
    (void)state;
    crl_model_t *m = model();
    crl_batch_t *b = batcher(2, 0, 1000); /* the first pass stalls 1 s */
    job_t a, c;
    submit(b, &a, m, 5, k_far); /* passes of 2, 2, 1 */
    sleep_ms(200);              /* the batcher takes a's first 2 rows and stalls */
    submit(b, &c, m, 1, k_far);
    assert_int_equal(crl_batch_cancel(b, &a.j), CRL_BATCH_RUNNING);
    assert_int_equal(crl_batch_cancel(b, &c.j), CRL_BATCH_WITHDRAWN);
    assert_int_equal(crl_batch_queued_rows(b), 5); /* a's rows stay until it comes back */
    wait_done(&a);
    assert_int_equal(a.j.expired, 1); /* its remaining 3 rows were dropped, not computed */
    assert_int_equal(crl_batch_queued_rows(b), 0);
    crl_batch_free(b);
    assert_int_equal(atomic_load(&a.done), 1);
    assert_int_equal(atomic_load(&c.done), 0);
    assert_int_equal(atomic_load(&g_passes), 1);
    assert_int_equal(atomic_load(&g_rows), 2);
    release(m, (job_t *const[]){&a, &c, NULL});
}

static void test_cancel_after_the_batcher_answered(void **state) {
    (void)state;
    crl_model_t *m = model();
    crl_batch_t *b = batcher(64, 0, 0);
    job_t late, fine;
    submit(b, &late, m, 2, crl_time_mono_ns()); /* already past its deadline */
    wait_done(&late);
    assert_int_equal(late.j.expired, 1);
    assert_int_equal(crl_batch_cancel(b, &late.j), CRL_BATCH_EXPIRING);
    submit(b, &fine, m, 2, k_far);
    wait_done(&fine);
    assert_int_equal(fine.j.expired, 0);
    assert_int_equal(crl_batch_cancel(b, &fine.j), CRL_BATCH_RUNNING);
    assert_int_equal(crl_batch_queued_rows(b), 0);
    crl_batch_free(b);
    assert_int_equal(atomic_load(&late.done), 1);
    assert_int_equal(atomic_load(&fine.done), 1);
    assert_int_equal(atomic_load(&g_rows), 2);
    release(m, (job_t *const[]){&late, &fine, NULL});
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_withdraws_a_queued_job),
        cmocka_unit_test(test_a_stalled_split_job_comes_back_once),
        cmocka_unit_test(test_cancel_after_the_batcher_answered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
