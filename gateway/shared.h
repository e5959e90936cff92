/* What every event loop of one gateway shares (refcounted; any thread): the TLS context, the
 * access keys snapshot (swapped on reload), the open connection count, the per-loop metrics
 * slots and the CORS rules. The config itself stays a separate immutable struct. */
#ifndef GW_SHARED_H
#define GW_SHARED_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "authkeys.h"
#include "buf.h"
#include "cors.h"
#include "gwconfig.h"
#include "metrics.h"
#include "tls.h"

struct gw_shared;

/* An immutable keys snapshot, refcounted across threads (NULL keys = no keys file). */
struct gw_keyset {
    atomic_ulong refs;
    struct gw_keys *keys; /* owned */
};

/* Loads the TLS certificate and the keys file named in cfg (borrowed; must outlive it). */
int gw_shared_new(const struct gw_config *cfg, struct gw_shared **out, char *errmsg, size_t errlen);
struct gw_shared *gw_shared_ref(struct gw_shared *sh);
void gw_shared_unref(struct gw_shared *sh);

struct gw_tls_ctx *gw_shared_tls(struct gw_shared *sh); /* NULL without --tls-listen */
const struct gw_cors *gw_shared_cors(const struct gw_shared *sh);
atomic_uint_fast64_t *gw_shared_open_conns(struct gw_shared *sh);
/* A metrics struct of its own for one loop (never NULL: past the slots, loops share the last). */
struct gw_metrics *gw_shared_metrics(struct gw_shared *sh);
void gw_shared_metrics_render(struct gw_shared *sh, struct cm_sbuf *out);

/* Keys: the generation changes on every successful reload; a loop keeps a ref to its snapshot
 * and takes the new one (gw_shared_keys_get, a short lock) only when the generation moved. */
uint64_t gw_shared_keys_gen(struct gw_shared *sh);
struct gw_keyset *gw_shared_keys_get(struct gw_shared *sh);
void gw_keyset_unref(struct gw_keyset *ks);
/* Re-read the keys file (blocking: call off the loop). On error the old keys stay. */
int gw_shared_keys_reload(struct gw_shared *sh, char *errmsg, size_t errlen);

#endif
