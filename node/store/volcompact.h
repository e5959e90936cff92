/* Volume compaction (see volcompact.c). */
#ifndef ND_STORE_VOLCOMPACT_H
#define ND_STORE_VOLCOMPACT_H

#include "store/volcore.h"

/* One pass (see nd_store_vol_compact); the number of volumes reclaimed, or an error. */
int nd_vol_compact_pass(struct vstore *vs, int force);
/* The background thread's body (arg: the vstore). */
void nd_vol_compact_thread(void *arg);

#endif
