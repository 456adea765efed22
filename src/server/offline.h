/* offline.h: `carlarl predict`: one /predict body from a stream, the response to another, with the
 * same model selection, parser and response writer as the server. */
#ifndef CRL_SERVER_OFFLINE_H
#define CRL_SERVER_OFFLINE_H

#include <stdio.h>

#include "core/status.h"
#include "config/config.h"

/* Returns CRL_OK after writing a response; on a bad request writes {"error":...} and returns
 * CRL_EINVAL; on a load failure CRL_ENOTFOUND with err set. */
crl_status crl_offline_predict(const crl_config_t *c, FILE *in, FILE *out, crl_err *err);

#endif
