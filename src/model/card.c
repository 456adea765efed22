/* card.c: reads and validates model_card.yaml (original-system.md §2.2), with carlarl's
 * stricter rules: the model must be ONNX, artifact file names must stay inside the version
 * directory, and hashes may be written bare or as "sha256:<hex>" (the original's README spelling,
 * which the original itself then rejected). Every error names the file and, where known, the line.
 */
#include "model/card.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/fmt.h"

static const char *const action_names[CRL_ACTIONS] = {"throttle", "brake", "steer"};

void crl_card_free(crl_card_t *c) {
    if (c == NULL) return;
    free(c->model_name);
    free(c->version);
    free(c->model_type);
    free(c->model_filename);
    free(c->preprocessor_filename);
    free(c->description);
    for (size_t i = 0; i < c->n_hashes; i++)
        free(c->hashes[i].file);
    free(c->hashes);
    crl_policy_clear(&c->policy);
    crl_yaml_free(c->doc);
    free(c);
}

/* A file name that cannot leave the version directory: relative, no ".." component. */
static int safe_relative_path(const char *p) {
    if (p == NULL || *p == '\0' || *p == '/' || strchr(p, '\\') != NULL) return 0;
    while (*p) {
        size_t n = strcspn(p, "/");
        if (n == 2 && p[0] == '.' && p[1] == '.') return 0;
        p += n;
        if (*p == '/') p++;
    }
    return 1;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* A required or optional string key: a non-empty scalar. *out stays NULL when absent. */
static crl_status get_string(const crl_yaml_node_t *root, const char *key, const char *name,
                             char **out, crl_err *err) {
    const crl_yaml_node_t *v = crl_yaml_get(root, key);
    *out = NULL;
    if (v == NULL) return CRL_OK;
    const char *s = crl_yaml_str(v);
    if (s == NULL || *s == '\0')
        return crl_err_set(err, CRL_EFORMAT, "%s:%d: %s: must be a non-empty string", name, v->line,
                           key);
    *out = dup_str(s);
    return *out ? CRL_OK : crl_err_set(err, CRL_ENOMEM, "%s: out of memory", name);
}

static crl_status check_required(const crl_yaml_node_t *root, const char *name, crl_err *err) {
    static const char *const required[] = {"model_name", "version", "model_type"};
    char missing[128] = "";
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
        if (crl_yaml_get(root, required[i]) != NULL) continue;
        if (missing[0]) strcat(missing, ", ");
        strcat(missing, required[i]);
    }
    if (missing[0])
        return crl_err_set(err, CRL_EFORMAT, "%s: model card missing required keys: %s", name,
                           missing);
    return CRL_OK;
}

static crl_status parse_model_type(crl_card_t *c, const char *name, crl_err *err) {
    for (char *p = c->model_type; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    if (strcmp(c->model_type, "onnx") == 0) return CRL_OK;
    return crl_err_set(err, CRL_EUNSUPPORTED,
                       "%s:%d: model_type: unsupported model type '%s' (carlarl loads onnx; "
                       "export the policy to ONNX, e.g. with write_artifact() in "
                       "tools/make_example_artifact.py)",
                       name, crl_yaml_get(c->doc, "model_type")->line, c->model_type);
}

static crl_status parse_filename(const crl_yaml_node_t *root, const char *key, const char *def,
                                 const char *name, char **out, crl_err *err) {
    crl_status st = get_string(root, key, name, out, err);
    if (st != CRL_OK) return st;
    if (*out == NULL) {
        *out = dup_str(def);
        return *out ? CRL_OK : crl_err_set(err, CRL_ENOMEM, "%s: out of memory", name);
    }
    if (!safe_relative_path(*out))
        return crl_err_set(err, CRL_EFORMAT,
                           "%s:%d: %s: '%s' must be a relative path inside the version directory",
                           name, crl_yaml_get(root, key)->line, key, *out);
    return CRL_OK;
}

/* "sha256:ABC..." or "abc...": 64 hex digits, stored lowercase without the prefix. */
static crl_status parse_hash(const char *file, const crl_yaml_node_t *v, const char *name,
                             char hex[65], crl_err *err) {
    const char *s = crl_yaml_str(v);
    if (s == NULL)
        return crl_err_set(err, CRL_EFORMAT, "%s:%d: artifact_hashes: %s: must be a string", name,
                           v->line, file);
    if (strncasecmp(s, "sha256:", 7) == 0) s += 7;
    size_t n = strlen(s);
    int hex_only = 1;
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i])) hex_only = 0;
    if (n != 64 || !hex_only)
        return crl_err_set(err, CRL_EFORMAT,
                           "%s:%d: artifact_hashes: %s: expected a SHA-256 of 64 hex digits "
                           "(optionally prefixed 'sha256:'), got %zu characters%s",
                           name, v->line, file, n, hex_only ? "" : " including non-hex ones");
    for (size_t i = 0; i < 64; i++)
        hex[i] = (char)tolower((unsigned char)s[i]);
    hex[64] = '\0';
    return CRL_OK;
}

static crl_status parse_hashes(crl_card_t *c, const char *name, crl_err *err) {
    const crl_yaml_node_t *h = crl_yaml_get(c->doc, "artifact_hashes");
    if (h == NULL || (h->kind == CRL_YAML_SCALAR && !h->quoted && h->scalar[0] == '\0'))
        return CRL_OK; /* absent or empty: nothing to check, as in the original */
    if (h->kind != CRL_YAML_MAP)
        return crl_err_set(err, CRL_EFORMAT,
                           "%s:%d: artifact_hashes: must be a mapping of file name to sha256", name,
                           h->line);
    if (h->n == 0) return CRL_OK;
    c->hashes = calloc(h->n, sizeof(*c->hashes));
    if (c->hashes == NULL) return crl_err_set(err, CRL_ENOMEM, "%s: out of memory", name);
    for (size_t i = 0; i < h->n; i++) {
        const char *file = h->keys[i];
        if (!safe_relative_path(file))
            return crl_err_set(err, CRL_EFORMAT,
                               "%s:%d: artifact_hashes: '%s' must be a relative path inside the "
                               "version directory (no '..')",
                               name, h->items[i]->line, file);
        crl_card_hash_t *e = &c->hashes[c->n_hashes];
        crl_status st = parse_hash(file, h->items[i], name, e->hex, err);
        if (st != CRL_OK) return st;
        if ((e->file = dup_str(file)) == NULL)
            return crl_err_set(err, CRL_ENOMEM, "%s: out of memory", name);
        c->n_hashes++;
    }
    return CRL_OK;
}

static crl_status parse_range(const crl_yaml_node_t *v, const char *what, const char *name,
                              float *lo, float *hi, crl_err *err) {
    double a, b;
    if (v->kind != CRL_YAML_SEQ || v->n != 2 || crl_yaml_double(v->items[0], &a) != CRL_OK ||
        crl_yaml_double(v->items[1], &b) != CRL_OK)
        return crl_err_set(err, CRL_EFORMAT, "%s:%d: action_space: %s: expected [low, high]", name,
                           v->line, what);
    if (!((float)a < (float)b) || !isfinite((float)a) || !isfinite((float)b))
        return crl_err_set(err, CRL_ERANGE,
                           "%s:%d: action_space: %s: low (%g) must be below high (%g)", name,
                           v->line, what, a, b);
    *lo = (float)a;
    *hi = (float)b;
    return CRL_OK;
}

static crl_status parse_action_space(crl_card_t *c, const char *name, crl_err *err) {
    const crl_yaml_node_t *a = crl_yaml_get(c->doc, "action_space");
    if (a == NULL || (a->kind == CRL_YAML_SCALAR && !a->quoted && a->scalar[0] == '\0'))
        return CRL_OK;
    if (a->kind != CRL_YAML_MAP)
        return crl_err_set(err, CRL_EFORMAT,
                           "%s:%d: action_space: must be a mapping (throttle, brake, steer)", name,
                           a->line);
    for (size_t i = 0; i < a->n; i++) {
        int k = -1;
        for (int j = 0; j < CRL_ACTIONS; j++)
            if (strcmp(a->keys[i], action_names[j]) == 0) k = j;
        if (k < 0)
            return crl_err_set(err, CRL_EFORMAT,
                               "%s:%d: action_space: unknown action '%s' (expected throttle, "
                               "brake or steer)",
                               name, a->items[i]->line, a->keys[i]);
        crl_status st =
            parse_range(a->items[i], a->keys[i], name, &c->action_lo[k], &c->action_hi[k], err);
        if (st != CRL_OK) return st;
    }
    return CRL_OK;
}

/* [N] or [batch, N]; the batch entry may be anything (null, -1, "batch"). */
static crl_status parse_input_shape(crl_card_t *c, const char *name, crl_err *err) {
    const crl_yaml_node_t *s = crl_yaml_get(c->doc, "input_shape");
    if (s == NULL) return CRL_OK;
    double d;
    if (s->kind != CRL_YAML_SEQ || s->n < 1 || s->n > 2 ||
        crl_yaml_double(s->items[s->n - 1], &d) != CRL_OK || d != floor(d) || d < 1 || d > 1e6)
        return crl_err_set(err, CRL_EFORMAT,
                           "%s:%d: input_shape: expected [features] or [batch, features] with a "
                           "positive integer feature count",
                           name, s->line);
    c->input_width = (long)d;
    return CRL_OK;
}

static crl_status card_from_doc(crl_yaml_node_t *doc, const char *name, crl_card_t **out,
                                crl_err *err) {
    crl_status st = CRL_OK;
    crl_card_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        crl_yaml_free(doc);
        return crl_err_set(err, CRL_ENOMEM, "%s: out of memory", name);
    }
    c->doc = doc;
    c->input_width = -1;
    static const float lo[CRL_ACTIONS] = {0.0f, 0.0f, -1.0f}, hi[CRL_ACTIONS] = {1, 1, 1};
    memcpy(c->action_lo, lo, sizeof(lo));
    memcpy(c->action_hi, hi, sizeof(hi));

    if (doc->kind != CRL_YAML_MAP) {
        st = crl_err_set(err, CRL_EFORMAT, "%s:%d: a model card must be a YAML mapping", name,
                         doc->line);
        goto out;
    }
    if ((st = check_required(doc, name, err)) != CRL_OK) goto out;
    if ((st = get_string(doc, "model_name", name, &c->model_name, err)) != CRL_OK) goto out;
    if ((st = get_string(doc, "version", name, &c->version, err)) != CRL_OK) goto out;
    if ((st = get_string(doc, "model_type", name, &c->model_type, err)) != CRL_OK) goto out;
    if ((st = parse_model_type(c, name, err)) != CRL_OK) goto out;
    st = parse_filename(doc, "model_filename", "model.onnx", name, &c->model_filename, err);
    if (st != CRL_OK) goto out;
    st = parse_filename(doc, "preprocessor_filename", "preprocessor.json", name,
                        &c->preprocessor_filename, err);
    if (st != CRL_OK) goto out;
    if ((st = get_string(doc, "description", name, &c->description, err)) != CRL_OK) goto out;
    if ((st = parse_hashes(c, name, err)) != CRL_OK) goto out;
    if ((st = parse_action_space(c, name, err)) != CRL_OK) goto out;
    if ((st = parse_input_shape(c, name, err)) != CRL_OK) goto out;
    st = crl_policy_parse(crl_yaml_get(doc, "policy"), name, &c->policy, err);
out:
    if (st != CRL_OK) {
        crl_card_free(c);
        c = NULL;
    }
    *out = c;
    return st;
}

crl_status crl_card_parse(const char *text, size_t len, const char *name, crl_card_t **out,
                          crl_err *err) {
    crl_yaml_node_t *doc = NULL;
    *out = NULL;
    if (name == NULL) name = "model_card.yaml";
    crl_status st = crl_yaml_parse(text, len, name, &doc, err);
    if (st != CRL_OK) return st;
    return card_from_doc(doc, name, out, err);
}

crl_status crl_card_load(const char *path, crl_card_t **out, crl_err *err) {
    crl_yaml_node_t *doc = NULL;
    *out = NULL;
    crl_status st = crl_yaml_load_file(path, &doc, err);
    if (st == CRL_ENOTFOUND) return crl_err_set(err, st, "model card not found: %s", path);
    if (st != CRL_OK) return st;
    return card_from_doc(doc, path, out, err);
}

crl_status crl_card_write_json(const crl_card_t *c, crl_buf *out) {
    if (c == NULL || c->doc == NULL) return crl_buf_puts(out, "{}");
    return crl_yaml_write_json(c->doc, out);
}

/* A numeric leaf: a plain number, or a YAML boolean (Python's float(True) is 1.0). */
static int metric_value(const crl_yaml_node_t *v, double *d) {
    if (v->kind != CRL_YAML_SCALAR || v->quoted) return 0;
    if (crl_yaml_double(v, d) == CRL_OK) return 1;
    if (strcasecmp(v->scalar, "true") == 0 || strcasecmp(v->scalar, "false") == 0) {
        *d = (v->scalar[0] == 't' || v->scalar[0] == 'T') ? 1.0 : 0.0;
        return 1;
    }
    return 0;
}

/* Depth-first flattening: nested keys joined with '_', as the original's flatten did. */
static void put_metrics(crl_buf *out, const crl_yaml_node_t *n, char *prefix, size_t plen,
                        size_t cap, int depth, int *first) {
    if (depth > 16) return;
    for (size_t i = 0; i < n->n; i++) {
        if (crl_yaml_get(n, n->keys[i]) != n->items[i]) continue; /* a later duplicate wins */
        size_t klen = strlen(n->keys[i]);
        size_t sep = plen ? 1 : 0;
        if (plen + sep + klen >= cap) continue; /* an absurdly long key path is skipped */
        if (sep) prefix[plen] = '_';
        memcpy(prefix + plen + sep, n->keys[i], klen + 1);
        const crl_yaml_node_t *v = n->items[i];
        double d;
        if (v->kind == CRL_YAML_MAP) {
            put_metrics(out, v, prefix, plen + sep + klen, cap, depth + 1, first);
        } else if (metric_value(v, &d)) {
            /* The key is written through the YAML writer so it is escaped like any string. */
            crl_yaml_node_t key = {.kind = CRL_YAML_SCALAR, .scalar = prefix, .quoted = 1};
            char num[32];
            crl_fmt_json_double(num, d);
            if (!*first) crl_buf_puts(out, ", ");
            crl_yaml_write_json(&key, out);
            crl_buf_printf(out, ": %s", num);
            *first = 0;
        }
        prefix[plen] = '\0';
    }
}

crl_status crl_card_write_metrics_json(const crl_card_t *c, crl_buf *out) {
    const crl_yaml_node_t *m = c ? crl_yaml_get(c->doc, "performance_metrics") : NULL;
    char prefix[512];
    int first = 1;
    prefix[0] = '\0';
    crl_buf_puts(out, "{");
    if (m != NULL && m->kind == CRL_YAML_MAP)
        put_metrics(out, m, prefix, 0, sizeof(prefix), 0, &first);
    crl_buf_puts(out, "}");
    return out->failed ? CRL_ENOMEM : CRL_OK;
}
