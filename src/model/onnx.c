/* onnx.c: ONNX import. A small protobuf wire-format decoder (every read bounds-checked, no
 * libprotobuf) pulls out the parts of onnx.proto a policy network needs, then the nodes are lowered
 * one by one, in the file's (topological) order, to nodes of a crl_nn_graph_t; the graph's own
 * passes (nn/graph.c) fold constants, BatchNorm and biases and drop what the output does not need.
 * Integer tensors (shapes, axes) never become graph values: they are read at load time, and a
 * Shape of a batched value is kept symbolic so Expand / Reshape to it keep the dynamic batch.
 *
 * The decoder is zero-copy: names and raw tensor bytes stay views (spans) into the caller's buffer,
 * and tensors are only turned into floats when an operator uses them. It never recurses into
 * fields it does not know (sub-graphs, training info, ...): those are skipped by length, so the
 * nesting depth is bounded by the schema below (at most 7 levels), whatever the input. */
#include "model/onnx.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define ONNX_MAX_FILE ((size_t)1 << 30)
#define ONNX_MAX_NODES 4096
#define ONNX_MAX_INITS 4096
#define ONNX_MAX_VALUES 4096 /* graph inputs / outputs */
#define ONNX_MAX_DIMS 8
#define ONNX_MAX_IO 8 /* inputs or outputs of one node */
#define ONNX_MAX_ELEMS ((uint64_t)256 << 20)
#define ONNX_OPSET_MIN 11
#define ONNX_OPSET_MAX 17
#define ONNX_FLOAT 1 /* TensorProto.DataType.FLOAT */
#define ONNX_INT32 6
#define ONNX_INT64 7
#define ONNX_MAX_INDICES ((size_t)1 << 20) /* Gather's constant indices */

/* ---- protobuf wire format ------------------------------------------------------------------ */

typedef struct pb_span {
    const uint8_t *p;
    size_t n;
} pb_span;

enum { PB_VARINT = 0, PB_I64 = 1, PB_LEN = 2, PB_I32 = 5 };

typedef struct pb_field {
    uint32_t num;
    uint32_t wt;
    uint64_t u; /* VARINT, I64, I32 */
    pb_span s;  /* LEN */
} pb_field;

static void pb_skip(pb_span *r, size_t k) {
    r->p += k;
    r->n -= k;
}

/* At most 10 bytes, and the 10th may only carry the 64th bit: anything longer is malformed. */
static int pb_varint(pb_span *r, uint64_t *v) {
    uint64_t x = 0;
    for (unsigned i = 0; i < 10; i++) {
        if (r->n == 0) return -1;
        uint8_t b = r->p[0];
        pb_skip(r, 1);
        if (i == 9 && b > 1) return -1;
        x |= (uint64_t)(b & 0x7f) << (7 * i);
        if ((b & 0x80) == 0) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

static uint64_t pb_le(const uint8_t *p, unsigned nbytes) {
    uint64_t v = 0;
    for (unsigned i = 0; i < nbytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static float pb_f32(uint64_t bits) {
    uint32_t u = (uint32_t)bits;
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

/* Reads the next field of a message. Returns 1 for a field, 0 at the end, -1 when malformed. */
static int pb_next(pb_span *r, pb_field *f) {
    if (r->n == 0) return 0;
    uint64_t tag, len;
    if (pb_varint(r, &tag) != 0) return -1;
    if ((tag >> 3) == 0 || (tag >> 3) > 0x1fffffff) return -1;
    f->num = (uint32_t)(tag >> 3);
    f->wt = (uint32_t)(tag & 7);
    f->u = 0;
    f->s.p = NULL;
    f->s.n = 0;
    switch (f->wt) {
    case PB_VARINT:
        return pb_varint(r, &f->u) == 0 ? 1 : -1;
    case PB_I64:
        if (r->n < 8) return -1;
        f->u = pb_le(r->p, 8);
        pb_skip(r, 8);
        return 1;
    case PB_LEN:
        if (pb_varint(r, &len) != 0 || len > r->n) return -1;
        f->s.p = r->p;
        f->s.n = (size_t)len;
        pb_skip(r, (size_t)len);
        return 1;
    case PB_I32:
        if (r->n < 4) return -1;
        f->u = pb_le(r->p, 4);
        pb_skip(r, 4);
        return 1;
    default:
        return -1; /* groups (3, 4) are obsolete and 6, 7 do not exist */
    }
}

static crl_status pb_bad(crl_err *err, const char *msg_type) {
    return crl_err_set(err, CRL_EFORMAT,
                       "not a valid ONNX model: truncated or malformed protobuf in %s", msg_type);
}

/* ---- names --------------------------------------------------------------------------------- */

static int span_is(pb_span a, const char *s) {
    size_t n = strlen(s);
    return a.n == n && (n == 0 || memcmp(a.p, s, n) == 0);
}

static int span_eq(pb_span a, pb_span b) {
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

/* A printable copy for messages: names come from the file and may hold any byte. */
typedef struct name_buf {
    char s[72];
} name_buf;

static const char *span_str(pb_span a, name_buf *b) {
    size_t n = a.n < sizeof(b->s) - 4 ? a.n : sizeof(b->s) - 4;
    for (size_t i = 0; i < n; i++)
        b->s[i] = (a.p[i] >= 0x20 && a.p[i] < 0x7f && a.p[i] != '\'') ? (char)a.p[i] : '?';
    if (n < a.n) {
        memcpy(b->s + n, "...", 3);
        n += 3;
    }
    b->s[n] = '\0';
    return b->s;
}

/* ---- decoded messages ---------------------------------------------------------------------- */

typedef struct onnx_tensor {
    pb_span msg; /* the whole TensorProto, re-read for float_data */
    pb_span name;
    pb_span raw;
    int64_t dims[ONNX_MAX_DIMS];
    size_t ndims;
    int64_t dtype;
    int has_raw;
    int external;
    uint64_t n_float_data;
} onnx_tensor;

typedef struct onnx_value {
    pb_span name;
    int is_tensor;
    int64_t elem_type;
    int has_shape;
    size_t ndims;
    int64_t dims[ONNX_MAX_DIMS]; /* -1 when symbolic or unknown */
} onnx_value;

typedef struct onnx_node {
    pb_span msg;
    pb_span name, op, domain;
    pb_span in[ONNX_MAX_IO], out[ONNX_MAX_IO];
    size_t n_in, n_out;
} onnx_node;

typedef struct onnx_attr {
    int has_f, has_i, has_t, has_s;
    float f;
    int64_t i;
    pb_span t;
    pb_span s; /* a string (auto_pad) */
} onnx_attr;

typedef struct onnx_model {
    int has_opset;
    int64_t opset;
    int has_graph;
    pb_span graph;
    pb_span *nodes;
    size_t n_nodes;
    onnx_tensor *inits;
    size_t n_inits;
    onnx_value *inputs;
    size_t n_inputs;
    onnx_value *outputs;
    size_t n_outputs;
    onnx_tensor *consts; /* outputs of Constant nodes, named after the output */
    size_t n_consts;
} onnx_model;

static crl_status tensor_decode(pb_span msg, onnx_tensor *t, crl_err *err) {
    memset(t, 0, sizeof(*t));
    t->msg = msg;
    pb_field f;
    int rc;
    while ((rc = pb_next(&msg, &f)) == 1) {
        if (f.num == 1 && (f.wt == PB_VARINT || f.wt == PB_LEN)) { /* dims, packed or not */
            pb_span packed = f.s;
            uint64_t d = f.u;
            while (f.wt == PB_VARINT || packed.n > 0) {
                if (f.wt == PB_LEN && pb_varint(&packed, &d) != 0)
                    return pb_bad(err, "TensorProto");
                if (t->ndims == ONNX_MAX_DIMS)
                    return crl_err_set(err, CRL_EUNSUPPORTED,
                                       "a tensor has more than %d dimensions", ONNX_MAX_DIMS);
                t->dims[t->ndims++] = (int64_t)d;
                if (f.wt == PB_VARINT) break;
            }
        } else if (f.num == 2 && f.wt == PB_VARINT) {
            t->dtype = (int64_t)f.u;
        } else if (f.num == 4 && f.wt == PB_I32) { /* float_data, one value */
            t->n_float_data++;
        } else if (f.num == 4 && f.wt == PB_LEN) { /* float_data, packed */
            if (f.s.n % 4 != 0) return pb_bad(err, "TensorProto.float_data");
            t->n_float_data += f.s.n / 4;
        } else if (f.num == 8 && f.wt == PB_LEN) {
            t->name = f.s;
        } else if (f.num == 9 && f.wt == PB_LEN) {
            t->raw = f.s;
            t->has_raw = 1;
        } else if (f.num == 13 && f.wt == PB_LEN) {
            t->external = 1;
        } else if (f.num == 14 && f.wt == PB_VARINT) {
            if (f.u == 1) t->external = 1; /* DataLocation.EXTERNAL */
        } else if (f.num == 1 || f.num == 2 || f.num == 4 || f.num == 8 || f.num == 9 ||
                   f.num == 13 || f.num == 14) {
            return pb_bad(err, "TensorProto"); /* a known field with the wrong wire type */
        }
    }
    return rc < 0 ? pb_bad(err, "TensorProto") : CRL_OK;
}

static int dim_decode(pb_span msg, int64_t *dim) {
    pb_field f;
    int rc;
    *dim = -1;
    while ((rc = pb_next(&msg, &f)) == 1) {
        if (f.num == 1 && f.wt == PB_VARINT)
            *dim = (int64_t)f.u < 0 ? -1 : (int64_t)f.u;
        else if (f.num == 2 && f.wt == PB_LEN)
            *dim = -1;
        else if (f.num <= 2)
            return -1;
    }
    return rc < 0 ? -1 : 0;
}

/* TypeProto -> tensor_type -> {elem_type, shape -> dim*}. Other kinds (sequence, map) leave
 * is_tensor at 0 and are rejected where a tensor is required. */
static crl_status type_decode(pb_span msg, onnx_value *v, crl_err *err) {
    pb_field f, g, h;
    int rc, rc2, rc3;
    while ((rc = pb_next(&msg, &f)) == 1) {
        if (f.num != 1) continue;
        if (f.wt != PB_LEN) return pb_bad(err, "TypeProto");
        v->is_tensor = 1;
        pb_span tt = f.s;
        while ((rc2 = pb_next(&tt, &g)) == 1) {
            if (g.num == 1 && g.wt == PB_VARINT) {
                v->elem_type = (int64_t)g.u;
            } else if (g.num == 2 && g.wt == PB_LEN) {
                v->has_shape = 1;
                v->ndims = 0;
                pb_span shape = g.s;
                while ((rc3 = pb_next(&shape, &h)) == 1) {
                    if (h.num != 1) continue;
                    if (h.wt != PB_LEN) return pb_bad(err, "TensorShapeProto");
                    if (v->ndims == ONNX_MAX_DIMS)
                        return crl_err_set(err, CRL_EUNSUPPORTED,
                                           "a value has more than %d dimensions", ONNX_MAX_DIMS);
                    if (dim_decode(h.s, &v->dims[v->ndims++]) != 0)
                        return pb_bad(err, "TensorShapeProto.Dimension");
                }
                if (rc3 < 0) return pb_bad(err, "TensorShapeProto");
            } else if (g.num <= 2) {
                return pb_bad(err, "TypeProto.Tensor");
            }
        }
        if (rc2 < 0) return pb_bad(err, "TypeProto.Tensor");
    }
    return rc < 0 ? pb_bad(err, "TypeProto") : CRL_OK;
}

static crl_status value_decode(pb_span msg, onnx_value *v, crl_err *err) {
    memset(v, 0, sizeof(*v));
    pb_field f;
    int rc;
    while ((rc = pb_next(&msg, &f)) == 1) {
        if (f.num == 1 && f.wt == PB_LEN) {
            v->name = f.s;
        } else if (f.num == 2 && f.wt == PB_LEN) {
            crl_status st = type_decode(f.s, v, err);
            if (st != CRL_OK) return st;
        } else if (f.num <= 2) {
            return pb_bad(err, "ValueInfoProto");
        }
    }
    return rc < 0 ? pb_bad(err, "ValueInfoProto") : CRL_OK;
}

static crl_status node_decode(pb_span msg, onnx_node *n, crl_err *err) {
    memset(n, 0, sizeof(*n));
    n->msg = msg;
    pb_field f;
    int rc;
    while ((rc = pb_next(&msg, &f)) == 1) {
        if (f.num > 7 || f.num == 6 || f.num == 5) continue; /* attributes are read on demand */
        if (f.wt != PB_LEN) return pb_bad(err, "NodeProto");
        if (f.num == 1 || f.num == 2) {
            size_t *cnt = f.num == 1 ? &n->n_in : &n->n_out;
            if (*cnt == ONNX_MAX_IO)
                return crl_err_set(err, CRL_EUNSUPPORTED, "more than %d %s", ONNX_MAX_IO,
                                   f.num == 1 ? "inputs" : "outputs");
            (f.num == 1 ? n->in : n->out)[(*cnt)++] = f.s;
        } else if (f.num == 3) {
            n->name = f.s;
        } else if (f.num == 4) {
            n->op = f.s;
        } else if (f.num == 7) {
            n->domain = f.s;
        }
    }
    return rc < 0 ? pb_bad(err, "NodeProto") : CRL_OK;
}

/* Finds attribute `name` of a node. Returns 1 when found, 0 when absent, <0 on malformed input. */
static int node_attr(const onnx_node *n, const char *name, onnx_attr *a) {
    pb_span msg = n->msg;
    pb_field f, g;
    int rc, rc2;
    while ((rc = pb_next(&msg, &f)) == 1) {
        if (f.num != 5) continue;
        if (f.wt != PB_LEN) return -1;
        memset(a, 0, sizeof(*a));
        int match = 0;
        pb_span am = f.s;
        while ((rc2 = pb_next(&am, &g)) == 1) {
            if (g.num == 1 && g.wt == PB_LEN) {
                match = span_is(g.s, name);
            } else if (g.num == 2 && g.wt == PB_I32) {
                a->f = pb_f32(g.u);
                a->has_f = 1;
            } else if (g.num == 3 && g.wt == PB_VARINT) {
                a->i = (int64_t)g.u;
                a->has_i = 1;
            } else if (g.num == 5 && g.wt == PB_LEN) {
                a->t = g.s;
                a->has_t = 1;
            } else if (g.num == 4 && g.wt == PB_LEN) {
                a->s = g.s;
                a->has_s = 1;
            } else if (g.num == 1 || g.num == 2 || g.num == 3 || g.num == 4 || g.num == 5) {
                return -1;
            }
        }
        if (rc2 < 0) return -1;
        if (match) return 1;
    }
    return rc < 0 ? -1 : 0;
}

static crl_status opset_decode(pb_span msg, onnx_model *m, crl_err *err) {
    pb_span domain = {NULL, 0};
    int64_t version = 0;
    pb_field f;
    int rc;
    while ((rc = pb_next(&msg, &f)) == 1) {
        if (f.num == 1 && f.wt == PB_LEN)
            domain = f.s;
        else if (f.num == 2 && f.wt == PB_VARINT)
            version = (int64_t)f.u;
        else if (f.num <= 2)
            return pb_bad(err, "OperatorSetIdProto");
    }
    if (rc < 0) return pb_bad(err, "OperatorSetIdProto");
    if (domain.n == 0 || span_is(domain, "ai.onnx")) {
        m->has_opset = 1;
        m->opset = version;
    }
    return CRL_OK;
}

static crl_status model_decode(pb_span msg, onnx_model *m, crl_err *err) {
    pb_field f;
    int rc;
    while ((rc = pb_next(&msg, &f)) == 1) {
        if (f.num == 7 && f.wt == PB_LEN) {
            m->graph = f.s;
            m->has_graph = 1;
        } else if (f.num == 8 && f.wt == PB_LEN) {
            crl_status st = opset_decode(f.s, m, err);
            if (st != CRL_OK) return st;
        } else if ((f.num == 1 && f.wt != PB_VARINT) || f.num == 7 || f.num == 8) {
            return pb_bad(err, "ModelProto"); /* a known field with the wrong wire type */
        }
    }
    if (rc < 0) return pb_bad(err, "ModelProto");
    if (!m->has_graph) return crl_err_set(err, CRL_EFORMAT, "not a valid ONNX model: no graph");
    return CRL_OK;
}

/* Two passes over GraphProto: count, allocate exactly, then fill. */
static crl_status graph_decode(onnx_model *m, crl_err *err) {
    size_t cnt[4] = {0, 0, 0, 0}; /* nodes, initializers, inputs, outputs */
    const uint32_t nums[4] = {1, 5, 11, 12};
    const size_t caps[4] = {ONNX_MAX_NODES, ONNX_MAX_INITS, ONNX_MAX_VALUES, ONNX_MAX_VALUES};
    const char *what[4] = {"nodes", "initializers", "inputs", "outputs"};
    pb_span msg = m->graph;
    pb_field f;
    int rc;
    while ((rc = pb_next(&msg, &f)) == 1) {
        for (int k = 0; k < 4; k++) {
            if (f.num != nums[k]) continue;
            if (f.wt != PB_LEN) return pb_bad(err, "GraphProto");
            if (++cnt[k] > caps[k])
                return crl_err_set(err, CRL_EUNSUPPORTED, "the graph has more than %zu %s", caps[k],
                                   what[k]);
        }
    }
    if (rc < 0) return pb_bad(err, "GraphProto");
    m->nodes = calloc(cnt[0] + 1, sizeof(*m->nodes));
    m->consts = calloc(cnt[0] + 1, sizeof(*m->consts));
    m->inits = calloc(cnt[1] + 1, sizeof(*m->inits));
    m->inputs = calloc(cnt[2] + 1, sizeof(*m->inputs));
    m->outputs = calloc(cnt[3] + 1, sizeof(*m->outputs));
    if (!m->nodes || !m->consts || !m->inits || !m->inputs || !m->outputs)
        return crl_err_set(err, CRL_ENOMEM, "out of memory reading the ONNX graph");
    msg = m->graph;
    crl_status st = CRL_OK;
    while (st == CRL_OK && pb_next(&msg, &f) == 1) {
        if (f.num == 1)
            m->nodes[m->n_nodes++] = f.s;
        else if (f.num == 5)
            st = tensor_decode(f.s, &m->inits[m->n_inits++], err);
        else if (f.num == 11)
            st = value_decode(f.s, &m->inputs[m->n_inputs++], err);
        else if (f.num == 12)
            st = value_decode(f.s, &m->outputs[m->n_outputs++], err);
    }
    return st;
}

static void model_free(onnx_model *m) {
    free(m->nodes);
    free(m->consts);
    free(m->inits);
    free(m->inputs);
    free(m->outputs);
}

/* ---- tensors to floats --------------------------------------------------------------------- */

static const char *dtype_name(int64_t t) {
    static const char *names[] = {"UNDEFINED",  "FLOAT",   "UINT8",  "INT8",   "UINT16",
                                  "INT16",      "INT32",   "INT64",  "STRING", "BOOL",
                                  "FLOAT16",    "DOUBLE",  "UINT32", "UINT64", "COMPLEX64",
                                  "COMPLEX128", "BFLOAT16"};
    return t >= 0 && t < (int64_t)(sizeof(names) / sizeof(names[0])) ? names[t] : "unknown";
}

static crl_status tensor_count(const onnx_tensor *t, size_t *count, crl_err *err) {
    name_buf nb;
    uint64_t total = 1;
    for (size_t i = 0; i < t->ndims; i++) {
        if (t->dims[i] < 0)
            return crl_err_set(err, CRL_EFORMAT, "tensor '%s' has a negative dimension",
                               span_str(t->name, &nb));
        uint64_t d = (uint64_t)t->dims[i];
        if (d != 0 && total > ONNX_MAX_ELEMS / d)
            return crl_err_set(err, CRL_EUNSUPPORTED, "tensor '%s' is too large",
                               span_str(t->name, &nb));
        total *= d;
    }
    *count = (size_t)total;
    return CRL_OK;
}

/* Materializes a FLOAT tensor. The element count is checked against the bytes really present
 * before anything is allocated, so a small file cannot ask for a huge buffer. */
static crl_status tensor_floats(const onnx_tensor *t, float **out, size_t *count, crl_err *err) {
    name_buf nb;
    *out = NULL;
    if (t->external)
        return crl_err_set(err, CRL_EUNSUPPORTED,
                           "tensor '%s' keeps its data in an external file, which is not "
                           "supported; save the model with its weights inside",
                           span_str(t->name, &nb));
    if (t->dtype != ONNX_FLOAT)
        return crl_err_set(err, CRL_EUNSUPPORTED,
                           "tensor '%s' has data type %lld (%s); only FLOAT is supported",
                           span_str(t->name, &nb), (long long)t->dtype, dtype_name(t->dtype));
    crl_status st = tensor_count(t, count, err);
    if (st != CRL_OK) return st;
    size_t n = *count;
    if (t->has_raw ? t->raw.n != n * 4 : t->n_float_data != n)
        return crl_err_set(err, CRL_EFORMAT,
                           "tensor '%s' should hold %zu floats but its data has a different size",
                           span_str(t->name, &nb), n);
    float *v = malloc((n ? n : 1) * sizeof(float));
    if (v == NULL) return crl_err_set(err, CRL_ENOMEM, "out of memory for tensor data");
    if (t->has_raw) {
        for (size_t i = 0; i < n; i++) /* little-endian on every host */
            v[i] = pb_f32(pb_le(t->raw.p + 4 * i, 4));
    } else {
        size_t k = 0;
        pb_span msg = t->msg;
        pb_field f;
        while (pb_next(&msg, &f) == 1 && k < n) {
            if (f.num != 4) continue;
            if (f.wt == PB_I32) {
                v[k++] = pb_f32(f.u);
            } else if (f.wt == PB_LEN) {
                for (size_t j = 0; j + 4 <= f.s.n && k < n; j += 4)
                    v[k++] = pb_f32(pb_le(f.s.p + j, 4));
            }
        }
    }
    *out = v;
    return CRL_OK;
}

/* ---- lowering ------------------------------------------------------------------------------ */

/* What an ONNX name stands for while lowering: a graph value, a constant tensor of the file not
 * yet turned into a graph value (most are only read as weights), or a small integer vector (a
 * shape, axes), whose first entry may be the symbolic batch (a Shape of a batched value). */
enum { ENT_VALUE, ENT_TENSOR, ENT_INTS };

typedef struct ent {
    pb_span name;
    int kind;
    size_t value;
    const onnx_tensor *t;
    int64_t ints[ONNX_MAX_DIMS];
    size_t n_ints;
    int batch0;
    int scalar; /* ENT_INTS of rank 0 (value_int, a rank-0 tensor, a Gather by one index) */
} ent;

typedef struct lower_ctx {
    onnx_model *m;
    crl_nn_graph_t *g;
    crl_err *err;
    ent *ents;
    size_t n_ents, cap_ents;
    size_t index;   /* of the node being lowered */
    onnx_node node; /* the node being lowered */
} lower_ctx;

/* "node 'NAME' (op OP, opset N): reason", or "node #3 (op OP, opset N): ..." for a nameless one. */
static crl_status node_err(const lower_ctx *c, crl_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static crl_status node_err(const lower_ctx *c, crl_status st, const char *fmt, ...) {
    char reason[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    name_buf nb, ob;
    const char *op = c->node.op.n ? span_str(c->node.op, &ob) : "?";
    if (c->node.name.n)
        return crl_err_set(c->err, st, "node '%s' (op %s, opset %lld): %s",
                           span_str(c->node.name, &nb), op, (long long)c->m->opset, reason);
    return crl_err_set(c->err, st, "node #%zu (op %s, opset %lld): %s", c->index, op,
                       (long long)c->m->opset, reason);
}

/* Re-labels an error from a lower layer (tensor or builder) with the node it came from. */
static crl_status node_wrap(const lower_ctx *c, crl_status st) {
    if (c->err == NULL) return st;
    char inner[sizeof(c->err->msg)];
    memcpy(inner, c->err->msg, sizeof(inner));
    return node_err(c, st, "%s", inner);
}

static crl_status attr_get(const lower_ctx *c, const char *name, onnx_attr *a, int *found) {
    int rc = node_attr(&c->node, name, a);
    if (rc < 0) return node_err(c, CRL_EFORMAT, "malformed attribute list");
    *found = rc;
    return CRL_OK;
}

static crl_status attr_float(const lower_ctx *c, const char *name, float dflt, float *v) {
    onnx_attr a;
    int found = 0;
    crl_status st = attr_get(c, name, &a, &found);
    if (st != CRL_OK) return st;
    *v = dflt;
    if (!found) return CRL_OK;
    if (!a.has_f) return node_err(c, CRL_EFORMAT, "attribute '%s' should be a float", name);
    *v = a.f;
    return CRL_OK;
}

static crl_status attr_int(const lower_ctx *c, const char *name, int64_t dflt, int64_t *v) {
    onnx_attr a;
    int found = 0;
    crl_status st = attr_get(c, name, &a, &found);
    if (st != CRL_OK) return st;
    *v = dflt;
    if (!found) return CRL_OK;
    if (!a.has_i) return node_err(c, CRL_EFORMAT, "attribute '%s' should be an integer", name);
    *v = a.i;
    return CRL_OK;
}

/* A repeated-int attribute (AttributeProto.ints, field 8, packed or not), at most `cap` values. */
static crl_status attr_ints(const lower_ctx *c, const char *name, int64_t *v, size_t cap, size_t *n,
                            int *found) {
    pb_span msg = c->node.msg;
    pb_field f, g;
    int rc, rc2;
    *n = 0;
    *found = 0;
    while ((rc = pb_next(&msg, &f)) == 1) {
        if (f.num != 5) continue;
        if (f.wt != PB_LEN) return node_err(c, CRL_EFORMAT, "malformed attribute list");
        pb_span am = f.s;
        int match = 0;
        size_t k = 0;
        int64_t tmp[ONNX_MAX_DIMS];
        while ((rc2 = pb_next(&am, &g)) == 1) {
            if (g.num == 1 && g.wt == PB_LEN) {
                match = span_is(g.s, name);
            } else if (g.num == 8 && (g.wt == PB_VARINT || g.wt == PB_LEN)) {
                pb_span packed = g.s;
                uint64_t u = g.u;
                while (g.wt == PB_VARINT || packed.n > 0) {
                    if (g.wt == PB_LEN && pb_varint(&packed, &u) != 0)
                        return node_err(c, CRL_EFORMAT, "malformed attribute '%s'", name);
                    if (k == ONNX_MAX_DIMS || k == cap)
                        return node_err(c, CRL_EUNSUPPORTED, "attribute has too many values");
                    tmp[k++] = (int64_t)u;
                    if (g.wt == PB_VARINT) break;
                }
            }
        }
        if (rc2 < 0) return node_err(c, CRL_EFORMAT, "malformed attribute list");
        if (match) {
            memcpy(v, tmp, k * sizeof(*v));
            *n = k;
            *found = 1;
            return CRL_OK;
        }
    }
    return rc < 0 ? node_err(c, CRL_EFORMAT, "malformed attribute list") : CRL_OK;
}

static crl_status want_inputs(const lower_ctx *c, size_t lo, size_t hi) {
    if (c->node.n_in < lo || c->node.n_in > hi)
        return node_err(c, CRL_EFORMAT, "has %zu inputs, expected %zu to %zu", c->node.n_in, lo,
                        hi);
    for (size_t i = 0; i < lo; i++)
        if (c->node.in[i].n == 0) return node_err(c, CRL_EFORMAT, "input %zu is empty", i);
    return CRL_OK;
}

static int is_int_type(int64_t dtype) {
    return dtype == ONNX_INT64 || dtype == ONNX_INT32;
}

/* Reads the n values of an INT64 or INT32 tensor (raw_data, int64_data or int32_data) into dst. */
static crl_status tensor_int_data(const lower_ctx *c, const onnx_tensor *t, int64_t *dst,
                                  size_t n) {
    name_buf nb;
    int wide = t->dtype == ONNX_INT64;
    if (!is_int_type(t->dtype) || t->external)
        return node_err(c, CRL_EUNSUPPORTED, "tensor '%s' should be INT64 or INT32, it is %s%s",
                        span_str(t->name, &nb), dtype_name(t->dtype),
                        t->external ? " in an external file" : "");
    size_t k = 0;
    if (t->has_raw) {
        if (t->raw.n != (wide ? 8 : 4) * n)
            return node_err(c, CRL_EFORMAT, "tensor '%s' has the wrong size",
                            span_str(t->name, &nb));
        for (k = 0; k < n; k++)
            dst[k] = wide ? (int64_t)pb_le(t->raw.p + 8 * k, 8)
                          : (int64_t)(int32_t)(uint32_t)pb_le(t->raw.p + 4 * k, 4);
        return CRL_OK;
    }
    pb_span msg = t->msg;
    pb_field f;
    while (pb_next(&msg, &f) == 1) {
        if (f.num != (wide ? 7u : 5u)) continue;
        pb_span packed = f.s;
        uint64_t u = f.u;
        while (f.wt == PB_VARINT || (f.wt == PB_LEN && packed.n > 0)) {
            if (f.wt == PB_LEN && pb_varint(&packed, &u) != 0)
                return node_err(c, CRL_EFORMAT, "malformed %s", wide ? "int64_data" : "int32_data");
            if (k == n)
                return node_err(c, CRL_EFORMAT, "tensor '%s' has too many values",
                                span_str(t->name, &nb));
            dst[k++] = wide ? (int64_t)u : (int64_t)(int32_t)(uint32_t)u;
            if (f.wt == PB_VARINT) break;
        }
    }
    if (k != n)
        return node_err(c, CRL_EFORMAT, "tensor '%s' has too few values", span_str(t->name, &nb));
    return CRL_OK;
}

/* Reads an integer tensor of at most ONNX_MAX_DIMS values into e (a shape, axes, sizes). */
static crl_status tensor_ints(const lower_ctx *c, const onnx_tensor *t, ent *e) {
    name_buf nb;
    size_t n = 0;
    crl_status st = tensor_count(t, &n, c->err);
    if (st != CRL_OK) return node_wrap(c, st);
    if (n > ONNX_MAX_DIMS)
        return node_err(c, CRL_EUNSUPPORTED, "integer tensor '%s' has %zu values (max %d)",
                        span_str(t->name, &nb), n, ONNX_MAX_DIMS);
    if ((st = tensor_int_data(c, t, e->ints, n)) != CRL_OK) return st;
    e->n_ints = n;
    e->batch0 = 0;
    e->scalar = t->ndims == 0;
    e->kind = ENT_INTS;
    return CRL_OK;
}

static crl_status add_ent(lower_ctx *c, const ent *e) {
    if (c->n_ents == c->cap_ents) return node_err(c, CRL_ENOMEM, "too many named values");
    c->ents[c->n_ents++] = *e;
    return CRL_OK;
}

/* The entry for input `idx` of the current node; initializers are entered on first use. */
static crl_status lookup(lower_ctx *c, size_t idx, ent **out) {
    name_buf nb;
    pb_span name = c->node.in[idx];
    if (name.n == 0) return node_err(c, CRL_EFORMAT, "input %zu is empty", idx);
    for (size_t i = c->n_ents; i-- > 0;)
        if (span_eq(c->ents[i].name, name)) {
            *out = &c->ents[i];
            return CRL_OK;
        }
    for (size_t i = 0; i < c->m->n_inits; i++)
        if (span_eq(c->m->inits[i].name, name)) {
            ent e = {.name = name, .kind = ENT_TENSOR, .t = &c->m->inits[i]};
            crl_status st = add_ent(c, &e);
            if (st == CRL_OK) *out = &c->ents[c->n_ents - 1];
            return st;
        }
    return node_err(c, CRL_EFORMAT,
                    "input '%s' is not the graph input, an initializer or an earlier node's output",
                    span_str(name, &nb));
}

/* A FLOAT tensor turned into a graph constant (once). */
static crl_status tensor_value(lower_ctx *c, ent *e) {
    float *data = NULL;
    size_t count, dims[ONNX_MAX_DIMS];
    const onnx_tensor *t = e->t;
    if (is_int_type(t->dtype))
        return node_err(c, CRL_EUNSUPPORTED, "an integer (%s) tensor is used as data",
                        dtype_name(t->dtype));
    crl_status st = tensor_floats(t, &data, &count, c->err);
    if (st != CRL_OK) return node_wrap(c, st);
    for (size_t i = 0; i < t->ndims; i++)
        dims[i] = (size_t)t->dims[i];
    st = crl_nn_graph_const(c->g, data, dims, t->ndims, &e->value, c->err);
    free(data);
    if (st != CRL_OK) return node_wrap(c, st);
    e->kind = ENT_VALUE;
    return CRL_OK;
}

static crl_status get_value(lower_ctx *c, size_t idx, size_t *v) {
    ent *e;
    crl_status st = lookup(c, idx, &e);
    if (st != CRL_OK) return st;
    if (e->kind == ENT_INTS)
        return node_err(c, CRL_EUNSUPPORTED,
                        "input %zu is an integer tensor (a shape or axes), "
                        "used here as data",
                        idx);
    if (e->kind == ENT_TENSOR && (st = tensor_value(c, e)) != CRL_OK) return st;
    *v = e->value;
    return CRL_OK;
}

static crl_status get_ints(lower_ctx *c, size_t idx, ent *out) {
    ent *e;
    crl_status st = lookup(c, idx, &e);
    if (st != CRL_OK) return st;
    if (e->kind == ENT_TENSOR && is_int_type(e->t->dtype)) st = tensor_ints(c, e->t, e);
    if (st != CRL_OK) return st;
    if (e->kind != ENT_INTS)
        return node_err(c, CRL_EUNSUPPORTED,
                        "input %zu must be a constant INT64 (or INT32) tensor or come from Shape",
                        idx);
    *out = *e;
    return CRL_OK;
}

/* A constant FLOAT input (from the file: an initializer or a Constant node). */
static crl_status get_tensor(lower_ctx *c, size_t idx, const char *role, const onnx_tensor **t) {
    ent *e;
    crl_status st = lookup(c, idx, &e);
    if (st != CRL_OK) return st;
    if (e->t == NULL)
        return node_err(c, CRL_EUNSUPPORTED,
                        "%s must be a constant (an initializer or a Constant node)", role);
    *t = e->t;
    return CRL_OK;
}

static crl_status shape_of(lower_ctx *c, size_t v, crl_nn_shape *s) {
    if (crl_nn_graph_shape(c->g, v, s) != CRL_OK) return node_err(c, CRL_EINVAL, "bad value");
    return CRL_OK;
}

/* Binds the node's output `k` to graph value v. */
static crl_status bind_out(lower_ctx *c, size_t k, size_t v) {
    ent e = {.name = c->node.out[k], .kind = ENT_VALUE, .value = v};
    return add_ent(c, &e);
}

static crl_status bind(lower_ctx *c, size_t v) {
    return bind_out(c, 0, v);
}

static crl_status emit(lower_ctx *c, crl_nn_op op, const size_t *in, size_t n_in,
                       const crl_nn_attrs *a) {
    size_t v;
    crl_status st = crl_nn_graph_node(c->g, op, in, n_in, a, &v, c->err);
    if (st != CRL_OK) return node_wrap(c, st);
    return bind(c, v);
}

/* W [n][k] for a LINEAR from B: B^T when B is [K, N] (MatMul, Gemm transB=0), B itself when it is
 * [N, K] (Gemm transB=1). */
static crl_status weights(lower_ctx *c, const onnx_tensor *t, int trans_b, size_t k, float **w,
                          size_t *n_out) {
    float *b = NULL;
    size_t count;
    crl_status st = tensor_floats(t, &b, &count, c->err);
    if (st != CRL_OK) return node_wrap(c, st);
    if (t->ndims != 2) {
        st = node_err(c, CRL_ESHAPE, "weight B must be 2-D, it has %zu dimensions", t->ndims);
        goto out;
    }
    size_t kk = (size_t)t->dims[trans_b ? 1 : 0], n = (size_t)t->dims[trans_b ? 0 : 1];
    if (kk != k) {
        st = node_err(c, CRL_ESHAPE, "weight B is [%lld, %lld] but the input has width %zu",
                      (long long)t->dims[0], (long long)t->dims[1], k);
        goto out;
    }
    if (n == 0 || n > ((size_t)1 << 16)) {
        st = node_err(c, CRL_EUNSUPPORTED, "output width %zu is outside 1..65536", n);
        goto out;
    }
    if (trans_b) {
        *w = b;
        b = NULL;
    } else {
        *w = malloc(k * n * sizeof(float));
        if (*w == NULL) {
            st = node_err(c, CRL_ENOMEM, "out of memory");
            goto out;
        }
        for (size_t o = 0; o < n; o++)
            for (size_t i = 0; i < k; i++)
                (*w)[o * k + i] = b[i * n + o];
    }
    *n_out = n;
out:
    free(b);
    return st;
}

static size_t last_dim(const crl_nn_shape *s) {
    return s->rank ? s->d[s->rank - 1] : 1;
}

static crl_status lower_gemm(lower_ctx *c) {
    float alpha, beta, *w = NULL, *cdata = NULL, *bias = NULL;
    int64_t trans_a, trans_b;
    size_t n = 0, ccount, x, v;
    crl_nn_shape s;
    const onnx_tensor *bt = NULL, *ct = NULL;
    crl_status st = want_inputs(c, 2, 3);
    if (st == CRL_OK) st = get_value(c, 0, &x);
    if (st == CRL_OK) st = shape_of(c, x, &s);
    if (st == CRL_OK) st = get_tensor(c, 1, "weight B", &bt);
    if (st == CRL_OK) st = attr_float(c, "alpha", 1.0f, &alpha);
    if (st == CRL_OK) st = attr_float(c, "beta", 1.0f, &beta);
    if (st == CRL_OK) st = attr_int(c, "transA", 0, &trans_a);
    if (st == CRL_OK) st = attr_int(c, "transB", 0, &trans_b);
    if (st != CRL_OK) goto out;
    if (trans_a != 0) {
        st = node_err(c, CRL_EUNSUPPORTED, "transA=%lld is not supported", (long long)trans_a);
        goto out;
    }
    if (trans_b != 0 && trans_b != 1) {
        st = node_err(c, CRL_EFORMAT, "transB=%lld is not 0 or 1", (long long)trans_b);
        goto out;
    }
    if (s.rank != 2) {
        st = node_err(c, CRL_ESHAPE, "input A must be 2-D, it has %zu dimensions", s.rank);
        goto out;
    }
    st = weights(c, bt, (int)trans_b, last_dim(&s), &w, &n);
    if (st != CRL_OK) goto out;
    if (c->node.n_in == 3 && c->node.in[2].n > 0 && beta != 0.0f) {
        st = get_tensor(c, 2, "bias C", &ct);
        if (st == CRL_OK && (st = tensor_floats(ct, &cdata, &ccount, c->err)) != CRL_OK)
            st = node_wrap(c, st);
        if (st != CRL_OK) goto out;
        int ok = ccount == 1 || (ct->ndims == 1 && ccount == n) ||
                 (ct->ndims == 2 && ct->dims[0] == 1 && ccount == n);
        if (!ok) {
            st = node_err(c, CRL_ESHAPE,
                          "bias C has %zu elements in %zu dimensions, which does not broadcast "
                          "over rows of width %zu",
                          ccount, ct->ndims, n);
            goto out;
        }
        bias = malloc(n * sizeof(float));
        if (bias == NULL) {
            st = node_err(c, CRL_ENOMEM, "out of memory");
            goto out;
        }
        for (size_t o = 0; o < n; o++)
            bias[o] = beta * cdata[ccount == 1 ? 0 : o];
    }
    /* alpha == 1 is the common case (PyTorch, Keras) and becomes one layer. Otherwise the ONNX
     * formula alpha * (A B) + beta * C is kept in its own order. */
    st = crl_nn_graph_linear(c->g, x, w, alpha == 1.0f ? bias : NULL, last_dim(&s), n, &v, c->err);
    if (st == CRL_OK && alpha != 1.0f) {
        crl_nn_attrs a;
        crl_nn_attrs_init(&a);
        a.alpha = alpha;
        st = crl_nn_graph_node(c->g, CRL_NN_SCALE, &v, 1, &a, &v, c->err);
        size_t in2[2] = {v, 0};
        if (st == CRL_OK && bias) st = crl_nn_graph_const(c->g, bias, &n, 1, &in2[1], c->err);
        if (st == CRL_OK && bias)
            st = crl_nn_graph_node(c->g, CRL_NN_ADD, in2, 2, NULL, &v, c->err);
    }
    if (st != CRL_OK) {
        st = node_wrap(c, st);
        goto out;
    }
    st = bind(c, v);
out:
    free(w);
    free(cdata);
    free(bias);
    return st;
}

static crl_status lower_matmul(lower_ctx *c) {
    float *w = NULL;
    size_t n = 0, x, v;
    crl_nn_shape s;
    const onnx_tensor *bt = NULL;
    crl_status st = want_inputs(c, 2, 2);
    if (st == CRL_OK) st = get_value(c, 0, &x);
    if (st == CRL_OK) st = shape_of(c, x, &s);
    if (st == CRL_OK) st = get_tensor(c, 1, "right operand B", &bt);
    if (st == CRL_OK && (s.rank < 1 || (s.batched && s.rank < 2)))
        st = node_err(c, CRL_EUNSUPPORTED, "input A must have at least 2 dimensions");
    if (st == CRL_OK) st = weights(c, bt, 0, last_dim(&s), &w, &n);
    if (st == CRL_OK) {
        st = crl_nn_graph_linear(c->g, x, w, NULL, last_dim(&s), n, &v, c->err);
        st = st == CRL_OK ? bind(c, v) : node_wrap(c, st);
    }
    free(w);
    return st;
}

/* 1 when input idx holds integers (a shape, sizes, an INT64 / INT32 constant). */
static int is_ints(lower_ctx *c, size_t idx) {
    ent *e;
    if (idx >= c->node.n_in || c->node.in[idx].n == 0 || lookup(c, idx, &e) != CRL_OK) return 0;
    return e->kind == ENT_INTS || (e->kind == ENT_TENSOR && is_int_type(e->t->dtype));
}

/* Add / Sub / Mul / Div of two integer vectors at load time (one side may have length 1):
 * PyTorch computes chunk() sizes from a Shape this way. */
static crl_status lower_int_binary(lower_ctx *c, crl_nn_op op) {
    ent a, b;
    crl_status st = get_ints(c, 0, &a);
    if (st == CRL_OK) st = get_ints(c, 1, &b);
    if (st != CRL_OK) return st;
    if (a.batch0 || b.batch0)
        return node_err(c, CRL_EUNSUPPORTED, "arithmetic on the run-time batch size");
    if (a.n_ints == 0 || b.n_ints == 0 || (a.n_ints != b.n_ints && a.n_ints != 1 && b.n_ints != 1))
        return node_err(c, CRL_ESHAPE, "integer operands of %zu and %zu values do not broadcast",
                        a.n_ints, b.n_ints);
    ent r = {.name = c->node.out[0], .kind = ENT_INTS, .scalar = a.scalar && b.scalar};
    r.n_ints = a.n_ints > b.n_ints ? a.n_ints : b.n_ints;
    for (size_t k = 0; k < r.n_ints; k++) {
        int64_t x = a.ints[a.n_ints == 1 ? 0 : k], y = b.ints[b.n_ints == 1 ? 0 : k], z = 0;
        int bad = 0;
        if (op == CRL_NN_ADD) bad = __builtin_add_overflow(x, y, &z);
        if (op == CRL_NN_SUB) bad = __builtin_sub_overflow(x, y, &z);
        if (op == CRL_NN_MUL) bad = __builtin_mul_overflow(x, y, &z);
        if (op == CRL_NN_DIV) {
            bad = y == 0 || (x == INT64_MIN && y == -1);
            z = bad ? 0 : x / y; /* ONNX integer Div truncates, as C does */
        }
        if (op == CRL_NN_POW) return node_err(c, CRL_EUNSUPPORTED, "integer Pow");
        if (bad)
            return node_err(c, CRL_EFORMAT, "integer overflow or division by zero (%lld, %lld)",
                            (long long)x, (long long)y);
        r.ints[k] = z;
    }
    return add_ent(c, &r);
}

static crl_status lower_binary(lower_ctx *c, crl_nn_op op) {
    size_t in[2];
    ent *e;
    crl_status st = want_inputs(c, 2, 2);
    if (st == CRL_OK && is_ints(c, 0) && is_ints(c, 1)) return lower_int_binary(c, op);
    if (st == CRL_OK && op == CRL_NN_POW && (st = lookup(c, 1, &e)) == CRL_OK && e->t == NULL)
        st = node_err(c, CRL_EUNSUPPORTED, "the exponent must be a constant");
    if (st == CRL_OK) st = get_value(c, 0, &in[0]);
    if (st == CRL_OK) st = get_value(c, 1, &in[1]);
    return st == CRL_OK ? emit(c, op, in, 2, NULL) : st;
}

static crl_status lower_unary(lower_ctx *c, crl_nn_op op, const crl_nn_attrs *a) {
    size_t x;
    crl_status st = want_inputs(c, 1, 1);
    if (st == CRL_OK) st = get_value(c, 0, &x);
    return st == CRL_OK ? emit(c, op, &x, 1, a) : st;
}

/* One optional scalar bound of Clip (opset >= 11): an input that may be absent or empty. */
static crl_status clip_bound(lower_ctx *c, size_t idx, const char *role, float *v) {
    const onnx_tensor *t = NULL;
    float *data = NULL;
    size_t count;
    if (c->node.n_in <= idx || c->node.in[idx].n == 0) return CRL_OK;
    crl_status st = get_tensor(c, idx, role, &t);
    if (st == CRL_OK && (st = tensor_floats(t, &data, &count, c->err)) != CRL_OK)
        st = node_wrap(c, st);
    if (st == CRL_OK && count != 1)
        st = node_err(c, CRL_ESHAPE, "%s must be a scalar, it has %zu elements", role, count);
    if (st == CRL_OK) *v = data[0];
    free(data);
    return st;
}

static crl_status lower_clip(lower_ctx *c) {
    crl_nn_attrs a;
    crl_nn_attrs_init(&a);
    a.lo = -INFINITY;
    a.hi = INFINITY;
    crl_status st = want_inputs(c, 1, 3);
    if (st == CRL_OK) st = clip_bound(c, 1, "min", &a.lo);
    if (st == CRL_OK) st = clip_bound(c, 2, "max", &a.hi);
    if (st == CRL_OK && (isnan(a.lo) || isnan(a.hi)))
        st = node_err(c, CRL_EFORMAT, "a bound is NaN");
    if (st != CRL_OK) return st;
    size_t x;
    if ((st = get_value(c, 0, &x)) != CRL_OK) return st;
    if (a.lo == -INFINITY && a.hi == INFINITY) return bind(c, x); /* no bounds: a no-op */
    if (a.lo > a.hi)
        return node_err(c, CRL_EFORMAT, "min %g is above max %g", (double)a.lo, (double)a.hi);
    return emit(c, CRL_NN_CLIP, &x, 1, &a);
}

static crl_status lower_concat(lower_ctx *c) {
    size_t in[ONNX_MAX_IO];
    crl_nn_attrs a;
    crl_nn_attrs_init(&a);
    int found;
    onnx_attr at;
    crl_status st = want_inputs(c, 1, ONNX_MAX_IO);
    if (st == CRL_OK) st = attr_get(c, "axis", &at, &found);
    if (st == CRL_OK && (!found || !at.has_i))
        st = node_err(c, CRL_EFORMAT, "the integer attribute 'axis' is required");
    if (st != CRL_OK) return st;
    a.axis = at.i;
    for (size_t i = 0; i < c->node.n_in && st == CRL_OK; i++)
        st = get_value(c, i, &in[i]);
    return st == CRL_OK ? emit(c, CRL_NN_CONCAT, in, c->node.n_in, &a) : st;
}

/* Emits a RESHAPE of x to `t` (which says batched iff x is). */
static crl_status emit_reshape(lower_ctx *c, size_t x, const crl_nn_shape *t) {
    crl_nn_attrs a;
    crl_nn_attrs_init(&a);
    a.shape = *t;
    return emit(c, CRL_NN_RESHAPE, &x, 1, &a);
}

static size_t row_of(const crl_nn_shape *s, size_t from, size_t to) {
    size_t p = 1;
    for (size_t i = from; i < to; i++)
        if (!(i == 0 && s->batched)) p *= s->d[i]; /* each <= 2^24, product checked by graph */
    return p;
}

static crl_status lower_reshape(lower_ctx *c) {
    size_t x;
    crl_nn_shape s, t;
    ent sh;
    int64_t allowzero;
    crl_status st = want_inputs(c, 2, 2);
    if (st == CRL_OK) st = get_value(c, 0, &x);
    if (st == CRL_OK) st = shape_of(c, x, &s);
    if (st == CRL_OK) st = get_ints(c, 1, &sh);
    if (st == CRL_OK) st = attr_int(c, "allowzero", 0, &allowzero);
    if (st != CRL_OK) return st;
    if (sh.n_ints > CRL_NN_MAX_RANK || (s.batched && sh.n_ints == 0))
        return node_err(c, CRL_EUNSUPPORTED, "target shape has %zu dimensions", sh.n_ints);
    memset(&t, 0, sizeof(t));
    t.rank = sh.n_ints;
    t.batched = s.batched;
    size_t known = 1, neg = SIZE_MAX;
    for (size_t i = 0; i < sh.n_ints; i++) {
        int64_t v = sh.ints[i];
        if (i == 0 && s.batched) {
            if (sh.batch0 || v == 0 || v == -1) continue; /* -1 there can only be the batch */
            return node_err(c, CRL_EUNSUPPORTED,
                            "the target shape must keep the batch as its first dimension (0, -1 "
                            "or the batch from Shape), not %lld",
                            (long long)v);
        }
        if (v == 0 && !allowzero) {
            if (i >= s.rank) return node_err(c, CRL_ESHAPE, "0 in the target shape has no source");
            v = (int64_t)s.d[i];
        }
        if (v == -1 && neg == SIZE_MAX) {
            neg = i;
            continue;
        }
        if (v <= 0 || v > ((int64_t)1 << 24))
            return node_err(c, CRL_EUNSUPPORTED, "target dimension %lld is not supported",
                            (long long)v);
        t.d[i] = (size_t)v;
        if (known > ((size_t)1 << 30) / t.d[i])
            return node_err(c, CRL_EUNSUPPORTED, "target shape is too large");
        known *= t.d[i];
    }
    size_t row = row_of(&s, 0, s.rank);
    if (neg != SIZE_MAX) {
        if (row % known != 0)
            return node_err(c, CRL_ESHAPE, "cannot infer -1: %zu values per row, %zu known", row,
                            known);
        t.d[neg] = row / known;
    }
    return emit_reshape(c, x, &t);
}

static crl_status lower_flatten(lower_ctx *c) {
    size_t x;
    int64_t axis;
    crl_nn_shape s, t;
    crl_status st = want_inputs(c, 1, 1);
    if (st == CRL_OK) st = get_value(c, 0, &x);
    if (st == CRL_OK) st = shape_of(c, x, &s);
    if (st == CRL_OK) st = attr_int(c, "axis", 1, &axis);
    if (st != CRL_OK) return st;
    int64_t r = (int64_t)s.rank;
    if (axis < -r || axis > r)
        return node_err(c, CRL_ESHAPE, "axis %lld is out of range", (long long)axis);
    size_t ax = (size_t)(axis < 0 ? axis + r : axis);
    memset(&t, 0, sizeof(t));
    t.rank = 2;
    t.batched = s.batched;
    if (s.batched && (ax == 0 || row_of(&s, 1, ax) != 1))
        return node_err(c, CRL_EUNSUPPORTED,
                        "flattening at axis %lld would merge the batch with other dimensions",
                        (long long)axis);
    t.d[0] = s.batched ? 0 : row_of(&s, 0, ax);
    t.d[1] = row_of(&s, ax, s.rank);
    return emit_reshape(c, x, &t);
}

/* Axes for (Un)Squeeze / ReduceMean: the attribute before opset 13 (18 for ReduceMean), the
 * optional second input from then on. */
static crl_status axes_of(lower_ctx *c, int64_t input_from, int64_t *axes, size_t *n, int *found) {
    if (c->m->opset < input_from) return attr_ints(c, "axes", axes, CRL_NN_MAX_RANK, n, found);
    *n = 0;
    *found = 0;
    if (c->node.n_in < 2 || c->node.in[1].n == 0) return CRL_OK;
    ent e;
    crl_status st = get_ints(c, 1, &e);
    if (st != CRL_OK) return st;
    if (e.n_ints > CRL_NN_MAX_RANK) return node_err(c, CRL_EUNSUPPORTED, "too many axes");
    memcpy(axes, e.ints, e.n_ints * sizeof(*axes));
    *n = e.n_ints;
    *found = 1;
    return CRL_OK;
}

static crl_status lower_squeeze(lower_ctx *c, int unsqueeze) {
    size_t x, n;
    int64_t axes[CRL_NN_MAX_RANK];
    int found, mask[CRL_NN_MAX_RANK] = {0};
    crl_nn_shape s, t;
    crl_status st = want_inputs(c, 1, 2);
    if (st == CRL_OK) st = get_value(c, 0, &x);
    if (st == CRL_OK) st = shape_of(c, x, &s);
    if (st == CRL_OK) st = axes_of(c, 13, axes, &n, &found);
    if (st != CRL_OK) return st;
    int64_t r = (int64_t)(unsqueeze ? s.rank + n : s.rank);
    if (unsqueeze && (!found || r > CRL_NN_MAX_RANK))
        return node_err(c, CRL_EUNSUPPORTED, "needs axes and at most %d dimensions",
                        CRL_NN_MAX_RANK);
    for (size_t i = 0; i < n; i++) {
        if (axes[i] < -r || axes[i] >= r) return node_err(c, CRL_ESHAPE, "axis out of range");
        size_t a = (size_t)(axes[i] < 0 ? axes[i] + r : axes[i]);
        if (a == 0 && s.batched)
            return node_err(c, CRL_EUNSUPPORTED, "the batch axis cannot be (un)squeezed");
        if (!unsqueeze && s.d[a] != 1)
            return node_err(c, CRL_ESHAPE, "axis %zu has size %zu, not 1", a, s.d[a]);
        mask[a] = 1;
    }
    memset(&t, 0, sizeof(t));
    t.batched = s.batched;
    for (size_t i = 0, j = 0; i < (size_t)r; i++) {
        if (unsqueeze) {
            t.d[t.rank++] = mask[i] ? 1 : s.d[j++];
        } else if (!(mask[i] || (!found && s.d[i] == 1 && !(i == 0 && s.batched)))) {
            t.d[t.rank++] = s.d[i];
        }
    }
    return emit_reshape(c, x, &t);
}

static crl_status lower_shape(lower_ctx *c) {
    size_t x;
    crl_nn_shape s;
    int64_t start, end;
    crl_status st = want_inputs(c, 1, 1);
    if (st == CRL_OK) st = get_value(c, 0, &x);
    if (st == CRL_OK) st = shape_of(c, x, &s);
    if (st == CRL_OK) st = attr_int(c, "start", 0, &start);
    if (st == CRL_OK) st = attr_int(c, "end", (int64_t)s.rank, &end);
    if (st != CRL_OK) return st;
    int64_t r = (int64_t)s.rank;
    start = start < 0 ? start + r : start;
    end = end < 0 ? end + r : end;
    start = start < 0 ? 0 : (start > r ? r : start);
    end = end < 0 ? 0 : (end > r ? r : end);
    ent e = {.name = c->node.out[0], .kind = ENT_INTS};
    for (int64_t i = start; i < end; i++)
        e.ints[e.n_ints++] = (int64_t)s.d[i];
    e.batch0 = s.batched && start == 0 && end > 0;
    return add_ent(c, &e);
}

static crl_status lower_expand(lower_ctx *c) {
    size_t x;
    ent sh;
    crl_nn_attrs a;
    crl_nn_attrs_init(&a);
    crl_status st = want_inputs(c, 2, 2);
    if (st == CRL_OK) st = get_value(c, 0, &x);
    if (st == CRL_OK) st = get_ints(c, 1, &sh);
    if (st != CRL_OK) return st;
    if (sh.n_ints > CRL_NN_MAX_RANK)
        return node_err(c, CRL_EUNSUPPORTED, "target shape has %zu dimensions", sh.n_ints);
    a.shape.rank = sh.n_ints;
    a.shape.batched = sh.batch0;
    for (size_t i = 0; i < sh.n_ints; i++) {
        if (i == 0 && sh.batch0) continue;
        if (sh.ints[i] <= 0 || sh.ints[i] > ((int64_t)1 << 24))
            return node_err(c, CRL_EUNSUPPORTED, "target dimension %lld is not supported",
                            (long long)sh.ints[i]);
        a.shape.d[i] = (size_t)sh.ints[i];
    }
    return emit(c, CRL_NN_EXPAND, &x, 1, &a);
}

static crl_status lower_norm(lower_ctx *c, int layer) {
    size_t in[5];
    int64_t training = 0;
    crl_nn_attrs a;
    crl_nn_attrs_init(&a);
    crl_status st = layer ? want_inputs(c, 2, 3) : want_inputs(c, 5, 5);
    if (st == CRL_OK) st = attr_float(c, "epsilon", 1e-5f, &a.eps);
    if (st == CRL_OK && layer) st = attr_int(c, "axis", -1, &a.axis);
    if (st == CRL_OK && !layer) st = attr_int(c, "training_mode", 0, &training);
    if (st == CRL_OK && training != 0)
        st = node_err(c, CRL_EUNSUPPORTED, "training_mode=1 is not supported (inference only)");
    size_t n = 0;
    for (size_t i = 0; i < c->node.n_in && st == CRL_OK; i++)
        if (c->node.in[i].n) st = get_value(c, i, &in[n++]);
    if (st != CRL_OK) return st;
    return emit(c, layer ? CRL_NN_LAYERNORM : CRL_NN_BATCHNORM, in, n, &a);
}

/* A repeated-int attribute of exactly `want` non-negative values (kernel_shape, strides, pads,
 * dilations of a 2-D op) into dst; left alone when absent. */
static crl_status attr_dims(const lower_ctx *c, const char *name, size_t want, size_t *dst) {
    int64_t v[4];
    size_t n = 0;
    int found = 0;
    crl_status st = attr_ints(c, name, v, 4, &n, &found);
    if (st != CRL_OK || !found) return st;
    if (n != want)
        return node_err(c, CRL_EUNSUPPORTED,
                        "attribute '%s' has %zu values; only 2-D (%zu values) is supported", name,
                        n, want);
    for (size_t i = 0; i < n; i++) {
        if (v[i] < 0 || v[i] > (int64_t)1 << 16)
            return node_err(c, CRL_EFORMAT, "attribute '%s' has the value %lld", name,
                            (long long)v[i]);
        dst[i] = (size_t)v[i];
    }
    return CRL_OK;
}

/* Conv, MaxPool, AveragePool (2-D, NCHW). */
static crl_status lower_spatial(lower_ctx *c, crl_nn_op op) {
    static const char *const pads[] = {"NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"};
    crl_nn_attrs a;
    crl_nn_attrs_init(&a);
    onnx_attr at;
    int found = 0;
    int64_t grp = 1, ceil = 0, cip = 0; /* storage_order only shapes the Indices output */
    size_t in[3], n = 0;
    crl_status st = op == CRL_NN_CONV ? want_inputs(c, 2, 3) : want_inputs(c, 1, 1);
    if (st == CRL_OK) st = attr_dims(c, "kernel_shape", 2, a.kernel);
    if (st == CRL_OK) st = attr_dims(c, "strides", 2, a.strides);
    if (st == CRL_OK) st = attr_dims(c, "dilations", 2, a.dilations);
    if (st == CRL_OK) st = attr_dims(c, "pads", 4, a.pads);
    if (st == CRL_OK) st = attr_get(c, "auto_pad", &at, &found);
    if (st == CRL_OK && found) {
        size_t k = 0;
        while (k < 4 && !(at.has_s && span_is(at.s, pads[k])))
            k++;
        if (k == 4)
            return node_err(c, CRL_EUNSUPPORTED,
                            "auto_pad is not one of NOTSET, VALID, "
                            "SAME_UPPER, SAME_LOWER");
        a.auto_pad = (int)k;
    }
    if (st == CRL_OK && op == CRL_NN_CONV) st = attr_int(c, "group", 1, &grp);
    if (st == CRL_OK && op != CRL_NN_CONV) st = attr_int(c, "ceil_mode", 0, &ceil);
    if (st == CRL_OK && op == CRL_NN_AVGPOOL) st = attr_int(c, "count_include_pad", 0, &cip);
    if (st != CRL_OK) return st;
    if (grp < 1 || grp > (int64_t)1 << 16)
        return node_err(c, CRL_EFORMAT, "group %lld is not positive", (long long)grp);
    if (op != CRL_NN_CONV && (a.kernel[0] == 0 || a.kernel[1] == 0))
        return node_err(c, CRL_EFORMAT, "needs a 2-D kernel_shape of positive values");
    a.group = (size_t)grp;
    a.ceil_mode = ceil != 0;
    a.count_include_pad = cip != 0;
    for (size_t i = 0; i < c->node.n_in && st == CRL_OK; i++)
        if (c->node.in[i].n) st = get_value(c, i, &in[n++]);
    if (st != CRL_OK) return st;
    return emit(c, op, in, n, &a);
}

static crl_status lower_reduce_mean(lower_ctx *c) {
    int64_t keep;
    int found;
    crl_nn_attrs a;
    crl_nn_attrs_init(&a);
    crl_status st = want_inputs(c, 1, 2);
    if (st == CRL_OK) st = axes_of(c, 18, a.axes, &a.n_axes, &found);
    if (st == CRL_OK) st = attr_int(c, "keepdims", 1, &keep);
    if (st != CRL_OK) return st;
    a.keepdims = keep != 0;
    return lower_unary(c, CRL_NN_REDUCE_MEAN, &a);
}

static crl_status lower_argmax(lower_ctx *c) {
    int64_t keep, last;
    crl_nn_attrs a;
    crl_nn_attrs_init(&a);
    crl_status st = attr_int(c, "axis", 0, &a.axis);
    if (st == CRL_OK) st = attr_int(c, "keepdims", 1, &keep);
    if (st == CRL_OK) st = attr_int(c, "select_last_index", 0, &last);
    if (st != CRL_OK) return st;
    a.keepdims = keep != 0;
    a.select_last = last != 0;
    return lower_unary(c, CRL_NN_ARGMAX, &a);
}

static crl_status lower_constant(lower_ctx *c) {
    onnx_attr a;
    int found = 0;
    if (c->node.n_in != 0) return node_err(c, CRL_EFORMAT, "a Constant takes no inputs");
    crl_status st = attr_get(c, "value", &a, &found);
    if (st != CRL_OK) return st;
    if (found && a.has_t) {
        onnx_tensor *t = &c->m->consts[c->m->n_consts];
        st = tensor_decode(a.t, t, c->err);
        if (st != CRL_OK) return node_wrap(c, st);
        t->name = c->node.out[0];
        c->m->n_consts++;
        ent e = {.name = c->node.out[0], .kind = ENT_TENSOR, .t = t};
        size_t n = 0;
        /* A short integer tensor is read now (a shape, axes); a longer one (Gather's indices)
         * stays a tensor until an operator reads it. */
        if (is_int_type(t->dtype) && (st = tensor_count(t, &n, c->err)) != CRL_OK)
            return node_wrap(c, st);
        if (is_int_type(t->dtype) && n <= ONNX_MAX_DIMS && (st = tensor_ints(c, t, &e)) != CRL_OK)
            return st;
        return add_ent(c, &e);
    }
    if ((st = attr_get(c, "value_int", &a, &found)) != CRL_OK) return st;
    if (found && a.has_i) {
        ent e = {.name = c->node.out[0], .kind = ENT_INTS, .n_ints = 1, .ints = {a.i}, .scalar = 1};
        return add_ent(c, &e);
    }
    if ((st = attr_get(c, "value_float", &a, &found)) != CRL_OK) return st;
    if (found && a.has_f) {
        size_t v;
        st = crl_nn_graph_const(c->g, &a.f, NULL, 0, &v, c->err);
        return st == CRL_OK ? bind(c, v) : node_wrap(c, st);
    }
    return node_err(c, CRL_EUNSUPPORTED,
                    "only a 'value' tensor, 'value_float' or 'value_int' is supported");
}

/* Split (opset 11: the 'split' attribute; 13 on: an optional constant second input; absent:
 * equal parts) becomes one SLICE per output. */
static crl_status lower_split(lower_ctx *c) {
    size_t x, ax, n_out = c->node.n_out, n_sizes = 0;
    int64_t axis, sizes[ONNX_MAX_IO];
    int found = 0;
    crl_nn_shape s;
    crl_status st = want_inputs(c, 1, c->m->opset >= 13 ? 2 : 1);
    if (st == CRL_OK) st = get_value(c, 0, &x);
    if (st == CRL_OK) st = shape_of(c, x, &s);
    if (st == CRL_OK) st = attr_int(c, "axis", 0, &axis);
    if (st == CRL_OK && c->m->opset < 13)
        st = attr_ints(c, "split", sizes, ONNX_MAX_IO, &n_sizes, &found);
    if (st == CRL_OK && c->m->opset >= 13 && c->node.n_in == 2 && c->node.in[1].n > 0) {
        ent e;
        if ((st = get_ints(c, 1, &e)) != CRL_OK) return st;
        if (e.batch0 || e.n_ints > ONNX_MAX_IO)
            return node_err(c, CRL_EUNSUPPORTED, "'split' must be constant sizes, one per output");
        memcpy(sizes, e.ints, e.n_ints * sizeof(*sizes));
        n_sizes = e.n_ints;
        found = 1;
    }
    if (st != CRL_OK) return st;
    if (n_out == 0) return node_err(c, CRL_EFORMAT, "has no outputs");
    if (axis < -(int64_t)s.rank || axis >= (int64_t)s.rank)
        return node_err(c, CRL_ESHAPE, "axis %lld is outside a %zu-D value", (long long)axis,
                        s.rank);
    ax = (size_t)(axis < 0 ? axis + (int64_t)s.rank : axis);
    if (ax == 0 && s.batched)
        return node_err(c, CRL_EUNSUPPORTED,
                        "splitting along the batch axis (axis 0) is not "
                        "supported: each batch row is its own observation");
    int64_t dim = (int64_t)s.d[ax], sum = 0;
    if (!found) {
        if (dim % (int64_t)n_out != 0)
            return node_err(c, CRL_ESHAPE,
                            "axis %zu of size %lld does not split into %zu equal parts", ax,
                            (long long)dim, n_out);
        for (size_t k = 0; k < n_out; k++)
            sizes[k] = dim / (int64_t)n_out;
        n_sizes = n_out;
    }
    if (n_sizes != n_out)
        return node_err(c, CRL_EFORMAT, "'split' has %zu sizes for %zu outputs", n_sizes, n_out);
    for (size_t k = 0; k < n_out; k++) {
        if (sizes[k] <= 0 || sizes[k] > dim)
            return node_err(c, CRL_EUNSUPPORTED, "split size %lld is outside 1..%lld",
                            (long long)sizes[k], (long long)dim);
        sum += sizes[k];
    }
    if (sum != dim)
        return node_err(c, CRL_ESHAPE, "split sizes add up to %lld, the axis has %lld",
                        (long long)sum, (long long)dim);
    crl_nn_attrs a;
    crl_nn_attrs_init(&a);
    a.n_axes = 1;
    a.axes[0] = (int64_t)ax;
    a.steps[0] = 1;
    for (size_t k = 0; k < n_out && st == CRL_OK; k++) {
        size_t v;
        a.ends[0] = a.starts[0] + sizes[k];
        st = crl_nn_graph_node(c->g, CRL_NN_SLICE, &x, 1, &a, &v, c->err);
        if (st != CRL_OK) return node_wrap(c, st);
        if (c->node.out[k].n > 0) st = bind_out(c, k, v);
        a.starts[0] = a.ends[0];
    }
    return st;
}

/* Slice (opset 10 on): starts, ends and the optional axes and steps are constant inputs. */
static crl_status lower_slice(lower_ctx *c) {
    size_t x;
    ent in[4]; /* starts, ends, axes, steps */
    int has[4] = {1, 1, 0, 0};
    crl_nn_attrs a;
    crl_nn_attrs_init(&a);
    crl_status st = want_inputs(c, 3, 5);
    if (st == CRL_OK) st = get_value(c, 0, &x);
    for (size_t k = 0; k < 4 && st == CRL_OK; k++) {
        if (k >= 2) has[k] = c->node.n_in > k + 1 && c->node.in[k + 1].n > 0;
        if (has[k]) st = get_ints(c, k + 1, &in[k]);
        if (st == CRL_OK && has[k] && in[k].batch0)
            st = node_err(c, CRL_EUNSUPPORTED, "input %zu holds the run-time batch size", k + 1);
    }
    if (st != CRL_OK) return st;
    size_t n = in[0].n_ints;
    if (n == 0 || n > CRL_NN_MAX_RANK || in[1].n_ints != n || (has[2] && in[2].n_ints != n) ||
        (has[3] && in[3].n_ints != n))
        return node_err(c, CRL_EFORMAT,
                        "starts, ends, axes and steps must have the same length, 1 to %d",
                        CRL_NN_MAX_RANK);
    for (size_t k = 0; k < n; k++) {
        a.axes[k] = has[2] ? in[2].ints[k] : (int64_t)k;
        a.starts[k] = in[0].ints[k];
        a.ends[k] = in[1].ints[k];
        a.steps[k] = has[3] ? in[3].ints[k] : 1;
        if (a.steps[k] == 0) return node_err(c, CRL_EFORMAT, "a step is 0");
    }
    a.n_axes = n;
    return emit(c, CRL_NN_SLICE, &x, 1, &a);
}

/* Gather's indices: a constant INT64 / INT32 tensor of any shape, or the integers of a Shape
 * (1-D) or of a value_int Constant (a scalar). *ix is malloc'ed. */
static crl_status gather_indices(lower_ctx *c, int64_t **ix, size_t *idims, size_t *irank) {
    ent *e;
    size_t n = 0;
    crl_status st = lookup(c, 1, &e);
    if (st != CRL_OK) return st;
    if (e->t != NULL && is_int_type(e->t->dtype)) {
        if ((st = tensor_count(e->t, &n, c->err)) != CRL_OK) return node_wrap(c, st);
        if (e->t->ndims > CRL_NN_MAX_RANK || n == 0 || n > ONNX_MAX_INDICES)
            return node_err(c, CRL_EUNSUPPORTED,
                            "the indices (%zu in %zu dimensions) must be 1 to %zu in at most %d "
                            "dimensions",
                            n, e->t->ndims, ONNX_MAX_INDICES, CRL_NN_MAX_RANK);
        *irank = e->t->ndims;
        for (size_t i = 0; i < *irank; i++)
            idims[i] = (size_t)e->t->dims[i];
    } else if (e->kind == ENT_INTS && !e->batch0 && e->n_ints > 0) {
        n = e->n_ints;
        *irank = e->scalar ? 0 : 1;
        idims[0] = n;
    } else {
        return node_err(c, CRL_EUNSUPPORTED,
                        "the indices must be a constant INT64 or INT32 tensor (an initializer or "
                        "a Constant node)");
    }
    *ix = malloc(n * sizeof(**ix));
    if (*ix == NULL) return node_err(c, CRL_ENOMEM, "out of memory");
    if (e->t != NULL && is_int_type(e->t->dtype)) return tensor_int_data(c, e->t, *ix, n);
    memcpy(*ix, e->ints, n * sizeof(**ix));
    return CRL_OK;
}

/* Gather from integers (a Shape): at most ONNX_MAX_DIMS of them by a scalar or 1-D index. The
 * run-time batch may be picked only as the first value of the result. */
static crl_status gather_ints(lower_ctx *c, int64_t axis, const int64_t *ix, size_t irank,
                              size_t n) {
    ent d;
    crl_status st = get_ints(c, 0, &d);
    if (st != CRL_OK) return st;
    if ((axis != 0 && axis != -1) || irank > 1 || n > ONNX_MAX_DIMS || d.scalar)
        return node_err(c, CRL_EUNSUPPORTED,
                        "only up to %d values of a 1-D integer tensor can be gathered",
                        ONNX_MAX_DIMS);
    ent r = {.name = c->node.out[0], .kind = ENT_INTS, .n_ints = n, .scalar = irank == 0};
    for (size_t j = 0; j < n; j++) {
        int64_t k = ix[j] < 0 ? ix[j] + (int64_t)d.n_ints : ix[j];
        if (k < 0 || k >= (int64_t)d.n_ints)
            return node_err(c, CRL_ESHAPE, "index %lld is outside %zu values", (long long)ix[j],
                            d.n_ints);
        if (k == 0 && d.batch0 && j != 0)
            return node_err(c, CRL_EUNSUPPORTED, "the run-time batch size would move");
        r.batch0 |= k == 0 && d.batch0;
        r.ints[j] = d.ints[k];
    }
    return add_ent(c, &r);
}

static crl_status lower_gather(lower_ctx *c) {
    size_t x, v, idims[CRL_NN_MAX_RANK], irank = 0;
    int64_t axis, *ix = NULL;
    crl_status st = want_inputs(c, 2, 2);
    if (st == CRL_OK) st = attr_int(c, "axis", 0, &axis);
    if (st == CRL_OK && is_ints(c, 0)) {
        if ((st = gather_indices(c, &ix, idims, &irank)) == CRL_OK) {
            size_t n = 1;
            for (size_t i = 0; i < irank; i++)
                n *= idims[i];
            st = gather_ints(c, axis, ix, irank, n);
        }
        free(ix);
        return st;
    }
    if (st == CRL_OK) st = get_value(c, 0, &x);
    if (st == CRL_OK) st = gather_indices(c, &ix, idims, &irank);
    if (st == CRL_OK) {
        st = crl_nn_graph_gather(c->g, x, axis, ix, idims, irank, &v, c->err);
        st = st == CRL_OK ? bind(c, v) : node_wrap(c, st);
    }
    free(ix);
    return st;
}

static crl_status lower_transpose(lower_ctx *c) {
    crl_nn_attrs a;
    crl_nn_attrs_init(&a);
    int found;
    crl_status st = attr_ints(c, "perm", a.axes, CRL_NN_MAX_RANK, &a.n_axes, &found);
    return st == CRL_OK ? lower_unary(c, CRL_NN_TRANSPOSE, &a) : st;
}

static int is_op(const lower_ctx *c, const char *op) {
    return span_is(c->node.op, op);
}

static crl_status lower_node(lower_ctx *c) {
    static const struct {
        const char *name;
        crl_nn_op op;
    } unary[] = {{"Relu", CRL_NN_RELU},         {"Tanh", CRL_NN_TANH}, {"Sigmoid", CRL_NN_SIGMOID},
                 {"Softplus", CRL_NN_SOFTPLUS}, {"Exp", CRL_NN_EXP},   {"Log", CRL_NN_LOG},
                 {"Sqrt", CRL_NN_SQRT},         {"Erf", CRL_NN_ERF}},
      binary[] = {{"Add", CRL_NN_ADD},
                  {"Sub", CRL_NN_SUB},
                  {"Mul", CRL_NN_MUL},
                  {"Div", CRL_NN_DIV},
                  {"Pow", CRL_NN_POW}};
    name_buf nb;
    if (c->node.domain.n != 0 && !span_is(c->node.domain, "ai.onnx"))
        return node_err(c, CRL_EUNSUPPORTED, "operators of domain '%s' are not supported",
                        span_str(c->node.domain, &nb));
    if (is_op(c, "Split")) return lower_split(c); /* the one operator with several outputs */
    if (c->node.n_out != 1 || c->node.out[0].n == 0)
        return node_err(c, CRL_EUNSUPPORTED, "has %zu outputs, expected exactly one",
                        c->node.n_out);
    for (size_t i = 0; i < sizeof(unary) / sizeof(unary[0]); i++)
        if (is_op(c, unary[i].name)) return lower_unary(c, unary[i].op, NULL);
    for (size_t i = 0; i < sizeof(binary) / sizeof(binary[0]); i++)
        if (is_op(c, binary[i].name)) return lower_binary(c, binary[i].op);
    crl_nn_attrs a;
    crl_nn_attrs_init(&a);
    crl_status st = CRL_OK;
    if (is_op(c, "LeakyRelu") || is_op(c, "Elu") || is_op(c, "Selu")) {
        int leaky = is_op(c, "LeakyRelu"), selu = is_op(c, "Selu");
        st = attr_float(c, "alpha", leaky ? 0.01f : (selu ? 1.67326319217681884765625f : 1.0f),
                        &a.alpha);
        if (st == CRL_OK && selu) st = attr_float(c, "gamma", 1.05070102214813232421875f, &a.beta);
        if (st != CRL_OK) return st;
        return lower_unary(c, leaky ? CRL_NN_LEAKY_RELU : (selu ? CRL_NN_SELU : CRL_NN_ELU), &a);
    }
    if (is_op(c, "Softmax") || is_op(c, "LogSoftmax")) {
        a.flat2d = c->m->opset < 13;
        if ((st = attr_int(c, "axis", a.flat2d ? 1 : -1, &a.axis)) != CRL_OK) return st;
        return lower_unary(c, is_op(c, "Softmax") ? CRL_NN_SOFTMAX : CRL_NN_LOG_SOFTMAX, &a);
    }
    if (is_op(c, "Identity")) {
        ent *e;
        if ((st = want_inputs(c, 1, 1)) != CRL_OK || (st = lookup(c, 0, &e)) != CRL_OK) return st;
        ent alias = *e;
        alias.name = c->node.out[0];
        return add_ent(c, &alias);
    }
    if (is_op(c, "Gemm")) return lower_gemm(c);
    if (is_op(c, "MatMul")) return lower_matmul(c);
    if (is_op(c, "Clip")) return lower_clip(c);
    if (is_op(c, "Concat")) return lower_concat(c);
    if (is_op(c, "Reshape")) return lower_reshape(c);
    if (is_op(c, "Flatten")) return lower_flatten(c);
    if (is_op(c, "Squeeze")) return lower_squeeze(c, 0);
    if (is_op(c, "Unsqueeze")) return lower_squeeze(c, 1);
    if (is_op(c, "Constant")) return lower_constant(c);
    if (is_op(c, "Shape")) return lower_shape(c);
    if (is_op(c, "Expand")) return lower_expand(c);
    if (is_op(c, "BatchNormalization")) return lower_norm(c, 0);
    if (is_op(c, "LayerNormalization")) return lower_norm(c, 1);
    if (is_op(c, "ReduceMean")) return lower_reduce_mean(c);
    if (is_op(c, "Conv")) return lower_spatial(c, CRL_NN_CONV);
    if (is_op(c, "MaxPool")) return lower_spatial(c, CRL_NN_MAXPOOL);
    if (is_op(c, "AveragePool")) return lower_spatial(c, CRL_NN_AVGPOOL);
    if (is_op(c, "GlobalAveragePool")) return lower_unary(c, CRL_NN_GLOBAL_AVGPOOL, NULL);
    if (is_op(c, "ArgMax")) return lower_argmax(c);
    if (is_op(c, "Slice")) return lower_slice(c);
    if (is_op(c, "Gather")) return lower_gather(c);
    if (is_op(c, "Transpose")) return lower_transpose(c);
    return node_err(c, CRL_EUNSUPPORTED, "unsupported operator");
}

static int is_initializer(const onnx_model *m, pb_span name) {
    for (size_t i = 0; i < m->n_inits; i++)
        if (span_eq(m->inits[i].name, name)) return 1;
    return 0;
}

/* The one graph input that is not an initializer (old exporters list weights as inputs too):
 * [batch, d1, ..., dk] with known d's, or [N] (read as [batch, N]). */
static crl_status find_input(const onnx_model *m, const onnx_value **in, size_t *dims,
                             size_t *n_dims, crl_err *err) {
    name_buf nb;
    size_t n = 0;
    for (size_t i = 0; i < m->n_inputs; i++) {
        if (is_initializer(m, m->inputs[i].name)) continue;
        *in = &m->inputs[i];
        n++;
    }
    if (n != 1)
        return crl_err_set(err, CRL_EUNSUPPORTED,
                           "the graph has %zu inputs (not counting weights); exactly one is "
                           "supported",
                           n);
    const onnx_value *v = *in;
    const char *name = span_str(v->name, &nb);
    if (!v->is_tensor)
        return crl_err_set(err, CRL_EUNSUPPORTED, "graph input '%s' is not a tensor", name);
    if (v->elem_type != ONNX_FLOAT)
        return crl_err_set(err, CRL_EUNSUPPORTED,
                           "graph input '%s' has element type %lld (%s); only FLOAT is supported",
                           name, (long long)v->elem_type, dtype_name(v->elem_type));
    if (!v->has_shape || v->ndims < 1 || v->ndims > CRL_NN_MAX_RANK)
        return crl_err_set(err, CRL_EUNSUPPORTED,
                           "graph input '%s' must have shape [batch, ...] (at most %d dimensions) "
                           "or [N]",
                           name, CRL_NN_MAX_RANK);
    size_t from = v->ndims == 1 ? 0 : 1;
    uint64_t width = 1;
    *n_dims = 0;
    for (size_t i = from; i < v->ndims; i++) {
        if (v->dims[i] <= 0)
            return crl_err_set(err, CRL_EUNSUPPORTED,
                               "graph input '%s' must have known sizes after the batch dimension",
                               name);
        if (v->dims[i] > ((int64_t)1 << 16) ||
            (width *= (uint64_t)v->dims[i]) > ((uint64_t)1 << 16))
            return crl_err_set(err, CRL_EUNSUPPORTED,
                               "graph input '%s' has more than 65536 features per row", name);
        dims[(*n_dims)++] = (size_t)v->dims[i];
    }
    return CRL_OK;
}

static crl_status set_output(lower_ctx *c, crl_err *err) {
    name_buf nb;
    if (c->m->n_outputs != 1)
        return crl_err_set(err, CRL_EUNSUPPORTED,
                           "the graph has %zu outputs; exactly one is supported", c->m->n_outputs);
    const onnx_value *o = &c->m->outputs[0];
    const char *name = span_str(o->name, &nb);
    if (o->is_tensor && o->elem_type != ONNX_FLOAT && o->elem_type != 0 &&
        o->elem_type != 7) /* ArgMax gives INT64; carlarl returns the index as a float */
        return crl_err_set(err, CRL_EUNSUPPORTED, "graph output '%s' is not FLOAT", name);
    /* Find the value under the output's name, as if it were the input of a last node. */
    memset(&c->node, 0, sizeof(c->node));
    c->node.in[0] = o->name;
    c->node.n_in = 1;
    c->node.op.p = (const uint8_t *)"output";
    c->node.op.n = 6;
    size_t v;
    crl_nn_shape s;
    crl_status st = get_value(c, 0, &v);
    if (st == CRL_OK) st = shape_of(c, v, &s);
    if (st == CRL_OK && (st = crl_nn_graph_set_output(c->g, v, err)) != CRL_OK) return st;
    if (st != CRL_OK) return st;
    /* A declared shape with every size after the batch known must match what the graph makes
     * (exporters often leave sizes symbolic: then the graph's own answer stands). */
    if (o->has_shape && o->ndims >= 1 && s.batched) {
        uint64_t decl = 1;
        int known = 1;
        for (size_t i = o->ndims == 1 ? 0 : 1; i < o->ndims; i++) {
            known &= o->dims[i] > 0;
            if (o->dims[i] > 0 && decl <= ((uint64_t)1 << 32)) decl *= (uint64_t)o->dims[i];
        }
        size_t have = 1;
        for (size_t i = 1; i < s.rank; i++)
            have *= s.d[i];
        if (known && decl != have)
            return crl_err_set(err, CRL_ESHAPE,
                               "graph output '%s' declares %llu values per row but the graph "
                               "computes %zu",
                               name, (unsigned long long)decl, have);
    }
    return CRL_OK;
}

static crl_status lower(onnx_model *m, crl_nn_graph_t **out, crl_err *err) {
    lower_ctx c;
    memset(&c, 0, sizeof(c));
    c.m = m;
    c.err = err;
    const onnx_value *in = NULL;
    size_t dims[CRL_NN_MAX_RANK], n_dims = 0;
    crl_status st = find_input(m, &in, dims, &n_dims, err);
    if (st != CRL_OK) return st;
    st = crl_nn_graph_new_shaped(dims, n_dims, &c.g);
    if (st != CRL_OK) return crl_err_set(err, st, "cannot create a graph for the input shape");
    /* One entry per node output (Split has several), initializer and the graph input. */
    c.cap_ents = m->n_inits + 2;
    for (size_t i = 0; i < m->n_nodes; i++)
        c.cap_ents += node_decode(m->nodes[i], &c.node, NULL) == CRL_OK ? c.node.n_out : 1;
    c.ents = calloc(c.cap_ents, sizeof(*c.ents));
    if (c.ents == NULL) {
        st = crl_err_set(err, CRL_ENOMEM, "out of memory");
        goto out;
    }
    c.ents[c.n_ents++] = (ent){.name = in->name, .kind = ENT_VALUE, .value = 0};
    for (c.index = 0; c.index < m->n_nodes && st == CRL_OK; c.index++) {
        st = node_decode(m->nodes[c.index], &c.node, err);
        if (st != CRL_OK) {
            st = crl_err_prefix(err, st, "node #%zu", c.index);
            break;
        }
        st = lower_node(&c);
    }
    if (st == CRL_OK) st = set_output(&c, err);
    if (st == CRL_OK) st = crl_nn_graph_finish(c.g, err);
out:
    free(c.ents);
    if (st != CRL_OK) {
        crl_nn_graph_free(c.g);
        return st;
    }
    *out = c.g;
    return CRL_OK;
}

crl_status crl_onnx_load_mem(const uint8_t *data, size_t len, crl_nn_graph_t **out, crl_err *err) {
    if (out == NULL) return crl_err_set(err, CRL_EINVAL, "no place for the graph");
    *out = NULL;
    if (data == NULL && len > 0) return crl_err_set(err, CRL_EINVAL, "no model bytes");
    if (len == 0) return crl_err_set(err, CRL_EFORMAT, "not a valid ONNX model: it is empty");
    onnx_model m;
    memset(&m, 0, sizeof(m));
    pb_span all = {data, len};
    crl_status st = model_decode(all, &m, err);
    if (st != CRL_OK) goto out;
    if (!m.has_opset) {
        st = crl_err_set(err, CRL_EFORMAT, "the model imports no opset of the default ONNX domain");
        goto out;
    }
    if (m.opset < ONNX_OPSET_MIN || m.opset > ONNX_OPSET_MAX) {
        st = crl_err_set(err, CRL_EUNSUPPORTED,
                         "opset %lld is not supported; carlarl reads opsets %d to %d "
                         "(re-export with an opset in that range)",
                         (long long)m.opset, ONNX_OPSET_MIN, ONNX_OPSET_MAX);
        goto out;
    }
    st = graph_decode(&m, err);
    if (st == CRL_OK) st = lower(&m, out, err);
out:
    model_free(&m);
    return st;
}

static crl_status read_file(const char *path, uint8_t **data, size_t *len, crl_err *err) {
    *data = NULL;
    crl_status st = CRL_OK;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return crl_err_set(err, errno == ENOENT ? CRL_ENOTFOUND : CRL_EIO, "cannot open: %s",
                           strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = crl_err_set(err, CRL_EIO, "not a regular file");
        goto out;
    }
    if ((uint64_t)sb.st_size > ONNX_MAX_FILE) {
        st = crl_err_set(err, CRL_EUNSUPPORTED, "the file is larger than %zu bytes", ONNX_MAX_FILE);
        goto out;
    }
    *len = (size_t)sb.st_size;
    *data = malloc(*len ? *len : 1);
    if (*data == NULL) {
        st = crl_err_set(err, CRL_ENOMEM, "out of memory reading the file");
        goto out;
    }
    if (fread(*data, 1, *len, f) != *len) {
        st = crl_err_set(err, CRL_EIO, "read error");
        free(*data);
        *data = NULL;
    }
out:
    fclose(f);
    return st;
}

crl_status crl_onnx_load_file(const char *path, crl_nn_graph_t **out, crl_err *err) {
    uint8_t *data = NULL;
    size_t len = 0;
    if (out) *out = NULL;
    if (path == NULL || out == NULL) return crl_err_set(err, CRL_EINVAL, "no model path");
    crl_status st = read_file(path, &data, &len, err);
    if (st == CRL_OK) st = crl_onnx_load_mem(data, len, out, err);
    free(data);
    if (st != CRL_OK) crl_err_prefix(err, st, "%s", path);
    return st;
}
