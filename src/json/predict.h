/* predict.h: the POST /predict body reader. One pass over the JSON text, no DOM, no per-number
 * malloc: observations land in flat arrays owned by a reusable parser (one per thread). It accepts
 * exactly what the original (Python json.loads + pydantic v2 lax mode) accepts, and reports
 * pydantic-shaped validation errors: field "body.observations.0.speed", message, type.
 *
 * Schema (original-system.md §1.2):
 *   {"observations": [{"speed": 0..200, "steering": -1..1, "sensors": [1..10000 of -1000..1000]},
 *                     ... 1..1000 items],
 *    "deterministic": bool | null (default false),
 *    "seed": integer 0..2^64-1 | null (carlarl's addition: keys a sampling policy head)}
 * Unknown keys are ignored; duplicate keys: the last one wins (json.loads semantics). Floats accept
 * JSON numbers, numeric strings ("25.5") and booleans. NaN/Infinity tokens and numbers that
 * overflow a double parse but fail validation (type "finite_number"). */
#ifndef CRL_JSON_PREDICT_H
#define CRL_JSON_PREDICT_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#define CRL_PREDICT_MAX_OBSERVATIONS 1000
#define CRL_PREDICT_MAX_SENSORS 10000
#define CRL_PREDICT_MAX_ERRORS 64 /* stored; further errors are counted only */
#define CRL_JSON_MAX_DEPTH 64     /* deeper nesting is a json_invalid error */

typedef struct crl_verr {
    char field[96];    /* "body.observations.0.speed", "body", "body.12" (json_invalid offset) */
    char message[160]; /* pydantic's wording */
    const char *type;  /* static: "missing", "float_parsing", "json_invalid", ... */
} crl_verr_t;

/* A parsed request; every pointer is owned by the parser and valid until its next parse. */
typedef struct crl_predict_req {
    size_t n;                   /* number of observations */
    const float *speed;         /* [n] */
    const float *steering;      /* [n] */
    const uint32_t *sensor_off; /* [n]: index of the row's first value in `sensors` */
    const uint32_t *sensor_len; /* [n] */
    const float *sensors;       /* all sensor values, row after row */
    size_t max_sensors;         /* the longest row's length */
    int deterministic;          /* 0 or 1 (null and absent are 0) */
    int has_seed;               /* 1 when "seed" was given (null is absent) */
    uint64_t seed;              /* the sampler's key (model/philox.h) when has_seed */

    /* Outcome when the parse returns CRL_EINVAL: */
    int json_invalid;         /* 1: not JSON at all (malformed, too deep, bad UTF-8, empty) */
    const crl_verr_t *errors; /* the first CRL_PREDICT_MAX_ERRORS errors, in document order */
    size_t n_errors;          /* stored */
    size_t n_errors_total;    /* including those not stored */
} crl_predict_req_t;

typedef struct crl_predict_parser crl_predict_parser_t;

crl_status crl_predict_parser_new(crl_predict_parser_t **out);
void crl_predict_parser_free(crl_predict_parser_t *p); /* NULL-safe */

/* Parses body[0..len). Returns CRL_OK when the request is valid, CRL_EINVAL when it is not JSON
 * (out->json_invalid = 1, one error of type json_invalid, or "missing" at "body" for an empty
 * body) or fails validation (out->errors), CRL_ENOMEM when an internal cap is exceeded.
 * Never reads past len; the body need not be NUL-terminated. */
crl_status crl_predict_parse(crl_predict_parser_t *p, const char *body, size_t len,
                             crl_predict_req_t *out);

/* Releases memory above `keep_bytes` held from an unusually large request (call when idle). */
void crl_predict_parser_trim(crl_predict_parser_t *p, size_t keep_bytes);

#endif
