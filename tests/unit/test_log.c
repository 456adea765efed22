/* test_log.c: the log line formats (flat JSON, readable text), the cached time stamp, the ring's
 * full/drop behaviour and when a producer wakes the logger. log.c is included to reach its
 * statics. */
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

static const char *k_stamp(void) {
    static char s[STAMP_BYTES];
    stamp_tm(&k_tm, s);
    return s;
}

/* The per-thread stamp follows the clock second by second (it is cached, not frozen). */
static void test_second_stamp(void **state) {
    (void)state;
    assert_string_equal(second_stamp(1795780800), "2026-11-27T12:00:00");
    assert_string_equal(second_stamp(1795780800), "2026-11-27T12:00:00");
    assert_string_equal(second_stamp(1795780859), "2026-11-27T12:00:59");
    assert_string_equal(second_stamp(1795780860), "2026-11-27T12:01:00");
    assert_string_equal(second_stamp(946684799), "1999-12-31T23:59:59");
}

static void test_json_line_is_flat_and_escaped(void **state) {
    (void)state;
    char line[LINE_MAX_BYTES];
    size_t n = format_json(line, sizeof(line), k_stamp(), 123456, CRL_LOG_INFO, "http_request",
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
    size_t n = format_json(line, sizeof(line), k_stamp(), 0, CRL_LOG_WARNING, "e", fields, "m");
    line[n] = '\0';
    assert_null(strstr(line, "\"k\""));
    assert_non_null(strstr(line, "\"message\":\"m\"}\n"));
}

static void test_text_line_is_readable(void **state) {
    (void)state;
    char line[LINE_MAX_BYTES];
    size_t n = format_text(line, sizeof(line), k_stamp(), 123456, CRL_LOG_INFO, "http_request",
                           "\"request_id\":\"r1\",\"status\":200,\"model_version\":null",
                           "POST /predict 200");
    line[n] = '\0';
    assert_string_equal(line, "2026-11-27T12:00:00.123Z INFO  http_request POST /predict 200 "
                              "request_id=r1 status=200 model_version=null\n");
}

/* Levels longer than the 5-column field push the event right; shorter ones are padded. */
static void test_text_levels(void **state) {
    (void)state;
    char line[LINE_MAX_BYTES];
    size_t n = format_text(line, sizeof(line), k_stamp(), 7000, CRL_LOG_WARNING, "e", NULL, "m");
    line[n] = '\0';
    assert_string_equal(line, "2026-11-27T12:00:00.007Z WARNING e m\n");
    n = format_text(line, sizeof(line), k_stamp(), 999999, CRL_LOG_ERROR, "e", NULL, "m");
    line[n] = '\0';
    assert_string_equal(line, "2026-11-27T12:00:00.999Z ERROR e m\n");
    n = format_json(line, sizeof(line), k_stamp(), 42, CRL_LOG_DEBUG, "e", NULL, "m");
    line[n] = '\0';
    assert_string_equal(line, "{\"timestamp\":\"2026-11-27T12:00:00.000042Z\",\"level\":\"DEBUG\","
                              "\"logger\":\"carlarl\",\"event\":\"e\",\"message\":\"m\"}\n");
}

/* A message too long for the line is cut, and the line still ends as valid JSON. */
static void test_long_message_is_cut_cleanly(void **state) {
    (void)state;
    static char msg[3 * LINE_MAX_BYTES];
    memset(msg, 'm', sizeof(msg) - 1);
    char line[LINE_MAX_BYTES];
    size_t n = format_json(line, sizeof(line), k_stamp(), 0, CRL_LOG_INFO, "e", NULL, msg);
    assert_true(n < sizeof(line));
    line[n] = '\0';
    assert_non_null(strstr(line, "mmm\"}\n"));
    n = format_text(line, sizeof(line), k_stamp(), 0, CRL_LOG_INFO, "e", NULL, msg);
    assert_true(n < sizeof(line));
    assert_int_equal(line[n - 1], '\n');
}

static void test_json_str(void **state) {
    (void)state;
    char out[32];
    assert_int_equal(crl_log_json_str(out, sizeof(out), "a\"\\\x01", 4), 13);
    assert_string_equal(out, "\"a\\\"\\\\\\u0001\"");
    assert_int_equal(crl_log_json_str(out, sizeof(out), "0123456789", 10), 0); /* may not fit */
}

/* The ring tests start from an empty ring and a fresh semaphore; the lines they drain go to
 * /dev/null (state: the saved stderr and /dev/null). */
static int ring_setup(void **state) {
    static int fds[2];
    ring_reset();
    sem_init(&g_wake, 0, 0);
    fds[0] = dup(STDERR_FILENO);
    fds[1] = open("/dev/null", O_WRONLY);
    dup2(fds[1], STDERR_FILENO);
    *state = fds;
    return 0;
}

static int ring_teardown(void **state) {
    int *fds = *state;
    atomic_store(&g_wait, WAIT_NONE);
    dup2(fds[0], STDERR_FILENO);
    close(fds[0]);
    close(fds[1]);
    return 0;
}

static void test_full_ring_drops_and_counts(void **state) {
    (void)state;
    for (size_t i = 0; i < RING_SLOTS; i++)
        assert_int_equal(ring_push("x\n", 2, 0), 1);
    assert_int_equal(ring_push("x\n", 2, 0), 0);
    ring_drain(); /* frees every slot */
    assert_int_equal(ring_push("x\n", 2, 0), 1);
    ring_drain();
    /* emit counts a line the full ring refuses. */
    atomic_store(&g_async, 1);
    for (size_t i = 0; i < RING_SLOTS; i++)
        ring_push("x\n", 2, 0);
    unsigned long long before = crl_log_dropped();
    crl_log(CRL_LOG_ERROR, "e", "dropped");
    assert_int_equal(crl_log_dropped(), before + 1);
    atomic_store(&g_async, 0);
    ring_drain();
}

static int wake_posts(void) {
    int v = 0;
    sem_getvalue(&g_wake, &v);
    while (sem_trywait(&g_wake) == 0) {
    }
    return v;
}

/* Busy traffic must not cost a futex per line: between polls only a WARNING or worse or a
 * half-full ring wakes the logger; a logger waiting for any line is woken by the first. One post
 * per wait: the producer that wakes it also clears the state. */
static void test_wake_policy(void **state) {
    (void)state;
    atomic_store(&g_wait, WAIT_POLL);
    for (size_t i = 0; i < RING_SLOTS / 2 - 1; i++)
        assert_int_equal(ring_push("x\n", 2, 0), 1);
    assert_int_equal(wake_posts(), 0); /* below half full: the poll will take them */
    assert_int_equal(ring_push("x\n", 2, 0), 1);
    assert_int_equal(wake_posts(), 1); /* half full */
    assert_int_equal(atomic_load(&g_wait), WAIT_NONE);
    assert_int_equal(ring_push("x\n", 2, 1), 1);
    assert_int_equal(wake_posts(), 0); /* already woken: no second post */
    ring_drain();

    atomic_store(&g_wait, WAIT_POLL);
    assert_int_equal(ring_push("x\n", 2, 1), 1);
    assert_int_equal(wake_posts(), 1); /* urgent */
    ring_drain();

    atomic_store(&g_wait, WAIT_IDLE);
    assert_int_equal(ring_push("x\n", 2, 0), 1);
    assert_int_equal(wake_posts(), 1); /* the first line after a quiet spell */
    assert_int_equal(ring_push("x\n", 2, 0), 1);
    assert_int_equal(wake_posts(), 0);
    assert_int_equal(ring_drain(), 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_line_is_flat_and_escaped),
        cmocka_unit_test(test_oversized_fields_are_dropped_whole),
        cmocka_unit_test(test_text_line_is_readable),
        cmocka_unit_test(test_second_stamp),
        cmocka_unit_test(test_text_levels),
        cmocka_unit_test(test_long_message_is_cut_cleanly),
        cmocka_unit_test(test_json_str),
        cmocka_unit_test_setup_teardown(test_wake_policy, ring_setup, ring_teardown),
        cmocka_unit_test_setup_teardown(test_full_ring_drops_and_counts, ring_setup, ring_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
