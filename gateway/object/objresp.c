#include "object/objresp.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http/cond.h"
#include "etag.h"
#include "http/httpdate.h"
#include "http/range.h"

int gw_key_immutable_kind(const char *key)
{
    static const char *const exts[] = {".ts",  ".m4s", ".mp4", ".cmfv", ".cmfa",
                                       ".m4a", ".aac", ".vtt", ".key"};
    const char *base = strrchr(key, '/');
    base = base ? base + 1 : key;
    if (gw_key_is_playlist(key))
        return 0;
    if (strncasecmp(base, "init", 4) == 0)
        return 1;
    size_t n = strlen(base);
    for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
        size_t m = strlen(exts[i]);
        if (n > m && strcasecmp(base + n - m, exts[i]) == 0)
            return 1;
    }
    return 0;
}

/* If-Range (RFC 9110 §13.1.5): the range applies only when the validator still matches: an
 * entity-tag by strong comparison, or a date equal to Last-Modified. */
static int if_range_ok(const char *v, size_t len, const char *etag, int64_t last_modified_s)
{
    while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
        len--;
    while (len > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        len--;
    }
    if (len == 0)
        return 1;
    if (v[0] == '"' || (len >= 2 && v[0] == 'W' && v[1] == '/'))
        return v[0] == '"' && len == strlen(etag) && memcmp(v, etag, len) == 0;
    int64_t t;
    return gw_httpdate_parse(v, len, &t) == 0 && t == last_modified_s;
}

void gw_objresp_etag(const struct gw_objinfo *o, char out[GW_OBJRESP_ETAG_MAX])
{
    if (o->etag_tag == NULL || o->etag_tag[0] == '\0')
        snprintf(out, GW_OBJRESP_ETAG_MAX, "\"%llx\"", (unsigned long long)o->version);
    else
        snprintf(out, GW_OBJRESP_ETAG_MAX, "\"%llx-%.16s\"", (unsigned long long)o->version,
                 o->etag_tag);
}

void gw_objresp_plan(const struct gw_http_req *req, int head, const struct gw_objinfo *o,
                     struct gw_objresp *out)
{
    char etag[GW_OBJRESP_ETAG_MAX];
    int64_t lm = o->created_ms / 1000;
    gw_objresp_etag(o, etag);
    memset(out, 0, sizeof(*out));
    struct gw_cond cond;
    memset(&cond, 0, sizeof(cond));
    /* header values are slices (pointer + length); absent = NULL, as gw_cond wants */
    cond.if_match = gw_http_header(req, GW_H_IF_MATCH, &cond.if_match_len);
    cond.if_none_match = gw_http_header(req, GW_H_IF_NONE_MATCH, &cond.if_none_match_len);
    cond.if_modified_since =
        gw_http_header(req, GW_H_IF_MODIFIED_SINCE, &cond.if_modified_since_len);
    if (cond.if_modified_since_len == 0)
        cond.if_modified_since = NULL;
    cond.if_unmodified_since =
        gw_http_header(req, GW_H_IF_UNMODIFIED_SINCE, &cond.if_unmodified_since_len);
    if (cond.if_unmodified_since_len == 0)
        cond.if_unmodified_since = NULL;
    enum gw_cond_result cr = gw_cond_eval(&cond, 1, etag, lm);
    if (cr != GW_COND_PROCEED) {
        out->status = (int)cr;
        return;
    }
    out->status = 200;
    out->first = 0;
    out->last = o->size > 0 ? o->size - 1 : 0;
    out->length = o->size;
    size_t range_len, if_range_len;
    const char *range = gw_http_header(req, GW_H_RANGE, &range_len);
    const char *if_range = gw_http_header(req, GW_H_IF_RANGE, &if_range_len);
    if (head || range_len == 0 ||
        (if_range_len > 0 && !if_range_ok(if_range, if_range_len, etag, lm)))
        return;
    uint64_t first = 0, last = 0;
    switch (gw_range_parse(range, range_len, o->size, &first, &last)) {
    case GW_RANGE_ONE:
        out->status = 206;
        out->first = first;
        out->last = last;
        out->length = last - first + 1;
        return;
    case GW_RANGE_UNSATISFIABLE:
        out->status = 416;
        out->length = 0;
        return;
    case GW_RANGE_NONE:
        return;
    }
}

int gw_field_value_ok(const char *v)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++, n++) {
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f || n >= GW_HTTP_VALUE_MAX - 1)
            return 0;
    }
    return 1;
}

int gw_objresp_headers(const struct gw_objresp *r, const struct gw_objinfo *o,
                       const struct gw_rules *rules, struct cm_sbuf *h)
{
    char etag[GW_OBJRESP_ETAG_MAX], date[GW_HTTPDATE_LEN];
    int bad = 0;
    gw_objresp_etag(o, etag);
    if (r->status == 416) {
        cm_sbuf_printf(h, "Content-Range: bytes */%llu\r\nAccept-Ranges: bytes\r\n",
                       (unsigned long long)o->size);
        return 0;
    }
    if (r->status == 412)
        return 0;
    const char *cc = o->cache_control;
    if (cc != NULL && !gw_field_value_ok(cc)) {
        cc = NULL;
        bad |= GW_OBJRESP_BAD_CC;
    }
    if (r->status != 304) {
        const char *ct =
            o->content_type && o->content_type[0] ? o->content_type : "application/octet-stream";
        if (!gw_field_value_ok(ct)) {
            ct = "application/octet-stream";
            bad |= GW_OBJRESP_BAD_CTYPE;
        }
        cm_sbuf_printf(h, "Content-Type: %s\r\nContent-Length: %llu\r\nAccept-Ranges: bytes\r\n",
                       ct, (unsigned long long)r->length);
        if (r->status == 206)
            cm_sbuf_printf(h, "Content-Range: bytes %llu-%llu/%llu\r\n",
                           (unsigned long long)r->first, (unsigned long long)r->last,
                           (unsigned long long)o->size);
    }
    gw_httpdate_format(o->created_ms / 1000, date);
    cm_sbuf_printf(h, "ETag: %s\r\nLast-Modified: %s\r\nCache-Control: %s\r\n", etag, date,
                   o->cache_control_forced ? o->cache_control_forced
                                           : gw_cache_control(rules, o->key, cc));
    if (o->expires_ms > 0) {
        gw_httpdate_format(o->expires_ms / 1000, date);
        cm_sbuf_printf(h, "Expires: %s\r\n", date);
    }
    return bad;
}
