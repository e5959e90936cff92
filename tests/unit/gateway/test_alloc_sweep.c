/* Allocation-failure sweeps over the gateway's request paths, black-box: the whole gateway runs
 * in this process on real loopback sockets, and for n = 0, 1, 2, ... every allocation after the
 * first n fails (cm_alloc_fail_after) while one request goes through, until a request no
 * longer reaches the failure. Each answer must be the normal one, a 5xx JSON error or a clean
 * close: never a crash, a hang, a leak or a wrong answer; and after each round the same
 * gateway serves a normal request again.
 *
 * Only the gateway may see the failures, so the fake nodes (fake_cluster.c) run in a forked
 * child process and the client is a thread using plain sockets (and OpenSSL for TLS), neither
 * allocating through cm_malloc. */
#include <criterion/criterion.h>
#include <errno.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "alloc.h"
#include "cluster/cluster.h"
#include "config.h"
#include "fake_cluster.h"
#include "gateway.h"
#include "log.h"
#include "options.h"
#include "timeutil.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define LEAK_CHECK() __lsan_do_recoverable_leak_check()
#else
#define LEAK_CHECK() 0
#endif

#define OBJ_SIZE 20000
#define LARGE (600 * 1024)
#define MAX_ROUNDS 3000

struct t {
    uv_loop_t loop;
    uv_async_t wake; /* the client thread is done */
    pid_t nodes;     /* the fake cluster's process */
    char seed[64];
    struct gw_config cfg;
    struct gw_ctx ctx;
    char listen[64], admin[64], tls[64];
    char dir[64], cert[128], key[128];
    SSL_CTX *ssl;
};

/* One exchange on a fresh connection, run by the client thread. */
struct x {
    const struct t *t;
    const char *req;
    size_t len;
    int head, tls;
    atomic_int done;
    /* results */
    int status, complete, closed, timed_out;
    char body[OBJ_SIZE + 1024];
    size_t body_len;
    http_parser p;
};

/* ---- the fake nodes, in a child process ---- */

static pid_t nodes_spawn(char seed[64])
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        static struct fc_cluster fc;
        static uv_loop_t loop;
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(fds[0]);
        uv_loop_init(&loop);
        fc_start(&fc, &loop);
        if (write(fds[1], fc.n[1].addr, 64) != 64)
            _exit(1);
        close(fds[1]);
        uv_run(&loop, UV_RUN_DEFAULT);
        _exit(0); /* no exit handlers: the parent owns the leak check */
    }
    close(fds[1]);
    cr_assert_eq(read(fds[0], seed, 64), 64, "fake nodes did not start");
    close(fds[0]);
    return pid;
}

/* ---- the client thread ---- */

static int on_headers(http_parser *p)
{
    struct x *x = p->data;
    x->status = (int)p->status_code;
    return x->head ? 1 : 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    struct x *x = p->data;
    if (n > sizeof(x->body) - 1 - x->body_len)
        n = sizeof(x->body) - 1 - x->body_len;
    memcpy(x->body + x->body_len, at, n);
    x->body_len += n;
    x->body[x->body_len] = '\0';
    return 0;
}

static int on_complete(http_parser *p)
{
    struct x *x = p->data;
    x->complete = 1;
    return 0;
}

static int port_of(const char *addr)
{
    char host[64];
    int port = 0;
    cm_hostport_parse(addr, host, sizeof(host), &port);
    return port;
}

static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct timeval tv = {10, 0}; /* a hang ends the exchange as timed_out */
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Read into the parser until the answer is complete or the connection ends. */
static void collect(struct x *x, int fd, SSL *ssl)
{
    http_parser_settings ps;
    char buf[16384];
    http_parser_settings_init(&ps);
    ps.on_headers_complete = on_headers;
    ps.on_body = on_body;
    ps.on_message_complete = on_complete;
    http_parser_init(&x->p, HTTP_RESPONSE);
    x->p.data = x;
    while (!x->complete) {
        errno = 0;
        ssize_t n = ssl ? SSL_read(ssl, buf, sizeof(buf)) : recv(fd, buf, sizeof(buf), 0);
        if (n <= 0) {
            x->timed_out = errno == EAGAIN || errno == EWOULDBLOCK;
            x->closed = !x->timed_out;
            http_parser_execute(&x->p, &ps, NULL, 0);
            return;
        }
        size_t used = http_parser_execute(&x->p, &ps, buf, (size_t)n);
        if (used != (size_t)n && !x->complete) {
            x->closed = 1; /* not HTTP: counted as a close, then judged by the caller */
            x->status = -1;
            return;
        }
    }
}

static void *client(void *arg)
{
    struct x *x = arg;
    int fd = dial(port_of(x->tls ? x->t->tls : x->t->listen));
    SSL *ssl = NULL;
    if (fd < 0) {
        x->closed = 1;
        goto out;
    }
    if (x->tls) {
        ssl = SSL_new(x->t->ssl);
        SSL_set_fd(ssl, fd);
        if (SSL_connect(ssl) != 1) {
            x->closed = 1; /* handshake refused or cut: a clean close */
            goto out;
        }
    }
    for (size_t off = 0; off < x->len;) {
        ssize_t n = ssl ? SSL_write(ssl, x->req + off, (int)(x->len - off))
                        : send(fd, x->req + off, x->len - off, MSG_NOSIGNAL);
        if (n <= 0)
            break; /* the gateway may answer and close before taking every byte */
        off += (size_t)n;
    }
    collect(x, fd, ssl);
out:
    if (ssl != NULL)
        SSL_free(ssl);
    if (fd >= 0)
        close(fd);
    atomic_store(&x->done, 1);
    uv_async_send((uv_async_t *)&x->t->wake);
    return NULL;
}

static void on_wake(uv_async_t *a)
{
}

static void on_timer_closed(uv_handle_t *hd)
{
    *(int *)hd->data = 1;
}

/* Close a timer that lives on the caller's stack, and wait for it. */
static void timer_close(struct t *t, uv_timer_t *tm)
{
    int closed = 0;
    tm->data = &closed;
    uv_close((uv_handle_t *)tm, on_timer_closed);
    while (!closed)
        uv_run(&t->loop, UV_RUN_ONCE);
}

/* Failure injection for one exchange: armed before the request, ended when the answer is in
 * or after WINDOW_MS (memory "comes back": requests that retry may then still succeed). */
struct window {
    int active;
    long failures; /* allocations that failed while it was armed */
};

#define WINDOW_MS 200

static void window_end(struct window *w)
{
    if (w == NULL || !w->active)
        return;
    w->failures = cm_alloc_failures();
    cm_alloc_fail_after(-1);
    w->active = 0;
}

static void on_window(uv_timer_t *tm)
{
    window_end(tm->data);
}

/* Run one exchange while the loop serves it (w: the failure window, or NULL). */
static void exchange_w(struct t *t, struct x *x, const char *req, size_t len, int head, int tls,
                       struct window *w)
{
    pthread_t th;
    uv_timer_t tm;
    memset(x, 0, sizeof(*x));
    x->t = t;
    x->req = req;
    x->len = len;
    x->head = head;
    x->tls = tls;
    uv_timer_init(&t->loop, &tm);
    tm.data = w;
    if (w != NULL)
        uv_timer_start(&tm, on_window, WINDOW_MS, 0);
    cr_assert_eq(pthread_create(&th, NULL, client, x), 0);
    while (!atomic_load(&x->done))
        uv_run(&t->loop, UV_RUN_ONCE);
    pthread_join(th, NULL);
    window_end(w);
    timer_close(t, &tm);
}

static void exchange(struct t *t, struct x *x, const char *req, size_t len, int head, int tls)
{
    exchange_w(t, x, req, len, head, tls, NULL);
}

/* ---- gateway setup ---- */

static void make_cert(struct t *t)
{
    char cmd[512];
    strcpy(t->dir, "/tmp/hw-sweep-XXXXXX");
    cr_assert_not_null(mkdtemp(t->dir));
    snprintf(t->cert, sizeof(t->cert), "%s/cert.pem", t->dir);
    snprintf(t->key, sizeof(t->key), "%s/key.pem", t->dir);
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
             "-subj /CN=localhost -keyout %s -out %s 2>/dev/null",
             t->key, t->cert);
    cr_assert_eq(system(cmd), 0);
    t->ssl = SSL_CTX_new(TLS_client_method());
    cr_assert_not_null(t->ssl);
    SSL_CTX_set_verify(t->ssl, SSL_VERIFY_NONE, NULL);
}

static void start_gateway(struct t *t, uint64_t cache_size)
{
    char err[256];
    t->cfg.threads = 1;
    t->cfg.insecure = 1; /* the fake nodes speak no cluster handshake */
    t->cfg.max_object_size = 8 * 1024 * 1024;
    t->cfg.log_level = "error";
    t->cfg.zone = "";
    t->cfg.cache_size = cache_size;
    t->cfg.nodes = t->seed;
    t->cfg.tls_cert = t->cert;
    t->cfg.tls_key = t->key;
    for (int port = 40000 + (getpid() * 11) % 20000;; port += 3) {
        snprintf(t->listen, sizeof(t->listen), "127.0.0.1:%d", port);
        snprintf(t->admin, sizeof(t->admin), "127.0.0.1:%d", port + 1);
        snprintf(t->tls, sizeof(t->tls), "127.0.0.1:%d", port + 2);
        t->cfg.listen = t->listen;
        t->cfg.admin_listen = t->admin;
        t->cfg.tls_listen = t->tls;
        cr_assert_eq(gw_config_validate(&t->cfg, err, sizeof(err)), 0, "%s", err);
        if (gw_ctx_start(&t->ctx, &t->loop, &t->cfg, GW_CTX_ADMIN, err, sizeof(err)) == 0)
            break;
        uv_run(&t->loop, UV_RUN_NOWAIT);
    }
    uint64_t end = cm_mono_ms() + 5000;
    while (!gw_cluster_ready(t->ctx.cluster)) {
        cr_assert_lt(cm_mono_ms(), end, "gateway never became ready");
        uv_run(&t->loop, UV_RUN_ONCE);
    }
}

static void setup(struct t *t, uint64_t cache_size)
{
    memset(t, 0, sizeof(*t));
    signal(SIGPIPE, SIG_IGN);
    t->nodes = nodes_spawn(t->seed); /* first, before this process has threads or handles */
    cm_log_init("sweep", CM_LOG_ERROR);
    make_cert(t);
    uv_loop_init(&t->loop);
    uv_async_init(&t->loop, &t->wake, on_wake);
    start_gateway(t, cache_size);
}

static void teardown(struct t *t)
{
    char cmd[128];
    gw_ctx_stop(&t->ctx);
    uv_close((uv_handle_t *)&t->wake, NULL);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&t->loop), 0, "handles left open");
    kill(t->nodes, SIGKILL);
    waitpid(t->nodes, NULL, 0);
    SSL_CTX_free(t->ssl);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", t->dir);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(LEAK_CHECK(), 0, "the gateway leaked memory (LeakSanitizer report above)");
}

/* ---- requests ---- */

static char body_byte(size_t i)
{
    return (char)('a' + i % 23);
}

/* "PUT key" with a sized body of size bytes into out (static storage); its length. */
static size_t put_sized(char *out, size_t cap, const char *key, size_t size)
{
    int n =
        snprintf(out, cap, "PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", key, size);
    cr_assert(n > 0 && (size_t)n + size <= cap);
    for (size_t i = 0; i < size; i++)
        out[(size_t)n + i] = body_byte(i);
    return (size_t)n + size;
}

static size_t put_chunked(char *out, size_t cap, const char *key)
{
    size_t o =
        (size_t)snprintf(out, cap, "PUT %s HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", key);
    for (int c = 0; c < 5; c++) {
        o += (size_t)snprintf(out + o, cap - o, "3e8\r\n");
        for (size_t i = 0; i < 1000; i++)
            out[o++] = body_byte(i);
        o += (size_t)snprintf(out + o, cap - o, "\r\n");
    }
    o += (size_t)snprintf(out + o, cap - o, "0\r\n\r\n");
    cr_assert_lt(o, cap);
    return o;
}

struct path {
    const char *name;
    const char *req;
    size_t len;
    int head, tls;
    int ok1, ok2;         /* the normal answer(s) */
    long body_len;        /* the normal answer's body length, -1 = not checked */
    size_t body_off;      /* ... which is the stored object from this offset */
    const char *contains; /* ... or which contains this */
    const char *prepare;  /* a request run (without failures) before each round, or NULL */
    size_t prepare_len;
};

static void on_timer(uv_timer_t *tm)
{
    *(int *)tm->data = 1;
}

/* Let the loop run for ms (reconnects, close callbacks). */
static void pause_ms(struct t *t, uint64_t ms)
{
    uv_timer_t tm;
    int fired = 0;
    uv_timer_init(&t->loop, &tm);
    tm.data = &fired;
    uv_timer_start(&tm, on_timer, ms, 0);
    while (!fired)
        uv_run(&t->loop, UV_RUN_ONCE);
    timer_close(t, &tm);
}

static int body_ok(const struct path *p, const struct x *x)
{
    if (p->contains != NULL)
        return strstr(x->body, p->contains) != NULL;
    if (p->body_len < 0)
        return 1;
    if (x->body_len != (size_t)p->body_len)
        return 0;
    for (size_t i = 0; i < x->body_len; i++) {
        if (x->body[i] != body_byte(p->body_off + i))
            return 0;
    }
    return 1;
}

static int normal_answer(const struct path *p, const struct x *x)
{
    return x->complete && (x->status == p->ok1 || x->status == p->ok2) && body_ok(p, x);
}

/* A 5xx with a JSON error body (a HEAD answer has no body). */
static int json_5xx(const struct x *x)
{
    return x->complete && x->status >= 500 && x->status <= 599 &&
           (x->head ? x->body_len == 0 : strncmp(x->body, "{\"error\":", 9) == 0);
}

/* The gateway serves a normal GET and a normal PUT again (retried for a while: node links
 * dropped for lack of memory reconnect, and a write needs a quorum of them). */
static void still_serves(struct t *t, const char *name, long n)
{
    static const char get[] = "GET /sweep/obj.ts HTTP/1.1\r\n\r\n";
    static const char put[] = "PUT /sweep/health.ts HTTP/1.1\r\nContent-Length: 2\r\n\r\nok";
    static const struct path p = {.ok1 = 200, .ok2 = 200, .body_len = OBJ_SIZE};
    static const struct path q = {.ok1 = 201, .ok2 = 204, .body_len = -1};
    static struct x x;
    uint64_t end = cm_mono_ms() + 10000;
    for (;;) {
        exchange(t, &x, get, sizeof(get) - 1, 0, 0);
        int ok = normal_answer(&p, &x);
        if (ok)
            exchange(t, &x, put, sizeof(put) - 1, 0, 0);
        if (ok && normal_answer(&q, &x))
            return;
        cr_assert_lt(cm_mono_ms(), end, "%s n=%ld: the gateway no longer serves (last %d: %.200s)",
                     name, n, x.status, x.body);
        pause_ms(t, 20);
    }
}

enum mode { FROM_N, ONLY_N };

struct tally {
    int answered, closed, normal;
};

/* One round: allocation n fails (ONLY_N), or it and every one after it (FROM_N), during the
 * request. 1 = the request went through without reaching the failure. */
static int round_n(struct t *t, const struct path *p, enum mode mode, long n, struct tally *k)
{
    static struct x x;
    struct window w = {1, 0};
    const char *m = mode == FROM_N ? "from" : "only";
    if (p->prepare != NULL) {
        exchange(t, &x, p->prepare, p->prepare_len, 0, 0);
        cr_assert(x.complete && x.status / 100 == 2, "%s: prepare answered %d", p->name, x.status);
    }
    if (mode == FROM_N)
        cm_alloc_fail_after(n);
    else
        cm_alloc_fail_once_after(n);
    exchange_w(t, &x, p->req, p->len, p->head, p->tls, &w);
    if (w.failures == 0) {
        cr_assert(normal_answer(p, &x), "%s: answered %d (complete %d, %zu body bytes): %.200s",
                  p->name, x.status, x.complete, x.body_len, x.body);
        return 1;
    }
    cr_assert(!x.timed_out, "%s %s n=%ld: neither an answer nor a close within 10 s", p->name, m,
              n);
    cr_assert(normal_answer(p, &x) || json_5xx(&x) || (!x.complete && x.closed),
              "%s %s n=%ld: wrong answer under allocation failure: status %d complete %d "
              "closed %d body %.200s",
              p->name, m, n, x.status, x.complete, x.closed, x.body);
    k->answered += json_5xx(&x);
    k->closed += !x.complete;
    k->normal += normal_answer(p, &x);
    pause_ms(t, 1); /* let closes finish */
    still_serves(t, p->name, n);
    return 0;
}

static void sweep_mode(struct t *t, const struct path *p, enum mode mode)
{
    struct tally k = {0, 0, 0};
    long n = 0;
    while (!round_n(t, p, mode, n, &k)) {
        n++;
        cr_assert_lt(n, MAX_ROUNDS, "%s: still failing after %d allocations", p->name, MAX_ROUNDS);
    }
    fprintf(stderr, "sweep %s (%s n): %ld allocation points: %d normal, %d 5xx, %d closed\n",
            p->name, mode == FROM_N ? "from" : "only", n, k.normal, k.answered, k.closed);
}

static void sweep(struct t *t, const struct path *p)
{
    sweep_mode(t, p, FROM_N);
    sweep_mode(t, p, ONLY_N);
}

/* A gateway with the test object /sweep/obj.ts stored. */
static void setup_stored(struct t *t, uint64_t cache_size)
{
    static char req[OBJ_SIZE + 256];
    static struct x x;
    setup(t, cache_size);
    size_t len = put_sized(req, sizeof(req), "/sweep/obj.ts", OBJ_SIZE);
    exchange(t, &x, req, len, 0, 0);
    cr_assert_eq(x.status, 201, "%s", x.body);
}

#define GET_OBJ "GET /sweep/obj.ts HTTP/1.1\r\nHost: x\r\n\r\n"

static struct path get_path(const char *name, int tls)
{
    struct path p = {.name = name,
                     .req = GET_OBJ,
                     .len = sizeof(GET_OBJ) - 1,
                     .tls = tls,
                     .ok1 = 200,
                     .ok2 = 200,
                     .body_len = OBJ_SIZE};
    return p;
}

Test(sweep, put_sized)
{
    static struct t t;
    static char req[OBJ_SIZE + 256];
    setup_stored(&t, 0);
    struct path p = {.name = "put_sized", .ok1 = 201, .ok2 = 204, .body_len = -1};
    p.req = req;
    p.len = put_sized(req, sizeof(req), "/sweep/p.ts", OBJ_SIZE);
    sweep(&t, &p);
    teardown(&t);
}

Test(sweep, put_large)
{
    /* several read buffers and STAGE frames per replica */
    static struct t t;
    static char req[LARGE + 256];
    setup_stored(&t, 0);
    struct path p = {.name = "put_large", .ok1 = 201, .ok2 = 204, .body_len = -1};
    p.req = req;
    p.len = put_sized(req, sizeof(req), "/sweep/large.m4s", LARGE);
    sweep(&t, &p);
    teardown(&t);
}

Test(sweep, put_chunked)
{
    static struct t t;
    static char req[8192];
    setup_stored(&t, 0);
    struct path p = {.name = "put_chunked", .ok1 = 201, .ok2 = 204, .body_len = -1};
    p.req = req;
    p.len = put_chunked(req, sizeof(req), "/sweep/c.m3u8");
    sweep(&t, &p);
    teardown(&t);
}

Test(sweep, get_from_nodes)
{
    static struct t t;
    setup_stored(&t, 0);
    struct path p = get_path("get_from_nodes", 0);
    sweep(&t, &p);
    static const char miss[] = "GET /sweep/none.ts HTTP/1.1\r\n\r\n";
    struct path m = {.name = "get_missing",
                     .req = miss,
                     .len = sizeof(miss) - 1,
                     .ok1 = 404,
                     .ok2 = 404,
                     .body_len = -1};
    sweep(&t, &m);
    teardown(&t);
}

Test(sweep, get_cache_hit_and_miss)
{
    static struct t t;
    static struct x x;
    setup_stored(&t, 64 * 1024 * 1024);
    struct path miss = get_path("get_cache_miss", 0);
    sweep(&t, &miss); /* each round's failure may keep the object out of the cache */
    exchange(&t, &x, GET_OBJ, sizeof(GET_OBJ) - 1, 0, 0);
    struct path hit = get_path("get_cache_hit", 0);
    sweep(&t, &hit);
    teardown(&t);
}

Test(sweep, head_and_range)
{
    static struct t t;
    setup_stored(&t, 0);
    static const char head[] = "HEAD /sweep/obj.ts HTTP/1.1\r\n\r\n";
    struct path h = {
        .name = "head", .req = head, .len = sizeof(head) - 1, .head = 1, .ok1 = 200, .ok2 = 200};
    sweep(&t, &h);
    static const char range[] = "GET /sweep/obj.ts HTTP/1.1\r\nRange: bytes=100-5099\r\n\r\n";
    struct path r = {.name = "range",
                     .req = range,
                     .len = sizeof(range) - 1,
                     .ok1 = 206,
                     .ok2 = 206,
                     .body_len = 5000,
                     .body_off = 100};
    sweep(&t, &r);
    teardown(&t);
}

Test(sweep, delete_and_list)
{
    static struct t t;
    static char put[256];
    setup_stored(&t, 0);
    static const char del[] = "DELETE /sweep/d.ts HTTP/1.1\r\n\r\n";
    struct path d = {.name = "delete",
                     .req = del,
                     .len = sizeof(del) - 1,
                     .ok1 = 204,
                     .ok2 = 204,
                     .body_len = -1};
    d.prepare = put;
    d.prepare_len = put_sized(put, sizeof(put), "/sweep/d.ts", 10);
    sweep(&t, &d);
    static const char list[] = "GET /sweep/?list HTTP/1.1\r\n\r\n";
    struct path l = {.name = "list",
                     .req = list,
                     .len = sizeof(list) - 1,
                     .ok1 = 200,
                     .ok2 = 200,
                     .contains = "\"/sweep/obj.ts\""};
    sweep(&t, &l);
    teardown(&t);
}

Test(sweep, tls_handshake_and_get)
{
    static struct t t;
    setup_stored(&t, 0);
    struct path p = get_path("tls_get", 1);
    sweep(&t, &p);
    teardown(&t);
}

Test(sweep, head_read_without_memory)
{
    /* One allocation of a fresh connection's first read fails: no read buffer for the head.
     * The client hears 503 (out of memory, not its fault) and a close, never silence. */
    static struct t t;
    static struct x x;
    setup_stored(&t, 0);
    int got_503 = 0;
    for (long n = 0; n < 12 && !got_503; n++) {
        struct window w = {1, 0};
        cm_alloc_fail_once_after(n);
        exchange_w(&t, &x, GET_OBJ, sizeof(GET_OBJ) - 1, 0, 0, &w);
        cr_assert(!x.timed_out, "n=%ld: neither an answer nor a close within 10 s", n);
        got_503 = x.complete && x.status == 503 && strstr(x.body, "out of memory") != NULL;
        pause_ms(&t, 1);
        still_serves(&t, "head_read_without_memory", n);
    }
    cr_assert(got_503, "no allocation failure while reading a head was answered 503");
    teardown(&t);
}
