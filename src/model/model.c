/* model.c: loading one policy version and running the request path on it. */
#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/log.h"
#include "core/time.h"
#include "model/artifact.h"
#include "model/example.h"
#include "model/onnx.h"

/* model.precision, set once at start-up before any load (like the kernel table). */
static _Atomic int g_precision = CRL_NN_PRECISION_F32;

void crl_model_set_precision(crl_nn_precision p) {
    atomic_store(&g_precision, (int)p);
}

crl_nn_precision crl_model_precision(void) {
    return (crl_nn_precision)atomic_load(&g_precision);
}

/* Packs a freshly imported graph for the configured precision (float32 needs nothing more). */
static crl_status apply_precision(crl_model_t *m, crl_err *err) {
    crl_nn_precision p = crl_model_precision();
    if (p == CRL_NN_PRECISION_F32) return CRL_OK;
    crl_status st = crl_nn_graph_set_precision(m->graph, p, err);
    return st == CRL_OK ? st : crl_err_prefix(err, st, "model.precision: bfloat16");
}

static crl_status model_new(crl_model_t **out, crl_err *err) {
    crl_model_t *m = calloc(1, sizeof(*m));
    if (m == NULL) return crl_err_set(err, CRL_ENOMEM, "out of memory");
    atomic_init(&m->refs, 1);
    *out = m;
    return CRL_OK;
}

crl_model_t *crl_model_ref(crl_model_t *m) {
    if (m) atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

void crl_model_unref(crl_model_t *m) {
    if (m == NULL) return;
    if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1) return;
    crl_card_free(m->card);
    crl_nn_split_free(m->split);
    crl_nn_graph_free(m->graph);
    free(m);
}

/* Shapes the serving path relies on: [speed, steering, sensors...] in, >= 3 actions out. */
static crl_status check_shapes(crl_model_t *m, crl_err *err) {
    m->in_width = crl_nn_graph_input_width(m->graph);
    m->out_width = crl_nn_graph_output_width(m->graph);
    if (m->in_width < 3)
        return crl_err_set(err, CRL_ESHAPE,
                           "model input width %zu: a policy needs at least 3 features "
                           "(speed, steering, one sensor)",
                           m->in_width);
    /* At least 3 outputs (6 for a Gaussian with log-std outputs; exactly N logits for a
     * categorical head): the card's policy section says which. */
    crl_status st = crl_policy_check_width(&m->card->policy, m->out_width, err);
    if (st != CRL_OK) return st;
    if (m->card->input_width >= 0 && (size_t)m->card->input_width != m->in_width)
        return crl_err_set(err, CRL_ESHAPE,
                           "model_card.yaml input_shape says %ld features but the model takes %zu",
                           m->card->input_width, m->in_width);
    m->n_sensors = m->in_width - 2;
    return CRL_OK;
}

/* One forward pass on a typical observation, so the first request pays no first-touch cost and
 * a model that cannot run is rejected at load, not at the first request. */
static crl_status model_warm(crl_model_t *m, crl_err *err) {
    uint64_t t0 = crl_time_mono_ns();
    crl_nn_ws_t *ws = NULL;
    crl_status st = crl_nn_ws_new(m->graph, 1, &ws);
    if (st != CRL_OK) return crl_err_prefix(err, st, "warm-up");
    float *x = calloc(m->in_width + m->out_width, sizeof(float));
    if (x == NULL) {
        crl_nn_ws_free(ws);
        return crl_err_set(err, CRL_ENOMEM, "out of memory");
    }
    x[0] = 25.0f;
    for (size_t i = 2; i < m->in_width; i++)
        x[i] = 0.5f;
    st = crl_nn_run(m->graph, ws, x, 1, x + m->in_width);
    for (size_t i = 0; st == CRL_OK && i < m->out_width; i++)
        if (isnan(x[m->in_width + i]))
            st = crl_err_set(err, CRL_ERANGE, "warm-up forward pass produced NaN");
    free(x);
    crl_nn_ws_free(ws);
    m->warmup_seconds = (double)(crl_time_mono_ns() - t0) * 1e-9;
    return st;
}

/* The common end of every load: shapes, warm-up, load time. */
static crl_status model_finish(crl_model_t *m, uint64_t t0, crl_err *err) {
    crl_status st = check_shapes(m, err);
    if (st == CRL_OK) st = model_warm(m, err);
    m->load_seconds = (double)(crl_time_mono_ns() - t0) * 1e-9;
    return st;
}

/* Hands the model out on success, frees it on failure. */
static crl_status model_publish(crl_model_t *m, crl_status st, crl_model_t **out) {
    if (st != CRL_OK) {
        crl_model_unref(m);
        m = NULL;
    }
    *out = m;
    return st;
}

static int file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

crl_status crl_model_load_dir(const char *dir, const char *label, crl_model_t **out, crl_err *err) {
    uint64_t t0 = crl_time_mono_ns();
    crl_model_t *m = NULL;
    char path[PATH_MAX + 64];
    crl_status st = model_new(&m, err);
    if (st != CRL_OK) return st;
    snprintf(m->dir, sizeof(m->dir), "%s", dir);
    snprintf(m->version, sizeof(m->version), "%s", label);

    snprintf(path, sizeof(path), "%s/model_card.yaml", dir);
    if ((st = crl_card_load(path, &m->card, err)) != CRL_OK) goto out;
    crl_semver_t dirv, cardv;
    if (crl_semver_parse(label, &dirv) == CRL_OK &&
        crl_semver_parse(m->card->version, &cardv) == CRL_OK &&
        crl_semver_cmp(&dirv, &cardv) != 0) {
        st = crl_err_set(err, CRL_EINVAL, "%s: version '%s' does not match the directory '%s'",
                         path, m->card->version, label);
        goto out;
    }
    if ((st = crl_artifact_verify(dir, m->card, err)) != CRL_OK) goto out; /* names the file */
    snprintf(path, sizeof(path), "%s/%s", dir, m->card->model_filename);
    if ((st = crl_onnx_load_file(path, &m->graph, err)) != CRL_OK) goto out; /* names the file */
    if ((st = apply_precision(m, err)) != CRL_OK) goto out;
    snprintf(path, sizeof(path), "%s/%s", dir, m->card->preprocessor_filename);
    if (file_exists(path)) {
        if ((st = crl_preproc_load(path, &m->pre, err)) != CRL_OK) goto out;
    } else {
        crl_preproc_minimal(&m->pre);
    }
    if ((st = model_finish(m, t0, err)) != CRL_OK) crl_err_prefix(err, st, "%s", dir);
out:
    return model_publish(m, st, out);
}

crl_status crl_model_load_builtin(crl_model_t **out, crl_err *err) {
    uint64_t t0 = crl_time_mono_ns();
    crl_model_t *m = NULL;
    crl_status st = model_new(&m, err);
    if (st != CRL_OK) return st;
    m->builtin = 1;
    snprintf(m->version, sizeof(m->version), "%s", CRL_EXAMPLE_VERSION);
    if ((st = crl_example_card(&m->card, err)) != CRL_OK) goto out;
    if ((st = crl_example_graph(&m->graph, err)) != CRL_OK) goto out;
    if ((st = apply_precision(m, err)) != CRL_OK) goto out;
    crl_example_preproc(&m->pre);
    st = model_finish(m, t0, err);
out:
    return model_publish(m, st, out);
}

/* optimization.parallel_min_rows 0: the batch whose forward pass takes about
 * CRL_MODEL_SPLIT_TARGET_NS on one thread, from the best of a few timed 16-row passes. A split
 * costs a few microseconds of hand-off (waking a helper, waiting for the last chunk), so it pays
 * only on batches well above that. */
#define SPLIT_PROBE_ROWS 16
static size_t measure_min_rows(const crl_model_t *m, double *ns_per_row) {
    crl_nn_ws_t *ws = NULL;
    float *x = calloc(SPLIT_PROBE_ROWS * (m->in_width + m->out_width), sizeof(float));
    uint64_t best = UINT64_MAX;
    if (x != NULL && crl_nn_ws_new(m->graph, SPLIT_PROBE_ROWS, &ws) == CRL_OK) {
        for (size_t i = 0; i < SPLIT_PROBE_ROWS * m->in_width; i++)
            x[i] = 0.5f;
        for (int rep = 0; rep < 4; rep++) {
            uint64_t t0 = crl_time_mono_ns();
            crl_nn_run(m->graph, ws, x, SPLIT_PROBE_ROWS, x + SPLIT_PROBE_ROWS * m->in_width);
            uint64_t dt = crl_time_mono_ns() - t0;
            if (rep > 0 && dt < best) best = dt; /* the first pass touches the memory */
        }
    }
    crl_nn_ws_free(ws);
    free(x);
    if (best == UINT64_MAX || best == 0) best = 1;
    *ns_per_row = (double)best / SPLIT_PROBE_ROWS;
    double rows = ceil(CRL_MODEL_SPLIT_TARGET_NS / *ns_per_row);
    return rows < 2 ? 2 : rows > 1e6 ? 1000000 : (size_t)rows;
}

crl_status crl_model_set_pool(crl_model_t *m, crl_pool_t *pool, size_t min_rows, size_t max_rows,
                              crl_err *err) {
    if (crl_pool_threads(pool) < 2 || m->split != NULL) return CRL_OK;
    double ns_per_row = 0;
    if (min_rows == 0) min_rows = measure_min_rows(m, &ns_per_row);
    if (min_rows < 2) min_rows = 2;
    crl_status st = crl_nn_split_new(m->graph, pool, min_rows, max_rows, &m->split);
    if (st != CRL_OK)
        return crl_err_set(err, st, "cannot plan workspaces for %zu compute threads: %s",
                           crl_pool_threads(pool), crl_status_name(st));
    m->parallel_min_rows = min_rows;
    if (ns_per_row > 0)
        CRL_INFO("compute_threads",
                 "%s: batches of %zu rows or more split across %zu threads (measured: %.0f ns "
                 "per row on one thread)",
                 m->version, min_rows, crl_pool_threads(pool), ns_per_row);
    else
        CRL_INFO("compute_threads", "%s: batches of %zu rows or more split across %zu threads",
                 m->version, min_rows, crl_pool_threads(pool));
    return CRL_OK;
}

static inline float clampf(float v, float lo, float hi) {
    return v < lo ? lo : (v > hi ? hi : v);
}

void crl_model_preprocess(const crl_model_t *m, const crl_predict_req_t *req, float *x) {
    crl_preproc_apply(&m->pre, req, m->in_width - 2, x);
}

crl_status crl_model_predict(const crl_model_t *m, crl_nn_ws_t *ws, const crl_predict_req_t *req,
                             float *x, float *y, float *actions, crl_err *err) {
    crl_model_preprocess(m, req, x);
    return crl_model_predict_features(m, ws, req, x, y, actions, err);
}

crl_status crl_model_forward(const crl_model_t *m, crl_nn_ws_t *ws, const float *x, size_t n,
                             float *y, crl_err *err) {
    crl_status st = crl_nn_split_run(m->split, m->graph, ws, x, n, y);
    if (st != CRL_OK) return crl_err_set(err, st, "forward pass failed");
    return CRL_OK;
}

crl_status crl_model_head(const crl_model_t *m, const crl_predict_req_t *req, const float *y,
                          float *actions, crl_err *err) {
    const crl_policy_t *pol = &m->card->policy;
    /* A request without a seed samples with a fresh one; only a sampling head needs it. */
    uint64_t seed = req->has_seed ? req->seed : 0;
    if (!req->has_seed && !req->deterministic && pol->type != CRL_POLICY_DETERMINISTIC)
        seed = crl_policy_fresh_seed();
    crl_status st =
        crl_policy_apply(pol, y, m->out_width, req->n, req->deterministic, seed, actions, err);
    if (st != CRL_OK) return st;
    const float *lo = m->card->action_lo, *hi = m->card->action_hi;
    for (size_t i = 0; i < req->n * CRL_ACTIONS; i++)
        actions[i] = clampf(actions[i], lo[i % CRL_ACTIONS], hi[i % CRL_ACTIONS]);
    return CRL_OK;
}

crl_status crl_model_predict_features(const crl_model_t *m, crl_nn_ws_t *ws,
                                      const crl_predict_req_t *req, const float *x, float *y,
                                      float *actions, crl_err *err) {
    crl_status st = crl_model_forward(m, ws, x, req->n, y, err);
    if (st != CRL_OK) return st;
    return crl_model_head(m, req, y, actions, err);
}
