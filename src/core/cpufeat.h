/* cpufeat.h: CPU feature bits shared by hw/ (which detects them: CPUID plus OS support through
 * XGETBV) and kernels/ (which needs them to choose a table). A bit is set only when both the CPU
 * and the OS support the feature. */
#ifndef CRL_CORE_CPUFEAT_H
#define CRL_CORE_CPUFEAT_H

enum {
    CRL_CPU_SSE42 = 1u << 0,
    CRL_CPU_AVX = 1u << 1,
    CRL_CPU_AVX2 = 1u << 2,
    CRL_CPU_FMA = 1u << 3,
    CRL_CPU_F16C = 1u << 4,
    CRL_CPU_AVX512F = 1u << 5,
    CRL_CPU_AVX512BW = 1u << 6,
    CRL_CPU_AVX512VL = 1u << 7,
    CRL_CPU_AVX512DQ = 1u << 8,
    CRL_CPU_AVX512BF16 = 1u << 9,
    CRL_CPU_AVX512VNNI = 1u << 10,
    CRL_CPU_AMX = 1u << 11, /* AMX-TILE with OS support (XCR0 bits 17-18) */
    CRL_CPU_NEON = 1u << 12,
};

#endif
