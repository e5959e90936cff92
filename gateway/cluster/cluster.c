/* Cluster view and STATUS poller.
 *
 * Happy path: every 100 ms tick, each target (seed or cluster-map node) not polled for
 *   GW_POLL_MS gets a STATUS through the pool; STATUS_OK updates its view (role, indexes per
 *   shard) and the cluster map (nodes, shard count, epoch); the connection goes back idle.
 * Failures: no answer within GW_POLL_TIMEOUT_MS, ERROR, or a dead connection -> the target is
 *   unreachable until it answers again; its connection is dropped, never reused.
 * Close: pending polls are cancelled / released synchronously, then the tick timer closes and
 *   the cluster frees itself in the close callback. */
#include "cluster/cluster.h"

#include <string.h>

#include "alloc.h"
#include "err.h"
#include "frame.h"
#include "log.h"
#include "cluster/pick.h"
#include "timeutil.h"

struct shard_view {
    uint32_t id;
    uint32_t replicas[GW_MAX_REPLICAS];
    size_t nreplicas;
    uint32_t leader_id;
    char role[16];
    uint64_t term, commit_index, applied_index, last_index, repair_backlog;
};

struct target {
    struct gw_cluster *cl;
    char addr[GW_ADDR_MAX];
    int seed;
    int alias; /* a seed naming a map node under another address */
    uint32_t node_id;
    /* poll */
    struct gw_up_wait wait;
    struct gw_up_conn *uc;
    int polling;
    uint64_t poll_started;
    uint64_t last_poll;
    uint64_t req_id;
    /* last answer */
    int reachable;
    int answered;
    char zone[64];
    uint32_t shard_count;
    size_t nshards;
    struct shard_view shards[GW_MAX_SHARDS];
};

struct map_node {
    uint32_t id;
    char addr[GW_ADDR_MAX];
    char zone[64];
};

struct latency {
    uint32_t id;
    double ewma_us;    /* 0 = never measured */
    uint64_t at_ms;    /* loop time of the last sample */
    unsigned inflight; /* reads of this loop the node is serving */
};

struct gw_cluster {
    uv_loop_t *loop;
    const struct gw_config *cfg;
    struct latency lat[GW_MAX_NODES];
    size_t nlat;
    struct gw_upstream *up;
    uv_timer_t tick;
    struct target *t[GW_MAX_NODES];
    size_t nt;
    struct map_node map[GW_MAX_NODES];
    size_t nmap;
    uint64_t epoch;
    uint32_t shard_count;
    int closing;
    const struct gw_live *live; /* NULL until set */
};

static const struct gw_up_user poll_user;

static struct target *target_add(struct gw_cluster *c, const char *addr, int seed)
{
    for (size_t i = 0; i < c->nt; i++) {
        if (strcmp(c->t[i]->addr, addr) == 0)
            return c->t[i];
    }
    if (c->nt == GW_MAX_NODES)
        return NULL;
    struct target *t = cm_calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->cl = c;
    t->seed = seed;
    snprintf(t->addr, sizeof(t->addr), "%s", addr);
    c->t[c->nt++] = t;
    return t;
}

static void poll_end(struct target *t, int ok)
{
    if (t->uc != NULL) {
        gw_up_release(t->uc, ok);
        t->uc = NULL;
    }
    gw_up_cancel(&t->wait);
    if (!ok && t->reachable)
        CM_WARN("msg=\"node unreachable\" node=%u addr=%s", t->node_id, t->addr);
    if (ok && !t->reachable)
        CM_INFO("msg=\"node reachable\" node=%u addr=%s", t->node_id, t->addr);
    t->polling = 0;
    t->reachable = ok;
}

static void shard_copy(struct shard_view *v, const Hw__ShardInfo *si)
{
    memset(v, 0, sizeof(*v));
    v->id = si->id;
    v->nreplicas = si->n_replicas < GW_MAX_REPLICAS ? si->n_replicas : GW_MAX_REPLICAS;
    for (size_t i = 0; i < v->nreplicas; i++)
        v->replicas[i] = si->replicas[i];
    v->leader_id = si->leader_id;
    snprintf(v->role, sizeof(v->role), "%s", si->role ? si->role : "");
    v->term = si->term;
    v->commit_index = si->commit_index;
    v->applied_index = si->applied_index;
    v->last_index = si->last_index;
    v->repair_backlog = si->repair_backlog;
}

/* Fold one node's cluster map into ours (the highest epoch wins; equal epochs merge). */
static void map_update(struct gw_cluster *c, const Hw__StatusOk *st)
{
    if (st->epoch < c->epoch || st->n_nodes == 0)
        return;
    if (st->epoch > c->epoch || c->nmap == 0) {
        c->nmap = 0;
        c->epoch = st->epoch;
    }
    if (st->shard_count > 0)
        c->shard_count = st->shard_count;
    for (size_t i = 0; i < st->n_nodes && c->nmap < GW_MAX_NODES; i++) {
        const Hw__NodeInfo *ni = st->nodes[i];
        if (ni->rpc_address == NULL || ni->rpc_address[0] == '\0')
            continue;
        struct map_node *m = NULL;
        for (size_t k = 0; k < c->nmap; k++) {
            if (c->map[k].id == ni->id)
                m = &c->map[k];
        }
        if (m == NULL) {
            m = &c->map[c->nmap++];
            m->zone[0] = '\0';
        }
        m->id = ni->id;
        snprintf(m->addr, sizeof(m->addr), "%s", ni->rpc_address);
        /* A node reports only its own zone (peers' are ""): never blank a known one. */
        if (ni->zone != NULL && ni->zone[0] != '\0')
            snprintf(m->zone, sizeof(m->zone), "%s", ni->zone);
        struct target *t = target_add(c, m->addr, 0);
        if (t != NULL && t->node_id == 0)
            t->node_id = m->id;
    }
    /* A seed that turned out to be a map node under another name stops being polled. */
    for (size_t i = 0; i < c->nt; i++) {
        struct target *t = c->t[i];
        if (!t->seed || t->node_id == 0)
            continue;
        for (size_t k = 0; k < c->nmap; k++) {
            if (c->map[k].id == t->node_id && strcmp(c->map[k].addr, t->addr) != 0)
                t->alias = 1;
        }
    }
}

static void status_apply(struct target *t, const Hw__StatusOk *st)
{
    t->node_id = st->node_id;
    snprintf(t->zone, sizeof(t->zone), "%s", st->zone ? st->zone : "");
    t->shard_count = st->shard_count;
    t->nshards = 0;
    for (size_t i = 0; i < st->n_shards && t->nshards < GW_MAX_SHARDS; i++)
        shard_copy(&t->shards[t->nshards++], st->shards[i]);
    t->answered = 1;
    map_update(t->cl, st);
}

static void poll_on_frame(void *arg, struct gw_up_conn *uc, const Hw__Envelope *env,
                          const struct cm_slice *payload)
{
    struct target *t = arg;
    if (env->req_id != t->req_id)
        return;
    if (env->type == HW__MSG_TYPE__MSG_STATUS_OK && env->status_ok != NULL) {
        status_apply(t, env->status_ok);
        poll_end(t, 1);
        return;
    }
    CM_WARN("msg=\"status poll refused\" addr=%s code=%d detail=\"%s\"", t->addr, (int)env->code,
            env->message ? env->message : "");
    poll_end(t, 0);
}

static void poll_on_close(void *arg, struct gw_up_conn *uc, int status)
{
    struct target *t = arg;
    t->uc = NULL;
    poll_end(t, 0);
}

static const struct gw_up_user poll_user = {poll_on_frame, poll_on_close, NULL};

static void poll_on_acquired(struct gw_up_wait *w, struct gw_up_conn *uc, int status)
{
    struct target *t = gw_up_wait_arg(w);
    if (uc == NULL) {
        poll_end(t, 0);
        return;
    }
    t->uc = uc;
    gw_up_own(uc, &poll_user, t);
    Hw__Envelope env;
    cm_env_init(&env, HW__MSG_TYPE__MSG_STATUS, 0, 0);
    if (gw_up_send(uc, &env, NULL, 0, &t->req_id) != 0)
        poll_end(t, 0);
}

static void poll_start(struct target *t, uint64_t now)
{
    t->polling = 1;
    t->poll_started = now;
    t->last_poll = now;
    if (gw_up_acquire(t->cl->up, t->addr, &t->wait, poll_on_acquired, t) != 0)
        poll_end(t, 0);
}

static int any_reachable(const struct gw_cluster *c)
{
    for (size_t i = 0; i < c->nt; i++) {
        if (c->t[i]->reachable && !c->t[i]->alias)
            return 1;
    }
    return 0;
}

static void on_tick(uv_timer_t *tm)
{
    struct gw_cluster *c = tm->data;
    uint64_t now = cm_mono_ms();
    int some = any_reachable(c);
    for (size_t i = 0; i < c->nt; i++) {
        struct target *t = c->t[i];
        if (t->polling && now - t->poll_started >= GW_POLL_TIMEOUT_MS) {
            poll_end(t, 0);
            continue;
        }
        if (t->alias && some)
            continue;
        if (!t->polling && now - t->last_poll >= GW_POLL_MS)
            poll_start(t, now);
    }
}

int gw_cluster_new(uv_loop_t *loop, struct gw_upstream *up, const struct gw_config *cfg,
                   struct gw_cluster **out)
{
    struct gw_cluster *c = cm_calloc(1, sizeof(*c));
    if (c == NULL)
        return CM_ENOMEM;
    c->loop = loop;
    c->cfg = cfg;
    c->up = up;
    for (size_t i = 0; i < cfg->nseeds; i++) {
        if (target_add(c, cfg->seeds[i], 1) == NULL)
            goto err_free;
    }
    uv_timer_init(loop, &c->tick);
    c->tick.data = c;
    uv_timer_start(&c->tick, on_tick, 0, 100);
    *out = c;
    return 0;

err_free:
    for (size_t i = 0; i < c->nt; i++)
        cm_free(c->t[i]);
    cm_free(c);
    return CM_ENOMEM;
}

static void on_tick_closed(uv_handle_t *h)
{
    struct gw_cluster *c = h->data;
    for (size_t i = 0; i < c->nt; i++)
        cm_free(c->t[i]);
    cm_free(c);
}

void gw_cluster_close(struct gw_cluster *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    for (size_t i = 0; i < c->nt; i++) {
        struct target *t = c->t[i];
        if (t->polling) {
            int was = t->reachable;
            poll_end(t, 0);
            t->reachable = was;
        }
    }
    uv_close((uv_handle_t *)&c->tick, on_tick_closed);
}

/* ---- read latency and load ---- */

#define GW_EWMA_ALPHA 0.2

static const struct latency *lat_find(const struct gw_cluster *c, uint32_t node_id)
{
    for (size_t i = 0; i < c->nlat; i++) {
        if (c->lat[i].id == node_id)
            return &c->lat[i];
    }
    return NULL;
}

/* node_id's slot, made on first use (NULL when the table is full). */
static struct latency *lat_of(struct gw_cluster *c, uint32_t node_id)
{
    struct latency *l = (struct latency *)lat_find(c, node_id);
    if (l != NULL || c->nlat == GW_MAX_NODES)
        return l;
    l = &c->lat[c->nlat++];
    memset(l, 0, sizeof(*l));
    l->id = node_id;
    return l;
}

void gw_cluster_note_latency(struct gw_cluster *c, uint32_t node_id, uint64_t us)
{
    struct latency *l = lat_of(c, node_id);
    if (l == NULL)
        return;
    uint64_t now = uv_now(c->loop);
    double cur = gw_pick_decayed(l->ewma_us, now - l->at_ms);
    if (l->ewma_us == 0.0)
        l->ewma_us = (double)us + 1.0; /* measured: never 0 again */
    else
        l->ewma_us = cur + GW_EWMA_ALPHA * ((double)us - cur);
    if (l->ewma_us < 1.0)
        l->ewma_us = 1.0;
    l->at_ms = now;
}

void gw_cluster_read_begin(struct gw_cluster *c, uint32_t node_id)
{
    struct latency *l = lat_of(c, node_id);
    if (l != NULL)
        l->inflight++;
}

void gw_cluster_read_end(struct gw_cluster *c, uint32_t node_id)
{
    struct latency *l = lat_of(c, node_id);
    if (l != NULL && l->inflight > 0)
        l->inflight--;
}

void gw_cluster_read_load(const struct gw_cluster *c, uint32_t node_id, double *ewma_us,
                          unsigned *inflight)
{
    const struct latency *l = lat_find(c, node_id);
    *ewma_us = l != NULL ? gw_pick_decayed(l->ewma_us, uv_now(c->loop) - l->at_ms) : 0.0;
    *inflight = l != NULL ? l->inflight : 0;
}

/* ---- queries ---- */

static const struct target *target_of(const struct gw_cluster *c, uint32_t id)
{
    const char *addr = gw_cluster_addr(c, id);
    for (size_t i = 0; i < c->nt; i++) {
        const struct target *t = c->t[i];
        if (addr != NULL && strcmp(t->addr, addr) == 0)
            return t;
    }
    for (size_t i = 0; i < c->nt; i++) {
        if (c->t[i]->node_id == id && !c->t[i]->alias)
            return c->t[i];
    }
    return NULL;
}

static const struct shard_view *view_of(const struct target *t, uint32_t shard)
{
    if (t == NULL || !t->answered)
        return NULL;
    for (size_t i = 0; i < t->nshards; i++) {
        if (t->shards[i].id == shard)
            return &t->shards[i];
    }
    return NULL;
}

uint32_t gw_cluster_shard_count(const struct gw_cluster *c)
{
    return c->shard_count;
}

size_t gw_cluster_replicas(const struct gw_cluster *c, uint32_t shard, uint32_t *ids, size_t max)
{
    const struct shard_view *best = NULL;
    for (size_t i = 0; i < c->nt; i++) {
        const struct shard_view *v = view_of(c->t[i], shard);
        if (v != NULL && v->nreplicas > 0 && (best == NULL || v->term > best->term))
            best = v;
    }
    size_t n = 0;
    if (best != NULL) {
        for (size_t i = 0; i < best->nreplicas && n < max; i++)
            ids[n++] = best->replicas[i];
        return n;
    }
    for (size_t i = 0; i < c->nmap && n < max; i++)
        ids[n++] = c->map[i].id;
    return n;
}

/* ---- liveness from the commit watch ---- */

static int live_slot(const struct gw_live *l, uint32_t node_id)
{
    for (int i = 0; i < GW_LIVE_SLOTS; i++)
        if (atomic_load(&l->id[i]) == node_id)
            return i;
    return -1;
}

void gw_live_heard(struct gw_live *l, uint32_t node_id, uint64_t now_ms)
{
    if (node_id == 0)
        return;
    int i = live_slot(l, node_id);
    for (int k = 0; i < 0 && k < GW_LIVE_SLOTS; k++) {
        if (atomic_load(&l->id[k]) == 0) {
            atomic_store(&l->heard_ms[k], now_ms); /* before the id: no reader sees it at 0 */
            atomic_store(&l->id[k], node_id);
            return;
        }
    }
    if (i >= 0)
        atomic_store(&l->heard_ms[i], now_ms);
}

void gw_live_leader(struct gw_live *l, uint64_t term, uint32_t leader)
{
    if (leader == 0 || term <= atomic_load(&l->term))
        return;
    atomic_fetch_add(&l->gen, 1);
    atomic_store(&l->term, term);
    atomic_store(&l->leader, leader);
    atomic_fetch_add(&l->gen, 1);
}

/* The watch's leader and its term, consistent (a seqlock: one writer). */
static uint32_t live_leader(const struct gw_live *l, uint64_t *term)
{
    for (;;) {
        uint64_t g = atomic_load(&l->gen);
        uint64_t t = atomic_load(&l->term);
        uint32_t id = (uint32_t)atomic_load(&l->leader);
        if ((g & 1) == 0 && atomic_load(&l->gen) == g) {
            *term = t;
            return id;
        }
    }
}

int gw_live_silent(const struct gw_live *l, uint32_t node_id)
{
    int i = live_slot(l, node_id);
    if (i < 0)
        return 0;
    uint64_t heard = atomic_load(&l->heard_ms[i]);
    uint64_t acked = atomic_load(&l->acked_ms);
    return acked > heard + GW_LIVE_SILENT_MS;
}

void gw_cluster_set_live(struct gw_cluster *c, const struct gw_live *live)
{
    c->live = live;
}

int gw_cluster_live(const struct gw_cluster *c, uint32_t node_id)
{
    return gw_cluster_reachable(c, node_id) &&
           (c->live == NULL || !gw_live_silent(c->live, node_id));
}

uint32_t gw_cluster_leader(const struct gw_cluster *c, uint32_t shard)
{
    uint32_t leader = 0;
    uint64_t best_term = 0;
    int best_self = 0;
    for (size_t i = 0; i < c->nt; i++) {
        const struct target *t = c->t[i];
        const struct shard_view *v = view_of(t, shard);
        if (v == NULL || !t->reachable)
            continue;
        int self = strcmp(v->role, "leader") == 0;
        uint32_t id = self ? t->node_id : v->leader_id;
        if (id == 0)
            continue;
        if (leader == 0 || v->term > best_term || (v->term == best_term && self && !best_self)) {
            leader = id;
            best_term = v->term;
            best_self = self;
        }
    }
    /* A node named a leader of a newer term on the commit watch than any poll did. */
    uint64_t wterm = 0;
    uint32_t wleader = c->live != NULL && shard == 0 ? live_leader(c->live, &wterm) : 0;
    if (wleader != 0 && wterm > best_term && target_of(c, wleader) != NULL)
        return wleader;
    /* The named leader says otherwise (e.g. it became a candidate): no leader right now. */
    const struct target *lt = leader ? target_of(c, leader) : NULL;
    const struct shard_view *lv = lt && lt->reachable ? view_of(lt, shard) : NULL;
    if (lv != NULL && strcmp(lv->role, "leader") != 0 && lv->term >= best_term)
        return 0;
    return leader;
}

const char *gw_cluster_addr(const struct gw_cluster *c, uint32_t node_id)
{
    if (node_id == 0)
        return NULL;
    for (size_t i = 0; i < c->nmap; i++) {
        if (c->map[i].id == node_id)
            return c->map[i].addr;
    }
    for (size_t i = 0; i < c->nt; i++) {
        if (c->t[i]->node_id == node_id)
            return c->t[i]->addr;
    }
    return NULL;
}

int gw_cluster_reachable(const struct gw_cluster *c, uint32_t node_id)
{
    const struct target *t = target_of(c, node_id);
    return t != NULL && t->reachable;
}

/* The zone a node reports in its own STATUS, else what another node's map said. */
const char *gw_cluster_zone(const struct gw_cluster *c, uint32_t node_id)
{
    const struct target *t = target_of(c, node_id);
    if (t != NULL && t->answered)
        return t->zone;
    for (size_t i = 0; i < c->nmap; i++) {
        if (c->map[i].id == node_id)
            return c->map[i].zone;
    }
    return NULL;
}

const char *gw_cluster_seed(const struct gw_cluster *c, size_t i)
{
    return i < c->nt ? c->t[i]->addr : NULL;
}

static size_t count_nodes(const struct gw_cluster *c, size_t *reachable)
{
    size_t n = 0;
    *reachable = 0;
    if (c->nmap > 0) {
        for (size_t i = 0; i < c->nmap; i++) {
            n++;
            if (gw_cluster_reachable(c, c->map[i].id))
                (*reachable)++;
        }
        return n;
    }
    for (size_t i = 0; i < c->nt; i++) {
        n++;
        if (c->t[i]->reachable)
            (*reachable)++;
    }
    return n;
}

static int cluster_quorum(const struct gw_cluster *c)
{
    size_t reach;
    size_t n = count_nodes(c, &reach);
    uint32_t leader = gw_cluster_leader(c, 0);
    return n > 0 && reach >= n / 2 + 1 && leader != 0 && gw_cluster_reachable(c, leader);
}

int gw_cluster_ready(const struct gw_cluster *c)
{
    return cluster_quorum(c);
}

static void node_json(const struct gw_cluster *c, struct cm_sbuf *o, uint32_t id, const char *addr,
                      const char *zone, const struct target *t, const struct shard_view *lv)
{
    const struct shard_view *v = t && t->reachable ? view_of(t, 0) : NULL;
    if (v == NULL && t != NULL && t->reachable && t->nshards > 0)
        v = &t->shards[0];
    cm_sbuf_printf(o, "{\"id\":%u,\"address\":", id);
    cm_sbuf_json_str(o, addr);
    cm_sbuf_puts(o, ",\"zone\":");
    cm_sbuf_json_str(o, zone);
    cm_sbuf_puts(o, ",\"role\":");
    cm_sbuf_json_str(o, v ? v->role : "unreachable");
    if (v != NULL) {
        cm_sbuf_printf(o,
                       ",\"term\":%llu,\"commit_index\":%llu,\"applied_index\":%llu,"
                       "\"last_index\":%llu",
                       (unsigned long long)v->term, (unsigned long long)v->commit_index,
                       (unsigned long long)v->applied_index, (unsigned long long)v->last_index);
        if (lv != NULL)
            cm_sbuf_printf(o, ",\"lag\":%llu",
                           (unsigned long long)(lv->applied_index > v->applied_index
                                                    ? lv->applied_index - v->applied_index
                                                    : 0));
        else
            cm_sbuf_puts(o, ",\"lag\":null");
        cm_sbuf_printf(o, ",\"repair_backlog\":%llu", (unsigned long long)v->repair_backlog);
    } else {
        cm_sbuf_puts(o, ",\"term\":null,\"commit_index\":null,\"applied_index\":null,"
                        "\"last_index\":null,\"lag\":null,\"repair_backlog\":null");
    }
    cm_sbuf_printf(o, ",\"reachable\":%s}", t && t->reachable ? "true" : "false");
}

void gw_cluster_status_json(const struct gw_cluster *c, const char *more, struct cm_sbuf *o)
{
    /* A leader this gateway cannot reach is reported as unknown (null). */
    uint32_t leader = gw_cluster_leader(c, 0);
    const struct target *lt = leader ? target_of(c, leader) : NULL;
    const struct shard_view *lv = lt && lt->reachable ? view_of(lt, 0) : NULL;
    if (lt == NULL || !lt->reachable)
        leader = 0;
    cm_sbuf_printf(o, "{\"quorum\":%s,\"leader\":", cluster_quorum(c) ? "true" : "false");
    if (leader)
        cm_sbuf_printf(o, "%u", leader);
    else
        cm_sbuf_puts(o, "null");
    cm_sbuf_printf(o, ",\"shards\":%u,\"epoch\":%llu,\"nodes\":[", c->shard_count,
                   (unsigned long long)c->epoch);
    if (c->nmap > 0) {
        for (size_t i = 0; i < c->nmap; i++) {
            const struct map_node *m = &c->map[i];
            if (i > 0)
                cm_sbuf_puts(o, ",");
            node_json(c, o, m->id, m->addr, gw_cluster_zone(c, m->id), target_of(c, m->id), lv);
        }
    } else {
        for (size_t i = 0; i < c->nt; i++) {
            const struct target *t = c->t[i];
            if (i > 0)
                cm_sbuf_puts(o, ",");
            node_json(c, o, t->node_id, t->addr, t->zone, t, lv);
        }
    }
    cm_sbuf_puts(o, "]");
    if (more != NULL)
        cm_sbuf_puts(o, more);
    cm_sbuf_puts(o, "}\n");
}
