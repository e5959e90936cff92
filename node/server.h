/* The node's RPC server: per-connection state and the request context shared by the
 * handlers (upload.c stage/finish, write.c commit/delete/read-index/status, read.c
 * get/head/fetch).
 *
 * A connection handles one request at a time: an asynchronous handler pauses reading
 * (nd_req_begin) and resumes it when it has sent its last answer frame (nd_req_end). Frames
 * that arrived meanwhile are delivered afterwards in order, so pipelined STAGE frames are
 * processed one after another. A connection closing under a request makes its sends no-ops;
 * the request still runs to its end and releases its reference. */
#ifndef ND_SERVER_H
#define ND_SERVER_H

#include "node.h"

struct nd_sconn {
    struct nd_node *n;
    struct cm_rpc_conn *conn; /* NULL once closed */
    unsigned refs;
    int hello;
    void (*on_drain)(void *arg); /* a streaming handler waiting for the write queue */
    void *drain_arg;
};

struct nd_req {
    struct nd_sconn *sc; /* ref */
    uint64_t req_id;
    uint32_t shard;
};

int nd_server_start(struct nd_node *n, char *errmsg, size_t errlen);

void nd_req_begin(struct nd_req *r, struct nd_sconn *sc, const Hw__Envelope *env);
void nd_req_end(struct nd_req *r);
int nd_req_open(const struct nd_req *r);
void nd_req_send(struct nd_req *r, Hw__Envelope *env, const struct cm_slice *payload, size_t n);
void nd_req_error(struct nd_req *r, Hw__Code code, const char *msg);
/* NOT_LEADER / NO_LEADER with the leader's id and RPC address when known. */
void nd_req_not_leader(struct nd_req *r);

/* Handlers. */
void nd_handle_stage(struct nd_sconn *sc, const Hw__Envelope *env, const struct cm_slice *pl);
void nd_handle_finish(struct nd_sconn *sc, const Hw__Envelope *env);
void nd_uploads_drop_conn(struct nd_node *n, struct nd_sconn *sc);
void nd_uploads_free(struct nd_node *n);
int nd_upload_active(struct nd_node *n, const uint8_t *id);
void nd_handle_commit(struct nd_sconn *sc, const Hw__Envelope *env);
void nd_handle_delete(struct nd_sconn *sc, const Hw__Envelope *env);
void nd_handle_read_index(struct nd_sconn *sc, const Hw__Envelope *env);
void nd_handle_status(struct nd_sconn *sc, const Hw__Envelope *env);
void nd_handle_get(struct nd_sconn *sc, const Hw__Envelope *env, int head);
void nd_handle_fetch(struct nd_sconn *sc, const Hw__Envelope *env);
void nd_handle_list(struct nd_sconn *sc, const Hw__Envelope *env);

/* Shard of a key: crc32c of its stream directory mod the shard count. */
uint32_t nd_shard_of(const char *key, uint32_t shard_count);
int nd_key_valid(const char *key);

#endif
