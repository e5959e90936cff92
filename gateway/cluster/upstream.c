/* Node connection pool.
 *
 * Happy path: acquire -> idle connection of that address (handed over from a 0 ms timer) or
 *   cm_rpc_connect (authenticated with the cluster secret) -> HELLO -> HELLO_OK -> handed over ->
 * owner sends, gets frames -> release
 *   -> idle (at most GW_UP_IDLE_MAX per address).
 * Failures: connect error/timeout, HELLO error or no HELLO_OK within GW_UP_HELLO_MS -> the
 *   waiter gets status < 0. A connection dying while owned -> owner's on_close, then freed.
 *   An idle connection that receives anything or dies is closed and dropped.
 * Close: gw_upstream_close closes every connection and both timers; the pool is freed when the
 *   last rpc on_close / connect callback and both timer close callbacks have run. */
#include "cluster/upstream.h"

#include <assert.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "frame.h"
#include "core/gwconfig.h"
#include "log.h"
#include "rpc.h"
#include "timeutil.h"

#define GW_UP_IDLE_MAX 16

enum uc_state { UC_CONNECTING, UC_HELLO, UC_IDLE, UC_OWNED, UC_CLOSING };

struct gw_up_conn {
    struct gw_upstream *up;
    struct gw_up_conn *prev, *next;
    struct cm_rpc_conn *rc; /* NULL until connected */
    enum uc_state state;
    char addr[GW_ADDR_MAX];
    struct gw_up_wait *wait; /* waiter to hand this connection to */
    const struct gw_up_user *user;
    void *arg;
    uint32_t node_id;
    int finish_bytes; /* HELLO_OK: a FINISH may carry the last bytes */
    uint64_t hello_deadline;
    int close_status;
    int paused;
};

struct gw_upstream {
    uv_loop_t *loop;
    uv_timer_t kick; /* hands over ready waiters from the loop */
    uv_timer_t tick; /* HELLO deadlines */
    struct gw_up_conn *conns;
    struct gw_up_wait *ready_head, *ready_tail;
    size_t nconns;
    int timers_open;
    int closing;
    uint64_t next_req_id;
    struct cm_auth *auth; /* borrowed */
};

static void up_maybe_free(struct gw_upstream *up)
{
    if (up->closing && up->nconns == 0 && up->timers_open == 0)
        cm_free(up);
}

static void on_timer_closed(uv_handle_t *h)
{
    struct gw_upstream *up = h->data;
    up->timers_open--;
    up_maybe_free(up);
}

static void on_kick(uv_timer_t *t);

static void ready_push(struct gw_upstream *up, struct gw_up_wait *w)
{
    assert(!w->queued);
    w->queued = 1;
    w->next = NULL;
    w->prev = up->ready_tail;
    if (up->ready_tail)
        up->ready_tail->next = w;
    else
        up->ready_head = w;
    up->ready_tail = w;
    if (!up->closing)
        uv_timer_start(&up->kick, on_kick, 0, 0);
}

static void ready_remove(struct gw_upstream *up, struct gw_up_wait *w)
{
    if (!w->queued)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        up->ready_head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        up->ready_tail = w->prev;
    w->prev = w->next = NULL;
    w->queued = 0;
}

static void on_kick(uv_timer_t *t)
{
    struct gw_upstream *up = t->data;
    /* Deliver only what is queued now; callbacks may queue more for the next round. */
    struct gw_up_wait *last = up->ready_tail;
    while (up->ready_head != NULL) {
        struct gw_up_wait *w = up->ready_head;
        ready_remove(up, w);
        w->pending = 0;
        struct gw_up_conn *uc = w->uc;
        w->uc = NULL;
        if (uc != NULL)
            uc->wait = NULL;
        w->cb(w, uc, uc ? 0 : (w->status ? w->status : CM_EUNAVAIL));
        if (w == last)
            break;
    }
}

static void conn_unlink_free(struct gw_up_conn *uc)
{
    struct gw_upstream *up = uc->up;
    if (uc->prev)
        uc->prev->next = uc->next;
    else
        up->conns = uc->next;
    if (uc->next)
        uc->next->prev = uc->prev;
    cm_free(uc);
    up->nconns--;
    up_maybe_free(up);
}

/* The prepared connection failed: tell its waiter (if any) from the loop. */
static void conn_fail_waiter(struct gw_up_conn *uc, int status)
{
    struct gw_up_wait *w = uc->wait;
    if (w == NULL)
        return;
    uc->wait = NULL;
    w->uc = NULL;
    w->status = status ? status : CM_ECLOSED;
    if (!w->queued)
        ready_push(uc->up, w);
}

static void conn_close(struct gw_up_conn *uc, int status)
{
    if (uc->state == UC_CLOSING)
        return;
    if (uc->close_status == 0)
        uc->close_status = status;
    uc->state = UC_CLOSING;
    if (uc->rc != NULL)
        cm_rpc_close(uc->rc);
}

static void rpc_on_frame(struct cm_rpc_conn *rc, const Hw__Envelope *env,
                         const struct cm_slice *payload)
{
    struct gw_up_conn *uc = cm_rpc_data(rc);
    if (uc->state == UC_OWNED && uc->user != NULL) {
        uc->user->on_frame(uc->arg, uc, env, payload);
        return;
    }
    if (uc->state == UC_HELLO) {
        if (env->type != HW__MSG_TYPE__MSG_HELLO_OK || env->hello_ok == NULL ||
            env->hello_ok->proto_version != CM_PROTO_VERSION) {
            CM_WARN("msg=\"node refused hello\" node=%s code=%d detail=\"%s\"", uc->addr,
                    (int)env->code, env->message ? env->message : "");
            conn_close(uc, CM_EPROTO);
            return;
        }
        uc->node_id = env->hello_ok->node_id;
        uc->finish_bytes = env->hello_ok->finish_bytes;
        if (uc->wait != NULL) {
            uc->state = UC_OWNED; /* reserved for the waiter */
            ready_push(uc->up, uc->wait);
        } else {
            uc->state = UC_IDLE;
        }
        return;
    }
    CM_DEBUG("msg=\"unexpected frame on idle node connection\" node=%s type=%d", uc->addr,
             (int)env->type);
    conn_close(uc, CM_EPROTO);
}

static void rpc_on_drain(struct cm_rpc_conn *rc)
{
    struct gw_up_conn *uc = cm_rpc_data(rc);
    if (uc->state == UC_OWNED && uc->user != NULL && uc->user->on_drain != NULL)
        uc->user->on_drain(uc->arg, uc);
}

static void rpc_on_close(struct cm_rpc_conn *rc, int status)
{
    struct gw_up_conn *uc = cm_rpc_data(rc);
    int st = uc->close_status ? uc->close_status : (status ? status : CM_ECLOSED);
    uc->rc = NULL;
    conn_fail_waiter(uc, st);
    const struct gw_up_user *user = uc->user;
    uc->user = NULL;
    uc->state = UC_CLOSING;
    if (user != NULL)
        user->on_close(uc->arg, uc, st);
    conn_unlink_free(uc);
}

static const struct cm_rpc_handlers up_handlers = {rpc_on_frame, rpc_on_drain, rpc_on_close};

static void on_rpc_connect(struct cm_rpc_conn *rc, int status, void *arg)
{
    struct gw_up_conn *uc = arg;
    if (status != 0 || rc == NULL) {
        CM_DEBUG("msg=\"node connect failed\" node=%s err=\"%s\"", uc->addr, cm_strerror(status));
        conn_fail_waiter(uc, status ? status : CM_EUNAVAIL);
        conn_unlink_free(uc);
        return;
    }
    uc->rc = rc;
    cm_rpc_set_data(rc, uc);
    if (uc->up->closing || uc->state == UC_CLOSING) {
        uc->state = UC_CONNECTING;
        conn_close(uc, CM_ECLOSED);
        return;
    }
    Hw__Envelope env;
    Hw__Hello hello = HW__HELLO__INIT;
    cm_env_init(&env, HW__MSG_TYPE__MSG_HELLO, ++uc->up->next_req_id, 0);
    hello.proto_version = CM_PROTO_VERSION;
    hello.node_id = 0;
    hello.rpc_address = (char *)"";
    env.hello = &hello;
    uc->state = UC_HELLO;
    uc->hello_deadline = cm_mono_ms() + GW_UP_HELLO_MS;
    if (cm_rpc_send(rc, &env, NULL, 0) != 0)
        conn_close(uc, CM_EIO);
}

static void on_tick(uv_timer_t *t)
{
    struct gw_upstream *up = t->data;
    uint64_t now = cm_mono_ms();
    for (struct gw_up_conn *uc = up->conns; uc != NULL; uc = uc->next) {
        if (uc->state == UC_HELLO && now >= uc->hello_deadline) {
            CM_DEBUG("msg=\"node hello timed out\" node=%s", uc->addr);
            conn_close(uc, CM_ETIMEDOUT);
        }
    }
}

int gw_upstream_new(uv_loop_t *loop, struct cm_auth *auth, struct gw_upstream **out)
{
    struct gw_upstream *up = cm_calloc(1, sizeof(*up));
    if (up == NULL)
        return CM_ENOMEM;
    up->loop = loop;
    up->auth = auth;
    uv_timer_init(loop, &up->kick);
    uv_timer_init(loop, &up->tick);
    up->kick.data = up;
    up->tick.data = up;
    up->timers_open = 2;
    uv_timer_start(&up->tick, on_tick, 200, 200);
    *out = up;
    return 0;
}

void gw_upstream_close(struct gw_upstream *up)
{
    if (up->closing)
        return;
    up->closing = 1;
    while (up->ready_head != NULL) {
        struct gw_up_wait *w = up->ready_head;
        ready_remove(up, w);
        w->pending = 0;
    }
    for (struct gw_up_conn *uc = up->conns; uc != NULL; uc = uc->next) {
        uc->wait = NULL;
        uc->user = NULL;
        conn_close(uc, CM_ECLOSED);
    }
    uv_close((uv_handle_t *)&up->kick, on_timer_closed);
    uv_close((uv_handle_t *)&up->tick, on_timer_closed);
}

static struct gw_up_conn *find_idle(struct gw_upstream *up, const char *addr, size_t *count)
{
    struct gw_up_conn *found = NULL;
    *count = 0;
    for (struct gw_up_conn *uc = up->conns; uc != NULL; uc = uc->next) {
        if (uc->state == UC_IDLE && strcmp(uc->addr, addr) == 0) {
            (*count)++;
            if (found == NULL)
                found = uc;
        }
    }
    return found;
}

int gw_up_acquire(struct gw_upstream *up, const char *addr, struct gw_up_wait *w,
                  gw_up_acquire_cb cb, void *arg)
{
    memset(w, 0, sizeof(*w));
    w->up = up;
    w->cb = cb;
    w->arg = arg;
    if (up->closing)
        return CM_ECLOSED;
    if (strlen(addr) >= GW_ADDR_MAX)
        return CM_EINVAL;
    size_t nidle;
    struct gw_up_conn *uc = find_idle(up, addr, &nidle);
    if (uc != NULL) {
        uc->state = UC_OWNED;
        uc->wait = w;
        w->uc = uc;
        w->pending = 1;
        ready_push(up, w);
        return 0;
    }
    uc = cm_calloc(1, sizeof(*uc));
    if (uc == NULL)
        return CM_ENOMEM;
    uc->up = up;
    uc->state = UC_CONNECTING;
    snprintf(uc->addr, sizeof(uc->addr), "%s", addr);
    int rv = cm_rpc_connect(up->loop, addr, up->auth, GW_UP_CONNECT_MS, &up_handlers,
                            on_rpc_connect, uc);
    if (rv != 0) {
        cm_free(uc);
        return rv;
    }
    uc->next = up->conns;
    if (up->conns)
        up->conns->prev = uc;
    up->conns = uc;
    up->nconns++;
    uc->wait = w;
    w->uc = uc;
    w->pending = 1;
    return 0;
}

void gw_up_cancel(struct gw_up_wait *w)
{
    if (!w->pending)
        return;
    w->pending = 0;
    ready_remove(w->up, w);
    struct gw_up_conn *uc = w->uc;
    w->uc = NULL;
    if (uc == NULL)
        return;
    uc->wait = NULL;
    if (uc->state == UC_OWNED && uc->user == NULL)
        uc->state = UC_IDLE; /* was reserved for this waiter */
}

void gw_up_own(struct gw_up_conn *uc, const struct gw_up_user *user, void *arg)
{
    uc->user = user;
    uc->arg = arg;
}

void gw_up_release(struct gw_up_conn *uc, int reusable)
{
    struct gw_upstream *up = uc->up;
    uc->user = NULL;
    uc->arg = NULL;
    if (uc->state != UC_OWNED)
        return;
    size_t nidle = 0;
    find_idle(up, uc->addr, &nidle);
    if (reusable && !up->closing && nidle < GW_UP_IDLE_MAX) {
        uc->state = UC_IDLE;
        if (uc->paused) {
            uc->paused = 0;
            cm_rpc_resume(uc->rc);
        }
        return;
    }
    conn_close(uc, CM_ECLOSED);
}

int gw_up_send(struct gw_up_conn *uc, Hw__Envelope *env, const struct cm_slice *payload, size_t n,
               uint64_t *req_id)
{
    if (uc->rc == NULL || uc->state == UC_CLOSING)
        return CM_ECLOSED;
    env->req_id = ++uc->up->next_req_id;
    if (req_id != NULL)
        *req_id = env->req_id;
    return cm_rpc_send(uc->rc, env, payload, n);
}

void gw_up_pause(struct gw_up_conn *uc)
{
    if (uc->rc != NULL && !uc->paused) {
        uc->paused = 1;
        cm_rpc_pause(uc->rc);
    }
}

void gw_up_resume(struct gw_up_conn *uc)
{
    if (uc->rc != NULL && uc->paused) {
        uc->paused = 0;
        cm_rpc_resume(uc->rc);
    }
}

size_t gw_up_write_queue(struct gw_up_conn *uc)
{
    return uc->rc ? cm_rpc_write_queue(uc->rc) : 0;
}

uint32_t gw_up_node_id(const struct gw_up_conn *uc)
{
    return uc->node_id;
}

int gw_up_finish_bytes(const struct gw_up_conn *uc)
{
    return uc->finish_bytes;
}

const char *gw_up_addr(const struct gw_up_conn *uc)
{
    return uc->addr;
}

uint64_t gw_up_conn_id(const struct gw_up_conn *uc)
{
    return uc->rc ? cm_rpc_id(uc->rc) : 0;
}
