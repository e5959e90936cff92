/* What the node's admin listener (admin/admin.h) reports: readiness from the shard's raft
 * group, metrics from the node's counters. The listener's lifetime follows the node's. */
#include <stdio.h>
#include <sys/statvfs.h>

#include "admin/admin.h"
#include "node.h"
#include "store/vol.h"
#include "timeutil.h"

/* A voter is ready when it has applied within this many entries of the commit it knows. */
#define ND_READY_LAG 64

/* Read from raft directly (not via node.c): this file is a leaf that node.c calls. */
static unsigned long long leader_of(struct nd_node *n)
{
    raft_id id = 0;
    const char *addr = NULL;
    if (n->shard.started && !n->shard.closed)
        raft_leader(n->shard.raft, &id, &addr);
    return id;
}

static int self_is_voter(struct nd_node *n)
{
    for (unsigned i = 0; i < n->shard.raft->configuration.n; i++)
        if (n->shard.raft->configuration.servers[i].id == n->host.cfg.id)
            return n->shard.raft->configuration.servers[i].role == RAFT_VOTER;
    return 0;
}

static int health_ready(void *arg, struct cm_sbuf *why)
{
    struct nd_node *n = arg;
    if (n->stopping) {
        cm_sbuf_puts(why, "stopping");
        return 0;
    }
    if (!n->shard.started) {
        cm_sbuf_puts(why, "raft not started: waiting for the initial voters");
        return 0;
    }
    if (leader_of(n) == 0) {
        cm_sbuf_puts(why, "no known leader");
        return 0;
    }
    if (!self_is_voter(n)) {
        cm_sbuf_puts(why, "not a voter of the shard group");
        return 0;
    }
    unsigned long long applied = raft_last_applied(n->shard.raft),
                       commit = n->shard.raft->commit_index;
    if (applied + ND_READY_LAG < commit) {
        cm_sbuf_printf(why, "applied %llu, behind commit %llu", applied, commit);
        return 0;
    }
    return 1;
}

static void gauge(struct cm_sbuf *out, const char *name, const char *help, const char *type,
                  unsigned long long v)
{
    cm_sbuf_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name, v);
}

/* The volume store's figures (store/vol.h). */
static void vol_metrics(struct nd_node *n, struct cm_sbuf *out)
{
    if (n->store.ops == NULL || !nd_store_is_vol(&n->store))
        return;
    struct nd_vol_stats s;
    nd_store_vol_stats(&n->store, &s);
    gauge(out, "headwater_node_volumes", "volume files holding object bytes", "gauge", s.volumes);
    gauge(out, "headwater_node_volume_bytes", "bytes in volume files", "gauge", s.bytes);
    gauge(out, "headwater_node_volume_live_bytes", "object bytes named by the index", "gauge",
          s.live_bytes);
    gauge(out, "headwater_node_volume_garbage_ratio_permille",
          "share of volume bytes no object names, per mille", "gauge",
          s.bytes ? (s.bytes - (s.live_bytes < s.bytes ? s.live_bytes : s.bytes)) * 1000 / s.bytes
                  : 0);
    gauge(out, "headwater_node_volume_appends_total", "chunk records appended", "counter",
          s.appends);
    gauge(out, "headwater_node_volume_fsyncs_total", "volume fdatasyncs (group commits)", "counter",
          s.syncs);
    gauge(out, "headwater_node_volume_nospc_total", "appends refused: no space left", "counter",
          s.nospc);
    gauge(out, "headwater_node_compaction_copied_bytes_total",
          "live bytes compaction copied to reclaim volumes", "counter", s.compacted_bytes);
    gauge(out, "headwater_node_compaction_reclaimed_bytes_total",
          "volume bytes compaction gave back", "counter", s.reclaimed_bytes);
    gauge(out, "headwater_node_volume_spares", "reclaimed volume files kept for reuse", "gauge",
          s.spares);
    gauge(out, "headwater_node_volume_reused_total", "new volumes that reused a spare's file",
          "counter", s.reused_volumes);
}

/* Space of the data dir's file system (statvfs: one cheap syscall per scrape) and what a full
 * disk refused: STAGE/FINISH answered NO_SPACE, applies waiting for the store. */
static void disk_metrics(struct nd_node *n, struct cm_sbuf *out)
{
    struct statvfs st;
    if (statvfs(n->cfg->data_dir, &st) == 0) {
        unsigned long long total = (unsigned long long)st.f_blocks * st.f_frsize,
                           avail = (unsigned long long)st.f_bavail * st.f_frsize,
                           free_ = (unsigned long long)st.f_bfree * st.f_frsize;
        gauge(out, "headwater_node_disk_total_bytes", "size of the data dir's file system", "gauge",
              total);
        gauge(out, "headwater_node_disk_free_bytes",
              "bytes the node can still write in its data dir", "gauge", avail);
        gauge(out, "headwater_node_disk_used_bytes", "bytes used on the data dir's file system",
              "gauge", total - free_);
    }
    gauge(out, "headwater_node_nospace_refusals_total",
          "STAGE/FINISH answered NO_SPACE (the store was full)", "counter",
          n->host.nospace_refusals);
    gauge(out, "headwater_node_apply_store_refusals_total",
          "raft applies the store refused (they wait and are retried)", "counter",
          n->shard.fsm.store_refusals);
    gauge(out, "headwater_node_apply_waiting", "committed entries waiting for the store", "gauge",
          n->shard.fsm.pending_n);
}

static void health_metrics(void *arg, struct cm_sbuf *out)
{
    struct nd_node *n = arg;
    static const char *roles[] = {"unavailable", "follower", "candidate", "leader"};
    int up = n->shard.started && !n->shard.closed;
    int state = up ? raft_state(n->shard.raft) : RAFT_UNAVAILABLE;
    struct cm_sbuf why;
    cm_sbuf_init(&why);
    gauge(out, "headwater_node_ready", "1 when /readyz answers 200", "gauge",
          (unsigned long long)health_ready(n, &why));
    cm_sbuf_free(&why);
    gauge(out, "headwater_node_raft_applied_index", "last raft index applied", "gauge",
          up ? raft_last_applied(n->shard.raft) : n->shard.fsm.applied);
    gauge(out, "headwater_node_raft_commit_index", "last raft index known committed", "gauge",
          up ? n->shard.raft->commit_index : 0);
    gauge(out, "headwater_node_raft_term", "current raft term", "gauge",
          up ? n->shard.raft->current_term : 0);
    gauge(out, "headwater_node_raft_leader_id", "leader id as this node sees it (0 unknown)",
          "gauge", leader_of(n));
    cm_sbuf_puts(out, "# HELP headwater_node_raft_role 1 for this node's raft role\n"
                      "# TYPE headwater_node_raft_role gauge\n");
    for (int i = 0; i < 4; i++)
        cm_sbuf_printf(out, "headwater_node_raft_role{role=\"%s\"} %d\n", roles[i], state == i);
    gauge(out, "headwater_node_reads_total", "GET requests received", "counter", n->host.reads);
    gauge(out, "headwater_node_repair_backlog", "committed versions whose bytes are not local",
          "gauge", n->shard.fsm.repair_backlog);
    gauge(out, "headwater_node_uploads_staged", "uploads staged and not yet committed", "gauge",
          n->host.uploads.n);
    disk_metrics(n, out);
    int64_t up_ms = cm_wall_ms() - n->host.started_ms;
    gauge(out, "headwater_node_uptime_seconds", "seconds since the node started", "gauge",
          up_ms > 0 ? (unsigned long long)(up_ms / 1000) : 0);
    vol_metrics(n, out);
}

static const struct nd_admin_ops health_ops = {.ready = health_ready, .metrics = health_metrics};

int nd_health_start(struct nd_node *n, char *errmsg, size_t errlen)
{
    if (n->cfg->admin_listen == NULL || n->cfg->admin_listen[0] == '\0')
        return 0;
    int rv = nd_admin_start(&n->admin, n->loop, n->cfg->admin_listen, NULL, &health_ops, n, errmsg,
                            errlen);
    n->admin_open = rv == 0;
    return rv;
}

void nd_health_close(struct nd_node *n, void (*on_closed)(void *arg))
{
    if (n->admin != NULL) {
        nd_admin_close(n->admin, on_closed, n);
        n->admin = NULL;
    }
}
