/* Gateway configuration, as every layer reads it: immutable after start. It is filled and
 * checked by the option table at the top of the tree (gateway/options.h). */
#ifndef GW_GWCONFIG_H
#define GW_GWCONFIG_H

#include <stddef.h>
#include <stdint.h>

#define GW_MAX_SEEDS 64
#define GW_ADDR_MAX 128

struct gw_config {
    /* from the option table (strings borrowed from argv / environ / defaults) */
    const char *listen;
    const char *admin_listen;
    const char *nodes;
    const char *zone;
    uint64_t threads;
    uint64_t max_object_size;
    const char *log_level;
    /* read semantics (get.c, put.c, cache.c; parsed and held by shared.c) */
    uint64_t cache_size;     /* hot-object cache bytes, 0 = off */
    const char *cache_rules; /* --cache-rules /PREFIX=CACHE-CONTROL,... */
    const char *lifecycle;   /* --lifecycle /PREFIX=TTL_SECONDS,... */
    /* connection layer (server.c): TLS, keys, limits, CORS, access log. In a config built by
     * hand (tests), numeric limits left 0 take the table default in gw_config_validate. */
    const char *tls_listen; /* NULL = no HTTPS listener */
    const char *tls_cert;
    const char *tls_key;
    const char *keys; /* keys file, NULL = open */
    uint64_t max_header_size;
    uint64_t max_url_length;
    uint64_t header_timeout_ms;
    uint64_t idle_timeout_ms;
    uint64_t body_timeout_ms;
    uint64_t send_timeout_ms;
    uint64_t max_connections;
    uint64_t max_pipeline;
    uint64_t admin_max_connections; /* the admin listener's own limit */
    uint64_t max_buffered_bytes;    /* --max-buffered-bytes */
    const char *cors_origins;       /* NULL = "*" */
    const char *cors_write_origins; /* NULL = "": no cross-origin writes */
    int access_log;
    /* cluster authentication (common/auth.h): required unless insecure */
    const char *cluster_secret_file;
    int insecure;
    /* filled by gw_config_validate */
    size_t nseeds;
    char seeds[GW_MAX_SEEDS][GW_ADDR_MAX];
    int level; /* enum cm_log_level */
};

#endif
