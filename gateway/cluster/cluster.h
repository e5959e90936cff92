/* Cluster view: learns the cluster map from the --nodes seeds and polls STATUS from every known
 * node every GW_POLL_MS. A node that has not answered a poll within GW_POLL_TIMEOUT_MS is
 * unreachable. Answers shard placement (replicas), the leader per shard, node addresses, and
 * renders the admin /status JSON. */
#ifndef GW_CLUSTER_H
#define GW_CLUSTER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"
#include "core/gwconfig.h"
#include "cluster/upstream.h"

#define GW_POLL_MS 500u
#define GW_POLL_TIMEOUT_MS 1000u
#define GW_MAX_NODES 64
#define GW_MAX_SHARDS 64
#define GW_MAX_REPLICAS 16

struct gw_cluster;

/* What the commit watch (cluster/watch.h) hears from the nodes, for every loop's routing: it
 * acknowledges every stream each GW_WATCH_ACK_MS and every node answers at once, so a node
 * whose stream stays quiet for GW_LIVE_SILENT_MS of acks is paused, cut off or dead long
 * before STATUS polls tell (GW_POLL_TIMEOUT_MS), and the freshest leader is known within an
 * ack of its election. Written by the watch's loop only; read lock-free anywhere. */
#define GW_LIVE_SLOTS 16
#define GW_LIVE_SILENT_MS 150u
struct gw_live {
    atomic_uint_fast32_t id[GW_LIVE_SLOTS];
    atomic_uint_fast64_t heard_ms[GW_LIVE_SLOTS]; /* monotonic ms of its last frame */
    atomic_uint_fast64_t acked_ms;                /* last ack sent to every stream */
    atomic_uint_fast64_t gen;                     /* odd while term/leader change */
    atomic_uint_fast64_t term;                    /* highest term a node named a leader of */
    atomic_uint_fast32_t leader;
};

void gw_live_heard(struct gw_live *l, uint32_t node_id, uint64_t now_ms);
void gw_live_leader(struct gw_live *l, uint64_t term, uint32_t leader);
/* Heard from once and silent through GW_LIVE_SILENT_MS of acks since. */
int gw_live_silent(const struct gw_live *l, uint32_t node_id);

int gw_cluster_new(uv_loop_t *loop, struct gw_upstream *up, const struct gw_config *cfg,
                   struct gw_cluster **out);
/* Stop polling; frees itself after its timer closes. */
void gw_cluster_close(struct gw_cluster *c);

/* 0 while no node has answered yet. */
uint32_t gw_cluster_shard_count(const struct gw_cluster *c);
/* Replica node ids of a shard (falls back to every known node when the shard is unknown). */
size_t gw_cluster_replicas(const struct gw_cluster *c, uint32_t shard, uint32_t *ids, size_t max);
/* The watch's liveness (borrowed; outlives the view): leader and gw_cluster_live use it. */
void gw_cluster_set_live(struct gw_cluster *c, const struct gw_live *live);
/* Leader of a shard as the freshest reachable view sees it, or the watch when a node named a
 * leader of a newer term (shard 0, the watch's); 0 = unknown. */
uint32_t gw_cluster_leader(const struct gw_cluster *c, uint32_t shard);
/* RPC address of a node id, NULL when unknown. */
const char *gw_cluster_addr(const struct gw_cluster *c, uint32_t node_id);
int gw_cluster_reachable(const struct gw_cluster *c, uint32_t node_id);
/* Reachable and not silent on the commit watch: where reads, relays and uploads should go
 * (gw_cluster_reachable alone, from polls, decides readiness). */
int gw_cluster_live(const struct gw_cluster *c, uint32_t node_id);
/* Zone of a node from the cluster map, NULL when unknown. */
const char *gw_cluster_zone(const struct gw_cluster *c, uint32_t node_id);
/* Any address to try when no node id is known yet (seeds), i-th of n; NULL past the end. */
const char *gw_cluster_seed(const struct gw_cluster *c, size_t i);
/* Read load per node, for choosing replicas (pick.h): the time to the first answer frame of
 * a read as an EWMA in µs (0 = never measured), and the reads of this loop it is serving
 * (begin when a request is sent, end when its stream is done or abandoned). */
void gw_cluster_note_latency(struct gw_cluster *c, uint32_t node_id, uint64_t us);
void gw_cluster_read_begin(struct gw_cluster *c, uint32_t node_id);
void gw_cluster_read_end(struct gw_cluster *c, uint32_t node_id);
void gw_cluster_read_load(const struct gw_cluster *c, uint32_t node_id, double *ewma_us,
                          unsigned *inflight);
/* A leader is known for shard 0 and is reachable, and a majority of nodes is reachable. */
int gw_cluster_ready(const struct gw_cluster *c);
/* The admin /status document (docs/internals.md); more (NULL = none): members the caller adds
 * at the end (`,"reads":{...}`). */
void gw_cluster_status_json(const struct gw_cluster *c, const char *more, struct cm_sbuf *out);

#endif
