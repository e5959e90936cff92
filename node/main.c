/* headwater-node: flags -> config -> node -> loop. A store that cannot open because the data
 * dir's disk is full (CM_ENOSPC) does not end the process: it retries every second until space
 * returns (a signal still stops it), so an orchestrator sees a live process waiting, not a crash
 * loop. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

#include "err.h"
#include "log.h"
#include "node.h"
#include "options.h"

struct app {
    struct nd_node node;
    uv_signal_t sigint, sigterm;
    int started;
    const struct nd_config *cfg;
    uv_timer_t retry; /* start again while the disk is full */
    int waiting, retry_open;
    int rv;
};

#define START_RETRY_MS 1000

static void on_sig_closed(uv_handle_t *h)
{
}

static void on_stopped(struct nd_node *n)
{
    struct app *a = (struct app *)n;
    uv_close((uv_handle_t *)&a->sigint, on_sig_closed);
    uv_close((uv_handle_t *)&a->sigterm, on_sig_closed);
    if (a->retry_open) {
        a->retry_open = 0;
        uv_close((uv_handle_t *)&a->retry, on_sig_closed);
    }
}

static void start(struct app *a, uv_loop_t *loop);

static void on_retry(uv_timer_t *t)
{
    struct app *a = t->data;
    start(a, t->loop);
}

/* Start the node; on a full disk wait (the first time say so) and try again later. */
static void start(struct app *a, uv_loop_t *loop)
{
    char errmsg[512];
    a->rv = nd_node_start(&a->node, loop, a->cfg, errmsg, sizeof(errmsg));
    a->node.on_stopped = on_stopped; /* also used when the node stops itself on a fatal error */
    if (a->rv == CM_ENOSPC && !nd_node_needs_stop(&a->node)) {
        if (!a->waiting)
            CM_WARN("cannot start: %s; the data dir's disk is full: retrying every %d ms until "
                    "space returns",
                    errmsg, START_RETRY_MS);
        a->waiting = 1;
        if (!a->retry_open) {
            uv_timer_init(loop, &a->retry);
            a->retry.data = a;
            a->retry_open = 1;
        }
        uv_timer_start(&a->retry, on_retry, START_RETRY_MS, 0);
        return;
    }
    if (a->waiting && a->rv == 0)
        CM_INFO("space returned: the node started");
    a->waiting = 0;
    if (a->rv != 0) {
        CM_ERROR("cannot start: %s", errmsg);
        if (nd_node_needs_stop(&a->node))
            nd_node_stop(&a->node, on_stopped);
        else
            on_stopped(&a->node);
    }
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct app *a = s->data;
    CM_INFO("signal %d: stopping", signum);
    if (a->waiting) { /* never started: nothing but our own handles to close */
        a->waiting = 0;
        a->rv = 0;
        on_stopped(&a->node);
        return;
    }
    nd_node_stop(&a->node, on_stopped);
}

int main(int argc, char **argv)
{
    static struct nd_config cfg;
    static struct app app;
    char errmsg[512];
    uv_loop_t loop;

    /* Store work blocks on the disk: a FINISH waits in a group commit's fdatasync, and with
     * libuv's 4 threads four concurrent uploads' FINISHes would hold back every other STAGE
     * and read. Set before the pool starts; an operator's own value wins. */
    setenv("UV_THREADPOOL_SIZE", "32", 0);
    int rv = nd_config_load(&cfg, argc, argv, errmsg, sizeof(errmsg));
    if (rv == CM_EHELP)
        return 0;
    if (rv != 0) {
        fprintf(stderr, "headwater-node: %s (see --help)\n", errmsg);
        return 2;
    }
    char name[32];
    snprintf(name, sizeof(name), "node%llu", (unsigned long long)cfg.id);
    cm_log_init(name, (enum cm_log_level)cm_log_level_parse(cfg.log_level));
    signal(SIGPIPE, SIG_IGN); /* a peer dying must not kill us through raft's sockets */
    uv_loop_init(&loop);
    uv_signal_init(&loop, &app.sigint);
    uv_signal_init(&loop, &app.sigterm);
    app.sigint.data = app.sigterm.data = &app;
    uv_signal_start(&app.sigint, on_signal, SIGINT);
    uv_signal_start(&app.sigterm, on_signal, SIGTERM);
    app.cfg = &cfg;
    start(&app, &loop);
    uv_run(&loop, UV_RUN_DEFAULT);
    rv = app.rv;
    int closed = uv_loop_close(&loop);
    if (closed != 0)
        CM_WARN("loop closed with handles left: %s", uv_strerror(closed));
    return rv == 0 ? 0 : 1;
}
