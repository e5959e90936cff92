/* Node RPC frame decoder (common/frame.c): any byte stream, in any fragmentation, either yields
 * frames or a clean error; never a crash, leak or overread. Properties: two different
 * fragmentations of the same bytes give the same frames (type, id, payload) and the same end;
 * a decoded frame re-encoded decodes to the same envelope type, id and payload. */
#include <string.h>

#include "alloc.h"
#include "crc32c.h"
#include "frame.h"
#include "fuzz.h"

#define MAX_FRAMES 64

struct trace {
    size_t n;
    int rv; /* the last decoder answer: 0 (needs more), < 0 (error) */
    uint32_t type[MAX_FRAMES];
    uint64_t id[MAX_FRAMES];
    size_t plen[MAX_FRAMES];
    uint32_t pcrc[MAX_FRAMES];
};

static void check_reencode(const struct cm_frame *f)
{
    struct cm_buf *head;
    if (cm_frame_encode_head(f->env, f->payload.len, &head) != 0)
        return;
    struct cm_frame_decoder d;
    struct cm_frame g;
    size_t space;
    cm_frame_decoder_init(&d, 64);
    char *p = cm_frame_decoder_space(&d, &space);
    HW_FUZZ_ASSERT(p != NULL && space >= head->len);
    memcpy(p, head->data, head->len);
    cm_frame_decoder_commit(&d, head->len);
    size_t off = 0;
    while (off < f->payload.len) {
        p = cm_frame_decoder_space(&d, &space);
        size_t n = f->payload.len - off < space ? f->payload.len - off : space;
        memcpy(p, cm_slice_ptr(&f->payload) + off, n);
        cm_frame_decoder_commit(&d, n);
        off += n;
    }
    HW_FUZZ_ASSERT(cm_frame_decoder_next(&d, &g) == 1);
    HW_FUZZ_ASSERT(g.env->type == f->env->type && g.env->req_id == f->env->req_id);
    HW_FUZZ_ASSERT(g.payload.len == f->payload.len &&
                   memcmp(cm_slice_ptr(&g.payload), cm_slice_ptr(&f->payload), g.payload.len) == 0);
    cm_frame_release(&g);
    cm_frame_decoder_close(&d);
    cm_buf_unref(head);
}

static void record(struct trace *t, struct cm_frame *f, int first)
{
    if (t->n < MAX_FRAMES) {
        t->type[t->n] = (uint32_t)f->env->type;
        t->id[t->n] = f->env->req_id;
        t->plen[t->n] = f->payload.len;
        t->pcrc[t->n] = cm_crc32c(0, cm_slice_ptr(&f->payload), f->payload.len);
    }
    if (first && t->n == 0)
        check_reencode(f);
    t->n++;
}

/* Feed data in pieces: frag 0 = as much as the decoder takes, else input-driven odd sizes. */
static void decode(const uint8_t *data, size_t size, int frag, struct trace *t)
{
    struct cm_frame_decoder d;
    struct cm_frame f;
    size_t off = 0;
    memset(t, 0, sizeof(*t));
    cm_frame_decoder_init(&d, 64);
    while (off < size && t->rv >= 0) {
        size_t space;
        char *p = cm_frame_decoder_space(&d, &space);
        HW_FUZZ_ASSERT(p != NULL && space >= 1);
        size_t n = size - off < space ? size - off : space;
        size_t piece = 1 + (size_t)(data[off] % 37);
        if (frag && n > piece)
            n = piece;
        memcpy(p, data + off, n);
        cm_frame_decoder_commit(&d, n);
        off += n;
        while ((t->rv = cm_frame_decoder_next(&d, &f)) == 1) {
            record(t, &f, !frag);
            cm_frame_release(&f);
        }
    }
    cm_frame_decoder_close(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct trace a, b;
    decode(data, size, 0, &a);
    decode(data, size, 1, &b);
    HW_FUZZ_ASSERT(a.n == b.n && a.rv == b.rv);
    for (size_t i = 0; i < a.n && i < MAX_FRAMES; i++)
        HW_FUZZ_ASSERT(a.type[i] == b.type[i] && a.id[i] == b.id[i] && a.plen[i] == b.plen[i] &&
                       a.pcrc[i] == b.pcrc[i]);
    return 0;
}
