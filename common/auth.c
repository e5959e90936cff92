/* Cluster authentication (see auth.h): secret loading, the HELLO codec, HMAC proofs, the
 * handshake state machine and rate-limited refusal logging. No sockets here. */
#include "auth.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "err.h"
#include "log.h"
#include "timeutil.h"

#define LIMITER_SLOTS 64
#define LIMITER_MS 60000

static const uint8_t hello_magic[4] = {'H', 'W', 'A', '1'};
static const char mac_label[] = "headwater-auth-v1";

struct limiter_slot {
    char host[64];
    uint64_t last_ms;
    uint64_t suppressed;
};

struct cm_auth {
    int insecure;
    uint8_t role;
    uint64_t node_id;
    size_t keylen;
    uint8_t key[CM_AUTH_SECRET_MAX];
    atomic_ullong refused[CM_AUTH_R_COUNT];
    pthread_mutex_t lock; /* guards slots */
    struct limiter_slot slots[LIMITER_SLOTS];
};

const char *cm_auth_reason_name(enum cm_auth_reason r)
{
    switch (r) {
#define CM_AUTH_R_CASE(name, text)                                                                 \
    case name:                                                                                     \
        return text;
        CM_AUTH_REASONS(CM_AUTH_R_CASE)
#undef CM_AUTH_R_CASE
    default:
        return "unknown";
    }
}

/* ---- codec ---- */

static void put_be32(uint8_t *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

size_t cm_auth_hello_encode(const struct cm_auth_hello *h, uint8_t *out)
{
    if (h->addr_len > CM_AUTH_ADDR_MAX)
        return 0;
    memcpy(out, hello_magic, 4);
    out[4] = h->version;
    out[5] = h->role;
    out[6] = h->channel;
    out[7] = (uint8_t)h->addr_len;
    put_be32(out + 8, h->group);
    put_be64(out + 12, h->node_id);
    memcpy(out + 20, h->nonce, CM_AUTH_NONCE_LEN);
    memcpy(out + CM_AUTH_HELLO_FIXED, h->addr, h->addr_len);
    return CM_AUTH_HELLO_FIXED + h->addr_len;
}

int cm_auth_hello_decode(const uint8_t *buf, size_t len, struct cm_auth_hello *h, size_t *need)
{
    if (len < CM_AUTH_HELLO_FIXED) {
        /* Refuse a wrong magic as soon as its bytes are in. */
        if (memcmp(buf, hello_magic, len < 4 ? len : 4) != 0)
            return CM_EPROTO;
        *need = CM_AUTH_HELLO_FIXED;
        return 1;
    }
    if (memcmp(buf, hello_magic, 4) != 0 || buf[4] != CM_AUTH_VERSION)
        return CM_EPROTO;
    size_t total = CM_AUTH_HELLO_FIXED + buf[7];
    *need = total;
    if (len < total)
        return 1;
    memset(h, 0, sizeof(*h));
    h->version = buf[4];
    h->role = buf[5];
    h->channel = buf[6];
    h->addr_len = buf[7];
    h->group = (uint32_t)get_be(buf + 8, 4);
    h->node_id = get_be(buf + 12, 8);
    memcpy(h->nonce, buf + 20, CM_AUTH_NONCE_LEN);
    memcpy(h->addr, buf + CM_AUTH_HELLO_FIXED, h->addr_len);
    h->addr[h->addr_len] = '\0';
    for (size_t i = 0; i < h->addr_len; i++)
        if ((unsigned char)h->addr[i] <= ' ' || (unsigned char)h->addr[i] >= 0x7f)
            return CM_EPROTO; /* addresses are printable host:port text */
    if (h->role != CM_AUTH_ROLE_GATEWAY && h->role != CM_AUTH_ROLE_NODE)
        return CM_EPROTO;
    return 0;
}

/* ---- the secret ---- */

static int auth_alloc(uint8_t role, uint64_t node_id, struct cm_auth **out)
{
    struct cm_auth *a = cm_calloc(1, sizeof(*a));
    if (a == NULL)
        return CM_ENOMEM;
    a->role = role;
    a->node_id = node_id;
    pthread_mutex_init(&a->lock, NULL);
    *out = a;
    return 0;
}

int cm_auth_new_secret(const void *secret, size_t len, uint8_t role, uint64_t node_id,
                       struct cm_auth **out)
{
    if (len < CM_AUTH_SECRET_MIN || len > CM_AUTH_SECRET_MAX)
        return CM_EINVAL;
    int rv = auth_alloc(role, node_id, out);
    if (rv != 0)
        return rv;
    memcpy((*out)->key, secret, len);
    (*out)->keylen = len;
    return 0;
}

/* Read the whole file (bounded), strip trailing whitespace. */
static int read_secret(const char *path, uint8_t *key, size_t *keylen, char *errmsg, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(errmsg, errlen, "--cluster-secret-file %s: %s", path, strerror(errno));
        return CM_EINVAL;
    }
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, key + n, CM_AUTH_SECRET_MAX - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
        if (n == CM_AUTH_SECRET_MAX) {
            char extra;
            if (read(fd, &extra, 1) > 0) {
                close(fd);
                snprintf(errmsg, errlen, "--cluster-secret-file %s: longer than %u bytes", path,
                         CM_AUTH_SECRET_MAX);
                return CM_EINVAL;
            }
            break;
        }
    }
    close(fd);
    while (n > 0 &&
           (key[n - 1] == '\n' || key[n - 1] == '\r' || key[n - 1] == ' ' || key[n - 1] == '\t'))
        n--;
    if (n < CM_AUTH_SECRET_MIN) {
        snprintf(errmsg, errlen, "--cluster-secret-file %s: the secret must be at least %u bytes",
                 path, CM_AUTH_SECRET_MIN);
        return CM_EINVAL;
    }
    *keylen = n;
    return 0;
}

int cm_auth_new(const char *secret_file, int insecure, uint8_t role, uint64_t node_id,
                struct cm_auth **out, char *errmsg, size_t errlen)
{
    if (!insecure && (secret_file == NULL || secret_file[0] == '\0')) {
        snprintf(errmsg, errlen,
                 "--cluster-secret-file FILE is required (or --insecure for a test cluster)");
        return CM_EINVAL;
    }
    int rv = auth_alloc(role, node_id, out);
    if (rv != 0)
        return rv;
    struct cm_auth *a = *out;
    if (insecure) {
        a->insecure = 1;
        if (secret_file != NULL && secret_file[0] != '\0')
            CM_WARN("msg=\"--insecure given: the cluster secret is ignored\"");
        return 0;
    }
    rv = read_secret(secret_file, a->key, &a->keylen, errmsg, errlen);
    if (rv != 0) {
        cm_auth_free(a);
        *out = NULL;
    }
    return rv;
}

void cm_auth_free(struct cm_auth *a)
{
    if (a == NULL)
        return;
    OPENSSL_cleanse(a->key, sizeof(a->key));
    pthread_mutex_destroy(&a->lock);
    cm_free(a);
}

int cm_auth_enabled(const struct cm_auth *a)
{
    return a != NULL && !a->insecure;
}

uint8_t cm_auth_role(const struct cm_auth *a)
{
    return a->role;
}

uint64_t cm_auth_node_id(const struct cm_auth *a)
{
    return a->node_id;
}

void cm_auth_mac(const struct cm_auth *a, char dir, const uint8_t *hello_i, size_t len_i,
                 const uint8_t *hello_a, size_t len_a, uint8_t mac[CM_AUTH_MAC_LEN])
{
    uint8_t msg[sizeof(mac_label) + 1 + 2 * CM_AUTH_HELLO_MAX];
    size_t n = 0;
    memcpy(msg, mac_label, sizeof(mac_label) - 1);
    n += sizeof(mac_label) - 1;
    msg[n++] = (uint8_t)dir;
    memcpy(msg + n, hello_i, len_i);
    n += len_i;
    memcpy(msg + n, hello_a, len_a);
    n += len_a;
    unsigned int maclen = CM_AUTH_MAC_LEN;
    if (HMAC(EVP_sha256(), a->key, (int)a->keylen, msg, n, mac, &maclen) == NULL)
        memset(mac, 0, CM_AUTH_MAC_LEN); /* cannot match a real proof's check below */
}

/* ---- refusals ---- */

static void peer_host(const char *peer, char *host, size_t len)
{
    const char *colon = strrchr(peer ? peer : "", ':');
    size_t n = colon ? (size_t)(colon - peer) : strlen(peer ? peer : "");
    if (n >= len)
        n = len - 1;
    memcpy(host, peer ? peer : "", n);
    host[n] = '\0';
}

/* Returns how many refusals were suppressed since the last line, or -1 to stay quiet. */
static long long limiter_pass(struct cm_auth *a, const char *host)
{
    uint64_t now = cm_mono_ms();
    long long out = -1;
    pthread_mutex_lock(&a->lock);
    struct limiter_slot *oldest = &a->slots[0], *slot = NULL;
    for (int i = 0; i < LIMITER_SLOTS && slot == NULL; i++) {
        if (strcmp(a->slots[i].host, host) == 0 && a->slots[i].last_ms != 0)
            slot = &a->slots[i];
        else if (a->slots[i].last_ms < oldest->last_ms)
            oldest = &a->slots[i];
    }
    if (slot == NULL) {
        slot = oldest;
        snprintf(slot->host, sizeof(slot->host), "%s", host);
        slot->last_ms = 0;
        slot->suppressed = 0;
    }
    if (slot->last_ms == 0 || now - slot->last_ms >= LIMITER_MS) {
        out = (long long)slot->suppressed;
        slot->suppressed = 0;
        slot->last_ms = now ? now : 1;
    } else {
        slot->suppressed++;
    }
    pthread_mutex_unlock(&a->lock);
    return out;
}

void cm_auth_refuse(struct cm_auth *a, enum cm_auth_reason r, const char *peer, const char *what)
{
    if (a == NULL || r >= CM_AUTH_R_COUNT)
        return;
    atomic_fetch_add(&a->refused[r], 1);
    char host[64];
    peer_host(peer, host, sizeof(host));
    long long suppressed = limiter_pass(a, host);
    /* An idle connection closed is housekeeping (a gateway's pool keeps some): info, not warn. */
    enum cm_log_level level = r == CM_AUTH_R_IDLE ? CM_LOG_INFO : CM_LOG_WARN;
    if (suppressed >= 0)
        CM_LOG(level,
               "msg=\"refused peer\" peer=%s reason=%s what=\"%s\" suppressed=%lld "
               "note=\"logged once a minute per peer\"",
               peer ? peer : "?", cm_auth_reason_name(r), what ? what : "", suppressed);
}

uint64_t cm_auth_refused(const struct cm_auth *a, enum cm_auth_reason r)
{
    if (a == NULL || r >= CM_AUTH_R_COUNT)
        return 0;
    return atomic_load(&((struct cm_auth *)a)->refused[r]);
}

uint64_t cm_auth_refused_total(const struct cm_auth *a)
{
    uint64_t n = 0;
    for (int r = 0; r < CM_AUTH_R_COUNT; r++)
        n += cm_auth_refused(a, (enum cm_auth_reason)r);
    return n;
}

/* ---- handshake ---- */

int cm_auth_hs_init(struct cm_auth_hs *hs, struct cm_auth *a, int initiator, uint8_t channel,
                    uint32_t group, const char *self_addr)
{
    struct cm_auth_hello h;
    memset(hs, 0, sizeof(*hs));
    memset(&h, 0, sizeof(h));
    hs->auth = a;
    hs->initiator = initiator;
    hs->state = CM_AUTH_HS_HELLO;
    hs->need = CM_AUTH_HELLO_FIXED;
    h.version = CM_AUTH_VERSION;
    h.role = a->role;
    h.channel = channel;
    h.group = group;
    h.node_id = a->node_id;
    h.addr_len = self_addr ? strlen(self_addr) : 0;
    if (h.addr_len > CM_AUTH_ADDR_MAX)
        return CM_EINVAL;
    memcpy(h.addr, self_addr ? self_addr : "", h.addr_len);
    if (RAND_bytes(h.nonce, CM_AUTH_NONCE_LEN) != 1)
        return CM_EIO;
    hs->mine_len = cm_auth_hello_encode(&h, hs->mine);
    return 0;
}

void cm_auth_hs_space(struct cm_auth_hs *hs, uint8_t **p, size_t *len)
{
    *p = NULL;
    *len = 0;
    if (hs->state == CM_AUTH_HS_HELLO) {
        *p = hs->theirs + hs->have;
        *len = hs->need - hs->have;
    } else if (hs->state == CM_AUTH_HS_PROOF) {
        *p = hs->proof_in + hs->have;
        *len = CM_AUTH_MAC_LEN - hs->have;
    }
}

static int hs_fail(struct cm_auth_hs *hs, enum cm_auth_reason why, int rv)
{
    hs->state = CM_AUTH_HS_FAILED;
    hs->why = why;
    return rv;
}

/* Proof of side dir over (initiator hello, acceptor hello). */
static void hs_mac(struct cm_auth_hs *hs, char dir, uint8_t *mac)
{
    size_t theirs_len = CM_AUTH_HELLO_FIXED + hs->peer.addr_len;
    if (hs->initiator)
        cm_auth_mac(hs->auth, dir, hs->mine, hs->mine_len, hs->theirs, theirs_len, mac);
    else
        cm_auth_mac(hs->auth, dir, hs->theirs, theirs_len, hs->mine, hs->mine_len, mac);
}

static int hs_hello_in(struct cm_auth_hs *hs, const uint8_t **send, size_t *sendlen)
{
    size_t need = 0;
    int rv = cm_auth_hello_decode(hs->theirs, hs->have, &hs->peer, &need);
    if (rv < 0)
        return hs_fail(hs, CM_AUTH_R_BAD_HELLO, CM_EPROTO);
    if (rv == 1) {
        hs->need = need;
        return 0;
    }
    if (hs->peer.channel != hs->mine[6] || hs->peer.group != get_be(hs->mine + 8, 4))
        return hs_fail(hs, CM_AUTH_R_BAD_HELLO, CM_EPROTO);
    if (hs->initiator && hs->peer.role != CM_AUTH_ROLE_NODE)
        return hs_fail(hs, CM_AUTH_R_BAD_HELLO, CM_EPROTO); /* only nodes accept */
    hs->state = CM_AUTH_HS_PROOF;
    hs->have = 0;
    if (hs->initiator) {
        hs_mac(hs, 'I', hs->proof_out);
        *send = hs->proof_out;
        *sendlen = CM_AUTH_MAC_LEN;
    }
    return 0;
}

static int hs_proof_in(struct cm_auth_hs *hs, const uint8_t **send, size_t *sendlen)
{
    uint8_t want[CM_AUTH_MAC_LEN];
    hs_mac(hs, hs->initiator ? 'A' : 'I', want);
    int ok = CRYPTO_memcmp(want, hs->proof_in, CM_AUTH_MAC_LEN) == 0;
    OPENSSL_cleanse(want, sizeof(want));
    if (!ok)
        return hs_fail(hs, CM_AUTH_R_BAD_PROOF, CM_EAUTH);
    hs->state = CM_AUTH_HS_DONE;
    if (!hs->initiator) {
        hs_mac(hs, 'A', hs->proof_out);
        *send = hs->proof_out;
        *sendlen = CM_AUTH_MAC_LEN;
    }
    return 1;
}

int cm_auth_hs_advance(struct cm_auth_hs *hs, size_t n, const uint8_t **send, size_t *sendlen)
{
    *send = NULL;
    *sendlen = 0;
    if (hs->state == CM_AUTH_HS_FAILED)
        return hs->why == CM_AUTH_R_BAD_PROOF ? CM_EAUTH : CM_EPROTO;
    if (hs->state == CM_AUTH_HS_DONE)
        return 1;
    hs->have += n;
    if (hs->state == CM_AUTH_HS_HELLO)
        return hs_hello_in(hs, send, sendlen);
    if (hs->have < CM_AUTH_MAC_LEN)
        return 0;
    return hs_proof_in(hs, send, sendlen);
}
