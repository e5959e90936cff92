#include "crc32c.h"

#include <pthread.h>
#include <string.h>

/* Software fallback: slicing-by-1 table over the reflected polynomial 0x82F63B78. */
static uint32_t crc_table[256];

static void table_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[i] = c;
    }
}

static uint32_t crc_sw(uint32_t crc, const unsigned char *p, size_t len)
{
    while (len--)
        crc = crc_table[(crc ^ *p++) & 0xFF] ^ (crc >> 8);
    return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const unsigned char *p,
                                                         size_t len)
{
    uint64_t c = crc;
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        len -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (len--)
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    return c32;
}
#endif

static int have_hw = -1;

static void crc_init(void)
{
    table_init();
#if defined(__x86_64__)
    __builtin_cpu_init();
    have_hw = __builtin_cpu_supports("sse4.2") ? 1 : 0;
#else
    have_hw = 0;
#endif
}

uint32_t cm_crc32c(uint32_t crc, const void *data, size_t len)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, crc_init);
    crc = ~crc;
#if defined(__x86_64__)
    if (have_hw)
        return ~crc_hw(crc, data, len);
#endif
    return ~crc_sw(crc, data, len);
}

/* Polynomials over GF(2) modulo the CRC's, in its reflected form: bit 31 is x^0, bit 0 x^31.
 * The crc register is affine in its start value, so crc(A B) = crc(A) * x^(8|B|) + crc(B)
 * (the pre- and post-inversion cancel). */
static uint32_t gf_mul(uint32_t a, uint32_t b)
{
    uint32_t p = 0;
    for (uint32_t m = 1u << 31; m != 0; m >>= 1) {
        if (a & m)
            p ^= b;
        b = (b & 1) ? (b >> 1) ^ 0x82F63B78u : b >> 1; /* b * x */
    }
    return p;
}

/* x^(8n) by squaring: x^8, x^16, x^32, ... multiplied in for each set bit of n. */
static uint32_t x_pow_8n(uint64_t n)
{
    uint32_t r = 1u << 31;        /* 1 */
    uint32_t sq = 1u << (31 - 8); /* x^8 */
    while (n != 0) {
        if (n & 1)
            r = gf_mul(r, sq);
        sq = gf_mul(sq, sq);
        n >>= 1;
    }
    return r;
}

uint32_t cm_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b)
{
    return gf_mul(crc_a, x_pow_8n(len_b)) ^ crc_b;
}
