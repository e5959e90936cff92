/* Gateway read leases of one shard (see lease.h). */
#include "shard/lease.h"

#include <stddef.h>

#include "alloc.h"

void nd_lease_init(struct nd_lease *l, unsigned lease_ms)
{
    l->lease_ms = lease_ms;
    l->leading = 0;
    l->term = 0;
    l->term_start = 0;
    l->safe = 0;
    l->holders = NULL;
}

void nd_lease_free(struct nd_lease *l)
{
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
    if (hd->conns == 0 && hd->expires == 0)
        holder_unlink(l, hd);
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
    uint64_t wait_end = l->term_start + l->lease_ms + ND_LEASE_MARGIN_MS;
    if (now < wait_end) {
        *next_ms = wait_end;
        return l->safe;
    }
    uint64_t safe = applied;
    for (struct nd_lease_holder *hd = l->holders, *nx; hd != NULL; hd = nx) {
        nx = hd->next;
        if (hd->expires <= now) {
            if (hd->conns == 0)
                holder_unlink(l, hd); /* a closed stream whose lease ran out */
            continue;
        }
        if (hd->acked < applied)
            *next_ms = *next_ms == 0 ? hd->expires : min_u64(*next_ms, hd->expires);
        safe = min_u64(safe, hd->acked);
    }
    if (safe > l->safe)
        l->safe = safe;
    return l->safe;
}
