/* onnx.h: ONNX import. Reads a ModelProto (protobuf wire format, decoded here with bounds checks,
 * no libprotobuf) and lowers its graph to a crl_nn_graph_t. Supported: opsets 11-17, one float
 * input [batch, N] (or [N]), one float output, ops Gemm, MatMul, Add, Relu, Tanh, Sigmoid, Clip,
 * Identity, Flatten, Constant, arranged as a chain (an MLP). Anything else is a load error whose
 * message names the node and the op, e.g. "node 'Conv_3' (op Conv): unsupported operator". */
#ifndef CRL_MODEL_ONNX_H
#define CRL_MODEL_ONNX_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "nn/graph.h"

crl_status crl_onnx_load_file(const char *path, crl_nn_graph_t **out, crl_err *err);
crl_status crl_onnx_load_mem(const uint8_t *data, size_t len, crl_nn_graph_t **out, crl_err *err);

#endif
