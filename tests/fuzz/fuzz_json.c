/* ctl's JSON parser (ctl/json.c). Properties of an accepted document: strings are
 * NUL-terminated at len, nesting stays within CTL_JSON_MAX_DEPTH, an exact integer agrees with
 * its double, and writing the tree back out and parsing that gives the same tree. A refused
 * document says where ("offset N: ..."). */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"
#include "err.h"
#include "fuzz.h"
#include "json.h"

static void put_str(struct cm_sbuf *s, const char *p, size_t n)
{
    cm_sbuf_puts(s, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x20 || c == '"' || c == '\\')
            cm_sbuf_printf(s, "\\u%04x", c);
        else
            cm_sbuf_append(s, &p[i], 1);
    }
    cm_sbuf_puts(s, "\"");
}

/* A double that reads back as the same non-integer NUMBER (with an exponent if need be). */
static void put_double(struct cm_sbuf *s, double d)
{
    char num[64];
    snprintf(num, sizeof(num), "%.17g", d);
    cm_sbuf_puts(s, num);
    if (strpbrk(num, ".eE") == NULL)
        cm_sbuf_puts(s, "e0");
}

static void write_json(struct cm_sbuf *s, const struct ctl_json *v)
{
    switch (v->type) {
    case CTL_JSON_NULL:
        cm_sbuf_puts(s, "null");
        break;
    case CTL_JSON_BOOL:
        cm_sbuf_puts(s, v->boolean ? "true" : "false");
        break;
    case CTL_JSON_NUMBER:
        if (v->is_int)
            cm_sbuf_printf(s, "%" PRId64, v->integer);
        else
            put_double(s, v->number);
        break;
    case CTL_JSON_STRING:
        put_str(s, v->str, v->len);
        break;
    default:
        cm_sbuf_puts(s, v->type == CTL_JSON_ARRAY ? "[" : "{");
        for (size_t i = 0; i < v->nkids; i++) {
            if (i)
                cm_sbuf_puts(s, ",");
            if (v->type == CTL_JSON_OBJECT) {
                put_str(s, v->kids[i]->key, strlen(v->kids[i]->key));
                cm_sbuf_puts(s, ":");
            }
            write_json(s, v->kids[i]);
        }
        cm_sbuf_puts(s, v->type == CTL_JSON_ARRAY ? "]" : "}");
    }
}

static void check_tree(const struct ctl_json *v, int depth, int in_object)
{
    HW_FUZZ_ASSERT(depth <= CTL_JSON_MAX_DEPTH);
    HW_FUZZ_ASSERT(in_object == (v->key != NULL));
    if (v->type == CTL_JSON_STRING)
        HW_FUZZ_ASSERT(v->str != NULL && v->str[v->len] == '\0');
    if (v->type == CTL_JSON_NUMBER) {
        HW_FUZZ_ASSERT(isfinite(v->number));
        if (v->is_int)
            HW_FUZZ_ASSERT(fabs((double)v->integer - v->number) <= fabs(v->number) * 1e-15);
    }
    HW_FUZZ_ASSERT(v->nkids == 0 || v->type == CTL_JSON_ARRAY || v->type == CTL_JSON_OBJECT);
    HW_FUZZ_ASSERT(ctl_json_count(v) == v->nkids || v->type != CTL_JSON_ARRAY);
    for (size_t i = 0; i < v->nkids; i++)
        check_tree(v->kids[i], depth + 1, v->type == CTL_JSON_OBJECT);
}

static int same(const struct ctl_json *a, const struct ctl_json *b)
{
    if (a->type != b->type || a->nkids != b->nkids)
        return 0;
    if ((a->key == NULL) != (b->key == NULL) || (a->key && strcmp(a->key, b->key) != 0))
        return 0;
    if (a->type == CTL_JSON_BOOL && a->boolean != b->boolean)
        return 0;
    if (a->type == CTL_JSON_NUMBER &&
        (a->is_int != b->is_int || (a->is_int ? a->integer != b->integer : a->number != b->number)))
        return 0;
    if (a->type == CTL_JSON_STRING && (a->len != b->len || memcmp(a->str, b->str, a->len) != 0))
        return 0;
    for (size_t i = 0; i < a->nkids; i++) {
        if (!same(a->kids[i], b->kids[i]))
            return 0;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ctl_json *v = NULL, *w = NULL;
    char err[128] = "";
    int rv = ctl_json_parse((const char *)data, size, &v, err, sizeof(err));
    HW_FUZZ_ASSERT(rv == 0 || rv == CM_EPROTO);
    if (rv != 0) {
        HW_FUZZ_ASSERT(v == NULL && strncmp(err, "offset ", 7) == 0);
        return 0;
    }
    check_tree(v, 0, 0);
    struct cm_sbuf s;
    cm_sbuf_init(&s);
    write_json(&s, v);
    HW_FUZZ_ASSERT(!s.oom);
    rv = ctl_json_parse(s.p, s.len, &w, err, sizeof(err));
    HW_FUZZ_ASSERT(rv == 0);
    HW_FUZZ_ASSERT(same(v, w));
    ctl_json_free(w);
    ctl_json_free(v);
    cm_sbuf_free(&s);
    return 0;
}
