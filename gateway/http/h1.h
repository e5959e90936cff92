/* The HTTP/1.1 protocol engine on a byte stream (stream.h): framing with http.h, deadlines
 * (header / idle / body timeouts, 408), the request lifecycle and pipelining, the handler-facing
 * gw_conn_* answer API of server.h, the access log, CORS headers and request metrics. It
 * attaches itself to a stream with its own ops table; another engine (HTTP/2) would do the same
 * on the same stream. */
#ifndef GW_H1_H
#define GW_H1_H

#include <stdint.h>

#include "http/server.h"
#include "http/stream.h"

/* A listener's HTTP settings, shared by its connections (borrowed; outlives them). */
struct gw_h1_env {
    char name[16];
    gw_route_fn route;
    void *arg;
    const struct gw_cors *cors;     /* NULL = no CORS headers */
    struct gw_metrics *metrics;     /* NULL = not counted */
    const struct gw_budget *budget; /* --max-buffered-bytes; NULL = none (marks stay fixed) */
    int access_log;
    int nosniff; /* X-Content-Type-Options: nosniff on every answer */
    uint64_t max_head, max_url, max_pipeline;
    uint64_t header_ms, idle_ms, body_ms;
};

/* Serve HTTP/1.1 on an accepted stream; busy: answer 503 (too many connections) and close.
 * On failure the stream is closed. */
int gw_h1_start(struct gw_stream *st, const struct gw_h1_env *env, int busy);

#endif
