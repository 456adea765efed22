/* hw_internal.h: what the files of src/hw/ share with each other and with the unit test, never
 * with other modules. The `_at` variants take the root under which /sys and /proc are looked up
 * ("" for the real ones), so a test can point them at a fake tree shaped like a VM or a NUMA
 * server. */
#ifndef CRL_HW_HW_INTERNAL_H
#define CRL_HW_HW_INTERNAL_H

#include <stddef.h>

#include "hw/hw.h"

/* cpu.c: arch, vendor, brand string, family/model/stepping and features. */
void crl_hw__cpu_detect(crl_hw_info_t *out);
/* cpu.c: caches described by CPUID (leaf 4 on Intel, 0x8000001D on AMD); 0 elsewhere. Used when
 * sysfs has no cache directory, as in many VMs. */
int crl_hw__cpuid_caches(crl_hw_cache_t *caches, int max);
/* cpu.c: the i-th feature's name and bit, NULL past the last one. */
const char *crl_hw__feature_name(int i, unsigned *bit);

/* topology.c: CPUs, cores, packages, caches, NUMA nodes and memory. */
void crl_hw__topology_detect_at(const char *root, crl_hw_info_t *out);
/* topology.c: reads a whole small file into buf (NUL-terminated). Returns the length or -1. */
int crl_hw__read_file(const char *path, char *buf, size_t cap);

/* gpu.c: CUDA devices through the driver library; fills gpus, n_gpus and gpu_status. */
void crl_hw__gpu_detect(crl_hw_info_t *out);

/* levers.c: crl_hw_node_cpus under another root. */
crl_status crl_hw__node_cpus_at(const char *root, int node, cpu_set_t *out, crl_err *err);

#endif
