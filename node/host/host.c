/* The shared node context (see host.h). */
#include "host/host.h"

#include <stdio.h>
#include <string.h>

#include "err.h"
#include "shard.h"

void nd_host_init(struct nd_host *h, uv_loop_t *loop, const struct nd_host_cfg *cfg,
                  struct nd_store *store, struct nd_workq *work, struct nd_clock *clock)
{
    memset(h, 0, sizeof(*h));
    h->loop = loop;
    h->cfg = *cfg;
    h->store = store;
    h->work = work;
    h->clock = clock;
    h->started_ms = nd_now_ms(clock);
}

int nd_host_add_peer(struct nd_host *h, uint32_t id, const char *rpc)
{
    if (h->npeers == ND_HOST_MAX_PEERS)
        return CM_ETOOBIG;
    struct nd_peer *p = &h->peers[h->npeers++];
    memset(p, 0, sizeof(*p));
    p->id = id;
    snprintf(p->rpc, sizeof(p->rpc), "%s", rpc);
    if (id == h->cfg.id)
        snprintf(p->raft, sizeof(p->raft), "%s", h->cfg.raft_listen);
    return 0;
}

int nd_host_add_shard(struct nd_host *h, struct nd_shard *sh)
{
    if (h->nshards == ND_HOST_MAX_SHARDS || nd_host_shard(h, sh->id) != NULL)
        return CM_EINVAL;
    h->shards[h->nshards++] = sh;
    return 0;
}

struct nd_shard *nd_host_shard(struct nd_host *h, uint32_t id)
{
    for (unsigned i = 0; i < h->nshards; i++)
        if (h->shards[i]->id == id)
            return h->shards[i];
    return NULL;
}

struct nd_shard *nd_host_shard_of_key(struct nd_host *h, const char *key)
{
    return nd_host_shard(h, cm_shard_of(key, h->cfg.shard_count));
}

const char *nd_host_rpc_of(struct nd_host *h, uint32_t id)
{
    for (unsigned i = 0; i < h->npeers; i++)
        if (h->peers[i].id == id)
            return h->peers[i].rpc;
    return NULL;
}

uint32_t nd_host_leader(struct nd_host *h, struct nd_shard *sh, const char **rpc)
{
    uint32_t id = sh != NULL ? nd_shard_leader(sh) : 0;
    if (rpc != NULL)
        *rpc = id != 0 ? nd_host_rpc_of(h, id) : NULL;
    return id;
}

void nd_host_not_leader(struct nd_host *h, struct nd_shard *sh, struct nd_req *r)
{
    const char *rpc = NULL;
    uint32_t leader = nd_host_leader(h, sh, &rpc);
    nd_req_not_leader(r, leader, rpc);
}

void nd_host_learn_peers(struct nd_host *h, struct nd_shard *sh)
{
    const struct raft_configuration *conf = &sh->raft->configuration;
    for (unsigned i = 0; i < conf->n; i++) {
        const struct raft_server *s = &conf->servers[i];
        for (unsigned j = 0; j < h->npeers; j++)
            if (h->peers[j].id == s->id && s->address != NULL)
                snprintf(h->peers[j].raft, ND_HOST_ADDR_MAX, "%s", s->address);
    }
}

void nd_host_repair_kick(struct nd_host *h, struct nd_shard *sh)
{
    if (h->on_repair_needed != NULL)
        h->on_repair_needed(h->hook_data, sh);
}
