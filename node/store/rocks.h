/* The RocksDB implementation of the store seam (store/store.h). On-disk format: store/skey.h;
 * object bytes go to blob files. */
#ifndef ND_STORE_ROCKS_H
#define ND_STORE_ROCKS_H

#include <stddef.h>

#include "store/store.h"

/* Open (creating) the database in dir; on error s stays closed and errmsg says why. */
int nd_store_rocks_open(struct nd_store *s, const char *dir, char *errmsg, size_t errlen);

#endif
