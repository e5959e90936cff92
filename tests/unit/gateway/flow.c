/* The flow tests' harness (see flow.h). */
#include "flow.h"

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

void run_until(struct t *t, const int *flag, unsigned ms)
{
    uint64_t end = cm_mono_ms() + ms;
    while (!*flag) {
        cr_assert_lt(cm_mono_ms(), end, "timed out");
        uv_run(&t->loop, UV_RUN_ONCE);
    }
}

/* Send raw bytes on a fresh connection (answers arrive while the loop runs). */
void hc_start(struct t *t, struct hc *h, const char *addr, const void *req, size_t len, int want,
              unsigned head_mask, size_t frag)
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
void hc_wait(struct t *t, struct hc *h)
{
    run_until(t, &h->closed, 10000);
    cm_buf_unref(h->out);
    h->out = NULL;
}

/* Send raw bytes on a fresh connection, collect `want` answers (or until the server closes). */
void exchange(struct t *t, struct hc *h, const char *addr, const void *req, size_t len, int want,
              unsigned head_mask, size_t frag)
{
    hc_start(t, h, addr, req, len, want, head_mask, frag);
    hc_wait(t, h);
}

void hc_free(struct hc *h)
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

int has_header(const struct resp *r, const char *line)
{
    return r->headers.p != NULL && strstr(r->headers.p, line) != NULL;
}

static int gw_ready(struct t *t)
{
    return gw_cluster_ready(t->ctx.cluster);
}

/* A gateway (hot-object cache of cache_size bytes, 0 = off) on 3 fake nodes, ready. */
void setup_cache(struct t *t, uint64_t cache_size)
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

void setup(struct t *t)
{
    setup_cache(t, 0);
}

void teardown(struct t *t)
{
    gw_ctx_stop(&t->ctx);
    fc_stop(&t->fc);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&t->loop), 0, "handles left open");
}

void put_body(struct cm_sbuf *s, const char *key, size_t size, char seed)
{
    cm_sbuf_printf(s, "PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", key, size);
    for (size_t i = 0; i < size; i++) {
        char c = (char)(seed + (char)(i * 7 + i / 4096));
        cm_sbuf_append(s, &c, 1);
    }
}
