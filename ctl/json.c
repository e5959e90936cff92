/* Recursive-descent JSON parser; see json.h. Depth is bounded so the recursion is too. */
#include "json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "err.h"

struct parser {
    const char *s;
    size_t len;
    size_t pos;
    int err; /* first error: CM_EPROTO or CM_ENOMEM */
    char *errmsg;
    size_t errlen;
};

static int fail(struct parser *p, int err, const char *what)
{
    if (p->err == 0) {
        p->err = err;
        if (p->errmsg && p->errlen)
            snprintf(p->errmsg, p->errlen, "offset %zu: %s", p->pos, what);
    }
    return p->err;
}

static void skip_ws(struct parser *p)
{
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        p->pos++;
    }
}

static int peek(const struct parser *p)
{
    return p->pos < p->len ? (unsigned char)p->s[p->pos] : -1;
}

static struct ctl_json *node_new(struct parser *p, enum ctl_json_type t)
{
    struct ctl_json *v = cm_calloc(1, sizeof(*v));
    if (v == NULL) {
        fail(p, CM_ENOMEM, "out of memory");
        return NULL;
    }
    v->type = t;
    return v;
}

static int kid_add(struct parser *p, struct ctl_json *parent, struct ctl_json *kid)
{
    if (parent->nkids == parent->capkids) {
        size_t cap = parent->capkids ? parent->capkids * 2 : 4;
        struct ctl_json **k = cm_realloc(parent->kids, cap * sizeof(*k));
        if (k == NULL)
            return fail(p, CM_ENOMEM, "out of memory");
        parent->kids = k;
        parent->capkids = cap;
    }
    parent->kids[parent->nkids++] = kid;
    return 0;
}

static int literal(struct parser *p, const char *word)
{
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
        return fail(p, CM_EPROTO, "invalid literal");
    p->pos += n;
    return 0;
}

static int hex4(struct parser *p, unsigned *out)
{
    unsigned v = 0;
    if (p->len - p->pos < 4)
        return fail(p, CM_EPROTO, "truncated \\u escape");
    for (int i = 0; i < 4; i++) {
        char c = p->s[p->pos++];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return fail(p, CM_EPROTO, "bad hex digit in \\u escape");
    }
    *out = v;
    return 0;
}

/* Code point of a \u escape (p->pos just after "\u"), joining surrogate pairs. */
static int unicode_escape(struct parser *p, unsigned *cp)
{
    unsigned hi = 0, lo = 0;
    if (hex4(p, &hi) != 0)
        return p->err;
    if (hi >= 0xDC00 && hi <= 0xDFFF)
        return fail(p, CM_EPROTO, "lone low surrogate");
    if (hi < 0xD800 || hi > 0xDBFF) {
        *cp = hi;
        return 0;
    }
    if (p->len - p->pos < 2 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u')
        return fail(p, CM_EPROTO, "high surrogate without low surrogate");
    p->pos += 2;
    if (hex4(p, &lo) != 0)
        return p->err;
    if (lo < 0xDC00 || lo > 0xDFFF)
        return fail(p, CM_EPROTO, "bad low surrogate");
    *cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
    return 0;
}

static size_t utf8_put(char *out, unsigned cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static int escape(struct parser *p, char *dst, size_t *n)
{
    static const char from[] = "\"\\/bfnrt";
    static const char to[] = "\"\\/\b\f\n\r\t";
    if (p->pos >= p->len)
        return fail(p, CM_EPROTO, "truncated escape");
    char c = p->s[p->pos++];
    if (c == 'u') {
        unsigned cp = 0;
        if (unicode_escape(p, &cp) != 0)
            return p->err;
        *n += utf8_put(dst + *n, cp);
        return 0;
    }
    const char *hit = c ? strchr(from, c) : NULL;
    if (hit == NULL)
        return fail(p, CM_EPROTO, "invalid escape");
    dst[(*n)++] = to[hit - from];
    return 0;
}

/* p->pos at the opening quote. The decoded string is never longer than its source, so one
 * allocation of the source span is enough (a 6-byte \u escape yields at most 3 bytes, a
 * 12-byte surrogate pair 4). */
static int string(struct parser *p, char **out, size_t *outlen)
{
    p->pos++;
    size_t start = p->pos, end = start;
    while (end < p->len && p->s[end] != '"')
        end += p->s[end] == '\\' ? 2 : 1;
    if (end >= p->len) {
        p->pos = p->len;
        return fail(p, CM_EPROTO, "unterminated string");
    }
    char *dst = cm_malloc(end - start + 1);
    if (dst == NULL)
        return fail(p, CM_ENOMEM, "out of memory");
    size_t n = 0;
    while (p->s[p->pos] != '"') {
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c < 0x20) {
            cm_free(dst);
            return fail(p, CM_EPROTO, "control character in string");
        }
        p->pos++;
        if (c != '\\') {
            dst[n++] = (char)c;
        } else if (escape(p, dst, &n) != 0) {
            cm_free(dst);
            return p->err;
        }
    }
    p->pos++; /* closing quote */
    dst[n] = '\0';
    *out = dst;
    *outlen = n;
    return 0;
}

static int digits(struct parser *p)
{
    size_t start = p->pos;
    while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
        p->pos++;
    return p->pos > start ? 0 : fail(p, CM_EPROTO, "expected digit");
}

static int number(struct parser *p, struct ctl_json *v)
{
    size_t start = p->pos;
    int integral = 1;
    if (peek(p) == '-')
        p->pos++;
    if (peek(p) == '0')
        p->pos++;
    else if (digits(p) != 0)
        return p->err;
    if (peek(p) == '.') {
        p->pos++;
        integral = 0;
        if (digits(p) != 0)
            return p->err;
    }
    if (peek(p) == 'e' || peek(p) == 'E') {
        p->pos++;
        integral = 0;
        if (peek(p) == '+' || peek(p) == '-')
            p->pos++;
        if (digits(p) != 0)
            return p->err;
    }
    char buf[64];
    size_t n = p->pos - start;
    if (n >= sizeof(buf))
        return fail(p, CM_EPROTO, "number too long");
    memcpy(buf, p->s + start, n);
    buf[n] = '\0';
    errno = 0;
    v->number = strtod(buf, NULL);
    if (errno == ERANGE && (v->number > 1.0 || v->number < -1.0))
        return fail(p, CM_EPROTO, "number out of range"); /* would be +-inf */
    if (integral) {
        errno = 0;
        long long i = strtoll(buf, NULL, 10);
        if (errno == 0) {
            v->is_int = 1;
            v->integer = i;
        }
    }
    return 0;
}

static struct ctl_json *value(struct parser *p, int depth);

static struct ctl_json *container(struct parser *p, int depth, int is_obj)
{
    struct ctl_json *v = node_new(p, is_obj ? CTL_JSON_OBJECT : CTL_JSON_ARRAY);
    char close = is_obj ? '}' : ']';
    if (v == NULL)
        return NULL;
    p->pos++;
    skip_ws(p);
    if (peek(p) == close) {
        p->pos++;
        return v;
    }
    for (;;) {
        char *key = NULL;
        size_t keylen;
        skip_ws(p);
        if (is_obj) {
            if (peek(p) != '"') {
                fail(p, CM_EPROTO, "expected member name");
                goto err;
            }
            if (string(p, &key, &keylen) != 0)
                goto err;
            skip_ws(p);
            if (peek(p) != ':') {
                cm_free(key);
                fail(p, CM_EPROTO, "expected ':'");
                goto err;
            }
            p->pos++;
        }
        struct ctl_json *kid = value(p, depth + 1);
        if (kid == NULL) {
            cm_free(key);
            goto err;
        }
        kid->key = key;
        if (kid_add(p, v, kid) != 0) {
            ctl_json_free(kid);
            goto err;
        }
        skip_ws(p);
        int c = peek(p);
        p->pos++;
        if (c == close)
            return v;
        if (c != ',') {
            p->pos--;
            fail(p, CM_EPROTO, is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
            goto err;
        }
    }
err:
    ctl_json_free(v);
    return NULL;
}

static struct ctl_json *value(struct parser *p, int depth)
{
    struct ctl_json *v;
    if (depth > CTL_JSON_MAX_DEPTH) {
        fail(p, CM_EPROTO, "nesting too deep");
        return NULL;
    }
    skip_ws(p);
    int c = peek(p);
    switch (c) {
    case '{':
    case '[':
        return container(p, depth, c == '{');
    case '"':
        v = node_new(p, CTL_JSON_STRING);
        if (v != NULL && string(p, &v->str, &v->len) != 0)
            goto err;
        return v;
    case 't':
    case 'f':
        v = node_new(p, CTL_JSON_BOOL);
        if (v != NULL && literal(p, c == 't' ? "true" : "false") != 0)
            goto err;
        if (v != NULL)
            v->boolean = c == 't';
        return v;
    case 'n':
        v = node_new(p, CTL_JSON_NULL);
        if (v != NULL && literal(p, "null") != 0)
            goto err;
        return v;
    case -1:
        fail(p, CM_EPROTO, "unexpected end of input");
        return NULL;
    default:
        if (c != '-' && (c < '0' || c > '9')) {
            fail(p, CM_EPROTO, "unexpected character");
            return NULL;
        }
        v = node_new(p, CTL_JSON_NUMBER);
        if (v != NULL && number(p, v) != 0)
            goto err;
        return v;
    }
err:
    ctl_json_free(v);
    return NULL;
}

int ctl_json_parse(const char *text, size_t len, struct ctl_json **out, char *errmsg, size_t errlen)
{
    struct parser p = {
        .s = text ? text : "", .len = text ? len : 0, .errmsg = errmsg, .errlen = errlen};
    *out = NULL;
    struct ctl_json *v = value(&p, 0);
    if (v == NULL)
        return p.err ? p.err : CM_EPROTO;
    skip_ws(&p);
    if (p.pos != p.len) {
        ctl_json_free(v);
        return fail(&p, CM_EPROTO, "trailing characters after value");
    }
    *out = v;
    return 0;
}

void ctl_json_free(struct ctl_json *v)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < v->nkids; i++)
        ctl_json_free(v->kids[i]);
    cm_free(v->kids);
    cm_free(v->str);
    cm_free(v->key);
    cm_free(v);
}

const struct ctl_json *ctl_json_get(const struct ctl_json *obj, const char *key)
{
    if (obj == NULL || obj->type != CTL_JSON_OBJECT || key == NULL)
        return NULL;
    for (size_t i = 0; i < obj->nkids; i++) {
        if (strcmp(obj->kids[i]->key, key) == 0)
            return obj->kids[i];
    }
    return NULL;
}

const struct ctl_json *ctl_json_at(const struct ctl_json *arr, size_t i)
{
    if (arr == NULL || arr->type != CTL_JSON_ARRAY || i >= arr->nkids)
        return NULL;
    return arr->kids[i];
}

size_t ctl_json_count(const struct ctl_json *v)
{
    if (v == NULL || (v->type != CTL_JSON_ARRAY && v->type != CTL_JSON_OBJECT))
        return 0;
    return v->nkids;
}

int ctl_json_int(const struct ctl_json *v, int64_t *out)
{
    if (v == NULL || v->type != CTL_JSON_NUMBER || !v->is_int)
        return CM_EINVAL;
    *out = v->integer;
    return 0;
}

int ctl_json_bool(const struct ctl_json *v, int *out)
{
    if (v == NULL || v->type != CTL_JSON_BOOL)
        return CM_EINVAL;
    *out = v->boolean;
    return 0;
}

const char *ctl_json_str(const struct ctl_json *v)
{
    return v != NULL && v->type == CTL_JSON_STRING ? v->str : NULL;
}
