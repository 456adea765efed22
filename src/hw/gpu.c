/* gpu.c: NVIDIA GPUs as the CUDA driver sees them. The driver library is loaded with dlopen, so
 * carlarl neither links against CUDA nor needs its headers: a machine without the driver is the
 * normal case and only sets gpu_status to the reason. The few driver entry points are declared
 * here with plain ints (CUresult, CUdevice and CUdevice_attribute are all ints in the ABI). */
#include "hw/hw_internal.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

typedef int (*cu_init_fn)(unsigned flags);
typedef int (*cu_driver_version_fn)(int *version);
typedef int (*cu_count_fn)(int *count);
typedef int (*cu_get_fn)(int *device, int ordinal);
typedef int (*cu_name_fn)(char *name, int len, int device);
typedef int (*cu_mem_fn)(size_t *bytes, int device);
typedef int (*cu_attr_fn)(int *value, int attribute, int device);
typedef int (*cu_errstr_fn)(int result, const char **str);

enum {
    CU_ATTR_CC_MAJOR = 75, /* CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR */
    CU_ATTR_CC_MINOR = 76, /* CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR */
};

/* "CUDA_ERROR_NO_DEVICE (100)" when the driver can name the code. */
static void cu_reason(void *lib, int rc, char *out, size_t cap) {
    cu_errstr_fn name = (cu_errstr_fn)dlsym(lib, "cuGetErrorName");
    const char *s = NULL;
    if (name && name(rc, &s) == 0 && s)
        snprintf(out, cap, "%s (%d)", s, rc);
    else
        snprintf(out, cap, "error %d", rc);
}

void crl_hw__gpu_detect(crl_hw_info_t *out) {
    out->n_gpus = 0;
    /* RTLD_LOCAL keeps the driver's symbols out of the global namespace. The handle is never
     * closed: cuInit starts driver threads, and unloading the library under them crashes. */
    void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(out->gpu_status, sizeof(out->gpu_status),
                 "no NVIDIA driver: libcuda.so.1 not found");
        return;
    }
    cu_init_fn cu_init = (cu_init_fn)dlsym(lib, "cuInit");
    cu_driver_version_fn cu_version = (cu_driver_version_fn)dlsym(lib, "cuDriverGetVersion");
    cu_count_fn cu_count = (cu_count_fn)dlsym(lib, "cuDeviceGetCount");
    cu_get_fn cu_get = (cu_get_fn)dlsym(lib, "cuDeviceGet");
    cu_name_fn cu_name = (cu_name_fn)dlsym(lib, "cuDeviceGetName");
    cu_mem_fn cu_mem = (cu_mem_fn)dlsym(lib, "cuDeviceTotalMem_v2");
    cu_attr_fn cu_attr = (cu_attr_fn)dlsym(lib, "cuDeviceGetAttribute");
    if (!cu_init || !cu_count || !cu_get || !cu_name || !cu_mem || !cu_attr) {
        snprintf(out->gpu_status, sizeof(out->gpu_status),
                 "libcuda.so.1 lacks the driver API entry points (driver too old?)");
        return;
    }
    char why[96];
    int rc = cu_init(0), count = 0;
    if (rc != 0) {
        cu_reason(lib, rc, why, sizeof(why));
        snprintf(out->gpu_status, sizeof(out->gpu_status), "cuInit failed: %s", why);
        return;
    }
    rc = cu_count(&count);
    if (rc != 0) {
        cu_reason(lib, rc, why, sizeof(why));
        snprintf(out->gpu_status, sizeof(out->gpu_status), "cuDeviceGetCount failed: %s", why);
        return;
    }
    if (count <= 0) {
        snprintf(out->gpu_status, sizeof(out->gpu_status),
                 "the CUDA driver sees no device (check CUDA_VISIBLE_DEVICES)");
        return;
    }
    for (int i = 0; i < count && out->n_gpus < CRL_HW_MAX_GPUS; i++) {
        int dev;
        if (cu_get(&dev, i) != 0) continue;
        crl_hw_gpu_t *g = &out->gpus[out->n_gpus];
        memset(g, 0, sizeof(*g));
        if (cu_name(g->name, (int)sizeof(g->name) - 1, dev) != 0) snprintf(g->name, 8, "unknown");
        g->name[sizeof(g->name) - 1] = '\0';
        size_t bytes = 0;
        if (cu_mem(&bytes, dev) == 0) g->mem_total = bytes;
        if (cu_attr(&g->cc_major, CU_ATTR_CC_MAJOR, dev) != 0) g->cc_major = 0;
        if (cu_attr(&g->cc_minor, CU_ATTR_CC_MINOR, dev) != 0) g->cc_minor = 0;
        out->n_gpus++;
    }
    int version = 0;
    if (cu_version && cu_version(&version) == 0 && version > 0)
        snprintf(out->gpu_status, sizeof(out->gpu_status), "ok (CUDA driver %d.%d, %d device%s)",
                 version / 1000, (version % 1000) / 10, count, count == 1 ? "" : "s");
    else
        snprintf(out->gpu_status, sizeof(out->gpu_status), "ok (%d device%s)", count,
                 count == 1 ? "" : "s");
}
