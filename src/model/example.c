/* example.c: the built-in example policy, served when no artifact directory has a version
 * (original-system.md §2.4). The original initialised it unseeded, so every build differed;
 * carlarl draws its weights from a fixed splitmix64 stream instead, and
 * tools/make_example_artifact.py draws the same stream, so the ONNX file it writes and this graph
 * compute the same function. */
#include "model/example.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { EX_IN = 5, EX_HIDDEN = 64, EX_OUT = 3 };

/* The original's fit on its 100 synthetic observations, as numpy float32 computes it
 * (tools/make_example_artifact.py fit_standard_preprocessor, printed with %.9g). */
#define EX_SPEED_MEAN 44.75f
#define EX_SPEED_STD 14.4330349f
#define EX_STEERING_MEAN -0.0100000091f
#define EX_STEERING_STD 0.57732141f
#define EX_SENSOR_MEAN 0.829999983f
#define EX_SENSOR_STD 0.613568842f

/* Kept in step with card_text() in tools/make_example_artifact.py. */
static const char example_card_yaml[] =
    "model_name: \"" CRL_EXAMPLE_NAME "\"\n"
    "version: \"" CRL_EXAMPLE_VERSION "\"\n"
    "model_type: onnx\n"
    "model_filename: model.onnx\n"
    "preprocessor_filename: preprocessor.json\n"
    "description: \"Built-in example policy (the original CarlaRL example network with fixed "
    "weights); not a trained driver\"\n"
    "input_shape: [5]\n"
    "action_space:\n"
    "  throttle: [0.0, 1.0]\n"
    "  brake: [0.0, 1.0]\n"
    "  steer: [-1.0, 1.0]\n";

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* example.h's recipe: double math, one rounding to float at the end (the Python side too). */
static void draw(uint64_t *state, float *dst, size_t n, size_t fan_in, double scale) {
    double bound = 1.0 / sqrt((double)fan_in);
    for (size_t i = 0; i < n; i++) {
        double u = (double)(splitmix64(state) >> 40) * (1.0 / 16777216.0);
        dst[i] = (float)((2.0 * u - 1.0) * bound * scale);
    }
}

void crl_example_preproc(crl_preproc_t *p) {
    crl_preproc_minimal(p);
    p->type = CRL_PREPROC_STANDARD;
    p->normalize_speed = p->normalize_steering = p->normalize_sensors = 1;
    p->speed_mean = EX_SPEED_MEAN;
    p->speed_std = EX_SPEED_STD;
    p->steering_mean = EX_STEERING_MEAN;
    p->steering_std = EX_STEERING_STD;
    p->sensor_mean = EX_SENSOR_MEAN;
    p->sensor_std = EX_SENSOR_STD;
    p->clip_lo = -10.0f;
    p->clip_hi = 10.0f;
}

crl_status crl_example_graph(crl_nn_graph_t **out, crl_err *err) {
    static const float b2[EX_OUT] = {0.5f, -2.0f, 0.0f};
    crl_nn_graph_t *g = NULL;
    crl_status st = CRL_OK;
    *out = NULL;
    /* One block for all weights, in draw order. */
    size_t nw0 = EX_HIDDEN * EX_IN, nw1 = EX_HIDDEN * EX_HIDDEN, nw2 = EX_OUT * EX_HIDDEN;
    float *w = malloc((nw0 + EX_HIDDEN + nw1 + EX_HIDDEN + nw2) * sizeof(float));
    if (w == NULL) return crl_err_set(err, CRL_ENOMEM, "out of memory building the example");
    float *w0 = w, *b0 = w0 + nw0, *w1 = b0 + EX_HIDDEN, *b1 = w1 + nw1, *w2 = b1 + EX_HIDDEN;
    uint64_t state = CRL_EXAMPLE_SEED;
    draw(&state, w0, nw0, EX_IN, 1.0);
    draw(&state, b0, EX_HIDDEN, EX_IN, 1.0);
    draw(&state, w1, nw1, EX_HIDDEN, 1.0);
    draw(&state, b1, EX_HIDDEN, EX_HIDDEN, 1.0);
    draw(&state, w2, nw2, EX_HIDDEN, 0.1);

    if ((st = crl_nn_graph_new(EX_IN, &g)) != CRL_OK) {
        crl_err_set(err, st, "cannot create the example graph");
        goto out;
    }
    if ((st = crl_nn_graph_add_linear(g, w0, b0, EX_IN, EX_HIDDEN, err)) != CRL_OK ||
        (st = crl_nn_graph_add_act(g, CRL_NN_RELU, err)) != CRL_OK ||
        (st = crl_nn_graph_add_linear(g, w1, b1, EX_HIDDEN, EX_HIDDEN, err)) != CRL_OK ||
        (st = crl_nn_graph_add_act(g, CRL_NN_RELU, err)) != CRL_OK ||
        (st = crl_nn_graph_add_linear(g, w2, b2, EX_HIDDEN, EX_OUT, err)) != CRL_OK ||
        (st = crl_nn_graph_add_act(g, CRL_NN_TANH, err)) != CRL_OK ||
        (st = crl_nn_graph_finish(g, err)) != CRL_OK)
        goto out;
    *out = g;
    g = NULL;
out:
    crl_nn_graph_free(g);
    free(w);
    return st;
}

crl_status crl_example_card(crl_card_t **out, crl_err *err) {
    return crl_card_parse(example_card_yaml, sizeof(example_card_yaml) - 1, "<built-in example>",
                          out, err);
}
