/* Shedding a TCP connection there is no memory for: accept it into a handle the listener owns
 * and close it at once. Left unaccepted, libuv would stop reporting new connections on that
 * listener for good (it waits for the pending one to be accepted).
 *
 * One connection is shed at a time; one arriving while the handle closes is remembered, and
 * on_done(arg, pending) fires once the handle has closed: pending says another connection
 * waits in libuv (accept again, or stop listening). An owner closing its listener must wait
 * for cm_shed_busy() to be 0 before freeing the struct. Loop thread only. */
#ifndef CM_SHED_H
#define CM_SHED_H

#include <uv.h>

struct cm_shed {
    uv_tcp_t tcp;
    uv_stream_t *listener; /* borrowed */
    int busy;              /* tcp is closing */
    int pending;           /* another connection waits in libuv */
    void (*on_done)(void *arg, int pending);
    void *arg;
};

void cm_shed_init(struct cm_shed *s, uv_stream_t *listener, void (*on_done)(void *arg, int pending),
                  void *arg);
void cm_shed(struct cm_shed *s);
int cm_shed_busy(const struct cm_shed *s);

#endif
