/* common.h: what every C yardstick driver of bench/yardsticks shares: the zoo golden reader, the
 * weight file written by onnx_weights.py, the timing loop (best of N repetitions) and the line
 * protocol run.py reads. Header-only, so each driver is one .c file with one library behind it.
 *
 * Protocol (stdout, one record a line, fields separated by one space):
 *   info  <variant> <text...>
 *   check <variant> <golden batch> <max abs error>
 *   time  <variant> <batch> <ns per forward>
 *   error <variant> <text...>        (no time follows for that variant)
 * A driver checks every golden before it times anything and prints no time for a variant that
 * disagreed: run.py also refuses times whose checks are missing or over the tolerance. */
#ifndef CRL_BENCH_YARDSTICKS_COMMON_H
#define CRL_BENCH_YARDSTICKS_COMMON_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define YS_TOL 1e-4
#define YS_MAX_LAYERS 16
#define YS_MAX_ROWS 256

enum { YS_ACT_NONE = 0, YS_ACT_RELU = 1, YS_ACT_TANH = 2 };

typedef struct ys_layer {
    uint32_t in, out, act;
    float *w; /* [out][in], the ONNX Gemm transB=1 / torch Linear layout */
    float *b; /* [out] */
} ys_layer;

typedef struct ys_model {
    uint32_t n;
    ys_layer l[YS_MAX_LAYERS];
    uint32_t in_width, out_width;
} ys_model;

typedef struct ys_golden {
    uint32_t rows, in_w, out_w;
    float *x; /* [rows][in_w] */
    float *y; /* [rows][out_w] */
} ys_golden;

static inline uint64_t ys_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void *ys_alloc(size_t bytes) {
    void *p = NULL;
    /* 64-byte aligned like carlarl's own buffers, so no engine pays for misalignment. */
    if (posix_memalign(&p, 64, bytes ? (bytes + 63) / 64 * 64 : 64) != 0) return NULL;
    memset(p, 0, bytes);
    return p;
}

static inline int ys_read_file(const char *path, uint8_t **out, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) return -1;
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (buf == NULL) break;
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        uint8_t *nb = realloc(buf, cap * 2);
        if (nb == NULL) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    fclose(f);
    if (buf == NULL) return -1;
    *out = buf;
    *len = n;
    return 0;
}

static inline int ys_u32(const uint8_t *d, size_t len, size_t *off, uint32_t *v) {
    if (*off + 4 > len) return -1;
    *v = (uint32_t)d[*off] | (uint32_t)d[*off + 1] << 8 | (uint32_t)d[*off + 2] << 16 |
         (uint32_t)d[*off + 3] << 24;
    *off += 4;
    return 0;
}

static inline int ys_floats(const uint8_t *d, size_t len, size_t *off, size_t n, float **out) {
    if (n > (len - *off) / 4 || *off > len) return -1;
    float *p = ys_alloc(n * 4);
    if (p == NULL) return -1;
    memcpy(p, d + *off, n * 4); /* little-endian host (x86_64 / aarch64) */
    *off += n * 4;
    *out = p;
    return 0;
}

/* Reads a zoo golden file (docs/zoo.md): one [rows, in] input, one [rows, out] output. */
static inline int ys_golden_load(const char *path, ys_golden *g) {
    uint8_t *d;
    size_t len, off = 4;
    uint32_t ver, rank, n_out, d0, d1, orank, o0, o1;
    memset(g, 0, sizeof *g);
    if (ys_read_file(path, &d, &len) != 0) return -1;
    int rc = -1;
    if (len < 4 || memcmp(d, "CRLG", 4) != 0) goto out;
    if (ys_u32(d, len, &off, &ver) || ver != 1 || ys_u32(d, len, &off, &rank) || rank != 2 ||
        ys_u32(d, len, &off, &d0) || ys_u32(d, len, &off, &d1) || ys_u32(d, len, &off, &n_out) ||
        n_out != 1 || ys_u32(d, len, &off, &orank) || orank != 2 || ys_u32(d, len, &off, &o0) ||
        ys_u32(d, len, &off, &o1) || o0 != d0 || d0 == 0 || d0 > 4096 || d1 > 4096 || o1 > 4096)
        goto out;
    if (ys_floats(d, len, &off, (size_t)d0 * d1, &g->x) ||
        ys_floats(d, len, &off, (size_t)o0 * o1, &g->y) || off != len)
        goto out;
    g->rows = d0;
    g->in_w = d1;
    g->out_w = o1;
    rc = 0;
out:
    free(d);
    return rc;
}

/* Reads the weight file of onnx_weights.py: "CRLW", u32 version 1, u32 layers, then per layer
 * u32 in, out, act and W [out][in], b [out] as float32. */
static inline int ys_model_load(const char *path, ys_model *m) {
    uint8_t *d;
    size_t len, off = 4;
    uint32_t ver;
    memset(m, 0, sizeof *m);
    if (ys_read_file(path, &d, &len) != 0) return -1;
    int rc = -1;
    if (len < 4 || memcmp(d, "CRLW", 4) != 0) goto out;
    if (ys_u32(d, len, &off, &ver) || ver != 1 || ys_u32(d, len, &off, &m->n) || m->n == 0 ||
        m->n > YS_MAX_LAYERS)
        goto out;
    for (uint32_t i = 0; i < m->n; i++) {
        ys_layer *l = &m->l[i];
        if (ys_u32(d, len, &off, &l->in) || ys_u32(d, len, &off, &l->out) ||
            ys_u32(d, len, &off, &l->act) || l->in == 0 || l->out == 0 || l->in > 65536 ||
            l->out > 65536 || l->act > YS_ACT_TANH || (i > 0 && l->in != m->l[i - 1].out))
            goto out;
        if (ys_floats(d, len, &off, (size_t)l->in * l->out, &l->w) ||
            ys_floats(d, len, &off, l->out, &l->b))
            goto out;
    }
    if (off != len) goto out;
    m->in_width = m->l[0].in;
    m->out_width = m->l[m->n - 1].out;
    rc = 0;
out:
    free(d);
    return rc;
}

static inline size_t ys_max_width(const ys_model *m) {
    size_t w = m->in_width;
    for (uint32_t i = 0; i < m->n; i++)
        if (m->l[i].out > w) w = m->l[i].out;
    return w;
}

/* The timing input for `rows` rows: the golden_b64 inputs, cycled (the same for every engine). */
static inline float *ys_bench_input(const ys_golden *g64, size_t rows) {
    float *x = ys_alloc(rows * g64->in_w * sizeof(float));
    if (x == NULL) return NULL;
    for (size_t r = 0; r < rows; r++)
        memcpy(x + r * g64->in_w, g64->x + (r % g64->rows) * g64->in_w, g64->in_w * sizeof(float));
    return x;
}

static inline double ys_max_err(const float *y, const float *ref, size_t n) {
    double e = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)y[i] - (double)ref[i]);
        if (!(d <= e)) e = d; /* NaN counts as infinitely wrong */
    }
    return e;
}

/* One forward of `rows` rows: x -> y. Returns 0 on success. */
typedef int (*ys_forward_fn)(void *ctx, const float *x, size_t rows, float *y);

/* Best of `reps` repetitions, each long enough (>= target_ns) that the clock does not matter. */
static inline double ys_time(ys_forward_fn f, void *ctx, const float *x, size_t rows, float *y,
                             int reps, uint64_t target_ns) {
    uint64_t iters = 1;
    for (;;) { /* calibrate, which also warms caches and branch predictors */
        uint64_t t0 = ys_now_ns();
        for (uint64_t i = 0; i < iters; i++)
            f(ctx, x, rows, y);
        uint64_t dt = ys_now_ns() - t0;
        if (dt >= target_ns / 2 || iters >= (1u << 30)) break;
        iters *= 2;
    }
    iters *= 2;
    double best = INFINITY;
    for (int r = 0; r < reps; r++) {
        uint64_t t0 = ys_now_ns();
        for (uint64_t i = 0; i < iters; i++)
            f(ctx, x, rows, y);
        double ns = (double)(ys_now_ns() - t0) / (double)iters;
        if (ns < best) best = ns;
    }
    return best;
}

typedef struct ys_args {
    const char *weights, *golden_dir, *onnx;
    int reps;
    size_t batches[16];
    int n_batches;
    uint64_t target_ns;
} ys_args;

/* argv: --weights F --golden DIR --onnx F --reps N --batches 1,8,64,256 --target-ms M */
static inline int ys_parse_args(int argc, char **argv, ys_args *a) {
    memset(a, 0, sizeof *a);
    a->reps = 7;
    a->target_ns = 20000000ull;
    a->n_batches = 4;
    a->batches[0] = 1;
    a->batches[1] = 8;
    a->batches[2] = 64;
    a->batches[3] = 256;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (strcmp(k, "--weights") == 0) {
            a->weights = v;
        } else if (strcmp(k, "--golden") == 0) {
            a->golden_dir = v;
        } else if (strcmp(k, "--onnx") == 0) {
            a->onnx = v;
        } else if (strcmp(k, "--reps") == 0) {
            a->reps = atoi(v);
        } else if (strcmp(k, "--target-ms") == 0) {
            a->target_ns = (uint64_t)(atof(v) * 1e6);
        } else if (strcmp(k, "--batches") == 0) {
            a->n_batches = 0;
            char *end;
            const char *p = v;
            while (*p && a->n_batches < 16) {
                unsigned long b = strtoul(p, &end, 10);
                if (end == p || b == 0 || b > YS_MAX_ROWS) return -1;
                a->batches[a->n_batches++] = b;
                p = *end == ',' ? end + 1 : end;
                if (*end != ',' && *end != 0) return -1;
            }
        } else {
            return -1;
        }
    }
    if (a->reps < 1 || a->golden_dir == NULL || a->n_batches == 0) return -1;
    return 0;
}

/* Checks a forward against golden_b1, _b7 and _b64 of a->golden_dir, printing one check line per
 * golden. Returns 0 when all are within YS_TOL, else prints an error line and returns -1. The
 * 64-row golden is returned in *g64 (for the timing inputs). */
static inline int ys_check(const char *variant, const ys_args *a, size_t in_w, size_t out_w,
                           ys_forward_fn f, void *ctx, ys_golden *g64) {
    static const int gb[3] = {1, 7, 64};
    int ok = 0;
    memset(g64, 0, sizeof *g64);
    for (int i = 0; i < 3; i++) {
        char path[4096];
        ys_golden g;
        snprintf(path, sizeof path, "%s/golden_b%d.bin", a->golden_dir, gb[i]);
        if (ys_golden_load(path, &g) != 0) {
            printf("error %s cannot read golden file %s\n", variant, path);
            return -1;
        }
        if (g.in_w != in_w || g.out_w != out_w) {
            printf("error %s golden %s is [%u,%u]->[%u,%u], model is %zu->%zu\n", variant, path,
                   g.rows, g.in_w, g.rows, g.out_w, in_w, out_w);
            return -1;
        }
        float *y = ys_alloc((size_t)g.rows * g.out_w * sizeof(float));
        double e = INFINITY;
        if (y != NULL && f(ctx, g.x, g.rows, y) == 0)
            e = ys_max_err(y, g.y, (size_t)g.rows * out_w);
        printf("check %s %u %.3g\n", variant, g.rows, e);
        if (!(e <= YS_TOL)) {
            printf("error %s disagrees with %s: max abs error %.3g > %g, not timed\n", variant,
                   path, e, YS_TOL);
            ok = -1;
        }
        free(y);
        if (gb[i] == 64 && ok == 0 && g.rows == 64) {
            *g64 = g;
        } else {
            free(g.x);
            free(g.y);
        }
    }
    return ok;
}

/* Checks, then times every batch of a->batches, printing the protocol lines. */
static inline int ys_run_variant(const char *variant, const ys_args *a, size_t in_w, size_t out_w,
                                 ys_forward_fn f, void *ctx) {
    ys_golden g64 = {0};
    if (ys_check(variant, a, in_w, out_w, f, ctx, &g64) != 0) return -1;
    for (int i = 0; i < a->n_batches; i++) {
        size_t rows = a->batches[i];
        float *x = ys_bench_input(&g64, rows), *y = ys_alloc(rows * out_w * sizeof(float));
        if (x == NULL || y == NULL) {
            printf("error %s out of memory\n", variant);
            return -1;
        }
        printf("time %s %zu %.1f\n", variant, rows,
               ys_time(f, ctx, x, rows, y, a->reps, a->target_ns));
        fflush(stdout);
        free(x);
        free(y);
    }
    free(g64.x);
    free(g64.y);
    return 0;
}

/* The start of the drivers that read the extracted weights (openblas, onednn): arguments, then
 * the weight file. Returns 0, or the exit code to return (2: usage, 1: unreadable weights). */
static inline int ys_start_weights(int argc, char **argv, const char *engine, ys_args *a,
                                   ys_model *m) {
    if (ys_parse_args(argc, argv, a) != 0 || a->weights == NULL) {
        fprintf(stderr, "usage: %s --weights F --golden DIR [--batches 1,8] [--reps N]\n", argv[0]);
        return 2;
    }
    if (ys_model_load(a->weights, m) != 0) {
        printf("error %s cannot read weight file %s\n", engine, a->weights);
        return 1;
    }
    return 0;
}

#endif
