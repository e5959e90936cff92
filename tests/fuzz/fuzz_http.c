/* Request framing (http/http.c gw_http_in_feed). The first byte picks the limits and the
 * fragmentation, the rest is the byte stream of one connection. The stream is framed twice: in
 * one piece, and in random fragments fed the way the stream (http/stream.c) feeds: the bytes a
 * partial head pins stay in front of the next read, moved with it into a new, exactly sized
 * buffer each time (ASan sees any read past the input, and any use of a moved-away byte).
 * Properties: both give the same requests, bodies and end state; one on_head per on_end, in order;
 * body pieces are non-empty slices of the bytes being fed; a sized body delivers exactly
 * Content-Length bytes; consumed never exceeds what was fed. */
#include <string.h>

#include "alloc.h"
#include "crc32c.h"
#include "fuzz.h"
#include "http/http.h"

#define MAX_EV 256

struct run {
    struct gw_http_in in;
    struct cm_buf *b; /* the read region: b->data[roff .. roff + rlen), rfed parsed */
    size_t roff, rlen, rfed;
    const struct cm_buf *buf; /* being fed */
    size_t off, len;
    int heads, ends;
    uint64_t body, want;
    uint32_t bcrc;
    int has_length;
    uint32_t ev[MAX_EV]; /* a digest per event */
    size_t nev;
    int rc; /* the last feed answer */
};

static void ev(struct run *r, uint32_t d)
{
    if (r->nev < MAX_EV)
        r->ev[r->nev] = d;
    r->nev++;
}

static uint32_t str_crc(uint32_t c, const char *s)
{
    return cm_crc32c(c, s, strlen(s) + 1);
}

static int on_head(void *arg, struct gw_http_req *q)
{
    struct run *r = arg;
    HW_FUZZ_ASSERT(r->heads == r->ends);
    r->heads++;
    HW_FUZZ_ASSERT(!(q->chunked && q->has_length));
    HW_FUZZ_ASSERT(q->url.p == NULL || q->url.p[q->url.len] == '\0');
    uint32_t c = cm_crc32c(0, &q->method, sizeof(q->method));
    if (!q->url_overflow && q->url.p != NULL)
        c = cm_crc32c(c, q->url.p, q->url.len);
    for (int t = 0; t < GW_H__COUNT; t++) {
        size_t vlen;
        const char *v = gw_http_header(q, (enum gw_http_token)t, &vlen);
        HW_FUZZ_ASSERT(v == NULL ? vlen == 0 : strlen(v) <= vlen); /* a NUL cuts the C string */
        c = str_crc(c, gw_http_header_str(q, (enum gw_http_token)t));
    }
    uint64_t flags[] = {q->url_overflow, q->header_overflow, q->expect_continue,     q->chunked,
                        q->has_length,   q->content_length,  (uint64_t)q->keep_alive};
    ev(r, cm_crc32c(c, flags, sizeof(flags)));
    r->body = 0;
    r->bcrc = 0;
    r->has_length = q->has_length;
    r->want = q->content_length;
    return 0;
}

static int on_body(void *arg, const struct cm_slice *s)
{
    struct run *r = arg;
    HW_FUZZ_ASSERT(r->heads == r->ends + 1);
    HW_FUZZ_ASSERT(s->len > 0 && s->buf == r->buf);
    HW_FUZZ_ASSERT(s->off >= r->off && s->off + s->len <= r->off + r->len);
    r->body += s->len;
    if (r->has_length)
        HW_FUZZ_ASSERT(r->body <= r->want);
    r->bcrc = cm_crc32c(r->bcrc, cm_slice_ptr(s), s->len); /* the same for any split */
    return 0;
}

static int on_end(void *arg)
{
    struct run *r = arg;
    HW_FUZZ_ASSERT(r->heads == r->ends + 1);
    r->ends++;
    if (r->has_length)
        HW_FUZZ_ASSERT(r->body == r->want);
    ev(r, r->bcrc ^ (uint32_t)r->body);
    return 0;
}

static const struct gw_http_sink sink = {on_head, on_body, on_end};

/* A read of p[0..n): the unreleased bytes and the new ones move into a new, exact buffer. */
static void append(struct run *r, const uint8_t *p, size_t n)
{
    struct cm_buf *nb = cm_buf_new(r->rlen + n);
    HW_FUZZ_ASSERT(nb != NULL);
    if (r->rlen > 0)
        memcpy(nb->data, r->b->data + r->roff, r->rlen);
    memcpy(nb->data + r->rlen, p, n);
    nb->len = r->rlen + n;
    cm_buf_unref(r->b);
    r->b = nb;
    r->roff = 0;
    r->rlen = nb->len;
}

/* Feed what is unparsed until it is used up or the framer gives up. 1 = keep feeding. */
static int feed(struct run *r)
{
    while (r->rfed < r->rlen) {
        size_t used = 0, len = r->rlen - r->rfed;
        r->buf = r->b, r->off = r->roff + r->rfed, r->len = len;
        r->rc = gw_http_in_feed(&r->in, r->b, r->off, len, &used);
        HW_FUZZ_ASSERT(used <= len);
        r->rfed += used;
        size_t pinned = gw_http_in_pinned(&r->in);
        HW_FUZZ_ASSERT(pinned <= r->rfed);
        r->roff += r->rfed - pinned; /* released: only the pinned head stays */
        r->rlen -= r->rfed - pinned;
        r->rfed = pinned;
        if (r->rc == GW_HTTP_PAUSED) {
            HW_FUZZ_ASSERT(!gw_http_in_mid_request(&r->in));
            gw_http_in_resume(&r->in);
        } else if (r->rc == GW_HTTP_OK) {
            HW_FUZZ_ASSERT(used == len);
        } else {
            HW_FUZZ_ASSERT(r->rc == GW_HTTP_ERROR);
            int st = gw_http_in_error_status(&r->in);
            HW_FUZZ_ASSERT(st == 400 || st == 414 || st == 431);
            return 0;
        }
    }
    return 1;
}

static void frame(struct run *r, const uint8_t *data, size_t size, uint8_t cfg, int split)
{
    uint64_t rng = 0x9e3779b97f4a7c15ull ^ cfg;
    memset(r, 0, sizeof(*r));
    gw_http_in_init(&r->in, &sink, r);
    if (cfg & 1)
        gw_http_in_limits(&r->in, 64 + (cfg >> 1), 16 + (cfg >> 2)); /* hit the limits */
    for (size_t off = 0; off < size;) {
        size_t n = size - off;
        if (split) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            size_t piece = 1 + (size_t)(rng % ((cfg & 2) ? 4 : 97));
            n = n < piece ? n : piece;
        }
        append(r, data + off, n);
        int more = feed(r);
        off += n;
        if (!more)
            break;
    }
    gw_http_in_close(&r->in);
    cm_buf_unref(r->b);
    r->b = NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct run a, b;
    if (size == 0)
        return 0;
    frame(&a, data + 1, size - 1, data[0], 0);
    frame(&b, data + 1, size - 1, data[0], 1);
    HW_FUZZ_ASSERT(a.ends == b.ends && a.heads == b.heads && a.rc == b.rc);
    HW_FUZZ_ASSERT(a.heads == a.ends || a.heads == a.ends + 1);
    HW_FUZZ_ASSERT(a.nev == b.nev);
    for (size_t i = 0; i < a.nev && i < MAX_EV; i++)
        HW_FUZZ_ASSERT(a.ev[i] == b.ev[i]); /* same heads, same whole bodies */
    return 0;
}
