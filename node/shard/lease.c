/* Gateway read leases of one shard (see lease.h). */
#include "shard/lease.h"

#include <stddef.h>
#include <string.h>

#include "alloc.h"
#include "err.h"

void nd_lease_init(struct nd_lease *l, unsigned lease_ms)
{
    memset(l, 0, sizeof(*l));
    l->lease_ms = lease_ms;
}

static void pending_clear(struct nd_lease *l)
{
    cm_free(l->pending);
    l->pending = NULL;
    l->npending = 0;
    l->query_done = 0;
}

void nd_lease_free(struct nd_lease *l)
{
    pending_clear(l);
    while (l->holders != NULL) {
        struct nd_lease_holder *hd = l->holders;
        l->holders = hd->next;
        cm_free(hd);
    }
}

void nd_lease_observe(struct nd_lease *l, int leading, uint64_t term, uint64_t now)
{
    if (leading && l->leading && term == l->term)
        return;
    if (leading && (!l->leading || term != l->term)) {
        l->term_start = now;
        l->safe = 0;
    }
    l->floor = 0;
    l->floor_ready = 0;
    pending_clear(l);
    l->leading = leading;
    l->term = term;
    for (struct nd_lease_holder *hd = l->holders; hd != NULL; hd = hd->next) {
        hd->expires = 0;
        hd->acked = 0;
    }
}

void nd_lease_floor(struct nd_lease *l, uint64_t term, uint64_t index)
{
    if (!l->leading || term != l->term)
        return;
    l->floor = index;
    l->floor_ready = 1;
}

void nd_lease_named(struct nd_lease_holder *hd, uint64_t term, uint64_t now)
{
    hd->named_ms = now;
    hd->named_term = term;
}

long nd_lease_named_before(const struct nd_lease *l, uint64_t term, uint64_t now,
                           struct nd_lease_naming **out)
{
    size_t n = 0, i = 0;
    uint64_t window = l->lease_ms + ND_LEASE_MARGIN_MS;
    *out = NULL;
    for (const struct nd_lease_holder *hd = l->holders; hd != NULL; hd = hd->next)
        n += hd->named_ms > 0 && hd->named_term < term && now - hd->named_ms < window;
    if (n == 0)
        return 0;
    *out = cm_calloc(n, sizeof(**out));
    if (*out == NULL)
        return -1;
    for (const struct nd_lease_holder *hd = l->holders; hd != NULL; hd = hd->next)
        if (hd->named_ms > 0 && hd->named_term < term && now - hd->named_ms < window) {
            (*out)[i].session = hd->session;
            (*out)[i++].ms_ago = now - hd->named_ms;
        }
    return (long)i;
}

int nd_lease_query(struct nd_lease *l, uint64_t term, const struct nd_lease_pending *p, size_t n)
{
    if (!l->leading || term != l->term || l->query_done)
        return 0;
    if (n > 0) {
        l->pending = cm_calloc(n, sizeof(*p));
        if (l->pending == NULL)
            return CM_ENOMEM;
        for (size_t i = 0; i < n; i++)
            l->pending[i] = p[i];
    }
    l->npending = n;
    l->query_done = 1;
    return 0;
}

/* The term's wait is over before its end: every session that may hold an older lease holds one
 * of this term now, or its old one ran out. *next: when to look again (0 = by acks only). */
static int wait_over_early(const struct nd_lease *l, uint64_t now, uint64_t *next)
{
    *next = 0;
    if (!l->query_done)
        return 0;
    int over = 1;
    for (size_t i = 0; i < l->npending; i++) {
        const struct nd_lease_pending *p = &l->pending[i];
        if (now >= p->until)
            continue;
        const struct nd_lease_holder *hd = l->holders;
        while (hd != NULL && hd->session != p->session)
            hd = hd->next;
        if (hd != NULL && hd->expires > now)
            continue; /* granted in this term (observe cleared older ones) */
        over = 0;
        if (*next == 0 || p->until < *next)
            *next = p->until;
    }
    return over;
}

struct nd_lease_holder *nd_lease_attach(struct nd_lease *l, uint64_t session)
{
    struct nd_lease_holder *hd;
    for (hd = l->holders; hd != NULL; hd = hd->next)
        if (hd->session == session) {
            hd->conns++;
            return hd;
        }
    hd = cm_calloc(1, sizeof(*hd));
    if (hd == NULL)
        return NULL;
    hd->session = session;
    hd->conns = 1;
    hd->next = l->holders;
    l->holders = hd;
    return hd;
}

static void holder_unlink(struct nd_lease *l, struct nd_lease_holder *hd)
{
    for (struct nd_lease_holder **pp = &l->holders; *pp != NULL; pp = &(*pp)->next)
        if (*pp == hd) {
            *pp = hd->next;
            cm_free(hd);
            return;
        }
}

void nd_lease_detach(struct nd_lease *l, struct nd_lease_holder *hd, int peer_gone)
{
    if (peer_gone)
        hd->expires = 0;
    if (hd->conns > 0)
        hd->conns--;
    (void)l; /* freed by nd_lease_gc: what it was named must outlive the stream */
}

void nd_lease_gc(struct nd_lease *l, uint64_t now)
{
    uint64_t window = l->lease_ms + ND_LEASE_MARGIN_MS;
    for (struct nd_lease_holder *hd = l->holders, *nx; hd != NULL; hd = nx) {
        nx = hd->next;
        if (hd->conns == 0 && hd->expires <= now &&
            (hd->named_ms == 0 || now - hd->named_ms >= window))
            holder_unlink(l, hd);
    }
}

unsigned nd_lease_ack(struct nd_lease *l, struct nd_lease_holder *hd, uint64_t acked, uint64_t now)
{
    if (acked > hd->acked)
        hd->acked = acked;
    if (!l->leading || !l->floor_ready)
        return 0;
    /* A session behind the safe index has missed entries other readers already rely on: no
     * lease until it caught up (it holds none: the safe index passed its acknowledgements). */
    if (hd->expires <= now && (hd->acked < l->safe || hd->acked < l->floor))
        return 0;
    hd->expires = now + l->lease_ms;
    return l->lease_ms;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

uint64_t nd_lease_safe(struct nd_lease *l, uint64_t applied, uint64_t now, uint64_t *next_ms)
{
    *next_ms = 0;
    if (!l->leading || !l->floor_ready)
        return l->safe;
    uint64_t wait_end = l->term_start + l->lease_ms + ND_LEASE_MARGIN_MS, early;
    if (now < wait_end && !wait_over_early(l, now, &early)) {
        *next_ms = early != 0 && early < wait_end ? early : wait_end;
        return l->safe;
    }
    uint64_t safe = applied;
    for (struct nd_lease_holder *hd = l->holders; hd != NULL; hd = hd->next) {
        if (hd->expires <= now)
            continue;
        if (hd->acked < applied)
            *next_ms = *next_ms == 0 ? hd->expires : min_u64(*next_ms, hd->expires);
        safe = min_u64(safe, hd->acked);
    }
    if (safe > l->safe)
        l->safe = safe;
    return l->safe;
}
