/* test_kernels_isa.c: every ISA kernel table built into this binary and runnable on this CPU
 * (avx2, avx512 on x86_64; neon on aarch64, run under qemu by the aarch64 ctest) against the
 * generic reference: linear on many shapes (both of its internal paths, odd tails, several input
 * chunks and output panels), unaligned rows and outputs, nothing written outside the output, and
 * the same bits for a row alone or in a batch; weights packed at load time (pack / linear_packed)
 * give exactly linear's bits, and so does the implicit GEMM over gathered rows
 * (linear_packed_gather); the elementwise kernels bit for bit on lengths 0..67 with special values,
 * except tanh and sigmoid (vmath.h, SLEEF), which must stay within 2e-7 of libm for |x| <= 20 and
 * match it exactly on NaN, +-0 and +-inf; erf within 2 ulp of libm's; gelu exactly the exported
 * chain's operations; layernorm against a double reference, row by row the same bits in any batch.
 * A table the CPU lacks is reported as skipped, not passed silently. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#if defined(__aarch64__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

#include "isa.h"
#include "kernels/kernels.h"

#define GUARD 16
#define SENTINEL 1234.5f

/* A fixed pseudo-random sequence, so failures reproduce. */
static uint32_t rng_state = 987654321u;
static uint32_t rnd_u32(void) {
    rng_state = rng_state * 1664525u + 1013904223u;
    return rng_state;
}
static float rnd(void) {
    return (float)((rnd_u32() >> 8) & 0xffff) / 16384.0f - 2.0f;
}
static size_t rnd_range(size_t lo, size_t hi) {
    return lo + (size_t)(rnd_u32() >> 8) % (hi - lo + 1);
}

/* Whether this CPU (and OS) can run the table; __builtin_cpu_supports checks XGETBV too. Asked
 * here independently of hw/, which kernels.c relies on. */
static int cpu_runs(const char *name) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (strcmp(name, "avx2") == 0)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (strcmp(name, "avx512") == 0)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("fma");
#elif defined(__aarch64__)
    if (strcmp(name, "neon") == 0) return (getauxval(AT_HWCAP) & HWCAP_ASIMD) != 0;
#endif
    (void)name;
    return 0;
}

static const char *const isa_names[] = {"avx2", "avx512", "neon"};
#define N_ISAS (sizeof(isa_names) / sizeof(isa_names[0]))

/* The table, or NULL (with a note) when it is not built in or this CPU cannot run it. */
static const crl_kernels_t *isa_table(const char *name) {
    if (crl_test_isa_env() != NULL && !crl_test_covers(name)) return NULL; /* another run's */
    const crl_kernels_t *k = crl_kernels_by_name(name);
    if (k == NULL) {
        print_message("[  SKIP    ] %s: not built into this binary\n", name);
        return NULL;
    }
    assert_string_equal(k->name, name);
    if (!cpu_runs(name)) {
        print_message("[  SKIP    ] %s: this CPU cannot run it\n", name);
        return NULL;
    }
    print_message("[  TABLE   ] %s\n", name);
    return k;
}

/* A heap block of n floats starting `offset` floats into the allocation (so offset 1 gives rows
 * that are not 16-byte aligned), filled with random values. */
static float *rnd_block(size_t n, size_t offset, float **base) {
    *base = malloc((n + offset + 1) * sizeof(float));
    assert_non_null(*base);
    for (size_t i = 0; i < n + offset + 1; i++)
        (*base)[i] = rnd();
    return *base + offset;
}

/* Output buffer with GUARD sentinels on both sides of rows*out floats at float offset `offset`. */
static float *guarded(size_t n, size_t offset, float **base) {
    *base = malloc((n + offset + 2 * GUARD) * sizeof(float));
    assert_non_null(*base);
    for (size_t i = 0; i < n + offset + 2 * GUARD; i++)
        (*base)[i] = SENTINEL;
    return *base + GUARD + offset;
}

static void check_guards(const float *y, size_t n, const char *what) {
    for (size_t g = 1; g <= GUARD; g++)
        if (y[-(ptrdiff_t)g] != SENTINEL)
            fail_msg("%s wrote %zu floats before its output", what, g);
    for (size_t g = 0; g < GUARD; g++)
        if (y[n + g] != SENTINEL) fail_msg("%s wrote past its output (index %zu)", what, n + g);
}

static void check_linear(const crl_kernels_t *k, size_t rows, size_t in, size_t out, int bias,
                         size_t offset) {
    float *xb, *wb, *bb, *yb, *rb;
    const float *x = rnd_block(rows * in, offset, &xb);
    const float *w = rnd_block(out * in, offset, &wb);
    const float *b = bias ? rnd_block(out, offset, &bb) : (bb = NULL, NULL);
    float *y = guarded(rows * out, offset, &yb);
    float *ref = guarded(rows * out, 0, &rb);
    crl_kernels_generic()->linear(x, rows, in, w, b, out, ref);
    k->linear(x, rows, in, w, b, out, y);
    char what[128];
    snprintf(what, sizeof(what), "%s linear rows=%zu in=%zu out=%zu bias=%d offset=%zu", k->name,
             rows, in, out, bias, offset);
    check_guards(y, rows * out, what);
    for (size_t r = 0; r < rows; r++)
        for (size_t o = 0; o < out; o++) {
            /* Only reassociation is allowed: bound the difference by the terms' magnitudes. */
            double mag = b ? fabs((double)b[o]) : 0.0;
            for (size_t i = 0; i < in; i++)
                mag += fabs((double)x[r * in + i] * (double)w[o * in + i]);
            double got = y[r * out + o], want = ref[r * out + o];
            if (!(fabs(got - want) <= 1e-5 * mag + 1e-30))
                fail_msg("%s: y[%zu][%zu] = %.9g, generic %.9g", what, r, o, got, want);
        }
    free(xb);
    free(wb);
    free(bb);
    free(yb);
    free(rb);
}

static void test_linear_matches_generic(void **state) {
    (void)state;
    /* The model's layers, both sides of every vector width, panel and chunk boundary (16/64
     * outputs and 64 inputs for avx512, 8/16 outputs and 256 inputs for avx2, 4/8/16 outputs and
     * 16 inputs for neon), and tiny ones. */
    static const size_t fixed[][2] = {
        {5, 64},  {64, 64}, {64, 3},  {1, 1},    {1, 130}, {130, 1},   {130, 130}, {3, 5},
        {16, 16}, {17, 15}, {15, 17}, {8, 8},    {7, 9},   {9, 7},     {65, 63},   {63, 65},
        {64, 16}, {2, 129}, {33, 31}, {300, 20}, {257, 9}, {128, 100}, {5, 3},     {64, 1},
    };
    static const size_t row_counts[] = {1, 2, 7, 33, 1000};
    size_t ran = 0;
    for (size_t t = 0; t < N_ISAS; t++) {
        const crl_kernels_t *k = isa_table(isa_names[t]);
        if (k == NULL) continue;
        for (size_t rc = 0; rc < sizeof(row_counts) / sizeof(row_counts[0]); rc++) {
            size_t rows = row_counts[rc];
            for (size_t s = 0; s < sizeof(fixed) / sizeof(fixed[0]); s++) {
                if (rows == 1000 && fixed[s][0] * fixed[s][1] > 20000) continue; /* time */
                for (int bias = 0; bias < 2; bias++)
                    check_linear(k, rows, fixed[s][0], fixed[s][1], bias, (size_t)bias);
            }
            for (int s = 0; s < 12; s++) /* random shapes, every (bias, offset) combination */
                check_linear(k, rows, rnd_range(1, 130), rnd_range(1, 130), s & 1, (s >> 1) & 1);
        }
        /* in = 0: the output is the bias (or zeros). */
        check_linear(k, 3, 0, 5, 1, 1);
        check_linear(k, 9, 0, 17, 0, 0);
        ran++;
    }
    if (ran == 0) print_message("[  SKIP    ] no ISA table runs here; generic only\n");
}

static void test_linear_zero_rows_or_outputs(void **state) {
    (void)state;
    for (size_t t = 0; t < N_ISAS; t++) {
        const crl_kernels_t *k = isa_table(isa_names[t]);
        if (k == NULL) continue;
        float v[4] = {1, 2, 3, 4}, y[2] = {SENTINEL, SENTINEL};
        k->linear(v, 0, 2, v, v, 2, y);
        k->linear(v, 2, 2, v, v, 0, y);
        assert_true(y[0] == SENTINEL && y[1] == SENTINEL);
    }
}

/* A row's outputs must be the same bits whether it runs alone or with others: the dynamic
 * batcher mixes rows of unrelated requests, and each request's answer must not depend on them. */
static void test_linear_batch_invariant(void **state) {
    (void)state;
    static const size_t shapes[][2] = {{5, 64},  {64, 64},  {64, 3},  {17, 15}, {130, 130},
                                       {3, 5},   {300, 20}, {16, 17}, {1, 1},   {7, 9},
                                       {256, 3}, {257, 2},  {32, 3}};
    static const size_t chunks[] = {1, 2, 3, 5, 7, 16, 33};
    enum { ROWS = 200 };
    for (size_t t = 0; t < N_ISAS + 1; t++) {
        const crl_kernels_t *k = t < N_ISAS ? isa_table(isa_names[t]) : crl_kernels_generic();
        if (k == NULL) continue;
        for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
            size_t in = shapes[s][0], out = shapes[s][1];
            float *xb, *wb, *bb;
            const float *x = rnd_block(ROWS * in, 0, &xb), *w = rnd_block(out * in, 0, &wb);
            const float *b = rnd_block(out, 0, &bb);
            float *all = malloc(ROWS * out * sizeof(float)),
                  *part = malloc(ROWS * out * sizeof(float));
            assert_non_null(all);
            assert_non_null(part);
            k->linear(x, ROWS, in, w, b, out, all);
            for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
                for (size_t r = 0; r < ROWS; r += chunks[c]) {
                    size_t n = ROWS - r < chunks[c] ? ROWS - r : chunks[c];
                    k->linear(x + r * in, n, in, w, b, out, part + r * out);
                }
                if (memcmp(all, part, ROWS * out * sizeof(float)) != 0)
                    fail_msg("%s linear %zux%zu: rows run %zu at a time differ from one batch of "
                             "%d",
                             k->name, in, out, chunks[c], ROWS);
            }
            free(xb);
            free(wb);
            free(bb);
            free(all);
            free(part);
        }
    }
}

/* Inputs for the elementwise ops: random values in [-6, 6) with special ones sprinkled in. */
static void fill_special(float *v, size_t n) {
    static const float specials[] = {0.0f,  -0.0f,  NAN,    INFINITY, -INFINITY, 100.0f, -100.0f,
                                     1e30f, -1e30f, 1e-40f, -1e-40f,  0.75f,     -1.5f,  20.0f};
    for (size_t i = 0; i < n; i++)
        v[i] = (rnd_u32() >> 29) == 0 /* high bits: an LCG's low bits have short periods */
                   ? specials[(rnd_u32() >> 8) % (sizeof(specials) / sizeof(specials[0]))]
                   : rnd() * 3.0f;
}

/* Bit-for-bit equality (NaN payloads included: every op here passes its input NaN through). */
static void assert_same_bits(const float *got, const float *want, size_t n, const char *what,
                             size_t len) {
    if (memcmp(got, want, n * sizeof(float)) != 0)
        for (size_t i = 0; i < n; i++) {
            uint32_t a, b;
            memcpy(&a, &got[i], 4);
            memcpy(&b, &want[i], 4);
            if (a != b)
                fail_msg("%s (n=%zu): [%zu] = %.9g (0x%08x), generic %.9g (0x%08x)", what, len, i,
                         (double)got[i], a, (double)want[i], b);
        }
}

/* An output of n floats: nothing written around it (check_guards), and want's bits in it. */
static void assert_output(const float *y, const float *want, size_t n, const char *what) {
    check_guards(y, n, what);
    assert_same_bits(y, want, n, what, n);
}

/* The SLEEF functions: within ACT_TOL of libm, and the same bits for NaN (the input's own), +-0
 * and +-inf inputs. */
#define ACT_TOL 2e-7
static void assert_close_or_same_special(const float *got, const float *src, const float *want,
                                         size_t n, const char *what) {
    for (size_t i = 0; i < n; i++) {
        int special = isnan(src[i]) || isinf(src[i]) || src[i] == 0.0f;
        uint32_t a, b;
        memcpy(&a, &got[i], 4);
        memcpy(&b, &want[i], 4);
        if (special ? a != b : !(fabs((double)got[i] - (double)want[i]) <= ACT_TOL))
            fail_msg("%s: f(%.9g) = %.9g (0x%08x), libm %.9g (0x%08x)", what, (double)src[i],
                     (double)got[i], a, (double)want[i], b);
    }
}

enum { OP_RELU, OP_TANH, OP_SIGMOID, OP_CLIP, OP_CLIP_INVERTED, OP_SCALE, N_OPS };

static void apply(const crl_kernels_t *k, int op, float *v, size_t n) {
    switch (op) {
    case OP_RELU:
        k->relu(v, n);
        break;
    case OP_TANH:
        k->tanh(v, n);
        break;
    case OP_SIGMOID:
        k->sigmoid(v, n);
        break;
    case OP_CLIP:
        k->clip(v, n, -1.5f, 0.75f);
        break;
    case OP_CLIP_INVERTED: /* lo > hi: "v < lo" wins, as in generic */
        k->clip(v, n, 1.0f, -1.0f);
        break;
    case OP_SCALE:
        k->scale(v, n, -0.3f);
        break;
    }
}

static void test_elementwise_match_generic(void **state) {
    (void)state;
    static const char *const op_names[N_OPS] = {"relu", "tanh",        "sigmoid",
                                                "clip", "clip(lo>hi)", "scale"};
    enum { MAXN = 67 };
    for (size_t t = 0; t < N_ISAS; t++) {
        const crl_kernels_t *k = isa_table(isa_names[t]);
        if (k == NULL) continue;
        for (int op = 0; op < N_OPS; op++)
            for (size_t n = 0; n <= MAXN; n++)
                for (size_t off = 0; off < 2; off++) {
                    float src[MAXN], want[MAXN], gotb[MAXN + 1 + 2 * GUARD];
                    fill_special(src, n);
                    memcpy(want, src, n * sizeof(float));
                    apply(crl_kernels_generic(), op, want, n);
                    for (size_t i = 0; i < sizeof(gotb) / sizeof(gotb[0]); i++)
                        gotb[i] = SENTINEL;
                    float *got = gotb + GUARD + off;
                    memcpy(got, src, n * sizeof(float));
                    apply(k, op, got, n);
                    char what[64];
                    snprintf(what, sizeof(what), "%s %s", k->name, op_names[op]);
                    check_guards(got, n, what);
                    if (op == OP_TANH || op == OP_SIGMOID)
                        assert_close_or_same_special(got, src, want, n, what);
                    else
                        assert_same_bits(got, want, n, what, n);
                }
    }
}

static void test_add_row_matches_generic(void **state) {
    (void)state;
    static const size_t row_counts[] = {0, 1, 2, 7, 33};
    enum { MAXC = 67, MAXR = 33 };
    for (size_t t = 0; t < N_ISAS; t++) {
        const crl_kernels_t *k = isa_table(isa_names[t]);
        if (k == NULL) continue;
        for (size_t rc = 0; rc < sizeof(row_counts) / sizeof(row_counts[0]); rc++)
            for (size_t cols = 0; cols <= MAXC; cols++) {
                size_t rows = row_counts[rc], n = rows * cols, off = cols & 1;
                static float src[MAXR * MAXC], want[MAXR * MAXC], bias[MAXC + 1];
                static float gotb[MAXR * MAXC + 1 + 2 * GUARD];
                fill_special(src, n);
                fill_special(bias, cols + 1);
                const float *b = bias + off; /* unaligned bias rows too */
                memcpy(want, src, n * sizeof(float));
                crl_kernels_generic()->add_row(want, rows, cols, b);
                for (size_t i = 0; i < sizeof(gotb) / sizeof(gotb[0]); i++)
                    gotb[i] = SENTINEL;
                float *got = gotb + GUARD + off;
                memcpy(got, src, n * sizeof(float));
                k->add_row(got, rows, cols, b);
                char what[64];
                snprintf(what, sizeof(what), "%s add_row rows=%zu cols=%zu", k->name, rows, cols);
                check_guards(got, n, what);
                /* NaN + NaN may keep either payload; compare those as "both NaN". */
                for (size_t i = 0; i < n; i++)
                    if (isnan(got[i]) && isnan(want[i])) got[i] = want[i];
                assert_same_bits(got, want, n, what, n);
            }
    }
}

/* Every float of [-20, 20] at a fine step (and every 97th float bit pattern in that range's
 * magnitude, both signs), in vectors of 16 so each lane position sees them: tanh and sigmoid
 * within ACT_TOL of libm. Outside [-20, 20] both saturate; the specials below cover that. */
/* The optional vector exp (SLEEF) and erf (vmath.h) against libm: exp within 2 ulp-ish relative
 * (2.4e-7) over [-87, 88], erf within 2.4e-7 absolute over [-6, 6]; a NaN comes back as itself,
 * +-inf and +-0 as libm gives them; every tail length, nothing written past n. generic has
 * neither. */
static void test_sleef_exp_erf(void **state) {
    (void)state;
    assert_null(crl_kernels_generic()->exp);
    assert_null(crl_kernels_generic()->erf);
    enum { N = 1 << 14 };
    static float v[N + 1];
    for (size_t t = 0; t < N_ISAS; t++) {
        const crl_kernels_t *k = isa_table(isa_names[t]);
        if (k == NULL) continue;
        assert_non_null(k->exp);
        assert_non_null(k->erf);
        for (int op = 0; op < 2; op++) {
            double lo = op == 0 ? -87.0 : -6.0, hi = op == 0 ? 88.0 : 6.0, worst = 0;
            for (size_t i = 0; i < N; i++)
                v[i] = (float)(lo + (hi - lo) * (double)i / (double)(N - 1));
            v[N] = SENTINEL;
            (op == 0 ? k->exp : k->erf)(v, N);
            assert_true(v[N] == SENTINEL);
            for (size_t i = 0; i < N; i++) {
                float x = (float)(lo + (hi - lo) * (double)i / (double)(N - 1));
                double want = op == 0 ? (double)expf(x) : (double)erff(x);
                double d = fabs((double)v[i] - want);
                double tol = op == 0 ? 2.4e-7 * fabs(want) : 2.4e-7;
                double e = op == 0 ? d / fabs(want) : d;
                if (e > worst) worst = e;
                if (!(d <= tol))
                    fail_msg("%s %s(%.9g) = %.9g, libm %.9g", k->name, op == 0 ? "exp" : "erf",
                             (double)x, (double)v[i], want);
            }
            print_message("[  INFO    ] %s %s: max %s = %.3g\n", k->name, op == 0 ? "exp" : "erf",
                          op == 0 ? "|sleef - libm| / |libm|" : "|sleef - libm|", worst);
        }
        uint32_t nan_payload = 0x7fc01234u;
        float nan1;
        memcpy(&nan1, &nan_payload, 4);
        const float in[] = {0.0f, -0.0f, INFINITY, -INFINITY, nan1, 1.0f, -1.0f, 10.0f, -10.0f};
        enum { NS = sizeof(in) / sizeof(in[0]) };
        for (size_t len = 1; len <= NS; len++) {
            float e[NS + 1], f[NS + 1];
            memcpy(e, in, sizeof(in));
            memcpy(f, in, sizeof(in));
            e[len] = f[len] = SENTINEL;
            k->exp(e, len);
            k->erf(f, len);
            assert_true(e[len] == SENTINEL && f[len] == SENTINEL);
            for (size_t i = 0; i < len; i++) {
                float we = expf(in[i]), wf = erff(in[i]);
                if (isnan(in[i])) {
                    assert_memory_equal(&e[i], &in[i], 4);
                    assert_memory_equal(&f[i], &in[i], 4);
                } else {
                    assert_true(fabsf(e[i] - we) <= 2.4e-7f * fabsf(we) || e[i] == we);
                    assert_true(fabsf(f[i] - wf) <= 2.4e-7f);
                }
            }
        }
    }
}

/* erf to within 2 ulp of libm's erff (and 1.2e-7 absolute) over every magnitude: 100,000 points
 * of [-4.5, 4.5] and 2,000 tiny ones per sign from 1e-38 up, where only a relative bound shows a
 * formula that loses the small values. */
static void test_erf_ulp(void **state) {
    (void)state;
    enum { N = 100000, T = 2000 };
    static float v[N + 2 * T];
    for (size_t t = 0; t < N_ISAS; t++) {
        const crl_kernels_t *k = isa_table(isa_names[t]);
        if (k == NULL) continue;
        for (size_t i = 0; i < N; i++)
            v[i] = (float)(-4.5 + 9.0 * (double)i / (double)(N - 1));
        for (size_t i = 0; i < T; i++) {
            v[N + i] = (float)pow(10.0, -38.0 + 38.0 * (double)i / (double)T);
            v[N + T + i] = -v[N + i];
        }
        static float in[N + 2 * T];
        memcpy(in, v, sizeof(v));
        k->erf(v, N + 2 * T);
        double worst = 0;
        for (size_t i = 0; i < N + 2 * T; i++) {
            float want = erff(in[i]);
            double ulp = (double)nextafterf(fabsf(want), INFINITY) - (double)fabsf(want);
            double e = fabs((double)v[i] - (double)want) / ulp;
            if (e > worst) worst = e;
            if (!(e <= 2.0 && fabs((double)v[i] - (double)want) <= 1.2e-7))
                fail_msg("%s erf(%.9g) = %.9g, libm %.9g (%.2f ulp)", k->name, (double)in[i],
                         (double)v[i], (double)want, e);
        }
        print_message("[  INFO    ] %s erf: max %.2f ulp from libm\n", k->name, worst);
    }
}

/* gelu(x, y, n, c) gives the bits of the chain it replaces, t = x / c, the table's erf(t),
 * (x * (t + 1)) * 0.5, for every length and tail, in place or not, writing nothing past n. */
static void test_gelu_is_the_chain(void **state) {
    (void)state;
    enum { MAXN = 70 };
    const float cs[] = {1.41421354f, 1.0f, 0.5f};
    for (size_t t = 0; t < N_ISAS; t++) {
        const crl_kernels_t *k = isa_table(isa_names[t]);
        if (k == NULL) continue;
        assert_non_null(k->gelu);
        for (size_t ci = 0; ci < sizeof(cs) / sizeof(cs[0]); ci++)
            for (size_t n = 0; n <= MAXN; n++) {
                float x[MAXN + 1], y[MAXN + 1], want[MAXN], tt[MAXN];
                fill_special(x, n);
                for (size_t i = 0; i < n; i++)
                    tt[i] = x[i] / cs[ci];
                k->erf(tt, n);
                for (size_t i = 0; i < n; i++)
                    want[i] = (x[i] * (tt[i] + 1.0f)) * 0.5f;
                y[n] = SENTINEL;
                k->gelu(x, y, n, cs[ci]);
                assert_true(y[n] == SENTINEL);
                assert_same_bits(y, want, n, "gelu", n);
                x[n] = SENTINEL;
                k->gelu(x, x, n, cs[ci]); /* in place */
                assert_true(x[n] == SENTINEL);
                assert_same_bits(x, want, n, "gelu in place", n);
            }
    }
}

/* layernorm against statistics in double: every row within 2e-6 relative of the exact answer
 * plus the centring's float rounding (torch computes in float too); a row's bits do not depend on
 * the rows around it; nothing is written past the rows. Widths cover tails, one vector, several,
 * and width 1. */
static void test_layernorm(void **state) {
    (void)state;
    static const size_t widths[] = {1, 3, 8, 16, 17, 32, 33, 100, 257};
    enum { ROWS = 37 };
    for (size_t t = 0; t < N_ISAS; t++) {
        const crl_kernels_t *k = isa_table(isa_names[t]);
        if (k == NULL) continue;
        assert_non_null(k->layernorm);
        for (size_t wi = 0; wi < sizeof(widths) / sizeof(widths[0]); wi++) {
            size_t m = widths[wi];
            float *x = malloc(ROWS * m * sizeof(float)),
                  *y = malloc((ROWS * m + 1) * sizeof(float));
            float *one = malloc((m + 1) * sizeof(float)), *g = malloc(m * sizeof(float));
            float *b = malloc(m * sizeof(float));
            assert_true(x && y && one && g && b);
            for (size_t i = 0; i < ROWS * m; i++) /* rows with an offset: the mean matters */
                x[i] = rnd() + (float)(i / m % 5) * 10.0f;
            for (size_t i = 0; i < m; i++) {
                g[i] = rnd();
                b[i] = rnd();
            }
            const float eps = 1e-5f;
            y[ROWS * m] = SENTINEL;
            k->layernorm(x, ROWS, m, g, b, eps, y);
            assert_true(y[ROWS * m] == SENTINEL);
            for (size_t r = 0; r < ROWS; r++) {
                const float *xr = x + r * m;
                double mean = 0, var = 0;
                for (size_t i = 0; i < m; i++)
                    mean += xr[i];
                mean /= (double)m;
                for (size_t i = 0; i < m; i++)
                    var += (xr[i] - mean) * (xr[i] - mean);
                var /= (double)m;
                /* Centering in float (torch's and generic's way too) is off by up to half an
                 * ulp of the mean, which the normalization scales by |g| / std. */
                double sd = sqrt(var + eps), centring = 1.2e-7 * fabs(mean) / sd;
                for (size_t i = 0; i < m; i++) {
                    double want = (xr[i] - mean) / sd * g[i] + b[i];
                    double got = y[r * m + i];
                    double tol = 2e-6 * (1.0 + fabs(want)) + centring * fabs(g[i]);
                    if (!(fabs(got - want) <= tol))
                        fail_msg("%s layernorm m=%zu row %zu [%zu] = %.9g, want %.9g", k->name, m,
                                 r, i, got, want);
                }
                one[m] = SENTINEL;
                k->layernorm(xr, 1, m, g, b, eps, one);
                assert_true(one[m] == SENTINEL);
                if (memcmp(one, y + r * m, m * sizeof(float)) != 0)
                    fail_msg("%s layernorm m=%zu: row %zu alone differs from it in a batch",
                             k->name, m, r);
            }
            free(x);
            free(y);
            free(one);
            free(g);
            free(b);
        }
    }
}

static void test_sleef_activations_accuracy(void **state) {
    (void)state;
    enum { N = 1 << 16 };
    static float src[N], got[N], want[N];
    size_t ran = 0;
    for (size_t t = 0; t < N_ISAS; t++) {
        const crl_kernels_t *k = isa_table(isa_names[t]);
        if (k == NULL) continue;
        for (int op = OP_TANH; op <= OP_SIGMOID; op++) {
            double worst = 0;
            uint32_t bits = 0;
            for (int pass = 0; pass < 2 * 64; pass++) {
                for (size_t i = 0; i < N; i++) {
                    if (pass < 2) { /* an even grid */
                        src[i] = -20.0f + 40.0f * (float)i / (float)(N - 1);
                        if (pass == 1) src[i] += 40.0f / (float)(N - 1) / 3.0f;
                    } else { /* float bit patterns, both signs, up to |x| = 20 */
                        float v;
                        bits = (bits + 97u * 1031u) % 0x41a00001u;
                        memcpy(&v, &bits, 4);
                        src[i] = (i & 1) ? -v : v;
                    }
                }
                memcpy(want, src, sizeof(src));
                memcpy(got, src, sizeof(src));
                apply(crl_kernels_generic(), op, want, N);
                apply(k, op, got, N);
                for (size_t i = 0; i < N; i++) {
                    double d = fabs((double)got[i] - (double)want[i]);
                    if (d > worst) worst = d;
                    if (!(d <= ACT_TOL))
                        fail_msg("%s %s(%.9g) = %.9g, libm %.9g", k->name,
                                 op == OP_TANH ? "tanh" : "sigmoid", (double)src[i], (double)got[i],
                                 (double)want[i]);
                }
            }
            print_message("[  INFO    ] %s %s: max |sleef - libm| = %.3g\n", k->name,
                          op == OP_TANH ? "tanh" : "sigmoid", worst);
        }
        /* Special values, bit for bit: what SLEEF (with the NaN pass-through) returns. */
        uint32_t nan_payload = 0x7fc01234u, neg_nan = 0xffa00001u; /* a quiet and a signalling */
        float nan1, nan2;
        memcpy(&nan1, &nan_payload, 4);
        memcpy(&nan2, &neg_nan, 4);
        const float in[] = {0.0f,  -0.0f,  INFINITY, -INFINITY, nan1,  nan2,   100.0f, -100.0f,
                            1e30f, -1e30f, 20.0f,    -20.0f,    88.0f, -88.0f, 89.0f,  -104.0f};
        const float tanh_want[] = {0.0f, -0.0f, 1.0f, -1.0f, nan1, nan2,  1.0f, -1.0f,
                                   1.0f, -1.0f, 1.0f, -1.0f, 1.0f, -1.0f, 1.0f, -1.0f};
        const float sig_want[] = {0.5f, 0.5f, 1.0f, 0.0f, nan1, nan2, 1.0f, 0.0f,
                                  1.0f, 0.0f, 1.0f, 0.0f, 1.0f, 0.0f, 1.0f, 0.0f};
        enum { NS = sizeof(in) / sizeof(in[0]) };
        for (size_t len = 1; len <= NS; len++) { /* every tail length */
            float v[NS];
            memcpy(v, in, sizeof(v));
            k->tanh(v, len);
            assert_same_bits(v, tanh_want, len, "tanh of special values", len);
            memcpy(v, in, sizeof(v));
            k->sigmoid(v, len);
            /* Large negative inputs give tiny values (sigmoid(-100) = 3.8e-44, a denormal), not
             * 0: compare the finite non-zero inputs to libm. */
            for (size_t i = 0; i < len; i++)
                if (isfinite(in[i]) && in[i] != 0.0f) {
                    float ref = in[i];
                    crl_kernels_generic()->sigmoid(&ref, 1);
                    assert_true(fabs((double)v[i] - (double)ref) <= ACT_TOL);
                    v[i] = sig_want[i];
                }
            assert_same_bits(v, sig_want, len, "sigmoid of special values", len);
        }
        /* A denormal input: tanh(x) ~ x and sigmoid(x) ~ 0.5, as in libm. */
        float d[2] = {1e-40f, -1e-40f};
        k->tanh(d, 2);
        assert_true(fabs((double)d[0] - 1e-40) <= 1e-45 && fabs((double)d[1] + 1e-40) <= 1e-45);
        d[0] = 1e-40f;
        d[1] = -1e-40f;
        k->sigmoid(d, 2);
        assert_true(d[0] == 0.5f && d[1] == 0.5f);
        ran++;
    }
    if (ran == 0) print_message("[  SKIP    ] no ISA table runs here\n");
}

/* linear_packed_gather (the implicit-GEMM convolution) gives linear_packed's bits `ref` for the
 * rows of x (with relu, those bits through relu): row r's input q is placed at xr[r] + off[q] in
 * an "image" of NaNs, off a shuffled set of even offsets and the row origins at odd distances, so
 * no row or input is where the matrix has it and a read of anything else shows. */
static void check_gather(const crl_kernels_t *k, const float *x, size_t rows, size_t in,
                         const float *pb, const float *b, size_t out, const float *ref,
                         size_t offset) {
    if (k->linear_packed_gather == NULL) return;
    size_t span = 2 * in + 3, n = rows * span;
    float *img = malloc(n * sizeof(float)), *yb, *ry = malloc(rows * out * sizeof(float));
    const float **xr = malloc(rows * sizeof(float *));
    int32_t *off = malloc(in * sizeof(int32_t));
    assert_true(img && ry && xr && off);
    for (size_t i = 0; i < n; i++)
        img[i] = NAN;
    for (size_t q = 0; q < in; q++)
        off[q] = (int32_t)(2 * q);
    for (size_t q = in; q > 1; q--) {
        size_t j = rnd_u32() % q;
        int32_t t = off[q - 1];
        off[q - 1] = off[j];
        off[j] = t;
    }
    for (size_t r = 0; r < rows; r++) {
        float *o = img + r * span + r % 3;
        xr[r] = o;
        for (size_t q = 0; q < in; q++)
            o[off[q]] = x[r * in + q];
    }
    float *y = guarded(rows * out, offset, &yb);
    char what[128];
    for (int relu = 0; relu < 2; relu++) {
        memcpy(ry, ref, rows * out * sizeof(float));
        if (relu) k->relu(ry, rows * out);
        for (size_t i = 0; i < rows * out; i++)
            y[i] = SENTINEL;
        k->linear_packed_gather(xr, rows, off, in, pb, b, out, y, relu);
        snprintf(what, sizeof(what), "%s linear_packed_gather rows=%zu in=%zu out=%zu relu=%d",
                 k->name, rows, in, out, relu);
        assert_output(y, ry, rows * out, what);
    }
    free(img);
    free(ry);
    free(xr);
    free(off);
    free(yb);
}

/* The packed-weight path of every table that has one: on the shapes and row counts of
 * test_linear_matches_generic, linear_packed on pack's output gives linear's bits exactly, writes
 * nothing outside its output, and pack writes nothing past pack_size floats. */
static void check_packed(const crl_kernels_t *k, size_t rows, size_t in, size_t out, int bias,
                         size_t offset, size_t *packed_shapes) {
    size_t np = k->pack_size(in, out);
    if (np == 0) return; /* this table runs the shape with W as is */
    (*packed_shapes)++;
    float *xb, *wb, *bb, *yb, *rb, *pb;
    const float *x = rnd_block(rows * in, offset, &xb);
    const float *w = rnd_block(out * in, offset, &wb);
    const float *b = bias ? rnd_block(out, offset, &bb) : (bb = NULL, NULL);
    float *y = guarded(rows * out, offset, &yb);
    float *ref = guarded(rows * out, 0, &rb);
    /* 64-byte aligned as the graph allocates it, with sentinels after it. */
    size_t bytes = ((np + GUARD) * sizeof(float) + 63) & ~(size_t)63;
    pb = aligned_alloc(64, bytes);
    assert_non_null(pb);
    for (size_t i = 0; i < np + GUARD; i++)
        pb[i] = SENTINEL;
    k->pack(w, in, out, pb);
    for (size_t i = np; i < np + GUARD; i++)
        if (pb[i] != SENTINEL) fail_msg("%s pack %zux%zu wrote past pack_size", k->name, in, out);
    k->linear(x, rows, in, w, b, out, ref);
    k->linear_packed(x, rows, in, pb, b, out, y);
    char what[128];
    snprintf(what, sizeof(what), "%s linear_packed rows=%zu in=%zu out=%zu bias=%d offset=%zu",
             k->name, rows, in, out, bias, offset);
    assert_output(y, ref, rows * out, what);
    check_gather(k, x, rows, in, pb, b, out, ref, offset);
    free(xb);
    free(wb);
    free(bb);
    free(yb);
    free(rb);
    free(pb);
}

static void test_linear_packed_matches_linear(void **state) {
    (void)state;
    static const size_t fixed[][2] = {
        {5, 64},  {64, 64}, {64, 3},  {1, 1},    {1, 130}, {130, 1},   {130, 130}, {3, 5},
        {16, 16}, {17, 15}, {15, 17}, {8, 8},    {7, 9},   {9, 7},     {65, 63},   {63, 65},
        {64, 16}, {2, 129}, {33, 31}, {300, 20}, {257, 9}, {128, 100}, {5, 3},     {64, 1},
        {7, 8},   {15, 16}, {1, 16},  {5, 65},   {3, 200},
    };
    static const size_t row_counts[] = {1, 2, 3, 4, 6, 7, 13, 33, 1000};
    size_t ran = 0;
    for (size_t t = 0; t < N_ISAS; t++) {
        const crl_kernels_t *k = isa_table(isa_names[t]);
        if (k == NULL) continue;
        assert_non_null(k->pack_size);
        assert_non_null(k->pack);
        assert_non_null(k->linear_packed);
        size_t packed_shapes = 0;
        for (size_t rc = 0; rc < sizeof(row_counts) / sizeof(row_counts[0]); rc++) {
            for (size_t s = 0; s < sizeof(fixed) / sizeof(fixed[0]); s++)
                for (int bias = 0; bias < 2; bias++)
                    check_packed(k, row_counts[rc], fixed[s][0], fixed[s][1], bias, (size_t)bias,
                                 &packed_shapes);
            for (int s = 0; s < 12; s++)
                check_packed(k, row_counts[rc], rnd_range(1, s < 6 ? 20 : 300), rnd_range(1, 200),
                             s & 1, (s >> 1) & 1, &packed_shapes);
        }
        /* The model's first layer packs; a test that packed nothing would prove nothing. */
        assert_true(k->pack_size(5, 64) > 0);
        assert_true(packed_shapes > 0);
        /* No rows or no outputs: nothing written. */
        float pk[64 * 16] __attribute__((aligned(64))), v[4] = {1, 2, 3, 4};
        float y[2] = {SENTINEL, SENTINEL};
        k->pack(v, 1, 4, pk);
        k->linear_packed(v, 0, 1, pk, v, 4, y);
        assert_true(y[0] == SENTINEL && y[1] == SENTINEL);
        ran++;
    }
    assert_null(crl_kernels_generic()->pack_size); /* generic runs W as is */
    if (ran == 0) print_message("[  SKIP    ] no ISA table runs here\n");
}

/* The ReLU epilogue of every table (generic too): linear_relu gives exactly the bits of linear then
 * relu, and linear_packed_relu those of linear_packed then relu, NaN sums (one row has a NaN
 * input) and all, writing nothing outside the output. */
static void check_relu_epilogue(const crl_kernels_t *k, size_t rows, size_t in, size_t out,
                                int bias, size_t offset) {
    float *xb, *wb, *bb, *yb, *rb, *pb = NULL;
    float *x = rnd_block(rows * in, offset, &xb);
    if (rows > 1 && in > 0) x[in] = NAN;
    const float *w = rnd_block(out * in, offset, &wb);
    const float *b = bias ? rnd_block(out, offset, &bb) : (bb = NULL, NULL);
    float *y = guarded(rows * out, offset, &yb);
    float *ref = guarded(rows * out, 0, &rb);
    char what[128];
    snprintf(what, sizeof(what), "%s linear_relu rows=%zu in=%zu out=%zu bias=%d offset=%zu",
             k->name, rows, in, out, bias, offset);
    k->linear(x, rows, in, w, b, out, ref);
    k->relu(ref, rows * out);
    k->linear_relu(x, rows, in, w, b, out, y);
    assert_output(y, ref, rows * out, what);
    size_t np = k->pack_size ? k->pack_size(in, out) : 0;
    if (np > 0) {
        pb = aligned_alloc(64, (np * sizeof(float) + 63) & ~(size_t)63);
        assert_non_null(pb);
        k->pack(w, in, out, pb);
        for (size_t i = 0; i < rows * out; i++)
            y[i] = SENTINEL;
        k->linear_packed_relu(x, rows, in, pb, b, out, y);
        snprintf(what, sizeof(what), "%s linear_packed_relu rows=%zu in=%zu out=%zu bias=%d",
                 k->name, rows, in, out, bias);
        assert_output(y, ref, rows * out, what);
    }
    free(xb);
    free(wb);
    free(bb);
    free(yb);
    free(rb);
    free(pb);
}

static void test_linear_relu_epilogue(void **state) {
    (void)state;
    static const size_t shapes[][2] = {{5, 64},  {64, 64}, {64, 3}, {1, 1},   {130, 130}, {3, 5},
                                       {17, 15}, {15, 17}, {0, 7},  {2, 129}, {300, 20},  {7, 9}};
    static const size_t row_counts[] = {1, 2, 3, 4, 6, 7, 13, 33};
    const crl_kernels_t *tables[N_ISAS + 1];
    size_t n = 0;
    tables[n++] = crl_kernels_generic();
    for (size_t t = 0; t < N_ISAS; t++)
        if ((tables[n] = isa_table(isa_names[t])) != NULL) n++;
    for (size_t t = 0; t < n; t++) {
        const crl_kernels_t *k = tables[t];
        assert_non_null(k->linear_relu);
        if (k->pack_size) assert_non_null(k->linear_packed_relu);
        for (size_t rc = 0; rc < sizeof(row_counts) / sizeof(row_counts[0]); rc++)
            for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++)
                for (int bias = 0; bias < 2; bias++)
                    check_relu_epilogue(k, row_counts[rc], shapes[s][0], shapes[s][1], bias,
                                        (size_t)bias);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear_matches_generic),
        cmocka_unit_test(test_linear_zero_rows_or_outputs),
        cmocka_unit_test(test_linear_batch_invariant),
        cmocka_unit_test(test_elementwise_match_generic),
        cmocka_unit_test(test_add_row_matches_generic),
        cmocka_unit_test(test_sleef_activations_accuracy),
        cmocka_unit_test(test_sleef_exp_erf),
        cmocka_unit_test(test_linear_packed_matches_linear),
        cmocka_unit_test(test_linear_relu_epilogue),
        cmocka_unit_test(test_erf_ulp),
        cmocka_unit_test(test_gelu_is_the_chain),
        cmocka_unit_test(test_layernorm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
