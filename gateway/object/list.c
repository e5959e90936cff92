/* Listing.
 *
 * Happy path: parse cursor/limit -> LIST at the shard leader (leader.c: NOT_LEADER / NO_LEADER
 *   retried until GW_LIST_DEADLINE_MS) -> LIST_OK -> each entry filtered by the caller's read
 *   access (the same check as a GET of that key) -> JSON 200.
 * Hidden entries: a page whose node answer ends on an entry the caller may not read is
 *   continued at once from the node's cursor (up to GW_LIST_ROUNDS LISTs, the later ones of
 *   GW_LIST_MAX entries), so the cursor handed out is always the key of an entry shown, or null:
 *   it never names a hidden key.
 * Failures: bad cursor/limit -> 400; no leader in time -> 503; any other node error -> 502;
 *   GW_LIST_ROUNDS pages in a row with nothing the caller may read -> 503.
 * Close: the client going away cancels the leader request. */
#include "object/list.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "object/answer.h"
#include "access/authz.h"
#include "cluster/cluster.h"
#include "etag.h"
#include "http/httpdate.h"
#include "access/key.h"
#include "object/lcall.h"
#include "log.h"
#include "object/objresp.h"
#include "object/shared.h"
#include "timeutil.h"

#define GW_LIST_ROUNDS 16

static void json_begin(struct cm_sbuf *o, const char *prefix)
{
    cm_sbuf_puts(o, "{\"prefix\":");
    cm_sbuf_json_str(o, prefix);
    cm_sbuf_puts(o, ",\"objects\":[");
}

static void json_obj(struct cm_sbuf *o, const Hw__ObjectMeta *m, int first)
{
    char etag[CM_ETAG_MAX], date[GW_HTTPDATE_LEN];
    cm_etag_format(m->version, etag);
    gw_httpdate_format(m->created_ms / 1000, date);
    cm_sbuf_puts(o, first ? "{\"key\":" : ",{\"key\":");
    cm_sbuf_json_str(o, m->key ? m->key : "");
    cm_sbuf_printf(o, ",\"size\":%llu,\"content_type\":", (unsigned long long)m->size);
    cm_sbuf_json_str(o, m->content_type && m->content_type[0] ? m->content_type
                                                              : "application/octet-stream");
    cm_sbuf_puts(o, ",\"etag\":");
    cm_sbuf_json_str(o, etag);
    cm_sbuf_puts(o, ",\"last_modified\":");
    cm_sbuf_json_str(o, date);
    cm_sbuf_puts(o, "}");
}

static void json_end(struct cm_sbuf *o, const char *next_cursor)
{
    cm_sbuf_puts(o, "],\"next_cursor\":");
    if (next_cursor != NULL && next_cursor[0] != '\0')
        cm_sbuf_json_str(o, next_cursor);
    else
        cm_sbuf_puts(o, "null");
    cm_sbuf_puts(o, "}\n");
}

void gw_list_json(struct cm_sbuf *o, const char *prefix, Hw__ObjectMeta *const *objs, size_t n,
                  const char *next_cursor)
{
    json_begin(o, prefix);
    for (size_t i = 0; i < n; i++)
        json_obj(o, objs[i], i == 0);
    json_end(o, next_cursor);
}

struct gw_list {
    struct gw_lcall call;
    struct gw_ctx *ctx;
    char prefix[GW_KEY_MAX + 1];
    char cursor[GW_KEY_MAX + 1]; /* the next LIST's */
    char last[GW_KEY_MAX + 1];   /* the last entry shown ("" = none yet) */
    char token[GW_HTTP_VALUE_MAX];
    struct gw_authz_token tok; /* .p points into token */
    uint64_t deadline_ms;
    unsigned want, shown, rounds;
    struct cm_sbuf doc; /* the answer so far */
    Hw__List msg;
};

static void list_free(void *arg)
{
    struct gw_list *l = arg;
    cm_sbuf_free(&l->doc);
    cm_free(l);
}

static void list_build(void *arg, Hw__Envelope *env)
{
    struct gw_list *l = arg;
    /* Every write acknowledged before now is at or below it (cluster/watch.h); the leader
     * answers once every lease holder knows its listing's state. */
    l->msg.min_index = gw_coh_applied(gw_shared_coh(l->ctx->shared));
    env->list = &l->msg;
}

static void list_finish(struct gw_list *l, struct gw_conn *c, const char *next_cursor)
{
    json_end(&l->doc, next_cursor);
    if (l->doc.oom)
        gw_conn_error(c, 500, "internal", "out of memory", GW_COMMITTED_OMIT);
    else
        gw_answer_doc(c, 200, "application/json", "Cache-Control: no-store\r\n", &l->doc);
    list_free(l);
}

/* Add the entries the caller may read. 1 when the page is full (the cursor is the last shown). */
static int list_take(struct gw_list *l, const Hw__ListOk *ok)
{
    const struct gw_keys *k = gw_ctx_keys(l->ctx);
    for (size_t i = 0; i < ok->n_objects; i++) {
        const Hw__ObjectMeta *m = ok->objects[i];
        const char *key = m->key ? m->key : "";
        if (gw_authz_check(k, GW_ACCESS_READ, key, &l->tok) != GW_AUTH_OK)
            continue;
        json_obj(&l->doc, m, l->shown == 0);
        snprintf(l->last, sizeof(l->last), "%s", key);
        if (++l->shown == l->want)
            return 1;
    }
    return 0;
}

static const struct gw_lcall_ops list_ops;

/* One LIST_OK: take what may be shown, then answer or continue from the node's cursor. */
static void list_page(struct gw_list *l, struct gw_conn *c, const Hw__ListOk *ok)
{
    const char *next = ok->next_cursor ? ok->next_cursor : "";
    const char *tail = ok->n_objects > 0 && ok->objects[ok->n_objects - 1]->key
                           ? ok->objects[ok->n_objects - 1]->key
                           : "";
    int full = list_take(l, ok);
    int at_tail = ok->n_objects > 0 && strcmp(tail, l->last) == 0; /* ended on an entry shown */
    if (next[0] == '\0' && (!full || at_tail)) {
        list_finish(l, c, NULL);
        return;
    }
    if (full || at_tail) { /* the cursor is the key of the last entry shown */
        list_finish(l, c, l->last);
        return;
    }
    if (++l->rounds >= GW_LIST_ROUNDS || strlen(next) > GW_KEY_MAX) {
        if (l->shown > 0) {
            list_finish(l, c, l->last);
        } else {
            gw_conn_error(c, 503, "unavailable",
                          "too many keys in a row this key may not read; narrow the prefix",
                          GW_COMMITTED_OMIT);
            list_free(l);
        }
        return;
    }
    snprintf(l->cursor, sizeof(l->cursor), "%s", next);
    l->msg.limit = GW_LIST_MAX; /* past a run of hidden entries: bigger node pages */
    if (gw_lcall_start(&l->call, l->ctx, c, HW__MSG_TYPE__MSG_LIST, 0, l->deadline_ms, &list_ops,
                       l) != 0) {
        gw_conn_error(c, 500, "internal", "out of memory", GW_COMMITTED_OMIT);
        list_free(l);
    }
}

static void list_answer(void *arg, struct gw_conn *c, enum gw_lreq_outcome outcome,
                        const Hw__Envelope *env)
{
    struct gw_list *l = arg;
    if (outcome != GW_LREQ_ANSWER) {
        gw_conn_error(c, 503, "unavailable", "no shard leader answered the listing",
                      GW_COMMITTED_OMIT);
    } else if (env->type == HW__MSG_TYPE__MSG_LIST_OK && env->list_ok != NULL) {
        list_page(l, c, env->list_ok);
        return;
    } else {
        char msg[160];
        snprintf(msg, sizeof(msg), "listing refused (code %d): %s", (int)env->code,
                 env->message ? env->message : "");
        gw_conn_error(c, 502, "unavailable", msg, GW_COMMITTED_OMIT);
    }
    list_free(l);
}

static const struct gw_lcall_ops list_ops = {list_build, list_answer, list_free};

static int list_limit(const char *target, unsigned long *limit)
{
    char limit_s[32];
    int rl = gw_query_param(target, "limit", limit_s, sizeof(limit_s));
    *limit = GW_LIST_DEFAULT;
    if (rl == 0)
        return 0;
    char *end = NULL;
    *limit = rl > 0 && limit_s[0] >= '0' && limit_s[0] <= '9' ? strtoul(limit_s, &end, 10) : 0;
    return rl < 0 || end == NULL || *end != '\0' || *limit < 1 || *limit > GW_LIST_MAX ? -1 : 0;
}

void gw_list_start(struct gw_ctx *ctx, struct gw_conn *c, const struct gw_http_req *req,
                   const char *prefix, size_t prefixlen)
{
    const char *target = req->url.p ? req->url.p : "";
    unsigned long limit;
    if (list_limit(target, &limit) != 0) {
        gw_conn_error(c, 400, "bad_request", "limit must be a number from 1 to 1000",
                      GW_COMMITTED_OMIT);
        return;
    }
    if (!gw_coh_lease_ok(gw_shared_coh(ctx->shared), cm_mono_ms())) {
        gw_conn_error(c, 503, "unavailable", "no read lease: the shard has no leader right now",
                      GW_COMMITTED_OMIT);
        return;
    }
    struct gw_list *l = cm_calloc(1, sizeof(*l));
    if (l == NULL) {
        gw_conn_error(c, 500, "internal", "out of memory", GW_COMMITTED_OMIT);
        return;
    }
    if (gw_query_param(target, "cursor", l->cursor, sizeof(l->cursor)) < 0) {
        cm_free(l);
        gw_conn_error(c, 400, "bad_request", "malformed cursor", GW_COMMITTED_OMIT);
        return;
    }
    l->ctx = ctx;
    memcpy(l->prefix, prefix, prefixlen);
    l->prefix[prefixlen] = '\0';
    gw_authz_token(req, &l->tok);
    if (l->tok.p != NULL) { /* the request is borrowed only until the first answer */
        l->tok.len = l->tok.len < sizeof(l->token) ? l->tok.len : sizeof(l->token) - 1;
        memcpy(l->token, l->tok.p, l->tok.len);
        l->tok.p = l->token;
    }
    l->want = (unsigned)limit;
    l->deadline_ms = cm_mono_ms() + GW_LIST_DEADLINE_MS;
    cm_sbuf_init(&l->doc);
    json_begin(&l->doc, l->prefix);
    hw__list__init(&l->msg);
    l->msg.prefix = l->prefix;
    l->msg.cursor = l->cursor;
    l->msg.limit = (uint32_t)limit;
    /* shard_count is 1 today: everything is on shard 0 (list.h says how more shards merge). */
    if (gw_lcall_start(&l->call, ctx, c, HW__MSG_TYPE__MSG_LIST, 0, l->deadline_ms, &list_ops, l) !=
        0) {
        list_free(l);
        gw_conn_error(c, 500, "internal", "out of memory", GW_COMMITTED_OMIT);
    }
}
