#include <criterion/criterion.h>
#include <string.h>

#include "err.h"
#include "frame.h"

/* Encode a whole frame (head + payload) into one flat byte array. */
static size_t encode(const Hw__Envelope *env, const char *payload, size_t plen, char *out)
{
    struct cm_buf *head;
    cr_assert_eq(cm_frame_encode_head(env, plen, &head), 0);
    memcpy(out, head->data, head->len);
    memcpy(out + head->len, payload, plen);
    size_t n = head->len + plen;
    cm_buf_unref(head);
    return n;
}

static void feed(struct cm_frame_decoder *d, const char *p, size_t n)
{
    while (n > 0) {
        size_t space;
        char *dst = cm_frame_decoder_space(d, &space);
        cr_assert_not_null(dst);
        size_t k = n < space ? n : space;
        memcpy(dst, p, k);
        cm_frame_decoder_commit(d, k);
        p += k;
        n -= k;
    }
}

Test(frame, roundtrip_byte_by_byte)
{
    Hw__Envelope env;
    Hw__Stage st = HW__STAGE__INIT;
    cm_env_init(&env, HW__MSG_TYPE__MSG_STAGE, 77, 3);
    st.key = "/live/a.ts";
    st.offset = 4096;
    env.stage = &st;
    static char wire[3 * 300000];
    static char payload[300000];
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (char)(i % 251);
    size_t n = encode(&env, payload, sizeof(payload), wire);
    size_t n2 = encode(&env, "xyz", 3, wire + n);

    struct cm_frame_decoder d;
    cm_frame_decoder_init(&d, 4096);
    struct cm_frame f;
    int got = 0;
    for (size_t i = 0; i < n + n2; i++) {
        feed(&d, wire + i, 1);
        int rv;
        while ((rv = cm_frame_decoder_next(&d, &f)) == 1) {
            cr_assert_eq(f.env->type, HW__MSG_TYPE__MSG_STAGE);
            cr_assert_eq(f.env->req_id, 77);
            cr_assert_eq(f.env->shard, 3);
            cr_assert_str_eq(f.env->stage->key, "/live/a.ts");
            if (got == 0) {
                cr_assert_eq(f.payload.len, sizeof(payload));
                cr_assert(memcmp(cm_slice_ptr(&f.payload), payload, sizeof(payload)) == 0);
            } else {
                cr_assert_eq(f.payload.len, 3);
            }
            cm_frame_release(&f);
            got++;
        }
        cr_assert_geq(rv, 0);
    }
    cr_assert_eq(got, 2);
    cm_frame_decoder_close(&d);
}

Test(frame, truncated_frame_waits)
{
    Hw__Envelope env;
    cm_env_init(&env, HW__MSG_TYPE__MSG_STATUS, 1, 0);
    char wire[128];
    size_t n = encode(&env, "abc", 3, wire);
    struct cm_frame_decoder d;
    cm_frame_decoder_init(&d, 0);
    feed(&d, wire, n - 1);
    struct cm_frame f;
    cr_assert_eq(cm_frame_decoder_next(&d, &f), 0);
    feed(&d, wire + n - 1, 1);
    cr_assert_eq(cm_frame_decoder_next(&d, &f), 1);
    cm_frame_release(&f);
    cm_frame_decoder_close(&d);
}

Test(frame, oversized_frame_rejected)
{
    unsigned char wire[8] = {0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 1};
    struct cm_frame_decoder d;
    cm_frame_decoder_init(&d, 0);
    feed(&d, (char *)wire, sizeof(wire));
    struct cm_frame f;
    cr_assert_eq(cm_frame_decoder_next(&d, &f), CM_ETOOBIG);
    cm_frame_decoder_close(&d);
}

Test(frame, header_longer_than_frame_rejected)
{
    unsigned char wire[12] = {0, 0, 0, 8, 0, 0, 0, 9, 1, 2, 3, 4};
    struct cm_frame_decoder d;
    cm_frame_decoder_init(&d, 0);
    feed(&d, (char *)wire, sizeof(wire));
    struct cm_frame f;
    cr_assert_eq(cm_frame_decoder_next(&d, &f), CM_EPROTO);
    cm_frame_decoder_close(&d);
}

Test(frame, garbage_header_rejected)
{
    /* frame_len 8: header_len 4 of invalid protobuf (field 0 / bad wire type). */
    unsigned char wire[12] = {0, 0, 0, 8, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff};
    struct cm_frame_decoder d;
    cm_frame_decoder_init(&d, 0);
    feed(&d, (char *)wire, sizeof(wire));
    struct cm_frame f;
    cr_assert_eq(cm_frame_decoder_next(&d, &f), CM_EPROTO);
    cm_frame_decoder_close(&d);
}

Test(frame, too_short_frame_rejected)
{
    unsigned char wire[8] = {0, 0, 0, 2, 0, 0, 0, 0};
    struct cm_frame_decoder d;
    cm_frame_decoder_init(&d, 0);
    feed(&d, (char *)wire, sizeof(wire));
    struct cm_frame f;
    cr_assert_eq(cm_frame_decoder_next(&d, &f), CM_EPROTO);
    cm_frame_decoder_close(&d);
}

Test(frame, encode_refuses_oversized_payload)
{
    Hw__Envelope env;
    cm_env_init(&env, HW__MSG_TYPE__MSG_DATA, 1, 0);
    struct cm_buf *b = NULL;
    cr_assert_eq(cm_frame_encode_head(&env, CM_FRAME_PAYLOAD_MAX + 1, &b), CM_ETOOBIG);
    cr_assert_null(b);
}
