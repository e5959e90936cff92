/* CORS on the data port (--cors-origins). Pure apart from gw_conn_add_cors.
 *
 *   "*"  (default)          Access-Control-Allow-Origin: *
 *   "https://a,https://b"   only listed origins: the request's Origin is echoed, with
 *                           Vary: Origin on every answer (so caches keep the variants apart)
 *   ""                      off: no CORS headers; OPTIONS still answers 204 with Allow
 *
 * Writes (PUT, POST, DELETE) cross-origin only from --cors-write-origins (same syntax, default
 * "": none): a preflight from any other origin allows only GET, HEAD and OPTIONS, and a write
 * request carrying such an Origin is refused 403 before anything is stored (a CORS "simple"
 * POST needs no preflight). A request without Origin is not a browser's cross-origin one.
 *
 * The server adds these headers to every data-port answer by itself (gw_conn_write_head), so
 * handlers need not call anything; gw_conn_add_cors is for a handler that wants them earlier in
 * its own header block (then the server does not add them again). */
#ifndef GW_CORS_H
#define GW_CORS_H

#include <stddef.h>

#include "buf.h"

#define GW_CORS_MAX_ORIGINS 32
#define GW_CORS_ORIGIN_MAX 256
#define GW_CORS_METHODS "GET, HEAD, PUT, POST, DELETE, OPTIONS"
#define GW_CORS_READ_METHODS "GET, HEAD, OPTIONS"
#define GW_CORS_EXPOSE "Content-Length, Content-Range, ETag, Last-Modified, Accept-Ranges"
#define GW_CORS_MAX_AGE 86400

enum gw_cors_mode { GW_CORS_OFF, GW_CORS_ANY, GW_CORS_LIST };

struct gw_cors {
    enum gw_cors_mode mode;
    size_t n;
    char origin[GW_CORS_MAX_ORIGINS][GW_CORS_ORIGIN_MAX];
};

/* "*", "" or a comma-separated list of origins (scheme://host[:port]). */
int gw_cors_parse(const char *spec, struct gw_cors *out, char *errmsg, size_t errlen);
/* Header lines for an answer to a request with this Origin ("" = none). */
void gw_cors_headers(const struct gw_cors *cors, const char *origin, struct cm_sbuf *out);
/* Header lines for a preflight (OPTIONS with Access-Control-Request-Method). req_headers is the
 * request's Access-Control-Request-Headers ("" = none): echoed when it is a plain list of
 * header names. writes: this origin may write (gw_cors_write_ok); else only GW_CORS_READ_METHODS
 * are allowed. */
void gw_cors_preflight(const struct gw_cors *cors, const char *origin, const char *req_headers,
                       int writes, struct cm_sbuf *out);
/* May a write carrying this Origin ("" = none: not a cross-origin browser request) go ahead?
 * write: the --cors-write-origins rules. */
int gw_cors_write_ok(const struct gw_cors *write, const char *origin);

struct gw_conn;
/* Append the CORS lines for c's current request to a handler's header block (once). */
void gw_conn_add_cors(struct gw_conn *c, struct cm_sbuf *headers);

#endif
