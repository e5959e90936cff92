/* headwater-node configuration: one option table (defaults -> env -> flags) and a pure
 * validate() that tests call directly. Immutable after start. */
#ifndef ND_OPTIONS_H
#define ND_OPTIONS_H

#include <stddef.h>
#include <stdint.h>

#define ND_MAX_PEERS 16
#define ND_ADDR_MAX 256

/* Raft timing (docs/operations.md, "Raft timing"; measurements in docs/benchmarks.md). */
#define ND_ELECTION_TIMEOUT_DEFAULT 300
#define ND_ELECTION_TIMEOUT_MIN 50
#define ND_ELECTION_TIMEOUT_MAX 60000
#define ND_HEARTBEAT_DEFAULT 30
#define ND_HEARTBEAT_MIN 10
#define ND_HEARTBEAT_MAX 10000

struct nd_peer_addr {
    uint32_t id;
    char rpc[ND_ADDR_MAX];
};

struct nd_config {
    uint64_t id;
    const char *data_dir;
    const char *listen;
    const char *raft_listen;
    const char *raft_bind;    /* "" = bind --raft-listen itself */
    const char *admin_listen; /* "" = no admin HTTP listener */
    const char *peers_text;
    const char *zone;
    uint64_t shards;
    uint64_t replicas;
    uint64_t staged_ttl; /* seconds before an uncommitted staged upload is collected */
    uint64_t snapshot_threshold;
    uint64_t lease_ms; /* gateway read leases (ops/watch.h) */
    const char *log_level;
    const char *cluster_secret_file; /* required unless insecure */
    int insecure;
    uint64_t rpc_max_conns;
    uint64_t rpc_idle_ms;
    uint64_t raft_max_conns;
    uint64_t raft_idle_ms;
    uint64_t election_timeout_ms; /* raft: a follower campaigns after [T, 2T] of silence */
    uint64_t heartbeat_ms;        /* raft: leader heartbeat and raft's tick interval */
    /* derived by validate */
    struct nd_peer_addr peers[ND_MAX_PEERS];
    unsigned npeers;
};

/* Parse argv (and HEADWATER_* env) into cfg, then validate. Returns 0, CM_EHELP (usage was
 * printed to stdout) or CM_EINVAL with errmsg. */
int nd_config_load(struct nd_config *cfg, int argc, char **argv, char *errmsg, size_t errlen);
/* Pure checks and derived fields (peer list). */
int nd_config_validate(struct nd_config *cfg, char *errmsg, size_t errlen);

#endif
