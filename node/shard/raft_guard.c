/* raft_uv message format check (see raft_guard.h). One step at a time: a field of 8 or 16
 * bytes is assembled and checked, or a run of bytes we do not look at is passed. */
#include "raft_guard.h"

#include <string.h>

#include "err.h"

enum {
    S_PRE,      /* field: type, header length */
    S_HDR_SKIP, /* a header we pass whole */
    S_AE_FIXED, /* AppendEntries: term, prev index, prev term, commit */
    S_AE_N,     /* field: entry count */
    S_AE_ENTRY, /* field: term, type, length of one entry */
    S_IS_FIXED, /* InstallSnapshot: term, last index, last term, conf index */
    S_IS_CONFLEN /* field */,
    S_IS_CONF, /* the encoded configuration */
    S_IS_DATALEN /* field */,
    S_TAIL, /* AppendEntries / InstallSnapshot: 8 header bytes raft leaves unused */
    S_PAYLOAD,
    S_REFUSED,
};

enum { T_AE = 1, T_AER, T_RV, T_RVR, T_IS, T_TN };

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void field(struct nd_raft_guard *g, int state, size_t need)
{
    g->state = state;
    g->acc_have = 0;
    g->acc_need = need;
}

static void skip(struct nd_raft_guard *g, int state, uint64_t n)
{
    g->state = state;
    g->skip = n;
}

static int refuse(struct nd_raft_guard *g, const char *why)
{
    g->state = S_REFUSED;
    g->why = why;
    return CM_EPROTO;
}

static void payload_or_next(struct nd_raft_guard *g)
{
    if (g->payload > 0)
        skip(g, S_PAYLOAD, g->payload);
    else
        field(g, S_PRE, 16);
}

static int on_preamble(struct nd_raft_guard *g)
{
    uint64_t h = g->hlen = le64(g->acc + 8);
    g->type = le64(g->acc);
    g->payload = 0;
    switch (g->type) {
    case T_RV:
        if (h != 32 && h != 40)
            return refuse(g, "RequestVote header length");
        break;
    case T_RVR:
        if (h != 16 && h != 24)
            return refuse(g, "RequestVote result header length");
        break;
    case T_AER:
    case T_TN:
        if (h != 24)
            return refuse(g, "header length");
        break;
    case T_AE:
        if (h < 48 || h > ND_RAFT_HEADER_MAX || (h - 48) % 16 != 0)
            return refuse(g, "AppendEntries header length");
        skip(g, S_AE_FIXED, 32);
        return 0;
    case T_IS:
        if (h < 56 || h > ND_RAFT_HEADER_MAX)
            return refuse(g, "InstallSnapshot header length");
        skip(g, S_IS_FIXED, 32);
        return 0;
    default:
        return refuse(g, "unknown message type");
    }
    skip(g, S_HDR_SKIP, h);
    return 0;
}

static int on_entry(struct nd_raft_guard *g)
{
    uint8_t type = g->acc[8];
    uint32_t len = (uint32_t)g->acc[12] | (uint32_t)g->acc[13] << 8 | (uint32_t)g->acc[14] << 16 |
                   (uint32_t)g->acc[15] << 24;
    if (type < 1 || type > 3)
        return refuse(g, "entry of an unknown type");
    g->payload += len;
    if (g->payload > ND_RAFT_ENTRIES_MAX)
        return refuse(g, "entries too large");
    if (++g->entry < g->nentries)
        field(g, S_AE_ENTRY, 16);
    else
        skip(g, S_TAIL, 8);
    return 0;
}

/* The current step is complete. */
static int step_done(struct nd_raft_guard *g)
{
    uint64_t v = le64(g->acc);
    switch (g->state) {
    case S_PRE:
        return on_preamble(g);
    case S_HDR_SKIP:
    case S_PAYLOAD:
        field(g, S_PRE, 16);
        return 0;
    case S_TAIL:
        payload_or_next(g);
        return 0;
    case S_AE_FIXED:
        field(g, S_AE_N, 8);
        return 0;
    case S_AE_N:
        if (v != (g->hlen - 48) / 16)
            return refuse(g, "AppendEntries entry count disagrees with its header length");
        g->nentries = v;
        g->entry = 0;
        if (v == 0)
            skip(g, S_TAIL, 8);
        else
            field(g, S_AE_ENTRY, 16);
        return 0;
    case S_AE_ENTRY:
        return on_entry(g);
    case S_IS_FIXED:
        field(g, S_IS_CONFLEN, 8);
        return 0;
    case S_IS_CONFLEN:
        if (v != g->hlen - 56)
            return refuse(g, "InstallSnapshot configuration length");
        skip(g, S_IS_CONF, v);
        return 0;
    case S_IS_CONF:
        field(g, S_IS_DATALEN, 8);
        return 0;
    case S_IS_DATALEN:
        if (v > ND_RAFT_SNAPSHOT_MAX)
            return refuse(g, "snapshot too large");
        g->payload = v;
        skip(g, S_TAIL, 8);
        return 0;
    default:
        return refuse(g, "refused");
    }
}

static int is_skip(int state)
{
    return state == S_HDR_SKIP || state == S_AE_FIXED || state == S_IS_FIXED ||
           state == S_IS_CONF || state == S_TAIL || state == S_PAYLOAD;
}

void nd_raft_guard_init(struct nd_raft_guard *g)
{
    memset(g, 0, sizeof(*g));
    field(g, S_PRE, 16);
}

int nd_raft_guard_feed(struct nd_raft_guard *g, const uint8_t *p, size_t n)
{
    while (g->state != S_REFUSED) {
        if (is_skip(g->state) && g->skip == 0) {
            if (step_done(g) != 0)
                break;
            continue;
        }
        if (n == 0)
            return 0;
        size_t k;
        if (is_skip(g->state)) {
            k = g->skip < n ? (size_t)g->skip : n;
            g->skip -= k;
        } else {
            k = g->acc_need - g->acc_have < n ? g->acc_need - g->acc_have : n;
            memcpy(g->acc + g->acc_have, p, k);
            g->acc_have += k;
        }
        p += k;
        n -= k;
        if (!is_skip(g->state) && g->acc_have == g->acc_need && step_done(g) != 0)
            break;
    }
    return CM_EPROTO;
}
