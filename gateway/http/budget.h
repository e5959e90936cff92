/* A process-wide memory budget for bytes buffered toward clients (--max-buffered-bytes).
 *
 * Every connection is a member of its server's list (one per server, so per loop) and tells the
 * budget how many bytes it holds unsent (its write queue: plaintext waiting for TLS and bytes
 * libuv has not written). The sum is one atomic shared by every loop. Two responses:
 *   throttle: gw_budget_mark shrinks the per-connection high-water mark (where a GET stops
 *     pulling object bytes from the node) from `high` while the process holds less than half the
 *     budget down to GW_BUDGET_MARK_FLOOR when it holds all of it;
 *   close: a change that leaves the process over the budget picks the member of the same list
 *     holding the most bytes for the longest (bytes x ms since its queue last shrank) and
 *     returns it for the caller to close; that member leaves the list at once (its bytes
 *     stop counting, so one excess closes one connection, not every one on the loop).
 * Lists and members belong to one loop; only `used` is shared (relaxed atomics). */
#ifndef GW_BUDGET_H
#define GW_BUDGET_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define GW_BUDGET_MARK_FLOOR (64u * 1024u)

struct gw_budget {
    _Atomic uint64_t used; /* bytes held unsent by every member, all loops */
    uint64_t max;          /* 0 = no budget */
};

struct gw_budget_list;

struct gw_budget_member {
    struct gw_budget_member *prev, *next;
    struct gw_budget_list *list; /* NULL when not (or no longer) a member */
    uint64_t bytes;              /* charged to the budget */
    uint64_t since_ms;           /* holding bytes without shrinking since */
};

struct gw_budget_list {
    struct gw_budget *budget; /* borrowed; NULL = no budget (every call a no-op) */
    struct gw_budget_member *head;
};

void gw_budget_init(struct gw_budget *b, uint64_t max);
uint64_t gw_budget_used(const struct gw_budget *b);

/* The high-water mark for a connection given the process's use: pure. */
size_t gw_budget_mark_for(uint64_t used, uint64_t max, size_t high);
/* The same for the budget now (b NULL or max 0: high). */
size_t gw_budget_mark(const struct gw_budget *b, size_t high);

void gw_budget_list_init(struct gw_budget_list *l, struct gw_budget *b);
void gw_budget_join(struct gw_budget_list *l, struct gw_budget_member *m);
/* Uncharge the member's bytes and leave the list (idempotent; after being picked too). */
void gw_budget_leave(struct gw_budget_member *m);
/* The member now holds `bytes` unsent (now_ms: its loop's clock). Returns a member to close
 * (it has left the list; the caller finds its owner from where it embedded the member) when
 * this leaves the process over the budget, else NULL. A member that is not in a list is
 * ignored. */
struct gw_budget_member *gw_budget_set(struct gw_budget_member *m, uint64_t bytes, uint64_t now_ms);

#endif
