/* Playlist requests with LL-HLS delivery directives (hold.h).
 *
 * Lifetime: a park lives from its request's arrival to its answer or abort (the connection's
 * handler is the park). A group lives while it has parks or a fetch, then GW_HOLD_IDLE_MS more
 * (its playlist answers new requests at once); the loop's timer drops it. gw_holds lives from the
 * loop's first directive request to gw_ctx_stop. */
#include "live/hold.h"

#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "crc32c.h"
#include "err.h"
#include "access/key.h"
#include "hls/llhls.h"
#include "http/server.h"
#include "log.h"
#include "object/answer.h"
#include "object/cache.h"
#include "object/get.h"
#include "object/shared.h"
#include "object/wake.h"
#include "timeutil.h"

#define GROUP_SLOTS 256u

struct group;

struct gw_park {
    struct gw_park *prev, *next;
    struct group *grp;
    struct gw_conn *conn;
    const struct gw_http_req *req; /* borrowed until answered */
    struct gw_hls_directives d;
    uint64_t gen;      /* the key's wakeup generation at arrival */
    uint64_t deadline; /* monotonic ms of the 503; 0 = not looked at yet */
    int head;
};

struct group {
    struct group *hnext;
    struct gw_holds *hs;
    struct gw_park *first, *last;
    size_t n;
    struct gw_get *fetch; /* in flight */
    uint64_t fetch_gen;   /* the wakeup generation read before it started */
    uint64_t at_least;    /* the newest commit index a wakeup named */
    /* the newest read: its outcome, the playlist, and what it says */
    int have;                    /* 0: nothing read yet */
    enum gw_cwait_result result; /* of the newest read */
    struct gw_cobj *obj;         /* ref, with GW_CWAIT_OBJ */
    uint64_t obj_gen;            /* the generation it is current for */
    struct gw_hls_playlist pl;
    int pl_ok;     /* obj parsed as a media playlist */
    int restarted; /* its media sequence went backwards: answer every park */
    int seen_msq;  /* a playlist was parsed before: last_msq holds */
    uint64_t last_msq;
    char cache_control[48];  /* blocking answers: max-age of six target durations */
    struct cm_buf *delta[2]; /* delta updates of obj (YES, v2), built on first use */
    int delta_built[2];
    uint64_t idle_since; /* monotonic ms the last park left; 0 = busy */
    char why[128];       /* of a failed read */
    char key[];
};

struct gw_holds {
    struct gw_ctx *ctx;
    struct gw_wake *wake;
    uv_timer_t timer;
    uint64_t timer_at; /* monotonic ms the timer fires; 0 = stopped */
    struct group *tab[GROUP_SLOTS];
    uint64_t parked, groups;
};

static void group_fetch(struct group *g);

/* ---- tables ---- */

static uint32_t slot_of(const char *key)
{
    return cm_crc32c(0, key, strlen(key)) % GROUP_SLOTS;
}

static struct group *group_find(struct gw_holds *hs, const char *key)
{
    for (struct group *g = hs->tab[slot_of(key)]; g != NULL; g = g->hnext) {
        if (strcmp(g->key, key) == 0)
            return g;
    }
    return NULL;
}

static struct group *group_new(struct gw_holds *hs, const char *key)
{
    size_t kl = strlen(key);
    struct group *g = cm_calloc(1, sizeof(*g) + kl + 1);
    if (g == NULL)
        return NULL;
    memcpy(g->key, key, kl + 1);
    g->hs = hs;
    uint32_t s = slot_of(key);
    g->hnext = hs->tab[s];
    hs->tab[s] = g;
    hs->groups++;
    /* before any read of the watch position this group makes (wake.h: ordering) */
    gw_wake_interest(hs->wake, key, 1);
    return g;
}

static void group_forget_read(struct group *g)
{
    gw_cobj_unref(g->obj);
    g->obj = NULL;
    for (int i = 0; i < 2; i++) {
        cm_buf_unref(g->delta[i]);
        g->delta[i] = NULL;
        g->delta_built[i] = 0;
    }
    g->pl_ok = 0;
    g->have = 0;
}

static void group_free(struct group *g)
{
    struct gw_holds *hs = g->hs;
    for (struct group **p = &hs->tab[slot_of(g->key)]; *p != NULL; p = &(*p)->hnext) {
        if (*p == g) {
            *p = g->hnext;
            break;
        }
    }
    gw_get_fetch_cancel(g->fetch);
    g->fetch = NULL;
    group_forget_read(g);
    gw_wake_interest(hs->wake, g->key, -1);
    hs->groups--;
    cm_free(g);
}

/* ---- timer: 503 deadlines, idle groups ---- */

static void on_tick(uv_timer_t *t);

static void timer_want(struct gw_holds *hs, uint64_t at)
{
    if (hs->timer_at != 0 && hs->timer_at <= at)
        return;
    uint64_t now = cm_mono_ms();
    hs->timer_at = at;
    uv_timer_start(&hs->timer, on_tick, at > now ? at - now : 0, 0);
}

static void park_unlink(struct gw_park *p)
{
    struct group *g = p->grp;
    if (p->prev != NULL)
        p->prev->next = p->next;
    else
        g->first = p->next;
    if (p->next != NULL)
        p->next->prev = p->prev;
    else
        g->last = p->prev;
    g->n--;
    g->hs->parked--;
    if (g->n == 0) {
        g->idle_since = cm_mono_ms();
        timer_want(g->hs, g->idle_since + GW_HOLD_IDLE_MS);
    }
}

/* The park's answer is out (or its connection gone): forget it. */
static void park_end(struct gw_park *p)
{
    park_unlink(p);
    cm_free(p);
}

static void answer_timeout(struct gw_park *p)
{
    struct gw_conn *c = p->conn;
    GW_METRIC_ADD(p->grp->hs->ctx->metrics, hls_timeouts, 1);
    park_end(p);
    gw_answer_error(c, 503, "not_yet_available",
                    "the playlist did not reach the requested media sequence and part within "
                    "three target durations",
                    "Cache-Control: no-store\r\nRetry-After: 1\r\n");
}

static void on_tick(uv_timer_t *t)
{
    struct gw_holds *hs = t->data;
    uint64_t now = cm_mono_ms(), next = 0;
    hs->timer_at = 0;
    for (uint32_t s = 0; s < GROUP_SLOTS; s++) {
        struct group *g = hs->tab[s];
        while (g != NULL) {
            struct group *gn = g->hnext;
            struct gw_park *p = g->first;
            while (p != NULL) {
                struct gw_park *pn = p->next;
                if (p->deadline != 0 && p->deadline <= now)
                    answer_timeout(p);
                else if (p->deadline != 0 && (next == 0 || p->deadline < next))
                    next = p->deadline;
                p = pn;
            }
            if (g->n == 0 && g->fetch == NULL) {
                uint64_t until = g->idle_since + GW_HOLD_IDLE_MS;
                if (until <= now)
                    group_free(g);
                else if (next == 0 || until < next)
                    next = until;
            }
            g = gn;
        }
    }
    if (next != 0)
        timer_want(hs, next);
}

/* ---- answers ---- */

/* The delta update of the group's playlist (v2: date ranges skipped too), or NULL when nothing
 * can be skipped: then the full playlist answers. */
static struct cm_buf *group_delta(struct group *g, int v2)
{
    if (g->delta_built[v2])
        return g->delta[v2];
    g->delta_built[v2] = 1;
    struct cm_sbuf sb;
    cm_sbuf_init(&sb);
    const struct cm_buf *b = g->obj->body;
    int k = b != NULL ? gw_hls_delta(b->data, b->len, v2, &sb) : 0;
    if (k > 0 && !sb.oom)
        g->delta[v2] = cm_buf_copy(sb.p, sb.len);
    else if (k < 0)
        CM_WARN("msg=\"delta update not built\" key=\"%s\" err=%s", g->key, cm_strerror(k));
    cm_sbuf_free(&sb);
    return g->delta[v2];
}

static void answer_playlist(struct gw_park *p)
{
    struct group *g = p->grp;
    struct gw_holds *hs = g->hs;
    struct gw_conn *c = p->conn;
    struct gw_objinfo o;
    gw_objinfo_of_cobj(&o, g->obj);
    struct cm_buf *body = g->obj->body;
    if (g->pl_ok && p->d.has_msn && !g->pl.endlist)
        o.cache_control_forced = g->cache_control;
    if (g->pl_ok && p->d.skip != 0) {
        int v2 = p->d.skip == 2 && g->pl.can_skip_dateranges;
        struct cm_buf *d = group_delta(g, v2);
        if (d != NULL) {
            body = d;
            o.size = d->len;
            o.etag_tag = v2 ? "skip2" : "skip";
        }
    }
    GW_METRIC_ADD(hs->ctx->metrics, hls_answered, 1);
    const struct gw_http_req *req = p->req;
    int head = p->head;
    park_end(p);
    gw_get_serve(hs->ctx, c, req, head, &o, body, gw_shared_cache_rules(hs->ctx->shared));
}

/* Decide p against the group's newest read. 1: answered (p is gone). */
static int park_look(struct gw_park *p, uint64_t now)
{
    struct group *g = p->grp;
    struct gw_conn *c = p->conn;
    if (g->result == GW_CWAIT_NOT_FOUND) {
        park_end(p);
        gw_answer_not_found(c);
        return 1;
    }
    if (g->result != GW_CWAIT_OBJ) {
        park_end(p);
        gw_conn_error(c, 503, "unavailable", g->why, GW_COMMITTED_OMIT);
        return 1;
    }
    enum gw_hls_ready r = GW_HLS_NOW;
    if (g->pl_ok && !(g->restarted && p->deadline != 0))
        r = gw_hls_ready(&g->pl, &p->d);
    switch (r) {
    case GW_HLS_NOW:
        answer_playlist(p);
        return 1;
    case GW_HLS_BAD:
        GW_METRIC_ADD(g->hs->ctx->metrics, hls_refused, 1);
        park_end(p);
        gw_conn_error(c, 400, "bad_request",
                      "_HLS_msn / _HLS_part too far beyond the playlist (rfc8216bis 6.2.5.2)",
                      GW_COMMITTED_OMIT);
        return 1;
    case GW_HLS_HOLD:
        break;
    }
    if (p->deadline == 0) {
        p->deadline = now + gw_hls_hold_ms(&g->pl);
        GW_METRIC_ADD(g->hs->ctx->metrics, hls_held, 1);
        timer_want(g->hs, p->deadline);
    } else if (now >= p->deadline) {
        answer_timeout(p);
        return 1;
    }
    return 0;
}

/* ---- reads ---- */

static void group_took(struct group *g, enum gw_cwait_result r, struct gw_cobj *obj,
                       const char *why)
{
    group_forget_read(g);
    g->have = 1;
    g->result = r;
    g->obj_gen = g->fetch_gen;
    g->restarted = 0;
    snprintf(g->why, sizeof(g->why), "%s", why && why[0] ? why : "no replica could serve it");
    if (r != GW_CWAIT_OBJ || obj == NULL) {
        g->result = r == GW_CWAIT_OBJ ? GW_CWAIT_FAILED : r;
        return;
    }
    g->obj = gw_cobj_ref(obj);
    const struct cm_buf *b = obj->body;
    g->pl_ok = gw_hls_parse(b != NULL ? b->data : "", b != NULL ? b->len : 0, &g->pl) == 0;
    if (!g->pl_ok)
        return;
    if (g->seen_msq && g->pl.media_sequence < g->last_msq) {
        g->restarted = 1;
        CM_INFO("msg=\"playlist media sequence went backwards: answering held requests\" "
                "key=\"%s\" from=%llu to=%llu",
                g->key, (unsigned long long)g->last_msq, (unsigned long long)g->pl.media_sequence);
    }
    g->seen_msq = 1;
    g->last_msq = g->pl.media_sequence;
    snprintf(g->cache_control, sizeof(g->cache_control), "max-age=%u",
             6u * (g->pl.target_ms ? (g->pl.target_ms + 999) / 1000 : 1));
}

static void on_fetched(void *arg, enum gw_cwait_result r, struct gw_cobj *obj, const char *why)
{
    struct group *g = arg;
    struct gw_holds *hs = g->hs;
    g->fetch = NULL;
    group_took(g, r, obj, why);
    uint64_t now = cm_mono_ms();
    int behind = 0; /* parks that arrived after a commit this read may not show */
    struct gw_park *p = g->first;
    while (p != NULL) {
        struct gw_park *pn = p->next;
        if (p->gen > g->obj_gen)
            behind = 1;
        else
            park_look(p, now);
        p = pn;
    }
    if (g->n > 0 && (behind || gw_wake_gen(hs->wake, g->key) != g->obj_gen))
        group_fetch(g); /* a commit came meanwhile */
}

static void group_fetch(struct group *g)
{
    struct gw_holds *hs = g->hs;
    if (g->fetch != NULL)
        return;
    g->fetch_gen = gw_wake_gen(hs->wake, g->key); /* before the read takes its position */
    g->fetch = gw_get_fetch(hs->ctx, g->key, g->at_least, GW_HOLD_MAX_PLAYLIST, on_fetched, g);
    if (g->fetch != NULL)
        return;
    /* out of memory: every park gets a 503 */
    while (g->first != NULL) {
        struct gw_park *p = g->first;
        struct gw_conn *c = p->conn;
        park_end(p);
        gw_conn_error(c, 503, "unavailable", "out of memory", GW_COMMITTED_OMIT);
    }
}

static void group_woken(struct group *g, uint64_t index)
{
    if (index > g->at_least)
        g->at_least = index;
    if (g->n > 0)
        group_fetch(g);
}

/* A commit of key at raft index (key NULL: of anything). */
static void on_wake(void *arg, const char *key, uint64_t index)
{
    struct gw_holds *hs = arg;
    if (key != NULL) {
        struct group *g = group_find(hs, key);
        if (g != NULL)
            group_woken(g, index);
        return;
    }
    for (uint32_t s = 0; s < GROUP_SLOTS; s++) {
        for (struct group *g = hs->tab[s]; g != NULL; g = g->hnext)
            group_woken(g, index);
    }
}

/* ---- the loop's state ---- */

static void on_timer_closed(uv_handle_t *h)
{
    cm_free(h->data);
}

static struct gw_holds *holds_get(struct gw_ctx *ctx)
{
    if (ctx->holds != NULL || ctx->stopping)
        return ctx->holds;
    struct gw_holds *hs = cm_calloc(1, sizeof(*hs));
    if (hs == NULL)
        return NULL;
    hs->ctx = ctx;
    if (gw_wake_open(ctx->loop, gw_shared_wakes(ctx->shared), on_wake, hs, &hs->wake) != 0) {
        cm_free(hs);
        return NULL;
    }
    uv_timer_init(ctx->loop, &hs->timer);
    hs->timer.data = hs;
    ctx->holds = hs;
    return hs;
}

void gw_holds_close(struct gw_holds *hs)
{
    if (hs == NULL)
        return;
    for (uint32_t s = 0; s < GROUP_SLOTS; s++) {
        while (hs->tab[s] != NULL) {
            struct group *g = hs->tab[s];
            while (g->first != NULL) { /* none: the servers aborted them; never leak one */
                struct gw_park *p = g->first;
                struct gw_conn *c = p->conn;
                park_end(p);
                gw_conn_error(c, 503, "unavailable", "gateway stopping", GW_COMMITTED_OMIT);
            }
            group_free(g);
        }
    }
    gw_wake_close(hs->wake);
    uv_close((uv_handle_t *)&hs->timer, on_timer_closed);
}

void gw_holds_stats(const struct gw_holds *hs, struct gw_holds_stats *st)
{
    st->parked = hs != NULL ? hs->parked : 0;
    st->groups = hs != NULL ? hs->groups : 0;
}

/* ---- requests ---- */

static void h_body(void *h, const struct cm_slice *piece)
{
}

static void h_nop(void *h)
{
}

static void h_abort(void *h)
{
    park_end(h);
}

static const struct gw_handler_ops park_ops = {h_body, h_nop, h_nop, h_nop, h_abort};

static const char *query_of(const struct gw_http_req *req, size_t *len)
{
    const char *u = req->url.p ? req->url.p : "";
    const char *q = memchr(u, '?', req->url.len);
    if (q == NULL) {
        *len = 0;
        return "";
    }
    *len = req->url.len - (size_t)(q + 1 - u);
    return q + 1;
}

int gw_hold_wanted(const struct gw_http_req *req)
{
    size_t n;
    const char *q = query_of(req, &n);
    for (size_t i = 0; i + 5 <= n; i++) {
        if ((i == 0 || q[i - 1] == '&') && memcmp(q + i, "_HLS_", 5) == 0)
            return 1;
    }
    return 0;
}

void gw_hold_start(struct gw_ctx *ctx, struct gw_conn *c, const struct gw_http_req *req,
                   const char *key, size_t keylen)
{
    size_t qn;
    const char *q = query_of(req, &qn);
    struct gw_hls_directives d;
    if (gw_hls_directives_parse(q, qn, &d) != 0) {
        GW_METRIC_ADD(ctx->metrics, hls_refused, 1);
        gw_conn_error(c, 400, "bad_request",
                      "invalid LL-HLS delivery directive (_HLS_msn, _HLS_part, _HLS_skip)",
                      GW_COMMITTED_OMIT);
        return;
    }
    if (!d.has_msn && d.skip == 0) {
        gw_get_start(ctx, c, req, key, keylen); /* an unknown _HLS_ parameter: a plain read */
        return;
    }
    char k[GW_KEY_MAX + 1];
    memcpy(k, key, keylen);
    k[keylen] = '\0';
    struct gw_holds *hs = holds_get(ctx);
    struct group *g = hs != NULL ? group_find(hs, k) : NULL;
    if (hs != NULL && g == NULL)
        g = group_new(hs, k);
    struct gw_park *p = g != NULL ? cm_calloc(1, sizeof(*p)) : NULL;
    if (p == NULL) {
        if (g != NULL && g->n == 0 && g->fetch == NULL && !g->have)
            group_free(g);
        gw_conn_error(c, 500, "internal", "out of memory", GW_COMMITTED_OMIT);
        return;
    }
    p->grp = g;
    p->conn = c;
    p->req = req;
    p->d = d;
    p->head = req->method == HTTP_HEAD;
    p->gen = gw_wake_gen(hs->wake, k);
    p->prev = g->last;
    if (g->last != NULL)
        g->last->next = p;
    else
        g->first = p;
    g->last = p;
    g->n++;
    g->idle_since = 0;
    hs->parked++;
    gw_conn_set_handler(c, &park_ops, p);
    /* The group's playlist is current while no commit of the key was posted since it was
     * read (wake.h); a read answer also needs the lease (cluster/watch.h). */
    if (g->have && g->fetch == NULL && p->gen == g->obj_gen &&
        gw_coh_lease_ok(gw_shared_coh(ctx->shared), cm_mono_ms())) {
        park_look(p, cm_mono_ms());
        return;
    }
    group_fetch(g);
}
