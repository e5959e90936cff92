/* Staging of uploads (the fan-out target of the write path).
 *
 * STAGE  {upload, key, offset} + bytes: offsets must be contiguous from 0; the bytes are
 *        written (unsynced) as 'u' upload offset, the staged record 's' upload on the first
 *        chunk; STAGE_OK {received} once written. The crc32c runs as bytes arrive.
 * FINISH {upload, key, size, checksum}: size and checksum must match what arrived; the
 *        finished staged record is written with a WAL sync, so everything before it is
 *        durable; then FINISH_OK. A commit may now promote it (fsm.c).
 * A connection that closes drops its unfinished uploads from memory; their records are
 * collected by the GC (repair.c) after --staged-ttl. */
#include <string.h>

#include "alloc.h"
#include "crc32c.h"
#include "err.h"
#include "log.h"
#include "server.h"
#include "timeutil.h"

#define ND_UPLOAD_MAX (16ull * 1024 * 1024 * 1024)

struct nd_upload {
    struct nd_upload *next;
    uint8_t id[ND_UPLOAD_ID_LEN];
    char *key;              /* owned */
    struct nd_sconn *owner; /* borrowed: the connection staging it */
    uint64_t received;
    uint32_t crc;
    int64_t created_ms;
    int busy; /* a write is in flight */
};

static struct nd_upload *upload_find(struct nd_node *n, const uint8_t *id)
{
    for (struct nd_upload *u = n->uploads; u != NULL; u = u->next)
        if (memcmp(u->id, id, ND_UPLOAD_ID_LEN) == 0)
            return u;
    return NULL;
}

int nd_upload_active(struct nd_node *n, const uint8_t *id)
{
    return upload_find(n, id) != NULL;
}

static void upload_unlink(struct nd_node *n, struct nd_upload *u)
{
    for (struct nd_upload **p = &n->uploads; *p != NULL; p = &(*p)->next) {
        if (*p == u) {
            *p = u->next;
            n->nuploads--;
            return;
        }
    }
}

static void upload_free(struct nd_upload *u)
{
    cm_free(u->key);
    cm_free(u);
}

void nd_uploads_drop_conn(struct nd_node *n, struct nd_sconn *sc)
{
    struct nd_upload **p = &n->uploads;
    while (*p != NULL) {
        struct nd_upload *u = *p;
        if (u->owner == sc && !u->busy) {
            *p = u->next;
            n->nuploads--;
            upload_free(u);
        } else {
            if (u->owner == sc)
                u->owner = NULL; /* the write in flight frees it */
            p = &u->next;
        }
    }
}

void nd_uploads_free(struct nd_node *n)
{
    while (n->uploads != NULL) {
        struct nd_upload *u = n->uploads;
        n->uploads = u->next;
        upload_free(u);
    }
    n->nuploads = 0;
}

/* One store write for a stage or finish, run on the thread pool. */
struct stage_work {
    struct nd_req req;
    struct nd_node *n;
    struct nd_upload *u;
    struct cm_slice bytes; /* ref; the worker only reads it */
    uint64_t offset;
    int finish;
    Hw__ObjectMeta staged; /* record to write (finish or first chunk) */
    int write_staged;
    int rv;
};

static void stage_work_fn(void *arg)
{
    struct stage_work *w = arg;
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    struct nd_skey k;
    if (w->bytes.len > 0) {
        nd_skey_chunk(&k, w->u->id, w->offset);
        nd_batch_put(b, &k, cm_slice_ptr(&w->bytes), w->bytes.len);
    }
    if (w->write_staged) {
        char *v;
        size_t vlen;
        w->rv = nd_meta_pack(&w->staged, &v, &vlen);
        if (w->rv == 0) {
            nd_skey_staged(&k, w->u->id);
            nd_batch_put(b, &k, v, vlen);
            cm_free(v);
        }
    }
    if (w->rv == 0)
        w->rv = nd_store_write(&w->n->store, b, w->finish);
    rocksdb_writebatch_destroy(b);
}

static void stage_work_done(void *arg, int status)
{
    struct stage_work *w = arg;
    struct nd_node *n = w->n;
    struct nd_upload *u = w->u;
    Hw__Envelope env;
    u->busy = 0;
    cm_slice_release(&w->bytes);
    if (w->rv != 0 || status != 0) {
        nd_req_error(&w->req, HW__CODE__CODE_INTERNAL, "store write failed");
        upload_unlink(n, u);
        upload_free(u);
    } else if (w->finish) {
        Hw__FinishOk ok = HW__FINISH_OK__INIT;
        cm_env_init(&env, HW__MSG_TYPE__MSG_FINISH_OK, 0, 0);
        ok.size = u->received;
        ok.checksum = u->crc;
        env.finish_ok = &ok;
        nd_req_send(&w->req, &env, NULL, 0);
        upload_unlink(n, u); /* finished: the store holds all that a commit needs */
        upload_free(u);
    } else {
        Hw__StageOk ok = HW__STAGE_OK__INIT;
        cm_env_init(&env, HW__MSG_TYPE__MSG_STAGE_OK, 0, 0);
        ok.received = u->received;
        env.stage_ok = &ok;
        nd_req_send(&w->req, &env, NULL, 0);
        if (u->owner == NULL) { /* its connection went away meanwhile */
            upload_unlink(n, u);
            upload_free(u);
        }
    }
    nd_req_end(&w->req);
    cm_free(w);
}

static int submit(struct nd_sconn *sc, const Hw__Envelope *env, struct nd_upload *u,
                  const struct cm_slice *pl, uint64_t offset, int finish)
{
    struct stage_work *w = cm_calloc(1, sizeof(*w));
    if (w == NULL)
        return CM_ENOMEM;
    w->n = sc->n;
    w->u = u;
    w->offset = offset;
    w->finish = finish;
    if (pl != NULL && pl->len > 0)
        w->bytes = cm_slice_dup(pl);
    if (finish || offset == 0) {
        hw__object_meta__init(&w->staged);
        w->staged.key = u->key;
        w->staged.upload_id.data = u->id;
        w->staged.upload_id.len = ND_UPLOAD_ID_LEN;
        w->staged.size = u->received;
        w->staged.checksum = u->crc;
        w->staged.created_ms = u->created_ms;
        w->staged.local = finish;
        w->write_staged = 1;
    }
    nd_req_begin(&w->req, sc, env);
    u->busy = 1;
    int rv = nd_work(sc->n, stage_work_fn, stage_work_done, w);
    if (rv != 0) {
        u->busy = 0;
        cm_slice_release(&w->bytes);
        nd_req_end(&w->req);
        cm_free(w);
    }
    return rv;
}

static struct nd_upload *upload_new(struct nd_node *n, struct nd_sconn *sc, const uint8_t *id,
                                    const char *key)
{
    struct nd_upload *u = cm_calloc(1, sizeof(*u));
    if (u == NULL)
        return NULL;
    u->key = cm_strdup(key);
    if (u->key == NULL) {
        cm_free(u);
        return NULL;
    }
    memcpy(u->id, id, ND_UPLOAD_ID_LEN);
    u->owner = sc;
    u->created_ms = cm_wall_ms();
    u->next = n->uploads;
    n->uploads = u;
    n->nuploads++;
    return u;
}

static void reply_error(struct nd_sconn *sc, const Hw__Envelope *env, Hw__Code code,
                        const char *msg)
{
    CM_WARN("stage refused: %s conn=%llu", msg, (unsigned long long)cm_rpc_id(sc->conn));
    cm_rpc_send_error(sc->conn, env->req_id, env->shard, code, msg);
}

void nd_handle_stage(struct nd_sconn *sc, const Hw__Envelope *env, const struct cm_slice *pl)
{
    const Hw__Stage *st = env->stage;
    if (st == NULL || st->upload_id.len != ND_UPLOAD_ID_LEN || !nd_key_valid(st->key)) {
        reply_error(sc, env, HW__CODE__CODE_BAD_REQUEST,
                    "STAGE needs a 16-byte upload id and a key");
        return;
    }
    struct nd_upload *u = upload_find(sc->n, st->upload_id.data);
    if (u == NULL) {
        if (st->offset != 0) {
            reply_error(sc, env, HW__CODE__CODE_UNKNOWN_UPLOAD, "unknown upload (offset > 0)");
            return;
        }
        u = upload_new(sc->n, sc, st->upload_id.data, st->key);
        if (u == NULL) {
            reply_error(sc, env, HW__CODE__CODE_INTERNAL, "out of memory");
            return;
        }
    }
    if (u->busy || st->offset != u->received || strcmp(u->key, st->key) != 0) {
        reply_error(sc, env, HW__CODE__CODE_BAD_REQUEST, "STAGE offset or key out of sequence");
        return;
    }
    if (u->received + pl->len > ND_UPLOAD_MAX) {
        reply_error(sc, env, HW__CODE__CODE_TOO_LARGE, "upload too large");
        return;
    }
    u->owner = sc;
    u->crc = cm_crc32c(u->crc, cm_slice_ptr(pl), pl->len);
    u->received += pl->len;
    if (submit(sc, env, u, pl, st->offset, 0) != 0)
        reply_error(sc, env, HW__CODE__CODE_INTERNAL, "cannot queue the write");
}

void nd_handle_finish(struct nd_sconn *sc, const Hw__Envelope *env)
{
    const Hw__Finish *f = env->finish;
    if (f == NULL || f->upload_id.len != ND_UPLOAD_ID_LEN || !nd_key_valid(f->key)) {
        reply_error(sc, env, HW__CODE__CODE_BAD_REQUEST,
                    "FINISH needs a 16-byte upload id and a key");
        return;
    }
    struct nd_upload *u = upload_find(sc->n, f->upload_id.data);
    if (u == NULL && f->size == 0)
        u = upload_new(sc->n, sc, f->upload_id.data, f->key); /* an empty object */
    if (u == NULL) {
        reply_error(sc, env, HW__CODE__CODE_UNKNOWN_UPLOAD, "unknown upload");
        return;
    }
    if (u->busy || strcmp(u->key, f->key) != 0) {
        reply_error(sc, env, HW__CODE__CODE_BAD_REQUEST, "FINISH out of sequence");
        return;
    }
    if (u->received != f->size || u->crc != f->checksum) {
        CM_WARN("finish checksum mismatch key=%s size=%llu/%llu crc=%08x/%08x", u->key,
                (unsigned long long)u->received, (unsigned long long)f->size, u->crc, f->checksum);
        reply_error(sc, env, HW__CODE__CODE_CHECKSUM, "size or checksum mismatch");
        upload_unlink(sc->n, u);
        upload_free(u);
        return;
    }
    if (submit(sc, env, u, NULL, u->received, 1) != 0)
        reply_error(sc, env, HW__CODE__CODE_INTERNAL, "cannot queue the write");
}
