#include "object/rules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "err.h"

void gw_rules_init(struct gw_rules *r)
{
    r->v = NULL;
    r->n = 0;
}

void gw_rules_free(struct gw_rules *r)
{
    for (size_t i = 0; i < r->n; i++) {
        cm_free(r->v[i].prefix);
        cm_free(r->v[i].value);
    }
    cm_free(r->v);
    gw_rules_init(r);
}

int gw_rules_parse(struct gw_rules *r, const char *list, char *errmsg, size_t errlen)
{
    const char *p = list;
    while (p != NULL && *p != '\0') {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        if (n == 0 || p[0] != '/' || eq == NULL || eq == p + n - 1) {
            snprintf(errmsg, errlen, "expected /PREFIX=VALUE, got \"%.*s\"", (int)n, p);
            return CM_EINVAL;
        }
        struct gw_rule *v = cm_realloc(r->v, (r->n + 1) * sizeof(*v));
        if (v == NULL)
            return CM_ENOMEM;
        r->v = v;
        v[r->n].prefix = cm_strndup(p, (size_t)(eq - p));
        v[r->n].value = cm_strndup(eq + 1, n - (size_t)(eq - p) - 1);
        if (v[r->n].prefix == NULL || v[r->n].value == NULL) {
            cm_free(v[r->n].prefix);
            cm_free(v[r->n].value);
            return CM_ENOMEM;
        }
        r->n++;
        p = end ? end + 1 : NULL;
    }
    return 0;
}

const char *gw_rules_match(const struct gw_rules *r, const char *key)
{
    const char *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; i < r->n; i++) {
        size_t n = strlen(r->v[i].prefix);
        if (n >= best_len && strncmp(key, r->v[i].prefix, n) == 0) {
            best = r->v[i].value;
            best_len = n;
        }
    }
    return best;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

int gw_key_is_playlist(const char *key)
{
    return ends_with(key, ".m3u8") || ends_with(key, ".mpd");
}

const char *gw_cache_control(const struct gw_rules *rules, const char *key, const char *own)
{
    if (own != NULL && own[0] != '\0')
        return own;
    const char *rule = rules ? gw_rules_match(rules, key) : NULL;
    if (rule != NULL)
        return rule;
    return gw_key_is_playlist(key) ? GW_CACHE_CONTROL_LIVE : GW_CACHE_CONTROL_IMMUTABLE;
}

int gw_cache_storable(const char *cc)
{
    return strstr(cc, "no-store") == NULL && strstr(cc, "no-cache") == NULL &&
           strstr(cc, "private") == NULL;
}

int64_t gw_lifecycle_ttl(const struct gw_rules *r, const char *key)
{
    const char *v = r ? gw_rules_match(r, key) : NULL;
    if (v == NULL)
        return 0;
    char *end;
    long long ttl = strtoll(v, &end, 10);
    return *end == '\0' && ttl > 0 ? (int64_t)ttl : 0;
}
