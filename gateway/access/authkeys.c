#include "access/authkeys.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "err.h"

enum { SCOPE_READ = 1, SCOPE_WRITE = 2, SCOPE_ADMIN = 4, SCOPE_PRIVATE = 8 };

struct gw_key_rule {
    int scope;
    char *prefix; /* owned */
    unsigned char digest[SHA256_DIGEST_LENGTH];
};

struct gw_keys {
    struct gw_key_rule *v;
    size_t n;
};

void gw_keys_free(struct gw_keys *k)
{
    if (k == NULL)
        return;
    for (size_t i = 0; i < k->n; i++)
        cm_free(k->v[i].prefix);
    OPENSSL_cleanse(k->v, k->n * sizeof(*k->v));
    cm_free(k->v);
    cm_free(k);
}

size_t gw_keys_count(const struct gw_keys *k)
{
    size_t n = 0;
    for (size_t i = 0; k != NULL && i < k->n; i++)
        n += k->v[i].scope != SCOPE_PRIVATE;
    return n;
}

/* Split the next whitespace-separated word of [*p, end). */
static int word(const char **p, const char *end, const char **w, size_t *wlen)
{
    while (*p < end && (**p == ' ' || **p == '\t' || **p == '\r'))
        (*p)++;
    *w = *p;
    while (*p < end && **p != ' ' && **p != '\t' && **p != '\r')
        (*p)++;
    *wlen = (size_t)(*p - *w);
    return *wlen > 0;
}

static int add_rule(struct gw_keys *k, int scope, const char *prefix, size_t plen, const char *key,
                    size_t klen)
{
    struct gw_key_rule *v = cm_realloc(k->v, (k->n + 1) * sizeof(*v));
    if (v == NULL)
        return CM_ENOMEM;
    k->v = v;
    memset(&v[k->n], 0, sizeof(v[k->n]));
    v[k->n].scope = scope;
    v[k->n].prefix = cm_strndup(prefix, plen);
    if (v[k->n].prefix == NULL)
        return CM_ENOMEM;
    if (key != NULL)
        SHA256((const unsigned char *)key, klen, v[k->n].digest);
    k->n++;
    return 0;
}

int gw_keys_parse(const char *text, size_t len, struct gw_keys **out, char *errmsg, size_t errlen)
{
    struct gw_keys *k = cm_calloc(1, sizeof(*k));
    const char *p = text, *end = text + len;
    int line = 0, rv = 0;
    if (k == NULL)
        return CM_ENOMEM;
    while (p < end && rv == 0) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *lend = eol ? eol : end;
        const char *hash = memchr(p, '#', (size_t)(lend - p));
        const char *stop = hash ? hash : lend;
        const char *w[4];
        size_t wl[4], nw = 0;
        line++;
        while (nw < 4 && word(&p, stop, &w[nw], &wl[nw]))
            nw++;
        p = eol ? eol + 1 : end;
        if (nw == 0)
            continue;
        int scope = 0;
        if (wl[0] == 4 && memcmp(w[0], "read", 4) == 0)
            scope = SCOPE_READ;
        else if (wl[0] == 5 && memcmp(w[0], "write", 5) == 0)
            scope = SCOPE_WRITE | SCOPE_READ;
        else if (wl[0] == 5 && memcmp(w[0], "admin", 5) == 0)
            scope = SCOPE_ADMIN;
        else if (wl[0] == 7 && memcmp(w[0], "private", 7) == 0)
            scope = SCOPE_PRIVATE;
        int want = scope == SCOPE_PRIVATE ? 2 : 3;
        if (scope == 0 || (size_t)want != nw || w[1][0] != '/') {
            snprintf(errmsg, errlen,
                     "keys file line %d: expected \"read|write|admin /prefix KEY\" or "
                     "\"private /prefix\"",
                     line);
            rv = CM_EINVAL;
            break;
        }
        rv = add_rule(k, scope, w[1], wl[1], nw == 3 ? w[2] : NULL, nw == 3 ? wl[2] : 0);
    }
    if (rv != 0) {
        gw_keys_free(k);
        return rv;
    }
    *out = k;
    return 0;
}

int gw_keys_load(const char *path, struct gw_keys **out, char *errmsg, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(errmsg, errlen, "cannot open keys file %s: %s", path, strerror(errno));
        return CM_EIO;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rv = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            char *nb = cap > (16u << 20) ? NULL : cm_realloc(buf, cap);
            if (nb == NULL) {
                rv = CM_ETOOBIG;
                snprintf(errmsg, errlen, "keys file %s is too large", path);
                break;
            }
            buf = nb;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    fclose(f);
    if (rv == 0)
        rv = gw_keys_parse(buf ? buf : "", len, out, errmsg, errlen);
    if (buf != NULL)
        OPENSSL_cleanse(buf, cap);
    cm_free(buf);
    return rv;
}

/* Does prefix cover path, segment by segment? "/live" and "/live/" cover "/live" and
 * "/live/...", never "/livex"; "/" covers everything. */
static int under(const char *path, const char *prefix)
{
    size_t n = strlen(prefix);
    while (n > 0 && prefix[n - 1] == '/')
        n--;
    if (n == 0)
        return 1;
    return strncmp(path, prefix, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

enum gw_auth gw_keys_check(const struct gw_keys *k, enum gw_access need, const char *path,
                           const char *token, size_t toklen)
{
    int want;
    if (k == NULL)
        return GW_AUTH_OK;
    if (need == GW_ACCESS_READ) {
        int private = 0;
        for (size_t i = 0; i < k->n && !private; i++)
        private = k->v[i].scope == SCOPE_PRIVATE && under(path, k->v[i].prefix);
        if (!private)
            return GW_AUTH_OK;
        want = SCOPE_READ;
    } else {
        want = need == GW_ACCESS_WRITE ? SCOPE_WRITE : SCOPE_ADMIN;
    }
    if (token == NULL || toklen == 0)
        return GW_AUTH_MISSING;
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)token, toklen, d);
    int ok = 0;
    /* Every rule is compared, matching or not, so timing tells nothing about which. */
    for (size_t i = 0; i < k->n; i++) {
        int same = CRYPTO_memcmp(d, k->v[i].digest, sizeof(d)) == 0;
        int fits =
            (k->v[i].scope & want) != 0 && (need == GW_ACCESS_ADMIN || under(path, k->v[i].prefix));
        ok |= same & fits;
    }
    OPENSSL_cleanse(d, sizeof(d));
    return ok ? GW_AUTH_OK : GW_AUTH_FORBIDDEN;
}

int gw_keys_is_write(const struct gw_keys *k, const char *token, size_t toklen)
{
    if (k == NULL || token == NULL || toklen == 0)
        return 0;
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)token, toklen, d);
    int yes = 0;
    for (size_t i = 0; i < k->n; i++)
        yes |= (CRYPTO_memcmp(d, k->v[i].digest, sizeof(d)) == 0) &
               ((k->v[i].scope & SCOPE_WRITE) != 0);
    OPENSSL_cleanse(d, sizeof(d));
    return yes;
}
