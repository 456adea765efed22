/* common.h: what every C yardstick driver of bench/yardsticks shares: the zoo golden reader, the
 * plan file written by onnx_weights.py (a zoo model as a sequence of layers), the few ops every
 * driver does in plain C, the timing loop (best of N repetitions) and the line protocol run.py
 * reads. Header-only, so each driver is one .c file with one library behind it.
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
#define YS_MAX_OPS 32
#define YS_MAX_ROWS 256

enum { YS_ACT_NONE = 0, YS_ACT_RELU, YS_ACT_TANH, YS_ACT_SIGMOID, YS_ACT_GELU, YS_ACT_N };
enum {
    YS_DENSE = 1,
    YS_CONV,
    YS_LAYERNORM,
    YS_ACT,
    YS_CLIP_COLS,
    YS_CONCAT_CONST,
    YS_DUELING,
    YS_KIND_N
};

/* One step of a plan (onnx_weights.py). Every op maps a [rows][in_w] tensor to [rows][out_w]
 * (row-major; a CONV's rows are C-order [C][H][W], so its output is already flattened). */
typedef struct ys_op {
    uint32_t kind, act, in_w, out_w;
    uint32_t in, out;                                    /* DENSE */
    uint32_t c, h, w, m, kh, kw, sh, sw, pt, pl, pb, pr; /* CONV (input C, H, W; M filters) */
    uint32_t oh, ow;                                     /* CONV output size */
    float eps;                                           /* LAYERNORM */
    uint32_t from, to, vcol;                             /* CLIP_COLS, DUELING column ranges */
    float lo, hi;                                        /* CLIP_COLS */
    uint32_t n_values;                                   /* CONCAT_CONST */
    float *wt;     /* DENSE W [out][in] (ONNX Gemm transB=1 layout); CONV W [M][C][kh][kw] */
    float *b;      /* [out] or [M] */
    float *gamma;  /* LAYERNORM [n] */
    float *beta;   /* LAYERNORM [n] */
    float *values; /* CONCAT_CONST [n_values] */
} ys_op;

typedef struct ys_plan {
    uint32_t n;
    ys_op op[YS_MAX_OPS];
    uint32_t in_width, out_width, max_width;
} ys_plan;

typedef struct ys_golden {
    uint32_t rows, in_w, out_w; /* the input's non-batch dimensions are flattened into in_w */
    float *x;                   /* [rows][in_w] */
    float *y;                   /* [rows][out_w] */
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

/* Version 2's input (docs/zoo.md "Golden file format"): element i (from 0) is splitmix64 output i
 * of `seed`, its top 8 bits divided by 255 in double and rounded to float (an 8-bit grey level, as
 * an Atari frame). splitmix_frames() of tools/make_zoo.py is the reference. */
static inline void ys_splitmix_frames(uint64_t seed, float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint64_t z = seed + (uint64_t)(i + 1) * 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        x[i] = (float)((double)(z >> 56) / 255.0);
    }
}

/* Reads a zoo golden file (docs/zoo.md, version 1 or 2): one [rows, ...] input, flattened to
 * [rows][in_w] (version 1 stores it, version 2 stores the uint64 seed it is generated from), and
 * one [rows, out] output. */
static inline int ys_golden_load(const char *path, ys_golden *g) {
    uint8_t *d;
    size_t len, off = 4;
    uint32_t ver, rank, n_out, d0, orank, o0, o1;
    uint64_t in_w = 1;
    memset(g, 0, sizeof *g);
    if (ys_read_file(path, &d, &len) != 0) return -1;
    int rc = -1;
    if (len < 4 || memcmp(d, "CRLG", 4) != 0) goto out;
    if (ys_u32(d, len, &off, &ver) || (ver != 1 && ver != 2) || ys_u32(d, len, &off, &rank) ||
        rank < 2 || rank > 8 || ys_u32(d, len, &off, &d0))
        goto out;
    for (uint32_t i = 1; i < rank; i++) {
        uint32_t di;
        if (ys_u32(d, len, &off, &di) || di == 0 || di > 65536) goto out;
        in_w *= di;
    }
    if (ys_u32(d, len, &off, &n_out) || n_out != 1 || ys_u32(d, len, &off, &orank) || orank != 2 ||
        ys_u32(d, len, &off, &o0) || ys_u32(d, len, &off, &o1) || o0 != d0 || d0 == 0 ||
        d0 > 4096 || in_w > (1u << 20) || o1 == 0 || o1 > 65536)
        goto out;
    if (ver == 1) {
        if (ys_floats(d, len, &off, (size_t)d0 * in_w, &g->x)) goto out;
    } else {
        uint32_t lo, hi;
        if (ys_u32(d, len, &off, &lo) || ys_u32(d, len, &off, &hi)) goto out;
        g->x = ys_alloc((size_t)d0 * in_w * sizeof(float));
        if (g->x == NULL) goto out;
        ys_splitmix_frames((uint64_t)hi << 32 | lo, g->x, (size_t)d0 * in_w);
    }
    if (ys_floats(d, len, &off, (size_t)o0 * o1, &g->y) || off != len) goto out;
    g->rows = d0;
    g->in_w = (uint32_t)in_w;
    g->out_w = o1;
    rc = 0;
out:
    if (rc != 0) {
        free(g->x);
        free(g->y);
        memset(g, 0, sizeof *g);
    }
    free(d);
    return rc;
}

static inline int ys_u32s(const uint8_t *d, size_t len, size_t *off, uint32_t **v, int n) {
    for (int i = 0; i < n; i++)
        if (ys_u32(d, len, off, v[i])) return -1;
    return 0;
}

static inline int ys_f32(const uint8_t *d, size_t len, size_t *off, float *v) {
    if (*off + 4 > len) return -1;
    memcpy(v, d + *off, 4);
    *off += 4;
    return 0;
}

/* Reads the plan file of onnx_weights.py (format in its doc string): "CRLP", u32 version 2,
 * u32 input width, u32 ops, then per op u32 kind and its fields. Checks that the widths chain. */
static inline int ys_plan_load(const char *path, ys_plan *p) {
    uint8_t *d;
    size_t len, off = 4;
    uint32_t ver, w;
    memset(p, 0, sizeof *p);
    if (ys_read_file(path, &d, &len) != 0) return -1;
    int rc = -1;
    if (len < 4 || memcmp(d, "CRLP", 4) != 0) goto out;
    if (ys_u32(d, len, &off, &ver) || ver != 2 || ys_u32(d, len, &off, &p->in_width) ||
        p->in_width == 0 || p->in_width > (1u << 20) || ys_u32(d, len, &off, &p->n) || p->n == 0 ||
        p->n > YS_MAX_OPS)
        goto out;
    w = p->in_width;
    p->max_width = w;
    for (uint32_t i = 0; i < p->n; i++) {
        ys_op *o = &p->op[i];
        if (ys_u32(d, len, &off, &o->kind) || o->kind == 0 || o->kind >= YS_KIND_N) goto out;
        o->in_w = w;
        switch (o->kind) {
        case YS_DENSE: {
            uint32_t *f[] = {&o->in, &o->out, &o->act};
            if (ys_u32s(d, len, &off, f, 3) || o->in != w || o->out == 0 || o->out > 65536 ||
                ys_floats(d, len, &off, (size_t)o->in * o->out, &o->wt) ||
                ys_floats(d, len, &off, o->out, &o->b))
                goto out;
            o->out_w = o->out;
            break;
        }
        case YS_CONV: {
            uint32_t *f[] = {&o->c,  &o->h,  &o->w,  &o->m,  &o->kh, &o->kw, &o->sh,
                             &o->sw, &o->pt, &o->pl, &o->pb, &o->pr, &o->act};
            if (ys_u32s(d, len, &off, f, 13) || o->c == 0 || o->m == 0 || o->m > 4096 ||
                o->kh == 0 || o->kw == 0 || o->sh == 0 || o->sw == 0 || o->c > 4096 ||
                o->h > 4096 || o->w > 4096 || (uint64_t)o->c * o->h * o->w != w ||
                o->h + o->pt + o->pb < o->kh || o->w + o->pl + o->pr < o->kw || o->kh > 64 ||
                o->kw > 64)
                goto out;
            o->oh = (o->h + o->pt + o->pb - o->kh) / o->sh + 1;
            o->ow = (o->w + o->pl + o->pr - o->kw) / o->sw + 1;
            if (ys_floats(d, len, &off, (size_t)o->m * o->c * o->kh * o->kw, &o->wt) ||
                ys_floats(d, len, &off, o->m, &o->b))
                goto out;
            o->out_w = o->m * o->oh * o->ow;
            break;
        }
        case YS_LAYERNORM: {
            uint32_t n;
            if (ys_u32(d, len, &off, &n) || n != w || ys_u32(d, len, &off, &o->act) ||
                ys_f32(d, len, &off, &o->eps) || ys_floats(d, len, &off, n, &o->gamma) ||
                ys_floats(d, len, &off, n, &o->beta))
                goto out;
            o->out_w = w;
            break;
        }
        case YS_ACT:
            if (ys_u32(d, len, &off, &o->in) || o->in != w || ys_u32(d, len, &off, &o->act))
                goto out;
            o->out_w = w;
            break;
        case YS_CLIP_COLS:
            if (ys_u32(d, len, &off, &o->in) || o->in != w || ys_u32(d, len, &off, &o->from) ||
                ys_u32(d, len, &off, &o->to) || o->from >= o->to || o->to > w ||
                ys_f32(d, len, &off, &o->lo) || ys_f32(d, len, &off, &o->hi))
                goto out;
            o->out_w = w;
            break;
        case YS_CONCAT_CONST:
            if (ys_u32(d, len, &off, &o->in) || o->in != w || ys_u32(d, len, &off, &o->n_values) ||
                o->n_values == 0 || o->n_values > 65536 ||
                ys_floats(d, len, &off, o->n_values, &o->values))
                goto out;
            o->out_w = w + o->n_values;
            break;
        case YS_DUELING:
            if (ys_u32(d, len, &off, &o->in) || o->in != w || ys_u32(d, len, &off, &o->vcol) ||
                ys_u32(d, len, &off, &o->from) || ys_u32(d, len, &off, &o->to) || o->vcol >= w ||
                o->from >= o->to || o->to > w)
                goto out;
            o->out_w = o->to - o->from;
            break;
        default:
            goto out;
        }
        if (o->act >= YS_ACT_N) goto out;
        w = o->out_w;
        if (w > p->max_width) p->max_width = w;
    }
    if (off != len) goto out;
    p->out_width = w;
    rc = 0;
out:
    free(d);
    return rc;
}

/* The ops every C driver does in plain C: no library has them as one call, and they are a few
 * nanoseconds against the layers around them. */
static inline void ys_clip_cols(const ys_op *o, float *x, size_t rows) {
    for (size_t r = 0; r < rows; r++)
        for (uint32_t j = o->from; j < o->to; j++) {
            float v = x[r * o->in_w + j];
            x[r * o->in_w + j] = v < o->lo ? o->lo : v > o->hi ? o->hi : v;
        }
}

static inline void ys_concat_const(const ys_op *o, const float *x, float *y, size_t rows) {
    for (size_t r = 0; r < rows; r++) {
        memcpy(y + r * o->out_w, x + r * o->in_w, o->in_w * sizeof(float));
        memcpy(y + r * o->out_w + o->in_w, o->values, o->n_values * sizeof(float));
    }
}

/* q = (v + a) - mean(a), in the ONNX graph's order: Add, ReduceMean, Sub. */
static inline void ys_dueling(const ys_op *o, const float *x, float *y, size_t rows) {
    uint32_t n = o->to - o->from;
    for (size_t r = 0; r < rows; r++) {
        const float *a = x + r * o->in_w + o->from;
        float v = x[r * o->in_w + o->vcol], s = 0.0f;
        for (uint32_t j = 0; j < n; j++)
            s += a[j];
        float mean = s / (float)n;
        for (uint32_t j = 0; j < n; j++)
            y[r * n + j] = (v + a[j]) - mean;
    }
}

static inline const char *ys_act_name(uint32_t act) {
    static const char *names[] = {"none", "relu", "tanh", "sigmoid", "gelu"};
    return act < YS_ACT_N ? names[act] : "?";
}

/* The timing input for `rows` rows: the largest golden's input rows, cycled (the same for every
 * engine). */
static inline float *ys_bench_input(const ys_golden *g, size_t rows) {
    float *x = ys_alloc(rows * g->in_w * sizeof(float));
    if (x == NULL) return NULL;
    for (size_t r = 0; r < rows; r++)
        memcpy(x + r * g->in_w, g->x + (r % g->rows) * g->in_w, g->in_w * sizeof(float));
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
    const char *plan, *golden_dir, *onnx;
    int reps;
    size_t batches[16];
    int n_batches;
    uint64_t target_ns;
} ys_args;

/* argv: --plan F --golden DIR --onnx F --reps N --batches 1,8,64,256 --target-ms M */
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
        if (strcmp(k, "--plan") == 0) {
            a->plan = v;
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

/* Checks a forward against golden_b1, _b7 and _b64 of a->golden_dir (all three required),
 * printing one check line per golden. Returns 0 when all are within YS_TOL, else prints an error
 * line and returns -1. The largest golden is returned in *gbig (the timing inputs). */
static inline int ys_check(const char *variant, const ys_args *a, size_t in_w, size_t out_w,
                           ys_forward_fn f, void *ctx, ys_golden *gbig) {
    static const int gb[3] = {1, 7, 64};
    int ok = 0;
    memset(gbig, 0, sizeof *gbig);
    for (int i = 0; i < 3; i++) {
        char path[4096];
        ys_golden g;
        snprintf(path, sizeof path, "%s/golden_b%d.bin", a->golden_dir, gb[i]);
        if (ys_golden_load(path, &g) != 0) {
            printf("error %s cannot read golden file %s\n", variant, path);
            return -1;
        }
        if (g.in_w != in_w || g.out_w != out_w || g.rows > YS_MAX_ROWS) {
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
        if (g.rows > gbig->rows) {
            free(gbig->x);
            free(gbig->y);
            *gbig = g;
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
    ys_golden gbig = {0};
    int rc = 0;
    if (ys_check(variant, a, in_w, out_w, f, ctx, &gbig) != 0) rc = -1;
    for (int i = 0; i < a->n_batches && rc == 0; i++) {
        size_t rows = a->batches[i];
        float *x = ys_bench_input(&gbig, rows), *y = ys_alloc(rows * out_w * sizeof(float));
        if (x == NULL || y == NULL) {
            printf("error %s out of memory\n", variant);
            rc = -1;
        } else if (f(ctx, x, rows, y) != 0) {
            printf("error %s forward failed at batch %zu\n", variant, rows);
            rc = -1;
        } else {
            printf("time %s %zu %.1f\n", variant, rows,
                   ys_time(f, ctx, x, rows, y, a->reps, a->target_ns));
        }
        fflush(stdout);
        free(x);
        free(y);
    }
    free(gbig.x);
    free(gbig.y);
    return rc;
}

/* The start of the drivers that run a plan (openblas, onednn): arguments, then the plan file.
 * Returns 0, or the exit code to return (2: usage, 1: unreadable plan). */
static inline int ys_start_plan(int argc, char **argv, const char *engine, ys_args *a, ys_plan *p) {
    if (ys_parse_args(argc, argv, a) != 0 || a->plan == NULL) {
        fprintf(stderr, "usage: %s --plan F --golden DIR [--batches 1,8] [--reps N]\n", argv[0]);
        return 2;
    }
    if (ys_plan_load(a->plan, p) != 0) {
        printf("error %s cannot read plan file %s\n", engine, a->plan);
        return 1;
    }
    return 0;
}

#endif
