/* A small, strict JSON (RFC 8259) parser into an owned tree. Pure: no I/O, no globals.
 * Never reads past `len`, bounds nesting depth, and turns any malformed input into an error
 * with the byte offset, never a crash. Strings are decoded to UTF-8 (\uXXXX incl. surrogate
 * pairs) and NUL-terminated; they may contain embedded NULs (see `len`). */
#ifndef CTL_JSON_H
#define CTL_JSON_H

#include <stddef.h>
#include <stdint.h>

#define CTL_JSON_MAX_DEPTH 64

enum ctl_json_type {
    CTL_JSON_NULL,
    CTL_JSON_BOOL,
    CTL_JSON_NUMBER,
    CTL_JSON_STRING,
    CTL_JSON_ARRAY,
    CTL_JSON_OBJECT,
};

struct ctl_json {
    enum ctl_json_type type;
    int boolean;            /* BOOL */
    double number;          /* NUMBER */
    int is_int;             /* NUMBER without fraction/exponent that fits int64_t */
    int64_t integer;        /* NUMBER when is_int */
    char *str;              /* STRING: owned, NUL-terminated */
    size_t len;             /* STRING: bytes in str */
    char *key;              /* owned member name when this value sits in an object, else NULL */
    struct ctl_json **kids; /* ARRAY elements / OBJECT members, owned, in input order */
    size_t nkids;
    size_t capkids;
};

/* Parse exactly one JSON value (surrounding whitespace allowed) from text[0..len).
 * Returns 0 and *out (owned, free with ctl_json_free), CM_EPROTO with errmsg set
 * ("offset N: ...") on malformed input, or CM_ENOMEM. */
int ctl_json_parse(const char *text, size_t len, struct ctl_json **out, char *errmsg,
                   size_t errlen);
void ctl_json_free(struct ctl_json *v);

/* Lookups (borrowed results, NULL when absent or `v` has the wrong type). Objects with
 * duplicate keys answer the first. */
const struct ctl_json *ctl_json_get(const struct ctl_json *obj, const char *key);
const struct ctl_json *ctl_json_at(const struct ctl_json *arr, size_t i);
size_t ctl_json_count(const struct ctl_json *v);

/* Typed getters: 0 when `v` has the asked type (and, for integers, is an exact integer in
 * range), else CM_EINVAL; the output is untouched on error. */
int ctl_json_int(const struct ctl_json *v, int64_t *out);
int ctl_json_bool(const struct ctl_json *v, int *out);
const char *ctl_json_str(const struct ctl_json *v); /* NULL unless STRING */

#endif
