#include "status.h"

#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "err.h"

/* Copy an optional string member; non-printable bytes become '?' so a hostile gateway cannot
 * drive the terminal. */
static void copy_str(char *dst, size_t cap, const struct ctl_json *v)
{
    const char *s = ctl_json_str(v);
    size_t n = 0;
    if (s != NULL) {
        size_t len = v->len;
        for (; n + 1 < cap && n < len; n++) {
            unsigned char c = (unsigned char)s[n];
            dst[n] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
        }
    }
    dst[n] = '\0';
}

static int opt_int(const struct ctl_json *obj, const char *key, int64_t *out)
{
    return ctl_json_int(ctl_json_get(obj, key), out) == 0;
}

static int node_from_json(const struct ctl_json *o, struct ctl_node_status *n, size_t idx,
                          char *errmsg, size_t errlen)
{
    if (o == NULL || o->type != CTL_JSON_OBJECT || !opt_int(o, "id", &n->id)) {
        snprintf(errmsg, errlen, "/status: nodes[%zu] is not an object with an integer id", idx);
        return CM_EPROTO;
    }
    copy_str(n->address, sizeof(n->address), ctl_json_get(o, "address"));
    copy_str(n->zone, sizeof(n->zone), ctl_json_get(o, "zone"));
    copy_str(n->role, sizeof(n->role), ctl_json_get(o, "role"));
    n->has_term = opt_int(o, "term", &n->term);
    n->has_applied = opt_int(o, "applied_index", &n->applied);
    n->has_lag = opt_int(o, "lag", &n->lag);
    n->has_backlog = opt_int(o, "repair_backlog", &n->backlog);
    n->reachable = 0;
    ctl_json_bool(ctl_json_get(o, "reachable"), &n->reachable);
    return 0;
}

int ctl_status_from_json(const struct ctl_json *root, struct ctl_status *st, char *errmsg,
                         size_t errlen)
{
    memset(st, 0, sizeof(*st));
    st->epoch = st->shards = -1;
    if (root == NULL || root->type != CTL_JSON_OBJECT) {
        snprintf(errmsg, errlen, "/status: expected a JSON object");
        return CM_EPROTO;
    }
    if (ctl_json_bool(ctl_json_get(root, "quorum"), &st->quorum) != 0) {
        snprintf(errmsg, errlen, "/status: missing boolean \"quorum\"");
        return CM_EPROTO;
    }
    const struct ctl_json *nodes = ctl_json_get(root, "nodes");
    if (nodes == NULL || nodes->type != CTL_JSON_ARRAY) {
        snprintf(errmsg, errlen, "/status: missing array \"nodes\"");
        return CM_EPROTO;
    }
    st->has_leader = opt_int(root, "leader", &st->leader) && st->leader > 0;
    opt_int(root, "epoch", &st->epoch);
    opt_int(root, "shards", &st->shards);
    size_t count = ctl_json_count(nodes);
    if (count > 0) {
        st->nodes = cm_calloc(count, sizeof(*st->nodes));
        if (st->nodes == NULL) {
            snprintf(errmsg, errlen, "out of memory");
            return CM_ENOMEM;
        }
    }
    for (size_t i = 0; i < count; i++) {
        int rc = node_from_json(ctl_json_at(nodes, i), &st->nodes[i], i, errmsg, errlen);
        if (rc != 0) {
            ctl_status_free(st);
            return rc;
        }
        st->nnodes++;
    }
    return 0;
}

void ctl_status_free(struct ctl_status *st)
{
    cm_free(st->nodes);
    st->nodes = NULL;
    st->nnodes = 0;
}

const char *ctl_status_health(const struct ctl_node_status *n)
{
    if (!n->reachable)
        return "unreachable";
    if (!n->has_lag || n->lag > CTL_STATUS_LAG_OK || (n->has_backlog && n->backlog > 0))
        return "lagging";
    return "ok";
}

static void fmt_int(char *buf, size_t cap, int has, int64_t v)
{
    if (has)
        snprintf(buf, cap, "%lld", (long long)v);
    else
        snprintf(buf, cap, "-");
}

#define NCOLS 7

struct row {
    char cell[NCOLS][160];
};

static void node_row(const struct ctl_node_status *n, struct row *r)
{
    fmt_int(r->cell[0], sizeof(r->cell[0]), 1, n->id);
    snprintf(r->cell[1], sizeof(r->cell[1]), "%s", n->address[0] ? n->address : "-");
    snprintf(r->cell[2], sizeof(r->cell[2]), "%s",
             !n->reachable ? "-" : (n->role[0] ? n->role : "?"));
    fmt_int(r->cell[3], sizeof(r->cell[3]), n->has_applied, n->applied);
    fmt_int(r->cell[4], sizeof(r->cell[4]), n->has_lag, n->lag);
    fmt_int(r->cell[5], sizeof(r->cell[5]), n->has_backlog, n->backlog);
    snprintf(r->cell[6], sizeof(r->cell[6]), "%s", ctl_status_health(n));
}

static void render_row(struct cm_sbuf *out, const struct row *r, const size_t *width)
{
    for (int c = 0; c < NCOLS; c++) {
        if (c == NCOLS - 1)
            cm_sbuf_printf(out, "%s\n", r->cell[c]);
        else
            cm_sbuf_printf(out, "%-*s  ", (int)width[c], r->cell[c]);
    }
}

static void render_header(const struct ctl_status *st, struct cm_sbuf *out)
{
    size_t up = 0;
    for (size_t i = 0; i < st->nnodes; i++)
        up += st->nodes[i].reachable != 0;
    cm_sbuf_printf(out, "cluster: quorum %s, leader ", st->quorum ? "yes" : "NO");
    if (st->has_leader)
        cm_sbuf_printf(out, "%lld", (long long)st->leader);
    else
        cm_sbuf_puts(out, "none");
    cm_sbuf_printf(out, ", %zu/%zu nodes reachable", up, st->nnodes);
    if (st->epoch >= 0)
        cm_sbuf_printf(out, ", epoch %lld", (long long)st->epoch);
    if (st->shards >= 0)
        cm_sbuf_printf(out, ", shards %lld", (long long)st->shards);
    cm_sbuf_puts(out, "\n");
}

void ctl_status_render(const struct ctl_status *st, struct cm_sbuf *out)
{
    static const struct row head = {
        {"NODE", "ADDRESS", "ROLE", "APPLIED", "LAG", "REPAIR", "HEALTH"}};
    size_t width[NCOLS];
    struct row r;
    render_header(st, out);
    for (int c = 0; c < NCOLS; c++)
        width[c] = strlen(head.cell[c]);
    for (size_t i = 0; i < st->nnodes; i++) {
        node_row(&st->nodes[i], &r);
        for (int c = 0; c < NCOLS; c++) {
            size_t w = strlen(r.cell[c]);
            width[c] = w > width[c] ? w : width[c];
        }
    }
    render_row(out, &head, width);
    for (size_t i = 0; i < st->nnodes; i++) {
        node_row(&st->nodes[i], &r);
        render_row(out, &r, width);
    }
}

int ctl_status_exit_code(const struct ctl_status *st)
{
    return st->quorum ? CTL_EXIT_OK : CTL_EXIT_NO_QUORUM;
}
