/* bench/kernels.c: forward pass of the example MLP (5-64-64-3) with every kernel table this CPU
 * runs, in one run, as ratios to the generic table. Build: cmake --build build --target
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
    return 0;
}
