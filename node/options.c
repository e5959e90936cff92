#include "options.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "err.h"
#include "log.h"

#define OFF(f) offsetof(struct nd_config, f)
#define TEXT(x) TEXT_(x)
#define TEXT_(x) #x

static const struct cm_opt nd_opts[] = {
    {"id", CM_OPT_U64, OFF(id), NULL, 1, 1000000, 1, "N", "this node's id (one of --peers)"},
    {"data-dir", CM_OPT_STR, OFF(data_dir), NULL, 0, 0, 1, "DIR", "where raft and the store live"},
    {"listen", CM_OPT_STR, OFF(listen), "127.0.0.1:7001", 0, 0, 0, "HOST:PORT",
     "node RPC address (gateways and peers)"},
    {"raft-listen", CM_OPT_STR, OFF(raft_listen), "127.0.0.1:7101", 0, 0, 0, "HOST:PORT",
     "raft transport address"},
    {"raft-bind", CM_OPT_STR, OFF(raft_bind), "", 0, 0, 0, "IP:PORT",
     "bind raft here, advertise --raft-listen (same port; e.g. behind a Service)"},
    {"admin-listen", CM_OPT_STR, OFF(admin_listen), "", 0, 0, 0, "HOST:PORT",
     "admin HTTP (/healthz /readyz /metrics); empty: none"},
    {"peers", CM_OPT_STR, OFF(peers_text), NULL, 0, 0, 1, "ID=HOST:PORT,...",
     "the initial voters' RPC addresses, this node included"},
    {"zone", CM_OPT_STR, OFF(zone), "", 0, 0, 0, "Z", "failure zone label"},
    {"shards", CM_OPT_U64, OFF(shards), "1", 1, 1, 0, "S", "shard count (1 in this release)"},
    {"replicas", CM_OPT_U64, OFF(replicas), "3", 1, ND_MAX_PEERS, 0, "R",
     "replicas per shard (all initial voters in this release)"},
    {"staged-ttl", CM_OPT_U64, OFF(staged_ttl), "600", 5, 86400, 0, "SECONDS",
     "collect staged uploads that never commit after this long"},
    {"snapshot-threshold", CM_OPT_U64, OFF(snapshot_threshold), "8192", 16, 1000000, 0, "N",
     "raft entries between snapshots"},
    {"lease-ms", CM_OPT_U64, OFF(lease_ms), "200", 50, 10000, 0, "MS",
     "gateway read leases this node grants as shard leader (every node the same; a new leader "
     "acknowledges no write for this long)"},
    {"log-level", CM_OPT_STR, OFF(log_level), "info", 0, 0, 0, "LEVEL", "debug|info|warn|error"},
    {"cluster-secret-file", CM_OPT_STR, OFF(cluster_secret_file), NULL, 0, 0, 0, "FILE",
     "the cluster secret shared by every node and gateway (required)"},
    {"insecure", CM_OPT_BOOL, OFF(insecure), "0", 0, 0, 0, "BOOL",
     "no cluster authentication on RPC and Raft (test clusters only)"},
    {"rpc-max-conns", CM_OPT_U64, OFF(rpc_max_conns), "1024", 1, 1000000, 0, "N",
     "open RPC connections (gateways and peers); beyond: refused"},
    {"rpc-idle-timeout-ms", CM_OPT_U64, OFF(rpc_idle_ms), "300000", 0, 86400000, 0, "MS",
     "close an RPC connection idle this long (0 = never)"},
    {"raft-max-conns", CM_OPT_U64, OFF(raft_max_conns), "64", 2, 100000, 0, "N",
     "raft connections at once (each of: being authenticated, inbound); beyond: refused"},
    {"raft-idle-timeout-ms", CM_OPT_U64, OFF(raft_idle_ms), "300000", 1000, 86400000, 0, "MS",
     "close an inbound raft connection silent this long"},
    {"election-timeout-ms", CM_OPT_U64, OFF(election_timeout_ms), TEXT(ND_ELECTION_TIMEOUT_DEFAULT),
     ND_ELECTION_TIMEOUT_MIN, ND_ELECTION_TIMEOUT_MAX, 0, "MS",
     "raft election timeout T: a follower that hears no leader for a random [T, 2T] campaigns; "
     "a leader that hears no majority for T steps down (docs/operations.md, Raft timing)"},
    {"heartbeat-ms", CM_OPT_U64, OFF(heartbeat_ms), TEXT(ND_HEARTBEAT_DEFAULT), ND_HEARTBEAT_MIN,
     ND_HEARTBEAT_MAX, 0, "MS",
     "raft heartbeat and tick interval; below half of --election-timeout-ms"},
};

/* Raft timing: the table bounds each value; these bound them against each other. */
static int validate_raft_timing(const struct nd_config *cfg, char *errmsg, size_t errlen)
{
    if (cfg->election_timeout_ms < ND_ELECTION_TIMEOUT_MIN ||
        cfg->election_timeout_ms > ND_ELECTION_TIMEOUT_MAX) {
        snprintf(errmsg, errlen, "--election-timeout-ms: expected %u..%u, got %llu",
                 ND_ELECTION_TIMEOUT_MIN, ND_ELECTION_TIMEOUT_MAX,
                 (unsigned long long)cfg->election_timeout_ms);
        return CM_EINVAL;
    }
    if (cfg->heartbeat_ms < ND_HEARTBEAT_MIN || cfg->heartbeat_ms > ND_HEARTBEAT_MAX) {
        snprintf(errmsg, errlen, "--heartbeat-ms: expected %u..%u, got %llu", ND_HEARTBEAT_MIN,
                 ND_HEARTBEAT_MAX, (unsigned long long)cfg->heartbeat_ms);
        return CM_EINVAL;
    }
    /* At least two heartbeats per timeout, or one late heartbeat starts an election. */
    if (2 * cfg->heartbeat_ms >= cfg->election_timeout_ms) {
        snprintf(
            errmsg, errlen, "--heartbeat-ms %llu must be below half of --election-timeout-ms %llu",
            (unsigned long long)cfg->heartbeat_ms, (unsigned long long)cfg->election_timeout_ms);
        return CM_EINVAL;
    }
    return 0;
}

int nd_config_validate(struct nd_config *cfg, char *errmsg, size_t errlen)
{
    char host[ND_ADDR_MAX];
    int port, self = 0;
    if (cm_hostport_parse(cfg->listen, host, sizeof(host), &port) != 0) {
        snprintf(errmsg, errlen, "--listen: expected HOST:PORT, got \"%s\"", cfg->listen);
        return CM_EINVAL;
    }
    if (cm_hostport_parse(cfg->raft_listen, host, sizeof(host), &port) != 0) {
        snprintf(errmsg, errlen, "--raft-listen: expected HOST:PORT, got \"%s\"", cfg->raft_listen);
        return CM_EINVAL;
    }
    if (cfg->raft_bind != NULL && cfg->raft_bind[0] != '\0') {
        char bhost[ND_ADDR_MAX];
        int bport;
        if (cm_hostport_parse(cfg->raft_bind, bhost, sizeof(bhost), &bport) != 0 || bport != port) {
            snprintf(errmsg, errlen,
                     "--raft-bind: expected IP:PORT with --raft-listen's port, got \"%s\"",
                     cfg->raft_bind);
            return CM_EINVAL;
        }
    }
    if (cfg->admin_listen != NULL && cfg->admin_listen[0] != '\0' &&
        cm_hostport_parse(cfg->admin_listen, host, sizeof(host), &port) != 0) {
        snprintf(errmsg, errlen, "--admin-listen: expected HOST:PORT, got \"%s\"",
                 cfg->admin_listen);
        return CM_EINVAL;
    }
    if (cm_log_level_parse(cfg->log_level) < 0) {
        snprintf(errmsg, errlen, "--log-level: unknown level \"%s\"", cfg->log_level);
        return CM_EINVAL;
    }
    int rv = validate_raft_timing(cfg, errmsg, errlen);
    if (rv != 0)
        return rv;
    cfg->npeers = 0;
    const char *p = cfg->peers_text;
    while (p != NULL && *p != '\0') {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char item[ND_ADDR_MAX + 16];
        if (n == 0 || n >= sizeof(item) || cfg->npeers == ND_MAX_PEERS)
            goto bad_peers;
        memcpy(item, p, n);
        item[n] = '\0';
        char *eq = strchr(item, '=');
        char *idend;
        if (eq == NULL)
            goto bad_peers;
        *eq = '\0';
        unsigned long id = strtoul(item, &idend, 10);
        if (*idend != '\0' || id == 0 || id > 1000000 ||
            cm_hostport_parse(eq + 1, host, sizeof(host), &port) != 0)
            goto bad_peers;
        for (unsigned i = 0; i < cfg->npeers; i++) {
            if (cfg->peers[i].id == id) {
                snprintf(errmsg, errlen, "--peers: id %lu appears twice", id);
                return CM_EINVAL;
            }
        }
        cfg->peers[cfg->npeers].id = (uint32_t)id;
        snprintf(cfg->peers[cfg->npeers].rpc, ND_ADDR_MAX, "%s", eq + 1);
        cfg->npeers++;
        self |= id == cfg->id;
        p = end ? end + 1 : NULL;
    }
    if (cfg->npeers == 0)
        goto bad_peers;
    if (!self) {
        snprintf(errmsg, errlen, "--peers must include this node's --id %llu",
                 (unsigned long long)cfg->id);
        return CM_EINVAL;
    }
    if (cfg->replicas > cfg->npeers)
        cfg->replicas = cfg->npeers;
    return 0;
bad_peers:
    snprintf(errmsg, errlen, "--peers: expected ID=HOST:PORT[,...] (at most %d), got \"%s\"",
             ND_MAX_PEERS, cfg->peers_text ? cfg->peers_text : "");
    return CM_EINVAL;
}

int nd_config_load(struct nd_config *cfg, int argc, char **argv, char *errmsg, size_t errlen)
{
    size_t n = sizeof(nd_opts) / sizeof(nd_opts[0]);
    memset(cfg, 0, sizeof(*cfg));
    int rv = cm_opts_parse(nd_opts, n, cfg, argc, argv, "HEADWATER_", NULL, NULL, errmsg, errlen);
    if (rv == CM_EHELP) {
        cm_opts_usage(stdout, "headwater-node --id N --data-dir DIR --peers ID=HOST:PORT,...",
                      nd_opts, n);
        return rv;
    }
    if (rv != 0)
        return rv;
    return nd_config_validate(cfg, errmsg, errlen);
}
