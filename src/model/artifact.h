/* artifact.h: integrity of an artifact version directory (SHA-256 through OpenSSL libcrypto). */
#ifndef CRL_MODEL_ARTIFACT_H
#define CRL_MODEL_ARTIFACT_H

#include "core/status.h"
#include "model/card.h"

/* Lowercase hex SHA-256 of a file, read in chunks. */
crl_status crl_sha256_file(const char *path, char hex[65], crl_err *err);

/* Checks every card->hashes entry against files under dir. Missing file: CRL_ENOTFOUND
 * "missing artifact file: F"; mismatch: CRL_EINTEGRITY "hash mismatch for F (expected X, got Y)".
 * No hashes: CRL_OK (nothing to check). */
crl_status crl_artifact_verify(const char *dir, const crl_card_t *card, crl_err *err);

#endif
