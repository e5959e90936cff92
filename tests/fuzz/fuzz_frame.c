/* Node RPC frame decoder: any byte stream, in any fragmentation, either yields frames or a
 * clean error; never a crash, leak or overread. */
#include <string.h>

#include "frame.h"
#include "fuzz.h"

const struct hw_fuzz_seed hw_fuzz_seeds[] = {
    HW_SEED("\x00\x00\x00\x0a\x00\x00\x00\x06\x08\x01\x10\x01\x18\x00"),
    HW_SEED("\x00\x00\x00\x10\x00\x00\x00\x06\x08\x03\x10\x07\x62\x00payload"),
    HW_SEED("\x00\x00\x00\x04\x00\x00\x00\x00"),
    HW_SEED("\xff\xff\xff\xff\x00\x00\x00\x01"),
    {NULL, 0},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cm_frame_decoder d;
    struct cm_frame f;
    size_t off = 0;
    cm_frame_decoder_init(&d, 64);
    while (off < size) {
        size_t space;
        char *p = cm_frame_decoder_space(&d, &space);
        if (p == NULL)
            break;
        size_t n = size - off;
        if (n > space)
            n = space;
        size_t frag = 1 + (size_t)(data[off] % 37); /* odd fragment sizes, input-driven */
        if (n > frag)
            n = frag;
        memcpy(p, data + off, n);
        cm_frame_decoder_commit(&d, n);
        off += n;
        int rv;
        while ((rv = cm_frame_decoder_next(&d, &f)) == 1)
            cm_frame_release(&f);
        if (rv < 0)
            break;
    }
    cm_frame_decoder_close(&d);
    return 0;
}
