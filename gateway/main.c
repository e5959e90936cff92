/* headwater-gateway: flags -> config -> shared state (rules, cache, TLS, keys) -> context(s) ->
 * loop.
 * SIGINT/SIGTERM stop it cleanly; SIGHUP reloads the keys file (off the loop; a bad file keeps
 * the old keys). */
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "err.h"
#include "gateway.h"
#include "options.h"
#include "log.h"
#include "object/shared.h"
#include "workers.h"

struct app {
    struct gw_ctx ctx;
    struct gw_workers *workers; /* NULL with --threads 1 */
    struct gw_shared *shared;
    uv_signal_t sigint, sigterm, sighup;
    uv_work_t reload;
    int reloading;
    int reload_rv;
    char reload_err[512];
};

static void reload_work(uv_work_t *w)
{
    struct app *a = w->data;
    a->reload_rv = gw_shared_keys_reload(a->shared, a->reload_err, sizeof(a->reload_err));
}

static void reload_done(uv_work_t *w, int status)
{
    struct app *a = w->data;
    a->reloading = 0;
    if (status == 0 && a->reload_rv == 0)
        CM_INFO("msg=\"keys reloaded\"");
    else
        CM_ERROR("msg=\"keys reload failed: keeping the old keys\" err=\"%s\"", a->reload_err);
}

static void on_sighup(uv_signal_t *s, int signum)
{
    struct app *a = s->data;
    if (a->reloading || a->ctx.stopping)
        return;
    if (a->ctx.cfg->keys == NULL) {
        CM_INFO("msg=\"SIGHUP: no --keys file to reload\"");
        return;
    }
    a->reload.data = a;
    if (uv_queue_work(s->loop, &a->reload, reload_work, reload_done) == 0)
        a->reloading = 1;
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct app *a = s->data;
    CM_INFO("msg=\"stopping\" signal=%d", signum);
    uv_close((uv_handle_t *)&a->sigint, NULL);
    uv_close((uv_handle_t *)&a->sigterm, NULL);
    uv_close((uv_handle_t *)&a->sighup, NULL);
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

/* Every client and node connection holds a descriptor: take the hard limit, not the soft
 * default of 1024, so --max-connections is what bounds clients. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max)
        return;
    rlim_t was = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
        CM_DEBUG("msg=\"descriptor limit raised\" from=%llu to=%llu", (unsigned long long)was,
                 (unsigned long long)rl.rlim_cur);
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
    raise_nofile();

    uv_loop_t loop;
    uv_loop_init(&loop);
    struct app a;
    memset(&a, 0, sizeof(a));
    unsigned flags = GW_CTX_ADMIN | (cfg.threads > 1 ? GW_CTX_REUSEPORT : 0);
    rv = gw_shared_new(&cfg, &a.shared, err, sizeof(err));
    if (rv == 0)
        rv = gw_ctx_start_shared(&a.ctx, &loop, &cfg, a.shared, flags, err, sizeof(err));
    if (rv == 0 && cfg.threads > 1) {
        rv = gw_workers_start_shared(&cfg, a.shared, (size_t)cfg.threads - 1, &a.workers, err,
                                     sizeof(err));
        if (rv != 0)
            gw_ctx_stop(&a.ctx);
    }
    if (rv != 0) {
        CM_ERROR("msg=\"cannot start\" err=\"%s\"", err);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        if (a.shared != NULL)
            gw_shared_unref(a.shared);
        return 1;
    }
    if (cfg.threads > 1)
        CM_INFO("msg=\"worker loops running\" threads=%llu", (unsigned long long)cfg.threads);
    uv_signal_init(&loop, &a.sigint);
    uv_signal_init(&loop, &a.sigterm);
    uv_signal_init(&loop, &a.sighup);
    a.sigint.data = &a;
    a.sigterm.data = &a;
    a.sighup.data = &a;
    uv_signal_start(&a.sigint, on_signal, SIGINT);
    uv_signal_start(&a.sigterm, on_signal, SIGTERM);
    uv_signal_start(&a.sighup, on_sighup, SIGHUP);

    uv_run(&loop, UV_RUN_DEFAULT);
    int workers_rv = a.workers != NULL ? gw_workers_join(a.workers) : 0;
    rv = uv_loop_close(&loop);
    gw_shared_unref(a.shared); /* every loop ended: the last ref (cache, rules, keys, TLS) */
    if (rv != 0 || workers_rv != 0) {
        CM_ERROR("msg=\"loop did not close cleanly\"");
        return 1;
    }
    CM_INFO("msg=\"stopped\"");
    return 0;
}
