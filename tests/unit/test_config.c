/* test_config.c: the option table: precedence (default < file < env < cli) for every value type,
 * sources, value syntax (booleans, sizes, lists), errors with file:line and suggestions, the
 * shipped profiles, and docs/configuration.md matching the table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"

#define SRC_DIR CRL_TEST_DATA "/../.."

static const char *write_tmp(const char *name, const char *text) {
    static char path[256];
    snprintf(path, sizeof(path), "/tmp/crl_test_config_%d_%s", (int)getpid(), name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static crl_status load(crl_config_t *c, crl_err *err, int argc, ...) {
    char *argv[16];
    va_list ap;
    va_start(ap, argc);
    for (int i = 0; i < argc; i++)
        argv[i] = va_arg(ap, char *);
    va_end(ap);
    crl_config_args_t args = {.command = "test"};
    memset(err, 0, sizeof(*err));
    return crl_config_load(c, argc, argv, &args, err);
}

static void clear_env(void) {
    const char *names[] = {"CONFIG_FILE",
                           "CARLARL_PROFILE",
                           "PORT",
                           "SERVER_PORT",
                           "HOST",
                           "SERVER_HOST",
                           "LOG_LEVEL",
                           "LOGGING_LEVEL",
                           "CORS_ORIGINS",
                           "SECURITY_CORS_ORIGINS",
                           "MAX_REQUEST_SIZE",
                           "SERVER_MAX_REQUEST_SIZE",
                           "SERVER_REQUEST_TIMEOUT",
                           "OPTIMIZATION_MEMORY_PINNING",
                           "SERVER_WORKER_CPUS",
                           "OMP_NUM_THREADS",
                           "MKL_NUM_THREADS",
                           "OPENBLAS_NUM_THREADS",
                           "OPTIMIZATION_CPU_THREADS",
                           "ENABLE_AVX512",
                           "OPTIMIZATION_ENABLE_AVX512",
                           "MODEL_DEVICE",
                           "WORKERS"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        unsetenv(names[i]);
}

/* One row of the precedence matrix: a key, values for file/env/cli and a check of the result. */
typedef struct row {
    const char *section, *key, *file_val, *env_name, *env_val, *flag, *cli_val;
    void (*check)(const crl_config_t *c, int level); /* level 0 default .. 3 cli */
} row_t;

static void ck_port(const crl_config_t *c, int l) {
    long want[] = {8080, 9001, 9002, 9003};
    assert_int_equal(c->server.port, want[l]);
}
static void ck_host(const crl_config_t *c, int l) {
    const char *want[] = {"127.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.3"};
    assert_string_equal(c->server.host, want[l]);
}
static void ck_pin(const crl_config_t *c, int l) {
    int want[] = {0, 1, 0, 1};
    assert_int_equal(c->optimization.memory_pinning, want[l]);
}
static void ck_timeout(const crl_config_t *c, int l) {
    double want[] = {10, 1.5, 2.5, 3.5};
    assert_true(c->server.request_timeout == want[l]);
}
static void ck_size(const crl_config_t *c, int l) {
    uint64_t want[] = {16u << 20, 512u << 20, 1000000000ull, 4096};
    assert_true(c->server.max_request_size == want[l]);
}
static void ck_list(const crl_config_t *c, int l) {
    size_t want_n[] = {1, 2, 2, 1};
    assert_int_equal(c->security.cors_origins.n, want_n[l]);
    const char *first[] = {"*", "http://a", "http://c", "http://e"};
    assert_string_equal(c->security.cors_origins.items[0], first[l]);
}
static void ck_level(const crl_config_t *c, int l) {
    int want[] = {1, 3, 0, 2}; /* INFO, ERROR, DEBUG, WARNING */
    assert_int_equal(c->logging.level, want[l]);
}
static void ck_cpus(const crl_config_t *c, int l) {
    const char *want[] = {"", "0", "0-1", "1"};
    assert_string_equal(c->server.worker_cpus, want[l]);
}

static const row_t k_rows[] = {
    {"server", "port", "9001", "PORT", "9002", "--port", "9003", ck_port},
    {"server", "host", "\"10.0.0.1\"", "SERVER_HOST", "10.0.0.2", "--host", "10.0.0.3", ck_host},
    {"optimization", "memory_pinning", "yes", "OPTIMIZATION_MEMORY_PINNING", "off",
     "--optimization-memory-pinning", "on", ck_pin},
    {"server", "request_timeout", "1.5", "SERVER_REQUEST_TIMEOUT", "2.5",
     "--server-request-timeout", "3.5", ck_timeout},
    {"server", "max_request_size", "512MiB", "MAX_REQUEST_SIZE", "1GB", "--max-body-size", "4096",
     ck_size},
    {"security", "cors_origins", "[\"http://a\", \"http://b\"]", "CORS_ORIGINS",
     " http://c , http://d ", "--cors-origins", "http://e", ck_list},
    {"logging", "level", "error", "LOG_LEVEL", "debug", "--log-level", "WARNING", ck_level},
    {"server", "worker_cpus", "\"0\"", "SERVER_WORKER_CPUS", "0-1", "--worker-cpus", "1", ck_cpus},
};

static void test_precedence_matrix(void **state) {
    (void)state;
    crl_config_t *c = malloc(sizeof(*c));
    crl_err err;
    for (size_t r = 0; r < sizeof(k_rows) / sizeof(k_rows[0]); r++) {
        const row_t *row = &k_rows[r];
        char yaml[512], flagv[64];
        snprintf(yaml, sizeof(yaml), "%s:\n  %s: %s\n", row->section, row->key, row->file_val);
        const char *path = write_tmp("matrix.yaml", yaml);
        snprintf(flagv, sizeof(flagv), "%s", row->cli_val);
        for (int level = 0; level < 4; level++) {
            clear_env();
            if (level >= 2) setenv(row->env_name, row->env_val, 1);
            crl_status st;
            if (level == 0)
                st = load(c, &err, 0);
            else if (level < 3)
                st = load(c, &err, 2, "--config", path);
            else
                st = load(c, &err, 4, "--config", path, row->flag, flagv);
            if (st != CRL_OK)
                fail_msg("%s.%s level %d: %s", row->section, row->key, level, err.msg);
            row->check(c, level);
            const char *where = crl_config_where(c, row->section, row->key);
            if (level == 0) assert_string_equal(where, "default");
            if (level == 1) assert_non_null(strstr(where, "matrix.yaml:2"));
            if (level == 2) assert_non_null(strstr(where, row->env_name));
            if (level == 3) assert_string_equal(where, row->flag);
        }
    }
    clear_env();
    free(c);
}

static void expect_error(const char *yaml, const char *needle) {
    crl_config_t *c = malloc(sizeof(*c));
    crl_err err;
    const char *path = write_tmp("err.yaml", yaml);
    assert_int_not_equal(load(c, &err, 2, "--config", path), CRL_OK);
    if (strstr(err.msg, needle) == NULL) fail_msg("'%s' not in '%s'", needle, err.msg);
    assert_int_not_equal(crl_config_check_file(path, &err), CRL_OK);
    free(c);
}

static void test_file_errors(void **state) {
    (void)state;
    clear_env();
    expect_error("server:\n  port: 8080\n  prot: 1\n",
                 "err.yaml:3: server.prot: unknown key (did you mean server.port?)");
    expect_error("optimization:\n  enable_avx3: true\n",
                 "optimization.enable_avx3: unknown key (did you mean optimization.enable_avx");
    expect_error("servr:\n  port: 1\n", "servr: unknown section (did you mean server?)");
    expect_error("server:\n  port: eighty\n",
                 "err.yaml:2: server.port: expected an integer, got 'eighty'");
    expect_error("server:\n  port: 70000\n", "err.yaml:2: server.port: 70000 is outside 0..65535");
    expect_error("optimization:\n  memory_pinning: maybe\n", "expected a boolean");
    expect_error("server:\n  max_request_size: lots\n", "expected a size");
    expect_error("logging:\n  level: loud\n", "'loud' is not one of DEBUG, INFO");
    expect_error("server:\n  worker_cpus: \"3-1\"\n", "expected a cpu list");
    expect_error("server:\n  port: [1, 2]\n", "expected a single value");
    expect_error("security:\n  cors_origins: []\n", "the list is empty");
    expect_error("server: [\n", "err.yaml:");
    expect_error("- a\n- b\n", "expected a map of sections");
}

static void test_env_and_cli_errors(void **state) {
    (void)state;
    crl_config_t *c = malloc(sizeof(*c));
    crl_err err;
    clear_env();
    setenv("SERVER_PORT", "http", 1);
    assert_int_not_equal(load(c, &err, 0), CRL_OK);
    assert_string_equal(err.msg, "env SERVER_PORT: server.port: expected an integer, got 'http'");
    clear_env();
    setenv("OMP_NUM_THREADS", "1000", 1);
    assert_int_not_equal(load(c, &err, 0), CRL_OK);
    assert_non_null(strstr(err.msg, "env OMP_NUM_THREADS: optimization.cpu_threads: 1000 is"));
    clear_env();
    assert_int_not_equal(load(c, &err, 2, "--prot", "1"), CRL_OK);
    assert_string_equal(err.msg, "unknown option '--prot' (did you mean --port?)");
    assert_int_not_equal(load(c, &err, 2, "--set", "server.prot=1"), CRL_OK);
    assert_non_null(strstr(err.msg, "did you mean server.port?"));
    assert_int_equal(load(c, &err, 2, "--set", "model.device=cuda:1"), CRL_OK);
    assert_int_equal(c->model.device, CRL_DEVICE_CUDA);
    assert_int_not_equal(load(c, &err, 1, "--port"), CRL_OK);
    assert_non_null(strstr(err.msg, "needs a value"));
    free(c);
}

static void test_value_syntax(void **state) {
    (void)state;
    crl_config_t *c = malloc(sizeof(*c));
    crl_err err;
    clear_env();
    const char *t[] = {"true", "1", "yes", "on", "TRUE", "Yes"},
               *f[] = {"false", "0", "no", "off", "Off"};
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(load(c, &err, 2, "--optimization-memory-pinning", t[i]), CRL_OK);
        assert_int_equal(c->optimization.memory_pinning, 1);
    }
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(load(c, &err, 2, "--optimization-memory-pinning", f[i]), CRL_OK);
        assert_int_equal(c->optimization.memory_pinning, 0);
    }
    /* A boolean flag alone means true; a following flag or value is not taken as its value. */
    assert_int_equal(load(c, &err, 1, "--optimization-memory-pinning"), CRL_OK);
    assert_int_equal(c->optimization.memory_pinning, 1);
    assert_int_equal(load(c, &err, 3, "--optimization-memory-pinning", "--port", "9001"), CRL_OK);
    assert_int_equal(c->optimization.memory_pinning, 1);
    assert_int_equal(c->server.port, 9001);
    assert_int_equal(load(c, &err, 1, "--optimization-memory-pinning=off"), CRL_OK);
    assert_int_equal(c->optimization.memory_pinning, 0);
    assert_int_equal(load(c, &err, 1, "--port"), CRL_EINVAL); /* a non-boolean still needs one */
    struct {
        const char *text;
        uint64_t bytes;
    } sizes[] = {
        {"2048", 2048}, {"512MiB", 512ull << 20}, {"1GB", 1000000000ull}, {"16M", 16ull << 20},
        {"2KB", 2000},  {"1KiB", 1024},           {"0.5GiB", 1ull << 29}, {"64k", 65536}};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        assert_int_equal(load(c, &err, 2, "--max-body-size", sizes[i].text), CRL_OK);
        assert_true(c->server.max_request_size == sizes[i].bytes);
    }
    assert_int_equal(load(c, &err, 2, "--set", "optimization.unified_memory_limit=24GB"), CRL_OK);
    assert_true(c->optimization.unified_memory_limit == 24000000000ull);
    assert_int_equal(load(c, &err, 2, "--allowed-hosts", "a.test,, *.b.test ,"), CRL_OK);
    assert_int_equal(c->security.allowed_hosts.n, 2);
    assert_string_equal(c->security.allowed_hosts.items[1], "*.b.test");
    /* The guide's thread variables set the inference threads; the canonical name wins. */
    setenv("OMP_NUM_THREADS", "3", 1);
    assert_int_equal(load(c, &err, 0), CRL_OK);
    assert_int_equal(c->optimization.cpu_threads, 3);
    setenv("OPTIMIZATION_CPU_THREADS", "5", 1);
    assert_int_equal(load(c, &err, 0), CRL_OK);
    assert_int_equal(c->optimization.cpu_threads, 5);
    assert_string_equal(crl_config_where(c, "optimization", "cpu_threads"),
                        "env OPTIMIZATION_CPU_THREADS");
    clear_env();
    free(c);
}

static void test_shipped_profiles_load(void **state) {
    (void)state;
    const char *names[] = {"intel-optimized", "nvidia-optimized", "mac-m4-max-optimized",
                           "development",     "production",       "testing"};
    crl_config_t *c = malloc(sizeof(*c));
    crl_err err;
    clear_env();
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char path[512];
        snprintf(path, sizeof(path), SRC_DIR "/config/%s.yaml", names[i]);
        if (load(c, &err, 2, "--profile", path) != CRL_OK) fail_msg("%s: %s", names[i], err.msg);
        assert_int_equal(crl_config_check_file(path, &err), CRL_OK);
    }
    /* The guide's values arrive as written. */
    char path[512];
    snprintf(path, sizeof(path), SRC_DIR "/config/mac-m4-max-optimized.yaml");
    assert_int_equal(load(c, &err, 2, "--profile", path), CRL_OK);
    assert_true(c->optimization.unified_memory_limit == 24000000000ull);
    assert_int_equal(c->model.device, CRL_DEVICE_MPS);
    assert_string_equal(c->optimization.memory_efficiency, "high");
    /* --config wins over --profile. */
    const char *over = write_tmp("over.yaml", "model:\n  device: cpu\n");
    assert_int_equal(load(c, &err, 4, "--profile", path, "--config", over), CRL_OK);
    assert_int_equal(c->model.device, CRL_DEVICE_CPU);
    assert_int_not_equal(load(c, &err, 2, "--profile", "no-such-profile"), CRL_OK);
    assert_non_null(strstr(err.msg, "no profile 'no-such-profile'"));
    free(c);
}

static void test_reference_page_is_current(void **state) {
    (void)state;
    crl_buf want;
    crl_buf_init(&want, 1u << 20);
    crl_config_write_markdown(&want);
    FILE *f = fopen(SRC_DIR "/docs/configuration.md", "r");
    assert_non_null(f);
    char *have = calloc(1, 1u << 20);
    size_t n = fread(have, 1, (1u << 20) - 1, f);
    fclose(f);
    if (n != want.len || memcmp(have, want.data, n) != 0)
        fail_msg("docs/configuration.md is stale: regenerate it with "
                 "`build/carlarl config --markdown > docs/configuration.md`");
    free(have);
    crl_buf_free(&want);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_precedence_matrix),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_env_and_cli_errors),
        cmocka_unit_test(test_value_syntax),
        cmocka_unit_test(test_shipped_profiles_load),
        cmocka_unit_test(test_reference_page_is_current),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
