/* test_zoo.c: every policy of the zoo (tests/data/zoo, docs/zoo.md) loads through the ONNX
 * importer and matches the torch goldens at batch 1, 7 and 64, within 1e-5 absolute or 1e-4
 * relative, on every kernel table this CPU runs. nature_cnn (Conv) also checks that the
 * convolutions run as CONV nodes with a LINEAR head.
 *
 * In bfloat16 (model.precision: bfloat16, on CPUs with AVX512_BF16; skipped elsewhere) every model
 * must stay within a per-model bound of max |y - golden| over the batch (the outputs are of order
 * 1, up to 20 for sac_squashed's clipped log-std). The bounds are about 3x the worst measured over
 * batches 1, 7 and 64 (docs/zoo.md has the table); the error relative to the output's scale,
 * max |y - golden| / max |golden|, is printed too. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "isa.h"
#include "kernels/kernels.h"
#include "model/onnx.h"
#include "nn/graph.h"

#ifndef CRL_TEST_DATA
#error "CRL_TEST_DATA must name the tests/data directory"
#endif
#define ZOO_DIR CRL_TEST_DATA "/zoo/"

typedef struct golden {
    size_t rows, in_width, out_width;
    float *x, *y;
} golden;

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Version 2's input: output i (from 0) of splitmix64 seeded with `seed`, its top 8 bits divided
 * by 255 in double, rounded to float (docs/zoo.md; splitmix_frames in tools/make_zoo.py). */
static void splitmix_frames(uint64_t seed, float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint64_t z = seed + (uint64_t)(i + 1) * 0x9E3779B97F4A7C15u;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
        z ^= z >> 31;
        x[i] = (float)((double)(z >> 56) / 255.0);
    }
}

/* Reads golden_b<N>.bin (docs/zoo.md, version 1 or 2, one output); fails the test on any mismatch.
 */
static void read_golden(const char *path, golden *gd) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) fail_msg("cannot open %s", path);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n > 0);
    rewind(f);
    uint8_t *b = malloc((size_t)n);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    size_t len = (size_t)n, pos = 0;
#define NEED(k)                                                                                    \
    do {                                                                                           \
        if (pos + (k) > len) fail_msg("%s: truncated", path);                                      \
    } while (0)
    NEED(12);
    assert_memory_equal(b, "CRLG", 4);
    uint32_t version = le32(b + 4);
    assert_true(version == 1 || version == 2);
    size_t rank = le32(b + 8);
    pos = 12;
    assert_true(rank >= 2 && rank <= 6);
    NEED(4 * rank);
    gd->rows = le32(b + pos);
    gd->in_width = 1;
    for (size_t i = 1; i < rank; i++)
        gd->in_width *= le32(b + pos + 4 * i);
    pos += 4 * rank;
    NEED(8);
    assert_int_equal(le32(b + pos), 1); /* one output */
    size_t orank = le32(b + pos + 4);
    pos += 8;
    assert_true(orank >= 2 && orank <= 6);
    NEED(4 * orank);
    assert_int_equal(le32(b + pos), gd->rows);
    gd->out_width = 1;
    for (size_t i = 1; i < orank; i++)
        gd->out_width *= le32(b + pos + 4 * i);
    pos += 4 * orank;
    size_t nx = gd->rows * gd->in_width, ny = gd->rows * gd->out_width;
    size_t x_bytes = version == 1 ? 4 * nx : 8;    /* version 2: the frames' seed */
    assert_int_equal(len, pos + x_bytes + 4 * ny); /* no trailing bytes */
    gd->x = malloc(nx * sizeof(float));
    gd->y = malloc(ny * sizeof(float));
    assert_non_null(gd->x);
    assert_non_null(gd->y);
    if (version == 1) {
        memcpy(gd->x, b + pos, nx * sizeof(float)); /* little-endian host */
    } else {
        uint64_t seed = (uint64_t)le32(b + pos) | (uint64_t)le32(b + pos + 4) << 32;
        splitmix_frames(seed, gd->x, nx);
    }
    memcpy(gd->y, b + pos + x_bytes, ny * sizeof(float));
    free(b);
#undef NEED
}

/* The table of check_batches' last load. */
static const crl_kernels_t *last_table;

/* 1 when last_table runs an in -> out layer as separate dot products (it packs no such W), so the
 * graph merges two sibling heads of that many outputs in all (graph.c, merge_heads): one LINEAR
 * and two SLICEs where there were two LINEARs. */
static size_t heads_merged(size_t in, size_t out) {
    return last_table->pack_size != NULL && last_table->pack_size(in, out) == 0;
}

/* Loads `name` under every table this run covers (isa.h) and checks the first n_batches golden
 * batches of 1, 7, 64. Returns the op count of the last load. */
static size_t check_batches(const char *name, size_t n_batches) {
    unsigned isas = crl_kernels_isas_for(crl_hw_cpu_features());
    static const size_t batches[] = {1, 7, 64};
    size_t ops = 0;
    for (size_t t = 0; t < CRL_TEST_N_TABLES; t++) {
        if (!crl_test_covers(crl_test_tables[t])) continue;
        last_table = crl_kernels_choose(isas, crl_test_tables[t]);
        char path[512];
        crl_err err = {{0}};
        crl_nn_graph_t *g = NULL;
        snprintf(path, sizeof(path), ZOO_DIR "%s/model.onnx", name);
        if (crl_onnx_load_file(path, &g, &err) != CRL_OK) fail_msg("%s: %s", name, err.msg);
        ops = crl_nn_graph_num_ops(g);
        crl_nn_ws_t *ws = NULL;
        assert_int_equal(crl_nn_ws_new(g, 64, &ws), CRL_OK);
        for (size_t bi = 0; bi < n_batches; bi++) {
            golden gd;
            snprintf(path, sizeof(path), ZOO_DIR "%s/golden_b%zu.bin", name, batches[bi]);
            read_golden(path, &gd);
            assert_int_equal(gd.rows, batches[bi]);
            assert_int_equal(crl_nn_graph_input_width(g), gd.in_width);
            assert_int_equal(crl_nn_graph_output_width(g), gd.out_width);
            float *y = malloc(gd.rows * gd.out_width * sizeof(float));
            assert_non_null(y);
            assert_int_equal(crl_nn_run(g, ws, gd.x, gd.rows, y), CRL_OK);
            double worst = 0;
            for (size_t i = 0; i < gd.rows * gd.out_width; i++) {
                double e = fabs((double)y[i] - (double)gd.y[i]);
                if (!(e <= 1e-5 || e <= 1e-4 * fabs((double)gd.y[i])))
                    fail_msg("%s (%s kernels, batch %zu): output %zu is %.9g, torch %.9g", name,
                             crl_test_tables[t], gd.rows, i, (double)y[i], (double)gd.y[i]);
                if (e > worst) worst = e;
            }
            printf("%-14s %-8s batch %2zu: max abs error %.3g\n", name, crl_test_tables[t], gd.rows,
                   worst);
            free(y);
            free(gd.x);
            free(gd.y);
        }
        crl_nn_ws_free(ws);
        crl_nn_graph_free(g);
    }
    crl_test_isa_default();
    return ops;
}

/* The measured errors, printed as the table of docs/zoo.md. */
static void check_bf16(const char *name, size_t n_batches, double bound) {
    unsigned isas = crl_kernels_isas_for(crl_hw_cpu_features());
    const unsigned need = CRL_ISA_AVX512 | CRL_ISA_AVX512_BF16;
    if (!crl_test_covers("avx512")) {
        print_message("[  SKIP    ] bfloat16: runs with the avx512 table only\n");
        skip();
    }
    if ((isas & need) != need || crl_kernels_choose(isas, "avx512")->linear_packed_bf16 == NULL) {
        crl_test_isa_default();
        print_message("[  SKIP    ] bfloat16: no AVX512_BF16 on this CPU\n");
        skip();
    }
    static const size_t batches[] = {1, 7, 64};
    char path[512];
    crl_err err = {{0}};
    crl_nn_graph_t *g = NULL;
    snprintf(path, sizeof(path), ZOO_DIR "%s/model.onnx", name);
    if (crl_onnx_load_file(path, &g, &err) != CRL_OK) fail_msg("%s: %s", name, err.msg);
    assert_int_equal(crl_nn_graph_set_precision(g, CRL_NN_PRECISION_BF16, &err), CRL_OK);
    crl_nn_ws_t *ws = NULL;
    assert_int_equal(crl_nn_ws_new(g, 64, &ws), CRL_OK);
    for (size_t bi = 0; bi < n_batches; bi++) {
        golden gd;
        snprintf(path, sizeof(path), ZOO_DIR "%s/golden_b%zu.bin", name, batches[bi]);
        read_golden(path, &gd);
        float *y = malloc(gd.rows * gd.out_width * sizeof(float));
        assert_non_null(y);
        assert_int_equal(crl_nn_run(g, ws, gd.x, gd.rows, y), CRL_OK);
        double worst = 0, scale = 0;
        for (size_t i = 0; i < gd.rows * gd.out_width; i++) {
            double e = fabs((double)y[i] - (double)gd.y[i]);
            if (e > worst || isnan(e)) worst = e;
            if (fabs((double)gd.y[i]) > scale) scale = fabs((double)gd.y[i]);
        }
        printf("bfloat16 %-14s batch %2zu: max abs error %.3g (bound %.3g), max |golden| %.3g, "
               "relative %.3g\n",
               name, gd.rows, worst, bound, scale, worst / scale);
        if (!(worst <= bound))
            fail_msg("%s in bfloat16, batch %zu: max abs error %.3g, bound %.3g", name, gd.rows,
                     worst, bound);
        free(y);
        free(gd.x);
        free(gd.y);
    }
    crl_nn_ws_free(ws);
    crl_nn_graph_free(g);
    crl_test_isa_default();
}

static void test_bf16_zoo(void **state) {
    (void)state;
    static const struct {
        const char *name;
        size_t batches;
        double bound;
    } zoo[] = {
        /* worst measured (AMD EPYC, AVX512_BF16): 0.0055, 0.0059, 0.017, 0.0078, 0.0045,
         * 0.0052, 0.011 */
        {"example_mlp", 3, 0.016}, {"ppo_gaussian", 3, 0.018},  {"sac_squashed", 3, 0.05},
        {"dueling_dqn", 3, 0.024}, {"layernorm_mlp", 3, 0.014}, {"batchnorm_mlp", 3, 0.016},
        {"nature_cnn", 3, 0.033},
    };
    for (size_t i = 0; i < sizeof(zoo) / sizeof(zoo[0]); i++)
        check_bf16(zoo[i].name, zoo[i].batches, zoo[i].bound);
}

static size_t check_model(const char *name) {
    return check_batches(name, 3);
}

static void test_example_mlp(void **state) {
    (void)state;
    assert_int_equal(check_model("example_mlp"), 6);
}

/* Shape + Expand of the log-std constant becomes one broadcast (EXPAND) of a constant. */
static void test_ppo_gaussian(void **state) {
    (void)state;
    assert_int_equal(check_model("ppo_gaussian"), 7); /* 3 LINEAR, 2 TANH, EXPAND, CONCAT */
}

/* Clip's bounds come from rank-0 Constant nodes; a Gemm output feeds two heads (merged into one
 * LINEAR and two SLICEs where the table runs 256 -> 6 as dot products). */
static void test_sac_squashed(void **state) {
    (void)state;
    size_t ops = check_model("sac_squashed"); /* 4 LINEAR, 2 RELU, CLIP, CONCAT */
    assert_int_equal(ops, 8 + heads_merged(256, 6));
}

/* Flatten of [B, 15, 6] vanishes; ReduceMean, Sub and Add broadcast [B, 1] against [B, 5]; the
 * value and advantage heads merge as sac_squashed's. */
static void test_dueling_dqn(void **state) {
    (void)state;
    size_t ops = check_model("dueling_dqn");
    assert_int_equal(ops, 9 + heads_merged(256, 6));
}

/* LayerNormalization, and the erf GELU chain (Div, Erf, Add, Mul, Mul) fused into one GELU:
 * LINEAR LAYERNORM GELU LINEAR. */
static void test_layernorm_mlp(void **state) {
    (void)state;
    assert_int_equal(check_model("layernorm_mlp"), 4);
}

/* BatchNormalization folds into the Gemm before it: LINEAR RELU LINEAR. */
static void test_batchnorm_mlp(void **state) {
    (void)state;
    assert_int_equal(check_model("batchnorm_mlp"), 3);
}

/* 3 Conv + 4 Relu + Flatten + 2 Gemm: the Flatten vanishes, the rest runs as is. */
static void test_nature_cnn(void **state) {
    (void)state;
    assert_int_equal(check_model("nature_cnn"), 9);
    crl_nn_graph_t *g = NULL;
    crl_err err = {{0}};
    assert_int_equal(crl_onnx_load_file(ZOO_DIR "nature_cnn/model.onnx", &g, &err), CRL_OK);
    assert_int_equal(crl_nn_graph_op(g, 0), CRL_NN_CONV);
    assert_int_equal(crl_nn_graph_op(g, 2), CRL_NN_CONV);
    assert_int_equal(crl_nn_graph_op(g, 4), CRL_NN_CONV);
    assert_int_equal(crl_nn_graph_op(g, 6), CRL_NN_LINEAR);
    assert_int_equal(crl_nn_graph_input_width(g), 4 * 84 * 84);
    /* A CNN's batch runs in row tiles (graph.c, NN_TILE_FLOATS): 7 rows give exactly the bits of
     * each row run alone. */
    golden gd;
    read_golden(ZOO_DIR "nature_cnn/golden_b7.bin", &gd);
    crl_nn_ws_t *ws = NULL;
    assert_int_equal(crl_nn_ws_new(g, 7, &ws), CRL_OK);
    float all[7 * 3], one[3];
    assert_int_equal(crl_nn_run(g, ws, gd.x, 7, all), CRL_OK);
    for (size_t r = 0; r < 7; r++) {
        assert_int_equal(crl_nn_run(g, ws, gd.x + r * gd.in_width, 1, one), CRL_OK);
        assert_memory_equal(one, all + r * 3, sizeof(one));
    }
    crl_nn_ws_free(ws);
    free(gd.x);
    free(gd.y);
    crl_nn_graph_free(g);
}

/* A [B, 4, 12] history through Transpose, Split (sizes as an input at opset 14, as an attribute
 * at 11), Gather by a constant list and by a scalar index, strided, reversed and tail Slices, a
 * [B, C, H, W] -> [B, H, W, C] permute and two chunk()s, whose Slice bounds torch computes from
 * a Shape with Gather, Add, Div and Mul. */
static void check_frame_stack(const char *name) {
    check_model(name);
    crl_nn_graph_t *g = NULL;
    crl_err err = {{0}};
    char path[256];
    snprintf(path, sizeof(path), ZOO_DIR "%s/model.onnx", name);
    assert_int_equal(crl_onnx_load_file(path, &g, &err), CRL_OK);
    size_t count[CRL_NN_OP_COUNT] = {0};
    for (size_t i = 0; i < crl_nn_graph_num_ops(g); i++)
        count[crl_nn_graph_op(g, i)]++;
    assert_int_equal(count[CRL_NN_TRANSPOSE], 2);
    assert_int_equal(count[CRL_NN_GATHER], 2);    /* the Shape's Gathers run at load time */
    assert_int_equal(count[CRL_NN_SLICE], 2 + 8); /* Split: one per output; 8 Slices */
    assert_int_equal(crl_nn_graph_input_width(g), 48);
    assert_int_equal(crl_nn_graph_output_width(g), 6);
    crl_nn_graph_free(g);
}

static void test_frame_stack(void **state) {
    (void)state;
    check_frame_stack("frame_stack");
}

static void test_frame_stack_op11(void **state) {
    (void)state;
    check_frame_stack("frame_stack_op11");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_mlp),      cmocka_unit_test(test_ppo_gaussian),
        cmocka_unit_test(test_sac_squashed),     cmocka_unit_test(test_dueling_dqn),
        cmocka_unit_test(test_layernorm_mlp),    cmocka_unit_test(test_batchnorm_mlp),
        cmocka_unit_test(test_nature_cnn),       cmocka_unit_test(test_frame_stack),
        cmocka_unit_test(test_frame_stack_op11), cmocka_unit_test(test_bf16_zoo),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
