/* Hot-object cache.
 *
 * Happy path (miss): get -> FILL (fill record hashed by key) -> the filler reads the node ->
 *   fill_end(obj) -> insert at the LRU head (evicting from the tail until it fits) -> every
 *   waiter is pushed onto its loop's port queue (uv_async_send) -> on that loop the port pops
 *   waiters one by one and calls them back. Hit: get -> fresh entry -> ref -> LRU head.
 * Failures: the filler reports NOT_FOUND / FAILED / RETRY instead of an object; waiters get
 *   the same outcome. A waiter going away cancels itself: removed from its fill's list or from
 *   its port queue (both under the cache lock, so a delivery cannot race with it).
 * Close: gw_cache_free drops every entry (refs held by readers keep their objects alive);
 *   ports close their async handle and free themselves in its close callback. */
#include "object/cache.h"

#include <assert.h>
#include <string.h>

#include "alloc.h"
#include "crc32c.h"
#include "err.h"

#define NBUCKETS 4096u
#define ENTRY_OVERHEAD 256u /* struct, strings, allocator slack */

enum { CW_IDLE = 0, CW_ON_FILL, CW_IN_PORT, CW_DONE };

struct gw_cfill {
    char *key; /* owned */
    struct gw_cwait *waiters;
    int hashed;
    struct gw_cfill *hnext;
};

struct gw_cache {
    uv_mutex_t mu;
    uint64_t capacity, used, evictions;
    size_t entries;
    struct gw_cobj *lru_head, *lru_tail;
    struct gw_cobj *objs[NBUCKETS];
    struct gw_cfill *fills[NBUCKETS];
    /* Write-through (gw_cache_put): the highest raft index of an applied write seen per key
     * bucket, and of the last reset; an object older than either is never put. */
    uint64_t seen[NBUCKETS];
    uint64_t floor;
};

struct gw_cache_port {
    uv_async_t async;
    uv_mutex_t mu;
    struct gw_cwait *head, *tail;
};

/* ---- objects ---- */

static char *dup_str(const char *s)
{
    return cm_strndup(s ? s : "", s ? strlen(s) : 0);
}

struct gw_cobj *gw_cobj_new(const char *key, uint64_t version, uint64_t size, const char *ctype,
                            const char *cache_control, int64_t created_ms, int64_t expires_ms)
{
    struct gw_cobj *o = cm_calloc(1, sizeof(*o));
    if (o == NULL)
        return NULL;
    o->refs = 1;
    o->key = dup_str(key);
    o->content_type = dup_str(ctype);
    o->cache_control = dup_str(cache_control);
    if (size > 0)
        o->body = cm_buf_new((size_t)size);
    if (o->key == NULL || o->content_type == NULL || o->cache_control == NULL ||
        (size > 0 && o->body == NULL)) {
        gw_cobj_unref(o);
        return NULL;
    }
    o->version = version;
    o->size = size;
    o->created_ms = created_ms;
    o->expires_ms = expires_ms;
    o->charge = (size_t)size + strlen(o->key) + strlen(o->content_type) + strlen(o->cache_control) +
                ENTRY_OVERHEAD;
    return o;
}

struct gw_cobj *gw_cobj_ref(struct gw_cobj *o)
{
    __atomic_fetch_add(&o->refs, 1, __ATOMIC_RELAXED);
    return o;
}

void gw_cobj_unref(struct gw_cobj *o)
{
    if (o == NULL || __atomic_fetch_sub(&o->refs, 1, __ATOMIC_ACQ_REL) != 1)
        return;
    cm_free(o->key);
    cm_free(o->content_type);
    cm_free(o->cache_control);
    cm_buf_unref(o->body);
    cm_free(o);
}

/* ---- table (under mu) ---- */

static uint32_t bucket(const char *key)
{
    return cm_crc32c(0, key, strlen(key)) % NBUCKETS;
}

static void lru_unlink(struct gw_cache *c, struct gw_cobj *o)
{
    if (o->lprev)
        o->lprev->lnext = o->lnext;
    else
        c->lru_head = o->lnext;
    if (o->lnext)
        o->lnext->lprev = o->lprev;
    else
        c->lru_tail = o->lprev;
    o->lprev = o->lnext = NULL;
}

static void lru_push_head(struct gw_cache *c, struct gw_cobj *o)
{
    o->lprev = NULL;
    o->lnext = c->lru_head;
    if (c->lru_head)
        c->lru_head->lprev = o;
    else
        c->lru_tail = o;
    c->lru_head = o;
}

static struct gw_cobj **obj_slot(struct gw_cache *c, const char *key)
{
    struct gw_cobj **pp = &c->objs[bucket(key)];
    while (*pp != NULL && strcmp((*pp)->key, key) != 0)
        pp = &(*pp)->hnext;
    return pp;
}

static void obj_remove(struct gw_cache *c, struct gw_cobj *o)
{
    struct gw_cobj **pp = obj_slot(c, o->key);
    assert(*pp == o);
    *pp = o->hnext;
    o->hnext = NULL;
    lru_unlink(c, o);
    o->linked = 0;
    c->used -= o->charge;
    c->entries--;
    gw_cobj_unref(o);
}

static struct gw_cfill **fill_slot(struct gw_cache *c, const char *key)
{
    struct gw_cfill **pp = &c->fills[bucket(key)];
    while (*pp != NULL && strcmp((*pp)->key, key) != 0)
        pp = &(*pp)->hnext;
    return pp;
}

static void fill_unhash(struct gw_cache *c, struct gw_cfill *f)
{
    if (!f->hashed)
        return;
    struct gw_cfill **pp = fill_slot(c, f->key);
    while (*pp != NULL && *pp != f)
        pp = &(*pp)->hnext;
    if (*pp == f)
        *pp = f->hnext;
    f->hnext = NULL;
    f->hashed = 0;
}

/* ---- public ---- */

int gw_cache_new(uint64_t capacity, struct gw_cache **out)
{
    struct gw_cache *c = cm_calloc(1, sizeof(*c));
    if (c == NULL)
        return CM_ENOMEM;
    if (uv_mutex_init(&c->mu) != 0) {
        cm_free(c);
        return CM_EIO;
    }
    c->capacity = capacity;
    *out = c;
    return 0;
}

void gw_cache_free(struct gw_cache *c)
{
    if (c == NULL)
        return;
    while (c->lru_head != NULL)
        obj_remove(c, c->lru_head);
    for (size_t i = 0; i < NBUCKETS; i++)
        assert(c->fills[i] == NULL); /* every filler ended before the loops stopped */
    uv_mutex_destroy(&c->mu);
    cm_free(c);
}

uint64_t gw_cache_max_object(const struct gw_cache *c)
{
    return c->capacity / 8;
}

enum gw_cache_rc gw_cache_get(struct gw_cache *c, const char *key, uint64_t now_ms, int64_t wall_ms,
                              struct gw_cache_port *port, struct gw_cwait *w, struct gw_cobj **hit,
                              struct gw_cfill **fill)
{
    enum gw_cache_rc rc;
    uv_mutex_lock(&c->mu);
    struct gw_cobj *o = *obj_slot(c, key);
    if (o != NULL &&
        (now_ms >= o->fresh_until || (o->expires_ms > 0 && wall_ms >= o->expires_ms))) {
        obj_remove(c, o);
        o = NULL;
    }
    if (o != NULL) {
        lru_unlink(c, o);
        lru_push_head(c, o);
        *hit = gw_cobj_ref(o);
        rc = GW_CACHE_HIT;
        goto out;
    }
    if (w == NULL) {
        rc = GW_CACHE_MISS;
        goto out;
    }
    struct gw_cfill **fp = fill_slot(c, key);
    if (*fp != NULL) {
        struct gw_cfill *f = *fp;
        w->port = port;
        w->fill = f;
        w->obj = NULL;
        w->state = CW_ON_FILL;
        w->next = f->waiters;
        f->waiters = w;
        rc = GW_CACHE_WAIT;
        goto out;
    }
    struct gw_cfill *f = cm_calloc(1, sizeof(*f));
    if (f == NULL || (f->key = dup_str(key)) == NULL) {
        cm_free(f);
        rc = GW_CACHE_MISS; /* out of memory: read without coalescing */
        goto out;
    }
    f->hashed = 1;
    *fp = f;
    *fill = f;
    rc = GW_CACHE_FILL;
out:
    uv_mutex_unlock(&c->mu);
    return rc;
}

static void insert(struct gw_cache *c, struct gw_cobj *obj, uint64_t fresh_until)
{
    if (obj->charge > gw_cache_max_object(c) || obj->charge > c->capacity)
        return;
    struct gw_cobj *old = *obj_slot(c, obj->key);
    if (old != NULL && old->version > obj->version)
        return; /* a newer version is already here (written through) */
    if (old != NULL)
        obj_remove(c, old);
    while (c->used + obj->charge > c->capacity && c->lru_tail != NULL) {
        obj_remove(c, c->lru_tail);
        c->evictions++;
    }
    obj->fresh_until = fresh_until;
    obj->linked = 1;
    obj->hnext = NULL;
    *obj_slot(c, obj->key) = gw_cobj_ref(obj);
    lru_push_head(c, obj);
    c->used += obj->charge;
    c->entries++;
}

static void port_push(struct gw_cache_port *p, struct gw_cwait *w)
{
    uv_mutex_lock(&p->mu);
    w->state = CW_IN_PORT;
    w->next = NULL;
    if (p->tail)
        p->tail->next = w;
    else
        p->head = w;
    p->tail = w;
    uv_mutex_unlock(&p->mu);
    uv_async_send(&p->async);
}

void gw_cache_fill_end(struct gw_cache *c, struct gw_cfill *f, struct gw_cobj *obj,
                       uint64_t fresh_until, uint64_t now_ms, enum gw_cwait_result result)
{
    uv_mutex_lock(&c->mu);
    int fresh = f->hashed; /* not invalidated while the read was in flight */
    fill_unhash(c, f);
    if (result == GW_CWAIT_OBJ && obj != NULL && fresh && fresh_until > now_ms && !obj->linked)
        insert(c, obj, fresh_until);
    struct gw_cwait *w = f->waiters;
    f->waiters = NULL;
    while (w != NULL) {
        struct gw_cwait *next = w->next;
        w->fill = NULL;
        w->result = obj != NULL || result != GW_CWAIT_OBJ ? result : GW_CWAIT_FAILED;
        w->obj = result == GW_CWAIT_OBJ && obj != NULL ? gw_cobj_ref(obj) : NULL;
        port_push(w->port, w); /* under the cache lock: a cancel cannot race with it */
        w = next;
    }
    uv_mutex_unlock(&c->mu);
    cm_free(f->key);
    cm_free(f);
}

void gw_cache_cancel(struct gw_cache *c, struct gw_cwait *w)
{
    uv_mutex_lock(&c->mu);
    if (w->state == CW_ON_FILL) {
        struct gw_cwait **pp = &w->fill->waiters;
        while (*pp != NULL && *pp != w)
            pp = &(*pp)->next;
        if (*pp == w)
            *pp = w->next;
    } else if (w->state == CW_IN_PORT) {
        struct gw_cache_port *p = w->port;
        uv_mutex_lock(&p->mu);
        struct gw_cwait *prev = NULL;
        for (struct gw_cwait *x = p->head; x != NULL; prev = x, x = x->next) {
            if (x != w)
                continue;
            if (prev)
                prev->next = w->next;
            else
                p->head = w->next;
            if (p->tail == w)
                p->tail = prev;
            break;
        }
        uv_mutex_unlock(&p->mu);
        gw_cobj_unref(w->obj);
        w->obj = NULL;
    }
    w->state = CW_DONE;
    w->fill = NULL;
    uv_mutex_unlock(&c->mu);
}

void gw_cache_invalidate(struct gw_cache *c, const char *key)
{
    gw_cache_invalidate_at(c, key, 0);
}

void gw_cache_invalidate_at(struct gw_cache *c, const char *key, uint64_t index)
{
    uv_mutex_lock(&c->mu);
    uint64_t *seen = &c->seen[bucket(key)];
    if (index > *seen)
        *seen = index;
    struct gw_cobj *o = *obj_slot(c, key);
    if (o != NULL)
        obj_remove(c, o);
    struct gw_cfill *f = *fill_slot(c, key);
    if (f != NULL)
        fill_unhash(c, f);
    uv_mutex_unlock(&c->mu);
}

void gw_cache_clear(struct gw_cache *c)
{
    gw_cache_clear_at(c, 0);
}

void gw_cache_clear_at(struct gw_cache *c, uint64_t index)
{
    uv_mutex_lock(&c->mu);
    if (index > c->floor)
        c->floor = index;
    while (c->lru_head != NULL)
        obj_remove(c, c->lru_head);
    for (size_t i = 0; i < NBUCKETS; i++)
        while (c->fills[i] != NULL)
            fill_unhash(c, c->fills[i]);
    uv_mutex_unlock(&c->mu);
}

int gw_cache_put(struct gw_cache *c, struct gw_cobj *obj, uint64_t fresh_until, uint64_t now_ms)
{
    int put = 0;
    uv_mutex_lock(&c->mu);
    if (fresh_until > now_ms && !obj->linked && obj->version >= c->floor &&
        obj->version >= c->seen[bucket(obj->key)] && (obj->size == 0 || obj->body != NULL) &&
        (obj->body == NULL || obj->body->len == obj->size)) {
        insert(c, obj, fresh_until);
        put = obj->linked;
    }
    uv_mutex_unlock(&c->mu);
    return put;
}

void gw_cache_stats(struct gw_cache *c, struct gw_cache_stats *st)
{
    uv_mutex_lock(&c->mu);
    st->used = c->used;
    st->entries = c->entries;
    st->capacity = c->capacity;
    st->evictions = c->evictions;
    uv_mutex_unlock(&c->mu);
}

/* ---- ports ---- */

static void on_port_async(uv_async_t *a)
{
    struct gw_cache_port *p = a->data;
    for (;;) {
        uv_mutex_lock(&p->mu);
        struct gw_cwait *w = p->head;
        if (w != NULL) {
            p->head = w->next;
            if (p->head == NULL)
                p->tail = NULL;
            w->next = NULL;
            w->state = CW_DONE;
        }
        uv_mutex_unlock(&p->mu);
        if (w == NULL)
            return;
        w->cb(w);
    }
}

int gw_cache_port_new(uv_loop_t *loop, struct gw_cache_port **out)
{
    struct gw_cache_port *p = cm_calloc(1, sizeof(*p));
    if (p == NULL)
        return CM_ENOMEM;
    if (uv_mutex_init(&p->mu) != 0) {
        cm_free(p);
        return CM_EIO;
    }
    if (uv_async_init(loop, &p->async, on_port_async) != 0) {
        uv_mutex_destroy(&p->mu);
        cm_free(p);
        return CM_EIO;
    }
    p->async.data = p;
    *out = p;
    return 0;
}

static void on_port_closed(uv_handle_t *h)
{
    struct gw_cache_port *p = h->data;
    assert(p->head == NULL);
    uv_mutex_destroy(&p->mu);
    cm_free(p);
}

void gw_cache_port_close(struct gw_cache_port *p)
{
    if (p != NULL)
        uv_close((uv_handle_t *)&p->async, on_port_closed);
}
