/* Allocation seam: every project allocation goes through here so tests can inject failure. */
#ifndef CM_ALLOC_H
#define CM_ALLOC_H

#include <stddef.h>

void *cm_malloc(size_t n);
void *cm_calloc(size_t count, size_t n);
void *cm_realloc(void *p, size_t n);
/* n bytes at an address that is a multiple of align (a power of two, at least
 * sizeof(void *)); freed with cm_free. */
void *cm_aligned_alloc(size_t align, size_t n);
void cm_free(void *p);
char *cm_strdup(const char *s);
char *cm_strndup(const char *s, size_t n);

/* Test hook: after `countdown` more successful allocations, every allocation fails (returns
 * NULL) until reset with a negative countdown. Set before threads start. */
void cm_alloc_fail_after(long countdown);
/* The same, but only that one allocation fails; the ones after it succeed again. */
void cm_alloc_fail_once_after(long countdown);
/* Allocations failed by the hook since the last cm_alloc_fail_after / _once_after. */
long cm_alloc_failures(void);

#endif
