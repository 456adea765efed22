/* yaml.c: builds the read-only crl_yaml tree from libyaml's event stream. Only what carlarl's
 * files need is supported: scalars, sequences and mappings with scalar keys. Anchors and aliases
 * are refused (they allow "billion laughs" documents and none of our files need them), nesting is
 * capped, and documents are capped at 1 MiB, so a hostile file cannot exhaust memory. */
#include "config/yaml.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yaml.h>

#include "core/fmt.h"

#define YAML_MAX_BYTES (1u << 20)
#define YAML_MAX_DEPTH 64

typedef struct yaml_ctx {
    yaml_parser_t parser;
    const char *name;
    crl_err *err;
} yaml_ctx;

static crl_status parser_error(yaml_ctx *c) {
    const yaml_parser_t *p = &c->parser;
    if (p->error == YAML_MEMORY_ERROR)
        return crl_err_set(c->err, CRL_ENOMEM, "%s: out of memory while parsing", c->name);
    /* libyaml marks are 0-based; the context ("while parsing a block mapping") helps users. */
    const char *problem = p->problem ? p->problem : "invalid YAML";
    if (p->context)
        return crl_err_set(c->err, CRL_EFORMAT, "%s:%lu: %s %s", c->name,
                           (unsigned long)p->problem_mark.line + 1, problem, p->context);
    return crl_err_set(c->err, CRL_EFORMAT, "%s:%lu: %s", c->name,
                       (unsigned long)p->problem_mark.line + 1, problem);
}

static crl_status next_event(yaml_ctx *c, yaml_event_t *ev) {
    if (!yaml_parser_parse(&c->parser, ev)) {
        memset(ev, 0, sizeof(*ev));
        return parser_error(c);
    }
    return CRL_OK;
}

static int event_line(const yaml_event_t *ev) {
    return (int)ev->start_mark.line + 1;
}

static crl_status refuse_anchor(yaml_ctx *c, const yaml_event_t *ev, const yaml_char_t *anchor) {
    if (anchor == NULL) return CRL_OK;
    return crl_err_set(c->err, CRL_EUNSUPPORTED,
                       "%s:%d: anchors (&%s) and aliases are not supported; write the value out",
                       c->name, event_line(ev), (const char *)anchor);
}

static crl_yaml_node_t *node_new(crl_yaml_kind kind, int line) {
    crl_yaml_node_t *n = calloc(1, sizeof(*n));
    if (n == NULL) return NULL;
    n->kind = kind;
    n->line = line;
    return n;
}

void crl_yaml_free(crl_yaml_node_t *n) {
    if (n == NULL) return;
    free(n->scalar);
    for (size_t i = 0; i < n->n; i++) {
        if (n->keys) free(n->keys[i]);
        crl_yaml_free(n->items[i]);
    }
    free(n->keys);
    free(n->items);
    free(n);
}

/* Appends (key, item) to a SEQ or MAP node; key is NULL for sequences. Takes ownership of both
 * on success only. */
static crl_status node_push(crl_yaml_node_t *n, size_t *cap, char *key, crl_yaml_node_t *item) {
    if (n->n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 4;
        crl_yaml_node_t **items = realloc(n->items, ncap * sizeof(*items));
        if (items == NULL) return CRL_ENOMEM;
        n->items = items;
        if (n->kind == CRL_YAML_MAP) {
            char **keys = realloc(n->keys, ncap * sizeof(*keys));
            if (keys == NULL) return CRL_ENOMEM;
            n->keys = keys;
        }
        *cap = ncap;
    }
    if (n->kind == CRL_YAML_MAP) n->keys[n->n] = key;
    n->items[n->n++] = item;
    return CRL_OK;
}

/* Copies a scalar's text; an embedded NUL (possible through a "\0" escape) would silently cut
 * a string short, so it is refused. */
static crl_status scalar_text(yaml_ctx *c, const yaml_event_t *ev, char **out) {
    const char *v = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    if (memchr(v, '\0', len) != NULL)
        return crl_err_set(c->err, CRL_EFORMAT, "%s:%d: NUL character in a string", c->name,
                           event_line(ev));
    char *s = malloc(len + 1);
    if (s == NULL) return crl_err_set(c->err, CRL_ENOMEM, "%s: out of memory", c->name);
    memcpy(s, v, len);
    s[len] = '\0';
    *out = s;
    return CRL_OK;
}

static crl_status build(yaml_ctx *c, yaml_event_t *ev, int depth, crl_yaml_node_t **out);

static crl_status build_scalar(yaml_ctx *c, yaml_event_t *ev, crl_yaml_node_t **out) {
    crl_status st = refuse_anchor(c, ev, ev->data.scalar.anchor);
    if (st != CRL_OK) return st;
    crl_yaml_node_t *n = node_new(CRL_YAML_SCALAR, event_line(ev));
    if (n == NULL) return crl_err_set(c->err, CRL_ENOMEM, "%s: out of memory", c->name);
    st = scalar_text(c, ev, &n->scalar);
    if (st != CRL_OK) {
        crl_yaml_free(n);
        return st;
    }
    /* Quoted, literal and folded scalars, and explicit !!str, are strings whatever they hold. */
    const char *tag = (const char *)ev->data.scalar.tag;
    n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE ||
                (tag != NULL && strcmp(tag, YAML_STR_TAG) == 0);
    *out = n;
    return CRL_OK;
}

/* Reads the items of a sequence or the pairs of a mapping up to the matching end event. */
static crl_status build_collection(yaml_ctx *c, crl_yaml_node_t *n, int depth) {
    size_t cap = 0;
    yaml_event_type_t end =
        n->kind == CRL_YAML_SEQ ? YAML_SEQUENCE_END_EVENT : YAML_MAPPING_END_EVENT;
    for (;;) {
        yaml_event_t ev;
        crl_status st = next_event(c, &ev);
        if (st != CRL_OK) return st;
        if (ev.type == end) {
            yaml_event_delete(&ev);
            return CRL_OK;
        }
        char *key = NULL;
        if (n->kind == CRL_YAML_MAP) {
            if (ev.type != YAML_SCALAR_EVENT) {
                st = ev.type == YAML_ALIAS_EVENT
                         ? refuse_anchor(c, &ev, ev.data.alias.anchor)
                         : crl_err_set(c->err, CRL_EUNSUPPORTED,
                                       "%s:%d: mapping keys must be plain strings", c->name,
                                       event_line(&ev));
                yaml_event_delete(&ev);
                return st;
            }
            st = refuse_anchor(c, &ev, ev.data.scalar.anchor);
            if (st == CRL_OK) st = scalar_text(c, &ev, &key);
            yaml_event_delete(&ev);
            if (st != CRL_OK) return st;
            st = next_event(c, &ev);
            if (st != CRL_OK) {
                free(key);
                return st;
            }
        }
        crl_yaml_node_t *item = NULL;
        st = build(c, &ev, depth + 1, &item);
        if (st == CRL_OK && node_push(n, &cap, key, item) != CRL_OK)
            st = crl_err_set(c->err, CRL_ENOMEM, "%s: out of memory", c->name);
        if (st != CRL_OK) {
            free(key);
            crl_yaml_free(item);
            return st;
        }
    }
}

/* Builds the node that starts with *ev; always consumes (deletes) *ev. */
static crl_status build(yaml_ctx *c, yaml_event_t *ev, int depth, crl_yaml_node_t **out) {
    crl_status st = CRL_OK;
    crl_yaml_node_t *n = NULL;
    *out = NULL;
    if (depth > YAML_MAX_DEPTH) {
        st = crl_err_set(c->err, CRL_EFORMAT, "%s:%d: nesting deeper than %d levels", c->name,
                         event_line(ev), YAML_MAX_DEPTH);
        goto out;
    }
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        st = build_scalar(c, ev, &n);
        break;
    case YAML_ALIAS_EVENT:
        st = refuse_anchor(c, ev, ev->data.alias.anchor);
        break;
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        const yaml_char_t *anchor = ev->type == YAML_SEQUENCE_START_EVENT
                                        ? ev->data.sequence_start.anchor
                                        : ev->data.mapping_start.anchor;
        st = refuse_anchor(c, ev, anchor);
        if (st != CRL_OK) break;
        n = node_new(ev->type == YAML_SEQUENCE_START_EVENT ? CRL_YAML_SEQ : CRL_YAML_MAP,
                     event_line(ev));
        if (n == NULL) {
            st = crl_err_set(c->err, CRL_ENOMEM, "%s: out of memory", c->name);
            break;
        }
        st = build_collection(c, n, depth);
        break;
    }
    default:
        st = crl_err_set(c->err, CRL_EFORMAT, "%s:%d: unexpected YAML event", c->name,
                         event_line(ev));
        break;
    }
out:
    yaml_event_delete(ev);
    if (st != CRL_OK) {
        crl_yaml_free(n);
        return st;
    }
    *out = n;
    return CRL_OK;
}

crl_status crl_yaml_parse(const char *text, size_t len, const char *name, crl_yaml_node_t **out,
                          crl_err *err) {
    yaml_ctx c = {.name = name ? name : "<yaml>", .err = err};
    yaml_event_t ev;
    crl_status st = CRL_OK;
    *out = NULL;
    if (len > YAML_MAX_BYTES)
        return crl_err_set(err, CRL_ENOMEM, "%s: document is larger than 1 MiB", c.name);
    if (!yaml_parser_initialize(&c.parser))
        return crl_err_set(err, CRL_ENOMEM, "%s: out of memory", c.name);
    yaml_parser_set_input_string(&c.parser, (const unsigned char *)(text ? text : ""), len);

    st = next_event(&c, &ev); /* STREAM-START */
    if (st != CRL_OK) goto out;
    yaml_event_delete(&ev);
    st = next_event(&c, &ev);
    if (st != CRL_OK) goto out;
    if (ev.type == YAML_STREAM_END_EVENT) {
        /* An empty file is an empty (null) document, as yaml.safe_load returns None. */
        yaml_event_delete(&ev);
        *out = node_new(CRL_YAML_SCALAR, 1);
        if (*out == NULL || ((*out)->scalar = calloc(1, 1)) == NULL) {
            crl_yaml_free(*out);
            *out = NULL;
            st = crl_err_set(err, CRL_ENOMEM, "%s: out of memory", c.name);
        }
        goto out;
    }
    yaml_event_delete(&ev); /* DOCUMENT-START */
    st = next_event(&c, &ev);
    if (st != CRL_OK) goto out;
    /* Only the first document is read; whatever follows it is ignored. */
    st = build(&c, &ev, 0, out);
out:
    yaml_parser_delete(&c.parser);
    return st;
}

crl_status crl_yaml_load_file(const char *path, crl_yaml_node_t **out, crl_err *err) {
    crl_status st = CRL_OK;
    char *text = NULL;
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        int e = errno;
        return crl_err_set(err, e == ENOENT ? CRL_ENOTFOUND : CRL_EIO, "%s: cannot open: %s", path,
                           strerror(e));
    }
    /* Read one byte past the cap so an oversized file is detected without trusting its size. */
    text = malloc(YAML_MAX_BYTES + 1);
    if (text == NULL) {
        st = crl_err_set(err, CRL_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    size_t len = fread(text, 1, YAML_MAX_BYTES + 1, f);
    if (ferror(f)) {
        st = crl_err_set(err, CRL_EIO, "%s: read error", path);
        goto out;
    }
    st = crl_yaml_parse(text, len, path, out, err);
out:
    free(text);
    fclose(f);
    return st;
}

const crl_yaml_node_t *crl_yaml_get(const crl_yaml_node_t *n, const char *key) {
    if (n == NULL || n->kind != CRL_YAML_MAP || key == NULL) return NULL;
    for (size_t i = n->n; i > 0; i--) /* from the end: the last duplicate wins */
        if (strcmp(n->keys[i - 1], key) == 0) return n->items[i - 1];
    return NULL;
}

const char *crl_yaml_str(const crl_yaml_node_t *n) {
    return n != NULL && n->kind == CRL_YAML_SCALAR ? n->scalar : NULL;
}

/* Quoted numeric text ("8080") is accepted too, as the original's pydantic lax mode did for
 * numeric strings; crl_yaml_write_json still writes it as a string. */
crl_status crl_yaml_double(const crl_yaml_node_t *n, double *out) {
    const char *s = crl_yaml_str(n);
    if (s == NULL || *s == '\0' || *s == ' ' || *s == '\t') return CRL_EFORMAT;
    char *end = NULL;
    errno = 0;
    double d = strtod(s, &end);
    if (end == s || *end != '\0' || !isfinite(d)) return CRL_EFORMAT;
    *out = d;
    return CRL_OK;
}

crl_status crl_yaml_bool(const crl_yaml_node_t *n, int *out) {
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    const char *s = crl_yaml_str(n);
    if (s == NULL) return CRL_EFORMAT;
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return CRL_OK;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return CRL_OK;
        }
    }
    return CRL_EFORMAT;
}

/* ---- JSON writer ---- */

static int is_json_number(const char *s) {
    if (*s == '-') s++;
    if (*s == '0') {
        s++;
    } else if (*s >= '1' && *s <= '9') {
        while (*s >= '0' && *s <= '9')
            s++;
    } else {
        return 0;
    }
    if (*s == '.') {
        s++;
        if (!(*s >= '0' && *s <= '9')) return 0;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-') s++;
        if (!(*s >= '0' && *s <= '9')) return 0;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    return *s == '\0';
}

static void put_json_string(crl_buf *out, const char *s) {
    crl_buf_puts(out, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"':
            crl_buf_puts(out, "\\\"");
            break;
        case '\\':
            crl_buf_puts(out, "\\\\");
            break;
        case '\n':
            crl_buf_puts(out, "\\n");
            break;
        case '\r':
            crl_buf_puts(out, "\\r");
            break;
        case '\t':
            crl_buf_puts(out, "\\t");
            break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                crl_buf_printf(out, "\\u%04x", *p);
            else
                crl_buf_append(out, p, 1); /* libyaml hands out valid UTF-8 */
        }
    }
    crl_buf_puts(out, "\"");
}

static void put_json_scalar(crl_buf *out, const crl_yaml_node_t *n) {
    const char *s = n->scalar;
    if (n->quoted) {
        put_json_string(out, s);
    } else if (*s == '\0' || strcmp(s, "~") == 0 || strcasecmp(s, "null") == 0) {
        crl_buf_puts(out, "null");
    } else if (strcasecmp(s, "true") == 0 || strcasecmp(s, "false") == 0) {
        crl_buf_puts(out, (s[0] == 't' || s[0] == 'T') ? "true" : "false");
    } else if (is_json_number(s)) {
        crl_buf_puts(out, s);
    } else {
        double d;
        if (crl_yaml_double(n, &d) == CRL_OK) { /* "+1", ".5", "1." are numbers in YAML too */
            char num[32];
            crl_fmt_json_double(num, d);
            crl_buf_puts(out, num);
        } else {
            put_json_string(out, s);
        }
    }
}

static void put_json(crl_buf *out, const crl_yaml_node_t *n) {
    switch (n->kind) {
    case CRL_YAML_SCALAR:
        put_json_scalar(out, n);
        break;
    case CRL_YAML_SEQ:
        crl_buf_puts(out, "[");
        for (size_t i = 0; i < n->n; i++) {
            if (i) crl_buf_puts(out, ", ");
            put_json(out, n->items[i]);
        }
        crl_buf_puts(out, "]");
        break;
    case CRL_YAML_MAP:
        crl_buf_puts(out, "{");
        for (size_t i = 0, first = 1; i < n->n; i++) {
            if (crl_yaml_get(n, n->keys[i]) != n->items[i]) continue; /* a later duplicate wins */
            if (!first) crl_buf_puts(out, ", ");
            first = 0;
            put_json_string(out, n->keys[i]);
            crl_buf_puts(out, ": ");
            put_json(out, n->items[i]);
        }
        crl_buf_puts(out, "}");
        break;
    }
}

crl_status crl_yaml_write_json(const crl_yaml_node_t *n, crl_buf *out) {
    if (n == NULL) return crl_buf_puts(out, "null");
    put_json(out, n);
    return out->failed ? CRL_ENOMEM : CRL_OK;
}
