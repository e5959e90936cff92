/* Shedding connections without memory (see shed.h). */
#include "shed.h"

static void on_closed(uv_handle_t *h)
{
    struct cm_shed *s = h->data;
    int pending = s->pending;
    s->busy = 0;
    s->pending = 0;
    s->on_done(s->arg, pending);
}

void cm_shed_init(struct cm_shed *s, uv_stream_t *listener, void (*on_done)(void *arg, int pending),
                  void *arg)
{
    s->listener = listener;
    s->busy = 0;
    s->pending = 0;
    s->on_done = on_done;
    s->arg = arg;
}

void cm_shed(struct cm_shed *s)
{
    if (s->busy) {
        s->pending = 1;
        return;
    }
    uv_tcp_init(s->listener->loop, &s->tcp);
    s->tcp.data = s;
    s->busy = 1;
    uv_accept(s->listener, (uv_stream_t *)&s->tcp);
    uv_close((uv_handle_t *)&s->tcp, on_closed);
}

int cm_shed_busy(const struct cm_shed *s)
{
    return s->busy;
}
