#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"

int cm_size_parse(const char *s, uint64_t *out)
{
    if (s == NULL || !isdigit((unsigned char)s[0]))
        return CM_EINVAL;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0)
        return CM_EINVAL;
    uint64_t mult = 1;
    if (*end != '\0') {
        switch (toupper((unsigned char)*end)) {
        case 'K':
            mult = 1024ULL;
            break;
        case 'M':
            mult = 1024ULL * 1024;
            break;
        case 'G':
            mult = 1024ULL * 1024 * 1024;
            break;
        default:
            return CM_EINVAL;
        }
        end++;
        if (*end == 'i' || *end == 'I')
            end++;
        if (*end == 'B' || *end == 'b')
            end++;
        if (*end != '\0')
            return CM_EINVAL;
    }
    if (v > UINT64_MAX / mult)
        return CM_EINVAL;
    *out = (uint64_t)v * mult;
    return 0;
}

int cm_hostport_parse(const char *s, char *host, size_t hostlen, int *port)
{
    const char *colon;
    const char *hs = s;
    size_t hl;
    if (s == NULL || *s == '\0')
        return CM_EINVAL;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':')
            return CM_EINVAL;
        hs = s + 1;
        hl = (size_t)(close - hs);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL)
            return CM_EINVAL;
        hl = (size_t)(colon - s);
        if (memchr(s, ':', hl) != NULL)
            return CM_EINVAL; /* bare IPv6 without brackets */
    }
    if (hl == 0 || hl >= hostlen)
        return CM_EINVAL;
    const char *ps = colon + 1;
    if (*ps == '\0')
        return CM_EINVAL;
    for (const char *p = ps; *p; p++) {
        if (!isdigit((unsigned char)*p))
            return CM_EINVAL;
    }
    long v = strtol(ps, NULL, 10);
    if (v < 1 || v > 65535 || strlen(ps) > 5)
        return CM_EINVAL;
    memcpy(host, hs, hl);
    host[hl] = '\0';
    *port = (int)v;
    return 0;
}

static int parse_bool(const char *v, int *out)
{
    static const char *yes[] = {"1", "true", "yes", "on"};
    static const char *no[] = {"0", "false", "no", "off"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return CM_EINVAL;
}

static int opt_set(const struct cm_opt *o, void *cfg, const char *v, const char *from, char *errmsg,
                   size_t errlen)
{
    char *field = (char *)cfg + o->offset;
    uint64_t n = 0;
    int b;
    switch (o->type) {
    case CM_OPT_STR:
        memcpy(field, &v, sizeof(v));
        return 0;
    case CM_OPT_BOOL:
        if (parse_bool(v, &b) != 0) {
            snprintf(errmsg, errlen, "%s: --%s expects a boolean, got '%s'", from, o->name, v);
            return CM_EINVAL;
        }
        memcpy(field, &b, sizeof(b));
        return 0;
    case CM_OPT_U64:
    case CM_OPT_SIZE:
        if (o->type == CM_OPT_U64) {
            char *end;
            errno = 0;
            n = strtoull(v, &end, 10);
            if (!isdigit((unsigned char)v[0]) || *end != '\0' || errno != 0) {
                snprintf(errmsg, errlen, "%s: --%s expects a number, got '%s'", from, o->name, v);
                return CM_EINVAL;
            }
        } else if (cm_size_parse(v, &n) != 0) {
            snprintf(errmsg, errlen, "%s: --%s expects a size (e.g. 64M), got '%s'", from, o->name,
                     v);
            return CM_EINVAL;
        }
        if (n < o->min || n > o->max) {
            snprintf(errmsg, errlen, "%s: --%s must be between %llu and %llu, got '%s'", from,
                     o->name, (unsigned long long)o->min, (unsigned long long)o->max, v);
            return CM_EINVAL;
        }
        memcpy(field, &n, sizeof(n));
        return 0;
    }
    return CM_EINVAL;
}

static const struct cm_opt *opt_find(const struct cm_opt *opts, size_t nopts, const char *name,
                                     size_t len)
{
    for (size_t i = 0; i < nopts; i++) {
        if (strlen(opts[i].name) == len && strncmp(opts[i].name, name, len) == 0)
            return &opts[i];
    }
    return NULL;
}

static void env_name(char *out, size_t outlen, const char *prefix, const char *name)
{
    size_t n = (size_t)snprintf(out, outlen, "%s", prefix);
    for (const char *p = name; *p && n + 1 < outlen; p++)
        out[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    out[n] = '\0';
}

static int apply_defaults_and_env(const struct cm_opt *opts, size_t nopts, void *cfg,
                                  const char *env_prefix, unsigned char *seen, char *errmsg,
                                  size_t errlen)
{
    for (size_t i = 0; i < nopts; i++) {
        const struct cm_opt *o = &opts[i];
        if (o->def != NULL && opt_set(o, cfg, o->def, "default", errmsg, errlen) != 0)
            return CM_EINVAL;
        if (env_prefix == NULL)
            continue;
        char name[128];
        env_name(name, sizeof(name), env_prefix, o->name);
        const char *v = getenv(name);
        if (v != NULL && *v != '\0') {
            if (opt_set(o, cfg, v, name, errmsg, errlen) != 0)
                return CM_EINVAL;
            seen[i] = 1;
        }
    }
    return 0;
}

int cm_opts_parse(const struct cm_opt *opts, size_t nopts, void *cfg, int argc, char **argv,
                  const char *env_prefix, char **rest, int *nrest, char *errmsg, size_t errlen)
{
    unsigned char seen[128] = {0};
    if (nopts > sizeof(seen))
        return CM_EINVAL;
    if (nrest)
        *nrest = 0;
    if (apply_defaults_and_env(opts, nopts, cfg, env_prefix, seen, errmsg, errlen) != 0)
        return CM_EINVAL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return CM_EHELP;
        if (strncmp(a, "--", 2) != 0) {
            if (rest == NULL) {
                snprintf(errmsg, errlen, "unexpected argument '%s'", a);
                return CM_EINVAL;
            }
            rest[(*nrest)++] = argv[i];
            continue;
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const struct cm_opt *o = opt_find(opts, nopts, name, nlen);
        if (o == NULL) {
            snprintf(errmsg, errlen, "unknown option '--%.*s' (see --help)", (int)nlen, name);
            return CM_EINVAL;
        }
        const char *v = eq ? eq + 1 : NULL;
        if (v == NULL && o->type == CM_OPT_BOOL)
            v = "1";
        if (v == NULL) {
            if (i + 1 >= argc) {
                snprintf(errmsg, errlen, "option '--%s' needs a value", o->name);
                return CM_EINVAL;
            }
            v = argv[++i];
        }
        if (opt_set(o, cfg, v, "flag", errmsg, errlen) != 0)
            return CM_EINVAL;
        seen[o - opts] = 1;
    }
    for (size_t i = 0; i < nopts; i++) {
        if (opts[i].required && !seen[i] && opts[i].def == NULL) {
            snprintf(errmsg, errlen, "missing required option --%s", opts[i].name);
            return CM_EINVAL;
        }
    }
    return 0;
}

void cm_opts_usage(FILE *out, const char *usage_line, const struct cm_opt *opts, size_t nopts)
{
    fprintf(out, "usage: %s\n\noptions (each also read from HEADWATER_<NAME>):\n", usage_line);
    for (size_t i = 0; i < nopts; i++) {
        const struct cm_opt *o = &opts[i];
        char left[64];
        snprintf(left, sizeof(left), "--%s %s", o->name,
                 o->metavar ? o->metavar : (o->type == CM_OPT_BOOL ? "[0|1]" : "VALUE"));
        fprintf(out, "  %-28s %s", left, o->help ? o->help : "");
        if (o->required)
            fprintf(out, " (required)");
        if (o->def)
            fprintf(out, " [default: %s]", o->def);
        if ((o->type == CM_OPT_U64 || o->type == CM_OPT_SIZE) && o->max)
            fprintf(out, " [%llu..%llu]", (unsigned long long)o->min, (unsigned long long)o->max);
        fputc('\n', out);
    }
    fprintf(out, "  %-28s %s\n", "--help", "print this help and exit");
}
