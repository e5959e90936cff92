/* Whole answers that handlers build themselves, on top of server.h's gw_conn_respond: a document
 * built in a cm_sbuf (JSON listings, /status, /metrics) and the JSON errors of reads that are
 * expected outcomes rather than failures (404, 412, 416: no log line, extra header lines). */
#ifndef GW_ANSWER_H
#define GW_ANSWER_H

#include "buf.h"
#include "http/server.h"

/* doc (borrowed) as the body, with ctype and extra header lines (NULL = none); a 500 JSON error
 * instead when building doc ran out of memory. */
void gw_answer_doc(struct gw_conn *c, int status, const char *ctype, const char *extra,
                   const struct cm_sbuf *doc);
/* {"error":code,"message":msg} with extra header lines (NULL = none), no log line. */
void gw_answer_error(struct gw_conn *c, int status, const char *code, const char *msg,
                     const char *extra);
/* The 404 of a read or a delete: not_found with Cache-Control: max-age=1 (no CDN pins a miss). */
void gw_answer_not_found(struct gw_conn *c);

#endif
