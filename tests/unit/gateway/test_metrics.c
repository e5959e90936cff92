/* /metrics text: per-loop counters are summed; zero series are left out except the main ones. */
#include <criterion/criterion.h>
#include <http_parser.h>
#include <string.h>

#include "core/metrics.h"

Test(metrics, render_sums_loops)
{
    static struct gw_metrics m[2];
    GW_METRIC_ADD(&m[0], requests[GW_M_GET][2], 3);
    GW_METRIC_ADD(&m[1], requests[GW_M_GET][2], 4);
    GW_METRIC_ADD(&m[1], requests[gw_metric_method(HTTP_DELETE)][4], 1);
    GW_METRIC_ADD(&m[0], bytes_out, 100);
    GW_METRIC_ADD(&m[1], bytes_out, 23);
    GW_METRIC_ADD(&m[1], cache_hits, 9);
    struct cm_sbuf s;
    cm_sbuf_init(&s);
    gw_metrics_render(m, 2, 5, &s);
    cr_assert(strstr(s.p, "headwater_gateway_requests_total{method=\"GET\",status=\"2xx\"} 7\n"));
    cr_assert(strstr(s.p, "{method=\"DELETE\",status=\"4xx\"} 1\n"), "%s", s.p);
    cr_assert(strstr(s.p, "{method=\"PUT\",status=\"2xx\"} 0\n"), "%s", s.p);
    cr_assert_null(strstr(s.p, "method=\"HEAD\""), "zero series are left out");
    cr_assert(strstr(s.p, "headwater_gateway_sent_bytes_total 123\n"));
    cr_assert(strstr(s.p, "headwater_gateway_cache_hits_total 9\n"));
    cr_assert(strstr(s.p, "# TYPE headwater_gateway_open_connections gauge\n"
                          "headwater_gateway_open_connections 5\n"));
    cm_sbuf_free(&s);
}
