/* policy.h: the policy head declared by model_card.yaml's optional `policy:` section, turning the
 * network's output row into (throttle, brake, steer) before the action-space clip.
 *
 *   policy:
 *     type: deterministic | gaussian | categorical    # absent section: deterministic
 *     log_std: output | [a, b, c]     # gaussian: columns 3..5 of the output, or constants
 *     squash: none | tanh             # gaussian: tanh after sampling (SAC)
 *     log_std_range: [-20, 2]         # gaussian: clamp of log-std (default [-20, 2])
 *     actions:                        # categorical: one entry per logit, N >= 2
 *       - {throttle: 0.3, brake: 0.0, steer: -0.5}
 *
 * deterministic: columns 0..2 as they are (the original's behaviour; the request flag is ignored).
 * gaussian: columns 0..2 are the mean; deterministic=true gives the mean, false samples
 *   mean + exp(log_std) * N(0,1); then tanh when squashed.
 * categorical: the output row holds N logits; deterministic=true gives the first argmax, false
 *   samples from softmax(logits); the chosen index is mapped through `actions`.
 * Samples come from Philox4x32-10 keyed by the request seed with counter (row, action, draw)
 * (model/philox.h), so a row's sample depends only on (seed, row index, the row's outputs). */
#ifndef CRL_MODEL_POLICY_H
#define CRL_MODEL_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "config/yaml.h"
#include "core/status.h"

#define CRL_POLICY_MAX_ACTIONS 4096 /* categorical: the most discrete actions a card may list */

typedef enum crl_policy_type {
    CRL_POLICY_DETERMINISTIC = 0, /* zero: a zeroed crl_policy_t is today's behaviour */
    CRL_POLICY_GAUSSIAN,
    CRL_POLICY_CATEGORICAL,
} crl_policy_type_t;

typedef struct crl_policy {
    crl_policy_type_t type;
    int line; /* where the `policy:` section starts in the card, 0 when absent (for load-time width
                 errors) */
    /* gaussian */
    int log_std_output; /* 1: columns 3..5; 0: log_std_const */
    float log_std_const[3];
    float log_std_min, log_std_max; /* clamp, default [-20, 2] */
    int squash_tanh;
    /* categorical */
    size_t n_actions;
    float *actions; /* [n_actions][3]: throttle, brake, steer */
} crl_policy_t;

/* Reads the `policy:` node (NULL or an empty scalar: deterministic). Errors read
 * "<name>:<line>: policy: <key>: <reason>". *out is valid (and must be cleared) on any return. */
crl_status crl_policy_parse(const crl_yaml_node_t *node, const char *name, crl_policy_t *out,
                            crl_err *err);
void crl_policy_clear(crl_policy_t *p); /* frees what parse allocated; NULL-safe */

/* The output width the head needs (3, 6, or N) and whether `out_width` fits it: at least 3 (or 6
 * with log_std: output) for deterministic and gaussian, exactly N for categorical. CRL_ESHAPE
 * with a message naming the card line otherwise. */
size_t crl_policy_min_width(const crl_policy_t *p);
crl_status crl_policy_check_width(const crl_policy_t *p, size_t out_width, crl_err *err);

/* Applies the head to n output rows y [n x out_width], writing actions [n x 3] (not clipped).
 * deterministic selects the mean / argmax; seed keys the sampler otherwise. CRL_ERANGE when an
 * output the head reads is NaN (or a logit is +inf). */
crl_status crl_policy_apply(const crl_policy_t *p, const float *y, size_t out_width, size_t n,
                            int deterministic, uint64_t seed, float *actions, crl_err *err);

/* A fresh 64-bit seed from this thread's generator (seeded once from getrandom), for requests
 * that bring none. */
uint64_t crl_policy_fresh_seed(void);

#endif
