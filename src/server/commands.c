/* commands.c: `carlarl serve | predict | config | hwinfo`: configuration, then the work. */
#include "server/commands.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/buf.h"
#include "core/log.h"
#include "hw/hw.h"
#include "core/time.h"
#include "model/model.h"
#include "server/offline.h"
#include "server/server.h"

/* Loads the configuration for `command`; on error prints it and returns 2, on --help prints the
 * usage and returns 0, else returns -1 (go on). *out is malloc'd (the struct is large). */
static int load(const char *command, int argc, char **argv, crl_config_t **out,
                crl_config_args_t *args) {
    crl_err err = {{0}};
    memset(args, 0, sizeof(*args));
    args->command = command;
    *out = malloc(sizeof(crl_config_t));
    if (*out == NULL) {
        fprintf(stderr, "carlarl %s: out of memory\n", command);
        return 1;
    }
    if (crl_config_load(*out, argc, argv, args, &err) != CRL_OK) {
        fprintf(stderr, "carlarl %s: %s\n", command, err.msg);
        free(*out);
        *out = NULL;
        return 2;
    }
    if (args->help) {
        crl_config_usage(stdout, command);
        free(*out);
        *out = NULL;
        return 0;
    }
    return -1;
}

int crl_cmd_serve(int argc, char **argv) {
    crl_config_t *c;
    crl_config_args_t args;
    int rc = load("serve", argc, argv, &c, &args);
    if (rc >= 0) return rc;
    crl_err err = {{0}};
    if (crl_server_check(c, &err) != CRL_OK) {
        fprintf(stderr, "carlarl serve: %s\n", err.msg);
        free(c);
        return 2;
    }
    crl_status st = crl_server_run(c, argc, argv, &err);
    if (st != CRL_OK && *err.msg) fprintf(stderr, "carlarl serve: %s\n", err.msg);
    free(c);
    return st == CRL_OK ? 0 : 1;
}

int crl_cmd_predict(int argc, char **argv) {
    crl_config_t *c;
    crl_config_args_t args;
    int rc = load("predict", argc, argv, &c, &args);
    if (rc >= 0) return rc;
    crl_err err = {{0}};
    if (crl_server_check_precision(c, &err) != CRL_OK) {
        fprintf(stderr, "carlarl predict: %s\n", err.msg);
        free(c);
        return 2;
    }
    crl_server_choose_kernels(c);
    crl_status st = crl_offline_predict(c, stdin, stdout, &err);
    if (st != CRL_OK && st != CRL_EINVAL && *err.msg)
        fprintf(stderr, "carlarl predict: %s\n", err.msg);
    free(c);
    return st == CRL_OK ? 0 : 1;
}

int crl_cmd_config(int argc, char **argv) {
    crl_config_t *c;
    crl_config_args_t args;
    int rc = load("config", argc, argv, &c, &args);
    if (rc >= 0) return rc;
    crl_buf out;
    crl_buf_init(&out, 1u << 22);
    if (args.check) {
        crl_err err = {{0}};
        crl_status st = crl_config_check_file(args.check, &err);
        if (st != CRL_OK)
            fprintf(stderr, "%s\n", err.msg);
        else
            printf("%s: ok\n", args.check);
        free(c);
        return st == CRL_OK ? 0 : 2;
    }
    if (args.markdown)
        crl_config_write_markdown(&out);
    else
        crl_config_write_yaml(c, &out);
    fwrite(out.data, 1, out.len, stdout);
    crl_buf_free(&out);
    free(c);
    return 0;
}

int crl_cmd_hwinfo(int argc, char **argv) {
    int json = 0;
    int rest = 0;
    char **args_left = malloc(sizeof(char *) * (size_t)(argc + 1));
    if (args_left == NULL) return 1;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else
            args_left[rest++] = argv[i];
    }
    crl_config_t *c;
    crl_config_args_t args;
    int rc = load("hwinfo", rest, args_left, &c, &args);
    free(args_left);
    if (rc >= 0) return rc;
    crl_hw_info_t hw;
    crl_hw_detect(&hw);
    crl_log_set_level(CRL_LOG_ERROR); /* the kernel choice's log line is not part of the report */
    const crl_kernels_t *k = crl_server_choose_kernels(c);
    crl_buf out;
    crl_buf_init(&out, 1u << 20);
    if (json)
        crl_hw_write_json(&hw, k->name, &out);
    else
        crl_hw_write_text(&hw, k->name, &out);
    fwrite(out.data, 1, out.len, stdout);
    if (json) fputc('\n', stdout);
    crl_buf_free(&out);
    free(c);
    return 0;
}

/* `carlarl check DIR`: everything a load does (card, hashes, ONNX import and passes, shapes,
 * preprocessor, policy head, warm-up) plus timed forward passes, as a report. Exit 0 when the
 * version would be served, 1 when it would be skipped (the reason is printed). */
static double time_forward(const crl_model_t *m, size_t rows) {
    crl_nn_ws_t *ws = NULL;
    float *x = calloc(rows * m->in_width, sizeof(float));
    float *y = calloc(rows * m->out_width, sizeof(float));
    double best = -1;
    if (x && y && crl_nn_ws_new(m->graph, rows, &ws) == CRL_OK) {
        for (int rep = 0; rep < 5; rep++) {
            uint64_t t0 = crl_time_mono_ns();
            int n = 0;
            do
                crl_nn_run(m->graph, ws, x, rows, y);
            while (++n < 100000 && crl_time_mono_ns() - t0 < 20000000u);
            double ns = (double)(crl_time_mono_ns() - t0) / n;
            if (best < 0 || ns < best) best = ns;
        }
    }
    crl_nn_ws_free(ws);
    free(x);
    free(y);
    return best;
}

/* The bfloat16 section of `check`: the served network run in float32 and in bfloat16 on the same
 * BF16_ROWS seeded inputs (uniform in [-2, 2), the range of standardised observations), and the
 * difference of the outputs and of the actions (the card's policy head, deterministic, clipped).
 * rel is max |bf16 - f32| / max |f32| over the batch: the error as a fraction of the output's
 * scale (an element-wise ratio would blow up at outputs near zero). */
#define BF16_ROWS 64

typedef struct bf16_diff {
    double abs, scale;
} bf16_diff;

static void diff_update(bf16_diff *d, const float *a, const float *ref, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - (double)ref[i]);
        if (e > d->abs || isnan(e)) d->abs = e;
        if (fabs((double)ref[i]) > d->scale) d->scale = fabs((double)ref[i]);
    }
}

/* The forward pass and the policy head in the graph's current precision. */
static crl_status run_rows(const crl_model_t *m, const float *x, float *y, float *act) {
    crl_nn_ws_t *ws = NULL;
    crl_status st = crl_nn_ws_new(m->graph, BF16_ROWS, &ws);
    if (st == CRL_OK) st = crl_nn_run(m->graph, ws, x, BF16_ROWS, y);
    crl_nn_ws_free(ws);
    if (st == CRL_OK)
        st = crl_policy_apply(&m->card->policy, y, m->out_width, BF16_ROWS, 1, 0, act, NULL);
    for (size_t i = 0; st == CRL_OK && i < BF16_ROWS * CRL_ACTIONS; i++) {
        float lo = m->card->action_lo[i % CRL_ACTIONS], hi = m->card->action_hi[i % CRL_ACTIONS];
        act[i] = act[i] < lo ? lo : (act[i] > hi ? hi : act[i]);
    }
    return st;
}

static void report_bf16(crl_model_t *m, const crl_kernels_t *k) {
    if (k->linear_packed_bf16 == NULL) {
        printf("  bfloat16      not available with the %s kernels (needs a CPU with "
               "AVX512_BF16, flag avx512_bf16)\n",
               k->name);
        return;
    }
    size_t nx = BF16_ROWS * m->in_width, ny = BF16_ROWS * m->out_width;
    size_t na = BF16_ROWS * CRL_ACTIONS;
    float *x = malloc((nx + 2 * ny + 2 * na) * sizeof(float));
    if (x == NULL) return;
    float *y[2] = {x + nx, x + nx + ny}, *act[2] = {x + nx + 2 * ny, x + nx + 2 * ny + na};
    uint64_t s = 0x9e3779b97f4a7c15ull; /* fixed seed: the same batch on every run */
    for (size_t i = 0; i < nx; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((double)(s >> 40) / (double)(1u << 24) * 4.0 - 2.0);
    }
    crl_nn_precision served = crl_nn_graph_precision(m->graph);
    crl_err err = {{0}};
    crl_status st = CRL_OK;
    for (int p = 0; p < 2 && st == CRL_OK; p++) { /* 0: float32, 1: bfloat16 */
        st = crl_nn_graph_set_precision(m->graph, p ? CRL_NN_PRECISION_BF16 : CRL_NN_PRECISION_F32,
                                        &err);
        if (st == CRL_OK) st = run_rows(m, x, y[p], act[p]);
    }
    if (crl_nn_graph_set_precision(m->graph, served, &err) != CRL_OK && st == CRL_OK)
        st = CRL_ENOMEM;
    if (st != CRL_OK) {
        printf("  bfloat16      could not run: %s\n", err.msg[0] ? err.msg : "forward pass failed");
    } else {
        bf16_diff out = {0, 0}, a = {0, 0};
        diff_update(&out, y[1], y[0], ny);
        diff_update(&a, act[1], act[0], na);
        printf("  bfloat16      vs float32, %d seeded observations: outputs max abs %.3g, "
               "rel %.3g; actions max abs %.3g\n",
               BF16_ROWS, out.abs, out.scale > 0 ? out.abs / out.scale : out.abs, a.abs);
    }
    free(x);
}

int crl_cmd_check(int argc, char **argv) {
    const char *dir = NULL;
    int rest = 0;
    char **args_left = malloc(sizeof(char *) * (size_t)(argc + 1));
    if (args_left == NULL) return 1;
    for (int i = 0; i < argc; i++) {
        if (argv[i][0] != '-' && dir == NULL &&
            (i == 0 || argv[i - 1][0] != '-' || strchr(argv[i - 1], '=')))
            dir = argv[i];
        else
            args_left[rest++] = argv[i];
    }
    crl_config_t *c;
    crl_config_args_t args;
    int rc = load("check", rest, args_left, &c, &args);
    free(args_left);
    if (rc >= 0) return rc;
    if (dir == NULL) {
        fprintf(stderr, "usage: carlarl check DIR   (an artifact version directory, e.g. "
                        "artifacts/v1.0.0)\n");
        free(c);
        return 2;
    }
    crl_log_set_level(CRL_LOG_ERROR);
    crl_err err = {{0}};
    printf("carlarl check %s\n", dir);
    if (crl_server_check_precision(c, &err) != CRL_OK) {
        printf("  FAIL          %s\n", err.msg);
        free(c);
        return 1;
    }
    const crl_kernels_t *k = crl_server_choose_kernels(c);
    const char *base = strrchr(dir, '/');
    base = base && base[1] ? base + 1 : dir;
    crl_semver_t v;
    char label[CRL_SEMVER_MAX + 2];
    if (crl_semver_parse(base, &v) == CRL_OK)
        crl_semver_format(&v, label, sizeof(label));
    else
        snprintf(label, sizeof(label), "%s", base);
    crl_model_t *m = NULL;
    if (crl_model_load_dir(dir, label, &m, &err) != CRL_OK) {
        printf("  FAIL          %s\n", err.msg);
        free(c);
        return 1;
    }
    static const char *const policies[] = {"deterministic", "gaussian", "categorical"};
    printf("  card          %s %s (model_type %s)%s\n", m->card->model_name, m->version,
           m->card->model_type,
           crl_semver_parse(base, &v) == CRL_OK ? "" : " [directory name is not a version]");
    printf("  hashes        %zu file(s) verified\n", m->card->n_hashes);
    printf("  network       %s: %zu inputs -> %zu outputs, %zu ops after the passes\n",
           m->card->model_filename, m->in_width, m->out_width, crl_nn_graph_num_ops(m->graph));
    printf("  preprocessor  %s\n", m->pre.type == CRL_PREPROC_STANDARD ? "standard" : "minimal");
    printf("  policy        %s\n", policies[m->card->policy.type]);
    printf("  request       observations with %zu sensor values each\n", m->n_sensors);
    printf("  kernels       %s, %s\n", k->name,
           crl_nn_graph_precision(m->graph) == CRL_NN_PRECISION_BF16 ? "bfloat16" : "float32");
    printf("  load          %.3f ms (warm-up forward %.3f ms)\n", m->load_seconds * 1e3,
           m->warmup_seconds * 1e3);
    const size_t batches[] = {1, 64, 1000};
    for (size_t i = 0; i < 3; i++) {
        double ns = time_forward(m, batches[i]);
        if (ns < 0)
            printf("  forward       batch %zu: could not run\n", batches[i]);
        else
            printf("  forward       batch %-4zu %10.0f ns (%.1f ns per observation)\n", batches[i],
                   ns, ns / (double)batches[i]);
    }
    report_bf16(m, k);
    printf("ok\n");
    crl_model_unref(m);
    free(c);
    return 0;
}
