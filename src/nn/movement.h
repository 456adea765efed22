/* movement.h: the data-movement ops of the graph (SLICE, GATHER, TRANSPOSE), internal to nn/.
 * graph.c calls the infer functions while building a node (they check the attributes, rewrite
 * them into the per-dimension form the run functions read, and fill the output shape) and the run
 * functions from its executor, over concrete dims (the batch substituted), for batched values
 * and, at finish, for constants alike. Every value is row-major. */
#ifndef CRL_NN_MOVEMENT_H
#define CRL_NN_MOVEMENT_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "nn/graph.h"

/* SLICE: on success a->starts[i] / a->steps[i] hold the first index and the step of every dim i
 * of the input (n_axes = rank, axes[i] = i) and o the output shape. */
crl_status crl_nn__infer_slice(const crl_nn_shape *s, crl_nn_attrs *a, crl_nn_shape *o,
                               crl_err *err);
/* TRANSPOSE: on success a->axes[0..rank) is the full permutation (n_axes = rank). */
crl_status crl_nn__infer_transpose(const crl_nn_shape *s, crl_nn_attrs *a, crl_nn_shape *o,
                                   crl_err *err);
/* GATHER: a->shape holds the indices' shape, ix its n_ix entries, which are checked against the
 * axis and made non-negative in place; a->axis becomes non-negative. */
crl_status crl_nn__infer_gather(const crl_nn_shape *s, crl_nn_attrs *a, int64_t *ix, size_t n_ix,
                                crl_nn_shape *o, crl_err *err);
/* 1 when a SLICE or TRANSPOSE, as inferred, leaves every element where it was (a full slice, or a
 * permutation that only moves dims of size 1): it is then a RESHAPE. */
int crl_nn__moves_nothing(crl_nn_op op, const crl_nn_shape *s, const crl_nn_attrs *a,
                          const crl_nn_shape *o);

/* d: the input's r concrete dims; od: the output's. */
void crl_nn__run_slice(const crl_nn_attrs *a, const float *x, const size_t *d, size_t r,
                       const size_t *od, float *y);
void crl_nn__run_transpose(const crl_nn_attrs *a, const float *x, const size_t *d, size_t r,
                           float *y);
void crl_nn__run_gather(const crl_nn_attrs *a, const int64_t *ix, size_t n_ix, const float *x,
                        const size_t *d, size_t r, float *y);

#endif
