#include <criterion/criterion.h>
#include <string.h>

#include "err.h"
#include "http.h"

Test(url, parses_forms)
{
    struct ctl_url u;
    char err[128];
    cr_assert_eq(ctl_url_parse("http://127.0.0.1:9080", &u, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(u.host, "127.0.0.1");
    cr_assert_eq(u.port, 9080);
    cr_assert_str_eq(u.path, "");
    cr_assert_eq(ctl_url_parse("HTTP://gw.example/admin/", &u, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(u.host, "gw.example");
    cr_assert_eq(u.port, 80);
    cr_assert_str_eq(u.path, "/admin");
    cr_assert_eq(ctl_url_parse("http://[::1]:9/", &u, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(u.host, "::1");
    cr_assert_eq(u.port, 9);
    cr_assert_str_eq(u.path, "");
}

Test(url, rejects_bad)
{
    static const char *cases[] = {"",
                                  "127.0.0.1:9080",
                                  "https://x:1",
                                  "http://",
                                  "http://:80",
                                  "http://x:",
                                  "http://x:0",
                                  "http://x:65536",
                                  "http://x:12a",
                                  "http://[::1",
                                  "http://[::1]x",
                                  "http://x:123456"};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ctl_url u;
        char err[128] = "";
        cr_assert_eq(ctl_url_parse(cases[i], &u, err, sizeof(err)), CM_EINVAL, "%s", cases[i]);
        cr_assert(err[0] != '\0');
    }
    struct ctl_url u;
    char err[128];
    cr_assert_eq(ctl_url_parse(NULL, &u, err, sizeof(err)), CM_EINVAL);
}

static int parse(const char *text, int complete, struct ctl_http_response *r, char *copy)
{
    char err[128];
    strcpy(copy, text);
    return ctl_http_response_parse(copy, strlen(text), complete, r, err, sizeof(err));
}

Test(response, content_length)
{
    char buf[512];
    struct ctl_http_response r;
    const char *t = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    "Content-Length: 5\r\n\r\nhello";
    cr_assert_eq(parse(t, 0, &r, buf), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.body_len, 5);
    cr_assert_eq(memcmp(buf + r.body_off, "hello", 5), 0);
    /* every shorter prefix needs more bytes, and is an error once the peer closed */
    for (size_t cut = 0; cut < strlen(t); cut++) {
        char part[512];
        memcpy(part, t, cut);
        part[cut] = '\0';
        cr_assert_eq(parse(part, 0, &r, buf), CM_EBUSY, "cut %zu", cut);
        cr_assert_eq(parse(part, 1, &r, buf), CM_EPROTO, "cut %zu", cut);
    }
}

Test(response, chunked_is_dechunked)
{
    char buf[512];
    struct ctl_http_response r;
    const char *t = "HTTP/1.1 503 Service Unavailable\r\ntransfer-encoding: chunked\r\n\r\n"
                    "3\r\nabc\r\n10;ext=1\r\n0123456789abcdef\r\n0\r\n\r\n";
    cr_assert_eq(parse(t, 0, &r, buf), 0);
    cr_assert_eq(r.status, 503);
    cr_assert_eq(r.body_len, 19);
    cr_assert_eq(memcmp(buf + r.body_off, "abc0123456789abcdef", 19), 0);
    cr_assert_eq(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab", 0, &r, buf),
                 CM_EBUSY);
    cr_assert_eq(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 0, &r, buf),
                 CM_EPROTO);
    cr_assert_eq(
        parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n", 0, &r, buf),
        CM_EPROTO);
    cr_assert_eq(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "fffffffffffffffffffffff\r\n",
                       0, &r, buf),
                 CM_EPROTO);
}

Test(response, incremental_chunked_parse_never_corrupts_the_buffer)
{
    /* The client re-parses its growing buffer after every read: a partial parse must leave
     * the bytes as they were. */
    const char *t = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "5\r\nhello\r\n1\r\n,\r\n6\r\n world\r\n0\r\n\r\n";
    size_t n = strlen(t);
    char buf[256];
    char err[128];
    struct ctl_http_response r;
    memcpy(buf, t, n);
    for (size_t k = 1; k < n; k++) {
        /* parse every prefix in order on one buffer, as the client does while reading */
        int rc = ctl_http_response_parse(buf, k, 0, &r, err, sizeof(err));
        cr_assert_eq(rc, CM_EBUSY, "prefix %zu: rc %d (%s)", k, rc, err);
        cr_assert_eq(memcmp(buf, t, n), 0, "buffer modified by a partial parse (prefix %zu)", k);
    }
    cr_assert_eq(ctl_http_response_parse(buf, n, 0, &r, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(r.body_len, 12);
    cr_assert_eq(memcmp(buf + r.body_off, "hello, world", 12), 0);
}

Test(response, body_to_eof)
{
    char buf[512];
    struct ctl_http_response r;
    cr_assert_eq(parse("HTTP/1.0 200 OK\nX: y\n\n{}", 0, &r, buf), CM_EBUSY);
    cr_assert_eq(parse("HTTP/1.0 200 OK\nX: y\n\n{}", 1, &r, buf), 0);
    cr_assert_eq(r.body_len, 2);
}

Test(response, garbage)
{
    static const char *cases[] = {
        "SSH-2.0-OpenSSH_9.2\r\n",
        "HTTP/2 200\r\n\r\n",
        "HTTP/1.1 2x0 OK\r\n\r\n",
        "HTTP/1.1 200OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
        "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999\r\n\r\n",
        "\x16\x03\x01\x02\x05\x01\x07\x01\xfc\x03\x03",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[512];
        struct ctl_http_response r;
        cr_assert_eq(parse(cases[i], 0, &r, buf), CM_EPROTO, "case %zu", i);
    }
}
