#include "etag.h"

#include <stdio.h>
#include <string.h>

void cm_etag_format(uint64_t version, char out[CM_ETAG_MAX])
{
    snprintf(out, CM_ETAG_MAX, "\"%llx\"", (unsigned long long)version);
}

int cm_etag_list_match(const char *list, size_t len, const char *etag, int weak)
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

int cm_precond_unmodified_ok(int has_if_match, int64_t since_s, int64_t last_modified_ms)
{
    if (has_if_match || last_modified_ms < 0)
        return 1; /* If-Match takes precedence; nothing to compare with */
    return last_modified_ms / 1000 <= since_s;
}

int cm_precond_write_ok(const char *if_match, const char *if_none_match, const char *etag)
{
    if (if_match != NULL && !cm_etag_list_match(if_match, strlen(if_match), etag, 0))
        return 0;
    if (if_none_match != NULL && cm_etag_list_match(if_none_match, strlen(if_none_match), etag, 1))
        return 0;
    return 1;
}

int cm_precond_commit_ok(const Hw__Precondition *pc, int exists, uint64_t version,
                         int64_t created_ms)
{
    char etag[CM_ETAG_MAX];
    if (pc == NULL)
        return 1;
    if (exists)
        cm_etag_format(version, etag);
    if (pc->has_if_unmodified_since &&
        !cm_precond_unmodified_ok(pc->has_if_match, pc->if_unmodified_since_s,
                                  exists ? created_ms : -1))
        return 0;
    return cm_precond_write_ok(pc->has_if_match ? pc->if_match : NULL,
                               pc->has_if_none_match ? pc->if_none_match : NULL,
                               exists ? etag : NULL);
}
