/* bench/kernels.c: forward pass of the example MLP (5-64-64-3) with every kernel table this CPU
 * runs, in one run, as ratios to the generic table; on CPUs with AVX512_BF16, the same MLP in
 * bfloat16 and single layers (the MLP's, and nature_cnn's 3136x512) in float32 against bfloat16
 * on the avx512 table. Build: cmake --build build --target
 * bench_kernels; run: build/bench_kernels. The graph is built after each table is chosen, as
 * the server loads models after choosing, so it runs with that table's packed weights. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "model/example.h"
#include "kernels/kernels.h"
#include "hw/hw.h"
#include "core/time.h"
static double run(crl_nn_graph_t *g, size_t rows, int iters) {
    crl_nn_ws_t *ws;
    crl_nn_ws_new(g, rows, &ws);
    float *x = calloc(rows * 5, 4), *y = calloc(rows * 3, 4);
    for (size_t i = 0; i < rows * 5; i++)
        x[i] = (float)(i % 7) * 0.1f;
    double best = 1e30;
    for (int rep = 0; rep < 7; rep++) {
        uint64_t t0 = crl_time_mono_ns();
        for (int i = 0; i < iters; i++) {
            x[0] = (float)i * 1e-6f;
            crl_nn_run(g, ws, x, rows, y);
        }
        double ns = (double)(crl_time_mono_ns() - t0) / iters;
        if (ns < best) best = ns;
    }
    crl_nn_ws_free(ws);
    free(x);
    free(y);
    return best;
}
/* One linear layer, best of 7, ns per call: float32 (the table's packed form where it packs the
 * shape, as the graph runs it) or bfloat16. */
static double run_layer(const crl_kernels_t *t, int bf16, size_t rows, size_t in, size_t out) {
    float *x = calloc(rows * in, 4), *w = calloc(in * out, 4), *b = calloc(out, 4);
    float *y = calloc(rows * out, 4);
    for (size_t i = 0; i < rows * in; i++)
        x[i] = (float)(i % 13) * 0.01f;
    for (size_t i = 0; i < in * out; i++)
        w[i] = (float)(i % 11) * 0.01f - 0.05f;
    size_t np = bf16 ? t->pack_bf16_size(in, out) : t->pack_size(in, out);
    void *pk = NULL;
    if (np && posix_memalign(&pk, 64, np * (bf16 ? 2 : 4) + 64) != 0) return -1;
    if (bf16)
        t->pack_bf16(w, in, out, pk);
    else if (np)
        t->pack(w, in, out, pk);
    int iters = (int)(2e8 / (double)(rows * in * out + 1000)) + 1;
    double best = 1e30;
    for (int rep = 0; rep < 7; rep++) {
        uint64_t t0 = crl_time_mono_ns();
        for (int i = 0; i < iters; i++) {
            if (bf16)
                t->linear_packed_bf16(x, rows, in, pk, b, out, y);
            else if (np)
                t->linear_packed(x, rows, in, pk, b, out, y);
            else
                t->linear(x, rows, in, w, b, out, y);
        }
        double ns = (double)(crl_time_mono_ns() - t0) / iters;
        if (ns < best) best = ns;
    }
    free(pk);
    free(x);
    free(w);
    free(b);
    free(y);
    return best;
}

static void bench_bf16(unsigned isas) {
    const crl_kernels_t *t = crl_kernels_choose(isas, "avx512");
    if (t->linear_packed_bf16 == NULL) {
        printf("bfloat16: not available (needs AVX512_BF16)\n");
        return;
    }
    crl_err e;
    crl_nn_graph_t *g;
    crl_example_graph(&g, &e);
    crl_nn_graph_set_precision(g, CRL_NN_PRECISION_BF16, &e);
    double b1 = run(g, 1, 100000), b256 = run(g, 256, 400);
    crl_nn_graph_free(g);
    printf("avx512 bfloat16 MLP batch 1: %7.1f ns   batch 256: %8.1f us\n", b1, b256 / 1000);
    static const size_t shapes[][2] = {{5, 64}, {64, 64}, {64, 3}, {3136, 512}};
    static const size_t rows[] = {1, 64, 256};
    printf("layer (in x out)  rows   float32 ns   bfloat16 ns   f32/bf16\n");
    for (size_t s = 0; s < 4; s++)
        for (size_t r = 0; r < 3; r++) {
            double f = run_layer(t, 0, rows[r], shapes[s][0], shapes[s][1]);
            double h = run_layer(t, 1, rows[r], shapes[s][0], shapes[s][1]);
            printf("%5zu x %-5zu    %5zu %12.0f %13.0f %9.2fx\n", shapes[s][0], shapes[s][1],
                   rows[r], f, h, f / h);
        }
}

int main(void) {
    crl_err e;
    const char *names[] = {"generic", "avx2", "avx512", "neon"};
    unsigned isas = crl_kernels_isas_for(crl_hw_cpu_features());
    double base1 = 0, base256 = 0;
    for (int k = 0; k < 4; k++) {
        const crl_kernels_t *t = crl_kernels_choose(isas, names[k]);
        if (strcmp(t->name, names[k]) != 0) continue;
        /* Built after the choice, as the server does: finishing packs weights for that table. */
        crl_nn_graph_t *g;
        crl_example_graph(&g, &e);
        double b1 = run(g, 1, 100000), b256 = run(g, 256, 400);
        crl_nn_graph_free(g);
        if (k == 0) {
            base1 = b1;
            base256 = b256;
        }
        printf("%-8s batch 1: %7.1f ns (%.2fx)   batch 256: %8.1f us (%.2fx)\n", names[k], b1,
               base1 / b1, b256 / 1000, base256 / b256);
    }
    bench_bf16(isas);
    return 0;
}
