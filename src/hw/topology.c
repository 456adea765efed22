/* topology.c: how many CPUs, cores and packages this machine has, its caches, its NUMA nodes and
 * its memory, read from sysfs and procfs. VMs and containers often hide parts of sysfs (no cache
 * directory, no node directory); that is normal, so a missing file leaves its field empty or 0,
 * /proc/cpuinfo stands in where it knows the answer, and CPUID describes the caches on x86. */
#include "hw/hw_internal.h"

#include <ctype.h>
#include <stdarg.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SYS_CPU "/sys/devices/system/cpu"
#define SYS_NODE "/sys/devices/system/node"

int crl_hw__read_file(const char *path, char *buf, size_t cap) {
    if (!path || !buf || cap == 0) return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    size_t len = 0;
    while (len + 1 < cap) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0) {
            close(fd);
            return -1;
        }
        if (n == 0) break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    return (int)len;
}

/* Reads root + rel (rel built printf-style) into buf. */
static int read_at(const char *root, char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int read_at(const char *root, char *buf, size_t cap, const char *fmt, ...) {
    char rel[256], path[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(rel, sizeof(rel), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(rel)) return -1;
    if ((size_t)snprintf(path, sizeof(path), "%s%s", root, rel) >= sizeof(path)) return -1;
    return crl_hw__read_file(path, buf, cap);
}

/* A file holding one decimal integer ("-1" is a valid physical_package_id in some VMs). */
static int parse_int(const char *s, long *v) {
    char *end;
    long x = strtol(s, &end, 10);
    if (end == s) return -1;
    while (isspace((unsigned char)*end))
        end++;
    if (*end) return -1;
    *v = x;
    return 0;
}

/* "32K", "1024K", "32M" as written in the cache index size files. */
static uint64_t parse_size(const char *s) {
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s) return 0;
    switch (*end) {
    case 'K':
        return (uint64_t)v << 10;
    case 'M':
        return (uint64_t)v << 20;
    case 'G':
        return (uint64_t)v << 30;
    default:
        return (uint64_t)v;
    }
}

/* Value of "key<spaces>: value" lines of /proc/cpuinfo; NULL for other lines. */
static const char *cpuinfo_value(char *line, const char *key) {
    size_t k = strlen(key);
    if (strncmp(line, key, k) != 0) return NULL;
    const char *p = line + k;
    while (*p == ' ' || *p == '\t')
        p++;
    return *p == ':' ? p + 1 : NULL;
}

/* Counts distinct pairs; n is at most CPU_SETSIZE, so the quadratic scan stays cheap. */
static int count_distinct(const long (*pairs)[2], int n, int use_second) {
    int distinct = 0;
    for (int i = 0; i < n; i++) {
        int seen = 0;
        for (int j = 0; j < i && !seen; j++)
            seen = pairs[j][0] == pairs[i][0] && (!use_second || pairs[j][1] == pairs[i][1]);
        distinct += !seen;
    }
    return distinct;
}

/* Without sysfs topology: processor, physical id and core id lines of /proc/cpuinfo. */
static void cpuinfo_topology(const char *root, crl_hw_info_t *out) {
    char path[512];
    snprintf(path, sizeof(path), "%s/proc/cpuinfo", root);
    FILE *f = fopen(path, "r");
    if (!f) return;
    long pairs[CPU_SETSIZE][2]; /* 16 KiB */
    int processors = 0, n = 0, have_core = 0;
    long pkg = 0;
    char line[512];
    while (fgets(line, sizeof(line), f)) {
        const char *v;
        if (cpuinfo_value(line, "processor")) {
            processors++;
            pkg = 0;
        } else if ((v = cpuinfo_value(line, "physical id"))) {
            pkg = strtol(v, NULL, 10);
        } else if ((v = cpuinfo_value(line, "core id")) && n < CPU_SETSIZE) {
            pairs[n][0] = pkg;
            pairs[n][1] = strtol(v, NULL, 10);
            n++;
            have_core = 1;
        }
    }
    fclose(f);
    if (!out->logical_cpus && processors) out->logical_cpus = processors;
    if (have_core) {
        /* "physical id" precedes "core id" within each processor block. */
        out->physical_cores = count_distinct((const long(*)[2])pairs, n, 1);
        out->packages = count_distinct((const long(*)[2])pairs, n, 0);
    }
}

static void cpus_and_cores(const char *root, crl_hw_info_t *out, cpu_set_t *online) {
    char buf[4096];
    CPU_ZERO(online);
    if (read_at(root, buf, sizeof(buf), SYS_CPU "/online") > 0 &&
        crl_cpulist_parse(buf, online, NULL) == CRL_OK)
        out->logical_cpus = CPU_COUNT(online);

    long pairs[CPU_SETSIZE][2]; /* (package, core) of each online CPU */
    int n = 0, complete = out->logical_cpus > 0;
    for (int cpu = 0; cpu < CPU_SETSIZE && complete; cpu++) {
        if (!CPU_ISSET(cpu, online)) continue;
        long core, pkg;
        if (read_at(root, buf, sizeof(buf), SYS_CPU "/cpu%d/topology/core_id", cpu) <= 0 ||
            parse_int(buf, &core) != 0 ||
            read_at(root, buf, sizeof(buf), SYS_CPU "/cpu%d/topology/physical_package_id", cpu) <=
                0 ||
            parse_int(buf, &pkg) != 0) {
            complete = 0;
            break;
        }
        pairs[n][0] = pkg;
        pairs[n][1] = core;
        n++;
    }
    if (complete && n > 0) {
        out->physical_cores = count_distinct((const long(*)[2])pairs, n, 1);
        out->packages = count_distinct((const long(*)[2])pairs, n, 0);
    }

    if (!out->logical_cpus || !out->physical_cores) cpuinfo_topology(root, out);
    if (!out->logical_cpus && root[0] == '\0') {
        long n_onln = sysconf(_SC_NPROCESSORS_ONLN);
        out->logical_cpus = n_onln > 0 ? (int)n_onln : 0;
    }
}

static void caches(const char *root, crl_hw_info_t *out, const cpu_set_t *online) {
    int cpu = 0; /* the first online CPU (cpu0 unless the online list is unknown) */
    while (cpu < CPU_SETSIZE && !CPU_ISSET(cpu, online))
        cpu++;
    if (cpu == CPU_SETSIZE) cpu = 0;
    char buf[4096];
    for (int i = 0; i < 16 && out->n_caches < CRL_HW_MAX_CACHES; i++) {
        long level;
        if (read_at(root, buf, sizeof(buf), SYS_CPU "/cpu%d/cache/index%d/level", cpu, i) <= 0 ||
            parse_int(buf, &level) != 0)
            continue;
        crl_hw_cache_t *k = &out->caches[out->n_caches];
        memset(k, 0, sizeof(*k));
        k->level = (int)level;
        if (read_at(root, buf, sizeof(buf), SYS_CPU "/cpu%d/cache/index%d/type", cpu, i) > 0) {
            buf[strcspn(buf, "\n")] = '\0';
            snprintf(k->type, sizeof(k->type), "%.15s", buf);
        }
        if (read_at(root, buf, sizeof(buf), SYS_CPU "/cpu%d/cache/index%d/size", cpu, i) > 0)
            k->size = parse_size(buf);
        cpu_set_t shared;
        if (read_at(root, buf, sizeof(buf), SYS_CPU "/cpu%d/cache/index%d/shared_cpu_list", cpu,
                    i) > 0 &&
            crl_cpulist_parse(buf, &shared, NULL) == CRL_OK)
            k->shared_by = CPU_COUNT(&shared);
        out->n_caches++;
    }
    if (out->n_caches == 0) {
        out->n_caches = crl_hw__cpuid_caches(out->caches, CRL_HW_MAX_CACHES);
        for (int i = 0; i < out->n_caches; i++)
            if (out->logical_cpus > 0 && out->caches[i].shared_by > out->logical_cpus)
                out->caches[i].shared_by = out->logical_cpus;
    }
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* Copies a cpulist into a fixed field; a list too long to fit is cut at a comma, never inside a
 * number, and marked with "...". */
static void copy_cpulist(char *dst, size_t cap, const char *src) {
    size_t n = strcspn(src, "\n");
    if (n < cap) {
        memcpy(dst, src, n);
        dst[n] = '\0';
        return;
    }
    size_t cut = cap - 4;
    while (cut > 0 && src[cut] != ',')
        cut--;
    memcpy(dst, src, cut);
    memcpy(dst + cut, "...", 4);
}

static void numa_nodes(const char *root, crl_hw_info_t *out) {
    char path[512];
    snprintf(path, sizeof(path), "%s" SYS_NODE, root);
    DIR *d = opendir(path);
    if (!d) return;
    int ids[256], n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < 256) {
        const char *s = e->d_name;
        if (strncmp(s, "node", 4) != 0 || !s[4] || strspn(s + 4, "0123456789") != strlen(s + 4) ||
            strlen(s + 4) > 6)
            continue;
        ids[n++] = atoi(s + 4);
    }
    closedir(d);
    qsort(ids, (size_t)n, sizeof(ids[0]), cmp_int);
    char buf[8192];
    for (int i = 0; i < n && out->n_nodes < CRL_HW_MAX_NODES; i++) {
        crl_hw_node_t *node = &out->nodes[out->n_nodes++];
        memset(node, 0, sizeof(*node));
        node->id = ids[i];
        if (read_at(root, buf, sizeof(buf), SYS_NODE "/node%d/cpulist", ids[i]) >= 0)
            copy_cpulist(node->cpus, sizeof(node->cpus), buf);
        if (read_at(root, buf, sizeof(buf), SYS_NODE "/node%d/meminfo", ids[i]) > 0) {
            /* "Node 0 MemTotal:       32768 kB" */
            const char *p = strstr(buf, "MemTotal:");
            unsigned long long kb;
            if (p && sscanf(p + 9, "%llu", &kb) == 1) node->mem_total = (uint64_t)kb * 1024;
        }
    }
}

static void memory(const char *root, crl_hw_info_t *out) {
    char buf[8192];
    if (read_at(root, buf, sizeof(buf), "/proc/meminfo") <= 0) return;
    const char *p = strstr(buf, "MemTotal:");
    unsigned long long kb;
    if (p && sscanf(p + 9, "%llu", &kb) == 1) out->mem_total = (uint64_t)kb * 1024;
}

void crl_hw__topology_detect_at(const char *root, crl_hw_info_t *out) {
    if (!root) root = "";
    cpu_set_t online;
    cpus_and_cores(root, out, &online);
    caches(root, out, &online);
    numa_nodes(root, out);
    memory(root, out);
}
