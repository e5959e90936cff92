/* headwater-node: flags -> config -> node -> loop. */
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
};

static void on_sig_closed(uv_handle_t *h)
{
}

static void on_stopped(struct nd_node *n)
{
    struct app *a = (struct app *)n;
    uv_close((uv_handle_t *)&a->sigint, on_sig_closed);
    uv_close((uv_handle_t *)&a->sigterm, on_sig_closed);
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct app *a = s->data;
    CM_INFO("signal %d: stopping", signum);
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
    rv = nd_node_start(&app.node, &loop, &cfg, errmsg, sizeof(errmsg));
    app.node.on_stopped = on_stopped; /* also used when the node stops itself on a fatal error */
    if (rv != 0) {
        CM_ERROR("cannot start: %s", errmsg);
        if (nd_node_needs_stop(&app.node))
            nd_node_stop(&app.node, on_stopped);
        else
            on_stopped(&app.node);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    int closed = uv_loop_close(&loop);
    if (closed != 0)
        CM_WARN("loop closed with handles left: %s", uv_strerror(closed));
    return rv == 0 ? 0 : 1;
}
