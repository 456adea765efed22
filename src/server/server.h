/* server.h: `carlarl serve`: h2o event loops, one per worker thread, each with its own
 * SO_REUSEPORT listener; HTTP/1.1 keep-alive, HTTP/2 cleartext, gzip; graceful shutdown on
 * SIGTERM/SIGINT (stop accepting, finish what is in flight, exit 0). */
#ifndef CRL_SERVER_SERVER_H
#define CRL_SERVER_SERVER_H

#include "core/status.h"
#include "server/options.h"

/* Loads the model, serves until SIGTERM/SIGINT, returns CRL_OK after a clean shutdown. */
crl_status crl_server_run(const crl_server_options_t *o, crl_err *err);

#endif
