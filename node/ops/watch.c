/* Commit watch and gateway leases (see watch.h).
 *
 * Publish: FSM apply -> copy the event into the ring (evicting the oldest raises the floor) ->
 *   pump every subscriber. Pump: send events from the subscriber's next index while its write
 *   queue is under the high-water mark, else wait for drain.
 * Ack: record the session's progress with the lease table -> GRANT (term, leader, lease, safe,
 *   the progress this stream has delivered) -> release holds that became safe.
 * Timer (ND_WATCH_TICK_MS, while holds wait): observe raft's leadership, advance the safe index
 *   as leases run out or the term's first wait ends, release or fail holds.
 * Close of a subscribed connection: detach from the lease table (its lease ends). */
#include "ops/watch.h"

#include <string.h>

#include "alloc.h"
#include "err.h"
#include "frame.h"
#include "log.h"

struct nd_watch_ev {
    uint64_t index;
    int kind;
    Hw__ObjectMeta *meta; /* owned (protobuf-c allocated) */
};

struct nd_watch_sub {
    struct nd_watch *w;
    struct nd_sconn *sc; /* ref */
    struct nd_lease_holder *holder;
    uint64_t next;      /* index of the next event to send */
    uint64_t delivered; /* every event up to here was sent */
    struct nd_watch_sub *prev, *nxt;
};

struct nd_watch_hold {
    uint64_t index;
    nd_watch_done_cb done;
    void *arg;
    struct nd_watch_hold *next;
};

static void sub_pump(void *arg);

static uint64_t now_ms(struct nd_watch *w)
{
    return nd_mono_ms(w->h->clock);
}

static struct nd_watch_ev *ev_at(struct nd_watch *w, uint64_t pos)
{
    return &w->ring[pos % ND_WATCH_RING];
}

static uint64_t shard_term(const struct nd_watch *w)
{
    return w->sh->raft != NULL ? w->sh->raft->current_term : 0;
}

static void settle(struct nd_watch *w);

static void on_barrier(struct raft_barrier *b, int status)
{
    struct nd_watch *w = b->data;
    uint64_t term = w->barrier_term;
    w->barrier_term = 0;
    if (status != 0 || w->closing || !w->open)
        return;
    nd_lease_floor(&w->lease, term, nd_shard_applied(w->sh));
    settle(w);
}

/* ---- the term's lease query ---- */

static struct nd_watch *watch_of(struct nd_host *h, const Hw__Envelope *env);

static void query_stop(struct nd_watch *w)
{
    for (unsigned i = 0; i < ND_HOST_MAX_PEERS; i++)
        if (w->qcalls[i] != NULL) {
            nd_call_cancel(w->qcalls[i]);
            w->qcalls[i] = NULL;
        }
    cm_free(w->qp);
    w->qp = NULL;
    w->nqp = 0;
    w->query_answers = 0;
}

/* One replica's answer (its own included): who it named an older term's leader to, ms ago. */
static void query_add(struct nd_watch *w, uint64_t session, uint64_t ms_ago)
{
    struct nd_lease_pending *np = cm_realloc(w->qp, (w->nqp + 1) * sizeof(*np));
    if (np == NULL) { /* the plain wait stays: never end it early on a partial view */
        w->query_term = UINT64_MAX;
        return;
    }
    w->qp = np;
    np[w->nqp].session = session;
    np[w->nqp++].until = now_ms(w) - ms_ago + w->lease.lease_ms + ND_LEASE_MARGIN_MS;
}

static void query_answered(struct nd_watch *w)
{
    unsigned voters = w->sh->raft != NULL ? w->sh->raft->configuration.n : 0;
    if (++w->query_answers < voters / 2 + 1)
        return;
    if (nd_lease_query(&w->lease, w->query_term, w->qp, w->nqp) != 0)
        w->query_term = UINT64_MAX;
    query_stop(w);
    settle(w);
}

static int on_query_answer(struct nd_call *c, int status, const Hw__Envelope *env,
                           const struct cm_slice *pl, void *arg)
{
    struct nd_watch *w = arg;
    for (unsigned i = 0; i < ND_HOST_MAX_PEERS; i++)
        if (w->qcalls[i] == c)
            w->qcalls[i] = NULL;
    if (status != 0 || env == NULL || env->type != HW__MSG_TYPE__MSG_LEASE_QUERY_OK ||
        env->lease_query_ok == NULL || w->query_term != w->lease.term || w->closing)
        return 1; /* no answer from it: the others, or the plain wait */
    for (size_t i = 0; i < env->lease_query_ok->n_named && w->query_term != UINT64_MAX; i++)
        query_add(w, env->lease_query_ok->named[i]->session, env->lease_query_ok->named[i]->ms_ago);
    if (w->query_term == w->lease.term)
        query_answered(w);
    return 1;
}

static void query_start(struct nd_watch *w)
{
    struct nd_host *h = w->h;
    struct nd_lease_naming *mine = NULL;
    query_stop(w);
    w->query_term = w->lease.term;
    long n = nd_lease_named_before(&w->lease, w->lease.term, now_ms(w), &mine);
    if (n < 0) {
        w->query_term = UINT64_MAX;
        return;
    }
    for (long i = 0; i < n && w->query_term != UINT64_MAX; i++)
        query_add(w, mine[i].session, mine[i].ms_ago);
    cm_free(mine);
    Hw__Envelope req;
    Hw__LeaseQuery q = HW__LEASE_QUERY__INIT;
    q.term = w->lease.term;
    for (unsigned i = 0; i < h->npeers && i < ND_HOST_MAX_PEERS; i++) {
        if (h->peers[i].id == h->cfg.id || h->peers[i].rpc[0] == '\0')
            continue;
        cm_env_init(&req, HW__MSG_TYPE__MSG_LEASE_QUERY, ++h->next_req_id, w->sh->id);
        req.lease_query = &q;
        if (nd_call_start(h->loop, h->auth, h->peers[i].rpc, h->cfg.id, h->cfg.listen, &req,
                          w->lease.lease_ms, on_query_answer, w, &w->qcalls[i]) != 0)
            w->qcalls[i] = NULL;
    }
    if (w->query_term == w->lease.term)
        query_answered(w); /* this node's own answer */
}

void nd_op_lease_query(void *ctx, struct nd_sconn *sc, const Hw__Envelope *env,
                       const struct cm_slice *pl)
{
    struct nd_watch *w = watch_of(ctx, env);
    if (w == NULL || env->lease_query == NULL) {
        nd_sconn_error(sc, env, HW__CODE__CODE_BAD_REQUEST, "LEASE_QUERY needs a term");
        return;
    }
    if (shard_term(w) < env->lease_query->term) { /* it could still name an older leader */
        nd_sconn_error(sc, env, HW__CODE__CODE_NO_LEADER, "not in that term yet");
        return;
    }
    struct nd_lease_naming *named = NULL;
    long n = nd_lease_named_before(&w->lease, env->lease_query->term, now_ms(w), &named);
    Hw__LeaseNamed *items = n > 0 ? cm_calloc((size_t)n, sizeof(*items)) : NULL;
    Hw__LeaseNamed **ptrs = n > 0 ? cm_calloc((size_t)n, sizeof(*ptrs)) : NULL;
    if (n < 0 || (n > 0 && (items == NULL || ptrs == NULL))) {
        cm_free(named);
        cm_free(items);
        cm_free(ptrs);
        nd_sconn_error(sc, env, HW__CODE__CODE_INTERNAL, "out of memory");
        return;
    }
    for (long i = 0; i < n; i++) {
        hw__lease_named__init(&items[i]);
        items[i].session = named[i].session;
        items[i].ms_ago = named[i].ms_ago;
        ptrs[i] = &items[i];
    }
    Hw__Envelope out;
    Hw__LeaseQueryOk ok = HW__LEASE_QUERY_OK__INIT;
    ok.n_named = (size_t)(n > 0 ? n : 0);
    ok.named = ptrs;
    cm_env_init(&out, HW__MSG_TYPE__MSG_LEASE_QUERY_OK, env->req_id, env->shard);
    out.lease_query_ok = &ok;
    nd_sconn_send(sc, &out, NULL, 0);
    cm_free(named);
    cm_free(items);
    cm_free(ptrs);
}

/* Raft's view now; a term this node leads anew proposes its barrier (no lease before it) and
 * asks the replicas which sessions may still hold an older lease. */
static void observe(struct nd_watch *w)
{
    nd_lease_observe(&w->lease, nd_shard_is_leader(w->sh), shard_term(w), now_ms(w));
    nd_lease_gc(&w->lease, now_ms(w));
    if (w->lease.leading && w->query_term != w->lease.term && w->query_term != UINT64_MAX &&
        !w->closing)
        query_start(w);
    else if (!w->lease.leading && w->query_term != 0) {
        query_stop(w);
        w->query_term = 0;
    }
    if (!w->lease.leading || w->lease.floor_ready || w->barrier_term == w->lease.term || w->closing)
        return;
    if (w->barrier_term != 0)
        return; /* an older term's barrier is still in flight: it fails first */
    w->barrier.data = w;
    w->barrier_term = w->lease.term;
    if (raft_barrier(w->sh->raft, &w->barrier, on_barrier) != 0)
        w->barrier_term = 0; /* retried on the next observation */
}

int nd_watch_init(struct nd_watch *w, struct nd_host *h, struct nd_shard *sh, unsigned lease_ms,
                  uint64_t floor)
{
    memset(w, 0, sizeof(*w));
    w->h = h;
    w->sh = sh;
    w->floor = floor;
    w->ring = cm_calloc(ND_WATCH_RING, sizeof(*w->ring));
    if (w->ring == NULL)
        return CM_ENOMEM;
    nd_lease_init(&w->lease, lease_ms);
    uv_timer_init(h->loop, &w->timer);
    w->timer.data = w;
    w->open = 1;
    sh->watch = w;
    return 0;
}

/* ---- holds ---- */

static void holds_release(struct nd_watch *w, int ok, uint64_t safe)
{
    while (w->holds != NULL && (!ok || w->holds->index <= safe)) {
        struct nd_watch_hold *hd = w->holds;
        w->holds = hd->next;
        if (w->holds == NULL)
            w->holds_tail = NULL;
        hd->done(hd->arg, ok);
        cm_free(hd);
    }
}

static void on_tick(uv_timer_t *t);
static void push_safe(struct nd_watch *w, uint64_t safe);

/* Recompute the safe index, settle the holds, and keep the timer running while any wait. */
static void settle(struct nd_watch *w)
{
    uint64_t next;
    observe(w);
    if (!w->lease.leading) {
        holds_release(w, 0, 0);
        return;
    }
    uint64_t safe = nd_lease_safe(&w->lease, nd_shard_applied(w->sh), now_ms(w), &next);
    holds_release(w, 1, safe);
    push_safe(w, safe);
    if (w->holds != NULL && w->open && !w->closing && !uv_is_active((uv_handle_t *)&w->timer))
        uv_timer_start(&w->timer, on_tick, ND_WATCH_TICK_MS, ND_WATCH_TICK_MS);
    else if (w->holds == NULL && w->open)
        uv_timer_stop(&w->timer);
}

static void on_tick(uv_timer_t *t)
{
    settle(t->data);
}

int nd_watch_hold(struct nd_watch *w, uint64_t index, nd_watch_done_cb done, void *arg)
{
    uint64_t next;
    observe(w);
    if (w->closing)
        return 1;
    if (w->lease.leading && w->holds == NULL &&
        nd_lease_safe(&w->lease, nd_shard_applied(w->sh), now_ms(w), &next) >= index)
        return 1;
    struct nd_watch_hold *hd = cm_calloc(1, sizeof(*hd));
    if (hd == NULL) {
        CM_ERROR("msg=\"no memory to hold a write answer for the lease holders\" index=%llu",
                 (unsigned long long)index);
        return -1;
    }
    hd->index = index;
    hd->done = done;
    hd->arg = arg;
    if (w->holds_tail != NULL)
        w->holds_tail->next = hd;
    else
        w->holds = hd;
    w->holds_tail = hd;
    settle(w);
    return 0;
}

/* ---- ring and streams ---- */

static Hw__ObjectMeta *meta_copy(const Hw__ObjectMeta *m)
{
    size_t n = hw__object_meta__get_packed_size(m);
    uint8_t *buf = cm_malloc(n > 0 ? n : 1);
    if (buf == NULL)
        return NULL;
    hw__object_meta__pack(m, buf);
    Hw__ObjectMeta *c = hw__object_meta__unpack(NULL, n, buf);
    cm_free(buf);
    return c;
}

static void ev_clear(struct nd_watch_ev *e)
{
    if (e->meta != NULL)
        hw__object_meta__free_unpacked(e->meta, NULL);
    e->meta = NULL;
}

uint64_t nd_watch_newest(struct nd_watch *w)
{
    return w->ring != NULL && w->count > 0 ? ev_at(w, w->start + w->count - 1)->index : w->floor;
}

void nd_watch_publish(struct nd_watch *w, uint64_t index, int kind, const Hw__ObjectMeta *meta)
{
    if (w->ring == NULL || w->closing)
        return;
    Hw__ObjectMeta *copy = meta_copy(meta);
    if (w->count == ND_WATCH_RING || copy == NULL) {
        if (w->count == 0) { /* no memory for the copy: streams must start after it */
            w->floor = index;
            CM_WARN("msg=\"commit watch lost an event (out of memory)\" index=%llu",
                    (unsigned long long)index);
            return;
        }
        struct nd_watch_ev *old = ev_at(w, w->start);
        w->floor = old->index;
        ev_clear(old);
        w->start++;
        w->count--;
        if (copy == NULL) {
            w->floor = index;
            return;
        }
    }
    struct nd_watch_ev *e = ev_at(w, w->start + w->count);
    e->index = index;
    e->kind = kind;
    e->meta = copy;
    w->count++;
    for (struct nd_watch_sub *s = w->subs; s != NULL; s = s->nxt)
        sub_pump(s);
}

void nd_watch_restored(struct nd_watch *w, uint64_t index)
{
    if (w->ring == NULL || w->closing || index <= w->floor)
        return;
    for (uint64_t i = 0; i < w->count; i++)
        ev_clear(ev_at(w, w->start + i));
    w->start += w->count;
    w->count = 0;
    w->floor = index;
    for (struct nd_watch_sub *s = w->subs; s != NULL; s = s->nxt)
        sub_pump(s);
}

/* Logical position of the first event with index >= from (start + count: none yet). */
static uint64_t ring_find(struct nd_watch *w, uint64_t from)
{
    uint64_t lo = w->start, hi = w->start + w->count;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (ev_at(w, mid)->index < from)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void sub_send_event(struct nd_watch_sub *s, const struct nd_watch_ev *e)
{
    Hw__Envelope env;
    Hw__WatchEvent we = HW__WATCH_EVENT__INIT;
    cm_env_init(&env, HW__MSG_TYPE__MSG_WATCH_EVENT, 0, s->w->sh->id);
    we.index = e->index;
    we.kind = (Hw__RaftEntry__Kind)e->kind;
    we.meta = e->meta;
    env.watch_event = &we;
    nd_sconn_send(s->sc, &env, NULL, 0);
}

static void sub_pump(void *arg)
{
    struct nd_watch_sub *s = arg;
    struct nd_watch *w = s->w;
    if (s->sc->conn == NULL)
        return;
    if (s->next <= w->floor) { /* the ring lost events this stream needs */
        Hw__Envelope env;
        Hw__WatchReset r = HW__WATCH_RESET__INIT;
        cm_env_init(&env, HW__MSG_TYPE__MSG_WATCH_RESET, 0, w->sh->id);
        r.index = w->floor;
        env.watch_reset = &r;
        nd_sconn_send(s->sc, &env, NULL, 0);
        s->next = w->floor + 1;
        s->delivered = w->floor;
    }
    uint64_t end = w->start + w->count;
    for (uint64_t pos = ring_find(w, s->next); pos < end; pos++) {
        if (s->sc->conn == NULL)
            return;
        if (cm_rpc_over_high_water(s->sc->conn)) {
            s->sc->on_drain = sub_pump;
            s->sc->drain_arg = s;
            return;
        }
        const struct nd_watch_ev *e = ev_at(w, pos);
        sub_send_event(s, e);
        s->next = e->index + 1;
        s->delivered = e->index;
    }
}

/* Every event up to the returned index has been sent on s. */
static uint64_t sub_progress(struct nd_watch_sub *s)
{
    struct nd_watch *w = s->w;
    uint64_t last = w->count > 0 ? ev_at(w, w->start + w->count - 1)->index : w->floor;
    if (s->next > last) {
        uint64_t applied = nd_shard_applied(w->sh);
        return applied > s->delivered ? applied : s->delivered;
    }
    return s->delivered;
}

static void sub_free(struct nd_watch_sub *s, int peer_gone)
{
    struct nd_watch *w = s->w;
    if (s->prev != NULL)
        s->prev->nxt = s->nxt;
    else
        w->subs = s->nxt;
    if (s->nxt != NULL)
        s->nxt->prev = s->prev;
    if (s->holder != NULL)
        nd_lease_detach(&w->lease, s->holder, peer_gone);
    if (s->sc->on_drain == sub_pump)
        s->sc->on_drain = NULL;
    s->sc->watch = NULL;
    nd_sconn_unref(s->sc);
    cm_free(s);
}

void nd_watch_conn_closed(struct nd_sconn *sc)
{
    struct nd_watch_sub *s = sc->watch;
    if (s == NULL)
        return;
    struct nd_watch *w = s->w;
    sub_free(s, sc->close_status == CM_ECLOSED);
    if (w->open && !w->closing)
        settle(w); /* its lease ended: holds waiting for it may go */
}

static struct nd_watch *watch_of(struct nd_host *h, const Hw__Envelope *env)
{
    struct nd_shard *sh = nd_host_shard(h, env->shard);
    return sh != NULL ? sh->watch : NULL;
}

void nd_op_watch(void *ctx, struct nd_sconn *sc, const Hw__Envelope *env, const struct cm_slice *pl)
{
    struct nd_watch *w = watch_of(ctx, env);
    if (w == NULL || w->closing || env->watch == NULL || env->watch->session == 0 ||
        sc->watch != NULL) {
        nd_sconn_error(sc, env, HW__CODE__CODE_BAD_REQUEST,
                       "WATCH needs a session, once per connection, on a hosted shard");
        return;
    }
    struct nd_watch_sub *s = cm_calloc(1, sizeof(*s));
    struct nd_lease_holder *hd = s != NULL ? nd_lease_attach(&w->lease, env->watch->session) : NULL;
    if (hd == NULL) {
        cm_free(s);
        nd_sconn_error(sc, env, HW__CODE__CODE_INTERNAL, "out of memory");
        return;
    }
    s->w = w;
    s->sc = sc;
    sc->refs++;
    sc->watch = s;
    s->holder = hd;
    s->next = env->watch->from_index > 0 ? env->watch->from_index : 1;
    s->delivered = s->next - 1;
    s->nxt = w->subs;
    if (w->subs != NULL)
        w->subs->prev = s;
    w->subs = s;
    CM_INFO("msg=\"commit watch subscribed\" shard=%u session=%016llx from=%llu conn=%llu",
            w->sh->id, (unsigned long long)env->watch->session, (unsigned long long)s->next,
            (unsigned long long)cm_rpc_id(sc->conn));
    sub_pump(s);
}

void nd_op_watch_ack(void *ctx, struct nd_sconn *sc, const Hw__Envelope *env,
                     const struct cm_slice *pl)
{
    struct nd_watch_sub *s = sc->watch;
    if (s == NULL || env->watch_ack == NULL) {
        nd_sconn_error(sc, env, HW__CODE__CODE_BAD_REQUEST, "WATCH_ACK without WATCH");
        return;
    }
    struct nd_watch *w = s->w;
    observe(w);
    Hw__Envelope out;
    Hw__WatchGrant g = HW__WATCH_GRANT__INIT;
    uint64_t next;
    g.seq = env->watch_ack->seq;
    g.term = shard_term(w);
    g.leader_id = nd_shard_leader(w->sh);
    g.is_leader = w->lease.leading;
    g.lease_ms = nd_lease_ack(&w->lease, s->holder, env->watch_ack->applied, now_ms(w));
    if (g.leader_id != 0) /* a naming: the term's next leader asks about it (shard/lease.h) */
        nd_lease_named(s->holder, g.term, now_ms(w));
    g.safe_index = nd_lease_safe(&w->lease, nd_shard_applied(w->sh), now_ms(w), &next);
    g.applied = sub_progress(s);
    g.replicas = w->sh->raft != NULL ? w->sh->raft->configuration.n : 0;
    cm_env_init(&out, HW__MSG_TYPE__MSG_WATCH_GRANT, env->req_id, w->sh->id);
    out.watch_grant = &g;
    nd_sconn_send(sc, &out, NULL, 0);
    settle(w);
}

/* A moved safe index is news for every gateway at once (seq 0: no lease in it): a reader
 * holding a just-written version waits for it (gateway/cluster/watch.h). */
static void push_safe(struct nd_watch *w, uint64_t safe)
{
    if (safe <= w->pushed_safe)
        return;
    w->pushed_safe = safe;
    for (struct nd_watch_sub *s = w->subs; s != NULL; s = s->nxt) {
        Hw__Envelope out;
        Hw__WatchGrant g = HW__WATCH_GRANT__INIT;
        g.term = shard_term(w);
        g.leader_id = nd_shard_leader(w->sh);
        g.is_leader = 1;
        g.safe_index = safe;
        g.applied = sub_progress(s);
        cm_env_init(&out, HW__MSG_TYPE__MSG_WATCH_GRANT, 0, w->sh->id);
        out.watch_grant = &g;
        nd_sconn_send(s->sc, &out, NULL, 0);
    }
}

static void on_timer_closed(uv_handle_t *hd)
{
    struct nd_watch *w = hd->data;
    for (uint64_t i = 0; i < w->count; i++)
        ev_clear(ev_at(w, w->start + i));
    cm_free(w->ring);
    w->ring = NULL;
    nd_lease_free(&w->lease);
    w->open = 0;
    if (w->on_closed != NULL)
        w->on_closed(w->closed_arg);
}

void nd_watch_close(struct nd_watch *w, void (*on_closed)(void *arg), void *arg)
{
    if (w->closing || !w->open) {
        if (!w->open && on_closed != NULL)
            on_closed(arg);
        return;
    }
    w->closing = 1;
    w->on_closed = on_closed;
    w->closed_arg = arg;
    query_stop(w);
    holds_release(w, 0, 0);
    while (w->subs != NULL)
        sub_free(w->subs, 1);
    w->sh->watch = NULL;
    uv_close((uv_handle_t *)&w->timer, on_timer_closed);
}
