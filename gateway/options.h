/* Gateway options: one option table (defaults -> env HEADWATER_<FLAG> -> flags), then one pure
 * validation step that also splits --nodes and checks the syntax of every layer's option
 * values (rules, CORS origins). */
#ifndef GW_OPTIONS_H
#define GW_OPTIONS_H

#include <stddef.h>
#include <stdio.h>

#include "core/gwconfig.h"

/* Parse argv/env into cfg (zeroed first). Returns 0, CM_EHELP or CM_EINVAL (errmsg set). */
int gw_config_parse(struct gw_config *cfg, int argc, char **argv, char *errmsg, size_t errlen);
/* Check every field and split --nodes into cfg->seeds. Pure. 0 or CM_EINVAL (errmsg set). */
int gw_config_validate(struct gw_config *cfg, char *errmsg, size_t errlen);
void gw_config_usage(FILE *out);

#endif
