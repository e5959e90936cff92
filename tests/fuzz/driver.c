/* Standalone fuzz driver (no libFuzzer): replays files given as arguments, then mutates the
 * target's seeds deterministically HW_FUZZ_ITERS times. Sanitizers do the checking. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

#define MAX_INPUT 65536

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static size_t mutate(uint8_t *buf, size_t len, size_t cap)
{
    int rounds = 1 + (int)(next() % 8);
    for (int r = 0; r < rounds; r++) {
        size_t pos = len ? next() % len : 0;
        switch (next() % 7) {
        case 0: /* flip a bit */
            if (len)
                buf[pos] ^= (uint8_t)(1u << (next() % 8));
            break;
        case 1: /* random byte */
            if (len)
                buf[pos] = (uint8_t)next();
            break;
        case 2: /* insert a byte */
            if (len < cap) {
                memmove(buf + pos + 1, buf + pos, len - pos);
                buf[pos] = (uint8_t)next();
                len++;
            }
            break;
        case 3: /* delete a run */
            if (len) {
                size_t n = 1 + next() % (len - pos);
                memmove(buf + pos, buf + pos + n, len - pos - n);
                len -= n;
            }
            break;
        case 4: /* truncate */
            len = pos;
            break;
        case 5: /* duplicate a run */
            if (len && len < cap) {
                size_t n = 1 + next() % (len - pos);
                if (n > cap - len)
                    n = cap - len;
                memmove(buf + pos + n, buf + pos, len - pos);
                len += n;
            }
            break;
        default: /* interesting bytes */
            if (len) {
                static const uint8_t v[] = {0, 0xff, 0x7f, 0x80, '\r', '\n', ',', '-', '"', ' '};
                buf[pos] = v[next() % sizeof(v)];
            }
            break;
        }
    }
    return len;
}

int main(int argc, char **argv)
{
    static uint8_t buf[MAX_INPUT];
    long iters = getenv("HW_FUZZ_ITERS") ? atol(getenv("HW_FUZZ_ITERS")) : 20000;
    size_t nseeds = 0;
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (f == NULL) {
            perror(argv[i]);
            return 2;
        }
        size_t n = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        LLVMFuzzerTestOneInput(buf, n);
    }
    while (hw_fuzz_seeds[nseeds].data != NULL) {
        LLVMFuzzerTestOneInput((const uint8_t *)hw_fuzz_seeds[nseeds].data,
                               hw_fuzz_seeds[nseeds].len);
        nseeds++;
    }
    for (long i = 0; i < iters && nseeds > 0; i++) {
        const struct hw_fuzz_seed *s = &hw_fuzz_seeds[next() % nseeds];
        size_t len = s->len < sizeof(buf) ? s->len : sizeof(buf);
        memcpy(buf, s->data, len);
        len = mutate(buf, len, sizeof(buf));
        LLVMFuzzerTestOneInput(buf, len);
    }
    printf("fuzz: %ld mutated inputs over %zu seeds, no crash\n", iters, nseeds);
    return 0;
}
