/* In-process fake storage nodes for gateway tests: speak the node RPC (HELLO, STATUS, STAGE,
 * FINISH, COMMIT, GET, HEAD, DELETE, LIST) over real loopback sockets via common/rpc.h. Node 1 is
 * the shard leader; the others answer COMMIT/DELETE with NOT_LEADER naming it. Objects live in one
 * shared table (as if Raft had replicated them). Faults: a node can be down (not listening) or
 * silent (accepts STAGE/FINISH without answering), or full (answers them NO_SPACE). */
#ifndef TEST_FAKE_CLUSTER_H
#define TEST_FAKE_CLUSTER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"
#include "rpc.h"

#define FC_NODES 3
#define FC_UPLOADS 256 /* staged, not yet committed (a sweep abandons many) */
#define FC_OBJECTS 64

struct fc_upload {
    uint8_t id[16];
    int used;
    int finished;
    struct cm_sbuf data;
};

/* Every fake object was created at this unix ms (Sun, 06 Nov 1994 08:49:37 GMT). */
#define FC_CREATED_MS 784111777000LL

struct fc_object {
    int used;
    char key[1100];
    struct cm_sbuf data;
    char ctype[128];
    char cache_control[128];
    uint64_t version;
    uint8_t upload_id[16];
    uint32_t holders;
};

struct fc_node {
    struct fc_cluster *fc;
    uint32_t id;
    char addr[64];
    struct cm_rpc_server *srv;
    int silent;
    int get_unavailable;                 /* answer GET/HEAD with UNAVAILABLE */
    int nospace;                         /* answer STAGE/FINISH with NO_SPACE (disk full) */
    int stages, finishes, commits, gets; /* gets: GET and HEAD requests */
    /* the last GET/HEAD: HEAD or GET {offset, length} (length 0 = to the end) */
    int last_head;
    uint64_t last_off, last_len;
    struct fc_upload up[FC_UPLOADS];
};

struct fc_cluster {
    uv_loop_t *loop;
    struct fc_node n[FC_NODES];
    struct fc_object obj[FC_OBJECTS];
    uint64_t index;
    int no_leader;     /* answer COMMIT with NO_LEADER */
    int commit_silent; /* the leader takes COMMIT and never answers */
};

/* Pick free ports and start every node listening. */
void fc_start(struct fc_cluster *fc, uv_loop_t *loop);
void fc_node_down(struct fc_cluster *fc, int i);
void fc_node_up(struct fc_cluster *fc, int i);
void fc_stop(struct fc_cluster *fc);
struct fc_object *fc_find(struct fc_cluster *fc, const char *key);

#endif
