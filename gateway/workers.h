/* Extra worker threads (--threads N > 1): each runs its own libuv loop with its own gateway
 * context (data port via SO_REUSEPORT, node pool, cluster poller); the main thread's context also
 * serves the admin port. Hand-off between threads is only the stop request (uv_async_t). */
#ifndef GW_WORKERS_H
#define GW_WORKERS_H

#include <stddef.h>

#include "core/gwconfig.h"

struct gw_workers;

/* Start n workers and wait until each listens (or failed: then the started ones are stopped and
 * joined, and an error is returned). */
int gw_workers_start(const struct gw_config *cfg, size_t n, struct gw_workers **out, char *errmsg,
                     size_t errlen);
/* The same, every worker using the gateway-wide shared state sh (keys, connection count,
 * metrics, TLS context); gw_workers_start gives each worker its own. */
struct gw_shared;
int gw_workers_start_shared(const struct gw_config *cfg, struct gw_shared *sh, size_t n,
                            struct gw_workers **out, char *errmsg, size_t errlen);
/* Ask every worker to stop (any thread; idempotent). */
void gw_workers_stop(struct gw_workers *w);
/* Wait for every worker loop to end and free. Returns 0 when every loop closed cleanly. */
int gw_workers_join(struct gw_workers *w);

#endif
