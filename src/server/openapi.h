/* openapi.h: the OpenAPI 3 description of the HTTP API (docs/openapi.json, embedded at build). */
#ifndef CRL_SERVER_OPENAPI_H
#define CRL_SERVER_OPENAPI_H

#include <stddef.h>

const char *crl_openapi_json(size_t *len);

#endif
