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
