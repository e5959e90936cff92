/* Conditional requests (RFC 9110 §13.2.2), pure. Evaluated in the RFC's order:
 * If-Match, else If-Unmodified-Since; then If-None-Match, else If-Modified-Since (GET/HEAD).
 * Strong comparison for If-Match, weak for If-None-Match (common/etag.h); dates at one-second
 * precision. Writes evaluate their If-Match / If-None-Match in the node's FSM instead
 * (cm_precond_write_ok at apply), never here. */
#ifndef GW_COND_H
#define GW_COND_H

#include <stddef.h>
#include <stdint.h>

struct gw_cond {
    const char *if_match;
    size_t if_match_len;
    const char *if_none_match;
    size_t if_none_match_len;
    const char *if_modified_since;
    size_t if_modified_since_len;
    const char *if_unmodified_since;
    size_t if_unmodified_since_len;
};

enum gw_cond_result { GW_COND_PROCEED = 0, GW_COND_NOT_MODIFIED = 304, GW_COND_FAILED = 412 };

/* etag: the current representation's entity-tag with quotes (e.g. "\"2a\""), NULL when there is
 * none (the object does not exist); last_modified_s: its Last-Modified, or -1. */
enum gw_cond_result gw_cond_eval(const struct gw_cond *c, int get_or_head, const char *etag,
                                 int64_t last_modified_s);

#endif
