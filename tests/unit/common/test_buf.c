#include <criterion/criterion.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"

Test(buf, slices_keep_buffer_alive)
{
    struct cm_buf *b = cm_buf_copy("hello world", 11);
    struct cm_slice s = cm_slice_ref(b, 6, 5);
    cm_buf_unref(b);
    cr_assert_eq(s.len, 5);
    cr_assert(memcmp(cm_slice_ptr(&s), "world", 5) == 0);
    struct cm_slice d = cm_slice_dup(&s);
    cm_slice_release(&s);
    cr_assert(memcmp(cm_slice_ptr(&d), "world", 5) == 0);
    cm_slice_release(&d);
    cr_assert_null(d.buf);
}

Test(buf, sbuf_json_escapes)
{
    struct cm_sbuf s;
    cm_sbuf_init(&s);
    cm_sbuf_json_str(&s, "a\"b\\c\n\x01");
    cr_assert_str_eq(s.p, "\"a\\\"b\\\\c\\n\\u0001\"");
    cm_sbuf_printf(&s, "%d", 42);
    cr_assert_str_eq(s.p + s.len - 2, "42");
    cm_sbuf_free(&s);
}

Test(buf, sbuf_out_of_memory_is_sticky)
{
    struct cm_sbuf s;
    cm_sbuf_init(&s);
    cm_alloc_fail_after(0);
    cm_sbuf_puts(&s, "x");
    cm_alloc_fail_after(-1);
    cr_assert(s.oom);
    cm_sbuf_puts(&s, "y");
    cr_assert_eq(s.len, 0);
    cm_sbuf_free(&s);
}
