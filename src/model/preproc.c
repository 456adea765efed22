/* preproc.c: observation -> feature rows with the original's numpy float32 arithmetic
 * (original-system.md §2.5), and preprocessor.json loading. Each feature is one float subtraction
 * and one float division, exactly the two rounding steps numpy performs on float32 arrays, so the
 * features match the original bit for bit. */
#include "model/preproc.h"

#include <math.h>
#include <string.h>

#include "config/yaml.h"

void crl_preproc_minimal(crl_preproc_t *p) {
    memset(p, 0, sizeof(*p));
    p->type = CRL_PREPROC_MINIMAL;
    p->speed_std = p->steering_std = p->sensor_std = 1.0f;
    p->clip_lo = -10.0f;
    p->clip_hi = 10.0f;
}

static float norm(float x, float mean, float std) {
    return (x - mean) / std;
}

static void apply_standard(const crl_preproc_t *p, const crl_predict_req_t *req, size_t width,
                           float *x) {
    for (size_t i = 0; i < req->n; i++) {
        float *row = x + i * (2 + width);
        const float *s = req->sensors + req->sensor_off[i];
        size_t len = req->sensor_len[i];
        row[0] =
            p->normalize_speed ? norm(req->speed[i], p->speed_mean, p->speed_std) : req->speed[i];
        row[1] = p->normalize_steering ? norm(req->steering[i], p->steering_mean, p->steering_std)
                                       : req->steering[i];
        for (size_t j = 0; j < width; j++) {
            /* Padding happens before normalisation: a missing sensor is a raw 0. */
            float v = j < len ? s[j] : 0.0f;
            v = v < p->clip_lo ? p->clip_lo : (v > p->clip_hi ? p->clip_hi : v);
            row[2 + j] = p->normalize_sensors ? norm(v, p->sensor_mean, p->sensor_std) : v;
        }
    }
}

void crl_preproc_apply(const crl_preproc_t *p, const crl_predict_req_t *req, size_t width,
                       float *x) {
    if (p->type == CRL_PREPROC_STANDARD) {
        apply_standard(p, req, width, x);
        return;
    }
    for (size_t i = 0; i < req->n; i++) {
        float *row = x + i * (2 + width);
        const float *s = req->sensors + req->sensor_off[i];
        size_t len = req->sensor_len[i] < width ? req->sensor_len[i] : width;
        row[0] = req->speed[i];
        row[1] = req->steering[i];
        if (len > 0) memcpy(row + 2, s, len * sizeof(float));
        memset(row + 2 + len, 0, (width - len) * sizeof(float));
    }
}

/* ---- preprocessor.json ---- */

static crl_status get_flag(const crl_yaml_node_t *doc, const char *key, const char *path, int *out,
                           crl_err *err) {
    const crl_yaml_node_t *v = crl_yaml_get(doc, key);
    *out = 1; /* the original's StandardFeaturePreprocessor defaults every flag to True */
    if (v == NULL) return CRL_OK;
    if (crl_yaml_bool(v, out) != CRL_OK)
        return crl_err_set(err, CRL_EFORMAT, "%s:%d: %s: expected true or false", path, v->line,
                           key);
    return CRL_OK;
}

static crl_status get_stat(const crl_yaml_node_t *doc, const char *key, int is_std,
                           const char *path, float *out, crl_err *err) {
    const crl_yaml_node_t *v = crl_yaml_get(doc, key);
    double d;
    if (v == NULL)
        return crl_err_set(err, CRL_EFORMAT, "%s: %s: missing (needed because normalisation is on)",
                           path, key);
    if (crl_yaml_double(v, &d) != CRL_OK)
        return crl_err_set(err, CRL_EFORMAT, "%s:%d: %s: expected a finite number", path, v->line,
                           key);
    /* The check is made on the float that will be used: 1e-50 is 0 and 1e300 is inf there. */
    float f = (float)d;
    if (!isfinite(f))
        return crl_err_set(err, CRL_ERANGE, "%s:%d: %s: %g is out of float32 range", path, v->line,
                           key, d);
    if (is_std && !(f > 0.0f))
        return crl_err_set(err, CRL_ERANGE, "%s:%d: %s: standard deviation must be > 0, got %g",
                           path, v->line, key, d);
    *out = f;
    return CRL_OK;
}

static crl_status get_clip(const crl_yaml_node_t *doc, const char *path, crl_preproc_t *p,
                           crl_err *err) {
    const crl_yaml_node_t *v = crl_yaml_get(doc, "sensor_clip_range");
    double lo, hi;
    if (v == NULL) return CRL_OK;
    if (v->kind != CRL_YAML_SEQ || v->n != 2 || crl_yaml_double(v->items[0], &lo) != CRL_OK ||
        crl_yaml_double(v->items[1], &hi) != CRL_OK)
        return crl_err_set(err, CRL_EFORMAT, "%s:%d: sensor_clip_range: expected [low, high]", path,
                           v->line);
    if (!((float)lo <= (float)hi))
        return crl_err_set(err, CRL_ERANGE,
                           "%s:%d: sensor_clip_range: low (%g) must not exceed high (%g)", path,
                           v->line, lo, hi);
    p->clip_lo = (float)lo;
    p->clip_hi = (float)hi;
    return CRL_OK;
}

static crl_status load_doc(const crl_yaml_node_t *doc, const char *path, crl_preproc_t *p,
                           crl_err *err) {
    crl_status st;
    if (doc->kind != CRL_YAML_MAP)
        return crl_err_set(err, CRL_EFORMAT, "%s:%d: expected a JSON object", path, doc->line);
    const crl_yaml_node_t *t = crl_yaml_get(doc, "type");
    const char *type = t ? crl_yaml_str(t) : "standard";
    if (type != NULL && strcmp(type, "minimal") == 0) return CRL_OK; /* raw features */
    if (type == NULL || strcmp(type, "standard") != 0)
        return crl_err_set(err, CRL_EUNSUPPORTED,
                           "%s:%d: type: unknown preprocessor type '%s' (available: standard, "
                           "minimal)",
                           path, t->line, type ? type : "(not a string)");
    p->type = CRL_PREPROC_STANDARD;
    if ((st = get_flag(doc, "normalize_speed", path, &p->normalize_speed, err)) != CRL_OK ||
        (st = get_flag(doc, "normalize_steering", path, &p->normalize_steering, err)) != CRL_OK ||
        (st = get_flag(doc, "normalize_sensors", path, &p->normalize_sensors, err)) != CRL_OK)
        return st;
    if (p->normalize_speed &&
        ((st = get_stat(doc, "speed_mean", 0, path, &p->speed_mean, err)) != CRL_OK ||
         (st = get_stat(doc, "speed_std", 1, path, &p->speed_std, err)) != CRL_OK))
        return st;
    if (p->normalize_steering &&
        ((st = get_stat(doc, "steering_mean", 0, path, &p->steering_mean, err)) != CRL_OK ||
         (st = get_stat(doc, "steering_std", 1, path, &p->steering_std, err)) != CRL_OK))
        return st;
    if (p->normalize_sensors &&
        ((st = get_stat(doc, "sensor_mean", 0, path, &p->sensor_mean, err)) != CRL_OK ||
         (st = get_stat(doc, "sensor_std", 1, path, &p->sensor_std, err)) != CRL_OK))
        return st;
    return get_clip(doc, path, p, err);
}

crl_status crl_preproc_load(const char *path, crl_preproc_t *p, crl_err *err) {
    crl_yaml_node_t *doc = NULL;
    crl_preproc_t tmp;
    crl_preproc_minimal(&tmp);
    crl_status st = crl_yaml_load_file(path, &doc, err);
    if (st == CRL_OK) st = load_doc(doc, path, &tmp, err);
    crl_yaml_free(doc);
    if (st == CRL_OK) *p = tmp; /* *p is untouched on failure */
    return st;
}
