/* example.h: the built-in example policy, served when there are no artifacts. The original's
 * example (original-system.md §2.4): Linear(5,64) ReLU Linear(64,64) ReLU Linear(64,3) Tanh, last
 * weight x0.1, last bias [0.5, -2.0, 0.0], with the original's fitted standard preprocessor.
 *
 * Weights are fixed: drawn from splitmix64 seeded with CRL_EXAMPLE_SEED, in the order W0 [64][5],
 * b0 [64], W1 [64][64], b1 [64], W2 [3][64] (the last bias takes no draws). Each draw r gives
 * u = (r >> 40) * 2^-24 and value = (float)((2u - 1) * (1 / sqrt(fan_in)) * s) in double, with
 * s = 0.1 for W2 and 1 otherwise. tools/make_example_artifact.py draws the same numbers. */
#ifndef CRL_MODEL_EXAMPLE_H
#define CRL_MODEL_EXAMPLE_H

#include "core/status.h"
#include "model/card.h"
#include "model/preproc.h"
#include "nn/graph.h"

#define CRL_EXAMPLE_SEED 0x5EEDCA51A2024ull
#define CRL_EXAMPLE_VERSION "v0.1.0"
#define CRL_EXAMPLE_NAME "carla-ppo-example"

crl_status crl_example_graph(crl_nn_graph_t **out, crl_err *err);
void crl_example_preproc(crl_preproc_t *p);
/* The card the tool writes too (without artifact_hashes). */
crl_status crl_example_card(crl_card_t **out, crl_err *err);

#endif
