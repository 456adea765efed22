/* alloc_count.c: an LD_PRELOAD allocation counter for tests (liballoc_count.so).
 *
 * Wraps malloc, calloc, realloc, free, posix_memalign, aligned_alloc, memalign, valloc and
 * pvalloc; counts calls per thread (a fixed table of threads, slot taken on a thread's first call)
 * and per call site (the return address, a fixed open-addressing table). Nothing here allocates.
 *
 * Reading the counts: send the process SIGUSR2. The handler writes a text report with write(2) to
 * $CRL_ALLOC_COUNT_FILE.tmp and renames it to $CRL_ALLOC_COUNT_FILE, so a reader that waits for
 * the file to appear never sees half a report. Lines:
 *   thread <tid> <malloc> <calloc> <realloc> <aligned> <free>
 *   site <kind> <return address, hex> <count>
 * Counts are cumulative since the process started; a test diffs two reports.
 *
 * dlsym may itself call calloc/malloc before the real functions are known: those calls are served
 * from a static bump buffer, whose blocks free() ignores. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

enum { K_MALLOC, K_CALLOC, K_REALLOC, K_ALIGNED, K_FREE, K_N };
static const char *const k_kind[K_N] = {"malloc", "calloc", "realloc", "aligned", "free"};

#define MAX_THREADS 256
#define MAX_SITES 4096 /* power of two */

typedef struct {
    atomic_long tid; /* 0: free slot */
    atomic_ulong n[K_N];
} thread_slot;

typedef struct {
    atomic_uintptr_t addr; /* 0: free slot */
    atomic_ulong n;
} site_slot;

static thread_slot g_threads[MAX_THREADS];
static site_slot g_sites[K_N][MAX_SITES];
static __thread int t_slot __attribute__((tls_model("initial-exec"))) = -1;

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);
static int (*real_posix_memalign)(void **, size_t, size_t);
static void *(*real_aligned_alloc)(size_t, size_t);
static void *(*real_memalign)(size_t, size_t);

/* ---- bootstrap buffer ---------------------------------------------------------------------- */

static _Alignas(64) unsigned char g_boot[64 * 1024];
static atomic_size_t g_boot_used;
static atomic_int g_resolving;

static void *boot_alloc(size_t n) {
    n = (n + 63) & ~(size_t)63;
    size_t off = atomic_fetch_add(&g_boot_used, n);
    if (off + n > sizeof(g_boot)) return NULL;
    return g_boot + off;
}

static int is_boot(const void *p) {
    return (const unsigned char *)p >= g_boot && (const unsigned char *)p < g_boot + sizeof(g_boot);
}

static void resolve(void) {
    if (real_malloc) return;
    atomic_store(&g_resolving, 1);
    real_calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
    real_realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
    real_free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
    real_posix_memalign = (int (*)(void **, size_t, size_t))dlsym(RTLD_NEXT, "posix_memalign");
    real_aligned_alloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "aligned_alloc");
    real_memalign = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "memalign");
    void *(*m)(size_t) = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
    atomic_store(&g_resolving, 0);
    real_malloc = m; /* last: its presence means all are known */
}

/* ---- counting ------------------------------------------------------------------------------ */

static void count(int kind, void *ra) {
    int s = t_slot;
    if (s < 0) {
        long tid = (long)syscall(SYS_gettid);
        for (int i = 0; i < MAX_THREADS; i++) {
            long expect = 0;
            if (atomic_load(&g_threads[i].tid) == tid ||
                atomic_compare_exchange_strong(&g_threads[i].tid, &expect, tid)) {
                s = i;
                break;
            }
        }
        if (s < 0) s = MAX_THREADS - 1; /* overflow: the last slot collects the rest */
        t_slot = s;
    }
    atomic_fetch_add_explicit(&g_threads[s].n[kind], 1, memory_order_relaxed);
    if (kind == K_FREE) return; /* frees: counted per thread only */
    uintptr_t a = (uintptr_t)ra;
    size_t h = (size_t)((a >> 2) * 0x9E3779B97F4A7C15ull) & (MAX_SITES - 1);
    for (size_t i = 0; i < MAX_SITES; i++) {
        site_slot *e = &g_sites[kind][(h + i) & (MAX_SITES - 1)];
        uintptr_t cur = atomic_load_explicit(&e->addr, memory_order_relaxed);
        if (cur == 0) {
            uintptr_t zero = 0;
            if (atomic_compare_exchange_strong(&e->addr, &zero, a) || zero == a) {
                atomic_fetch_add_explicit(&e->n, 1, memory_order_relaxed);
                return;
            }
            cur = zero;
        }
        if (cur == a) {
            atomic_fetch_add_explicit(&e->n, 1, memory_order_relaxed);
            return;
        }
    }
}

/* A thread that exits keeps its slot (its counts stay in the report); a new thread that gets
 * the same tid shares it, which is good enough for a test. */

/* ---- the wrappers -------------------------------------------------------------------------- */

#define RA __builtin_return_address(0)

void *malloc(size_t n) {
    if (!real_malloc) {
        if (atomic_load(&g_resolving)) return boot_alloc(n);
        resolve();
    }
    count(K_MALLOC, RA);
    return real_malloc(n);
}

void *calloc(size_t a, size_t b) {
    if (!real_malloc) {
        if (atomic_load(&g_resolving)) return boot_alloc(a * b); /* static: already zero */
        resolve();
    }
    count(K_CALLOC, RA);
    return real_calloc(a, b);
}

void *realloc(void *p, size_t n) {
    if (!real_malloc) {
        if (atomic_load(&g_resolving)) return boot_alloc(n);
        resolve();
    }
    count(K_REALLOC, RA);
    if (is_boot(p)) {
        void *q = real_malloc(n);
        size_t room = (size_t)(g_boot + sizeof(g_boot) - (unsigned char *)p);
        if (q) memcpy(q, p, n < room ? n : room); /* the old block's size is unknown */
        return q;
    }
    return real_realloc(p, n);
}

void free(void *p) {
    if (p == NULL || is_boot(p)) return;
    if (!real_malloc) resolve();
    count(K_FREE, RA);
    real_free(p);
}

int posix_memalign(void **out, size_t align, size_t n) {
    if (!real_malloc) resolve();
    count(K_ALIGNED, RA);
    return real_posix_memalign(out, align, n);
}

void *aligned_alloc(size_t align, size_t n) {
    if (!real_malloc) resolve();
    count(K_ALIGNED, RA);
    return real_aligned_alloc(align, n);
}

void *memalign(size_t align, size_t n) {
    if (!real_malloc) resolve();
    count(K_ALIGNED, RA);
    return real_memalign(align, n);
}

void *valloc(size_t n) {
    if (!real_malloc) resolve();
    count(K_ALIGNED, RA);
    return real_memalign((size_t)sysconf(_SC_PAGESIZE), n);
}

void *pvalloc(size_t n) {
    if (!real_malloc) resolve();
    count(K_ALIGNED, RA);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return real_memalign(page, (n + page - 1) & ~(page - 1));
}

/* ---- the report (async-signal-safe: write(2) and integer formatting only) -------------------- */

typedef struct {
    int fd;
    char buf[4096];
    size_t len;
} out_t;

static void flush(out_t *o) {
    size_t off = 0;
    while (off < o->len) {
        ssize_t w = write(o->fd, o->buf + off, o->len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        off += (size_t)w;
    }
    o->len = 0;
}

static void put(out_t *o, const char *s) {
    while (*s) {
        if (o->len == sizeof(o->buf)) flush(o);
        o->buf[o->len++] = *s++;
    }
}

static void put_u(out_t *o, unsigned long long v, int base) {
    char tmp[32];
    int i = 0;
    do {
        tmp[i++] = "0123456789abcdef"[v % (unsigned)base];
        v /= (unsigned)base;
    } while (v);
    char s[34];
    int j = 0;
    if (base == 16) {
        s[j++] = '0';
        s[j++] = 'x';
    }
    while (i)
        s[j++] = tmp[--i];
    s[j] = 0;
    put(o, s);
}

static void on_usr2(int sig) {
    (void)sig;
    int saved = errno;
    const char *path = getenv("CRL_ALLOC_COUNT_FILE"); /* getenv does not allocate */
    if (path == NULL || strlen(path) > 4000) goto out;
    char tmp[4100];
    memcpy(tmp, path, strlen(path));
    memcpy(tmp + strlen(path), ".tmp", 5);
    out_t o = {.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)};
    if (o.fd < 0) goto out;
    for (int i = 0; i < MAX_THREADS; i++) {
        long tid = atomic_load(&g_threads[i].tid);
        if (tid == 0) continue;
        put(&o, "thread ");
        put_u(&o, (unsigned long long)tid, 10);
        for (int k = 0; k < K_N; k++) {
            put(&o, " ");
            put_u(&o, atomic_load(&g_threads[i].n[k]), 10);
        }
        put(&o, "\n");
    }
    for (int k = 0; k < K_N; k++)
        for (int i = 0; i < MAX_SITES; i++) {
            uintptr_t a = atomic_load(&g_sites[k][i].addr);
            if (a == 0) continue;
            put(&o, "site ");
            put(&o, k_kind[k]);
            put(&o, " ");
            put_u(&o, a, 16);
            put(&o, " ");
            put_u(&o, atomic_load(&g_sites[k][i].n), 10);
            put(&o, "\n");
        }
    put(&o, "end\n");
    flush(&o);
    close(o.fd);
    rename(tmp, path);
out:
    errno = saved;
}

__attribute__((constructor)) static void alloc_count_init(void) {
    resolve();
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_usr2;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR2, &sa, NULL);
}
