/* yaml.h: a small read-only YAML document tree on top of libyaml, for the cold paths that read
 * files (model cards, preprocessor JSON, later the config files). Every node remembers its line
 * so errors can say "file:line: key: reason". JSON is read through the same parser (YAML 1.1
 * flow style covers the JSON files carlarl reads). The tree owns all its strings. */
#ifndef CRL_CONFIG_YAML_H
#define CRL_CONFIG_YAML_H

#include <stddef.h>

#include "core/buf.h"
#include "core/status.h"

typedef enum crl_yaml_kind {
    CRL_YAML_SCALAR,
    CRL_YAML_SEQ,
    CRL_YAML_MAP,
} crl_yaml_kind;

typedef struct crl_yaml_node crl_yaml_node_t;
struct crl_yaml_node {
    crl_yaml_kind kind;
    int line;                /* 1-based */
    char *scalar;            /* SCALAR: the text */
    int quoted;              /* SCALAR: 1 if it was quoted in the source (always a string) */
    size_t n;                /* SEQ/MAP: number of items (pairs for MAP) */
    char **keys;             /* MAP: keys[i] */
    crl_yaml_node_t **items; /* SEQ: items[i]; MAP: value of keys[i] */
};

/* Parses the first document of a file or a buffer. name is used in error messages.
 * Anchors/aliases are rejected (CRL_EUNSUPPORTED); documents larger than 1 MiB are rejected. */
crl_status crl_yaml_load_file(const char *path, crl_yaml_node_t **out, crl_err *err);
crl_status crl_yaml_parse(const char *text, size_t len, const char *name, crl_yaml_node_t **out,
                          crl_err *err);
void crl_yaml_free(crl_yaml_node_t *n); /* NULL-safe */

/* Map lookup (last duplicate wins); NULL if n is not a map or the key is absent. */
const crl_yaml_node_t *crl_yaml_get(const crl_yaml_node_t *n, const char *key);
/* Scalar conversions: CRL_OK, or CRL_EFORMAT when n is not a scalar of that type.
 * Booleans: true/false/yes/no/on/off/1/0 (any case). Numbers: strtod-complete, finite. */
crl_status crl_yaml_double(const crl_yaml_node_t *n, double *out);
crl_status crl_yaml_bool(const crl_yaml_node_t *n, int *out);
/* The scalar's text, or NULL when n is not a scalar. */
const char *crl_yaml_str(const crl_yaml_node_t *n);

/* Writes n as JSON: plain scalars that are numbers, booleans (true/false) or null (null, ~, empty)
 * keep that type, everything else becomes a JSON string. */
crl_status crl_yaml_write_json(const crl_yaml_node_t *n, crl_buf *out);

#endif
