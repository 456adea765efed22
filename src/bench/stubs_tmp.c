/* stubs_tmp.c: TEMPORARY stand-ins for report.c and verdict.c (issue 5, written in parallel by
 * another helper) so that this branch links; the lead deletes this file when those land. */
#include "bench/bench.h"

crl_status crl_bench_write_report(const char *path, const crl_bench_result *r, crl_err *err) {
    (void)r;
    return crl_err_set(err, CRL_EUNSUPPORTED, "%s: --report is not implemented in this build",
                       path);
}

crl_status crl_bench_check_thresholds(FILE *f, const crl_bench_result *r, const char *path,
                                      const char *env, int *failed, crl_err *err) {
    (void)f, (void)r, (void)env;
    *failed = 0;
    return crl_err_set(err, CRL_EUNSUPPORTED, "%s: --thresholds is not implemented in this build",
                       path);
}

crl_status crl_bench_check_baseline(FILE *f, const crl_bench_result *r, const char *path,
                                    const char *thresholds_path, int *failed, crl_err *err) {
    (void)f, (void)r, (void)thresholds_path;
    *failed = 0;
    return crl_err_set(err, CRL_EUNSUPPORTED, "%s: --baseline is not implemented in this build",
                       path);
}
