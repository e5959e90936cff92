/* The answer to a GET/HEAD of an existing object, pure: from the request's Range, If-Range and
 * conditional headers and the object's metadata, decide the status (200, 206, 304, 412, 416)
 * and the byte range, and format the header lines. Used alike for cache hits and node reads, so
 * HEAD and GET carry the same headers whatever path served them. */
#ifndef GW_OBJRESP_H
#define GW_OBJRESP_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "http/http.h"
#include "object/rules.h"

struct gw_objinfo {
    const char *key;
    uint64_t size;
    uint64_t version;
    const char *content_type;
    const char *cache_control; /* the object's own (from its PUT); "" or NULL = none */
    int64_t created_ms;
    int64_t expires_ms; /* 0 = never */
    /* A body derived from the stored one (a playlist delta update): its entity-tag is the
     * version's with "-tag" appended, so validators differ between the two. NULL = stored. */
    const char *etag_tag;
    /* Cache-Control that replaces every other (blocking playlist responses); NULL = none. */
    const char *cache_control_forced;
};

#define GW_OBJRESP_ETAG_MAX 48
/* The entity-tag of o: "<version hex>" or "<version hex>-<etag_tag>". */
void gw_objresp_etag(const struct gw_objinfo *o, char out[GW_OBJRESP_ETAG_MAX]);

struct gw_objresp {
    int status;           /* 200, 206, 304, 412 or 416 */
    uint64_t first, last; /* 206: the byte range; 200: 0 .. size-1 */
    uint64_t length;      /* body bytes of a GET (Content-Length of a HEAD) */
};

/* Immutable media kinds (.ts .m4s .mp4 .cmfv .cmfa .m4a .aac .vtt .key, init segments): by
 * convention written once. Everything else (playlists, manifests, unknown kinds) is mutable.
 * The gateway's own reads and cache treat every kind alike (cluster/watch.h). */
int gw_key_immutable_kind(const char *key);

/* head: HEAD (Range is ignored, as RFC 9110 says for methods other than GET). */
void gw_objresp_plan(const struct gw_http_req *req, int head, const struct gw_objinfo *o,
                     struct gw_objresp *out);
/* May v (stored or node-supplied) be printed as a header field value? No control byte other
 * than HTAB, no DEL, at most GW_HTTP_VALUE_MAX - 1 bytes. */
int gw_field_value_ok(const char *v);

enum { GW_OBJRESP_BAD_CTYPE = 1, GW_OBJRESP_BAD_CC = 2 };
/* Header lines (each ending in CRLF) for 200/206/304; for 412/416 the lines that go with the
 * error body (416: Content-Range: bytes * /size). rules: --cache-rules (NULL = defaults).
 * Stored values that fail gw_field_value_ok are never printed: a bad Content-Type becomes
 * application/octet-stream, a bad Cache-Control the default for the key. Returns which were
 * replaced (GW_OBJRESP_BAD_*), for the caller to log; 0 normally. */
int gw_objresp_headers(const struct gw_objresp *r, const struct gw_objinfo *o,
                       const struct gw_rules *rules, struct cm_sbuf *h);

#endif
