/* System and fake clocks (see clock.h). */
#include "host/clock.h"

#include <string.h>

#include "timeutil.h"

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ull;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

static int64_t sys_now(struct nd_clock *c)
{
    return cm_wall_ms();
}

static uint64_t sys_mono(struct nd_clock *c)
{
    return cm_mono_ms();
}

static uint64_t sys_random(struct nd_clock *c)
{
    return xorshift(c->data); /* loop thread only */
}

void nd_clock_system(struct nd_clock *c, uint64_t *seed_storage)
{
    *seed_storage = (uint64_t)cm_wall_ms() * 6364136223846793005ull ^ cm_mono_ms();
    c->now_ms = sys_now;
    c->mono_ms = sys_mono;
    c->random = sys_random;
    c->data = seed_storage;
}

static int64_t fake_now(struct nd_clock *c)
{
    return ((struct nd_fake_clock *)c->data)->wall_ms;
}

static uint64_t fake_mono(struct nd_clock *c)
{
    return ((struct nd_fake_clock *)c->data)->mono_ms;
}

static uint64_t fake_random(struct nd_clock *c)
{
    return xorshift(&((struct nd_fake_clock *)c->data)->seed);
}

void nd_fake_clock_init(struct nd_fake_clock *f, int64_t wall_ms, uint64_t seed)
{
    memset(f, 0, sizeof(*f));
    f->wall_ms = wall_ms;
    f->mono_ms = 1000000; /* never 0: "last ran at 0" must look long ago */
    f->seed = seed;
    f->clock.now_ms = fake_now;
    f->clock.mono_ms = fake_mono;
    f->clock.random = fake_random;
    f->clock.data = f;
}

void nd_fake_clock_advance(struct nd_fake_clock *f, uint64_t ms)
{
    f->wall_ms += (int64_t)ms;
    f->mono_ms += ms;
}
