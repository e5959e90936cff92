/* Pooled node RPC connections (common/rpc.h). Every connection starts with HELLO {proto_version,
 * node_id = 0} and is handed out only after HELLO_OK. A connection has one owner at a time and
 * carries one request at a time (the owner's), except pipelined STAGE frames of one upload.
 *
 * Acquire: gw_up_acquire(addr) -> the callback fires exactly once, later (never from inside
 * the call): with a ready connection the caller now owns, or with an error (connect failure,
 * HELLO refused, timeout). gw_up_cancel stops a pending acquire (the callback then never fires).
 * Owning: gw_up_own installs the owner's frame/close/drain callbacks; gw_up_release gives the
 * connection back (idle for reuse, or closed when not reusable). If the connection dies while
 * owned, on_close runs once and the connection is gone. */
#ifndef GW_UPSTREAM_H
#define GW_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"
#include "headwater.pb-c.h"

#define GW_UP_CONNECT_MS 1000u
#define GW_UP_HELLO_MS 1000u

struct gw_upstream;
struct gw_up_conn;
struct gw_up_wait;

typedef void (*gw_up_acquire_cb)(struct gw_up_wait *w, struct gw_up_conn *uc, int status);

/* Caller storage for one acquire. Fields are private. */
struct gw_up_wait {
    struct gw_upstream *up;
    struct gw_up_wait *prev, *next; /* in the pool's ready list */
    struct gw_up_conn *uc;          /* the connection being prepared / handed over */
    gw_up_acquire_cb cb;
    void *arg;
    int status;
    int pending; /* between acquire and the callback */
    int queued;  /* in the ready list */
};

struct gw_up_user {
    void (*on_frame)(void *arg, struct gw_up_conn *uc, const Hw__Envelope *env,
                     const struct cm_slice *payload);
    void (*on_close)(void *arg, struct gw_up_conn *uc, int status);
    void (*on_drain)(void *arg, struct gw_up_conn *uc);
};

struct cm_auth;
/* auth (borrowed, outlives the pool): the cluster secret every connection proves first. */
int gw_upstream_new(uv_loop_t *loop, struct cm_auth *auth, struct gw_upstream **out);
/* Close every connection; the pool frees itself when they are all gone. Owners must have
 * released their connections and cancelled their waits before. */
void gw_upstream_close(struct gw_upstream *up);

int gw_up_acquire(struct gw_upstream *up, const char *addr, struct gw_up_wait *w,
                  gw_up_acquire_cb cb, void *arg);
void gw_up_cancel(struct gw_up_wait *w);
static inline void *gw_up_wait_arg(const struct gw_up_wait *w)
{
    return w->arg;
}

void gw_up_own(struct gw_up_conn *uc, const struct gw_up_user *user, void *arg);
void gw_up_release(struct gw_up_conn *uc, int reusable);
/* Send one frame; env->req_id is set to a fresh id, returned through *req_id when non-NULL. */
int gw_up_send(struct gw_up_conn *uc, Hw__Envelope *env, const struct cm_slice *payload, size_t n,
               uint64_t *req_id);
void gw_up_pause(struct gw_up_conn *uc);
void gw_up_resume(struct gw_up_conn *uc);
size_t gw_up_write_queue(struct gw_up_conn *uc);
uint32_t gw_up_node_id(const struct gw_up_conn *uc); /* from HELLO_OK */
int gw_up_finish_bytes(const struct gw_up_conn *uc); /* HELLO_OK: FINISH may carry bytes */
const char *gw_up_addr(const struct gw_up_conn *uc);
uint64_t gw_up_conn_id(const struct gw_up_conn *uc);

#endif
