/* Cluster view: learns the cluster map from the --nodes seeds and polls STATUS from every known
 * node every GW_POLL_MS. A node that has not answered a poll within GW_POLL_TIMEOUT_MS is
 * unreachable. Answers shard placement (replicas), the leader per shard, node addresses, and
 * renders the admin /status JSON. */
#ifndef GW_CLUSTER_H
#define GW_CLUSTER_H

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

int gw_cluster_new(uv_loop_t *loop, struct gw_upstream *up, const struct gw_config *cfg,
                   struct gw_cluster **out);
/* Stop polling; frees itself after its timer closes. */
void gw_cluster_close(struct gw_cluster *c);

/* 0 while no node has answered yet. */
uint32_t gw_cluster_shard_count(const struct gw_cluster *c);
/* Replica node ids of a shard (falls back to every known node when the shard is unknown). */
size_t gw_cluster_replicas(const struct gw_cluster *c, uint32_t shard, uint32_t *ids, size_t max);
/* Leader of a shard as the freshest reachable view sees it; 0 = unknown. */
uint32_t gw_cluster_leader(const struct gw_cluster *c, uint32_t shard);
/* RPC address of a node id, NULL when unknown. */
const char *gw_cluster_addr(const struct gw_cluster *c, uint32_t node_id);
int gw_cluster_reachable(const struct gw_cluster *c, uint32_t node_id);
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
