/* CORS rules: parsing --cors-origins, answer headers for "*", listed and unlisted origins,
 * preflight headers (requested headers echoed only when they are a plain list). */
#include <criterion/criterion.h>
#include <string.h>

#include "http/cors.h"
#include "err.h"

static const char *headers(const struct gw_cors *c, const char *origin, struct cm_sbuf *s)
{
    cm_sbuf_reset(s);
    gw_cors_headers(c, origin, s);
    return s->p ? s->p : "";
}

Test(cors, parse)
{
    struct gw_cors c;
    char err[256];
    cr_assert_eq(gw_cors_parse("*", &c, err, sizeof(err)), 0);
    cr_assert_eq(c.mode, GW_CORS_ANY);
    cr_assert_eq(gw_cors_parse(NULL, &c, err, sizeof(err)), 0);
    cr_assert_eq(c.mode, GW_CORS_ANY);
    cr_assert_eq(gw_cors_parse("", &c, err, sizeof(err)), 0);
    cr_assert_eq(c.mode, GW_CORS_OFF);
    cr_assert_eq(gw_cors_parse("https://a.example, http://b.example:8080", &c, err, sizeof(err)), 0,
                 "%s", err);
    cr_assert_eq(c.mode, GW_CORS_LIST);
    cr_assert_eq(c.n, 2);
    cr_assert_str_eq(c.origin[0], "https://a.example");
    cr_assert_str_eq(c.origin[1], "http://b.example:8080");
    const char *bad[] = {
        "a.example",          "ftp://x",    "https://", ",", "https://a.example,,x", "https://a/b",
        "https://a.example/", "http://a\tb"}; /* fuzz_cors */
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(gw_cors_parse(bad[i], &c, err, sizeof(err)), CM_EINVAL, "%s", bad[i]);
}

Test(cors, answer_headers)
{
    struct gw_cors c;
    char err[256];
    struct cm_sbuf s;
    cm_sbuf_init(&s);
    gw_cors_parse("*", &c, err, sizeof(err));
    cr_assert_str_eq(headers(&c, "", &s),
                     "Access-Control-Allow-Origin: *\r\nAccess-Control-Expose-Headers: "
                     "Content-Length, Content-Range, ETag, Last-Modified, Accept-Ranges\r\n");
    gw_cors_parse("https://a.example,https://b.example", &c, err, sizeof(err));
    const char *h = headers(&c, "https://b.example", &s);
    cr_assert(strstr(h, "Access-Control-Allow-Origin: https://b.example\r\n") != NULL, "%s", h);
    cr_assert(strstr(h, "Vary: Origin\r\n") != NULL, "%s", h);
    cr_assert(strstr(h, "Access-Control-Expose-Headers: ") != NULL, "%s", h);
    cr_assert_str_eq(headers(&c, "https://evil.example", &s), "Vary: Origin\r\n");
    cr_assert_str_eq(headers(&c, "", &s), "Vary: Origin\r\n", "caches must keep variants apart");
    gw_cors_parse("", &c, err, sizeof(err));
    cr_assert_str_eq(headers(&c, "https://a.example", &s), "");
    cm_sbuf_free(&s);
}

Test(cors, preflight)
{
    struct gw_cors c;
    char err[256];
    struct cm_sbuf s;
    cm_sbuf_init(&s);
    gw_cors_parse("https://a.example", &c, err, sizeof(err));
    gw_cors_preflight(&c, "https://a.example", "Authorization, Content-Type", 1, &s);
    cr_assert(strstr(s.p, "Access-Control-Allow-Origin: https://a.example\r\n") != NULL);
    cr_assert(strstr(s.p, "Access-Control-Allow-Methods: GET, HEAD, PUT, POST, DELETE, "
                          "OPTIONS\r\n") != NULL);
    cr_assert(strstr(s.p, "Access-Control-Allow-Headers: Authorization, Content-Type\r\n"));
    cr_assert(strstr(s.p, "Access-Control-Max-Age: 86400\r\n"));
    cm_sbuf_reset(&s);
    gw_cors_preflight(&c, "https://a.example", "x\r\nSet-Cookie: a=b", 1, &s);
    cr_assert(strstr(s.p, "Allow-Headers") == NULL, "header injection is not echoed: %s", s.p);
    cm_sbuf_reset(&s);
    gw_cors_preflight(&c, "https://other.example", "", 1, &s);
    cr_assert_str_eq(s.p, "Vary: Origin\r\n");
    cm_sbuf_free(&s);
}

/* Issue 8 §5: cross-origin writes only from --cors-write-origins. */
Test(cors, writes_only_from_write_origins)
{
    struct gw_cors c, w;
    char err[256];
    struct cm_sbuf s;
    cm_sbuf_init(&s);
    gw_cors_parse("*", &c, err, sizeof(err));
    gw_cors_parse("", &w, err, sizeof(err));
    cr_assert(gw_cors_write_ok(&w, ""), "no Origin: not a browser's cross-origin request");
    cr_assert(!gw_cors_write_ok(&w, "https://evil.example"));
    cr_assert(!gw_cors_write_ok(&w, "null"));
    gw_cors_preflight(&c, "https://evil.example", "", gw_cors_write_ok(&w, "https://evil.example"),
                      &s);
    cr_assert(strstr(s.p, "Access-Control-Allow-Methods: GET, HEAD, OPTIONS\r\n") != NULL, "%s",
              s.p);
    cr_assert(strstr(s.p, "DELETE") == NULL && strstr(s.p, "PUT") == NULL, "%s", s.p);
    gw_cors_parse("https://enc.example", &w, err, sizeof(err));
    cr_assert(gw_cors_write_ok(&w, "https://enc.example"));
    cr_assert(!gw_cors_write_ok(&w, "https://enc.example.evil"));
    cr_assert(!gw_cors_write_ok(&w, "https://evil.example"));
    gw_cors_parse("*", &w, err, sizeof(err));
    cr_assert(gw_cors_write_ok(&w, "https://anyone.example"), "explicitly configured");
    cm_sbuf_free(&s);
}
