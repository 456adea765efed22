/* server.h: `carlarl serve`: h2o event loops, one per worker thread, each with its own
 * SO_REUSEPORT listener; HTTP/1.1 keep-alive, HTTP/2 cleartext, gzip; graceful shutdown on
 * SIGTERM/SIGINT (stop accepting, finish what is in flight, exit 0). */
#ifndef CRL_SERVER_SERVER_H
#define CRL_SERVER_SERVER_H

#include "core/status.h"
#include "config/config.h"
#include "kernels/kernels.h"

/* Settings `serve` refuses (a device or precision without a backend, a bad cpu list), with the
 * source of the value in the message. The caller exits 2. */
crl_status crl_server_check(const crl_config_t *c, crl_err *err);
/* The part of crl_server_check about model.precision (also for `check` and `predict`). */
crl_status crl_server_check_precision(const crl_config_t *c, crl_err *err);
/* The kernel table: the best this CPU runs among those the optimization.enable_* switches
 * allow, or the one optimization.isa forces. Sets it for the process and returns it; also sets
 * the precision models load in (model.precision, crl_model_set_precision). */
const crl_kernels_t *crl_server_choose_kernels(const crl_config_t *c);
/* Loads the model, serves until SIGTERM/SIGINT, returns CRL_OK after a clean shutdown. SIGHUP
 * reloads the configuration files with argv (the command line given at start). */
crl_status crl_server_run(const crl_config_t *c, int argc, char **argv, crl_err *err);

#endif
