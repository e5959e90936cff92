/* Staged uploads in memory (see uploads.h). */
#include "host/uploads.h"

#include <string.h>

#include "alloc.h"

struct nd_upload *nd_uploads_find(struct nd_uploads *us, const uint8_t *id)
{
    for (struct nd_upload *u = us->head; u != NULL; u = u->next)
        if (memcmp(u->id, id, ND_UPLOAD_ID_LEN) == 0)
            return u;
    return NULL;
}

int nd_uploads_active(struct nd_uploads *us, const uint8_t *id)
{
    return nd_uploads_find(us, id) != NULL;
}

static void upload_free(struct nd_upload *u)
{
    cm_free(u->key);
    cm_free(u);
}

struct nd_upload *nd_uploads_add(struct nd_uploads *us, void *owner, const uint8_t *id,
                                 const char *key, int64_t now_ms)
{
    struct nd_upload *u = cm_calloc(1, sizeof(*u));
    if (u == NULL)
        return NULL;
    u->key = cm_strdup(key);
    if (u->key == NULL) {
        cm_free(u);
        return NULL;
    }
    memcpy(u->id, id, ND_UPLOAD_ID_LEN);
    u->owner = owner;
    u->created_ms = now_ms;
    u->next = us->head;
    us->head = u;
    us->n++;
    return u;
}

void nd_uploads_remove(struct nd_uploads *us, struct nd_upload *u)
{
    for (struct nd_upload **p = &us->head; *p != NULL; p = &(*p)->next) {
        if (*p == u) {
            *p = u->next;
            us->n--;
            break;
        }
    }
    upload_free(u);
}

void nd_uploads_drop_owner(struct nd_uploads *us, void *owner)
{
    struct nd_upload **p = &us->head;
    while (*p != NULL) {
        struct nd_upload *u = *p;
        if (u->owner == owner && !u->busy) {
            *p = u->next;
            us->n--;
            upload_free(u);
        } else {
            if (u->owner == owner)
                u->owner = NULL; /* the write in flight frees it */
            p = &u->next;
        }
    }
}

void nd_uploads_free(struct nd_uploads *us)
{
    while (us->head != NULL) {
        struct nd_upload *u = us->head;
        us->head = u->next;
        upload_free(u);
    }
    us->n = 0;
}
