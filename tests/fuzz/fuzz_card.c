/* fuzz_card.c: libFuzzer target for the YAML reader and the model card parser. Any byte string
 * must parse into a card (then written back as JSON) or fail with a status and a message; never
 * crash, leak or read out of bounds. Seeds: tests/fuzz/corpus/card/. */
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "model/card.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    crl_card_t *card = NULL;
    crl_err err;
    if (crl_card_parse((const char *)data, size, "fuzz.yaml", &card, &err) != CRL_OK) return 0;
    crl_buf b;
    crl_buf_init(&b, 4u << 20);
    crl_card_write_json(card, &b);
    crl_card_write_metrics_json(card, &b);
    crl_buf_free(&b);
    crl_card_free(card);
    return 0;
}
