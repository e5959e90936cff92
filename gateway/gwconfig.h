/* Gateway configuration: one option table (defaults -> env HEADWATER_<FLAG> -> flags), then one
 * pure validation step that also splits --nodes. Immutable after start. */
#ifndef GW_GWCONFIG_H
#define GW_GWCONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

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
    const char *cors_origins; /* NULL = "*" */
    int access_log;
    /* cluster authentication (common/auth.h): required unless insecure */
    const char *cluster_secret_file;
    int insecure;
    /* filled by gw_config_validate */
    size_t nseeds;
    char seeds[GW_MAX_SEEDS][GW_ADDR_MAX];
    int level; /* enum cm_log_level */
};

/* Parse argv/env into cfg (zeroed first). Returns 0, CM_EHELP or CM_EINVAL (errmsg set). */
int gw_config_parse(struct gw_config *cfg, int argc, char **argv, char *errmsg, size_t errlen);
/* Check every field and split --nodes into cfg->seeds. Pure. 0 or CM_EINVAL (errmsg set). */
int gw_config_validate(struct gw_config *cfg, char *errmsg, size_t errlen);
void gw_config_usage(FILE *out);

#endif
