/* Stored ObjectMeta records ('m' current versions, 's' staged uploads): codec and lookup. */
#ifndef ND_STORE_META_H
#define ND_STORE_META_H

#include <stddef.h>

#include "headwater.pb-c.h"
#include "store/store.h"

/* Decode a stored ObjectMeta (NULL when garbage); free with hw__object_meta__free_unpacked. */
Hw__ObjectMeta *nd_meta_unpack(const char *v, size_t n);
/* Pack meta into a new cm_malloc'd buffer. */
int nd_meta_pack(const Hw__ObjectMeta *m, char **out, size_t *len);
/* Put meta packed under k into b (CM_ENOMEM). */
int nd_meta_put(struct nd_batch *b, const struct nd_skey *k, const Hw__ObjectMeta *m);
/* The meta stored under k: 0 with *out, CM_ENOTFOUND, CM_EPROTO (an undecodable record),
 * CM_ESTORE, CM_ENOMEM. */
int nd_meta_get(struct nd_store *s, const struct nd_skey *k, Hw__ObjectMeta **out);

#endif
