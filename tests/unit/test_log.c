/* test_log.c: the log line formats (flat JSON, readable text) and the ring's full/drop
 * behaviour. log.c is included to reach its statics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "core/log.c"

static const struct tm k_tm = {.tm_year = 126, .tm_mon = 10, .tm_mday = 27, .tm_hour = 12};

static void test_json_line_is_flat_and_escaped(void **state) {
    (void)state;
    char line[LINE_MAX_BYTES];
    size_t n = format_json(line, sizeof(line), &k_tm, 123456, CRL_LOG_INFO, "http_request",
                           "\"status\":404,\"path\":\"/a\\\"b\"", "GET /a\"b\n");
    line[n] = '\0';
    assert_string_equal(line, "{\"timestamp\":\"2026-11-27T12:00:00.123456Z\",\"level\":\"INFO\","
                              "\"logger\":\"carlarl\",\"event\":\"http_request\",\"status\":404,"
                              "\"path\":\"/a\\\"b\",\"message\":\"GET /a\\\"b\\u000a\"}\n");
}

static void test_oversized_fields_are_dropped_whole(void **state) {
    (void)state;
    static char fields[LINE_MAX_BYTES];
    memset(fields, 'x', sizeof(fields) - 1);
    memcpy(fields, "\"k\":\"", 5);
    fields[sizeof(fields) - 2] = '"';
    char line[LINE_MAX_BYTES];
    size_t n = format_json(line, sizeof(line), &k_tm, 0, CRL_LOG_WARNING, "e", fields, "m");
    line[n] = '\0';
    assert_null(strstr(line, "\"k\""));
    assert_non_null(strstr(line, "\"message\":\"m\"}\n"));
}

static void test_text_line_is_readable(void **state) {
    (void)state;
    char line[LINE_MAX_BYTES];
    size_t n = format_text(line, sizeof(line), &k_tm, 123456, CRL_LOG_INFO, "http_request",
                           "\"request_id\":\"r1\",\"status\":200,\"model_version\":null",
                           "POST /predict 200");
    line[n] = '\0';
    assert_string_equal(line, "2026-11-27T12:00:00.123Z INFO  http_request POST /predict 200 "
                              "request_id=r1 status=200 model_version=null\n");
}

static void test_json_str(void **state) {
    (void)state;
    char out[32];
    assert_int_equal(crl_log_json_str(out, sizeof(out), "a\"\\\x01", 4), 13);
    assert_string_equal(out, "\"a\\\"\\\\\\u0001\"");
    assert_int_equal(crl_log_json_str(out, sizeof(out), "0123456789", 10), 0); /* may not fit */
}

static void test_full_ring_drops_and_counts(void **state) {
    (void)state;
    for (size_t i = 0; i < RING_SLOTS; i++)
        atomic_store(&g_ring[i].seq, atomic_load(&g_head) + i);
    g_tail = atomic_load(&g_head);
    sem_init(&g_wake, 0, 0);
    /* The drained lines go to /dev/null. */
    int saved = dup(STDERR_FILENO), null = open("/dev/null", O_WRONLY);
    dup2(null, STDERR_FILENO);
    for (size_t i = 0; i < RING_SLOTS; i++)
        assert_int_equal(ring_push("x\n", 2), 1);
    assert_int_equal(ring_push("x\n", 2), 0);
    ring_drain(); /* frees every slot */
    assert_int_equal(ring_push("x\n", 2), 1);
    ring_drain();
    /* emit counts a line the full ring refuses. */
    atomic_store(&g_async, 1);
    for (size_t i = 0; i < RING_SLOTS; i++)
        ring_push("x\n", 2);
    unsigned long long before = crl_log_dropped();
    crl_log(CRL_LOG_ERROR, "e", "dropped");
    assert_int_equal(crl_log_dropped(), before + 1);
    atomic_store(&g_async, 0);
    ring_drain();
    dup2(saved, STDERR_FILENO);
    close(null);
    close(saved);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_line_is_flat_and_escaped),
        cmocka_unit_test(test_oversized_fields_are_dropped_whole),
        cmocka_unit_test(test_text_line_is_readable),
        cmocka_unit_test(test_json_str),
        cmocka_unit_test(test_full_ring_drops_and_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
