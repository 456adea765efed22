/* cpu.c: which CPU this is and which instruction sets carlarl may use on it. On x86 a feature
 * counts only when CPUID reports it AND the OS saves its register state (XGETBV reads XCR0); a
 * CPU with AVX-512 under an OS or hypervisor that does not enable ZMM state would otherwise fault
 * on the first AVX-512 instruction. On arm64 the kernel's auxiliary vector already means both.
 * This file is compiled without any -m ISA flag: it only asks, it never executes what it finds. */
#include "hw/hw_internal.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define CRL_HW_X86 1
#elif defined(__aarch64__)
#include <sys/auxv.h>
#define CRL_HW_ARM64 1
#endif

static const struct {
    unsigned bit;
    const char *name;
} feature_names[] = {
    {CRL_CPU_SSE42, "sse4.2"},
    {CRL_CPU_AVX, "avx"},
    {CRL_CPU_AVX2, "avx2"},
    {CRL_CPU_FMA, "fma"},
    {CRL_CPU_F16C, "f16c"},
    {CRL_CPU_AVX512F, "avx512f"},
    {CRL_CPU_AVX512BW, "avx512bw"},
    {CRL_CPU_AVX512VL, "avx512vl"},
    {CRL_CPU_AVX512DQ, "avx512dq"},
    {CRL_CPU_AVX512BF16, "avx512_bf16"},
    {CRL_CPU_AVX512VNNI, "avx512_vnni"},
    {CRL_CPU_AMX, "amx"},
    {CRL_CPU_NEON, "neon"},
};

const char *crl_hw__feature_name(int i, unsigned *bit) {
    if (i < 0 || (size_t)i >= sizeof(feature_names) / sizeof(feature_names[0])) return NULL;
    if (bit) *bit = feature_names[i].bit;
    return feature_names[i].name;
}

void crl_hw_features_str(unsigned features, char *out, size_t cap) {
    if (!out || cap == 0) return;
    size_t len = 0;
    out[0] = '\0';
    unsigned bit;
    const char *name;
    for (int i = 0; (name = crl_hw__feature_name(i, &bit)) != NULL; i++) {
        if (!(features & bit)) continue;
        size_t n = strlen(name) + (len ? 1 : 0);
        if (len + n + 1 > cap) break; /* whole names only: a cut name would lie */
        snprintf(out + len, cap - len, "%s%s", len ? " " : "", name);
        len += n;
    }
}

/* Removes the padding spaces vendors put around brand strings. */
static void trim(char *s) {
    size_t start = 0, n = strlen(s);
    while (s[start] == ' ')
        start++;
    while (n > start && (s[n - 1] == ' ' || s[n - 1] == '\n'))
        n--;
    memmove(s, s + start, n - start);
    s[n - start] = '\0';
}

#ifdef CRL_HW_X86

/* XCR0 state components the OS must enable for each register file. */
#define XCR0_SSE_AVX 0x06u  /* bits 1-2: XMM and YMM */
#define XCR0_AVX512 0xE6u   /* plus bits 5-7: opmask, ZMM0-15 upper halves, ZMM16-31 */
#define XCR0_AMX 0x60000ull /* bits 17-18: TILECFG and TILEDATA */

static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    /* Encoded as bytes so that no -mxsave flag is needed. */
    __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static unsigned x86_features(void) {
    unsigned a, b, c, d, f = 0;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return 0;
    unsigned max_leaf = a;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    unsigned ecx1 = c;
    if (ecx1 & (1u << 20)) f |= CRL_CPU_SSE42;

    /* OSXSAVE (bit 27) says XGETBV may be executed; without it no AVX state is enabled. */
    uint64_t xcr0 = (ecx1 & (1u << 27)) ? xgetbv0() : 0;
    int os_avx = (xcr0 & XCR0_SSE_AVX) == XCR0_SSE_AVX;
    int os_avx512 = (xcr0 & XCR0_AVX512) == XCR0_AVX512;
    int os_amx = (xcr0 & XCR0_AMX) == XCR0_AMX;
    if (!os_avx) return f; /* every other feature below lives in YMM/ZMM/tile state */

    if (ecx1 & (1u << 28)) f |= CRL_CPU_AVX;
    if (!(f & CRL_CPU_AVX)) return f;
    if (ecx1 & (1u << 12)) f |= CRL_CPU_FMA;
    if (ecx1 & (1u << 29)) f |= CRL_CPU_F16C;
    if (max_leaf < 7) return f;

    __cpuid_count(7, 0, a, b, c, d);
    unsigned max_sub7 = a, ebx7 = b, ecx7 = c, edx7 = d;
    if (ebx7 & (1u << 5)) f |= CRL_CPU_AVX2;
    if (os_avx512 && (ebx7 & (1u << 16))) {
        f |= CRL_CPU_AVX512F;
        if (ebx7 & (1u << 17)) f |= CRL_CPU_AVX512DQ;
        if (ebx7 & (1u << 30)) f |= CRL_CPU_AVX512BW;
        if (ebx7 & (1u << 31)) f |= CRL_CPU_AVX512VL;
        if (ecx7 & (1u << 11)) f |= CRL_CPU_AVX512VNNI;
        if (max_sub7 >= 1) {
            __cpuid_count(7, 1, a, b, c, d);
            if (a & (1u << 5)) f |= CRL_CPU_AVX512BF16;
        }
    }
    /* AMX-TILE (EDX bit 24). Linux additionally wants arch_prctl(ARCH_REQ_XCOMP_PERM) per
     * process before the first tile instruction: crl_hw_amx_request. */
    if (os_amx && (edx7 & (1u << 24))) f |= CRL_CPU_AMX;
    return f;
}

static void x86_identity(crl_hw_info_t *out) {
    unsigned a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return;
    char vendor[13];
    memcpy(vendor, &b, 4);
    memcpy(vendor + 4, &d, 4);
    memcpy(vendor + 8, &c, 4);
    vendor[12] = '\0';
    snprintf(out->vendor, sizeof(out->vendor), "%s", vendor);

    if (__get_cpuid(1, &a, &b, &c, &d)) {
        unsigned family = (a >> 8) & 0xf, model = (a >> 4) & 0xf;
        /* The displayed family and model fold in the extended fields (Intel SDM / AMD APM). */
        if (family == 0xf) family += (a >> 20) & 0xff;
        if (family == 0x6 || family >= 0xf) model += ((a >> 16) & 0xf) << 4;
        out->family = (int)family;
        out->model_id = (int)model;
        out->stepping = (int)(a & 0xf);
    }

    if (__get_cpuid(0x80000000u, &a, &b, &c, &d) && a >= 0x80000004u) {
        unsigned regs[12];
        for (size_t i = 0; i < 3; i++)
            __get_cpuid(0x80000002u + (unsigned)i, &regs[4 * i], &regs[4 * i + 1], &regs[4 * i + 2],
                        &regs[4 * i + 3]);
        char brand[49];
        memcpy(brand, regs, 48);
        brand[48] = '\0';
        trim(brand);
        snprintf(out->model, sizeof(out->model), "%s", brand);
    }
}

static void put_cache(crl_hw_cache_t *k, int level, const char *type, uint64_t size, int shared) {
    memset(k, 0, sizeof(*k));
    k->level = level;
    snprintf(k->type, sizeof(k->type), "%s", type);
    k->size = size;
    k->shared_by = shared;
}

/* Leaf 4 (Intel) and leaf 0x8000001D (AMD, with TOPOEXT) share one layout: EAX type/level/
 * sharing, EBX line size/partitions/ways, ECX sets. */
static int deterministic_caches(unsigned leaf, crl_hw_cache_t *caches, int max) {
    static const char *const types[] = {"", "Data", "Instruction", "Unified"};
    unsigned a, b, c, d;
    int n = 0;
    for (unsigned sub = 0; sub < 16 && n < max; sub++) {
        __cpuid_count(leaf, sub, a, b, c, d);
        unsigned type = a & 0x1f;
        if (type == 0) break; /* no more caches */
        if (type > 3) continue;
        uint64_t line = (b & 0xfff) + 1, parts = ((b >> 12) & 0x3ff) + 1;
        uint64_t ways = ((b >> 22) & 0x3ff) + 1, sets = (uint64_t)c + 1;
        /* The sharing field is the most logical processors that may share the cache, an upper
         * bound; the caller clamps it to the CPUs actually online. */
        put_cache(&caches[n++], (int)((a >> 5) & 7), types[type], line * parts * ways * sets,
                  (int)((a >> 14) & 0xfff) + 1);
    }
    return n;
}

/* The older leaves 0x80000005 (L1, AMD only) and 0x80000006 (L2 on both vendors, L3 on AMD) give
 * sizes without sharing; some hypervisors offer only these. */
static int legacy_caches(unsigned max_ext, crl_hw_cache_t *caches, int max) {
    unsigned a, b, c, d;
    int n = 0;
    if (max_ext >= 0x80000005u) {
        __cpuid(0x80000005u, a, b, c, d);
        if ((c >> 24) && n < max) put_cache(&caches[n++], 1, "Data", (uint64_t)(c >> 24) << 10, 0);
        if ((d >> 24) && n < max)
            put_cache(&caches[n++], 1, "Instruction", (uint64_t)(d >> 24) << 10, 0);
    }
    if (max_ext >= 0x80000006u) {
        __cpuid(0x80000006u, a, b, c, d);
        if ((c >> 16) && n < max)
            put_cache(&caches[n++], 2, "Unified", (uint64_t)(c >> 16) << 10, 0);
        if ((d >> 18) && n < max)
            put_cache(&caches[n++], 3, "Unified", (uint64_t)(d >> 18) << 19, 0);
    }
    return n;
}

int crl_hw__cpuid_caches(crl_hw_cache_t *caches, int max) {
    unsigned a, b, c, d, max_ext = 0;
    if (!caches || max <= 0 || !__get_cpuid(0, &a, &b, &c, &d)) return 0;
    unsigned max_leaf = a;
    int intel = b == 0x756e6547u; /* "Genu" */
    if (__get_cpuid(0x80000000u, &a, &b, &c, &d)) max_ext = a;
    int n = 0;
    if (intel && max_leaf >= 4) n = deterministic_caches(4, caches, max);
    if (!intel && max_ext >= 0x8000001Du) {
        __cpuid(0x80000001u, a, b, c, d);
        if (c & (1u << 22)) n = deterministic_caches(0x8000001Du, caches, max); /* TOPOEXT */
    }
    return n > 0 ? n : legacy_caches(max_ext, caches, max);
}

static unsigned detect_features(void) {
    return x86_features();
}

#elif defined(CRL_HW_ARM64)

static unsigned detect_features(void) {
    /* HWCAP_ASIMD is bit 1 on arm64 Linux; Advanced SIMD is architecturally required there, but
     * asking keeps a hypervisor or emulator that hides it honest. */
    unsigned long hw = getauxval(AT_HWCAP);
    return (hw & (1ul << 1)) ? CRL_CPU_NEON : 0;
}

int crl_hw__cpuid_caches(crl_hw_cache_t *caches, int max) {
    (void)caches;
    (void)max;
    return 0;
}

/* /proc/cpuinfo's "CPU implementer" byte (MIDR_EL1 bits 24-31) names the designer. */
static const char *arm_implementer(unsigned id) {
    switch (id) {
    case 0x41:
        return "ARM";
    case 0x42:
        return "Broadcom";
    case 0x43:
        return "Cavium";
    case 0x46:
        return "Fujitsu";
    case 0x48:
        return "HiSilicon";
    case 0x4e:
        return "NVIDIA";
    case 0x51:
        return "Qualcomm";
    case 0x61:
        return "Apple";
    case 0xc0:
        return "Ampere";
    default:
        return NULL;
    }
}

static void arm_identity(crl_hw_info_t *out) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[256];
    int have_impl = 0;
    while (fgets(line, sizeof(line), f)) {
        char *colon = strchr(line, ':');
        if (!colon) continue;
        char *val = colon + 1;
        trim(val);
        if (!have_impl && strncmp(line, "CPU implementer", 15) == 0) {
            unsigned id = (unsigned)strtoul(val, NULL, 0);
            const char *name = arm_implementer(id);
            if (name)
                snprintf(out->vendor, sizeof(out->vendor), "%s", name);
            else
                snprintf(out->vendor, sizeof(out->vendor), "implementer 0x%02x", id & 0xffu);
            have_impl = 1;
        } else if (!out->model[0] &&
                   (strncmp(line, "model name", 10) == 0 || strncmp(line, "Hardware", 8) == 0)) {
            snprintf(out->model, sizeof(out->model), "%s", val);
        } else if (strncmp(line, "CPU variant", 11) == 0 && !out->family) {
            out->family = (int)strtol(val, NULL, 0);
        } else if (strncmp(line, "CPU part", 8) == 0 && !out->model_id) {
            out->model_id = (int)strtol(val, NULL, 0);
        } else if (strncmp(line, "CPU revision", 12) == 0 && !out->stepping) {
            out->stepping = (int)strtol(val, NULL, 0);
        }
    }
    fclose(f);
}

#else

static unsigned detect_features(void) {
    return 0;
}

int crl_hw__cpuid_caches(crl_hw_cache_t *caches, int max) {
    (void)caches;
    (void)max;
    return 0;
}

#endif

static unsigned cached_features;
static pthread_once_t features_once = PTHREAD_ONCE_INIT;

static void features_init(void) {
    cached_features = detect_features();
}

unsigned crl_hw_cpu_features(void) {
    pthread_once(&features_once, features_init);
    return cached_features;
}

void crl_hw__cpu_detect(crl_hw_info_t *out) {
#if defined(CRL_HW_X86) && defined(__x86_64__)
    snprintf(out->arch, sizeof(out->arch), "x86_64");
#elif defined(CRL_HW_X86)
    snprintf(out->arch, sizeof(out->arch), "i686");
#elif defined(CRL_HW_ARM64)
    snprintf(out->arch, sizeof(out->arch), "aarch64");
#else
    struct utsname u;
    if (uname(&u) == 0) snprintf(out->arch, sizeof(out->arch), "%s", u.machine);
#endif
#if defined(CRL_HW_X86)
    x86_identity(out);
#elif defined(CRL_HW_ARM64)
    arm_identity(out);
#endif
    out->features = crl_hw_cpu_features();
}
