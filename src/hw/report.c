/* report.c: one pass of detection, the recommendations drawn from it, and `carlarl hwinfo`'s two
 * renderings of the result: an aligned text report for people and a JSON object for tools. */
#include "hw/hw_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "json/write.h"

void crl_hw_detect(crl_hw_info_t *out) {
    if (!out) return;
    memset(out, 0, sizeof(*out));
    crl_hw__cpu_detect(out);
    crl_hw__topology_detect_at("", out);
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof(allowed), &allowed) == 0)
        out->allowed_cpus = CPU_COUNT(&allowed);
    crl_hw__gpu_detect(out);
}

const char *crl_hw_recommended_profile(const crl_hw_info_t *hw) {
    if (!hw) return "production";
    if (hw->n_gpus > 0) return "nvidia-optimized";
    if (strcmp(hw->arch, "aarch64") == 0 && strcmp(hw->vendor, "Apple") == 0)
        return "mac-m4-max-optimized";
    unsigned need = CRL_CPU_AVX2 | CRL_CPU_FMA;
    if (strcmp(hw->arch, "x86_64") == 0 && (hw->features & need) == need) return "intel-optimized";
    return "production";
}

int crl_hw_recommended_threads(const crl_hw_info_t *hw) {
    if (!hw) return 1;
    int n = hw->logical_cpus;
    /* A container limited by cpuset sees every online CPU but may run on few of them. */
    if (hw->allowed_cpus > 0 && (n <= 0 || hw->allowed_cpus < n)) n = hw->allowed_cpus;
    return n > 0 ? n : 1;
}

int crl_hw_recommended_workers(const crl_hw_info_t *hw) {
    int threads = crl_hw_recommended_threads(hw);
    if (!hw) return 1;
    /* Event loops spend their time in syscalls and parsing; two on sibling hyperthreads of one
     * core mostly contend, so one per core, as the tuning guide says. */
    int n = hw->physical_cores > 0 ? hw->physical_cores : threads;
    if (n > threads) n = threads;
    return n > 0 ? n : 1;
}

/* "48 KiB", "1 MiB", "23.5 GiB": whole numbers when exact, one decimal otherwise. */
static void fmt_bytes(uint64_t v, char *out, size_t cap) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    int u = 0;
    double d = (double)v;
    while (d >= 1024.0 && u < 5) {
        d /= 1024.0;
        u++;
    }
    if (u == 0 || (v % ((uint64_t)1 << (10 * u))) == 0)
        snprintf(out, cap, "%.0f %s", d, units[u]);
    else
        snprintf(out, cap, "%.1f %s", d, units[u]);
}

static void line(crl_buf *out, const char *label, const char *value) {
    crl_buf_printf(out, "  %-18s%s\n", label, value);
}

static void text_cpu(const crl_hw_info_t *hw, crl_buf *out) {
    char v[512];
    line(out, "arch", hw->arch[0] ? hw->arch : "unknown");
    line(out, "cpu", hw->model[0] ? hw->model : "unknown");
    if (hw->vendor[0]) {
        snprintf(v, sizeof(v), "%s (family %d, model %d, stepping %d)", hw->vendor, hw->family,
                 hw->model_id, hw->stepping);
        line(out, "vendor", v);
    }
    crl_hw_features_str(hw->features, v, sizeof(v));
    line(out, "instruction sets", v[0] ? v : "(none of those carlarl uses)");
    snprintf(v, sizeof(v), "%d online", hw->logical_cpus);
    if (hw->allowed_cpus > 0 && hw->allowed_cpus != hw->logical_cpus)
        snprintf(v + strlen(v), sizeof(v) - strlen(v), ", %d allowed to this process",
                 hw->allowed_cpus);
    line(out, "logical cpus", v);
    if (hw->physical_cores > 0)
        snprintf(v, sizeof(v), "%d in %d package%s", hw->physical_cores, hw->packages,
                 hw->packages == 1 ? "" : "s");
    else
        snprintf(v, sizeof(v), "unknown");
    line(out, "physical cores", v);
}

static void text_memory(const crl_hw_info_t *hw, crl_buf *out) {
    char v[512], size[32];
    if (hw->n_caches == 0) line(out, "caches", "unknown");
    for (int i = 0; i < hw->n_caches; i++) {
        const crl_hw_cache_t *k = &hw->caches[i];
        fmt_bytes(k->size, size, sizeof(size));
        int n = snprintf(v, sizeof(v), "L%d %-12s %10s", k->level, k->type, size);
        if (k->shared_by > 0 && n > 0)
            snprintf(v + n, sizeof(v) - (size_t)n, ", shared by %d cpu%s", k->shared_by,
                     k->shared_by == 1 ? "" : "s");
        line(out, i == 0 ? "caches" : "", v);
    }
    if (hw->n_nodes == 0) line(out, "numa nodes", "none reported (one node)");
    for (int i = 0; i < hw->n_nodes; i++) {
        const crl_hw_node_t *node = &hw->nodes[i];
        char label[32];
        fmt_bytes(node->mem_total, size, sizeof(size));
        snprintf(label, sizeof(label), "numa node %d", node->id);
        snprintf(v, sizeof(v), "cpus %s, memory %s", node->cpus[0] ? node->cpus : "none",
                 node->mem_total ? size : "unknown");
        line(out, label, v);
    }
    fmt_bytes(hw->mem_total, size, sizeof(size));
    line(out, "memory", hw->mem_total ? size : "unknown");
}

void crl_hw_write_text(const crl_hw_info_t *hw, const char *kernel_isa, crl_buf *out) {
    if (!hw || !out) return;
    char v[512], size[32];
    text_cpu(hw, out);
    text_memory(hw, out);
    if (hw->n_gpus == 0) {
        snprintf(v, sizeof(v), "none (%s)", hw->gpu_status[0] ? hw->gpu_status : "not checked");
        line(out, "gpus", v);
    } else {
        line(out, "gpus", hw->gpu_status);
    }
    for (int i = 0; i < hw->n_gpus; i++) {
        const crl_hw_gpu_t *g = &hw->gpus[i];
        char label[32];
        fmt_bytes(g->mem_total, size, sizeof(size));
        snprintf(label, sizeof(label), "gpu %d", i);
        snprintf(v, sizeof(v), "%s, %s, compute capability %d.%d", g->name, size, g->cc_major,
                 g->cc_minor);
        line(out, label, v);
    }
    line(out, "kernels", kernel_isa && kernel_isa[0] ? kernel_isa : "unknown");
    snprintf(v, sizeof(v), "profile %s, workers %d, cpu threads %d", crl_hw_recommended_profile(hw),
             crl_hw_recommended_workers(hw), crl_hw_recommended_threads(hw));
    line(out, "recommended", v);
}

static void json_key(crl_buf *out, const char *key) {
    crl_json_cstr(out, key);
    crl_buf_puts(out, ":");
}

static void json_features(const crl_hw_info_t *hw, crl_buf *out) {
    unsigned bit;
    const char *name;
    int first = 1;
    json_key(out, "features");
    crl_buf_puts(out, "[");
    for (int i = 0; (name = crl_hw__feature_name(i, &bit)) != NULL; i++) {
        if (!(hw->features & bit)) continue;
        if (!first) crl_buf_puts(out, ",");
        crl_json_cstr(out, name);
        first = 0;
    }
    crl_buf_puts(out, "],");
    json_key(out, "instruction_sets");
    crl_buf_puts(out, "{");
    for (int i = 0; (name = crl_hw__feature_name(i, &bit)) != NULL; i++) {
        if (i) crl_buf_puts(out, ",");
        json_key(out, name);
        crl_buf_puts(out, (hw->features & bit) ? "true" : "false");
    }
    crl_buf_puts(out, "},");
}

static void json_tables(const crl_hw_info_t *hw, crl_buf *out) {
    json_key(out, "caches");
    crl_buf_puts(out, "[");
    for (int i = 0; i < hw->n_caches; i++) {
        const crl_hw_cache_t *k = &hw->caches[i];
        crl_buf_printf(out, "%s{\"level\":%d,\"type\":", i ? "," : "", k->level);
        crl_json_cstr(out, k->type);
        crl_buf_printf(out, ",\"size_bytes\":%" PRIu64 ",\"shared_by\":%d}", k->size, k->shared_by);
    }
    crl_buf_puts(out, "],");
    json_key(out, "numa_nodes");
    crl_buf_puts(out, "[");
    for (int i = 0; i < hw->n_nodes; i++) {
        const crl_hw_node_t *node = &hw->nodes[i];
        crl_buf_printf(out, "%s{\"id\":%d,\"cpus\":", i ? "," : "", node->id);
        crl_json_cstr(out, node->cpus);
        crl_buf_printf(out, ",\"memory_bytes\":%" PRIu64 "}", node->mem_total);
    }
    crl_buf_printf(out, "],\"memory_bytes\":%" PRIu64 ",", hw->mem_total);
    json_key(out, "gpus");
    crl_buf_puts(out, "[");
    for (int i = 0; i < hw->n_gpus; i++) {
        const crl_hw_gpu_t *g = &hw->gpus[i];
        char cc[32];
        snprintf(cc, sizeof(cc), "%d.%d", g->cc_major, g->cc_minor);
        crl_buf_printf(out, "%s{\"name\":", i ? "," : "");
        crl_json_cstr(out, g->name);
        crl_buf_printf(out, ",\"memory_bytes\":%" PRIu64 ",\"compute_capability\":", g->mem_total);
        crl_json_cstr(out, cc);
        crl_buf_puts(out, "}");
    }
    crl_buf_puts(out, "],");
}

void crl_hw_write_json(const crl_hw_info_t *hw, const char *kernel_isa, crl_buf *out) {
    if (!hw || !out) return;
    crl_buf_puts(out, "{");
    json_key(out, "arch");
    crl_json_cstr(out, hw->arch);
    crl_buf_puts(out, ",");
    json_key(out, "vendor");
    crl_json_cstr(out, hw->vendor);
    crl_buf_puts(out, ",");
    json_key(out, "model");
    crl_json_cstr(out, hw->model);
    crl_buf_printf(out, ",\"family\":%d,\"model_id\":%d,\"stepping\":%d,", hw->family, hw->model_id,
                   hw->stepping);
    json_features(hw, out);
    crl_buf_printf(out,
                   "\"logical_cpus\":%d,\"allowed_cpus\":%d,\"physical_cores\":%d,"
                   "\"packages\":%d,",
                   hw->logical_cpus, hw->allowed_cpus, hw->physical_cores, hw->packages);
    json_tables(hw, out);
    json_key(out, "gpu_status");
    crl_json_cstr(out, hw->gpu_status);
    crl_buf_puts(out, ",");
    json_key(out, "kernel_isa");
    if (kernel_isa)
        crl_json_cstr(out, kernel_isa);
    else
        crl_buf_puts(out, "null");
    crl_buf_puts(out, ",\"recommended\":{\"profile\":");
    crl_json_cstr(out, crl_hw_recommended_profile(hw));
    crl_buf_printf(out, ",\"workers\":%d,\"cpu_threads\":%d}}", crl_hw_recommended_workers(hw),
                   crl_hw_recommended_threads(hw));
}
