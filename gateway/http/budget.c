/* Memory budget accounting (budget.h): one atomic sum, per-loop member lists to pick from. */
#include "http/budget.h"

#include <string.h>

void gw_budget_init(struct gw_budget *b, uint64_t max)
{
    atomic_init(&b->used, 0);
    b->max = max;
}

uint64_t gw_budget_used(const struct gw_budget *b)
{
    return atomic_load_explicit(&b->used, memory_order_relaxed);
}

size_t gw_budget_mark_for(uint64_t used, uint64_t max, size_t high)
{
    if (max == 0 || used <= max / 2)
        return high;
    if (used >= max)
        return high < GW_BUDGET_MARK_FLOOR ? high : GW_BUDGET_MARK_FLOOR;
    /* linear from high at max/2 to the floor at max */
    uint64_t half = max - max / 2;
    uint64_t left = max - used; /* < half */
    double mark = (double)high * ((double)left / (double)half);
    if (mark < GW_BUDGET_MARK_FLOOR)
        return high < GW_BUDGET_MARK_FLOOR ? high : GW_BUDGET_MARK_FLOOR;
    return (size_t)mark;
}

size_t gw_budget_mark(const struct gw_budget *b, size_t high)
{
    if (b == NULL || b->max == 0)
        return high;
    return gw_budget_mark_for(gw_budget_used(b), b->max, high);
}

void gw_budget_list_init(struct gw_budget_list *l, struct gw_budget *b)
{
    l->budget = b;
    l->head = NULL;
}

void gw_budget_join(struct gw_budget_list *l, struct gw_budget_member *m)
{
    memset(m, 0, sizeof(*m));
    if (l->budget == NULL)
        return;
    m->list = l;
    m->next = l->head;
    if (l->head != NULL)
        l->head->prev = m;
    l->head = m;
}

void gw_budget_leave(struct gw_budget_member *m)
{
    struct gw_budget_list *l = m->list;
    if (l == NULL)
        return;
    atomic_fetch_sub_explicit(&l->budget->used, m->bytes, memory_order_relaxed);
    m->bytes = 0;
    if (m->prev != NULL)
        m->prev->next = m->next;
    else
        l->head = m->next;
    if (m->next != NULL)
        m->next->prev = m->prev;
    m->prev = m->next = NULL;
    m->list = NULL;
}

/* The member holding the most bytes for the longest. */
static struct gw_budget_member *pick(struct gw_budget_list *l, uint64_t now_ms)
{
    struct gw_budget_member *best = NULL;
    double best_score = 0;
    for (struct gw_budget_member *m = l->head; m != NULL; m = m->next) {
        if (m->bytes == 0)
            continue;
        uint64_t age = now_ms > m->since_ms ? now_ms - m->since_ms : 0;
        double score = (double)m->bytes * (double)(age + 1);
        if (score > best_score) {
            best = m;
            best_score = score;
        }
    }
    return best;
}

struct gw_budget_member *gw_budget_set(struct gw_budget_member *m, uint64_t bytes, uint64_t now_ms)
{
    struct gw_budget_list *l = m->list;
    if (l == NULL || bytes == m->bytes)
        return NULL;
    struct gw_budget *b = l->budget;
    if (bytes < m->bytes) { /* progress */
        atomic_fetch_sub_explicit(&b->used, m->bytes - bytes, memory_order_relaxed);
        m->bytes = bytes;
        m->since_ms = now_ms;
        return NULL;
    }
    if (m->bytes == 0)
        m->since_ms = now_ms;
    uint64_t used = atomic_fetch_add_explicit(&b->used, bytes - m->bytes, memory_order_relaxed) +
                    bytes - m->bytes;
    m->bytes = bytes;
    if (b->max == 0 || used <= b->max)
        return NULL;
    struct gw_budget_member *victim = pick(l, now_ms);
    if (victim == NULL)
        return NULL;
    gw_budget_leave(victim);
    return victim;
}
