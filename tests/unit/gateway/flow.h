/* The in-process gateway harness of the flow tests (test_gateway.c, test_gateway_reads.c): the
 * whole gateway on its own loop against fake nodes (fake_cluster.h) over loopback, and a small
 * HTTP client that sends raw bytes and parses the answers. */
#ifndef GW_TEST_FLOW_H
#define GW_TEST_FLOW_H

#include <criterion/criterion.h>
#include <http_parser.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "cluster/cluster.h"
#include "config.h"
#include "fake_cluster.h"
#include "gateway.h"
#include "http/http.h"
#include "options.h"
#include "log.h"
#include "timeutil.h"
#include "workers.h"

#define MAX_RESP 8

struct resp {
    int status;
    struct cm_sbuf headers; /* "name: value\n" lines, names lower-cased */
    struct cm_sbuf body;
    int complete;
};

struct hc {
    uv_tcp_t tcp;
    uv_connect_t creq;
    http_parser p;
    http_parser_settings ps;
    struct resp r[MAX_RESP];
    int n;
    int want;
    unsigned head_mask; /* bit i: request i is HEAD */
    int closed;
    int eof;
    int in_value;
    struct cm_buf *out;
    size_t frag;
    int writes;
};

struct t {
    uv_loop_t loop;
    struct fc_cluster fc;
    struct gw_config cfg;
    struct gw_ctx ctx;
    char listen[64], admin[64];
};

void run_until(struct t *t, const int *flag, unsigned ms);
void hc_start(struct t *t, struct hc *h, const char *addr, const void *req, size_t len, int want,
              unsigned head_mask, size_t frag);
void hc_wait(struct t *t, struct hc *h);
void exchange(struct t *t, struct hc *h, const char *addr, const void *req, size_t len, int want,
              unsigned head_mask, size_t frag);
void hc_free(struct hc *h);
int has_header(const struct resp *r, const char *line);
void setup_cache(struct t *t, uint64_t cache_size);
void setup(struct t *t);
void teardown(struct t *t);
void put_body(struct cm_sbuf *s, const char *key, size_t size, char seed);

#endif
