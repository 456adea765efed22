/* hw.h: what this machine is (CPU, instruction sets, cores, caches, NUMA, memory, GPUs) and the
 * levers that bind work to it (CPU affinity, NUMA binding, locked memory). Detection reads CPUID
 * and XGETBV (x86) or the auxiliary vector (arm64), and sysfs/procfs; GPUs come from the CUDA
 * driver library when it can be loaded with dlopen (its absence is normal). Nothing here needs a
 * library beyond libc. */
#ifndef CRL_HW_HW_H
#define CRL_HW_HW_H

#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/cpufeat.h"
#include "core/status.h"

#define CRL_HW_MAX_CACHES 8
#define CRL_HW_MAX_NODES 16
#define CRL_HW_MAX_GPUS 8

typedef struct crl_hw_cache {
    int level;     /* 1, 2, 3 */
    char type[16]; /* "Data", "Instruction", "Unified" */
    uint64_t size; /* bytes */
    int shared_by; /* logical CPUs sharing one instance */
} crl_hw_cache_t;

typedef struct crl_hw_node {
    int id;
    char cpus[256];     /* cpulist, e.g. "0-7,16-23" */
    uint64_t mem_total; /* bytes, 0 when unknown */
} crl_hw_node_t;

typedef struct crl_hw_gpu {
    char name[128];
    uint64_t mem_total;
    int cc_major, cc_minor; /* compute capability */
} crl_hw_gpu_t;

typedef struct crl_hw_info {
    char arch[16];   /* "x86_64", "aarch64" */
    char vendor[32]; /* "GenuineIntel", "AuthenticAMD", ... */
    char model[96];  /* brand string */
    int family, model_id, stepping;
    unsigned features; /* CRL_CPU_* */
    int logical_cpus;  /* online */
    int physical_cores;
    int packages;
    crl_hw_cache_t caches[CRL_HW_MAX_CACHES];
    int n_caches;
    crl_hw_node_t nodes[CRL_HW_MAX_NODES];
    int n_nodes;
    uint64_t mem_total; /* bytes, /proc/meminfo */
    crl_hw_gpu_t gpus[CRL_HW_MAX_GPUS];
    int n_gpus;
    char gpu_status[160]; /* why no GPU is listed: "libcuda.so.1 not found", ... */
    int allowed_cpus;     /* CPUs in the detecting thread's affinity mask (cpuset, taskset) */
} crl_hw_info_t;

/* Fills *out; never fails as a whole (unknown parts stay empty or 0). */
void crl_hw_detect(crl_hw_info_t *out);
/* CPU features only (cached after the first call; cheap). */
unsigned crl_hw_cpu_features(void);
/* "sse4.2 avx avx2 fma ..." for logs. */
void crl_hw_features_str(unsigned features, char *out, size_t cap);

/* Recommendations for this host: the shipped profile name (intel-optimized, nvidia-optimized,
 * mac-m4-max-optimized, or production when none fits better) and the thread count (the online
 * logical CPUs, fewer when the affinity mask allows fewer; at least 1). */
const char *crl_hw_recommended_profile(const crl_hw_info_t *hw);
int crl_hw_recommended_threads(const crl_hw_info_t *hw);
/* Server worker (event loop) threads: one per physical core, bounded by the CPUs allowed. */
int crl_hw_recommended_workers(const crl_hw_info_t *hw);

/* `carlarl hwinfo`: text for people, JSON for tools. `kernel_isa` is the kernel table carlarl
 * would choose (the caller asks kernels/). */
void crl_hw_write_text(const crl_hw_info_t *hw, const char *kernel_isa, crl_buf *out);
void crl_hw_write_json(const crl_hw_info_t *hw, const char *kernel_isa, crl_buf *out);

/* CPU lists "0-3,8,10-11" <-> cpu_set_t. Errors name the offending part. */
crl_status crl_cpulist_parse(const char *s, cpu_set_t *out, crl_err *err);
/* The reverse: "0-3,8"; a list longer than cap is cut after a whole item and ends in "...". */
void crl_cpulist_format(const cpu_set_t *set, char *out, size_t cap);
/* CPUs of a NUMA node (from sysfs). CRL_ENOTFOUND when the node does not exist. */
crl_status crl_hw_node_cpus(int node, cpu_set_t *out, crl_err *err);

/* Pins a thread to a CPU set (pthread_setaffinity_np). */
crl_status crl_hw_pin_thread(pthread_t t, const cpu_set_t *cpus, crl_err *err);
/* Binds the calling process's future memory allocations to NUMA node `node` (set_mempolicy
 * MPOL_BIND, the effect of numactl --membind) and its threads to the node's CPUs (the effect of
 * --cpunodebind). Call before creating threads. */
crl_status crl_hw_numa_bind(int node, crl_err *err);
/* mlock(2) of [p, p+n) rounded to pages. On failure the message says why, with the
 * RLIMIT_MEMLOCK soft/hard limits when that is the cause. */
crl_status crl_hw_mlock(const void *p, size_t n, crl_err *err);
/* Transparent huge pages for [p, p+n): madvise(MADV_HUGEPAGE) of the whole 2 MiB pages inside the
 * range, adding their bytes to *advised (0 when the range holds no whole huge page). Fails, saying
 * why, when the kernel has THP off ("never") or refuses the advice. */
#define CRL_HW_HUGE_PAGE ((size_t)2 << 20)
crl_status crl_hw_hugepages(void *p, size_t n, size_t *advised, crl_err *err);
/* Linux hands AMX tile state to a process only on request (arch_prctl ARCH_REQ_XCOMP_PERM); a
 * kernel table using AMX calls this once before its first tile instruction. */
crl_status crl_hw_amx_request(crl_err *err);

#endif
