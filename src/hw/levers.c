/* levers.c: binding work to the machine: CPU lists, thread pinning, NUMA binding (what numactl
 * --cpunodebind/--membind do, without libnuma) and locked memory. Each failure says what the
 * operator can change, because these fail for reasons outside carlarl: cgroup cpusets, container
 * capabilities, RLIMIT_MEMLOCK. */
#include "hw/hw_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SYS_NODE "/sys/devices/system/node"
#define MPOL_DEFAULT_ 0
#define MPOL_BIND_ 2
#define NODEMASK_BITS 1024 /* matches the kernel's largest MAX_NUMNODES */

static const char *skip_ws(const char *p) {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

/* The item containing p, for error messages: up to the next comma, trimmed, at most 31 chars. */
static void item_text(const char *start, char *out, size_t cap) {
    start = skip_ws(start);
    size_t n = strcspn(start, ",");
    while (n > 0 && (start[n - 1] == ' ' || start[n - 1] == '\t' || start[n - 1] == '\n' ||
                     start[n - 1] == '\r'))
        n--;
    if (n >= cap) n = cap - 1;
    memcpy(out, start, n);
    out[n] = '\0';
}

/* Reads a decimal CPU number at *pp; -1 when there is no digit, CPU_SETSIZE or more when too big
 * (saturating, so "99999999999999999999" cannot overflow). */
static long read_cpu(const char **pp) {
    const char *p = *pp;
    if (*p < '0' || *p > '9') return -1;
    long v = 0;
    while (*p >= '0' && *p <= '9') {
        if (v < CPU_SETSIZE) v = v * 10 + (*p - '0');
        p++;
    }
    *pp = p;
    return v;
}

crl_status crl_cpulist_parse(const char *s, cpu_set_t *out, crl_err *err) {
    if (!s || !out) return crl_err_set(err, CRL_EINVAL, "CPU list: no input");
    CPU_ZERO(out);
    const char *p = skip_ws(s);
    if (!*p) return crl_err_set(err, CRL_EINVAL, "CPU list is empty (expected e.g. \"0-3,8\")");
    char item[32];
    for (;;) {
        const char *start = p;
        p = skip_ws(p);
        long lo = read_cpu(&p), hi = lo;
        if (lo >= 0) {
            p = skip_ws(p);
            if (*p == '-') {
                p = skip_ws(p + 1);
                hi = read_cpu(&p);
                p = skip_ws(p);
            }
        }
        if (lo < 0 || hi < 0 || (*p && *p != ',')) {
            item_text(start, item, sizeof(item));
            return crl_err_set(err, CRL_EINVAL,
                               "CPU list \"%.64s\": '%s' is not a CPU number or range (expected "
                               "e.g. \"0-3,8\")",
                               s, item);
        }
        if (lo >= CPU_SETSIZE || hi >= CPU_SETSIZE) {
            item_text(start, item, sizeof(item));
            return crl_err_set(err, CRL_ERANGE,
                               "CPU list: '%s' is beyond the highest CPU number carlarl can "
                               "address (%d)",
                               item, CPU_SETSIZE - 1);
        }
        if (lo > hi) {
            item_text(start, item, sizeof(item));
            return crl_err_set(err, CRL_EINVAL,
                               "CPU list: range '%s' runs backwards (write it low-high)", item);
        }
        for (long c = lo; c <= hi; c++)
            CPU_SET((int)c, out);
        if (!*p) return CRL_OK;
        p++; /* the comma: an item must follow */
        if (!*skip_ws(p) || *skip_ws(p) == ',')
            return crl_err_set(err, CRL_EINVAL, "CPU list \"%.64s\": empty item after a comma", s);
    }
}

/* Appends "a" or "a-b" to out[*len..cap); 0 when it does not fit. */
static int put_range(char *out, size_t cap, size_t *len, int lo, int hi) {
    char tmp[32];
    int n = lo == hi ? snprintf(tmp, sizeof(tmp), "%s%d", *len ? "," : "", lo)
                     : snprintf(tmp, sizeof(tmp), "%s%d-%d", *len ? "," : "", lo, hi);
    if (n < 0 || *len + (size_t)n + 1 > cap) return 0;
    memcpy(out + *len, tmp, (size_t)n + 1);
    *len += (size_t)n;
    return 1;
}

void crl_cpulist_format(const cpu_set_t *set, char *out, size_t cap) {
    if (!out || cap == 0) return;
    out[0] = '\0';
    if (!set) return;
    size_t len = 0;
    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (!CPU_ISSET(c, set)) continue;
        int hi = c;
        while (hi + 1 < CPU_SETSIZE && CPU_ISSET(hi + 1, set))
            hi++;
        if (!put_range(out, cap, &len, c, hi)) {
            /* Cut at the last whole item and mark the cut; a partial number would mislead. */
            if (cap >= 4) {
                while (len > 0 && len + 4 > cap) {
                    while (len > 0 && out[len - 1] != ',')
                        len--;
                    if (len > 0) len--; /* drop the comma too */
                }
                memcpy(out + len, "...", 4);
            }
            return;
        }
        c = hi;
    }
}

/* A kernel without NUMA, or a VM whose sysfs hides it, has no node directory: then the machine
 * is one node, 0, holding every online CPU, and *single is set. */
static crl_status node_cpus(const char *root, int node, cpu_set_t *out, int *single, crl_err *err) {
    char path[512], buf[8192];
    *single = 0;
    if (!out) return crl_err_set(err, CRL_EINVAL, "NUMA node CPUs: no output set");
    CPU_ZERO(out);
    if (node < 0 || node >= NODEMASK_BITS)
        return crl_err_set(err, CRL_EINVAL, "NUMA node %d is out of range (0-%d)", node,
                           NODEMASK_BITS - 1);
    snprintf(path, sizeof(path), "%s" SYS_NODE "/node%d/cpulist", root, node);
    if (crl_hw__read_file(path, buf, sizeof(buf)) < 0) {
        snprintf(path, sizeof(path), "%s" SYS_NODE, root);
        if (access(path, F_OK) != 0 && node == 0) {
            *single = 1;
            snprintf(path, sizeof(path), "%s/sys/devices/system/cpu/online", root);
            if (crl_hw__read_file(path, buf, sizeof(buf)) > 0 &&
                crl_cpulist_parse(buf, out, NULL) == CRL_OK)
                return CRL_OK;
            long n = root[0] ? 0 : sysconf(_SC_NPROCESSORS_ONLN);
            for (long c = 0; c < n && c < CPU_SETSIZE; c++)
                CPU_SET((int)c, out);
            if (n > 0) return CRL_OK;
            return crl_err_set(err, CRL_ENOTFOUND, "cannot tell which CPUs are online");
        }
        snprintf(path, sizeof(path), "%s" SYS_NODE "/online", root);
        if (crl_hw__read_file(path, buf, sizeof(buf)) <= 0) snprintf(buf, sizeof(buf), "none");
        buf[strcspn(buf, "\n")] = '\0';
        return crl_err_set(err, CRL_ENOTFOUND,
                           "NUMA node %d does not exist (this machine's nodes: %.64s)", node, buf);
    }
    if (!*skip_ws(buf)) return CRL_OK; /* a memory-only node: no CPUs */
    crl_status st = crl_cpulist_parse(buf, out, err);
    if (st != CRL_OK) return crl_err_prefix(err, CRL_EFORMAT, "%s", path);
    return CRL_OK;
}

crl_status crl_hw__node_cpus_at(const char *root, int node, cpu_set_t *out, crl_err *err) {
    int single;
    return node_cpus(root ? root : "", node, out, &single, err);
}

crl_status crl_hw_node_cpus(int node, cpu_set_t *out, crl_err *err) {
    return crl_hw__node_cpus_at("", node, out, err);
}

crl_status crl_hw_pin_thread(pthread_t t, const cpu_set_t *cpus, crl_err *err) {
    char list[128];
    if (!cpus || CPU_COUNT(cpus) == 0)
        return crl_err_set(err, CRL_EINVAL, "cannot pin a thread to an empty CPU set");
    int rc = pthread_setaffinity_np(t, sizeof(*cpus), cpus);
    if (rc == 0) return CRL_OK;
    crl_cpulist_format(cpus, list, sizeof(list));
    if (rc == EINVAL)
        return crl_err_set(err, CRL_EINVAL,
                           "cannot pin a thread to CPUs %s: none of them is online and allowed "
                           "to this process (see its cgroup cpuset or taskset)",
                           list);
    return crl_err_set(err, CRL_EIO, "cannot pin a thread to CPUs %s: %s", list, strerror(rc));
}

crl_status crl_hw_numa_bind(int node, crl_err *err) {
    cpu_set_t cpus;
    int single, bound = 0;
    char list[128];
    crl_status st = node_cpus("", node, &cpus, &single, err);
    if (st != CRL_OK) return st;
    if (CPU_COUNT(&cpus) == 0)
        return crl_err_set(err, CRL_EINVAL,
                           "NUMA node %d has no CPUs (a memory-only node); bind to a node that "
                           "has CPUs",
                           node);
    if (!single) {
        /* The kernel reads maxnode - 1 bits (the historic off-by-one that libnuma also
         * follows), so pass one more than the mask holds. */
        unsigned long mask[NODEMASK_BITS / (8 * sizeof(unsigned long))] = {0};
        const size_t bits = 8 * sizeof(unsigned long);
        mask[(size_t)node / bits] = 1ul << ((size_t)node % bits);
        if (syscall(SYS_set_mempolicy, MPOL_BIND_, mask, (unsigned long)NODEMASK_BITS + 1) != 0) {
            int e = errno;
            if (e == ENOSYS)
                return crl_err_set(err, CRL_EUNSUPPORTED,
                                   "cannot bind memory to NUMA node %d: the kernel has no NUMA "
                                   "support (set_mempolicy: %s)",
                                   node, strerror(e));
            if (e == EPERM || e == EINVAL)
                return crl_err_set(err, CRL_EINVAL,
                                   "cannot bind memory to NUMA node %d: it has no memory or is "
                                   "not in this process's cpuset (set_mempolicy: %s)",
                                   node, strerror(e));
            return crl_err_set(err, CRL_EIO, "cannot bind memory to NUMA node %d: %s", node,
                               strerror(e));
        }
        bound = 1;
    }
    /* pid 0 is the calling thread; threads created afterwards inherit its mask and policy. */
    if (sched_setaffinity(0, sizeof(cpus), &cpus) != 0) {
        int e = errno;
        crl_cpulist_format(&cpus, list, sizeof(list));
        st = crl_err_set(err, e == EINVAL ? CRL_EINVAL : CRL_EIO,
                         "cannot bind to the CPUs of NUMA node %d (%s): %s%s", node, list,
                         strerror(e),
                         e == EINVAL ? " (none is allowed to this process: see its cgroup "
                                       "cpuset or taskset)"
                                     : "");
        goto out;
    }
    st = CRL_OK;
out:
    /* Half a binding is worse than none: memory on one node, threads anywhere. */
    if (st != CRL_OK && bound) syscall(SYS_set_mempolicy, MPOL_DEFAULT_, NULL, 0ul);
    return st;
}

static void fmt_limit(rlim_t v, char *out, size_t cap) {
    if (v == RLIM_INFINITY)
        snprintf(out, cap, "unlimited");
    else if (v >= 1024 && v % 1024 == 0)
        snprintf(out, cap, "%llu KiB", (unsigned long long)(v / 1024));
    else
        snprintf(out, cap, "%llu bytes", (unsigned long long)v);
}

crl_status crl_hw_mlock(const void *p, size_t n, crl_err *err) {
    if (n == 0) return CRL_OK;
    if (!p) return crl_err_set(err, CRL_EINVAL, "mlock: no memory given");
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0) page = 4096;
    uintptr_t start = (uintptr_t)p & ~((uintptr_t)page - 1);
    uintptr_t end = (uintptr_t)p + n;
    if (end < (uintptr_t)p || end > UINTPTR_MAX - (uintptr_t)page)
        return crl_err_set(err, CRL_EINVAL, "mlock: the range wraps around the address space");
    end = (end + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
    /* The raw system call: sanitizer runtimes replace mlock() with a no-op that reports
     * success, which would make the sanitized binary claim memory it never locked. */
    if (syscall(SYS_mlock, start, (size_t)(end - start)) == 0) return CRL_OK;

    int e = errno;
    size_t len = end - start;
    if (e == ENOMEM || e == EPERM || e == EAGAIN) {
        struct rlimit rl;
        char soft[32] = "unknown", hard[32] = "unknown";
        if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0) {
            fmt_limit(rl.rlim_cur, soft, sizeof(soft));
            fmt_limit(rl.rlim_max, hard, sizeof(hard));
        }
        return crl_err_set(err, CRL_ENOMEM,
                           "cannot lock %zu KiB in memory (mlock: %s); RLIMIT_MEMLOCK is %s soft, "
                           "%s hard. Raise it (`ulimit -l unlimited`, systemd "
                           "LimitMEMLOCK=infinity, docker --ulimit memlock=-1) or grant the "
                           "process CAP_IPC_LOCK",
                           len / 1024, strerror(e), soft, hard);
    }
    return crl_err_set(err, CRL_EIO, "cannot lock %zu KiB in memory: %s", len / 1024, strerror(e));
}

crl_status crl_hw_hugepages(void *p, size_t n, size_t *advised, crl_err *err) {
    if (p == NULL || n == 0) return CRL_OK;
    uintptr_t start = ((uintptr_t)p + CRL_HW_HUGE_PAGE - 1) & ~(uintptr_t)(CRL_HW_HUGE_PAGE - 1);
    uintptr_t end = ((uintptr_t)p + n) & ~(uintptr_t)(CRL_HW_HUGE_PAGE - 1);
    if (end <= start) return CRL_OK; /* smaller than one huge page: nothing to gain */
    char mode[128] = "";
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (f) {
        if (!fgets(mode, sizeof(mode), f)) mode[0] = 0;
        fclose(f);
    }
    if (strstr(mode, "[never]"))
        return crl_err_set(err, CRL_EUNSUPPORTED,
                           "transparent huge pages are off on this machine "
                           "(/sys/kernel/mm/transparent_hugepage/enabled is never); set it to "
                           "madvise or always");
    if (madvise((void *)start, (size_t)(end - start), MADV_HUGEPAGE) != 0)
        return crl_err_set(err, CRL_EUNSUPPORTED, "madvise(MADV_HUGEPAGE) of %zu KiB failed: %s",
                           (size_t)(end - start) / 1024, strerror(errno));
    *advised += (size_t)(end - start);
    return CRL_OK;
}

crl_status crl_hw_amx_request(crl_err *err) {
#if defined(__x86_64__)
    /* ARCH_REQ_XCOMP_PERM (0x1023) for XFEATURE_XTILEDATA (18): without it the first tile
     * instruction raises SIGILL even though XCR0 enables AMX. */
    if (syscall(SYS_arch_prctl, 0x1023, 18) == 0) return CRL_OK;
    return crl_err_set(err, CRL_EUNSUPPORTED,
                       "the kernel refused AMX tile state to this process (arch_prctl: %s); "
                       "Linux 5.16 or newer is needed",
                       strerror(errno));
#else
    return crl_err_set(err, CRL_EUNSUPPORTED, "AMX exists only on x86_64");
#endif
}
