/* test_semver.c: the original's version grammar and ordering (original-system.md §3.1). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "model/semver.h"

static crl_semver_t v(const char *s) {
    crl_semver_t out;
    if (crl_semver_parse(s, &out) != CRL_OK) fail_msg("'%s' should parse", s);
    return out;
}

static void test_accepted(void **state) {
    (void)state;
    crl_semver_t a = v(" v1.2.3 ");
    assert_true(a.major == 1 && a.minor == 2 && a.patch == 3);
    assert_string_equal(a.pre, "");
    assert_true(crl_semver_is_stable(&a));

    a = v("1.2.3-0a");
    assert_string_equal(a.pre, "0a");
    assert_false(crl_semver_is_stable(&a));

    a = v("v1.2.3+001"); /* leading zeros are fine in build metadata */
    assert_string_equal(a.build, "001");
    assert_true(crl_semver_is_stable(&a));

    a = v("v1.2.3-rc.1+b.2");
    assert_string_equal(a.pre, "rc.1");
    assert_string_equal(a.build, "b.2");

    a = v("0.0.0");
    assert_true(a.major == 0 && a.minor == 0 && a.patch == 0);
    a = v("10.20.30-alpha-1.0.x-y");
    assert_string_equal(a.pre, "alpha-1.0.x-y");
    a = v("\tv18446744073709551615.0.0\n");
    assert_true(a.major == UINT64_MAX);
}

static void test_rejected(void **state) {
    (void)state;
    static const char *const bad[] = {
        "V1.2.3",     "v01.2.3",    "1.2.3-01",   "1.2.3-alpha.01",
        "1.2",        "v1.2.3.4",   "v1.2.3-",    "v1.2.3+",
        "",           "   ",        "vv1.2.3",    "1.02.3",
        "1.2.03",     "1.2.3-a..b", "1.2.3+a..b", "1.2.3-a_b",
        "1.2.3+a_b",  "-1.2.3",     "1.2.3 -rc",  "18446744073709551616.0.0",
        "1.2.3-+b",   "1.2.3-rc.",  "1.2.3-.rc",  "1.2.x",
        "v1.2.3+b+c", "1..3",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        crl_semver_t out;
        if (crl_semver_parse(bad[i], &out) != CRL_EFORMAT) fail_msg("'%s' should fail", bad[i]);
    }
    crl_semver_t out;
    assert_int_equal(crl_semver_parse(NULL, &out), CRL_EFORMAT);
    char longv[CRL_SEMVER_MAX + 16] = "1.2.3-";
    memset(longv + 6, 'a', CRL_SEMVER_MAX);
    longv[6 + CRL_SEMVER_MAX] = '\0';
    assert_int_equal(crl_semver_parse(longv, &out), CRL_EFORMAT);
}

static int cmp(const char *a, const char *b) {
    crl_semver_t x = v(a), y = v(b);
    return crl_semver_cmp(&x, &y);
}

static void test_ordering(void **state) {
    (void)state;
    /* §3.1's chain and examples, each as a strict "lower than". */
    static const char *const lower[][2] = {
        {"1.0.0-alpha", "1.0.0-alpha.1"},
        {"1.0.0-alpha.1", "1.0.0-alpha.beta"},
        {"1.0.0-beta.2", "1.0.0-beta.11"},
        {"1.0.0-rc.1", "1.0.0"},
        {"1.0.0-1", "1.0.0-a"},
        {"1.0.0-alpha", "1.0.0-alpha.0"},
        {"1.0.0-1a", "1.0.0-2"}, /* mixed: string order */
        {"1.0.0-10a", "1.0.0-9"},
        {"1.0.0-2", "1.0.0-10"},
        {"0.9.9", "1.0.0"},
        {"1.9.0", "1.10.0"},
        {"1.0.9", "1.0.10"},
        {"1.0.0", "1.0.1-alpha"},
        {"1.0.0-A", "1.0.0-a"},
        {"1.0.0-99999999999999999999", "1.0.0-100000000000000000000"},
    };
    for (size_t i = 0; i < sizeof(lower) / sizeof(lower[0]); i++) {
        if (!(cmp(lower[i][0], lower[i][1]) < 0))
            fail_msg("expected %s < %s", lower[i][0], lower[i][1]);
        if (!(cmp(lower[i][1], lower[i][0]) > 0))
            fail_msg("expected %s > %s", lower[i][1], lower[i][0]);
    }
    /* Build metadata is ignored; "v" is optional. */
    assert_int_equal(cmp("v1.2.3+b1", "1.2.3+b2"), 0);
    assert_int_equal(cmp("1.2.3-rc.1+x", "v1.2.3-rc.1"), 0);
}

static void test_format(void **state) {
    (void)state;
    char buf[64];
    crl_semver_t a = v("1.2.3-rc.1+b.2");
    assert_int_equal(crl_semver_format(&a, buf, sizeof(buf)), strlen("v1.2.3-rc.1+b.2"));
    assert_string_equal(buf, "v1.2.3-rc.1+b.2");
    a = v(" 0.1.0 ");
    crl_semver_format(&a, buf, sizeof(buf));
    assert_string_equal(buf, "v0.1.0");
    assert_int_equal(crl_semver_format(&a, buf, 4), 3);
    assert_string_equal(buf, "v0.");
    assert_int_equal(crl_semver_format(&a, buf, 0), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted),
        cmocka_unit_test(test_rejected),
        cmocka_unit_test(test_ordering),
        cmocka_unit_test(test_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
