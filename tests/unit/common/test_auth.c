#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "err.h"

static const char secret[] = "0123456789abcdef-the-cluster-secret";

static struct cm_auth *auth(const char *s, uint8_t role, uint64_t id)
{
    struct cm_auth *a = NULL;
    cr_assert_eq(cm_auth_new_secret(s, strlen(s), role, id, &a), 0);
    return a;
}

/* Move bytes from src's outbox into dst, writing no more than dst's space asks for at once
 * (chunk caps each write, 1 = byte by byte). Returns dst's last advance result. */
struct side {
    struct cm_auth_hs hs;
    uint8_t out[2 * CM_AUTH_HELLO_MAX];
    size_t outlen;
    int rv;
};

static void pump(struct side *from, struct side *to, size_t chunk)
{
    size_t off = 0;
    while (off < from->outlen && to->rv == 0) {
        uint8_t *p;
        size_t len;
        cm_auth_hs_space(&to->hs, &p, &len);
        cr_assert_gt(len, 0, "a handshake in progress always wants bytes");
        size_t k = from->outlen - off;
        if (k > len)
            k = len;
        if (k > chunk)
            k = chunk;
        memcpy(p, from->out + off, k);
        off += k;
        const uint8_t *send;
        size_t sendlen;
        to->rv = cm_auth_hs_advance(&to->hs, k, &send, &sendlen);
        if (send != NULL) {
            memcpy(to->out + to->outlen, send, sendlen);
            to->outlen += sendlen;
        }
    }
    cr_assert(to->rv != 0 || off == from->outlen, "bytes left over after the handshake ended");
    memmove(from->out, from->out + off, from->outlen - off);
    from->outlen -= off;
}

static void start(struct side *s, struct cm_auth *a, int initiator, uint8_t chan, uint32_t group,
                  const char *addr)
{
    memset(s, 0, sizeof(*s));
    cr_assert_eq(cm_auth_hs_init(&s->hs, a, initiator, chan, group, addr), 0);
    memcpy(s->out, s->hs.mine, s->hs.mine_len);
    s->outlen = s->hs.mine_len;
}

/* Runs both sides to completion; returns 1 if both authenticated. */
static int run(struct side *i, struct side *a, size_t chunk)
{
    for (int round = 0; round < 8; round++) {
        pump(i, a, chunk);
        pump(a, i, chunk);
        if (i->rv != 0 && a->rv != 0)
            break;
        if (i->rv < 0 || a->rv < 0)
            break;
    }
    return i->rv == 1 && a->rv == 1;
}

Test(auth, same_secret_authenticates_both_ways_byte_by_byte)
{
    struct cm_auth *ga = auth(secret, CM_AUTH_ROLE_NODE, 7),
                   *na = auth(secret, CM_AUTH_ROLE_NODE, 9);
    struct side i, a;
    for (size_t chunk = 1; chunk <= 400; chunk = chunk * 3 + 1) {
        start(&i, ga, 1, CM_AUTH_CHAN_RAFT, 0, "127.0.0.1:7101");
        start(&a, na, 0, CM_AUTH_CHAN_RAFT, 0, "127.0.0.1:7102");
        cr_assert(run(&i, &a, chunk), "chunk %zu: i=%d a=%d", chunk, i.rv, a.rv);
        cr_assert_eq(a.hs.peer.node_id, 7);
        cr_assert_str_eq(a.hs.peer.addr, "127.0.0.1:7101");
        cr_assert_eq(i.hs.peer.node_id, 9);
        cr_assert_str_eq(i.hs.peer.addr, "127.0.0.1:7102");
        cr_assert_eq(a.hs.peer.role, CM_AUTH_ROLE_NODE);
    }
    cm_auth_free(ga);
    cm_auth_free(na);
}

Test(auth, wrong_secret_is_refused_and_the_acceptor_never_proves_itself)
{
    struct cm_auth *bad = auth("not-the-secret-at-all!", CM_AUTH_ROLE_GATEWAY, 0);
    struct cm_auth *node = auth(secret, CM_AUTH_ROLE_NODE, 1);
    struct side i, a;
    start(&i, bad, 1, CM_AUTH_CHAN_RPC, 0, "");
    start(&a, node, 0, CM_AUTH_CHAN_RPC, 0, "");
    cr_assert_not(run(&i, &a, 1000));
    cr_assert_eq(a.rv, CM_EAUTH);
    cr_assert_eq(a.hs.why, CM_AUTH_R_BAD_PROOF);
    cr_assert_eq(a.outlen, 0, "the acceptor sent its proof to a peer that failed its own");
    cr_assert_eq(i.rv, 0, "the initiator is still waiting (and will see the close)");
    cm_auth_free(bad);
    cm_auth_free(node);
}

Test(auth, a_fake_acceptor_cannot_prove_the_secret)
{
    struct cm_auth *gw = auth(secret, CM_AUTH_ROLE_GATEWAY, 0);
    struct cm_auth *fake = auth("some-other-secret-0000", CM_AUTH_ROLE_NODE, 1);
    struct side i, a;
    start(&i, gw, 1, CM_AUTH_CHAN_RPC, 0, "");
    start(&a, fake, 0, CM_AUTH_CHAN_RPC, 0, "");
    pump(&i, &a, 1000);
    pump(&a, &i, 1000); /* its hello; our proof goes out */
    /* The fake acceptor cannot check our proof; it answers with its own (wrong) MAC. */
    uint8_t mac[CM_AUTH_MAC_LEN];
    cm_auth_mac(fake, 'A', i.hs.mine, i.hs.mine_len, a.hs.mine, a.hs.mine_len, mac);
    memcpy(a.out, mac, sizeof(mac));
    a.outlen = sizeof(mac);
    pump(&a, &i, 1000);
    cr_assert_eq(i.rv, CM_EAUTH);
    cm_auth_free(gw);
    cm_auth_free(fake);
}

Test(auth, a_reflected_proof_is_refused)
{
    /* The acceptor's proof direction differs: sending the initiator its own proof back fails. */
    struct cm_auth *n1 = auth(secret, CM_AUTH_ROLE_NODE, 1),
                   *n2 = auth(secret, CM_AUTH_ROLE_NODE, 2);
    struct side i, a;
    start(&i, n1, 1, CM_AUTH_CHAN_RPC, 0, "");
    start(&a, n2, 0, CM_AUTH_CHAN_RPC, 0, "");
    pump(&i, &a, 1000);
    pump(&a, &i, 1000);
    cr_assert_eq(i.outlen, CM_AUTH_MAC_LEN);
    memcpy(a.out, i.out, CM_AUTH_MAC_LEN); /* reflect */
    a.outlen = CM_AUTH_MAC_LEN;
    pump(&a, &i, 1000);
    cr_assert_eq(i.rv, CM_EAUTH);
    cm_auth_free(n1);
    cm_auth_free(n2);
}

Test(auth, channel_and_group_must_match)
{
    struct cm_auth *n1 = auth(secret, CM_AUTH_ROLE_NODE, 1),
                   *n2 = auth(secret, CM_AUTH_ROLE_NODE, 2);
    struct side i, a;
    start(&i, n1, 1, CM_AUTH_CHAN_RPC, 0, "");
    start(&a, n2, 0, CM_AUTH_CHAN_RAFT, 0, "");
    cr_assert_not(run(&i, &a, 1000));
    cr_assert_eq(a.rv, CM_EPROTO);
    start(&i, n1, 1, CM_AUTH_CHAN_RAFT, 3, "");
    start(&a, n2, 0, CM_AUTH_CHAN_RAFT, 0, "");
    cr_assert_not(run(&i, &a, 1000));
    cr_assert_eq(a.rv, CM_EPROTO);
    cr_assert_eq(a.hs.why, CM_AUTH_R_BAD_HELLO);
    cm_auth_free(n1);
    cm_auth_free(n2);
}

Test(auth, hello_codec_bounds)
{
    struct cm_auth_hello h, d;
    uint8_t buf[CM_AUTH_HELLO_MAX];
    size_t need = 0;
    memset(&h, 0, sizeof(h));
    h.version = CM_AUTH_VERSION;
    h.role = CM_AUTH_ROLE_NODE;
    h.channel = CM_AUTH_CHAN_RAFT;
    h.group = 0x01020304;
    h.node_id = 0x1122334455667788ull;
    h.addr_len = CM_AUTH_ADDR_MAX;
    memset(h.addr, 'a', CM_AUTH_ADDR_MAX);
    size_t n = cm_auth_hello_encode(&h, buf);
    cr_assert_eq(n, CM_AUTH_HELLO_MAX);
    for (size_t k = 0; k < n; k++) {
        int rv = cm_auth_hello_decode(buf, k, &d, &need);
        cr_assert_eq(rv, 1, "prefix %zu", k);
        cr_assert_leq(need, CM_AUTH_HELLO_MAX);
        cr_assert_gt(need, k);
    }
    cr_assert_eq(cm_auth_hello_decode(buf, n, &d, &need), 0);
    cr_assert_eq(d.group, h.group);
    cr_assert_eq(d.node_id, h.node_id);
    cr_assert_eq(d.addr_len, CM_AUTH_ADDR_MAX);
    h.addr_len = CM_AUTH_ADDR_MAX + 1;
    cr_assert_eq(cm_auth_hello_encode(&h, buf), 0, "an address past the cap is not encoded");
    /* Garbage: wrong magic refused on its first byte, wrong version, control bytes, role. */
    cr_assert_eq(cm_auth_hello_decode((const uint8_t *)"G", 1, &d, &need), CM_EPROTO);
    h.addr_len = 3;
    memcpy(h.addr, "a\nb", 3);
    n = cm_auth_hello_encode(&h, buf);
    cr_assert_eq(cm_auth_hello_decode(buf, n, &d, &need), CM_EPROTO);
    memcpy(h.addr, "abc", 3);
    n = cm_auth_hello_encode(&h, buf);
    buf[4] = 2;
    cr_assert_eq(cm_auth_hello_decode(buf, n, &d, &need), CM_EPROTO);
    buf[4] = CM_AUTH_VERSION;
    buf[5] = 9;
    cr_assert_eq(cm_auth_hello_decode(buf, n, &d, &need), CM_EPROTO);
}

Test(auth, raft_wire_bytes_are_not_a_hello)
{
    /* raft_uv's own handshake (u64 protocol = 1 ...) and an AppendEntries preamble. */
    uint8_t raft_hs[24] = {1, 0, 0, 0, 0, 0, 0, 0, 2};
    struct cm_auth_hello d;
    size_t need;
    cr_assert_eq(cm_auth_hello_decode(raft_hs, sizeof(raft_hs), &d, &need), CM_EPROTO);
}

Test(auth, secret_file_rules)
{
    char path[] = "/tmp/hw-auth-test-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    struct cm_auth *a = NULL;
    char err[256];
    cr_assert_eq(cm_auth_new(NULL, 0, CM_AUTH_ROLE_NODE, 1, &a, err, sizeof(err)), CM_EINVAL);
    cr_assert(strstr(err, "--cluster-secret-file") != NULL, "%s", err);
    cr_assert_eq(write(fd, "short\n", 6), 6);
    cr_assert_eq(cm_auth_new(path, 0, CM_AUTH_ROLE_NODE, 1, &a, err, sizeof(err)), CM_EINVAL);
    cr_assert_eq(write(fd, "-but-now-long-enough\n", 21), 21);
    close(fd);
    cr_assert_eq(cm_auth_new(path, 0, CM_AUTH_ROLE_NODE, 1, &a, err, sizeof(err)), 0, "%s", err);
    cr_assert(cm_auth_enabled(a));
    cm_auth_free(a);
    cr_assert_eq(cm_auth_new(NULL, 1, CM_AUTH_ROLE_NODE, 1, &a, err, sizeof(err)), 0);
    cr_assert_not(cm_auth_enabled(a), "--insecure");
    cm_auth_free(a);
    unlink(path);
    cr_assert_eq(cm_auth_new(path, 0, CM_AUTH_ROLE_NODE, 1, &a, err, sizeof(err)), CM_EINVAL);
}

Test(auth, refusals_are_counted_every_time)
{
    struct cm_auth *a = auth(secret, CM_AUTH_ROLE_NODE, 1);
    for (int k = 0; k < 100; k++)
        cm_auth_refuse(a, CM_AUTH_R_BAD_PROOF, "10.0.0.1:5000", "test");
    cm_auth_refuse(a, CM_AUTH_R_TIMEOUT, "[::1]:5000", "test");
    cr_assert_eq(cm_auth_refused(a, CM_AUTH_R_BAD_PROOF), 100);
    cr_assert_eq(cm_auth_refused(a, CM_AUTH_R_TIMEOUT), 1);
    cr_assert_eq(cm_auth_refused_total(a), 101);
    cr_assert_str_eq(cm_auth_reason_name(CM_AUTH_R_BAD_COMMIT), "bad_commit");
    cm_auth_free(a);
}
