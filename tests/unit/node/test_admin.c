#include <criterion/criterion.h>
#include <string.h>

#include "admin/admin.h"

static int ready_flag;

static int fake_ready(void *arg, struct cm_sbuf *why)
{
    if (!ready_flag)
        cm_sbuf_puts(why, "no known leader");
    return ready_flag;
}

static void fake_metrics(void *arg, struct cm_sbuf *out)
{
    cm_sbuf_puts(out, "headwater_node_raft_term 7\n");
}

static const struct nd_admin_ops ops = {.ready = fake_ready, .metrics = fake_metrics};

static int parse(const char *s, struct nd_admin_req *req)
{
    return nd_admin_parse(s, strlen(s), req);
}

Test(admin, parses_a_request_head)
{
    struct nd_admin_req req;
    const char *s = "GET /readyz?verbose=1 HTTP/1.1\r\nHost: x\r\nUser-Agent: kube-probe\r\n\r\n";
    cr_assert_eq(parse(s, &req), (int)strlen(s));
    cr_assert_eq(req.method, ND_ADMIN_GET);
    cr_assert_str_eq(req.path, "/readyz");
    cr_assert_eq(req.has_body, 0);
    /* every prefix of a valid head asks for more */
    for (size_t n = 0; n < strlen(s); n++)
        cr_assert_eq(nd_admin_parse(s, n, &req), 0, "prefix %zu", n);
    const char *head = "HEAD /healthz HTTP/1.0\r\nContent-Length: 000\r\n\r\nextra";
    cr_assert_eq(parse(head, &req), (int)strlen(head) - 5);
    cr_assert_eq(req.method, ND_ADMIN_HEAD);
    cr_assert_eq(req.has_body, 0);
    cr_assert(parse("DELETE /metrics HTTP/1.1\r\n\r\n", &req) > 0);
    cr_assert_eq(req.method, ND_ADMIN_OTHER);
}

Test(admin, rejects_what_cannot_be_a_request)
{
    struct nd_admin_req req;
    const char *bad[] = {
        "\r\n",
        "GET /x HTTP/1.1\n\n",
        "GET /x HTTP/1.1\r\nA: b\rc\r\n\r\n",
        "GET /x HTTP/1.1\r\nA: b\r\n c\r\n\r\n",
        "GET /x HTTP/1.1\r\nA b: c\r\n\r\n",
        "GET /x HTTP/1.1\r\n: c\r\n\r\n",
        "GET x HTTP/1.1\r\n\r\n",
        "GET /x  HTTP/1.1\r\n\r\n",
        "GET /x HTTP/2.0\r\n\r\n",
        "GET /\x01 HTTP/1.1\r\n\r\n",
        "GET /x HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
        "GET /x HTTP/1.1\r\nContent-Length:\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(nd_admin_parse(bad[i], strlen(bad[i]), &req), -400, "accepted bad[%zu]", i);
    const char nul[] = "G\0T / HTTP/1.1\r\n\r\n";
    cr_assert_eq(nd_admin_parse(nul, sizeof(nul) - 1, &req), -400);
}

Test(admin, bounds_the_head_and_the_target)
{
    struct nd_admin_req req;
    static char buf[ND_ADMIN_HEAD_MAX + 64];
    memset(buf, 'a', sizeof(buf));
    memcpy(buf, "GET /", 5);
    cr_assert_eq(nd_admin_parse(buf, ND_ADMIN_TARGET_MAX + 100, &req), -414);
    const char *line = "GET /x HTTP/1.1\r\nX-Pad: ";
    memcpy(buf, line, strlen(line));
    cr_assert_eq(nd_admin_parse(buf, ND_ADMIN_HEAD_MAX, &req), -431);
    cr_assert_eq(nd_admin_parse(buf, ND_ADMIN_HEAD_MAX - 1, &req), 0);
}

static int answer(const char *head, struct cm_sbuf *out)
{
    struct nd_admin_req req;
    cr_assert(parse(head, &req) > 0, "%s", head);
    cm_sbuf_init(out);
    return nd_admin_answer(&req, &ops, NULL, out);
}

Test(admin, answers)
{
    struct cm_sbuf out;
    ready_flag = 0;
    cr_assert_eq(answer("GET /readyz HTTP/1.1\r\n\r\n", &out), 503);
    cr_assert(strstr(out.p, "Retry-After: 1\r\n") != NULL);
    cr_assert(strstr(out.p, "{\"ready\":false,\"reason\":\"no known leader\"}") != NULL, "%s",
              out.p);
    cm_sbuf_free(&out);
    ready_flag = 1;
    cr_assert_eq(answer("GET /readyz HTTP/1.1\r\n\r\n", &out), 200);
    cm_sbuf_free(&out);
    cr_assert_eq(answer("GET /metrics HTTP/1.1\r\n\r\n", &out), 200);
    cr_assert(strstr(out.p, "text/plain; version=0.0.4") != NULL);
    cr_assert(strstr(out.p, "\r\n\r\nheadwater_node_raft_term 7\n") != NULL);
    cm_sbuf_free(&out);
    cr_assert_eq(answer("HEAD /healthz HTTP/1.1\r\n\r\n", &out), 200);
    cr_assert(strstr(out.p, "Content-Length: 12\r\n") != NULL);
    cr_assert_eq(strcmp(strstr(out.p, "\r\n\r\n"), "\r\n\r\n"), 0, "HEAD carries no body");
    cm_sbuf_free(&out);
    cr_assert_eq(answer("GET /nope HTTP/1.1\r\n\r\n", &out), 404);
    cr_assert(strstr(out.p, "{\"error\":\"not_found\"") != NULL);
    cm_sbuf_free(&out);
    cr_assert_eq(answer("PUT /readyz HTTP/1.1\r\n\r\n", &out), 405);
    cr_assert(strstr(out.p, "Allow: GET, HEAD\r\n") != NULL);
    cm_sbuf_free(&out);
    cr_assert_eq(answer("GET /healthz HTTP/1.1\r\nContent-Length: 3\r\n\r\n", &out), 400);
    cr_assert(strstr(out.p, "Connection: close\r\n") != NULL);
    cm_sbuf_free(&out);
}
