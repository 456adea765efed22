/* kernels.c: chooses the kernel table once at start-up. This file is compiled without ISA flags:
 * it only compares names and feature bits (detected by hw/), and calls an ISA table's accessor
 * only to read its name or hand it out, never to run it. */
#include "kernels/kernels.h"

#include <stdatomic.h>
#include <string.h>

#include "core/cpufeat.h"
#include "core/log.h"

typedef struct kernel_candidate {
    const crl_kernels_t *(*table)(void);
    unsigned isa; /* CRL_ISA_* bits it needs; 0 for generic, which is always allowed */
    int variant;  /* a second variant of a table named before it: crl_kernels_by_name skips it */
} kernel_candidate;

/* Best first; generic is last and always allowed, so the fallback always exists. */
static const kernel_candidate candidates[] = {
#if defined(__x86_64__)
    {crl_kernels_avx512_bf16, CRL_ISA_AVX512 | CRL_ISA_AVX512_BF16, 1},
    {crl_kernels_avx512, CRL_ISA_AVX512, 0},
    {crl_kernels_avx2, CRL_ISA_AVX2, 0},
#elif defined(__aarch64__)
    {crl_kernels_neon, CRL_ISA_NEON, 0},
#endif
    {crl_kernels_generic, 0, 0},
};
#define N_CANDIDATES (sizeof(candidates) / sizeof(candidates[0]))

/* The names a `force` may give in this build, for the fallback warning. */
#if defined(__x86_64__)
#define BUILT_IN_NAMES "generic, avx2, avx512"
#elif defined(__aarch64__)
#define BUILT_IN_NAMES "generic, neon"
#else
#define BUILT_IN_NAMES "generic"
#endif

/* Atomic so that a reader on another thread never sees a torn pointer, even though selection is
 * meant to happen once before any worker starts. NULL means "not chosen yet": generic. */
static _Atomic(const crl_kernels_t *) g_selected;

unsigned crl_kernels_isas_for(unsigned cpu_features) {
    const unsigned avx2 = CRL_CPU_AVX2 | CRL_CPU_FMA;
    const unsigned avx512 =
        CRL_CPU_AVX512F | CRL_CPU_AVX512BW | CRL_CPU_AVX512VL | CRL_CPU_AVX512DQ | CRL_CPU_FMA;
    unsigned isas = 0;
    if ((cpu_features & avx2) == avx2) isas |= CRL_ISA_AVX2;
    if ((cpu_features & avx512) == avx512) isas |= CRL_ISA_AVX512;
    if ((isas & CRL_ISA_AVX512) && (cpu_features & CRL_CPU_AVX512BF16)) isas |= CRL_ISA_AVX512_BF16;
    if (cpu_features & CRL_CPU_NEON) isas |= CRL_ISA_NEON;
    return isas;
}

static int is_allowed(const kernel_candidate *c, unsigned allowed) {
    return c->isa == 0 || (allowed & c->isa) == c->isa;
}

static const crl_kernels_t *best_allowed(unsigned allowed) {
    for (size_t i = 0; i < N_CANDIDATES; i++)
        if (is_allowed(&candidates[i], allowed)) return candidates[i].table();
    return crl_kernels_generic();
}

const crl_kernels_t *crl_kernels_choose(unsigned allowed, const char *force) {
    const crl_kernels_t *choice = NULL;
    if (force != NULL && force[0] != '\0') {
        for (size_t i = 0; i < N_CANDIDATES && choice == NULL; i++) {
            const crl_kernels_t *t = candidates[i].table();
            if (strcmp(t->name, force) == 0 && is_allowed(&candidates[i], allowed)) choice = t;
        }
        if (choice == NULL)
            CRL_WARN("kernels_fallback",
                     "kernel set '%s' is unknown, not built into this binary or not supported by "
                     "this CPU; using %s (choose one of " BUILT_IN_NAMES ")",
                     force, best_allowed(allowed)->name);
    }
    if (choice == NULL) choice = best_allowed(allowed);
    atomic_store(&g_selected, choice);
    return choice;
}

const crl_kernels_t *crl_kernels_by_name(const char *name) {
    if (name == NULL) return NULL;
    for (size_t i = 0; i < N_CANDIDATES; i++) {
        const crl_kernels_t *t = candidates[i].table();
        if (!candidates[i].variant && strcmp(t->name, name) == 0) return t;
    }
    return NULL;
}

const crl_kernels_t *crl_kernels_select(const char *force) {
    return crl_kernels_choose(0, force);
}

const crl_kernels_t *crl_kernels(void) {
    const crl_kernels_t *t = atomic_load(&g_selected);
    return t ? t : crl_kernels_generic();
}
