#include "core/metrics.h"

#include <http_parser.h>

enum gw_metric_method gw_metric_method(unsigned m)
{
    switch (m) {
    case HTTP_GET:
        return GW_M_GET;
    case HTTP_HEAD:
        return GW_M_HEAD;
    case HTTP_PUT:
        return GW_M_PUT;
    case HTTP_POST:
        return GW_M_POST;
    case HTTP_DELETE:
        return GW_M_DELETE;
    case HTTP_OPTIONS:
        return GW_M_OPTIONS;
    default:
        return GW_M_OTHER;
    }
}

uint64_t gw_metrics_sum(const _Atomic uint64_t *first, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        const _Atomic uint64_t *p =
            (const _Atomic uint64_t *)((const char *)first + i * sizeof(struct gw_metrics));
        v += atomic_load_explicit(p, memory_order_relaxed);
    }
    return v;
}

#define SUM(field) GW_METRIC_SUM(m, n, field)

static void counter(struct cm_sbuf *out, const char *name, const char *help, uint64_t v)
{
    cm_sbuf_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
                   (unsigned long long)v);
}

void gw_metrics_render_gauge(struct cm_sbuf *out, const char *name, const char *help, uint64_t v)
{
    cm_sbuf_printf(out, "# HELP %s %s\n# TYPE %s gauge\n%s %llu\n", name, help, name, name,
                   (unsigned long long)v);
}

void gw_metrics_render(const struct gw_metrics *m, size_t n, uint64_t open_conns,
                       struct cm_sbuf *out)
{
    static const char *methods[GW_M_METHODS] = {"GET",    "HEAD",    "PUT",  "POST",
                                                "DELETE", "OPTIONS", "OTHER"};
    static const char *classes[6] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
    cm_sbuf_puts(out, "# HELP headwater_gateway_requests_total HTTP requests answered on the "
                      "data port, by method and status class\n"
                      "# TYPE headwater_gateway_requests_total counter\n");
    for (int i = 0; i < GW_M_METHODS; i++) {
        for (int k = 0; k < 6; k++) {
            uint64_t v = SUM(requests[i][k]);
            if (v == 0 && !(k == 2 && (i == GW_M_GET || i == GW_M_PUT)))
                continue;
            cm_sbuf_printf(out,
                           "headwater_gateway_requests_total{method=\"%s\",status=\"%s\"} %llu\n",
                           methods[i], classes[k], (unsigned long long)v);
        }
    }
    counter(out, "headwater_gateway_received_bytes_total", "bytes read from clients",
            SUM(bytes_in));
    counter(out, "headwater_gateway_sent_bytes_total", "bytes written to clients", SUM(bytes_out));
    counter(out, "headwater_gateway_socket_writes_total",
            "writes handed to client sockets (an answer's head and body go out as one)",
            SUM(socket_writes));
    counter(out, "headwater_gateway_connections_total", "client connections accepted",
            SUM(conns_accepted));
    counter(out, "headwater_gateway_connections_rejected_total",
            "client connections refused over --max-connections", SUM(conns_rejected));
    counter(out, "headwater_gateway_tls_handshake_failures_total", "failed TLS handshakes",
            SUM(tls_handshake_failures));
    counter(out, "headwater_gateway_cache_hits_total", "reads served from the gateway cache",
            SUM(cache_hits));
    counter(out, "headwater_gateway_cache_misses_total", "cacheable reads not in the cache",
            SUM(cache_misses));
    counter(out, "headwater_gateway_cache_write_through_total",
            "objects this gateway wrote and put in its cache at commit", SUM(cache_write_through));
    counter(out, "headwater_gateway_cache_coalesced_total",
            "cache misses that waited for another request's node read", SUM(coalesced));
    counter(out, "headwater_gateway_hls_held_total",
            "playlist requests with _HLS_msn parked until a newer playlist", SUM(hls_held));
    counter(out, "headwater_gateway_hls_answered_total",
            "playlist requests with LL-HLS directives answered with a playlist", SUM(hls_answered));
    counter(out, "headwater_gateway_hls_timeouts_total",
            "parked playlist requests answered 503 after three target durations",
            SUM(hls_timeouts));
    counter(out, "headwater_gateway_hls_refused_total",
            "playlist requests with invalid or too-far directives answered 400", SUM(hls_refused));
    counter(out, "headwater_gateway_lease_waits_total",
            "reads that began without a read lease and waited for one", SUM(lease_waits));
    counter(out, "headwater_gateway_coherence_waits_total",
            "node answers held until every lease holder knew their version", SUM(coherence_waits));
    counter(out, "headwater_gateway_node_reads_total", "GET/HEAD requests sent to nodes",
            SUM(node_reads));
    counter(out, "headwater_gateway_budget_closes_total",
            "client connections closed for holding the most unsent bytes over "
            "--max-buffered-bytes",
            SUM(budget_closes));
    cm_sbuf_printf(out,
                   "# HELP headwater_gateway_open_connections client connections open now\n"
                   "# TYPE headwater_gateway_open_connections gauge\n"
                   "headwater_gateway_open_connections %llu\n",
                   (unsigned long long)open_conns);
}
