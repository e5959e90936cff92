/* Worker threads.
 *
 * Happy path: start -> thread: loop init, context start (REUSEPORT), async "stop" handle, post
 *   the start semaphore -> run loop. Stop: uv_async_send -> on the worker's loop: close the async
 *   handle, gw_ctx_stop -> the loop ends once every handle closed -> uv_loop_close -> thread ends
 *   -> join.
 * Failures: a context that cannot start reports through the semaphore; the thread cleans its
 *   loop up and ends; the caller stops and joins the others. */
#include "workers.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "alloc.h"
#include "err.h"
#include "gateway.h"
#include "log.h"

struct worker {
    size_t index;
    const struct gw_config *cfg;
    struct gw_shared *sh; /* borrowed; NULL = a private one */
    uv_thread_t thread;
    int started; /* the thread exists: join it */
    uv_sem_t ready;
    int status; /* start result, written before ready is posted */
    char errmsg[256];
    uv_loop_t loop;
    uv_async_t stop;
    struct gw_ctx ctx;
    int loop_close_rv;
};

struct gw_workers {
    size_t n;
    atomic_int stopping;
    struct worker w[];
};

static void on_stop(uv_async_t *a)
{
    struct worker *w = a->data;
    uv_close((uv_handle_t *)&w->stop, NULL);
    gw_ctx_stop(&w->ctx);
}

static void worker_main(void *arg)
{
    struct worker *w = arg;
    uv_loop_init(&w->loop);
    if (w->sh != NULL)
        w->status = gw_ctx_start_shared(&w->ctx, &w->loop, w->cfg, w->sh, GW_CTX_REUSEPORT,
                                        w->errmsg, sizeof(w->errmsg));
    else
        w->status =
            gw_ctx_start(&w->ctx, &w->loop, w->cfg, GW_CTX_REUSEPORT, w->errmsg, sizeof(w->errmsg));
    if (w->status == 0) {
        uv_async_init(&w->loop, &w->stop, on_stop);
        w->stop.data = w;
    }
    uv_sem_post(&w->ready); /* from here on, the caller may send stop */
    uv_run(&w->loop, UV_RUN_DEFAULT);
    w->loop_close_rv = uv_loop_close(&w->loop);
    if (w->loop_close_rv != 0)
        CM_ERROR("msg=\"worker loop did not close cleanly\" worker=%zu", w->index);
}

int gw_workers_join(struct gw_workers *ws)
{
    int rv = 0;
    for (size_t i = 0; i < ws->n; i++) {
        struct worker *w = &ws->w[i];
        if (!w->started)
            continue;
        uv_thread_join(&w->thread);
        uv_sem_destroy(&w->ready);
        if (w->loop_close_rv != 0)
            rv = CM_EBUSY;
    }
    cm_free(ws);
    return rv;
}

void gw_workers_stop(struct gw_workers *ws)
{
    if (atomic_exchange(&ws->stopping, 1))
        return;
    for (size_t i = 0; i < ws->n; i++) {
        if (ws->w[i].started && ws->w[i].status == 0)
            uv_async_send(&ws->w[i].stop);
    }
}

int gw_workers_start(const struct gw_config *cfg, size_t n, struct gw_workers **out, char *errmsg,
                     size_t errlen)
{
    return gw_workers_start_shared(cfg, NULL, n, out, errmsg, errlen);
}

int gw_workers_start_shared(const struct gw_config *cfg, struct gw_shared *sh, size_t n,
                            struct gw_workers **out, char *errmsg, size_t errlen)
{
    struct gw_workers *ws = cm_calloc(1, sizeof(*ws) + n * sizeof(struct worker));
    if (ws == NULL)
        return CM_ENOMEM;
    ws->n = n;
    int rv = 0;
    for (size_t i = 0; i < n && rv == 0; i++) {
        struct worker *w = &ws->w[i];
        w->index = i + 1;
        w->cfg = cfg;
        w->sh = sh;
        if (uv_sem_init(&w->ready, 0) != 0) {
            snprintf(errmsg, errlen, "worker %zu: semaphore", i + 1);
            rv = CM_EIO;
            break;
        }
        if (uv_thread_create(&w->thread, worker_main, w) != 0) {
            uv_sem_destroy(&w->ready);
            snprintf(errmsg, errlen, "worker %zu: cannot create thread", i + 1);
            rv = CM_EIO;
            break;
        }
        w->started = 1;
        uv_sem_wait(&w->ready);
        if (w->status != 0) {
            snprintf(errmsg, errlen, "worker %zu: %s", i + 1, w->errmsg);
            rv = w->status;
        }
    }
    if (rv != 0) {
        gw_workers_stop(ws);
        gw_workers_join(ws);
        return rv;
    }
    *out = ws;
    return 0;
}
