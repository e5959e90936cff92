/* Key-change wakeups from the commit watch to requests parked on any loop of a gateway process
 * (blocking playlist reloads, live/hold.h).
 *
 * One bus per process (shared.h), one gw_wake per loop that parks requests. A loop declares
 * interest in a key (gw_wake_interest, counted in a table of GW_WAKE_SLOTS slots by key hash);
 * the commit watch posts every applied write (gw_wake_bus_post, after `applied` advanced:
 * cluster/watch.h on_applied) and the bus queues it to each loop whose slot for the key is in
 * use, then wakes that loop (uv_async_send). A slot shared by two keys only costs a spurious
 * wakeup. A loop's callback runs on its own loop with (key, index), or with key NULL when
 * anything may have changed (a watch reset, or more than GW_WAKE_QUEUE posts queued at once).
 *
 * Ordering: interest is counted (seq_cst) before the loop reads the watch position, and the
 * watch advances its position before it posts: either the post sees the interest, or the
 * loop's read starts at or past the write.
 *
 * Locks: the bus mutex, then a loop's queue mutex (always in that order). */
#ifndef GW_WAKE_H
#define GW_WAKE_H

#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#define GW_WAKE_SLOTS 1024u
#define GW_WAKE_QUEUE 4096u

struct gw_wake_bus;
struct gw_wake;

/* key NULL: every key. */
typedef void (*gw_wake_fn)(void *arg, const char *key, uint64_t index);

int gw_wake_bus_new(struct gw_wake_bus **out);
/* After every gw_wake of it was closed. */
void gw_wake_bus_free(struct gw_wake_bus *b);
/* Any thread. key NULL: wake every loop for every key. */
void gw_wake_bus_post(struct gw_wake_bus *b, const char *key, uint64_t index);

/* Open a loop's end and register it on the bus. */
int gw_wake_open(uv_loop_t *loop, struct gw_wake_bus *b, gw_wake_fn fn, void *arg,
                 struct gw_wake **out);
/* Unregister at once (fn never runs again); memory goes with the async handle's close. */
void gw_wake_close(struct gw_wake *w);
/* +1 / -1 interest in key (on w's loop). */
void gw_wake_interest(struct gw_wake *w, const char *key, int delta);
/* Changes when anything is posted that concerns key (its slot, or every key), posted before
 * the wakeup is queued: an object read after reading gen G is current for as long as the gen
 * is still G (a write is acknowledged only after the watch posted it: cluster/watch.h). */
uint64_t gw_wake_gen(struct gw_wake *w, const char *key);

#endif
