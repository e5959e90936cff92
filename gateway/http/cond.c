#include "http/cond.h"

#include "etag.h"
#include "http/httpdate.h"

enum gw_cond_result gw_cond_eval(const struct gw_cond *c, int get_or_head, const char *etag,
                                 int64_t last_modified_s)
{
    int64_t t;
    if (c->if_match != NULL) {
        if (!cm_etag_list_match(c->if_match, c->if_match_len, etag, 0))
            return GW_COND_FAILED;
    } else if (c->if_unmodified_since != NULL && etag != NULL && last_modified_s >= 0 &&
               gw_httpdate_parse(c->if_unmodified_since, c->if_unmodified_since_len, &t) == 0 &&
               last_modified_s > t) {
        return GW_COND_FAILED;
    }
    if (c->if_none_match != NULL) {
        if (cm_etag_list_match(c->if_none_match, c->if_none_match_len, etag, 1))
            return get_or_head ? GW_COND_NOT_MODIFIED : GW_COND_FAILED;
    } else if (get_or_head && c->if_modified_since != NULL && etag != NULL &&
               last_modified_s >= 0 &&
               gw_httpdate_parse(c->if_modified_since, c->if_modified_since_len, &t) == 0 &&
               last_modified_s <= t) {
        return GW_COND_NOT_MODIFIED;
    }
    return GW_COND_PROCEED;
}
