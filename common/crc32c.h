/* CRC-32C (Castagnoli), hardware-accelerated where the CPU has SSE4.2. */
#ifndef CM_CRC32C_H
#define CM_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extend crc (start with 0) over data. cm_crc32c(0, "123456789", 9) == 0xE3069283. */
uint32_t cm_crc32c(uint32_t crc, const void *data, size_t len);
/* The crc of A followed by B from crc_a = crc of A, crc_b = crc of B and B's length, without
 * the bytes: cm_crc32c(cm_crc32c(0, A), B) == cm_crc32c_combine(crc_a, crc_b, len_b). Each
 * piece's crc can then be computed where the piece is (another thread), once. */
uint32_t cm_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);

#endif
