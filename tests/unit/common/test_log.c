/* CM_LOG escapes the formatted message: no caller can forge a log line with a CR/LF (or any
 * control byte) that came from a request or the wire. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

/* Everything the redirected stderr received. */
static size_t read_stderr(char *out, size_t cap)
{
    fflush(stderr);
    FILE *f = cr_get_redirected_stderr();
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    return n;
}

static size_t count(const char *s, char c)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == c;
    return n;
}

Test(log, control_bytes_in_a_message_cannot_forge_a_line, .init = cr_redirect_stderr)
{
    cm_log_init("t", CM_LOG_INFO);
    CM_INFO("msg=\"stored\" key=\"%s\" n=%d", "/a\r\n2026-01-01T00:00:00.000Z E t forged\\x", 7);
    CM_WARN("tab\there bell\a del\x7f esc\x1b end");
    char out[4096];
    read_stderr(out, sizeof(out));
    cr_assert_eq(count(out, '\n'), 2, "two calls, two lines: %s", out);
    cr_assert_eq(count(out, '\r'), 0, "%s", out);
    cr_assert(strstr(out, " I t msg=\"stored\" key=\"/a\\x0d\\x0a2026-01-01T00:00:00.000Z E t "
                          "forged\\\\x\" n=7\n") != NULL,
              "%s", out);
    cr_assert(strstr(out, " W t tab\there bell\\x07 del\\x7f esc\\x1b end\n") != NULL, "%s", out);
}

Test(log, escape_is_pure_and_bounded)
{
    char out[16];
    size_t n = cm_log_escape("a\nb\\c", 5, out, sizeof(out));
    cr_assert_str_eq(out, "a\\x0ab\\\\c");
    cr_assert_eq(n, strlen(out));
    /* never cuts an escape in half, always terminates */
    n = cm_log_escape("\n\n\n\n\n", 5, out, 10);
    cr_assert_str_eq(out, "\\x0a\\x0a");
    cr_assert_eq(n, 8);
    n = cm_log_escape("hello", 5, out, 1);
    cr_assert_eq(n, 0);
    cr_assert_str_eq(out, "");
    /* UTF-8 passes through unchanged */
    n = cm_log_escape("caf\xc3\xa9", 5, out, sizeof(out));
    cr_assert_str_eq(out, "caf\xc3\xa9");
}

Test(log, long_messages_stay_one_line, .init = cr_redirect_stderr)
{
    static char big[6000];
    memset(big, '\n', sizeof(big) - 1);
    cm_log_init("t", CM_LOG_INFO);
    CM_ERROR("x=%s", big);
    char out[8192];
    read_stderr(out, sizeof(out));
    cr_assert_eq(count(out, '\n'), 1, "one line however long");
    cr_assert_eq(out[strlen(out) - 1], '\n');
}
