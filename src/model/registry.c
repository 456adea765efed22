/* registry.c: version discovery, start-up selection and the current-model pointer. */
#include "model/model.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/log.h"
#include "model/example.h"

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static crl_model_t *g_current;
static atomic_uint g_generation;

void crl_registry_publish(crl_model_t *m) {
    crl_model_ref(m);
    pthread_mutex_lock(&g_lock);
    crl_model_t *old = g_current;
    g_current = m;
    atomic_fetch_add_explicit(&g_generation, 1, memory_order_release);
    pthread_mutex_unlock(&g_lock);
    crl_model_unref(old);
}

crl_model_t *crl_registry_acquire(void) {
    pthread_mutex_lock(&g_lock);
    crl_model_t *m = crl_model_ref(g_current);
    pthread_mutex_unlock(&g_lock);
    return m;
}

unsigned crl_registry_generation(void) {
    return atomic_load_explicit(&g_generation, memory_order_acquire);
}

void crl_registry_shutdown(void) {
    crl_registry_publish(NULL);
}

static int cmp_desc(const void *a, const void *b) {
    const crl_version_entry_t *x = a, *y = b;
    return crl_semver_cmp(&y->semver, &x->semver);
}

crl_status crl_versions_scan(const char *root, crl_version_entry_t **out, size_t *n, crl_err *err) {
    *out = NULL;
    *n = 0;
    DIR *d = opendir(root);
    if (d == NULL) {
        if (errno == ENOENT)
            return crl_err_set(err, CRL_ENOTFOUND, "artifact directory '%s' does not exist", root);
        return crl_err_set(err, CRL_EIO, "cannot read artifact directory '%s': %s", root,
                           strerror(errno));
    }
    size_t cap = 0;
    crl_version_entry_t *list = NULL;
    crl_status st = CRL_OK;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        crl_semver_t v;
        if (de->d_name[0] == '.' || crl_semver_parse(de->d_name, &v) != CRL_OK) continue;
        char card[PATH_MAX + 32];
        struct stat sb;
        snprintf(card, sizeof(card), "%s/%s/model_card.yaml", root, de->d_name);
        if (stat(card, &sb) != 0 || !S_ISREG(sb.st_mode)) continue;
        if (*n == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            crl_version_entry_t *p = realloc(list, ncap * sizeof(*p));
            if (p == NULL) {
                st = crl_err_set(err, CRL_ENOMEM, "out of memory");
                break;
            }
            list = p;
            cap = ncap;
        }
        crl_version_entry_t *e = &list[(*n)++];
        e->semver = v;
        crl_semver_format(&v, e->label, sizeof(e->label));
        snprintf(e->dir, sizeof(e->dir), "%s/%s", root, de->d_name);
    }
    closedir(d);
    if (st != CRL_OK) {
        free(list);
        *n = 0;
        return st;
    }
    if (*n > 1) qsort(list, *n, sizeof(*list), cmp_desc);
    *out = list;
    return CRL_OK;
}

/* Gives a loaded model its share of the compute threads. A model that cannot have them (no memory
 * for the helpers' workspaces) still serves, each batch on one thread. */
static void attach_pool(crl_model_t *m, const crl_registry_opts_t *o) {
    if (o->pool == NULL) return;
    crl_err err = {{0}};
    size_t max_rows = o->parallel_max_rows ? o->parallel_max_rows : 1000;
    if (crl_model_set_pool(m, o->pool, o->parallel_min_rows, max_rows, &err) != CRL_OK)
        CRL_WARN("compute_threads", "%s %s: %s; batches run on one thread", m->version,
                 m->card->model_name, err.msg);
}

static crl_status use_builtin(const crl_registry_opts_t *o, const char *why, crl_err *err) {
    crl_model_t *m = NULL;
    crl_status st = crl_model_load_builtin(&m, err);
    if (st != CRL_OK) return st;
    attach_pool(m, o);
    CRL_INFO("model_loaded",
             "%s; serving the built-in example policy %s (%s, %zu inputs, %zu outputs) "
             "loaded in %.3f ms",
             why, m->version, m->card->model_name, m->in_width, m->out_width,
             m->load_seconds * 1e3);
    crl_registry_publish(m);
    crl_model_unref(m);
    return CRL_OK;
}

static crl_status try_load(const crl_registry_opts_t *o, const crl_version_entry_t *e) {
    crl_err err = {{0}};
    crl_model_t *m = NULL;
    crl_status st = crl_model_load_dir(e->dir, e->label, &m, &err);
    if (st != CRL_OK) {
        CRL_WARN("model_loading_error", "skipping version %s: %s", e->label, err.msg);
        return st;
    }
    attach_pool(m, o);
    CRL_INFO("model_loaded", "loaded %s (%s) from %s: %zu inputs, %zu outputs, in %.3f ms",
             m->version, m->card->model_name, m->dir, m->in_width, m->out_width,
             m->load_seconds * 1e3);
    crl_registry_publish(m);
    crl_model_unref(m);
    return CRL_OK;
}

crl_status crl_registry_load_startup(const crl_registry_opts_t *o, const char **strategy_out,
                                     crl_err *err) {
    const char *root = o->artifact_dir && *o->artifact_dir ? o->artifact_dir : "artifacts";
    const char *dummy;
    if (strategy_out == NULL) strategy_out = &dummy;
    crl_version_entry_t *list = NULL;
    size_t n = 0;
    crl_err serr = {{0}};
    crl_status st = crl_versions_scan(root, &list, &n, &serr);
    if (st == CRL_ENOTFOUND || (st == CRL_OK && n == 0)) {
        free(list);
        char why[PATH_MAX + 64];
        snprintf(why, sizeof(why),
                 st == CRL_OK ? "no model versions in '%s'" : "no artifact directory '%s'", root);
        *strategy_out = "builtin_example";
        return use_builtin(o, why, err);
    }
    if (st != CRL_OK) return crl_err_set(err, st, "%s", serr.msg);

    *strategy_out = "environment_with_fallback";
    int pinned_tried = -1;
    if (o->pin && *o->pin) {
        crl_semver_t pin;
        if (crl_semver_parse(o->pin, &pin) != CRL_OK) {
            CRL_WARN("model_selection",
                     "MODEL_VERSION '%s' is not a semantic version; selecting "
                     "the newest stable version",
                     o->pin);
        } else {
            for (size_t i = 0; i < n; i++)
                if (crl_semver_cmp(&list[i].semver, &pin) == 0) pinned_tried = (int)i;
            if (pinned_tried < 0)
                CRL_WARN("model_selection",
                         "MODEL_VERSION %s not found under '%s'; selecting the "
                         "newest stable version",
                         o->pin, root);
            else if (try_load(o, &list[pinned_tried]) == CRL_OK)
                goto done;
        }
    }
    /* Newest stable first, then newest prerelease; the list is already newest first. */
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < n; i++) {
            if ((int)i == pinned_tried || crl_semver_is_stable(&list[i].semver) != (pass == 0))
                continue;
            if (try_load(o, &list[i]) == CRL_OK) goto done;
        }
    free(list);
    crl_registry_publish(NULL);
    CRL_ERROR("model_loading_error",
              "no loadable model version under '%s'; /predict answers 503 "
              "until one is deployed and the server restarted",
              root);
    return crl_err_set(err, CRL_ENOTFOUND, "no loadable model version under '%s'", root);
done:
    free(list);
    return CRL_OK;
}
