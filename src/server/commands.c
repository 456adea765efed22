/* commands.c: `carlarl serve | predict | config | hwinfo`: configuration, then the work. */
#include "server/commands.h"

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
    crl_err err = {{0}};
    printf("carlarl check %s\n", dir);
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
    printf("  kernels       %s\n", k->name);
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
    printf("ok\n");
    crl_model_unref(m);
    free(c);
    return 0;
}
