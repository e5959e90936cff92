/* Allocation-failure sweeps over the node's RPC handlers, black-box: a one-node cluster (its own
 * Raft leader, RocksDB in a temp dir) runs in this process; a client thread speaks the node RPC
 * over a real loopback socket, encoding with protobuf-c into its own buffers so that only the
 * node allocates through cm_malloc. For n = 0, 1, 2, ... allocation n fails (or it and every
 * one after it, for a short window) during one exchange: each answer must be the normal one, an
 * ERROR frame or a clean close (never a crash, hang or leak), and afterwards the same node
 * answers a normal exchange again. */
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "config.h"
#include "crc32c.h"
#include "frame.h"
#include "log.h"
#include "node.h"
#include "options.h"
#include "timeutil.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define LEAK_CHECK() __lsan_do_recoverable_leak_check()
#else
#define LEAK_CHECK() 0
#endif

#define BODY 3000
#define MAX_ROUNDS 3000
#define WINDOW_MS 200
#define MAX_STEPS 6

static char body[BODY];

struct t {
    uv_loop_t loop;
    uv_async_t wake;
    struct nd_config cfg;
    struct nd_node node;
    int stopped;
    char dir[64], listen[64], raft[64], peers[96];
};

/* One request of an exchange and the answer it wants. */
struct step {
    Hw__MsgType type;
    const char *key;
    int payload;        /* STAGE: the body rides along */
    Hw__MsgType answer; /* normal answer (DATA: frames until eof) */
};

struct x {
    struct t *t;
    const struct step *steps;
    size_t nsteps;
    uint8_t upload[16];
    atomic_int done;
    /* results */
    size_t ok;     /* steps answered normally */
    int error;     /* an ERROR frame came */
    int closed;    /* the node closed the connection */
    int timed_out; /* neither within 10 s */
};

/* ---- client thread (no cm_malloc) ---- */

static int send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w <= 0)
            return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static int send_env(int fd, const Hw__Envelope *env, const void *payload, size_t plen)
{
    static _Thread_local uint8_t buf[8 + 4096];
    size_t hlen = hw__envelope__get_packed_size(env);
    cr_assert_leq(hlen, sizeof(buf) - 8);
    uint32_t flen = (uint32_t)(4 + hlen + plen), h = (uint32_t)hlen;
    for (int i = 0; i < 4; i++) {
        buf[i] = (uint8_t)(flen >> (24 - 8 * i));
        buf[4 + i] = (uint8_t)(h >> (24 - 8 * i));
    }
    hw__envelope__pack(env, buf + 8);
    if (send_all(fd, buf, 8 + hlen) != 0)
        return -1;
    return plen ? send_all(fd, payload, plen) : 0;
}

/* Read one frame; its envelope (protobuf-c's own allocator: plain malloc) or NULL and why. */
static Hw__Envelope *recv_env(struct x *x, int fd)
{
    static _Thread_local uint8_t buf[CM_FRAME_PREFIX + 64 * 1024];
    size_t got = 0, want = 4;
    uint32_t flen = 0;
    while (got < want) {
        errno = 0;
        ssize_t n = recv(fd, buf + got, want - got, 0);
        if (n <= 0) {
            x->timed_out = errno == EAGAIN || errno == EWOULDBLOCK;
            x->closed = !x->timed_out;
            return NULL;
        }
        got += (size_t)n;
        if (got == 4) {
            flen = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 | (uint32_t)buf[2] << 8 | buf[3];
            cr_assert(flen >= 4 && flen <= sizeof(buf) - 4, "frame of %u bytes", flen);
            want = 4 + flen;
        }
    }
    uint32_t hlen =
        (uint32_t)buf[4] << 24 | (uint32_t)buf[5] << 16 | (uint32_t)buf[6] << 8 | buf[7];
    cr_assert_leq(hlen, flen - 4);
    Hw__Envelope *env = hw__envelope__unpack(NULL, hlen, buf + 8);
    cr_assert_not_null(env, "the node sent a frame that does not decode");
    return env;
}

/* STAGE, FINISH and COMMIT of the exchange's upload (1 = s is one of them). */
static int build_write(const struct x *x, const struct step *s, Hw__Envelope *env, void *sub)
{
    static _Thread_local uint32_t holders[1] = {1};
    ProtobufCBinaryData id = {16, (uint8_t *)x->upload};
    if (s->type == HW__MSG_TYPE__MSG_STAGE) {
        Hw__Stage *m = sub;
        hw__stage__init(m);
        m->upload_id = id;
        m->key = (char *)s->key;
        env->stage = m;
    } else if (s->type == HW__MSG_TYPE__MSG_FINISH) {
        Hw__Finish *m = sub;
        hw__finish__init(m);
        m->upload_id = id;
        m->key = (char *)s->key;
        m->size = BODY;
        m->checksum = cm_crc32c(0, body, BODY);
        env->finish = m;
    } else if (s->type == HW__MSG_TYPE__MSG_COMMIT) {
        Hw__Commit *m = sub;
        hw__commit__init(m);
        m->upload_id = id;
        m->key = (char *)s->key;
        m->size = BODY;
        m->checksum = cm_crc32c(0, body, BODY);
        m->content_type = (char *)"video/mp2t";
        m->holders = holders;
        m->n_holders = 1;
        env->commit = m;
    } else {
        return 0;
    }
    return 1;
}

static void build(const struct x *x, const struct step *s, Hw__Envelope *env, void *sub)
{
    cm_env_init(env, s->type, (uint64_t)(s - x->steps) + 1, 0);
    if (build_write(x, s, env, sub))
        return;
    switch (s->type) {
    case HW__MSG_TYPE__MSG_HELLO: {
        Hw__Hello *m = sub;
        hw__hello__init(m);
        m->proto_version = CM_PROTO_VERSION;
        env->hello = m;
        break;
    }
    case HW__MSG_TYPE__MSG_GET: {
        Hw__Get *m = sub;
        hw__get__init(m);
        m->key = (char *)s->key;
        env->get = m;
        break;
    }
    case HW__MSG_TYPE__MSG_HEAD: {
        Hw__Head *m = sub;
        hw__head__init(m);
        m->key = (char *)s->key;
        env->head = m;
        break;
    }
    case HW__MSG_TYPE__MSG_DELETE: {
        Hw__Delete *m = sub;
        hw__delete__init(m);
        m->key = (char *)s->key;
        env->delete_ = m;
        break;
    }
    case HW__MSG_TYPE__MSG_LIST: {
        Hw__List *m = sub;
        hw__list__init(m);
        m->prefix = (char *)s->key;
        m->cursor = (char *)"";
        m->limit = 10;
        env->list = m;
        break;
    }
    default:
        break;
    }
}

/* Send one step and read its answer: 1 = the normal answer, 0 = the exchange ends. */
static int run_step(struct x *x, int fd, const struct step *s)
{
    union {
        Hw__Hello a;
        Hw__Stage b;
        Hw__Finish c;
        Hw__Commit d;
        Hw__Get e;
        Hw__Head f;
        Hw__Delete g;
        Hw__List h;
    } sub;
    Hw__Envelope env;
    build(x, s, &env, &sub);
    if (send_env(fd, &env, s->payload ? body : NULL, s->payload ? BODY : 0) != 0) {
        x->closed = 1;
        return 0;
    }
    for (;;) {
        Hw__Envelope *in = recv_env(x, fd);
        if (in == NULL)
            return 0;
        int type = (int)in->type, eof = in->data == NULL || in->data->eof;
        hw__envelope__free_unpacked(in, NULL);
        if (type == HW__MSG_TYPE__MSG_ERROR) {
            x->error = 1;
            return 0;
        }
        cr_assert_eq(type, s->answer, "step %d answered with message type %d", (int)(s - x->steps),
                     type);
        if (type != HW__MSG_TYPE__MSG_DATA || eof)
            return 1;
    }
}

static void *client(void *arg)
{
    struct x *x = arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    struct timeval tv = {10, 0};
    char host[64];
    int port = 0;
    cm_hostport_parse(x->t->listen, host, sizeof(host), &port);
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        x->closed = 1;
    } else {
        while (x->ok < x->nsteps && run_step(x, fd, &x->steps[x->ok]))
            x->ok++;
    }
    close(fd);
    atomic_store(&x->done, 1);
    uv_async_send(&x->t->wake);
    return NULL;
}

/* ---- the loop side ---- */

struct window {
    int active;
    long failures;
};

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

static void on_closed(uv_handle_t *hd)
{
    *(int *)hd->data = 1;
}

static void on_wake(uv_async_t *a)
{
}

static void exchange(struct t *t, struct x *x, const struct step *steps, size_t n, struct window *w)
{
    static uint64_t seq;
    pthread_t th;
    uv_timer_t tm;
    int closed = 0;
    memset(x, 0, sizeof(*x));
    x->t = t;
    x->steps = steps;
    x->nsteps = n;
    seq++;
    memcpy(x->upload, &seq, sizeof(seq)); /* a fresh upload id per exchange */
    memcpy(x->upload + 8, "sweep-up", 8);
    uv_timer_init(&t->loop, &tm);
    tm.data = w;
    if (w != NULL)
        uv_timer_start(&tm, on_window, WINDOW_MS, 0);
    cr_assert_eq(pthread_create(&th, NULL, client, x), 0);
    while (!atomic_load(&x->done))
        uv_run(&t->loop, UV_RUN_ONCE);
    pthread_join(th, NULL);
    window_end(w);
    tm.data = &closed;
    uv_close((uv_handle_t *)&tm, on_closed);
    while (!closed)
        uv_run(&t->loop, UV_RUN_ONCE);
}

/* ---- exchanges ---- */

#define HELLO                                                                                      \
    {                                                                                              \
        HW__MSG_TYPE__MSG_HELLO, NULL, 0, HW__MSG_TYPE__MSG_HELLO_OK                               \
    }
#define WRITE(k)                                                                                   \
    {HW__MSG_TYPE__MSG_STAGE, k, 1, HW__MSG_TYPE__MSG_STAGE_OK},                                   \
        {HW__MSG_TYPE__MSG_FINISH, k, 0, HW__MSG_TYPE__MSG_FINISH_OK},                             \
    {                                                                                              \
        HW__MSG_TYPE__MSG_COMMIT, k, 0, HW__MSG_TYPE__MSG_COMMIT_OK                                \
    }

static const struct step put_obj[] = {HELLO, WRITE("/s/obj.ts")};
static const struct step get_obj[] = {
    HELLO, {HW__MSG_TYPE__MSG_GET, "/s/obj.ts", 0, HW__MSG_TYPE__MSG_DATA}};

/* The node answers a normal GET again (retried for a while). */
static void still_serves(struct t *t, const char *name, long n)
{
    static struct x x;
    uint64_t end = cm_mono_ms() + 10000;
    for (;;) {
        exchange(t, &x, get_obj, 2, NULL);
        if (x.ok == 2)
            return;
        cr_assert_lt(cm_mono_ms(), end, "%s n=%ld: the node no longer serves", name, n);
    }
}

enum mode { FROM_N, ONLY_N };

struct path {
    const char *name;
    const struct step *steps;
    size_t n;
    const struct step *prepare; /* run without failures before each round, or NULL */
    size_t nprepare;
};

static int round_n(struct t *t, const struct path *p, enum mode mode, long n, int *errors,
                   int *closes)
{
    static struct x x;
    struct window w = {1, 0};
    const char *m = mode == FROM_N ? "from" : "only";
    if (p->prepare != NULL) {
        exchange(t, &x, p->prepare, p->nprepare, NULL);
        cr_assert_eq(x.ok, p->nprepare, "%s: prepare stopped at step %zu", p->name, x.ok);
    }
    if (mode == FROM_N)
        cm_alloc_fail_after(n);
    else
        cm_alloc_fail_once_after(n);
    exchange(t, &x, p->steps, p->n, &w);
    if (w.failures == 0) {
        cr_assert_eq(x.ok, p->n, "%s: stopped at step %zu (error %d closed %d)", p->name, x.ok,
                     x.error, x.closed);
        return 1;
    }
    cr_assert(!x.timed_out, "%s %s n=%ld: step %zu had neither an answer nor a close in 10 s",
              p->name, m, n, x.ok);
    cr_assert(x.ok == p->n || x.error || x.closed, "%s %s n=%ld: stopped without a reason", p->name,
              m, n);
    *errors += x.error;
    *closes += x.closed;
    still_serves(t, p->name, n);
    return 0;
}

static void sweep(struct t *t, const struct path *p)
{
    for (int mode = FROM_N; mode <= ONLY_N; mode++) {
        int errors = 0, closes = 0;
        long n = 0;
        while (!round_n(t, p, (enum mode)mode, n, &errors, &closes)) {
            n++;
            cr_assert_lt(n, MAX_ROUNDS, "%s: still failing after %d", p->name, MAX_ROUNDS);
        }
        fprintf(stderr, "node sweep %s (%s n): %ld allocation points, %d errors, %d closes\n",
                p->name, mode == FROM_N ? "from" : "only", n, errors, closes);
    }
}

/* ---- one node ---- */

static void on_stopped(struct nd_node *n)
{
    struct t *t = (struct t *)((char *)n - offsetof(struct t, node));
    t->stopped = 1;
}

/* Nobody listens on 127.0.0.1:port right now. */
static int port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}

static void setup(struct t *t)
{
    char err[512];
    memset(t, 0, sizeof(*t));
    signal(SIGPIPE, SIG_IGN);
    for (size_t i = 0; i < BODY; i++)
        body[i] = (char)('A' + i % 26);
    cm_log_init("node1", CM_LOG_ERROR);
    strcpy(t->dir, "/tmp/hw-nsweep-XXXXXX");
    cr_assert_not_null(mkdtemp(t->dir));
    uv_loop_init(&t->loop);
    uv_async_init(&t->loop, &t->wake, on_wake);
    int port = 20000 + (getpid() * 7) % 10000; /* below the kernel's ephemeral range (32768-) */
    while (!port_free(port) || !port_free(port + 1))
        port += 2;
    snprintf(t->listen, sizeof(t->listen), "127.0.0.1:%d", port);
    snprintf(t->raft, sizeof(t->raft), "127.0.0.1:%d", port + 1);
    snprintf(t->peers, sizeof(t->peers), "1=%s", t->listen);
    char *argv[] = {"node",    "--id",          "1",     "--data-dir", t->dir,   "--listen",
                    t->listen, "--raft-listen", t->raft, "--peers",    t->peers, "--log-level",
                    "error",   "--insecure",    NULL};
    cr_assert_eq(nd_config_load(&t->cfg, 14, argv, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(nd_node_start(&t->node, &t->loop, &t->cfg, err, sizeof(err)), 0, "%s", err);
    uint64_t end = cm_mono_ms() + 10000;
    while (!nd_shard_is_leader(&t->node.shard)) {
        cr_assert_lt(cm_mono_ms(), end, "the node never became leader");
        uv_run(&t->loop, UV_RUN_ONCE);
    }
    static struct x x;
    end = cm_mono_ms() + 10000;
    do { /* the first commit may wait for the leader's first entry */
        cr_assert_lt(cm_mono_ms(), end, "the first PUT never committed");
        exchange(t, &x, put_obj, 4, NULL);
    } while (x.ok != 4);
}

static void teardown(struct t *t)
{
    char cmd[128];
    nd_node_stop(&t->node, on_stopped);
    uv_close((uv_handle_t *)&t->wake, NULL);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    cr_assert(t->stopped);
    cr_assert_eq(uv_loop_close(&t->loop), 0, "handles left open");
    snprintf(cmd, sizeof(cmd), "rm -rf %s", t->dir);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(LEAK_CHECK(), 0, "the node leaked memory (LeakSanitizer report above)");
}

Test(node_sweep, reads)
{
    static struct t t;
    setup(&t);
    static const struct step status[] = {
        HELLO, {HW__MSG_TYPE__MSG_STATUS, NULL, 0, HW__MSG_TYPE__MSG_STATUS_OK}};
    static const struct step head[] = {
        HELLO, {HW__MSG_TYPE__MSG_HEAD, "/s/obj.ts", 0, HW__MSG_TYPE__MSG_HEAD_OK}};
    static const struct step list[] = {
        HELLO, {HW__MSG_TYPE__MSG_LIST, "/s/", 0, HW__MSG_TYPE__MSG_LIST_OK}};
    struct path paths[] = {
        {"status", status, 2, NULL, 0},
        {"get", get_obj, 2, NULL, 0},
        {"head", head, 2, NULL, 0},
        {"list", list, 2, NULL, 0},
    };
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
        sweep(&t, &paths[i]);
    teardown(&t);
}

Test(node_sweep, writes)
{
    static struct t t;
    setup(&t);
    /* STAGE and FINISH only: COMMIT and DELETE go through the raft FSM, and an FSM apply that
     * cannot allocate stops the node by design (node/shard/fsm.c aborts rather than let this
     * replica diverge; the log replays on restart), which an in-process sweep cannot survive. */
    static const struct step put[] = {HELLO, WRITE("/s/p.ts")};
    struct path paths[] = {
        {"stage_finish", put, 3, NULL, 0},
    };
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
        sweep(&t, &paths[i]);
    teardown(&t);
}
