/* status.c: crl_err formatting and status names. */
#include "core/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

crl_status crl_err_set(crl_err *err, crl_status status, const char *fmt, ...) {
    if (err == NULL) return status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return status;
}

crl_status crl_err_prefix(crl_err *err, crl_status status, const char *fmt, ...) {
    if (err == NULL) return status;
    char old[sizeof(err->msg)];
    memcpy(old, err->msg, sizeof(old));
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    /* Append ": old", truncated to fit (copied by hand: the truncation is intended). */
    size_t pos = n < 0 ? 0 : (size_t)n;
    const char *parts[2] = {": ", old};
    for (int i = 0; i < 2; i++)
        for (const char *c = parts[i]; *c && pos + 1 < sizeof(err->msg); c++)
            err->msg[pos++] = *c;
    if (pos < sizeof(err->msg)) err->msg[pos] = '\0';
    return status;
}

const char *crl_status_name(crl_status status) {
    switch (status) {
    case CRL_OK:
        return "OK";
    case CRL_EINVAL:
        return "EINVAL";
    case CRL_ENOMEM:
        return "ENOMEM";
    case CRL_EIO:
        return "EIO";
    case CRL_EFORMAT:
        return "EFORMAT";
    case CRL_EUNSUPPORTED:
        return "EUNSUPPORTED";
    case CRL_ERANGE:
        return "ERANGE";
    case CRL_ENOTFOUND:
        return "ENOTFOUND";
    case CRL_EINTEGRITY:
        return "EINTEGRITY";
    case CRL_ESHAPE:
        return "ESHAPE";
    }
    return "EUNKNOWN";
}
