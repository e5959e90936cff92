/* The whole gateway in-process against fake nodes over real loopback sockets: writes fan out
 * and commit, reads stream back, errors are JSON, pipelining keeps order, node failures give
 * the documented answers, and shutdown closes every handle. */
#include <criterion/criterion.h>
#include <http_parser.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "cluster/cluster.h"
#include "config.h"
#include "fake_cluster.h"
#include "gateway.h"
#include "http/http.h"
#include "options.h"
#include "log.h"
#include "timeutil.h"
#include "workers.h"

#define MAX_RESP 8

struct resp {
    int status;
    struct cm_sbuf headers; /* "name: value\n" lines, names lower-cased */
    struct cm_sbuf body;
    int complete;
};

struct hc {
    uv_tcp_t tcp;
    uv_connect_t creq;
    http_parser p;
    http_parser_settings ps;
    struct resp r[MAX_RESP];
    int n;
    int want;
    unsigned head_mask; /* bit i: request i is HEAD */
    int closed;
    int eof;
    int in_value;
    struct cm_buf *out;
    size_t frag;
    int writes;
};

struct t {
    uv_loop_t loop;
    struct fc_cluster fc;
    struct gw_config cfg;
    struct gw_ctx ctx;
    char listen[64], admin[64];
};

static int hc_begin(http_parser *p)
{
    struct hc *h = p->data;
    cr_assert_lt(h->n, MAX_RESP);
    cm_sbuf_init(&h->r[h->n].headers);
    cm_sbuf_init(&h->r[h->n].body);
    h->in_value = 0;
    return 0;
}

static int hc_field(http_parser *p, const char *at, size_t n)
{
    struct hc *h = p->data;
    struct cm_sbuf *s = &h->r[h->n].headers;
    if (h->in_value)
        cm_sbuf_puts(s, "\n");
    h->in_value = 0;
    for (size_t i = 0; i < n; i++) {
        char c = at[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        cm_sbuf_append(s, &c, 1);
    }
    return 0;
}

static int hc_value(http_parser *p, const char *at, size_t n)
{
    struct hc *h = p->data;
    struct cm_sbuf *s = &h->r[h->n].headers;
    if (!h->in_value)
        cm_sbuf_puts(s, ": ");
    h->in_value = 1;
    cm_sbuf_append(s, at, n);
    return 0;
}

static int hc_headers_done(http_parser *p)
{
    struct hc *h = p->data;
    cm_sbuf_puts(&h->r[h->n].headers, "\n");
    h->r[h->n].status = (int)p->status_code;
    return (h->head_mask >> h->n) & 1 ? 1 : 0;
}

static int hc_body(http_parser *p, const char *at, size_t n)
{
    struct hc *h = p->data;
    cm_sbuf_append(&h->r[h->n].body, at, n);
    return 0;
}

static int hc_done(http_parser *p)
{
    struct hc *h = p->data;
    h->r[h->n].complete = 1;
    h->n++;
    return 0;
}

static void hc_on_close(uv_handle_t *hd)
{
    struct hc *h = hd->data;
    h->closed = 1;
}

static void hc_close(struct hc *h)
{
    if (!uv_is_closing((uv_handle_t *)&h->tcp))
        uv_close((uv_handle_t *)&h->tcp, hc_on_close);
}

static void hc_alloc(uv_handle_t *hd, size_t sz, uv_buf_t *b)
{
    static char buf[256 * 1024];
    *b = uv_buf_init(buf, sizeof(buf));
}

static void hc_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct hc *h = s->data;
    if (nread < 0) {
        h->eof = 1;
        http_parser_execute(&h->p, &h->ps, NULL, 0);
        hc_close(h);
        return;
    }
    size_t used = http_parser_execute(&h->p, &h->ps, b->base, (size_t)nread);
    if (used != (size_t)nread || HTTP_PARSER_ERRNO(&h->p) != HPE_OK) {
        hc_close(h);
        return;
    }
    if (h->n >= h->want)
        hc_close(h);
}

static void hc_written(uv_write_t *w, int status)
{
    struct hc *h = w->data;
    cm_free(w);
    /* want == 0: hang up as soon as the request bytes are out (client abort) */
    if (--h->writes == 0 && h->want == 0)
        hc_close(h);
}

static void hc_connected(uv_connect_t *req, int status)
{
    struct hc *h = req->data;
    cr_assert_eq(status, 0, "connect: %s", uv_strerror(status));
    uv_read_start((uv_stream_t *)&h->tcp, hc_alloc, hc_read);
    size_t step = h->frag ? h->frag : h->out->len;
    for (size_t off = 0; off < h->out->len; off += step) {
        size_t n = h->out->len - off < step ? h->out->len - off : step;
        uv_write_t *w = cm_malloc(sizeof(*w));
        w->data = h;
        h->writes++;
        uv_buf_t b = uv_buf_init(h->out->data + off, (unsigned)n);
        uv_write(w, (uv_stream_t *)&h->tcp, &b, 1, hc_written);
    }
}

static void run_until(struct t *t, const int *flag, unsigned ms)
{
    uint64_t end = cm_mono_ms() + ms;
    while (!*flag) {
        cr_assert_lt(cm_mono_ms(), end, "timed out");
        uv_run(&t->loop, UV_RUN_ONCE);
    }
}

/* Send raw bytes on a fresh connection (answers arrive while the loop runs). */
static void hc_start(struct t *t, struct hc *h, const char *addr, const void *req, size_t len,
                     int want, unsigned head_mask, size_t frag)
{
    memset(h, 0, sizeof(*h));
    h->want = want;
    h->head_mask = head_mask;
    h->frag = frag;
    h->out = cm_buf_copy(req, len);
    http_parser_init(&h->p, HTTP_RESPONSE);
    h->p.data = h;
    http_parser_settings_init(&h->ps);
    h->ps.on_message_begin = hc_begin;
    h->ps.on_header_field = hc_field;
    h->ps.on_header_value = hc_value;
    h->ps.on_headers_complete = hc_headers_done;
    h->ps.on_body = hc_body;
    h->ps.on_message_complete = hc_done;
    char host[64];
    int port;
    cm_hostport_parse(addr, host, sizeof(host), &port);
    struct sockaddr_in sa;
    uv_ip4_addr(host, port, &sa);
    uv_tcp_init(&t->loop, &h->tcp);
    h->tcp.data = h;
    h->creq.data = h;
    cr_assert_eq(uv_tcp_connect(&h->creq, &h->tcp, (struct sockaddr *)&sa, hc_connected), 0);
}

/* Run until the connection closed (it collected `want` answers or the server closed it). */
static void hc_wait(struct t *t, struct hc *h)
{
    run_until(t, &h->closed, 10000);
    cm_buf_unref(h->out);
    h->out = NULL;
}

/* Send raw bytes on a fresh connection, collect `want` answers (or until the server closes). */
static void exchange(struct t *t, struct hc *h, const char *addr, const void *req, size_t len,
                     int want, unsigned head_mask, size_t frag)
{
    hc_start(t, h, addr, req, len, want, head_mask, frag);
    hc_wait(t, h);
}

static void hc_free(struct hc *h)
{
    for (int i = 0; i < h->n; i++) {
        cm_sbuf_free(&h->r[i].headers);
        cm_sbuf_free(&h->r[i].body);
    }
    if (h->n < MAX_RESP && !h->r[h->n].complete) {
        cm_sbuf_free(&h->r[h->n].headers);
        cm_sbuf_free(&h->r[h->n].body);
    }
}

static int has_header(const struct resp *r, const char *line)
{
    return r->headers.p != NULL && strstr(r->headers.p, line) != NULL;
}

static int gw_ready(struct t *t)
{
    return gw_cluster_ready(t->ctx.cluster);
}

/* A gateway (hot-object cache of cache_size bytes, 0 = off) on 3 fake nodes, ready. */
static void setup_cache(struct t *t, uint64_t cache_size)
{
    memset(t, 0, sizeof(*t));
    t->cfg.cache_size = cache_size;
    signal(SIGPIPE, SIG_IGN); /* the client keeps writing after a 413 */
    cm_log_init("test", CM_LOG_WARN);
    uv_loop_init(&t->loop);
    fc_start(&t->fc, &t->loop);
    char err[256];
    t->cfg.threads = 1;
    t->cfg.max_object_size = 8 * 1024 * 1024;
    t->cfg.log_level = "warn";
    t->cfg.insecure = 1; /* the fake cluster runs without the cluster handshake */
    t->cfg.zone = "";
    static char nodes[256];
    snprintf(nodes, sizeof(nodes), "%s", t->fc.n[1].addr); /* one seed is enough */
    t->cfg.nodes = nodes;
    for (int port = 40000 + (getpid() * 7) % 20000;; port += 2) {
        snprintf(t->listen, sizeof(t->listen), "127.0.0.1:%d", port);
        snprintf(t->admin, sizeof(t->admin), "127.0.0.1:%d", port + 1);
        t->cfg.listen = t->listen;
        t->cfg.admin_listen = t->admin;
        cr_assert_eq(gw_config_validate(&t->cfg, err, sizeof(err)), 0, "%s", err);
        if (gw_ctx_start(&t->ctx, &t->loop, &t->cfg, GW_CTX_ADMIN, err, sizeof(err)) == 0)
            break;
        uv_run(&t->loop, UV_RUN_NOWAIT);
    }
    uint64_t end = cm_mono_ms() + 5000;
    while (!gw_ready(t)) {
        cr_assert_lt(cm_mono_ms(), end, "gateway never became ready");
        uv_run(&t->loop, UV_RUN_ONCE);
    }
}

static void setup(struct t *t)
{
    setup_cache(t, 0);
}

static void teardown(struct t *t)
{
    gw_ctx_stop(&t->ctx);
    fc_stop(&t->fc);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&t->loop), 0, "handles left open");
}

static void put_body(struct cm_sbuf *s, const char *key, size_t size, char seed)
{
    cm_sbuf_printf(s, "PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", key, size);
    for (size_t i = 0; i < size; i++) {
        char c = (char)(seed + (char)(i * 7 + i / 4096));
        cm_sbuf_append(s, &c, 1);
    }
}

Test(gateway, put_get_head_delete_roundtrip)
{
    struct t t;
    setup(&t);
    struct hc h;
    struct cm_sbuf req;
    cm_sbuf_init(&req);
    size_t size = 3 * 1024 * 1024 + 123;
    put_body(&req, "/live/ch1/seg_1.m4s", size, 'a');
    exchange(&t, &h, t.listen, req.p, req.len, 1, 0, 100000);
    cr_assert_eq(h.n, 1);
    cr_assert_eq(h.r[0].status, 201, "status %d body %s", h.r[0].status, h.r[0].body.p);
    struct fc_object *o = fc_find(&t.fc, "/live/ch1/seg_1.m4s");
    cr_assert_not_null(o);
    cr_assert_eq(o->data.len, size);
    const char *body = strstr(req.p, "\r\n\r\n") + 4;
    cr_assert_eq(memcmp(o->data.p, body, size), 0);
    cr_assert_str_eq(o->ctype, "video/mp4");
    cr_assert_eq(o->holders, 3);
    hc_free(&h);

    const char *get = "GET /live/ch1/seg_1.m4s?x=1 HTTP/1.1\r\n\r\n";
    exchange(&t, &h, t.listen, get, strlen(get), 1, 0, 0);
    cr_assert_eq(h.n, 1);
    cr_assert_eq(h.r[0].status, 200);
    cr_assert_eq(h.r[0].body.len, size);
    cr_assert_eq(memcmp(h.r[0].body.p, body, size), 0);
    cr_assert(has_header(&h.r[0], "content-type: video/mp4\n"), "%s", h.r[0].headers.p);
    cr_assert(has_header(&h.r[0], "etag: \"1\"\n"), "%s", h.r[0].headers.p);
    cr_assert(has_header(&h.r[0], "last-modified: Sun, 06 Nov 1994 08:49:37 GMT\n"));
    hc_free(&h);

    cm_sbuf_reset(&req);
    put_body(&req, "/live/ch1/seg_1.m4s", 10, 'b');
    cm_sbuf_puts(&req, "HEAD /live/ch1/seg_1.m4s HTTP/1.1\r\n\r\n"
                       "DELETE /live/ch1/seg_1.m4s HTTP/1.1\r\n\r\n"
                       "GET /live/ch1/seg_1.m4s HTTP/1.1\r\n\r\n"
                       "DELETE /live/ch1/seg_1.m4s HTTP/1.1\r\n\r\n");
    exchange(&t, &h, t.listen, req.p, req.len, 5, 1u << 1, 0);
    cr_assert_eq(h.n, 5);
    cr_assert_eq(h.r[0].status, 204, "replace answers 204");
    cr_assert_eq(h.r[1].status, 200);
    cr_assert(has_header(&h.r[1], "content-length: 10\n"), "%s", h.r[1].headers.p);
    cr_assert_eq(h.r[1].body.len, 0);
    cr_assert_eq(h.r[2].status, 204);
    cr_assert_eq(h.r[3].status, 404);
    cr_assert(strstr(h.r[3].body.p, "\"error\":\"not_found\"") != NULL);
    cr_assert_eq(h.r[4].status, 404);
    hc_free(&h);
    cm_sbuf_free(&req);
    teardown(&t);
}

Test(gateway, chunked_pipelined_ffmpeg_style)
{
    struct t t;
    setup(&t);
    struct hc h;
    struct cm_sbuf req;
    cm_sbuf_init(&req);
    cm_sbuf_puts(&req, "POST /live/ch2/index.m3u8 HTTP/1.1\r\nIcy-MetaData: 1\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 200; i++)
        cm_sbuf_printf(&req, "%x\r\n#EXT-%04d\n\r\n", 10, i);
    cm_sbuf_puts(&req, "0\r\n\r\nGET /live/ch2/index.m3u8 HTTP/1.1\r\n\r\n"
                       "PUT /live/ch2/empty.ts HTTP/1.1\r\nContent-Length: 0\r\n\r\n"
                       "GET /live/ch2/empty.ts HTTP/1.0\r\n\r\n");
    exchange(&t, &h, t.listen, req.p, req.len, 4, 0, 7);
    cr_assert_eq(h.n, 4);
    cr_assert_eq(h.r[0].status, 201, "%s", h.r[0].body.p);
    cr_assert_eq(h.r[1].status, 200);
    cr_assert_eq(h.r[1].body.len, 2000);
    cr_assert_eq(memcmp(h.r[1].body.p, "#EXT-0000\n#EXT-0001\n", 20), 0);
    cr_assert(has_header(&h.r[1], "content-type: application/vnd.apple.mpegurl\n"));
    cr_assert_eq(h.r[2].status, 201);
    cr_assert_eq(h.r[3].status, 200);
    cr_assert(has_header(&h.r[3], "content-length: 0\n"));
    cr_assert(has_header(&h.r[3], "connection: close\n"), "HTTP/1.0 closes");
    hc_free(&h);
    cm_sbuf_free(&req);
    teardown(&t);
}

Test(gateway, errors_are_json)
{
    struct t t;
    setup(&t);
    struct hc h;
    const char *bad = "GET /live/%2e%2e/x HTTP/1.1\r\n\r\n";
    exchange(&t, &h, t.listen, bad, strlen(bad), 1, 0, 0);
    cr_assert_eq(h.r[0].status, 400);
    cr_assert(strstr(h.r[0].body.p, "\"error\":\"bad_key\"") != NULL);
    hc_free(&h);

    const char *nolen = "PUT /a/b.ts HTTP/1.1\r\n\r\n";
    exchange(&t, &h, t.listen, nolen, strlen(nolen), 1, 0, 0);
    cr_assert_eq(h.r[0].status, 411);
    cr_assert(strstr(h.r[0].body.p, "\"error\":\"length_required\"") != NULL);
    cr_assert(strstr(h.r[0].body.p, "\"committed\":false") != NULL);
    hc_free(&h);

    const char *big = "PUT /a/big.ts HTTP/1.1\r\nContent-Length: 999999999\r\n\r\nxx";
    exchange(&t, &h, t.listen, big, strlen(big), 1, 0, 0);
    cr_assert_eq(h.r[0].status, 413);
    cr_assert(strstr(h.r[0].body.p, "\"error\":\"too_large\"") != NULL);
    cr_assert(has_header(&h.r[0], "connection: close\n"), "connection closed after 413");
    hc_free(&h);

    /* chunked over the limit: 413 while streaming, nothing stored */
    struct cm_sbuf req;
    cm_sbuf_init(&req);
    cm_sbuf_puts(&req, "PUT /a/big2.ts HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    static char block[65536];
    memset(block, 'z', sizeof(block));
    for (int i = 0; i < 140; i++) {
        cm_sbuf_printf(&req, "%zx\r\n", sizeof(block));
        cm_sbuf_append(&req, block, sizeof(block));
        cm_sbuf_puts(&req, "\r\n");
    }
    cm_sbuf_puts(&req, "0\r\n\r\n");
    exchange(&t, &h, t.listen, req.p, req.len, 1, 0, 0);
    cr_assert_eq(h.r[0].status, 413);
    cr_assert_null(fc_find(&t.fc, "/a/big2.ts"));
    hc_free(&h);
    cm_sbuf_free(&req);

    const char *garbage = "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03garbage\r\n\r\n";
    exchange(&t, &h, t.listen, garbage, strlen(garbage), 1, 0, 0);
    cr_assert_eq(h.r[0].status, 400);
    cr_assert(has_header(&h.r[0], "connection: close\n"));
    hc_free(&h);

    const char *ok = "GET /nope/x.ts HTTP/1.1\r\n\r\n";
    exchange(&t, &h, t.listen, ok, strlen(ok), 1, 0, 0);
    cr_assert_eq(h.r[0].status, 404, "gateway still serves after garbage");
    hc_free(&h);
    teardown(&t);
}

Test(gateway, admin_endpoints)
{
    struct t t;
    setup(&t);
    struct hc h;
    const char *req = "GET /healthz HTTP/1.1\r\n\r\nGET /readyz HTTP/1.1\r\n\r\n"
                      "GET /status HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\n";
    exchange(&t, &h, t.admin, req, strlen(req), 4, 0, 0);
    cr_assert_eq(h.n, 4);
    cr_assert_eq(h.r[0].status, 200);
    cr_assert_str_eq(h.r[0].body.p, "{\"ok\":true}\n");
    cr_assert_eq(h.r[1].status, 200);
    cr_assert_eq(h.r[2].status, 200);
    const char *s = h.r[2].body.p;
    cr_assert(strstr(s, "{\"quorum\":true,\"leader\":1,\"shards\":1,\"epoch\":1,\"nodes\":[") == s,
              "%s", s);
    cr_assert(strstr(s, "\"id\":2,\"address\":\"127.0.0.1:") != NULL, "%s", s);
    cr_assert(strstr(s, "\"zone\":\"z1\",\"role\":\"follower\",\"term\":2") != NULL, "%s", s);
    cr_assert(strstr(s, "\"lag\":0,\"repair_backlog\":0,\"reachable\":true}") != NULL, "%s", s);
    cr_assert_eq(h.r[3].status, 404);
    hc_free(&h);
    teardown(&t);
}

Test(gateway, one_replica_down_still_writes)
{
    struct t t;
    setup(&t);
    fc_node_down(&t.fc, 2);
    struct hc h;
    struct cm_sbuf req;
    cm_sbuf_init(&req);
    put_body(&req, "/live/ch3/seg.ts", 100000, 'c');
    exchange(&t, &h, t.listen, req.p, req.len, 1, 0, 0);
    cr_assert_eq(h.r[0].status, 201, "%s", h.r[0].body.p);
    cr_assert_eq(fc_find(&t.fc, "/live/ch3/seg.ts")->holders, 2);
    hc_free(&h);
    const char *get = "GET /live/ch3/seg.ts HTTP/1.1\r\n\r\n";
    exchange(&t, &h, t.listen, get, strlen(get), 1, 0, 0);
    cr_assert_eq(h.r[0].status, 200);
    cr_assert_eq(h.r[0].body.len, 100000);
    hc_free(&h);
    cm_sbuf_free(&req);
    teardown(&t);
}

Test(gateway, silent_replica_does_not_block_the_write)
{
    struct t t;
    setup(&t);
    t.fc.n[2].silent = 1;
    struct hc h;
    struct cm_sbuf req;
    cm_sbuf_init(&req);
    put_body(&req, "/live/ch4/seg.ts", 50000, 'd');
    uint64_t t0 = cm_mono_ms();
    exchange(&t, &h, t.listen, req.p, req.len, 1, 0, 0);
    cr_assert_eq(h.r[0].status, 201, "%s", h.r[0].body.p);
    cr_assert_lt(cm_mono_ms() - t0, 1500, "grace after quorum is short");
    hc_free(&h);
    cm_sbuf_free(&req);
    teardown(&t);
}

Test(gateway, no_quorum_answers_503_fast_and_recovers)
{
    struct t t;
    setup(&t);
    fc_node_down(&t.fc, 1);
    fc_node_down(&t.fc, 2);
    struct hc h;
    struct cm_sbuf req;
    cm_sbuf_init(&req);
    put_body(&req, "/live/ch5/seg.ts", 1000, 'e');
    uint64_t t0 = cm_mono_ms();
    exchange(&t, &h, t.listen, req.p, req.len, 1, 0, 0);
    cr_assert_eq(h.r[0].status, 503, "%s", h.r[0].body.p);
    cr_assert_leq(cm_mono_ms() - t0, 3200);
    cr_assert(strstr(h.r[0].body.p, "\"error\":\"no_quorum\"") != NULL);
    cr_assert(strstr(h.r[0].body.p, "\"committed\":false") != NULL);
    cr_assert(has_header(&h.r[0], "retry-after: 1\n"));
    hc_free(&h);
    fc_node_up(&t.fc, 1);
    fc_node_up(&t.fc, 2);
    exchange(&t, &h, t.listen, req.p, req.len, 1, 0, 0);
    cr_assert_eq(h.r[0].status, 201, "%s", h.r[0].body.p);
    hc_free(&h);
    cm_sbuf_free(&req);
    teardown(&t);
}

/* A replica whose disk is full answers STAGE with NO_SPACE: it is left out and the write
 * commits on the other two; the next upload within GW_FULL_REMEMBER_MS does not stage to it. */
Test(gateway, a_full_replica_is_left_out_of_the_upload)
{
    struct t t;
    setup(&t);
    t.fc.n[2].nospace = 1;
    struct hc h;
    struct cm_sbuf req;
    cm_sbuf_init(&req);
    put_body(&req, "/live/full1/seg.ts", 100000, 'f');
    exchange(&t, &h, t.listen, req.p, req.len, 1, 0, 0);
    cr_assert_eq(h.r[0].status, 201, "%s", h.r[0].body.p);
    cr_assert_eq(fc_find(&t.fc, "/live/full1/seg.ts")->holders, 2);
    hc_free(&h);
    int stages = t.fc.n[2].stages;
    cr_assert_geq(stages, 1);
    cm_sbuf_reset(&req);
    put_body(&req, "/live/full1/seg2.ts", 1000, 'g');
    exchange(&t, &h, t.listen, req.p, req.len, 1, 0, 0);
    cr_assert_eq(h.r[0].status, 201, "%s", h.r[0].body.p);
    cr_assert_eq(t.fc.n[2].stages, stages, "a node reported full lately is left out");
    hc_free(&h);
    cm_sbuf_free(&req);
    teardown(&t);
}

/* Two of three full: 507 with the JSON error and committed:false (never 503 "too few
 * replicas"); once they have space again (and the gateway's memory of it ran out) writes are
 * 201 again. */
Test(gateway, too_few_replicas_with_space_is_507)
{
    struct t t;
    setup(&t);
    t.fc.n[1].nospace = 1;
    t.fc.n[2].nospace = 1;
    struct hc h;
    struct cm_sbuf req;
    cm_sbuf_init(&req);
    put_body(&req, "/live/full2/seg.ts", 50000, 'h');
    exchange(&t, &h, t.listen, req.p, req.len, 1, 0, 0);
    cr_assert_eq(h.r[0].status, 507, "%s", h.r[0].body.p);
    cr_assert_str_eq(gw_http_reason(507), "Insufficient Storage");
    cr_assert(strstr(h.r[0].body.p, "\"error\":\"insufficient_storage\"") != NULL);
    cr_assert(strstr(h.r[0].body.p, "\"committed\":false") != NULL);
    cr_assert_null(fc_find(&t.fc, "/live/full2/seg.ts"));
    hc_free(&h);
    /* still remembered as full: refused again without staging to them */
    exchange(&t, &h, t.listen, req.p, req.len, 1, 0, 0);
    cr_assert_eq(h.r[0].status, 507, "%s", h.r[0].body.p);
    hc_free(&h);
    t.fc.n[1].nospace = 0;
    t.fc.n[2].nospace = 0;
    int status = 0;
    for (uint64_t end = cm_mono_ms() + 5000; status != 201 && cm_mono_ms() < end;) {
        exchange(&t, &h, t.listen, req.p, req.len, 1, 0, 0);
        status = h.r[0].status;
        cr_assert(status == 201 || status == 507, "%d %s", status, h.r[0].body.p);
        hc_free(&h);
        if (status != 201)
            usleep(50 * 1000); /* poll interval */
    }
    cr_assert_eq(status, 201, "writes resume once space returns");
    cm_sbuf_free(&req);
    teardown(&t);
}

/* Every COMMIT attempt is refused with NO_LEADER: never proposed, so 503 committed:false once
 * the 3 s deadline passes. */
Test(gateway, no_leader_until_deadline_is_503)
{
    struct t t;
    setup(&t);
    t.fc.no_leader = 1;
    struct hc h;
    struct cm_sbuf req;
    cm_sbuf_init(&req);
    put_body(&req, "/live/ch6/seg.ts", 1000, 'f');
    uint64_t t0 = cm_mono_ms();
    exchange(&t, &h, t.listen, req.p, req.len, 1, 0, 0);
    uint64_t took = cm_mono_ms() - t0;
    cr_assert_eq(h.r[0].status, 503, "%s", h.r[0].body.p);
    cr_assert(strstr(h.r[0].body.p, "\"committed\":false") != NULL);
    cr_assert(took >= 2500 && took <= 3500, "took %llu ms", (unsigned long long)took);
    hc_free(&h);
    cm_sbuf_free(&req);
    teardown(&t);
}

/* The leader takes the COMMIT and never answers: the outcome is unknown -> 504, committed null. */
Test(gateway, commit_without_answer_is_504_null)
{
    struct t t;
    setup(&t);
    t.fc.commit_silent = 1;
    struct hc h;
    struct cm_sbuf req;
    cm_sbuf_init(&req);
    put_body(&req, "/live/ch7/seg.ts", 1000, 'g');
    uint64_t t0 = cm_mono_ms();
    exchange(&t, &h, t.listen, req.p, req.len, 1, 0, 0);
    uint64_t took = cm_mono_ms() - t0;
    cr_assert_eq(h.r[0].status, 504, "%s", h.r[0].body.p);
    cr_assert(strstr(h.r[0].body.p, "\"error\":\"timeout\"") != NULL);
    cr_assert(strstr(h.r[0].body.p, "\"committed\":null") != NULL);
    cr_assert(took >= 2500 && took <= 3500, "took %llu ms", (unsigned long long)took);
    hc_free(&h);
    cm_sbuf_free(&req);
    teardown(&t);
}

/* Replicas answering UNAVAILABLE are skipped; the read succeeds on the one that has it. */
Test(gateway, read_falls_over_to_next_replica)
{
    struct t t;
    setup(&t);
    struct hc h;
    const char *put = "PUT /live/ch8/a.vtt HTTP/1.1\r\nCache-Control: max-age=5\r\n"
                      "Content-Length: 3\r\n\r\nabc";
    exchange(&t, &h, t.listen, put, strlen(put), 1, 0, 0);
    cr_assert_eq(h.r[0].status, 201);
    hc_free(&h);
    t.fc.n[0].get_unavailable = 1;
    t.fc.n[1].get_unavailable = 1;
    const char *get = "GET /live/ch8/a.vtt HTTP/1.1\r\n\r\nHEAD /live/ch8/a.vtt HTTP/1.1\r\n\r\n";
    exchange(&t, &h, t.listen, get, strlen(get), 2, 2, 0);
    cr_assert_eq(h.r[0].status, 200);
    cr_assert_str_eq(h.r[0].body.p, "abc");
    cr_assert(has_header(&h.r[0], "content-type: text/vtt\n"));
    cr_assert(has_header(&h.r[0], "cache-control: max-age=5\n"), "%s", h.r[0].headers.p);
    cr_assert_eq(h.r[1].status, 200);
    cr_assert_geq(t.fc.n[2].gets, 2);
    hc_free(&h);
    t.fc.n[2].get_unavailable = 1;
    exchange(&t, &h, t.listen, get, strlen(get), 1, 0, 0);
    cr_assert_eq(h.r[0].status, 503);
    cr_assert(strstr(h.r[0].body.p, "\"error\":\"unavailable\"") != NULL);
    hc_free(&h);
    teardown(&t);
}

/* If-Match / If-None-Match travel in the COMMIT; the leader's PRECONDITION_FAILED answer becomes
 * 412 precondition_failed with committed:false, and the object keeps its content. */
Test(gateway, conditional_put_rides_in_the_commit)
{
    struct t t;
    setup(&t);
    struct hc h;
    const char *create = "PUT /live/cas/index.m3u8 HTTP/1.1\r\nIf-None-Match: *\r\n"
                         "Content-Length: 3\r\n\r\none";
    exchange(&t, &h, t.listen, create, strlen(create), 1, 0, 0);
    cr_assert_eq(h.r[0].status, 201, "%s", h.r[0].body.p);
    cr_assert(has_header(&h.r[0], "etag: \"1\"\n"), "%s", h.r[0].headers.p);
    hc_free(&h);
    exchange(&t, &h, t.listen, create, strlen(create), 1, 0, 0);
    cr_assert_eq(h.r[0].status, 412, "%s", h.r[0].body.p);
    cr_assert(strstr(h.r[0].body.p, "\"error\":\"precondition_failed\"") != NULL);
    cr_assert(strstr(h.r[0].body.p, "\"committed\":false") != NULL);
    hc_free(&h);
    const char *stale = "PUT /live/cas/index.m3u8 HTTP/1.1\r\nIf-Match: \"7\"\r\n"
                        "Content-Length: 3\r\n\r\ntwo";
    exchange(&t, &h, t.listen, stale, strlen(stale), 1, 0, 0);
    cr_assert_eq(h.r[0].status, 412, "%s", h.r[0].body.p);
    hc_free(&h);
    const struct fc_object *o = fc_find(&t.fc, "/live/cas/index.m3u8");
    cr_assert(o != NULL && o->version == 1 && o->data.len == 3 && memcmp(o->data.p, "one", 3) == 0);
    const char *match = "PUT /live/cas/index.m3u8 HTTP/1.1\r\nIf-Match: \"1\"\r\n"
                        "Content-Length: 5\r\n\r\nthree";
    exchange(&t, &h, t.listen, match, strlen(match), 1, 0, 0);
    cr_assert_eq(h.r[0].status, 204, "%s", h.r[0].body.p);
    hc_free(&h);
    cr_assert_eq(t.fc.n[0].gets, 0, "no separate HEAD to check the precondition");
    teardown(&t);
}

/* ---- cache: Range and HEAD misses ---- */

static int node_gets(const struct t *t)
{
    int n = 0;
    for (int i = 0; i < FC_NODES; i++)
        n += t->fc.n[i].gets;
    return n;
}

static void snap_gets(const struct t *t, int *snap)
{
    for (int i = 0; i < FC_NODES; i++)
        snap[i] = t->fc.n[i].gets;
}

/* The node that served the one read since snap (gets per node before it). */
static const struct fc_node *read_by(const struct t *t, const int *snap)
{
    const struct fc_node *by = NULL;
    for (int i = 0; i < FC_NODES; i++) {
        if (t->fc.n[i].gets != snap[i]) {
            cr_assert_null(by, "more than one node read");
            by = &t->fc.n[i];
        }
    }
    cr_assert_not_null(by, "no node read");
    return by;
}

/* PUT size generated bytes; returns them (inside req). */
static const char *put_seg(struct t *t, struct cm_sbuf *req, const char *key, size_t size,
                           char seed)
{
    struct hc h;
    cm_sbuf_reset(req);
    put_body(req, key, size, seed);
    exchange(t, &h, t->listen, req->p, req->len, 1, 0, 100000);
    cr_assert_eq(h.r[0].status, 201, "PUT %s: %d", key, h.r[0].status);
    hc_free(&h);
    return strstr(req->p, "\r\n\r\n") + 4;
}

static void check_206(const struct resp *r, const char *body, size_t size, size_t a, size_t b)
{
    char cr[96];
    snprintf(cr, sizeof(cr), "content-range: bytes %zu-%zu/%zu\n", a, b, size);
    cr_assert_eq(r->status, 206, "status %d", r->status);
    cr_assert(has_header(r, cr), "want %s in %s", cr, r->headers.p);
    cr_assert_eq(r->body.len, b - a + 1);
    cr_assert_eq(memcmp(r->body.p, body + a, b - a + 1), 0, "bytes %zu-%zu differ", a, b);
}

/* Concurrent Range GETs and HEADs of a segment nobody read yet (two DATA frames long) share one
 * whole-object node read; each is answered from the filled entry: the right slice, GET's
 * headers. A later GET is a hit. Without coalescing every request would read a node. */
Test(gateway, range_and_head_misses_share_one_node_read)
{
    struct t t;
    setup_cache(&t, 64u << 20);
    struct cm_sbuf req;
    cm_sbuf_init(&req);
    size_t size = 1536 * 1024 + 7;
    const char *body = put_seg(&t, &req, "/live/co/seg_1.m4s", size, 'c');
    static const char *ranges[] = {"bytes=0-99", "bytes=1048570-1048600", "bytes=-100",
                                   "bytes=1500000-"};
    size_t first[] = {0, 1048570, size - 100, 1500000};
    size_t last[] = {99, 1048600, size - 1, size - 1};
    enum { NR = 4, NH = 4 };
    struct hc h[NR + NH];
    char line[NR + NH][160];
    int before = node_gets(&t);
    for (int i = 0; i < NR + NH; i++) {
        int n =
            i < NR ? snprintf(line[i], sizeof(line[i]),
                              "GET /live/co/seg_1.m4s HTTP/1.1\r\nRange: %s\r\n\r\n", ranges[i])
                   : snprintf(line[i], sizeof(line[i]), "HEAD /live/co/seg_1.m4s HTTP/1.1\r\n\r\n");
        hc_start(&t, &h[i], t.listen, line[i], (size_t)n, 1, i < NR ? 0 : 1, 0);
    }
    for (int i = 0; i < NR + NH; i++)
        hc_wait(&t, &h[i]);
    cr_assert_eq(node_gets(&t) - before, 1, "node reads: %d", node_gets(&t) - before);
    for (int i = 0; i < NR; i++) {
        cr_assert_eq(h[i].n, 1);
        check_206(&h[i].r[0], body, size, first[i], last[i]);
    }
    struct hc g;
    const char *get = "GET /live/co/seg_1.m4s HTTP/1.1\r\n\r\n";
    exchange(&t, &g, t.listen, get, strlen(get), 1, 0, 0);
    cr_assert_eq(g.r[0].status, 200);
    cr_assert_eq(g.r[0].body.len, size);
    cr_assert_eq(memcmp(g.r[0].body.p, body, size), 0);
    cr_assert_eq(node_gets(&t) - before, 1, "the GET after the fill is a hit");
    for (int i = NR; i < NR + NH; i++) {
        cr_assert_eq(h[i].n, 1);
        cr_assert_eq(h[i].r[0].status, 200);
        cr_assert_eq(h[i].r[0].body.len, 0);
        cr_assert_str_eq(h[i].r[0].headers.p, g.r[0].headers.p, "HEAD differs from GET");
    }
    for (int i = 0; i < NR + NH; i++)
        hc_free(&h[i]);
    hc_free(&g);
    cm_sbuf_free(&req);
    teardown(&t);
}

/* Objects the cache will not hold keep the direct path: the first Range request finds out (its
 * whole-object read is given up after the first frame and the node is asked for just the
 * range); later ones ask for their range at once. A HEAD of a no-store object is answered from
 * the first frame's metadata, the next one is a node HEAD. */
Test(gateway, uncacheable_objects_keep_direct_ranged_reads)
{
    struct t t;
    setup_cache(&t, 1u << 20); /* objects over 128 KiB bypass it */
    struct cm_sbuf req;
    cm_sbuf_init(&req);
    size_t size = 1536 * 1024;
    const char *body = put_seg(&t, &req, "/vod/a/big.mp4", size, 'd');
    struct hc h;
    int snap[FC_NODES];
    const struct fc_node *by;
    int before = node_gets(&t);
    const char *r1 = "GET /vod/a/big.mp4 HTTP/1.1\r\nRange: bytes=1200000-1200099\r\n\r\n";
    exchange(&t, &h, t.listen, r1, strlen(r1), 1, 0, 0);
    check_206(&h.r[0], body, size, 1200000, 1200099);
    hc_free(&h);
    cr_assert_eq(node_gets(&t) - before, 2, "a declined whole read, then the range");
    snap_gets(&t, snap);
    const char *r2 = "GET /vod/a/big.mp4 HTTP/1.1\r\nRange: bytes=1300000-1300009\r\n\r\n";
    exchange(&t, &h, t.listen, r2, strlen(r2), 1, 0, 0);
    check_206(&h.r[0], body, size, 1300000, 1300009);
    hc_free(&h);
    by = read_by(&t, snap);
    cr_assert(!by->last_head && by->last_off == 1300000 && by->last_len == 10,
              "head=%d off=%llu len=%llu", by->last_head, (unsigned long long)by->last_off,
              (unsigned long long)by->last_len);
    snap_gets(&t, snap);
    const char *hd = "HEAD /vod/a/big.mp4 HTTP/1.1\r\n\r\n";
    exchange(&t, &h, t.listen, hd, strlen(hd), 1, 1, 0);
    cr_assert_eq(h.r[0].status, 200);
    cr_assert(has_header(&h.r[0], "content-length: 1572864\n"), "%s", h.r[0].headers.p);
    hc_free(&h);
    cr_assert(read_by(&t, snap)->last_head, "known too large: a node HEAD");

    /* small but no-store: a HEAD's fill attempt is declined at the first frame */
    cm_sbuf_reset(&req);
    cm_sbuf_puts(&req, "PUT /vod/a/ns.m4s HTTP/1.1\r\nCache-Control: no-store\r\n"
                       "Content-Length: 5\r\n\r\nhello");
    exchange(&t, &h, t.listen, req.p, req.len, 1, 0, 0);
    cr_assert_eq(h.r[0].status, 201);
    hc_free(&h);
    const char *hn = "HEAD /vod/a/ns.m4s HTTP/1.1\r\n\r\n";
    for (int i = 0; i < 2; i++) {
        snap_gets(&t, snap);
        exchange(&t, &h, t.listen, hn, strlen(hn), 1, 1, 0);
        cr_assert_eq(h.r[0].status, 200);
        cr_assert(has_header(&h.r[0], "content-length: 5\n"), "%s", h.r[0].headers.p);
        cr_assert(has_header(&h.r[0], "cache-control: no-store\n"), "%s", h.r[0].headers.p);
        hc_free(&h);
        cr_assert_eq(read_by(&t, snap)->last_head, i, "HEAD %d", i);
    }
    cm_sbuf_free(&req);
    teardown(&t);
}

/* --cache-size 0: a Range GET asks the node for its range only, a HEAD is a node HEAD. */
Test(gateway, cache_off_reads_ranges_directly)
{
    struct t t;
    setup(&t);
    struct cm_sbuf req;
    cm_sbuf_init(&req);
    size_t size = 300000;
    const char *body = put_seg(&t, &req, "/live/nc/seg.ts", size, 'e');
    struct hc h;
    int snap[FC_NODES];
    snap_gets(&t, snap);
    const char *r = "GET /live/nc/seg.ts HTTP/1.1\r\nRange: bytes=1000-1099\r\n\r\n";
    exchange(&t, &h, t.listen, r, strlen(r), 1, 0, 0);
    check_206(&h.r[0], body, size, 1000, 1099);
    hc_free(&h);
    const struct fc_node *by = read_by(&t, snap);
    cr_assert(!by->last_head && by->last_off == 1000 && by->last_len == 100);
    snap_gets(&t, snap);
    const char *hd = "HEAD /live/nc/seg.ts HTTP/1.1\r\n\r\n";
    exchange(&t, &h, t.listen, hd, strlen(hd), 1, 1, 0);
    cr_assert_eq(h.r[0].status, 200);
    hc_free(&h);
    cr_assert(read_by(&t, snap)->last_head);
    cm_sbuf_free(&req);
    teardown(&t);
}

/* The client goes away mid-body: nothing is stored, nothing leaks, the gateway keeps serving. */
Test(gateway, client_abort_mid_upload)
{
    struct t t;
    setup(&t);
    struct hc h;
    struct cm_sbuf req;
    cm_sbuf_init(&req);
    cm_sbuf_puts(&req, "PUT /live/ch9/seg.ts HTTP/1.1\r\nContent-Length: 5000000\r\n\r\n");
    for (int i = 0; i < 100000; i++)
        cm_sbuf_puts(&req, "0123456789");
    /* want 1 answer that never comes: the client closes after the server stays silent */
    memset(&h, 0, sizeof(h));
    exchange(&t, &h, t.listen, req.p, req.len, 0, 0, 0);
    cr_assert_eq(h.n, 0);
    for (int i = 0; i < 20; i++)
        uv_run(&t.loop, UV_RUN_NOWAIT);
    cr_assert_null(fc_find(&t.fc, "/live/ch9/seg.ts"));
    const char *get = "GET /live/ch9/seg.ts HTTP/1.1\r\n\r\n";
    exchange(&t, &h, t.listen, get, strlen(get), 1, 0, 0);
    cr_assert_eq(h.r[0].status, 404);
    hc_free(&h);
    cm_sbuf_free(&req);
    teardown(&t);
}

static void on_flag_timer(uv_timer_t *tm)
{
    *(int *)tm->data = 1;
}

/* Let the loop (fake nodes) run for ms milliseconds. */
static void run_for(struct t *t, unsigned ms)
{
    uv_timer_t tm;
    int flag = 0;
    uv_timer_init(&t->loop, &tm);
    tm.data = &flag;
    uv_timer_start(&tm, on_flag_timer, ms, 0);
    run_until(t, &flag, ms + 5000);
    uv_close((uv_handle_t *)&tm, NULL);
    uv_run(&t->loop, UV_RUN_NOWAIT);
}

/* --threads: worker loops share the data port (SO_REUSEPORT); every connection is served by
 * one of them; stop + join leaves nothing open. */
Test(gateway, worker_threads_share_the_port)
{
    struct t t;
    memset(&t, 0, sizeof(t));
    signal(SIGPIPE, SIG_IGN);
    cm_log_init("test", CM_LOG_WARN);
    uv_loop_init(&t.loop);
    fc_start(&t.fc, &t.loop);
    static char nodes[256];
    snprintf(nodes, sizeof(nodes), "%s", t.fc.n[0].addr);
    t.cfg.threads = 3;
    t.cfg.max_object_size = 1 << 20;
    t.cfg.log_level = "warn";
    t.cfg.insecure = 1;
    t.cfg.nodes = nodes;
    char err[256];
    struct gw_workers *ws = NULL;
    for (int port = 41000 + (getpid() * 11) % 20000;; port += 2) {
        snprintf(t.listen, sizeof(t.listen), "127.0.0.1:%d", port);
        snprintf(t.admin, sizeof(t.admin), "127.0.0.1:%d", port + 1);
        t.cfg.listen = t.listen;
        t.cfg.admin_listen = t.admin;
        cr_assert_eq(gw_config_validate(&t.cfg, err, sizeof(err)), 0, "%s", err);
        if (gw_ctx_start(&t.ctx, &t.loop, &t.cfg, GW_CTX_ADMIN | GW_CTX_REUSEPORT, err,
                         sizeof(err)) == 0)
            break;
        uv_run(&t.loop, UV_RUN_NOWAIT);
    }
    cr_assert_eq(gw_workers_start(&t.cfg, 2, &ws, err, sizeof(err)), 0, "%s", err);
    run_for(&t, 700); /* every loop learns the cluster map */
    int created = 0;
    for (int i = 0; i < 12; i++) {
        struct hc h;
        char req[256];
        int n = snprintf(req, sizeof(req),
                         "PUT /live/thr/s%d.ts HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd"
                         "GET /live/thr/s%d.ts HTTP/1.1\r\n\r\n",
                         i, i);
        exchange(&t, &h, t.listen, req, (size_t)n, 2, 0, 0);
        cr_assert_eq(h.n, 2);
        created += h.r[0].status == 201;
        cr_assert_eq(h.r[1].status, 200);
        cr_assert_str_eq(h.r[1].body.p, "abcd");
        hc_free(&h);
    }
    cr_assert_eq(created, 12);
    gw_workers_stop(ws);
    gw_ctx_stop(&t.ctx);
    /* the fake nodes live on this loop: keep it running until the workers are gone */
    run_for(&t, 300);
    cr_assert_eq(gw_workers_join(ws), 0);
    fc_stop(&t.fc);
    uv_run(&t.loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&t.loop), 0);
}
