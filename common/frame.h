/* Node RPC frame codec (pure: no sockets).
 *
 *   u32 BE frame_len | u32 BE header_len | Envelope (protobuf) | payload (raw bytes)
 *
 * frame_len counts everything after itself. A frame whose frame_len exceeds CM_FRAME_MAX, or
 * whose header_len exceeds frame_len - 4 or CM_FRAME_HEADER_MAX, is a protocol error. */
#ifndef CM_FRAME_H
#define CM_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "headwater.pb-c.h"

/* 2: COMMIT and Raft PUT entries carry a Precondition, which a version-1 replica would ignore
 * (applying a failed conditional write): versions never mix, upgrade every process at once. */
#define CM_PROTO_VERSION 2
#define CM_FRAME_PREFIX 8u
#define CM_FRAME_HEADER_MAX (64u * 1024u)
#define CM_FRAME_PAYLOAD_MAX (4u * 1024u * 1024u)
#define CM_FRAME_MAX (CM_FRAME_PAYLOAD_MAX + CM_FRAME_HEADER_MAX + 4u)

/* Encode the 8-byte prefix and the packed envelope into a new cm_buf (refs = 1) for a frame
 * whose payload is payload_len bytes. */
int cm_frame_encode_head(const Hw__Envelope *env, size_t payload_len, struct cm_buf **out);

/* Incremental decoder over a byte stream. Bytes are written into the decoder's own refcounted
 * buffer (see cm_frame_decoder_space), so a decoded payload is a slice of it: no copy. */
struct cm_frame_decoder {
    struct cm_buf *buf; /* ref; current read buffer */
    size_t start;       /* first byte not yet consumed */
    size_t chunk;       /* default read-buffer size */
};

struct cm_frame {
    Hw__Envelope *env;       /* owned: free with cm_frame_release */
    struct cm_slice payload; /* ref */
};

void cm_frame_decoder_init(struct cm_frame_decoder *d, size_t chunk);
void cm_frame_decoder_close(struct cm_frame_decoder *d);
/* Where the next read may write (at least 1 byte); NULL on out of memory. */
char *cm_frame_decoder_space(struct cm_frame_decoder *d, size_t *len);
/* Account for n bytes written at the space returned last. */
void cm_frame_decoder_commit(struct cm_frame_decoder *d, size_t n);
/* Pop the next complete frame: 1 = got one in *f, 0 = need more bytes, <0 = CM_EPROTO /
 * CM_ETOOBIG / CM_ENOMEM (the stream is unusable). */
int cm_frame_decoder_next(struct cm_frame_decoder *d, struct cm_frame *f);
void cm_frame_release(struct cm_frame *f);

/* Envelope helpers. */
void cm_env_init(Hw__Envelope *env, Hw__MsgType type, uint64_t req_id, uint32_t shard);

#endif
