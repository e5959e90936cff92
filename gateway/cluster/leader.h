/* One request to a shard leader (COMMIT, DELETE, LIST), retried until it gets a final answer or its
 * deadline passes: NOT_LEADER -> retry at the named leader (Envelope.leader_address) or the one
 * the cluster view knows; NO_LEADER, UNAVAILABLE, LEADERSHIP_LOST, a connection failure or no
 * answer within GW_LREQ_ATTEMPT_MS -> retry after GW_LREQ_RETRY_MS. The request must be
 * idempotent (COMMIT carries its upload id).
 *
 * The callback fires exactly once, later, unless gw_lreq_cancel ran first; the lreq is gone
 * after the callback. */
#ifndef GW_LEADER_H
#define GW_LEADER_H

#include <stdint.h>

#include <uv.h>

#include "headwater.pb-c.h"

#define GW_LREQ_RETRY_MS 50u
#define GW_LREQ_ATTEMPT_MS 600u
#define GW_LREQ_CHECK_MS 25u /* how often a waiting attempt looks for a newer leader */

enum gw_lreq_outcome {
    GW_LREQ_ANSWER,         /* env is the final answer (success type or a final ERROR) */
    GW_LREQ_TIMEOUT_UNSENT, /* deadline passed; every attempt was refused or never sent:
                               it certainly did not take effect */
    GW_LREQ_TIMEOUT_SENT,   /* deadline passed; some attempt went out and got no definitive
                               answer (lost connection, no answer, LEADERSHIP_LOST): unknown */
};

struct gw_lreq;
struct gw_upstream;
struct gw_cluster;

/* Where leader requests go: the loop, its node connection pool and cluster view (borrowed). */
struct gw_lreq_via {
    uv_loop_t *loop;
    struct gw_upstream *up;
    struct gw_cluster *cluster;
};

/* Fill env (already cm_env_init'ed with type and shard) for one attempt; env may point into
 * the caller's storage. */
typedef void (*gw_lreq_build_fn)(void *arg, Hw__Envelope *env);
typedef void (*gw_lreq_cb)(void *arg, enum gw_lreq_outcome outcome, const Hw__Envelope *env);

int gw_lreq_start(const struct gw_lreq_via *via, Hw__MsgType type, uint32_t shard,
                  uint64_t deadline_ms, gw_lreq_build_fn build, gw_lreq_cb cb, void *arg,
                  struct gw_lreq **out);
void gw_lreq_cancel(struct gw_lreq *r);

#endif
