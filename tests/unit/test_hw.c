/* test_hw.c: hardware detection and the binding levers. CPU lists parse and print as the kernel
 * and numactl write them and reject bad ones with a message naming the bad part; detection agrees
 * with the compiler's own CPU check and with sysconf on this machine; fake sysfs trees stand in
 * for a VM that hides topology and for a two-socket NUMA server; `hwinfo --json` is valid JSON
 * with every instruction set named; pinning, NUMA binding and mlock do what they say, and a
 * refused mlock tells the operator how to raise the limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hw/hw.h"
#include "hw/hw_internal.h"

/* ---- CPU lists ---------------------------------------------------------------------------- */

static void expect_list(const char *s, const int *cpus, int n) {
    cpu_set_t set;
    crl_err err = {{0}};
    assert_int_equal(crl_cpulist_parse(s, &set, &err), CRL_OK);
    assert_int_equal(CPU_COUNT(&set), n);
    for (int i = 0; i < n; i++)
        assert_true(CPU_ISSET(cpus[i], &set));
}

static void test_cpulist_parse_valid(void **state) {
    (void)state;
    expect_list("0", (const int[]){0}, 1);
    expect_list("0-3,8,10-11", (const int[]){0, 1, 2, 3, 8, 10, 11}, 7);
    expect_list("  0 - 2 ,\t5 \n", (const int[]){0, 1, 2, 5}, 4); /* spaces, sysfs newline */
    expect_list("7\n", (const int[]){7}, 1);
    expect_list("4-4", (const int[]){4}, 1);
    expect_list("3,1,3", (const int[]){1, 3}, 2); /* repeats are harmless */
    expect_list("1023", (const int[]){CPU_SETSIZE - 1}, 1);
}

static void expect_error(const char *s, crl_status want, const char *needle) {
    cpu_set_t set;
    crl_err err = {{0}};
    assert_int_equal(crl_cpulist_parse(s, &set, &err), want);
    if (needle && !strstr(err.msg, needle))
        fail_msg("for \"%s\": \"%s\" lacks \"%s\"", s ? s : "(null)", err.msg, needle);
}

static void test_cpulist_parse_errors(void **state) {
    (void)state;
    expect_error("3-1", CRL_EINVAL, "'3-1'");
    expect_error("x", CRL_EINVAL, "'x'");
    expect_error("0,x,2", CRL_EINVAL, "'x'");
    expect_error("", CRL_EINVAL, "empty");
    expect_error("  \n", CRL_EINVAL, "empty");
    expect_error(NULL, CRL_EINVAL, NULL);
    expect_error("1,,2", CRL_EINVAL, "empty item");
    expect_error("0,", CRL_EINVAL, "empty item");
    expect_error("-1", CRL_EINVAL, "'-1'");
    expect_error("1-", CRL_EINVAL, "'1-'");
    expect_error("1 2", CRL_EINVAL, "'1 2'");
    expect_error("0-3:2", CRL_EINVAL, "'0-3:2'");
    expect_error("1024", CRL_ERANGE, "'1024'");
    expect_error("0-4096", CRL_ERANGE, "'0-4096'");
    expect_error("99999999999999999999999", CRL_ERANGE, NULL); /* no overflow */
    cpu_set_t set;
    assert_int_equal(crl_cpulist_parse("0", NULL, NULL), CRL_EINVAL);
    assert_int_equal(crl_cpulist_parse("x", &set, NULL), CRL_EINVAL); /* NULL err is allowed */
}

static void test_cpulist_format(void **state) {
    (void)state;
    cpu_set_t set;
    char out[64];
    assert_int_equal(crl_cpulist_parse("10-11,0-3,8", &set, NULL), CRL_OK);
    crl_cpulist_format(&set, out, sizeof(out));
    assert_string_equal(out, "0-3,8,10-11");
    CPU_ZERO(&set);
    crl_cpulist_format(&set, out, sizeof(out));
    assert_string_equal(out, "");
    /* Too long for the buffer: cut after a whole item, never inside a number. */
    for (int c = 0; c < 40; c += 2)
        CPU_SET(c, &set); /* 0,2,4,...,38 */
    crl_cpulist_format(&set, out, 16);
    assert_true(strlen(out) < 16);
    assert_string_equal(out, "0,2,4,6,8,10...");
}

/* ---- detection on this machine ------------------------------------------------------------ */

static void test_detect_this_machine(void **state) {
    (void)state;
    crl_hw_info_t hw;
    crl_hw_detect(&hw);
    assert_true(hw.logical_cpus >= 1);
    assert_int_equal(hw.logical_cpus, (int)sysconf(_SC_NPROCESSORS_ONLN));
    assert_true(hw.allowed_cpus >= 1 && hw.allowed_cpus <= CPU_SETSIZE);
    if (hw.physical_cores) {
        assert_true(hw.physical_cores <= hw.logical_cpus);
        assert_true(hw.packages >= 1 && hw.packages <= hw.physical_cores);
    }
    /* /proc/meminfo and sysconf describe the same RAM (allow rounding to pages). */
    uint64_t phys = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
    assert_true(hw.mem_total > 0);
    assert_true(hw.mem_total + (1u << 20) >= phys && hw.mem_total <= phys + (1u << 20));
    for (int i = 0; i < hw.n_caches; i++) {
        assert_true(hw.caches[i].level >= 1 && hw.caches[i].level <= 4);
        assert_true(hw.caches[i].size > 0);
        assert_true(hw.caches[i].shared_by <= hw.logical_cpus);
    }
    for (int i = 0; i < hw.n_nodes; i++) {
        cpu_set_t set;
        if (hw.nodes[i].cpus[0])
            assert_int_equal(crl_cpulist_parse(hw.nodes[i].cpus, &set, NULL), CRL_OK);
        if (i) assert_true(hw.nodes[i].id > hw.nodes[i - 1].id);
    }
    assert_true(hw.gpu_status[0] != '\0'); /* found or not, it says so */
    assert_int_equal(crl_hw_cpu_features(), hw.features);
    assert_int_equal(crl_hw_cpu_features(), hw.features); /* cached, stable */
#if defined(__x86_64__)
    assert_string_equal(hw.arch, "x86_64");
    assert_true(hw.vendor[0] != '\0');
    assert_true(hw.family > 0);
    /* GCC's runtime check also consults CPUID and XCR0: the two must agree bit for bit. */
    struct {
        unsigned bit;
        int has;
    } want[] = {
        {CRL_CPU_SSE42, __builtin_cpu_supports("sse4.2")},
        {CRL_CPU_AVX, __builtin_cpu_supports("avx")},
        {CRL_CPU_AVX2, __builtin_cpu_supports("avx2")},
        {CRL_CPU_FMA, __builtin_cpu_supports("fma")},
#ifndef __clang__ /* clang 14 does not know this name */
        {CRL_CPU_F16C, __builtin_cpu_supports("f16c")},
#endif
        {CRL_CPU_AVX512F, __builtin_cpu_supports("avx512f")},
        {CRL_CPU_AVX512BW, __builtin_cpu_supports("avx512bw")},
        {CRL_CPU_AVX512VL, __builtin_cpu_supports("avx512vl")},
        {CRL_CPU_AVX512DQ, __builtin_cpu_supports("avx512dq")},
        {CRL_CPU_AVX512VNNI, __builtin_cpu_supports("avx512vnni")},
        {CRL_CPU_AVX512BF16, __builtin_cpu_supports("avx512bf16")},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (!!(hw.features & want[i].bit) != !!want[i].has)
            fail_msg("feature bit 0x%x: carlarl says %d, the compiler runtime says %d", want[i].bit,
                     !!(hw.features & want[i].bit), !!want[i].has);
    assert_false(hw.features & CRL_CPU_NEON);
#elif defined(__aarch64__)
    assert_string_equal(hw.arch, "aarch64");
    assert_true(hw.features & CRL_CPU_NEON);
#endif
}

static void test_features_str(void **state) {
    (void)state;
    char s[128];
    crl_hw_features_str(CRL_CPU_SSE42 | CRL_CPU_AVX2 | CRL_CPU_AVX512BF16 | CRL_CPU_AMX, s,
                        sizeof(s));
    assert_string_equal(s, "sse4.2 avx2 avx512_bf16 amx");
    crl_hw_features_str(0, s, sizeof(s));
    assert_string_equal(s, "");
    crl_hw_features_str(CRL_CPU_SSE42 | CRL_CPU_AVX | CRL_CPU_AVX2, s, 12); /* "sse4.2 avx" fits */
    assert_string_equal(s, "sse4.2 avx");
    crl_hw_features_str(CRL_CPU_NEON, s, 3); /* nothing whole fits */
    assert_string_equal(s, "");
}

/* ---- recommendations ---------------------------------------------------------------------- */

static void test_recommendations(void **state) {
    (void)state;
    crl_hw_info_t hw;
    memset(&hw, 0, sizeof(hw));
    strcpy(hw.arch, "x86_64");
    hw.features = CRL_CPU_AVX | CRL_CPU_AVX2 | CRL_CPU_FMA;
    hw.logical_cpus = 16;
    hw.physical_cores = 8;
    hw.allowed_cpus = 16;
    assert_string_equal(crl_hw_recommended_profile(&hw), "intel-optimized");
    assert_int_equal(crl_hw_recommended_threads(&hw), 16);
    assert_int_equal(crl_hw_recommended_workers(&hw), 8);
    hw.allowed_cpus = 4; /* a container with a 4-CPU cpuset */
    assert_int_equal(crl_hw_recommended_threads(&hw), 4);
    assert_int_equal(crl_hw_recommended_workers(&hw), 4);
    hw.features = CRL_CPU_AVX | CRL_CPU_AVX2; /* no FMA */
    assert_string_equal(crl_hw_recommended_profile(&hw), "production");
    hw.n_gpus = 1;
    assert_string_equal(crl_hw_recommended_profile(&hw), "nvidia-optimized");
    hw.n_gpus = 0;
    strcpy(hw.arch, "aarch64");
    strcpy(hw.vendor, "Apple");
    hw.features = CRL_CPU_NEON;
    assert_string_equal(crl_hw_recommended_profile(&hw), "mac-m4-max-optimized");
    strcpy(hw.vendor, "ARM");
    assert_string_equal(crl_hw_recommended_profile(&hw), "production");
    memset(&hw, 0, sizeof(hw)); /* nothing known: still a usable answer */
    assert_int_equal(crl_hw_recommended_threads(&hw), 1);
    assert_int_equal(crl_hw_recommended_workers(&hw), 1);
    assert_string_equal(crl_hw_recommended_profile(NULL), "production");
}

/* ---- JSON and text reports ---------------------------------------------------------------- */

/* A strict little JSON checker: returns the end of the value at p, or NULL. */
static const char *json_value(const char *p, int depth);

static const char *json_ws(const char *p) {
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
        p++;
    return p;
}

static const char *json_string(const char *p) {
    if (*p++ != '"') return NULL;
    while (*p != '"') {
        if ((unsigned char)*p < 0x20) return NULL;
        if (*p == '\\') {
            p++;
            if (*p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!strchr("0123456789abcdefABCDEF", p[i]) || !p[i]) return NULL;
                p += 4;
            } else if (!*p || !strchr("\"\\/bfnrt", *p)) {
                return NULL;
            }
        }
        p++;
    }
    return p + 1;
}

static const char *json_number(const char *p) {
    const char *s = p;
    if (*p == '-') p++;
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (*p >= '0' && *p <= '9')
            p++;
    else
        return NULL;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9') return NULL;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return p > s ? p : NULL;
}

static const char *json_container(const char *p, char close, int depth) {
    p = json_ws(p + 1);
    if (*p == close) return p + 1;
    for (;;) {
        if (close == '}') {
            p = json_string(json_ws(p));
            if (!p) return NULL;
            p = json_ws(p);
            if (*p++ != ':') return NULL;
        }
        p = json_value(p, depth + 1);
        if (!p) return NULL;
        p = json_ws(p);
        if (*p == close) return p + 1;
        if (*p++ != ',') return NULL;
    }
}

static const char *json_value(const char *p, int depth) {
    if (depth > 32) return NULL;
    p = json_ws(p);
    if (*p == '{') return json_container(p, '}', depth);
    if (*p == '[') return json_container(p, ']', depth);
    if (*p == '"') return json_string(p);
    if (!strncmp(p, "true", 4)) return p + 4;
    if (!strncmp(p, "false", 5)) return p + 5;
    if (!strncmp(p, "null", 4)) return p + 4;
    return json_number(p);
}

static int json_valid(const char *s) {
    const char *end = json_value(s, 0);
    return end && *json_ws(end) == '\0';
}

static void test_json_checker_can_fail(void **state) {
    (void)state;
    assert_true(json_valid("{\"a\":[1,true,null,\"x\\n\"],\"b\":{}}"));
    assert_false(json_valid("{\"a\":1,}"));
    assert_false(json_valid("{\"a\":[1,2}"));
    assert_false(json_valid("{\"a\":\"\x01\"}"));
    assert_false(json_valid("{\"a\":1}}"));
}

static void test_json_this_machine(void **state) {
    (void)state;
    crl_hw_info_t hw;
    crl_buf b;
    crl_hw_detect(&hw);
    crl_buf_init(&b, 1 << 20);
    crl_hw_write_json(&hw, "avx2", &b);
    assert_false(b.failed);
    if (!json_valid(b.data)) fail_msg("invalid JSON: %s", b.data);
    const char *keys[] = {"\"arch\":",
                          "\"vendor\":",
                          "\"model\":",
                          "\"family\":",
                          "\"model_id\":",
                          "\"stepping\":",
                          "\"features\":[",
                          "\"instruction_sets\":{",
                          "\"logical_cpus\":",
                          "\"physical_cores\":",
                          "\"packages\":",
                          "\"caches\":[",
                          "\"numa_nodes\":[",
                          "\"memory_bytes\":",
                          "\"gpus\":[",
                          "\"gpu_status\":",
                          "\"kernel_isa\":\"avx2\"",
                          "\"recommended\":{",
                          "\"profile\":",
                          "\"workers\":",
                          "\"cpu_threads\":"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (!strstr(b.data, keys[i])) fail_msg("no %s in %s", keys[i], b.data);
    /* instruction_sets names every instruction set, true exactly when it is in features. */
    const char *sets = strstr(b.data, "\"instruction_sets\":{");
    unsigned bit;
    const char *name;
    for (int i = 0; (name = crl_hw__feature_name(i, &bit)) != NULL; i++) {
        char want[64];
        snprintf(want, sizeof(want), "\"%s\":%s", name, (hw.features & bit) ? "true" : "false");
        if (!strstr(sets, want)) fail_msg("no %s in %s", want, sets);
    }
    char profile[96];
    snprintf(profile, sizeof(profile), "\"profile\":\"%s\"", crl_hw_recommended_profile(&hw));
    assert_non_null(strstr(b.data, profile));
    crl_buf_free(&b);
}

/* Strings from the hardware (brand, GPU name, cpulist) go out escaped, whatever they hold. */
static void test_json_hostile_strings_and_gpus(void **state) {
    (void)state;
    crl_hw_info_t hw;
    crl_buf b;
    memset(&hw, 0, sizeof(hw));
    strcpy(hw.arch, "x86_64");
    strcpy(hw.model, "Evil \"CPU\" \\ \x01\n");
    hw.n_gpus = 2;
    strcpy(hw.gpus[0].name, "NVIDIA H100 80GB HBM3");
    hw.gpus[0].mem_total = 85520809984ull;
    hw.gpus[0].cc_major = 9;
    strcpy(hw.gpus[1].name, "bad\"name");
    hw.gpus[1].cc_major = 8;
    hw.gpus[1].cc_minor = 6;
    hw.n_caches = 1;
    hw.caches[0] = (crl_hw_cache_t){.level = 2, .type = "Unified", .size = 1 << 20, .shared_by = 2};
    hw.n_nodes = 1;
    hw.nodes[0] = (crl_hw_node_t){.id = 0, .cpus = "0-3", .mem_total = 1ull << 33};
    strcpy(hw.gpu_status, "ok");
    crl_buf_init(&b, 1 << 20);
    crl_hw_write_json(&hw, NULL, &b);
    if (!json_valid(b.data)) fail_msg("invalid JSON: %s", b.data);
    assert_non_null(strstr(b.data, "\"kernel_isa\":null"));
    assert_non_null(strstr(b.data, "\"name\":\"NVIDIA H100 80GB HBM3\",\"memory_bytes\":"
                                   "85520809984,\"compute_capability\":\"9.0\""));
    assert_non_null(strstr(b.data, "\"compute_capability\":\"8.6\""));
    assert_non_null(strstr(b.data, "{\"level\":2,\"type\":\"Unified\",\"size_bytes\":1048576,"
                                   "\"shared_by\":2}"));
    assert_non_null(strstr(b.data, "{\"id\":0,\"cpus\":\"0-3\",\"memory_bytes\":8589934592}"));
    assert_non_null(strstr(b.data, "\"profile\":\"nvidia-optimized\""));
    assert_non_null(strstr(b.data, "\"features\":[]"));

    crl_buf_reset(&b);
    crl_hw_write_text(&hw, "avx512", &b);
    assert_non_null(strstr(b.data, "gpu 0             NVIDIA H100 80GB HBM3, 79.6 GiB, compute "
                                   "capability 9.0\n"));
    assert_non_null(strstr(b.data, "  numa node 0       cpus 0-3, memory 8 GiB\n"));
    assert_non_null(strstr(b.data, "  caches            L2 Unified"));
    assert_non_null(strstr(b.data, "1 MiB, shared by 2 cpus\n"));
    assert_non_null(strstr(b.data, "  kernels           avx512\n"));
    assert_non_null(strstr(b.data, "  recommended       profile nvidia-optimized"));
    crl_buf_free(&b);
}

static void test_text_this_machine(void **state) {
    (void)state;
    crl_hw_info_t hw;
    crl_buf b;
    crl_hw_detect(&hw);
    crl_buf_init(&b, 1 << 20);
    crl_hw_write_text(&hw, "generic", &b);
    char want[128];
    snprintf(want, sizeof(want), "  logical cpus      %d online", hw.logical_cpus);
    assert_non_null(strstr(b.data, want));
    snprintf(want, sizeof(want), "  arch              %s\n", hw.arch);
    assert_non_null(strstr(b.data, want));
    assert_non_null(strstr(b.data, "  kernels           generic\n"));
    /* Every line is "  label<pad>value": the value column starts at 20 on every line. */
    for (const char *p = b.data; *p; p = strchr(p, '\n') + 1) {
        assert_true(p[0] == ' ' && p[1] == ' ');
        assert_true(p[19] == ' ' && p[20] != ' ');
    }
    crl_buf_free(&b);
}

/* ---- fake sysfs trees --------------------------------------------------------------------- */

static char base[PATH_MAX], tree[PATH_MAX]; /* the temporary directory; this test's tree in it */

static void use_tree(const char *name) {
    snprintf(tree, sizeof(tree), "%.4000s/%s", base, name);
}

static void put(const char *rel, const char *text) {
    char path[PATH_MAX + 256];
    snprintf(path, sizeof(path), "%s%s", tree, rel);
    for (char *s = path + 1; (s = strchr(s, '/')) != NULL; s++) { /* mkdir -p */
        *s = '\0';
        mkdir(path, 0755);
        *s = '/';
    }
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int tree_setup(void **state) {
    (void)state;
    snprintf(base, sizeof(base), "/tmp/crl_hw_test_XXXXXX");
    return mkdtemp(base) ? 0 : -1;
}

static int tree_teardown(void **state) {
    (void)state;
    return nftw(base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A VM: online CPUs but no topology, caches or nodes in sysfs; /proc/cpuinfo knows the cores. */
static void test_fake_vm(void **state) {
    (void)state;
    use_tree("vm");
    put("/sys/devices/system/cpu/online", "0-3\n");
    put("/proc/meminfo", "MemTotal:        8000000 kB\nMemFree:  1 kB\n");
    put("/proc/cpuinfo", "processor\t: 0\nphysical id\t: 0\ncore id\t\t: 0\n\n"
                         "processor\t: 1\nphysical id\t: 0\ncore id\t\t: 0\n\n"
                         "processor\t: 2\nphysical id\t: 0\ncore id\t\t: 1\n\n"
                         "processor\t: 3\nphysical id\t: 0\ncore id\t\t: 1\n\n");
    crl_hw_info_t hw;
    memset(&hw, 0, sizeof(hw));
    crl_hw__topology_detect_at(tree, &hw);
    assert_int_equal(hw.logical_cpus, 4);
    assert_int_equal(hw.physical_cores, 2);
    assert_int_equal(hw.packages, 1);
    assert_int_equal(hw.n_nodes, 0);
    assert_int_equal(hw.mem_total, 8000000ull * 1024);
    for (int i = 0; i < hw.n_caches; i++) /* CPUID may describe caches; sharing stays bounded */
        assert_true(hw.caches[i].shared_by <= 4);
    /* No node directory: the machine is one node, 0, with every online CPU. */
    cpu_set_t set;
    crl_err err = {{0}};
    assert_int_equal(crl_hw__node_cpus_at(tree, 0, &set, &err), CRL_OK);
    assert_int_equal(CPU_COUNT(&set), 4);
    assert_int_equal(crl_hw__node_cpus_at(tree, 1, &set, &err), CRL_ENOTFOUND);
}

/* Nothing at all: every field stays empty, nothing crashes. */
static void test_fake_empty(void **state) {
    (void)state;
    use_tree("nothing-here");
    crl_hw_info_t hw;
    memset(&hw, 0, sizeof(hw));
    crl_hw__topology_detect_at(tree, &hw);
    assert_int_equal(hw.logical_cpus, 0);
    assert_int_equal(hw.physical_cores, 0);
    assert_int_equal(hw.n_nodes, 0);
    assert_int_equal(hw.mem_total, 0);
    cpu_set_t set;
    crl_err err = {{0}};
    assert_int_equal(crl_hw__node_cpus_at(tree, 0, &set, &err), CRL_ENOTFOUND);
}

/* Two sockets, two cores each with two threads, a memory-only node, ids that sort numerically. */
static void test_fake_numa_server(void **state) {
    (void)state;
    use_tree("numa");
    put("/sys/devices/system/cpu/online", "0-7\n");
    for (int cpu = 0; cpu < 8; cpu++) {
        char rel[128], v[16];
        snprintf(rel, sizeof(rel), "/sys/devices/system/cpu/cpu%d/topology/core_id", cpu);
        snprintf(v, sizeof(v), "%d\n", cpu % 2);
        put(rel, v);
        snprintf(rel, sizeof(rel), "/sys/devices/system/cpu/cpu%d/topology/physical_package_id",
                 cpu);
        snprintf(v, sizeof(v), "%d\n", cpu / 4);
        put(rel, v);
    }
    const char *idx = "/sys/devices/system/cpu/cpu0/cache/index";
    char rel[128];
    const struct {
        const char *level, *type, *size, *shared;
    } c[] = {{"1", "Data", "48K", "0,2"},
             {"1", "Instruction", "32K", "0,2"},
             {"2", "Unified", "2048K", "0,2"},
             {"3", "Unified", "32M", "0-3"}};
    for (int i = 0; i < 4; i++) {
        snprintf(rel, sizeof(rel), "%s%d/level", idx, i);
        put(rel, c[i].level);
        snprintf(rel, sizeof(rel), "%s%d/type", idx, i);
        put(rel, c[i].type);
        snprintf(rel, sizeof(rel), "%s%d/size", idx, i);
        put(rel, c[i].size);
        snprintf(rel, sizeof(rel), "%s%d/shared_cpu_list", idx, i);
        put(rel, c[i].shared);
    }
    put("/sys/devices/system/node/online", "0-1,10\n");
    put("/sys/devices/system/node/node0/cpulist", "0-3\n");
    put("/sys/devices/system/node/node0/meminfo", "Node 0 MemTotal:       16384 kB\n");
    put("/sys/devices/system/node/node1/cpulist", "4-7\n");
    put("/sys/devices/system/node/node1/meminfo", "Node 1 MemTotal:       32768 kB\n");
    put("/sys/devices/system/node/node10/cpulist", "\n"); /* CXL memory: no CPUs */
    put("/sys/devices/system/node/node10/meminfo", "Node 10 MemTotal:      1024 kB\n");
    put("/sys/devices/system/node/possible", "0-15\n"); /* not a node directory */

    crl_hw_info_t hw;
    memset(&hw, 0, sizeof(hw));
    crl_hw__topology_detect_at(tree, &hw);
    assert_int_equal(hw.logical_cpus, 8);
    assert_int_equal(hw.physical_cores, 4);
    assert_int_equal(hw.packages, 2);
    assert_int_equal(hw.n_caches, 4);
    assert_int_equal(hw.caches[0].level, 1);
    assert_string_equal(hw.caches[0].type, "Data");
    assert_int_equal(hw.caches[0].size, 48 * 1024);
    assert_int_equal(hw.caches[0].shared_by, 2);
    assert_string_equal(hw.caches[1].type, "Instruction");
    assert_int_equal(hw.caches[2].size, 2048 * 1024);
    assert_int_equal(hw.caches[3].size, 32ull << 20);
    assert_int_equal(hw.caches[3].shared_by, 4);
    assert_int_equal(hw.n_nodes, 3);
    assert_int_equal(hw.nodes[0].id, 0);
    assert_string_equal(hw.nodes[0].cpus, "0-3");
    assert_int_equal(hw.nodes[0].mem_total, 16384ull * 1024);
    assert_int_equal(hw.nodes[1].id, 1);
    assert_string_equal(hw.nodes[1].cpus, "4-7");
    assert_int_equal(hw.nodes[2].id, 10); /* after 1, not between 1 and 2 */
    assert_string_equal(hw.nodes[2].cpus, "");
    assert_int_equal(hw.nodes[2].mem_total, 1024ull * 1024);

    cpu_set_t set;
    crl_err err = {{0}};
    assert_int_equal(crl_hw__node_cpus_at(tree, 1, &set, &err), CRL_OK);
    assert_int_equal(CPU_COUNT(&set), 4);
    assert_true(CPU_ISSET(4, &set) && CPU_ISSET(7, &set) && !CPU_ISSET(3, &set));
    assert_int_equal(crl_hw__node_cpus_at(tree, 10, &set, &err), CRL_OK);
    assert_int_equal(CPU_COUNT(&set), 0);
    assert_int_equal(crl_hw__node_cpus_at(tree, 5, &set, &err), CRL_ENOTFOUND);
    assert_non_null(strstr(err.msg, "node 5 does not exist"));
    assert_non_null(strstr(err.msg, "0-1,10"));
    assert_int_equal(crl_hw__node_cpus_at(tree, -1, &set, &err), CRL_EINVAL);
    put("/sys/devices/system/node/node1/cpulist", "4-x\n");
    assert_int_equal(crl_hw__node_cpus_at(tree, 1, &set, &err), CRL_EFORMAT);
    assert_non_null(strstr(err.msg, "node1/cpulist"));
}

/* ---- levers on this machine --------------------------------------------------------------- */

static void test_node_cpus_this_machine(void **state) {
    (void)state;
    cpu_set_t set;
    crl_err err = {{0}};
    /* Node 0 exists on every Linux machine (as the single node when sysfs shows none). */
    assert_int_equal(crl_hw_node_cpus(0, &set, &err), CRL_OK);
    assert_true(CPU_COUNT(&set) >= 1);
    assert_int_equal(crl_hw_node_cpus(999, &set, &err), CRL_ENOTFOUND);
    assert_non_null(strstr(err.msg, "999"));
    assert_int_equal(crl_hw_numa_bind(999, &err), CRL_ENOTFOUND);
}

static void *pin_self(void *arg) {
    crl_err *err = arg;
    cpu_set_t want, got;
    CPU_ZERO(&want);
    CPU_SET(0, &want);
    if (crl_hw_pin_thread(pthread_self(), &want, err) != CRL_OK) return (void *)1;
    if (pthread_getaffinity_np(pthread_self(), sizeof(got), &got) != 0) return (void *)2;
    if (!CPU_EQUAL(&want, &got)) return (void *)3;
    return NULL;
}

static void test_pin_thread(void **state) {
    (void)state;
    crl_err err = {{0}};
    pthread_t t;
    void *rc;
    /* A fresh thread, so the test runner's own mask is left alone. */
    assert_int_equal(pthread_create(&t, NULL, pin_self, &err), 0);
    assert_int_equal(pthread_join(t, &rc), 0);
    if (rc) fail_msg("pinning to CPU 0: step %ld failed: %s", (long)(intptr_t)rc, err.msg);

    cpu_set_t set;
    CPU_ZERO(&set);
    assert_int_equal(crl_hw_pin_thread(pthread_self(), &set, &err), CRL_EINVAL);
    assert_int_equal(crl_hw_pin_thread(pthread_self(), NULL, &err), CRL_EINVAL);
    if (sysconf(_SC_NPROCESSORS_CONF) < CPU_SETSIZE) {
        CPU_SET(CPU_SETSIZE - 1, &set); /* no such CPU */
        assert_int_equal(crl_hw_pin_thread(pthread_self(), &set, &err), CRL_EINVAL);
        assert_non_null(strstr(err.msg, "1023"));
        assert_non_null(strstr(err.msg, "cpuset"));
    }
}

/* Binding changes the whole process's policy, so it runs in a child. */
static void test_numa_bind_node0(void **state) {
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        crl_err err = {{0}};
        cpu_set_t node, now;
        if (crl_hw_numa_bind(0, &err) != CRL_OK) {
            fprintf(stderr, "numa_bind(0): %s\n", err.msg);
            _exit(1);
        }
        if (crl_hw_node_cpus(0, &node, &err) != CRL_OK) _exit(2);
        if (sched_getaffinity(0, sizeof(now), &now) != 0) _exit(3);
        CPU_AND(&now, &now, &node);
        if (CPU_COUNT(&now) == 0) _exit(4);
        if (access("/sys/devices/system/node/node0", F_OK) == 0) {
            int mode = -1;
            if (syscall(SYS_get_mempolicy, &mode, NULL, 0ul, NULL, 0ul) != 0 || mode != 2)
                _exit(5); /* MPOL_BIND */
        }
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* VmLck of /proc/self/status in KiB; -1 when the kernel does not report it. */
static long locked_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmLck: %ld kB", &v) == 1) break;
    if (f) fclose(f);
    return v;
}

static void test_mlock(void **state) {
    (void)state;
    crl_err err = {{0}};
    assert_int_equal(crl_hw_mlock(NULL, 0, &err), CRL_OK);
    assert_int_equal(crl_hw_mlock(NULL, 16, &err), CRL_EINVAL);
    if (geteuid() != 0) {
        skip(); /* an unprivileged user may have RLIMIT_MEMLOCK of 0 */
        return;
    }
    size_t n = 3 * 4096 + 17;
    char *p = malloc(n);
    assert_non_null(p);
    memset(p, 1, n);
    long before = locked_kib();
    if (crl_hw_mlock(p + 5, n - 5, &err) != CRL_OK) fail_msg("mlock as root: %s", err.msg);
    if (before >= 0) assert_true(locked_kib() >= before + 12); /* 3 full pages, at least */
    /* munlock(2) directly: sanitizers turn the libc call into a no-op. */
    assert_int_equal(syscall(SYS_munlock, p, n), 0);
    if (before >= 0) assert_int_equal(locked_kib(), before);
    free(p);
}

/* An unprivileged process over its RLIMIT_MEMLOCK hears the limits and how to raise them. */
static void test_mlock_refused_message(void **state) {
    (void)state;
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pipefd[0]);
        struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
        struct __user_cap_data_struct data[2];
        if (syscall(SYS_capget, &hdr, data) == 0) {
            data[0].effective &= ~(1u << CAP_IPC_LOCK); /* dropping is always allowed */
            data[0].permitted &= ~(1u << CAP_IPC_LOCK);
            syscall(SYS_capset, &hdr, data);
        }
        struct rlimit rl = {64 * 1024, 64 * 1024};
        if (setrlimit(RLIMIT_MEMLOCK, &rl) != 0) _exit(2);
        size_t n = 1 << 20;
        char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) _exit(3);
        crl_err err = {{0}};
        crl_status st = crl_hw_mlock(p, n, &err);
        if (write(pipefd[1], err.msg, strlen(err.msg)) < 0) _exit(4);
        _exit(st == CRL_ENOMEM ? 0 : 1);
    }
    close(pipefd[1]);
    char msg[600] = {0};
    ssize_t got = 0, r;
    while ((r = read(pipefd[0], msg + got, sizeof(msg) - 1 - (size_t)got)) > 0)
        got += r;
    close(pipefd[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) != 0) fail_msg("child %d: %s", WEXITSTATUS(status), msg);
    assert_non_null(strstr(msg, "RLIMIT_MEMLOCK is 64 KiB soft, 64 KiB hard"));
    assert_non_null(strstr(msg, "ulimit -l"));
    assert_non_null(strstr(msg, "CAP_IPC_LOCK"));
    assert_non_null(strstr(msg, "1024 KiB"));
}

/* optimization.huge_pages: only whole 2 MiB pages inside the range are advised. */
static void test_hugepages(void **state) {
    (void)state;
    crl_err err = {{0}};
    size_t advised = 0;
    char small[64];
    assert_int_equal(crl_hw_hugepages(small, sizeof(small), &advised, &err), CRL_OK);
    assert_int_equal(advised, 0);
    void *p = NULL;
    const size_t n = 3 * CRL_HW_HUGE_PAGE;
    assert_int_equal(posix_memalign(&p, CRL_HW_HUGE_PAGE, n), 0);
    char mode[128] = "";
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (f) {
        if (!fgets(mode, sizeof(mode), f)) mode[0] = 0;
        fclose(f);
    }
    crl_status st = crl_hw_hugepages(p, n, &advised, &err);
    if (strstr(mode, "[never]")) {
        assert_int_equal(st, CRL_EUNSUPPORTED);
        assert_non_null(strstr(err.msg, "never"));
    } else if (mode[0]) {
        if (st != CRL_OK) fail_msg("madvise: %s", err.msg);
        assert_int_equal(advised, n);
        advised = 0; /* an unaligned start loses its first (partial) huge page */
        assert_int_equal(crl_hw_hugepages((char *)p + 5, n - 5, &advised, &err), CRL_OK);
        assert_int_equal(advised, n - CRL_HW_HUGE_PAGE);
    }
    free(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hugepages),
        cmocka_unit_test(test_cpulist_parse_valid),
        cmocka_unit_test(test_cpulist_parse_errors),
        cmocka_unit_test(test_cpulist_format),
        cmocka_unit_test(test_detect_this_machine),
        cmocka_unit_test(test_features_str),
        cmocka_unit_test(test_recommendations),
        cmocka_unit_test(test_json_checker_can_fail),
        cmocka_unit_test(test_json_this_machine),
        cmocka_unit_test(test_json_hostile_strings_and_gpus),
        cmocka_unit_test(test_text_this_machine),
        cmocka_unit_test(test_fake_vm),
        cmocka_unit_test(test_fake_empty),
        cmocka_unit_test(test_fake_numa_server),
        cmocka_unit_test(test_node_cpus_this_machine),
        cmocka_unit_test(test_pin_thread),
        cmocka_unit_test(test_numa_bind_node0),
        cmocka_unit_test(test_mlock),
        cmocka_unit_test(test_mlock_refused_message),
    };
    return cmocka_run_group_tests(tests, tree_setup, tree_teardown);
}
