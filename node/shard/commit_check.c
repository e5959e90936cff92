/* COMMIT field checks (see commit_check.h). */
#include "commit_check.h"

#include <stdio.h>
#include <string.h>

#include "err.h"

/* NULL counts as empty. A field value as the gateway accepts one (RFC 9110 §5.5): no control
 * bytes but HTAB, no DEL; obs-text (bytes >= 0x80) passes. */
static int text_ok(const char *s, size_t max)
{
    size_t n = 0;
    for (; s != NULL && s[n] != '\0'; n++) {
        unsigned char ch = (unsigned char)s[n];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f || n >= max)
            return 0;
    }
    return 1;
}

int nd_commit_key_ok(const char *key)
{
    if (key == NULL || key[0] != '/')
        return 0;
    size_t n = 0;
    for (; key[n] != '\0'; n++) {
        unsigned char ch = (unsigned char)key[n];
        if (ch < 0x20 || ch == 0x7f || n >= ND_COMMIT_KEY_MAX)
            return 0;
    }
    return 1;
}

static int is_member(uint32_t id, const uint32_t *members, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (members[i] == id)
            return 1;
    return 0;
}

static int holders_ok(const Hw__Commit *c, const uint32_t *members, size_t nmembers,
                      unsigned replicas, char *why, size_t whylen)
{
    if (c->n_holders == 0 || c->n_holders > ND_COMMIT_HOLDERS_MAX || c->n_holders > nmembers) {
        snprintf(why, whylen, "COMMIT needs 1..%zu holders",
                 nmembers < ND_COMMIT_HOLDERS_MAX ? nmembers : (size_t)ND_COMMIT_HOLDERS_MAX);
        return 0;
    }
    if (c->n_holders * 2 <= replicas) {
        snprintf(why, whylen, "COMMIT needs a quorum of holders");
        return 0;
    }
    for (size_t i = 0; i < c->n_holders; i++) {
        if (!is_member(c->holders[i], members, nmembers)) {
            snprintf(why, whylen, "COMMIT holder %u is not a member", (unsigned)c->holders[i]);
            return 0;
        }
        for (size_t j = 0; j < i; j++) {
            if (c->holders[j] == c->holders[i]) {
                snprintf(why, whylen, "COMMIT holder %u appears twice", (unsigned)c->holders[i]);
                return 0;
            }
        }
    }
    return 1;
}

int nd_commit_check(const Hw__Commit *c, const uint32_t *members, size_t nmembers,
                    unsigned replicas, char *why, size_t whylen)
{
    const char *bad = NULL;
    if (c == NULL)
        bad = "COMMIT body missing";
    else if (!nd_commit_key_ok(c->key))
        bad = "COMMIT key must start with '/', be at most 1024 bytes, no control characters";
    else if (c->upload_id.len != ND_COMMIT_UPLOAD_ID_LEN)
        bad = "COMMIT needs a 16-byte upload id";
    else if (c->size > ND_COMMIT_SIZE_MAX)
        bad = "COMMIT size too large";
    else if (c->ttl_seconds < 0 || c->ttl_seconds > ND_COMMIT_TTL_MAX)
        bad = "COMMIT ttl_seconds out of range (0 to ten years)";
    else if (!text_ok(c->content_type, ND_COMMIT_CTYPE_MAX))
        bad = "COMMIT content type: at most 1024 bytes, no control characters";
    else if (!text_ok(c->cache_control, ND_COMMIT_CC_MAX))
        bad = "COMMIT cache control: at most 1024 bytes, no control characters";
    if (bad != NULL) {
        snprintf(why, whylen, "%s", bad);
        return CM_EINVAL;
    }
    return holders_ok(c, members, nmembers, replicas, why, whylen) ? 0 : CM_EINVAL;
}
