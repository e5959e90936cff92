#include "access/key.h"

#include <string.h>

#include "crc32c.h"
#include "err.h"
#include "http/http.h"

/* The path part of a request target: skip "scheme://authority", stop at '?' or '#'. */
static void target_path(const char *t, size_t len, size_t *start, size_t *end)
{
    size_t s = 0;
    if (len > 0 && t[0] != '/') {
        const char *sep = NULL;
        for (size_t i = 0; i + 2 < len; i++) {
            if (t[i] == ':' && t[i + 1] == '/' && t[i + 2] == '/') {
                sep = t + i + 3;
                break;
            }
            if (t[i] == '/' || t[i] == '?')
                break;
        }
        if (sep != NULL) {
            s = (size_t)(sep - t);
            while (s < len && t[s] != '/' && t[s] != '?' && t[s] != '#')
                s++;
        }
    }
    size_t e = s;
    while (e < len && t[e] != '?' && t[e] != '#')
        e++;
    *start = s;
    *end = e;
}

/* Close the segment that starts at out[seg] and ends at *o: drop ".", refuse "..". */
static int close_segment(char *out, size_t seg, size_t *o, const char **why)
{
    size_t n = *o - seg;
    if (n == 1 && out[seg] == '.') {
        *o = seg;
        return 0;
    }
    if (n == 2 && out[seg] == '.' && out[seg + 1] == '.') {
        *why = "'..' segments are not allowed";
        return CM_EINVAL;
    }
    return 0;
}

static int put_byte(char *out, size_t outcap, size_t *o, char c, const char **why)
{
    if (*o >= GW_KEY_MAX || *o + 1 >= outcap) {
        *why = "key longer than 1024 bytes";
        return CM_EINVAL;
    }
    out[(*o)++] = c;
    return 0;
}

int gw_key_normalize(const char *target, size_t len, char *out, size_t outcap, size_t *outlen,
                     const char **why)
{
    size_t s, e;
    *why = "";
    target_path(target, len, &s, &e);
    if (s >= e || target[s] != '/' || outcap < 2) {
        *why = "key must be an absolute path";
        return CM_EINVAL;
    }
    size_t o = 0, seg = 1;
    out[o++] = '/';
    for (size_t i = s; i < e; i++) {
        char c = target[i];
        if (c == '%') {
            int hi = i + 2 < e ? gw_http_hexdigit(target[i + 1]) : -1;
            int lo = i + 2 < e ? gw_http_hexdigit(target[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                *why = "malformed percent-escape";
                return CM_EINVAL;
            }
            c = (char)(hi << 4 | lo);
            i += 2;
            if (c == '\0') {
                *why = "NUL byte in key";
                return CM_EINVAL;
            }
        }
        if ((unsigned char)c < 0x20 || c == 0x7f) {
            *why = "control byte in key"; /* keys end up in headers, listings and log lines */
            return CM_EINVAL;
        }
        if (c != '/') {
            if (put_byte(out, outcap, &o, c, why) != 0)
                return CM_EINVAL;
            continue;
        }
        if (close_segment(out, seg, &o, why) != 0)
            return CM_EINVAL;
        if (out[o - 1] != '/' && put_byte(out, outcap, &o, '/', why) != 0)
            return CM_EINVAL;
        seg = o;
    }
    if (close_segment(out, seg, &o, why) != 0)
        return CM_EINVAL;
    if (o <= 1) {
        *why = "empty key";
        return CM_EINVAL;
    }
    out[o] = '\0';
    *outlen = o;
    return 0;
}

size_t gw_key_dir_len(const char *key, size_t len)
{
    while (len > 0 && key[len - 1] != '/')
        len--;
    return len > 0 ? len - 1 : 0;
}
