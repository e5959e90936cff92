#include <criterion/criterion.h>
#include <string.h>

#include "crc32c.h"

Test(crc32c, check_value)
{
    cr_assert_eq(cm_crc32c(0, "123456789", 9), 0xE3069283u);
}

Test(crc32c, incremental_equals_one_shot)
{
    char data[10000];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (char)(i * 131 + 7);
    uint32_t whole = cm_crc32c(0, data, sizeof(data));
    uint32_t inc = 0;
    for (size_t off = 0; off < sizeof(data); off += 333) {
        size_t n = sizeof(data) - off < 333 ? sizeof(data) - off : 333;
        inc = cm_crc32c(inc, data + off, n);
    }
    cr_assert_eq(inc, whole);
}

Test(crc32c, empty_is_zero)
{
    cr_assert_eq(cm_crc32c(0, "", 0), 0u);
}
