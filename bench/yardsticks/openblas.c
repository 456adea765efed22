/* openblas.c: the OpenBLAS yardstick: runs a zoo model's plan (onnx_weights.py) with OpenBLAS doing
 * the matrix work and SLEEF the transcendental functions.
 *   DENSE      y = bias (row broadcast), then cblas_sgemm (row-major, x [rows][in] times W^T,
 *              beta 1); at batch 1 cblas_sgemv, which is faster than sgemm for one row.
 *   CONV       per sample: im2col into [C*kh*kw][OH*OW], then cblas_sgemm W [M][C*kh*kw] times
 *              it into [M][OH*OW] (NCHW, bias pre-filled, beta 1): the classic Caffe lowering.
 *   LAYERNORM  plain C per row (mean, variance, scale and shift).
 *   activations: ReLU in plain C; tanh, sigmoid (via exp) and GELU (via erf) from SLEEF's AVX-512
 *              (or AVX2) vector functions, the same library carlarl's kernels use.
 * One thread (openblas_set_num_threads(1)); run.py sets OPENBLAS_CORETYPE=SkylakeX on AVX-512
 * CPUs because OpenBLAS 0.3.21 takes Zen 5 for Haswell. */
#include "common.h"

#include <cblas.h>
#include <immintrin.h>
#include <sleef.h>

void openblas_set_num_threads(int num_threads);
char *openblas_get_corename(void);

typedef struct blas_ctx {
    const ys_plan *p;
    float *buf[2]; /* ping-pong activations, [YS_MAX_ROWS][max width] */
    float *cols;   /* im2col scratch, [C*kh*kw][OH*OW] of the largest conv */
    int last_new;  /* index of the last op that writes a new tensor (it writes into y) */
} blas_ctx;

#if defined(__AVX512F__)
#define VW 16
typedef __m512 vf;
#define VLOAD(p) _mm512_loadu_ps(p)
#define VSTORE(p, v) _mm512_storeu_ps(p, v)
#define VSET1(x) _mm512_set1_ps(x)
#define VADD(a, b) _mm512_add_ps(a, b)
#define VMUL(a, b) _mm512_mul_ps(a, b)
#define VDIV(a, b) _mm512_div_ps(a, b)
#define VTANH(v) Sleef_tanhf16_u10avx512f(v)
#define VEXP(v) Sleef_expf16_u10avx512f(v)
#define VERF(v) Sleef_erff16_u10avx512f(v)
#elif defined(__AVX2__)
#define VW 8
typedef __m256 vf;
#define VLOAD(p) _mm256_loadu_ps(p)
#define VSTORE(p, v) _mm256_storeu_ps(p, v)
#define VSET1(x) _mm256_set1_ps(x)
#define VADD(a, b) _mm256_add_ps(a, b)
#define VMUL(a, b) _mm256_mul_ps(a, b)
#define VDIV(a, b) _mm256_div_ps(a, b)
#define VTANH(v) Sleef_tanhf8_u10avx2(v)
#define VEXP(v) Sleef_expf8_u10avx2(v)
#define VERF(v) Sleef_erff8_u10avx2(v)
#endif

static float s_act1(uint32_t act, float x) {
    switch (act) {
    case YS_ACT_RELU:
        return x > 0.0f ? x : 0.0f;
    case YS_ACT_TANH:
        return Sleef_tanhf_u10(x);
    case YS_ACT_SIGMOID:
        return 1.0f / (1.0f + Sleef_expf_u10(-x));
    case YS_ACT_GELU:
        return 0.5f * x * (1.0f + Sleef_erff_u10(x * 0.70710678118654752f));
    default:
        return x;
    }
}

static void act_apply(uint32_t act, float *x, size_t n) {
    size_t i = 0;
    if (act == YS_ACT_NONE) return;
    if (act == YS_ACT_RELU) {
        for (; i < n; i++)
            x[i] = x[i] > 0.0f ? x[i] : 0.0f;
        return;
    }
#ifdef VW
    const vf one = VSET1(1.0f), half = VSET1(0.5f), rsqrt2 = VSET1(0.70710678118654752f),
             neg = VSET1(-1.0f);
    for (; i + VW <= n; i += VW) {
        vf v = VLOAD(x + i);
        if (act == YS_ACT_TANH)
            v = VTANH(v);
        else if (act == YS_ACT_SIGMOID)
            v = VDIV(one, VADD(one, VEXP(VMUL(v, neg))));
        else
            v = VMUL(VMUL(half, v), VADD(one, VERF(VMUL(v, rsqrt2))));
        VSTORE(x + i, v);
    }
#endif
    for (; i < n; i++)
        x[i] = s_act1(act, x[i]);
}

static void dense(const ys_op *o, const float *x, float *y, size_t rows) {
    if (rows == 1) {
        memcpy(y, o->b, o->out * sizeof(float));
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)o->out, (int)o->in, 1.0f, o->wt, (int)o->in,
                    x, 1, 1.0f, y, 1);
    } else {
        for (size_t r = 0; r < rows; r++)
            memcpy(y + r * o->out, o->b, o->out * sizeof(float));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)o->out, (int)o->in,
                    1.0f, x, (int)o->in, o->wt, (int)o->in, 1.0f, y, (int)o->out);
    }
    act_apply(o->act, y, rows * o->out);
}

static void conv(const ys_op *o, const float *x, float *y, size_t rows, float *cols) {
    const size_t p = (size_t)o->oh * o->ow, k = (size_t)o->c * o->kh * o->kw;
    for (size_t r = 0; r < rows; r++) {
        const float *xs = x + r * o->in_w;
        float *ys = y + r * o->out_w;
        for (uint32_t c = 0; c < o->c; c++)
            for (uint32_t i = 0; i < o->kh; i++)
                for (uint32_t j = 0; j < o->kw; j++) {
                    float *dst = cols + (((size_t)c * o->kh + i) * o->kw + j) * p;
                    for (uint32_t oy = 0; oy < o->oh; oy++) {
                        long iy = (long)oy * o->sh + i - o->pt;
                        const float *src = xs + ((size_t)c * o->h + (size_t)iy) * o->w;
                        for (uint32_t ox = 0; ox < o->ow; ox++) {
                            long ix = (long)ox * o->sw + j - o->pl;
                            dst[oy * o->ow + ox] =
                                iy >= 0 && iy < (long)o->h && ix >= 0 && ix < (long)o->w ? src[ix]
                                                                                         : 0.0f;
                        }
                    }
                }
        for (uint32_t m = 0; m < o->m; m++)
            for (size_t q = 0; q < p; q++)
                ys[m * p + q] = o->b[m];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)o->m, (int)p, (int)k, 1.0f,
                    o->wt, (int)k, cols, (int)p, 1.0f, ys, (int)p);
    }
    act_apply(o->act, y, rows * o->out_w);
}

static void layernorm(const ys_op *o, const float *x, float *y, size_t rows) {
    const uint32_t n = o->in_w;
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * n;
        float *yr = y + r * n, s = 0.0f, v = 0.0f;
        for (uint32_t j = 0; j < n; j++)
            s += xr[j];
        float mean = s / (float)n;
        for (uint32_t j = 0; j < n; j++)
            v += (xr[j] - mean) * (xr[j] - mean);
        float rstd = 1.0f / sqrtf(v / (float)n + o->eps);
        for (uint32_t j = 0; j < n; j++)
            yr[j] = (xr[j] - mean) * rstd * o->gamma[j] + o->beta[j];
    }
    act_apply(o->act, y, rows * n);
}

static int forward(void *ctx, const float *x, size_t rows, float *y) {
    blas_ctx *c = ctx;
    const ys_plan *p = c->p;
    const float *cur = x;
    float *curw = NULL; /* cur, when it is ours to change in place */
    int flip = 0;
    for (uint32_t i = 0; i < p->n; i++) {
        const ys_op *o = &p->op[i];
        float *dst = (int)i == c->last_new ? y : c->buf[flip];
        switch (o->kind) {
        case YS_DENSE:
            dense(o, cur, dst, rows);
            break;
        case YS_CONV:
            conv(o, cur, dst, rows, c->cols);
            break;
        case YS_LAYERNORM:
            layernorm(o, cur, dst, rows);
            break;
        case YS_CONCAT_CONST:
            ys_concat_const(o, cur, dst, rows);
            break;
        case YS_DUELING:
            ys_dueling(o, cur, dst, rows);
            break;
        case YS_ACT:
        case YS_CLIP_COLS:
            if (curw == NULL) return -1; /* the plan never starts with an in-place op */
            if (o->kind == YS_ACT)
                act_apply(o->act, curw, rows * o->in_w);
            else
                ys_clip_cols(o, curw, rows);
            continue;
        default:
            return -1;
        }
        cur = curw = dst;
        flip ^= 1;
    }
    if (cur != y) return -1;
    return 0;
}

int main(int argc, char **argv) {
    ys_args a;
    static ys_plan p;
    int rc = ys_start_plan(argc, argv, "openblas", &a, &p);
    if (rc != 0) return rc;
    openblas_set_num_threads(1);
    printf("info openblas core %s, sgemv at batch 1, sgemm above, im2col+sgemm convs, SLEEF "
           "activations\n",
           openblas_get_corename());
    blas_ctx c = {.p = &p, .last_new = -1};
    size_t cols = 1;
    for (uint32_t i = 0; i < p.n; i++) {
        const ys_op *o = &p.op[i];
        if (o->kind != YS_ACT && o->kind != YS_CLIP_COLS) c.last_new = (int)i;
        if (o->kind == YS_CONV) {
            size_t n = (size_t)o->c * o->kh * o->kw * o->oh * o->ow;
            if (n > cols) cols = n;
        }
    }
    for (int i = 0; i < 2; i++)
        c.buf[i] = ys_alloc((size_t)YS_MAX_ROWS * p.max_width * sizeof(float));
    c.cols = ys_alloc(cols * sizeof(float));
    if (c.buf[0] == NULL || c.buf[1] == NULL || c.cols == NULL || c.last_new < 0) return 1;
    return ys_run_variant("openblas", &a, p.in_width, p.out_width, forward, &c) == 0 ? 0 : 1;
}
