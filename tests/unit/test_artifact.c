/* test_artifact.c: SHA-256 of files and the artifact_hashes integrity check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/artifact.h"

#define ART_DIR CRL_TEST_DATA "/artifacts/v0.1.0"

static void write_file(const char *path, const char *text, size_t len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    fclose(f);
}

static void test_sha256_known(void **state) {
    (void)state;
    char dir[] = "/tmp/crl_test_art_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof(path), "%s/abc", dir);
    char hex[65];
    crl_err err = {{0}};
    write_file(path, "abc", 3);
    assert_int_equal(crl_sha256_file(path, hex, &err), CRL_OK);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    write_file(path, "", 0);
    assert_int_equal(crl_sha256_file(path, hex, &err), CRL_OK);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    /* Larger than one read chunk: a million 'a's. */
    char *big = malloc(1000000);
    assert_non_null(big);
    memset(big, 'a', 1000000);
    write_file(path, big, 1000000);
    free(big);
    assert_int_equal(crl_sha256_file(path, hex, &err), CRL_OK);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    remove(path);
    rmdir(dir);
    assert_int_equal(crl_sha256_file("/nonexistent/file", hex, &err), CRL_ENOTFOUND);
}

static crl_card_t *card_with(const char *hashes_yaml) {
    char text[1024];
    snprintf(text, sizeof(text),
             "model_name: m\nversion: v0.1.0\nmodel_type: onnx\nartifact_hashes:\n%s", hashes_yaml);
    crl_card_t *c = NULL;
    crl_err err = {{0}};
    if (crl_card_parse(text, strlen(text), "card", &c, &err) != CRL_OK) fail_msg("%s", err.msg);
    return c;
}

static void test_verify_shipped_artifact(void **state) {
    (void)state;
    crl_card_t *c = NULL;
    crl_err err = {{0}};
    assert_int_equal(crl_card_load(ART_DIR "/model_card.yaml", &c, &err), CRL_OK);
    assert_int_equal(c->n_hashes, 2);
    assert_int_equal(crl_artifact_verify(ART_DIR, c, &err), CRL_OK);

    /* The hashes in the card are the files' real SHA-256 (sha256: spelling). */
    char hex[65];
    assert_int_equal(crl_sha256_file(ART_DIR "/model.onnx", hex, &err), CRL_OK);
    assert_string_equal(hex, c->hashes[0].hex);
    crl_card_free(c);
}

static void test_verify_spellings_and_failures(void **state) {
    (void)state;
    crl_err err = {{0}};
    char hex[65], line[256];
    assert_int_equal(crl_sha256_file(ART_DIR "/preprocessor.json", hex, &err), CRL_OK);

    /* Bare upper-case hex is accepted too. */
    char upper[65];
    for (int i = 0; i < 65; i++)
        upper[i] = (char)(hex[i] >= 'a' && hex[i] <= 'f' ? hex[i] - 32 : hex[i]);
    snprintf(line, sizeof(line), "  preprocessor.json: %s\n", upper);
    crl_card_t *c = card_with(line);
    assert_int_equal(crl_artifact_verify(ART_DIR, c, &err), CRL_OK);
    crl_card_free(c);

    snprintf(line, sizeof(line), "  preprocessor.json: \"sha256:%s\"\n", hex);
    c = card_with(line);
    assert_int_equal(crl_artifact_verify(ART_DIR, c, &err), CRL_OK);
    crl_card_free(c);

    /* A wrong hash: the message names the file and both hashes. */
    char wrong[65];
    memcpy(wrong, hex, 65);
    wrong[0] = wrong[0] == '0' ? '1' : '0';
    snprintf(line, sizeof(line), "  preprocessor.json: %s\n", wrong);
    c = card_with(line);
    assert_int_equal(crl_artifact_verify(ART_DIR, c, &err), CRL_EINTEGRITY);
    assert_non_null(strstr(err.msg, "hash mismatch for"));
    assert_non_null(strstr(err.msg, "preprocessor.json"));
    assert_non_null(strstr(err.msg, wrong));
    assert_non_null(strstr(err.msg, hex));
    crl_card_free(c);

    /* A listed file that is not there. */
    snprintf(line, sizeof(line), "  preprocessor.json: %s\n  absent.bin: %s\n", hex, hex);
    c = card_with(line);
    assert_int_equal(crl_artifact_verify(ART_DIR, c, &err), CRL_ENOTFOUND);
    assert_non_null(strstr(err.msg, "missing artifact file:"));
    assert_non_null(strstr(err.msg, "absent.bin"));
    crl_card_free(c);

    /* No hashes: nothing to check, even in a directory without the files. */
    c = card_with("");
    assert_int_equal(c->n_hashes, 0);
    assert_int_equal(crl_artifact_verify("/nonexistent", c, &err), CRL_OK);
    crl_card_free(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_known),
        cmocka_unit_test(test_verify_shipped_artifact),
        cmocka_unit_test(test_verify_spellings_and_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
