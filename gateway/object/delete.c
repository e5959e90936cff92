/* DELETE through the shard leader (a client-bound leader request, lcall.h).
 *
 * Happy path: note the write (reads of the key go to the leader, the cached copy is dropped)
 *   -> DELETE at the leader -> DELETE_OK -> 204 (404 when the key did not exist) -> note again.
 * Failures: no leader within the deadline -> 503 committed:false; sent but no definitive
 *   answer -> 504 committed:null.
 * Close: the client going away cancels the leader request (del_gone). */
#include "object/delete.h"

#include <string.h>

#include "access/key.h"
#include "alloc.h"
#include "cluster/cluster.h"
#include "object/answer.h"
#include "object/lcall.h"
#include "object/shared.h"
#include "shard.h"
#include "timeutil.h"

struct gw_del {
    struct gw_lcall call;
    struct gw_shared *sh; /* borrowed: the server holds a ref until it is freed */
    char key[GW_KEY_MAX + 1];
    uint8_t op_id[16]; /* the same in every attempt: a retry deletes nothing twice */
    Hw__Delete msg;
};

static void del_build(void *arg, Hw__Envelope *env)
{
    struct gw_del *d = arg;
    env->delete_ = &d->msg;
}

/* Reads of the key go to the leader for a while; this process's cached copy is dropped. Done
 * before the DELETE and again once it ended (a read in between may have cached the old bytes). */
static void del_forget(struct gw_del *d)
{
    gw_shared_note_write(d->sh, d->key);
}

static void del_answer(void *arg, struct gw_conn *c, enum gw_lreq_outcome outcome,
                       const Hw__Envelope *env)
{
    struct gw_del *d = arg;
    del_forget(d);
    if (outcome == GW_LREQ_TIMEOUT_UNSENT)
        gw_conn_error(c, 503, "no_quorum", "no shard leader reachable", GW_COMMITTED_FALSE);
    else if (outcome == GW_LREQ_TIMEOUT_SENT)
        gw_conn_error(c, 504, "timeout", "delete outcome unknown", GW_COMMITTED_NULL);
    else if (env->type == HW__MSG_TYPE__MSG_DELETE_OK && env->delete_ok != NULL &&
             env->delete_ok->found) {
        gw_coh_note_safe(gw_shared_coh(d->sh), env->delete_ok->version);
        gw_conn_respond(c, 204, NULL, NULL, NULL, 0);
    } else if (env->type == HW__MSG_TYPE__MSG_DELETE_OK)
        gw_answer_not_found(c);
    else
        gw_conn_error(c, 500, "internal", env->message ? env->message : "delete refused",
                      GW_COMMITTED_FALSE);
    cm_free(d);
}

static void del_gone(void *arg)
{
    struct gw_del *d = arg;
    del_forget(d);
    cm_free(d);
}

static const struct gw_lcall_ops del_ops = {del_build, del_answer, del_gone};

void gw_delete_start(struct gw_ctx *ctx, struct gw_conn *c, const char *key, size_t keylen)
{
    struct gw_del *d = cm_calloc(1, sizeof(*d));
    if (d == NULL) {
        gw_conn_error(c, 500, "internal", "out of memory", GW_COMMITTED_FALSE);
        return;
    }
    d->sh = ctx->shared;
    memcpy(d->key, key, keylen);
    d->key[keylen] = '\0';
    hw__delete__init(&d->msg);
    d->msg.key = d->key;
    if (uv_random(NULL, NULL, d->op_id, sizeof(d->op_id), 0, NULL) != 0) {
        cm_free(d);
        gw_conn_error(c, 500, "internal", "no randomness for a delete id", GW_COMMITTED_FALSE);
        return;
    }
    d->msg.op_id.data = d->op_id;
    d->msg.op_id.len = sizeof(d->op_id);
    del_forget(d);
    uint32_t shard = cm_shard_of(key, gw_cluster_shard_count(ctx->cluster));
    if (gw_lcall_start(&d->call, ctx, c, HW__MSG_TYPE__MSG_DELETE, shard,
                       cm_mono_ms() + GW_DELETE_DEADLINE_MS, &del_ops, d) != 0) {
        cm_free(d);
        gw_conn_error(c, 500, "internal", "out of memory", GW_COMMITTED_FALSE);
    }
}
