/* Cluster authentication: a shared secret and a mutual challenge-response handshake that
 * runs on every gateway<->node and node<->node connection (RPC and Raft) before any other byte
 * is acted on.
 *
 * Wire (both sides, before anything else):
 *   HELLO  "HWA1" | u8 version(1) | u8 role | u8 channel | u8 addr_len |
 *          u32 BE group | u64 BE node_id | nonce[32] | addr[addr_len]      (52..307 bytes)
 *   PROOF  HMAC-SHA256(secret, "headwater-auth-v1" | dir | hello_I | hello_A)   (32 bytes)
 * I = the connecting side (initiator), A = the accepting side; dir is 'I' or 'A', so a proof
 * can never be reflected back. Order: both send HELLO at once; I sends its PROOF after A's
 * HELLO; A checks it (constant time) and only then sends its own PROOF; I checks that. Every
 * field is covered by both proofs (role, channel, group, node id, address, both nonces).
 *
 * The codec and the handshake state are pure (no sockets): the caller reads exactly the bytes
 * cm_auth_hs_space asks for, so nothing after the handshake is ever consumed by it. */
#ifndef CM_AUTH_H
#define CM_AUTH_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define CM_AUTH_SECRET_MIN 16u
#define CM_AUTH_SECRET_MAX 4096u
#define CM_AUTH_NONCE_LEN 32u
#define CM_AUTH_MAC_LEN 32u
#define CM_AUTH_ADDR_MAX 255u
#define CM_AUTH_HELLO_FIXED 52u
#define CM_AUTH_HELLO_MAX (CM_AUTH_HELLO_FIXED + CM_AUTH_ADDR_MAX)
#define CM_AUTH_VERSION 1u
#define CM_AUTH_TIMEOUT_MS 5000u /* deadline for a whole handshake */

enum cm_auth_role { CM_AUTH_ROLE_GATEWAY = 1, CM_AUTH_ROLE_NODE = 2 };
enum cm_auth_channel { CM_AUTH_CHAN_RPC = 1, CM_AUTH_CHAN_RAFT = 2 };

/* Why a peer was refused (metrics label = the text in cm_auth_reason_name). */
#define CM_AUTH_REASONS(X)                                                                         \
    X(CM_AUTH_R_BAD_HELLO, "bad_hello")                                                            \
    X(CM_AUTH_R_BAD_PROOF, "bad_proof")                                                            \
    X(CM_AUTH_R_TIMEOUT, "timeout")                                                                \
    X(CM_AUTH_R_NOT_MEMBER, "not_member")                                                          \
    X(CM_AUTH_R_LIMIT, "conn_limit")                                                               \
    X(CM_AUTH_R_IDLE, "idle")                                                                      \
    X(CM_AUTH_R_OVERSIZE, "oversize")                                                              \
    X(CM_AUTH_R_BAD_COMMIT, "bad_commit")                                                          \
    X(CM_AUTH_R_BAD_RAFT, "bad_raft_message")

enum cm_auth_reason {
#define CM_AUTH_R_ENUM(name, text) name,
    CM_AUTH_REASONS(CM_AUTH_R_ENUM)
#undef CM_AUTH_R_ENUM
        CM_AUTH_R_COUNT
};

const char *cm_auth_reason_name(enum cm_auth_reason r);

struct cm_auth_hello {
    uint8_t version;
    uint8_t role;
    uint8_t channel;
    uint32_t group; /* shard / raft group id; 0 today */
    uint64_t node_id;
    uint8_t nonce[CM_AUTH_NONCE_LEN];
    size_t addr_len;
    char addr[CM_AUTH_ADDR_MAX + 1]; /* NUL-terminated */
};

/* Encode into out (CM_AUTH_HELLO_MAX bytes); returns the length, 0 if addr_len is too long. */
size_t cm_auth_hello_encode(const struct cm_auth_hello *h, uint8_t *out);
/* Decode from len bytes: 0 = decoded (the hello is *need bytes long), 1 = need *need bytes
 * in all, CM_EPROTO = not a valid hello (bad magic, version, NUL in address...). Never reads
 * past len; *need never exceeds CM_AUTH_HELLO_MAX. */
int cm_auth_hello_decode(const uint8_t *buf, size_t len, struct cm_auth_hello *h, size_t *need);

/* The process's secret, identity and refusal counters. One per daemon, shared by its threads
 * (counters are atomic, the log limiter is locked). insecure: no secret, no handshake. */
struct cm_auth;

int cm_auth_new(const char *secret_file, int insecure, uint8_t role, uint64_t node_id,
                struct cm_auth **out, char *errmsg, size_t errlen);
/* For tests: a secret given as bytes. */
int cm_auth_new_secret(const void *secret, size_t len, uint8_t role, uint64_t node_id,
                       struct cm_auth **out);
void cm_auth_free(struct cm_auth *a);
int cm_auth_enabled(const struct cm_auth *a); /* 0 when NULL or insecure */
uint8_t cm_auth_role(const struct cm_auth *a);
uint64_t cm_auth_node_id(const struct cm_auth *a);

/* MAC for direction dir ('I' or 'A') over both encoded hellos. */
void cm_auth_mac(const struct cm_auth *a, char dir, const uint8_t *hello_i, size_t len_i,
                 const uint8_t *hello_a, size_t len_a, uint8_t mac[CM_AUTH_MAC_LEN]);

/* Count a refusal and log it (at most once per peer host per minute). peer is "host:port". */
void cm_auth_refuse(struct cm_auth *a, enum cm_auth_reason r, const char *peer, const char *what);
uint64_t cm_auth_refused(const struct cm_auth *a, enum cm_auth_reason r);
uint64_t cm_auth_refused_total(const struct cm_auth *a);

/* One handshake (either side). */
enum cm_auth_hs_state { CM_AUTH_HS_HELLO, CM_AUTH_HS_PROOF, CM_AUTH_HS_DONE, CM_AUTH_HS_FAILED };

struct cm_auth_hs {
    struct cm_auth *auth; /* borrowed */
    int initiator;
    enum cm_auth_hs_state state;
    uint8_t mine[CM_AUTH_HELLO_MAX];
    size_t mine_len;
    uint8_t theirs[CM_AUTH_HELLO_MAX];
    size_t have; /* bytes of their hello, then of their proof, received */
    size_t need; /* bytes wanted in the current step */
    uint8_t proof_in[CM_AUTH_MAC_LEN];
    uint8_t proof_out[CM_AUTH_MAC_LEN];
    struct cm_auth_hello peer; /* valid from PROOF on */
    enum cm_auth_reason why;   /* set when FAILED */
};

/* Start: fills our hello (fresh random nonce) into hs->mine / hs->mine_len, which the caller
 * sends first. Returns 0, CM_EINVAL (address too long) or CM_EIO (no randomness). */
int cm_auth_hs_init(struct cm_auth_hs *hs, struct cm_auth *a, int initiator, uint8_t channel,
                    uint32_t group, const char *self_addr);
/* Exactly where and how much the next read may write (len > 0 until DONE/FAILED). */
void cm_auth_hs_space(struct cm_auth_hs *hs, uint8_t **p, size_t *len);
/* n bytes were written at the last space. Returns 0 = more wanted, 1 = authenticated (the
 * peer's hello is in hs->peer), CM_EPROTO / CM_EAUTH = refuse (hs->why says why). When *send
 * is set on return, write those *sendlen bytes (our proof) to the peer. */
int cm_auth_hs_advance(struct cm_auth_hs *hs, size_t n, const uint8_t **send, size_t *sendlen);

#endif
