#include "options.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "config.h"
#include "http/cors.h"
#include "err.h"
#include "log.h"
#include "object/put.h"
#include "object/rules.h"

static const struct cm_opt gw_opts[] = {
    {"listen", CM_OPT_STR, offsetof(struct gw_config, listen), "127.0.0.1:8080", 0, 0, 0,
     "HOST:PORT", "data (HTTP) listen address"},
    {"admin-listen", CM_OPT_STR, offsetof(struct gw_config, admin_listen), "127.0.0.1:9080", 0, 0,
     0, "HOST:PORT", "admin (HTTP) listen address"},
    {"nodes", CM_OPT_STR, offsetof(struct gw_config, nodes), NULL, 0, 0, 1, "HOST:PORT[,...]",
     "node RPC addresses to learn the cluster from"},
    {"zone", CM_OPT_STR, offsetof(struct gw_config, zone), "", 0, 0, 0, "ZONE",
     "this gateway's zone"},
    {"threads", CM_OPT_U64, offsetof(struct gw_config, threads), NULL, 1, 256, 0, "N",
     "worker threads, one event loop each (default: number of cores)"},
    {"max-object-size", CM_OPT_SIZE, offsetof(struct gw_config, max_object_size), "64M", 1,
     1ULL << 40, 0, "BYTES", "largest accepted object (K/M/G suffixes)"},
    {"cache-size", CM_OPT_SIZE, offsetof(struct gw_config, cache_size), "256M", 0, 1ULL << 40, 0,
     "BYTES", "hot-object cache per gateway process (0 = off; objects over 1/8 bypass it)"},
    {"cache-rules", CM_OPT_STR, offsetof(struct gw_config, cache_rules), "", 0, 0, 0,
     "/PREFIX=CC,...", "Cache-Control per key prefix (longest wins; the PUT's own wins over it)"},
    {"lifecycle", CM_OPT_STR, offsetof(struct gw_config, lifecycle), "", 0, 0, 0,
     "/PREFIX=SECONDS,...", "TTL per key prefix for writes without ttl_seconds / X-Headwater-TTL"},
    {"log-level", CM_OPT_STR, offsetof(struct gw_config, log_level), "info", 0, 0, 0,
     "debug|info|warn|error", "log level"},
    /* connection layer */
    {"tls-listen", CM_OPT_STR, offsetof(struct gw_config, tls_listen), NULL, 0, 0, 0, "HOST:PORT",
     "HTTPS listen address (needs --tls-cert and --tls-key)"},
    {"tls-cert", CM_OPT_STR, offsetof(struct gw_config, tls_cert), NULL, 0, 0, 0, "FILE",
     "PEM certificate chain for --tls-listen"},
    {"tls-key", CM_OPT_STR, offsetof(struct gw_config, tls_key), NULL, 0, 0, 0, "FILE",
     "PEM private key for --tls-listen"},
    {"keys", CM_OPT_STR, offsetof(struct gw_config, keys), NULL, 0, 0, 0, "FILE",
     "access keys file (reloaded on SIGHUP); unset = no access control"},
    {"max-header-size", CM_OPT_SIZE, offsetof(struct gw_config, max_header_size), "16K", 1024,
     65536, 0, "BYTES", "largest request head (request line + headers), else 431"},
    {"max-url-length", CM_OPT_SIZE, offsetof(struct gw_config, max_url_length), "8K", 256, 65536, 0,
     "BYTES", "longest request target, else 414"},
    {"header-timeout-ms", CM_OPT_U64, offsetof(struct gw_config, header_timeout_ms), "10000", 100,
     3600000, 0, "MS", "a request head must arrive within this, else 408 and close"},
    {"idle-timeout-ms", CM_OPT_U64, offsetof(struct gw_config, idle_timeout_ms), "60000", 100,
     86400000, 0, "MS", "close a keep-alive connection idle this long"},
    {"body-timeout-ms", CM_OPT_U64, offsetof(struct gw_config, body_timeout_ms), "30000", 100,
     3600000, 0, "MS", "longest pause between request body bytes, else 408 and close"},
    {"send-timeout-ms", CM_OPT_U64, offsetof(struct gw_config, send_timeout_ms), "60000", 100,
     86400000, 0, "MS", "close a connection whose client reads nothing this long"},
    {"max-connections", CM_OPT_U64, offsetof(struct gw_config, max_connections), "16384", 1,
     10000000, 0, "N", "open client connections per gateway; beyond: 503 and close"},
    {"max-pipeline", CM_OPT_U64, offsetof(struct gw_config, max_pipeline), "16", 1, 1024, 0, "N",
     "answers in flight per connection before the gateway stops reading it"},
    {"admin-max-connections", CM_OPT_U64, offsetof(struct gw_config, admin_max_connections), "32",
     1, 4096, 0, "N", "open admin-port connections; beyond: 503 and close"},
    {"max-buffered-bytes", CM_OPT_SIZE, offsetof(struct gw_config, max_buffered_bytes), "1G",
     1ULL << 20, 1ULL << 40, 0, "BYTES",
     "bytes queued toward clients, whole process: slow readers are throttled near it and the "
     "slowest closed past it"},
    {"cors-origins", CM_OPT_STR, offsetof(struct gw_config, cors_origins), "*", 0, 0, 0,
     "*|ORIGIN[,...]", "CORS allowed origins (\"\" = CORS off)"},
    {"cors-write-origins", CM_OPT_STR, offsetof(struct gw_config, cors_write_origins), "", 0, 0, 0,
     "*|ORIGIN[,...]",
     "origins whose pages may PUT/POST/DELETE (\"\" = none: cross-origin writes 403)"},
    {"cluster-secret-file", CM_OPT_STR, offsetof(struct gw_config, cluster_secret_file), NULL, 0, 0,
     0, "FILE", "the cluster secret shared by every node and gateway (required)"},
    {"insecure", CM_OPT_BOOL, offsetof(struct gw_config, insecure), "0", 0, 0, 0, "BOOL",
     "no cluster authentication (test clusters only; nodes must run --insecure too)"},
    {"access-log", CM_OPT_BOOL, offsetof(struct gw_config, access_log), "1", 0, 0, 0, "BOOL",
     "one log line per request"},
};

#define GW_NOPTS (sizeof(gw_opts) / sizeof(gw_opts[0]))

static int check_addr(const char *what, const char *v, char *errmsg, size_t errlen);

int gw_config_parse(struct gw_config *cfg, int argc, char **argv, char *errmsg, size_t errlen)
{
    memset(cfg, 0, sizeof(*cfg));
    int rv =
        cm_opts_parse(gw_opts, GW_NOPTS, cfg, argc, argv, "HEADWATER_", NULL, NULL, errmsg, errlen);
    if (rv == 0 && cfg->threads == 0) { /* not given: one loop per core */
        unsigned n = uv_available_parallelism();
        cfg->threads = n < 1 ? 1 : n > 256 ? 256 : n;
    }
    return rv;
}

/* Numeric connection-layer options left 0 (a config built by hand) take their table default;
 * then every one is checked against the table's range. */
static int check_limits(struct gw_config *cfg, char *errmsg, size_t errlen)
{
    for (size_t i = 0; i < GW_NOPTS; i++) {
        const struct cm_opt *o = &gw_opts[i];
        if (o->offset < offsetof(struct gw_config, max_header_size) ||
            o->offset > offsetof(struct gw_config, max_buffered_bytes))
            continue;
        uint64_t *v = (uint64_t *)((char *)cfg + o->offset);
        if (*v == 0 && cm_size_parse(o->def, v) != 0)
            return CM_EINVAL;
        if (*v < o->min || *v > o->max) {
            snprintf(errmsg, errlen, "--%s must be between %llu and %llu", o->name,
                     (unsigned long long)o->min, (unsigned long long)o->max);
            return CM_EINVAL;
        }
    }
    if (cfg->max_url_length > cfg->max_header_size) {
        snprintf(errmsg, errlen, "--max-url-length must not exceed --max-header-size");
        return CM_EINVAL;
    }
    return 0;
}

static int check_tls(struct gw_config *cfg, char *errmsg, size_t errlen)
{
    int n = (cfg->tls_listen != NULL) + (cfg->tls_cert != NULL) + (cfg->tls_key != NULL);
    if (n != 0 && n != 3) {
        snprintf(errmsg, errlen, "--tls-listen, --tls-cert and --tls-key go together");
        return CM_EINVAL;
    }
    if (n == 0)
        return 0;
    if (check_addr("tls-listen", cfg->tls_listen, errmsg, errlen) != 0)
        return CM_EINVAL;
    if (strcmp(cfg->tls_listen, cfg->listen) == 0 ||
        strcmp(cfg->tls_listen, cfg->admin_listen) == 0) {
        snprintf(errmsg, errlen, "--tls-listen must differ from --listen and --admin-listen");
        return CM_EINVAL;
    }
    return 0;
}

void gw_config_usage(FILE *out)
{
    cm_opts_usage(out, "headwater-gateway --nodes HOST:PORT[,...] [options]", gw_opts, GW_NOPTS);
}

static int check_addr(const char *what, const char *v, char *errmsg, size_t errlen)
{
    char host[256];
    int port;
    if (v == NULL || cm_hostport_parse(v, host, sizeof(host), &port) != 0) {
        snprintf(errmsg, errlen, "--%s: bad address '%s' (want HOST:PORT)", what, v ? v : "");
        return CM_EINVAL;
    }
    return 0;
}

static int split_nodes(struct gw_config *cfg, char *errmsg, size_t errlen)
{
    const char *p = cfg->nodes;
    cfg->nseeds = 0;
    if (p == NULL || *p == '\0') {
        snprintf(errmsg, errlen, "--nodes: at least one HOST:PORT is required");
        return CM_EINVAL;
    }
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (cfg->nseeds == GW_MAX_SEEDS) {
            snprintf(errmsg, errlen, "--nodes: more than %d addresses", GW_MAX_SEEDS);
            return CM_EINVAL;
        }
        if (n == 0 || n >= GW_ADDR_MAX) {
            snprintf(errmsg, errlen, "--nodes: empty or overlong entry in '%s'", cfg->nodes);
            return CM_EINVAL;
        }
        char *dst = cfg->seeds[cfg->nseeds];
        memcpy(dst, p, n);
        dst[n] = '\0';
        if (check_addr("nodes", dst, errmsg, errlen) != 0)
            return CM_EINVAL;
        for (size_t i = 0; i < cfg->nseeds; i++) {
            if (strcmp(cfg->seeds[i], dst) == 0) {
                snprintf(errmsg, errlen, "--nodes: '%s' listed twice", dst);
                return CM_EINVAL;
            }
        }
        cfg->nseeds++;
        p += n;
        if (*p == ',')
            p++;
    }
    return 0;
}

/* Syntax only: the rules are parsed again (and kept) by gw_shared_new. */
static int check_rules(const struct gw_config *cfg, char *errmsg, size_t errlen)
{
    struct gw_rules r;
    char err[256] = "";
    gw_rules_init(&r);
    int rv = gw_rules_parse(&r, cfg->cache_rules ? cfg->cache_rules : "", err, sizeof(err));
    if (rv != 0)
        snprintf(errmsg, errlen, "--cache-rules: %s", err);
    gw_rules_free(&r);
    if (rv != 0)
        return CM_EINVAL;
    gw_rules_init(&r);
    rv = gw_rules_parse(&r, cfg->lifecycle ? cfg->lifecycle : "", err, sizeof(err));
    for (size_t i = 0; rv == 0 && i < r.n; i++) {
        char *end;
        long long v = strtoll(r.v[i].value, &end, 10);
        if (*end != '\0' || v <= 0 || v > GW_TTL_MAX) {
            snprintf(err, sizeof(err),
                     "TTL '%s' for %s is not a whole number of seconds from 1 to %d", r.v[i].value,
                     r.v[i].prefix, GW_TTL_MAX);
            rv = CM_EINVAL;
        }
    }
    if (rv != 0)
        snprintf(errmsg, errlen, "--lifecycle: %s", err);
    gw_rules_free(&r);
    return rv != 0 ? CM_EINVAL : 0;
}

/* Every write origin must also get CORS answers (else a browser could write and not read). */
static int check_cors(struct gw_config *cfg, char *errmsg, size_t errlen)
{
    struct gw_cors cors, write;
    if (cfg->cors_origins == NULL)
        cfg->cors_origins = "*";
    if (cfg->cors_write_origins == NULL)
        cfg->cors_write_origins = "";
    if (gw_cors_parse(cfg->cors_origins, &cors, errmsg, errlen) != 0)
        return CM_EINVAL;
    if (gw_cors_parse(cfg->cors_write_origins, &write, errmsg, errlen) != 0) {
        snprintf(errmsg, errlen,
                 "--cors-write-origins: want \"*\", \"\" or up to %d origins like "
                 "https://encoder.example.com, got '%s'",
                 GW_CORS_MAX_ORIGINS, cfg->cors_write_origins);
        return CM_EINVAL;
    }
    if (cors.mode == GW_CORS_ANY || write.mode == GW_CORS_OFF)
        return 0;
    for (size_t i = 0; i < write.n || write.mode == GW_CORS_ANY; i++) {
        const char *o = write.mode == GW_CORS_ANY ? "*" : write.origin[i];
        int ok = 0;
        for (size_t j = 0; j < cors.n && write.mode == GW_CORS_LIST; j++)
            ok |= strcmp(cors.origin[j], o) == 0;
        if (!ok) {
            snprintf(errmsg, errlen, "--cors-write-origins: %s is not allowed by --cors-origins",
                     o);
            return CM_EINVAL;
        }
    }
    return 0;
}

int gw_config_validate(struct gw_config *cfg, char *errmsg, size_t errlen)
{
    if (check_addr("listen", cfg->listen, errmsg, errlen) != 0 ||
        check_addr("admin-listen", cfg->admin_listen, errmsg, errlen) != 0)
        return CM_EINVAL;
    if (strcmp(cfg->listen, cfg->admin_listen) == 0) {
        snprintf(errmsg, errlen, "--listen and --admin-listen must differ");
        return CM_EINVAL;
    }
    if (split_nodes(cfg, errmsg, errlen) != 0)
        return CM_EINVAL;
    if (cfg->threads < 1 || cfg->threads > 256) {
        snprintf(errmsg, errlen, "--threads must be between 1 and 256");
        return CM_EINVAL;
    }
    if (cfg->max_object_size < 1) {
        snprintf(errmsg, errlen, "--max-object-size must be at least 1 byte");
        return CM_EINVAL;
    }
    if (check_rules(cfg, errmsg, errlen) != 0)
        return CM_EINVAL;
    int level = cm_log_level_parse(cfg->log_level ? cfg->log_level : "");
    if (level < 0) {
        snprintf(errmsg, errlen, "--log-level: unknown level '%s'",
                 cfg->log_level ? cfg->log_level : "");
        return CM_EINVAL;
    }
    cfg->level = level;
    if (cfg->zone == NULL)
        cfg->zone = "";
    if (check_limits(cfg, errmsg, errlen) != 0 || check_tls(cfg, errmsg, errlen) != 0)
        return CM_EINVAL;
    if (cfg->keys != NULL && cfg->keys[0] == '\0')
        cfg->keys = NULL;
    return check_cors(cfg, errmsg, errlen);
}
