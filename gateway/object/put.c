/* Write path.
 *
 * Happy path: start -> acquire a connection to every replica -> body pieces (slices of the
 *   client's read buffers; pieces under GW_PUT_COPY_BELOW are copied into a per-upload staging
 *   buffer instead, so tiny chunks neither pin read buffers nor cost a slice each) are appended
 *   to chunks of <= GW_STAGE_MAX; a chunk is sealed when full, at the body end, or once a
 *   replica acknowledged all it was sent (not when the declared length fits one chunk: that
 *   body goes whole at its end), and sent as one STAGE frame to every live replica
 *   (pipelined) -> STAGE_OK frees chunks every live replica holds -> body end: FINISH to each
 *   replica right behind its last STAGE (a node reads one request of a connection at a time),
 *   carrying the last chunk itself when the node said finish_bytes (one store write, one
 *   answer, instead of two) -> FINISH_OK from a quorum (+ grace for the rest
 *   that are live: a replica silent on the commit watch gets none)
 *   -> COMMIT at the leader (leader.c) -> COMMIT_OK -> 201/204.
 * Conditional writes: If-Match / If-None-Match ride in the COMMIT (Hw__Precondition) and the
 *   shard FSM decides them at apply, atomically with the write: CODE_PRECONDITION_FAILED ->
 *   412 precondition_failed, committed false (nothing was written; staged bytes are GC'd).
 * Flow control: the client is paused while the upload holds > GW_PUT_UNACKED_MAX: payload not
 *   yet acknowledged by every live replica plus GW_PUT_CHUNK_COST per chunk and
 *   GW_PUT_FRAME_COST per STAGE frame (so a body of 1-byte chunks is bounded by the same
 *   memory as one of big pieces).
 * Failures: a replica that errors, closes, fails to connect or stalls is dropped; fewer live
 *   than a quorum -> 503 no_quorum (committed false). A replica that answers NO_SPACE (its disk
 *   is full) is dropped too, logged at info, and remembered on this loop for
 *   GW_FULL_REMEMBER_MS so later uploads leave it out from the start; when the replicas left
 *   cannot make a quorum because some were full -> 507 insufficient_storage (committed false). Body
 * over --max-object-size -> 413. GW_PUT_DEADLINE_MS after the body end: 503 (commit never sent) or
 * 504 (sent, no answer). The client going away aborts everything. Close: put_end releases every
 * connection (reusable only after FINISH_OK), cancels acquires and the commit, frees the chunks and
 * closes the timer; memory goes in the close callback. */
#include "object/put.h"

#include <assert.h>
#include <string.h>

#include "alloc.h"
#include "object/cache.h"
#include "cluster/cluster.h"
#include "object/content_type.h"
#include "crc32c.h"
#include "err.h"
#include "etag.h"
#include "frame.h"
#include "http/httpdate.h"
#include "access/key.h"
#include "cluster/leader.h"
#include "object/list.h"
#include "object/objresp.h"
#include "log.h"
#include "object/shared.h"
#include "shard.h"
#include "timeutil.h"
#include "cluster/upstream.h"

#define CHUNK_SLICES 64

struct chunk {
    struct chunk *next;
    uint64_t off;
    size_t len;
    size_t cost; /* counted in gw_put.held besides len */
    size_t n;
    struct cm_slice s[CHUNK_SLICES];
};

enum rep_state { REP_CONNECTING, REP_LIVE, REP_DONE, REP_DROPPED };

struct replica {
    struct gw_put *put;
    uint32_t id;
    enum rep_state st;
    struct gw_up_wait wait;
    struct gw_up_conn *uc;
    struct chunk *next_send; /* next chunk to STAGE; NULL = all sealed chunks sent */
    uint64_t sent, acked;
    uint64_t progress_ms;
    uint64_t finish_req;
    int finish_sent;
    int finish_bytes; /* its node takes the last chunk in the FINISH (HELLO_OK) */
    int full;         /* dropped because its disk is full (NO_SPACE, or remembered as full) */
};

enum put_state { PUT_STREAMING, PUT_FINISHING, PUT_COMMITTING, PUT_DONE };

struct gw_put {
    struct gw_ctx *ctx;
    struct gw_conn *conn; /* NULL once answered or aborted */
    enum put_state st;
    char key[GW_KEY_MAX + 1];
    /* borrowed from the request (header slices, NUL-terminated in place) or a static default:
     * valid until the request is answered or aborted, which ends every use (the COMMIT is
     * cancelled on abort) */
    const char *ctype;
    const char *cache_control;
    int64_t ttl; /* seconds, 0 = none */
    /* If-Match / If-None-Match of the write, sent in the COMMIT (NULL = unconditional). */
    Hw__Precondition *precond;
    Hw__Precondition precond_msg;
    uint32_t shard;
    uint8_t upload_id[16];
    struct replica reps[GW_MAX_REPLICAS];
    size_t nrep, quorum;
    struct chunk *head, *tail; /* sealed chunks not yet acknowledged by every live replica */
    struct chunk *open;        /* being filled */
    uint64_t total;
    uint64_t held;          /* bytes of chunks held + their per-chunk and per-frame cost */
    struct cm_buf *staging; /* ref: small body pieces are copied here (NULL before the first) */
    uint64_t max;
    uint32_t crc;
    int body_done;
    int whole; /* declared length <= GW_STAGE_MAX: the body goes in one frame, at its end */
    /* Write-through (cache.h): a copy of a whole, cacheable body, filled as chunks seal and
     * put in the hot-object cache once committed; NULL when not kept. */
    struct gw_cobj *keep;
    int paused;
    uint64_t body_end_ms, quorum_ms;
    struct gw_lreq *commit;
    uint32_t holders[GW_MAX_REPLICAS];
    size_t nholders;
    Hw__Commit commit_msg;
    uv_timer_t timer;
};

static void put_pump(struct gw_put *p);
static void put_check(struct gw_put *p);
static void put_seal(struct gw_put *p);

/* The only places states change; the asserts document the legal transitions. */
static void rep_set(struct replica *r, enum rep_state to)
{
    assert((r->st == REP_CONNECTING && (to == REP_LIVE || to == REP_DROPPED)) ||
           (r->st == REP_LIVE && (to == REP_DONE || to == REP_DROPPED)));
    r->st = to;
}

static void put_set(struct gw_put *p, enum put_state to)
{
    assert((p->st == PUT_STREAMING && (to == PUT_FINISHING || to == PUT_DONE)) ||
           (p->st == PUT_FINISHING && (to == PUT_COMMITTING || to == PUT_DONE)) ||
           (p->st == PUT_COMMITTING && to == PUT_DONE));
    p->st = to;
}

/* ---- ending ---- */

static void on_timer_closed(uv_handle_t *h)
{
    cm_free(h->data);
}

static void chunk_free(struct chunk *ch)
{
    for (size_t i = 0; i < ch->n; i++)
        cm_slice_release(&ch->s[i]);
    cm_free(ch);
}

static void put_end(struct gw_put *p)
{
    if (p->st == PUT_DONE)
        return;
    put_set(p, PUT_DONE);
    for (size_t i = 0; i < p->nrep; i++) {
        struct replica *r = &p->reps[i];
        gw_up_cancel(&r->wait);
        if (r->uc != NULL)
            gw_up_release(r->uc, r->st == REP_DONE);
        r->uc = NULL;
    }
    gw_lreq_cancel(p->commit);
    p->commit = NULL;
    while (p->head != NULL) {
        struct chunk *ch = p->head;
        p->head = ch->next;
        chunk_free(ch);
    }
    if (p->open != NULL)
        chunk_free(p->open);
    p->open = NULL;
    p->tail = NULL;
    p->held = 0;
    cm_buf_unref(p->staging);
    p->staging = NULL;
    gw_cobj_unref(p->keep);
    p->keep = NULL;
    uv_close((uv_handle_t *)&p->timer, on_timer_closed);
}

static void put_fail(struct gw_put *p, int status, const char *code, const char *msg,
                     enum gw_committed committed)
{
    if (p->st == PUT_DONE)
        return;
    struct gw_conn *c = p->conn;
    p->conn = NULL;
    put_end(p);
    if (c != NULL)
        gw_conn_error(c, status, code, msg, committed);
}

/* Put the committed body in the hot-object cache when it was kept whole and the node told its
 * version's times (an older node does not). */
static void put_write_through(struct gw_put *p, const Hw__CommitOk *ok)
{
    struct gw_cache *cache = gw_shared_cache(p->ctx->shared);
    struct gw_cobj *o = p->keep;
    if (cache == NULL || o == NULL || ok->created_ms <= 0 || o->size != p->total ||
        (o->body != NULL && o->body->len != o->size))
        return;
    o->version = ok->version;
    o->created_ms = ok->created_ms;
    o->expires_ms = ok->expires_ms;
    if (o->expires_ms > 0 && cm_wall_ms() >= o->expires_ms)
        return;
    uint64_t now = cm_mono_ms();
    if (gw_cache_put(cache, o, UINT64_MAX, now))
        GW_METRIC_ADD(p->ctx->metrics, cache_write_through, 1);
}

static void put_succeed(struct gw_put *p, const Hw__CommitOk *ok)
{
    gw_coh_note_safe(gw_shared_coh(p->ctx->shared), ok->version);
    struct gw_conn *c = p->conn;
    p->conn = NULL;
    CM_INFO("msg=\"stored\" key=\"%s\" size=%llu version=%llu created=%d holders=%zu", p->key,
            (unsigned long long)p->total, (unsigned long long)ok->version, (int)ok->created,
            p->nholders);
    /* read-your-writes on this gateway: no stale cached copy; then the new version itself,
     * so that its first reader here needs no node */
    gw_shared_note_write(p->ctx->shared, p->key);
    put_write_through(p, ok);
    put_end(p);
    if (c == NULL)
        return;
    char etag[CM_ETAG_MAX], extra[64];
    cm_etag_format(ok->version, etag);
    snprintf(extra, sizeof(extra), "ETag: %s\r\n", etag);
    gw_conn_respond(c, ok->created ? 201 : 204, NULL, extra, NULL, 0);
}

/* ---- replicas ---- */

static size_t count_state(const struct gw_put *p, enum rep_state st)
{
    size_t n = 0;
    for (size_t i = 0; i < p->nrep; i++)
        n += p->reps[i].st == st;
    return n;
}

static void rep_drop(struct replica *r, const char *why)
{
    struct gw_put *p = r->put;
    if (r->st == REP_DROPPED || r->st == REP_DONE)
        return;
    /* A node the poller already knows to be down would log this for every upload; a full one
     * is expected to be left out until space returns. */
    int level = gw_cluster_reachable(p->ctx->cluster, r->id) ? CM_LOG_WARN : CM_LOG_DEBUG;
    CM_LOG(r->full ? CM_LOG_INFO : level,
           "msg=\"replica dropped from upload\" key=\"%s\" node=%u why=\"%s\"", p->key, r->id, why);
    rep_set(r, REP_DROPPED);
    r->next_send = NULL;
    gw_up_cancel(&r->wait);
    if (r->uc != NULL)
        gw_up_release(r->uc, 0);
    r->uc = NULL;
}

/* ---- full nodes (NO_SPACE), remembered per loop ---- */

static void full_note(struct gw_ctx *ctx, uint32_t id)
{
    uint64_t now = cm_mono_ms();
    struct gw_full_node *slot = &ctx->full_nodes[0]; /* its own, else the oldest mark */
    for (size_t i = 0; i < GW_FULL_NODES_MAX; i++) {
        struct gw_full_node *f = &ctx->full_nodes[i];
        if (f->id == id) {
            slot = f;
            break;
        }
        if (f->until_ms < slot->until_ms)
            slot = f;
    }
    if (slot->id != id || slot->until_ms <= now)
        CM_INFO("msg=\"node out of space: uploads leave it out\" node=%u for_ms=%u", id,
                GW_FULL_REMEMBER_MS);
    slot->id = id;
    slot->until_ms = now + GW_FULL_REMEMBER_MS;
}

static int full_known(const struct gw_ctx *ctx, uint32_t id)
{
    uint64_t now = cm_mono_ms();
    for (size_t i = 0; i < GW_FULL_NODES_MAX; i++)
        if (ctx->full_nodes[i].id == id && ctx->full_nodes[i].until_ms > now)
            return 1;
    return 0;
}

/* Fewer live replicas than a quorum: 507 when full disks are why, else 503. */
static void put_no_quorum(struct gw_put *p, const char *msg)
{
    size_t full = 0;
    for (size_t i = 0; i < p->nrep; i++)
        full += p->reps[i].full;
    if (full > 0)
        put_fail(p, 507, "insufficient_storage", "too few replicas have space to store the object",
                 GW_COMMITTED_FALSE);
    else
        put_fail(p, 503, "no_quorum", msg, GW_COMMITTED_FALSE);
}

/* Free chunks every live replica has acknowledged. */
static void put_trim(struct gw_put *p)
{
    uint64_t min = UINT64_MAX;
    for (size_t i = 0; i < p->nrep; i++) {
        const struct replica *r = &p->reps[i];
        if ((r->st == REP_LIVE || r->st == REP_CONNECTING) && r->acked < min)
            min = r->acked;
    }
    while (p->head != NULL && p->head->off + p->head->len <= min) {
        struct chunk *ch = p->head;
        p->head = ch->next;
        if (p->head == NULL)
            p->tail = NULL;
        p->held -= ch->len + ch->cost;
        chunk_free(ch);
    }
}

/* Chunks are held until every live replica acknowledged them, so p->held (payload + overhead)
 * is at least the byte lag of the slowest replica. */
static void put_flow(struct gw_put *p)
{
    if (p->conn == NULL || p->body_done)
        return;
    if (p->held > GW_PUT_UNACKED_MAX && !p->paused) {
        p->paused = 1;
        gw_conn_read_pause(p->conn);
    } else if (p->held <= GW_PUT_UNACKED_MAX && p->paused) {
        p->paused = 0;
        gw_conn_read_resume(p->conn);
    }
}

/* FINISH, carrying ch (the last chunk, not yet sent) when given. */
static void rep_send_finish(struct replica *r, const struct chunk *ch)
{
    struct gw_put *p = r->put;
    Hw__Envelope env;
    Hw__Finish fin = HW__FINISH__INIT;
    cm_env_init(&env, HW__MSG_TYPE__MSG_FINISH, 0, p->shard);
    fin.upload_id.data = p->upload_id;
    fin.upload_id.len = sizeof(p->upload_id);
    fin.key = p->key;
    fin.size = p->total;
    fin.checksum = p->crc;
    env.finish = &fin;
    r->finish_sent = 1;
    r->progress_ms = cm_mono_ms();
    if (gw_up_send(r->uc, &env, ch ? ch->s : NULL, ch ? ch->n : 0, &r->finish_req) != 0) {
        rep_drop(r, "send failed");
        return;
    }
    if (ch != NULL) {
        r->sent = ch->off + ch->len;
        r->next_send = NULL;
    }
}

static void rep_send_stages(struct replica *r)
{
    struct gw_put *p = r->put;
    while (r->st == REP_LIVE && r->next_send != NULL) {
        struct chunk *ch = r->next_send;
        if (p->body_done && ch->next == NULL && r->finish_bytes && !r->finish_sent) {
            rep_send_finish(r, ch); /* the last chunk and the finish: one node write */
            return;
        }
        Hw__Envelope env;
        Hw__Stage st = HW__STAGE__INIT;
        cm_env_init(&env, HW__MSG_TYPE__MSG_STAGE, 0, p->shard);
        st.upload_id.data = p->upload_id;
        st.upload_id.len = sizeof(p->upload_id);
        st.key = p->key;
        st.offset = ch->off;
        env.stage = &st;
        if (r->sent == r->acked)
            r->progress_ms = cm_mono_ms();
        if (gw_up_send(r->uc, &env, ch->s, ch->n, NULL) != 0) {
            rep_drop(r, "send failed");
            return;
        }
        r->sent = ch->off + ch->len;
        r->next_send = ch->next;
    }
    if (r->st == REP_LIVE && p->body_done && !r->finish_sent && r->sent == p->total)
        rep_send_finish(r, NULL);
}

static void rep_on_frame(void *arg, struct gw_up_conn *uc, const Hw__Envelope *env,
                         const struct cm_slice *payload)
{
    struct replica *r = arg;
    struct gw_put *p = r->put;
    if (env->type == HW__MSG_TYPE__MSG_STAGE_OK && env->stage_ok != NULL) {
        if (env->stage_ok->received > r->sent) {
            rep_drop(r, "acknowledged bytes never sent");
        } else {
            if (env->stage_ok->received > r->acked)
                r->progress_ms = cm_mono_ms();
            r->acked = env->stage_ok->received;
        }
    } else if (env->type == HW__MSG_TYPE__MSG_FINISH_OK && env->finish_ok != NULL &&
               env->req_id == r->finish_req) {
        if (env->finish_ok->size != p->total || env->finish_ok->checksum != p->crc) {
            rep_drop(r, "finish: size or checksum differs");
        } else {
            rep_set(r, REP_DONE);
            r->acked = p->total;
            gw_up_release(r->uc, 1);
            r->uc = NULL;
            if (p->quorum_ms == 0 && count_state(p, REP_DONE) >= p->quorum)
                p->quorum_ms = cm_mono_ms();
        }
    } else if (env->type == HW__MSG_TYPE__MSG_ERROR && env->code == HW__CODE__CODE_NO_SPACE) {
        r->full = 1;
        full_note(p->ctx, r->id);
        rep_drop(r, "no space left on the node");
    } else if (env->type == HW__MSG_TYPE__MSG_ERROR) {
        char why[160];
        snprintf(why, sizeof(why), "node error code=%d: %s", (int)env->code,
                 env->message ? env->message : "");
        rep_drop(r, why);
    } else {
        rep_drop(r, "unexpected answer");
    }
    put_check(p);
}

static void rep_on_close(void *arg, struct gw_up_conn *uc, int status)
{
    struct replica *r = arg;
    r->uc = NULL;
    rep_drop(r, "connection lost");
    put_check(r->put);
}

static void rep_on_drain(void *arg, struct gw_up_conn *uc)
{
}

static const struct gw_up_user rep_user = {rep_on_frame, rep_on_close, rep_on_drain};

static void rep_on_acquired(struct gw_up_wait *w, struct gw_up_conn *uc, int status)
{
    struct replica *r = gw_up_wait_arg(w);
    struct gw_put *p = r->put;
    if (uc == NULL) {
        rep_drop(r, cm_strerror(status));
        put_check(p);
        return;
    }
    r->uc = uc;
    r->finish_bytes = gw_up_finish_bytes(uc);
    gw_up_own(uc, &rep_user, r);
    rep_set(r, REP_LIVE);
    r->progress_ms = cm_mono_ms();
    r->next_send = p->head; /* nothing was trimmed past a connecting replica: head is at 0 */
    put_check(p);
}

/* ---- commit ---- */

static void commit_build(void *arg, Hw__Envelope *env)
{
    struct gw_put *p = arg;
    env->commit = &p->commit_msg;
}

static void commit_done(void *arg, enum gw_lreq_outcome outcome, const Hw__Envelope *env)
{
    struct gw_put *p = arg;
    p->commit = NULL;
    if (outcome == GW_LREQ_TIMEOUT_UNSENT) {
        put_fail(p, 503, "no_quorum", "no shard leader reachable to commit the write",
                 GW_COMMITTED_FALSE);
    } else if (outcome == GW_LREQ_TIMEOUT_SENT) {
        put_fail(p, 504, "timeout", "commit outcome unknown (no answer from the leader)",
                 GW_COMMITTED_NULL);
    } else if (env->type == HW__MSG_TYPE__MSG_COMMIT_OK && env->commit_ok != NULL) {
        put_succeed(p, env->commit_ok);
    } else if (env->type == HW__MSG_TYPE__MSG_ERROR &&
               env->code == HW__CODE__CODE_PRECONDITION_FAILED) {
        put_fail(p, 412, "precondition_failed", "the object's current version does not match",
                 GW_COMMITTED_FALSE);
    } else {
        char msg[160];
        snprintf(msg, sizeof(msg), "commit refused (code %d): %s", (int)env->code,
                 env->message ? env->message : "");
        put_fail(p, 500, "internal", msg, GW_COMMITTED_FALSE);
    }
}

static void put_commit(struct gw_put *p)
{
    put_set(p, PUT_COMMITTING);
    p->nholders = 0;
    for (size_t i = 0; i < p->nrep; i++) {
        struct replica *r = &p->reps[i];
        if (r->st == REP_DONE)
            p->holders[p->nholders++] = r->id;
        else if (r->st != REP_DROPPED)
            rep_drop(r, "too slow: committing without it");
    }
    hw__commit__init(&p->commit_msg);
    p->commit_msg.key = p->key;
    p->commit_msg.upload_id.data = p->upload_id;
    p->commit_msg.upload_id.len = sizeof(p->upload_id);
    p->commit_msg.size = p->total;
    p->commit_msg.checksum = p->crc;
    p->commit_msg.content_type = (char *)p->ctype;
    p->commit_msg.holders = p->holders;
    p->commit_msg.n_holders = p->nholders;
    p->commit_msg.cache_control = (char *)p->cache_control;
    p->commit_msg.ttl_seconds = p->ttl;
    p->commit_msg.precondition = p->precond;
    struct gw_lreq_via via = {p->ctx->loop, p->ctx->up, p->ctx->cluster};
    if (gw_lreq_start(&via, HW__MSG_TYPE__MSG_COMMIT, p->shard, p->body_end_ms + GW_PUT_DEADLINE_MS,
                      commit_build, commit_done, p, &p->commit) != 0)
        put_fail(p, 500, "internal", "out of memory", GW_COMMITTED_FALSE);
}

/* Has a live replica acknowledged all it was sent? Then the open chunk goes out now; while
 * every replica is busy it grows towards GW_STAGE_MAX instead: a node writes one STAGE at a
 * time per upload, so a 2 MB body in socket-read-sized (64 KiB) frames cost 32 round trips
 * through its work queue, in big frames a few. */
static int put_replica_idle(const struct gw_put *p)
{
    for (size_t i = 0; i < p->nrep; i++) {
        const struct replica *r = &p->reps[i];
        if (r->st == REP_LIVE && r->next_send == NULL && r->acked == r->sent)
            return 1;
    }
    return 0;
}

/* Is a replica still on its way that the grace should wait for: not done, not dropped, and not
 * silent on the commit watch (a paused or cut-off node would cost every upload the grace)? */
static int put_awaited(const struct gw_put *p)
{
    for (size_t i = 0; i < p->nrep; i++) {
        const struct replica *r = &p->reps[i];
        if (r->st != REP_DONE && r->st != REP_DROPPED && gw_cluster_live(p->ctx->cluster, r->id))
            return 1;
    }
    return 0;
}

/* Re-evaluate after any event: quorum still possible? time to commit? */
static void put_check(struct gw_put *p)
{
    if (p->st == PUT_DONE || p->st == PUT_COMMITTING)
        return;
    size_t alive = p->nrep - count_state(p, REP_DROPPED);
    if (alive < p->quorum) {
        put_no_quorum(p, "too few replicas reachable to store the object");
        return;
    }
    put_trim(p);
    if (p->open != NULL && p->open->len > 0 && !p->whole && put_replica_idle(p))
        put_seal(p);
    put_pump(p);
    if (p->st == PUT_DONE)
        return;
    put_flow(p);
    size_t done = count_state(p, REP_DONE);
    if (p->body_done && done >= p->quorum &&
        (done == alive || cm_mono_ms() >= p->quorum_ms + GW_PUT_GRACE_MS || !put_awaited(p)))
        put_commit(p);
}

static void put_pump(struct gw_put *p)
{
    for (size_t i = 0; i < p->nrep && p->st != PUT_DONE; i++)
        rep_send_stages(&p->reps[i]);
    if (p->st != PUT_DONE && p->nrep - count_state(p, REP_DROPPED) < p->quorum)
        put_no_quorum(p, "too few replicas reachable to store the object");
}

static void on_tick(uv_timer_t *t)
{
    struct gw_put *p = t->data;
    uint64_t now = cm_mono_ms();
    if (p->st == PUT_DONE || p->st == PUT_COMMITTING)
        return;
    if (p->body_done && now >= p->body_end_ms + GW_PUT_DEADLINE_MS) {
        put_no_quorum(p, "replicas did not confirm the data in time");
        return;
    }
    for (size_t i = 0; i < p->nrep; i++) {
        struct replica *r = &p->reps[i];
        int waiting = r->acked < r->sent || (r->finish_sent && r->st == REP_LIVE);
        if (r->st == REP_LIVE && waiting && now - r->progress_ms >= GW_PUT_STALL_MS)
            rep_drop(r, "stalled");
    }
    put_check(p);
}

/* ---- body ---- */

/* Copy a sealed chunk into the write-through copy; a chunk that does not fit drops it. */
/* Keep a copy of the body for the cache when it is whole (at most one frame), fits the cache and
 * its Cache-Control lets a gateway store it. */
static void put_keep_setup(struct gw_put *p, const struct gw_http_req *req)
{
    struct gw_cache *cache = gw_shared_cache(p->ctx->shared);
    if (cache == NULL || !p->whole || req->content_length == 0 ||
        req->content_length > gw_cache_max_object(cache) ||
        !gw_cache_storable(
            gw_cache_control(gw_shared_cache_rules(p->ctx->shared), p->key, p->cache_control)))
        return;
    p->keep = gw_cobj_new(p->key, 0, req->content_length, p->ctype, p->cache_control, 0, 0);
}

static void put_keep_chunk(struct gw_put *p, const struct chunk *ch)
{
    struct cm_buf *b = p->keep->body;
    if (b == NULL || ch->off != b->len || ch->len > p->keep->size - b->len) {
        gw_cobj_unref(p->keep);
        p->keep = NULL;
        return;
    }
    for (size_t i = 0; i < ch->n; i++) {
        memcpy(b->data + b->len, cm_slice_ptr(&ch->s[i]), ch->s[i].len);
        b->len += ch->s[i].len;
    }
}

static void put_seal(struct gw_put *p)
{
    struct chunk *ch = p->open;
    if (ch == NULL || ch->len == 0)
        return;
    p->open = NULL;
    if (p->keep != NULL)
        put_keep_chunk(p, ch);
    if (p->tail)
        p->tail->next = ch;
    else
        p->head = ch;
    p->tail = ch;
    for (size_t i = 0; i < p->nrep; i++) {
        struct replica *r = &p->reps[i];
        if (r->st == REP_LIVE && r->next_send == NULL && r->sent == ch->off)
            r->next_send = ch;
    }
}

/* Add s (borrowed) to the open chunk: as a ref, or by growing the last slice when s continues
 * it in the same buffer. */
static int put_add(struct gw_put *p, struct cm_slice s)
{
    while (s.len > 0) {
        if (p->open == NULL) {
            p->open = cm_calloc(1, sizeof(*p->open));
            if (p->open == NULL)
                return CM_ENOMEM;
            p->open->off = p->total;
            p->open->cost = GW_PUT_CHUNK_COST + p->nrep * GW_PUT_FRAME_COST;
            p->held += p->open->cost;
        }
        struct chunk *ch = p->open;
        size_t take = GW_STAGE_MAX - ch->len;
        if (take > s.len)
            take = s.len;
        struct cm_slice *last = ch->n > 0 ? &ch->s[ch->n - 1] : NULL;
        if (last != NULL && last->buf == s.buf && last->off + last->len == s.off)
            last->len += take;
        else
            ch->s[ch->n++] = cm_slice_ref(s.buf, s.off, take);
        ch->len += take;
        p->total += take;
        p->held += take;
        s.off += take;
        s.len -= take;
        if (ch->len == GW_STAGE_MAX || ch->n == CHUNK_SLICES)
            put_seal(p);
    }
    return 0;
}

/* A small piece: copied to the end of the staging buffer (bytes there never change once
 * written; a full one is left to the chunks that hold slices of it). */
static int put_add_copy(struct gw_put *p, const char *src, size_t len)
{
    while (len > 0) {
        struct cm_buf *b = p->staging;
        if (b == NULL || b->len == b->cap) {
            cm_buf_unref(b);
            p->staging = b = cm_buf_new(GW_PUT_STAGING);
            if (b == NULL)
                return CM_ENOMEM;
        }
        size_t n = b->cap - b->len < len ? b->cap - b->len : len;
        memcpy(b->data + b->len, src, n);
        struct cm_slice s = {b, b->len, n};
        b->len += n;
        int rc = put_add(p, s);
        if (rc != 0)
            return rc;
        src += n;
        len -= n;
    }
    return 0;
}

static int put_append(struct gw_put *p, const struct cm_slice *piece)
{
    if (piece->len < GW_PUT_COPY_BELOW)
        return put_add_copy(p, cm_slice_ptr(piece), piece->len);
    return put_add(p, *piece);
}

static void h_body(void *h, const struct cm_slice *piece)
{
    struct gw_put *p = h;
    if (p->st == PUT_DONE)
        return;
    if (p->total + piece->len > p->max) {
        put_fail(p, 413, "too_large", "body larger than --max-object-size", GW_COMMITTED_FALSE);
        return;
    }
    p->crc = cm_crc32c(p->crc, cm_slice_ptr(piece), piece->len);
    if (put_append(p, piece) != 0)
        put_fail(p, 500, "internal", "out of memory", GW_COMMITTED_FALSE);
}

static void h_read_done(void *h)
{
    struct gw_put *p = h;
    if (p->st == PUT_DONE)
        return;
    put_check(p); /* seals the open chunk if a replica waits for bytes */
}

static void h_body_end(void *h)
{
    struct gw_put *p = h;
    if (p->st == PUT_DONE)
        return;
    put_seal(p);
    p->body_done = 1;
    p->body_end_ms = cm_mono_ms();
    if (p->paused) {
        p->paused = 0;
        gw_conn_read_resume(p->conn);
    }
    put_set(p, PUT_FINISHING);
    put_check(p);
}

static void h_drain(void *h)
{
}

static void h_abort(void *h)
{
    struct gw_put *p = h;
    CM_INFO("msg=\"upload aborted by client\" key=\"%s\" received=%llu", p->key,
            (unsigned long long)p->total);
    p->conn = NULL;
    put_end(p);
}

static const struct gw_handler_ops put_ops = {h_body, h_read_done, h_body_end, h_drain, h_abort};

/* ---- conditional write ---- */

/* Keep the request's If-Match / If-None-Match / If-Unmodified-Since for the COMMIT: the FSM
 * evaluates them. An If-Unmodified-Since that is not a valid HTTP-date is ignored (§13.1.4). */
static void put_keep_precondition(struct gw_put *p, const struct gw_http_req *req)
{
    int64_t since = 0;
    size_t ius_len;
    const char *ius = gw_http_header(req, GW_H_IF_UNMODIFIED_SINCE, &ius_len);
    int has_ius = ius_len > 0 && gw_httpdate_parse(ius, ius_len, &since) == 0;
    int has_im = gw_http_has_header(req, GW_H_IF_MATCH);
    int has_inm = gw_http_has_header(req, GW_H_IF_NONE_MATCH);
    if (!has_im && !has_inm && !has_ius)
        return;
    hw__precondition__init(&p->precond_msg);
    p->precond_msg.has_if_unmodified_since = has_ius;
    p->precond_msg.if_unmodified_since_s = since;
    /* protobuf-c wants char *: the values are only read while the COMMIT is built */
    p->precond_msg.has_if_match = has_im;
    p->precond_msg.if_match = (char *)gw_http_header_str(req, GW_H_IF_MATCH);
    p->precond_msg.has_if_none_match = has_inm;
    p->precond_msg.if_none_match = (char *)gw_http_header_str(req, GW_H_IF_NONE_MATCH);
    p->precond = &p->precond_msg;
}

/* ---- start ---- */

static int put_setup_replicas(struct gw_put *p)
{
    struct gw_cluster *cl = p->ctx->cluster;
    uint32_t ids[GW_MAX_REPLICAS];
    size_t n = gw_cluster_replicas(cl, p->shard, ids, GW_MAX_REPLICAS);
    if (n == 0)
        return CM_EUNAVAIL;
    p->nrep = n;
    p->quorum = n / 2 + 1;
    for (size_t i = 0; i < n; i++) {
        struct replica *r = &p->reps[i];
        r->put = p;
        r->id = ids[i];
        r->st = REP_CONNECTING;
    }
    /* Replicas reported full lately are left out while the others can still make a quorum;
     * otherwise every one is asked (space may have returned: the memory saves work, it is not
     * a verdict). */
    size_t nfull = 0;
    for (size_t i = 0; i < n; i++)
        nfull += full_known(p->ctx, p->reps[i].id);
    int skip_full = n - nfull >= p->quorum;
    for (size_t i = 0; i < n; i++) {
        struct replica *r = &p->reps[i];
        const char *addr = gw_cluster_addr(cl, r->id);
        r->full = skip_full && full_known(p->ctx, r->id);
        if (r->full || addr == NULL ||
            gw_up_acquire(p->ctx->up, addr, &r->wait, rep_on_acquired, r) != 0)
            rep_set(r, REP_DROPPED);
    }
    return count_state(p, REP_DROPPED) > n - p->quorum ? CM_EUNAVAIL : 0;
}

static int ttl_value(const char *v, int64_t *ttl)
{
    int64_t n = 0;
    while (*v == ' ' || *v == '\t')
        v++;
    if (*v < '0' || *v > '9')
        return -1;
    for (; *v >= '0' && *v <= '9'; v++) {
        n = n * 10 + (*v - '0');
        if (n > GW_TTL_MAX)
            return -1;
    }
    while (*v == ' ' || *v == '\t')
        v++;
    if (*v != '\0')
        return -1;
    *ttl = n;
    return 0;
}

int gw_put_ttl(const struct gw_http_req *req, const struct gw_rules *lifecycle, const char *key,
               int64_t *ttl, const char **why)
{
    char q[32];
    int rq = gw_query_param(req->url.p ? req->url.p : "", "ttl_seconds", q, sizeof(q));
    *ttl = 0;
    if (rq != 0) {
        if (rq < 0 || ttl_value(q, ttl) != 0) {
            *why = "ttl_seconds must be a whole number of seconds (0 to 315360000)";
            return -1;
        }
        return 0;
    }
    if (gw_http_has_header(req, GW_H_TTL)) {
        if (ttl_value(gw_http_header_str(req, GW_H_TTL), ttl) != 0) {
            *why = "X-Headwater-TTL must be a whole number of seconds (0 to 315360000)";
            return -1;
        }
        return 0;
    }
    *ttl = gw_lifecycle_ttl(lifecycle, key);
    return 0;
}

void gw_put_start(struct gw_ctx *ctx, struct gw_conn *c, const struct gw_http_req *req,
                  const char *key, size_t keylen)
{
    if (!req->chunked && !req->has_length) {
        gw_conn_error(c, 411, "length_required", "PUT needs Content-Length or chunked encoding",
                      GW_COMMITTED_FALSE);
        return;
    }
    if (req->has_length && req->content_length > ctx->cfg->max_object_size) {
        gw_conn_error(c, 413, "too_large", "body larger than --max-object-size",
                      GW_COMMITTED_FALSE);
        return;
    }
    int64_t ttl = 0;
    const char *why = "";
    char keyz[GW_KEY_MAX + 1];
    memcpy(keyz, key, keylen);
    keyz[keylen] = '\0';
    if (gw_put_ttl(req, gw_shared_lifecycle(ctx->shared), keyz, &ttl, &why) != 0) {
        gw_conn_error(c, 400, "bad_request", why, GW_COMMITTED_FALSE);
        return;
    }
    /* stored values come back as header text on every read: refuse what could not be printed */
    if (!gw_field_value_ok(gw_http_header_str(req, GW_H_CONTENT_TYPE)) ||
        !gw_field_value_ok(gw_http_header_str(req, GW_H_CACHE_CONTROL))) {
        gw_conn_error(c, 400, "bad_header",
                      "Content-Type and Cache-Control must not contain control characters",
                      GW_COMMITTED_FALSE);
        return;
    }
    uint32_t shard_count = gw_cluster_shard_count(ctx->cluster);
    if (shard_count == 0) {
        gw_conn_error(c, 503, "no_quorum", "cluster map not known yet", GW_COMMITTED_FALSE);
        return;
    }
    struct gw_put *p = cm_calloc(1, sizeof(*p));
    if (p == NULL) {
        gw_conn_error(c, 500, "internal", "out of memory", GW_COMMITTED_FALSE);
        return;
    }
    p->ctx = ctx;
    p->conn = c;
    p->st = PUT_STREAMING;
    memcpy(p->key, key, keylen);
    p->key[keylen] = '\0';
    p->ctype = gw_ctype_for(key, keylen, gw_http_header_str(req, GW_H_CONTENT_TYPE));
    p->cache_control = gw_http_header_str(req, GW_H_CACHE_CONTROL);
    p->shard = cm_shard_of(key, shard_count);
    p->ttl = ttl;
    p->max = ctx->cfg->max_object_size;
    p->whole = req->has_length && req->content_length <= GW_STAGE_MAX;
    if (uv_random(NULL, NULL, p->upload_id, sizeof(p->upload_id), 0, NULL) != 0) {
        cm_free(p);
        gw_conn_error(c, 500, "internal", "no randomness for an upload id", GW_COMMITTED_FALSE);
        return;
    }
    uv_timer_init(ctx->loop, &p->timer);
    p->timer.data = p;
    uv_timer_start(&p->timer, on_tick, 50, 50);
    put_keep_setup(p, req);
    put_keep_precondition(p, req);
    gw_conn_set_handler(c, &put_ops, p);
    if (put_setup_replicas(p) != 0) {
        put_no_quorum(p, "too few replicas known to store the object");
        return;
    }
    gw_conn_continue(c);
}
