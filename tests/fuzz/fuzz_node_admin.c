/* The node admin listener's request-head parser and answer builder (node/admin/admin.h):
 * whatever the bytes, the parser returns a length within them, 0 or an error status, and an
 * answer for a parsed head is a well-formed HTTP/1.1 message. */
#include <string.h>

#include "admin/admin.h"
#include "fuzz.h"

static int ready(void *arg, struct cm_sbuf *why)
{
    cm_sbuf_puts(why, "fuzz \"quoted\"\n");
    return arg != NULL;
}

static void metrics(void *arg, struct cm_sbuf *out)
{
    cm_sbuf_puts(out, "m 1\n");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct nd_admin_ops ops = {.ready = ready, .metrics = metrics};
    struct nd_admin_req req;
    int rv = nd_admin_parse((const char *)data, size, &req);
    HW_FUZZ_ASSERT(rv == 0 || rv == -400 || rv == -414 || rv == -431 ||
                   (rv > 0 && (size_t)rv <= size));
    if (rv <= 0)
        return 0;
    HW_FUZZ_ASSERT(req.path[0] == '/' && strlen(req.path) <= ND_ADMIN_TARGET_MAX);
    struct cm_sbuf out;
    cm_sbuf_init(&out);
    int status = nd_admin_answer(&req, &ops, size % 2 ? (void *)&out : NULL, &out);
    HW_FUZZ_ASSERT(out.oom || (out.len > 12 && memcmp(out.p, "HTTP/1.1 ", 9) == 0));
    HW_FUZZ_ASSERT(status >= 200 && status < 600 && strstr(out.p, "\r\n\r\n") != NULL);
    cm_sbuf_free(&out);
    return 0;
}
