#include "cond.h"

#include <string.h>

#include "httpdate.h"

int gw_etag_list_match(const char *list, size_t len, const char *etag, int weak)
{
    size_t i = 0, elen = etag ? strlen(etag) : 0;
    while (i < len && (list[i] == ' ' || list[i] == '\t'))
        i++;
    if (i < len && list[i] == '*') {
        size_t j = i + 1;
        while (j < len && (list[j] == ' ' || list[j] == '\t'))
            j++;
        if (j == len)
            return etag != NULL;
    }
    if (etag == NULL)
        return 0;
    while (i < len) {
        while (i < len && (list[i] == ' ' || list[i] == '\t' || list[i] == ','))
            i++;
        int is_weak = 0;
        if (len - i >= 2 && list[i] == 'W' && list[i + 1] == '/') {
            is_weak = 1;
            i += 2;
        }
        if (i >= len || list[i] != '"')
            return 0; /* malformed: no match */
        size_t start = i++;
        while (i < len && list[i] != '"')
            i++;
        if (i >= len)
            return 0;
        i++;
        size_t tlen = i - start;
        if ((weak || !is_weak) && tlen == elen && memcmp(list + start, etag, elen) == 0)
            return 1;
    }
    return 0;
}

enum gw_cond_result gw_cond_eval(const struct gw_cond *c, int get_or_head, const char *etag,
                                 int64_t last_modified_s)
{
    int64_t t;
    if (c->if_match != NULL) {
        if (!gw_etag_list_match(c->if_match, c->if_match_len, etag, 0))
            return GW_COND_FAILED;
    } else if (c->if_unmodified_since != NULL && etag != NULL && last_modified_s >= 0 &&
               gw_httpdate_parse(c->if_unmodified_since, c->if_unmodified_since_len, &t) == 0 &&
               last_modified_s > t) {
        return GW_COND_FAILED;
    }
    if (c->if_none_match != NULL) {
        if (gw_etag_list_match(c->if_none_match, c->if_none_match_len, etag, 1))
            return get_or_head ? GW_COND_NOT_MODIFIED : GW_COND_FAILED;
    } else if (get_or_head && c->if_modified_since != NULL && etag != NULL &&
               last_modified_s >= 0 &&
               gw_httpdate_parse(c->if_modified_since, c->if_modified_since_len, &t) == 0 &&
               last_modified_s <= t) {
        return GW_COND_NOT_MODIFIED;
    }
    return GW_COND_PROCEED;
}
