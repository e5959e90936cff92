/* Immutable-once-filled refcounted byte buffers and slices into them.
 *
 * Media bytes live in cm_buf; readers hold cm_slice (a ref + offset + length). A buffer is
 * written by its creator until it is shared, then treated as read-only. The reference count is
 * atomic (cm_buf_ref/unref may run on several threads at once), so a filled buffer may be read
 * by several loops; its bytes must not change once it is shared. */
#ifndef CM_BUF_H
#define CM_BUF_H

#include <stddef.h>
#include <stdint.h>

struct cm_buf {
    unsigned long refs;
    size_t cap; /* bytes allocated in data */
    size_t len; /* bytes filled */
    char data[];
};

struct cm_slice {
    struct cm_buf *buf; /* ref (NULL for an empty slice) */
    size_t off;
    size_t len;
};

/* New buffer with refs = 1, len = 0; NULL when out of memory. */
struct cm_buf *cm_buf_new(size_t cap);
/* New buffer holding a copy of data. */
struct cm_buf *cm_buf_copy(const void *data, size_t len);
struct cm_buf *cm_buf_ref(struct cm_buf *b);
void cm_buf_unref(struct cm_buf *b);

/* Slice helpers: `take` adopts the caller's reference, `ref` adds one. */
struct cm_slice cm_slice_take(struct cm_buf *b, size_t off, size_t len);
struct cm_slice cm_slice_ref(struct cm_buf *b, size_t off, size_t len);
struct cm_slice cm_slice_dup(const struct cm_slice *s); /* another ref to the same bytes */
void cm_slice_release(struct cm_slice *s);              /* unref and zero */
static inline const char *cm_slice_ptr(const struct cm_slice *s)
{
    return s->buf ? s->buf->data + s->off : "";
}

/* Growable string/byte builder (owned heap memory, NUL-terminated). */
struct cm_sbuf {
    char *p;
    size_t len;
    size_t cap;
    int oom; /* set once an append failed: further appends are no-ops */
};
void cm_sbuf_init(struct cm_sbuf *s);
void cm_sbuf_free(struct cm_sbuf *s);
void cm_sbuf_reset(struct cm_sbuf *s);
void cm_sbuf_append(struct cm_sbuf *s, const void *data, size_t len);
void cm_sbuf_puts(struct cm_sbuf *s, const char *str);
void cm_sbuf_printf(struct cm_sbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append str as a JSON string literal (quotes included, escaped). */
void cm_sbuf_json_str(struct cm_sbuf *s, const char *str);

#endif
