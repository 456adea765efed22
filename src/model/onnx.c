/* onnx.c: ONNX import. A small protobuf wire-format decoder (every read bounds-checked, no
 * libprotobuf) pulls out the parts of onnx.proto an MLP needs, then the graph is walked as a single
 * chain from its input to its output and lowered to a crl_nn_graph_t.
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
    int has_f, has_i, has_t;
    float f;
    int64_t i;
    pb_span t;
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
            } else if (g.num == 1 || g.num == 2 || g.num == 3 || g.num == 5) {
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

typedef struct lower_ctx {
    onnx_model *m;
    crl_nn_graph_t *g;
    crl_err *err;
    pb_span cur; /* name of the value flowing down the chain */
    size_t width;
    size_t rank;
    size_t index;   /* of the node being lowered */
    onnx_node node; /* the node being lowered */
} lower_ctx;

/* "node 'NAME' (op OP): reason", or "node #3 (op OP): reason" for a nameless node. */
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
        return crl_err_set(c->err, st, "node '%s' (op %s): %s", span_str(c->node.name, &nb), op,
                           reason);
    return crl_err_set(c->err, st, "node #%zu (op %s): %s", c->index, op, reason);
}

/* Re-labels an error from a lower layer (tensor or builder) with the node it came from. */
static crl_status node_wrap(const lower_ctx *c, crl_status st) {
    if (c->err == NULL) return st;
    char inner[sizeof(c->err->msg)];
    memcpy(inner, c->err->msg, sizeof(inner));
    return node_err(c, st, "%s", inner);
}

static const onnx_tensor *find_const(const onnx_model *m, pb_span name) {
    for (size_t i = m->n_consts; i-- > 0;)
        if (span_eq(m->consts[i].name, name)) return &m->consts[i];
    for (size_t i = 0; i < m->n_inits; i++)
        if (span_eq(m->inits[i].name, name)) return &m->inits[i];
    return NULL;
}

/* A constant operand of the current node as floats; `*t` gives its shape. */
static crl_status const_operand(const lower_ctx *c, pb_span name, const char *role,
                                const onnx_tensor **t, float **data, size_t *count) {
    name_buf nb;
    *data = NULL;
    *t = find_const(c->m, name);
    if (*t == NULL)
        return node_err(c, CRL_EUNSUPPORTED,
                        "%s '%s' is neither the chain value nor a constant (initializer or "
                        "Constant node); only single-chain graphs are supported",
                        role, span_str(name, &nb));
    crl_status st = tensor_floats(*t, data, count, c->err);
    return st == CRL_OK ? CRL_OK : node_wrap(c, st);
}

/* Expands a constant to one row of `width` values: a scalar (any shape with one element), [width]
 * or [1, width]; anything else would need a broadcast carlarl does not do. */
static crl_status const_row(const lower_ctx *c, const onnx_tensor *t, const float *data,
                            size_t count, size_t width, const char *role, float **row) {
    int ok = count == 1 || (t->ndims == 1 && (size_t)t->dims[0] == width) ||
             (t->ndims == 2 && t->dims[0] == 1 && (size_t)t->dims[1] == width);
    if (!ok || (count != 1 && count != width))
        return node_err(c, CRL_ESHAPE,
                        "%s has %zu elements in %zu dimensions, which does not "
                        "broadcast over rows of width %zu",
                        role, count, t->ndims, width);
    *row = malloc(width * sizeof(float));
    if (*row == NULL) return node_err(c, CRL_ENOMEM, "out of memory");
    for (size_t i = 0; i < width; i++)
        (*row)[i] = data[count == 1 ? 0 : i];
    return CRL_OK;
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

static crl_status want_inputs(const lower_ctx *c, size_t lo, size_t hi) {
    if (c->node.n_in < lo || c->node.n_in > hi)
        return node_err(c, CRL_EFORMAT, "has %zu inputs, expected %zu to %zu", c->node.n_in, lo,
                        hi);
    return CRL_OK;
}

/* The chain value must be the first input (the only place these ops accept it). */
static crl_status want_chain_first(const lower_ctx *c) {
    name_buf nb;
    if (!span_eq(c->node.in[0], c->cur))
        return node_err(c, CRL_EUNSUPPORTED,
                        "the chain value '%s' must be the first input of this operator",
                        span_str(c->cur, &nb));
    return CRL_OK;
}

/* Adds a linear layer from B (a constant): W = B^T when B is [K, N] (MatMul, Gemm transB=0) or
 * W = B when B is [N, K] (Gemm transB=1). */
static crl_status lower_weights(lower_ctx *c, pb_span bname, int trans_b, float **w,
                                size_t *n_out) {
    const onnx_tensor *t;
    float *b = NULL;
    size_t count;
    crl_status st = const_operand(c, bname, "weight B", &t, &b, &count);
    if (st != CRL_OK) return st;
    if (t->ndims != 2) {
        st = node_err(c, CRL_ESHAPE, "weight B must be 2-D, it has %zu dimensions", t->ndims);
        goto out;
    }
    size_t k = (size_t)t->dims[trans_b ? 1 : 0], n = (size_t)t->dims[trans_b ? 0 : 1];
    if (k != c->width) {
        st = node_err(c, CRL_ESHAPE, "weight B is [%lld, %lld] but the input has width %zu",
                      (long long)t->dims[0], (long long)t->dims[1], c->width);
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

static crl_status lower_gemm(lower_ctx *c) {
    float alpha, beta, *w = NULL, *cdata = NULL, *bias = NULL;
    int64_t trans_a, trans_b;
    size_t n = 0, ccount;
    const onnx_tensor *ct;
    crl_status st = want_inputs(c, 2, 3);
    if (st == CRL_OK) st = want_chain_first(c);
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
    st = lower_weights(c, c->node.in[1], (int)trans_b, &w, &n);
    if (st != CRL_OK) goto out;
    if (c->node.n_in == 3 && c->node.in[2].n > 0 && beta != 0.0f) {
        st = const_operand(c, c->node.in[2], "bias C", &ct, &cdata, &ccount);
        if (st == CRL_OK) st = const_row(c, ct, cdata, ccount, n, "bias C", &bias);
        if (st != CRL_OK) goto out;
        for (size_t o = 0; o < n; o++)
            bias[o] *= beta;
    }
    /* alpha == 1 is the common case (PyTorch, Keras) and becomes one fused layer. Otherwise the
     * ONNX formula alpha * (A B) + beta * C is kept in its own order. */
    if (alpha == 1.0f) {
        st = crl_nn_graph_add_linear(c->g, w, bias, c->width, n, c->err);
    } else {
        st = crl_nn_graph_add_linear(c->g, w, NULL, c->width, n, c->err);
        if (st == CRL_OK) st = crl_nn_graph_add_scale(c->g, alpha, c->err);
        if (st == CRL_OK && bias) st = crl_nn_graph_add_row(c->g, bias, n, c->err);
    }
    if (st != CRL_OK) {
        st = node_wrap(c, st);
        goto out;
    }
    c->width = n;
    c->rank = 2;
out:
    free(w);
    free(cdata);
    free(bias);
    return st;
}

static crl_status lower_matmul(lower_ctx *c) {
    float *w = NULL;
    size_t n = 0;
    crl_status st = want_inputs(c, 2, 2);
    if (st == CRL_OK) st = want_chain_first(c);
    if (st == CRL_OK) st = lower_weights(c, c->node.in[1], 0, &w, &n);
    if (st == CRL_OK) {
        st = crl_nn_graph_add_linear(c->g, w, NULL, c->width, n, c->err);
        if (st != CRL_OK) st = node_wrap(c, st);
    }
    if (st == CRL_OK) c->width = n;
    free(w);
    return st;
}

static crl_status lower_add(lower_ctx *c) {
    const onnx_tensor *t;
    float *data = NULL, *row = NULL;
    size_t count;
    crl_status st = want_inputs(c, 2, 2);
    if (st != CRL_OK) return st;
    int first = span_eq(c->node.in[0], c->cur), second = span_eq(c->node.in[1], c->cur);
    if (first && second) return node_err(c, CRL_EUNSUPPORTED, "adds the chain value to itself");
    pb_span other = first ? c->node.in[1] : c->node.in[0];
    st = const_operand(c, other, "addend", &t, &data, &count);
    if (st == CRL_OK) st = const_row(c, t, data, count, c->width, "addend", &row);
    if (st == CRL_OK) {
        st = crl_nn_graph_add_row(c->g, row, c->width, c->err);
        if (st != CRL_OK) st = node_wrap(c, st);
    }
    if (st == CRL_OK && t->ndims == 2) c->rank = 2;
    free(data);
    free(row);
    return st;
}

/* One optional scalar bound of Clip (opset >= 11): an input that may be absent or empty. */
static crl_status clip_bound(lower_ctx *c, size_t idx, const char *role, float *v) {
    const onnx_tensor *t;
    float *data = NULL;
    size_t count;
    if (c->node.n_in <= idx || c->node.in[idx].n == 0) return CRL_OK;
    crl_status st = const_operand(c, c->node.in[idx], role, &t, &data, &count);
    if (st == CRL_OK && count != 1)
        st = node_err(c, CRL_ESHAPE, "%s must be a scalar, it has %zu elements", role, count);
    if (st == CRL_OK) *v = data[0];
    free(data);
    return st;
}

static crl_status lower_clip(lower_ctx *c) {
    float lo = -INFINITY, hi = INFINITY;
    crl_status st = want_inputs(c, 1, 3);
    if (st == CRL_OK) st = want_chain_first(c);
    if (st != CRL_OK) return st;
    if (c->m->opset < 11) { /* before opset 11 the bounds were attributes */
        st = attr_float(c, "min", lo, &lo);
        if (st == CRL_OK) st = attr_float(c, "max", hi, &hi);
    } else {
        st = clip_bound(c, 1, "min", &lo);
        if (st == CRL_OK) st = clip_bound(c, 2, "max", &hi);
    }
    if (st != CRL_OK) return st;
    if (lo == -INFINITY && hi == INFINITY) return CRL_OK; /* no bounds: a no-op */
    st = crl_nn_graph_add_clip(c->g, lo, hi, c->err);
    return st == CRL_OK ? CRL_OK : node_wrap(c, st);
}

static crl_status lower_flatten(lower_ctx *c) {
    int64_t axis;
    crl_status st = want_inputs(c, 1, 1);
    if (st == CRL_OK) st = want_chain_first(c);
    if (st == CRL_OK) st = attr_int(c, "axis", 1, &axis);
    if (st != CRL_OK) return st;
    /* On a 2-D [batch, N] value, axis 1 (or -1) keeps the shape: nothing to do. */
    if (c->rank != 2 || (axis != 1 && axis != -1))
        return node_err(c, CRL_EUNSUPPORTED,
                        "only axis 1 on a 2-D value is supported (axis %lld on a %zu-D value)",
                        (long long)axis, c->rank);
    return CRL_OK;
}

static crl_status lower_constant(lower_ctx *c) {
    onnx_attr a;
    int found = 0;
    if (c->node.n_in != 0) return node_err(c, CRL_EFORMAT, "a Constant takes no inputs");
    crl_status st = attr_get(c, "value", &a, &found);
    if (st != CRL_OK) return st;
    if (!found || !a.has_t)
        return node_err(c, CRL_EUNSUPPORTED, "only a tensor 'value' attribute is supported");
    onnx_tensor *t = &c->m->consts[c->m->n_consts];
    st = tensor_decode(a.t, t, c->err);
    if (st != CRL_OK) return node_wrap(c, st);
    t->name = c->node.out[0];
    c->m->n_consts++;
    return CRL_OK;
}

static crl_status lower_act(lower_ctx *c, crl_nn_op op) {
    crl_status st = want_inputs(c, 1, 1);
    if (st == CRL_OK) st = want_chain_first(c);
    if (st == CRL_OK) {
        st = crl_nn_graph_add_act(c->g, op, c->err);
        if (st != CRL_OK) st = node_wrap(c, st);
    }
    return st;
}

static int is_op(const lower_ctx *c, const char *op) {
    return span_is(c->node.op, op);
}

static crl_status lower_node(lower_ctx *c) {
    static const char *const known[] = {"Gemm",    "MatMul", "Add",      "Relu",    "Tanh",
                                        "Sigmoid", "Clip",   "Identity", "Flatten", "Constant"};
    name_buf nb;
    int supported = 0;
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        supported |= is_op(c, known[i]);
    if (c->node.domain.n != 0 && !span_is(c->node.domain, "ai.onnx"))
        return node_err(c, CRL_EUNSUPPORTED, "operators of domain '%s' are not supported",
                        span_str(c->node.domain, &nb));
    if (!supported) return node_err(c, CRL_EUNSUPPORTED, "unsupported operator");
    if (c->node.n_out != 1 || c->node.out[0].n == 0)
        return node_err(c, CRL_EUNSUPPORTED, "has %zu outputs, expected exactly one",
                        c->node.n_out);
    if (is_op(c, "Constant")) return lower_constant(c);
    int on_chain = 0;
    for (size_t i = 0; i < c->node.n_in; i++)
        on_chain |= span_eq(c->node.in[i], c->cur);
    if (!on_chain)
        return node_err(c, CRL_EUNSUPPORTED,
                        "does not consume the chain value '%s'; only a single chain from the "
                        "input to the output is supported (no branches)",
                        span_str(c->cur, &nb));
    crl_status st = CRL_OK;
    if (is_op(c, "Gemm"))
        st = lower_gemm(c);
    else if (is_op(c, "MatMul"))
        st = lower_matmul(c);
    else if (is_op(c, "Add"))
        st = lower_add(c);
    else if (is_op(c, "Relu"))
        st = lower_act(c, CRL_NN_RELU);
    else if (is_op(c, "Tanh"))
        st = lower_act(c, CRL_NN_TANH);
    else if (is_op(c, "Sigmoid"))
        st = lower_act(c, CRL_NN_SIGMOID);
    else if (is_op(c, "Clip"))
        st = lower_clip(c);
    else if (is_op(c, "Flatten"))
        st = lower_flatten(c);
    else if (is_op(c, "Identity"))
        st = want_inputs(c, 1, 1);
    if (st == CRL_OK) c->cur = c->node.out[0];
    return st;
}

static int is_initializer(const onnx_model *m, pb_span name) {
    for (size_t i = 0; i < m->n_inits; i++)
        if (span_eq(m->inits[i].name, name)) return 1;
    return 0;
}

/* The one graph input that is not an initializer (old exporters list weights as inputs too). */
static crl_status find_input(const onnx_model *m, const onnx_value **in, size_t *width,
                             crl_err *err) {
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
    if (!v->has_shape || v->ndims < 1 || v->ndims > 2 || v->dims[v->ndims - 1] <= 0)
        return crl_err_set(err, CRL_EUNSUPPORTED,
                           "graph input '%s' must have shape [batch, N] or [N] with a known N",
                           name);
    if (v->dims[v->ndims - 1] > ((int64_t)1 << 16))
        return crl_err_set(err, CRL_EUNSUPPORTED, "graph input '%s' has %lld features (max 65536)",
                           name, (long long)v->dims[v->ndims - 1]);
    *width = (size_t)v->dims[v->ndims - 1];
    return CRL_OK;
}

static crl_status check_output(const lower_ctx *c, crl_err *err) {
    name_buf nb, cb;
    if (c->m->n_outputs != 1)
        return crl_err_set(err, CRL_EUNSUPPORTED,
                           "the graph has %zu outputs; exactly one is "
                           "supported",
                           c->m->n_outputs);
    const onnx_value *o = &c->m->outputs[0];
    if (!span_eq(o->name, c->cur))
        return crl_err_set(err, CRL_EUNSUPPORTED,
                           "graph output '%s' is not the end of the chain from the input (the "
                           "chain ends at '%s')",
                           span_str(o->name, &nb), span_str(c->cur, &cb));
    if (o->is_tensor && o->elem_type != ONNX_FLOAT && o->elem_type != 0)
        return crl_err_set(err, CRL_EUNSUPPORTED, "graph output '%s' is not FLOAT",
                           span_str(o->name, &nb));
    if (o->has_shape && o->ndims >= 1 && o->dims[o->ndims - 1] > 0 &&
        (size_t)o->dims[o->ndims - 1] != c->width)
        return crl_err_set(err, CRL_ESHAPE,
                           "graph output '%s' declares %lld values but the graph "
                           "computes %zu",
                           span_str(o->name, &nb), (long long)o->dims[o->ndims - 1], c->width);
    return CRL_OK;
}

static crl_status lower(onnx_model *m, crl_nn_graph_t **out, crl_err *err) {
    lower_ctx c;
    memset(&c, 0, sizeof(c));
    c.m = m;
    c.err = err;
    const onnx_value *in = NULL;
    crl_status st = find_input(m, &in, &c.width, err);
    if (st != CRL_OK) return st;
    c.cur = in->name;
    c.rank = in->ndims;
    st = crl_nn_graph_new(c.width, &c.g);
    if (st != CRL_OK) return crl_err_set(err, st, "cannot create a graph of width %zu", c.width);
    for (c.index = 0; c.index < m->n_nodes && st == CRL_OK; c.index++) {
        st = node_decode(m->nodes[c.index], &c.node, err);
        if (st != CRL_OK) {
            st = crl_err_prefix(err, st, "node #%zu", c.index);
            break;
        }
        st = lower_node(&c);
    }
    if (st == CRL_OK) st = check_output(&c, err);
    if (st == CRL_OK) st = crl_nn_graph_finish(c.g, err);
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
