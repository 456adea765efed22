/* semver.h: semantic versions exactly as the original parses and orders them
 * (original-system.md §3.1): optional lowercase "v", no leading zeros, dot-separated prerelease
 * and build identifiers, build ignored for ordering, numeric prerelease ids compare as integers,
 * others as ASCII strings, a shorter prerelease list sorts lower, a release beats its prereleases.
 */
#ifndef CRL_MODEL_SEMVER_H
#define CRL_MODEL_SEMVER_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#define CRL_SEMVER_MAX 128 /* longest accepted version string */

typedef struct crl_semver {
    uint64_t major, minor, patch;
    char pre[CRL_SEMVER_MAX];   /* "" when a release */
    char build[CRL_SEMVER_MAX]; /* "" when absent */
} crl_semver_t;

/* Leading/trailing whitespace is ignored. CRL_EFORMAT when s is not a valid version. */
crl_status crl_semver_parse(const char *s, crl_semver_t *out);
/* <0, 0, >0; build metadata ignored. */
int crl_semver_cmp(const crl_semver_t *a, const crl_semver_t *b);
int crl_semver_is_stable(const crl_semver_t *v); /* no prerelease */
/* "v1.2.3[-pre][+build]"; returns the length, truncating to cap-1. */
size_t crl_semver_format(const crl_semver_t *v, char *out, size_t cap);

#endif
