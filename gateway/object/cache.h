/* Hot-object cache and request coalescing, shared by every loop (thread) of a gateway process.
 *
 * Objects are cached whole, keyed by key (one version per key: a newer fill replaces the
 * entry), in bounded memory with LRU eviction. An entry is an immutable gw_cobj: metadata plus
 * one refcounted buffer holding the bytes; readers on any thread take a ref and write slices of
 * it to their clients (no copy). Objects larger than capacity/8 are never cached.
 *
 * Coalescing: gw_cache_get answers HIT (a fresh entry), FILL (no entry and no read in flight:
 * the caller reads the object from a node and must call gw_cache_fill_end exactly once) or WAIT
 * (a read is in flight: the caller's gw_cwait gets the outcome later through its loop's
 * gw_cache_port, an uv_async_t + locked queue, so the callback runs on the waiter's own loop).
 * gw_cache_cancel withdraws a waiter (its callback then never runs).
 *
 * Freshness is the filler's decision (fresh_until, monotonic ms): immutable segments until
 * evicted, playlists for at most their max-age. Entries past fresh_until or past the object's
 * expires_ms (wall ms) are misses. gw_cache_invalidate drops a key (this gateway's own PUT or
 * DELETE) and detaches a read in flight for it, so it is not inserted and later requests read
 * again. Write-through: a PUT this gateway committed puts the object it holds (gw_cache_put),
 * so the first reader of a new segment or playlist needs no node; an entry is never replaced by
 * an older version.
 *
 * Locking: one mutex per cache, then the port's mutex (always in that order). */
#ifndef GW_CACHE_H
#define GW_CACHE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"

struct gw_cobj {
    unsigned long refs; /* atomic */
    char *key;          /* owned */
    uint64_t version;
    uint64_t size;
    char *content_type;  /* owned */
    char *cache_control; /* owned: the object's own (from its PUT), "" = none */
    int64_t created_ms;
    int64_t expires_ms;  /* 0 = never */
    struct cm_buf *body; /* ref, size bytes (NULL when size is 0) */
    /* under the cache lock */
    uint64_t fresh_until; /* monotonic ms; UINT64_MAX = until evicted */
    size_t charge;
    int linked;
    struct gw_cobj *hnext, *lprev, *lnext;
};

/* New object (refs 1) with a body buffer of `size` bytes to fill (body->len = 0). */
struct gw_cobj *gw_cobj_new(const char *key, uint64_t version, uint64_t size, const char *ctype,
                            const char *cache_control, int64_t created_ms, int64_t expires_ms);
struct gw_cobj *gw_cobj_ref(struct gw_cobj *o);
void gw_cobj_unref(struct gw_cobj *o);

struct gw_cache;
struct gw_cache_port;
struct gw_cfill;

enum gw_cwait_result {
    GW_CWAIT_OBJ,       /* obj holds the object (a ref the waiter now owns) */
    GW_CWAIT_NOT_FOUND, /* the node said NOT_FOUND */
    GW_CWAIT_FAILED,    /* no replica could serve it */
    GW_CWAIT_RETRY,     /* not coalesced (too large, reader gone): read it yourself */
};

/* Caller storage for one wait. Fields below `private` belong to the cache. */
struct gw_cwait {
    void (*cb)(struct gw_cwait *w); /* on the waiter's loop */
    void *arg;
    enum gw_cwait_result result;
    struct gw_cobj *obj;
    /* private */
    struct gw_cache_port *port;
    struct gw_cfill *fill;
    struct gw_cwait *next;
    int state;
};

enum gw_cache_rc { GW_CACHE_HIT, GW_CACHE_WAIT, GW_CACHE_FILL, GW_CACHE_MISS };

struct gw_cache_stats {
    uint64_t used; /* bytes charged */
    uint64_t entries;
    uint64_t capacity;
    uint64_t evictions;
};

int gw_cache_new(uint64_t capacity, struct gw_cache **out);
void gw_cache_free(struct gw_cache *c);
/* Largest object that may be cached (capacity / 8). */
uint64_t gw_cache_max_object(const struct gw_cache *c);

/* Look key up. HIT: *hit = a ref. With w == NULL: MISS otherwise (no fill, no wait). With a
 * waiter (w->cb/arg set, port = the caller's loop port): FILL (*fill set) or WAIT. */
enum gw_cache_rc gw_cache_get(struct gw_cache *c, const char *key, uint64_t now_ms, int64_t wall_ms,
                              struct gw_cache_port *port, struct gw_cwait *w, struct gw_cobj **hit,
                              struct gw_cfill **fill);
/* The filler's outcome. obj (borrowed; with GW_CWAIT_OBJ) is inserted when fresh_until is in the
 * future and the fill was not invalidated meanwhile; every waiter gets the outcome. */
void gw_cache_fill_end(struct gw_cache *c, struct gw_cfill *f, struct gw_cobj *obj,
                       uint64_t fresh_until, uint64_t now_ms, enum gw_cwait_result result);
/* Withdraw a waiter (on its loop). Its callback will not run; a delivered ref is dropped. */
void gw_cache_cancel(struct gw_cache *c, struct gw_cwait *w);
/* Drop key's entry and detach a read in flight for it. */
void gw_cache_invalidate(struct gw_cache *c, const char *key);
/* The same for an applied write of key at raft index `index` (the commit watch): no object of
 * key older than index is put afterwards (gw_cache_put). */
void gw_cache_invalidate_at(struct gw_cache *c, const char *key, uint64_t index);
/* Drop every entry and detach every read in flight (the commit watch missed events). */
void gw_cache_clear(struct gw_cache *c);
/* The same when the watch jumped to index: no object older than it is put afterwards. */
void gw_cache_clear_at(struct gw_cache *c, uint64_t index);
/* Write-through: insert obj (borrowed; complete: body->len == size), which this gateway just
 * committed at obj->version, unless the commit watch already applied a later write of its key
 * (or of a key in its bucket) or jumped past it, or a newer version is cached. A later applied
 * write invalidates it like any entry. 1 when inserted. */
int gw_cache_put(struct gw_cache *c, struct gw_cobj *obj, uint64_t fresh_until, uint64_t now_ms);
void gw_cache_stats(struct gw_cache *c, struct gw_cache_stats *st);

/* One per loop: delivers wait outcomes on that loop. Close after every waiter of this loop was
 * cancelled or called back; memory goes in the close callback. */
int gw_cache_port_new(uv_loop_t *loop, struct gw_cache_port **out);
void gw_cache_port_close(struct gw_cache_port *p);

#endif
