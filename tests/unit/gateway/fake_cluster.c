#include "fake_cluster.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crc32c.h"
#include "etag.h"
#include "frame.h"

struct fc_object *fc_find(struct fc_cluster *fc, const char *key)
{
    for (int i = 0; i < FC_OBJECTS; i++) {
        if (fc->obj[i].used && strcmp(fc->obj[i].key, key) == 0)
            return &fc->obj[i];
    }
    return NULL;
}

static struct fc_upload *upload_of(struct fc_node *n, const ProtobufCBinaryData *id, int create)
{
    if (id->len != 16)
        return NULL;
    for (int i = 0; i < FC_UPLOADS; i++) {
        if (n->up[i].used && memcmp(n->up[i].id, id->data, 16) == 0)
            return &n->up[i];
    }
    if (!create)
        return NULL;
    for (int i = 0; i < FC_UPLOADS; i++) {
        if (!n->up[i].used) {
            n->up[i].used = 1;
            memcpy(n->up[i].id, id->data, 16);
            cm_sbuf_init(&n->up[i].data);
            return &n->up[i];
        }
    }
    return NULL;
}

static void send_status(struct fc_node *n, struct cm_rpc_conn *c, uint64_t req)
{
    struct fc_cluster *fc = n->fc;
    Hw__Envelope env;
    Hw__StatusOk st = HW__STATUS_OK__INIT;
    Hw__NodeInfo ni[FC_NODES], *nip[FC_NODES];
    Hw__ShardInfo si = HW__SHARD_INFO__INIT, *sip = &si;
    uint32_t reps[FC_NODES];
    for (int i = 0; i < FC_NODES; i++) {
        hw__node_info__init(&ni[i]);
        ni[i].id = fc->n[i].id;
        ni[i].rpc_address = fc->n[i].addr;
        ni[i].zone = (char *)(fc->n[i].id == n->id ? "z1" : ""); /* like a node: its own only */
        nip[i] = &ni[i];
        reps[i] = fc->n[i].id;
    }
    si.id = 0;
    si.replicas = reps;
    si.n_replicas = FC_NODES;
    si.leader_id = 1;
    si.role = (char *)(n->id == 1 ? "leader" : "follower");
    si.term = 2;
    si.commit_index = fc->index;
    si.applied_index = fc->index;
    si.last_index = fc->index;
    st.node_id = n->id;
    st.rpc_address = n->addr;
    st.zone = (char *)"z1";
    st.epoch = 1;
    st.nodes = nip;
    st.n_nodes = FC_NODES;
    st.shards = &sip;
    st.n_shards = 1;
    st.shard_count = 1;
    cm_env_init(&env, HW__MSG_TYPE__MSG_STATUS_OK, req, 0);
    env.status_ok = &st;
    cm_rpc_send(c, &env, NULL, 0);
}

static void on_stage(struct fc_node *n, struct cm_rpc_conn *c, const Hw__Envelope *env,
                     const struct cm_slice *payload)
{
    n->stages++;
    if (n->silent)
        return;
    if (n->nospace) {
        cm_rpc_send_error(c, env->req_id, 0, HW__CODE__CODE_NO_SPACE, "no space left");
        return;
    }
    struct fc_upload *u = upload_of(n, &env->stage->upload_id, 1);
    cr_assert_not_null(u);
    if (env->stage->offset != u->data.len) {
        cm_rpc_send_error(c, env->req_id, 0, HW__CODE__CODE_BAD_REQUEST, "offset gap");
        return;
    }
    cr_assert_leq(payload->len, 1024 * 1024, "STAGE payload over 1 MiB");
    cm_sbuf_append(&u->data, cm_slice_ptr(payload), payload->len);
    Hw__Envelope out;
    Hw__StageOk ok = HW__STAGE_OK__INIT;
    ok.received = u->data.len;
    cm_env_init(&out, HW__MSG_TYPE__MSG_STAGE_OK, env->req_id, 0);
    out.stage_ok = &ok;
    cm_rpc_send(c, &out, NULL, 0);
}

static void on_finish(struct fc_node *n, struct cm_rpc_conn *c, const Hw__Envelope *env)
{
    n->finishes++;
    if (n->silent)
        return;
    if (n->nospace) {
        cm_rpc_send_error(c, env->req_id, 0, HW__CODE__CODE_NO_SPACE, "no space left");
        return;
    }
    struct fc_upload *u = upload_of(n, &env->finish->upload_id, env->finish->size == 0);
    if (u == NULL) {
        cm_rpc_send_error(c, env->req_id, 0, HW__CODE__CODE_UNKNOWN_UPLOAD, "no such upload");
        return;
    }
    uint32_t crc = cm_crc32c(0, u->data.p ? u->data.p : "", u->data.len);
    if (u->data.len != env->finish->size || crc != env->finish->checksum) {
        cm_rpc_send_error(c, env->req_id, 0, HW__CODE__CODE_CHECKSUM, "mismatch");
        return;
    }
    u->finished = 1;
    Hw__Envelope out;
    Hw__FinishOk ok = HW__FINISH_OK__INIT;
    ok.size = u->data.len;
    ok.checksum = crc;
    cm_env_init(&out, HW__MSG_TYPE__MSG_FINISH_OK, env->req_id, 0);
    out.finish_ok = &ok;
    cm_rpc_send(c, &out, NULL, 0);
}

static int not_leader(struct fc_node *n, struct cm_rpc_conn *c, const Hw__Envelope *env)
{
    if (n->fc->no_leader) {
        cm_rpc_send_error(c, env->req_id, 0, HW__CODE__CODE_NO_LEADER, "no leader");
        return 1;
    }
    if (n->id == 1)
        return 0;
    Hw__Envelope out;
    cm_env_init(&out, HW__MSG_TYPE__MSG_ERROR, env->req_id, 0);
    out.code = HW__CODE__CODE_NOT_LEADER;
    out.leader_id = 1;
    out.leader_address = n->fc->n[0].addr;
    cm_rpc_send(c, &out, NULL, 0);
    return 1;
}

/* As the node's FSM decides it at apply. */
static int precondition_holds(const Hw__Precondition *pc, const struct fc_object *o)
{
    return cm_precond_commit_ok(pc, o != NULL, o != NULL ? o->version : 0, FC_CREATED_MS);
}

static void on_commit(struct fc_node *n, struct cm_rpc_conn *c, const Hw__Envelope *env)
{
    struct fc_cluster *fc = n->fc;
    const Hw__Commit *cm = env->commit;
    n->commits++;
    if (not_leader(n, c, env) || fc->commit_silent)
        return;
    struct fc_object *o = fc_find(fc, cm->key);
    int created = o == NULL;
    int retry = o != NULL && memcmp(o->upload_id, cm->upload_id.data, 16) == 0;
    if (!retry && !precondition_holds(cm->precondition, o)) {
        cm_rpc_send_error(c, env->req_id, 0, HW__CODE__CODE_PRECONDITION_FAILED, "no match");
        return;
    }
    if (retry)
        created = 0; /* idempotent retry */
    else {
        struct fc_upload *u = NULL;
        cr_assert_geq(cm->n_holders, 2, "commit with fewer holders than a quorum");
        for (size_t h = 0; h < cm->n_holders && u == NULL; h++)
            u = upload_of(&fc->n[cm->holders[h] - 1], &cm->upload_id, 0);
        cr_assert(u != NULL || cm->size == 0);
        if (o == NULL) {
            for (int i = 0; i < FC_OBJECTS && o == NULL; i++) {
                if (!fc->obj[i].used)
                    o = &fc->obj[i];
            }
            cr_assert_not_null(o);
            o->used = 1;
            cm_sbuf_init(&o->data);
        }
        snprintf(o->key, sizeof(o->key), "%s", cm->key);
        cm_sbuf_reset(&o->data);
        if (u != NULL)
            cm_sbuf_append(&o->data, u->data.p ? u->data.p : "", u->data.len);
        snprintf(o->ctype, sizeof(o->ctype), "%s", cm->content_type);
        snprintf(o->cache_control, sizeof(o->cache_control), "%s", cm->cache_control);
        memcpy(o->upload_id, cm->upload_id.data, 16);
        o->version = ++fc->index;
        o->holders = (uint32_t)cm->n_holders;
        cr_assert_eq(o->data.len, cm->size);
        for (size_t h = 0; h < cm->n_holders; h++) { /* promoted: the staged copies go */
            struct fc_upload *s = upload_of(&fc->n[cm->holders[h] - 1], &cm->upload_id, 0);
            if (s != NULL) {
                cm_sbuf_free(&s->data);
                memset(s, 0, sizeof(*s));
            }
        }
    }
    Hw__Envelope out;
    Hw__CommitOk ok = HW__COMMIT_OK__INIT;
    ok.version = o->version;
    ok.created = created;
    cm_env_init(&out, HW__MSG_TYPE__MSG_COMMIT_OK, env->req_id, 0);
    out.commit_ok = &ok;
    cm_rpc_send(c, &out, NULL, 0);
}

static void fill_meta(Hw__ObjectMeta *m, struct fc_object *o)
{
    hw__object_meta__init(m);
    m->key = o->key;
    m->size = o->data.len;
    m->content_type = o->ctype;
    m->cache_control = o->cache_control;
    m->version = o->version;
    m->created_ms = FC_CREATED_MS;
    m->local = 1;
}

static void on_get(struct fc_node *n, struct cm_rpc_conn *c, const Hw__Envelope *env, int head)
{
    n->gets++;
    n->last_head = head;
    n->last_off = head ? 0 : env->get->offset;
    n->last_len = head ? 0 : env->get->length;
    if (n->get_unavailable) {
        cm_rpc_send_error(c, env->req_id, 0, HW__CODE__CODE_UNAVAILABLE, "not here");
        return;
    }
    struct fc_object *o = fc_find(n->fc, head ? env->head->key : env->get->key);
    if (o == NULL) {
        cm_rpc_send_error(c, env->req_id, 0, HW__CODE__CODE_NOT_FOUND, "not found");
        return;
    }
    Hw__Envelope out;
    Hw__ObjectMeta meta;
    fill_meta(&meta, o);
    if (head) {
        Hw__HeadOk ok = HW__HEAD_OK__INIT;
        ok.meta = &meta;
        cm_env_init(&out, HW__MSG_TYPE__MSG_HEAD_OK, env->req_id, 0);
        out.head_ok = &ok;
        cm_rpc_send(c, &out, NULL, 0);
        return;
    }
    /* like node/read.c: from offset (clamped to the size), length bytes (0 = to the end) */
    struct cm_buf *b = cm_buf_copy(o->data.p ? o->data.p : "", o->data.len);
    size_t start = env->get->offset < o->data.len ? (size_t)env->get->offset : o->data.len;
    size_t end = env->get->length > 0 && env->get->length < o->data.len - start
                     ? start + (size_t)env->get->length
                     : o->data.len;
    size_t off = start;
    do {
        size_t len = end - off > 1024 * 1024 ? 1024 * 1024 : end - off;
        Hw__Data d = HW__DATA__INIT;
        d.meta = off == start ? &meta : NULL;
        d.offset = off;
        d.eof = off + len == end;
        cm_env_init(&out, HW__MSG_TYPE__MSG_DATA, env->req_id, 0);
        out.data = &d;
        struct cm_slice s = cm_slice_ref(b, off, len);
        cm_rpc_send(c, &out, &s, 1);
        cm_slice_release(&s);
        off += len;
    } while (off < end);
    cm_buf_unref(b);
}

static void on_delete(struct fc_node *n, struct cm_rpc_conn *c, const Hw__Envelope *env)
{
    if (not_leader(n, c, env))
        return;
    struct fc_object *o = fc_find(n->fc, env->delete_->key);
    Hw__Envelope out;
    Hw__DeleteOk ok = HW__DELETE_OK__INIT;
    ok.found = o != NULL;
    if (o != NULL) {
        o->used = 0;
        cm_sbuf_free(&o->data);
    }
    ok.version = ++n->fc->index;
    cm_env_init(&out, HW__MSG_TYPE__MSG_DELETE_OK, env->req_id, 0);
    out.delete_ok = &ok;
    cm_rpc_send(c, &out, NULL, 0);
}

static int meta_cmp(const void *a, const void *b)
{
    return strcmp((*(Hw__ObjectMeta *const *)a)->key, (*(Hw__ObjectMeta *const *)b)->key);
}

/* LIST at the leader: keys under the prefix after the cursor, in key order, up to limit. */
static void on_list(struct fc_node *n, struct cm_rpc_conn *c, const Hw__Envelope *env)
{
    if (not_leader(n, c, env))
        return;
    static Hw__ObjectMeta meta[FC_OBJECTS];
    Hw__ObjectMeta *all[FC_OBJECTS];
    size_t k = 0, plen = strlen(env->list->prefix);
    for (int i = 0; i < FC_OBJECTS; i++) {
        struct fc_object *o = &n->fc->obj[i];
        if (o->used && strncmp(o->key, env->list->prefix, plen) == 0 &&
            strcmp(o->key, env->list->cursor) > 0) {
            fill_meta(&meta[k], o);
            all[k] = &meta[k];
            k++;
        }
    }
    qsort(all, k, sizeof(all[0]), meta_cmp);
    Hw__ListOk ok = HW__LIST_OK__INIT;
    ok.objects = all;
    ok.n_objects = env->list->limit > 0 && k > env->list->limit ? env->list->limit : k;
    ok.next_cursor = ok.n_objects < k ? all[ok.n_objects - 1]->key : (char *)"";
    Hw__Envelope out;
    cm_env_init(&out, HW__MSG_TYPE__MSG_LIST_OK, env->req_id, 0);
    out.list_ok = &ok;
    cm_rpc_send(c, &out, NULL, 0);
}

/* Commit watch: no events (the table changes only through the gateway under test, which drops
 * its own writes from its cache), a lease from the leader (node 1) on every ack, everything up to
 * the last version safe. */
static void on_watch_ack(struct fc_node *n, struct cm_rpc_conn *c, const Hw__Envelope *env)
{
    Hw__Envelope out;
    Hw__WatchGrant g = HW__WATCH_GRANT__INIT;
    g.seq = env->watch_ack != NULL ? env->watch_ack->seq : 0;
    g.term = 1;
    g.leader_id = n->fc->no_leader ? 0 : 1;
    g.is_leader = n->id == 1 && !n->fc->no_leader;
    g.lease_ms = g.is_leader ? 60000 : 0;
    g.safe_index = n->fc->index;
    g.applied = n->fc->index;
    g.replicas = FC_NODES;
    cm_env_init(&out, HW__MSG_TYPE__MSG_WATCH_GRANT, env->req_id, 0);
    out.watch_grant = &g;
    cm_rpc_send(c, &out, NULL, 0);
}

static void srv_on_frame(struct cm_rpc_conn *c, const Hw__Envelope *env,
                         const struct cm_slice *payload)
{
    struct fc_node *n = cm_rpc_data(c);
    switch (env->type) {
    case HW__MSG_TYPE__MSG_HELLO: {
        Hw__Envelope out;
        Hw__HelloOk ok = HW__HELLO_OK__INIT;
        cr_assert_eq(env->hello->proto_version, CM_PROTO_VERSION);
        cr_assert_eq(env->hello->node_id, 0);
        ok.proto_version = CM_PROTO_VERSION;
        ok.node_id = n->id;
        ok.rpc_address = n->addr;
        ok.raft_address = (char *)"";
        cm_env_init(&out, HW__MSG_TYPE__MSG_HELLO_OK, env->req_id, 0);
        out.hello_ok = &ok;
        cm_rpc_send(c, &out, NULL, 0);
        return;
    }
    case HW__MSG_TYPE__MSG_STATUS:
        send_status(n, c, env->req_id);
        return;
    case HW__MSG_TYPE__MSG_STAGE:
        on_stage(n, c, env, payload);
        return;
    case HW__MSG_TYPE__MSG_FINISH:
        on_finish(n, c, env);
        return;
    case HW__MSG_TYPE__MSG_COMMIT:
        on_commit(n, c, env);
        return;
    case HW__MSG_TYPE__MSG_GET:
        on_get(n, c, env, 0);
        return;
    case HW__MSG_TYPE__MSG_HEAD:
        on_get(n, c, env, 1);
        return;
    case HW__MSG_TYPE__MSG_DELETE:
        on_delete(n, c, env);
        return;
    case HW__MSG_TYPE__MSG_LIST:
        on_list(n, c, env);
        return;
    case HW__MSG_TYPE__MSG_WATCH:
        return;
    case HW__MSG_TYPE__MSG_WATCH_ACK:
        on_watch_ack(n, c, env);
        return;
    default:
        cm_rpc_send_error(c, env->req_id, 0, HW__CODE__CODE_BAD_REQUEST, "unexpected");
    }
}

static void srv_on_close(struct cm_rpc_conn *c, int status)
{
}

static void on_accept(struct cm_rpc_server *s, struct cm_rpc_conn *c)
{
    static const struct cm_rpc_handlers h = {srv_on_frame, NULL, srv_on_close};
    cm_rpc_set_handlers(c, &h);
    cm_rpc_set_data(c, cm_rpc_server_data(s));
}

void fc_node_up(struct fc_cluster *fc, int i)
{
    char err[128];
    struct fc_node *n = &fc->n[i];
    cr_assert_null(n->srv);
    cr_assert_eq(cm_rpc_listen(fc->loop, n->addr, NULL, on_accept, n, &n->srv, err, sizeof(err)), 0,
                 "%s", err);
}

void fc_node_down(struct fc_cluster *fc, int i)
{
    struct fc_node *n = &fc->n[i];
    if (n->srv != NULL)
        cm_rpc_server_close(n->srv);
    n->srv = NULL;
}

void fc_start(struct fc_cluster *fc, uv_loop_t *loop)
{
    memset(fc, 0, sizeof(*fc));
    fc->loop = loop;
    int port = 21000 + (getpid() * 13) % 30000;
    for (int i = 0; i < FC_NODES; i++) {
        struct fc_node *n = &fc->n[i];
        char err[128];
        n->fc = fc;
        n->id = (uint32_t)i + 1;
        for (;; port++) {
            snprintf(n->addr, sizeof(n->addr), "127.0.0.1:%d", port);
            if (cm_rpc_listen(loop, n->addr, NULL, on_accept, n, &n->srv, err, sizeof(err)) == 0)
                break;
        }
        port++;
    }
}

void fc_stop(struct fc_cluster *fc)
{
    for (int i = 0; i < FC_NODES; i++) {
        fc_node_down(fc, i);
        for (int k = 0; k < FC_UPLOADS; k++) {
            if (fc->n[i].up[k].used)
                cm_sbuf_free(&fc->n[i].up[k].data);
        }
    }
    for (int i = 0; i < FC_OBJECTS; i++) {
        if (fc->obj[i].used)
            cm_sbuf_free(&fc->obj[i].data);
    }
}
