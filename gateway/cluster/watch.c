/* Commit watch client and read lease (see watch.h).
 *
 * Tick (GW_WATCH_ACK_MS): connect the nodes of the shard that have no stream yet (pooled
 *   connection, owned for good: WATCH {session, from = applied + 1}), then send WATCH_ACK
 *   {seq, applied} on every open stream and remember when seq left.
 * Frames: WATCH_EVENT -> invalidate + advance; WATCH_RESET -> drop all + jump; WATCH_GRANT ->
 *   the stream's progress advances applied; the grants of one seq decide the lease.
 * Close of a stream: the lease ends; the source retries on a later tick. */
#include "cluster/watch.h"

#include <string.h>

#include "alloc.h"
#include "err.h"
#include "frame.h"
#include "log.h"
#include "timeutil.h"

#define GW_WATCH_SLOTS 64u
#define GW_WATCH_RETRY_MS 200u

struct gw_watch;

struct gw_wsrc {
    struct gw_watch *w;
    uint32_t node_id;
    char addr[GW_ADDR_MAX];
    struct gw_up_wait wait;
    struct gw_up_conn *uc; /* owned while open */
    int connecting;
    uint64_t retry_at;
};

/* The grants received for one seq. */
struct gw_wgrant {
    uint32_t from, leader;
    uint64_t term;
    uint32_t lease_ms; /* > 0: from the leader itself */
    uint32_t replicas;
};
struct gw_wslot {
    uint64_t seq;
    uint64_t sent_ms;
    unsigned n;
    int used; /* a lease was taken from it */
    struct gw_wgrant g[GW_MAX_REPLICAS];
};

struct gw_watch {
    struct gw_upstream *up;
    struct gw_cluster *cl;
    struct gw_coh *coh;
    struct gw_watch_hooks hooks;
    uint64_t session;
    uint64_t seq;
    uint64_t max_term;
    struct gw_wsrc src[GW_MAX_REPLICAS];
    size_t nsrc;
    struct gw_wslot slots[GW_WATCH_SLOTS];
    uv_timer_t timer;
    uv_timer_t kick; /* an ack right after events were processed */
    int stopping, kicked, handles;
};

static const struct gw_up_user src_user;

static void advance(struct gw_watch *w, uint64_t index)
{
    if (index > atomic_load(&w->coh->applied))
        atomic_store(&w->coh->applied, index);
}

static void on_kick(uv_timer_t *t);

static void on_event(struct gw_watch *w, const Hw__WatchEvent *e)
{
    if (e->index <= atomic_load(&w->coh->applied))
        return; /* another stream delivered it */
    if (e->meta != NULL && e->meta->key != NULL && w->hooks.on_invalidate != NULL)
        w->hooks.on_invalidate(w->hooks.arg, e->meta->key, e->index);
    atomic_fetch_add(&w->coh->events, 1);
    advance(w, e->index); /* after the invalidation: a reader who sees it finds no stale copy */
    if (e->meta != NULL && e->meta->key != NULL && w->hooks.on_applied != NULL)
        w->hooks.on_applied(w->hooks.arg, e->meta->key, e->index);
    if (!w->kicked && !w->stopping) { /* the leader holds the write's answer for this ack */
        w->kicked = 1;
        uv_timer_start(&w->kick, on_kick, 0, 0);
    }
}

static void on_reset(struct gw_watch *w, const Hw__WatchReset *r, struct gw_wsrc *s)
{
    uint64_t applied = atomic_load(&w->coh->applied);
    if (r->index <= applied)
        return;
    if (applied == 0) /* a gateway that just started: it knows nothing to drop */
        CM_INFO("msg=\"commit watch: starting\" node=%u from=%llu", s->node_id,
                (unsigned long long)r->index);
    else
        CM_WARN("msg=\"commit watch: events missed, dropping the cache\" node=%u from=%llu "
                "to=%llu",
                s->node_id, (unsigned long long)applied, (unsigned long long)r->index);
    if (w->hooks.on_reset != NULL)
        w->hooks.on_reset(w->hooks.arg, r->index);
    atomic_fetch_add(&w->coh->resets, 1);
    advance(w, r->index);
    if (w->hooks.on_applied != NULL)
        w->hooks.on_applied(w->hooks.arg, NULL, r->index);
}

static unsigned majority(unsigned replicas)
{
    return replicas / 2 + 1;
}

/* A lease from slot sl when its leader granted one and a majority named the same term and
 * leader (watch.h). */
static void slot_decide(struct gw_watch *w, struct gw_wslot *sl)
{
    const struct gw_wgrant *lg = NULL;
    for (unsigned i = 0; i < sl->n && lg == NULL; i++)
        if (sl->g[i].lease_ms > 0 && sl->g[i].from == sl->g[i].leader)
            lg = &sl->g[i];
    if (lg == NULL || sl->used || lg->replicas == 0 || lg->term < w->max_term)
        return;
    unsigned same = 0;
    for (unsigned i = 0; i < sl->n; i++)
        if (sl->g[i].term == lg->term && sl->g[i].leader == lg->leader)
            same++;
    if (same < majority(lg->replicas))
        return;
    sl->used = 1;
    uint64_t until = sl->sent_ms + lg->lease_ms;
    until = until > GW_LEASE_MARGIN_MS ? until - GW_LEASE_MARGIN_MS : 0;
    if (until > atomic_load(&w->coh->lease_until))
        atomic_store(&w->coh->lease_until, until);
    atomic_store(&w->coh->term, lg->term);
}

static void on_grant(struct gw_watch *w, struct gw_wsrc *s, const Hw__WatchGrant *g)
{
    advance(w, g->applied);
    if (g->term > w->max_term)
        w->max_term = g->term;
    gw_live_leader(&w->coh->live, g->term, g->leader_id);
    if (g->is_leader)
        gw_coh_note_safe(w->coh, g->safe_index);
    struct gw_wslot *sl = &w->slots[g->seq % GW_WATCH_SLOTS];
    if (g->seq == 0 || sl->seq != g->seq || sl->n == GW_MAX_REPLICAS || g->leader_id == 0)
        return; /* news of the safe index only, a grant for an old ack, or no leader known */
    struct gw_wgrant *x = &sl->g[sl->n++];
    x->from = s->node_id;
    x->leader = g->leader_id;
    x->term = g->term;
    x->lease_ms = g->is_leader && g->leader_id == s->node_id ? g->lease_ms : 0;
    x->replicas = g->replicas;
    slot_decide(w, sl);
}

/* ---- streams ---- */

static void src_close(struct gw_wsrc *s, const char *why)
{
    struct gw_watch *w = s->w;
    if (s->uc != NULL) {
        CM_INFO("msg=\"commit watch stream closed\" node=%u addr=%s why=\"%s\"", s->node_id,
                s->addr, why);
        gw_up_release(s->uc, 0);
        s->uc = NULL;
    }
    /* The node sees the close as the end of this session's lease (the leader) or forgets what
     * it named to it (a replica a new leader asks): stop using the lease first. */
    atomic_store(&w->coh->lease_until, 0);
    s->retry_at = cm_mono_ms() + GW_WATCH_RETRY_MS;
}

static void src_on_frame(void *arg, struct gw_up_conn *uc, const Hw__Envelope *env,
                         const struct cm_slice *payload)
{
    struct gw_wsrc *s = arg;
    struct gw_watch *w = s->w;
    gw_live_heard(&w->coh->live, s->node_id, cm_mono_ms());
    if (env->type == HW__MSG_TYPE__MSG_WATCH_EVENT && env->watch_event != NULL)
        on_event(w, env->watch_event);
    else if (env->type == HW__MSG_TYPE__MSG_WATCH_GRANT && env->watch_grant != NULL)
        on_grant(w, s, env->watch_grant);
    else if (env->type == HW__MSG_TYPE__MSG_WATCH_RESET && env->watch_reset != NULL)
        on_reset(w, env->watch_reset, s);
    else
        src_close(s, env->type == HW__MSG_TYPE__MSG_ERROR && env->message ? env->message
                                                                          : "unexpected frame");
}

static void src_on_close(void *arg, struct gw_up_conn *uc, int status)
{
    struct gw_wsrc *s = arg;
    s->uc = NULL; /* gone: nothing to release */
    src_close(s, cm_strerror(status));
}

static const struct gw_up_user src_user = {src_on_frame, src_on_close, NULL};

static void src_on_acquired(struct gw_up_wait *wt, struct gw_up_conn *uc, int status)
{
    struct gw_wsrc *s = gw_up_wait_arg(wt);
    struct gw_watch *w = s->w;
    s->connecting = 0;
    if (uc == NULL) {
        s->retry_at = cm_mono_ms() + GW_WATCH_RETRY_MS;
        return;
    }
    if (w->stopping) {
        gw_up_release(uc, 0);
        return;
    }
    s->uc = uc;
    gw_up_own(uc, &src_user, s);
    Hw__Envelope env;
    Hw__Watch wr = HW__WATCH__INIT;
    cm_env_init(&env, HW__MSG_TYPE__MSG_WATCH, 0, 0);
    wr.session = w->session;
    wr.from_index = atomic_load(&w->coh->applied) + 1;
    env.watch = &wr;
    if (gw_up_send(uc, &env, NULL, 0, NULL) != 0)
        src_close(s, "send failed");
}

static struct gw_wsrc *src_of(struct gw_watch *w, uint32_t id, const char *addr)
{
    for (size_t i = 0; i < w->nsrc; i++)
        if (w->src[i].node_id == id) {
            if (strcmp(w->src[i].addr, addr) != 0 && w->src[i].uc == NULL && !w->src[i].connecting)
                snprintf(w->src[i].addr, sizeof(w->src[i].addr), "%s", addr);
            return &w->src[i];
        }
    if (w->nsrc == GW_MAX_REPLICAS)
        return NULL;
    struct gw_wsrc *s = &w->src[w->nsrc++];
    memset(s, 0, sizeof(*s));
    s->w = w;
    s->node_id = id;
    snprintf(s->addr, sizeof(s->addr), "%s", addr);
    return s;
}

static void connect_missing(struct gw_watch *w, uint64_t now)
{
    uint32_t ids[GW_MAX_REPLICAS];
    size_t n = gw_cluster_replicas(w->cl, 0, ids, GW_MAX_REPLICAS);
    for (size_t i = 0; i < n; i++) {
        const char *addr = gw_cluster_addr(w->cl, ids[i]);
        struct gw_wsrc *s = addr != NULL ? src_of(w, ids[i], addr) : NULL;
        if (s == NULL || s->uc != NULL || s->connecting || now < s->retry_at)
            continue;
        s->connecting = 1;
        if (gw_up_acquire(w->up, s->addr, &s->wait, src_on_acquired, s) != 0) {
            s->connecting = 0;
            s->retry_at = now + GW_WATCH_RETRY_MS;
        }
    }
}

static void send_acks(struct gw_watch *w, uint64_t now)
{
    uint64_t seq = ++w->seq;
    struct gw_wslot *sl = &w->slots[seq % GW_WATCH_SLOTS];
    memset(sl, 0, sizeof(*sl));
    sl->seq = seq;
    sl->sent_ms = now;
    Hw__Envelope env;
    Hw__WatchAck ack = HW__WATCH_ACK__INIT;
    ack.seq = seq;
    ack.applied = atomic_load(&w->coh->applied);
    atomic_store(&w->coh->live.acked_ms, now);
    for (size_t i = 0; i < w->nsrc; i++) {
        struct gw_wsrc *s = &w->src[i];
        if (s->uc == NULL)
            continue;
        cm_env_init(&env, HW__MSG_TYPE__MSG_WATCH_ACK, 0, 0);
        env.watch_ack = &ack;
        if (gw_up_send(s->uc, &env, NULL, 0, NULL) != 0)
            src_close(s, "send failed");
    }
}

static void on_tick(uv_timer_t *t)
{
    struct gw_watch *w = t->data;
    uint64_t now = cm_mono_ms();
    connect_missing(w, now);
    send_acks(w, now);
}

static void on_kick(uv_timer_t *t)
{
    struct gw_watch *w = t->data;
    w->kicked = 0;
    send_acks(w, cm_mono_ms());
}

int gw_watch_start(uv_loop_t *loop, struct gw_upstream *up, struct gw_cluster *cl,
                   struct gw_coh *coh, const struct gw_watch_hooks *hooks, struct gw_watch **out)
{
    struct gw_watch *w = cm_calloc(1, sizeof(*w));
    if (w == NULL)
        return CM_ENOMEM;
    w->up = up;
    w->cl = cl;
    w->coh = coh;
    w->hooks = *hooks;
    if (uv_random(NULL, NULL, &w->session, sizeof(w->session), 0, NULL) != 0 || w->session == 0)
        w->session = uv_hrtime() | 1u;
    uv_timer_init(loop, &w->timer);
    w->timer.data = w;
    uv_timer_init(loop, &w->kick);
    w->kick.data = w;
    w->handles = 2;
    uv_timer_start(&w->timer, on_tick, 0, GW_WATCH_ACK_MS);
    CM_INFO("msg=\"commit watch started\" session=%016llx", (unsigned long long)w->session);
    *out = w;
    return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    struct gw_watch *w = h->data;
    if (--w->handles == 0)
        cm_free(w);
}

void gw_watch_stop(struct gw_watch *w)
{
    if (w == NULL || w->stopping)
        return;
    w->stopping = 1;
    atomic_store(&w->coh->lease_until, 0);
    for (size_t i = 0; i < w->nsrc; i++) {
        struct gw_wsrc *s = &w->src[i];
        if (s->connecting)
            gw_up_cancel(&s->wait);
        s->connecting = 0;
        if (s->uc != NULL)
            gw_up_release(s->uc, 0);
        s->uc = NULL;
    }
    uv_close((uv_handle_t *)&w->timer, on_timer_closed);
    uv_close((uv_handle_t *)&w->kick, on_timer_closed);
}
