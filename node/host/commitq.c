/* Store write queue of uploads (see commitq.h).
 *
 * Lists under mu: todo (submitted, writer not yet run), tosync (written, durable, waiting
 * for the syncer), done (for the loop). The writer and the syncer each sleep on their own
 * condition; the loop is woken with one uv_async per batch (libuv folds repeated sends). */
#include "host/commitq.h"

#include "alloc.h"
#include "err.h"

struct cq_item {
    nd_work_fn fn;
    nd_work_done_cb done;
    void *arg;
    int durable;
    int status;
    struct cq_item *next;
};

struct cq_list {
    struct cq_item *head, *tail;
};

struct nd_commitq {
    struct nd_store *store;
    uv_mutex_t mu;
    uv_cond_t wcv, scv;
    struct cq_list todo, tosync, done;
    uv_thread_t writer, syncer;
    uv_async_t async;
    int stop;
    unsigned pending; /* loop thread only */
    void (*on_idle)(void *data);
    void *idle_data;
    void (*on_closed)(void *data);
    void *closed_data;
};

static void list_push(struct cq_list *l, struct cq_item *it)
{
    it->next = NULL;
    if (l->tail != NULL)
        l->tail->next = it;
    else
        l->head = it;
    l->tail = it;
}

static struct cq_item *list_take(struct cq_list *l)
{
    struct cq_item *h = l->head;
    l->head = l->tail = NULL;
    return h;
}

/* Move src's items to the end of dst; did any move? */
static int list_splice(struct cq_list *dst, const struct cq_list *src)
{
    if (src->head == NULL)
        return 0;
    if (dst->tail != NULL)
        dst->tail->next = src->head;
    else
        dst->head = src->head;
    dst->tail = src->tail;
    return 1;
}

static void writer_main(void *arg)
{
    struct nd_commitq *q = arg;
    uv_mutex_lock(&q->mu);
    for (;;) {
        while (q->todo.head == NULL && !q->stop)
            uv_cond_wait(&q->wcv, &q->mu);
        if (q->todo.head == NULL)
            break;
        struct cq_item *it = list_take(&q->todo);
        uv_mutex_unlock(&q->mu);
        struct cq_list durable = {0}, finished = {0};
        while (it != NULL) {
            struct cq_item *next = it->next;
            it->fn(it->arg);
            list_push(it->durable ? &durable : &finished, it);
            it = next;
        }
        uv_mutex_lock(&q->mu);
        if (list_splice(&q->tosync, &durable))
            uv_cond_signal(&q->scv);
        if (list_splice(&q->done, &finished))
            uv_async_send(&q->async);
    }
    uv_mutex_unlock(&q->mu);
}

static void syncer_main(void *arg)
{
    struct nd_commitq *q = arg;
    uv_mutex_lock(&q->mu);
    for (;;) {
        while (q->tosync.head == NULL && !q->stop)
            uv_cond_wait(&q->scv, &q->mu);
        if (q->tosync.head == NULL)
            break;
        struct cq_item *it = list_take(&q->tosync);
        uv_mutex_unlock(&q->mu);
        int rv = nd_store_sync(q->store);
        uv_mutex_lock(&q->mu);
        while (it != NULL) {
            struct cq_item *next = it->next;
            it->status = rv;
            list_push(&q->done, it);
            it = next;
        }
        uv_async_send(&q->async);
    }
    uv_mutex_unlock(&q->mu);
}

static void on_async(uv_async_t *a)
{
    struct nd_commitq *q = a->data;
    uv_mutex_lock(&q->mu);
    struct cq_item *it = list_take(&q->done);
    uv_mutex_unlock(&q->mu);
    while (it != NULL) {
        struct cq_item *next = it->next;
        q->pending--;
        it->done(it->arg, it->status);
        cm_free(it);
        it = next;
    }
    if (q->pending == 0 && q->on_idle != NULL)
        q->on_idle(q->idle_data);
}

static void on_async_closed(uv_handle_t *h);

int nd_commitq_open(struct nd_commitq **out, uv_loop_t *loop, struct nd_store *store,
                    void (*on_idle)(void *data), void *idle_data)
{
    struct nd_commitq *q = cm_calloc(1, sizeof(*q));
    if (q == NULL)
        return CM_ENOMEM;
    q->store = store;
    q->on_idle = on_idle;
    q->idle_data = idle_data;
    uv_mutex_init(&q->mu);
    uv_cond_init(&q->wcv);
    uv_cond_init(&q->scv);
    q->async.data = q;
    if (uv_async_init(loop, &q->async, on_async) != 0)
        goto err_async;
    if (uv_thread_create(&q->writer, writer_main, q) != 0)
        goto err_writer;
    if (uv_thread_create(&q->syncer, syncer_main, q) != 0)
        goto err_syncer;
    *out = q;
    return 0;

err_syncer:
    uv_mutex_lock(&q->mu);
    q->stop = 1;
    uv_cond_signal(&q->wcv);
    uv_mutex_unlock(&q->mu);
    uv_thread_join(&q->writer);
err_writer:
    uv_cond_destroy(&q->scv);
    uv_cond_destroy(&q->wcv);
    uv_mutex_destroy(&q->mu);
    uv_close((uv_handle_t *)&q->async, on_async_closed); /* frees q */
    return CM_ENOMEM;
err_async:
    uv_cond_destroy(&q->scv);
    uv_cond_destroy(&q->wcv);
    uv_mutex_destroy(&q->mu);
    cm_free(q);
    return CM_ENOMEM;
}

int nd_commitq_submit(struct nd_commitq *q, nd_work_fn fn, nd_work_done_cb done, void *arg,
                      int durable)
{
    struct cq_item *it = cm_calloc(1, sizeof(*it));
    if (it == NULL)
        return CM_ENOMEM;
    it->fn = fn;
    it->done = done;
    it->arg = arg;
    it->durable = durable;
    q->pending++;
    uv_mutex_lock(&q->mu);
    list_push(&q->todo, it);
    uv_cond_signal(&q->wcv);
    uv_mutex_unlock(&q->mu);
    return 0;
}

unsigned nd_commitq_pending(const struct nd_commitq *q)
{
    return q != NULL ? q->pending : 0;
}

static void on_async_closed(uv_handle_t *h)
{
    struct nd_commitq *q = h->data;
    if (q->on_closed != NULL)
        q->on_closed(q->closed_data);
    cm_free(q);
}

void nd_commitq_close(struct nd_commitq *q, void (*on_closed)(void *data), void *data)
{
    uv_mutex_lock(&q->mu);
    q->stop = 1;
    uv_cond_signal(&q->wcv);
    uv_cond_signal(&q->scv);
    uv_mutex_unlock(&q->mu);
    uv_thread_join(&q->writer);
    uv_thread_join(&q->syncer);
    uv_cond_destroy(&q->scv);
    uv_cond_destroy(&q->wcv);
    uv_mutex_destroy(&q->mu);
    q->on_closed = on_closed;
    q->closed_data = data;
    uv_close((uv_handle_t *)&q->async, on_async_closed);
}
