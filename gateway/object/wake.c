/* Key-change wakeups (wake.h). */
#include "object/wake.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "crc32c.h"
#include "err.h"

struct wake_item {
    char *key; /* owned */
    uint64_t index;
};

struct gw_wake {
    uv_async_t async;
    struct gw_wake_bus *bus;
    gw_wake_fn fn;
    void *arg;
    atomic_uint slots[GW_WAKE_SLOTS];
    atomic_uint_fast64_t gens[GW_WAKE_SLOTS]; /* posts per slot */
    atomic_uint_fast64_t all_gen;             /* posts for every key */
    uv_mutex_t mu;                            /* guards the queue below */
    struct wake_item *q;
    size_t n;
    int all; /* a post for every key, or the queue overflowed */
    uint64_t all_index;
    struct gw_wake *next; /* on the bus, under its mutex */
};

struct gw_wake_bus {
    uv_mutex_t mu;
    struct gw_wake *loops;
};

static uint32_t slot_of(const char *key)
{
    return cm_crc32c(0, key, strlen(key)) % GW_WAKE_SLOTS;
}

int gw_wake_bus_new(struct gw_wake_bus **out)
{
    struct gw_wake_bus *b = cm_calloc(1, sizeof(*b));
    if (b == NULL)
        return CM_ENOMEM;
    if (uv_mutex_init(&b->mu) != 0) {
        cm_free(b);
        return CM_ENOMEM;
    }
    *out = b;
    return 0;
}

void gw_wake_bus_free(struct gw_wake_bus *b)
{
    if (b == NULL)
        return;
    uv_mutex_destroy(&b->mu);
    cm_free(b);
}

/* Under the bus mutex. */
static void post_one(struct gw_wake *w, const char *key, uint64_t index)
{
    uv_mutex_lock(&w->mu);
    if (key == NULL || w->n == GW_WAKE_QUEUE) {
        w->all = 1;
        if (index > w->all_index)
            w->all_index = index;
    } else {
        char *k = cm_strdup(key);
        if (k == NULL) { /* wake everything rather than lose this one */
            w->all = 1;
            if (index > w->all_index)
                w->all_index = index;
        } else {
            w->q[w->n].key = k;
            w->q[w->n++].index = index;
        }
    }
    uv_mutex_unlock(&w->mu);
    uv_async_send(&w->async);
}

void gw_wake_bus_post(struct gw_wake_bus *b, const char *key, uint64_t index)
{
    if (b == NULL)
        return;
    uint32_t slot = key != NULL ? slot_of(key) : 0;
    uv_mutex_lock(&b->mu);
    for (struct gw_wake *w = b->loops; w != NULL; w = w->next) {
        atomic_fetch_add(key != NULL ? &w->gens[slot] : &w->all_gen, 1);
        if (key == NULL || atomic_load(&w->slots[slot]) > 0)
            post_one(w, key, index);
    }
    uv_mutex_unlock(&b->mu);
}

static void on_async(uv_async_t *a)
{
    struct gw_wake *w = a->data;
    for (;;) {
        uv_mutex_lock(&w->mu);
        size_t n = w->n;
        int all = w->all;
        uint64_t all_index = w->all_index;
        struct wake_item batch[64];
        if (n > 64)
            n = 64;
        memcpy(batch, w->q + w->n - n, n * sizeof(batch[0]));
        w->n -= n;
        w->all = 0;
        uv_mutex_unlock(&w->mu);
        if (n == 0 && !all)
            return;
        for (size_t i = 0; i < n; i++) {
            if (!all && w->bus != NULL)
                w->fn(w->arg, batch[i].key, batch[i].index);
            cm_free(batch[i].key);
        }
        if (all && w->bus != NULL)
            w->fn(w->arg, NULL, all_index);
    }
}

int gw_wake_open(uv_loop_t *loop, struct gw_wake_bus *b, gw_wake_fn fn, void *arg,
                 struct gw_wake **out)
{
    struct gw_wake *w = cm_calloc(1, sizeof(*w));
    if (w == NULL)
        return CM_ENOMEM;
    w->q = cm_calloc(GW_WAKE_QUEUE, sizeof(*w->q));
    if (w->q == NULL || uv_mutex_init(&w->mu) != 0) {
        cm_free(w->q);
        cm_free(w);
        return CM_ENOMEM;
    }
    if (uv_async_init(loop, &w->async, on_async) != 0) {
        uv_mutex_destroy(&w->mu);
        cm_free(w->q);
        cm_free(w);
        return CM_EIO;
    }
    w->async.data = w;
    w->fn = fn;
    w->arg = arg;
    w->bus = b;
    uv_mutex_lock(&b->mu);
    w->next = b->loops;
    b->loops = w;
    uv_mutex_unlock(&b->mu);
    *out = w;
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    struct gw_wake *w = h->data;
    for (size_t i = 0; i < w->n; i++)
        cm_free(w->q[i].key);
    uv_mutex_destroy(&w->mu);
    cm_free(w->q);
    cm_free(w);
}

void gw_wake_close(struct gw_wake *w)
{
    if (w == NULL)
        return;
    struct gw_wake_bus *b = w->bus;
    uv_mutex_lock(&b->mu);
    for (struct gw_wake **p = &b->loops; *p != NULL; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            break;
        }
    }
    uv_mutex_unlock(&b->mu);
    w->bus = NULL; /* a queued wakeup is dropped, not delivered */
    uv_close((uv_handle_t *)&w->async, on_closed);
}

void gw_wake_interest(struct gw_wake *w, const char *key, int delta)
{
    atomic_uint *s = &w->slots[slot_of(key)];
    if (delta > 0)
        atomic_fetch_add(s, 1);
    else
        atomic_fetch_sub(s, 1);
}

uint64_t gw_wake_gen(struct gw_wake *w, const char *key)
{
    return atomic_load(&w->all_gen) * 0x100000001ull + atomic_load(&w->gens[slot_of(key)]);
}
