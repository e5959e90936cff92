/* The node's staged uploads that are receiving chunks, in memory (the store holds their
 * bytes and records). Loop thread only. */
#ifndef ND_HOST_UPLOADS_H
#define ND_HOST_UPLOADS_H

#include <stdint.h>

#include "store/skey.h"

struct nd_upload {
    struct nd_upload *next;
    uint8_t id[ND_UPLOAD_ID_LEN];
    char *key;   /* owned */
    void *owner; /* borrowed: the connection staging it (NULL once it closed) */
    uint64_t received;
    uint32_t crc;
    int64_t created_ms;
    int busy; /* a write is in flight */
};

struct nd_uploads {
    struct nd_upload *head;
    uint64_t n;
};

struct nd_upload *nd_uploads_find(struct nd_uploads *us, const uint8_t *id);
int nd_uploads_active(struct nd_uploads *us, const uint8_t *id);
/* A new upload at the head of the list (NULL: out of memory). */
struct nd_upload *nd_uploads_add(struct nd_uploads *us, void *owner, const uint8_t *id,
                                 const char *key, int64_t now_ms);
/* Unlink and free u. */
void nd_uploads_remove(struct nd_uploads *us, struct nd_upload *u);
/* The owner's connection closed: drop its idle uploads; a busy one is orphaned (owner NULL)
 * and freed by the write in flight. */
void nd_uploads_drop_owner(struct nd_uploads *us, void *owner);
void nd_uploads_free(struct nd_uploads *us);

#endif
