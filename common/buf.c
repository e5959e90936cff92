#include "buf.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"

struct cm_buf *cm_buf_new(size_t cap)
{
    struct cm_buf *b = cm_malloc(sizeof(*b) + cap);
    if (b == NULL)
        return NULL;
    b->refs = 1;
    b->cap = cap;
    b->len = 0;
    return b;
}

struct cm_buf *cm_buf_copy(const void *data, size_t len)
{
    struct cm_buf *b = cm_buf_new(len);
    if (b == NULL)
        return NULL;
    if (len)
        memcpy(b->data, data, len);
    b->len = len;
    return b;
}

/* Atomic so a filled buffer can be shared by several loops (the gateway's hot-object cache);
 * uncontended, this costs about what a plain increment does. */
struct cm_buf *cm_buf_ref(struct cm_buf *b)
{
    unsigned long prev = __atomic_fetch_add(&b->refs, 1, __ATOMIC_RELAXED);
    assert(prev > 0);
    (void)prev;
    return b;
}

void cm_buf_unref(struct cm_buf *b)
{
    if (b == NULL)
        return;
    unsigned long prev = __atomic_fetch_sub(&b->refs, 1, __ATOMIC_ACQ_REL);
    assert(prev > 0);
    if (prev == 1)
        cm_free(b);
}

struct cm_slice cm_slice_take(struct cm_buf *b, size_t off, size_t len)
{
    struct cm_slice s = {b, off, len};
    return s;
}

struct cm_slice cm_slice_ref(struct cm_buf *b, size_t off, size_t len)
{
    struct cm_slice s = {b ? cm_buf_ref(b) : NULL, off, len};
    return s;
}

struct cm_slice cm_slice_dup(const struct cm_slice *s)
{
    return cm_slice_ref(s->buf, s->off, s->len);
}

void cm_slice_release(struct cm_slice *s)
{
    cm_buf_unref(s->buf);
    s->buf = NULL;
    s->off = 0;
    s->len = 0;
}

void cm_sbuf_init(struct cm_sbuf *s)
{
    memset(s, 0, sizeof(*s));
}

void cm_sbuf_free(struct cm_sbuf *s)
{
    cm_free(s->p);
    cm_sbuf_init(s);
}

void cm_sbuf_reset(struct cm_sbuf *s)
{
    s->len = 0;
    if (s->p)
        s->p[0] = '\0';
}

static int sbuf_reserve(struct cm_sbuf *s, size_t more)
{
    if (s->oom)
        return -1;
    if (s->len + more + 1 <= s->cap)
        return 0;
    size_t cap = s->cap ? s->cap : 64;
    while (cap < s->len + more + 1)
        cap *= 2;
    char *p = cm_realloc(s->p, cap);
    if (p == NULL) {
        s->oom = 1;
        return -1;
    }
    s->p = p;
    s->cap = cap;
    return 0;
}

void cm_sbuf_append(struct cm_sbuf *s, const void *data, size_t len)
{
    if (sbuf_reserve(s, len) != 0)
        return;
    if (len)
        memcpy(s->p + s->len, data, len);
    s->len += len;
    s->p[s->len] = '\0';
}

void cm_sbuf_puts(struct cm_sbuf *s, const char *str)
{
    cm_sbuf_append(s, str, strlen(str));
}

void cm_sbuf_printf(struct cm_sbuf *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || sbuf_reserve(s, (size_t)n) != 0)
        return;
    va_start(ap, fmt);
    vsnprintf(s->p + s->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    s->len += (size_t)n;
}

void cm_sbuf_json_str(struct cm_sbuf *s, const char *str)
{
    static const char hex[] = "0123456789abcdef";
    cm_sbuf_append(s, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)str; *p; p++) {
        char esc[6];
        switch (*p) {
        case '"':
            cm_sbuf_append(s, "\\\"", 2);
            break;
        case '\\':
            cm_sbuf_append(s, "\\\\", 2);
            break;
        case '\n':
            cm_sbuf_append(s, "\\n", 2);
            break;
        case '\r':
            cm_sbuf_append(s, "\\r", 2);
            break;
        case '\t':
            cm_sbuf_append(s, "\\t", 2);
            break;
        default:
            if (*p < 0x20) {
                memcpy(esc, "\\u00", 4);
                esc[4] = hex[*p >> 4];
                esc[5] = hex[*p & 15];
                cm_sbuf_append(s, esc, 6);
            } else {
                cm_sbuf_append(s, p, 1);
            }
        }
    }
    cm_sbuf_append(s, "\"", 1);
}
