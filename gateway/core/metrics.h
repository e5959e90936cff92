/* Gateway counters for /metrics (Prometheus text on the admin port). One struct per event loop
 * (gw_ctx.metrics), so a bump is an uncontended relaxed atomic add; /metrics sums every loop's.
 *
 *   GW_METRIC_ADD(ctx->metrics, cache_hits, 1);
 *
 * Add a field here and a line in gw_metrics_render (metrics.c) to export a new counter. */
#ifndef GW_METRICS_H
#define GW_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

enum gw_metric_method {
    GW_M_GET,
    GW_M_HEAD,
    GW_M_PUT,
    GW_M_POST,
    GW_M_DELETE,
    GW_M_OPTIONS,
    GW_M_OTHER,
    GW_M_METHODS
};

struct gw_metrics {
    _Atomic uint64_t requests[GW_M_METHODS][6]; /* [method][status / 100], 0 = no answer */
    _Atomic uint64_t bytes_in;                  /* bytes read from clients (wire) */
    _Atomic uint64_t bytes_out;                 /* bytes written to clients (wire) */
    _Atomic uint64_t socket_writes;             /* uv_writes to clients (head + body = one) */
    _Atomic uint64_t conns_accepted;
    _Atomic uint64_t conns_rejected; /* over --max-connections */
    _Atomic uint64_t tls_handshake_failures;
    _Atomic uint64_t cache_hits;          /* read cache (get.c / cache code) */
    _Atomic uint64_t cache_misses;        /* read cache: needed a node read (own or coalesced) */
    _Atomic uint64_t cache_write_through; /* objects this gateway wrote, put in its cache */
    _Atomic uint64_t coalesced;           /* misses that waited for another request's node read */
    _Atomic uint64_t node_reads;          /* GET/HEAD requests sent to nodes */
    _Atomic uint64_t lease_waits;         /* reads that began without a read lease and waited */
    _Atomic uint64_t coherence_waits;     /* answers held until every lease holder knew them */
    _Atomic uint64_t hls_held;            /* playlist requests parked until a newer playlist */
    _Atomic uint64_t hls_answered; /* playlist requests with directives answered 200/206/304 */
    _Atomic uint64_t hls_timeouts; /* parked requests answered 503 after 3 target durations */
    _Atomic uint64_t hls_refused;  /* directive requests refused 400 */
    /* connections closed over --max-buffered-bytes */
    _Atomic uint64_t budget_closes;
    char pad[64]; /* keep loops' structs on separate cache lines */
};

#define GW_METRIC_ADD(m, field, n)                                                                 \
    atomic_fetch_add_explicit(&(m)->field, (uint64_t)(n), memory_order_relaxed)

/* One counter summed over n structs: GW_METRIC_SUM(m, n, cache_hits). */
#define GW_METRIC_SUM(m, n, field) gw_metrics_sum(&(m)[0].field, (n))
uint64_t gw_metrics_sum(const _Atomic uint64_t *first, size_t n);

enum gw_metric_method gw_metric_method(unsigned http_method);
/* Prometheus text for the sum of n structs (+ the open connection gauge). */
void gw_metrics_render(const struct gw_metrics *m, size_t n, uint64_t open_conns,
                       struct cm_sbuf *out);
/* One gauge (# HELP, # TYPE, value) for a process-wide value kept elsewhere. */
void gw_metrics_render_gauge(struct cm_sbuf *out, const char *name, const char *help, uint64_t v);

#endif
