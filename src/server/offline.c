/* offline.c: `carlarl predict`. */
#include "server/offline.h"

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/time.h"
#include "json/predict.h"
#include "json/response.h"
#include "json/write.h"
#include "model/model.h"

static void write_errors(FILE *out, const crl_predict_req_t *pr) {
    crl_buf b;
    crl_buf_init(&b, 1u << 20);
    crl_buf_puts(&b, "{\"error\":\"VALIDATION_ERROR\",\"message\":\"Input validation failed\","
                     "\"details\":{\"validation_errors\":[");
    for (size_t i = 0; i < pr->n_errors; i++) {
        crl_buf_puts(&b, i ? ",{\"field\":" : "{\"field\":");
        crl_json_cstr(&b, pr->errors[i].field);
        crl_buf_puts(&b, ",\"message\":");
        crl_json_cstr(&b, pr->errors[i].message);
        crl_buf_puts(&b, ",\"type\":");
        crl_json_cstr(&b, pr->errors[i].type);
        crl_buf_puts(&b, "}");
    }
    crl_buf_puts(&b, "]}}\n");
    fwrite(b.data, 1, b.len, out);
    crl_buf_free(&b);
}

crl_status crl_offline_predict(const crl_config_t *o, FILE *in, FILE *out, crl_err *err) {
    crl_status st;
    crl_buf body;
    crl_predict_parser_t *parser = NULL;
    crl_model_t *m = NULL;
    crl_pool_t *pool = NULL;
    crl_nn_ws_t *ws = NULL;
    float *x = NULL, *y = NULL, *act = NULL;
    char *resp = NULL;
    crl_buf_init(&body, (size_t)o->server.max_request_size);
    crl_log_set_level((crl_log_level)((o->logging.level + 1) * 10));

    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), in)) > 0)
        if (crl_buf_append(&body, chunk, n) != CRL_OK) {
            st = crl_err_set(err, CRL_ENOMEM, "input larger than the body limit (%llu bytes)",
                             (unsigned long long)o->server.max_request_size);
            goto out;
        }
    /* optimization.compute_threads splits a large batch here as in the server (no pinning: one
     * batch, then exit). */
    if (o->optimization.compute_threads > 1 &&
        crl_pool_new((size_t)o->optimization.compute_threads, &pool) != CRL_OK) {
        st = crl_err_set(err, CRL_ENOMEM, "optimization.compute_threads: cannot start %ld threads",
                         o->optimization.compute_threads);
        goto out;
    }
    crl_registry_opts_t ro = {.artifact_dir = o->model.artifact_dir,
                              .pin = o->model.version,
                              .pool = pool,
                              .parallel_min_rows = (size_t)o->optimization.parallel_min_rows,
                              .parallel_max_rows = CRL_PREDICT_MAX_OBSERVATIONS};
    if ((st = crl_registry_load_startup(&ro, NULL, err)) != CRL_OK) goto out;
    m = crl_registry_acquire();
    if ((st = crl_predict_parser_new(&parser)) != CRL_OK) goto out;
    crl_predict_req_t pr;
    if (crl_predict_parse(parser, body.data ? body.data : "", body.len, &pr) != CRL_OK) {
        write_errors(out, &pr);
        st = CRL_EINVAL;
        goto out;
    }
    if (pr.max_sensors != m->n_sensors) {
        fprintf(out,
                "{\"error\":\"VALIDATION_ERROR\",\"message\":\"Model %s expects %zu sensor values "
                "per observation, got %zu\"}\n",
                m->version, m->n_sensors, pr.max_sensors);
        st = CRL_EINVAL;
        goto out;
    }
    x = malloc(pr.n * m->in_width * sizeof(float));
    y = malloc(pr.n * m->out_width * sizeof(float));
    act = malloc(pr.n * 3 * sizeof(float));
    resp = malloc(crl_json_predict_response_cap(pr.n, strlen(m->version)));
    if (!x || !y || !act || !resp) {
        st = crl_err_set(err, CRL_ENOMEM, "out of memory");
        goto out;
    }
    if ((st = crl_nn_ws_new(m->graph, pr.n, &ws)) != CRL_OK) goto out;
    uint64_t t0 = crl_time_mono_ns();
    if ((st = crl_model_predict(m, ws, &pr, x, y, act, err)) != CRL_OK) goto out;
    double ms = (double)(crl_time_mono_ns() - t0) * 1e-6;
    size_t len = crl_json_predict_response(resp, act, pr.n, m->version, ms, pr.deterministic);
    fwrite(resp, 1, len, out);
    fputc('\n', out);
out:
    free(resp);
    free(x);
    free(y);
    free(act);
    crl_nn_ws_free(ws);
    crl_model_unref(m);
    crl_predict_parser_free(parser);
    crl_buf_free(&body);
    crl_registry_shutdown();
    crl_pool_free(pool); /* after the model that plans workspaces for it */
    return st;
}
