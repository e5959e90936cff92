/* In-memory store (see mem.h). Records are immutable and refcounted: an iterator takes a
 * reference on the array it started from, so writes never move what it reads. */
#include "store/mem.h"

#include <pthread.h>
#include <string.h>

#include "alloc.h"
#include "err.h"

struct rec {
    unsigned refs;
    size_t klen, vlen;
    char *k, *v; /* point into the allocation after this struct */
};

/* An immutable, refcounted sorted array of records. */
struct view {
    unsigned refs;
    size_t n;
    struct rec *recs[];
};

struct mem {
    pthread_mutex_t lock;
    struct view *cur, *durable;
    unsigned fail_write, fail_sync, nospc, fail_read; /* countdowns, 0 = off */
    int nospc_on;
    unsigned syncs;
};

struct mem_iter {
    struct nd_store_iter base;
    struct view *v;
    size_t pos; /* == v->n: not valid */
};

static void rec_unref(struct rec *r)
{
    if (--r->refs == 0)
        cm_free(r);
}

static struct view *view_new(size_t n)
{
    struct view *v = cm_malloc(sizeof(*v) + (n ? n : 1) * sizeof(struct rec *));
    if (v != NULL) {
        v->refs = 1;
        v->n = 0;
    }
    return v;
}

static void view_unref(struct view *v)
{
    if (v == NULL || --v->refs > 0)
        return;
    for (size_t i = 0; i < v->n; i++)
        rec_unref(v->recs[i]);
    cm_free(v);
}

static int cmp_key(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c != 0 ? c : (alen > blen) - (alen < blen);
}

/* First index whose key is >= k. */
static size_t lower_bound(const struct view *v, const char *k, size_t klen)
{
    size_t lo = 0, hi = v->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cmp_key(v->recs[mid]->k, v->recs[mid]->klen, k, klen) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static struct rec *rec_new(const char *k, size_t klen, const char *val, size_t vlen)
{
    struct rec *r = cm_malloc(sizeof(*r) + klen + vlen + 1);
    if (r == NULL)
        return NULL;
    r->refs = 1;
    r->k = (char *)(r + 1);
    r->v = r->k + klen;
    r->klen = klen;
    r->vlen = vlen;
    memcpy(r->k, k, klen);
    if (vlen > 0)
        memcpy(r->v, val, vlen);
    return r;
}

/* Apply one batch item to a private array (capacity cap) in place. */
static int apply_item(struct view *v, size_t cap, const struct nd_batch_item *it)
{
    size_t i = lower_bound(v, it->key, it->klen);
    int hit = i < v->n && cmp_key(v->recs[i]->k, v->recs[i]->klen, it->key, it->klen) == 0;
    if (it->op == ND_BATCH_PUT) {
        struct rec *r = rec_new(it->key, it->klen, it->val, it->vlen);
        if (r == NULL)
            return CM_ENOMEM;
        if (hit) {
            rec_unref(v->recs[i]);
        } else {
            if (v->n == cap)
                return CM_ENOMEM; /* sized by the caller: cannot happen */
            memmove(&v->recs[i + 1], &v->recs[i], (v->n - i) * sizeof(v->recs[0]));
            v->n++;
        }
        v->recs[i] = r;
        return 0;
    }
    size_t end = i + (size_t)hit;
    if (it->op == ND_BATCH_DEL_RANGE)
        end = lower_bound(v, it->val, it->vlen);
    if (end <= i)
        return 0;
    for (size_t j = i; j < end; j++)
        rec_unref(v->recs[j]);
    memmove(&v->recs[i], &v->recs[end], (v->n - end) * sizeof(v->recs[0]));
    v->n -= end - i;
    return 0;
}

/* A fault armed for this call? Counts the call down. */
static int fires(unsigned *countdown)
{
    if (*countdown == 0)
        return 0;
    return --*countdown == 0;
}

static struct view *view_copy(const struct view *src, size_t extra)
{
    struct view *v = view_new(src->n + extra);
    if (v == NULL)
        return NULL;
    for (size_t i = 0; i < src->n; i++) {
        v->recs[i] = src->recs[i];
        v->recs[i]->refs++;
    }
    v->n = src->n;
    return v;
}

static int mem_mark_durable(struct mem *m)
{
    if (fires(&m->fail_sync))
        return CM_ESTORE;
    m->cur->refs++;
    view_unref(m->durable);
    m->durable = m->cur;
    m->syncs++;
    return 0;
}

static int mem_write_locked(struct mem *m, const struct nd_batch *b, int sync)
{
    if (fires(&m->nospc))
        m->nospc_on = 1;
    if (m->nospc_on)
        return CM_ENOSPC;
    if (fires(&m->fail_write))
        return CM_ESTORE;
    if (sync && m->fail_sync == 1) {
        m->fail_sync = 0;
        return CM_ESTORE; /* a failed sync write leaves nothing behind */
    }
    struct view *v = view_copy(m->cur, b->n);
    if (v == NULL)
        return CM_ENOMEM;
    for (size_t i = 0; i < b->n; i++) {
        if (apply_item(v, m->cur->n + b->n, &b->items[i]) != 0) {
            view_unref(v);
            return CM_ENOMEM;
        }
    }
    view_unref(m->cur);
    m->cur = v;
    return sync ? mem_mark_durable(m) : 0;
}

static int mem_write(struct nd_store *s, const struct nd_batch *b, int sync)
{
    struct mem *m = s->impl;
    pthread_mutex_lock(&m->lock);
    int rv = mem_write_locked(m, b, sync);
    pthread_mutex_unlock(&m->lock);
    return rv;
}

static int mem_sync(struct nd_store *s)
{
    struct mem *m = s->impl;
    pthread_mutex_lock(&m->lock);
    int rv = mem_mark_durable(m);
    pthread_mutex_unlock(&m->lock);
    return rv;
}

static int mem_get(struct nd_store *s, const char *k, size_t klen, char **val, size_t *vlen)
{
    struct mem *m = s->impl;
    int rv = CM_ENOTFOUND;
    pthread_mutex_lock(&m->lock);
    if (fires(&m->fail_read)) {
        pthread_mutex_unlock(&m->lock);
        return CM_ESTORE;
    }
    size_t i = lower_bound(m->cur, k, klen);
    if (i < m->cur->n && cmp_key(m->cur->recs[i]->k, m->cur->recs[i]->klen, k, klen) == 0) {
        const struct rec *r = m->cur->recs[i];
        *val = cm_malloc(r->vlen ? r->vlen : 1);
        rv = *val == NULL ? CM_ENOMEM : 0;
        if (rv == 0) {
            memcpy(*val, r->v, r->vlen);
            *vlen = r->vlen;
        }
    }
    pthread_mutex_unlock(&m->lock);
    return rv;
}

static const struct nd_store_ops mem_ops;

static int mem_iter_new(struct nd_store *s, int flags, const char *hi, size_t hilen,
                        struct nd_store_iter **out)
{ /* hi is only a hint: callers check their range themselves */
    struct mem *m = s->impl;
    struct mem_iter *it = cm_calloc(1, sizeof(*it));
    if (it == NULL)
        return CM_ENOMEM;
    it->base.ops = &mem_ops;
    pthread_mutex_lock(&m->lock);
    it->v = m->cur;
    it->v->refs++;
    pthread_mutex_unlock(&m->lock);
    it->pos = it->v->n;
    *out = &it->base;
    return 0;
}

static void mem_iter_seek(struct nd_store_iter *i, const char *k, size_t klen)
{
    struct mem_iter *it = (struct mem_iter *)i;
    it->pos = lower_bound(it->v, k, klen);
}

static void mem_iter_seek_for_prev(struct nd_store_iter *i, const char *k, size_t klen)
{
    struct mem_iter *it = (struct mem_iter *)i;
    size_t p = lower_bound(it->v, k, klen);
    const struct rec *r = p < it->v->n ? it->v->recs[p] : NULL;
    if (r != NULL && cmp_key(r->k, r->klen, k, klen) == 0)
        it->pos = p;
    else
        it->pos = p > 0 ? p - 1 : it->v->n;
}

static int mem_iter_valid(struct nd_store_iter *i)
{
    struct mem_iter *it = (struct mem_iter *)i;
    return it->pos < it->v->n;
}

static void mem_iter_next(struct nd_store_iter *i)
{
    struct mem_iter *it = (struct mem_iter *)i;
    if (it->pos < it->v->n)
        it->pos++;
}

static const char *mem_iter_key(struct nd_store_iter *i, size_t *len)
{
    struct mem_iter *it = (struct mem_iter *)i;
    *len = it->v->recs[it->pos]->klen;
    return it->v->recs[it->pos]->k;
}

static const char *mem_iter_value(struct nd_store_iter *i, size_t *len)
{
    struct mem_iter *it = (struct mem_iter *)i;
    *len = it->v->recs[it->pos]->vlen;
    return it->v->recs[it->pos]->v;
}

static void mem_iter_free(struct nd_store_iter *i)
{
    struct mem_iter *it = (struct mem_iter *)i;
    view_unref(it->v);
    cm_free(it);
}

static void mem_close(struct nd_store *s)
{
    struct mem *m = s->impl;
    view_unref(m->cur);
    view_unref(m->durable);
    pthread_mutex_destroy(&m->lock);
    cm_free(m);
}

static const struct nd_store_ops mem_ops = {
    mem_get,        mem_write,     mem_sync,
    mem_iter_new,   mem_iter_seek, mem_iter_seek_for_prev,
    mem_iter_valid, mem_iter_next, mem_iter_key,
    mem_iter_value, mem_iter_free, mem_close,
    NULL,           NULL,
};

int nd_store_mem_open(struct nd_store *s)
{
    memset(s, 0, sizeof(*s));
    struct mem *m = cm_calloc(1, sizeof(*m));
    if (m == NULL)
        return CM_ENOMEM;
    m->cur = view_new(0);
    if (m->cur == NULL) {
        cm_free(m);
        return CM_ENOMEM;
    }
    m->durable = m->cur;
    m->cur->refs++;
    pthread_mutex_init(&m->lock, NULL);
    s->ops = &mem_ops;
    s->impl = m;
    return 0;
}

void nd_store_mem_fault(struct nd_store *s, enum nd_mem_fault kind, unsigned nth)
{
    struct mem *m = s->impl;
    pthread_mutex_lock(&m->lock);
    if (kind == ND_MEM_FAIL_WRITE) {
        m->fail_write = nth;
    } else if (kind == ND_MEM_FAIL_SYNC) {
        m->fail_sync = nth;
    } else if (kind == ND_MEM_FAIL_READ) {
        m->fail_read = nth;
    } else {
        m->nospc = nth;
        m->nospc_on = 0;
    }
    pthread_mutex_unlock(&m->lock);
}

void nd_store_mem_crash(struct nd_store *s)
{
    struct mem *m = s->impl;
    pthread_mutex_lock(&m->lock);
    view_unref(m->cur);
    m->cur = m->durable;
    m->cur->refs++;
    pthread_mutex_unlock(&m->lock);
}

size_t nd_store_mem_count(struct nd_store *s)
{
    struct mem *m = s->impl;
    pthread_mutex_lock(&m->lock);
    size_t n = m->cur->n;
    pthread_mutex_unlock(&m->lock);
    return n;
}

unsigned nd_store_mem_syncs(struct nd_store *s)
{
    struct mem *m = s->impl;
    return m->syncs;
}

static unsigned long long fnv(unsigned long long h, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return (h ^ n) * 1099511628211ull;
}

unsigned long long nd_store_mem_digest(struct nd_store *s)
{
    struct mem *m = s->impl;
    unsigned long long h = 14695981039346656037ull;
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->cur->n; i++) {
        h = fnv(h, m->cur->recs[i]->k, m->cur->recs[i]->klen);
        h = fnv(h, m->cur->recs[i]->v, m->cur->recs[i]->vlen);
    }
    pthread_mutex_unlock(&m->lock);
    return h;
}
