/* bench/vmath.c: the kernel tables' vector math (src/kernels/vmath.h: erf, GELU, tanh,
 * LayerNormalization) against SLEEF's vector functions and the generic table, in one run, as ns
 * per vector of 16 floats and ratios. Each figure is the best of 50 stretches of 20 calls over 8192
 * floats (32 KB: L1). Build and run:
 *   cmake --build build --target bench_vmath && taskset -c 1 build/bench_vmath
 * On a CPU without AVX-512 the SLEEF rows are skipped (they call the AVX-512 functions). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sleef.h>

#include "core/time.h"
#include "hw/hw.h"
#include "kernels/kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define HAVE_SLEEF_AVX512 1
/* sleef.h declares its AVX-512 functions only when this file is compiled for AVX-512; it is not
 * (the generic rows must run anywhere), so they are declared here and called only on such CPUs. */
__m512 Sleef_erff16_u10avx512f(__m512 a);
__m512 Sleef_tanhf16_u35avx512f(__m512 a);
#endif

enum { N = 8192, ROUNDS = 50, CALLS = 20, M = 32 };

static float x[N], y[N], gam[M], bet[M];

static const crl_kernels_t *cur;

static void fill(void) {
    for (size_t i = 0; i < N; i++)
        x[i] = (float)((int)((i * 7919u) % 6001u) - 3000) / 1000.0f; /* [-3, 3] */
}

/* ns per 16 floats, best of ROUNDS. */
static double time_op(void (*op)(void)) {
    double best = 1e30;
    for (int r = 0; r < ROUNDS; r++) {
        fill();
        uint64_t t0 = crl_time_mono_ns();
        for (int c = 0; c < CALLS; c++)
            op();
        double ns = (double)(crl_time_mono_ns() - t0) / CALLS / (N / 16);
        if (ns < best) best = ns;
    }
    return best;
}

static void t_erf(void) {
    cur->erf ? cur->erf(x, N) : (void)0;
}
static void t_erf_libm(void) {
    for (size_t i = 0; i < N; i++)
        x[i] = erff(x[i]);
}
static void t_tanh(void) {
    cur->tanh(x, N);
}
static void t_gelu(void) {
    if (cur->gelu) cur->gelu(x, y, N, 1.41421354f);
}
static void t_layernorm(void) {
    if (cur->layernorm) cur->layernorm(x, N / M, M, gam, bet, 1e-5f, y);
}
#ifdef HAVE_SLEEF_AVX512
__attribute__((target("avx512f"))) static void t_sleef_erf(void) {
    for (size_t i = 0; i < N; i += 16)
        _mm512_storeu_ps(x + i, Sleef_erff16_u10avx512f(_mm512_loadu_ps(x + i)));
}
__attribute__((target("avx512f"))) static void t_sleef_tanh35(void) {
    for (size_t i = 0; i < N; i += 16)
        _mm512_storeu_ps(x + i, Sleef_tanhf16_u35avx512f(_mm512_loadu_ps(x + i)));
}
#endif

int main(void) {
    for (size_t i = 0; i < M; i++) {
        gam[i] = 1.0f + (float)i / M;
        bet[i] = (float)i / M - 0.5f;
    }
    unsigned isas = crl_kernels_isas_for(crl_hw_cpu_features());
    static const struct {
        const char *name;
        unsigned bit;
    } tables[] = {{"avx512", CRL_ISA_AVX512}, {"avx2", CRL_ISA_AVX2}, {"neon", CRL_ISA_NEON}};
    printf("%-22s %10s\n", "ns per 16 floats", "");
    cur = crl_kernels_generic();
    double libm_erf = time_op(t_erf_libm), libm_tanh = time_op(t_tanh);
    printf("%-22s %10.2f\n", "erf (libm erff)", libm_erf);
    printf("%-22s %10.2f\n", "tanh (libm tanhf)", libm_tanh);
    int sleef = 0;
#ifdef HAVE_SLEEF_AVX512
    sleef = (isas & CRL_ISA_AVX512) != 0;
    double s_erf = 0, s_tanh = 0;
    if (sleef) {
        s_erf = time_op(t_sleef_erf);
        s_tanh = time_op(t_sleef_tanh35);
        printf("%-22s %10.2f\n", "erf (SLEEF u10, 512)", s_erf);
        printf("%-22s %10.2f\n", "tanh (SLEEF u35, 512)", s_tanh);
    }
#endif
    for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++) {
        if (!(isas & tables[t].bit)) continue;
        const crl_kernels_t *k = crl_kernels_choose(isas, tables[t].name);
        if (k == NULL || strcmp(k->name, tables[t].name) != 0) continue;
        cur = k;
        double e = time_op(t_erf), th = time_op(t_tanh), g = time_op(t_gelu);
        double ln = time_op(t_layernorm);
        printf("%-22s %10.2f  (libm / this %.1fx", "erf (vmath.h)", e, libm_erf / e);
#ifdef HAVE_SLEEF_AVX512
        if (sleef && tables[t].bit == CRL_ISA_AVX512) printf(", SLEEF / this %.1fx", s_erf / e);
#endif
        printf(") [%s]\n", k->name);
        printf("%-22s %10.2f  (libm / this %.1fx", "tanh (vmath.h)", th, libm_tanh / th);
#ifdef HAVE_SLEEF_AVX512
        if (sleef && tables[t].bit == CRL_ISA_AVX512) printf(", SLEEF / this %.1fx", s_tanh / th);
#endif
        printf(") [%s]\n", k->name);
        printf("%-22s %10.2f  [%s]\n", "gelu (vmath.h)", g, k->name);
        printf("%-22s %10.2f  [%s] (rows of 32)\n", "layernorm (vmath.h)", ln, k->name);
    }
    (void)sleef;
    return 0;
}
