/* movement.c: SLICE, GATHER and TRANSPOSE, the graph ops that only move data (movement.h). Shape
 * inference follows the ONNX operators they come from (Slice, Split, Gather, Transpose); the
 * batch axis is never sliced, gathered along or moved, so every batch row of the output is made
 * from the same row of the input and the executor's row-major layout holds. */
#include "nn/movement.h"

#include <stddef.h>
#include <string.h>

/* A whole slice of the batch axis: PyTorch writes `x[:]` as start 0, end INT64_MAX, step 1;
 * other exporters end at INT32_MAX. Both are "to the end" for any batch carlarl can run. */
#define MV_WHOLE_END ((int64_t)INT32_MAX)

static crl_status axis_of(int64_t axis, size_t rank, size_t *out, crl_err *err) {
    int64_t r = (int64_t)rank;
    if (axis < -r || axis >= r)
        return crl_err_set(err, CRL_ESHAPE, "axis %lld is outside a %zu-D value", (long long)axis,
                           rank);
    *out = (size_t)(axis < 0 ? axis + r : axis);
    return CRL_OK;
}

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi) {
    return v < lo ? lo : (v > hi ? hi : v);
}

/* ONNX Slice on one axis of size dim >= 1: normalizes *start and *step and returns the count. A
 * step longer than the axis takes at most one element, so it is shortened to dim, which keeps
 * every later product (and -step) far from overflowing. */
static size_t slice_axis(int64_t dim, int64_t *start, int64_t end, int64_t *step) {
    int64_t b = *start, e = end, st = clamp64(*step == 0 ? 1 : *step, -dim, dim);
    if (b < 0) b += dim; /* b >= INT64_MIN, dim > 0: no overflow */
    if (e < 0) e += dim;
    size_t cnt;
    if (st > 0) {
        b = clamp64(b, 0, dim);
        e = clamp64(e, 0, dim);
        cnt = e > b ? (size_t)((e - b + st - 1) / st) : 0;
    } else {
        b = clamp64(b, 0, dim - 1);
        e = clamp64(e, -1, dim - 1);
        cnt = b > e ? (size_t)((b - e - st - 1) / -st) : 0;
    }
    *start = b;
    *step = st;
    return cnt;
}

crl_status crl_nn__infer_slice(const crl_nn_shape *s, crl_nn_attrs *a, crl_nn_shape *o,
                               crl_err *err) {
    size_t r = s->rank, ax = 0;
    int64_t start[CRL_NN_MAX_RANK], step[CRL_NN_MAX_RANK];
    int seen[CRL_NN_MAX_RANK] = {0};
    if (r == 0) return crl_err_set(err, CRL_ESHAPE, "a scalar cannot be sliced");
    if (a->n_axes == 0 || a->n_axes > r)
        return crl_err_set(err, CRL_EINVAL, "a slice of a %zu-D value needs 1 to %zu axes, not %zu",
                           r, r, a->n_axes);
    *o = *s;
    for (size_t i = 0; i < r; i++) {
        start[i] = 0;
        step[i] = 1;
    }
    for (size_t k = 0; k < a->n_axes; k++) {
        crl_status st = axis_of(a->axes[k], r, &ax, err);
        if (st != CRL_OK) return st;
        if (seen[ax]) return crl_err_set(err, CRL_EINVAL, "axis %zu is sliced twice", ax);
        seen[ax] = 1;
        int64_t b = a->starts[k], e = a->ends[k], sp = a->steps[k] == 0 ? 1 : a->steps[k];
        if (ax == 0 && s->batched) {
            if (sp != 1 || (b != 0 && b > -MV_WHOLE_END) || e < MV_WHOLE_END)
                return crl_err_set(err, CRL_EUNSUPPORTED,
                                   "slicing the batch axis (axis 0) is not supported: only the "
                                   "whole of it (start 0, end INT64_MAX, step 1) can be taken, "
                                   "not [%lld:%lld:%lld]",
                                   (long long)b, (long long)e, (long long)sp);
            continue;
        }
        int64_t dim = (int64_t)s->d[ax];
        start[ax] = b;
        step[ax] = sp;
        o->d[ax] = slice_axis(dim, &start[ax], e, &step[ax]);
        if (o->d[ax] == 0)
            return crl_err_set(err, CRL_ESHAPE,
                               "the slice [%lld:%lld:%lld] of axis %zu (size %lld) is empty",
                               (long long)b, (long long)e, (long long)sp, ax, (long long)dim);
    }
    a->n_axes = r;
    for (size_t i = 0; i < r; i++) {
        a->axes[i] = (int64_t)i;
        a->starts[i] = start[i];
        a->steps[i] = step[i];
        a->ends[i] = start[i] + (int64_t)o->d[i] * step[i];
    }
    return CRL_OK;
}

crl_status crl_nn__infer_transpose(const crl_nn_shape *s, crl_nn_attrs *a, crl_nn_shape *o,
                                   crl_err *err) {
    size_t r = s->rank;
    int seen[CRL_NN_MAX_RANK] = {0};
    if (a->n_axes == 0) { /* ONNX's default: reverse the dims */
        for (size_t i = 0; i < r; i++)
            a->axes[i] = (int64_t)(r - 1 - i);
        a->n_axes = r;
    }
    if (a->n_axes != r)
        return crl_err_set(err, CRL_ESHAPE, "the permutation has %zu entries for a %zu-D value",
                           a->n_axes, r);
    *o = *s;
    for (size_t i = 0; i < r; i++) {
        int64_t p = a->axes[i];
        if (p < 0 || p >= (int64_t)r || seen[p])
            return crl_err_set(err, CRL_EINVAL,
                               "the permutation is not one of 0..%zu (entry %zu is %lld)", r - 1, i,
                               (long long)p);
        seen[p] = 1;
        o->d[i] = s->d[p];
    }
    if (s->batched && a->axes[0] != 0) {
        size_t to = 0;
        while (a->axes[to] != 0)
            to++;
        return crl_err_set(err, CRL_EUNSUPPORTED,
                           "the permutation moves the batch axis (axis 0) to position %zu; the "
                           "batch must stay the first dimension",
                           to);
    }
    return CRL_OK;
}

crl_status crl_nn__infer_gather(const crl_nn_shape *s, crl_nn_attrs *a, int64_t *ix, size_t n_ix,
                                crl_nn_shape *o, crl_err *err) {
    size_t r = s->rank, ax = 0, q = a->shape.rank, cnt = 1;
    if (r == 0) return crl_err_set(err, CRL_ESHAPE, "nothing can be gathered from a scalar");
    crl_status st = axis_of(a->axis, r, &ax, err);
    if (st != CRL_OK) return st;
    if (ax == 0 && s->batched)
        return crl_err_set(err, CRL_EUNSUPPORTED,
                           "gathering along the batch axis (axis 0) is not supported: each batch "
                           "row is its own observation");
    if (q > CRL_NN_MAX_RANK || r - 1 + q > CRL_NN_MAX_RANK)
        return crl_err_set(err, CRL_EUNSUPPORTED,
                           "the result would have %zu dimensions (at most %d are supported)",
                           r - 1 + q, CRL_NN_MAX_RANK);
    for (size_t i = 0; i < q; i++)
        cnt *= a->shape.d[i]; /* checked by the caller, which copied n_ix of them */
    if (cnt != n_ix || n_ix == 0)
        return crl_err_set(err, CRL_EINVAL, "%zu indices for an index shape of %zu", n_ix, cnt);
    int64_t dim = (int64_t)s->d[ax];
    for (size_t j = 0; j < n_ix; j++) {
        if (ix[j] < -dim || ix[j] >= dim)
            return crl_err_set(err, CRL_ESHAPE, "index %lld is outside axis %zu of size %lld",
                               (long long)ix[j], ax, (long long)dim);
        if (ix[j] < 0) ix[j] += dim;
    }
    a->axis = (int64_t)ax;
    *o = *s;
    o->rank = r - 1 + q;
    for (size_t i = 0; i < q; i++)
        o->d[ax + i] = a->shape.d[i];
    for (size_t i = ax + 1; i < r; i++)
        o->d[i - 1 + q] = s->d[i];
    return CRL_OK;
}

int crl_nn__moves_nothing(crl_nn_op op, const crl_nn_shape *s, const crl_nn_attrs *a,
                          const crl_nn_shape *o) {
    if (op == CRL_NN_SLICE) {
        for (size_t i = 0; i < s->rank; i++)
            if (a->starts[i] != 0 || o->d[i] != s->d[i]) return 0;
        return 1; /* start 0 and the whole axis: the step is 1, or the axis has size 1 */
    }
    if (op != CRL_NN_TRANSPOSE) return 0;
    /* Dims of size 1 can go anywhere; the others must keep their order. */
    int64_t last = -1;
    for (size_t i = 0; i < s->rank; i++) {
        int64_t p = a->axes[i];
        if (s->d[p] == 1 && !(p == 0 && s->batched)) continue;
        if (p < last) return 0;
        last = p;
    }
    return 1;
}

/* y (row-major, dims od[r]) from x at base + sum idx[i] * st[i] (strides in floats, may be
 * negative). The last axis is the inner loop; the others are walked with an index vector. */
static void walk(const float *x, ptrdiff_t base, const ptrdiff_t *st, const size_t *od, size_t r,
                 float *y) {
    if (r == 0) {
        y[0] = x[base];
        return;
    }
    size_t idx[CRL_NN_MAX_RANK] = {0}, inner = od[r - 1], outer = 1;
    for (size_t i = 0; i + 1 < r; i++)
        outer *= od[i];
    ptrdiff_t is = st[r - 1];
    for (size_t o = 0; o < outer; o++) {
        ptrdiff_t off = base;
        for (size_t i = 0; i + 1 < r; i++)
            off += (ptrdiff_t)idx[i] * st[i];
        const float *xs = x + off;
        float *ys = y + o * inner;
        if (is == 1) {
            memcpy(ys, xs, inner * sizeof(float));
        } else {
            for (size_t j = 0; j < inner; j++)
                ys[j] = xs[(ptrdiff_t)j * is];
        }
        for (size_t i = r - 1; i-- > 0;) { /* next outer index */
            if (++idx[i] < od[i]) break;
            idx[i] = 0;
        }
    }
}

void crl_nn__run_slice(const crl_nn_attrs *a, const float *x, const size_t *d, size_t r,
                       const size_t *od, float *y) {
    ptrdiff_t st[CRL_NN_MAX_RANK], base = 0, s = 1;
    for (size_t i = r; i-- > 0;) {
        st[i] = s * (ptrdiff_t)a->steps[i];
        base += s * (ptrdiff_t)a->starts[i];
        s *= (ptrdiff_t)d[i];
    }
    walk(x, base, st, od, r, y);
}

void crl_nn__run_transpose(const crl_nn_attrs *a, const float *x, const size_t *d, size_t r,
                           float *y) {
    ptrdiff_t ist[CRL_NN_MAX_RANK], st[CRL_NN_MAX_RANK], s = 1;
    size_t od[CRL_NN_MAX_RANK];
    for (size_t i = r; i-- > 0;) {
        ist[i] = s;
        s *= (ptrdiff_t)d[i];
    }
    for (size_t i = 0; i < r; i++) {
        od[i] = d[a->axes[i]];
        st[i] = ist[a->axes[i]];
    }
    walk(x, 0, st, od, r, y);
}

void crl_nn__run_gather(const crl_nn_attrs *a, const int64_t *ix, size_t n_ix, const float *x,
                        const size_t *d, size_t r, float *y) {
    size_t ax = (size_t)a->axis, outer = 1, inner = 1, dim = d[ax];
    for (size_t i = 0; i < ax; i++)
        outer *= d[i];
    for (size_t i = ax + 1; i < r; i++)
        inner *= d[i];
    for (size_t o = 0; o < outer; o++)
        for (size_t j = 0; j < n_ix; j++)
            memcpy(y + (o * n_ix + j) * inner, x + (o * dim + (size_t)ix[j]) * inner,
                   inner * sizeof(float));
}
