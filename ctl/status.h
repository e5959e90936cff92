/* The gateway's /status document (docs/internals.md) as a plain struct, its table rendering
 * and the CLI's exit-code decision. Pure: no I/O. */
#ifndef CTL_STATUS_H
#define CTL_STATUS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "json.h"

/* A reachable node more than this many entries behind the leader is "lagging". */
#define CTL_STATUS_LAG_OK 10

/* Exit codes of `headwaterctl status`. */
enum {
    CTL_EXIT_OK = 0,        /* cluster has quorum */
    CTL_EXIT_ERROR = 1,     /* gateway unreachable or answered garbage */
    CTL_EXIT_NO_QUORUM = 2, /* gateway answered: the cluster has no quorum */
    CTL_EXIT_USAGE = 64,    /* bad command line */
};

struct ctl_node_status {
    int64_t id;
    char address[128];
    char zone[64];
    char role[32]; /* "leader", "follower", "candidate", "" when unknown */
    int has_term, has_applied, has_lag, has_backlog;
    int64_t term;
    int64_t applied;
    int64_t lag;
    int64_t backlog;
    int reachable;
};

struct ctl_status {
    int quorum;
    int has_leader;
    int64_t leader;
    int64_t epoch;  /* -1 when absent */
    int64_t shards; /* -1 when absent */
    size_t nnodes;
    struct ctl_node_status *nodes; /* owned */
};

/* Fill st from a parsed /status document. Required: "quorum" (bool) and "nodes" (array of
 * objects with an integer "id"); everything else is optional and shown as "-" when absent or
 * null. Returns 0, CM_EPROTO (errmsg says which field) or CM_ENOMEM. */
int ctl_status_from_json(const struct ctl_json *root, struct ctl_status *st, char *errmsg,
                         size_t errlen);
void ctl_status_free(struct ctl_status *st);

/* "ok", "unreachable" or "lagging" (behind the leader by > CTL_STATUS_LAG_OK entries, lag
 * unknown, or bytes still to repair). */
const char *ctl_status_health(const struct ctl_node_status *n);

/* Append the header line and the table (one line per node, columns aligned) to out. */
void ctl_status_render(const struct ctl_status *st, struct cm_sbuf *out);

/* CTL_EXIT_OK with quorum, CTL_EXIT_NO_QUORUM without. */
int ctl_status_exit_code(const struct ctl_status *st);

#endif
