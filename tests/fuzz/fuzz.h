/* Fuzz targets over the pure parsers. Each target file defines LLVMFuzzerTestOneInput; its seed
 * corpus is the directory tests/fuzz/corpus/<target>/ (one input per file). Built two ways:
 *   - in the normal (gcc, ASan+UBSan) build with driver.c: the seeds are replayed, then mutated
 *     deterministically HW_FUZZ_ITERS times, so every CI run throws garbage at the parsers;
 *   - with clang -fsanitize=fuzzer by scripts/fuzz for coverage-guided runs.
 * A target checks properties of what the parser returns (HW_FUZZ_ASSERT), not just "no crash". */
#ifndef HW_FUZZ_H
#define HW_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* A violated property: say which, then abort (the sanitizer / libFuzzer saves the input). */
#define HW_FUZZ_ASSERT(cond)                                                                       \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond);            \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
