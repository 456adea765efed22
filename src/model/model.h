/* model.h: a loaded policy version (card + network + preprocessor), immutable and ref-counted,
 * and the registry that selects, loads and publishes the current one.
 *
 * Hot path: workers keep their own reference and compare crl_registry_generation() (one relaxed
 * load) on each request; only when it changes do they take the registry lock to swap. A model dies
 * with its last reference, so a swap never frees a network a request is still using. */
#ifndef CRL_MODEL_MODEL_H
#define CRL_MODEL_MODEL_H

#include <limits.h>
#include <stdatomic.h>
#include <stddef.h>

#include "core/status.h"
#include "model/card.h"
#include "model/preproc.h"
#include "model/semver.h"
#include "nn/graph.h"
#include "nn/split.h"

typedef struct crl_model {
    atomic_int refs;
    char version[CRL_SEMVER_MAX + 2]; /* "v1.2.3[-pre][+build]" */
    char dir[PATH_MAX];               /* "" for the built-in example */
    int builtin;
    crl_card_t *card;
    crl_nn_graph_t *graph;
    /* Splits large batches across the compute pool (optimization.compute_threads); NULL: every
     * batch runs on the calling thread. Set before the model is published. */
    crl_nn_split_t *split;
    size_t parallel_min_rows; /* the smallest batch split (0 without a split) */
    crl_preproc_t pre;
    size_t in_width, out_width;
    size_t n_sensors; /* in_width - 2: the sensor count a request must have */
    double load_seconds;
    double warmup_seconds;
} crl_model_t;

/* Loads ARTIFACT_DIR/<version dir>: card, hashes, ONNX graph, preprocessor (optional file), shape
 * checks, and one warm-up forward pass. `label` is the version string to report. */
crl_status crl_model_load_dir(const char *dir, const char *label, crl_model_t **out, crl_err *err);
/* The built-in example policy as version v0.1.0 (warmed). */
crl_status crl_model_load_builtin(crl_model_t **out, crl_err *err);
/* The precision every later load packs its network for (model.precision): set once at start-up,
 * after the kernel table is chosen and before any load. F32 by default. A load in BF16 on a table
 * without bf16 kernels fails with the reason (nn/graph.h). */
void crl_model_set_precision(crl_nn_precision p);
crl_nn_precision crl_model_precision(void);
/* The one-thread forward time from which a split pays. A split hands off in a few microseconds;
 * on an idle 2-vCPU AMD EPYC VM the example MLP gained 1.6-1.8x at 256 rows (20-30 us on one
 * thread) and lost at 64 (6 us). */
#define CRL_MODEL_SPLIT_TARGET_NS 30000.0
/* Lets m split batches of at least min_rows rows (up to max_rows; see nn/split.h) across `pool`,
 * which must outlive m. min_rows 0: measured, the rows whose forward pass takes about
 * CRL_MODEL_SPLIT_TARGET_NS on one thread. Call before m is shared; a pool of one thread leaves m
 * as it was. */
crl_status crl_model_set_pool(crl_model_t *m, crl_pool_t *pool, size_t min_rows, size_t max_rows,
                              crl_err *err);
crl_model_t *crl_model_ref(crl_model_t *m);
void crl_model_unref(crl_model_t *m); /* NULL-safe */

/* Runs the full request path (preprocess, forward, the card's policy head, clip) on rows already
 * parsed. The forward pass is split across the model's pool when it has one and the batch is
 * large enough (ws then runs the calling thread's share). A sampling head (gaussian, categorical)
 * with req->deterministic == 0 draws with req->seed, or a fresh seed from this thread's generator
 * when req->has_seed is 0. x: scratch [n x in_width], y: scratch [n x out_width], actions: [n x 3]
 * out. Returns CRL_ERANGE when an output is NaN. */
crl_status crl_model_predict(const crl_model_t *m, crl_nn_ws_t *ws, const crl_predict_req_t *req,
                             float *x, float *y, float *actions, crl_err *err);
/* crl_model_predict in two steps, for the response cache (whose key hashes the features):
 * preprocess writes the [n x in_width] features into x; predict_features runs the rest on them. */
void crl_model_preprocess(const crl_model_t *m, const crl_predict_req_t *req, float *x);
crl_status crl_model_predict_features(const crl_model_t *m, crl_nn_ws_t *ws,
                                      const crl_predict_req_t *req, const float *x, float *y,
                                      float *actions, crl_err *err);
/* predict_features in two steps, for the dynamic batcher (src/batch): forward runs the network
 * on n feature rows (split across the pool when large enough; every kernel is batch-invariant, so a
 * row's output is the same bits alone or in any batch); head applies the card's policy head and the
 * action-space clip to one request's req->n output rows (a sample depends on the row's index
 * within its request, so the head runs per request, never per merged batch). */
crl_status crl_model_forward(const crl_model_t *m, crl_nn_ws_t *ws, const float *x, size_t n,
                             float *y, crl_err *err);
crl_status crl_model_head(const crl_model_t *m, const crl_predict_req_t *req, const float *y,
                          float *actions, crl_err *err);

/* A version directory found under the artifact root. */
typedef struct crl_version_entry {
    crl_semver_t semver;
    char label[CRL_SEMVER_MAX + 2]; /* normalised "v..." */
    char dir[PATH_MAX];
} crl_version_entry_t;

/* Lists subdirectories of root whose names parse as semver and that hold a model_card.yaml,
 * newest first. Never writes to root. CRL_ENOTFOUND when root does not exist. *out is malloc'd. */
crl_status crl_versions_scan(const char *root, crl_version_entry_t **out, size_t *n, crl_err *err);

typedef struct crl_registry_opts {
    const char *artifact_dir; /* default "artifacts" */
    const char *pin;          /* MODEL_VERSION or NULL/"" */
    /* Compute threads for large batches (crl_model_set_pool); NULL: none. */
    crl_pool_t *pool;
    size_t parallel_min_rows; /* 0: measured per model */
    size_t parallel_max_rows; /* the largest batch (0: 1000) */
} crl_registry_opts_t;

/* Start-up selection (original-system.md §3.3, with its bugs fixed): the pinned version if it
 * exists, else the newest stable, else the newest prerelease; a version that fails to load is
 * logged (file and reason) and the next candidate tried. No artifact root, or no version in it:
 * the built-in example. Sets the current model (or none, when every candidate failed).
 * `strategy_out` (may be NULL) receives a static description for /versions. */
crl_status crl_registry_load_startup(const crl_registry_opts_t *o, const char **strategy_out,
                                     crl_err *err);
/* Replaces the current model (m may be NULL); takes its own reference. */
void crl_registry_publish(crl_model_t *m);
/* The current model with a new reference, or NULL. */
crl_model_t *crl_registry_acquire(void);
unsigned crl_registry_generation(void);
void crl_registry_shutdown(void); /* drops the registry's reference */

#endif
