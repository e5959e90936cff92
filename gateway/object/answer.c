#include "object/answer.h"

#include "object/rules.h"

void gw_answer_doc(struct gw_conn *c, int status, const char *ctype, const char *extra,
                   const struct cm_sbuf *doc)
{
    if (doc->oom)
        gw_conn_error(c, 500, "internal", "out of memory", GW_COMMITTED_OMIT);
    else
        gw_conn_respond(c, status, ctype, extra, doc->p, doc->len);
}

void gw_answer_error(struct gw_conn *c, int status, const char *code, const char *msg,
                     const char *extra)
{
    struct cm_sbuf b;
    cm_sbuf_init(&b);
    gw_http_error_body(&b, code, msg, GW_COMMITTED_OMIT);
    gw_conn_respond(c, status, "application/json", extra, b.oom ? "{}" : b.p, b.oom ? 2 : b.len);
    cm_sbuf_free(&b);
}

void gw_answer_not_found(struct gw_conn *c)
{
    gw_answer_error(c, 404, "not_found", "no such object",
                    "Cache-Control: " GW_CACHE_CONTROL_MISS "\r\n");
}
