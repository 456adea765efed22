/* fuzz_onnx.c: libFuzzer target for the ONNX importer. Any byte string must either load into a
 * graph (which is then run once and freed) or fail with a status and a message; never crash,
 * leak or read out of bounds. Seeds: tests/fuzz/corpus/onnx/. */
#include <stddef.h>
#include <stdint.h>

#include "model/onnx.h"
#include "nn/graph.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    crl_nn_graph_t *g = NULL;
    crl_err err;
    if (crl_onnx_load_mem(data, size, &g, &err) != CRL_OK) return 0;
    /* A graph that loaded must also run: one zero row through a fresh workspace. */
    crl_nn_ws_t *ws = NULL;
    static float x[1 << 16], y[1 << 16];
    if (crl_nn_ws_new(g, 1, &ws) == CRL_OK) crl_nn_run(g, ws, x, 1, y);
    crl_nn_ws_free(ws);
    crl_nn_graph_free(g);
    return 0;
}
