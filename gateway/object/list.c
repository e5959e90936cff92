/* Listing.
 *
 * Happy path: parse cursor/limit -> LIST at the shard leader (leader.c: NOT_LEADER / NO_LEADER
 *   retried until GW_LIST_DEADLINE_MS) -> LIST_OK -> JSON 200.
 * Failures: bad cursor/limit -> 400; no leader in time -> 503; any other node error -> 502.
 * Close: the client going away cancels the leader request. */
#include "object/list.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "object/answer.h"
#include "cluster/cluster.h"
#include "etag.h"
#include "http/httpdate.h"
#include "access/key.h"
#include "object/lcall.h"
#include "log.h"
#include "object/objresp.h"
#include "timeutil.h"

void gw_list_json(struct cm_sbuf *o, const char *prefix, Hw__ObjectMeta *const *objs, size_t n,
                  const char *next_cursor)
{
    char etag[CM_ETAG_MAX], date[GW_HTTPDATE_LEN];
    cm_sbuf_puts(o, "{\"prefix\":");
    cm_sbuf_json_str(o, prefix);
    cm_sbuf_puts(o, ",\"objects\":[");
    for (size_t i = 0; i < n; i++) {
        const Hw__ObjectMeta *m = objs[i];
        cm_etag_format(m->version, etag);
        gw_httpdate_format(m->created_ms / 1000, date);
        cm_sbuf_puts(o, i ? ",{\"key\":" : "{\"key\":");
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
    cm_sbuf_puts(o, "],\"next_cursor\":");
    if (next_cursor != NULL && next_cursor[0] != '\0')
        cm_sbuf_json_str(o, next_cursor);
    else
        cm_sbuf_puts(o, "null");
    cm_sbuf_puts(o, "}\n");
}

struct gw_list {
    struct gw_lcall call;
    char prefix[GW_KEY_MAX + 1];
    char cursor[GW_KEY_MAX + 1];
    Hw__List msg;
};

static void list_build(void *arg, Hw__Envelope *env)
{
    struct gw_list *l = arg;
    env->list = &l->msg;
}

static void list_answer(void *arg, struct gw_conn *c, enum gw_lreq_outcome outcome,
                        const Hw__Envelope *env)
{
    struct gw_list *l = arg;
    if (outcome != GW_LREQ_ANSWER) {
        gw_conn_error(c, 503, "unavailable", "no shard leader answered the listing",
                      GW_COMMITTED_OMIT);
    } else if (env->type == HW__MSG_TYPE__MSG_LIST_OK && env->list_ok != NULL) {
        struct cm_sbuf b;
        cm_sbuf_init(&b);
        gw_list_json(&b, l->prefix, env->list_ok->objects, env->list_ok->n_objects,
                     env->list_ok->next_cursor);
        gw_answer_doc(c, 200, "application/json", "Cache-Control: no-store\r\n", &b);
        cm_sbuf_free(&b);
    } else {
        char msg[160];
        snprintf(msg, sizeof(msg), "listing refused (code %d): %s", (int)env->code,
                 env->message ? env->message : "");
        gw_conn_error(c, 502, "unavailable", msg, GW_COMMITTED_OMIT);
    }
    cm_free(l);
}

static const struct gw_lcall_ops list_ops = {list_build, list_answer, cm_free};

void gw_list_start(struct gw_ctx *ctx, struct gw_conn *c, const struct gw_http_req *req,
                   const char *prefix, size_t prefixlen)
{
    const char *target = req->url.p ? req->url.p : "";
    char limit_s[32];
    unsigned long limit = GW_LIST_DEFAULT;
    int rl = gw_query_param(target, "limit", limit_s, sizeof(limit_s));
    if (rl != 0) {
        char *end = NULL;
        limit = rl > 0 && limit_s[0] >= '0' && limit_s[0] <= '9' ? strtoul(limit_s, &end, 10) : 0;
        if (rl < 0 || end == NULL || *end != '\0' || limit < 1 || limit > GW_LIST_MAX) {
            gw_conn_error(c, 400, "bad_request", "limit must be a number from 1 to 1000",
                          GW_COMMITTED_OMIT);
            return;
        }
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
    memcpy(l->prefix, prefix, prefixlen);
    l->prefix[prefixlen] = '\0';
    hw__list__init(&l->msg);
    l->msg.prefix = l->prefix;
    l->msg.cursor = l->cursor;
    l->msg.limit = (uint32_t)limit;
    /* shard_count is 1 today: everything is on shard 0 (list.h says how more shards merge). */
    if (gw_lcall_start(&l->call, ctx, c, HW__MSG_TYPE__MSG_LIST, 0,
                       cm_mono_ms() + GW_LIST_DEADLINE_MS, &list_ops, l) != 0) {
        cm_free(l);
        gw_conn_error(c, 500, "internal", "out of memory", GW_COMMITTED_OMIT);
    }
}
