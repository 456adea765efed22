/* carlarl.c: carlarl's own runtime as bench/yardsticks sees it, the way the server runs a model:
 * choose the best kernel table this CPU runs, then load the ONNX file (finishing the graph packs
 * the weights for that table), then time crl_nn_run with one workspace planned for the largest
 * batch. Prints the line protocol of common.h. */
#include "common.h"

#include "hw/hw.h"
#include "kernels/kernels.h"
#include "model/onnx.h"
#include "nn/graph.h"

typedef struct crl_ctx {
    const crl_nn_graph_t *g;
    crl_nn_ws_t *ws;
} crl_ctx;

static int forward(void *ctx, const float *x, size_t rows, float *y) {
    crl_ctx *c = ctx;
    return crl_nn_run(c->g, c->ws, x, rows, y) == CRL_OK ? 0 : -1;
}

int main(int argc, char **argv) {
    ys_args a;
    crl_err err = {0};
    crl_nn_graph_t *g = NULL;
    crl_ctx c = {0};
    if (ys_parse_args(argc, argv, &a) != 0 || a.onnx == NULL) {
        fprintf(stderr, "usage: %s --onnx model.onnx --golden DIR [--batches 1,8] [--reps N]\n",
                argv[0]);
        return 2;
    }
    const crl_kernels_t *k = crl_kernels_choose(crl_kernels_isas_for(crl_hw_cpu_features()), NULL);
    printf("info carlarl kernel table %s\n", k->name);
    if (crl_onnx_load_file(a.onnx, &g, &err) != CRL_OK) {
        printf("error carlarl cannot load %s: %s\n", a.onnx, err.msg);
        return 1;
    }
    if (crl_nn_ws_new(g, YS_MAX_ROWS, &c.ws) != CRL_OK) {
        printf("error carlarl cannot allocate a workspace\n");
        crl_nn_graph_free(g);
        return 1;
    }
    c.g = g;
    int rc = ys_run_variant("carlarl", &a, crl_nn_graph_input_width(g),
                            crl_nn_graph_output_width(g), forward, &c);
    crl_nn_ws_free(c.ws);
    crl_nn_graph_free(g);
    return rc == 0 ? 0 : 1;
}
