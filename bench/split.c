/* bench/split.c: forward-pass throughput of one batch run on 1 thread and split across 2..N compute
 * threads (nn/split.h), with the best kernel table this CPU runs. Build: cmake --build build
 * --target bench_split; run: build/bench_split [MODEL.onnx|example] [THREADS] [ROWS...].
 * Each thread count runs 15 stretches of 50 ms of back-to-back batches, interleaved with the
 * others, and reports its best stretch; on a shared machine read the ratio. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/pool.h"
#include "core/time.h"
#include "hw/hw.h"
#include "kernels/kernels.h"
#include "model/example.h"
#include "model/onnx.h"
#include "nn/split.h"

typedef struct setup {
    crl_pool_t *pool;
    crl_nn_split_t *s;
} setup;

/* One timed stretch (~50 ms) of back-to-back batches: nanoseconds per batch. */
static double stretch(const crl_nn_graph_t *g, crl_nn_split_t *s, crl_nn_ws_t *ws, const float *x,
                      size_t rows, float *y) {
    uint64_t t0 = crl_time_mono_ns(), t;
    long n = 0;
    do {
        crl_nn_split_run(s, g, ws, x, rows, y);
        n++;
    } while ((t = crl_time_mono_ns()) - t0 < 50000000ull);
    return (double)(t - t0) / (double)n;
}

/* best[t]: the best stretch of 1..max_threads threads (min_rows 2: always split), alternating
 * thread counts stretch by stretch so that other load on the machine hits them alike. */
static int run(const crl_nn_graph_t *g, size_t max_threads, size_t rows, double *best) {
    size_t in = crl_nn_graph_input_width(g), out = crl_nn_graph_output_width(g);
    float *x = calloc(rows * in, sizeof(float)), *y = calloc(rows * out, sizeof(float));
    setup su[16] = {{0}};
    crl_nn_ws_t *ws = NULL;
    int ok = x && y && crl_nn_ws_new(g, rows, &ws) == CRL_OK;
    for (size_t t = 0; ok && t < max_threads; t++)
        ok = crl_pool_new(t + 1, &su[t].pool) == CRL_OK &&
             crl_nn_split_new(g, su[t].pool, 2, rows, &su[t].s) == CRL_OK;
    for (size_t i = 0; ok && i < rows * in; i++)
        x[i] = (float)(i % 7) * 0.1f;
    for (size_t t = 0; t < max_threads; t++)
        best[t] = 1e30;
    for (int rep = 0; ok && rep < 15; rep++)
        for (size_t t = 0; t < max_threads; t++) {
            double ns = stretch(g, su[t].s, ws, x, rows, y);
            if (ns < best[t]) best[t] = ns;
        }
    for (size_t t = 0; t < max_threads; t++) {
        crl_nn_split_free(su[t].s);
        crl_pool_free(su[t].pool);
    }
    crl_nn_ws_free(ws);
    free(x);
    free(y);
    return ok;
}

int main(int argc, char **argv) {
    const char *model = argc > 1 ? argv[1] : "example";
    size_t max_threads = argc > 2 ? strtoul(argv[2], NULL, 10) : 2;
    size_t rows_default[] = {16, 32, 64, 128, 256, 1000};
    size_t n_rows = argc > 3 ? (size_t)(argc - 3) : sizeof(rows_default) / sizeof(rows_default[0]);
    const crl_kernels_t *k = crl_kernels_choose(crl_kernels_isas_for(crl_hw_cpu_features()), NULL);
    crl_nn_graph_t *g = NULL;
    crl_err err = {{0}};
    crl_status st = strcmp(model, "example") == 0 ? crl_example_graph(&g, &err)
                                                  : crl_onnx_load_file(model, &g, &err);
    if (st != CRL_OK) {
        fprintf(stderr, "%s: %s\n", model, err.msg);
        return 1;
    }
    printf("model %s, kernels %s\n", model, k->name);
    printf("%6s %8s %14s %16s %8s\n", "rows", "threads", "us/batch", "rows/s", "speedup");
    if (max_threads < 1 || max_threads > 16) max_threads = 2;
    for (size_t r = 0; r < n_rows; r++) {
        size_t rows = argc > 3 ? strtoul(argv[3 + r], NULL, 10) : rows_default[r];
        double best[16];
        if (!run(g, max_threads, rows, best)) {
            fprintf(stderr, "cannot run %zu rows\n", rows);
            return 1;
        }
        for (size_t t = 0; t < max_threads; t++)
            printf("%6zu %8zu %14.2f %16.0f %7.2fx\n", rows, t + 1, best[t] * 1e-3,
                   (double)rows * 1e9 / best[t], best[0] / best[t]);
    }
    crl_nn_graph_free(g);
    return 0;
}
