/* isa.h: which kernel table a unit-test run covers (issue 4: the unit suite runs once per table).
 *
 * tests/CMakeLists.txt runs every unit test that includes this header once per kernel table the
 * build has (test_x.generic, test_x.avx2, test_x.avx512; test_x.neon on aarch64), with CRL_ISA set
 * to the table's name. In such a run:
 *   - before main, the table becomes what crl_kernels() returns, so every graph the test finishes
 *     is packed for it and runs on it; a table the CPU cannot run, or one not built into this
 *     binary, exits 77, which ctest reports as skipped (never as passed);
 *   - a test that loops over tables (crl_test_covers) covers that table only.
 * Without CRL_ISA (a test binary run by hand) the default table is generic and the loops cover
 * every table this CPU runs. */
#ifndef CRL_TESTS_UNIT_ISA_H
#define CRL_TESTS_UNIT_ISA_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hw/hw.h"
#include "kernels/kernels.h"

/* Every table name a build may have, reference first. */
static const char *const crl_test_tables[] = {"generic", "avx2", "avx512", "neon"};
#define CRL_TEST_N_TABLES (sizeof(crl_test_tables) / sizeof(crl_test_tables[0]))

static inline unsigned crl_test_isa_bit(const char *name) {
    if (strcmp(name, "avx2") == 0) return CRL_ISA_AVX2;
    if (strcmp(name, "avx512") == 0) return CRL_ISA_AVX512;
    if (strcmp(name, "neon") == 0) return CRL_ISA_NEON;
    return 0; /* generic */
}

/* 1 when `name` is built into this binary and this CPU runs it. */
static inline int crl_test_runs(const char *name) {
    if (crl_kernels_by_name(name) == NULL) return 0;
    unsigned bit = crl_test_isa_bit(name);
    return bit == 0 || (crl_kernels_isas_for(crl_hw_cpu_features()) & bit) != 0;
}

/* The CRL_ISA of this run, or NULL. */
static inline const char *crl_test_isa_env(void) {
    const char *e = getenv("CRL_ISA");
    return e != NULL && e[0] != '\0' ? e : NULL;
}

/* 1 when a loop over tables should cover `name` in this run. */
static inline int crl_test_covers(const char *name) {
    const char *e = crl_test_isa_env();
    if (e != NULL && strcmp(e, name) != 0) return 0;
    return crl_test_runs(name);
}

/* Makes the run's default table (CRL_ISA's, else generic) the selected one, and returns it. */
static inline const crl_kernels_t *crl_test_isa_default(void) {
    const char *e = crl_test_isa_env();
    const char *name = e != NULL ? e : "generic";
    const crl_kernels_t *k = crl_kernels_choose(crl_kernels_isas_for(crl_hw_cpu_features()), name);
    if (strcmp(k->name, name) != 0) {
        fprintf(stderr, "isa.h: CRL_ISA=%s: not built in or not run by this CPU: skipped\n", name);
        exit(77);
    }
    return k;
}

__attribute__((constructor)) static void crl_test_isa_init(void) {
    const crl_kernels_t *k = crl_test_isa_default();
    if (crl_test_isa_env() != NULL) fprintf(stderr, "isa.h: kernel table %s\n", k->name);
}

#endif
