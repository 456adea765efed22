/* kernels.c: chooses the kernel table once at start-up. Only "generic" exists so far; ISA tables
 * (avx2, avx512, neon) will be added to `candidates` in order of preference, each with a probe that
 * says whether this CPU and OS can run it. */
#include "kernels/kernels.h"

#include <stdatomic.h>
#include <string.h>

#include "core/log.h"

typedef struct kernel_candidate {
    const crl_kernels_t *(*table)(void);
    int (*supported)(void);
} kernel_candidate;

static int always_supported(void) {
    return 1;
}

/* Best first; generic is last and always supported, so the fallback always exists. */
static const kernel_candidate candidates[] = {
    {crl_kernels_generic, always_supported},
};
#define N_CANDIDATES (sizeof(candidates) / sizeof(candidates[0]))

/* Atomic so that a reader on another thread never sees a torn pointer, even though selection is
 * meant to happen once before any worker starts. NULL means "not selected yet": generic. */
static _Atomic(const crl_kernels_t *) g_selected;

static const crl_kernels_t *best_available(void) {
    for (size_t i = 0; i < N_CANDIDATES; i++)
        if (candidates[i].supported()) return candidates[i].table();
    return crl_kernels_generic();
}

const crl_kernels_t *crl_kernels_select(const char *force) {
    const crl_kernels_t *choice = NULL;
    if (force != NULL && force[0] != '\0') {
        for (size_t i = 0; i < N_CANDIDATES && choice == NULL; i++) {
            const crl_kernels_t *t = candidates[i].table();
            if (strcmp(t->name, force) == 0 && candidates[i].supported()) choice = t;
        }
        if (choice == NULL)
            CRL_WARN("kernels_fallback",
                     "kernel set '%s' is unknown or not supported here; using %s", force,
                     best_available()->name);
    }
    if (choice == NULL) choice = best_available();
    atomic_store(&g_selected, choice);
    return choice;
}

const crl_kernels_t *crl_kernels(void) {
    const crl_kernels_t *t = atomic_load(&g_selected);
    return t ? t : crl_kernels_generic();
}
