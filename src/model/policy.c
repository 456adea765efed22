/* policy.c: the card's `policy:` section (parsed and validated with file:line errors) and the
 * heads that turn output rows into actions: pass-through, Gaussian (mean / sampled, optional
 * tanh squash) and categorical (argmax / sampled from the softmax). All sampling goes through
 * Philox at counter (row, action, draw), in double, so tools/make_example_artifact.py reproduces
 * every sample exactly. */
#include "model/policy.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "model/philox.h"

#define LOG_STD_MIN_DEFAULT (-20.0f)
#define LOG_STD_MAX_DEFAULT 2.0f

static const char *const action_keys[3] = {"throttle", "brake", "steer"};

void crl_policy_clear(crl_policy_t *p) {
    if (p == NULL) return;
    free(p->actions);
    memset(p, 0, sizeof(*p));
}

static int is_empty(const crl_yaml_node_t *n) {
    return n->kind == CRL_YAML_SCALAR && !n->quoted && n->scalar[0] == '\0';
}

/* A finite float32 number. */
static int get_float(const crl_yaml_node_t *n, float *out) {
    double d;
    if (n == NULL || crl_yaml_double(n, &d) != CRL_OK || !isfinite((float)d)) return 0;
    *out = (float)d;
    return 1;
}

static crl_status parse_type(const crl_yaml_node_t *pol, const char *name, crl_policy_t *p,
                             crl_err *err) {
    const crl_yaml_node_t *t = crl_yaml_get(pol, "type");
    if (t == NULL)
        return crl_err_set(err, CRL_EFORMAT,
                           "%s:%d: policy: missing 'type' (deterministic, gaussian or categorical)",
                           name, pol->line);
    const char *s = crl_yaml_str(t);
    if (s && strcmp(s, "deterministic") == 0) {
        p->type = CRL_POLICY_DETERMINISTIC;
    } else if (s && strcmp(s, "gaussian") == 0) {
        p->type = CRL_POLICY_GAUSSIAN;
    } else if (s && strcmp(s, "categorical") == 0) {
        p->type = CRL_POLICY_CATEGORICAL;
    } else {
        return crl_err_set(err, CRL_EFORMAT,
                           "%s:%d: policy: type: expected deterministic, gaussian or categorical, "
                           "got '%s'",
                           name, t->line, s ? s : "(not a string)");
    }
    return CRL_OK;
}

/* Every key must be known and belong to the declared type: a typo or a key of another type
 * would otherwise change nothing, silently. */
static crl_status check_keys(const crl_yaml_node_t *pol, const char *name, const crl_policy_t *p,
                             crl_err *err) {
    static const struct {
        const char *key;
        int type; /* -1: any type */
    } known[] = {{"type", -1},
                 {"log_std", CRL_POLICY_GAUSSIAN},
                 {"squash", CRL_POLICY_GAUSSIAN},
                 {"log_std_range", CRL_POLICY_GAUSSIAN},
                 {"actions", CRL_POLICY_CATEGORICAL}};
    static const char *const type_names[] = {"deterministic", "gaussian", "categorical"};
    for (size_t i = 0; i < pol->n; i++) {
        size_t k = 0;
        while (k < sizeof(known) / sizeof(known[0]) && strcmp(known[k].key, pol->keys[i]) != 0)
            k++;
        if (k == sizeof(known) / sizeof(known[0]))
            return crl_err_set(err, CRL_EFORMAT,
                               "%s:%d: policy: unknown key '%s' (expected type, log_std, squash, "
                               "log_std_range or actions)",
                               name, pol->items[i]->line, pol->keys[i]);
        if (known[k].type >= 0 && known[k].type != (int)p->type)
            return crl_err_set(
                err, CRL_EFORMAT, "%s:%d: policy: '%s' applies to %s policies, not %s", name,
                pol->items[i]->line, pol->keys[i], type_names[known[k].type], type_names[p->type]);
    }
    return CRL_OK;
}

static crl_status parse_gaussian(const crl_yaml_node_t *pol, const char *name, crl_policy_t *p,
                                 crl_err *err) {
    const crl_yaml_node_t *ls = crl_yaml_get(pol, "log_std");
    if (ls == NULL)
        return crl_err_set(err, CRL_EFORMAT,
                           "%s:%d: policy: gaussian needs 'log_std: output' (columns 3..5 of the "
                           "model output) or 'log_std: [a, b, c]' (constants)",
                           name, pol->line);
    if (ls->kind == CRL_YAML_SCALAR && strcmp(ls->scalar, "output") == 0) {
        p->log_std_output = 1;
    } else if (ls->kind == CRL_YAML_SEQ && ls->n == 3 &&
               get_float(ls->items[0], &p->log_std_const[0]) &&
               get_float(ls->items[1], &p->log_std_const[1]) &&
               get_float(ls->items[2], &p->log_std_const[2])) {
        p->log_std_output = 0;
    } else {
        return crl_err_set(err, CRL_EFORMAT,
                           "%s:%d: policy: log_std: expected 'output' or three finite numbers "
                           "[throttle, brake, steer]",
                           name, ls->line);
    }

    const crl_yaml_node_t *sq = crl_yaml_get(pol, "squash");
    if (sq != NULL) {
        const char *s = crl_yaml_str(sq);
        if (s && strcmp(s, "tanh") == 0)
            p->squash_tanh = 1;
        else if (!(s && strcmp(s, "none") == 0))
            return crl_err_set(err, CRL_EFORMAT, "%s:%d: policy: squash: expected none or tanh",
                               name, sq->line);
    }

    p->log_std_min = LOG_STD_MIN_DEFAULT;
    p->log_std_max = LOG_STD_MAX_DEFAULT;
    const crl_yaml_node_t *r = crl_yaml_get(pol, "log_std_range");
    if (r != NULL) {
        float lo, hi;
        if (r->kind != CRL_YAML_SEQ || r->n != 2 || !get_float(r->items[0], &lo) ||
            !get_float(r->items[1], &hi) || !(lo < hi))
            return crl_err_set(err, CRL_EFORMAT,
                               "%s:%d: policy: log_std_range: expected [low, high], two finite "
                               "numbers with low < high",
                               name, r->line);
        p->log_std_min = lo;
        p->log_std_max = hi;
    }
    return CRL_OK;
}

static crl_status parse_action(const crl_yaml_node_t *a, size_t idx, const char *name, float out[3],
                               crl_err *err) {
    if (a->kind != CRL_YAML_MAP)
        return crl_err_set(err, CRL_EFORMAT,
                           "%s:%d: policy: actions[%zu]: expected a mapping {throttle, brake, "
                           "steer}",
                           name, a->line, idx);
    for (size_t i = 0; i < a->n; i++) {
        int known = 0;
        for (int k = 0; k < 3; k++)
            known |= strcmp(a->keys[i], action_keys[k]) == 0;
        if (!known)
            return crl_err_set(err, CRL_EFORMAT,
                               "%s:%d: policy: actions[%zu]: unknown key '%s' (expected throttle, "
                               "brake, steer)",
                               name, a->items[i]->line, idx, a->keys[i]);
    }
    for (int k = 0; k < 3; k++) {
        const crl_yaml_node_t *v = crl_yaml_get(a, action_keys[k]);
        if (v == NULL)
            return crl_err_set(err, CRL_EFORMAT, "%s:%d: policy: actions[%zu]: missing '%s'", name,
                               a->line, idx, action_keys[k]);
        if (!get_float(v, &out[k]))
            return crl_err_set(err, CRL_EFORMAT,
                               "%s:%d: policy: actions[%zu]: %s: expected a finite number", name,
                               v->line, idx, action_keys[k]);
    }
    return CRL_OK;
}

static crl_status parse_categorical(const crl_yaml_node_t *pol, const char *name, crl_policy_t *p,
                                    crl_err *err) {
    const crl_yaml_node_t *acts = crl_yaml_get(pol, "actions");
    if (acts == NULL)
        return crl_err_set(err, CRL_EFORMAT,
                           "%s:%d: policy: categorical needs 'actions', a list mapping each logit "
                           "to {throttle, brake, steer}",
                           name, pol->line);
    if (acts->kind != CRL_YAML_SEQ)
        return crl_err_set(err, CRL_EFORMAT,
                           "%s:%d: policy: actions: expected a list of {throttle, brake, steer}",
                           name, acts->line);
    if (acts->n < 2 || acts->n > CRL_POLICY_MAX_ACTIONS)
        return crl_err_set(err, CRL_EFORMAT,
                           "%s:%d: policy: actions: a categorical policy needs 2..%d actions, got "
                           "%zu",
                           name, acts->line, CRL_POLICY_MAX_ACTIONS, acts->n);
    p->actions = calloc(acts->n * 3, sizeof(float));
    if (p->actions == NULL) return crl_err_set(err, CRL_ENOMEM, "%s: out of memory", name);
    for (size_t i = 0; i < acts->n; i++) {
        crl_status st = parse_action(acts->items[i], i, name, p->actions + 3 * i, err);
        if (st != CRL_OK) return st;
    }
    p->n_actions = acts->n;
    return CRL_OK;
}

crl_status crl_policy_parse(const crl_yaml_node_t *node, const char *name, crl_policy_t *out,
                            crl_err *err) {
    memset(out, 0, sizeof(*out));
    if (name == NULL) name = "model_card.yaml";
    if (node == NULL || is_empty(node)) return CRL_OK;
    out->line = node->line;
    if (node->kind != CRL_YAML_MAP)
        return crl_err_set(err, CRL_EFORMAT,
                           "%s:%d: policy: must be a mapping with a 'type' (deterministic, "
                           "gaussian or categorical)",
                           name, node->line);
    crl_status st = parse_type(node, name, out, err);
    if (st == CRL_OK) st = check_keys(node, name, out, err);
    if (st == CRL_OK && out->type == CRL_POLICY_GAUSSIAN) st = parse_gaussian(node, name, out, err);
    if (st == CRL_OK && out->type == CRL_POLICY_CATEGORICAL)
        st = parse_categorical(node, name, out, err);
    return st;
}

size_t crl_policy_min_width(const crl_policy_t *p) {
    if (p->type == CRL_POLICY_CATEGORICAL) return p->n_actions;
    if (p->type == CRL_POLICY_GAUSSIAN && p->log_std_output) return 6;
    return 3;
}

crl_status crl_policy_check_width(const crl_policy_t *p, size_t out_width, crl_err *err) {
    size_t need = crl_policy_min_width(p);
    switch (p->type) {
    case CRL_POLICY_CATEGORICAL:
        if (out_width == need) return CRL_OK;
        return crl_err_set(err, CRL_ESHAPE,
                           "model_card.yaml:%d: policy: categorical lists %zu actions but the "
                           "model outputs %zu logits (they must match one to one)",
                           p->line, need, out_width);
    case CRL_POLICY_GAUSSIAN:
        if (out_width >= need) return CRL_OK;
        return crl_err_set(err, CRL_ESHAPE,
                           "model_card.yaml:%d: policy: gaussian with log_std: %s needs %zu model "
                           "outputs%s, but the model outputs %zu",
                           p->line, p->log_std_output ? "output" : "[constants]", need,
                           p->log_std_output ? " (mean in 0..2, log-std in 3..5)" : " (the mean)",
                           out_width);
    default:
        if (out_width >= need) return CRL_OK;
        return crl_err_set(err, CRL_ESHAPE,
                           "model output width %zu: a policy must output at least 3 values "
                           "(throttle, brake, steer)",
                           out_width);
    }
}

static crl_status nan_output(crl_err *err, size_t col, size_t row) {
    return crl_err_set(err, CRL_ERANGE, "model output %zu of observation %zu is NaN", col, row);
}

static crl_status apply_gaussian(const crl_policy_t *p, const float *y, size_t w, size_t n,
                                 int deterministic, uint64_t seed, float *actions, crl_err *err) {
    for (size_t r = 0; r < n; r++) {
        const float *row = y + r * w;
        for (size_t a = 0; a < 3; a++) {
            float mean = row[a];
            float ls = p->log_std_output ? row[3 + a] : p->log_std_const[a];
            if (isnan(mean)) return nan_output(err, a, r);
            if (isnan(ls)) return nan_output(err, 3 + a, r);
            double v = mean;
            if (!deterministic) {
                double cl = ls < p->log_std_min ? p->log_std_min
                                                : (ls > p->log_std_max ? p->log_std_max : ls);
                double z = crl_philox_normal(crl_philox_at(seed, (uint32_t)r, (uint32_t)a, 0));
                v = (double)mean + exp(cl) * z;
            }
            if (p->squash_tanh) v = tanh(v);
            actions[r * 3 + a] = (float)v;
        }
    }
    return CRL_OK;
}

static crl_status apply_categorical(const crl_policy_t *p, const float *y, size_t w, size_t n,
                                    int deterministic, uint64_t seed, float *actions,
                                    crl_err *err) {
    size_t k = p->n_actions;
    for (size_t r = 0; r < n; r++) {
        const float *row = y + r * w;
        size_t best = 0;
        for (size_t i = 0; i < k; i++) {
            if (isnan(row[i])) return nan_output(err, i, r);
            if (isinf(row[i]) && row[i] > 0)
                return crl_err_set(err, CRL_ERANGE, "model output %zu of observation %zu is +inf",
                                   i, r);
            if (row[i] > row[best]) best = i; /* strict: the first maximum wins ties */
        }
        if (isinf(row[best]))
            return crl_err_set(err, CRL_ERANGE,
                               "every logit of observation %zu is -inf: no action can be chosen",
                               r);
        size_t pick = best;
        if (!deterministic) {
            /* Inverse CDF of softmax in double: weights exp(l - max), u * total against the
             * running sum; zero-weight actions are never chosen. */
            double m = row[best], total = 0.0;
            for (size_t i = 0; i < k; i++)
                total += exp((double)row[i] - m);
            crl_philox_block_t b = crl_philox_at(seed, (uint32_t)r, 0, 0);
            double target = crl_philox_uniform53(b.v[0], b.v[1]) * total, cum = 0.0;
            for (size_t i = 0; i < k; i++) {
                double wi = exp((double)row[i] - m);
                cum += wi;
                if (wi > 0.0) pick = i;
                if (target < cum) break;
            }
        }
        memcpy(actions + r * 3, p->actions + pick * 3, 3 * sizeof(float));
    }
    return CRL_OK;
}

crl_status crl_policy_apply(const crl_policy_t *p, const float *y, size_t out_width, size_t n,
                            int deterministic, uint64_t seed, float *actions, crl_err *err) {
    if (out_width < crl_policy_min_width(p)) return crl_policy_check_width(p, out_width, err);
    switch (p->type) {
    case CRL_POLICY_GAUSSIAN:
        return apply_gaussian(p, y, out_width, n, deterministic, seed, actions, err);
    case CRL_POLICY_CATEGORICAL:
        return apply_categorical(p, y, out_width, n, deterministic, seed, actions, err);
    default:
        for (size_t r = 0; r < n; r++)
            for (size_t a = 0; a < 3; a++) {
                float v = y[r * out_width + a];
                if (isnan(v)) return nan_output(err, a, r);
                actions[r * 3 + a] = v;
            }
        return CRL_OK;
    }
}

/* splitmix64 per thread: cheap, and seeded from the kernel once so two workers (or two
 * processes) never hand out the same seed sequence. */
static _Thread_local uint64_t seed_state;
static _Thread_local int seed_ready;

uint64_t crl_policy_fresh_seed(void) {
    if (!seed_ready) {
        uint64_t s = 0;
        if (getrandom(&s, sizeof(s), GRND_NONBLOCK) != (ssize_t)sizeof(s)) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            s = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)ts.tv_sec ^
                (uint64_t)(uintptr_t)&seed_state;
        }
        seed_state = s;
        seed_ready = 1;
    }
    uint64_t z = (seed_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
