/* Store seam: write batches and the wrappers that dispatch to an implementation (see
 * store.h). */
#include "store/store.h"

#include <string.h>

#include "alloc.h"
#include "err.h"

void nd_batch_init(struct nd_batch *b)
{
    memset(b, 0, sizeof(*b));
}

void nd_batch_clear(struct nd_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        cm_free(b->items[i].key);
        if (b->items[i].own_val)
            cm_free((char *)b->items[i].val);
    }
    b->n = 0;
    b->oom = 0;
}

void nd_batch_close(struct nd_batch *b)
{
    nd_batch_clear(b);
    cm_free(b->items);
    memset(b, 0, sizeof(*b));
}

static struct nd_batch_item *batch_add(struct nd_batch *b, enum nd_batch_op op, const char *k,
                                       size_t klen)
{
    if (b->oom)
        return NULL;
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 8;
        struct nd_batch_item *p = cm_realloc(b->items, cap * sizeof(*p));
        if (p == NULL)
            goto err_oom;
        b->items = p;
        b->cap = cap;
    }
    struct nd_batch_item *it = &b->items[b->n];
    memset(it, 0, sizeof(*it));
    it->key = cm_malloc(klen ? klen : 1);
    if (it->key == NULL)
        goto err_oom;
    memcpy(it->key, k, klen);
    it->klen = klen;
    it->op = op;
    b->n++;
    return it;

err_oom:
    b->oom = 1;
    return NULL;
}

static void batch_put(struct nd_batch *b, const char *k, size_t klen, const void *v, size_t vlen,
                      int copy)
{
    struct nd_batch_item *it = batch_add(b, ND_BATCH_PUT, k, klen);
    if (it == NULL)
        return;
    it->vlen = vlen;
    if (!copy) {
        it->val = v;
        return;
    }
    char *c = cm_malloc(vlen ? vlen : 1);
    if (c == NULL) {
        b->oom = 1;
        return;
    }
    if (vlen > 0)
        memcpy(c, v, vlen);
    it->val = c;
    it->own_val = 1;
}

void nd_batch_put(struct nd_batch *b, const struct nd_skey *k, const void *v, size_t vlen)
{
    batch_put(b, k->b, k->len, v, vlen, 1);
}

void nd_batch_put_raw(struct nd_batch *b, const char *k, size_t klen, const void *v, size_t vlen)
{
    batch_put(b, k, klen, v, vlen, 1);
}

void nd_batch_put_ref(struct nd_batch *b, const struct nd_skey *k, const void *v, size_t vlen)
{
    batch_put(b, k->b, k->len, v, vlen, 0);
}

void nd_batch_put_chunk(struct nd_batch *b, const struct nd_skey *k, const void *v, size_t vlen,
                        uint32_t crc)
{
    batch_put(b, k->b, k->len, v, vlen, 0);
    if (!b->oom) {
        b->items[b->n - 1].has_crc = 1;
        b->items[b->n - 1].crc = crc;
        b->items[b->n - 1].fresh = 1;
    }
}

void nd_batch_del_raw(struct nd_batch *b, const char *k, size_t klen)
{
    batch_add(b, ND_BATCH_DEL, k, klen);
}

void nd_batch_del(struct nd_batch *b, const struct nd_skey *k)
{
    nd_batch_del_raw(b, k->b, k->len);
}

void nd_batch_del_range(struct nd_batch *b, const struct nd_skey *lo, const struct nd_skey *hi)
{
    struct nd_batch_item *it = batch_add(b, ND_BATCH_DEL_RANGE, lo->b, lo->len);
    if (it == NULL)
        return;
    char *end = cm_malloc(hi->len ? hi->len : 1);
    if (end == NULL) {
        b->oom = 1;
        return;
    }
    memcpy(end, hi->b, hi->len);
    it->val = end;
    it->vlen = hi->len;
    it->own_val = 1;
}

void nd_batch_del_chunks(struct nd_batch *b, const uint8_t *upload)
{
    struct nd_skey lo, hi;
    nd_skey_chunk(&lo, upload, 0);
    nd_skey_chunk(&hi, upload, UINT64_MAX);
    nd_batch_del_range(b, &lo, &hi);
    nd_batch_del(b, &hi);
}

int nd_store_get(struct nd_store *s, const struct nd_skey *k, char **val, size_t *vlen)
{
    *val = NULL;
    *vlen = 0;
    return s->ops->get(s, k->b, k->len, val, vlen);
}

int nd_store_get_u64(struct nd_store *s, const struct nd_skey *k, uint64_t *out)
{
    char *v;
    size_t n;
    int rv = nd_store_get(s, k, &v, &n);
    if (rv != 0)
        return rv;
    *out = n == 8 ? nd_get_u64(v) : 0;
    cm_free(v);
    return n == 8 ? 0 : CM_ESTORE;
}

int nd_store_write(struct nd_store *s, const struct nd_batch *b, int sync)
{
    if (b->oom)
        return CM_ENOMEM;
    return s->ops->write(s, b, sync);
}

int nd_store_sync(struct nd_store *s)
{
    return s->ops->sync(s);
}

int nd_store_chunk_len(struct nd_store *s, const char *v, size_t vlen, uint64_t *len)
{
    if (s->ops->chunk_len != NULL)
        return s->ops->chunk_len(s, v, vlen, len);
    *len = vlen;
    return 0;
}

int nd_store_chunk_read(struct nd_store *s, const char *v, size_t vlen, uint64_t skip, size_t len,
                        void *dst, int verify)
{
    if (s->ops->chunk_read != NULL)
        return s->ops->chunk_read(s, v, vlen, skip, len, dst, verify);
    if (skip > vlen || len > vlen - skip)
        return CM_EIO;
    if (len > 0)
        memcpy(dst, v + skip, len);
    return 0;
}

void nd_store_close(struct nd_store *s)
{
    if (s->ops == NULL)
        return;
    s->ops->close(s);
    s->ops = NULL;
    s->impl = NULL;
}

int nd_store_iter_new(struct nd_store *s, int flags, struct nd_store_iter **out)
{
    return s->ops->iter_new(s, flags, NULL, 0, out);
}

int nd_store_iter_new_below(struct nd_store *s, int flags, const char *hi, size_t hilen,
                            struct nd_store_iter **out)
{
    return s->ops->iter_new(s, flags, hi, hilen, out);
}

/* The least key above every key with prefix p (none: *len = 0): p with its last byte below
 * 0xff raised by one, the bytes after it dropped. */
static void prefix_end(const struct nd_skey *p, struct nd_skey *end)
{
    end->len = p->len;
    memcpy(end->b, p->b, p->len);
    while (end->len > 0 && (unsigned char)end->b[end->len - 1] == 0xff)
        end->len--;
    if (end->len > 0)
        end->b[end->len - 1]++;
}

void nd_store_iter_seek(struct nd_store_iter *it, const char *k, size_t klen)
{
    it->ops->iter_seek(it, k, klen);
}

void nd_store_iter_seek_for_prev(struct nd_store_iter *it, const char *k, size_t klen)
{
    it->ops->iter_seek_for_prev(it, k, klen);
}

int nd_store_iter_valid(struct nd_store_iter *it)
{
    return it->ops->iter_valid(it);
}

void nd_store_iter_next(struct nd_store_iter *it)
{
    it->ops->iter_next(it);
}

const char *nd_store_iter_key(struct nd_store_iter *it, size_t *len)
{
    return it->ops->iter_key(it, len);
}

const char *nd_store_iter_value(struct nd_store_iter *it, size_t *len)
{
    return it->ops->iter_value(it, len);
}

void nd_store_iter_free(struct nd_store_iter *it)
{
    if (it != NULL)
        it->ops->iter_free(it);
}

int nd_store_each(struct nd_store *s, const struct nd_skey *prefix, const struct nd_skey *from,
                  nd_store_each_cb cb, void *arg)
{
    struct nd_store_iter *it;
    struct nd_skey end;
    prefix_end(prefix, &end);
    int rv = end.len > 0 ? nd_store_iter_new_below(s, 0, end.b, end.len, &it)
                         : nd_store_iter_new(s, 0, &it);
    if (rv != 0)
        return rv;
    const struct nd_skey *start = from != NULL ? from : prefix;
    for (nd_store_iter_seek(it, start->b, start->len); nd_store_iter_valid(it);
         nd_store_iter_next(it)) {
        size_t klen, vlen;
        const char *k = nd_store_iter_key(it, &klen);
        if (!nd_skey_has_prefix(k, klen, prefix))
            break;
        const char *v = nd_store_iter_value(it, &vlen);
        rv = cb(k, klen, v, vlen, arg);
        if (rv != 0)
            break;
    }
    nd_store_iter_free(it);
    return rv;
}
