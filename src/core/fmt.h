/* fmt.h: number formatting shared by every JSON writer. */
#ifndef CRL_CORE_FMT_H
#define CRL_CORE_FMT_H

#include <stddef.h>

/* Writes d as Python's repr(float) would: the shortest decimal that round-trips to the same
 * double, "1.0" for integral values, exponent form ("1e+30", "1.5e-05") where Python uses it,
 * and "inf", "-inf", "nan". out needs at least 32 bytes. Returns the length (no NUL counted). */
size_t crl_fmt_double(char *out, double d);

/* JSON-safe variant: like crl_fmt_double, but non-finite values are written as null. */
size_t crl_fmt_json_double(char *out, double d);

#endif
