#include "admin/admin.h"

#include <string.h>

#include "object/answer.h"
#include "cluster/cluster.h"
#include "object/shared.h"

/* Admin routes: /healthz, /readyz (always open), /metrics, /status (an admin key when a keys
 * file is set). */

/* The path of a target, without query string. */
static int path_is(const struct gw_http_req *req, const char *path)
{
    const char *u = req->url.p ? req->url.p : "";
    size_t n = strlen(path);
    return strncmp(u, path, n) == 0 && (u[n] == '\0' || u[n] == '?');
}

void gw_admin_route(void *arg, struct gw_conn *c, struct gw_http_req *req)
{
    struct gw_ctx *ctx = arg;
    static const char ok[] = "{\"ok\":true}\n";
    static const char notready[] = "{\"ok\":false}\n";
    if (req->method != HTTP_GET && req->method != HTTP_HEAD) {
        gw_conn_error(c, 405, "bad_request", "admin endpoints accept GET only", GW_COMMITTED_OMIT);
        return;
    }
    int open = path_is(req, "/healthz") || path_is(req, "/readyz");
    if (!open && gw_ctx_authorize(ctx, c, req, GW_ACCESS_ADMIN, "/", GW_COMMITTED_OMIT) != 0)
        return;
    if (path_is(req, "/healthz")) {
        gw_conn_respond(c, 200, "application/json", NULL, ok, sizeof(ok) - 1);
    } else if (path_is(req, "/readyz")) {
        if (gw_cluster_ready(ctx->cluster))
            gw_conn_respond(c, 200, "application/json", NULL, ok, sizeof(ok) - 1);
        else
            gw_conn_respond(c, 503, "application/json", "Retry-After: 1\r\n", notready,
                            sizeof(notready) - 1);
    } else if (path_is(req, "/metrics")) {
        struct cm_sbuf s;
        cm_sbuf_init(&s);
        gw_shared_metrics_render(ctx->shared, &s);
        gw_answer_doc(c, 200, "text/plain; version=0.0.4", NULL, &s);
        cm_sbuf_free(&s);
    } else if (path_is(req, "/status")) {
        struct cm_sbuf reads, s;
        cm_sbuf_init(&reads);
        cm_sbuf_init(&s);
        gw_shared_reads_json(ctx->shared, &reads);
        gw_cluster_status_json(ctx->cluster, reads.p, &s);
        s.oom = s.oom || reads.oom; /* a part missing: answer 500 */
        gw_answer_doc(c, 200, "application/json", NULL, &s);
        cm_sbuf_free(&reads);
        cm_sbuf_free(&s);
    } else {
        gw_conn_error(c, 404, "not_found", "unknown admin endpoint", GW_COMMITTED_OMIT);
    }
}
