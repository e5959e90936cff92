/* Read path (GET/HEAD) and DELETE.
 *
 * Happy path, cache hit: the fresh cached object answers at once (status and headers from
 *   objresp.c, the body as one slice of the cached buffer: no copy, no node contacted).
 * Happy path, miss (cache on; GET, HEAD or Range alike): gw_cache_get -> FILL: read the whole
 *   object from a replica with GET, copying the DATA payloads into one buffer (at most
 *   cache-size/8 bytes), -> publish it (gw_cache_fill_end) and answer from it like a hit (a HEAD
 *   gets GET's headers, a Range its slice); or WAIT: another request of this process reads it;
 *   its outcome arrives on this loop through the cache port.
 * Direct (cache off, a key lately found not cacheable, coalescing declined or not possible):
 *   candidates -> acquire -> GET {offset, length} / HEAD -> first frame: plan from its meta
 *   (200/206/304/412/416) -> the part of every DATA payload inside the planned range is written
 *   to the client as a slice of the node connection's buffer (no copy) -> done. A filler whose
 *   object turns out too large or not cacheable continues as a direct read of the stream it
 *   has (waiters read for themselves), except a HEAD, answered from the first frame's meta, and
 *   a plain "bytes=a-b" / "a-" Range not starting at 0, which asks the node again for its range.
 * Back-pressure (direct): client write queue over gw_conn_high_water (GW_CONN_HIGH_WATER, less
 *   as the process nears --max-buffered-bytes) -> pause the node
 *   connection; resume on the client's drain. A fill reads at node speed into its bounded
 *   buffer; the client is only written once the object is complete.
 * Coherence (cluster/watch.h): no read lease -> wait for one (GW_LEASE_WAIT_MS, then 503). Every
 *   node read carries min_index (the watch position, taken after the fill registered); an answer
 *   whose version (a miss: the replica's applied index) is not yet safe is dropped, the read
 *   waits (GW_SAFE_WAIT_MS) and asks again. A hit needs the lease.
 * Replica order, every kind alike: reachable replicas in --zone first, then by lowest expected
 *   wait (EWMA of the time to first frame, scaled by the reads each already serves: pick.h),
 *   then the rest.
 * Failures: NOT_FOUND -> 404 (final: at or past min_index). Other errors, a lost connection
 * or no frame in time (GW_GET_TRY_MS while other candidates remain, GW_GET_FIRST_MS for the last:
 * a paused or cut-off replica costs a read well under a second) -> next candidate; none left
 *   -> 503. After the headers went out a failure can only cut the client connection.
 * Close: get_end ends a fill (waiters then read for themselves), cancels a wait, releases the
 *   node connection (reusable only after a complete answer), cancels a pending acquire and
 *   closes the timer; memory goes in the timer's close callback. */
#include "object/get.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "object/answer.h"
#include "object/cache.h"
#include "cluster/cluster.h"
#include "err.h"
#include "frame.h"
#include "access/key.h"
#include "cluster/leader.h"
#include "object/list.h"
#include "log.h"
#include "object/objresp.h"
#include "cluster/pick.h"
#include "http/range.h"
#include "object/shared.h"
#include "shard.h"
#include "timeutil.h"
#include "cluster/upstream.h"

#define GW_GET_CANDIDATES 16
#define GW_LEASE_WAIT_MS 1500u /* no read lease (election, startup): wait this long, then 503 */
#define GW_SAFE_WAIT_MS 1000u  /* a version not yet known to every lease holder: wait this long */
#define GW_COH_POLL_MS 2u

struct gw_get {
    struct gw_ctx *ctx;
    struct gw_shared *sh;          /* borrowed: the server holds a ref until it is freed */
    struct gw_cache *cache;        /* NULL: --cache-size 0 */
    struct gw_conn *conn;          /* NULL once answered or aborted */
    const struct gw_http_req *req; /* borrowed until answered */
    const struct gw_rules *rules;
    char key[GW_KEY_MAX + 1];
    int head;     /* the client asked HEAD */
    int ask_head; /* this attempt sent HEAD (a fill always reads with GET) */
    uint32_t shard;
    char cand[GW_GET_CANDIDATES][GW_ADDR_MAX];
    uint32_t cand_id[GW_GET_CANDIDATES];
    size_t ncand, idx;
    struct gw_up_wait wait;
    struct gw_up_conn *uc;
    uint64_t req_id;
    uint64_t sent_us;
    uint32_t busy_id; /* the node counted as serving this read (gw_cluster_read_begin), 0 = none */
    uv_timer_t timer;
    int done;
    int paused;
    /* node stream */
    uint64_t node_off, node_len; /* asked of the node (len 0 = to the end) */
    int got_first;
    struct gw_objresp plan;
    uint64_t written; /* body bytes written to the client */
    /* fill (cache miss, this request reads for everyone) */
    struct gw_cfill *fill;
    struct gw_cobj *obj; /* being filled */
    uint64_t fill_start, fresh_until;
    /* wait (another request reads) */
    struct gw_cwait cw;
    int waiting;
    /* coherence (cluster/watch.h) */
    uint64_t min_index;   /* this attempt's: every write acknowledged before it is at or below */
    uint64_t safe_target; /* waiting until every lease holder knows this index */
    uint64_t wait_until;  /* monotonic ms: deadline of a lease or safe wait */
    uint64_t try_until;   /* monotonic ms: an attempt's first frame is due */
    uint64_t at_least;    /* a fetch: every node read has min_index at least this */
    /* A fetch (gw_get_fetch): no client; the whole object, at most fetch_max bytes, goes to
     * fetch_cb. NULL: a client request. */
    gw_fetch_fn fetch_cb;
    void *fetch_arg;
    uint64_t fetch_max;
    char last_err[128];
};

static void get_attempt(struct gw_get *g);
static void on_timer(uv_timer_t *t);

/* ---- answers (also used without a gw_get, for cache hits) ---- */

static void objinfo_of_meta(struct gw_objinfo *o, const Hw__ObjectMeta *m, const char *key)
{
    memset(o, 0, sizeof(*o));
    o->key = key;
    o->size = m->size;
    o->version = m->version;
    o->content_type = m->content_type ? m->content_type : "";
    o->cache_control = m->cache_control ? m->cache_control : "";
    o->created_ms = m->created_ms;
    o->expires_ms = m->expires_ms;
}

static void objinfo_of_cobj(struct gw_objinfo *o, const struct gw_cobj *c)
{
    memset(o, 0, sizeof(*o));
    o->key = c->key;
    o->size = c->size;
    o->version = c->version;
    o->content_type = c->content_type;
    o->cache_control = c->cache_control;
    o->created_ms = c->created_ms;
    o->expires_ms = c->expires_ms;
}

/* Status line and headers for a plan. Returns 1 when the answer is complete (HEAD, 304, 412,
 * 416, empty body), 0 when body bytes must follow. */
/* Stored metadata that cannot be a header value was replaced (objresp.h): say so, at most once
 * per GW_META_WARN_MS on this loop, so a bad object read by many does not flood the log. */
static void warn_bad_meta(struct gw_ctx *ctx, const struct gw_objinfo *o)
{
    uint64_t now = cm_mono_ms();
    ctx->meta_warned++;
    if (ctx->meta_warn_ms != 0 && now - ctx->meta_warn_ms < GW_META_WARN_MS)
        return;
    CM_WARN("msg=\"stored metadata not printable as a header: replaced\" key=\"%s\" "
            "version=%llu answers=%llu",
            o->key, (unsigned long long)o->version, (unsigned long long)ctx->meta_warned);
    ctx->meta_warn_ms = now;
    ctx->meta_warned = 0;
}

static int answer_head(struct gw_ctx *ctx, struct gw_conn *c, const struct gw_objresp *p,
                       const struct gw_objinfo *o, const struct gw_rules *rules, int head)
{
    struct cm_sbuf h;
    cm_sbuf_init(&h);
    if (gw_objresp_headers(p, o, rules, &h) != 0)
        warn_bad_meta(ctx, o);
    int complete = 1;
    if (h.oom) { /* the headers are cut short: never send those */
        gw_answer_error(c, 500, "internal", "out of memory", NULL);
    } else if (p->status == 412) {
        gw_answer_error(c, 412, "precondition_failed", "a precondition did not hold", h.p);
    } else if (p->status == 416) {
        gw_answer_error(c, 416, "range_not_satisfiable", "range outside the object", h.p);
    } else {
        gw_conn_write_head(c, p->status, h.p ? h.p : "", h.len);
        if (p->status == 304 || head || p->length == 0)
            gw_conn_done(c);
        else
            complete = 0;
    }
    cm_sbuf_free(&h);
    return complete;
}

void gw_get_serve(struct gw_ctx *ctx, struct gw_conn *c, const struct gw_http_req *req, int head,
                  const struct gw_objinfo *o, struct cm_buf *body, const struct gw_rules *rules)
{
    struct gw_objresp p;
    gw_objresp_plan(req, head, o, &p);
    if (answer_head(ctx, c, &p, o, rules, head))
        return;
    struct cm_slice s = {body, (size_t)p.first, (size_t)p.length};
    gw_conn_write_body(c, &s, 1); /* takes its own ref: no copy */
    gw_conn_done(c);
}

void gw_objinfo_of_cobj(struct gw_objinfo *o, const struct gw_cobj *c)
{
    objinfo_of_cobj(o, c);
}

/* Answer c's request from a cached object (a borrowed ref). */
static void serve_obj(struct gw_ctx *ctx, struct gw_conn *c, const struct gw_http_req *req,
                      int head, const struct gw_cobj *obj, const struct gw_rules *rules)
{
    struct gw_objinfo o;
    objinfo_of_cobj(&o, obj);
    gw_get_serve(ctx, c, req, head, &o, obj->body, rules);
}

/* ---- lifetime ---- */

static void on_timer_closed(uv_handle_t *h)
{
    cm_free(h->data);
}

static void fill_end(struct gw_get *g, struct gw_cobj *obj, enum gw_cwait_result result)
{
    if (g->fill == NULL)
        return;
    gw_cache_fill_end(g->cache, g->fill, obj, obj ? g->fresh_until : 0, cm_mono_ms(), result);
    g->fill = NULL;
}

/* The replica being read is done with this request (answered, failed, or given up). */
static void busy_end(struct gw_get *g)
{
    if (g->busy_id != 0)
        gw_cluster_read_end(g->ctx->cluster, g->busy_id);
    g->busy_id = 0;
}

/* A latency sample for the replica of this attempt (pick.h). */
static void note_sample(struct gw_get *g, uint64_t us)
{
    if (g->cand_id[g->idx] != 0) /* 0: a seed address, no node id to charge */
        gw_cluster_note_latency(g->ctx->cluster, g->cand_id[g->idx], us);
}

static void note_first_frame(struct gw_get *g)
{
    uint64_t now = uv_hrtime() / 1000;
    note_sample(g, now > g->sent_us ? now - g->sent_us : 0);
}

static void get_end(struct gw_get *g, int reusable)
{
    if (g->done)
        return;
    g->done = 1;
    busy_end(g);
    fill_end(g, NULL, GW_CWAIT_RETRY);
    if (g->waiting) {
        g->waiting = 0;
        gw_cache_cancel(g->cache, &g->cw);
    }
    gw_cobj_unref(g->obj);
    g->obj = NULL;
    gw_up_cancel(&g->wait);
    if (g->uc != NULL)
        gw_up_release(g->uc, reusable);
    g->uc = NULL;
    uv_close((uv_handle_t *)&g->timer, on_timer_closed);
}

/* A fetch's outcome (obj borrowed for the call), once. */
static void fetch_deliver(struct gw_get *g, enum gw_cwait_result r, struct gw_cobj *obj)
{
    gw_fetch_fn cb = g->fetch_cb;
    g->fetch_cb = NULL;
    if (cb != NULL)
        cb(g->fetch_arg, r, obj, g->last_err);
}

static void get_fail(struct gw_get *g, int status, const char *code, const char *msg)
{
    struct gw_conn *c = g->conn;
    g->conn = NULL;
    enum gw_cwait_result r = status == 404 ? GW_CWAIT_NOT_FOUND : GW_CWAIT_FAILED;
    fill_end(g, NULL, r);
    get_end(g, 0);
    if (g->fetch_cb != NULL) {
        if (r != GW_CWAIT_NOT_FOUND && msg != g->last_err)
            snprintf(g->last_err, sizeof(g->last_err), "%s", msg);
        fetch_deliver(g, r, NULL);
    }
    if (c == NULL)
        return;
    if (status == 404)
        gw_answer_not_found(c);
    else
        gw_conn_error(c, status, code, msg, GW_COMMITTED_OMIT);
}

static void get_complete(struct gw_get *g, int reusable)
{
    struct gw_conn *c = g->conn;
    g->conn = NULL;
    get_end(g, reusable);
    if (c != NULL)
        gw_conn_done(c);
}

/* This replica did not answer usefully: try the next one (or give up). The failure counts as a
 * slow sample, so a replica that answers STATUS but not reads stops coming first. */
static void attempt_fail(struct gw_get *g, const char *why, int reusable)
{
    note_sample(g, GW_PICK_FAIL_US);
    snprintf(g->last_err, sizeof(g->last_err), "%s: %s", g->cand[g->idx], why);
    CM_DEBUG("msg=\"read attempt failed\" key=\"%s\" %s", g->key, g->last_err);
    if (g->got_first && g->obj == NULL) {
        get_fail(g, 502, "unavailable", g->last_err); /* headers are out: cut */
        return;
    }
    gw_cobj_unref(g->obj);
    g->obj = NULL;
    g->got_first = 0;
    busy_end(g);
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

/* ---- fill ---- */

/* Until when may this object be served from the cache (monotonic ms; 0 = not at all)? Until an
 * applied write of its key invalidates it (cluster/watch.h), unless it must not be stored. */
static uint64_t fresh_until(const struct gw_get *g, const struct gw_objinfo *o)
{
    if (!gw_cache_storable(gw_cache_control(g->rules, o->key, o->cache_control)))
        return 0;
    if (o->expires_ms > 0 && cm_wall_ms() >= o->expires_ms)
        return 0;
    return UINT64_MAX; /* every kind, playlists too: the commit watch invalidates it */
}

/* First frame of a fill: collect the object, or give up coalescing (too large or not
 * cacheable: remembered for a while, so later requests for the key read directly). */
static void fill_first(struct gw_get *g, const Hw__ObjectMeta *m)
{
    struct gw_objinfo o;
    objinfo_of_meta(&o, m, g->key);
    g->fresh_until = fresh_until(g, &o);
    if (g->fetch_cb != NULL && m->size > g->fetch_max) {
        get_fail(g, 502, "too_large", "object larger than a fetch may hold");
        return;
    }
    if (g->fill == NULL || g->fresh_until == 0 || m->size > gw_cache_max_object(g->cache)) {
        if (g->fill != NULL)
            gw_shared_note_uncacheable(g->sh, g->key, cm_mono_ms());
        fill_end(g, NULL, GW_CWAIT_RETRY); /* waiters read for themselves */
        if (g->fetch_cb == NULL)
            return;
        /* a fetch collects the object all the same, for itself */
        g->obj = gw_cobj_new(g->key, m->version, m->size, o.content_type, o.cache_control,
                             m->created_ms, m->expires_ms);
        if (g->obj == NULL)
            get_fail(g, 500, "internal", "out of memory");
        return;
    } else {
        g->obj = gw_cobj_new(g->key, m->version, m->size, o.content_type, o.cache_control,
                             m->created_ms, m->expires_ms);
        if (g->obj != NULL)
            return;
    }
    fill_end(g, NULL, GW_CWAIT_RETRY); /* waiters read for themselves */
    if (g->fetch_cb != NULL)
        get_fail(g, 500, "internal", "out of memory");
}

static void fill_data(struct gw_get *g, const Hw__Data *d, const struct cm_slice *payload)
{
    struct gw_cobj *o = g->obj;
    size_t have = o->body ? o->body->len : 0;
    if (d->offset != have || payload->len > o->size - have) {
        attempt_fail(g, "DATA out of order or past the object size", 0);
        return;
    }
    if (payload->len > 0) {
        memcpy(o->body->data + have, cm_slice_ptr(payload), payload->len);
        o->body->len += payload->len;
    }
    if (!d->eof) {
        uv_timer_start(&g->timer, on_timer, GW_GET_IDLE_MS, 0);
        return;
    }
    if ((o->body ? o->body->len : 0) != o->size) {
        attempt_fail(g, "node ended the object early", 0);
        return;
    }
    g->obj = NULL;
    fill_end(g, o, GW_CWAIT_OBJ);
    struct gw_conn *c = g->conn;
    g->conn = NULL;
    if (c != NULL)
        serve_obj(g->ctx, c, g->req, g->head, o, g->rules);
    get_end(g, 1);
    fetch_deliver(g, GW_CWAIT_OBJ, o);
    gw_cobj_unref(o);
}

/* ---- direct stream ---- */

/* A plain "bytes=a-b" / "bytes=a-" (no If-Range) GET lets the node send only that part. */
static void range_hint(struct gw_get *g)
{
    const struct gw_http_req *r = g->req;
    uint64_t first = 0, last = 0;
    size_t vlen, iflen;
    if (r == NULL)
        return; /* a fetch reads the whole object */
    const char *v = gw_http_header(r, GW_H_RANGE, &vlen);
    gw_http_header(r, GW_H_IF_RANGE, &iflen);
    if (g->head || vlen == 0 || iflen > 0)
        return;
    const char *eq = memchr(v, '=', vlen);
    if (eq == NULL || eq + 1 >= v + vlen || eq[1] < '0' || eq[1] > '9')
        return; /* suffix ranges need the size first: read it all */
    /* With an unknown size, "a-" ends at UINT64_MAX - 1: ask for everything from a. */
    if (gw_range_parse(v, vlen, UINT64_MAX, &first, &last) != GW_RANGE_ONE)
        return;
    g->node_off = first;
    g->node_len = last >= UINT64_MAX - 1 ? 0 : last - first + 1;
}

/* A Range request whose fill was declined (the object will not be cached) is reading the whole
 * object from 0: when its range starts later, ask the same replica again for just the range, as
 * a direct read would have. Returns 1 when a new attempt started. */
static int reread_range(struct gw_get *g)
{
    range_hint(g);
    if (g->node_off == 0) {
        g->node_len = 0; /* the stream in hand starts at the range */
        return 0;
    }
    busy_end(g);
    gw_up_release(g->uc, 0);
    g->uc = NULL;
    g->got_first = 0;
    get_attempt(g);
    return 1;
}

static void direct_first(struct gw_get *g, const Hw__ObjectMeta *m, int eof)
{
    struct gw_objinfo o;
    objinfo_of_meta(&o, m, g->key);
    gw_objresp_plan(g->req, g->head, &o, &g->plan);
    if ((g->plan.status == 200 || g->plan.status == 206) && g->plan.length > 0 &&
        g->node_off > g->plan.first) {
        attempt_fail(g, "node answered a range that does not cover the request", 0);
        return;
    }
    struct gw_conn *c = g->conn;
    if (answer_head(g->ctx, c, &g->plan, &o, g->rules, g->head)) {
        g->conn = NULL;
        get_end(g, eof || g->ask_head); /* else the node is still sending: drop it */
    }
}

static void direct_data(struct gw_get *g, const Hw__Data *d, const struct cm_slice *payload)
{
    uint64_t want_end = g->plan.first + g->plan.length;
    uint64_t a = d->offset, b = d->offset + payload->len;
    uint64_t from = g->plan.first + g->written;
    if (a > from) {
        get_fail(g, 502, "unavailable", "node skipped bytes");
        return;
    }
    if (b > from && from < want_end) {
        uint64_t to = b < want_end ? b : want_end;
        struct cm_slice s = {payload->buf, payload->off + (size_t)(from - a), (size_t)(to - from)};
        gw_conn_write_body(g->conn, &s, 1);
        g->written += to - from;
    }
    if (g->written == g->plan.length) {
        get_complete(g, d->eof);
        return;
    }
    if (d->eof) {
        get_fail(g, 502, "unavailable", "node ended the object early");
        return;
    }
    if (!g->paused && gw_conn_over_high_water(g->conn)) {
        g->paused = 1;
        gw_up_pause(g->uc);
        uv_timer_stop(&g->timer);
        return;
    }
    uv_timer_start(&g->timer, on_timer, GW_GET_IDLE_MS, 0);
}

static void on_data(struct gw_get *g, const Hw__Envelope *env, const struct cm_slice *payload)
{
    const Hw__Data *d = env->data;
    if (!g->got_first) {
        if (d->meta == NULL) {
            attempt_fail(g, "first DATA frame without meta", 0);
            return;
        }
        g->got_first = 1;
        note_first_frame(g);
        if (g->fill != NULL || g->fetch_cb != NULL) {
            fill_first(g, d->meta);
            if (g->done)
                return; /* a fetch that cannot hold it */
            if (g->obj == NULL && !d->eof && reread_range(g))
                return;
        }
        if (g->obj == NULL) {
            direct_first(g, d->meta, d->eof);
            if (g->done || !g->got_first)
                return; /* answered, or moved on to another replica */
        }
    }
    if (g->obj != NULL)
        fill_data(g, d, payload);
    else
        direct_data(g, d, payload);
}

/* ---- coherence waits ---- */

static void on_safe_poll(uv_timer_t *t)
{
    struct gw_get *g = t->data;
    if (gw_coh_safe(gw_shared_coh(g->sh)) >= g->safe_target) {
        uv_timer_stop(t);
        get_attempt(g);
    } else if (cm_mono_ms() >= g->wait_until) {
        uv_timer_stop(t);
        get_fail(g, 503, "unavailable",
                 "the latest version is not yet confirmed by every gateway; retry");
    }
}

/* The version an answer shows (its own, or for a miss the replica's applied index) may be
 * returned only once every lease holder knows it (watch.h): else drop this answer, wait, and
 * ask again. Returns 1 to go on with env. */
static int known_everywhere(struct gw_get *g, const Hw__Envelope *env)
{
    uint64_t v = 0;
    int complete = 1; /* the node sends nothing more for this request */
    if (env->type == HW__MSG_TYPE__MSG_DATA && env->data != NULL && env->data->meta != NULL) {
        v = env->data->meta->version;
        complete = env->data->eof;
    } else if (env->type == HW__MSG_TYPE__MSG_HEAD_OK && env->head_ok != NULL &&
               env->head_ok->meta != NULL) {
        v = env->head_ok->meta->version;
    } else if (env->type == HW__MSG_TYPE__MSG_ERROR && env->code == HW__CODE__CODE_NOT_FOUND) {
        v = env->applied;
    }
    if (v <= gw_coh_safe(gw_shared_coh(g->sh)))
        return 1;
    if (g->safe_target == 0)
        g->wait_until = cm_mono_ms() + GW_SAFE_WAIT_MS;
    g->safe_target = v;
    GW_METRIC_ADD(g->ctx->metrics, coherence_waits, 1);
    busy_end(g);
    gw_up_release(g->uc, complete);
    g->uc = NULL;
    uv_timer_start(&g->timer, on_safe_poll, GW_COH_POLL_MS, GW_COH_POLL_MS);
    return 0;
}

static void up_on_frame(void *arg, struct gw_up_conn *uc, const Hw__Envelope *env,
                        const struct cm_slice *payload)
{
    struct gw_get *g = arg;
    if (env->req_id != g->req_id || g->done)
        return;
    if (!g->got_first && !known_everywhere(g, env))
        return; /* waiting; the read is asked again */
    if (env->type == HW__MSG_TYPE__MSG_DATA && env->data != NULL && !g->ask_head) {
        on_data(g, env, payload);
    } else if (env->type == HW__MSG_TYPE__MSG_HEAD_OK && env->head_ok != NULL &&
               env->head_ok->meta != NULL && g->ask_head) {
        note_first_frame(g);
        g->got_first = 1;
        direct_first(g, env->head_ok->meta, 1);
    } else if (env->type == HW__MSG_TYPE__MSG_ERROR && env->code == HW__CODE__CODE_NOT_FOUND &&
               !g->got_first) {
        g->uc = NULL;
        gw_up_release(uc, 1);
        get_fail(g, 404, "not_found", "no such object");
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

/* Waiting for an attempt's first frame: a replica that went silent on the commit watch
 * (paused, cut off) is left at once while other candidates remain, not after GW_GET_TRY_MS. */
static void on_try_timer(uv_timer_t *t)
{
    struct gw_get *g = t->data;
    uint64_t now = cm_mono_ms();
    if (!g->got_first && g->idx + 1 < g->ncand && g->busy_id != 0 &&
        !gw_cluster_live(g->ctx->cluster, g->busy_id)) {
        gw_up_cancel(&g->wait);
        attempt_fail(g, "replica silent on the commit watch", 0);
        return;
    }
    if (now >= g->try_until) {
        on_timer(t);
        return;
    }
    uint64_t left = g->try_until - now;
    uv_timer_start(&g->timer, on_try_timer, left < GW_GET_CHECK_MS ? left : GW_GET_CHECK_MS, 0);
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
    g->ask_head = g->head && g->fill == NULL;
    if (g->ask_head) {
        cm_env_init(&env, HW__MSG_TYPE__MSG_HEAD, 0, g->shard);
        head.key = g->key;
        head.min_index = g->min_index;
        env.head = &head;
    } else {
        cm_env_init(&env, HW__MSG_TYPE__MSG_GET, 0, g->shard);
        get.key = g->key;
        get.offset = g->node_off;
        get.length = g->node_len;
        get.min_index = g->min_index;
        env.get = &get;
    }
    GW_METRIC_ADD(g->ctx->metrics, node_reads, 1);
    g->sent_us = uv_hrtime() / 1000;
    if (gw_up_send(uc, &env, NULL, 0, &g->req_id) != 0)
        attempt_fail(g, "send failed", 0);
}

static void get_attempt(struct gw_get *g)
{
    /* counted from now, so the next request's choice (maybe in the same loop turn) sees it */
    busy_end(g);
    /* Taken after the fill registered (coalesce): an invalidation processed before this point
     * is covered by min_index, one after it detaches the fill. */
    g->min_index = gw_coh_applied(gw_shared_coh(g->sh));
    if (g->min_index < g->at_least)
        g->min_index = g->at_least;
    g->busy_id = g->cand_id[g->idx];
    if (g->busy_id != 0)
        gw_cluster_read_begin(g->ctx->cluster, g->busy_id);
    g->try_until = cm_mono_ms() + (g->idx + 1 < g->ncand ? GW_GET_TRY_MS : GW_GET_FIRST_MS);
    uv_timer_start(&g->timer, on_try_timer, GW_GET_CHECK_MS, 0);
    if (gw_up_acquire(g->ctx->up, g->cand[g->idx], &g->wait, on_acquired, g) != 0) {
        uv_timer_stop(&g->timer);
        /* Never call back from inside the starting call: fail the attempt from the loop. */
        uv_timer_start(&g->timer, on_timer, 0, 0);
    }
}

/* ---- handler ---- */

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

/* ---- candidates ---- */

static void add_candidate(struct gw_get *g, uint32_t id, const char *addr)
{
    if (addr == NULL || g->ncand == GW_GET_CANDIDATES)
        return;
    for (size_t i = 0; i < g->ncand; i++) {
        if (strcmp(g->cand[i], addr) == 0)
            return;
    }
    g->cand_id[g->ncand] = id;
    snprintf(g->cand[g->ncand++], GW_ADDR_MAX, "%s", addr);
}

static int same_zone(const struct gw_get *g, uint32_t id)
{
    const char *zone = g->ctx->cfg->zone;
    const char *z = gw_cluster_zone(g->ctx->cluster, id);
    return zone != NULL && zone[0] != '\0' && z != NULL && strcmp(z, zone) == 0;
}

/* Live replicas (reachable, not silent on the commit watch) in pick.h's order: same zone first,
 * then the lowest expected wait (recent latency scaled by the reads each is already serving). */
static void add_by_load(struct gw_get *g, const uint32_t *ids, size_t n)
{
    struct gw_cluster *cl = g->ctx->cluster;
    struct gw_pick order[GW_MAX_REPLICAS];
    size_t m = 0;
    for (size_t i = 0; i < n && m < GW_MAX_REPLICAS; i++) {
        if (!gw_cluster_live(cl, ids[i]))
            continue;
        struct gw_pick *p = &order[m++];
        p->id = ids[i];
        p->same_zone = same_zone(g, ids[i]);
        gw_cluster_read_load(cl, ids[i], &p->ewma_us, &p->inflight);
    }
    gw_pick_order(order, m);
    for (size_t i = 0; i < m; i++)
        add_candidate(g, order[i].id, gw_cluster_addr(cl, order[i].id));
}

/* Every kind alike (a replica applied at least min_index answers as currently as the leader):
 * live replicas by zone and load (add_by_load), then live ones in this gateway's zone, other
 * live ones, then the rest (the last poll may be stale, a silent node may only be slow). Seeds when
 * no map is known yet. */
static void get_candidates(struct gw_get *g)
{
    struct gw_cluster *cl = g->ctx->cluster;
    uint32_t ids[GW_MAX_REPLICAS];
    size_t n = gw_cluster_replicas(cl, g->shard, ids, GW_MAX_REPLICAS);
    add_by_load(g, ids, n);
    for (int pass = 0; pass < 3; pass++) {
        for (size_t i = 0; i < n; i++) {
            int reach = gw_cluster_live(cl, ids[i]);
            if ((pass == 0 && reach && same_zone(g, ids[i])) || (pass == 1 && reach) || pass == 2)
                add_candidate(g, ids[i], gw_cluster_addr(cl, ids[i]));
        }
    }
    for (size_t i = 0; g->ncand == 0 && gw_cluster_seed(cl, i) != NULL; i++)
        add_candidate(g, 0, gw_cluster_seed(cl, i));
}

/* ---- start ---- */

/* Answer from a cached object (a borrowed ref) and end. */
static void get_serve(struct gw_get *g, struct gw_cobj *obj)
{
    struct gw_conn *c = g->conn;
    g->conn = NULL;
    if (c != NULL)
        serve_obj(g->ctx, c, g->req, g->head, obj, g->rules);
    get_end(g, 1);
    fetch_deliver(g, GW_CWAIT_OBJ, obj);
}

static void get_go(struct gw_get *g)
{
    if (g->ncand == 0) {
        get_fail(g, 503, "unavailable", "no node known");
        return;
    }
    get_attempt(g);
}

static void on_wait_done(struct gw_cwait *w)
{
    struct gw_get *g = w->arg;
    g->waiting = 0;
    switch (w->result) {
    case GW_CWAIT_OBJ:
        get_serve(g, w->obj);
        gw_cobj_unref(w->obj);
        w->obj = NULL;
        return;
    case GW_CWAIT_NOT_FOUND:
        get_fail(g, 404, "not_found", "no such object");
        return;
    case GW_CWAIT_FAILED:
        get_fail(g, 503, "unavailable", "no replica could serve the object");
        return;
    case GW_CWAIT_RETRY:
        break;
    }
    range_hint(g);
    get_go(g);
}

/* Every miss of a key the cache may hold (GET, HEAD, Range alike) shares one whole-object read
 * per process: returns 1 when answered (filled meanwhile) or waiting for another request's read,
 * 0 to read now (g->fill set: for everyone). */
static int coalesce(struct gw_get *g)
{
    struct gw_ctx *ctx = g->ctx;
    if (g->cache == NULL)
        return 0;
    if (ctx->cport == NULL && !ctx->stopping && gw_cache_port_new(ctx->loop, &ctx->cport) != 0)
        ctx->cport = NULL; /* no coalescing on this loop, reads still work */
    g->fill_start = cm_mono_ms();
    if (ctx->cport == NULL || gw_shared_uncacheable(g->sh, g->key, g->fill_start))
        return 0;
    struct gw_cobj *hit = NULL;
    g->cw.cb = on_wait_done;
    g->cw.arg = g;
    switch (gw_cache_get(g->cache, g->key, g->fill_start, cm_wall_ms(), ctx->cport, &g->cw, &hit,
                         &g->fill)) {
    case GW_CACHE_HIT: /* filled in between */
        if (g->conn != NULL)
            gw_conn_note_cache(g->conn, GW_NOTE_HIT);
        get_serve(g, hit);
        gw_cobj_unref(hit);
        return 1;
    case GW_CACHE_WAIT:
        GW_METRIC_ADD(ctx->metrics, coalesced, 1);
        if (g->conn != NULL)
            gw_conn_note_cache(g->conn, GW_NOTE_COALESCED);
        g->waiting = 1;
        return 1;
    case GW_CACHE_FILL:
    case GW_CACHE_MISS:
        break;
    }
    return 0;
}

/* With a read lease: the cache (maybe coalescing), else a replica. */
static void get_begin(struct gw_get *g)
{
    if (g->cache != NULL && g->conn != NULL) {
        gw_conn_note_cache(g->conn, GW_NOTE_MISS);
        GW_METRIC_ADD(g->ctx->metrics, cache_misses, 1);
    }
    if (coalesce(g))
        return;
    if (g->fill == NULL)
        range_hint(g);
    get_go(g);
}

static void on_lease_poll(uv_timer_t *t)
{
    struct gw_get *g = t->data;
    if (gw_coh_lease_ok(gw_shared_coh(g->sh), cm_mono_ms())) {
        uv_timer_stop(t);
        get_begin(g);
    } else if (cm_mono_ms() >= g->wait_until) {
        uv_timer_stop(t);
        get_fail(g, 503, "unavailable", "no read lease: the shard has no leader right now");
    }
}

/* Cache hit served at once, without a gw_get. */
static int try_hit(struct gw_ctx *ctx, struct gw_conn *c, const struct gw_http_req *req,
                   const char *key)
{
    struct gw_cache *cache = gw_shared_cache(ctx->shared);
    struct gw_cobj *hit = NULL;
    if (cache == NULL || !gw_coh_lease_ok(gw_shared_coh(ctx->shared), cm_mono_ms()) ||
        gw_cache_get(cache, key, cm_mono_ms(), cm_wall_ms(), NULL, NULL, &hit, NULL) !=
            GW_CACHE_HIT)
        return 0;
    gw_conn_note_cache(c, GW_NOTE_HIT);
    GW_METRIC_ADD(ctx->metrics, cache_hits, 1);
    serve_obj(ctx, c, req, req->method == HTTP_HEAD, hit, gw_shared_cache_rules(ctx->shared));
    gw_cobj_unref(hit);
    return 1;
}

static struct gw_get *get_new(struct gw_ctx *ctx, const char *key, size_t keylen)
{
    struct gw_get *g = cm_calloc(1, sizeof(*g));
    if (g == NULL)
        return NULL;
    g->ctx = ctx;
    g->sh = ctx->shared;
    g->cache = gw_shared_cache(g->sh);
    g->rules = gw_shared_cache_rules(g->sh);
    memcpy(g->key, key, keylen);
    g->key[keylen] = '\0';
    g->shard = cm_shard_of(g->key, gw_cluster_shard_count(ctx->cluster));
    uv_timer_init(ctx->loop, &g->timer);
    g->timer.data = g;
    get_candidates(g);
    return g;
}

struct gw_get *gw_get_fetch(struct gw_ctx *ctx, const char *key, uint64_t at_least,
                            uint64_t max_size, gw_fetch_fn cb, void *arg)
{
    size_t keylen = strlen(key);
    if (keylen > GW_KEY_MAX)
        return NULL;
    struct gw_get *g = get_new(ctx, key, keylen);
    if (g == NULL)
        return NULL;
    g->fetch_cb = cb;
    g->fetch_arg = arg;
    g->fetch_max = max_size;
    g->at_least = at_least;
    /* from the loop, never inside this call; waits for a read lease like any read */
    g->wait_until = cm_mono_ms() + GW_LEASE_WAIT_MS;
    uv_timer_start(&g->timer, on_lease_poll, 0, GW_COH_POLL_MS);
    return g;
}

void gw_get_fetch_cancel(struct gw_get *g)
{
    if (g == NULL)
        return;
    g->fetch_cb = NULL;
    get_end(g, 0);
}

void gw_get_start(struct gw_ctx *ctx, struct gw_conn *c, const struct gw_http_req *req,
                  const char *key, size_t keylen)
{
    if (try_hit(ctx, c, req, key))
        return;
    struct gw_get *g = get_new(ctx, key, keylen);
    if (g == NULL) {
        gw_conn_error(c, 500, "internal", "out of memory", GW_COMMITTED_OMIT);
        return;
    }
    g->conn = c;
    g->req = req;
    g->head = req->method == HTTP_HEAD;
    gw_conn_set_handler(c, &get_ops, g);
    if (!gw_coh_lease_ok(gw_shared_coh(g->sh), cm_mono_ms())) {
        /* No read lease (the shard elects a leader, or this gateway just started): what it
         * knows may be behind an acknowledged write. Wait for one. */
        GW_METRIC_ADD(ctx->metrics, lease_waits, 1);
        g->wait_until = cm_mono_ms() + GW_LEASE_WAIT_MS;
        uv_timer_start(&g->timer, on_lease_poll, GW_COH_POLL_MS, GW_COH_POLL_MS);
        return;
    }
    get_begin(g);
}
