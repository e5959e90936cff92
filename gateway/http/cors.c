#include "http/cors.h"

#include <stdio.h>
#include <string.h>

#include "err.h"

/* host[:port] of an origin: no path, no space, comma or control byte. */
static int origin_host_ok(const char *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)h[i];
        if (c <= 0x20 || c == 0x7f || c == '/' || c == ',')
            return 0;
    }
    return n > 0;
}

int gw_cors_parse(const char *spec, struct gw_cors *out, char *errmsg, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (spec == NULL || strcmp(spec, "*") == 0) {
        out->mode = GW_CORS_ANY;
        return 0;
    }
    if (*spec == '\0') {
        out->mode = GW_CORS_OFF;
        return 0;
    }
    out->mode = GW_CORS_LIST;
    const char *p = spec;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        while (n > 0 && *p == ' ') {
            p++;
            n--;
        }
        while (n > 0 && p[n - 1] == ' ')
            n--;
        size_t scheme = n > 7 && strncmp(p, "http://", 7) == 0    ? 7
                        : n > 8 && strncmp(p, "https://", 8) == 0 ? 8
                                                                  : 0;
        if (scheme == 0 || n >= GW_CORS_ORIGIN_MAX || !origin_host_ok(p + scheme, n - scheme) ||
            out->n == GW_CORS_MAX_ORIGINS) {
            snprintf(errmsg, errlen,
                     "--cors-origins: want \"*\", \"\" or up to %d origins like "
                     "https://player.example.com, got '%s'",
                     GW_CORS_MAX_ORIGINS, spec);
            return CM_EINVAL;
        }
        memcpy(out->origin[out->n], p, n);
        out->origin[out->n][n] = '\0';
        out->n++;
        p += n;
        while (*p == ' ')
            p++;
        if (*p == ',')
            p++;
    }
    if (out->n == 0) {
        snprintf(errmsg, errlen, "--cors-origins: empty list");
        return CM_EINVAL;
    }
    return 0;
}

static int listed(const struct gw_cors *cors, const char *origin)
{
    for (size_t i = 0; i < cors->n; i++) {
        if (strcmp(cors->origin[i], origin) == 0)
            return 1;
    }
    return 0;
}

/* Access-Control-Allow-Origin (+ Vary) lines; 1 when an origin is allowed. */
static int allow_origin(const struct gw_cors *cors, const char *origin, struct cm_sbuf *out)
{
    if (cors->mode == GW_CORS_ANY) {
        cm_sbuf_puts(out, "Access-Control-Allow-Origin: *\r\n");
        return 1;
    }
    if (cors->mode != GW_CORS_LIST)
        return 0;
    int ok = origin != NULL && origin[0] != '\0' && listed(cors, origin);
    if (ok)
        cm_sbuf_printf(out, "Access-Control-Allow-Origin: %s\r\n", origin);
    cm_sbuf_puts(out, "Vary: Origin\r\n");
    return ok;
}

void gw_cors_headers(const struct gw_cors *cors, const char *origin, struct cm_sbuf *out)
{
    if (allow_origin(cors, origin, out))
        cm_sbuf_puts(out, "Access-Control-Expose-Headers: " GW_CORS_EXPOSE "\r\n");
}

/* A header-name list we are willing to echo: token characters, commas, spaces; bounded. */
static int plain_list(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 512)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '-' || c == '_' || c == ',' || c == ' ' || c == '.';
        if (!ok)
            return 0;
    }
    return 1;
}

int gw_cors_write_ok(const struct gw_cors *write, const char *origin)
{
    if (origin == NULL || origin[0] == '\0' || write->mode == GW_CORS_ANY)
        return 1;
    return write->mode == GW_CORS_LIST && listed(write, origin);
}

void gw_cors_preflight(const struct gw_cors *cors, const char *origin, const char *req_headers,
                       int writes, struct cm_sbuf *out)
{
    if (!allow_origin(cors, origin, out))
        return;
    cm_sbuf_puts(out, writes ? "Access-Control-Allow-Methods: " GW_CORS_METHODS "\r\n"
                             : "Access-Control-Allow-Methods: " GW_CORS_READ_METHODS "\r\n");
    if (req_headers != NULL && plain_list(req_headers))
        cm_sbuf_printf(out, "Access-Control-Allow-Headers: %s\r\n", req_headers);
    cm_sbuf_printf(out, "Access-Control-Max-Age: %d\r\n", GW_CORS_MAX_AGE);
}
