/* One outbound request from this node to a peer node's RPC port (bootstrap HELLO,
 * READ_INDEX, FETCH): connect, handshake, send the request, hand every answer frame to the
 * caller until it says it is done.
 *
 * Happy path: nd_call_start -> cb(status 0, frame)... -> cb returns 1 -> closed, freed.
 * Failures: connect/handshake error, ERROR frame, peer closes, deadline passes ->
 * cb(status < 0, NULL) once; frames before it were delivered. Cancel: nd_call_cancel; no
 * callback fires after it. The callback never runs from inside nd_call_start. */
#ifndef ND_RPC_CALL_H
#define ND_RPC_CALL_H

#include <stdint.h>
#include <uv.h>

#include "buf.h"
#include "headwater.pb-c.h"

struct nd_call;

/* Return 0 to wait for more frames, 1 when the request is complete. */
typedef int (*nd_call_cb)(struct nd_call *c, int status, const Hw__Envelope *env,
                          const struct cm_slice *payload, void *arg);

/* idle_ms: deadline without any frame. `req` is copied out (packed) before returning. */
struct cm_auth;
/* auth (borrowed): the cluster secret the connection proves first (common/auth.h). */
int nd_call_start(uv_loop_t *loop, struct cm_auth *auth, const char *addr, uint32_t self_id,
                  const char *self_rpc, const Hw__Envelope *req, unsigned idle_ms, nd_call_cb cb,
                  void *arg, struct nd_call **out);
void nd_call_cancel(struct nd_call *c);
void nd_call_pause(struct nd_call *c);
void nd_call_resume(struct nd_call *c);

#endif
