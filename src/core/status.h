/* status.h: the one error convention of carlarl. Functions that can fail return crl_status
 * (0 ok, negative code) and, where a caller must show a reason, fill an optional crl_err. */
#ifndef CRL_CORE_STATUS_H
#define CRL_CORE_STATUS_H

#include <stddef.h>

typedef int crl_status;

enum {
    CRL_OK = 0,
    CRL_EINVAL = -1,       /* bad argument or bad input */
    CRL_ENOMEM = -2,       /* allocation failed or a hard cap was reached */
    CRL_EIO = -3,          /* a file or socket could not be read or written */
    CRL_EFORMAT = -4,      /* input is not in the expected format (JSON, YAML, ONNX, semver) */
    CRL_EUNSUPPORTED = -5, /* well-formed, but beyond what carlarl implements */
    CRL_ERANGE = -6,       /* a value is outside its allowed range */
    CRL_ENOTFOUND = -7,    /* a file, key or version does not exist */
    CRL_EINTEGRITY = -8,   /* a checksum did not match */
    CRL_ESHAPE = -9,       /* tensor or feature shapes do not fit together */
};

/* A human-readable reason, filled by the function that failed. */
typedef struct crl_err {
    char msg[512];
} crl_err;

/* Formats into err->msg; a NULL err is allowed and ignored. Always returns `status`, so a caller
 * can write `return crl_err_set(err, CRL_EFORMAT, "...")`. */
crl_status crl_err_set(crl_err *err, crl_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes the existing message ("context: old message"). */
crl_status crl_err_prefix(crl_err *err, crl_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A short constant name for a status ("EINVAL" ...). */
const char *crl_status_name(crl_status status);

#endif
