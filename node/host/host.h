/* The node context that RPC handlers (node/ops) and background jobs (node/bg) share: its
 * configuration, peers, the table of hosted shards, the staged uploads, the store, and the
 * work and clock seams. Hooks registered by node.c are the only way up (repair kicks).
 * Loop thread only. */
#ifndef ND_HOST_HOST_H
#define ND_HOST_HOST_H

#include <stdint.h>
#include <uv.h>

#include "host/clock.h"
#include "host/commitq.h"
#include "host/uploads.h"
#include "host/work.h"
#include "rpc/req.h"
#include "shard/shard.h"
#include "store/store.h"

#define ND_HOST_MAX_PEERS 16
#define ND_HOST_ADDR_MAX 256
#define ND_HOST_MAX_SHARDS 64

struct nd_call;
struct cm_auth;

struct nd_peer {
    uint32_t id;
    char rpc[ND_HOST_ADDR_MAX];
    char raft[ND_HOST_ADDR_MAX]; /* learned via HELLO or from the raft configuration */
    struct nd_call *hello;       /* bootstrap discovery in flight */
};

/* What the host needs of the node's configuration (immutable). */
struct nd_host_cfg {
    uint32_t id;
    const char *listen, *raft_listen, *zone; /* borrowed */
    uint32_t shard_count;                    /* shards in the cluster */
    unsigned replicas;
    uint64_t staged_ttl_s; /* collect uncommitted staged uploads after this long */
};

struct nd_host {
    uv_loop_t *loop;
    struct nd_host_cfg cfg;
    struct nd_store *store;    /* borrowed */
    struct nd_workq *work;     /* borrowed */
    struct nd_commitq *commit; /* borrowed: uploads' store writes (NULL: they use work) */
    struct nd_clock *clock;    /* borrowed */
    struct cm_auth *auth;      /* borrowed: the cluster secret outbound calls prove (auth.h) */
    struct nd_shard *shards[ND_HOST_MAX_SHARDS]; /* borrowed; today shard 0 only */
    unsigned nshards;
    struct nd_peer peers[ND_HOST_MAX_PEERS];
    unsigned npeers;
    struct nd_uploads uploads;
    int64_t started_ms;
    uint64_t next_req_id;
    uint64_t reads;            /* GET requests received (STATUS reports it) */
    uint64_t nospace_refusals; /* STAGE/FINISH answered NO_SPACE (metrics) */
    int stopping;
    /* A replica has committed versions whose bytes are not here (node.c: repair). */
    void (*on_repair_needed)(void *data, struct nd_shard *sh);
    void *hook_data;
};

void nd_host_init(struct nd_host *h, uv_loop_t *loop, const struct nd_host_cfg *cfg,
                  struct nd_store *store, struct nd_workq *work, struct nd_clock *clock);
int nd_host_add_peer(struct nd_host *h, uint32_t id, const char *rpc);
int nd_host_add_shard(struct nd_host *h, struct nd_shard *sh);
struct nd_shard *nd_host_shard(struct nd_host *h, uint32_t id); /* NULL: not hosted */
/* The hosted shard a key belongs to (NULL: not hosted). */
struct nd_shard *nd_host_shard_of_key(struct nd_host *h, const char *key);

const char *nd_host_rpc_of(struct nd_host *h, uint32_t id); /* NULL when unknown */
/* Leader of sh as this node sees it: id (0 = unknown) and its RPC address (NULL: unknown). */
uint32_t nd_host_leader(struct nd_host *h, struct nd_shard *sh, const char **rpc);
/* Answer r NOT_LEADER / NO_LEADER with what this node knows of sh's leader. */
void nd_host_not_leader(struct nd_host *h, struct nd_shard *sh, struct nd_req *r);
/* Learn the peers' raft addresses from sh's raft configuration. */
void nd_host_learn_peers(struct nd_host *h, struct nd_shard *sh);
void nd_host_repair_kick(struct nd_host *h, struct nd_shard *sh);

#endif
