/* openblas.c: the OpenBLAS yardstick. Per layer: y = bias (row broadcast), then cblas_sgemm
 * (row-major, x [rows][in] times W^T, beta 1), then ReLU in plain C or tanh from SLEEF's AVX-512
 * (or AVX2) vector functions, the same tanh carlarl's kernels use. Batch 1 uses cblas_sgemv,
 * which is faster than sgemm for one row. One thread (openblas_set_num_threads(1)); run.py sets
 * OPENBLAS_CORETYPE=SkylakeX on AVX-512 CPUs because OpenBLAS 0.3.21 takes Zen 5 for Haswell. */
#include "common.h"

#include <cblas.h>
#include <immintrin.h>
#include <sleef.h>

void openblas_set_num_threads(int num_threads);
char *openblas_get_corename(void);

typedef struct blas_ctx {
    const ys_model *m;
    float *buf[2]; /* ping-pong activations, [YS_MAX_ROWS][max width] */
} blas_ctx;

static void act_relu(float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

static void act_tanh(float *x, size_t n) {
    size_t i = 0;
#if defined(__AVX512F__)
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(x + i, Sleef_tanhf16_u10avx512f(_mm512_loadu_ps(x + i)));
    if (i < n) {
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(x + i, k, Sleef_tanhf16_u10avx512f(_mm512_maskz_loadu_ps(k, x + i)));
        i = n;
    }
#elif defined(__AVX2__)
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, Sleef_tanhf8_u10avx2(_mm256_loadu_ps(x + i)));
#endif
    for (; i < n; i++)
        x[i] = Sleef_tanhf_u10(x[i]);
}

static int forward(void *ctx, const float *x, size_t rows, float *y) {
    blas_ctx *c = ctx;
    const ys_model *m = c->m;
    const float *cur = x;
    for (uint32_t i = 0; i < m->n; i++) {
        const ys_layer *l = &m->l[i];
        float *dst = i + 1 == m->n ? y : c->buf[i & 1];
        if (rows == 1) {
            memcpy(dst, l->b, l->out * sizeof(float));
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)l->out, (int)l->in, 1.0f, l->w,
                        (int)l->in, cur, 1, 1.0f, dst, 1);
        } else {
            for (size_t r = 0; r < rows; r++)
                memcpy(dst + r * l->out, l->b, l->out * sizeof(float));
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)l->out, (int)l->in,
                        1.0f, cur, (int)l->in, l->w, (int)l->in, 1.0f, dst, (int)l->out);
        }
        if (l->act == YS_ACT_RELU) act_relu(dst, rows * l->out);
        if (l->act == YS_ACT_TANH) act_tanh(dst, rows * l->out);
        cur = dst;
    }
    return 0;
}

int main(int argc, char **argv) {
    ys_args a;
    ys_model m;
    int rc = ys_start_weights(argc, argv, "openblas", &a, &m);
    if (rc != 0) return rc;
    openblas_set_num_threads(1);
    printf("info openblas core %s, sgemv at batch 1, sgemm above, SLEEF tanh\n",
           openblas_get_corename());
    blas_ctx c = {.m = &m};
    for (int i = 0; i < 2; i++)
        c.buf[i] = ys_alloc(YS_MAX_ROWS * ys_max_width(&m) * sizeof(float));
    if (c.buf[0] == NULL || c.buf[1] == NULL) return 1;
    return ys_run_variant("openblas", &a, m.in_width, m.out_width, forward, &c) == 0 ? 0 : 1;
}
