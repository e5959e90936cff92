#include "alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Countdown for injected failures; negative = never fail. once: only one allocation fails. */
static atomic_long fail_countdown = -1;
static atomic_int fail_once;
static atomic_long failures;

void cm_alloc_fail_after(long countdown)
{
    atomic_store(&fail_once, 0);
    atomic_store(&failures, 0);
    atomic_store(&fail_countdown, countdown);
}

void cm_alloc_fail_once_after(long countdown)
{
    atomic_store(&fail_once, 1);
    atomic_store(&failures, 0);
    atomic_store(&fail_countdown, countdown);
}

long cm_alloc_failures(void)
{
    return atomic_load(&failures);
}

static int should_fail(void)
{
    long n = atomic_load(&fail_countdown);
    if (n < 0)
        return 0;
    if (n == 0) {
        if (atomic_load(&fail_once))
            atomic_store(&fail_countdown, -1);
        atomic_fetch_add(&failures, 1);
        return 1;
    }
    atomic_fetch_sub(&fail_countdown, 1);
    return 0;
}

void *cm_malloc(size_t n)
{
    if (should_fail())
        return NULL;
    return malloc(n ? n : 1);
}

void *cm_aligned_alloc(size_t align, size_t n)
{
    void *p;
    if (should_fail() || posix_memalign(&p, align, n ? n : 1) != 0)
        return NULL;
    return p;
}

void *cm_calloc(size_t count, size_t n)
{
    if (should_fail())
        return NULL;
    return calloc(count ? count : 1, n ? n : 1);
}

void *cm_realloc(void *p, size_t n)
{
    if (should_fail())
        return NULL;
    return realloc(p, n ? n : 1);
}

void cm_free(void *p)
{
    free(p);
}

char *cm_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *d = cm_malloc(len + 1);
    if (d == NULL)
        return NULL;
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

char *cm_strdup(const char *s)
{
    return cm_strndup(s, strlen(s));
}
