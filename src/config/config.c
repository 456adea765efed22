/* config.c: the option table and everything it drives: defaults, YAML files, environment,
 * command line, source tracking, no-effect warnings, `carlarl config` and the reference page. */
#include "config/config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config/yaml.h"
#include "core/log.h"

typedef enum opt_type { T_BOOL, T_INT, T_FLOAT, T_SIZE, T_STR, T_LIST, T_ENUM, T_CPULIST } opt_type;

typedef struct opt {
    const char *section, *key;
    opt_type type;
    size_t off, cap;
    const char *def;
    double min, max;
    const char *const *choices;
    const char *env[6]; /* aliases besides SECTION_KEY */
    const char *cli[3]; /* aliases besides --section-key */
    int reloadable;
    const char *(*no_effect)(const crl_config_t *c);
    const char *doc;
} opt_t;

static const char *const k_devices[] = {"auto", "cpu", "cuda", "mps", NULL};
static const char *const k_precisions[] = {"float32", "float16", "bfloat16", "int8", NULL};
static const char *const k_levels[] = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", NULL};
/* In the order of crl_log_format (core/log.h). */
static const char *const k_log_formats[] = {"json", "text", "auto", NULL};
static const char *const k_isas[] = {"auto", "generic", "avx2", "avx512", "neon", NULL};
static const char *const k_efficiency[] = {"low", "medium", "high", NULL};
/* In the order of crl_cache_backend (cache/cache.h). */
static const char *const k_cache_backends[] = {"none", "memory", "redis", NULL};

/* ---- why a key has no effect on this platform (NULL: it has one) ---------------------------- */

#if defined(__x86_64__)
#define CRL_X86 1
#else
#define CRL_X86 0
#endif

static const char *ne_batching(const crl_config_t *c) {
    (void)c;
    return "the dynamic batcher is configured in the batching section (batching.max_batch_size, "
           "batching.preferred_batch_sizes)";
}
static const char *ne_optimize(const crl_config_t *c) {
    (void)c;
    return "graph passes (bias folding) always run when a model loads";
}
static const char *ne_cuda(const crl_config_t *c) {
    (void)c;
    return "this build has no CUDA backend (TensorRT and GPU memory settings need one)";
}
static const char *ne_apple(const crl_config_t *c) {
    (void)c;
    return "Metal, the Neural Engine and unified memory exist only on Apple silicon under macOS";
}
static const char *ne_use_gpu(const crl_config_t *c) {
    return c->model.use_gpu ? "this build has no CUDA backend; serving on cpu" : NULL;
}
static const char *ne_sse(const crl_config_t *c) {
    (void)c;
    return CRL_X86 ? "SSE is part of the x86-64 baseline every kernel table builds on"
                   : "SSE is an x86 instruction set; this CPU is not x86";
}
static const char *ne_avx(const crl_config_t *c) {
    (void)c;
    return CRL_X86 ? NULL : "AVX is an x86 instruction set; this CPU is not x86";
}
#if defined(__aarch64__)
#define CRL_ARM64 1
#else
#define CRL_ARM64 0
#endif
static const char *ne_neon(const crl_config_t *c) {
    (void)c;
    if (CRL_X86)
        return "NEON is ARM's instruction set; this CPU is x86_64 (see enable_avx2/avx512)";
    return CRL_ARM64 ? NULL : "carlarl has NEON kernels for aarch64 only; the generic kernels run";
}
/* model.use_neon is the original's switch; here optimization.enable_neon and isa choose. */
static const char *ne_use_neon(const crl_config_t *c) {
    if (CRL_ARM64)
        return "the neon kernel table is chosen by optimization.enable_neon and optimization.isa";
    return ne_neon(c);
}
static const char *ne_mkl(const crl_config_t *c) {
    (void)c;
    return "carlarl runs its own kernels; it does not use Intel MKL";
}
static const char *ne_cache(const crl_config_t *c) {
    (void)c;
    return "the response cache is sized by cache.size (cache.backend: memory)";
}
static const char *ne_not_redis(const crl_config_t *c) {
    return c->cache.backend == 2 ? NULL : "cache.backend is not redis";
}
static const char *ne_not_memory(const crl_config_t *c) {
    return c->cache.backend == 1 ? NULL : "cache.backend is not memory";
}
static const char *ne_no_cache(const crl_config_t *c) {
    return c->cache.backend != 0 ? NULL : "cache.backend is none";
}
static const char *ne_no_helpers(const crl_config_t *c) {
    return c->optimization.compute_threads > 1
               ? NULL
               : "optimization.compute_threads is 1: every batch runs on one thread";
}
static const char *ne_monitoring_off(const crl_config_t *c) {
    return c->monitoring.enabled ? NULL : "monitoring.enabled is false";
}
static const char *ne_efficiency(const crl_config_t *c) {
    (void)c;
    return "carlarl plans its memory once per model; there is nothing to trade";
}

#define OFF(f) offsetof(crl_config_t, f), sizeof(((crl_config_t *)0)->f)
#define NOENV                                                                                      \
    { NULL }
#define NOCLI                                                                                      \
    { NULL }

static const opt_t k_opts[] = {
    /* server */
    {"server",
     "host",
     T_STR,
     OFF(server.host),
     "127.0.0.1",
     0,
     0,
     NULL,
     {"HOST"},
     {"--host"},
     0,
     NULL,
     "Listen address; 0.0.0.0 or :: for all interfaces."},
    {"server",
     "port",
     T_INT,
     OFF(server.port),
     "8080",
     0,
     65535,
     NULL,
     {"PORT"},
     {"--port"},
     0,
     NULL,
     "Listen port; 0 picks a free one (logged)."},
    {"server",
     "workers",
     T_INT,
     OFF(server.workers),
     "0",
     0,
     256,
     NULL,
     {"WORKERS"},
     {"--workers"},
     0,
     NULL,
     "Event-loop threads, each with its own SO_REUSEPORT listener; inference runs inline on them "
     "unless batching.enabled. 0: optimization.cpu_threads, else the online CPUs."},
    {"server",
     "worker_cpus",
     T_CPULIST,
     OFF(server.worker_cpus),
     "",
     0,
     0,
     NULL,
     NOENV,
     {"--worker-cpus"},
     0,
     NULL,
     "CPU affinity of the worker threads, a cpu list like 0-3,8: worker i runs on the i-th CPU "
     "of the list (round robin). Empty: no pinning."},
    {"server",
     "max_request_size",
     T_SIZE,
     OFF(server.max_request_size),
     "16MiB",
     1024,
     1073741824.0,
     NULL,
     {"MAX_REQUEST_SIZE"},
     {"--max-body-size"},
     0,
     NULL,
     "Request body cap; larger bodies get 413."},
    {"server", "request_timeout", T_FLOAT, OFF(server.request_timeout), "10", 0.1, 3600, NULL,
     NOENV, NOCLI, 0, NULL,
     "Seconds an HTTP/1 connection may take to deliver a request, and may stay idle between "
     "requests."},
    {"server",
     "gzip_min_size",
     T_INT,
     OFF(server.gzip_min_size),
     "1000",
     0,
     1073741824.0,
     NULL,
     {"GZIP_MIN_SIZE"},
     NOCLI,
     0,
     NULL,
     "Responses of at least this many bytes are gzip-compressed when the client accepts gzip; "
     "0 disables compression."},
    {"server",
     "git_sha",
     T_STR,
     OFF(server.git_sha),
     "",
     0,
     0,
     NULL,
     {"GIT_SHA"},
     {"--git-sha"},
     0,
     NULL,
     "Reported as `git` by /healthz; empty: the commit carlarl was built from."},
    /* model */
    {"model",
     "artifact_dir",
     T_STR,
     OFF(model.artifact_dir),
     "artifacts",
     0,
     0,
     NULL,
     {"ARTIFACT_DIR"},
     {"--artifact-dir"},
     0,
     NULL,
     "Root of the vX.Y.Z/ version directories; absent: the built-in example policy."},
    {"model",
     "version",
     T_STR,
     OFF(model.version),
     "",
     0,
     0,
     NULL,
     {"MODEL_VERSION"},
     {"--model-version"},
     0,
     NULL,
     "Serve this version; empty: the newest stable, else the newest prerelease."},
    {"model",
     "device",
     T_ENUM,
     OFF(model.device),
     "auto",
     0,
     0,
     k_devices,
     NOENV,
     {"--device"},
     0,
     NULL,
     "auto or cpu. cuda (cuda:N) and mps are refused at start-up until a backend exists."},
    {"model", "precision", T_ENUM, OFF(model.precision), "float32", 0, 0, k_precisions, NOENV,
     NOCLI, 0, NULL,
     "float32, or bfloat16 on CPUs with AVX512_BF16 (the avx512 kernels): weights and "
     "activations of the linear and convolution layers rounded to bfloat16, sums in float32; "
     "`carlarl check` prints the error against float32. float16 and int8 are refused at "
     "start-up."},
    {"model",
     "use_gpu",
     T_BOOL,
     OFF(model.use_gpu),
     "false",
     0,
     0,
     NULL,
     {"USE_GPU"},
     {"--use-gpu"},
     0,
     ne_use_gpu,
     "The original's switch for CUDA; this build serves on cpu."},
    {"model", "batch_size", T_INT, OFF(model.batch_size), "1", 1, 1000, NULL, NOENV, NOCLI, 0,
     ne_batching, "The original's preferred batch; see batching.preferred_batch_sizes."},
    {"model", "max_batch_size", T_INT, OFF(model.max_batch_size), "32", 1, 1000, NULL, NOENV, NOCLI,
     0, ne_batching, "The original's largest batch; see batching.max_batch_size."},
    {"model", "optimize", T_BOOL, OFF(model.optimize), "true", 0, 0, NULL, NOENV, NOCLI, 0,
     ne_optimize, "Graph optimisation at load (always on)."},
    {"model", "use_tensorrt", T_BOOL, OFF(model.use_tensorrt), "false", 0, 0, NULL, NOENV, NOCLI, 0,
     ne_cuda, "TensorRT (needs a CUDA backend)."},
    {"model", "use_mps", T_BOOL, OFF(model.use_mps), "false", 0, 0, NULL, NOENV, NOCLI, 0, ne_apple,
     "Metal Performance Shaders (Apple silicon)."},
    {"model", "use_neon", T_BOOL, OFF(model.use_neon), "false", 0, 0, NULL, NOENV, NOCLI, 0,
     ne_use_neon, "NEON kernels (ARM)."},
    {"model", "use_neural_engine", T_BOOL, OFF(model.use_neural_engine), "false", 0, 0, NULL, NOENV,
     NOCLI, 0, ne_apple, "Apple Neural Engine."},
    /* optimization */
    {"optimization",
     "enable_sse",
     T_BOOL,
     OFF(optimization.enable_sse),
     "true",
     0,
     0,
     NULL,
     {"ENABLE_SSE"},
     NOCLI,
     0,
     ne_sse,
     "SSE (the x86-64 baseline)."},
    {"optimization",
     "enable_avx",
     T_BOOL,
     OFF(optimization.enable_avx),
     "true",
     0,
     0,
     NULL,
     {"ENABLE_AVX"},
     NOCLI,
     0,
     ne_avx,
     "Allow AVX-family kernels at all; false leaves the generic kernels."},
    {"optimization",
     "enable_avx2",
     T_BOOL,
     OFF(optimization.enable_avx2),
     "true",
     0,
     0,
     NULL,
     {"ENABLE_AVX2"},
     NOCLI,
     0,
     ne_avx,
     "Allow the AVX2+FMA kernel table."},
    {"optimization",
     "enable_avx512",
     T_BOOL,
     OFF(optimization.enable_avx512),
     "true",
     0,
     0,
     NULL,
     {"ENABLE_AVX512"},
     NOCLI,
     0,
     ne_avx,
     "Allow the AVX-512 kernel table; false makes the next-best table the choice."},
    {"optimization",
     "enable_neon",
     T_BOOL,
     OFF(optimization.enable_neon),
     "true",
     0,
     0,
     NULL,
     {"ENABLE_NEON"},
     NOCLI,
     0,
     ne_neon,
     "Allow NEON kernels (ARM)."},
    {"optimization",
     "enable_mkl",
     T_BOOL,
     OFF(optimization.enable_mkl),
     "false",
     0,
     0,
     NULL,
     {"ENABLE_MKL"},
     NOCLI,
     0,
     ne_mkl,
     "Intel MKL (not used)."},
    {"optimization",
     "isa",
     T_ENUM,
     OFF(optimization.isa),
     "auto",
     0,
     0,
     k_isas,
     {"CRL_ISA"},
     {"--isa"},
     0,
     NULL,
     "Force a kernel table (generic, avx2, avx512, neon); auto picks the best allowed one."},
    {"optimization",
     "cpu_threads",
     T_INT,
     OFF(optimization.cpu_threads),
     "0",
     0,
     256,
     NULL,
     {"OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"},
     {"--cpu-threads"},
     0,
     NULL,
     "Threads that run inference. Inference runs inline on the event-loop workers, so this sets "
     "server.workers when that is 0. 0: the online CPUs."},
    {"optimization",
     "compute_threads",
     T_INT,
     OFF(optimization.compute_threads),
     "1",
     1,
     256,
     NULL,
     {"COMPUTE_THREADS"},
     {"--compute-threads"},
     0,
     NULL,
     "Threads that share one large batch: the worker that took the request runs one share and "
     "compute_threads-1 helper threads the others, in contiguous row chunks (outputs are bit for "
     "bit those of one thread). Batch 1 always runs on the worker alone. While one batch holds "
     "the helpers, a large batch arriving on another worker runs there alone rather than wait. "
     "The helpers add to the server.workers event loops, which already take one CPU each: raise "
     "this when large batches are few and their latency matters, or lower server.workers to make "
     "room. Each helper holds a workspace for its share of the largest batch. 1: no helpers."},
    {"optimization",
     "parallel_min_rows",
     T_INT,
     OFF(optimization.parallel_min_rows),
     "0",
     0,
     1000000,
     NULL,
     {"PARALLEL_MIN_ROWS"},
     {"--parallel-min-rows"},
     0,
     ne_no_helpers,
     "Smallest batch split across the compute threads (batch 1 never is). 0: chosen per model at "
     "load, the rows whose forward pass takes about 30 us on one thread (measured); 1 means 2."},
    {"optimization",
     "compute_cpus",
     T_CPULIST,
     OFF(optimization.compute_cpus),
     "",
     0,
     0,
     NULL,
     NOENV,
     {"--compute-cpus"},
     0,
     ne_no_helpers,
     "CPU affinity of the compute helper threads, a cpu list: helper i runs on the i-th CPU of "
     "the list (round robin). Empty: the helpers may run on any CPU of server.worker_cpus when "
     "that is set (and of optimization.numa_node's CPUs when that is set), else anywhere."},
    {"optimization", "memory_pinning", T_BOOL, OFF(optimization.memory_pinning), "false", 0, 0,
     NULL, NOENV, NOCLI, 0, NULL,
     "mlock the model weights and the workers' activation buffers (warns when RLIMIT_MEMLOCK "
     "forbids it)."},
    {"optimization", "huge_pages", T_BOOL, OFF(optimization.huge_pages), "false", 0, 0, NULL, NOENV,
     NOCLI, 0, NULL,
     "Back the workspace arenas (activations, planned at model load for the largest batch) with "
     "transparent huge pages: madvise(MADV_HUGEPAGE) of each arena of 2 MiB or more, which is "
     "allocated 2 MiB aligned. Warns when the kernel has THP off; smaller arenas are left as they "
     "are."},
    {"optimization",
     "numa_node",
     T_INT,
     OFF(optimization.numa_node),
     "-1",
     -1,
     1023,
     NULL,
     NOENV,
     {"--numa-node"},
     0,
     NULL,
     "Bind threads to this NUMA node's CPUs and memory to the node (numactl --cpunodebind "
     "--membind); -1: no binding."},
    {"optimization", "cache_size", T_INT, OFF(optimization.cache_size), "0", 0, 100000000, NULL,
     NOENV, NOCLI, 0, ne_cache, "Kept for the original's configuration files; see cache.size."},
    {"optimization", "enable_cuda", T_BOOL, OFF(optimization.enable_cuda), "false", 0, 0, NULL,
     NOENV, NOCLI, 0, ne_cuda, "CUDA kernels."},
    {"optimization",
     "enable_tensorrt",
     T_BOOL,
     OFF(optimization.enable_tensorrt),
     "false",
     0,
     0,
     NULL,
     {"ENABLE_TENSORRT"},
     NOCLI,
     0,
     ne_cuda,
     "TensorRT."},
    {"optimization", "gpu_memory_fraction", T_FLOAT, OFF(optimization.gpu_memory_fraction), "0.8",
     0, 1, NULL, NOENV, NOCLI, 0, ne_cuda, "Share of GPU memory to use."},
    {"optimization",
     "cuda_visible_devices",
     T_STR,
     OFF(optimization.cuda_visible_devices),
     "",
     0,
     0,
     NULL,
     {"CUDA_VISIBLE_DEVICES"},
     NOCLI,
     0,
     ne_cuda,
     "GPUs to use."},
    {"optimization",
     "enable_mps",
     T_BOOL,
     OFF(optimization.enable_mps),
     "false",
     0,
     0,
     NULL,
     {"ENABLE_MPS"},
     NOCLI,
     0,
     ne_apple,
     "Metal Performance Shaders."},
    {"optimization",
     "enable_neural_engine",
     T_BOOL,
     OFF(optimization.enable_neural_engine),
     "false",
     0,
     0,
     NULL,
     {"ENABLE_NEURAL_ENGINE"},
     NOCLI,
     0,
     ne_apple,
     "Apple Neural Engine."},
    {"optimization", "memory_efficiency", T_ENUM, OFF(optimization.memory_efficiency), "medium", 0,
     0, k_efficiency, NOENV, NOCLI, 0, ne_efficiency, "Memory/speed trade-off."},
    {"optimization",
     "unified_memory_limit",
     T_SIZE,
     OFF(optimization.unified_memory_limit),
     "0",
     0,
     1e18,
     NULL,
     {"MPS_DEVICE_MEMORY_LIMIT"},
     NOCLI,
     0,
     ne_apple,
     "Unified memory limit (Apple silicon)."},
    /* cache */
    {"cache",
     "backend",
     T_ENUM,
     OFF(cache.backend),
     "none",
     0,
     0,
     k_cache_backends,
     NOENV,
     {"--cache"},
     0,
     NULL,
     "Response cache of POST /predict: none, memory (in this process, LRU) or redis (shared by "
     "replicas). Only deterministic requests are cached; the key hashes the model version, its "
     "artifact hashes and the exact preprocessed features, so a hit is the model's own answer "
     "and a new version never meets an old one. A failing or slow Redis costs a computed "
     "request and a carla_rl_cache_errors_total count, never a failed one."},
    {"cache", "size", T_INT, OFF(cache.size), "10000", 1, 100000000, NULL, NOENV, NOCLI, 0,
     ne_not_memory,
     "Entries of the memory cache, allocated at start-up (each holds cache.max_observations "
     "actions); the least recently used goes first."},
    {"cache", "ttl", T_FLOAT, OFF(cache.ttl), "300", 0, 31536000, NULL, NOENV, NOCLI, 0,
     ne_no_cache, "Seconds an entry lives; 0: until evicted (memory) or forever (redis)."},
    {"cache", "max_observations", T_INT, OFF(cache.max_observations), "16", 1, 1024, NULL, NOENV,
     NOCLI, 0, ne_no_cache, "Requests with more observations than this bypass the cache."},
    {"cache",
     "host",
     T_STR,
     OFF(cache.host),
     "127.0.0.1",
     0,
     0,
     NULL,
     {"REDIS_HOST"},
     NOCLI,
     0,
     ne_not_redis,
     "Redis host name or address."},
    {"cache",
     "port",
     T_INT,
     OFF(cache.port),
     "6379",
     1,
     65535,
     NULL,
     {"REDIS_PORT"},
     NOCLI,
     0,
     ne_not_redis,
     "Redis port."},
    {"cache",
     "db",
     T_INT,
     OFF(cache.db),
     "0",
     0,
     1000000,
     NULL,
     {"REDIS_DB"},
     NOCLI,
     0,
     ne_not_redis,
     "Redis database number (SELECT)."},
    {"cache",
     "password",
     T_STR,
     OFF(cache.password),
     "",
     0,
     0,
     NULL,
     {"REDIS_PASSWORD"},
     NOCLI,
     0,
     ne_not_redis,
     "Redis AUTH password; empty: no AUTH. Prefer the environment to a file."},
    {"cache", "key_prefix", T_STR, OFF(cache.key_prefix), "carlarl:", 0, 0, NULL, NOENV, NOCLI, 0,
     ne_not_redis,
     "Prefix of every Redis key, so replicas of one service share entries and "
     "other services do not."},
    {"cache", "timeout_ms", T_INT, OFF(cache.timeout_ms), "50", 1, 60000, NULL, NOENV, NOCLI, 0,
     ne_not_redis,
     "Milliseconds a Redis connect or command may take before the request is computed without "
     "the cache."},
    {"cache", "retry_ms", T_INT, OFF(cache.retry_ms), "1000", 0, 3600000, NULL, NOENV, NOCLI, 0,
     ne_not_redis,
     "After a Redis failure, each worker computes without the cache for this long before it "
     "connects again."},
    /* batching */
    {"batching",
     "enabled",
     T_BOOL,
     OFF(batching.enabled),
     "false",
     0,
     0,
     NULL,
     {"BATCHING_ENABLED"},
     {"--batching"},
     0,
     NULL,
     "Dynamic batcher: rows of concurrent /predict requests are merged into one forward pass on "
     "a batcher thread, and each answer is posted back to its connection's event loop. Answers "
     "are bit for bit those of the inline path. false: each request runs inline on its event "
     "loop (the lowest latency at low concurrency)."},
    {"batching",
     "max_batch_size",
     T_INT,
     OFF(batching.max_batch_size),
     "64",
     1,
     1000,
     NULL,
     {"BATCHING_MAX_BATCH_SIZE"},
     NOCLI,
     0,
     NULL,
     "Rows per forward pass. A larger request is split across passes, never refused for its "
     "size."},
    {"batching",
     "max_queue_delay_us",
     T_INT,
     OFF(batching.max_queue_delay_us),
     "100",
     0,
     1000000,
     NULL,
     {"BATCHING_MAX_QUEUE_DELAY_US"},
     NOCLI,
     0,
     NULL,
     "Microseconds the oldest queued request may wait for more rows before a pass runs anyway; "
     "a full batch or a preferred size runs at once. 0: never wait."},
    {"batching",
     "preferred_batch_sizes",
     T_LIST,
     OFF(batching.preferred_batch_sizes),
     "",
     0,
     0,
     NULL,
     {"BATCHING_PREFERRED_BATCH_SIZES"},
     NOCLI,
     0,
     NULL,
     "Queued row counts that run at once without waiting out max_queue_delay_us, e.g. 8,16,32."},
    {"batching",
     "max_queue_rows",
     T_INT,
     OFF(batching.max_queue_rows),
     "4096",
     1,
     1000000,
     NULL,
     {"BATCHING_MAX_QUEUE_ROWS"},
     NOCLI,
     0,
     NULL,
     "Rows queued or in a pass, beyond which a request is refused with overflow_status (a lone "
     "request larger than this is still taken)."},
    {"batching",
     "overflow_status",
     T_INT,
     OFF(batching.overflow_status),
     "503",
     429,
     503,
     NULL,
     {"BATCHING_OVERFLOW_STATUS"},
     NOCLI,
     0,
     NULL,
     "Status of a request refused for a full queue: 503 or 429, both with Retry-After."},
    {"batching",
     "retry_after",
     T_INT,
     OFF(batching.retry_after),
     "1",
     0,
     3600,
     NULL,
     {"BATCHING_RETRY_AFTER"},
     NOCLI,
     0,
     NULL,
     "Seconds in the Retry-After header of a refused request."},
    {"batching",
     "timeout_ms",
     T_INT,
     OFF(batching.timeout_ms),
     "1000",
     1,
     600000,
     NULL,
     {"BATCHING_TIMEOUT_MS"},
     NOCLI,
     0,
     NULL,
     "Deadline of a batched request: one not answered after this many milliseconds gets 503 "
     "from its own event loop, even while the batcher is stuck. One still wholly queued leaves "
     "the queue without any compute spent on it; the late result of one whose rows were already "
     "in a forward pass is discarded."},
    {"batching",
     "cpus",
     T_CPULIST,
     OFF(batching.cpus),
     "",
     0,
     0,
     NULL,
     {"BATCHING_CPUS"},
     NOCLI,
     0,
     NULL,
     "CPU affinity of the batcher thread, a cpu list like 2-3. Empty: optimization.compute_cpus, "
     "else anywhere in server.worker_cpus, else no pinning."},
    /* logging */
    {"logging",
     "level",
     T_ENUM,
     OFF(logging.level),
     "INFO",
     0,
     0,
     k_levels,
     {"LOG_LEVEL"},
     {"--log-level"},
     1,
     NULL,
     "DEBUG, INFO, WARNING, ERROR or CRITICAL (any case)."},
    {"logging",
     "format",
     T_ENUM,
     OFF(logging.format),
     "auto",
     0,
     0,
     k_log_formats,
     {"LOG_FORMAT"},
     {"--log-format"},
     1,
     NULL,
     "json: one flat JSON object per line (timestamp, level, event, message and the event's "
     "fields). text: `2026-11-27T12:00:00.123Z INFO  event message key=value ...`. auto: text "
     "when stderr is a terminal, else json."},
    {"logging",
     "access_log",
     T_BOOL,
     OFF(logging.access_log),
     "false",
     0,
     0,
     NULL,
     {"LOG_ACCESS"},
     NOCLI,
     1,
     NULL,
     "One `http_request` line per response at INFO (request_id, trace_id, method, path, status, "
     "duration_ms, model_version); hidden when logging.level is above INFO. false: none. Lines "
     "are written by a logger thread, never by a request thread, in batches every 20 ms; when "
     "it falls behind, lines are dropped and counted in carla_rl_log_dropped_total. Off by "
     "default. Measured cost: about 1-2 us of server CPU per request (14.3 -> 15.5 us for the "
     "example /predict with `carlarl bench -c 8 -d 3`, one worker; it was 14 -> 28 us before "
     "the logger batched its wake-ups and writes)."},
    /* monitoring */
    {"monitoring", "enabled", T_BOOL, OFF(monitoring.enabled), "true", 0, 0, NULL, NOENV, NOCLI, 0,
     NULL,
     "Per-request observability: the request, inference, stage and cache metrics (and the clock "
     "reads behind the stage timings), and the traceparent of every response. false: none of "
     "that work is done, no traceparent is sent, metrics_path answers 404 and metrics_port "
     "opens no listener. X-Request-ID, X-Process-Time and the access log stay. "
     "`bench/observability.py` measures what it costs."},
    {"monitoring",
     "trace_sample_rate",
     T_FLOAT,
     OFF(monitoring.trace_sample_rate),
     "1",
     0,
     1,
     NULL,
     {"TRACE_SAMPLE_RATE"},
     NOCLI,
     1,
     ne_monitoring_off,
     "Share (0..1) of new traces marked sampled in the traceparent sent back (W3C Trace "
     "Context). A request that brings a valid traceparent keeps its trace id and its sampled "
     "flag; one without gets a new trace."},
    {"monitoring", "metrics_path", T_STR, OFF(monitoring.metrics_path), "/metrics", 0, 0, NULL,
     NOENV, NOCLI, 0, ne_monitoring_off,
     "Path of the Prometheus exposition (GET/HEAD). It must start with `/` and replaces "
     "`/metrics`, which then answers 404; a path that another endpoint uses is refused."},
    {"monitoring", "metrics_port", T_INT, OFF(monitoring.metrics_port), "0", 0, 65535, NULL, NOENV,
     NOCLI, 0, ne_monitoring_off,
     "A port of its own for the Prometheus exposition (metrics_path), on server.host: worker 0 "
     "serves it, the main port then answers 404 for metrics_path, and the metrics port answers "
     "404 for everything else (as Triton's metrics port). 0: metrics on server.port. It must "
     "differ from server.port."},
    /* security */
    {"security",
     "cors_origins",
     T_LIST,
     OFF(security.cors_origins),
     "*",
     0,
     0,
     NULL,
     {"CORS_ORIGINS"},
     {"--cors-origins"},
     1,
     NULL,
     "Origins allowed by CORS; * allows any (credentials allowed, as the original)."},
    {"security",
     "allowed_hosts",
     T_LIST,
     OFF(security.allowed_hosts),
     "*",
     0,
     0,
     NULL,
     {"ALLOWED_HOSTS"},
     {"--allowed-hosts"},
     1,
     NULL,
     "Host header values accepted; *.example.com matches subdomains; * accepts any."},
};
#define N_OPTS (sizeof(k_opts) / sizeof(k_opts[0]))

/* Sections that exist with no keys yet: their keys come with the features that read them. */
static const char *const k_sections[] = {"server", "model",   "optimization", "batching",
                                         "cache",  "logging", "monitoring",   "security"};
#define N_SECTIONS (sizeof(k_sections) / sizeof(k_sections[0]))

_Static_assert(sizeof(k_opts) / sizeof(k_opts[0]) <= CRL_CONFIG_MAX_OPTS, "raise MAX_OPTS");

/* ---- names ------------------------------------------------------------------------------- */

static void env_name(const opt_t *o, char *out, size_t cap) {
    snprintf(out, cap, "%s_%s", o->section, o->key);
    for (char *p = out; *p; p++)
        *p = (char)toupper((unsigned char)*p);
}

static void cli_name(const opt_t *o, char *out, size_t cap) {
    snprintf(out, cap, "--%s-%s", o->section, o->key);
    for (char *p = out; *p; p++)
        if (*p == '_') *p = '-';
}

static void *field(crl_config_t *c, const opt_t *o) {
    return (char *)c + o->off;
}
static const void *cfield(const crl_config_t *c, const opt_t *o) {
    return (const char *)c + o->off;
}

/* Levenshtein distance, for "did you mean". */
static size_t edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return 99;
    size_t row[64];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t prev = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cur = row[j];
            size_t sub =
                prev + (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));
            size_t best = row[j] + 1 < row[j - 1] + 1 ? row[j] + 1 : row[j - 1] + 1;
            row[j] = sub < best ? sub : best;
            prev = cur;
        }
    }
    return row[lb];
}

/* " (did you mean X?)" for the closest candidate within a third of the length, else "". */
static void suggest(const char *name, const char *const *cands, size_t n, char *out, size_t cap) {
    size_t best = 99, bi = 0;
    for (size_t i = 0; i < n; i++) {
        size_t d = edit_distance(name, cands[i]);
        if (d < best) best = d, bi = i;
    }
    size_t len = strlen(name);
    if (n && best <= (len < 6 ? 2 : len / 3))
        snprintf(out, cap, " (did you mean %s?)", cands[bi]);
    else
        out[0] = '\0';
}

static void suggest_key(const char *section, const char *key, char *out, size_t cap) {
    static char names[N_OPTS][96];
    const char *cands[N_OPTS];
    char want[160];
    snprintf(want, sizeof(want), "%s.%s", section, key);
    for (size_t i = 0; i < N_OPTS; i++) {
        snprintf(names[i], sizeof(names[i]), "%s.%s", k_opts[i].section, k_opts[i].key);
        cands[i] = names[i];
    }
    suggest(want, cands, N_OPTS, out, cap);
}

/* ---- values ------------------------------------------------------------------------------- */

static crl_status parse_bool(const char *s, int *out) {
    static const char *t[] = {"true", "1", "yes", "on"}, *f[] = {"false", "0", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, t[i]) == 0) return *out = 1, CRL_OK;
        if (strcasecmp(s, f[i]) == 0) return *out = 0, CRL_OK;
    }
    return CRL_EFORMAT;
}

/* Sizes: bytes, or a number with B, K/KB (1000), KiB (1024), M/MB, MiB, G/GB, GiB, T/TB, TiB.
 * A bare K/M/G/T without B is binary (as `16M` has always meant to carlarl). */
static crl_status parse_size(const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !isfinite(v) || v < 0) return CRL_EFORMAT;
    while (*end == ' ')
        end++;
    static const struct {
        const char *suffix;
        double mul;
    } units[] = {{"", 1},          {"B", 1},
                 {"K", 1024},      {"KB", 1e3},
                 {"KiB", 1024},    {"M", 1 << 20},
                 {"MB", 1e6},      {"MiB", 1 << 20},
                 {"G", 1 << 30},   {"GB", 1e9},
                 {"GiB", 1 << 30}, {"T", 1099511627776.0},
                 {"TB", 1e12},     {"TiB", 1099511627776.0}};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strcasecmp(end, units[i].suffix) == 0 &&
            (strlen(units[i].suffix) < 2 || strcmp(end + strlen(end) - 1, "B") == 0 ||
             strcmp(end + strlen(end) - 1, "b") == 0)) {
            *out = floor(v * units[i].mul);
            return CRL_OK;
        }
    return CRL_EFORMAT;
}

static int cpulist_valid(const char *s) {
    /* "0-3,8,10-11": digits, ranges lo<=hi, commas; spaces allowed around items. */
    const char *p = s;
    if (*p == '\0') return 1;
    for (;;) {
        while (*p == ' ')
            p++;
        if (!isdigit((unsigned char)*p)) return 0;
        long lo = strtol(p, (char **)&p, 10), hi = lo;
        if (*p == '-') {
            p++;
            if (!isdigit((unsigned char)*p)) return 0;
            hi = strtol(p, (char **)&p, 10);
        }
        if (lo > hi || hi >= 4096) return 0;
        while (*p == ' ')
            p++;
        if (*p == '\0') return 1;
        if (*p++ != ',') return 0;
    }
}

static void trim_copy(char *dst, size_t cap, const char *a, size_t n) {
    while (n && isspace((unsigned char)*a))
        a++, n--;
    while (n && isspace((unsigned char)a[n - 1]))
        n--;
    if (n >= cap) n = cap - 1;
    memcpy(dst, a, n);
    dst[n] = '\0';
}

/* monitoring.metrics_path: an absolute path that is not another endpoint's. */
static int metrics_path_valid(const char *s) {
    static const char *const taken[] = {"/predict",  "/healthz", "/metadata", "/warmup",
                                        "/versions", "/live",    "/ready",    "/openapi.json",
                                        "/docs",     "/redoc",   NULL};
    if (s[0] != '/' || strchr(s, '?') || strchr(s, '#') || strchr(s, ' ')) return 0;
    for (int i = 0; taken[i]; i++)
        if (strcmp(s, taken[i]) == 0) return 0;
    return 1;
}

static crl_status list_add(crl_strlist_t *l, const char *s, size_t n, crl_err *err,
                           const char *where, const char *name) {
    char item[CRL_ITEM_MAX];
    trim_copy(item, sizeof(item), s, n);
    if (item[0] == '\0') return CRL_OK;
    if (l->n == CRL_LIST_MAX)
        return crl_err_set(err, CRL_ERANGE, "%s: %s: at most %d entries", where, name,
                           CRL_LIST_MAX);
    memcpy(l->items[l->n++], item, sizeof(item));
    return CRL_OK;
}

/* Sets option o from text (or, for lists, from a YAML sequence node). `where` prefixes errors. */
static crl_status set_value(crl_config_t *c, const opt_t *o, const char *text,
                            const crl_yaml_node_t *seq, const char *where, crl_err *err) {
    char name[96];
    snprintf(name, sizeof(name), "%s.%s", o->section, o->key);
    void *f = field(c, o);
    char *end;
    if (text == NULL && o->type != T_LIST)
        return crl_err_set(err, CRL_EFORMAT, "%s: %s: expected a single value, got a list or map",
                           where, name);
    switch (o->type) {
    case T_BOOL: {
        int b;
        if (parse_bool(text, &b) != CRL_OK)
            return crl_err_set(err, CRL_EFORMAT,
                               "%s: %s: expected a boolean (true/false, 1/0, yes/no, on/off), "
                               "got '%s'",
                               where, name, text);
        *(int *)f = b;
        return CRL_OK;
    }
    case T_INT: {
        errno = 0;
        long v = strtol(text, &end, 10);
        while (*end == ' ')
            end++;
        if (end == text || *end || errno)
            return crl_err_set(err, CRL_EFORMAT, "%s: %s: expected an integer, got '%s'", where,
                               name, text);
        if ((double)v < o->min || (double)v > o->max)
            return crl_err_set(err, CRL_ERANGE, "%s: %s: %ld is outside %.0f..%.0f", where, name, v,
                               o->min, o->max);
        *(long *)f = v;
        return CRL_OK;
    }
    case T_FLOAT: {
        errno = 0;
        double v = strtod(text, &end);
        while (*end == ' ')
            end++;
        if (end == text || *end || errno || !isfinite(v))
            return crl_err_set(err, CRL_EFORMAT, "%s: %s: expected a number, got '%s'", where, name,
                               text);
        if (v < o->min || v > o->max)
            return crl_err_set(err, CRL_ERANGE, "%s: %s: %g is outside %g..%g", where, name, v,
                               o->min, o->max);
        *(double *)f = v;
        return CRL_OK;
    }
    case T_SIZE: {
        double v;
        if (parse_size(text, &v) != CRL_OK)
            return crl_err_set(err, CRL_EFORMAT,
                               "%s: %s: expected a size such as 1048576, 512KiB, 16MiB or 24GB, "
                               "got '%s'",
                               where, name, text);
        if (v < o->min || v > o->max)
            return crl_err_set(err, CRL_ERANGE, "%s: %s: %s is outside %.0f..%.0f bytes", where,
                               name, text, o->min, o->max);
        *(uint64_t *)f = (uint64_t)v;
        return CRL_OK;
    }
    case T_STR:
    case T_CPULIST:
        if (strlen(text) >= o->cap)
            return crl_err_set(err, CRL_ERANGE, "%s: %s: longer than %zu characters", where, name,
                               o->cap - 1);
        if (o->off == offsetof(crl_config_t, monitoring.metrics_path) && !metrics_path_valid(text))
            return crl_err_set(err, CRL_EFORMAT,
                               "%s: %s: expected a path starting with / that no other endpoint "
                               "uses, got '%s'",
                               where, name, text);
        if (o->type == T_CPULIST && !cpulist_valid(text))
            return crl_err_set(err, CRL_EFORMAT,
                               "%s: %s: expected a cpu list such as 0-3,8, got '%s'", where, name,
                               text);
        snprintf((char *)f, o->cap, "%s", text);
        return CRL_OK;
    case T_ENUM: {
        for (int i = 0; o->choices[i]; i++)
            if (strcasecmp(text, o->choices[i]) == 0) {
                if (o->off == offsetof(crl_config_t, optimization.isa))
                    snprintf((char *)f, o->cap, "%s", o->choices[i]);
                else if (o->off == offsetof(crl_config_t, optimization.memory_efficiency))
                    snprintf((char *)f, o->cap, "%s", o->choices[i]);
                else
                    *(int *)f = i;
                return CRL_OK;
            }
        if (o->off == offsetof(crl_config_t, model.device) && strncasecmp(text, "cuda:", 5) == 0 &&
            isdigit((unsigned char)text[5])) {
            *(int *)f = CRL_DEVICE_CUDA;
            return CRL_OK;
        }
        char list[160] = "";
        for (int i = 0; o->choices[i]; i++)
            snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "",
                     o->choices[i]);
        char hint[96];
        suggest(text, o->choices, 0, hint, sizeof(hint));
        return crl_err_set(err, CRL_EINVAL, "%s: %s: '%s' is not one of %s", where, name, text,
                           list);
    }
    case T_LIST: {
        crl_strlist_t *l = f;
        l->n = 0;
        crl_status st = CRL_OK;
        if (seq) {
            for (size_t i = 0; st == CRL_OK && i < seq->n; i++) {
                const char *s = crl_yaml_str(seq->items[i]);
                if (s == NULL)
                    return crl_err_set(err, CRL_EFORMAT, "%s: %s: list items must be strings",
                                       where, name);
                st = list_add(l, s, strlen(s), err, where, name);
            }
        } else {
            const char *p = text;
            while (st == CRL_OK && *p) {
                const char *comma = strchr(p, ',');
                size_t n = comma ? (size_t)(comma - p) : strlen(p);
                st = list_add(l, p, n, err, where, name);
                p += n + (comma != NULL);
            }
        }
        if (st == CRL_OK && l->n == 0)
            return crl_err_set(err, CRL_EINVAL, "%s: %s: the list is empty", where, name);
        return st;
    }
    }
    return CRL_EINVAL;
}

static void set_src(crl_config_t *c, size_t i, crl_src_kind kind, const char *where) {
    c->src[i].kind = kind;
    /* Long paths are cut: the source is for people to read. */
    snprintf(c->src[i].where, sizeof(c->src[i].where), "%.191s", where);
}

static void defaults(crl_config_t *c) {
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < N_OPTS; i++) {
        crl_status st = set_value(c, &k_opts[i], k_opts[i].def, NULL, "default", NULL);
        (void)st; /* the table's defaults are valid by construction (tested) */
        set_src(c, i, CRL_SRC_DEFAULT, "default");
    }
}

/* ---- files ------------------------------------------------------------------------------- */

static const opt_t *find_opt(const char *section, const char *key, size_t *index) {
    for (size_t i = 0; i < N_OPTS; i++)
        if (strcmp(k_opts[i].section, section) == 0 && strcmp(k_opts[i].key, key) == 0) {
            if (index) *index = i;
            return &k_opts[i];
        }
    return NULL;
}

static crl_status apply_file(crl_config_t *c, const char *path, crl_err *err) {
    crl_yaml_node_t *doc = NULL;
    crl_status st = crl_yaml_load_file(path, &doc, err);
    if (st != CRL_OK) return st;
    if (doc->kind == CRL_YAML_SCALAR && (doc->scalar == NULL || doc->scalar[0] == '\0')) goto out;
    if (doc->kind != CRL_YAML_MAP) {
        st = crl_err_set(err, CRL_EFORMAT, "%s:%d: expected a map of sections (server, model, ...)",
                         path, doc->line);
        goto out;
    }
    for (size_t s = 0; s < doc->n; s++) {
        const char *section = doc->keys[s];
        const crl_yaml_node_t *sec = doc->items[s];
        int known = 0;
        for (size_t k = 0; k < N_SECTIONS; k++)
            known |= strcmp(section, k_sections[k]) == 0;
        if (!known) {
            char hint[96];
            suggest(section, k_sections, N_SECTIONS, hint, sizeof(hint));
            st = crl_err_set(err, CRL_EINVAL, "%s:%d: %s: unknown section%s", path, sec->line,
                             section, hint);
            goto out;
        }
        if (sec->kind == CRL_YAML_SCALAR && (sec->scalar == NULL || sec->scalar[0] == '\0'))
            continue; /* "batching:" with nothing under it */
        if (sec->kind != CRL_YAML_MAP) {
            st = crl_err_set(err, CRL_EFORMAT, "%s:%d: %s: expected a map of keys", path, sec->line,
                             section);
            goto out;
        }
        for (size_t k = 0; k < sec->n; k++) {
            const crl_yaml_node_t *v = sec->items[k];
            size_t idx;
            const opt_t *o = find_opt(section, sec->keys[k], &idx);
            if (o == NULL) {
                char hint[128];
                suggest_key(section, sec->keys[k], hint, sizeof(hint));
                st = crl_err_set(err, CRL_EINVAL, "%s:%d: %s.%s: unknown key%s", path, v->line,
                                 section, sec->keys[k], hint);
                goto out;
            }
            char where[4200];
            snprintf(where, sizeof(where), "%s:%d", path, v->line);
            const char *text = v->kind == CRL_YAML_SCALAR ? v->scalar : NULL;
            const crl_yaml_node_t *seq = v->kind == CRL_YAML_SEQ ? v : NULL;
            if (v->kind == CRL_YAML_MAP) text = NULL;
            if ((st = set_value(c, o, text, seq, where, err)) != CRL_OK) goto out;
            set_src(c, idx, CRL_SRC_FILE, where);
        }
    }
out:
    crl_yaml_free(doc);
    return st;
}

/* ---- environment ------------------------------------------------------------------------- */

static crl_status apply_env(crl_config_t *c, crl_err *err) {
    for (size_t i = 0; i < N_OPTS; i++) {
        const opt_t *o = &k_opts[i];
        char canon[96];
        env_name(o, canon, sizeof(canon));
        /* Aliases first, the canonical SECTION_KEY last so it wins. */
        const char *names[8];
        size_t n = 0;
        for (size_t a = 0; a < 6 && o->env[a]; a++)
            names[n++] = o->env[a];
        names[n++] = canon;
        for (size_t a = 0; a < n; a++) {
            const char *v = getenv(names[a]);
            if (v == NULL) continue;
            char where[128];
            snprintf(where, sizeof(where), "env %s", names[a]);
            crl_status st = set_value(c, o, v, NULL, where, err);
            if (st != CRL_OK) return st;
            set_src(c, i, CRL_SRC_ENV, where);
        }
    }
    return CRL_OK;
}

/* Environment variables that look like ours (SECTION_...) but match no key: a likely typo. */
static void warn_unknown_env(void) {
    extern char **environ;
    for (char **e = environ; e && *e; e++) {
        for (size_t s = 0; s < N_SECTIONS; s++) {
            size_t sl = strlen(k_sections[s]);
            if (strncasecmp(*e, k_sections[s], sl) != 0 || (*e)[sl] != '_') continue;
            const char *eq = strchr(*e, '=');
            if (eq == NULL) continue;
            char name[96];
            trim_copy(name, sizeof(name), *e, (size_t)(eq - *e));
            int known = 0;
            static char envs[N_OPTS + 64][96];
            const char *cands[N_OPTS + 64];
            size_t nc = 0;
            for (size_t i = 0; i < N_OPTS; i++) {
                env_name(&k_opts[i], envs[nc], sizeof(envs[nc]));
                cands[nc] = envs[nc];
                known |= strcmp(envs[nc], name) == 0;
                nc++;
                for (size_t a = 0; a < 6 && k_opts[i].env[a]; a++)
                    known |= strcmp(k_opts[i].env[a], name) == 0;
            }
            if (known || strcmp(name, "MODEL_VERSION") == 0) continue;
            char hint[128];
            suggest(name, cands, nc, hint, sizeof(hint));
            if (hint[0]) CRL_WARN("config", "env %s: not a carlarl setting%s; ignored", name, hint);
        }
    }
}

/* ---- command line ------------------------------------------------------------------------ */

static const opt_t *find_cli(const char *flag, size_t *index) {
    char buf[128];
    for (size_t i = 0; i < N_OPTS; i++) {
        cli_name(&k_opts[i], buf, sizeof(buf));
        int hit = strcmp(buf, flag) == 0;
        for (size_t a = 0; !hit && a < 3 && k_opts[i].cli[a]; a++)
            hit = strcmp(k_opts[i].cli[a], flag) == 0;
        if (hit) {
            *index = i;
            return &k_opts[i];
        }
    }
    return NULL;
}

static void suggest_flag(const char *flag, char *out, size_t cap) {
    static char names[N_OPTS * 2][128];
    const char *cands[N_OPTS * 2];
    size_t n = 0;
    for (size_t i = 0; i < N_OPTS; i++) {
        cli_name(&k_opts[i], names[n], sizeof(names[n]));
        cands[n] = names[n];
        n++;
        if (k_opts[i].cli[0]) cands[n++] = k_opts[i].cli[0];
    }
    suggest(flag, cands, n, out, cap);
}

/* A boolean flag given alone (`--batching`, not `--batching true`) means true: 1 when `flag`
 * (klen bytes of it) names a boolean option and the next argument is not a boolean word. */
static int bare_bool(const char *flag, size_t klen, const char *next) {
    char name[128];
    size_t idx;
    int b;
    if (klen >= sizeof(name)) return 0;
    memcpy(name, flag, klen);
    name[klen] = '\0';
    const opt_t *o = find_cli(name, &idx);
    return o != NULL && o->type == T_BOOL && (next == NULL || parse_bool(next, &b) != CRL_OK);
}

/* First pass over argv: the files and command flags. Second pass (apply_cli): the values. */
static crl_status scan_args(int argc, char **argv, crl_config_args_t *args, const char **profile,
                            const char **config, crl_err *err) {
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *eq = strchr(a, '=');
        size_t klen = eq ? (size_t)(eq - a) : strlen(a);
        const char *val = eq ? eq + 1 : (i + 1 < argc ? argv[i + 1] : NULL);
#define FLAG(s) (klen == strlen(s) && strncmp(a, s, klen) == 0)
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            args->help = 1;
            continue;
        }
        if (FLAG("--markdown")) {
            args->markdown = 1;
            continue;
        }
        if (strncmp(a, "--", 2) != 0)
            return crl_err_set(err, CRL_EINVAL, "unexpected argument '%s'", a);
        if (!eq && bare_bool(a, klen, val)) continue;
        if (val == NULL) return crl_err_set(err, CRL_EINVAL, "%.*s: needs a value", (int)klen, a);
        if (FLAG("--profile"))
            *profile = val;
        else if (FLAG("--config"))
            *config = val;
        else if (FLAG("--check"))
            args->check = val;
        if (!eq) i++;
#undef FLAG
    }
    return CRL_OK;
}

static crl_status apply_cli(crl_config_t *c, int argc, char **argv, crl_err *err) {
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0 || strcmp(a, "--markdown") == 0)
            continue;
        const char *eq = strchr(a, '=');
        char flag[128];
        size_t klen = eq ? (size_t)(eq - a) : strlen(a);
        if (klen >= sizeof(flag)) return crl_err_set(err, CRL_EINVAL, "unknown option '%s'", a);
        memcpy(flag, a, klen);
        flag[klen] = '\0';
        const char *val = eq ? eq + 1 : argv[i + 1];
        if (!eq && bare_bool(a, klen, i + 1 < argc ? argv[i + 1] : NULL))
            val = "true";
        else if (!eq)
            i++;
        if (strcmp(flag, "--profile") == 0 || strcmp(flag, "--config") == 0 ||
            strcmp(flag, "--check") == 0)
            continue;
        if (strcmp(flag, "--set") == 0) { /* --set section.key=value */
            const char *dot = strchr(val, '.'), *veq = strchr(val, '=');
            char section[64], key[64];
            if (!dot || !veq || dot > veq || (size_t)(dot - val) >= sizeof(section) ||
                (size_t)(veq - dot - 1) >= sizeof(key))
                return crl_err_set(err, CRL_EINVAL, "--set: expected section.key=value, got '%s'",
                                   val);
            snprintf(section, sizeof(section), "%.*s", (int)(dot - val), val);
            snprintf(key, sizeof(key), "%.*s", (int)(veq - dot - 1), dot + 1);
            size_t idx;
            const opt_t *o = find_opt(section, key, &idx);
            if (o == NULL) {
                char hint[128];
                suggest_key(section, key, hint, sizeof(hint));
                return crl_err_set(err, CRL_EINVAL, "--set: %s.%s: unknown key%s", section, key,
                                   hint);
            }
            crl_status st = set_value(c, o, veq + 1, NULL, "--set", err);
            if (st != CRL_OK) return st;
            set_src(c, idx, CRL_SRC_CLI, "--set");
            continue;
        }
        size_t idx;
        const opt_t *o = find_cli(flag, &idx);
        if (o == NULL) {
            char hint[160];
            suggest_flag(flag, hint, sizeof(hint));
            return crl_err_set(err, CRL_EINVAL, "unknown option '%s'%s", flag, hint);
        }
        crl_status st = set_value(c, o, val, NULL, flag, err);
        if (st != CRL_OK) return st;
        set_src(c, idx, CRL_SRC_CLI, flag);
    }
    return CRL_OK;
}

/* ---- loading ----------------------------------------------------------------------------- */

/* --profile NAME: config/NAME.yaml under the current directory, then next to the binary's
 * installation (share/carlarl/config), so a profile name works from the source tree and after
 * `make install`. A path with a slash or ending in .yaml is used as given. */
static crl_status profile_path(const char *name, char *out, size_t cap, crl_err *err) {
    if (strchr(name, '/') || strstr(name, ".yaml")) {
        snprintf(out, cap, "%s", name);
        return CRL_OK;
    }
    for (const char *p = name; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
            return crl_err_set(err, CRL_EINVAL, "--profile: '%s' is not a profile name", name);
    /* Also relative to the binary (bin/../share/carlarl/config), for relocated installs. */
    char exe_dir[4096] = "";
    ssize_t n = readlink("/proc/self/exe", exe_dir, sizeof(exe_dir) - 64);
    if (n > 0) {
        exe_dir[n] = '\0';
        char *slash = strrchr(exe_dir, '/');
        if (slash)
            snprintf(slash, sizeof(exe_dir) - (size_t)(slash - exe_dir),
                     "/../share/carlarl/config");
    }
    const char *dirs[] = {"config", CRL_PROFILE_DIR, exe_dir};
    for (size_t i = 0; i < 3; i++) {
        if (dirs[i][0] == '\0') continue;
        snprintf(out, cap, "%s/%s.yaml", dirs[i], name);
        FILE *f = fopen(out, "r");
        if (f) {
            fclose(f);
            return CRL_OK;
        }
    }
    return crl_err_set(err, CRL_ENOTFOUND,
                       "--profile: no profile '%s' (looked for config/%s.yaml and %s/%s.yaml)",
                       name, name, CRL_PROFILE_DIR, name);
}

static crl_status load_sources(crl_config_t *c, const char *profile, const char *config, int argc,
                               char **argv, crl_err *err) {
    crl_status st;
    defaults(c);
    if (profile && *profile) {
        if ((st = profile_path(profile, c->profile_path, sizeof(c->profile_path), err)) != CRL_OK)
            return st;
        if ((st = apply_file(c, c->profile_path, err)) != CRL_OK) return st;
    }
    if (config && *config) {
        snprintf(c->config_path, sizeof(c->config_path), "%s", config);
        if ((st = apply_file(c, config, err)) != CRL_OK) return st;
    }
    if ((st = apply_env(c, err)) != CRL_OK) return st;
    return apply_cli(c, argc, argv, err);
}

crl_status crl_config_load(crl_config_t *c, int argc, char **argv, crl_config_args_t *args,
                           crl_err *err) {
    const char *profile = getenv("CARLARL_PROFILE"), *config = getenv("CONFIG_FILE");
    crl_status st = scan_args(argc, argv, args, &profile, &config, err);
    if (st != CRL_OK) return st;
    if (args->help || args->markdown) {
        defaults(c);
        return CRL_OK;
    }
    st = load_sources(c, profile, config, argc, argv, err);
    if (st == CRL_OK) warn_unknown_env();
    return st;
}

crl_status crl_config_reload(const crl_config_t *old, crl_config_t *out, int argc, char **argv,
                             crl_err *err) {
    return load_sources(out, old->profile_path, old->config_path, argc, argv, err);
}

crl_status crl_config_check_file(const char *path, crl_err *err) {
    crl_config_t *c = malloc(sizeof(*c));
    if (c == NULL) return crl_err_set(err, CRL_ENOMEM, "out of memory");
    defaults(c);
    crl_status st = apply_file(c, path, err);
    free(c);
    return st;
}

/* ---- reporting --------------------------------------------------------------------------- */

static void format_value(const crl_config_t *c, const opt_t *o, crl_buf *b) {
    const void *f = cfield(c, o);
    switch (o->type) {
    case T_BOOL:
        crl_buf_puts(b, *(const int *)f ? "true" : "false");
        break;
    case T_INT:
        crl_buf_printf(b, "%ld", *(const long *)f);
        break;
    case T_FLOAT:
        crl_buf_printf(b, "%g", *(const double *)f);
        break;
    case T_SIZE:
        crl_buf_printf(b, "%llu", (unsigned long long)*(const uint64_t *)f);
        break;
    case T_STR:
    case T_CPULIST:
        crl_buf_printf(b, "\"%s\"", (const char *)f);
        break;
    case T_ENUM:
        if (o->off == offsetof(crl_config_t, optimization.isa) ||
            o->off == offsetof(crl_config_t, optimization.memory_efficiency))
            crl_buf_puts(b, (const char *)f);
        else
            crl_buf_puts(b, o->choices[*(const int *)f]);
        break;
    case T_LIST: {
        const crl_strlist_t *l = f;
        crl_buf_puts(b, "[");
        for (size_t i = 0; i < l->n; i++)
            crl_buf_printf(b, "%s\"%s\"", i ? ", " : "", l->items[i]);
        crl_buf_puts(b, "]");
        break;
    }
    }
}

void crl_config_write_yaml(const crl_config_t *c, crl_buf *out) {
    crl_buf_puts(out, "# effective carlarl configuration; each value's source is in its comment\n");
    for (size_t s = 0; s < N_SECTIONS; s++) {
        crl_buf_printf(out, "%s:", k_sections[s]);
        int any = 0;
        for (size_t i = 0; i < N_OPTS; i++) {
            if (strcmp(k_opts[i].section, k_sections[s]) != 0) continue;
            if (!any) crl_buf_puts(out, "\n");
            size_t start = out->len;
            crl_buf_printf(out, "  %s: ", k_opts[i].key);
            /* A secret is shown as set or not, never printed (logs and bug reports quote this). */
            if (k_opts[i].off == offsetof(crl_config_t, cache.password) && c->cache.password[0])
                crl_buf_puts(out, "\"(hidden)\"");
            else
                format_value(c, &k_opts[i], out);
            size_t width = out->len - start;
            crl_buf_printf(out, "%*s# %s\n", width < 44 ? (int)(44 - width) : 1, "",
                           c->src[i].where);
            any = 1;
        }
        if (!any) crl_buf_puts(out, " {}  # no keys yet\n");
    }
}

static const char *type_name(opt_type t) {
    switch (t) {
    case T_BOOL:
        return "bool";
    case T_INT:
        return "integer";
    case T_FLOAT:
        return "number";
    case T_SIZE:
        return "size";
    case T_STR:
        return "string";
    case T_LIST:
        return "list";
    case T_ENUM:
        return "enum";
    case T_CPULIST:
        return "cpu list";
    }
    return "?";
}

void crl_config_write_markdown(crl_buf *out) {
    crl_buf_puts(out,
                 "# Configuration reference\n\n"
                 "<!-- Generated by `carlarl config --markdown`; do not edit by hand. -->\n\n"
                 "Every setting can come from a YAML file, the environment or the command line. "
                 "Precedence: command line > environment > file > default. Files: `--config FILE` "
                 "(or `CONFIG_FILE`) over `--profile NAME` (or `CARLARL_PROFILE`, which loads "
                 "`config/NAME.yaml`). Each key also has the environment name `SECTION_KEY` and "
                 "the flag `--section-key`; `--set section.key=value` sets any key. Booleans: "
                 "true/false, 1/0, yes/no, on/off. Sizes: bytes or 512KiB, 16MiB, 24GB (KB, MB, "
                 "GB are powers of 1000; KiB, MiB, GiB and a bare K, M, G powers of 1024). Lists: "
                 "a YAML list or a comma-separated string.\n\n"
                 "`carlarl config` prints the effective configuration with the source of every "
                 "value; `carlarl config --check FILE` validates a file. SIGHUP re-reads the "
                 "files: keys marked reloadable apply at once, the others are reported as needing "
                 "a restart, and an invalid file leaves the running configuration unchanged.\n\n"
                 "A key that has no effect on this platform is accepted with one warning at "
                 "start-up that says why (the *No effect* column).\n");
    for (size_t s = 0; s < N_SECTIONS; s++) {
        crl_buf_printf(out, "\n## %s\n\n", k_sections[s]);
        int any = 0;
        for (size_t i = 0; i < N_OPTS; i++) {
            const opt_t *o = &k_opts[i];
            if (strcmp(o->section, k_sections[s]) != 0) continue;
            if (!any)
                crl_buf_puts(out, "| key | type | default | environment | flag | reloadable | "
                                  "description | no effect |\n|---|---|---|---|---|---|---|---|\n");
            any = 1;
            char env[96], cli[128];
            env_name(o, env, sizeof(env));
            cli_name(o, cli, sizeof(cli));
            crl_buf_printf(out, "| `%s` | %s | `%s` | `%s`", o->key, type_name(o->type), o->def,
                           env);
            for (size_t a = 0; a < 6 && o->env[a]; a++)
                crl_buf_printf(out, ", `%s`", o->env[a]);
            crl_buf_printf(out, " | `%s`", cli);
            for (size_t a = 0; a < 3 && o->cli[a]; a++)
                crl_buf_printf(out, ", `%s`", o->cli[a]);
            crl_buf_printf(out, " | %s | %s", o->reloadable ? "yes" : "no", o->doc);
            if (o->type == T_ENUM) {
                crl_buf_puts(out, " One of:");
                for (int k = 0; o->choices[k]; k++)
                    crl_buf_printf(out, " `%s`", o->choices[k]);
                crl_buf_puts(out, ".");
            }
            if (o->type == T_INT) crl_buf_printf(out, " Range %.0f..%.0f.", o->min, o->max);
            if (o->type == T_FLOAT) crl_buf_printf(out, " Range %g..%g.", o->min, o->max);
            crl_config_t *tmp = calloc(1, sizeof(*tmp));
            const char *why = NULL;
            if (tmp && o->no_effect) {
                defaults(tmp);
                /* Reasons that depend on the value are shown for the non-default value. */
                if (o->type == T_BOOL) *(int *)field(tmp, o) = !*(int *)field(tmp, o);
                why = o->no_effect(tmp);
            }
            free(tmp);
            crl_buf_printf(out, " | %s |\n", why ? why : "");
        }
        if (!any) crl_buf_puts(out, "No keys yet: they arrive with the features that read them.\n");
    }
}

void crl_config_warn_no_effect(const crl_config_t *c) {
    for (size_t i = 0; i < N_OPTS; i++) {
        if (c->src[i].kind == CRL_SRC_DEFAULT || k_opts[i].no_effect == NULL) continue;
        const char *why = k_opts[i].no_effect(c);
        if (why)
            CRL_WARN("config", "%s: %s.%s has no effect here: %s", c->src[i].where,
                     k_opts[i].section, k_opts[i].key, why);
    }
}

int crl_config_diff(const crl_config_t *old, const crl_config_t *cur) {
    int restart = 0;
    for (size_t i = 0; i < N_OPTS; i++) {
        const opt_t *o = &k_opts[i];
        crl_buf a, b;
        crl_buf_init(&a, 1u << 16);
        crl_buf_init(&b, 1u << 16);
        format_value(old, o, &a);
        format_value(cur, o, &b);
        if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0) {
            if (o->reloadable) {
                CRL_INFO("config_reload", "%s.%s: %s -> %s (applied)", o->section, o->key, a.data,
                         b.data);
            } else {
                CRL_WARN("config_reload", "%s.%s: %s -> %s needs a restart to apply", o->section,
                         o->key, a.data, b.data);
                restart++;
            }
        }
        crl_buf_free(&a);
        crl_buf_free(&b);
    }
    return restart;
}

void crl_config_usage(FILE *f, const char *command) {
    fprintf(f,
            "usage: carlarl %s [--profile NAME] [--config FILE] [--set section.key=value]\n"
            "                  [--section-key VALUE ...]\n\n",
            command);
    if (strcmp(command, "config") == 0)
        fputs("Prints the effective configuration as YAML with the source of every value.\n"
              "  --check FILE   validate FILE and exit 0 (valid) or 2 (with the reason)\n"
              "  --markdown     print the configuration reference page (docs/configuration.md)\n\n",
              f);
    fputs("options (environment name in brackets; see docs/configuration.md for every key):\n", f);
    char env[96], cli[128];
    for (size_t i = 0; i < N_OPTS; i++) {
        const opt_t *o = &k_opts[i];
        if (o->no_effect) continue; /* the full list is in the reference page */
        env_name(o, env, sizeof(env));
        cli_name(o, cli, sizeof(cli));
        int alias = o->env[0] && strcmp(o->env[0], env) != 0;
        fprintf(f, "  %-26s %s.%s [%s%s%s] (default %s)\n", o->cli[0] ? o->cli[0] : cli, o->section,
                o->key, alias ? o->env[0] : env, alias ? ", " : "", alias ? env : "",
                *o->def ? o->def : "\"\"");
    }
    fputs("  --profile NAME             load config/NAME.yaml [CARLARL_PROFILE]\n"
          "  --config FILE              load FILE over the profile [CONFIG_FILE]\n"
          "  -h, --help                 this text\n",
          f);
}

const char *crl_config_where(const crl_config_t *c, const char *section, const char *key) {
    size_t i;
    return find_opt(section, key, &i) ? c->src[i].where : "?";
}

const char *crl_config_device_name(int device) {
    return k_devices[device];
}
const char *crl_config_precision_name(int precision) {
    return k_precisions[precision];
}
