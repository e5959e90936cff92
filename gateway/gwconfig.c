#include "gwconfig.h"

#include <stddef.h>
#include <string.h>

#include "config.h"
#include "err.h"
#include "log.h"

static const struct cm_opt gw_opts[] = {
    {"listen", CM_OPT_STR, offsetof(struct gw_config, listen), "127.0.0.1:8080", 0, 0, 0,
     "HOST:PORT", "data (HTTP) listen address"},
    {"admin-listen", CM_OPT_STR, offsetof(struct gw_config, admin_listen), "127.0.0.1:9080", 0, 0,
     0, "HOST:PORT", "admin (HTTP) listen address"},
    {"nodes", CM_OPT_STR, offsetof(struct gw_config, nodes), NULL, 0, 0, 1, "HOST:PORT[,...]",
     "node RPC addresses to learn the cluster from"},
    {"zone", CM_OPT_STR, offsetof(struct gw_config, zone), "", 0, 0, 0, "ZONE",
     "this gateway's zone"},
    {"threads", CM_OPT_U64, offsetof(struct gw_config, threads), "1", 1, 256, 0, "N",
     "worker threads (this version runs one event loop)"},
    {"max-object-size", CM_OPT_SIZE, offsetof(struct gw_config, max_object_size), "64M", 1,
     1ULL << 40, 0, "BYTES", "largest accepted object (K/M/G suffixes)"},
    {"log-level", CM_OPT_STR, offsetof(struct gw_config, log_level), "info", 0, 0, 0,
     "debug|info|warn|error", "log level"},
};

#define GW_NOPTS (sizeof(gw_opts) / sizeof(gw_opts[0]))

int gw_config_parse(struct gw_config *cfg, int argc, char **argv, char *errmsg, size_t errlen)
{
    memset(cfg, 0, sizeof(*cfg));
    return cm_opts_parse(gw_opts, GW_NOPTS, cfg, argc, argv, "HEADWATER_", NULL, NULL, errmsg,
                         errlen);
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
    int level = cm_log_level_parse(cfg->log_level ? cfg->log_level : "");
    if (level < 0) {
        snprintf(errmsg, errlen, "--log-level: unknown level '%s'",
                 cfg->log_level ? cfg->log_level : "");
        return CM_EINVAL;
    }
    cfg->level = level;
    if (cfg->zone == NULL)
        cfg->zone = "";
    return 0;
}
