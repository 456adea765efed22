/* card.h: model_card.yaml. Required keys: model_name, version, model_type ("onnx"). Optional:
 * model_filename (default model.onnx), preprocessor_filename (default preprocessor.json),
 * artifact_hashes {file: sha256}, action_space {throttle|brake|steer: [lo, hi]}, input_shape [N],
 * description, performance_metrics (any nesting; flattened for /versions), policy (the head:
 * deterministic, gaussian or categorical; model/policy.h). */
#ifndef CRL_MODEL_CARD_H
#define CRL_MODEL_CARD_H

#include <stddef.h>

#include "config/yaml.h"
#include "core/buf.h"
#include "core/status.h"
#include "model/policy.h"

enum { CRL_ACTION_THROTTLE = 0, CRL_ACTION_BRAKE = 1, CRL_ACTION_STEER = 2, CRL_ACTIONS = 3 };

typedef struct crl_card_hash {
    char *file;   /* relative to the version directory; no "..", not absolute */
    char hex[65]; /* lowercase, "sha256:" prefix removed */
} crl_card_hash_t;

typedef struct crl_card {
    char *model_name;
    char *version;
    char *model_type; /* lower-cased */
    char *model_filename;
    char *preprocessor_filename;
    char *description; /* may be NULL */
    crl_card_hash_t *hashes;
    size_t n_hashes;
    float action_lo[CRL_ACTIONS]; /* default throttle [0,1], brake [0,1], steer [-1,1] */
    float action_hi[CRL_ACTIONS];
    long input_width;     /* from input_shape: [N] or [batch, N]; -1 when absent */
    crl_policy_t policy;  /* zeroed (deterministic) when the card has no policy section */
    crl_yaml_node_t *doc; /* the whole document, for /versions */
} crl_card_t;

/* Errors name the file and, where known, the line: "v1.0.0/model_card.yaml:3: model_type:
 * unsupported model type 'pytorch' (carlarl loads onnx; convert with tools/...)". */
crl_status crl_card_load(const char *path, crl_card_t **out, crl_err *err);
crl_status crl_card_parse(const char *text, size_t len, const char *name, crl_card_t **out,
                          crl_err *err);
void crl_card_free(crl_card_t *c); /* NULL-safe */

/* The raw card as a JSON object ({} when c is NULL). */
crl_status crl_card_write_json(const crl_card_t *c, crl_buf *out);
/* performance_metrics flattened to numbers: {"a": {"b": 1}} -> {"a_b": 1.0}; non-numeric leaves
 * are skipped; {} when absent. */
crl_status crl_card_write_metrics_json(const crl_card_t *c, crl_buf *out);

#endif
