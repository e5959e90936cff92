/* Staging of uploads (the fan-out target of the write path).
 *
 * STAGE  {upload, key, offset} + bytes: offsets must be contiguous from 0; the bytes are
 *        written (unsynced) as 'u' upload offset, the staged record 's' upload on the first
 *        chunk; STAGE_OK {received} once written. The crc32c is computed on the work
 *        queue, once per STAGE for both the chunk record and the upload's running crc
 *        (cm_crc32c_combine), so the loop never reads the bytes.
 * FINISH {upload, key, size, checksum} [+ the last bytes]: the bytes (if any) are staged as by
 *        a STAGE at the offset staged so far, in the same store write; size and checksum must
 *        match what arrived (a mismatch writes nothing); the finished staged record is
 *        written with a sync (store.h: the volumes' fdatasync, then the index's WAL), so
 *        everything before it is durable; then FINISH_OK. A commit may now promote it.
 * A connection that closes drops its unfinished uploads from memory; their records are
 * collected by the GC (bg/gc.c) after --staged-ttl. */
#include "ops/upload.h"

#include <string.h>

#include "alloc.h"
#include "crc32c.h"
#include "err.h"
#include "log.h"
#include "host/commitq.h"
#include "store/meta.h"

#define ND_UPLOAD_MAX (16ull * 1024 * 1024 * 1024)

void nd_op_conn_closed(void *ctx, struct nd_sconn *sc)
{
    struct nd_host *h = ctx;
    nd_uploads_drop_owner(&h->uploads, sc);
}

/* One store write for a stage or finish, run on the thread pool. */
struct stage_work {
    struct nd_req req;
    struct nd_host *h;
    struct nd_upload *u;
    struct cm_slice bytes; /* ref; the worker only reads it */
    uint64_t offset;
    int finish;
    uint32_t crc;          /* the upload's crc32c: before these bytes, then (worker) after */
    uint32_t want_crc;     /* finish: the crc the FINISH named */
    Hw__ObjectMeta staged; /* record to write (finish or first chunk) */
    int write_staged;
    int sync; /* the write syncs itself (no commit queue: it would sync after it) */
    int rv;
};

/* On the work queue: the bytes' crc32c (computed here, once, for the running crc and the
 * chunk record both), then one store write; a finish whose crc does not match writes nothing. */
static void stage_work_fn(void *arg)
{
    struct stage_work *w = arg;
    struct nd_batch b;
    struct nd_skey k;
    const void *bytes = cm_slice_ptr(&w->bytes);
    uint32_t chunk_crc = cm_crc32c(0, bytes, w->bytes.len);
    w->crc = cm_crc32c_combine(w->crc, chunk_crc, w->bytes.len);
    if (w->finish && w->crc != w->want_crc) {
        w->rv = CM_ECHECKSUM;
        return;
    }
    nd_batch_init(&b);
    if (w->bytes.len > 0) {
        nd_skey_chunk(&k, w->u->id, w->offset);
        nd_batch_put_chunk(&b, &k, bytes, w->bytes.len, chunk_crc);
    }
    if (w->write_staged) {
        w->staged.checksum = w->crc;
        nd_skey_staged(&k, w->u->id);
        w->rv = nd_meta_put(&b, &k, &w->staged);
    }
    if (w->rv == 0)
        w->rv = nd_store_write(w->h->store, &b, w->sync);
    nd_batch_close(&b);
}

static void stage_work_done(void *arg, int status)
{
    struct stage_work *w = arg;
    struct nd_host *h = w->h;
    struct nd_upload *u = w->u;
    Hw__Envelope env;
    u->busy = 0;
    u->crc = w->crc;
    cm_slice_release(&w->bytes);
    if (w->rv == 0 && status != 0) /* the commit queue's sync failed */
        w->rv = status;
    if (w->rv == CM_ECHECKSUM) {
        CM_WARN("finish checksum mismatch key=%s size=%llu crc=%08x/%08x", u->key,
                (unsigned long long)u->received, w->crc, w->want_crc);
        nd_req_error(&w->req, HW__CODE__CODE_CHECKSUM, "size or checksum mismatch");
        nd_uploads_remove(&h->uploads, u);
    } else if (w->rv == CM_ENOSPC) {
        h->nospace_refusals++;
        nd_req_error(&w->req, HW__CODE__CODE_NO_SPACE, "no space left on this node's store");
        nd_uploads_remove(&h->uploads, u);
    } else if (w->rv != 0) {
        nd_req_error(&w->req, HW__CODE__CODE_INTERNAL, "store write failed");
        nd_uploads_remove(&h->uploads, u);
    } else if (w->finish) {
        Hw__FinishOk ok = HW__FINISH_OK__INIT;
        cm_env_init(&env, HW__MSG_TYPE__MSG_FINISH_OK, 0, 0);
        ok.size = u->received;
        ok.checksum = u->crc;
        env.finish_ok = &ok;
        nd_req_send(&w->req, &env, NULL, 0);
        nd_uploads_remove(&h->uploads, u); /* finished: the store holds all a commit needs */
    } else {
        Hw__StageOk ok = HW__STAGE_OK__INIT;
        cm_env_init(&env, HW__MSG_TYPE__MSG_STAGE_OK, 0, 0);
        ok.received = u->received;
        env.stage_ok = &ok;
        nd_req_send(&w->req, &env, NULL, 0);
        if (u->owner == NULL) { /* its connection went away meanwhile */
            nd_uploads_remove(&h->uploads, u);
        }
    }
    nd_req_end(&w->req);
    cm_free(w);
}

static int submit(struct nd_host *h, struct nd_sconn *sc, const Hw__Envelope *env,
                  struct nd_upload *u, const struct cm_slice *pl, uint64_t offset, int finish,
                  uint32_t want_crc)
{
    struct stage_work *w = cm_calloc(1, sizeof(*w));
    if (w == NULL)
        return CM_ENOMEM;
    w->h = h;
    w->u = u;
    w->offset = offset;
    w->finish = finish;
    w->crc = u->crc;
    w->want_crc = want_crc;
    if (pl != NULL && pl->len > 0)
        w->bytes = cm_slice_dup(pl);
    if (finish || offset == 0) {
        hw__object_meta__init(&w->staged);
        w->staged.key = u->key;
        w->staged.upload_id.data = u->id;
        w->staged.upload_id.len = ND_UPLOAD_ID_LEN;
        w->staged.size = u->received;
        w->staged.created_ms = u->created_ms;
        w->staged.local = finish;
        w->write_staged = 1;
    }
    nd_req_begin(&w->req, sc, env);
    u->busy = 1;
    int rv;
    if (h->commit != NULL) {
        rv = nd_commitq_submit(h->commit, stage_work_fn, stage_work_done, w, finish);
    } else {
        w->sync = finish;
        rv = nd_work(h->work, stage_work_fn, stage_work_done, w);
    }
    if (rv != 0) {
        u->busy = 0;
        cm_slice_release(&w->bytes);
        nd_req_end(&w->req);
        cm_free(w);
    }
    return rv;
}

static void reply_error(struct nd_sconn *sc, const Hw__Envelope *env, Hw__Code code,
                        const char *msg)
{
    CM_WARN("stage refused: %s conn=%llu", msg, (unsigned long long)cm_rpc_id(sc->conn));
    nd_sconn_error(sc, env, code, msg);
}

void nd_op_stage(void *ctx, struct nd_sconn *sc, const Hw__Envelope *env, const struct cm_slice *pl)
{
    struct nd_host *h = ctx;
    const Hw__Stage *st = env->stage;
    if (st == NULL || st->upload_id.len != ND_UPLOAD_ID_LEN || !nd_key_valid(st->key)) {
        reply_error(sc, env, HW__CODE__CODE_BAD_REQUEST,
                    "STAGE needs a 16-byte upload id and a key");
        return;
    }
    struct nd_upload *u = nd_uploads_find(&h->uploads, st->upload_id.data);
    if (u == NULL) {
        if (st->offset != 0) {
            reply_error(sc, env, HW__CODE__CODE_UNKNOWN_UPLOAD, "unknown upload (offset > 0)");
            return;
        }
        u = nd_uploads_add(&h->uploads, sc, st->upload_id.data, st->key, nd_now_ms(h->clock));
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
    u->received += pl->len;
    if (submit(h, sc, env, u, pl, st->offset, 0, 0) != 0)
        reply_error(sc, env, HW__CODE__CODE_INTERNAL, "cannot queue the write");
}

void nd_op_finish(void *ctx, struct nd_sconn *sc, const Hw__Envelope *env,
                  const struct cm_slice *pl)
{
    struct nd_host *h = ctx;
    const Hw__Finish *f = env->finish;
    if (f == NULL || f->upload_id.len != ND_UPLOAD_ID_LEN || !nd_key_valid(f->key)) {
        reply_error(sc, env, HW__CODE__CODE_BAD_REQUEST,
                    "FINISH needs a 16-byte upload id and a key");
        return;
    }
    struct nd_upload *u = nd_uploads_find(&h->uploads, f->upload_id.data);
    if (u == NULL && f->size == pl->len) /* the whole object in this frame (or empty) */
        u = nd_uploads_add(&h->uploads, sc, f->upload_id.data, f->key, nd_now_ms(h->clock));
    if (u == NULL) {
        reply_error(sc, env, HW__CODE__CODE_UNKNOWN_UPLOAD, "unknown upload");
        return;
    }
    if (u->busy || strcmp(u->key, f->key) != 0) {
        reply_error(sc, env, HW__CODE__CODE_BAD_REQUEST, "FINISH out of sequence");
        return;
    }
    uint64_t offset = u->received; /* of the last bytes the frame may carry */
    if (pl->len > f->size || offset != f->size - pl->len) {
        reply_error(sc, env, HW__CODE__CODE_BAD_REQUEST, "FINISH bytes out of sequence");
        nd_uploads_remove(&h->uploads, u);
        return;
    }
    u->owner = sc;
    u->received += pl->len;
    if (u->received != f->size) { /* the crc is checked on the work queue, with the bytes' */
        CM_WARN("finish size mismatch key=%s size=%llu/%llu", u->key,
                (unsigned long long)u->received, (unsigned long long)f->size);
        reply_error(sc, env, HW__CODE__CODE_CHECKSUM, "size or checksum mismatch");
        nd_uploads_remove(&h->uploads, u);
        return;
    }
    if (submit(h, sc, env, u, pl, offset, 1, f->checksum) != 0)
        reply_error(sc, env, HW__CODE__CODE_INTERNAL, "cannot queue the write");
}
