/* Read path (GET/HEAD) and DELETE.
 *
 * Happy path (GET): candidates = the shard's replicas, reachable ones first -> acquire -> GET
 *   -> first DATA frame: status line + headers from its meta -> every DATA payload is written
 *   to the client as a slice of the node connection's read buffer (no copy) -> eof -> done,
 *   the node connection goes back to the pool. HEAD: HEAD -> HEAD_OK -> headers only.
 * Back-pressure: client write queue over GW_CONN_HIGH_WATER -> pause the node connection;
 *   resume on the client's drain.
 * Failures: NOT_FOUND -> 404. Other errors, a lost connection or no frame within
 *   GW_GET_FIRST_MS -> next candidate; none left -> 503. After the headers went out a failure
 *   can only cut the client connection.
 * Close: get_end releases the node connection (reusable only after a complete answer), cancels
 *   a pending acquire and closes the timer; memory goes in the timer's close callback. */
#include "get.h"

#include <string.h>

#include "alloc.h"
#include "cluster.h"
#include "err.h"
#include "frame.h"
#include "key.h"
#include "leader.h"
#include "log.h"
#include "timeutil.h"
#include "upstream.h"

#define GW_GET_CANDIDATES 16

struct gw_get {
    struct gw_ctx *ctx;
    struct gw_conn *conn; /* NULL once answered or aborted */
    char key[GW_KEY_MAX + 1];
    int head;
    uint32_t shard;
    char cand[GW_GET_CANDIDATES][GW_ADDR_MAX];
    size_t ncand, idx;
    struct gw_up_wait wait;
    struct gw_up_conn *uc;
    uint64_t req_id;
    int headers_sent;
    int paused;
    int done;
    uint64_t size, written;
    uv_timer_t timer;
    char last_err[128];
};

static void get_attempt(struct gw_get *g);
static void on_timer(uv_timer_t *t);

static void on_timer_closed(uv_handle_t *h)
{
    cm_free(h->data);
}

static void get_end(struct gw_get *g, int reusable)
{
    if (g->done)
        return;
    g->done = 1;
    gw_up_cancel(&g->wait);
    if (g->uc != NULL)
        gw_up_release(g->uc, reusable);
    g->uc = NULL;
    uv_close((uv_handle_t *)&g->timer, on_timer_closed);
}

static void get_fail(struct gw_get *g, int status, const char *code, const char *msg)
{
    struct gw_conn *c = g->conn;
    g->conn = NULL;
    get_end(g, 0);
    if (c != NULL)
        gw_conn_error(c, status, code, msg, GW_COMMITTED_OMIT);
}

/* This replica did not answer usefully: try the next one (or give up). */
static void attempt_fail(struct gw_get *g, const char *why, int reusable)
{
    snprintf(g->last_err, sizeof(g->last_err), "%s: %s", g->cand[g->idx], why);
    CM_DEBUG("msg=\"read attempt failed\" key=\"%s\" %s", g->key, g->last_err);
    if (g->headers_sent) {
        get_fail(g, 502, "unavailable", g->last_err);
        return;
    }
    if (g->uc != NULL)
        gw_up_release(g->uc, reusable);
    g->uc = NULL;
    g->idx++;
    if (g->idx >= g->ncand) {
        get_fail(g, 503, "unavailable", g->last_err);
        return;
    }
    get_attempt(g);
}

static void write_head(struct gw_get *g, const Hw__ObjectMeta *m)
{
    char date[40];
    struct cm_sbuf h;
    cm_sbuf_init(&h);
    gw_http_date(m->created_ms, date, sizeof(date));
    cm_sbuf_printf(&h, "Content-Type: %s\r\nContent-Length: %llu\r\nETag: \"%llx\"\r\n",
                   m->content_type && m->content_type[0] ? m->content_type
                                                         : "application/octet-stream",
                   (unsigned long long)m->size, (unsigned long long)m->version);
    cm_sbuf_printf(&h, "Last-Modified: %s\r\n", date);
    if (m->cache_control != NULL && m->cache_control[0] != '\0')
        cm_sbuf_printf(&h, "Cache-Control: %s\r\n", m->cache_control);
    g->size = m->size;
    g->headers_sent = 1;
    gw_conn_write_head(g->conn, 200, h.p ? h.p : "", h.len);
    cm_sbuf_free(&h);
}

static void get_complete(struct gw_get *g)
{
    struct gw_conn *c = g->conn;
    g->conn = NULL;
    get_end(g, 1);
    if (c != NULL)
        gw_conn_done(c);
}

static void on_data(struct gw_get *g, const Hw__Envelope *env, const struct cm_slice *payload)
{
    const Hw__Data *d = env->data;
    if (!g->headers_sent) {
        if (d->meta == NULL) {
            attempt_fail(g, "first DATA frame without meta", 0);
            return;
        }
        write_head(g, d->meta);
    }
    if (payload->len > 0) {
        if (g->written + payload->len > g->size) {
            get_fail(g, 502, "unavailable", "node sent more bytes than the object size");
            return;
        }
        gw_conn_write_body(g->conn, payload, 1);
        g->written += payload->len;
    }
    if (d->eof) {
        if (g->written != g->size)
            get_fail(g, 502, "unavailable", "node ended the object early");
        else
            get_complete(g);
        return;
    }
    if (gw_conn_write_queue(g->conn) > GW_CONN_HIGH_WATER && !g->paused) {
        g->paused = 1;
        gw_up_pause(g->uc);
        uv_timer_stop(&g->timer);
        return;
    }
    uv_timer_start(&g->timer, on_timer, GW_GET_IDLE_MS, 0);
}

static void up_on_frame(void *arg, struct gw_up_conn *uc, const Hw__Envelope *env,
                        const struct cm_slice *payload)
{
    struct gw_get *g = arg;
    if (env->req_id != g->req_id || g->done)
        return;
    if (env->type == HW__MSG_TYPE__MSG_DATA && env->data != NULL && !g->head) {
        on_data(g, env, payload);
    } else if (env->type == HW__MSG_TYPE__MSG_HEAD_OK && env->head_ok != NULL &&
               env->head_ok->meta != NULL && g->head) {
        write_head(g, env->head_ok->meta);
        get_complete(g);
    } else if (env->type == HW__MSG_TYPE__MSG_ERROR && env->code == HW__CODE__CODE_NOT_FOUND &&
               !g->headers_sent) {
        struct gw_conn *c = g->conn;
        g->conn = NULL;
        get_end(g, 1);
        if (c != NULL)
            gw_conn_error(c, 404, "not_found", "no such object", GW_COMMITTED_OMIT);
    } else if (env->type == HW__MSG_TYPE__MSG_ERROR) {
        char why[96];
        snprintf(why, sizeof(why), "node error code=%d %s", (int)env->code,
                 env->message ? env->message : "");
        attempt_fail(g, why, 1);
    } else {
        attempt_fail(g, "unexpected answer", 0);
    }
}

static void up_on_close(void *arg, struct gw_up_conn *uc, int status)
{
    struct gw_get *g = arg;
    g->uc = NULL;
    attempt_fail(g, "connection lost", 0);
}

static const struct gw_up_user get_user = {up_on_frame, up_on_close, NULL};

static void on_timer(uv_timer_t *t)
{
    struct gw_get *g = t->data;
    gw_up_cancel(&g->wait);
    attempt_fail(g, "no answer in time", 0);
}

static void on_acquired(struct gw_up_wait *w, struct gw_up_conn *uc, int status)
{
    struct gw_get *g = gw_up_wait_arg(w);
    if (uc == NULL) {
        attempt_fail(g, cm_strerror(status), 0);
        return;
    }
    g->uc = uc;
    gw_up_own(uc, &get_user, g);
    Hw__Envelope env;
    Hw__Get get = HW__GET__INIT;
    Hw__Head head = HW__HEAD__INIT;
    if (g->head) {
        cm_env_init(&env, HW__MSG_TYPE__MSG_HEAD, 0, g->shard);
        head.key = g->key;
        env.head = &head;
    } else {
        cm_env_init(&env, HW__MSG_TYPE__MSG_GET, 0, g->shard);
        get.key = g->key;
        env.get = &get;
    }
    if (gw_up_send(uc, &env, NULL, 0, &g->req_id) != 0)
        attempt_fail(g, "send failed", 0);
}

static void get_attempt(struct gw_get *g)
{
    uv_timer_start(&g->timer, on_timer, GW_GET_FIRST_MS, 0);
    if (gw_up_acquire(g->ctx->up, g->cand[g->idx], &g->wait, on_acquired, g) != 0) {
        uv_timer_stop(&g->timer);
        /* Never call back from inside the starting call: fail the attempt from the loop. */
        uv_timer_start(&g->timer, on_timer, 0, 0);
    }
}

static void h_body(void *h, const struct cm_slice *piece)
{
}

static void h_nop(void *h)
{
}

static void h_drain(void *h)
{
    struct gw_get *g = h;
    if (g->paused && g->uc != NULL) {
        g->paused = 0;
        gw_up_resume(g->uc);
        uv_timer_start(&g->timer, on_timer, GW_GET_IDLE_MS, 0);
    }
}

static void h_abort(void *h)
{
    struct gw_get *g = h;
    g->conn = NULL;
    get_end(g, 0);
}

static const struct gw_handler_ops get_ops = {h_body, h_nop, h_nop, h_drain, h_abort};

static void add_candidate(struct gw_get *g, const char *addr)
{
    if (addr == NULL || g->ncand == GW_GET_CANDIDATES)
        return;
    for (size_t i = 0; i < g->ncand; i++) {
        if (strcmp(g->cand[i], addr) == 0)
            return;
    }
    snprintf(g->cand[g->ncand++], GW_ADDR_MAX, "%s", addr);
}

/* Order: the shard leader (it applied every write this gateway acknowledged, so a client reads
 * its own writes), then reachable replicas in this gateway's zone, then other reachable ones,
 * then the rest (the last poll may be stale); seeds when no map is known yet. */
static void get_candidates(struct gw_get *g)
{
    struct gw_cluster *cl = g->ctx->cluster;
    const char *zone = g->ctx->cfg->zone;
    uint32_t ids[GW_MAX_REPLICAS];
    size_t n = gw_cluster_replicas(cl, g->shard, ids, GW_MAX_REPLICAS);
    uint32_t leader = gw_cluster_leader(cl, g->shard);
    if (leader != 0 && gw_cluster_reachable(cl, leader))
        add_candidate(g, gw_cluster_addr(cl, leader));
    for (int pass = 0; pass < 3; pass++) {
        for (size_t i = 0; i < n; i++) {
            int reach = gw_cluster_reachable(cl, ids[i]);
            const char *z = gw_cluster_zone(cl, ids[i]);
            int same_zone = zone != NULL && zone[0] != '\0' && z != NULL && strcmp(z, zone) == 0;
            if ((pass == 0 && reach && same_zone) || (pass == 1 && reach) || pass == 2)
                add_candidate(g, gw_cluster_addr(cl, ids[i]));
        }
    }
    for (size_t i = 0; g->ncand == 0 && gw_cluster_seed(cl, i) != NULL; i++)
        add_candidate(g, gw_cluster_seed(cl, i));
}

void gw_get_start(struct gw_ctx *ctx, struct gw_conn *c, const struct gw_http_req *req,
                  const char *key, size_t keylen)
{
    struct gw_get *g = cm_calloc(1, sizeof(*g));
    if (g == NULL) {
        gw_conn_error(c, 500, "internal", "out of memory", GW_COMMITTED_OMIT);
        return;
    }
    g->ctx = ctx;
    g->conn = c;
    g->head = req->method == HTTP_HEAD;
    memcpy(g->key, key, keylen);
    g->key[keylen] = '\0';
    g->shard = gw_key_shard(key, keylen, gw_cluster_shard_count(ctx->cluster));
    uv_timer_init(ctx->loop, &g->timer);
    g->timer.data = g;
    get_candidates(g);
    gw_conn_set_handler(c, &get_ops, g);
    if (g->ncand == 0) {
        get_fail(g, 503, "unavailable", "no node known");
        return;
    }
    get_attempt(g);
}

/* ---- DELETE ---- */

struct gw_del {
    struct gw_ctx *ctx;
    struct gw_conn *conn;
    struct gw_lreq *lreq;
    char key[GW_KEY_MAX + 1];
    Hw__Delete msg;
};

static void del_build(void *arg, Hw__Envelope *env)
{
    struct gw_del *d = arg;
    env->delete_ = &d->msg;
}

static void del_done(void *arg, enum gw_lreq_outcome outcome, const Hw__Envelope *env)
{
    struct gw_del *d = arg;
    struct gw_conn *c = d->conn;
    d->lreq = NULL;
    if (outcome == GW_LREQ_TIMEOUT_UNSENT)
        gw_conn_error(c, 503, "no_quorum", "no shard leader reachable", GW_COMMITTED_FALSE);
    else if (outcome == GW_LREQ_TIMEOUT_SENT)
        gw_conn_error(c, 504, "timeout", "delete outcome unknown", GW_COMMITTED_NULL);
    else if (env->type == HW__MSG_TYPE__MSG_DELETE_OK && env->delete_ok != NULL &&
             env->delete_ok->found)
        gw_conn_respond(c, 204, NULL, NULL, NULL, 0);
    else if (env->type == HW__MSG_TYPE__MSG_DELETE_OK)
        gw_conn_error(c, 404, "not_found", "no such object", GW_COMMITTED_OMIT);
    else
        gw_conn_error(c, 500, "internal", env->message ? env->message : "delete refused",
                      GW_COMMITTED_FALSE);
    cm_free(d);
}

static void d_body(void *h, const struct cm_slice *piece)
{
}

static void d_nop(void *h)
{
}

static void d_abort(void *h)
{
    struct gw_del *d = h;
    gw_lreq_cancel(d->lreq);
    cm_free(d);
}

static const struct gw_handler_ops del_ops = {d_body, d_nop, d_nop, d_nop, d_abort};

void gw_delete_start(struct gw_ctx *ctx, struct gw_conn *c, const char *key, size_t keylen)
{
    struct gw_del *d = cm_calloc(1, sizeof(*d));
    if (d == NULL) {
        gw_conn_error(c, 500, "internal", "out of memory", GW_COMMITTED_FALSE);
        return;
    }
    d->ctx = ctx;
    d->conn = c;
    memcpy(d->key, key, keylen);
    d->key[keylen] = '\0';
    hw__delete__init(&d->msg);
    d->msg.key = d->key;
    uint32_t shard = gw_key_shard(key, keylen, gw_cluster_shard_count(ctx->cluster));
    if (gw_lreq_start(ctx, HW__MSG_TYPE__MSG_DELETE, shard, cm_mono_ms() + GW_DELETE_DEADLINE_MS,
                      del_build, del_done, d, &d->lreq) != 0) {
        cm_free(d);
        gw_conn_error(c, 500, "internal", "out of memory", GW_COMMITTED_FALSE);
        return;
    }
    gw_conn_set_handler(c, &del_ops, d);
}
