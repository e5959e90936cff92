/* CRC-32C (Castagnoli), hardware-accelerated where the CPU has SSE4.2. */
#ifndef CM_CRC32C_H
#define CM_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extend crc (start with 0) over data. cm_crc32c(0, "123456789", 9) == 0xE3069283. */
uint32_t cm_crc32c(uint32_t crc, const void *data, size_t len);

#endif
