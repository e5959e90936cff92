#include "frame.h"

#include <string.h>

#include "err.h"

static void put_be32(char *p, uint32_t v)
{
    p[0] = (char)(v >> 24);
    p[1] = (char)(v >> 16);
    p[2] = (char)(v >> 8);
    p[3] = (char)v;
}

static uint32_t get_be32(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

void cm_env_init(Hw__Envelope *env, Hw__MsgType type, uint64_t req_id, uint32_t shard)
{
    hw__envelope__init(env);
    env->type = type;
    env->req_id = req_id;
    env->shard = shard;
}

int cm_frame_encode_head(const Hw__Envelope *env, size_t payload_len, struct cm_buf **out)
{
    size_t hs = hw__envelope__get_packed_size(env);
    if (hs > CM_FRAME_HEADER_MAX || payload_len > CM_FRAME_PAYLOAD_MAX)
        return CM_ETOOBIG;
    struct cm_buf *b = cm_buf_new(CM_FRAME_PREFIX + hs);
    if (b == NULL)
        return CM_ENOMEM;
    put_be32(b->data, (uint32_t)(4 + hs + payload_len));
    put_be32(b->data + 4, (uint32_t)hs);
    hw__envelope__pack(env, (uint8_t *)b->data + CM_FRAME_PREFIX);
    b->len = CM_FRAME_PREFIX + hs;
    *out = b;
    return 0;
}

void cm_frame_decoder_init(struct cm_frame_decoder *d, size_t chunk)
{
    d->buf = NULL;
    d->start = 0;
    d->chunk = chunk ? chunk : 256 * 1024;
}

void cm_frame_decoder_close(struct cm_frame_decoder *d)
{
    cm_buf_unref(d->buf);
    d->buf = NULL;
    d->start = 0;
}

/* Bytes the frame at `start` needs in one contiguous run (8 until its length is known). */
static size_t needed_bytes(const struct cm_frame_decoder *d)
{
    size_t pending = d->buf->len - d->start;
    if (pending < 4)
        return CM_FRAME_PREFIX;
    uint32_t flen = get_be32(d->buf->data + d->start);
    if (flen > CM_FRAME_MAX)
        return CM_FRAME_PREFIX; /* next() reports the error */
    return 4 + (size_t)flen;
}

char *cm_frame_decoder_space(struct cm_frame_decoder *d, size_t *len)
{
    if (d->buf == NULL) {
        d->buf = cm_buf_new(d->chunk);
        if (d->buf == NULL)
            return NULL;
        d->start = 0;
    }
    struct cm_buf *b = d->buf;
    size_t pending = b->len - d->start;
    if (pending == 0 && b->refs == 1) {
        b->len = 0; /* nobody holds a slice: reuse from the start */
        d->start = 0;
    }
    size_t need = needed_bytes(d);
    if (d->start + need > b->cap || b->cap - b->len < 1024) {
        /* Move the partial frame into a fresh buffer big enough for all of it. Older slices
         * keep the old buffer alive through their own refs. */
        size_t cap = need > d->chunk ? need : d->chunk;
        if (cap - pending < 1024)
            cap = pending + d->chunk;
        struct cm_buf *nb = cm_buf_new(cap);
        if (nb == NULL)
            return NULL;
        memcpy(nb->data, b->data + d->start, pending);
        nb->len = pending;
        cm_buf_unref(b);
        d->buf = b = nb;
        d->start = 0;
    }
    *len = b->cap - b->len;
    return b->data + b->len;
}

void cm_frame_decoder_commit(struct cm_frame_decoder *d, size_t n)
{
    d->buf->len += n;
}

int cm_frame_decoder_next(struct cm_frame_decoder *d, struct cm_frame *f)
{
    memset(f, 0, sizeof(*f));
    if (d->buf == NULL)
        return 0;
    size_t pending = d->buf->len - d->start;
    if (pending < 4)
        return 0;
    const char *p = d->buf->data + d->start;
    uint32_t flen = get_be32(p);
    if (flen > CM_FRAME_MAX)
        return CM_ETOOBIG;
    if (flen < 4)
        return CM_EPROTO;
    if (pending < 4 + (size_t)flen)
        return 0;
    uint32_t hlen = get_be32(p + 4);
    if (hlen > flen - 4 || hlen > CM_FRAME_HEADER_MAX)
        return CM_EPROTO;
    Hw__Envelope *env = hw__envelope__unpack(NULL, hlen, (const uint8_t *)p + CM_FRAME_PREFIX);
    if (env == NULL)
        return CM_EPROTO;
    size_t plen = flen - 4 - hlen;
    f->env = env;
    if (plen > 0)
        f->payload = cm_slice_ref(d->buf, d->start + CM_FRAME_PREFIX + hlen, plen);
    d->start += 4 + (size_t)flen;
    return 1;
}

void cm_frame_release(struct cm_frame *f)
{
    if (f->env)
        hw__envelope__free_unpacked(f->env, NULL);
    f->env = NULL;
    cm_slice_release(&f->payload);
}
