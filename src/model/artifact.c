/* artifact.c: SHA-256 integrity check of an artifact version directory against the card's
 * artifact_hashes (original-system.md §2.3). Files not listed are not checked, and the card
 * itself is not hashed, as in the original. */
#include "model/artifact.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#define HASH_CHUNK 65536

crl_status crl_sha256_file(const char *path, char hex[65], crl_err *err) {
    crl_status st = CRL_OK;
    unsigned char *chunk = NULL;
    EVP_MD_CTX *ctx = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        int e = errno;
        return crl_err_set(err, e == ENOENT ? CRL_ENOTFOUND : CRL_EIO, "cannot open %s: %s", path,
                           strerror(e));
    }
    chunk = malloc(HASH_CHUNK);
    ctx = EVP_MD_CTX_new();
    if (chunk == NULL || ctx == NULL) {
        st = crl_err_set(err, CRL_ENOMEM, "out of memory hashing %s", path);
        goto out;
    }
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        st = crl_err_set(err, CRL_EIO, "SHA-256 unavailable in libcrypto");
        goto out;
    }
    size_t n;
    while ((n = fread(chunk, 1, HASH_CHUNK, f)) > 0) {
        if (EVP_DigestUpdate(ctx, chunk, n) != 1) {
            st = crl_err_set(err, CRL_EIO, "SHA-256 failed on %s", path);
            goto out;
        }
    }
    if (ferror(f)) {
        st = crl_err_set(err, CRL_EIO, "read error on %s", path);
        goto out;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 32) {
        st = crl_err_set(err, CRL_EIO, "SHA-256 failed on %s", path);
        goto out;
    }
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = 0; i < 32; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[64] = '\0';
out:
    EVP_MD_CTX_free(ctx);
    free(chunk);
    fclose(f);
    return st;
}

crl_status crl_artifact_verify(const char *dir, const crl_card_t *card, crl_err *err) {
    if (card == NULL) return CRL_OK;
    for (size_t i = 0; i < card->n_hashes; i++) {
        const crl_card_hash_t *h = &card->hashes[i];
        size_t n = strlen(dir) + strlen(h->file) + 2;
        char *path = malloc(n);
        if (path == NULL) return crl_err_set(err, CRL_ENOMEM, "out of memory");
        snprintf(path, n, "%s/%s", dir, h->file);
        char got[65];
        crl_err herr;
        crl_status st = crl_sha256_file(path, got, &herr);
        if (st == CRL_ENOTFOUND)
            st = crl_err_set(err, st, "missing artifact file: %s", path);
        else if (st != CRL_OK)
            st = crl_err_set(err, st, "%s", herr.msg);
        else if (strcmp(got, h->hex) != 0)
            st = crl_err_set(err, CRL_EINTEGRITY, "hash mismatch for %s (expected %s, got %s)",
                             path, h->hex, got);
        free(path);
        if (st != CRL_OK) return st;
    }
    return CRL_OK;
}
