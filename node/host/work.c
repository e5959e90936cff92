/* Work queues (see work.h). */
#include "host/work.h"

#include <string.h>

#include "alloc.h"
#include "err.h"

struct work {
    uv_work_t req;
    struct nd_workq *q;
    nd_work_fn fn;
    nd_work_done_cb done;
    void *arg;
    struct work *next; /* manual queue */
};

static void finished(struct nd_workq *q)
{
    if (--q->pending == 0 && q->on_idle != NULL)
        q->on_idle(q->idle_data);
}

/* ---- libuv thread pool ---- */

static void uv_fn(uv_work_t *req)
{
    struct work *w = req->data;
    w->fn(w->arg);
}

static void uv_done(uv_work_t *req, int status)
{
    struct work *w = req->data;
    struct nd_workq *q = w->q;
    w->done(w->arg, status);
    cm_free(w);
    finished(q);
}

static int uv_submit(struct nd_workq *q, nd_work_fn fn, nd_work_done_cb done, void *arg)
{
    struct work *w = cm_calloc(1, sizeof(*w));
    if (w == NULL)
        return CM_ENOMEM;
    w->req.data = w;
    w->q = q;
    w->fn = fn;
    w->done = done;
    w->arg = arg;
    if (uv_queue_work(q->impl, &w->req, uv_fn, uv_done) != 0) {
        cm_free(w);
        return CM_EIO;
    }
    return 0;
}

static void uv_close_q(struct nd_workq *q)
{
}

static const struct nd_workq_ops uv_ops = {uv_submit, uv_close_q};

int nd_workq_uv_init(struct nd_workq *q, uv_loop_t *loop)
{
    memset(q, 0, sizeof(*q));
    q->ops = &uv_ops;
    q->impl = loop;
    return 0;
}

/* ---- manual queue ---- */

struct manual {
    struct work *head, **tail;
    unsigned fail;
};

static int manual_submit(struct nd_workq *q, nd_work_fn fn, nd_work_done_cb done, void *arg)
{
    struct manual *m = q->impl;
    if (m->fail > 0 && --m->fail == 0)
        return CM_EIO;
    struct work *w = cm_calloc(1, sizeof(*w));
    if (w == NULL)
        return CM_ENOMEM;
    w->q = q;
    w->fn = fn;
    w->done = done;
    w->arg = arg;
    *m->tail = w;
    m->tail = &w->next;
    return 0;
}

static void manual_close(struct nd_workq *q)
{
    cm_free(q->impl);
}

static const struct nd_workq_ops manual_ops = {manual_submit, manual_close};

int nd_workq_manual_init(struct nd_workq *q)
{
    memset(q, 0, sizeof(*q));
    struct manual *m = cm_calloc(1, sizeof(*m));
    if (m == NULL)
        return CM_ENOMEM;
    m->tail = &m->head;
    q->ops = &manual_ops;
    q->impl = m;
    return 0;
}

size_t nd_workq_manual_run(struct nd_workq *q)
{
    struct manual *m = q->impl;
    size_t n = 0;
    while (m->head != NULL) {
        struct work *w = m->head;
        m->head = w->next;
        if (m->head == NULL)
            m->tail = &m->head;
        w->fn(w->arg);
        w->done(w->arg, 0);
        cm_free(w);
        n++;
        finished(q);
    }
    return n;
}

void nd_workq_manual_fail(struct nd_workq *q, unsigned nth)
{
    ((struct manual *)q->impl)->fail = nth;
}

void nd_workq_close(struct nd_workq *q)
{
    if (q->ops != NULL)
        q->ops->close(q);
    q->ops = NULL;
}

int nd_work(struct nd_workq *q, nd_work_fn fn, nd_work_done_cb done, void *arg)
{
    int rv = q->ops->submit(q, fn, done, arg);
    if (rv == 0)
        q->pending++;
    return rv;
}
