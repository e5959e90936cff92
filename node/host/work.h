/* Work seam: blocking store calls run off the loop through a queue behind an ops table. The
 * libuv thread pool in production; a manual queue in tests that runs only when told, in
 * submission order, on the test's thread (deterministic).
 *
 * nd_work either fails now (done never runs) or runs fn (on some thread) and then done (on
 * the loop thread) exactly once, later - never from inside nd_work. */
#ifndef ND_HOST_WORK_H
#define ND_HOST_WORK_H

#include <stddef.h>
#include <uv.h>

typedef void (*nd_work_fn)(void *arg);
typedef void (*nd_work_done_cb)(void *arg, int status);

struct nd_workq;

struct nd_workq_ops {
    int (*submit)(struct nd_workq *q, nd_work_fn fn, nd_work_done_cb done, void *arg);
    void (*close)(struct nd_workq *q);
};

struct nd_workq {
    const struct nd_workq_ops *ops;
    void *impl;
    unsigned pending;            /* submitted, done not yet run */
    void (*on_idle)(void *data); /* pending fell to 0 */
    void *idle_data;
};

int nd_workq_uv_init(struct nd_workq *q, uv_loop_t *loop);
int nd_workq_manual_init(struct nd_workq *q);
/* Manual queue: run queued items (and the ones they queue) until none is left; returns how
 * many ran. */
size_t nd_workq_manual_run(struct nd_workq *q);
/* Manual queue: the nth next submit fails (1 = the very next); 0 disarms. */
void nd_workq_manual_fail(struct nd_workq *q, unsigned nth);
void nd_workq_close(struct nd_workq *q); /* nothing may be pending */

int nd_work(struct nd_workq *q, nd_work_fn fn, nd_work_done_cb done, void *arg);

#endif
