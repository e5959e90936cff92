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

Test(crc32c, combine_equals_crc_of_the_concatenation)
{
    static char data[70000];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (char)(i * 2654435761u >> 13);
    uint32_t whole = cm_crc32c(0, data, sizeof(data));
    size_t cuts[] = {0, 1, 7, 8, 9, 4095, 4096, 65536, sizeof(data) - 1, sizeof(data)};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        size_t c = cuts[i];
        uint32_t a = cm_crc32c(0, data, c), b = cm_crc32c(0, data + c, sizeof(data) - c);
        cr_assert_eq(cm_crc32c_combine(a, b, sizeof(data) - c), whole, "cut at %zu", c);
    }
    /* three pieces, combined left to right as the node does per STAGE */
    uint32_t acc = 0;
    size_t off = 0, step = 1;
    while (off < sizeof(data)) {
        size_t n = sizeof(data) - off < step ? sizeof(data) - off : step;
        acc = cm_crc32c_combine(acc, cm_crc32c(0, data + off, n), n);
        off += n;
        step = step * 3 + 1;
    }
    cr_assert_eq(acc, whole);
    cr_assert_neq(cm_crc32c_combine(whole, 0, 1), whole); /* a byte more changes it */
}
