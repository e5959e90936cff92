/* GET / HEAD / FETCH.
 *
 * GET/HEAD: look the key's meta up (thread pool). Found -> HEAD_OK, or DATA frames: from the
 * local bytes (read in <= 4 MiB rounds on the thread pool, one frame per stored chunk, the
 * first frame carrying the meta, the last eof), or, when the bytes are not here yet (repair
 * pending), relayed from a holder's FETCH. Absent -> read-index before answering NOT_FOUND:
 * ask the leader (or barrier, when this node leads) for its applied index, wait until this
 * node applied as far (<= 2 s, else UNAVAILABLE), look again; only then NOT_FOUND.
 * FETCH: local bytes only (committed or finished-staged), never relayed.
 * Back-pressure: a stream stops while the connection's write queue is above its high-water
 * mark and continues on drain. A stream failing midway closes the connection: the client
 * sees a truncated answer, never a wrong one. */
#include "ops/read.h"

#include <string.h>

#include "alloc.h"
#include "crc32c.h"
#include "err.h"
#include "frame.h"
#include "log.h"
#include "rpc/call.h"
#include "store/meta.h"

#define READ_ROUND (4u * 1024u * 1024u)
#define READ_MAX_CHUNKS 64
#define READ_INDEX_WAIT_MS 2000
#define READ_MIN_INDEX_WAIT_MS                                                                     \
    500 /* a gateway's min_index: past this, it tries another replica                              \
         */

enum read_kind { READ_GET, READ_HEAD, READ_FETCH };

struct read_op {
    struct nd_req req;
    struct nd_host *h;
    struct nd_shard *sh;
    enum read_kind kind;
    char *key; /* owned */
    uint8_t upload[ND_UPLOAD_ID_LEN];
    uint64_t offset, length;
    Hw__ObjectMeta *meta; /* owned */
    int from_staged;      /* FETCH served from a finished staged record */
    int read_index_done;
    int relooks;      /* lookups redone: the version was replaced under the read */
    uint64_t applied; /* this replica's applied index when the lookup ended (answers carry it) */
    /* streaming */
    struct nd_store_iter *it;
    uint64_t pos, end;
    int whole;    /* the object in one round: checked against its crc32c, not by RocksDB */
    int checked;  /* read with RocksDB's checks (the object did not fit one round) */
    uint32_t crc; /* of the bytes read so far (whole reads) */
    int sent_first;
    struct cm_slice chunks[READ_MAX_CHUNKS];
    uint64_t chunk_pos[READ_MAX_CHUNKS];
    size_t nchunks;
    int rv;
    /* read-index / proxy */
    struct raft_barrier barrier;
    struct nd_call *call;
    uint64_t wait_index;
    uint64_t wait_deadline;
    uv_timer_t timer;
    int timer_open;
    size_t holder;
};

static void op_lookup(struct read_op *op);
static void op_stream_next(void *arg);

static void on_timer_closed(uv_handle_t *h)
{
    cm_free(h->data);
}

static void op_end(struct read_op *op)
{
    nd_req_end(&op->req);
    nd_store_iter_free(op->it);
    for (size_t i = 0; i < op->nchunks; i++)
        cm_slice_release(&op->chunks[i]);
    if (op->meta != NULL)
        hw__object_meta__free_unpacked(op->meta, NULL);
    cm_free(op->key);
    if (op->timer_open)
        uv_close((uv_handle_t *)&op->timer, on_timer_closed);
    else
        cm_free(op);
}

static void op_fail(struct read_op *op, Hw__Code code, const char *msg)
{
    if (op->sent_first) {
        /* Midway: the only honest signal left is to cut the connection. */
        CM_WARN("read stream failed midway key=%s: %s", op->key, msg);
        if (nd_req_open(&op->req))
            cm_rpc_close(op->req.sc->conn);
    } else {
        nd_req_error(&op->req, code, msg);
    }
    op_end(op);
}

static int expired(struct read_op *op, const Hw__ObjectMeta *m)
{
    return m->expires_ms > 0 && nd_now_ms(op->h->clock) >= m->expires_ms;
}

/* ---- lookup (thread pool) ---- */

static void lookup_fn(void *arg)
{
    struct read_op *op = arg;
    struct nd_skey k;
    if (op->meta != NULL) {
        hw__object_meta__free_unpacked(op->meta, NULL);
        op->meta = NULL;
    }
    nd_skey_meta(&k, op->sh->id, op->key, strlen(op->key));
    op->rv = nd_meta_get(op->h->store, &k, &op->meta);
    if (op->rv != 0 && op->rv != CM_ENOTFOUND)
        op->rv = CM_ESTORE;
    if (op->kind != READ_FETCH || op->rv == CM_ESTORE)
        return;
    if (op->rv == 0 && op->meta->local && op->meta->upload_id.len == ND_UPLOAD_ID_LEN &&
        memcmp(op->meta->upload_id.data, op->upload, ND_UPLOAD_ID_LEN) == 0)
        return;
    /* Not the committed local version: a finished staged copy will do. */
    if (op->meta != NULL) {
        hw__object_meta__free_unpacked(op->meta, NULL);
        op->meta = NULL;
    }
    nd_skey_staged(&k, op->upload);
    if (nd_meta_get(op->h->store, &k, &op->meta) == 0) {
        op->rv = op->meta->local ? 0 : CM_ENOTFOUND;
        op->from_staged = 1;
    } else {
        op->rv = CM_ENOTFOUND;
    }
}

static void start_stream(struct read_op *op);
static void start_proxy(struct read_op *op);
static void read_index(struct read_op *op);

/* NOT_FOUND, final: with the applied index the absence was seen at (the gateway waits until
 * every write up to it is known to every lease holder before it answers 404). */
static void answer_not_found(struct read_op *op)
{
    Hw__Envelope env;
    cm_env_init(&env, HW__MSG_TYPE__MSG_ERROR, 0, 0);
    env.code = HW__CODE__CODE_NOT_FOUND;
    env.message = "no such object";
    env.applied = op->applied;
    nd_req_send(&op->req, &env, NULL, 0);
    op_end(op);
}

static void lookup_done(void *arg, int status)
{
    struct read_op *op = arg;
    if (status != 0 || op->rv == CM_ESTORE) {
        op_fail(op, HW__CODE__CODE_INTERNAL, "store read failed");
        return;
    }
    op->applied = nd_shard_applied(op->sh);
    if (op->kind == READ_FETCH) {
        if (op->rv != 0)
            op_fail(op, HW__CODE__CODE_NOT_FOUND, "bytes not held here");
        else
            start_stream(op);
        return;
    }
    if (op->rv == 0 && expired(op, op->meta))
        op->rv = CM_ENOTFOUND; /* never served once expired */
    if (op->rv != 0) {
        if (op->read_index_done)
            answer_not_found(op);
        else
            read_index(op);
        return;
    }
    if (op->kind == READ_HEAD) {
        Hw__Envelope env;
        Hw__HeadOk ok = HW__HEAD_OK__INIT;
        cm_env_init(&env, HW__MSG_TYPE__MSG_HEAD_OK, 0, 0);
        env.applied = op->applied;
        ok.meta = op->meta;
        env.head_ok = &ok;
        nd_req_send(&op->req, &env, NULL, 0);
        op_end(op);
        return;
    }
    if (op->meta->local)
        start_stream(op);
    else
        start_proxy(op);
}

static void op_lookup(struct read_op *op)
{
    if (nd_work(op->h->work, lookup_fn, lookup_done, op) != 0)
        op_fail(op, HW__CODE__CODE_INTERNAL, "cannot queue the read");
}

/* ---- read-index ---- */

static void on_wait_timer(uv_timer_t *t)
{
    struct read_op *op = t->data;
    if (nd_shard_applied(op->sh) >= op->wait_index) {
        uv_timer_stop(t);
        op->read_index_done = 1;
        op_lookup(op);
    } else if (nd_mono_ms(op->h->clock) >= op->wait_deadline || op->h->stopping) {
        uv_timer_stop(t);
        op_fail(op, HW__CODE__CODE_UNAVAILABLE, "replica is behind the leader; try another");
    }
}

static void wait_applied_for(struct read_op *op, uint64_t index, unsigned max_ms)
{
    op->wait_index = index;
    op->wait_deadline = nd_mono_ms(op->h->clock) + max_ms;
    if (!op->timer_open) {
        uv_timer_init(op->h->loop, &op->timer);
        op->timer.data = op;
        op->timer_open = 1;
    }
    uv_timer_start(&op->timer, on_wait_timer, 0, 2);
}

static void wait_applied(struct read_op *op, uint64_t index)
{
    wait_applied_for(op, index, READ_INDEX_WAIT_MS);
}

static void on_self_barrier(struct raft_barrier *b, int status)
{
    struct read_op *op = b->data;
    if (status != 0) {
        op_fail(op, HW__CODE__CODE_UNAVAILABLE, "leadership not confirmed");
        return;
    }
    wait_applied(op, nd_shard_applied(op->sh));
}

static int on_read_index(struct nd_call *c, int status, const Hw__Envelope *env,
                         const struct cm_slice *payload, void *arg)
{
    struct read_op *op = arg;
    op->call = NULL;
    if (status != 0 || env->type != HW__MSG_TYPE__MSG_READ_INDEX_OK || env->read_index_ok == NULL) {
        op_fail(op, HW__CODE__CODE_UNAVAILABLE, "cannot confirm absence with the leader");
        return 1;
    }
    wait_applied(op, env->read_index_ok->index);
    return 1;
}

static void read_index(struct read_op *op)
{
    struct nd_host *h = op->h;
    const char *rpc = NULL;
    uint32_t leader = nd_host_leader(h, op->sh, &rpc);
    if (nd_shard_is_leader(op->sh)) {
        op->barrier.data = op;
        if (raft_barrier(op->sh->raft, &op->barrier, on_self_barrier) != 0)
            op_fail(op, HW__CODE__CODE_UNAVAILABLE, "leadership not confirmed");
        return;
    }
    if (leader == 0 || rpc == NULL) {
        op_fail(op, HW__CODE__CODE_UNAVAILABLE, "no leader to confirm absence; try another");
        return;
    }
    Hw__Envelope req;
    cm_env_init(&req, HW__MSG_TYPE__MSG_READ_INDEX, ++h->next_req_id, op->sh->id);
    if (nd_call_start(h->loop, h->auth, rpc, h->cfg.id, h->cfg.listen, &req, 1000, on_read_index,
                      op, &op->call) != 0)
        op_fail(op, HW__CODE__CODE_UNAVAILABLE, "cannot reach the leader");
}

/* ---- local stream ---- */

/* Drop what a read round gathered (chunks, iterator, crc) to start it over. */
static void read_reset(struct read_op *op)
{
    for (size_t i = 0; i < op->nchunks; i++)
        cm_slice_release(&op->chunks[i]);
    op->nchunks = 0;
    nd_store_iter_free(op->it);
    op->it = NULL;
    op->crc = 0;
}

static void read_again_checked(struct read_op *op)
{
    read_reset(op);
    op->pos = 0;
    op->checked = 1;
}

static void read_fn(void *arg)
{
    struct read_op *op = arg;
    struct nd_skey k;
    const uint8_t *up = op->meta->upload_id.data;
    size_t got = 0;
    op->rv = 0;
restart:
    if (op->it == NULL) {
        op->whole =
            !op->checked && op->pos == 0 && op->end == op->meta->size && op->end <= READ_ROUND;
        op->rv = nd_store_iter_new(op->h->store, op->whole ? ND_ITER_UNVERIFIED : 0, &op->it);
        if (op->rv != 0)
            return;
        nd_skey_chunk(&k, up, op->pos);
        nd_store_iter_seek_for_prev(op->it, k.b, k.len);
    }
    while (op->pos < op->end && got < READ_ROUND && op->nchunks < READ_MAX_CHUNKS) {
        size_t klen, vlen;
        if (!nd_store_iter_valid(op->it)) {
            op->rv = CM_EIO;
            return;
        }
        const char *key = nd_store_iter_key(op->it, &klen);
        if (klen != ND_SKEY_CHUNK_LEN || key[0] != 'u' ||
            memcmp(key + 1, up, ND_UPLOAD_ID_LEN) != 0) {
            op->rv = CM_EIO;
            return;
        }
        uint64_t coff = nd_get_u64(key + 1 + ND_UPLOAD_ID_LEN);
        const char *v = nd_store_iter_value(op->it, &vlen);
        uint64_t clen;
        if (nd_store_chunk_len(op->h->store, v, vlen, &clen) != 0 || coff > op->pos ||
            coff + clen <= op->pos) {
            op->rv = CM_EIO; /* a hole: bytes missing */
            return;
        }
        uint64_t skip = op->pos - coff;
        uint64_t take = clen - skip;
        if (take > op->end - op->pos)
            take = op->end - op->pos;
        /* one read into the refcounted buffer that is sent; a whole-object read checks the
         * object's crc32c below, any other the chunk's own */
        struct cm_buf *b = cm_buf_new(take ? take : 1);
        if (b == NULL) {
            op->rv = CM_ENOMEM;
            return;
        }
        op->rv = nd_store_chunk_read(op->h->store, v, vlen, skip, take, b->data, !op->whole);
        if (op->rv != 0) {
            cm_buf_unref(b);
            return;
        }
        b->len = take;
        if (op->whole)
            op->crc = cm_crc32c(op->crc, b->data, take);
        op->chunk_pos[op->nchunks] = op->pos;
        op->chunks[op->nchunks++] = cm_slice_take(b, 0, take);
        op->pos += take;
        got += take;
        nd_store_iter_next(op->it);
    }
    if (op->whole && op->pos < op->end) {
        /* More chunks than one round holds: nothing unchecked may be sent, so read it again
         * with RocksDB's own checks. */
        read_again_checked(op);
        got = 0;
        goto restart;
    }
    /* The whole object is checked before any of it is sent: a corrupted replica fails before
     * its first byte, and the gateway reads another one. */
    if (op->whole && op->crc != op->meta->checksum)
        op->rv = CM_ECHECKSUM;
}

static void send_data(struct read_op *op, uint64_t pos, const struct cm_slice *pl, int eof)
{
    Hw__Envelope env;
    Hw__Data d = HW__DATA__INIT;
    cm_env_init(&env, HW__MSG_TYPE__MSG_DATA, 0, 0);
    d.offset = pos;
    d.eof = eof;
    if (!op->sent_first) {
        op->meta->local = op->kind == READ_FETCH || op->meta->local;
        d.meta = op->meta;
        env.applied = op->applied;
        op->sent_first = 1;
    }
    env.data = &d;
    nd_req_send(&op->req, &env, pl, pl != NULL && pl->len > 0 ? 1 : 0);
}

#define READ_RELOOKS 3

/* A PUT or DELETE applied between the lookup and the chunk reads removes the version's chunks:
 * before any byte went out, look the key up again rather than fail a read that another
 * version (or a 404) answers. */
static int read_relook(struct read_op *op)
{
    if (op->rv != CM_EIO || op->sent_first || op->kind == READ_FETCH || op->relooks >= READ_RELOOKS)
        return 0;
    op->relooks++;
    read_reset(op);
    op->checked = 0;
    op->whole = 0;
    op_lookup(op);
    return 1;
}

static void read_done(void *arg, int status)
{
    struct read_op *op = arg;
    if (status == 0 && read_relook(op))
        return;
    if (status != 0 || op->rv != 0) {
        if (op->rv == CM_ECHECKSUM)
            CM_ERROR("msg=\"stored bytes fail their checksum: not served\" key=\"%s\" size=%llu",
                     op->key, (unsigned long long)op->meta->size);
        op_fail(op, HW__CODE__CODE_UNAVAILABLE, "stored bytes unreadable");
        return;
    }
    for (size_t i = 0; i < op->nchunks; i++) {
        int eof = op->pos == op->end && i + 1 == op->nchunks;
        send_data(op, op->chunk_pos[i], &op->chunks[i], eof);
        cm_slice_release(&op->chunks[i]);
    }
    op->nchunks = 0;
    if (op->pos == op->end || !nd_req_open(&op->req)) {
        op_end(op);
        return;
    }
    if (cm_rpc_over_high_water(op->req.sc->conn)) {
        op->req.sc->on_drain = op_stream_next;
        op->req.sc->drain_arg = op;
        return;
    }
    op_stream_next(op);
}

static void op_stream_next(void *arg)
{
    struct read_op *op = arg;
    if (!nd_req_open(&op->req)) {
        op_end(op);
        return;
    }
    if (nd_work(op->h->work, read_fn, read_done, op) != 0)
        op_fail(op, HW__CODE__CODE_INTERNAL, "cannot queue the read");
}

static void clamp_range(struct read_op *op)
{
    uint64_t size = op->meta->size;
    op->pos = op->offset < size ? op->offset : size;
    op->end = op->length > 0 && op->length < size - op->pos ? op->pos + op->length : size;
}

static void start_stream(struct read_op *op)
{
    clamp_range(op);
    if (op->pos == op->end) {
        send_data(op, op->pos, NULL, 1);
        op_end(op);
        return;
    }
    op_stream_next(op);
}

/* ---- proxy from a holder (repair pending) ---- */

static void try_holder(struct read_op *op);

static void proxy_resume(void *arg)
{
    struct read_op *op = arg;
    if (op->call != NULL)
        nd_call_resume(op->call);
}

static int on_fetch_frame(struct nd_call *c, int status, const Hw__Envelope *env,
                          const struct cm_slice *payload, void *arg)
{
    struct read_op *op = arg;
    if (status != 0 || env->type != HW__MSG_TYPE__MSG_DATA || env->data == NULL) {
        op->call = NULL;
        if (status == 0)
            nd_call_cancel(c);
        if (op->sent_first) {
            op_fail(op, HW__CODE__CODE_UNAVAILABLE, "holder failed midway");
        } else {
            op->holder++;
            try_holder(op);
        }
        return 1;
    }
    if (!nd_req_open(&op->req)) {
        op->call = NULL;
        op_end(op);
        return 1;
    }
    /* Clip the holder's frame [off, off+len) to the requested [pos, end). */
    uint64_t off = env->data->offset, len = payload->len;
    int eof = env->data->eof;
    struct cm_slice part = {0};
    if (off + len > op->pos && off < op->end) {
        uint64_t from = op->pos > off ? op->pos - off : 0;
        uint64_t to = off + len > op->end ? op->end - off : len;
        part = cm_slice_ref(payload->buf, payload->off + from, to - from);
        op->pos = off + to;
    }
    int done = eof || op->pos >= op->end;
    if (part.len > 0 || done || !op->sent_first)
        send_data(op, op->pos - part.len, &part, done);
    cm_slice_release(&part);
    if (done) {
        op->call = NULL;
        op_end(op);
        return 1;
    }
    if (cm_rpc_over_high_water(op->req.sc->conn)) {
        nd_call_pause(c);
        op->req.sc->on_drain = proxy_resume;
        op->req.sc->drain_arg = op;
    }
    return 0;
}

static void try_holder(struct read_op *op)
{
    struct nd_host *h = op->h;
    while (op->holder < op->meta->n_holders) {
        uint32_t holder = op->meta->holders[op->holder];
        const char *rpc = nd_host_rpc_of(h, holder);
        if (holder != h->cfg.id && rpc != NULL) {
            Hw__Envelope req;
            Hw__Fetch f = HW__FETCH__INIT;
            cm_env_init(&req, HW__MSG_TYPE__MSG_FETCH, ++h->next_req_id, op->sh->id);
            f.key = op->key;
            f.upload_id = op->meta->upload_id;
            req.fetch = &f;
            if (nd_call_start(h->loop, h->auth, rpc, h->cfg.id, h->cfg.listen, &req, 2000,
                              on_fetch_frame, op, &op->call) == 0)
                return;
        }
        op->holder++;
    }
    op_fail(op, HW__CODE__CODE_UNAVAILABLE, "no holder of the bytes answered");
}

static void start_proxy(struct read_op *op)
{
    nd_host_repair_kick(op->h, op->sh);
    clamp_range(op);
    op->holder = 0;
    try_holder(op);
}

/* ---- entry points ---- */

static int mutable_kind(const char *key)
{
    size_t n = strlen(key);
    return (n >= 5 && strcasecmp(key + n - 5, ".m3u8") == 0) ||
           (n >= 4 && strcasecmp(key + n - 4, ".mpd") == 0);
}

static struct read_op *op_new(struct nd_host *h, struct nd_shard *sh, struct nd_sconn *sc,
                              const Hw__Envelope *env, const char *key, enum read_kind kind)
{
    struct read_op *op = cm_calloc(1, sizeof(*op));
    if (op == NULL || (op->key = cm_strdup(key)) == NULL) {
        cm_free(op);
        nd_sconn_error(sc, env, HW__CODE__CODE_INTERNAL, "out of memory");
        return NULL;
    }
    op->h = h;
    op->sh = sh;
    op->kind = kind;
    nd_req_begin(&op->req, sc, env);
    return op;
}

static void get_or_head(struct nd_host *h, struct nd_sconn *sc, const Hw__Envelope *env, int head)
{
    struct nd_shard *sh = nd_host_shard(h, env->shard);
    const char *key =
        head ? (env->head ? env->head->key : NULL) : (env->get ? env->get->key : NULL);
    if (!nd_key_valid(key)) {
        nd_sconn_error(sc, env, HW__CODE__CODE_BAD_REQUEST, "a key is required");
        return;
    }
    struct read_op *op = op_new(h, sh, sc, env, key, head ? READ_HEAD : READ_GET);
    if (op == NULL)
        return;
    uint64_t min_index = head ? env->head->min_index : env->get->min_index;
    if (!head) {
        h->reads++;
        op->offset = env->get->offset;
        op->length = env->get->length;
    }
    if (min_index > 0) {
        /* A gateway's read (gateway/cluster/watch.h): it knows every write acknowledged before
         * the read began is at or below min_index; once applied that far, this replica's state
         * is recent enough, for a miss as well (no read-index). */
        op->read_index_done = 1;
        if (nd_shard_applied(sh) >= min_index)
            op_lookup(op);
        else
            wait_applied_for(op, min_index, READ_MIN_INDEX_WAIT_MS);
        return;
    }
    if (!nd_shard_is_leader(sh) && mutable_kind(key)) {
        /* Playlists and manifests change in place: a follower confirms with the leader that
         * it has applied everything acknowledged before it answers (read-index), so a reader
         * never gets an older playlist than one already acknowledged to the encoder. */
        op->read_index_done = 1;
        read_index(op);
        return;
    }
    op_lookup(op);
}

void nd_op_get(void *ctx, struct nd_sconn *sc, const Hw__Envelope *env, const struct cm_slice *pl)
{
    get_or_head(ctx, sc, env, 0);
}

void nd_op_head(void *ctx, struct nd_sconn *sc, const Hw__Envelope *env, const struct cm_slice *pl)
{
    get_or_head(ctx, sc, env, 1);
}

void nd_op_fetch(void *ctx, struct nd_sconn *sc, const Hw__Envelope *env, const struct cm_slice *pl)
{
    struct nd_host *h = ctx;
    const Hw__Fetch *f = env->fetch;
    if (f == NULL || !nd_key_valid(f->key) || f->upload_id.len != ND_UPLOAD_ID_LEN) {
        nd_sconn_error(sc, env, HW__CODE__CODE_BAD_REQUEST,
                       "FETCH needs a key and a 16-byte upload id");
        return;
    }
    struct nd_shard *sh = nd_host_shard_of_key(h, f->key);
    if (sh == NULL) {
        nd_sconn_error(sc, env, HW__CODE__CODE_NOT_FOUND, "bytes not held here");
        return;
    }
    struct read_op *op = op_new(h, sh, sc, env, f->key, READ_FETCH);
    if (op == NULL)
        return;
    memcpy(op->upload, f->upload_id.data, ND_UPLOAD_ID_LEN);
    op_lookup(op);
}
