/* Fuzz targets over the pure parsers. Each target file defines LLVMFuzzerTestOneInput and a
 * NULL-terminated seed list. Built two ways:
 *   - in the normal (gcc, ASan+UBSan) build with driver.c: a deterministic mutation loop over
 *     the seeds (HW_FUZZ_ITERS, default 20000), so every CI run throws garbage at them;
 *   - with clang -fsanitize=fuzzer by scripts/fuzz for coverage-guided runs. */
#ifndef HW_FUZZ_H
#define HW_FUZZ_H

#include <stddef.h>
#include <stdint.h>

struct hw_fuzz_seed {
    const char *data;
    size_t len;
};

#define HW_SEED(s)                                                                                 \
    {                                                                                              \
        s, sizeof(s) - 1                                                                           \
    }

extern const struct hw_fuzz_seed hw_fuzz_seeds[];
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
