/* preproc.h: feature preprocessing with the original's exact float32 math (original-system.md
 * §2.5). Feature row = [speed', steering', s0' .. s(w-1)'], sensors zero-padded to w BEFORE
 * normalisation. standard: speed/steering (x - mean) / std when enabled; sensors clipped to
 * [clip_lo, clip_hi] then (x - mean) / std when enabled. minimal: raw values, no clipping. */
#ifndef CRL_MODEL_PREPROC_H
#define CRL_MODEL_PREPROC_H

#include <stddef.h>

#include "core/status.h"
#include "json/predict.h"

typedef enum crl_preproc_type {
    CRL_PREPROC_MINIMAL = 0,
    CRL_PREPROC_STANDARD = 1,
} crl_preproc_type;

typedef struct crl_preproc {
    crl_preproc_type type;
    int normalize_speed, normalize_steering, normalize_sensors;
    float speed_mean, speed_std;
    float steering_mean, steering_std;
    float sensor_mean, sensor_std; /* one scalar over all sensor values (the original's fit) */
    float clip_lo, clip_hi;        /* sensor_clip_range, default [-10, 10] */
} crl_preproc_t;

void crl_preproc_minimal(crl_preproc_t *p);
/* preprocessor.json: {"type": "standard"|"minimal", "normalize_speed": true, ...,
 * "speed_mean": f, "speed_std": f, "steering_mean": f, "steering_std": f, "sensor_mean": f,
 * "sensor_std": f, "sensor_clip_range": [lo, hi]}. Stds must be > 0. */
crl_status crl_preproc_load(const char *path, crl_preproc_t *p, crl_err *err);
/* x: [req->n x (2 + width)], width >= req->max_sensors. */
void crl_preproc_apply(const crl_preproc_t *p, const crl_predict_req_t *req, size_t width,
                       float *x);

#endif
