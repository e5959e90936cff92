/* headwater-gateway: flags -> config -> context(s) -> loop. SIGINT/SIGTERM stop it cleanly. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "err.h"
#include "gateway.h"
#include "gwconfig.h"
#include "log.h"
#include "workers.h"

struct app {
    struct gw_ctx ctx;
    struct gw_workers *workers; /* NULL with --threads 1 */
    uv_signal_t sigint, sigterm;
};

static void on_signal(uv_signal_t *s, int signum)
{
    struct app *a = s->data;
    CM_INFO("msg=\"stopping\" signal=%d", signum);
    uv_close((uv_handle_t *)&a->sigint, NULL);
    uv_close((uv_handle_t *)&a->sigterm, NULL);
    if (a->workers != NULL)
        gw_workers_stop(a->workers);
    gw_ctx_stop(&a->ctx);
}

static int parse_config(struct gw_config *cfg, int argc, char **argv)
{
    char err[512] = "";
    int rv = gw_config_parse(cfg, argc, argv, err, sizeof(err));
    if (rv == CM_EHELP) {
        gw_config_usage(stdout);
        return CM_EHELP;
    }
    if (rv == 0)
        rv = gw_config_validate(cfg, err, sizeof(err));
    if (rv != 0)
        fprintf(stderr, "headwater-gateway: %s\n", err);
    return rv;
}

int main(int argc, char **argv)
{
    static struct gw_config cfg;
    char err[512] = "";
    int rv = parse_config(&cfg, argc, argv);
    if (rv != 0)
        return rv == CM_EHELP ? 0 : 2;
    cm_log_init("gateway", (enum cm_log_level)cfg.level);
    signal(SIGPIPE, SIG_IGN);

    uv_loop_t loop;
    uv_loop_init(&loop);
    struct app a;
    memset(&a, 0, sizeof(a));
    unsigned flags = GW_CTX_ADMIN | (cfg.threads > 1 ? GW_CTX_REUSEPORT : 0);
    rv = gw_ctx_start(&a.ctx, &loop, &cfg, flags, err, sizeof(err));
    if (rv == 0 && cfg.threads > 1) {
        rv = gw_workers_start(&cfg, (size_t)cfg.threads - 1, &a.workers, err, sizeof(err));
        if (rv != 0)
            gw_ctx_stop(&a.ctx);
    }
    if (rv != 0) {
        CM_ERROR("msg=\"cannot start\" err=\"%s\"", err);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        return 1;
    }
    if (cfg.threads > 1)
        CM_INFO("msg=\"worker loops running\" threads=%llu", (unsigned long long)cfg.threads);
    uv_signal_init(&loop, &a.sigint);
    uv_signal_init(&loop, &a.sigterm);
    a.sigint.data = &a;
    a.sigterm.data = &a;
    uv_signal_start(&a.sigint, on_signal, SIGINT);
    uv_signal_start(&a.sigterm, on_signal, SIGTERM);

    uv_run(&loop, UV_RUN_DEFAULT);
    int workers_rv = a.workers != NULL ? gw_workers_join(a.workers) : 0;
    rv = uv_loop_close(&loop);
    if (rv != 0 || workers_rv != 0) {
        CM_ERROR("msg=\"loop did not close cleanly\"");
        return 1;
    }
    CM_INFO("msg=\"stopped\"");
    return 0;
}
