/* A server connection and the request context shared by the RPC handlers (node/ops).
 *
 * A connection handles one request at a time: an asynchronous handler pauses reading
 * (nd_req_begin) and resumes it when it has sent its last answer frame (nd_req_end). Frames
 * that arrived meanwhile are delivered afterwards in order, so pipelined STAGE frames are
 * processed one after another. A connection closing under a request makes its sends no-ops;
 * the request still runs to its end and releases its reference. */
#ifndef ND_RPC_REQ_H
#define ND_RPC_REQ_H

#include <stdint.h>

#include "buf.h"
#include "headwater.pb-c.h"
#include "rpc.h"

struct nd_sconn {
    void *ctx;                /* borrowed: the server's configuration */
    struct cm_rpc_conn *conn; /* NULL once closed */
    unsigned refs;
    int hello;
    void (*on_drain)(void *arg); /* a streaming handler waiting for the write queue */
    void *drain_arg;
    void *watch;      /* the commit-watch subscription on this connection (ops/watch.c), or NULL */
    int close_status; /* why it closed (rpc.h on_close), set before on_conn_closed */
};

struct nd_req {
    struct nd_sconn *sc; /* ref */
    uint64_t req_id;
    uint32_t shard;
};

struct nd_sconn *nd_sconn_new(void *ctx, struct cm_rpc_conn *conn);
void nd_sconn_unref(struct nd_sconn *sc);
/* Send at once, outside a request context (env's req_id and shard are the caller's). A frame
 * that cannot be queued closes the connection: the peer never waits for a lost answer. */
void nd_sconn_send(struct nd_sconn *sc, Hw__Envelope *env, const struct cm_slice *payload,
                   size_t n);
/* Answer env at once with an error (no request context needed). */
void nd_sconn_error(struct nd_sconn *sc, const Hw__Envelope *env, Hw__Code code, const char *msg);

void nd_req_begin(struct nd_req *r, struct nd_sconn *sc, const Hw__Envelope *env);
void nd_req_end(struct nd_req *r);
int nd_req_open(const struct nd_req *r);
void nd_req_send(struct nd_req *r, Hw__Envelope *env, const struct cm_slice *payload, size_t n);
void nd_req_error(struct nd_req *r, Hw__Code code, const char *msg);
/* NOT_LEADER (leader_id != 0, with its RPC address when known) or NO_LEADER. */
void nd_req_not_leader(struct nd_req *r, uint32_t leader_id, const char *leader_rpc);

#endif
