/* Leader requests with retry.
 *
 * Happy path: start -> (timer 0) attempt: address of the shard leader -> acquire -> send ->
 *   final answer -> callback -> timer closed -> freed.
 * Failures: no leader known / connect failure / NO_LEADER etc. -> wait GW_LREQ_RETRY_MS and try
 *   again; NOT_LEADER with an address -> try there at once; an attempt that got no answer at all
 *   (connect failure, silence, close: this gateway may be cut off from the leader) makes every
 *   other attempt go to a reachable follower with relay set (it forwards to the leader and
 *   relays the answer); attempt without answer for GW_LREQ_ATTEMPT_MS -> drop that connection,
 *   retry; a newer leader named while an attempt waits at the old one (checked every
 *   GW_LREQ_CHECK_MS) -> retry there at once. Deadline -> callback with a timeout outcome that
 *   says whether some attempt may have taken effect: it was sent and then got no definitive
 *   answer (connection lost, no answer, LEADERSHIP_LOST). NOT_LEADER / NO_LEADER / UNAVAILABLE
 *   are refusals: the request was not proposed.
 * Close: finish/cancel release the connection (reusable only when it answered), cancel a
 *   pending acquire and close the timer; memory is freed in the timer's close callback.
 */
#include "cluster/leader.h"

#include <string.h>

#include "alloc.h"
#include "cluster/cluster.h"
#include "err.h"
#include "frame.h"
#include "log.h"
#include "timeutil.h"
#include "cluster/upstream.h"

enum lreq_state { LR_IDLE, LR_ACQUIRING, LR_WAITING, LR_DONE };

struct gw_lreq {
    uv_loop_t *loop;
    struct gw_upstream *up;
    struct gw_cluster *cluster;
    Hw__MsgType type;
    uint32_t shard;
    uint64_t deadline;
    gw_lreq_build_fn build;
    gw_lreq_cb cb;
    void *arg;
    uv_timer_t timer;
    enum lreq_state st;
    struct gw_up_wait wait;
    struct gw_up_conn *uc;
    uint64_t req_id;
    uint64_t attempt_deadline;
    char hint[GW_ADDR_MAX];
    int uncertain; /* some attempt may have been proposed: sent, then no definitive answer */
    unsigned lost; /* attempts that got no answer at all (connect failure, silence, close) */
    int relay;     /* this attempt asks a follower to relay it to the leader */
    uint32_t to;   /* the node this attempt went to as the leader (0: a hint or a relay) */
};

static void lreq_attempt(struct gw_lreq *r);
static void on_timer(uv_timer_t *t);

static void on_closed(uv_handle_t *h)
{
    cm_free(h->data);
}

static void lreq_arm(struct gw_lreq *r, uint64_t delay)
{
    uint64_t now = cm_mono_ms();
    uint64_t left = r->deadline > now ? r->deadline - now : 0;
    uv_timer_start(&r->timer, on_timer, delay < left ? delay : left, 0);
}

static void lreq_drop_conn(struct gw_lreq *r, int reusable)
{
    if (r->uc != NULL) {
        gw_up_release(r->uc, reusable);
        r->uc = NULL;
    }
    gw_up_cancel(&r->wait);
}

static void lreq_end(struct gw_lreq *r)
{
    r->st = LR_DONE;
    uv_timer_stop(&r->timer);
    uv_close((uv_handle_t *)&r->timer, on_closed);
}

static void lreq_finish(struct gw_lreq *r, enum gw_lreq_outcome outcome, const Hw__Envelope *env,
                        int reusable)
{
    lreq_drop_conn(r, reusable);
    lreq_end(r);
    r->cb(r->arg, outcome, env);
}

/* Give up this attempt; try again after delay. */
static void lreq_retry(struct gw_lreq *r, uint64_t delay, int reusable)
{
    lreq_drop_conn(r, reusable);
    r->st = LR_IDLE;
    lreq_arm(r, delay);
}

static void on_frame(void *arg, struct gw_up_conn *uc, const Hw__Envelope *env,
                     const struct cm_slice *payload)
{
    struct gw_lreq *r = arg;
    if (env->req_id != r->req_id || r->st != LR_WAITING)
        return;
    if (env->type != HW__MSG_TYPE__MSG_ERROR) {
        lreq_finish(r, GW_LREQ_ANSWER, env, 1);
        return;
    }
    switch (env->code) {
    case HW__CODE__CODE_NOT_LEADER:
        if (env->leader_address != NULL && env->leader_address[0] != '\0' &&
            strcmp(env->leader_address, gw_up_addr(uc)) != 0) {
            snprintf(r->hint, sizeof(r->hint), "%s", env->leader_address);
            lreq_retry(r, 0, 1);
        } else {
            r->hint[0] = '\0';
            lreq_retry(r, GW_LREQ_RETRY_MS, 1);
        }
        return;
    case HW__CODE__CODE_LEADERSHIP_LOST:
        r->uncertain = 1; /* proposed, then leadership lost: it may still commit */
        /* fall through */
    case HW__CODE__CODE_NO_LEADER:
    case HW__CODE__CODE_UNAVAILABLE:
        CM_DEBUG("msg=\"leader request: retry\" node=%s code=%d", gw_up_addr(uc), (int)env->code);
        r->hint[0] = '\0';
        lreq_retry(r, GW_LREQ_RETRY_MS, 1);
        return;
    default:
        lreq_finish(r, GW_LREQ_ANSWER, env, 1);
        return;
    }
}

static void on_close(void *arg, struct gw_up_conn *uc, int status)
{
    struct gw_lreq *r = arg;
    r->lost++;
    if (r->st == LR_WAITING)
        r->uncertain = 1;
    r->uc = NULL;
    r->hint[0] = '\0';
    lreq_retry(r, GW_LREQ_RETRY_MS, 0);
}

static const struct gw_up_user lreq_user = {on_frame, on_close, NULL};

static void on_acquired(struct gw_up_wait *w, struct gw_up_conn *uc, int status)
{
    struct gw_lreq *r = gw_up_wait_arg(w);
    if (uc == NULL) {
        r->hint[0] = '\0';
        r->lost++;
        lreq_retry(r, r->lost == 1 ? 0 : GW_LREQ_RETRY_MS, 0);
        return;
    }
    r->uc = uc;
    gw_up_own(uc, &lreq_user, r);
    Hw__Envelope env;
    cm_env_init(&env, r->type, 0, r->shard);
    r->build(r->arg, &env);
    env.relay = r->relay;
    if (gw_up_send(uc, &env, NULL, 0, &r->req_id) != 0) {
        lreq_retry(r, GW_LREQ_RETRY_MS, 0);
        return;
    }
    r->st = LR_WAITING;
}

/* After an attempt at the leader got no answer at all (this gateway may be cut off from it),
 * every other attempt goes to a reachable follower, which relays it to the leader. */
static const char *relay_addr(struct gw_lreq *r)
{
    uint32_t ids[GW_MAX_REPLICAS];
    uint32_t leader = gw_cluster_leader(r->cluster, r->shard);
    size_t n = gw_cluster_replicas(r->cluster, r->shard, ids, GW_MAX_REPLICAS);
    size_t k = 0, pick = r->lost / 2;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] == leader || !gw_cluster_live(r->cluster, ids[i]))
            continue;
        if (k++ == pick % (n > 1 ? n - 1 : 1))
            return gw_cluster_addr(r->cluster, ids[i]);
    }
    return NULL;
}

static void lreq_attempt(struct gw_lreq *r)
{
    const char *addr = r->hint[0] ? r->hint : NULL;
    uint32_t leader = gw_cluster_leader(r->cluster, r->shard);
    /* The leader no longer answers this gateway (STATUS polls, commit watch): relay from the
     * first attempt. */
    int cut_off = leader != 0 && !gw_cluster_live(r->cluster, leader);
    r->relay = 0;
    r->to = 0;
    if (addr == NULL && (r->lost % 2 == 1 || cut_off) && (addr = relay_addr(r)) != NULL)
        r->relay = 1;
    if (addr == NULL) {
        addr = gw_cluster_addr(r->cluster, leader);
        r->to = leader;
    }
    if (addr == NULL) {
        r->st = LR_IDLE;
        lreq_arm(r, GW_LREQ_RETRY_MS);
        return;
    }
    r->st = LR_ACQUIRING;
    r->attempt_deadline = cm_mono_ms() + GW_LREQ_ATTEMPT_MS;
    if (gw_up_acquire(r->up, addr, &r->wait, on_acquired, r) != 0) {
        r->hint[0] = '\0';
        r->st = LR_IDLE;
        lreq_arm(r, GW_LREQ_RETRY_MS);
        return;
    }
    lreq_arm(r, GW_LREQ_CHECK_MS);
}

static void on_timer(uv_timer_t *t)
{
    struct gw_lreq *r = t->data;
    uint64_t now = cm_mono_ms();
    if (now >= r->deadline) {
        if (r->st == LR_WAITING)
            r->uncertain = 1;
        lreq_finish(r, r->uncertain ? GW_LREQ_TIMEOUT_SENT : GW_LREQ_TIMEOUT_UNSENT, NULL, 0);
        return;
    }
    if (r->st == LR_IDLE) {
        lreq_attempt(r);
        return;
    }
    if (now >= r->attempt_deadline) {
        if (r->st == LR_WAITING)
            r->uncertain = 1;
        r->hint[0] = '\0';
        r->lost++;
        lreq_retry(r, 0, 0);
        return;
    }
    /* A node named a leader of a newer term (the old one paused, cut off or died without a
     * close): go there now instead of waiting out the attempt. The retry is safe: a COMMIT is
     * idempotent by upload id, and the outcome counts as uncertain. */
    uint32_t leader = gw_cluster_leader(r->cluster, r->shard);
    if (r->to != 0 && leader != 0 && leader != r->to) {
        CM_DEBUG("msg=\"leader request: new leader\" from=%u to=%u", r->to, leader);
        if (r->st == LR_WAITING)
            r->uncertain = 1;
        r->hint[0] = '\0';
        lreq_retry(r, 0, 0);
        return;
    }
    uint64_t left = r->attempt_deadline - now;
    lreq_arm(r, left < GW_LREQ_CHECK_MS ? left : GW_LREQ_CHECK_MS);
}

int gw_lreq_start(const struct gw_lreq_via *via, Hw__MsgType type, uint32_t shard,
                  uint64_t deadline_ms, gw_lreq_build_fn build, gw_lreq_cb cb, void *arg,
                  struct gw_lreq **out)
{
    struct gw_lreq *r = cm_calloc(1, sizeof(*r));
    if (r == NULL)
        return CM_ENOMEM;
    r->loop = via->loop;
    r->up = via->up;
    r->cluster = via->cluster;
    r->type = type;
    r->shard = shard;
    r->deadline = deadline_ms;
    r->build = build;
    r->cb = cb;
    r->arg = arg;
    r->st = LR_IDLE;
    uv_timer_init(r->loop, &r->timer);
    r->timer.data = r;
    uv_timer_start(&r->timer, on_timer, 0, 0);
    *out = r;
    return 0;
}

void gw_lreq_cancel(struct gw_lreq *r)
{
    if (r == NULL || r->st == LR_DONE)
        return;
    lreq_drop_conn(r, 0);
    lreq_end(r);
}
