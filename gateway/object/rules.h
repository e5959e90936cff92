/* Per-prefix rules, pure: longest matching key prefix wins. Used for Cache-Control overrides
 * (`--cache-rules /live/=max-age=2`) and lifecycle TTLs (`--lifecycle /live/=300`). */
#ifndef GW_RULES_H
#define GW_RULES_H

#include <stddef.h>
#include <stdint.h>

struct gw_rule {
    char *prefix; /* owned */
    char *value;  /* owned */
};

struct gw_rules {
    struct gw_rule *v;
    size_t n;
};

void gw_rules_init(struct gw_rules *r);
void gw_rules_free(struct gw_rules *r);
/* Add every "PREFIX=VALUE" of a comma-separated list (a prefix starts with '/'). Returns 0 or
 * CM_EINVAL with errmsg. A value may not contain ','. */
int gw_rules_parse(struct gw_rules *r, const char *list, char *errmsg, size_t errlen);
/* The value of the longest prefix of key, or NULL. */
const char *gw_rules_match(const struct gw_rules *r, const char *key);

/* Cache-Control for a stored object: the object's own (from its PUT), else a prefix rule, else
 * the default by kind: playlists and manifests (.m3u8, .mpd) "max-age=1", everything else
 * (segments, init segments, keys) "max-age=31536000, immutable". */
const char *gw_cache_control(const struct gw_rules *rules, const char *key, const char *own);
/* May a gateway keep an object with this Cache-Control (no no-store, no-cache, private)? */
int gw_cache_storable(const char *cache_control);
#define GW_CACHE_CONTROL_MISS "max-age=1" /* 404s: CDNs must never pin a miss */
#define GW_CACHE_CONTROL_LIVE "max-age=1"
#define GW_CACHE_CONTROL_IMMUTABLE "max-age=31536000, immutable"
/* Is the key a playlist or manifest (mutable: cached by gateways only for its max-age)? */
int gw_key_is_playlist(const char *key);

/* TTL in seconds from the lifecycle rules for key; 0 = none. */
int64_t gw_lifecycle_ttl(const struct gw_rules *r, const char *key);

#endif
