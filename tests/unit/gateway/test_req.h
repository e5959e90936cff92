/* Tests that need a struct gw_http_req build it the way the server does: by framing a request
 * head (its header values are slices of the framed bytes, which live in static storage here, so
 * a returned request stays valid for the rest of the test; 16 at a time). */
#ifndef GW_TEST_REQ_H
#define GW_TEST_REQ_H

#include <criterion/criterion.h>
#include <stdalign.h>
#include <stdio.h>
#include <string.h>

#include "http/http.h"

#define GW_TEST_REQ_MAX 4096

static int gw_test_on_head(void *arg, struct gw_http_req *req)
{
    *(struct gw_http_req *)arg = *req;
    return 0;
}

static int gw_test_on_body(void *arg, const struct cm_slice *piece)
{
    (void)arg;
    (void)piece;
    return 0;
}

static int gw_test_on_end(void *arg)
{
    (void)arg;
    return 0;
}

/* Frame one request head (text must include the blank line). */
static inline struct gw_http_req gw_test_req_text(const char *text)
{
    static const struct gw_http_sink sink = {gw_test_on_head, gw_test_on_body, gw_test_on_end};
    static alignas(struct cm_buf) unsigned char mem[16][sizeof(struct cm_buf) + GW_TEST_REQ_MAX];
    static unsigned next;
    struct cm_buf *b = (struct cm_buf *)mem[next++ % 16];
    size_t len = strlen(text);
    cr_assert_lt(len, GW_TEST_REQ_MAX);
    b->refs = 1;
    b->cap = GW_TEST_REQ_MAX;
    b->len = len;
    memcpy(b->data, text, len);
    struct gw_http_req req;
    memset(&req, 0, sizeof(req));
    struct gw_http_in in;
    gw_http_in_init(&in, &sink, &req);
    size_t used;
    cr_assert_eq(gw_http_in_feed(&in, b, 0, len, &used), GW_HTTP_PAUSED, "%s", text);
    gw_http_in_close(&in);
    return req;
}

/* GET / with up to two headers (a NULL name is left out). */
static inline struct gw_http_req gw_test_req(const char *n1, const char *v1, const char *n2,
                                             const char *v2)
{
    char h1[GW_TEST_REQ_MAX / 4], h2[GW_TEST_REQ_MAX / 4], text[GW_TEST_REQ_MAX];
    snprintf(h1, sizeof(h1), "%s: %s\r\n", n1 ? n1 : "", v1);
    snprintf(h2, sizeof(h2), "%s: %s\r\n", n2 ? n2 : "", v2);
    snprintf(text, sizeof(text), "GET / HTTP/1.1\r\n%s%s\r\n", n1 ? h1 : "", n2 ? h2 : "");
    return gw_test_req_text(text);
}

#endif
