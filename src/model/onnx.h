/* onnx.h: ONNX import. Reads a ModelProto (protobuf wire format, decoded here with bounds checks,
 * no libprotobuf) and lowers its graph to a crl_nn_graph_t (nn/graph.h). Supported: opsets 11-17,
 * one float input [batch, d1, ..., dk] (k <= 5, or [N]), one output, and the ops Gemm, MatMul
 * (constant right operand), Add, Sub, Mul, Div, Pow (constant exponent), Relu, LeakyRelu, Elu,
 * Selu, Tanh, Sigmoid, Softplus, Softmax, LogSoftmax, Exp, Log, Sqrt, Erf, Clip (constant bounds),
 * Concat, Reshape, Flatten, Squeeze, Unsqueeze, Identity, Constant, Shape, Expand,
 * BatchNormalization (inference), LayerNormalization, ReduceMean, ArgMax, in any DAG. Anything
 * else is a load error whose message names the node, the op and the opset, e.g.
 * "node 'Conv_3' (op Conv, opset 14): unsupported operator". */
#ifndef CRL_MODEL_ONNX_H
#define CRL_MODEL_ONNX_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "nn/graph.h"

crl_status crl_onnx_load_file(const char *path, crl_nn_graph_t **out, crl_err *err);
crl_status crl_onnx_load_mem(const uint8_t *data, size_t len, crl_nn_graph_t **out, crl_err *err);

#endif
