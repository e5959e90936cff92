/* LIST {prefix, cursor, limit}: keys of this node's shard under a prefix, in key order,
 * after the cursor, expired objects left out; read on the thread pool. The gateway sends it
 * to the shard leader so a listing includes every acknowledged write. */
#include "ops/list.h"

#include <string.h>

#include "alloc.h"
#include "ops/watch.h"
#include "err.h"
#include "frame.h"
#include "log.h"
#include "store/meta.h"

#define LIST_MAX 1000

struct list_op {
    struct nd_req req;
    struct nd_host *h;
    uint32_t shard;
    int64_t now_ms;        /* taken on the loop thread */
    char *prefix, *cursor; /* owned */
    uint32_t limit;
    Hw__ObjectMeta **objs;
    size_t nobjs;
    int more;
    int rv;
    uint64_t applied; /* the shard's applied index when the listing was read */
};

static void list_fn(void *arg)
{
    struct list_op *op = arg;
    struct nd_skey pre, start;
    int64_t now = op->now_ms;
    struct nd_store_iter *it;
    nd_skey_meta(&pre, op->shard, op->prefix, strlen(op->prefix));
    if (op->cursor[0] != '\0' && strncmp(op->cursor, op->prefix, strlen(op->prefix)) == 0)
        nd_skey_meta(&start, op->shard, op->cursor, strlen(op->cursor));
    else
        start = pre;
    op->objs = cm_calloc(op->limit, sizeof(*op->objs));
    if (op->objs == NULL) {
        op->rv = CM_ENOMEM;
        return;
    }
    op->rv = nd_store_iter_new(op->h->store, 0, &it);
    if (op->rv != 0)
        return;
    for (nd_store_iter_seek(it, start.b, start.len); nd_store_iter_valid(it);
         nd_store_iter_next(it)) {
        size_t klen, vlen;
        const char *k = nd_store_iter_key(it, &klen);
        if (!nd_skey_has_prefix(k, klen, &pre))
            break;
        if (start.len != pre.len && klen == start.len && memcmp(k, start.b, klen) == 0)
            continue; /* the cursor itself was on the previous page */
        if (op->nobjs == op->limit) {
            op->more = 1;
            break;
        }
        const char *v = nd_store_iter_value(it, &vlen);
        Hw__ObjectMeta *m = nd_meta_unpack(v, vlen);
        if (m == NULL)
            continue;
        if (m->expires_ms > 0 && now >= m->expires_ms) {
            hw__object_meta__free_unpacked(m, NULL);
            continue;
        }
        op->objs[op->nobjs++] = m;
    }
    nd_store_iter_free(it);
}

static void list_end(struct list_op *op)
{
    for (size_t i = 0; i < op->nobjs; i++)
        hw__object_meta__free_unpacked(op->objs[i], NULL);
    cm_free(op->objs);
    cm_free(op->prefix);
    cm_free(op->cursor);
    nd_req_end(&op->req);
    cm_free(op);
}

static void list_send(struct list_op *op)
{
    Hw__Envelope env;
    Hw__ListOk ok = HW__LIST_OK__INIT;
    cm_env_init(&env, HW__MSG_TYPE__MSG_LIST_OK, 0, 0);
    env.applied = op->applied;
    ok.n_objects = op->nobjs;
    ok.objects = op->objs;
    ok.next_cursor = op->more && op->nobjs > 0 ? op->objs[op->nobjs - 1]->key : "";
    env.list_ok = &ok;
    nd_req_send(&op->req, &env, NULL, 0);
}

/* The listing's state is known to every gateway lease holder (ops/watch.h), or leadership was
 * lost meanwhile. */
static void on_list_safe(void *arg, int ok)
{
    struct list_op *op = arg;
    if (ok)
        list_send(op);
    else
        nd_req_error(&op->req, HW__CODE__CODE_UNAVAILABLE, "leadership lost; list again");
    list_end(op);
}

static void list_done(void *arg, int status)
{
    struct list_op *op = arg;
    struct nd_shard *sh = nd_host_shard(op->h, op->shard);
    if (status != 0 || op->rv != 0) {
        nd_req_error(&op->req, HW__CODE__CODE_INTERNAL, "listing failed");
        list_end(op);
        return;
    }
    op->applied = sh != NULL ? nd_shard_applied(sh) : 0;
    /* No entry may show before every lease holder knows it: a later read through any gateway
     * must not go back behind this listing. */
    if (sh != NULL && sh->watch != NULL && nd_shard_is_leader(sh) &&
        nd_watch_hold(sh->watch, op->applied, on_list_safe, op) == 0)
        return;
    list_send(op);
    list_end(op);
}

void nd_op_list(void *ctx, struct nd_sconn *sc, const Hw__Envelope *env, const struct cm_slice *pl)
{
    struct nd_host *h = ctx;
    const Hw__List *l = env->list;
    if (l == NULL || l->prefix == NULL || l->prefix[0] != '/' || strlen(l->prefix) > 1024 ||
        (l->cursor != NULL && strlen(l->cursor) > 1024)) {
        nd_sconn_error(sc, env, HW__CODE__CODE_BAD_REQUEST,
                       "LIST needs a prefix starting with '/'");
        return;
    }
    struct nd_shard *sh = nd_host_shard(h, env->shard);
    if (sh != NULL && l->min_index > 0 && !nd_shard_is_leader(sh)) {
        /* A gateway's listing is the leader's (it holds it until it is safe). */
        struct nd_req r;
        nd_req_begin(&r, sc, env);
        nd_host_not_leader(h, sh, &r);
        nd_req_end(&r);
        return;
    }
    if (sh != NULL && nd_shard_applied(sh) < l->min_index) {
        /* A gateway's listing must include everything acknowledged before it began. */
        nd_sconn_error(sc, env, HW__CODE__CODE_UNAVAILABLE, "replica is behind; try another");
        return;
    }
    struct list_op *op = cm_calloc(1, sizeof(*op));
    if (op == NULL || (op->prefix = cm_strdup(l->prefix)) == NULL ||
        (op->cursor = cm_strdup(l->cursor ? l->cursor : "")) == NULL) {
        if (op != NULL)
            cm_free(op->prefix);
        cm_free(op);
        nd_sconn_error(sc, env, HW__CODE__CODE_INTERNAL, "out of memory");
        return;
    }
    op->h = h;
    op->shard = env->shard;
    op->now_ms = nd_now_ms(h->clock);
    op->limit = l->limit == 0 || l->limit > LIST_MAX ? LIST_MAX : l->limit;
    nd_req_begin(&op->req, sc, env);
    if (nd_work(h->work, list_fn, list_done, op) != 0) {
        nd_req_error(&op->req, HW__CODE__CODE_INTERNAL, "cannot queue the listing");
        cm_free(op->prefix);
        cm_free(op->cursor);
        nd_req_end(&op->req);
        cm_free(op);
    }
}
