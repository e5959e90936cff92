/* Option tables: one row per option (name, type, default, min, max, help), so --help,
 * docs and validation cannot drift. Order: defaults -> env HEADWATER_<NAME> -> flags. */
#ifndef CM_CONFIG_H
#define CM_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum cm_opt_type {
    CM_OPT_STR,  /* const char * (borrowed from argv/environ/default) */
    CM_OPT_U64,  /* uint64_t, plain integer */
    CM_OPT_SIZE, /* uint64_t, accepts K/M/G suffixes (powers of 1024) */
    CM_OPT_BOOL, /* int, "1/0/true/false/yes/no"; a bare --flag sets 1 */
};

struct cm_opt {
    const char *name; /* flag name without dashes, e.g. "data-dir" */
    enum cm_opt_type type;
    size_t offset;     /* offsetof(struct cfg, field) */
    const char *def;   /* default as text; NULL = unset (STR -> NULL, numbers -> 0) */
    uint64_t min, max; /* numbers only */
    int required;
    const char *metavar;
    const char *help;
};

/* Fill cfg from defaults, environment (`env_prefix` + upper-cased name with '-' -> '_') and
 * argv. Returns 0, CM_EHELP when --help/-h was given, or CM_EINVAL with errmsg set. Positional
 * arguments (not starting with "--") are returned in order through rest/nrest when non-NULL
 * (pointers into argv), else they are an error. */
int cm_opts_parse(const struct cm_opt *opts, size_t nopts, void *cfg, int argc, char **argv,
                  const char *env_prefix, char **rest, int *nrest, char *errmsg, size_t errlen);
void cm_opts_usage(FILE *out, const char *usage_line, const struct cm_opt *opts, size_t nopts);

/* "host:port" / "[v6]:port" -> host (no brackets) and port. */
int cm_hostport_parse(const char *s, char *host, size_t hostlen, int *port);
/* Parse a size with optional K/M/G suffix. */
int cm_size_parse(const char *s, uint64_t *out);

#endif
